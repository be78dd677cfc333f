/* End to end with real builds: Debian's python3, node, bash, git and sqlite3 in a sandbox. The
 * image is Debian 12 minbase built by tools/build-image.sh (mmdebstrap from this machine's apt
 * sources, cached under $LEL_IMAGE_CACHE or /var/cache/lelantos/images, so only the first run
 * takes its half minute); it is imported as a plain rootfs tar, a template is built from it
 * with a python step, and a sandbox runs the programs with their libraries. Skipped (77) without
 * /dev/kvm, or when the image cannot be built here (no mmdebstrap, no apt mirror reachable). */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static srv_t S;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The tar tools/build-image.sh prints, or "" when it could not build one. */
static void build_image(char *path, size_t n)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "bash %s/tools/build-image.sh 2>&1", LEL_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    char line[1024];
    path[0] = 0;
    while (p && fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '/')
            snprintf(path, n, "%s", line);
        else
            fprintf(stderr, "%s\n", line);
    }
    if (!p || pclose(p) != 0)
        path[0] = 0;
}

/* tests pseudo-terminals from python (see main) */
static const char PTY_SCRIPT[] =
    "import functools, os, pty, sys, termios, tty\n"
    "print = functools.partial(print, flush=True)  # in order with what pty.spawn writes\n"
    "m, s = os.openpty()\n"
    "print(\"openpty\", os.isatty(s), os.ttyname(s).startswith(\"/dev/pts/\"))\n"
    "os.close(m); os.close(s)\n"
    "m, s = pty.openpty()\n"
    "tty.setraw(s)\n"
    "os.write(m, b\"x\\r\")\n"
    "print(\"raw\", os.read(s, 8) == b\"x\\r\", termios.tcgetattr(s)[3] & termios.ICANON == 0)\n"
    "os.close(m); os.close(s)\n"
    "code = pty.spawn([\"/bin/sh\", \"-c\", \"tty >/dev/null && echo spawned; exit 5\"])\n"
    "print(\"spawn\", os.waitstatus_to_exitcode(code))\n"
    "def shell(cmds):\n"
    "    pid, fd = pty.fork()\n"
    "    if pid == 0:\n"
    "        os.execvp(\"bash\", [\"bash\", \"-i\", \"-l\"])\n"
    "    out = b\"\"\n"
    "    os.write(fd, cmds)\n"
    "    while True:\n"
    "        try:\n"
    "            d = os.read(fd, 4096)\n"
    "        except OSError:\n"
    "            break\n"
    "        if not d:\n"
    "            break\n"
    "        out += d\n"
    "    return out.decode(\"latin1\"), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
    "out, code = shell(b\"echo val-$((6*7)); sleep 30 & jobs; kill %1; wait; exit 3\\n\")\n"
    "print(\"bash\", \"val-42\" in out, \"no job control\" not in out, \"[1]\" in out, code)\n";

