// The checks of tests/e2b, run by run.mjs in a process of their own against the lelantosd it
// started (LEL_E2B_URL, LEL_E2B_KEY), as a user's program would use the SDK. When that program
// ends, so do the SDK's connections, and the daemon then stops as after any client.
// LEL_E2B_MODE: "vm" (all checks; exit 3 when this host cannot start microVMs) or "none" (the
// control plane alone, on a vmm.backend: none daemon). Exit 0 when every check passed, 1 if not.
import { readFileSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tar from 'tar'
import { Sandbox, Template, CommandExitError, FileNotFoundError, InvalidArgumentError, NotFoundError, BuildError, FilesystemEventType } from 'e2b'

const base = process.env.LEL_E2B_URL
const opts = { apiKey: process.env.LEL_E2B_KEY, apiUrl: base, sandboxUrl: base, validateApiKey: false }
const vms = process.env.LEL_E2B_MODE !== 'none'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

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
  check(info.envdVersion === '0.6.4', 'envdVersion is the one src/envd serves', info.envdVersion)
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
  await throws(() => Sandbox.create('base', { ...opts, lifecycle: { onTimeout: { action: 'pause', keepMemory: false } } }), Error,
    'a field we cannot honour is refused (autoPauseMemory: false)')
  await throws(() => Sandbox.connect('aaaaaaaaaaaaaaaaaaaa', opts), NotFoundError, 'connect to an unknown sandbox: NotFoundError')
}

// Another team's key reaches nothing of this team's sandbox, through the SDK.
async function otherTeam(sbx) {
  const r = await fetch(`${base}/admin/teams`, {
    method: 'POST', body: JSON.stringify({ name: 'intruders' }),
    headers: { 'Content-Type': 'application/json', 'X-Admin-Token': process.env.LEL_E2B_ADMIN },
  })
  const team = await r.json()
  check(r.status === 201 && team.apiKey, 'a second team', r.status)
  const o2 = { ...opts, apiKey: team.apiKey }
  await throws(() => Sandbox.getInfo(sbx.sandboxId, o2), NotFoundError, "another team's getInfo: NotFoundError")
  await throws(() => Sandbox.connect(sbx.sandboxId, o2), NotFoundError, "another team's connect: NotFoundError")
  await throws(() => Sandbox.setTimeout(sbx.sandboxId, 1000, o2), NotFoundError, "another team's setTimeout: NotFoundError")
  check(!(await Sandbox.kill(sbx.sandboxId, o2)), "another team's kill: false")
  check((await Sandbox.list(o2).nextItems()).length === 0, "another team's list is empty")
  check((await sbx.getInfo()).state === 'running', 'the sandbox is untouched')
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

// A server-streaming Connect call made by hand: its frames as [ms since the request, flags, message].
async function rawStream(sbx, method, msg, headers = {}) {
  const json = Buffer.from(JSON.stringify(msg))
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), json])
  body.writeUInt32BE(json.length, 1)
  const t0 = Date.now()
  const res = await fetch(`${base}/${method}`, {
    method: 'POST', body, headers: {
      'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1', 'E2b-Sandbox-Id': sbx.sandboxId,
      'E2b-Sandbox-Port': '49983', 'X-Access-Token': sbx.envdAccessToken, ...headers,
    },
  })
  const frames = []
  let buf = Buffer.alloc(0)
  for await (const chunk of res.body) {
    buf = Buffer.concat([buf, chunk])
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const n = buf.readUInt32BE(1)
      frames.push([Date.now() - t0, buf[0], JSON.parse(buf.subarray(5, 5 + n).toString())])
      buf = buf.subarray(5 + n)
    }
  }
  return { status: res.status, type: res.headers.get('content-type'), frames, rest: buf.length }
}

// Waits until `pred(events)` holds (or `ms` pass); the events seen.
async function until(events, pred, ms = 5000) {
  for (let t = 0; t < ms && !pred(events); t += 50)
    await sleep(50)
  return events
}
const has = (events, type, name) => events.some((e) => e.type === type && e.name === name)

