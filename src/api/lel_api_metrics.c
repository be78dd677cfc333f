/* The service's Prometheus metrics: the API layer's own counters (requests by route, method and
 * status with their latency, the sandbox operations' latency, rate-limit refusals), and the
 * text format of GET /metrics over those and the other components' counters (the frontend's
 * connections, the store's write latency, the VMs' exits, template builds, sandboxes by state,
 * the process's memory and CPU). Every counter is a relaxed atomic in the server object or in
 * the component that owns it, so recording costs an atomic add; a scrape reads them as they
 * are (each value exact, the set not one instant). metrics.listen serves the same text on an
 * address of its own, without credentials. */
#include "lel_api_int.h"

#include "../http/lel_http.h"
#include "../sandbox/lel_sandbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* the statuses counted one by one; the last slot is "other" */
static const int statuses[] = {0,   200, 201, 202, 204, 206, 304, 400, 401, 403, 404, 405,
                               409, 413, 416, 417, 429, 431, 500, 501, 502, 503, 504};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)

/* slots past the table's (lel__api_route_count() * 4 of them) */
enum { X_PORT = 0, X_PORT_HOST, X_ENVD, X_NONE, X_COUNT };
static const char *const extra_names[X_COUNT] = {"/sandboxes/*/ports/*/**", "<port>-<sandboxID>.<domain>",
                                                 "envd (E2b-Sandbox-Id)", "unmatched"};

enum op { OP_CREATE = 0, OP_PAUSE, OP_RESUME, OP_RESTORE, OP_SNAPSHOT, OP_FORK, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"create", "pause", "resume", "restore", "snapshot", "fork"};

enum rl { RL_API = 0, RL_AUTH, RL_FAIL, RL_ADMIN, RL_ENVD, RL_UPLOAD, RL_COUNT };
static const char *const rl_names[RL_COUNT] = {"api", "auth", "failed_auth", "admin", "envd", "upload"};

struct lel_api_stats {
    size_t nslots;
    atomic_ullong *count; /* nslots * NSTATUS */
    lel_hist_t *lat;      /* nslots */
    lel_hist_t ops[OP_COUNT];
    atomic_ullong rl[RL_COUNT];
    lel_http_t *listen_http; /* metrics.listen's frontend, or NULL */
    lel_config_t listen_cfg; /* its configuration (it must outlive the frontend) */
};

int lel__api_stats_new(lel_server_t *srv)
{
    struct lel_api_stats *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->nslots = lel__api_route_count() * 4 + X_COUNT;
    st->count = calloc(st->nslots * NSTATUS, sizeof(*st->count));
    st->lat = calloc(st->nslots, sizeof(*st->lat));
    if (!st->count || !st->lat) {
        free(st->count);
        free(st->lat);
        free(st);
        return -ENOMEM;
    }
    srv->api_stats = st;
    return 0;
}

void lel__api_stats_free(lel_server_t *srv)
{
    struct lel_api_stats *st = srv->api_stats;
    if (!st)
        return;
    free(st->count);
    free(st->lat);
    free(st);
    srv->api_stats = NULL;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < NSTATUS - 1; i++)
        if (statuses[i] == status)
            return i;
    return NSTATUS - 1;
}

static size_t slot_of(const struct lel_api_stats *st, const lel_call_t *c)
{
    size_t table = st->nslots - X_COUNT;
    if (c->route == R_SBX_PORT)
        return table + X_PORT;
    if (c->route == R_PORT_PUBLIC)
        return table + X_PORT_HOST;
    if (LEL_ROUTE_IS_ENVD(c->route))
        return table + X_ENVD;
    if (c->route_slot > 0 && (size_t)c->route_slot <= table)
        return (size_t)c->route_slot - 1;
    return table + X_NONE;
}

static int op_of(const lel_call_t *c)
{
    if (c->status < 200 || c->status > 299)
        return -1;
    switch (c->route) {
    case R_SBX_CREATE: return OP_CREATE;
    case R_SBX_PAUSE: return OP_PAUSE;
    case R_SBX_RESUME: return OP_RESUME;
    case R_SBX_CONNECT: return c->status == 201 ? OP_RESUME : -1; /* 201: it resumed a paused one */
    case R_SBX_RESTORE: return OP_RESTORE;
    case R_SBX_SNAPSHOT: case R_SBX_SNAPSHOTS: return OP_SNAPSHOT;
    case R_SBX_FORK: return OP_FORK;
    default: return -1;
    }
}

