/* End to end with the warm pool (templates.warm_pool: 2) on real microVMs: the built-in base's
 * pool fills at start; a sandbox from it is a fresh sandbox (its own envVars and metadata,
 * nothing another sandbox wrote, its own random numbers, the current time); the pool refills
 * after creates; a user template's pool fills from its first create and DELETE drains it; the
 * daemon stops cleanly with VMs in the pools. VMs are counted as the daemon's KVM VM
 * descriptors ("anon_inode:kvm-vm" in /proc/<pid>/fd). Without /dev/kvm it reports itself
 * skipped. Speed is bench/perf_bench.sh's business, not this test's. */
#include "../../src/template/lel_template.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static srv_t S;

static int kvm_vms(void)
{
    char dir[64], path[320], link[128];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)S.pid);
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t l = readlink(path, link, sizeof(link) - 1);
        if (l > 0) {
            link[l] = 0;
            n += !strcmp(link, "anon_inode:kvm-vm");
        }
    }
    closedir(d);
    return n;
}

/* Waits up to `s` seconds for exactly `want` VMs; the count then. */
static int await_vms(int want, int s)
{
    int n = kvm_vms();
    for (int i = 0; i < s * 10 && n != want; i++) {
        usleep(100000);
        n = kvm_vms();
    }
    if (n != want)
        fprintf(stderr, "VMs: %d, wanted %d\n", n, want);
    return n;
}

static char *create(const char *body)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", body);
    CHECK_INT(r.status, 201);
    if (r.status != 201)
        fprintf(stderr, "create: %s\n", r.body ? r.body : "");
    char *id = r.status == 201 ? strdup(jstr(&r, "sandboxID")) : NULL;
    resp_free(&r);
    return id;
}

/* Runs `sh -c cmd`; its stdout (caller frees), NULL unless it exited 0. */
static char *run(const char *id, const char *cmd)
{
    resp_t r;
    char path[96];
    json_t *body = json_pack("{s:s}", "cmd", cmd);
    char *enc = json_dumps(body, 0);
    json_decref(body);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    api(&S, &r, H1, "POST", path, enc);
    free(enc);
    char *out = NULL;
    if (r.status == 200 && json_integer_value(json_object_get(r.json, "exitCode")) == 0)
        out = strdup(json_string_value(json_object_get(r.json, "stdout")));
    else
        fprintf(stderr, "command %s -> %ld %s\n", cmd, r.status, r.body ? r.body : "");
    resp_free(&r);
    return out;
}

static void del(const char *id)
{
    resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, H1, "DELETE", path, NULL);
    CHECK_INT(r.status, 204);
    resp_free(&r);
}

static int await_ready(const char *tpl, int s)
{
    char path[96];
    snprintf(path, sizeof(path), "/templates/%s", tpl);
    for (int i = 0; i < s * 5; i++) {
        resp_t r;
        api(&S, &r, H1, "GET", path, NULL);
        int ready = !strcmp(jstr(&r, "buildStatus"), "ready"), failed = !strcmp(jstr(&r, "buildStatus"), "error");
        resp_free(&r);
        if (ready || failed)
            return ready;
        usleep(200000);
    }
    return 0;
}

/* A sandbox from the pool knows nothing of another: env, metadata, files, randomness, time. */
static void fresh_sandboxes(void)
{
    CHECK_INT(await_vms(2, 60), 2); /* base's pool, full */
    char *a = create("{\"templateID\":\"base\",\"envVars\":{\"FOO\":\"a\"},\"metadata\":{\"who\":\"a\"}}");
    char *b = create("{\"templateID\":\"base\",\"envVars\":{\"FOO\":\"b\"},\"metadata\":{\"who\":\"b\"}}");
    if (!a || !b)
        return;
    char *oa = run(a, "echo \"$FOO\"; echo state-a > /tmp/mark; head -c 16 /dev/urandom | od -An -tx1");
    char *ob = run(b, "echo \"$FOO\"; cat /tmp/mark 2>/dev/null || echo none; head -c 16 /dev/urandom | od -An -tx1; date +%s");
    CHECK(oa && !strncmp(oa, "a\n", 2));
    CHECK(ob && !strncmp(ob, "b\nnone\n", 7));
    if (oa && ob) {
        const char *ra = strchr(oa, '\n') + 1, *rb = strchr(strchr(ob, '\n') + 1, '\n') + 1;
        CHECK(strncmp(ra, rb, 40) != 0); /* each VM was reseeded: no shared random state */
        const char *date = strchr(rb, '\n');
        long long t = date ? atoll(date + 1) : 0;
        CHECK(llabs(t - (long long)time(NULL)) < 30);
    }
    free(oa);
    free(ob);
    char path[96];
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s", b);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "metadata"), "who")), "b");
    resp_free(&r);
    CHECK_INT(await_vms(4, 60), 4); /* the pool refilled beside the two sandboxes */
    del(a);
    del(b);
    free(a);
    free(b);
    CHECK_INT(await_vms(2, 60), 2);
}

