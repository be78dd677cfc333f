// Templates: what sandboxes start from. A build boots a VM, runs the steps, starts startCmd,
// waits for readyCmd and snapshots it; Template.build follows it to the end, handing each new
// log entry to onLog as the builder writes it (the build record is polled with logsOffset).
import { ConnectionConfig, type ConnectionOpts } from './client.js';
import { BuildError, ConflictError } from './errors.js';
import type * as api from './schema.js';

export interface BuildFollowOpts extends ConnectionOpts {
  /** Each log entry, once, in order. */
  onLog?: (entry: api.LogEntry) => void;
  /** The build's status whenever it changes. */
  onStatus?: (status: api.BuildStatus) => void;
  /** Between polls (default 500 ms). */
  pollIntervalMs?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });

export class Template {
  /** Registers a template and starts its build; resolves at once with its ids. */
  static async create(spec: api.NewTemplate, o: ConnectionOpts = {}): Promise<api.TemplateCreated> {
    return new ConnectionConfig(o).json<api.TemplateCreated>('POST', '/templates', { json: spec, expect: 202 });
  }

  /** A new build of an existing template (id or name) from a create's body: the same id, the
   * new definition; ConflictError while sandboxes use it. Resolves at once with its ids. */
  static async rebuild(templateId: string, spec: api.TemplateRebuild, o: ConnectionOpts = {}): Promise<api.TemplateCreated> {
    return new ConnectionConfig(o).json<api.TemplateCreated>('POST', `/templates/${encodeURIComponent(templateId)}`,
      { json: spec, expect: 202 });
  }

  /** Creates the template, or builds it again when the team has one of that name (as E2B's
   * Template.build does), and follows its build: resolves with the template once it is ready,
   * throws BuildError (with the log) when the build fails. */
  static async build(spec: api.NewTemplate, o: BuildFollowOpts = {}): Promise<api.TemplateWithBuilds> {
    let created: api.TemplateCreated;
    try {
      created = await Template.create(spec, o);
    } catch (e) {
      if (!(e instanceof ConflictError) || !/already exists/.test(e.message) || /built-in/.test(e.message)) throw e;
      created = await Template.rebuild(spec.name, spec, o);
    }
    await Template.followBuild(created.templateID, created.buildID, o);
    return Template.get(created.templateID, o);
  }

  /** Follows a build to `ready` (resolves with its record) or `error` (throws BuildError). */
  static async followBuild(templateId: string, buildId: string, o: BuildFollowOpts = {}): Promise<api.TemplateBuild> {
    const c = new ConnectionConfig(o);
    const path = `/templates/${encodeURIComponent(templateId)}/builds/${encodeURIComponent(buildId)}`;
    const logs: string[] = [];
    let status: string | undefined;
    for (;;) {
      const b = await c.json<api.TemplateBuild>('GET', path, { query: { logsOffset: logs.length }, signal: o.signal });
      for (const e of b.logEntries) {
        logs.push(e.message);
        o.onLog?.(e);
      }
      if (b.status !== status) o.onStatus?.((status = b.status));
      if (b.status === 'ready') return { ...b, logs, logEntries: [] };
      if (b.status === 'error') {
        const r = b.reason as unknown;
        const why = typeof r === 'string' ? r : (r as { message?: string } | undefined)?.message;
        throw new BuildError(`build ${buildId} of template ${templateId} failed${why ? `: ${why}` : ''}`, templateId, buildId, logs);
      }
      await sleep(o.pollIntervalMs ?? 500, o.signal);
    }
  }

  static async get(templateId: string, o: ConnectionOpts = {}): Promise<api.TemplateWithBuilds> {
    return new ConnectionConfig(o).json<api.TemplateWithBuilds>('GET', `/templates/${encodeURIComponent(templateId)}`);
  }

  static async list(o: ConnectionOpts = {}): Promise<api.Template[]> {
    return new ConnectionConfig(o).json<api.Template[]>('GET', '/templates');
  }

  /** Deletes it (cancels a running build); ConflictError while sandboxes use it. */
  static async delete(templateId: string, o: ConnectionOpts = {}): Promise<void> {
    await new ConnectionConfig(o).raw('DELETE', `/templates/${encodeURIComponent(templateId)}`, { expect: 204 });
  }
}
