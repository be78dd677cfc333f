/* End to end: GET /metrics. The counters move with what the test does (requests by route and
 * status, sandboxes by state, operation latencies, rate-limit refusals, connections, store
 * writes), the credentials are checked, metrics.listen serves the same without them; then
 * Debian's `promtool check metrics` lints a scrape and a real `prometheus` on loopback scrapes
 * the daemon with the admin token as its bearer and answers a query over what it scraped.
 * Without promtool or prometheus (package prometheus; tools/setup.sh installs it) those two
 * parts are skipped, said so, and the test reports skipped (77) when all else passed. */
#include "../lel_test.h"
#include "harness.h"
#include "promtext.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "test-admin-token" /* the harness's LELANTOS_ADMIN_TOKEN */

static srv_t S;

static char *scrape(const char *hdr, long *status)
{
    resp_t r;
    const char *h[] = {hdr, NULL};
    if (http_req(&S, &r, H1, "GET", "/metrics", NULL, 0, hdr ? h : NULL) < 0)
        return NULL;
    *status = r.status;
    if (r.status == 200) {
        const char *ct = resp_header(&r, "content-type");
        CHECK(ct && !strncmp(ct, "text/plain; version=0.0.4", 25));
    }
    char *text = r.body ? strdup(r.body) : strdup("");
    resp_free(&r);
    return text;
}

