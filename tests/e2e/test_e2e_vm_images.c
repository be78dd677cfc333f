/* End to end with real builds (microVMs on /dev/kvm): a template built from an image. A docker
 * archive of two layers (a 40 MiB file; a hard link; a whiteout; `bin -> usr/bin` as Debian has
 * it; env and WorkingDir in its config) is imported, a template built `fromImage` with run, env,
 * workdir, file (octal-string mode) and user steps, and a sandbox from it checked: the image's
 * files are there in the image's layout (its root filesystem image, with busybox beneath it,
 * under a writable layer whose size is the template's disk), its commands get the image's env
 * and the template's working directory, build steps got them too. A second template from the
 * image reuses its root filesystem image, and sees none of the first one's changes. The image
 * cannot be deleted while a template uses it. Skipped without /dev/kvm. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"
#include "tarbuild.h"

#include <stdlib.h>
#include <unistd.h>

static srv_t S;

static long req(const char *method, const char *path, const char *body, const char *field, char *out, size_t n)
{
    resp_t r;
    if (api(&S, &r, H1, method, path, body) < 0)
        return -1;
    if (out)
        snprintf(out, n, "%s", jstr(&r, field));
    long s = r.status;
    if (s >= 400 && s != 404 && s != 409)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, s, r.body ? r.body : "");
    resp_free(&r);
    return s;
}

static struct buf test_image(void)
{
    const struct ent l1[] = {{'d', "etc", NULL, 0755, 0},
                             {'f', "etc/from-image", "hello from the image\n", 0644, 0},
                             {'f', "etc/gone", "x", 0644, 0},
                             {'d', "usr/bin", NULL, 0755, 0},
                             {'f', "usr/bin/greet", "#!/bin/sh\necho greet $GREETING\n", 0755, 0},
                             {'h', "usr/bin/greet2", "usr/bin/greet", 0, 0},
                             {'l', "bin", "usr/bin", 0777, 0},
                             {'f', "usr/lib/data/big", NULL, 0644, 40u << 20},
                             {'c', "dev/null", NULL, 0666, 0},
                             {'d', "app", NULL, 0755, 0},
                             {0, NULL, NULL, 0, 0}};
    const struct ent l2[] = {{'f', "etc/.wh.gone", "", 0644, 0}, {'f', "app/layer2", "2", 0600, 0}, {0, NULL, NULL, 0, 0}};
    struct buf t1 = mk_tar(l1, 0), t2 = mk_tar(l2, 'g');
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/bin:/usr/bin:/bin\","
                      "\"GREETING=image\"],\"WorkingDir\":\"/app\",\"Entrypoint\":[\"/bin/sh\",\"-c\"],"
                      "\"Cmd\":[\"echo \\\"$GREETING in $PWD\\\" > /tmp/image-cmd; exec sleep 100000\"]}}";
    char hex[65], cfgname[80], man[400];
    sha256_hex(cfg, strlen(cfg), hex);
    snprintf(cfgname, sizeof(cfgname), "%s.json", hex);
    const char *n1 = "1111111111111111111111111111111111111111111111111111111111111111/layer.tar";
    const char *n2 = "2222222222222222222222222222222222222222222222222222222222222222/layer.tar";
    snprintf(man, sizeof(man), "[{\"Config\":\"%s\",\"Layers\":[\"%s\",\"%s\"]}]", cfgname, n1, n2);
    const struct blob bs[] = {{n1, t1.p, t1.n}, {n2, t2.p, t2.n}, {cfgname, cfg, strlen(cfg)}, {"manifest.json", man, strlen(man)}};
    struct buf b = mk_outer(bs, 4);
    free(t1.p);
    free(t2.p);
    return b;
}

/* Runs cmd in the sandbox; its stdout (static buffer, trailing newline cut) or "(failed)". */
static const char *run(const char *sid, const char *cmd, const char *cwd)
{
    static char out[4096];
    char path[96];
    json_t *body = json_pack("{s:s}", "cmd", cmd);
    if (cwd)
        json_object_set_new(body, "cwd", json_string(cwd));
    char *s = json_dumps(body, 0);
    json_decref(body);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", sid);
    api(&S, &r, H1, "POST", path, s);
    free(s);
    snprintf(out, sizeof(out), "%s", r.status == 200 ? jstr(&r, "stdout") : "(failed)");
    if (r.status != 200 || json_integer_value(json_object_get(r.json, "exitCode")))
        fprintf(stderr, "  %s -> %ld %.300s\n", cmd, r.status, r.body ? r.body : "");
    resp_free(&r);
    size_t n = strlen(out);
    if (n && out[n - 1] == '\n')
        out[n - 1] = 0;
    return out;
}