// files.watchDir: events as the SDK maps them, recursive watches see directories made later,
// the watch ends when stopped; includeEntry; the polled watchers of filesystem.Filesystem.
async function watching(sbx) {
  await sbx.files.makeDir('/home/user/w')
  const flat = [], deep = []
  const w1 = await sbx.files.watchDir('/home/user/w', (e) => flat.push(e))
  const w2 = await sbx.files.watchDir('/home/user/w', (e) => deep.push(e), { recursive: true, includeEntry: true })
  await sbx.files.write('/home/user/w/a.txt', 'one')
  await sbx.commands.run('cd /home/user/w && echo more >> a.txt && chmod 600 a.txt && mv a.txt b.txt && rm b.txt')
  await until(flat, (ev) => has(ev, 'remove', 'b.txt'))
  check(has(flat, 'create', 'a.txt') && has(flat, 'write', 'a.txt') && has(flat, 'chmod', 'a.txt') &&
    has(flat, 'rename', 'a.txt') && has(flat, 'create', 'b.txt') && has(flat, 'remove', 'b.txt'),
    'watchDir: create, write, chmod, rename, remove', flat.map((e) => `${e.type} ${e.name}`))
  check(Object.values(FilesystemEventType).includes(flat[0]?.type) && !flat.some((e) => /lelantos-upload/.test(e.name)),
    "an upload's temporary is not seen", flat.map((e) => e.name))
  // a tree made after the watch began, at once and deep, written right away
  await sbx.commands.run('mkdir -p /home/user/w/d1/d2/d3 && echo x > /home/user/w/d1/d2/d3/f.txt && touch /home/user/w/d1/top.txt')
  await until(deep, (ev) => has(ev, 'write', 'd1/d2/d3/f.txt') && has(ev, 'create', 'd1/top.txt'))
  check(has(deep, 'create', 'd1') && has(deep, 'create', 'd1/d2/d3') && has(deep, 'create', 'd1/d2/d3/f.txt') &&
    has(deep, 'write', 'd1/d2/d3/f.txt'), 'recursive watchDir sees directories made after it began', deep.map((e) => `${e.type} ${e.name}`))
  const withEntry = deep.find((e) => e.type === 'write' && e.name === 'd1/d2/d3/f.txt')
  check(withEntry?.entry?.path === '/home/user/w/d1/d2/d3/f.txt' && withEntry.entry.size === 2, 'includeEntry: the entry of a write', withEntry)
  check(!flat.some((e) => e.name.startsWith('d1/')), 'a watch that is not recursive sees only its own entries', flat.map((e) => e.name))
  await sbx.commands.run('mv /home/user/w/d1 /home/user/w/e1 && echo y > /home/user/w/e1/d2/g.txt')
  await until(deep, (ev) => has(ev, 'create', 'e1/d2/g.txt'))
  check(has(deep, 'rename', 'd1') && has(deep, 'create', 'e1') && has(deep, 'create', 'e1/d2/g.txt'), 'a directory moved within the tree is followed', deep.slice(-6))
  await w1.stop()
  const before = flat.length
  await sbx.files.write('/home/user/w/after.txt', 'x')
  await until(deep, (ev) => has(ev, 'create', 'after.txt'))
  check(flat.length === before && has(deep, 'create', 'after.txt'), 'a stopped watch sees nothing more; the other goes on', { before, after: flat.length })
  await w2.stop()
  await throws(() => sbx.files.watchDir('/home/user/nope', () => {}), FileNotFoundError, 'watchDir of nothing: FileNotFoundError')
  await throws(() => sbx.files.watchDir('/home/user/w/after.txt', () => {}), InvalidArgumentError, 'watchDir of a file: InvalidArgumentError')
  // the watch's end: a removed directory ends it, onExit runs once
  let exited = 0
  const seen = []
  await sbx.files.makeDir('/tmp/gone')
  await sbx.files.watchDir('/tmp/gone', (e) => seen.push(e), { onExit: () => exited++ })
  await sbx.commands.run('rmdir /tmp/gone')
  await until(seen, () => exited > 0)
  check(exited === 1 && has(seen, 'remove', '.'), 'the watched directory removed: a remove event, then the end', { exited, seen })
  // keepalives on a quiet watch, as {"keepalive":{}}
  const ka = rawStream(sbx, 'filesystem.Filesystem/WatchDir', { path: '/home/user/w' }, { 'Keepalive-Ping-Interval': '1', 'Connect-Timeout-Ms': '2500' })
  const r = await ka
  const kinds = r.frames.map(([, f, m]) => f === 2 ? (m.error?.code ?? 'eos') : Object.keys(m)[0])
  check(kinds[0] === 'start' && kinds.includes('keepalive') && kinds.at(-1) === 'deadline_exceeded', 'WatchDir: start, keepalives, the end at Connect-Timeout-Ms', kinds)
  // CreateWatcher / GetWatcherEvents / RemoveWatcher (the Python SDK's)
  const unary = async (m, body) => {
    const res = await fetch(`${base}/filesystem.Filesystem/${m}`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken } })
    return { status: res.status, body: await res.json() }
  }
  const cw = await unary('CreateWatcher', { path: '/home/user/w', recursive: true })
  check(cw.status === 200 && typeof cw.body.watcherId === 'string', 'CreateWatcher', cw)
  await sbx.commands.run('echo z > /home/user/w/e1/polled.txt')
  const got = await unary('GetWatcherEvents', { watcherId: cw.body.watcherId })
  const names = (got.body.events ?? []).map((e) => `${e.type} ${e.name}`)
  check(got.status === 200 && names.includes('EVENT_TYPE_CREATE e1/polled.txt') && names.includes('EVENT_TYPE_WRITE e1/polled.txt'), 'GetWatcherEvents', got)
  const again = await unary('GetWatcherEvents', { watcherId: cw.body.watcherId })
  check(again.status === 200 && (again.body.events ?? []).length === 0, 'events are taken once', again.body)
  check((await unary('RemoveWatcher', { watcherId: cw.body.watcherId })).status === 200, 'RemoveWatcher')
  check((await unary('GetWatcherEvents', { watcherId: cw.body.watcherId })).body.code === 'not_found', 'a removed watcher is not found')
}

// EntryInfo fields, odd names, users: what Stat and ListDir report, and who owns what.
async function entryFields(sbx) {
  await sbx.files.write('/home/user/e/plain.txt', 'abc')
  await sbx.commands.run("cd /home/user/e && printf x > \"$(printf 'new\\nline')\" && printf y > \"$(printf 'odd\\tname \\001')\" && ln -s plain.txt link && ln -s /nowhere broken && mkdir sub && chmod 750 sub")
  const list = await sbx.files.list('/home/user/e')
  const names = list.map((e) => e.name)
  check(names.includes('new\nline') && names.includes('odd\tname \u0001') && !names.includes('broken'), 'files.list: names with a newline or control bytes; a broken link dropped', names)
  const nl = list.find((e) => e.name === 'new\nline')
  check(nl?.path === '/home/user/e/new\nline' && nl.size === 1 && nl.type === 'file', 'such an entry is whole', nl)
  check((await sbx.files.read('/home/user/e/new\nline')) === 'x', 'and can be read back by its name')
  const p = await sbx.files.getInfo('/home/user/e/plain.txt')
  check(p.owner === 'user' && p.group === 'user' && p.mode === 0o644 && p.permissions === '-rw-r--r--' && p.size === 3 &&
    p.modifiedTime instanceof Date && Math.abs(p.modifiedTime.getTime() - Date.now()) < 120_000, 'getInfo: owner, group, mode, permissions, size, mtime', p)
  const l = await sbx.files.getInfo('/home/user/e/link')
  check(l.type === 'file' && l.symlinkTarget === '/home/user/e/plain.txt' && l.permissions.startsWith('L') && l.mode === 0o644, 'a symlink: its target resolved, the target\'s type and mode', l)
  const sub = list.find((e) => e.name === 'sub')
  check(sub?.type === 'dir' && sub.mode === 0o750 && sub.permissions === 'drwxr-x---' && sub.owner === 'user', 'a directory made by user', sub)
  await sbx.files.write('/tmp/rootfile', 'r', { user: 'root' })
  const rf = await sbx.files.getInfo('/tmp/rootfile', { user: 'root' })
  check(rf.owner === 'root' && rf.group === 'root', 'a file written as root is root\'s', rf)
  await sbx.files.makeDir('/home/user/e/made/deeper')
  check((await sbx.files.getInfo('/home/user/e/made/deeper')).owner === 'user', 'makeDir as user: user\'s', null)
  const rootHome = await sbx.files.list('~', { user: 'root' })
  check(Array.isArray(rootHome), "root's ~ is /root", rootHome.length)
  const touched = await sbx.commands.run('touch /tmp/byuser && stat -c %U /tmp/byuser')
  check(touched.stdout === 'user\n', 'a file a command of user makes is user\'s', touched.stdout)
  const home = await sbx.commands.run('stat -c "%u %g %U" /home/user && touch /home/user/mine && stat -c %U /home/user/mine && rm /home/user/mine')
  check(home.stdout === '1000 1000 user\nuser\n', "base's /home/user is user's (uid 1000): user writes its home", home.stdout)
  await metadata(sbx)
  await sbx.files.remove('/home/user/e')
}

