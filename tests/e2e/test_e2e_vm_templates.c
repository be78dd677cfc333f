/* End to end with real template builds (microVMs on /dev/kvm): a build's status is answered at
 * once while a 12 s step runs (clients poll it every 200 ms); a sandbox from a template still
 * building or whose build failed is refused (409); DELETE during a build stuck in readyCmd
 * cancels it, frees its build slot for the next build and leaves nothing behind, not even after
 * a restart; a ready template starts sandboxes by its name. Without a usable /dev/kvm it
 * reports itself skipped (the API-only side is test_e2e_templates.c). */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static srv_t S;
static double max_get_ms; /* the slowest GET of a template or build while builds ran */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One request; its status, its JSON field `field` copied into out (when given), its time in *ms. */
static long req(const char *method, const char *path, const char *body, const char *field, char *out, size_t n,
                double *ms)
{
    resp_t r;
    double t0 = now_ms();
    if (api(&S, &r, H1, method, path, body) < 0)
        return -1;
    double took = now_ms() - t0;
    if (ms)
        *ms = took;
    if (!strcmp(method, "GET") && !strncmp(path, "/templates/", 11) && took > max_get_ms)
        max_get_ms = took;
    if (out)
        snprintf(out, n, "%s", jstr(&r, field));
    long s = r.status;
    if (s >= 400 && s != 404 && s != 409)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, s, r.body ? r.body : "");
    resp_free(&r);
    return s;
}

/* POST /templates: its templateID and buildID. */
static void new_template(const char *body, char tid[64], char bid[64])
{
    resp_t r;
    api(&S, &r, H1, "POST", "/templates", body);
    CHECK_INT(r.status, 202);
    snprintf(tid, 64, "%s", jstr(&r, "templateID"));
    snprintf(bid, 64, "%s", jstr(&r, "buildID"));
    resp_free(&r);
}

static const char *build_status(const char *tid, const char *bid, double *ms)
{
    static char status[32];
    char path[160];
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    if (req("GET", path, NULL, "status", status, sizeof(status), ms) != 200)
        snprintf(status, sizeof(status), "gone");
    return status;
}

/* Waits (up to `s` seconds) until the build's status is `want`. */
static int await_status(const char *tid, const char *bid, const char *want, int s)
{
    for (int i = 0; i < s * 20; i++) {
        if (!strcmp(build_status(tid, bid, NULL), want))
            return 1;
        usleep(50000);
    }
    fprintf(stderr, "build %s of %s: %s, not %s\n", bid, tid, build_status(tid, bid, NULL), want);
    return 0;
}

/* Waits until the build's logs contain `needle`. */
static int await_log(const char *tid, const char *bid, const char *needle, int s)
{
    char path[160];
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < s * 20; i++) {
        resp_t r;
        double t0 = now_ms();
        api(&S, &r, H1, "GET", path, NULL);
        max_get_ms = now_ms() - t0 > max_get_ms ? now_ms() - t0 : max_get_ms;
        char *logs = json_dumps(json_object_get(r.json, "logs"), 0);
        int found = logs && strstr(logs, needle);
        free(logs);
        resp_free(&r);
        if (found)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* POST /sandboxes; the status, and the body's error in err. */
static long sandbox_from(const char *tpl, char *sid, char *err, size_t n)
{
    resp_t r;
    char body[160];
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tpl);
    api(&S, &r, H1, "POST", "/sandboxes", body);
    long s = r.status;
    if (sid)
        snprintf(sid, 64, "%s", jstr(&r, "sandboxID"));
    if (err)
        snprintf(err, n, "%s", jstr(&r, "error"));
    if (s == 201 && !sid) {
        char path[96];
        snprintf(path, sizeof(path), "/sandboxes/%s", jstr(&r, "sandboxID"));
        req("DELETE", path, NULL, NULL, NULL, 0, NULL);
    }
    resp_free(&r);
    return s;
}

/* Files under data/templates whose name starts with `id`. */
static int files_of(const char *id)
{
    char dir[300];
    int n = 0;
    snprintf(dir, sizeof(dir), "%s/data/templates", S.dir);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, id, strlen(id));
    if (d)
        closedir(d);
    return n;
}

