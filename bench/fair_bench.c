/* Benchmark (not a test): fairness under overload. Team C's GET /sandboxes/{id} latency, alone
 * and while (a) team A's key sends 10x its rate limit (most of it answered 429) and (b) team B
 * creates and kills sandboxes in a loop (one at a time, waiting as a 429 tells it), in the same
 * run on the same daemon, in alternating one-second windows; prints
 * p50/p99 of both phases and the p99 ratio (goal: <= 2). Sandboxes are microVMs where
 * /dev/kvm works (else API-only: LEL_BENCH_BACKEND=none forces it).
 * Usage: fair_bench [seconds per phase, default 10] [A's rate limit per s, default 100];
 * LEL_BENCH_ONLY=flood|churn runs one of the two loads alone. The probe (team C's thread) asks
 * for the same short scheduler slice as the daemon's loop threads (lel_thread_interactive): on
 * this one shared host its own wait for a core behind the guests' vCPU threads would otherwise
 * be counted as the daemon's (a client elsewhere has no such wait); LEL_BENCH_PROBE_SLICE=0
 * leaves it at the default, and both figures are worth printing in a note. */
#include "../src/common/lel_util.h"
#include "../tests/e2e/harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static srv_t S;
static char key_b[64], key_c[64], path_a[96], path_c[96];
static atomic_int load_on, stop_all;
static atomic_long a_sent, a_429, b_created, b_failed;
static double rate_a = 100;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0)
        usleep((useconds_t)(d * 1e6));
}

/* Team A: its key at 10x its limit, from 4 threads, paced. */
static void *flood(void *arg)
{
    (void)arg;
    double step = 4.0 / (10 * rate_a), next = now_s();
    while (!atomic_load(&stop_all)) {
        if (!atomic_load(&load_on)) {
            usleep(10000);
            next = now_s();
            continue;
        }
        resp_t r;
        if (api(&S, &r, H1, "GET", path_a, NULL) == 0) {
            atomic_fetch_add(&a_sent, 1);
            if (r.status == 429)
                atomic_fetch_add(&a_429, 1);
        }
        resp_free(&r);
        next += step;
        sleep_until(next);
    }
    return NULL;
}

/* Team B: create a sandbox, kill it, again. */
static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_all)) {
        if (!atomic_load(&load_on)) {
            usleep(10000);
            continue;
        }
        resp_t r;
        api_key(&S, &r, H1, key_b, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":60}");
        if (r.status == 201) {
            char p[96];
            snprintf(p, sizeof(p), "/sandboxes/%s", jstr(&r, "sandboxID"));
            resp_free(&r);
            api_key(&S, &r, H1, key_b, "DELETE", p, NULL);
            atomic_fetch_add(&b_created, 1);
        } else {
            if (atomic_fetch_add(&b_failed, 1) == 0)
                fprintf(stderr, "team B's first refusal: %ld %s\n", r.status, r.body ? r.body : "");
            if (r.status == 429) /* as a client does: wait as told */
                usleep(1000000 * (useconds_t)(atoi(resp_header(&r, "retry-after") ? resp_header(&r, "retry-after") : "1")));
        }
        resp_free(&r);
    }
    return NULL;
}

