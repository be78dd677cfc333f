/* End to end with real builds: Debian's python3, node, bash, git and sqlite3 in a sandbox. The
 * image is Debian 12 minbase built by tools/build-image.sh (mmdebstrap from this machine's apt
 * sources, cached under $LEL_IMAGE_CACHE or /var/cache/lelantos/images, so only the first run
 * takes its half minute); it is imported as a plain rootfs tar, a template is built from it
 * with a python step, and a sandbox runs the programs with their libraries. Skipped (77) without
 * /dev/kvm, or when the image cannot be built here (no mmdebstrap, no apt mirror reachable). */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "debimage.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static srv_t S;

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

static void expect(const char *sid, const char *cmd, const char *want)
{
    static char out[8192];
    CHECK_INT(deb_run(&S, sid, cmd, 120000, out, sizeof(out)), 0);
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
    deb_image_build(LEL_SOURCE_DIR, "", tar, sizeof(tar));
    if (!tar[0] || stat(tar, &st) < 0) {
        printf("SKIP: tools/build-image.sh could not build the Debian image here\n");
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\ntemplates:\n  build_timeout_s: 900\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    char sid[64] = "";
    resp_t r;
    double t_import = 0, t_ready = 0;
    int ready = deb_template(&S, tar, "debian:12",
                             "{\"name\":\"debian-py\",\"memoryMB\":1024,\"fromImage\":\"debian:12\",\"steps\":["
                             "{\"type\":\"run\",\"args\":[\"python3 -c 'print(6*7)' > /root/at-build\"]}]}",
                             &t_import, &t_ready);
    CHECK_INT(ready, 0);
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"debian-py\"}");
    CHECK_INT(r.status, 201);
    snprintf(sid, sizeof(sid), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    if (ready == 0 && sid[0]) {
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
        /* extended attributes: on a file of the image (the read-only lower layer) and on a new one */
        expect(sid, "python3 -c 'import os; p=\"/etc/debian_version\"; os.setxattr(p, \"user.k\", b\"v\"); "
                    "open(\"/tmp/x\", \"w\").close(); os.setxattr(\"/tmp/x\", \"user.a\", b\"1\"); "
                    "print(os.getxattr(p, \"user.k\"), os.listxattr(\"/tmp/x\"), open(p).read()[:2])'",
               "b'v' ['user.a'] 12");
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