void lel_api_finished(void *ctx, const lel_call_t *c, uint64_t us)
{
    lel_server_t *srv = ctx;
    struct lel_api_stats *st = srv->api_stats;
    size_t slot = slot_of(st, c);
    atomic_fetch_add_explicit(&st->count[slot * NSTATUS + status_index(c->status)], 1, memory_order_relaxed);
    lel_hist_add(&st->lat[slot], us);
    int op = op_of(c);
    if (op >= 0)
        lel_hist_add(&st->ops[op], us);
}

void lel__api_stats_rate_limited(lel_server_t *srv, const char *bucket)
{
    static const char *const prefixes[RL_COUNT] = {"api:", "auth:", "fail:", "admin:", "envd:", "upload:"};
    if (!srv->api_stats) /* the fuzz target's stand-in server has none */
        return;
    for (int i = 0; i < RL_COUNT; i++)
        if (!strncmp(bucket, prefixes[i], strlen(prefixes[i]))) {
            atomic_fetch_add_explicit(&srv->api_stats->rl[i], 1, memory_order_relaxed);
            return;
        }
}

/* ---- the text format ---- */

static unsigned long long ld(const atomic_ullong *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; `labels` is "" or `k="v",` pairs ending in a comma. */
static void hist(FILE *f, const char *name, const char *labels, const lel_hist_t *h)
{
    static const uint64_t bounds[LEL_HIST_BUCKETS - 1] = {LEL_HIST_BOUNDS_US};
    unsigned long long cum = 0;
    for (int i = 0; i < LEL_HIST_BUCKETS; i++) {
        cum += ld(&h->n[i]);
        if (i < LEL_HIST_BUCKETS - 1)
            fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, (double)bounds[i] / 1e6, cum);
        else
            fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    }
    int n = (int)strlen(labels);
    if (n) /* without the comma that ends the pairs */
        fprintf(f, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name, n - 1, labels, (double)ld(&h->sum_us) / 1e6,
                name, n - 1, labels, cum);
    else
        fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, (double)ld(&h->sum_us) / 1e6, name, cum);
}

static unsigned long long hist_count(const lel_hist_t *h)
{
    unsigned long long n = 0;
    for (int i = 0; i < LEL_HIST_BUCKETS; i++)
        n += ld(&h->n[i]);
    return n;
}

/* The labels of a slot: method="...",route="...", (a route pattern never holds a quote or a backslash). */
static void slot_labels(const struct lel_api_stats *st, size_t slot, char *buf, size_t n)
{
    static const char *const methods[4] = {"GET", "POST", "PUT", "DELETE"};
    size_t table = st->nslots - X_COUNT;
    const char *pattern = "";
    unsigned m = 0;
    if (slot < table) {
        lel__api_route_at(slot / 4, &pattern, &m);
        snprintf(buf, n, "method=\"%s\",route=\"%s\",", methods[slot % 4], pattern);
    } else {
        snprintf(buf, n, "method=\"any\",route=\"%s\",", extra_names[slot - table]);
    }
}

static void http_series(FILE *f, const struct lel_api_stats *st)
{
    char labels[160];
    head(f, "lelantos_http_requests_total", "counter",
         "HTTP requests answered, by route, method and status (0: the client went away before an answer).");
    for (size_t s = 0; s < st->nslots; s++)
        for (size_t i = 0; i < NSTATUS; i++) {
            unsigned long long v = ld(&st->count[s * NSTATUS + i]);
            if (!v)
                continue;
            slot_labels(st, s, labels, sizeof(labels));
            if (i < NSTATUS - 1)
                fprintf(f, "lelantos_http_requests_total{%sstatus=\"%d\"} %llu\n", labels, statuses[i], v);
            else
                fprintf(f, "lelantos_http_requests_total{%sstatus=\"other\"} %llu\n", labels, v);
        }
    head(f, "lelantos_http_request_duration_seconds", "histogram",
         "Time from a request's head to the end of its answer, by route and method.");
    for (size_t s = 0; s < st->nslots; s++)
        if (hist_count(&st->lat[s])) {
            slot_labels(st, s, labels, sizeof(labels));
            hist(f, "lelantos_http_request_duration_seconds", labels, &st->lat[s]);
        }
}

