/* End to end, the languages' own checks in a sandbox: CPython's regression tests (Debian's
 * libpython3.11-testsuite, `python3 -m test`) for the modules a sandbox's users lean on, and
 * node 18's fs, child_process, worker_threads, an http server and client on localhost, timers
 * and npm. The image is tools/build-image.sh's Debian 12 with the test suite and npm added (a
 * variant cached by its package list, so only the first run builds it). Every module named here
 * must pass whole (its tests may skip as on a Linux host without network or a terminal);
 * tools/cpython-suite.sh runs the rest of the suite and lists what passes. Skipped (77) without
 * /dev/kvm or when the image cannot be built here. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "debimage.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static srv_t S;

/* What the test image adds to tools/build-image.sh's packages (tools/cpython-suite.sh adds the
 * same, so both use one cached image): the test suite, npm, and netbase's /etc/services and
 * /etc/protocols, which test_socket's getservbyname and getaddrinfo read. */
#define LEL_TEST_IMAGE_EXTRA "libpython3.11-testsuite npm netbase"

/* The modules that must pass: issue 18's fourteen, then what else reaches the kernel's
 * processes, descriptors and sockets (each found a gap once); tools/cpython-suite.sh runs more. */
static const char *const py_modules[] = {
    "test_os",          "test_subprocess",
    "test_threading",   "test_socket",
    "test_select",      "test_signal",
    "test_fcntl",       "test_mmap",
    "test_tempfile",    "test_json",
    "test_re",          "test_shutil",
    "test_pathlib",     "test_time",
    "test_epoll",       "test_selectors",
    "test_poll",        "test_pty",
    "test_posix",       "test_resource",
    "test_fork1",       "test_wait4",
    "test_popen",       "test_stat",
    "test_fileio",      "test_sys",
    "test_zlib",        "test_asyncio.test_subprocess",
    "test_asyncio.test_events", "test_asyncio.test_sock_lowlevel",
    "test_asyncio.test_unix_events", "test_io",
};
#define N_PY_MODULES (sizeof(py_modules) / sizeof(py_modules[0]))

/* node: each part prints its name and "ok" once it checked what it did; the http part serves
 * on an ephemeral port of 127.0.0.1 and fetches from it; a worker adds with Atomics on a
 * SharedArrayBuffer it shares with the main thread. */
static const char node_js[] =
    "const fs = require('fs'), path = require('path'), cp = require('child_process');\n"
    "const { Worker } = require('worker_threads'), http = require('http'), assert = require('assert');\n"
    "const tp = require('timers/promises');\n"
    "async function main() {\n"
    "  const d = fs.mkdtempSync('/tmp/nd-');\n"
    "  fs.writeFileSync(path.join(d, 'a'), 'hello');\n"
    "  fs.appendFileSync(path.join(d, 'a'), ' world');\n"
    "  fs.renameSync(path.join(d, 'a'), path.join(d, 'b'));\n"
    "  assert.deepStrictEqual(fs.readdirSync(d), ['b']);\n"
    "  assert.strictEqual(await fs.promises.readFile(path.join(d, 'b'), 'utf8'), 'hello world');\n"
    "  assert.strictEqual(fs.statSync(path.join(d, 'b')).size, 11);\n"
    "  fs.symlinkSync('b', path.join(d, 'l'));\n"
    "  assert.strictEqual(fs.readlinkSync(path.join(d, 'l')), 'b');\n"
    "  fs.rmSync(d, { recursive: true });\n"
    "  assert.ok(!fs.existsSync(d));\n"
    "  console.log('fs ok');\n"
    "  assert.strictEqual(cp.execSync('echo $((6*7))').toString().trim(), '42');\n"
    "  const r = cp.spawnSync('sh', ['-c', 'cat; echo err >&2; exit 3'], { input: 'in' });\n"
    "  assert.strictEqual(r.status, 3); assert.strictEqual(r.stdout.toString(), 'in');\n"
    "  assert.strictEqual(r.stderr.toString(), 'err\\n');\n"
    "  const out = await new Promise((res, rej) => cp.exec('ls /usr/bin/node', (e, so) => e ? rej(e) : res(so)));\n"
    "  assert.strictEqual(out.trim(), '/usr/bin/node');\n"
    "  const k = cp.spawn('sleep', ['30']);\n"
    "  const sig = await new Promise((res) => { k.on('exit', (c, s) => res(s)); k.kill('SIGTERM'); });\n"
    "  assert.strictEqual(sig, 'SIGTERM');\n"
    "  console.log('child_process ok');\n"
    "  const sab = new SharedArrayBuffer(4), ia = new Int32Array(sab);\n"
    "  const w = new Worker(\"const { parentPort, workerData } = require('worker_threads');\"\n"
    "    + \"const ia = new Int32Array(workerData); for (let i = 0; i < 1000; i++) Atomics.add(ia, 0, 1);\"\n"
    "    + \"parentPort.on('message', (m) => parentPort.postMessage(m * 2));\", { eval: true, workerData: sab });\n"
    "  const got = await new Promise((res, rej) => { w.on('message', res); w.on('error', rej); w.postMessage(21); });\n"
    "  assert.strictEqual(got, 42);\n"
    "  await w.terminate();\n"
    "  assert.strictEqual(Atomics.load(ia, 0), 1000);\n"
    "  console.log('worker_threads ok');\n"
    "  const srv = http.createServer((q, s) => { let b = ''; q.on('data', (c) => b += c);\n"
    "    q.on('end', () => { s.setHeader('x-m', q.method); s.end('got ' + q.url + ' ' + b); }); });\n"
    "  await new Promise((res) => srv.listen(0, '127.0.0.1', res));\n"
    "  const port = srv.address().port;\n"
    "  const get = (m, body) => new Promise((res, rej) => {\n"
    "    const q = http.request({ host: '127.0.0.1', port, path: '/p?q=1', method: m }, (s) => {\n"
    "      let b = ''; s.on('data', (c) => b += c); s.on('end', () => res([s.statusCode, s.headers['x-m'], b])); });\n"
    "    q.on('error', rej); q.end(body); });\n"
    "  assert.deepStrictEqual(await get('GET'), [200, 'GET', 'got /p?q=1 ']);\n"
    "  assert.deepStrictEqual(await get('POST', 'x'.repeat(100000)), [200, 'POST', 'got /p?q=1 ' + 'x'.repeat(100000)]);\n"
    "  await new Promise((res) => srv.close(res));\n"
    "  console.log('http ok');\n"
    "  const order = []; const t0 = Date.now();\n"
    "  setTimeout(() => order.push('t20'), 20); setTimeout(() => order.push('t0'), 0);\n"
    "  setImmediate(() => order.push('imm')); process.nextTick(() => order.push('tick'));\n"
    "  let n = 0; await new Promise((res) => { const iv = setInterval(() => { if (++n === 5) { clearInterval(iv); res(); } }, 10); });\n"
    "  await tp.setTimeout(30);\n"
    "  assert.strictEqual(order[0], 'tick'); assert.ok(order.includes('t20') && order.includes('imm'));\n"
    "  assert.ok(Date.now() - t0 >= 50, 'timers fired early');\n"
    "  console.log('timers ok');\n"
    "}\n"
    "main().then(() => console.log('node all ok'), (e) => { console.error(e); process.exit(1); });\n";