// File metadata (X-Metadata-* on upload, EntryInfo.metadata): user.e2b.<key> attributes in the
// guest, keys lowercased, each upload replacing the file's, other attributes of the file kept.
async function metadata(sbx) {
  const m = '/home/user/e/meta.txt'
  const w = await sbx.files.write(m, 'm1', { metadata: { Owner: 'alice', Stage: 'draft v1' } })
  check(w.path === m && w.metadata?.owner === 'alice' && w.metadata?.stage === 'draft v1', 'write with metadata answers it, keys lowercased', w)
  const i = await sbx.files.getInfo(m)
  check(JSON.stringify(i.metadata) === JSON.stringify({ owner: 'alice', stage: 'draft v1' }) || (i.metadata?.owner === 'alice' && i.metadata?.stage === 'draft v1' && Object.keys(i.metadata).length === 2),
    'getInfo returns the metadata', i.metadata)
  const listed = (await sbx.files.list('/home/user/e')).find((e) => e.name === 'meta.txt')
  check(listed?.metadata?.owner === 'alice' && listed.metadata.stage === 'draft v1', 'files.list carries it too', listed?.metadata)
  const cat = await sbx.commands.run(`cat ${m}; ls -a /home/user/e | grep -c lelantos-upload`, { }).catch((e) => e)
  check(cat.stdout === 'm1' + '0\n', 'the file itself is what was written, no temporary left', cat.stdout)
  await sbx.files.write(m, 'm2', { metadata: { stage: 'final' } })
  const j = await sbx.files.getInfo(m)
  check(j.metadata?.stage === 'final' && !('owner' in (j.metadata ?? {})) && (await sbx.files.read(m)) === 'm2', 'an overwrite replaces the metadata (a key left out is gone)', j.metadata)
  await sbx.files.write(m, 'm3')
  check((await sbx.files.getInfo(m)).metadata === undefined, 'an upload without metadata clears it', (await sbx.files.getInfo(m)).metadata)
  await sbx.files.write([{ path: '/home/user/e/ma', data: 'a' }, { path: '/home/user/e/mb', data: 'b' }], { metadata: { batch: '7' } })
  const [ma, mb] = await Promise.all(['/home/user/e/ma', '/home/user/e/mb'].map((p) => sbx.files.getInfo(p)))
  check(ma.metadata?.batch === '7' && mb.metadata?.batch === '7', 'a multi-file write gives each file the metadata', [ma.metadata, mb.metadata])
  const big = 'x'.repeat(4100)
  await throws(() => sbx.files.write('/home/user/e/mbig', 'z', { metadata: { k: big } }), InvalidArgumentError, 'metadata over 4096 bytes is refused (400) as envd does')
  check(!(await sbx.files.exists('/home/user/e/mbig')), 'and nothing was written')
  await sbx.files.rename('/home/user/e/ma', '/home/user/e/mc')
  check((await sbx.files.getInfo('/home/user/e/mc')).metadata?.batch === '7', 'a rename keeps the metadata')
}

// The wire itself: the start event comes at once, keepalives while a process is quiet.
async function wire(sbx) {
  const r = await rawStream(sbx, 'process.Process/Start', { process: { cmd: '/bin/bash', args: ['-l', '-c', 'sleep 2.5; echo done'] } },
    { 'Keepalive-Ping-Interval': '1' })
  const kinds = r.frames.map(([, f, m]) => f === 2 ? 'eos' : Object.keys(m.event ?? {})[0])
  check(r.status === 200 && /^application\/connect\+json/.test(r.type) && r.rest === 0, 'a stream is 200 application/connect+json', r.type)
  check(kinds[0] === 'start' && r.frames[0][0] < 1500, 'the start event comes before the process ends', r.frames[0])
  check(kinds.filter((k) => k === 'keepalive').length >= 1, 'keepalive frames while the process is quiet', kinds)
  check(kinds.slice(-3).join() === 'data,end,eos' && JSON.stringify(r.frames.at(-1)[2]) === '{}', 'data, end, end of stream', kinds)
  const bad = await rawStream(sbx, 'process.Process/Start', { process: { cmd: '/bin/bash', args: ['-c', 'true'], cwd: '/nope' } })
  check(bad.frames.length === 1 && bad.frames[0][1] === 2 && bad.frames[0][2].error?.code === 'invalid_argument', 'a start that fails: only the end of stream, with the error', bad.frames)
  const unknown = await fetch(`${base}/process.Process/Nope`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken } })
  check((await unknown.json()).code === 'unimplemented', 'an unknown method: unimplemented')
  const gone = await fetch(`${base}/health`, { headers: { 'E2b-Sandbox-Id': 'aaaaaaaaaaaaaaaaaaaa' } })
  check(gone.status === 502, 'an unknown sandbox: 502 as the E2B proxy answers', gone.status)
}

// Output streams: callbacks fire while the command runs, and nothing is lost past 1 MiB.
async function streaming(sbx) {
  const seen = []
  t0 = Date.now()
  const r = await sbx.commands.run('echo first; sleep 2; echo second >&2; echo third', {
    onStdout: (d) => seen.push(['out', d, Date.now() - t0]), onStderr: (d) => seen.push(['err', d, Date.now() - t0]),
  })
  const end = Date.now() - t0
  check(seen.length >= 2 && seen[0][1] === 'first\n' && seen[0][2] < end - 1500, 'onStdout gets data before the command ends', { seen, end })
  check(r.stdout === 'first\nthird\n' && r.stderr === 'second\n', 'and the whole output at the end', r)
  let want = ''
  for (let i = 1; i <= 1500000; i++) want += `${i}\n`
  let chunks = 0
  t0 = Date.now()
  const big = await sbx.commands.run('seq 1 1500000', { onStdout: () => chunks++ })
  const ms = Date.now() - t0
  check(big.stdout.length === want.length && big.stdout === want, `10 MB of stdout arrive whole (${want.length} bytes)`, big.stdout.length)
  console.log(`     (${(want.length / 1e6).toFixed(1)} MB of seq in ${ms} ms, ${chunks} data events)`)
  t0 = Date.now()
  const zeros = await sbx.commands.run('head -c 20000000 /dev/zero')
  console.log(`     (20 MB of stdout in ${Date.now() - t0} ms)`)
  check(zeros.stdout.length === 20000000, 'a 20 MB stdout', zeros.stdout.length)
  await slowReader(sbx)
}

