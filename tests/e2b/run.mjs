// Drives a real lelantosd with the unmodified E2B JS SDK (npm `e2b`, pinned in package.json and
// package-lock.json), as a user's program would: lelantosd on a free loopback port with a temp
// data dir, the SDK pointed at it with apiUrl/sandboxUrl and a lel_ key (validateApiKey off).
// Usage: node tests/e2b/run.mjs /path/to/lelantosd
// Exit 0: all passed; 1: a check failed; 77: skipped (the npm packages are not installed), with
// the reason printed. Where this host cannot run microVMs (no usable /dev/kvm), or with
// LEL_E2B_API_ONLY=1, the control-plane checks run alone on a `vmm.backend: none` daemon and the
// output says the data-plane checks were skipped.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const skip = (why) => { console.log(`SKIPPED: ${why}`); process.exit(77) }
const [maj, min] = process.versions.node.split('.').map(Number)
if (maj < 20 || (maj === 20 && min < 18))
  skip(`the e2b SDK needs Node >= 20.18.1; this is ${process.versions.node}`)
if (!existsSync(join(here, 'node_modules', 'e2b')))
  skip(`the e2b npm package is not installed in ${here} (run \`npm ci\` there; tools/setup.sh does)`)
const { Sandbox, CommandExitError, FileNotFoundError, InvalidArgumentError, NotFoundError } = await import('e2b')

const daemon = process.argv[2] || process.env.LELANTOSD
if (!daemon || !existsSync(daemon)) {
  console.error('usage: node run.mjs /path/to/lelantosd')
  process.exit(2)
}

const freePort = () => new Promise((res, rej) => {
  const s = createServer()
  s.once('error', rej)
  s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) })
})
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const dir = mkdtempSync(join(tmpdir(), 'lel-e2b-'))
let proc = null, log = '', base = '', key = ''
const stopDaemon = () => { try { proc?.kill('SIGTERM') } catch { } }
process.on('exit', () => { stopDaemon(); rmSync(dir, { recursive: true, force: true }) })

