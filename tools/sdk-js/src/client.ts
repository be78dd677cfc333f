// The connection to a lelantosd: where it is, the API key, and the one function every call
// goes through (JSON in and out, errors mapped to the classes of errors.ts).
import { ConnectionError, TimeoutError, errorFor } from './errors.js';

/** How to reach the daemon. Defaults: LELANTOS_URL (else http://127.0.0.1:3000), LELANTOS_API_KEY. */
export interface ConnectionOpts {
  apiUrl?: string;
  apiKey?: string;
  /** Per request, in ms (default 60000; 0: none). Streams (commands with callbacks) have none. */
  requestTimeoutMs?: number;
  /** Another fetch (tests, proxies); default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOpts {
  query?: Query;
  /** A JSON body (an object), or raw bytes for uploads. */
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  /** The status the call must answer (default: any 2xx). */
  expect?: number;
  /** No time limit (streams). */
  stream?: boolean;
  signal?: AbortSignal;
}

// node's environment, where there is one (no @types/node needed: browsers have none)
const env = (name: string): string | undefined =>
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name] || undefined;

export class ConnectionConfig {
  readonly apiUrl: string;
  readonly apiKey?: string;
  readonly requestTimeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly headers: Record<string, string>;

  constructor(opts: ConnectionOpts = {}) {
    this.apiUrl = (opts.apiUrl ?? env('LELANTOS_URL') ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
    this.apiKey = opts.apiKey ?? env('LELANTOS_API_KEY');
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.headers = opts.headers ?? {};
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.apiUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  /** One request; resolves to the Response of a 2xx (or `expect`) answer, throws the typed error otherwise. */
  async raw(method: string, path: string, o: RequestOpts = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers, ...o.headers };
    if (this.apiKey) headers['X-API-Key'] = this.apiKey;
    let body = o.body;
    if (o.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.json);
    }
    const timeout = !o.stream && this.requestTimeoutMs > 0 ? AbortSignal.timeout(this.requestTimeoutMs) : undefined;
    const signal = timeout && o.signal ? anySignal([timeout, o.signal]) : (timeout ?? o.signal);
    let res: Response;
    try {
      const init: RequestInit & { duplex?: string } = { method, headers, body, signal };
      if (body instanceof ReadableStream) init.duplex = 'half'; // a streamed upload
      res = await this.fetchImpl(this.url(path, o.query), init);
    } catch (e) {
      const err = e as Error;
      if (err.name === 'TimeoutError') throw new TimeoutError(`${method} ${path}: no answer in ${this.requestTimeoutMs} ms`);
      if (err.name === 'AbortError') throw err;
      throw new ConnectionError(`${method} ${this.apiUrl}${path}: ${err.message}${causeOf(err)}`);
    }
    const ok = o.expect !== undefined ? res.status === o.expect : res.status >= 200 && res.status < 300;
    if (!ok) {
      const text = await res.text().catch(() => '');
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON: kept as text */ }
      throw errorFor(res.status, parsed, res.headers.get('retry-after'));
    }
    return res;
  }

  /** A request whose answer is JSON (or nothing, for 204). */
  async json<T>(method: string, path: string, o: RequestOpts = {}): Promise<T> {
    const res = await this.raw(method, path, o);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Every item of a paged list (`X-Next-Token`), or one page when `limit` is given. */
  async list<T>(path: string, query: Query = {}): Promise<T[]> {
    const all: T[] = [];
    let token: string | null = null;
    do {
      const res = await this.raw('GET', path, { query: { ...query, nextToken: token ?? undefined } });
      all.push(...((await res.json()) as T[]));
      token = query.limit === undefined ? res.headers.get('x-next-token') : null;
    } while (token);
    return all;
  }
}

function causeOf(e: Error): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c ? ` (${c.code ?? c.message})` : '';
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  const c = new AbortController();
  for (const s of signals) {
    if (s.aborted) { c.abort(s.reason); break; }
    s.addEventListener('abort', () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}