static void put_file(const char *sid, const char *file, const char *data)
{
    char path[256], k[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=%s", sid, file);
    snprintf(k, sizeof(k), "X-API-Key: %s", S.key);
    const char *h[] = {k, "Content-Type: application/octet-stream", NULL};
    resp_t r;
    CHECK(http_req(&S, &r, H1, "PUT", path, data, strlen(data), h) == 0 && r.status < 300);
    resp_free(&r);
}

static const char *run(const char *sid, const char *cmd, long *code)
{
    static char out[8192];
    char path[96];
    json_t *b = json_pack("{s:s, s:i}", "cmd", cmd, "timeoutMs", 120000);
    char *s = json_dumps(b, 0);
    json_decref(b);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", sid);
    api(&S, &r, H1, "POST", path, s);
    free(s);
    *code = r.status == 200 ? (long)json_integer_value(json_object_get(r.json, "exitCode")) : -r.status;
    snprintf(out, sizeof(out), "%s", r.status == 200 ? jstr(&r, "stdout") : "");
    if (*code)
        fprintf(stderr, "  %s -> %ld: %.400s %.400s\n", cmd, *code, out, r.status == 200 ? jstr(&r, "stderr") : r.body ? r.body : "");
    resp_free(&r);
    return out;
}

static void expect(const char *sid, const char *cmd, const char *want)
{
    long code;
    const char *out = run(sid, cmd, &code);
    CHECK_INT(code, 0);
    if (!strstr(out, want))
        fprintf(stderr, "  %s: wanted '%s' in '%s'\n", cmd, want, out);
    CHECK(strstr(out, want) != NULL);
}

int main(void)
{
    char why[256], tar[1024];
    struct stat st;
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    build_image(tar, sizeof(tar));
    if (!tar[0] || stat(tar, &st) < 0) {
        printf("SKIP: tools/build-image.sh could not build the Debian image here\n");
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\ntemplates:\n  build_timeout_s: 900\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    FILE *f = fopen(tar, "rb");
    char *data = malloc((size_t)st.st_size);
    CHECK(f && data && fread(data, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
    if (f)
        fclose(f);
    char kh[128], tid[64], bid[64], sid[64], path[200], status[32] = "";
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, NULL};
    resp_t r;
    double t0 = now_s();
    CHECK(http_req(&S, &r, H1, "PUT", "/images/debian:12", data, (size_t)st.st_size, hdrs) == 0 && r.status == 201);
    double t_import = now_s() - t0;
    resp_free(&r);
    free(data);
    api(&S, &r, H1, "POST", "/templates",
        "{\"name\":\"debian-py\",\"memoryMB\":1024,\"fromImage\":\"debian:12\",\"steps\":["
        "{\"type\":\"run\",\"args\":[\"python3 -c 'print(6*7)' > /root/at-build\"]}]}");
    CHECK_INT(r.status, 202);
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 9000; i++) {
        api(&S, &r, H1, "GET", path, NULL);
        snprintf(status, sizeof(status), "%s", jstr(&r, "status"));
        if (!strcmp(status, "error"))
            fprintf(stderr, "build: %s\n", r.body);
        resp_free(&r);
        if (!strcmp(status, "ready") || !strcmp(status, "error"))
            break;
        usleep(100000);
    }
    double t_ready = now_s() - t0;
    CHECK_STR(status, "ready");
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"debian-py\"}");
    CHECK_INT(r.status, 201);
    snprintf(sid, sizeof(sid), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    if (!strcmp(status, "ready") && sid[0]) {
        expect(sid, "cat /root/at-build", "42");
        expect(sid, "python3 -c 'import sys, json, re, sqlite3, hashlib, zlib, pathlib, tempfile, shutil; "
                    "print(sys.version_info[:2], json.dumps({\"a\": [1]}), hashlib.sha256(b\"x\").hexdigest()[:8])'",
               "(3, 11) {\"a\": [1]} 2d711642");
        expect(sid, "node -e 'const fs=require(\"fs\"); fs.writeFileSync(\"/tmp/n\", \"ok\"); console.log(process.version, fs.readFileSync(\"/tmp/n\", \"utf8\"))'",
               "v18");
        expect(sid, "bash -c 'set -euo pipefail; a=(1 2 3); declare -A m=([k]=v); echo ${#a[@]} ${m[k]} {1..3} $(echo sub)'",
               "3 v 1 2 3 sub");
        expect(sid, "cd /tmp && git init -q repo && cd repo && echo x > f && git add f && "
                    "git -c user.email=a@b -c user.name=n commit -qm first && git log --oneline | wc -l", "1");
        expect(sid, "sqlite3 :memory: 'select 6*7'", "42");
        /* pseudo-terminals: os.openpty, pty.openpty with tty.setraw, pty.spawn, and bash -i -l
         * with job control on a pty.fork terminal */
        put_file(sid, "/tmp/ptys.py", PTY_SCRIPT);
        expect(sid, "python3 /tmp/ptys.py 2>&1",
               "openpty True True\nraw True True\nspawned\r\nspawn 5\nbash True True True 3\n");
        expect(sid, "python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'", "/tmp/venv");
    }
    printf("debian image %lld MB: imported in %.1f s, template ready %.1f s after the upload began\n",
           (long long)(st.st_size >> 20), t_import, t_ready);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