/* Waits for a build; its record's body (malloc'd) in *body when asked. */
static void wait_built(const char *tid, const char *bid, char **body)
{
    char path[200], st[32] = "";
    resp_t r;
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 1200 && req("GET", path, NULL, "status", st, sizeof(st)) == 200 && strcmp(st, "ready") && strcmp(st, "error");
         i++)
        usleep(100000);
    CHECK_STR(st, "ready");
    api(&S, &r, H1, "GET", path, NULL);
    if (body)
        *body = r.body ? strdup(r.body) : NULL;
    resp_free(&r);
}

/* Deletes a template once its sandboxes let go of it. */
static void delete_template(const char *tid)
{
    char path[200];
    snprintf(path, sizeof(path), "/templates/%s", tid);
    for (int i = 0; i < 50 && req("DELETE", path, NULL, NULL, NULL, 0) == 409; i++)
        usleep(100000);
}

static void post_template(const char *def, char *tid, char *bid)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/templates", def);
    CHECK_INT(r.status, 202);
    snprintf(tid, 64, "%s", jstr(&r, "templateID"));
    snprintf(bid, 64, "%s", jstr(&r, "buildID"));
    resp_free(&r);
}

/* A second template from the image boots on the same root filesystem image (and sees none of
 * the first one's sandboxes' changes); a template from that one holds the image too: with
 * both image templates gone, the image still cannot be deleted under it. */
static void second_templates(const char *tid)
{
    char tid2[64], bid2[64], tid3[64], bid3[64], sid[64], path[200], *body = NULL;
    post_template("{\"name\":\"from-img2\",\"fromImage\":\"testimg\",\"startCmd\":\"\"}", tid2, bid2); /* no image Cmd */
    wait_built(tid2, bid2, &body);
    CHECK(body && strstr(body, "root filesystem image reused"));
    free(body);
    post_template("{\"name\":\"from-img2-child\",\"fromTemplate\":\"from-img2\","
                  "\"steps\":[{\"type\":\"run\",\"args\":[\"echo child > /etc/child\"]}]}", tid3, bid3);
    wait_built(tid3, bid3, NULL);
    delete_template(tid2);
    delete_template(tid);
    CHECK_INT(req("DELETE", "/images/testimg", NULL, NULL, NULL, 0), 409); /* the child runs over it */
    CHECK_INT(req("POST", "/sandboxes", "{\"templateID\":\"from-img2-child\"}", "sandboxID", sid, sizeof(sid)), 201);
    CHECK_STR(run(sid, "cat /etc/from-image /etc/child", NULL), "hello from the image\nchild");
    CHECK_STR(run(sid, "test -e /tmp/image-cmd || echo no-cmd", NULL), "no-cmd");
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0), 204);
    delete_template(tid3);
    CHECK_INT(req("DELETE", "/images/testimg", NULL, NULL, NULL, 0), 204);
}

/* The metrics' disk is the writable layer: diskTotal its limit (the template's diskSizeMB),
 * diskUsed its file data, not the image's 40 MiB (one page of that file was written). */
static void check_disk_metrics(const char *sid)
{
    char path[96];
    long long used = -1, total = -1;
    snprintf(path, sizeof(path), "/sandboxes/%s/metrics", sid);
    for (int i = 0; i < 50 && (total < 0 || used < 0); i++) {
        resp_t r;
        api(&S, &r, H1, "GET", path, NULL);
        size_t n = json_array_size(r.json);
        json_t *last = n ? json_array_get(r.json, n - 1) : NULL;
        total = last ? json_integer_value(json_object_get(last, "diskTotal")) : -1;
        used = last ? json_integer_value(json_object_get(last, "diskUsed")) : -1;
        resp_free(&r);
        if (total < 0 || used < 0)
            usleep(100000);
    }
    printf("metrics: diskUsed %lld of diskTotal %lld\n", used, total);
    CHECK_INT(total, 256LL << 20);
    CHECK(used >= 0 && used < (4LL << 20));
}