static long call(const char *method, const char *path, const char *body, char *id)
{
    resp_t r;
    if (api(&S, &r, H1, method, path, body) < 0)
        return -1;
    long st = r.status;
    if (id)
        snprintf(id, 64, "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    return st;
}

/* What the test did shows in the counters. */
static void counters(void)
{
    char a[64], b[64], path[128];
    CHECK_INT(call("POST", "/sandboxes", "{}", a), 201);
    CHECK_INT(call("POST", "/sandboxes", "{\"templateID\":\"base\"}", b), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", a);
    CHECK_INT(call("POST", path, NULL, NULL), 204);
    CHECK_INT(call("POST", "/sandboxes", "{\"templateID\":\"base\"}", NULL), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", a);
    CHECK_INT(call("POST", path, "{}", NULL), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s", b);
    CHECK_INT(call("DELETE", path, NULL, NULL), 204);
    CHECK_INT(call("GET", "/sandboxes/nosuchsandboxatall00", NULL, NULL), 404);
    int limited = 0;
    for (int i = 0; i < 6; i++)
        limited += call("GET", "/api-keys", NULL, NULL) == 429;
    CHECK(limited > 0);

    long st = 0;
    char *t = scrape("X-Admin-Token: " TOKEN, &st);
    CHECK_INT(st, 200);
    if (!t)
        return;
    CHECK(prom_value(t, "lelantos_http_requests_total{method=\"POST\",route=\"/sandboxes\",status=\"201\"}") == 3);
    CHECK(prom_value(t, "lelantos_http_requests_total{method=\"GET\",route=\"/sandboxes/*\",status=\"404\"}") == 1);
    CHECK(prom_value(t, "lelantos_http_requests_total{method=\"DELETE\",route=\"/sandboxes/*\",status=\"204\"}") == 1);
    CHECK(prom_value(t, "lelantos_http_requests_total{method=\"GET\",route=\"/api-keys\",status=\"429\"}") == limited);
    CHECK(prom_value(t, "lelantos_http_request_duration_seconds_count{method=\"POST\",route=\"/sandboxes\"}") == 3);
    CHECK(prom_value(t, "lelantos_http_request_duration_seconds_bucket{method=\"POST\",route=\"/sandboxes\",le=\"+Inf\"}") == 3);
    CHECK(prom_value(t, "lelantos_sandboxes{state=\"running\"}") == 2);
    CHECK(prom_value(t, "lelantos_sandboxes{state=\"paused\"}") == 0);
    CHECK(prom_value(t, "lelantos_sandboxes{state=\"killed\"}") == 1);
    CHECK(prom_value(t, "lelantos_sandboxes_memory_bytes") == 2.0 * 256 * 1024 * 1024);
    CHECK(prom_value(t, "lelantos_sandbox_operation_duration_seconds_count{op=\"create\"}") == 3);
    CHECK(prom_value(t, "lelantos_sandbox_operation_duration_seconds_count{op=\"pause\"}") == 1);
    CHECK(prom_value(t, "lelantos_sandbox_operation_duration_seconds_count{op=\"resume\"}") == 1);
    CHECK(prom_value(t, "lelantos_sandbox_operation_duration_seconds_count{op=\"snapshot\"}") == 0);
    CHECK(prom_value(t, "lelantos_rate_limit_rejections_total{bucket=\"auth\"}") == limited);
    CHECK(prom_value(t, "lelantos_http_connections_open") >= 1);
    CHECK(prom_value(t, "lelantos_http_connections_accepted_total") >= 14);
    CHECK(prom_value(t, "lelantos_store_write_duration_seconds_count") >= 5);
    CHECK(prom_value(t, "lelantos_vm_exits_total{reason=\"io\"}") == 0); /* API-only: no VM ran */
    CHECK(prom_value(t, "lelantos_vms_running") == 0);
    CHECK(prom_value(t, "lelantos_vm_host_cpu_seconds_total") == 0);
    CHECK(prom_value(t, "lelantos_vm_host_memory_bytes{kind=\"private\"}") == 0);
    CHECK(prom_value(t, "lelantos_template_builds_total{result=\"ready\"}") == 0);
    CHECK(prom_value(t, "lelantos_host_memory_resident_bytes") > 1e6);
    CHECK(prom_value(t, "lelantos_host_cpu_seconds_total{mode=\"user\"}") >= 0);
    free(t);
}

/* a failed authentication costs the address a token of auth_per_s (1 here): one a second */
static void pace(void)
{
    struct timespec ts = {1, 100000000};
    nanosleep(&ts, NULL);
}

static void credentials(void)
{
    long st = 0;
    pace();
    free(scrape(NULL, &st));
    CHECK_INT(st, 401);
    pace();
    free(scrape("X-Admin-Token: wrong", &st));
    CHECK_INT(st, 401);
    free(scrape("Authorization: Bearer " TOKEN, &st));
    CHECK_INT(st, 200);
    char kh[128];
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key); /* a team's key is not the operator's */
    pace();
    free(scrape(kh, &st));
    CHECK_INT(st, 401);
}

/* metrics.listen: the same text without credentials, and nothing else there */
static void listen_port(int port)
{
    srv_t m = S;
    m.port = port;
    resp_t r;
    CHECK(http_req(&m, &r, H1, "GET", "/metrics", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "lelantos_sandboxes{state=\"running\"} 2"));
    resp_free(&r);
    CHECK(http_req(&m, &r, H1, "GET", "/sandboxes", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK(http_req(&m, &r, H2, "GET", "/metrics", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
}

/* promtool's lint of a real scrape: it exits 0 only when the text parses and follows the
 * naming conventions (units, _total on counters, HELP on every family). */
static void promtool(void)
{
    long st = 0;
    char *t = scrape("X-Admin-Token: " TOKEN, &st);
    CHECK(t != NULL);
    if (t)
        CHECK_INT(prom_lint(S.dir, t), 0);
    free(t);
}

static pid_t start_prometheus(int port, int prom_port)
{
    char yml[300], data[300], log[300], a1[400], a2[400], a3[100];
    snprintf(yml, sizeof(yml), "%s/prometheus.yml", S.dir);
    snprintf(data, sizeof(data), "%s/prometheus-data", S.dir);
    snprintf(log, sizeof(log), "%s/prometheus.log", S.dir);
    FILE *f = fopen(yml, "w");
    if (!f)
        return -1;
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: lelantos\n"
               "    metrics_path: /metrics\n    authorization:\n      credentials: %s\n"
               "    static_configs:\n      - targets: [\"127.0.0.1:%d\"]\n", TOKEN, port);
    fclose(f);
    snprintf(a1, sizeof(a1), "--config.file=%s", yml);
    snprintf(a2, sizeof(a2), "--storage.tsdb.path=%s", data);
    snprintf(a3, sizeof(a3), "--web.listen-address=127.0.0.1:%d", prom_port);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *o = freopen(log, "w", stdout);
        (void)o;
        dup2(1, 2);
        execlp("prometheus", "prometheus", a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Asks prometheus for `query` until its first sample reads `want` (or 60 s pass). */
static int query_until(int prom_port, const char *query, const char *want)
{
    srv_t p = S;
    p.port = prom_port;
    p.tls = 0;
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", query);
    for (int i = 0; i < 240; i++) {
        resp_t r;
        if (http_req(&p, &r, H1, "GET", path, NULL, 0, NULL) == 0 && r.status == 200) {
            json_t *res = json_object_get(json_object_get(r.json, "data"), "result");
            const char *v = json_string_value(json_array_get(json_object_get(json_array_get(res, 0), "value"), 1));
            int ok = v && !strcmp(v, want);
            resp_free(&r);
            if (ok)
                return 0;
        } else {
            resp_free(&r);
        }
        struct timespec ts = {0, 250000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void prometheus(void)
{
    int prom_port = srv_free_port();
    pid_t pid = start_prometheus(S.port, prom_port);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    int up = query_until(prom_port, "up%7Bjob%3D%22lelantos%22%7D", "1");
    CHECK_INT(up, 0);
    CHECK_INT(query_until(prom_port, "lelantos_sandboxes%7Bstate%3D%22running%22%7D", "2"), 0);
    CHECK_INT(query_until(prom_port, "lelantos_http_requests_total%7Broute%3D%22%2Fsandboxes%22%2Cstatus%3D%22201%22%7D", "3"), 0);
    if (up < 0) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "tail -20 %s/prometheus.log >&2", S.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "no prometheus log\n");
    }
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
}

int main(void)
{
    int mport = srv_free_port();
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "rate_limits:\n  auth_per_s: 1\nmetrics:\n  listen: \"127.0.0.1:%d\"\n", mport);
    if (srv_start(&S, yaml) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    counters();
    credentials();
    listen_port(mport);
    int skipped = 0;
    if (prom_have("promtool"))
        promtool();
    else
        skipped = printf("SKIPPED part: promtool is not installed (Debian package prometheus; tools/setup.sh)\n");
    if (prom_have("prometheus"))
        prometheus();
    else
        skipped = printf("SKIPPED part: prometheus is not installed (Debian package prometheus; tools/setup.sh)\n");
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    int rc = lel_test_finish();
    return rc == 0 && skipped ? 77 : rc;
}
