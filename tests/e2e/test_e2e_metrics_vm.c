/* End to end: GET /metrics with real microVMs. Two template builds, one failing, count by
 * result. A sandbox is created, runs a command, is
 * paused, resumed, snapshotted and restored once each; a scrape then shows VM exits by reason,
 * a latency histogram with a count for each of those operations, the sandboxes by state, and
 * the host CPU and memory the VMs use, within what is plausible for what ran; killing the
 * sandbox keeps the CPU counter from going back (its thread's time moves to the ended VMs') and
 * lowers the running VMs. `promtool check metrics` lints the scrape where Debian's prometheus
 * package is installed (said, and the test reports skipped (77) when all else passed). Skipped
 * (77) without a usable /dev/kvm. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"
#include "promtext.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "test-admin-token" /* the harness's LELANTOS_ADMIN_TOKEN */
#define MIB (1024.0 * 1024.0)

static srv_t S;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One API call: its status, with the body's `field` copied into out (when both are given). */
static long call(const char *method, const char *path, const char *body, const char *field, char *out)
{
    resp_t r;
    if (api(&S, &r, H1, method, path, body) < 0)
        return -1;
    long st = r.status;
    if (st >= 300)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, st, r.body ? r.body : "");
    if (field && out)
        snprintf(out, 64, "%s", jstr(&r, field));
    resp_free(&r);
    return st;
}

static char *scrape(void)
{
    resp_t r;
    const char *h[] = {"X-Admin-Token: " TOKEN, NULL};
    if (http_req(&S, &r, H1, "GET", "/metrics", NULL, 0, h) < 0)
        return NULL;
    CHECK_INT(r.status, 200);
    char *text = r.status == 200 && r.body ? strdup(r.body) : NULL;
    resp_free(&r);
    return text;
}

static int base_ready(void)
{
    for (int i = 0; i < 1200; i++) {
        resp_t r;
        api(&S, &r, H1, "GET", "/templates/base", NULL);
        int ready = !strcmp(jstr(&r, "buildStatus"), "ready");
        resp_free(&r);
        if (ready)
            return 1;
        usleep(100000);
    }
    return 0;
}