static void from_image(void)
{
    struct buf img = test_image();
    char kh[128], tid[64] = "", bid[64] = "", st[32] = "", sid[64] = "";
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, NULL};
    resp_t r;
    CHECK(http_req(&S, &r, H1, "PUT", "/images/testimg", img.p, img.n, hdrs) == 0 && r.status == 201);
    resp_free(&r);
    free(img.p);
    const char *def =
        "{\"name\":\"from-img\",\"memoryMB\":256,\"fromImage\":\"testimg\",\"steps\":["
        "{\"type\":\"run\",\"args\":[\"pwd > /tmp/build-pwd; echo $GREETING > /tmp/build-env\"]},"
        "{\"type\":\"env\",\"envs\":{\"STEP\":\"s1\"}},"
        "{\"type\":\"workdir\",\"path\":\"/work/dir\"},"
        "{\"type\":\"file\",\"path\":\"/work/dir/f\",\"content\":\"x\",\"mode\":\"0750\"},"
        "{\"type\":\"run\",\"args\":[\"pwd > /tmp/build-pwd2; echo $STEP > /tmp/build-step\"]},"
        "{\"type\":\"user\",\"user\":\"app\"}]}";
    api(&S, &r, H1, "POST", "/templates", def);
    CHECK_INT(r.status, 202);
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    char path[200];
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 1200; i++) {
        req("GET", path, NULL, "status", st, sizeof(st));
        if (!strcmp(st, "ready") || !strcmp(st, "error"))
            break;
        usleep(100000);
    }
    CHECK_STR(st, "ready");
    api(&S, &r, H1, "GET", path, NULL);
    char *logs = json_dumps(json_object_get(r.json, "logs"), JSON_INDENT(1));
    CHECK(logs && strstr(logs, "root filesystem image built in") && strstr(logs, "mapped read-only"));
    if (strcmp(st, "ready") || !logs || !strstr(logs, "root filesystem image built in"))
        fprintf(stderr, "build logs: %s\n", logs ? logs : "");
    free(logs);
    resp_free(&r);
    if (strcmp(st, "ready"))
        return;
    CHECK_INT(req("DELETE", "/images/testimg", NULL, NULL, NULL, 0), 409); /* the template uses it */
    CHECK_INT(req("POST", "/sandboxes", "{\"templateID\":\"from-img\"}", "sandboxID", sid, sizeof(sid)), 201);
    CHECK_STR(run(sid, "cat /etc/from-image", NULL), "hello from the image");
    CHECK_STR(run(sid, "greet", NULL), "greet image");
    CHECK_STR(run(sid, "[ $(stat -c %i /usr/bin/greet) = $(stat -c %i /usr/bin/greet2) ] && echo same", NULL), "same");
    CHECK_STR(run(sid, "test -e /etc/gone || echo whited-out", NULL), "whited-out");
    CHECK_STR(run(sid, "cat /app/layer2", NULL), "2");
    CHECK_STR(run(sid, "wc -c < /usr/lib/data/big", NULL), "41943040");
    CHECK_STR(run(sid, "readlink /bin; test -x /usr/bin/busybox && echo busybox", NULL), "usr/bin\nbusybox"); /* the image's layout */
    CHECK_STR(run(sid, "head -1 /proc/mounts; df -k / | tail -1 | awk '{print $2}'", NULL), "overlay / overlay rw,lowerdir=rofs 0 0\n262144");
    CHECK_STR(run(sid, "echo x >> /usr/lib/data/big && wc -c < /usr/lib/data/big && rm /etc/from-image && ls /etc | grep -c from-image",
                  NULL), "41943042\n0");
    CHECK_STR(run(sid, "test -e /.lelantos-image || echo clean", NULL), "clean");
    check_disk_metrics(sid);
    CHECK_STR(run(sid, "pwd", NULL), "/work/dir");
    CHECK_STR(run(sid, "pwd", "/"), "/");
    CHECK_STR(run(sid, "echo $GREETING $STEP", NULL), "image s1");
    CHECK_STR(run(sid, "cat /tmp/build-pwd /tmp/build-env /tmp/build-pwd2 /tmp/build-step", NULL), "/app\nimage\n/work/dir\ns1");
    CHECK_STR(run(sid, "stat -c %a /work/dir/f", NULL), "750");
    /* the image's Entrypoint + Cmd became the template's startCmd: it runs in every sandbox */
    CHECK_STR(run(sid, "for i in $(seq 100); do [ -s /tmp/image-cmd ] && break; sleep 0.1; done; cat /tmp/image-cmd; "
                       "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done | grep -c '^sleep 100000'", NULL),
              "image in /work/dir\n1");
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0), 204);
    second_templates(tid);
}