/* lelantosd's resident memory (every VM's guest memory is mapped in it) from /proc/self/statm. */
static long long resident_bytes(void)
{
    long long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/* What the VMs (sandboxes, the template pools' ready VMs, template builds) take of the host:
 * their vCPU threads' CPU clocks and their guest RAM's pages in this process's page table. */
static void vm_series(FILE *f, lel_server_t *srv)
{
    struct lel_vm_usage u;
    lel_vm_stats_usage(&srv->vm_stats, &u); /* on failure the memory reads 0, said in its help */
    head(f, "lelantos_vms_running", "gauge", "VMs whose vCPU thread runs (sandboxes, template pools' ready VMs, builds).");
    fprintf(f, "lelantos_vms_running %llu\n", (unsigned long long)u.vms);
    head(f, "lelantos_vm_host_cpu_seconds_total", "counter",
         "Host CPU time of the VMs' vCPU threads (guest run time and exit handling), VMs that ended included.");
    fprintf(f, "lelantos_vm_host_cpu_seconds_total %.6f\n", (double)u.cpu_ns / 1e9);
    head(f, "lelantos_vm_host_memory_bytes", "gauge",
         "Host memory mapped into the running VMs' guest RAM: private (anonymous, each VM's own) and shared (a memory "
         "file's pages in the page cache, counted once per VM that maps them); 0 when /proc/self/pagemap is unreadable.");
    fprintf(f, "lelantos_vm_host_memory_bytes{kind=\"private\"} %llu\n", (unsigned long long)u.private_bytes);
    fprintf(f, "lelantos_vm_host_memory_bytes{kind=\"shared\"} %llu\n", (unsigned long long)u.shared_bytes);
}

static void host_series(FILE *f, lel_server_t *srv)
{
    struct lel_sandbox_counts n;
    lel_sandbox_count(srv, &n);
    static const char *const states[3] = {"running", "paused", "killed"};
    head(f, "lelantos_sandboxes", "gauge", "Sandboxes by state (killed ones until their retention ends).");
    for (int i = 0; i < 3; i++)
        fprintf(f, "lelantos_sandboxes{state=\"%s\"} %lld\n", states[i], n.by_state[i]);
    head(f, "lelantos_sandboxes_memory_bytes", "gauge", "Guest memory the running sandboxes were given.");
    fprintf(f, "lelantos_sandboxes_memory_bytes %lld\n", n.running_mem_bytes);
    head(f, "lelantos_sandboxes_vcpus", "gauge", "vCPUs the running sandboxes were given.");
    fprintf(f, "lelantos_sandboxes_vcpus %lld\n", n.running_vcpus);
    long long rss = resident_bytes();
    head(f, "lelantos_host_memory_resident_bytes", "gauge",
         "Host memory lelantosd holds, the sandboxes' guest memory and VM state included (they live in its process).");
    fprintf(f, "lelantos_host_memory_resident_bytes %lld\n", rss < 0 ? 0 : rss);
    vm_series(f, srv);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    head(f, "lelantos_host_cpu_seconds_total", "counter",
         "Host CPU lelantosd used, the sandboxes' vCPU threads included, by mode.");
    fprintf(f, "lelantos_host_cpu_seconds_total{mode=\"user\"} %ld.%06ld\n", (long)ru.ru_utime.tv_sec,
            (long)ru.ru_utime.tv_usec);
    fprintf(f, "lelantos_host_cpu_seconds_total{mode=\"system\"} %ld.%06ld\n", (long)ru.ru_stime.tv_sec,
            (long)ru.ru_stime.tv_usec);
}

static void component_series(FILE *f, lel_server_t *srv)
{
    const struct lel_api_stats *st = srv->api_stats;
    char labels[64];
    head(f, "lelantos_sandbox_operation_duration_seconds", "histogram",
         "Successful sandbox operations from request to answer, by operation (connect that resumed counts as resume).");
    for (int i = 0; i < OP_COUNT; i++) {
        snprintf(labels, sizeof(labels), "op=\"%s\",", op_names[i]);
        hist(f, "lelantos_sandbox_operation_duration_seconds", labels, &st->ops[i]);
    }
    head(f, "lelantos_template_builds_total", "counter", "Template builds that ended, by result.");
    fprintf(f, "lelantos_template_builds_total{result=\"ready\"} %llu\n", ld(&srv->builds_done[0]));
    fprintf(f, "lelantos_template_builds_total{result=\"error\"} %llu\n", ld(&srv->builds_done[1]));
    head(f, "lelantos_template_builds_running", "gauge", "Template builds holding a build slot now.");
    fprintf(f, "lelantos_template_builds_running %d\n", atomic_load(&srv->builds_running));
    head(f, "lelantos_store_write_duration_seconds", "histogram",
         "Writes into the store (RocksDB), a synced one with its WAL fsync.");
    hist(f, "lelantos_store_write_duration_seconds", "", lel_store_hist(srv->store, 0));
    head(f, "lelantos_store_wal_sync_duration_seconds", "histogram", "The group commit's WAL fsyncs.");
    hist(f, "lelantos_store_wal_sync_duration_seconds", "", lel_store_hist(srv->store, 1));
    head(f, "lelantos_vm_exits_total", "counter", "VM exits the vCPU threads handled, by reason.");
    for (int i = 0; i < LEL_VMX_COUNT; i++)
        fprintf(f, "lelantos_vm_exits_total{reason=\"%s\"} %llu\n", lel_vm_exit_name(i), ld(&srv->vm_stats.n[i]));
    head(f, "lelantos_rate_limit_rejections_total", "counter", "Requests refused with 429, by rate-limit bucket.");
    for (int i = 0; i < RL_COUNT; i++)
        fprintf(f, "lelantos_rate_limit_rejections_total{bucket=\"%s\"} %llu\n", rl_names[i], ld(&st->rl[i]));
    struct lel_http_stats hs = {0, 0};
    if (srv->http)
        lel_http_stats(srv->http, &hs);
    head(f, "lelantos_http_connections_open", "gauge", "Client connections open on the API listeners.");
    fprintf(f, "lelantos_http_connections_open %lld\n", hs.conns_open);
    head(f, "lelantos_http_connections_accepted_total", "counter", "Client connections accepted on the API listeners.");
    fprintf(f, "lelantos_http_connections_accepted_total %lld\n", hs.conns_accepted);
}

void lel__api_metrics_answer(lel_server_t *srv, lel_call_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        lel_call_error(c, 503, "out of memory");
        return;
    }
    http_series(f, srv->api_stats);
    component_series(f, srv);
    host_series(f, srv);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        lel_call_error(c, 503, "out of memory");
        return;
    }
    c->status = 200;
    c->raw = buf;
    c->raw_len = len;
    c->raw_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- metrics.listen ---- */

