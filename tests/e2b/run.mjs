// Drives a real lelantosd with the unmodified E2B JS SDK (npm `e2b`, pinned in package.json and
// package-lock.json), as a user's program would: lelantosd on a free loopback port with a temp
// data dir, the SDK pointed at it with apiUrl/sandboxUrl and a lel_ key (validateApiKey off).
// Usage: node tests/e2b/run.mjs /path/to/lelantosd (the checks themselves are in checks.mjs)
// Exit 0: all passed; 1: a check failed; 77: skipped (the npm packages are not installed), with
// the reason printed. Where this host cannot run microVMs (no usable /dev/kvm), or with
// LEL_E2B_API_ONLY=1, the control-plane checks run alone on a `vmm.backend: none` daemon and the
// output says the data-plane checks were skipped.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const skip = (why) => { console.log(`SKIPPED: ${why}`); process.exit(77) }
const [maj, min] = process.versions.node.split('.').map(Number)
if (maj < 20 || (maj === 20 && min < 18))
  skip(`the e2b SDK needs Node >= 20.18.1; this is ${process.versions.node}`)
if (!existsSync(join(here, 'node_modules', 'e2b')))
  skip(`the e2b npm package is not installed in ${here} (run \`npm ci\` there; tools/setup.sh does)`)

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
const adminToken = randomBytes(16).toString('hex') /* to make a second team */
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
  proc = spawn(daemon, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LELANTOS_ADMIN_TOKEN: adminToken } })
  proc.stdout.on('data', (d) => { log += d })
  proc.stderr.on('data', (d) => { log += d })
  base = `http://127.0.0.1:${port}`
  key = ''
  for (let i = 0; i < 100 && !key; i++) {
    await sleep(100)
    try { key = readFileSync(join(data, 'initial-api-key'), 'utf8').trim() } catch { }
  }
  if (!key) { console.error('lelantosd did not start:\n' + log); process.exit(1) }
}

// Stops the daemon; its exit status (0 when it stopped cleanly: a sanitizer's report makes it non-zero).
async function stopAndWait() {
  const exited = new Promise((res) => proc.once('exit', (code, sig) => res(code ?? sig)))
  stopDaemon()
  return Promise.race([exited, sleep(60_000).then(() => 'no exit within 60 s')])
}

// Runs checks.mjs against the daemon; its exit status.
function runChecks(mode) {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(here, 'checks.mjs')], {
      stdio: 'inherit', env: { ...process.env, LEL_E2B_URL: base, LEL_E2B_KEY: key, LEL_E2B_MODE: mode, LEL_E2B_ADMIN: adminToken, LEL_E2B_PID: String(proc.pid), LEL_E2B_ASAN: asan ? '1' : '0' },
    })
    child.once('exit', (code) => res(code ?? 1))
  })
}

const asan = readFileSync(daemon).includes('__asan_init') /* memory bounds mean nothing under ASan */
const apiOnly = process.env.LEL_E2B_API_ONLY === '1'
let mode = apiOnly ? 'none' : 'vm'
await startDaemon(mode, apiOnly ? 'vmm:\n  backend: none\n' : '')
let status = await runChecks(mode)
if (status === 3) { /* no usable /dev/kvm: the control plane still runs, on records only */
  console.log('     (control plane only, on a vmm.backend: none daemon)')
  await stopAndWait()
  mode = 'none'
  await startDaemon(mode, 'vmm:\n  backend: none\n')
  status = await runChecks(mode)
}
const stopped = await stopAndWait()
console.log(stopped === 0 ? 'ok   lelantosd stops cleanly' : `FAIL lelantosd stops cleanly: ${stopped}`)
if (status !== 0 || stopped !== 0)
  console.log('--- lelantosd log ---\n' + log.split('\n').slice(-60).join('\n'))
process.exit(status === 0 && stopped === 0 ? 0 : 1)