// stdin of a running command: sendStdin, closeStdin, a reader that answers as it reads, StreamInput.
async function stdin(sbx) {
  const cat = await sbx.commands.run('cat', { background: true, stdin: true })
  await cat.sendStdin('hello ')
  await cat.sendStdin(new TextEncoder().encode('world\n'))
  await cat.closeStdin()
  const r = await cat.wait()
  check(r.exitCode === 0 && r.stdout === 'hello world\n', 'sendStdin and closeStdin', r)
  const seen = []
  const rd = await sbx.commands.run('while read l; do echo "got $l"; done; echo bye', { background: true, stdin: true, onStdout: (d) => seen.push(d) })
  await rd.sendStdin('one\n')
  for (let i = 0; i < 50 && !seen.join('').includes('got one'); i++) await sleep(100)
  check(seen.join('') === 'got one\n', 'a command answers its stdin while it runs', seen)
  await rd.sendStdin('two\n')
  await rd.closeStdin()
  check((await rd.wait()).stdout === 'got one\ngot two\nbye\n', 'and ends at the end of its stdin')
  const wc = await sbx.commands.run('wc -c', { background: true, stdin: true })
  const piece = new Uint8Array(600_000).fill(120)
  for (let i = 0; i < 8; i++) await wc.sendStdin(piece) /* 4.8 MB: more than the guest's pipe holds at once */
  await wc.closeStdin()
  check((await wc.wait()).stdout.trim() === '4800000', '4.8 MB through sendStdin arrive whole')
  const nostdin = await sbx.commands.run('sleep 5', { background: true })
  await throws(() => nostdin.sendStdin('x'), Error, 'sendStdin to a command started without stdin fails')
  await nostdin.kill()
  // StreamInput (client streaming, which the SDK's transport cannot send): its messages are the body
  const sc = await sbx.commands.run('cat', { background: true, stdin: true })
  const frames = [{ start: { process: { pid: sc.pid } } }, { data: { input: { stdin: Buffer.from('streamed ').toString('base64') } } },
    { keepalive: {} }, { data: { input: { stdin: Buffer.from('input\n').toString('base64') } } }]
  const body = Buffer.concat(frames.map((m) => {
    const j = Buffer.from(JSON.stringify(m)), h = Buffer.from([0, 0, 0, 0, 0])
    h.writeUInt32BE(j.length, 1)
    return Buffer.concat([h, j])
  }))
  const res = await fetch(`${base}/process.Process/StreamInput`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken },
  })
  const buf = Buffer.from(await res.arrayBuffer())
  check(res.status === 200 && buf.length >= 10 && buf[0] === 0 && buf[buf.readUInt32BE(1) + 5] === 2, 'StreamInput answers a message and the end of the stream', buf.toString())
  await sc.closeStdin()
  check((await sc.wait()).stdout === 'streamed input\n', 'StreamInput writes the stdin')
}

// SendSignal: SIGTERM is a SIGTERM (a trap runs), SIGKILL kills; Connect to an ended process replays its end.
async function signals(sbx) {
  const seen = []
  const h = await sbx.commands.run("trap 'echo trapped; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
    { background: true, onStdout: (d) => seen.push(d) })
  for (let i = 0; i < 50 && !seen.join('').includes('ready'); i++) await sleep(100)
  const term = (pid) => sbx.commands.rpc.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: 15 })
  await term(h.pid)
  const e = await throws(() => h.wait(), CommandExitError, 'SIGTERM reaches a trap: the command exits as it says')
  check(e?.exitCode === 3 && e?.stdout === 'ready\ntrapped\n', 'the SIGTERM trap ran', { exitCode: e?.exitCode, stdout: e?.stdout })
  const s2 = await sbx.commands.run('sleep 30', { background: true })
  await term(s2.pid)
  const e2 = await throws(() => s2.wait(), CommandExitError, 'an untrapped SIGTERM ends the command')
  check(e2?.exitCode === -1 && e2?.error === 'signal: terminated', 'signal: terminated', { exitCode: e2?.exitCode, error: e2?.error })
  const seen3 = [] // the trap must be set before the signal comes: a shell not yet there dies of it
  const s3 = await sbx.commands.run("trap '' TERM; echo ready; sleep 30", { background: true, onStdout: (d) => seen3.push(d) })
  for (let i = 0; i < 50 && !seen3.join('').includes('ready'); i++) await sleep(100)
  await term(s3.pid)
  await sleep(300)
  check((await sbx.commands.list()).some((p) => p.pid === s3.pid), 'a command that ignores SIGTERM runs on')
  check(await s3.kill(), 'SIGKILL ends it')
  const e3 = await throws(() => s3.wait(), CommandExitError, 'killed')
  check(e3?.error === 'signal: killed', 'signal: killed', e3?.error)
  const done = await sbx.commands.run('echo over; exit 5', { background: true })
  await done.wait().catch(() => {})
  const again = await sbx.commands.connect(done.pid)
  const e4 = await throws(() => again.wait(), CommandExitError, 'connect to an ended command replays its end')
  check(e4?.exitCode === 5, 'with its exit code', e4?.exitCode)
  await throws(() => sbx.commands.connect(999999), Error, 'connect to a command that never was fails')
}