static void run_node(const char *sid)
{
    static char out[16384], cmd[sizeof(node_js) + 200];
    snprintf(cmd, sizeof(cmd), "cat > /tmp/t.js <<'LEL_EOF'\n%sLEL_EOF\nnode /tmp/t.js", node_js);
    CHECK_INT(deb_run(&S, sid, cmd, 120000, out, sizeof(out)), 0);
    printf("%s", out);
    const char *parts[] = {"fs ok", "child_process ok", "worker_threads ok", "http ok", "timers ok", "node all ok"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        CHECK(strstr(out, parts[i]) != NULL);
    CHECK_INT(deb_run(&S, sid, "node --version && npm --version", 60000, out, sizeof(out)), 0);
    printf("%s", out);
    CHECK(strncmp(out, "v18.", 4) == 0);
    CHECK(strchr(out, '\n') && strchr(out, '\n')[1] >= '1' && strchr(out, '\n')[1] <= '9'); /* npm's version */
}

/* `python3 -m test` over the modules: all must pass ("All N tests OK.": none failed nor was
 * skipped whole). -u none: no resource-hungry tests (network, large files, cpu), as regrtest
 * runs by default; --timeout (per module: test_subprocess takes 90 s alone and 3-4 times that
 * on a loaded 2-core machine): a hang is a failure with a traceback, not a stuck test. */
static void run_cpython(const char *sid)
{
    static char out[1 << 20], cmd[4096], want[64];
    size_t at = (size_t)snprintf(cmd, sizeof(cmd), "cd /tmp && python3 -m test -u none --timeout 900 -w");
    for (size_t i = 0; i < N_PY_MODULES; i++)
        at += (size_t)snprintf(cmd + at, sizeof(cmd) - at, " %s", py_modules[i]);
    snprintf(cmd + at, sizeof(cmd) - at, " > /tmp/regrtest.log 2>&1; rc=$?; tail -c 200000 /tmp/regrtest.log; exit $rc");
    double t0 = deb_now();
    long rc = deb_run(&S, sid, cmd, 1500000, out, sizeof(out));
    snprintf(want, sizeof(want), "All %zu tests OK.", N_PY_MODULES);
    int ok = rc == 0 && strstr(out, want) && strstr(out, "Tests result: SUCCESS");
    /* the summary (and, when something failed, the verbose re-run before it) */
    size_t len = strlen(out);
    printf("%s\n", ok ? (len > 1500 ? out + len - 1500 : out) : (len > 60000 ? out + len - 60000 : out));
    printf("CPython regression tests, %zu modules: %.0f s\n", N_PY_MODULES, deb_now() - t0);
    CHECK_INT(rc, 0);
    CHECK(ok);
}

int main(void)
{
    char why[256], tar[1024], sid[64] = "";
    struct stat st;
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    deb_image_build(LEL_SOURCE_DIR, LEL_TEST_IMAGE_EXTRA, tar, sizeof(tar));
    if (!tar[0] || stat(tar, &st) < 0) {
        printf("SKIP: tools/build-image.sh could not build the Debian test image here\n");
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\ntemplates:\n  build_timeout_s: 900\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    S.http_timeout_s = 1600; /* the regression tests' command runs for minutes */
    int ready = deb_template(&S, tar, "debian-test:12",
                             "{\"name\":\"debian-test\",\"memoryMB\":2048,\"fromImage\":\"debian-test:12\"}", NULL, NULL);
    CHECK_INT(ready, 0);
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"debian-test\",\"timeout\":3600}");
    CHECK_INT(r.status, 201);
    snprintf(sid, sizeof(sid), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    if (ready == 0 && sid[0]) {
        run_node(sid);
        run_cpython(sid);
    }
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
