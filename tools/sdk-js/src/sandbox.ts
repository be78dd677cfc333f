// Sandbox: a microVM of lelantosd, with its commands and files. Static methods address the API
// (create, list, get, connect); an instance is one sandbox, by id, over one connection config.
import { ConnectionConfig, type ConnectionOpts } from './client.js';
import { LelantosError } from './errors.js';
import type * as api from './schema.js';

export interface SandboxCreateOpts extends ConnectionOpts {
  /** Template id, name or alias (default `base`). */
  template?: string;
  /** Seconds until the sandbox is killed (or paused with autoPause); default the server's (300). */
  timeout?: number;
  metadata?: Record<string, string>;
  /** Environment variables of every command in the sandbox. */
  envs?: Record<string, string>;
  autoPause?: boolean;
  /** Start from this snapshot (a fork) instead of a template. */
  snapshotId?: string;
  network?: api.NetworkPolicy;
  allowInternetAccess?: boolean;
}

export interface SandboxListOpts extends ConnectionOpts {
  /** States to list (default running and paused, as the server). */
  state?: api.SandboxState[];
  metadata?: Record<string, string>;
  /** One page of at most this many; without it, every page. */
  limit?: number;
}

export interface CommandOpts {
  envs?: Record<string, string>;
  cwd?: string;
  /** Text written to the command's stdin. */
  stdin?: string;
  /** The command's limit in ms (server default 60000). */
  timeoutMs?: number;
  /** Called with each piece of output as the command writes it (the call then streams). */
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** Run on a pseudo-terminal of this size (streams; output comes as stdout). */
  pty?: { cols: number; rows: number };
  signal?: AbortSignal;
}

/** A finished command. */
export interface CommandResult extends api.CommandResult {
  /** The guest's id of the process (streamed runs). */
  pid?: number;
}

const ndjsonLines = async function* (body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) yield JSON.parse(line) as Record<string, unknown>;
    }
  }
  if (buf.trim()) yield JSON.parse(buf) as Record<string, unknown>;
};

/** `sbx.commands`: run shell commands in the sandbox. */
export class Commands {
  constructor(private readonly sbx: Sandbox) {}

  /** Runs `cmd` with /bin/sh -c; resolves when it ends (whatever its exit code). With onStdout or
   * onStderr the output streams to them as it comes, and the result holds it all as well. */
  async run(cmd: string, o: CommandOpts = {}): Promise<CommandResult> {
    const body: api.Command = { cmd, envs: o.envs, cwd: o.cwd, stdin: o.stdin, timeoutMs: o.timeoutMs, pty: o.pty };
    const path = `/sandboxes/${encodeURIComponent(this.sbx.sandboxId)}/commands`;
    const c = this.sbx.config;
    if (!o.onStdout && !o.onStderr && !o.pty)
      return c.json<CommandResult>('POST', path, { json: body, stream: true, signal: o.signal });
    const res = await c.raw('POST', path, { json: { ...body, stream: true }, stream: true, signal: o.signal, headers: { Accept: 'application/x-ndjson' } });
    const out: string[] = [], err: string[] = [];
    let end: Record<string, unknown> | undefined, pid: number | undefined;
    for await (const ev of ndjsonLines(res.body!)) {
      if (ev.type === 'start') pid = ev.pid as number;
      else if (ev.type === 'stdout') { out.push(ev.data as string); o.onStdout?.(ev.data as string); }
      else if (ev.type === 'stderr') { err.push(ev.data as string); o.onStderr?.(ev.data as string); }
      else if (ev.type === 'end') end = ev;
      else if (ev.type === 'error') throw new LelantosError(`command failed: ${String(ev.message)}`, Number(ev.code) || 0, ev);
    }
    if (!end) throw new LelantosError('the command stream ended before the command did');
    return { pid, exitCode: end.exitCode as number, stdout: out.join(''), stderr: err.join(''), durationMs: end.durationMs as number,
      truncated: end.truncated as boolean, timedOut: end.timedOut as boolean };
  }
}

export type ReadFormat = 'text' | 'bytes' | 'stream';

/** `sbx.files`: the sandbox's file system. */
export class Files {
  constructor(private readonly sbx: Sandbox) {}