// Starts lelantosd on a free port with a fresh data dir; `yaml`: a config file's text, or ''.
async function startDaemon(name, yaml) {
  const port = await freePort(), data = join(dir, name), args = ['--listen', `127.0.0.1:${port}`, '--data-dir', data]
  if (yaml) {
    writeFileSync(join(dir, `${name}.yaml`), yaml)
    args.unshift('--config', join(dir, `${name}.yaml`))
  }
  log = ''
  proc = spawn(daemon, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  proc.stdout.on('data', (d) => { log += d })
  proc.stderr.on('data', (d) => { log += d })
  base = `http://127.0.0.1:${port}`
  key = ''
  for (let i = 0; i < 100 && !key; i++) {
    await sleep(100)
    try { key = readFileSync(join(data, 'initial-api-key'), 'utf8').trim() } catch { }
  }
  if (!key) { console.error('lelantosd did not start:\n' + log); process.exit(1) }
  return { apiKey: key, apiUrl: base, sandboxUrl: base, validateApiKey: false }
}

let failed = 0, passed = 0
const check = (cond, what, detail) => {
  if (cond) { passed++; console.log(`ok   ${what}`) } else { failed++; console.log(`FAIL ${what}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`) }
}
const throws = async (fn, cls, what) => {
  try { await fn(); check(false, what, 'no error') } catch (e) { check(e instanceof cls, what, `${e?.constructor?.name}: ${e?.message}`); return e }
}

// The control plane: create, getInfo, list with filters, setTimeout, metrics.
async function controlPlane(opts, sbx, other) {
  check(/^[a-z0-9]{20}$/.test(sbx.sandboxId), 'Sandbox.create returns an id', sbx.sandboxId)

  // control plane
  const info = await sbx.getInfo()
  check(info.state === 'running' && info.metadata.suite === 'e2b' && info.templateId === 'base', 'getInfo', info)
  check(info.envdVersion === '0.5.7', 'envdVersion is the one src/envd serves', info.envdVersion)
  const listed = await Sandbox.list({ ...opts, query: { metadata: { suite: 'e2b' }, state: ['running'] } }).nextItems()
  check(listed.length === 1 && listed[0].sandboxId === sbx.sandboxId, 'list filters on metadata', listed.map((s) => s.sandboxId))
  const all = await Sandbox.list(opts).nextItems()
  check(all.some((s) => s.sandboxId === other.sandboxId) && all.some((s) => s.sandboxId === sbx.sandboxId), 'list without filters has both')
  const end0 = (await sbx.getInfo()).endAt.getTime()
  await sbx.setTimeout(300_000)
  const end1 = (await sbx.getInfo()).endAt.getTime()
  check(end1 > end0 + 100_000, 'setTimeout moves endAt', { end0, end1 })
  const metrics = await sbx.getMetrics()
  check(Array.isArray(metrics), 'getMetrics answers a list', metrics.length)
  await throws(() => Sandbox.create('base', { ...opts, allowInternetAccess: true }), Error, 'a field we cannot honour is refused')
  await throws(() => Sandbox.connect('aaaaaaaaaaaaaaaaaaaa', opts), NotFoundError, 'connect to an unknown sandbox: NotFoundError')
}

// The lifecycle through the SDK: pause, isRunning, connect, kill; `files`: check that files survive.
async function lifecycle(opts, sbx, other, files) {
  check(await sbx.pause(), 'pause')
  check(!(await sbx.pause()), 'pause of a paused sandbox: false')
  check(!(await sbx.isRunning()), 'isRunning is false while paused')
  check((await sbx.getInfo()).state === 'paused', 'getInfo says paused')
  const again = await Sandbox.connect(sbx.sandboxId, opts)
  check((await again.getInfo()).state === 'running', 'connect resumes it')
  if (files) {
    check(await again.isRunning(), 'isRunning after connect')
    check((await again.files.read('/tmp/m/a.txt')) === 'A', 'its files survived the pause')
  }
  check(await again.kill(), 'kill')
  check(!(await Sandbox.kill(sbx.sandboxId, opts)), 'kill of a killed sandbox: false')
  const left = await Sandbox.list(opts).nextItems()
  check(!left.some((s) => s.sandboxId === sbx.sandboxId), 'list no longer has it')
  await other.kill()
}

// The data plane: commands and files.
async function dataPlane(opts, sbx, other) {
  let t0

  // commands
  t0 = Date.now()
  const r = await sbx.commands.run('echo hi')
  check(r.exitCode === 0 && r.stdout === 'hi\n' && r.stderr === '', "commands.run('echo hi')", r)
  console.log(`     (round trip ${Date.now() - t0} ms)`)
  const env = await sbx.commands.run('echo "$GREETING $FOO $HOME"; pwd; echo oops >&2', { envs: { FOO: 'bar' } })
  check(env.stdout === 'hello bar /home/user\n/home/user\n' && env.stderr === 'oops\n', 'envs, default cwd and stderr', env)
  const cwd = await sbx.commands.run('pwd', { cwd: '/tmp' })
  check(cwd.stdout === '/tmp\n', 'cwd', cwd.stdout)
  const root = await sbx.commands.run('echo $USER $HOME', { user: 'root' })
  check(root.stdout === 'root /root\n', 'user root', root.stdout)
  const bad = await throws(() => sbx.commands.run('echo out; exit 3'), CommandExitError, 'a non-zero exit throws CommandExitError')
  check(bad?.exitCode === 3 && bad?.stdout === 'out\n', 'its exit code and output', { exitCode: bad?.exitCode, stdout: bad?.stdout })
  const chunks = []
  await sbx.commands.run('echo one; echo two', { onStdout: (d) => chunks.push(d) })
  check(chunks.join('') === 'one\ntwo\n', 'onStdout gets the output', chunks)
  await throws(() => sbx.commands.run('pwd', { cwd: '/no/such/dir' }), InvalidArgumentError, 'a missing cwd: InvalidArgumentError')

  const bg = await sbx.commands.run('sleep 60', { background: true })
  check(bg.pid > 0, 'background command has a pid', bg.pid)
  const procs = await sbx.commands.list()
  check(procs.some((p) => p.pid === bg.pid && p.cmd === '/bin/bash' && p.args.at(-1) === 'sleep 60'), 'commands.list shows it', procs)
  check(await sbx.commands.kill(bg.pid), 'commands.kill')
  const killed = await throws(() => bg.wait(), CommandExitError, 'a killed command ends with CommandExitError')
  check(killed?.exitCode === -1, 'killed: exit code -1', killed?.exitCode)
  check(!(await sbx.commands.kill(bg.pid)), 'killing it again says false')
  check((await sbx.commands.list()).length === 0, 'no process left')

  // files
  const w = await sbx.files.write('/home/user/hello.txt', 'hello world\n')
  check(w.path === '/home/user/hello.txt' && w.name === 'hello.txt', 'files.write (text)', w)
  check((await sbx.files.read('/home/user/hello.txt')) === 'hello world\n', 'files.read (text)')
  check((await sbx.commands.run('cat hello.txt')).stdout === 'hello world\n', 'a command sees the file')
  const bin = new Uint8Array(70_000).map((_, i) => (i * 7 + 3) & 255)
  await sbx.files.write('rel/bin.dat', bin.buffer)
  const back = await sbx.files.read('/home/user/rel/bin.dat', { format: 'bytes' })
  check(back.length === bin.length && back.every((b, i) => b === bin[i]), 'binary write/read (relative path, parents made)', back.length)
  const many = await sbx.files.write([{ path: '/tmp/m/a.txt', data: 'A' }, { path: '/tmp/m/b.txt', data: 'B' }])
  check(many.length === 2 && many[1].path === '/tmp/m/b.txt', 'files.write of several files', many)
  await sbx.files.write('/tmp/m/z.gz.txt', 'zipped\n', { gzip: true })
  check((await sbx.files.read('/tmp/m/z.gz.txt')) === 'zipped\n', 'octet-stream upload with gzip')
  const big = new Uint8Array(8 << 20).map((_, i) => (i * 13) & 255)
  t0 = Date.now()
  await sbx.files.write('/tmp/big.bin', big.buffer)
  const bigBack = await sbx.files.read('/tmp/big.bin', { format: 'bytes' })
  check(bigBack.length === big.length && bigBack.every((b, i) => b === big[i]), '8 MiB file write/read', bigBack.length)
  console.log(`     (8 MiB up and down in ${Date.now() - t0} ms)`)
  const entries = await sbx.files.list('/tmp/m')
  check(entries.map((e) => e.name).join(',') === 'a.txt,b.txt,z.gz.txt' && entries.every((e) => e.type === 'file'), 'files.list', entries.map((e) => e.name))
  const deep = await sbx.files.list('/home/user', { depth: 2 })
  check(deep.some((e) => e.path === '/home/user/rel/bin.dat' && e.size === bin.length), 'files.list with depth 2', deep.map((e) => e.path))
  check(await sbx.files.exists('/home/user/hello.txt'), 'files.exists: true')
  check(!(await sbx.files.exists('/home/user/nope')), 'files.exists: false')
  const gi = await sbx.files.getInfo('/home/user/hello.txt')
  check(gi.type === 'file' && gi.size === 12 && gi.mode === 0o644 && gi.permissions === '-rw-r--r--', 'files.getInfo', gi)
  const link = await sbx.files.getInfo('/bin/sh')
  check(link.symlinkTarget === '/bin/busybox' && link.type === 'file', 'getInfo of a symlink', link)
  await throws(() => sbx.files.getInfo('/nope'), FileNotFoundError, 'getInfo of nothing: FileNotFoundError')
  await throws(() => sbx.files.read('/nope'), FileNotFoundError, 'read of nothing: FileNotFoundError')
  check(await sbx.files.makeDir('/home/user/newdir/sub'), 'files.makeDir')
  check(!(await sbx.files.makeDir('/home/user/newdir/sub')), 'makeDir of an existing dir: false')
  const mv = await sbx.files.rename('/home/user/hello.txt', '/home/user/newdir/moved.txt')
  check(mv.path === '/home/user/newdir/moved.txt' && !(await sbx.files.exists('/home/user/hello.txt')), 'files.rename', mv)
  await sbx.files.remove('/home/user/newdir')
  check(!(await sbx.files.exists('/home/user/newdir')), 'files.remove (a tree)')
  await sbx.files.remove('/home/user/never-was') // a missing path is not an error on envd

  // the data plane is the sandbox's: its access token is required
  const res = await fetch(`${base}/files?path=%2Fetc%2Fpasswd`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983', 'X-Access-Token': 'wrong' } })
  check(res.status === 401, 'a wrong X-Access-Token is refused', res.status)
  const res2 = await fetch(`${base}/process.Process/List`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': other.sandboxId } })
  check(res2.status === 401, 'no token: refused', res2.status)

  check(await sbx.isRunning(), 'isRunning')
}

async function main() {
  const apiOnly = process.env.LEL_E2B_API_ONLY === '1' /* the control-plane checks alone, as without /dev/kvm */
  let opts = await startDaemon('vm', apiOnly ? 'vmm:\n  backend: none\n' : '')
  const create = (o, meta) => Sandbox.create('base', { ...o, timeoutMs: 120_000, metadata: meta, envs: { GREETING: 'hello' } })
  let sbx, vms = true
  try {
    if (apiOnly)
      throw new Error('cannot start sandboxes on this host: LEL_E2B_API_ONLY=1')
    sbx = await create(opts, { suite: 'e2b', n: '1' })
  } catch (e) {
    if (!/cannot start sandboxes on this host/.test(e?.message)) throw e
    /* no usable /dev/kvm: the control plane still runs, on records only (vmm.backend: none) */
    console.log(`     (no microVMs here: ${e.message}; control plane only, vmm.backend: none)`)
    stopDaemon()
    opts = await startDaemon('none', 'vmm:\n  backend: none\n')
    sbx = await create(opts, { suite: 'e2b', n: '1' })
    vms = false
  }
  const other = await create(opts, { suite: 'other' })
  await controlPlane(opts, sbx, other)
  if (vms)
    await dataPlane(opts, sbx, other)
  else
    check(!(await sbx.isRunning()), 'isRunning is false without a guest (API-only mode)')
  await lifecycle(opts, sbx, other, vms)
  if (!vms)
    console.log('NOTE: the data-plane checks (commands, files) were skipped: this host has no usable /dev/kvm')
}

try {
  await main()
} catch (e) {
  failed++
  console.log(`FAIL unexpected error: ${e?.stack || e}`)
  console.log('--- lelantosd log ---\n' + log.split('\n').slice(-30).join('\n'))
}
console.log(`${passed} passed, ${failed} failed`)
stopDaemon()
process.exit(failed ? 1 : 0)
