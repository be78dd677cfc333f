// Benchmark (not a test), run by bench/e2b_bench.sh against the lelantosd it started (U, K):
// commands.run('true') through the E2B SDK against the same command through our REST API
// (p50 each, and their ratio), a command's 1 MB of stdout through the SDK, and files.write /
// files.read of 64 MiB.
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
const out = await timed(() => sbx.commands.run("head -c 1000000 /dev/zero | tr '\\0' a"))
console.log(`1 MB of stdout through the SDK: ${out.toFixed(0)} ms (${(1000 / out).toFixed(0)} MB/s; the guest hands output over at the end, up to 1 MiB)`)
const big = new Uint8Array(64 << 20).map((_, i) => i & 255)
const w = await timed(() => sbx.files.write('/tmp/big', big.buffer))
let back
const r = await timed(async () => { back = await sbx.files.read('/tmp/big', { format: 'bytes' }) })
const same = back.length === big.length && back.every((x, i) => x === big[i])
console.log(`files.write 64 MiB: ${w.toFixed(0)} ms (${(67.1 / (w / 1000)).toFixed(0)} MB/s); files.read: ${r.toFixed(0)} ms (${(67.1 / (r / 1000)).toFixed(0)} MB/s)${same ? '' : ' MISMATCH'}`)
await sbx.kill()