/* copy steps from a build context uploaded after the POST: the build waits for it. */
static void copy_steps(void)
{
    const struct ent ctx[] = {{'d', "app", NULL, 0755, 0}, {'f', "app/main.sh", "echo main\n", 0750, 0},
                              {'f', "app/sub/x", "x\n", 0644, 0}, {'f', "conf.txt", "conf\n", 0600, 0},
                              {0, NULL, NULL, 0, 0}};
    struct buf b = mk_tar(ctx, 'g');
    const char *def = "{\"name\":\"copies\",\"steps\":[{\"type\":\"copy\",\"src\":\"app\",\"dest\":\"/opt/app\"},"
                      "{\"type\":\"copy\",\"src\":\"conf.txt\",\"dest\":\"/etc/\"},"
                      "{\"type\":\"copy\",\"src\":\"./conf.txt\",\"dest\":\"/etc/renamed.txt\"},"
                      "{\"type\":\"run\",\"args\":[\"sh /opt/app/main.sh > /tmp/ran\"]}]}";
    resp_t r;
    char tid[64], bid[64], st[32] = "", path[200], sid[64];
    api(&S, &r, H1, "POST", "/templates", def);
    CHECK_INT(r.status, 202);
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    usleep(300000);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "status"), "waiting");
    CHECK(r.body && strstr(r.body, "waiting for the build context"));
    resp_free(&r);
    char kh[128], cpath[128];
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, NULL};
    snprintf(cpath, sizeof(cpath), "/templates/%s/context", tid);
    CHECK(http_req(&S, &r, H1, "PUT", cpath, b.p, b.n, hdrs) == 0 && r.status == 204);
    resp_free(&r);
    for (int i = 0; i < 1200; i++) {
        req("GET", path, NULL, "status", st, sizeof(st));
        if (!strcmp(st, "ready") || !strcmp(st, "error"))
            break;
        usleep(100000);
    }
    CHECK_STR(st, "ready");
    CHECK(http_req(&S, &r, H1, "PUT", cpath, b.p, b.n, hdrs) == 0 && r.status == 409); /* the build is over */
    resp_free(&r);
    free(b.p);
    if (strcmp(st, "ready"))
        return;
    CHECK_INT(req("POST", "/sandboxes", "{\"templateID\":\"copies\"}", "sandboxID", sid, sizeof(sid)), 201);
    CHECK_STR(run(sid, "cat /opt/app/main.sh /opt/app/sub/x /etc/conf.txt /etc/renamed.txt /tmp/ran", NULL),
              "echo main\nx\nconf\nconf\nmain");
    CHECK_STR(run(sid, "stat -c %a /opt/app/main.sh /etc/conf.txt", NULL), "750\n600");
    CHECK_STR(run(sid, "test -e /.lelantos-copy.tar || echo clean", NULL), "clean");
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0), 204);
}

/* A Dockerfile with a context: FROM base, ARG/ENV substitution, WORKDIR, COPY, RUN, CMD. */
static void dockerfile(void)
{
    const struct ent ctx[] = {{'f', "app/main.sh", "echo main\n", 0750, 0}, {'f', "conf.txt", "conf\n", 0600, 0},
                              {0, NULL, NULL, 0, 0}};
    struct buf b = mk_tar(ctx, 'z');
    const char *df = "FROM base\n"
                     "ARG GREET=hello\n"
                     "ENV WHO=world MSG=\"$GREET there\"\n"
                     "WORKDIR /srv\n"
                     "COPY app/ app/\n"
                     "COPY conf.txt /etc/\n"
                     "RUN echo \"$MSG $WHO\" > /srv/built && \\\n"
                     "    cat app/main.sh >> /srv/built\n"
                     "CMD [\"sh\", \"-c\", \"echo started > /tmp/started; exec sleep 100000\"]\n";
    json_t *body = json_pack("{s:s, s:s}", "name", "from-dockerfile", "dockerfile", df);
    char *js = json_dumps(body, 0), tid[64], bid[64], st[32] = "", path[200], cpath[128], kh[128], sid[64];
    json_decref(body);
    resp_t r;
    api(&S, &r, H1, "POST", "/templates", js);
    free(js);
    CHECK_INT(r.status, 202);
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, NULL};
    snprintf(cpath, sizeof(cpath), "/templates/%s/context", tid);
    CHECK(http_req(&S, &r, H2, "PUT", cpath, b.p, b.n, hdrs) == 0 && r.status == 204);
    resp_free(&r);
    free(b.p);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 1200; i++) {
        req("GET", path, NULL, "status", st, sizeof(st));
        if (!strcmp(st, "ready") || !strcmp(st, "error"))
            break;
        usleep(100000);
    }
    CHECK_STR(st, "ready");
    if (strcmp(st, "ready")) {
        api(&S, &r, H1, "GET", path, NULL);
        fprintf(stderr, "dockerfile build: %s\n", r.body ? r.body : "");
        resp_free(&r);
        return;
    }
    CHECK_INT(req("POST", "/sandboxes", "{\"templateID\":\"from-dockerfile\"}", "sandboxID", sid, sizeof(sid)), 201);
    CHECK_STR(run(sid, "cat /srv/built", NULL), "hello there world\necho main");
    CHECK_STR(run(sid, "pwd; echo $MSG; cat /etc/conf.txt /tmp/started", NULL), "/srv\nhello there\nconf\nstarted");
    CHECK_STR(run(sid, "ls /srv/app", NULL), "main.sh");
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0), 204);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\n  metrics_interval_s: 1\nrate_limits:\n  general_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    char st[32] = "";
    for (int i = 0; i < 1200 && strcmp(st, "ready"); i++) {
        req("GET", "/templates/base", NULL, "buildStatus", st, sizeof(st));
        if (strcmp(st, "ready"))
            usleep(100000);
    }
    CHECK_STR(st, "ready");
    from_image();
    copy_steps();
    dockerfile();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