// sandbox.pty: an interactive login shell on a pseudo-terminal (busybox's sh -i -l reached as
// /bin/bash in base) answering what is typed, its terminal's size seen by stty and changed by
// resize (SIGWINCH to the foreground job), ^C and ^Z reaching the foreground job, kill.
async function ptys(sbx) {
  const out = []
  const text = () => Buffer.concat(out).toString('latin1')
  const typed = (s) => sbx.pty.sendInput(t.pid, new TextEncoder().encode(s))
  const seen = async (re, ms = 5000) => {
    for (let i = 0; i < ms / 50 && !re.test(text()); i++) await sleep(50)
    return re.test(text())
  }
  const t = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => out.push(Buffer.from(d)) })
  check(t.pid > 0, 'pty.create answers with a pid', t.pid)
  await typed('echo hi\n')
  check(await seen(/echo hi\r\nhi\r\n/), "sendInput('echo hi\\n') is echoed and answered as on a terminal", text())
  await typed('tty; stty size; echo "term=$TERM"\n')
  check(await seen(/\/dev\/pts\/\d+\r\n24 80\r\nterm=xterm-256color\r\n/), 'tty and stty size: /dev/pts/N of 24 x 80, TERM', text())
  await sbx.pty.resize(t.pid, { cols: 100, rows: 30 })
  await typed('stty size\n')
  check(await seen(/\r\n30 100\r\n/), 'resize: stty size says 30 100', text())
  await typed(`sh -c 'trap "echo winched; exit 0" WINCH; echo waiting; while :; do sleep 0.1; done'\n`)
  check(await seen(/\r\nwaiting\r\n/), 'a foreground job runs', text())
  await sbx.pty.resize(t.pid, { cols: 120, rows: 40 })
  check(await seen(/\r\nwinched\r\n/), 'resize sends SIGWINCH to the foreground job', text())
  await typed('sleep 30\n')
  await sleep(300)
  await typed('\x03')
  await typed('echo "after ^C: $?"\n')
  check(await seen(/after \^C: 130\r\n/), '^C interrupts the foreground job (SIGINT)', text())
  await typed('sleep 30\n')
  await sleep(300)
  await typed('\x1a')
  check(await seen(/Stopped/i), '^Z stops the foreground job', text())
  await typed('kill -9 %1; echo "jobs done"\n')
  check(await seen(/\r\njobs done\r\n/), 'the shell goes on after the stopped job', text())
  check((await sbx.commands.list()).some((p) => p.pid === t.pid), 'commands.list shows the pty process')
  await throws(() => sbx.commands.sendStdin(t.pid, 'x'), Error, 'stdin bytes to a pty process are refused (they go as pty input)')
  check(await sbx.pty.kill(t.pid), 'pty.kill')
  const end = await t.wait().catch((e) => e)
  check(end?.exitCode === -1, 'the killed pty process ends with exit code -1', end?.exitCode)
  check(!(await sbx.pty.kill(t.pid)), 'pty.kill of an ended one: false')
  const out2 = []
  const t2 = await sbx.pty.create({ cols: 40, rows: 10, onData: (d) => out2.push(Buffer.from(d)) })
  await sbx.pty.sendInput(t2.pid, new TextEncoder().encode('exit 7\n'))
  const end2 = await t2.wait().catch((e) => e)
  check(end2?.exitCode === 7, 'exit in the pty shell ends it with its status', end2?.exitCode)
}

