// Benchmark (not a test), run by bench/e2b_bench.sh against the lelantosd it started (U, K):
// commands.run('true') through the E2B SDK against the same command through our REST API
// (p50 each, and their ratio), a command's 1 MB of stdout through the SDK, the streaming rate
// of a command's stdout (64 MiB of text: over the Connect wire, through the SDK, and as our REST
// API's streamed events), and files.write / files.read of 64 MiB.
import { Sandbox } from 'e2b'

const base = process.env.U, key = process.env.K, N = Number(process.env.N || 200)
const opts = { apiKey: key, apiUrl: base, sandboxUrl: base, validateApiKey: false }
const p50 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const timed = async (fn) => { const t0 = performance.now(); await fn(); return performance.now() - t0 }

const sbx = await Sandbox.create('base', { ...opts, timeoutMs: 3_600_000 })
for (let i = 0; i < 10; i++) await sbx.commands.run('true') // warm: connections, the guest's caches
const sdk = [], rest = []
for (let i = 0; i < N; i++) sdk.push(await timed(() => sbx.commands.run('true')))
for (let i = 0; i < N; i++)
  rest.push(await timed(async () => {
    const r = await fetch(`${base}/sandboxes/${sbx.sandboxId}/commands`, {
      method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body: '{"cmd":"true"}',
    })
    await r.json()
  }))
const a = p50(sdk), b = p50(rest)
console.log(`commands.run('true') round trip: SDK p50 ${a.toFixed(2)} ms, REST p50 ${b.toFixed(2)} ms: x${(a / b).toFixed(2)} (n=${N})`)
await sbx.commands.run("head -c 1000000 /dev/zero | tr '\\0' a > /tmp/1m")
const outs = []
for (let i = 0; i < 5; i++) outs.push(await timed(() => sbx.commands.run('cat /tmp/1m')))
const out = p50(outs)
console.log(`1 MB of stdout through the SDK: p50 ${out.toFixed(0)} ms (${(1000 / out).toFixed(0)} MB/s)`)
await streamRates(sbx)
// 64 MiB of text lines written into the sandbox, then `cat` of it three ways (best of 3 each).
async function streamRates(sbx) {
  const line = 'the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdef\n'
  const text = Buffer.from(line.repeat(Math.ceil((64 << 20) / line.length))).subarray(0, 64 << 20)
  await sbx.files.write('/tmp/text', text)
  const rate = (ms) => `${(67.1 / (ms / 1000)).toFixed(0)} MB/s`
  const best = async (fn) => { let b = Infinity; for (let i = 0; i < 3; i++) b = Math.min(b, await timed(fn)); return b }
  const wire = await best(async () => {
    const json = Buffer.from(JSON.stringify({ process: { cmd: '/bin/sh', args: ['-c', 'cat /tmp/text'] } }))
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), json])
    body.writeUInt32BE(json.length, 1)
    const res = await fetch(`${base}/process.Process/Start`, {
      method: 'POST', body, headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken },
    })
    for await (const chunk of res.body) void chunk
  })
  let got = 0
  const sdk = await best(async () => { got = (await sbx.commands.run('cat /tmp/text')).stdout.length })
  const rest = await best(async () => {
    const res = await fetch(`${base}/sandboxes/${sbx.sandboxId}/commands`, {
      method: 'POST', headers: { 'X-API-Key': key, 'Content-Type': 'application/json' }, body: '{"cmd":"cat /tmp/text","stream":true}',
    })
    for await (const chunk of res.body) void chunk
  })
  console.log(`64 MiB of stdout streamed: Connect wire ${rate(wire)}, SDK ${rate(sdk)}${got === text.length ? '' : ' SHORT'}, REST "stream": true ${rate(rest)}`)
}

const big = new Uint8Array(64 << 20).map((_, i) => i & 255)
const w = await timed(() => sbx.files.write('/tmp/big', big.buffer))
let back
const r = await timed(async () => { back = await sbx.files.read('/tmp/big', { format: 'bytes' }) })
const same = back.length === big.length && back.every((x, i) => x === big[i])
console.log(`files.write 64 MiB: ${w.toFixed(0)} ms (${(67.1 / (w / 1000)).toFixed(0)} MB/s); files.read: ${r.toFixed(0)} ms (${(67.1 / (r / 1000)).toFixed(0)} MB/s)${same ? '' : ' MISMATCH'}`)
await sbx.kill()