  private path(): string {
    return `/sandboxes/${encodeURIComponent(this.sbx.sandboxId)}/files`;
  }

  /** A file's contents: text (UTF-8, the default), bytes, or a stream of its chunks. */
  read(path: string, o?: { format?: 'text' }): Promise<string>;
  read(path: string, o: { format: 'bytes' }): Promise<Uint8Array>;
  read(path: string, o: { format: 'stream' }): Promise<ReadableStream<Uint8Array>>;
  async read(path: string, o: { format?: ReadFormat } = {}): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const res = await this.sbx.config.raw('GET', this.path(), { query: { path }, stream: o.format === 'stream' });
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) {
      await res.body?.cancel();
      throw new LelantosError(`${path} is a directory (files.list lists it)`, 409);
    }
    if (o.format === 'stream') return res.body!;
    if (o.format === 'bytes') return new Uint8Array(await res.arrayBuffer());
    return res.text();
  }

  /** Writes a file whole (or not at all), making its parents. */
  async write(path: string, data: string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array>): Promise<void> {
    await this.sbx.config.raw('PUT', this.path(), {
      query: { path }, body: data as BodyInit, expect: 204, stream: data instanceof ReadableStream,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
  }

  /** A directory's entries. */
  async list(path: string): Promise<api.FileEntry[]> {
    const res = await this.sbx.config.raw('GET', this.path(), { query: { path } });
    if (!(res.headers.get('content-type') ?? '').startsWith('application/json')) {
      await res.body?.cancel();
      throw new LelantosError(`${path} is not a directory`, 409);
    }
    return (await res.json()) as api.FileEntry[];
  }

  /** Removes a file, a symlink or an empty directory. */
  async remove(path: string): Promise<void> {
    await this.sbx.config.raw('DELETE', this.path(), { query: { path }, expect: 204 });
  }
}

export class Sandbox {
  readonly sandboxId: string;
  readonly config: ConnectionConfig;
  /** The record as last seen (create, getInfo, resume, restore update it). */
  info: api.Sandbox;
  readonly commands: Commands;
  readonly files: Files;

  protected constructor(info: api.Sandbox, config: ConnectionConfig) {
    this.sandboxId = info.sandboxID;
    this.info = info;
    this.config = config;
    this.commands = new Commands(this);
    this.files = new Files(this);
  }

  private path(rest = ''): string {
    return `/sandboxes/${encodeURIComponent(this.sandboxId)}${rest}`;
  }

  /** Starts a sandbox (from `template`, default `base`, or from a snapshot). */
  static async create(templateOrOpts?: string | SandboxCreateOpts, maybe: SandboxCreateOpts = {}): Promise<Sandbox> {
    const o = typeof templateOrOpts === 'string' ? { ...maybe, template: templateOrOpts } : (templateOrOpts ?? {});
    const config = new ConnectionConfig(o);
    const body: api.NewSandbox = {
      templateID: o.snapshotId ? undefined : (o.template ?? 'base'), timeout: o.timeout, metadata: o.metadata, envVars: o.envs,
      autoPause: o.autoPause, snapshotID: o.snapshotId, network: o.network, allow_internet_access: o.allowInternetAccess,
    };
    return new Sandbox(await config.json<api.Sandbox>('POST', '/sandboxes', { json: body, expect: 201 }), config);
  }

  /** The team's sandboxes (records, not connections). */
  static async list(o: SandboxListOpts = {}): Promise<api.Sandbox[]> {
    const config = new ConnectionConfig(o);
    const md = o.metadata ? new URLSearchParams(o.metadata).toString() : undefined;
    return config.list<api.Sandbox>('/sandboxes', { state: o.state?.join(','), metadata: md, limit: o.limit });
  }

  /** A sandbox by id, as it is (a paused one stays paused). */
  static async get(sandboxId: string, o: ConnectionOpts = {}): Promise<Sandbox> {
    const config = new ConnectionConfig(o);
    return new Sandbox(await config.json<api.Sandbox>('GET', `/sandboxes/${encodeURIComponent(sandboxId)}`), config);
  }

  /** A running sandbox by id: resumes it when paused; `timeout` (s) restarts its clock. */
  static async connect(sandboxId: string, o: ConnectionOpts & { timeout?: number } = {}): Promise<Sandbox> {
    const config = new ConnectionConfig(o);
    const info = await config.json<api.Sandbox>('POST', `/sandboxes/${encodeURIComponent(sandboxId)}/connect`, {
      json: o.timeout !== undefined ? { timeout: o.timeout } : {},
    });
    return new Sandbox(info, config);
  }

  /** Kills a sandbox by id. */
  static async kill(sandboxId: string, o: ConnectionOpts = {}): Promise<void> {
    await new ConnectionConfig(o).raw('DELETE', `/sandboxes/${encodeURIComponent(sandboxId)}`, { expect: 204 });
  }

  async getInfo(): Promise<api.Sandbox> {
    this.info = await this.config.json<api.Sandbox>('GET', this.path());
    return this.info;
  }

  async isRunning(): Promise<boolean> {
    return (await this.getInfo()).state === 'running';
  }

  async kill(): Promise<void> {
    await this.config.raw('DELETE', this.path(), { expect: 204 });
  }

  /** Pauses it (memory and processes kept); ConflictError unless running. */
  async pause(): Promise<void> {
    await this.config.raw('POST', this.path('/pause'), { expect: 204 });
  }

  /** Resumes a paused sandbox; ConflictError unless paused. */
  async resume(o: { timeout?: number } = {}): Promise<api.Sandbox> {
    this.info = await this.config.json<api.Sandbox>('POST', this.path('/resume'), { json: o.timeout !== undefined ? { timeout: o.timeout } : {}, expect: 201 });
    return this.info;
  }

  /** Ends it `seconds` from now (may shorten; 0 ends it now). */
  async setTimeout(seconds: number): Promise<void> {
    await this.config.raw('POST', this.path('/timeout'), { json: { timeout: seconds }, expect: 204 });
  }

  /** Extends its life by `duration` seconds (never shortens). */
  async refresh(duration?: number): Promise<void> {
    await this.config.raw('POST', this.path('/refresh'), { json: duration !== undefined ? { duration } : {}, expect: 204 });
  }

  /** Lifecycle events and console output from `start` (ms since the epoch). */
  async logs(o: { start?: number; limit?: number } = {}): Promise<api.SandboxLogs> {
    return this.config.json<api.SandboxLogs>('GET', this.path('/logs'), { query: o });
  }

  /** CPU, memory and disk samples between `start` and `end` (unix seconds). */
  async metrics(o: { start?: number; end?: number } = {}): Promise<api.SandboxMetric[]> {
    return this.config.json<api.SandboxMetric[]>('GET', this.path('/metrics'), { query: o });
  }

  /** A snapshot of it as it is now; the sandbox keeps running. */
  async snapshot(o: { name?: string } = {}): Promise<api.Snapshot> {
    return this.config.json<api.Snapshot>('POST', this.path('/snapshot'), { json: o, expect: 201 });
  }

  /** Puts this sandbox back at a snapshot's state (same id). */
  async restore(snapshotId: string): Promise<api.Sandbox> {
    this.info = await this.config.json<api.Sandbox>('POST', this.path('/restore'), { json: { snapshotID: snapshotId }, expect: 200 });
    return this.info;
  }

  /** The URL that reaches `port` inside the sandbox with the API key (no wildcard DNS needed). */
  portUrl(port: number): string {
    return `${this.config.apiUrl}/sandboxes/${encodeURIComponent(this.sandboxId)}/ports/${port}/`;
  }
}

/** Snapshots outlive their sandbox; start sandboxes from them with Sandbox.create({snapshotId}). */
export class Snapshot {
  static async list(o: ConnectionOpts & { sandboxId?: string; name?: string } = {}): Promise<api.Snapshot[]> {
    return new ConnectionConfig(o).list<api.Snapshot>('/snapshots', { sandboxID: o.sandboxId, name: o.name });
  }

  static async delete(snapshotId: string, o: ConnectionOpts = {}): Promise<void> {
    await new ConnectionConfig(o).raw('DELETE', `/snapshots/${encodeURIComponent(snapshotId)}`, { expect: 204 });
  }
}
