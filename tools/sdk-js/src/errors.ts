// Errors as typed classes: every non-2xx answer of lelantosd becomes one of these, carrying the
// status, the server's message and (for 429 and 503) how long to wait before trying again.

/** Any error the SDK throws about a request. */
export class LelantosError extends Error {
  /** HTTP status (0 when no answer came: see ConnectionError, TimeoutError). */
  readonly status: number;
  /** The parsed error body (`{error, code, message}`) when there was one. */
  readonly body?: unknown;
  constructor(message: string, status = 0, body?: unknown) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.body = body;
  }
}
/** 400: the request was malformed (the message names the field). */
export class BadRequestError extends LelantosError {}
/** 401: missing or invalid credentials. */
export class AuthenticationError extends LelantosError {}
/** 403: the credentials do not allow this. */
export class ForbiddenError extends LelantosError {}
/** 404: no such sandbox, template, snapshot, key or file (or another team's). */
export class NotFoundError extends LelantosError {}
/** 409: the thing is in the wrong state for the request (e.g. pausing a paused sandbox). */
export class ConflictError extends LelantosError {}
/** 413: the body is over the server's cap. */
export class PayloadTooLargeError extends LelantosError {}
/** 429: rate limited; retry after `retryAfter` seconds. */
export class RateLimitedError extends LelantosError {
  readonly retryAfter: number;
  constructor(message: string, status: number, body: unknown, retryAfter: number) {
    super(message, status, body);
    this.retryAfter = retryAfter;
  }
}
/** 503: out of capacity (or no VMs on this host); `retryAfter` seconds when the server said. */
export class UnavailableError extends LelantosError {
  readonly retryAfter?: number;
  constructor(message: string, status: number, body: unknown, retryAfter?: number) {
    super(message, status, body);
    this.retryAfter = retryAfter;
  }
}
/** Another status (500, ...). */
export class ServerError extends LelantosError {}
/** The daemon could not be reached, or the connection broke. */
export class ConnectionError extends LelantosError {}
/** The request took longer than its `requestTimeoutMs`. */
export class TimeoutError extends LelantosError {}
/** A template build ended in `error`; `logs` holds its log lines. */
export class BuildError extends LelantosError {
  readonly templateId: string;
  readonly buildId: string;
  readonly logs: string[];
  constructor(message: string, templateId: string, buildId: string, logs: string[]) {
    super(message);
    this.templateId = templateId;
    this.buildId = buildId;
    this.logs = logs;
  }
}

/** The error for a non-2xx answer. */
export function errorFor(status: number, body: unknown, retryAfterHeader: string | null): LelantosError {
  const b = body as { message?: unknown; error?: unknown } | undefined;
  const text = typeof b?.message === 'string' ? b.message : typeof b?.error === 'string' ? b.error : `HTTP ${status}`;
  const retry = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : undefined;
  switch (status) {
    case 400: return new BadRequestError(text, status, body);
    case 401: return new AuthenticationError(text, status, body);
    case 403: return new ForbiddenError(text, status, body);
    case 404: return new NotFoundError(text, status, body);
    case 409: return new ConflictError(text, status, body);
    case 413: return new PayloadTooLargeError(text, status, body);
    case 429: return new RateLimitedError(text, status, body, retry ?? 1);
    case 503: return new UnavailableError(text, status, body, retry);
    default: return new ServerError(text, status, body);
  }
}