static int listen_admit(void *ctx, lel_call_t *c)
{
    (void)ctx;
    lel_call_error(c, 405, "this address serves only GET /metrics");
    c->allow = "GET";
    return 405;
}

static void listen_dispatch(void *ctx, lel_call_t *c)
{
    size_t n = strlen(c->path);
    while (n > 1 && c->path[n - 1] == '/')
        n--;
    if (n != 8 || strncmp(c->path, "/metrics", 8))
        lel_call_error(c, 404, "this address serves only GET /metrics");
    else if (c->method != LEL_M_GET) {
        c->allow = "GET";
        lel_call_error(c, 405, "method not allowed on /metrics (allowed: GET)");
    } else
        lel__api_metrics_answer(ctx, c);
    lel_call_done(c);
}

int lel_api_metrics_listen(lel_server_t *srv, char *err, size_t errlen)
{
    struct lel_api_stats *st = srv->api_stats;
    if (!*srv->cfg.metrics_listen)
        return 0;
    static const lel_http_handlers_t hd = {listen_admit, listen_dispatch, NULL};
    lel_config_t *lc = &st->listen_cfg;
    if (lel_config_init(lc) < 0 || lel_config_set_listen(lc, srv->cfg.metrics_listen) < 0) {
        snprintf(err, errlen, "config key 'metrics.listen': '%s' is not ADDR:PORT", srv->cfg.metrics_listen);
        lel_config_free(lc);
        return -EINVAL;
    }
    lc->http_threads = 1;
    char why[200];
    int r = lel_http_start(lc, &hd, srv, &st->listen_http, why, sizeof(why));
    if (r < 0) {
        snprintf(err, errlen, "metrics.listen %s: %s", srv->cfg.metrics_listen, why);
        lel_config_free(lc);
        st->listen_http = NULL;
    }
    return r;
}

void lel_api_metrics_stop(lel_server_t *srv)
{
    struct lel_api_stats *st = srv->api_stats;
    if (!st || !st->listen_http)
        return;
    lel_http_stop(st->listen_http);
    st->listen_http = NULL;
    lel_config_free(&st->listen_cfg);
}