/* create, a command (a shell loop, so the vCPU has work), pause, resume, snapshot, restore */
static int lifecycle(char *id)
{
    char path[128], snap[64] = "", body[128];
    CHECK_INT(call("POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":120}", "sandboxID", id), 201);
    if (!*id)
        return -1;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    CHECK_INT(call("POST", path, "{\"cmd\":\"i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo $i\",\"timeoutMs\":30000}",
                   NULL, NULL),
              200);
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(call("POST", path, NULL, NULL, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK_INT(call("POST", path, "{}", NULL, NULL), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id);
    CHECK_INT(call("POST", path, "{}", "snapshotID", snap), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s/restore", id);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", snap);
    CHECK_INT(call("POST", path, body, NULL, NULL), 200);
    return 0;
}

/* Waits for a template's build to end: its buildStatus. */
static const char *build_end(const char *name)
{
    static char status[32];
    char path[128];
    snprintf(path, sizeof(path), "/templates/%s", name);
    for (int i = 0; i < 600; i++) {
        resp_t r;
        api(&S, &r, H1, "GET", path, NULL);
        snprintf(status, sizeof(status), "%s", jstr(&r, "buildStatus"));
        resp_free(&r);
        if (!strcmp(status, "ready") || !strcmp(status, "error"))
            break;
        usleep(100000);
    }
    return status;
}

/* A build deleted while it runs gives its build slot back (and counts as neither result). */
static void abandoned(void)
{
    CHECK_INT(call("POST", "/templates", "{\"name\":\"m-long\",\"steps\":[{\"type\":\"run\",\"args\":[\"sleep 60\"]}]}", NULL, NULL),
              202);
    double running = 0;
    for (int i = 0; i < 200 && running < 1; i++) {
        char *t = scrape();
        running = t ? prom_value(t, "lelantos_template_builds_running") : -1;
        free(t);
        if (running < 1)
            usleep(50000);
    }
    CHECK(running == 1);
    CHECK_INT(call("DELETE", "/templates/m-long", NULL, NULL, NULL), 204);
    char *t = scrape();
    CHECK(t && prom_value(t, "lelantos_template_builds_running") == 0);
    free(t);
}

/* Template builds by result: one that succeeds and one whose step fails move their counters by one each. */
static void builds(void)
{
    char *t = scrape();
    double ok0 = t ? prom_value(t, "lelantos_template_builds_total{result=\"ready\"}") : -1;
    double bad0 = t ? prom_value(t, "lelantos_template_builds_total{result=\"error\"}") : -1;
    free(t);
    CHECK(ok0 >= 0 && bad0 >= 0);
    CHECK_INT(call("POST", "/templates", "{\"name\":\"m-ok\",\"steps\":[{\"type\":\"run\",\"args\":[\"true\"]}]}", NULL, NULL),
              202);
    CHECK_INT(call("POST", "/templates", "{\"name\":\"m-bad\",\"steps\":[{\"type\":\"run\",\"args\":[\"exit 3\"]}]}", NULL, NULL),
              202);
    CHECK_STR(build_end("m-ok"), "ready");
    CHECK_STR(build_end("m-bad"), "error");
    if (!(t = scrape()))
        return;
    CHECK(prom_value(t, "lelantos_template_builds_total{result=\"ready\"}") == ok0 + 1);
    CHECK(prom_value(t, "lelantos_template_builds_total{result=\"error\"}") == bad0 + 1);
    CHECK(prom_value(t, "lelantos_template_builds_running") == 0);
    free(t);
    CHECK_INT(call("DELETE", "/templates/m-ok", NULL, NULL, NULL), 204);
    CHECK_INT(call("DELETE", "/templates/m-bad", NULL, NULL, NULL), 204);
    abandoned();
}

static double exits_total(const char *t)
{
    static const char *const reasons[] = {"io", "mmio", "intr", "hlt", "shutdown", "internal_error", "fail_entry",
                                          "other", "run_error"};
    double sum = 0;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char series[96];
        snprintf(series, sizeof(series), "lelantos_vm_exits_total{reason=\"%s\"}", reasons[i]);
        double v = prom_value(t, series);
        CHECK(v >= 0); /* every reason is there, 0 or not */
        sum += v;
    }
    return sum;
}

/* The scrape after the lifecycle; returns the VM CPU seconds it read. */
static double check_scrape(const char *t, double elapsed_s)
{
    static const char *const ops[] = {"create", "pause", "resume", "snapshot", "restore"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        char series[128];
        snprintf(series, sizeof(series), "lelantos_sandbox_operation_duration_seconds_count{op=\"%s\"}", ops[i]);
        double n = prom_value(t, series);
        if (n < 1)
            fprintf(stderr, "%s: %g\n", series, n);
        CHECK(n >= 1);
        snprintf(series, sizeof(series), "lelantos_sandbox_operation_duration_seconds_sum{op=\"%s\"}", ops[i]);
        CHECK(prom_value(t, series) > 0 && prom_value(t, series) < elapsed_s);
    }
    CHECK(prom_value(t, "lelantos_vm_exits_total{reason=\"io\"}") > 0); /* the guest's doorbells and console */
    CHECK(exits_total(t) > 0);
    CHECK(prom_value(t, "lelantos_sandboxes{state=\"running\"}") == 1);
    CHECK(prom_value(t, "lelantos_sandboxes{state=\"paused\"}") == 0);
    double vms = prom_value(t, "lelantos_vms_running"), cpu = prom_value(t, "lelantos_vm_host_cpu_seconds_total");
    double priv = prom_value(t, "lelantos_vm_host_memory_bytes{kind=\"private\"}");
    double shared = prom_value(t, "lelantos_vm_host_memory_bytes{kind=\"shared\"}");
    double procs = prom_value(t, "lelantos_host_cpu_seconds_total{mode=\"user\"}") +
                   prom_value(t, "lelantos_host_cpu_seconds_total{mode=\"system\"}");
    fprintf(stderr, "vms %g, vCPU %.3f s (process %.3f s, %.1f s elapsed), guest RAM private %.1f MiB, shared %.1f MiB\n",
            vms, cpu, procs, elapsed_s, priv / MIB, shared / MIB);
    CHECK(vms >= 1);                        /* the sandbox (and whatever the pool holds) */
    CHECK(cpu > 0 && cpu <= procs + 0.01);  /* vCPU threads are the process's threads */
    CHECK(priv > 0);                        /* the sandbox's guest wrote memory */
    CHECK(shared >= 0);
    CHECK(priv + shared <= vms * 256 * MIB); /* base's VMs have 256 MiB each: no page counted twice in one VM */
    CHECK(priv + shared <= prom_value(t, "lelantos_host_memory_resident_bytes")); /* they are the process's pages */
    return cpu;
}

/* After the kill: the counter keeps the ended thread's time, and the VM is no longer running. */
static void after_kill(const char *id, double cpu_before, double vms_before)
{
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(call("DELETE", path, NULL, NULL, NULL), 204);
    double vms = vms_before, cpu = 0;
    for (int i = 0; i < 100 && vms >= vms_before; i++) { /* the VM's end is off the request's path */
        usleep(50000);
        char *t = scrape();
        if (!t)
            break;
        vms = prom_value(t, "lelantos_vms_running");
        cpu = prom_value(t, "lelantos_vm_host_cpu_seconds_total");
        CHECK(prom_value(t, "lelantos_sandboxes{state=\"running\"}") == 0);
        free(t);
    }
    CHECK(vms < vms_before);
    CHECK(cpu >= cpu_before);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    CHECK(base_ready());
    builds();
    char id[64] = "";
    double t0 = mono_s();
    int skipped = 0;
    if (lifecycle(id) == 0) {
        char *t = scrape();
        CHECK(t != NULL);
        if (t) {
            double cpu = check_scrape(t, mono_s() - t0 + 1);
            if (prom_have("promtool"))
                CHECK_INT(prom_lint(S.dir, t), 0);
            else
                skipped = printf("SKIPPED part: promtool is not installed (Debian package prometheus; tools/setup.sh)\n");
            after_kill(id, cpu, prom_value(t, "lelantos_vms_running"));
            free(t);
        }
    }
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    int rc = lel_test_finish();
    return rc == 0 && skipped ? 77 : rc;
}