static void *idle(void *arg)
{
    (void)arg;
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Team C: 100 requests/s for 2 x `secs`, in windows of a second with the load off and on in
 * turn (the host's other work then falls on both alike); each latency (ms) goes to `lat[0]`
 * (alone) or `lat[1]` (with load), sorted, their counts in n[]. */
static void probe(double secs, double *lat[2], int n[2], int cap, int bad[2])
{
    const char *sl = getenv("LEL_BENCH_PROBE_SLICE");
    if (!sl || strcmp(sl, "0"))
        lel_thread_interactive();
    double next = now_s(), start = next, end = next + 2 * secs;
    n[0] = n[1] = bad[0] = bad[1] = 0;
    while (now_s() < end) {
        int w = ((int)(now_s() - start)) & 1;
        atomic_store(&load_on, w);
        if (now_s() - start - (int)(now_s() - start) < 0.2) { /* the first 200 ms of a window settle */
            usleep(20000);
            next = now_s();
            continue;
        }
        resp_t r;
        double t0 = now_s();
        int rc = api_key(&S, &r, H1, key_c, "GET", path_c, NULL);
        if (n[w] < cap)
            lat[w][n[w]++] = (now_s() - t0) * 1e3;
        if (rc < 0 || r.status != 200)
            bad[w]++;
        resp_free(&r);
        next += 0.01;
        sleep_until(next);
    }
    atomic_store(&load_on, 0);
    for (int w = 0; w < 2; w++)
        qsort(lat[w], (size_t)n[w], sizeof(double), cmp);
}

static double pct(const double *v, int n, double p)
{
    int i = (int)(n * p);
    return n ? v[i < n ? i : n - 1] : 0;
}

/* A team from the admin API: its key into `key`, a sandbox of it into `path` (when asked). */
static int team(const char *name, char *key, char *path)
{
    resp_t r;
    char body[96];
    const char *h[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    if (http_req(&S, &r, H1, "POST", "/admin/teams", body, strlen(body), h) < 0 || r.status != 201)
        return -1;
    snprintf(key, 64, "%s", jstr(&r, "apiKey"));
    resp_free(&r);
    if (!path)
        return 0;
    api_key(&S, &r, H1, key, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":3600}");
    if (r.status != 201)
        return -1;
    snprintf(path, 96, "/sandboxes/%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    return 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 10;
    rate_a = argc > 2 ? atof(argv[2]) : 100;
    const char *backend = getenv("LEL_BENCH_BACKEND");
    if (!backend)
        backend = access("/dev/kvm", R_OK | W_OK) == 0 ? "auto" : "none";
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "vmm:\n  backend: %s\nrate_limits:\n  general_per_s: %g\n  auth_per_s: 1000\nteams:\n  max_sandboxes: 50\n",
             backend, rate_a);
    if (srv_start(&S, yaml) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    for (int i = 0; i < 600; i++) { /* the built-in template is built at first start */
        resp_t r;
        api(&S, &r, H1, "GET", "/templates/base", NULL);
        int ready = !strcmp(jstr(&r, "buildStatus"), "ready");
        resp_free(&r);
        if (ready || !strcmp(backend, "none"))
            break;
        usleep(100000);
    }
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":3600}");
    snprintf(path_a, sizeof(path_a), "/sandboxes/%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    if (team("churner", key_b, NULL) < 0 || team("victim", key_c, path_c) < 0) {
        fprintf(stderr, "cannot make the teams\n");
        srv_stop(&S);
        return 1;
    }
    pthread_t th[5];
    /* LEL_BENCH_ONLY=flood|churn: one of the two loads alone, to tell their shares apart */
    const char *only = getenv("LEL_BENCH_ONLY");
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, only && !strcmp(only, "churn") ? idle : flood, NULL);
    pthread_create(&th[4], NULL, only && !strcmp(only, "flood") ? idle : churn, NULL);
    int cap = (int)(secs * 100) + 10, n[2], bad[2];
    double *lat[2] = {malloc(sizeof(double) * (size_t)cap), malloc(sizeof(double) * (size_t)cap)};
    double t0 = now_s();
    probe(secs, lat, n, cap, bad);
    double dt = (now_s() - t0) / 2; /* the load ran half the time */
    atomic_store(&stop_all, 1);
    for (int i = 0; i < 5; i++)
        pthread_join(th[i], NULL);
    printf("backend %s; team A's key: limit %.0f/s, sent %.0f/s (%.1fx), %ld%% answered 429; team B: %.1f sandboxes "
           "created and killed per s (%ld refused)\n",
           backend, rate_a, atomic_load(&a_sent) / dt, atomic_load(&a_sent) / dt / rate_a,
           atomic_load(&a_sent) ? 100 * atomic_load(&a_429) / atomic_load(&a_sent) : 0, atomic_load(&b_created) / dt,
           atomic_load(&b_failed));
    printf("team C GET /sandboxes/{id}, alone:     p50 %.2f ms, p99 %.2f ms (n=%d, %d not 200)\n", pct(lat[0], n[0], 0.5),
           pct(lat[0], n[0], 0.99), n[0], bad[0]);
    printf("team C GET /sandboxes/{id}, with load: p50 %.2f ms, p99 %.2f ms (n=%d, %d not 200)\n", pct(lat[1], n[1], 0.5),
           pct(lat[1], n[1], 0.99), n[1], bad[1]);
    printf("p99 ratio (load / alone): %.2f (goal <= 2; probe slice %s)\n", pct(lat[1], n[1], 0.99) / pct(lat[0], n[0], 0.99),
           getenv("LEL_BENCH_PROBE_SLICE") && !strcmp(getenv("LEL_BENCH_PROBE_SLICE"), "0") ? "default" : "short");
    free(lat[0]);
    free(lat[1]);
    srv_stop(&S);
    srv_cleanup(&S);
    return 0;
}