static void builds(void)
{
    char slow[64], slow_b[64], stuck[64], stuck_b[64], two[64], two_b[64], fail[64], fail_b[64], err[256], path[160];
    char sid[64], out[64];
    double ms;
    /* two builds hold both slots: a 12 s step, and a readyCmd that never succeeds */
    new_template("{\"name\":\"slow\",\"steps\":[{\"type\":\"run\",\"args\":[\"sleep 12; echo slept\"]}]}", slow, slow_b);
    new_template("{\"name\":\"stuck\",\"readyCmd\":\"sleep 5; false\"}", stuck, stuck_b);
    CHECK(await_log(stuck, stuck_b, "readyCmd:", 30));
    CHECK(await_log(slow, slow_b, "step 1 (run)", 30));
    new_template("{\"name\":\"two\",\"steps\":[{\"type\":\"run\",\"args\":[\"echo two > /two\"]}]}", two, two_b);
    /* still building: no sandbox from it (it would lack its steps) */
    CHECK_INT(sandbox_from(slow, NULL, err, sizeof(err)), 409);
    CHECK_STR(err, "template is not ready (status building)");
    CHECK_INT(sandbox_from("slow", NULL, NULL, 0), 409);
    usleep(600000);
    CHECK_STR(build_status(two, two_b, NULL), "waiting"); /* no slot free */
    /* DELETE cancels the stuck build at once, its readyCmd running */
    snprintf(path, sizeof(path), "/templates/%s", stuck);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0, &ms), 204);
    printf("DELETE during readyCmd: %.0f ms\n", ms);
    CHECK(ms < 1000);
    CHECK_INT(req("GET", path, NULL, NULL, NULL, 0, NULL), 404);
    CHECK_STR(build_status(stuck, stuck_b, NULL), "gone");
    CHECK_INT(files_of(stuck), 0);
    /* the slow build answers every 200 ms poll at once; the freed slot goes to `two` meanwhile */
    double t0 = now_ms(), slow_end = 0, two_started = 0;
    int polls = 0;
    while (now_ms() - t0 < 60000) {
        char s[32];
        snprintf(s, sizeof(s), "%s", build_status(slow, slow_b, NULL));
        int slow_building = !strcmp(s, "building");
        snprintf(path, sizeof(path), "/templates/%s", slow);
        CHECK_INT(req("GET", path, NULL, NULL, NULL, 0, NULL), 200);
        polls++;
        if (!two_started && strcmp(build_status(two, two_b, NULL), "waiting"))
            two_started = slow_building ? now_ms() - t0 : -1;
        if (!slow_building) {
            slow_end = now_ms() - t0;
            CHECK_STR(s, "ready");
            break;
        }
        usleep(200000);
    }
    printf("slow build: %d polls, slowest GET %.1f ms; ended %.1f s after the cancel; `two` started after %.0f ms\n", polls,
           max_get_ms, slow_end / 1e3, two_started);
    CHECK(max_get_ms < 500);
    CHECK(slow_end > 5000);   /* the 12 s step ran in full */
    CHECK(two_started > 0);   /* before the slow build ended: the cancel released its slot */
    CHECK(await_log(slow, slow_b, "slept", 1));
    CHECK(await_status(two, two_b, "ready", 60));
    /* a ready template starts sandboxes by its name */
    CHECK_INT(sandbox_from("two", sid, NULL, 0), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("GET", path, NULL, "templateID", out, sizeof(out), NULL), 200);
    CHECK_STR(out, two);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", sid);
    CHECK_INT(req("POST", path, "{\"cmd\":\"cat /two\"}", "stdout", out, sizeof(out), NULL), 200);
    CHECK_STR(out, "two\n");
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(req("DELETE", path, NULL, NULL, NULL, 0, NULL), 204);
    /* a failed build: no sandbox from it either */
    new_template("{\"name\":\"fail\",\"steps\":[{\"type\":\"run\",\"args\":[\"exit 3\"]}]}", fail, fail_b);
    CHECK(await_status(fail, fail_b, "error", 60));
    CHECK_INT(sandbox_from("fail", NULL, err, sizeof(err)), 409);
    CHECK_STR(err, "template is not ready (status error)");
    /* a built-in's name is nobody's */
    CHECK_INT(req("POST", "/templates", "{\"name\":\"base\"}", NULL, NULL, 0, NULL), 409);
    CHECK_INT(sandbox_from("base", NULL, NULL, 0), 201);
    /* after a restart the cancelled template is nowhere; the others are as they were */
    CHECK_INT(srv_stop(&S), 0);
    CHECK(srv_restart(&S) == 0);
    snprintf(path, sizeof(path), "/templates/%s", stuck);
    CHECK_INT(req("GET", path, NULL, NULL, NULL, 0, NULL), 404);
    resp_t r;
    api(&S, &r, H1, "GET", "/templates", NULL);
    CHECK(r.body && !strstr(r.body, stuck) && strstr(r.body, two));
    resp_free(&r);
    CHECK_INT(files_of(stuck), 0);
    CHECK_INT(sandbox_from("two", NULL, NULL, 0), 201);
    CHECK_INT(sandbox_from("fail", NULL, NULL, 0), 409);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n"
                      "templates:\n  max_parallel_builds: 2\n  build_timeout_s: 60\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    /* the built-in base is built at first start */
    char st[32] = "";
    for (int i = 0; i < 1200 && strcmp(st, "ready"); i++) {
        req("GET", "/templates/base", NULL, "buildStatus", st, sizeof(st), NULL);
        if (strcmp(st, "ready"))
            usleep(100000);
    }
    CHECK_STR(st, "ready");
    builds();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