/* The pages base's first command wrote (learnt by fresh_sandboxes) are pre-faulted in the VMs
 * the pool restores since: such a VM is still a fresh, working sandbox, and one that pauses and
 * resumes keeps what it wrote (its pre-faulted pages are its own, as if it had written them). */
static void prefaulted_pool(void)
{
    char path[320], line[256];
    long long pages = -1;
    snprintf(path, sizeof(path), "%s/server.log", S.dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "template base: its pooled VMs pre-fault ");
        if (p)
            pages = atoll(p + strlen("template base: its pooled VMs pre-fault "));
    }
    if (f)
        fclose(f);
    CHECK(pages > 0 && pages <= LEL_WRITE_SET_MAX);
    /* the two pooled now may predate the learning: take them, so the refill pre-faults */
    char *x = create("{\"templateID\":\"base\"}"), *y = create("{\"templateID\":\"base\"}");
    CHECK_INT(await_vms(4, 60), 4);
    char *a = create("{\"templateID\":\"base\",\"envVars\":{\"FOO\":\"pf\"}}");
    if (a) {
        char *out = run(a, "echo \"$FOO\"; cat /tmp/mark 2>/dev/null || echo none; seq 1 20000 > /tmp/big; md5sum < /tmp/big");
        CHECK(out && !strncmp(out, "pf\nnone\n", 8));
        resp_t r;
        snprintf(path, sizeof(path), "/sandboxes/%s/pause", a);
        api(&S, &r, H1, "POST", path, NULL);
        CHECK_INT(r.status, 204);
        resp_free(&r);
        snprintf(path, sizeof(path), "/sandboxes/%s/resume", a);
        api(&S, &r, H1, "POST", path, "{}");
        CHECK_INT(r.status, 201);
        resp_free(&r);
        char *again = run(a, "echo \"$FOO\"; cat /tmp/mark 2>/dev/null || echo none; md5sum < /tmp/big");
        CHECK_STR(again, out);
        free(out);
        free(again);
        del(a);
        free(a);
    }
    for (char **id = (char *[]){x, y, NULL}; *id; id++) {
        del(*id);
        free(*id);
    }
    CHECK_INT(await_vms(2, 60), 2);
}

/* A user template's pool fills from its first create; DELETE drains it. */
static void template_pool(void)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/templates", "{\"name\":\"pooled\",\"steps\":[{\"type\":\"run\",\"args\":[\"echo built > /built\"]}]}");
    CHECK_INT(r.status, 202);
    char tid[64];
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    resp_free(&r);
    CHECK(await_ready(tid, 300));
    CHECK_INT(await_vms(2, 60), 2); /* only base's: nobody used this one yet */
    char body[128];
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid);
    char *id = create(body);
    if (!id)
        return;
    char *out = run(id, "cat /built");
    CHECK_STR(out, "built\n");
    free(out);
    CHECK_INT(await_vms(5, 60), 5); /* base's 2, the sandbox, its template's 2 */
    char *id2 = create(body); /* from the pool: the template's files, nothing of the first */
    if (id2) {
        out = run(id2, "cat /built; ls /tmp/mark 2>/dev/null || echo clean");
        CHECK_STR(out, "built\nclean\n");
        free(out);
        del(id2);
        free(id2);
    }
    del(id);
    free(id);
    char path[96];
    snprintf(path, sizeof(path), "/templates/%s", tid);
    for (int i = 0; i < 50; i++) { /* in use until the kills are settled */
        api(&S, &r, H1, "DELETE", path, NULL);
        long st = r.status;
        resp_free(&r);
        if (st != 409) {
            CHECK_INT(st, 204);
            break;
        }
        usleep(100000);
    }
    CHECK_INT(await_vms(2, 60), 2); /* its pool went with it */
}

int main(void)
{
    char why[256];
    enum lel_vmm_backend b = lel_vmm_probe(why, sizeof(why));
    if (b == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\nteams:\n  max_sandboxes: 100\n"
                      "templates:\n  warm_pool: 2\n  max_parallel_builds: 1\n  prefault_writes: true\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    CHECK(await_ready("base", 300));
    fresh_sandboxes();
    prefaulted_pool();
    template_pool();
    CHECK_INT(srv_stop(&S), 0); /* pooled VMs and all: a clean exit (ASan: no leaks) */
    if (lel_test_failed)
        srv_log_tail(&S);
    srv_cleanup(&S);
    return lel_test_finish();
}