// The daemon's resident memory in KiB (its /proc status), or 0 when unknown.
function daemonRss() {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${process.env.LEL_E2B_PID}/status`, 'utf8'))[1])
  } catch { return 0 }
}

// A client that stops reading: the process waits for it (flow control), the daemon does not
// buffer its output, and nothing is lost when the client reads on.
async function slowReader(sbx) {
  const mib = 200, json = Buffer.from(JSON.stringify({ process: { cmd: '/bin/sh', args: ['-c', `dd if=/dev/zero bs=1M count=${mib} 2>/dev/null; echo end >&2`] } }))
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), json])
  body.writeUInt32BE(json.length, 1)
  const res = await fetch(`${base}/process.Process/Start`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken },
  })
  const reader = res.body.getReader()
  const rss0 = daemonRss()
  await reader.read()
  await sleep(3000) /* the client reads nothing meanwhile */
  const rss1 = daemonRss()
  const listed = await sbx.commands.list()
  let buf = Buffer.alloc(0), out = 0, err = '', end = null
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buf = Buffer.concat([buf, value])
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const m = JSON.parse(buf.subarray(5, 5 + buf.readUInt32BE(1)).toString())
      buf = buf.subarray(5 + buf.readUInt32BE(1))
      if (m.event?.data?.stdout) out += Buffer.from(m.event.data.stdout, 'base64').length
      if (m.event?.data?.stderr) err += Buffer.from(m.event.data.stderr, 'base64').toString()
      if (m.event?.end) end = m.event.end
    }
  }
  check(listed.length === 1, 'a process whose client stopped reading waits (it is still running)', listed.length)
  if (rss0 && process.env.LEL_E2B_ASAN !== '1')
    check(rss1 - rss0 < 48 * 1024, `the daemon holds little of its output meanwhile (${((rss1 - rss0) / 1024).toFixed(1)} MiB more)`, { rss0, rss1 })
  check(out === mib << 20 && err === 'end\n' && end?.exited, `then all ${mib} MiB arrive`, { out, err, end })
}
let t0

// Snapshots: create (with a name), list (filtered, paged), start from by id and by name, delete.
async function snapshots(opts, sbx) {
  await sbx.files.write('/tmp/snap.txt', 'before')
  const s1 = await sbx.createSnapshot({ name: 'snap-one' })
  check(/^[a-z0-9]{20}$/.test(s1.snapshotId) && s1.names.join() === 'snap-one', 'createSnapshot: an id and its names', s1)
  await sbx.files.write('/tmp/snap.txt', 'after')
  const s2 = await sbx.createSnapshot()
  check(s2.snapshotId !== s1.snapshotId && s2.names.length === 0, 'a second snapshot, unnamed', s2)
  const mine = await Sandbox.listSnapshots({ ...opts, sandboxId: sbx.sandboxId }).nextItems()
  check(mine.length === 2 && mine.some((x) => x.snapshotId === s1.snapshotId && x.names[0] === 'snap-one'), 'listSnapshots filters on the sandbox', mine)
  const pager = Sandbox.listSnapshots({ ...opts, sandboxId: sbx.sandboxId, limit: 1 })
  const p1 = await pager.nextItems()
  const more = pager.hasNext
  const p2 = await pager.nextItems()
  check(p1.length === 1 && more && p2.length === 1 && p1[0].snapshotId !== p2[0].snapshotId && !pager.hasNext, 'listSnapshots pages (limit 1: two pages)', { p1, p2 })
  const named = await Sandbox.listSnapshots({ ...opts, name: 'snap-one' }).nextItems()
  check(named.length === 1 && named[0].snapshotId === s1.snapshotId, 'listSnapshots filters on the name', named)
  const fromId = await Sandbox.create(s1.snapshotId, { ...opts, timeoutMs: 60_000 })
  check((await fromId.files.read('/tmp/snap.txt')) === 'before', 'a sandbox from the snapshot id (as templateID) has its files')
  const fromName = await Sandbox.create('snap-one', { ...opts, timeoutMs: 60_000 })
  check((await fromName.files.read('/tmp/snap.txt')) === 'before', 'and one from its name')
  const fromTwo = await Sandbox.create(s2.snapshotId, { ...opts, timeoutMs: 60_000 })
  check((await fromTwo.files.read('/tmp/snap.txt')) === 'after', 'the later snapshot has the later file')
  await Promise.all([fromId.kill(), fromName.kill(), fromTwo.kill()])
  // E2B maps a name to one template: a second snapshot with the name is what it starts now
  await sbx.files.write('/tmp/snap.txt', 'third')
  const s3 = await sbx.createSnapshot({ name: 'snap-one' })
  check(s3.snapshotId !== s1.snapshotId && s3.names.join() === 'snap-one', 'a second snapshot with the name: its own id, the name', s3)
  const renamed = await Sandbox.listSnapshots({ ...opts, name: 'snap-one' }).nextItems()
  check(renamed.length === 1 && renamed[0].snapshotId === s3.snapshotId, 'the name lists only the new one', renamed)
  const old = (await Sandbox.listSnapshots({ ...opts, sandboxId: sbx.sandboxId }).nextItems()).find((x) => x.snapshotId === s1.snapshotId)
  check(old && old.names.length === 0, 'the first keeps its id, without the name', old)
  const byNewName = await Sandbox.create('snap-one', { ...opts, timeoutMs: 60_000 })
  check((await byNewName.files.read('/tmp/snap.txt')) === 'third', 'the name starts the new one')
  const byOldId = await Sandbox.create(s1.snapshotId, { ...opts, timeoutMs: 60_000 })
  check((await byOldId.files.read('/tmp/snap.txt')) === 'before', 'the first still starts by its id')
  await Promise.all([byNewName.kill(), byOldId.kill()])
  check(await Sandbox.deleteSnapshot(s3.snapshotId, opts), 'deleteSnapshot (the one with the name now)')
  check(await Sandbox.deleteSnapshot(s1.snapshotId, opts), 'deleteSnapshot')
  check(!(await Sandbox.deleteSnapshot(s1.snapshotId, opts)), 'deleteSnapshot of a deleted one: false')
  check(await Sandbox.deleteSnapshot(s2.snapshotId, opts), 'deleteSnapshot (the second)')
  check((await Sandbox.listSnapshots({ ...opts, sandboxId: sbx.sandboxId }).nextItems()).length === 0, 'the list is empty again')
  await throws(() => Sandbox.create(s1.snapshotId, opts), Error, 'a deleted snapshot starts nothing')
}

// Fork with count 2: both see the parent's files and state, then diverge.
async function forks(opts, sbx) {
  await sbx.files.write('/tmp/fork.txt', 'parent')
  const before = Date.now()
  const fs = await sbx.fork({ count: 2, timeoutMs: 60_000 })
  console.log(`     (fork of 2 in ${Date.now() - before} ms)`)
  check(fs.length === 2 && fs.every((f) => f instanceof Sandbox) && fs[0].sandboxId !== fs[1].sandboxId &&
    !fs.some((f) => f.sandboxId === sbx.sandboxId), 'fork({count: 2}): two new sandboxes', fs.map((f) => f?.sandboxId ?? String(f)))
  if (!fs.every((f) => f instanceof Sandbox))
    return
  const reads = await Promise.all(fs.map((f) => f.files.read('/tmp/fork.txt')))
  check(reads.join() === 'parent,parent', "each fork has the parent's files", reads)
  check((await fs[0].commands.run('echo $GREETING')).stdout === 'hello\n', "and its envVars")
  await fs[0].files.write('/tmp/fork.txt', 'one')
  await fs[1].commands.run('echo two > /tmp/fork.txt')
  const after = await Promise.all([sbx, ...fs].map((x) => x.files.read('/tmp/fork.txt')))
  check(after.join() === 'parent,one,two\n', 'then they diverge (the parent unchanged)', after)
  const infos = await Promise.all(fs.map((f) => f.getInfo()))
  check(infos.every((i) => i.state === 'running' && i.metadata.suite === 'e2b'), 'forks are listed running, with the metadata', infos.map((i) => i.state))
  await Promise.all(fs.map((f) => f.kill()))
  await throws(() => Sandbox.fork('aaaaaaaaaaaaaaaaaaaa', { ...opts, count: 1 }), NotFoundError, 'fork of an unknown sandbox: NotFoundError')
}

// updateNetwork replaces the egress policy; what cannot be done is refused.
async function network(opts, sbx) {
  await sbx.updateNetwork({ allowOut: ['1.2.3.4'], denyOut: ['10.0.0.0/8'], allowInternetAccess: false })
  const r = await fetch(`${base}/sandboxes/${sbx.sandboxId}/network`, { headers: { 'X-API-Key': opts.apiKey } })
  const n = await r.json()
  check(n.allowOut.join() === '1.2.3.4' && n.denyOut.join() === '10.0.0.0/8' && n.allowInternetAccess === false, 'updateNetwork is stored', n)
  await sbx.updateNetwork({})
  const n2 = await (await fetch(`${base}/sandboxes/${sbx.sandboxId}/network`, { headers: { 'X-API-Key': opts.apiKey } })).json()
  check(n2.allowOut.length === 0 && n2.denyOut.length === 0 && n2.allowInternetAccess === true, 'an update without fields clears them', n2)
  await throws(() => sbx.updateNetwork({ egressProxy: { address: 'proxy:1080' } }), Error, 'an egress proxy is refused')
  await throws(() => sbx.updateNetwork({ denyOut: ['not a cidr!'] }), Error, 'a bad entry is refused')
}

// A template built with the SDK's builder from a local image, then a sandbox from it.
async function templates(opts) {
  const dir = mkdtempSync(join(tmpdir(), 'lel-e2b-tpl-'))
  try {
    const root = join(dir, 'rootfs'), ctx = join(dir, 'ctx')
    mkdirSync(join(root, 'etc'), { recursive: true })
    writeFileSync(join(root, 'etc', 'motd'), 'from the image\n')
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n')
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\napp:x:2345:\n')
    mkdirSync(join(ctx, 'app', 'lib'), { recursive: true })
    writeFileSync(join(ctx, 'app', 'main.txt'), 'main\n')
    writeFileSync(join(ctx, 'app', 'lib', 'util.txt'), 'util\n')
    writeFileSync(join(ctx, 'a.cfg'), 'A\n')
    writeFileSync(join(ctx, 'b.cfg'), 'B\n')
    await tar.create({ cwd: root, file: join(dir, 'image.tar'), portable: true }, ['.'])
    const put = await fetch(`${base}/images/sdkmini:1`, { method: 'PUT', body: readFileSync(join(dir, 'image.tar')), headers: { 'X-API-Key': opts.apiKey } })
    check(put.status === 201, 'a local image (PUT /images/sdkmini:1)', put.status)
    const tpl = Template({ fileContextPath: ctx })
      .fromImage('sdkmini:1')
      .setEnvs({ BUILT_BY: 'sdk' })
      .setWorkdir('/srv')
      .copy('app', '/srv/app')
      .copy('*.cfg', 'cfg/', { mode: 0o600 })
      .runCmd('echo early; sleep 2; echo "$BUILT_BY $(pwd)" > /srv/built.txt; echo late')
      .setWorkdir('app')
    const logs = []
    const t0 = Date.now()
    const info = await Template.build(tpl, 'sdk-tpl:v1', { ...opts, memoryMB: 256, onBuildLogs: (l) => logs.push([Date.now() - t0, l.message]) })
    console.log(`     (template built in ${Date.now() - t0} ms)`)
    check(info.templateId && info.buildId && info.name === 'sdk-tpl:v1', 'Template.build returns its ids', info)
    const early = logs.find(([, m]) => /^early/.test(m)), late = logs.find(([, m]) => /^late/.test(m))
    check(early && late, 'the build log has the step\'s output', logs.map(([, m]) => m))
    check(early && late && late[0] - early[0] >= 1000, "and it came while the step ran", { early, late })
    check(await Template.exists('sdk-tpl', opts) && !(await Template.exists('no-such-tpl', opts)), 'Template.exists')
    const sbx = await Sandbox.create('sdk-tpl:v1', { ...opts, timeoutMs: 60_000 })
    const r = await sbx.commands.run('cd /srv; cat /etc/motd built.txt app/main.txt app/lib/util.txt cfg/a.cfg cfg/b.cfg; stat -c %a cfg/a.cfg; echo $BUILT_BY')
    check(r.stdout === 'from the image\nsdk /srv\nmain\nutil\nA\nB\n600\nsdk\n', 'a sandbox from it has the image, the steps, the copies (a glob, a mode) and the env', r.stdout)
    const rest = await fetch(`${base}/sandboxes/${sbx.sandboxId}/commands`, { method: 'POST', body: JSON.stringify({ cmd: 'pwd; cat main.txt' }), headers: { 'X-API-Key': opts.apiKey, 'Content-Type': 'application/json' } })
    check((await rest.json()).stdout === '/srv/app\nmain\n', "our commands start in the template's workdir (relative WORKDIR resolved)")
    const sdkPwd = await sbx.commands.run('pwd; cat main.txt')
    check(sdkPwd.stdout === '/srv/app\nmain\n', "the SDK's commands (no cwd) start in the template's WORKDIR, as E2B's envd does", sdkPwd.stdout)
    const rel = await sbx.commands.run('pwd', { cwd: '/tmp' })
    check(rel.stdout === '/tmp\n', 'and a cwd given still wins', rel.stdout)
    const out = []
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => out.push(Buffer.from(d)) })
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('pwd\n'))
    for (let i = 0; i < 100 && !/\r\n\/srv\/app\r\n/.test(Buffer.concat(out).toString()); i++) await sleep(50)
    check(/\r\n\/srv\/app\r\n/.test(Buffer.concat(out).toString()), "a PTY's shell starts there too", Buffer.concat(out).toString())
    await sbx.pty.kill(term.pid)
    await sbx.kill()
    const tags = await Template.getTags('sdk-tpl', opts)
    check(tags.some((t) => t.tag === 'v1'), 'its tag v1', tags)
    await Template.assignTags('sdk-tpl:v1', 'prod', opts)
    const byTag = await Sandbox.create('sdk-tpl:prod', { ...opts, timeoutMs: 60_000 })
    check((await byTag.commands.run('cat /srv/built.txt')).stdout === 'sdk /srv\n', 'assignTags: a new tag starts it')
    await byTag.kill()
    await Template.removeTags('sdk-tpl', 'prod', opts)
    await throws(() => Sandbox.create('sdk-tpl:prod', opts), Error, 'a removed tag starts nothing')
    const bad = Template({ fileContextPath: ctx }).fromImage('sdkmini:1').runCmd('echo going; exit 7')
    await throws(() => Template.build(bad, 'sdk-bad', opts), BuildError, 'a failing step: BuildError')
    await throws(() => Template.build(Template().fromImage('nosuch:1'), 'sdk-none', opts), BuildError, 'an image that is not there: BuildError')
    const rebuilt = Template({ fileContextPath: ctx }).fromTemplate('sdk-tpl').runCmd('echo again > /srv/again.txt')
    await Template.build(rebuilt, 'sdk-tpl2', opts)
    const s2 = await Sandbox.create('sdk-tpl2', { ...opts, timeoutMs: 60_000 })
    check((await s2.commands.run('cat /srv/built.txt /srv/again.txt')).stdout === 'sdk /srv\nagain\n', 'fromTemplate: a template on top of the first')
    await s2.kill()
    // setUser: the steps after it run as that user (uid and gid from the image's /etc/passwd),
    // copies are its files; a step's own user wins
    const owned = Template({ fileContextPath: ctx })
      .fromImage('sdkmini:1')
      .runCmd('mkdir -p /home/app && chown 1234:2345 /home/app')
      .setUser('app')
      .runCmd('cd /home/app && { id -u; id -g; echo "$HOME"; } > who.txt')
      .copy('a.cfg', '/home/app/')
      .runCmd('id -u > /home/app/root.txt', { user: 'root' })
      .copy('b.cfg', '/home/app/', { user: 'root' })
    await Template.build(owned, 'sdk-owned', { ...opts, memoryMB: 256 })
    const so = await Sandbox.create('sdk-owned', { ...opts, timeoutMs: 60_000 })
    const who = await so.commands.run('cd /home/app && cat who.txt root.txt && stat -c "%u:%g %U" who.txt a.cfg root.txt b.cfg', { user: 'root' })
    check(who.stdout === '1234\n2345\n/home/app\n0\n1234:2345 app\n1234:2345 app\n0:0 root\n0:0 root\n',
      "a step after setUser runs as that user (its uid, gid, HOME) and copies are its files; a step's own user wins", who.stdout)
    await so.kill()
    const nouser = Template({ fileContextPath: ctx }).fromImage('sdkmini:1').setUser('nobody-here').runCmd('true')
    await throws(() => Template.build(nouser, 'sdk-nouser', opts), BuildError, 'a user the image does not have: BuildError')
    await Template.build(Template().fromImage('sdkmini:1').runCmd('echo v2 > /v.txt'), 'sdk-tpl2', opts)
    const s3 = await Sandbox.create('sdk-tpl2', { ...opts, timeoutMs: 60_000 })
    check((await s3.commands.run('cat /v.txt')).stdout === 'v2\n', 'building a name again rebuilds it')
    await s3.kill()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// The data plane: commands and files.
async function dataPlane(opts, sbx, other) {

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
  const ids = await sbx.commands.run('id -u; id -g; whoami')
  check(ids.stdout === '1000\n1000\nuser\n', 'commands run as user (uid 1000) by default', ids.stdout)
  const rootIds = await sbx.commands.run('id -u; whoami', { user: 'root' })
  check(rootIds.stdout === '0\nroot\n', 'and as root when asked', rootIds.stdout)
  const bad = await throws(() => sbx.commands.run('echo out; exit 3'), CommandExitError, 'a non-zero exit throws CommandExitError')
  check(bad?.exitCode === 3 && bad?.stdout === 'out\n', 'its exit code and output', { exitCode: bad?.exitCode, stdout: bad?.stdout })
  const chunks = []
  await sbx.commands.run('echo one; echo two', { onStdout: (d) => chunks.push(d) })
  check(chunks.join('') === 'one\ntwo\n', 'onStdout gets the output', chunks)
  await throws(() => sbx.commands.run('pwd', { cwd: '/no/such/dir' }), InvalidArgumentError, 'a missing cwd: InvalidArgumentError')
  await streaming(sbx)
  await stdin(sbx)
  await signals(sbx)
  await ptys(sbx)

  const bg = await sbx.commands.run('sleep 60', { background: true })
  check(bg.pid > 0, 'background command has a pid', bg.pid)
  const procs = await sbx.commands.list()
  check(procs.some((p) => p.pid === bg.pid && p.cmd === '/bin/bash' && p.args.at(-1) === 'sleep 60'), 'commands.list shows it', procs)
  check(await sbx.commands.kill(bg.pid), 'commands.kill')
  const killed = await throws(() => bg.wait(), CommandExitError, 'a killed command ends with CommandExitError')
  check(killed?.exitCode === -1, 'killed: exit code -1', killed?.exitCode)
  check(!(await sbx.commands.kill(bg.pid)), 'killing it again says false')
  const bg2 = await sbx.commands.run('sleep 1; echo late', { background: true })
  const seen = []
  const attached = await sbx.commands.connect(bg2.pid, { onStdout: (d) => seen.push(d) })
  const late = await attached.wait()
  check(late.exitCode === 0 && seen.join('') === 'late\n', 'commands.connect to a running process', { late, seen })
  await bg2.wait()
  await throws(() => sbx.commands.run('sleep 10', { timeoutMs: 1000 }), Error, 'a command past its timeoutMs ends')
  await wire(sbx)
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
  check(link.symlinkTarget === '/usr/bin/busybox' && link.type === 'file', 'getInfo of a symlink', link)
  await throws(() => sbx.files.getInfo('/nope'), FileNotFoundError, 'getInfo of nothing: FileNotFoundError')
  await throws(() => sbx.files.read('/nope'), FileNotFoundError, 'read of nothing: FileNotFoundError')
  check(await sbx.files.makeDir('/home/user/newdir/sub'), 'files.makeDir')
  check(!(await sbx.files.makeDir('/home/user/newdir/sub')), 'makeDir of an existing dir: false')
  const mv = await sbx.files.rename('/home/user/hello.txt', '/home/user/newdir/moved.txt')
  check(mv.path === '/home/user/newdir/moved.txt' && !(await sbx.files.exists('/home/user/hello.txt')), 'files.rename', mv)
  await sbx.files.remove('/home/user/newdir')
  check(!(await sbx.files.exists('/home/user/newdir')), 'files.remove (a tree)')
  await sbx.files.remove('/home/user/never-was') // a missing path is not an error on envd
  await entryFields(sbx)
  await watching(sbx)

  // the data plane is the sandbox's: its access token is required
  const res = await fetch(`${base}/files?path=%2Fetc%2Fpasswd`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983', 'X-Access-Token': 'wrong' } })
  check(res.status === 401, 'a wrong X-Access-Token is refused', res.status)
  const res2 = await fetch(`${base}/process.Process/List`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': other.sandboxId } })
  check(res2.status === 401, 'no token: refused', res2.status)

  check(await sbx.isRunning(), 'isRunning')
}

async function main() {
  const create = (meta) => Sandbox.create('base', { ...opts, timeoutMs: 120_000, metadata: meta, envs: { GREETING: 'hello' } })
  let sbx
  try {
    sbx = await create({ suite: 'e2b', n: '1' })
  } catch (e) {
    if (vms && /cannot start sandboxes on this host/.test(e?.message)) {
      console.log(`     (no microVMs here: ${e.message})`)
      process.exit(3)
    }
    throw e
  }
  const other = await create({ suite: 'other' })
  await controlPlane(opts, sbx, other)
  await otherTeam(sbx)
  if (vms) {
    await dataPlane(opts, sbx, other)
    await snapshots(opts, sbx)
    await forks(opts, sbx)
    await network(opts, sbx)
    await templates(opts)
  } else
    check(!(await sbx.isRunning()), 'isRunning is false without a guest (API-only mode)')
  await lifecycle(opts, sbx, other, vms)
  if (!vms)
    console.log('NOTE: the data-plane checks (commands, files) were skipped: no usable /dev/kvm here (or LEL_E2B_API_ONLY=1)')
}

try {
  await main()
} catch (e) {
  failed++
  console.log(`FAIL unexpected error: ${e}\n${e?.stack}`)
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
