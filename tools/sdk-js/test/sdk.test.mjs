// @lelantos-ai/sdk against a real lelantosd (LELANTOSD: the daemon's path), with real microVMs
// where /dev/kvm is usable (the VM tests are skipped, and say so, where it is not). Uses the
// built package (npm run build): the ES module build, and the CommonJS one for require().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Sandbox, Snapshot, Template, ApiKeys, Team, LelantosError, NotFoundError, ConflictError, AuthenticationError,
  RateLimitedError, ConnectionError, BadRequestError, BuildError,
} from '../dist/esm/index.js';

const daemon = process.env.LELANTOSD;
let vms = false;
try { accessSync('/dev/kvm', constants.R_OK | constants.W_OK); vms = true; } catch { /* no VMs here */ }
const vmTest = (name, fn) => test(name, { skip: vms ? false : 'VM tests need /dev/kvm' }, fn);

let dir, proc, conn;
const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

before(async () => {
  assert.ok(daemon, 'LELANTOSD names the lelantosd to test');
  dir = mkdtempSync(join(tmpdir(), 'lel-sdk-'));
  const port = await freePort();
  writeFileSync(join(dir, 'config.yaml'), `http:\n  threads: 2\nworkers: 4\nvmm:\n  backend: ${vms ? 'auto' : 'none'}\n` +
    'rate_limits:\n  general_per_s: 100000\n  auth_per_s: 5\n');
  proc = spawn(daemon, ['--config', join(dir, 'config.yaml'), '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${url}/health`)).ok) break; } catch { /* not yet */ }
    if (i > 200 || proc.exitCode !== null) throw new Error(`lelantosd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  conn = { apiUrl: url, apiKey: readFileSync(join(dir, 'data/initial-api-key'), 'utf8').trim() };
});

after(async () => {
  if (proc && proc.exitCode === null) {
    const done = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await done;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('errors are typed classes', async () => {
  await assert.rejects(Sandbox.get('nosuchsandbox000000', conn), (e) => e instanceof NotFoundError && e.status === 404 &&
    e instanceof LelantosError && /not found/.test(e.message));
  await assert.rejects(Sandbox.list({ ...conn, apiKey: 'lel_' + '0'.repeat(40) }), AuthenticationError);
  await assert.rejects(Sandbox.list({ apiUrl: 'http://127.0.0.1:1', apiKey: conn.apiKey }), ConnectionError);
  await assert.rejects(Sandbox.create({ ...conn, timeout: -5 }), BadRequestError);
  // the auth endpoints allow 5 a second here: the sixth of a burst is refused, with Retry-After
  const got = await Promise.allSettled(Array.from({ length: 12 }, () => ApiKeys.list(conn)));
  const limited = got.filter((r) => r.status === 'rejected').map((r) => r.reason);
  assert.ok(limited.length > 0, 'a burst past the limit is refused');
  for (const e of limited) {
    assert.ok(e instanceof RateLimitedError, `${e}`);
    assert.equal(e.status, 429);
    assert.ok(e.retryAfter >= 1);
  }
  await new Promise((r) => setTimeout(r, 1100));
});

test('API keys: create, use, list, revoke', async () => {
  const k = await ApiKeys.create('sdk-test', conn);
  assert.match(k.key, /^lel_[0-9a-f]{40}$/);
  assert.ok(Array.isArray(await Sandbox.list({ ...conn, apiKey: k.key })));
  const listed = await ApiKeys.list(conn);
  const mine = listed.find((x) => x.id === k.id);
  assert.equal(mine.name, 'sdk-test');
  assert.equal(mine.key, undefined);
  await ApiKeys.revoke(k.id, conn);
  await assert.rejects(Sandbox.list({ ...conn, apiKey: k.key }), AuthenticationError);
  await assert.rejects(ApiKeys.revoke(k.id, conn), NotFoundError);
  await new Promise((r) => setTimeout(r, 1100)); // the auth endpoints' rate
});

test('team and members', async () => {
  const t = await Team.get(conn);
  assert.equal(t.name, 'default');
  assert.ok(t.teamID && t.limits && t.usage);
  const m = await Team.members.add('sdk@example.com', 'admin', conn);
  assert.equal(m.email, 'sdk@example.com');
  await assert.rejects(Team.members.add('sdk@example.com', 'member', conn), ConflictError);
  assert.ok((await Team.members.list(conn)).some((x) => x.memberID === m.memberID));
  await Team.members.remove(m.memberID, conn);
  assert.ok(!(await Team.members.list(conn)).some((x) => x.memberID === m.memberID));
  await new Promise((r) => setTimeout(r, 1100));
});

test('the CommonJS build loads with require() and is the same API', async () => {
  const cjs = createRequire(import.meta.url)('../dist/cjs/index.js');
  assert.equal(typeof cjs.Sandbox.create, 'function');
  await assert.rejects(cjs.Sandbox.get('nosuchsandbox000000', conn), (e) => e instanceof cjs.NotFoundError);
});

test('templates: list and get', async () => {
  const list = await Template.list(conn);
  assert.ok(list.some((t) => t.templateID === 'base'));
  await assert.rejects(Template.get('no-such-template', conn), NotFoundError);
});

test('Template.rebuild: the same template, a new build; a refused body changes nothing', async () => {
  const c = await Template.create({ name: 'sdk-re' }, conn);
  await assert.rejects(Template.create({ name: 'sdk-re' }, conn), ConflictError);
  await assert.rejects(Template.rebuild('sdk-re', { name: 'other' }, conn), BadRequestError);
  assert.equal((await Template.get('sdk-re', conn)).buildID, c.buildID);
  const r = await Template.rebuild('sdk-re', { steps: [{ type: 'run', args: ['true'] }] }, conn);
  assert.equal(r.templateID, c.templateID);
  assert.notEqual(r.buildID, c.buildID);
  assert.equal((await Template.get(c.templateID, conn)).buildID, r.buildID);
  await Template.delete(c.templateID, conn);
});

vmTest('a sandbox: create, list, get, commands, files, lifecycle', async () => {
  const sbx = await Sandbox.create('base', { ...conn, metadata: { suite: 'sdk' }, timeout: 300 });
  assert.equal(sbx.info.state, 'running');
  const listed = await Sandbox.list({ ...conn, metadata: { suite: 'sdk' } });
  assert.deepEqual(listed.map((s) => s.sandboxID), [sbx.sandboxId]);
  assert.equal((await Sandbox.get(sbx.sandboxId, conn)).info.metadata.suite, 'sdk');

  const r = await sbx.commands.run('echo out; echo err >&2; exit 3');
  assert.deepEqual([r.exitCode, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
  assert.equal((await sbx.commands.run('echo "$A" $(pwd)', { envs: { A: 'x y' }, cwd: '/tmp' })).stdout, 'x y /tmp\n');
  assert.equal((await sbx.commands.run('wc -c', { stdin: 'abcd' })).stdout.trim(), '4');

  // streaming: the first line comes while the command still runs
  const t0 = Date.now(), seen = [];
  const s = await sbx.commands.run('echo first; sleep 1; echo second >&2; echo third', {
    onStdout: (d) => seen.push(['out', d, Date.now() - t0]), onStderr: (d) => seen.push(['err', d, Date.now() - t0]),
  });
  assert.equal(s.exitCode, 0);
  assert.equal(s.stdout, 'first\nthird\n');
  assert.equal(s.stderr, 'second\n');
  assert.ok(s.pid > 0);
  assert.equal(seen[0][1], 'first\n');
  assert.ok(seen[0][2] < 800 && Date.now() - t0 >= 1000, `first output at ${seen[0][2]} ms`);

  // files
  await sbx.files.write('/tmp/sdk/hello.txt', 'hello, sandbox\n');
  assert.equal(await sbx.files.read('/tmp/sdk/hello.txt'), 'hello, sandbox\n');
  const bytes = randomBytes(1 << 20);
  await sbx.files.write('/tmp/sdk/blob', bytes);
  assert.deepEqual(Buffer.from(await sbx.files.read('/tmp/sdk/blob', { format: 'bytes' })), bytes);
  const stream = await sbx.files.read('/tmp/sdk/blob', { format: 'stream' });
  let n = 0;
  for await (const c of stream) n += c.length;
  assert.equal(n, bytes.length);
  const entries = await sbx.files.list('/tmp/sdk');
  assert.deepEqual(entries.map((e) => e.name).sort(), ['blob', 'hello.txt']);
  await assert.rejects(sbx.files.read('/tmp/sdk'), LelantosError);
  await sbx.files.remove('/tmp/sdk/hello.txt');
  await assert.rejects(sbx.files.read('/tmp/sdk/hello.txt'), NotFoundError);

  // timeouts
  const end0 = Date.parse((await sbx.getInfo()).endAt);
  await sbx.refresh(600);
  const end1 = Date.parse((await sbx.getInfo()).endAt);
  assert.ok(end1 > end0, 'refresh extends');
  await sbx.setTimeout(120);
  assert.ok(Date.parse((await sbx.getInfo()).endAt) < end1, 'setTimeout may shorten');

  const logs = await sbx.logs();
  assert.ok(logs.logEntries.some((e) => /created/.test(e.message)));
  assert.ok(Array.isArray(await sbx.metrics()));

  // pause, resume, connect
  await sbx.pause();
  assert.equal(await sbx.isRunning(), false);
  await assert.rejects(sbx.pause(), ConflictError);
  assert.equal((await sbx.resume({ timeout: 200 })).state, 'running');
  await sbx.pause();
  const again = await Sandbox.connect(sbx.sandboxId, { ...conn, timeout: 200 });
  assert.equal(again.info.state, 'running');
  assert.equal(await again.files.read('/tmp/sdk/blob', { format: 'bytes' }).then((b) => b.length), bytes.length);

  // snapshot, restore, fork
  await sbx.files.write('/tmp/state', 'before');
  const snap = await sbx.snapshot({ name: 'sdk-snap' });
  assert.ok(snap.snapshotID);
  await sbx.files.write('/tmp/state', 'after');
  await sbx.restore(snap.snapshotID);
  assert.equal(await sbx.files.read('/tmp/state'), 'before');
  assert.ok((await Snapshot.list({ ...conn, sandboxId: sbx.sandboxId })).some((x) => x.snapshotID === snap.snapshotID));
  const fork = await Sandbox.create({ ...conn, snapshotId: snap.snapshotID });
  assert.notEqual(fork.sandboxId, sbx.sandboxId);
  assert.equal(await fork.files.read('/tmp/state'), 'before');
  await fork.kill();
  await Snapshot.delete(snap.snapshotID, conn);
  await assert.rejects(Snapshot.delete(snap.snapshotID, conn), NotFoundError);

  await sbx.kill();
  await assert.rejects(sbx.commands.run('true'), (e) => e instanceof NotFoundError || e instanceof ConflictError);
});

vmTest('Template.build follows the build log; a failed build is a BuildError', async () => {
  const lines = [], statuses = [];
  const t = await Template.build({ name: 'sdk-tpl', steps: [{ type: 'run', args: ['echo step-out; sleep 1; echo step-done'] }] },
    { ...conn, onLog: (e) => lines.push(e.message), onStatus: (s) => statuses.push(s), pollIntervalMs: 200 });
  assert.equal(t.name, 'sdk-tpl');
  assert.equal(statuses.at(-1), 'ready');
  assert.ok(lines.includes('step-out') && lines.includes('step-done'), lines.join('|'));
  assert.equal(lines.filter((l) => l === 'step-out').length, 1); // each entry once
  const sbx = await Sandbox.create('sdk-tpl', conn);
  await assert.rejects(Template.delete(t.templateID, conn), ConflictError);
  await sbx.kill();
  const again = await Template.build({ name: 'sdk-tpl', steps: [{ type: 'run', args: ['echo second > /etc/again'] }] }, conn);
  assert.equal(again.templateID, t.templateID); // built again under its name
  const sbx2 = await Sandbox.create('sdk-tpl', conn);
  assert.equal((await sbx2.commands.run('cat /etc/again')).stdout, 'second\n');
  await sbx2.kill();
  await Template.delete(t.templateID, conn);

  await assert.rejects(Template.build({ name: 'sdk-bad', steps: [{ type: 'run', args: ['echo doomed; exit 4'] }] }, conn),
    (e) => e instanceof BuildError && e.logs.some((l) => /exited with 4/.test(l)));
  await Template.delete('sdk-bad', conn);
});
