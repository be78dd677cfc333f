// Compiled (not run) by scripts/ctest.sh against the built .d.ts: what a TypeScript user writes
// must type-check, and a wrong field must not (the @ts-expect-error lines fail the build when
// the types stop catching them).
import { Sandbox, Template, RateLimitedError, NotFoundError, type api } from '../dist/esm/index.js';

export async function usage(): Promise<number> {
  const sbx = await Sandbox.create('base', { timeout: 60, metadata: { a: 'b' } });
  const info: api.Sandbox = sbx.info;
  const state: api.SandboxState = info.state;
  const r = await sbx.commands.run('true', { onStdout: (d: string) => void d });
  const bytes: Uint8Array = await sbx.files.read('/x', { format: 'bytes' });
  const text: string = await sbx.files.read('/x');
  const t: api.TemplateWithBuilds = await Template.build({ name: 'x', steps: [{ type: 'run', args: ['true'] }] });
  // @ts-expect-error: a step type the API does not have
  await Template.create({ name: 'y', steps: [{ type: 'exec' }] });
  // @ts-expect-error: sandboxID is a string
  const n: number = info.sandboxID;
  try {
    await Sandbox.get('x');
  } catch (e) {
    if (e instanceof RateLimitedError) return e.retryAfter;
    if (e instanceof NotFoundError) return e.status;
  }
  return r.exitCode + bytes.length + text.length + t.cpuCount + state.length + n;
}
