/* Cluster membership (lel_cluster.h): the lease, this node's record and the others'. */
#include "lel_cluster.h"

#include "../common/lel_codec.h"
#include "../common/lel_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lel_cluster {
    lel_server_t *srv;
    lel_etcd_t *etcd;
    char name[128], url[256], prefix[128], node_key[300];
    int ttl, tick_ms;
    int64_t started_ms;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock; /* guards everything below, and wakes the thread to stop */
    pthread_cond_t cond;
    int stop;
    int writable;
    char why[512];
    json_t *nodes; /* array of records, as last read */
    int live;
    int64_t lease; /* thread only */
};

/* MemAvailable in MiB (what a new sandbox can have without pushing others out). */
static long free_memory_mb(long *total)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long avail = 0, kb;
    *total = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemTotal: %ld kB", &kb) == 1)
            *total = kb / 1024;
        else if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
            avail = kb / 1024;
    }
    if (f)
        fclose(f);
    return avail;
}

static void add_template(void *ctx, const char *id, void *value)
{
    (void)value;
    json_array_append_new(ctx, json_string(id));
}

static json_t *own_record(struct lel_cluster *cl)
{
    long total, avail = free_memory_mb(&total);
    json_t *tpl = json_array();
    lel_registry_foreach(cl->srv->templates, add_template, tpl);      /* ids */
    lel_registry_foreach(cl->srv->template_names, add_template, tpl); /* "<teamID>/<name>" */
    json_t *rec = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:s}", "name", cl->name, "url", cl->url, "cores",
                            (int)sysconf(_SC_NPROCESSORS_ONLN), "memoryMB", (int)total, "freeMemoryMB", (int)avail,
                            "sandboxes", (int)lel_registry_count(cl->srv->sandboxes), "templates", tpl, "version",
                            LEL_VERSION);
    if (rec) {
        lel_json_set_time(rec, "startedAt", cl->started_ms);
        lel_json_set_time(rec, "updatedAt", lel_now_ms());
    }
    return rec;
}

static void set_state(struct lel_cluster *cl, int ok, const char *why)
{
    pthread_mutex_lock(&cl->lock);
    if (!ok && cl->writable)
        fprintf(stderr, "lelantosd: cluster: lost etcd: %s; creates are refused until it is back\n", why);
    else if (ok && !cl->writable && cl->why[0])
        fprintf(stderr, "lelantosd: cluster: etcd is back\n");
    cl->writable = ok;
    snprintf(cl->why, sizeof(cl->why), "%s", ok ? "" : why);
    pthread_mutex_unlock(&cl->lock);
}

/* Renews (or replaces) the lease and rewrites the record. 0 or -errno with err filled. */
static int refresh_self(struct lel_cluster *cl, char *err, size_t errlen)
{
    int r = 0, ttl;
    if (cl->lease && (r = lel_etcd_lease_keepalive(cl->etcd, cl->lease, &ttl, err, errlen)) == -ENOENT) {
        fprintf(stderr, "lelantosd: cluster: %s; registering again with a new lease\n", err);
        cl->lease = 0; /* gone: its keys were deleted; never write under it again */
    } else if (cl->lease && r < 0) {
        return r;
    }
    if (!cl->lease && (r = lel_etcd_lease_grant(cl->etcd, cl->ttl, &cl->lease, NULL, err, errlen)) < 0)
        return r;
    json_t *rec = own_record(cl);
    char *buf = NULL;
    size_t len = 0;
    if (!rec || lel_codec_encode(rec, LEL_FMT_MSGPACK, &buf, &len) < 0) {
        json_decref(rec);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    json_decref(rec);
    r = lel_etcd_put(cl->etcd, cl->node_key, buf, len, cl->lease, NULL, err, errlen);
    free(buf);
    return r;
}

/* Reads every node's record (serializable: answers from the member's copy without quorum). */
static int read_nodes(struct lel_cluster *cl, char *err, size_t errlen)
{
    char prefix[200];
    struct lel_etcd_range rg;
    snprintf(prefix, sizeof(prefix), "%snodes/", cl->prefix);
    int r = lel_etcd_range(cl->etcd, prefix, 1, 0, 1, &rg, err, errlen);
    if (r < 0)
        return r;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < rg.n; i++) {
        json_t *rec = NULL;
        char e2[128];
        if (lel_codec_decode(rg.kvs[i].value, rg.kvs[i].len, LEL_FMT_MSGPACK, &rec, e2, sizeof(e2)) < 0 ||
            !json_is_object(rec)) {
            json_decref(rec);
            continue; /* not ours to judge: skipped */
        }
        json_object_set_new(rec, "self", json_boolean(!strcmp(rg.kvs[i].key, cl->node_key)));
        json_object_set_new(rec, "state", json_string("ready"));
        json_array_append_new(arr, rec);
    }
    lel_etcd_range_free(&rg);
    if (!arr)
        return -ENOMEM;
    pthread_mutex_lock(&cl->lock);
    json_decref(cl->nodes);
    cl->nodes = arr;
    cl->live = json_array_size(arr) ? (int)json_array_size(arr) : 1;
    pthread_mutex_unlock(&cl->lock);
    return 0;
}

static int tick(struct lel_cluster *cl)
{
    char err[512];
    int r = refresh_self(cl, err, sizeof(err));
    set_state(cl, r == 0, err);
    if (read_nodes(cl, err, sizeof(err)) < 0 && r == 0)
        fprintf(stderr, "lelantosd: cluster: cannot read the nodes: %s\n", err);
    return r;
}

static void *cluster_thread(void *arg)
{
    struct lel_cluster *cl = arg;
    pthread_mutex_lock(&cl->lock);
    while (!cl->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)cl->tick_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&cl->cond, &cl->lock, &ts);
        if (cl->stop)
            break;
        pthread_mutex_unlock(&cl->lock);
        tick(cl);
        pthread_mutex_lock(&cl->lock);
    }
    pthread_mutex_unlock(&cl->lock);
    return NULL;
}

static int check_config(lel_server_t *srv, struct lel_cluster *cl, char *err, size_t errlen)
{
    const lel_config_t *c = &srv->cfg;
    if (!*c->cluster_secret) {
        snprintf(err, errlen, "config key 'cluster.secret' is required in cluster mode (or env LELANTOS_CLUSTER_SECRET)");
        return -EINVAL;
    }
    if (*c->cluster_node_name)
        snprintf(cl->name, sizeof(cl->name), "%s", c->cluster_node_name);
    else if (gethostname(cl->name, sizeof(cl->name)) < 0)
        snprintf(cl->name, sizeof(cl->name), "node");
    for (const char *p = cl->name; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x21) {
            snprintf(err, errlen, "config key 'cluster.node_name': '%s' has a '/' or a blank", cl->name);
            return -EINVAL;
        }
    if (*c->cluster_advertise_url)
        snprintf(cl->url, sizeof(cl->url), "%s", c->cluster_advertise_url);
    else
        snprintf(cl->url, sizeof(cl->url), "%s://%s", *c->tls_cert ? "https" : "http", c->listen[0]);
    size_t n = strlen(cl->url);
    while (n && cl->url[n - 1] == '/')
        cl->url[--n] = '\0';
    snprintf(cl->prefix, sizeof(cl->prefix), "%s", c->cluster_prefix);
    snprintf(cl->node_key, sizeof(cl->node_key), "%snodes/%s", cl->prefix, cl->name);
    cl->ttl = c->cluster_lease_ttl_s;
    cl->tick_ms = cl->ttl * 1000 / 3;
    return 0;
}

int lel_cluster_start(lel_server_t *srv, struct lel_cluster **out, char *err, size_t errlen)
{
    struct lel_cluster *cl = calloc(1, sizeof(*cl));
    const lel_config_t *c = &srv->cfg;
    if (!cl)
        return -ENOMEM;
    cl->srv = srv;
    cl->started_ms = lel_now_ms();
    pthread_mutex_init(&cl->lock, NULL);
    pthread_cond_init(&cl->cond, NULL);
    int r = check_config(srv, cl, err, errlen);
    long timeout = cl->ttl * 1000L / 3;
    struct lel_etcd_opts o = {.endpoints = c->cluster_etcd, .nendpoints = c->ncluster_etcd,
                              .cacert = c->cluster_etcd_cacert, .cert = c->cluster_etcd_cert,
                              .key = c->cluster_etcd_key, .user = c->cluster_etcd_user,
                              .password = c->cluster_etcd_password,
                              .timeout_ms = timeout < 1000 ? 1000 : timeout > 5000 ? 5000 : timeout};
    if (r == 0 && (r = lel_etcd_new(&o, &cl->etcd)) < 0)
        snprintf(err, errlen, "cannot create the etcd client: %s", strerror(-r));
    /* the first registration: etcd must answer now, or the node does not start */
    int64_t until = lel_mono_ms() + cl->ttl * 1000L;
    char why[512] = "";
    while (r == 0 && (r = refresh_self(cl, why, sizeof(why))) < 0 && lel_mono_ms() < until)
        r = usleep(200000);
    if (r == 0 && (r = read_nodes(cl, why, sizeof(why))) < 0)
        snprintf(err, errlen, "cluster: cannot read the nodes from etcd: %s", why);
    else if (r < 0 && why[0])
        snprintf(err, errlen, "cluster: cannot register in etcd: %s", why);
    cl->writable = r == 0;
    if (r == 0 && (r = -pthread_create(&cl->thread, NULL, cluster_thread, cl)) < 0)
        snprintf(err, errlen, "cannot start the cluster thread");
    cl->thread_started = r == 0;
    if (r < 0) {
        lel_cluster_stop(cl);
        return r;
    }
    fprintf(stderr, "lelantosd: cluster: node '%s' (%s) registered, %d node(s) live\n", cl->name, cl->url, cl->live);
    *out = cl;
    return 0;
}

void lel_cluster_leave(struct lel_cluster *cl)
{
    if (!cl)
        return;
    if (cl->thread_started) {
        pthread_mutex_lock(&cl->lock);
        cl->stop = 1;
        pthread_cond_broadcast(&cl->cond);
        pthread_mutex_unlock(&cl->lock);
        pthread_join(cl->thread, NULL);
        cl->thread_started = 0;
    }
    char err[256];
    if (cl->lease && cl->etcd)
        lel_etcd_lease_revoke(cl->etcd, cl->lease, err, sizeof(err)); /* best effort: else it expires */
    cl->lease = 0;
}

void lel_cluster_stop(struct lel_cluster *cl)
{
    if (!cl)
        return;
    lel_cluster_leave(cl);
    lel_etcd_free(cl->etcd);
    json_decref(cl->nodes);
    pthread_cond_destroy(&cl->cond);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

int lel_cluster_writable(struct lel_cluster *cl, char *why, size_t n)
{
    pthread_mutex_lock(&cl->lock);
    int ok = cl->writable;
    if (!ok)
        snprintf(why, n, "%s", cl->why);
    pthread_mutex_unlock(&cl->lock);
    return ok;
}

json_t *lel_cluster_nodes(struct lel_cluster *cl)
{
    pthread_mutex_lock(&cl->lock);
    json_t *copy = json_deep_copy(cl->nodes);
    json_t *self = NULL;
    size_t i;
    json_array_foreach(copy, i, self)
    {
        if (json_is_true(json_object_get(self, "self")) && !cl->writable)
            json_object_set_new(self, "state", json_string("etcd-lost"));
    }
    pthread_mutex_unlock(&cl->lock);
    return copy ? copy : json_array();
}

int lel_cluster_live(struct lel_cluster *cl)
{
    pthread_mutex_lock(&cl->lock);
    int n = cl->live;
    pthread_mutex_unlock(&cl->lock);
    return n;
}

lel_etcd_t *lel_cluster_etcd(struct lel_cluster *cl)
{
    return cl->etcd;
}

const char *lel_cluster_prefix(struct lel_cluster *cl)
{
    return cl->prefix;
}

const char *lel_cluster_name(struct lel_cluster *cl)
{
    return cl->name;
}

int lel_cluster_node_url(struct lel_cluster *cl, const char *name, char *url, size_t n)
{
    size_t i;
    json_t *v;
    int found = 0;
    pthread_mutex_lock(&cl->lock);
    json_array_foreach(cl->nodes, i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "name")) ?: "", name)) {
            snprintf(url, n, "%s", json_string_value(json_object_get(v, "url")) ?: "");
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&cl->lock);
    return found;
}

/* The node's record lists the template (an id, or a name of the team's or a built-in). */
static int has_template(json_t *node, const char *team, const char *tpl)
{
    char a[300], b[300];
    size_t n = strlen(tpl), i;
    if (n > 8 && !strcmp(tpl + n - 8, ":default"))
        n -= 8;
    snprintf(a, sizeof(a), "%s/%.*s", team, (int)n, tpl);
    snprintf(b, sizeof(b), "%s/%.*s", LEL_BUILTIN_TEAM, (int)n, tpl);
    json_t *v;
    json_array_foreach(json_object_get(node, "templates"), i, v)
    {
        const char *t = json_string_value(v);
        if (t && ((strlen(t) == n && !strncmp(t, tpl, n)) || !strcmp(t, a) || !strcmp(t, b)))
            return 1;
    }
    return 0;
}

int lel_cluster_place(struct lel_cluster *cl, const char *team, const char *tpl, char *name, size_t nn, char *url,
                      size_t un)
{
    snprintf(name, nn, "%s", cl->name);
    snprintf(url, un, "%s", cl->url);
    if (!strcmp(cl->srv->cfg.cluster_placement, "local"))
        return 1;
    size_t i;
    json_t *v, *best = NULL;
    pthread_mutex_lock(&cl->lock);
    json_array_foreach(cl->nodes, i, v)
    {
        json_int_t f = json_integer_value(json_object_get(v, "freeMemoryMB"));
        json_int_t bf = best ? json_integer_value(json_object_get(best, "freeMemoryMB")) : 0;
        json_int_t sb = json_integer_value(json_object_get(v, "sandboxes"));
        json_int_t bsb = best ? json_integer_value(json_object_get(best, "sandboxes")) : 0;
        if (!has_template(v, team, tpl))
            continue; /* holders first: a node without it would fetch it (lel_template_travel.h) */
        if (!best || f > bf + 64 || (f >= bf - 64 && sb < bsb))
            best = v;
    }
    if (best) {
        snprintf(name, nn, "%s", json_string_value(json_object_get(best, "name")) ?: cl->name);
        snprintf(url, un, "%s", json_string_value(json_object_get(best, "url")) ?: cl->url);
    }
    pthread_mutex_unlock(&cl->lock);
    return !strcmp(name, cl->name);
}

int lel_cluster_holder(struct lel_cluster *cl, const char *team, const char *tpl, char *name, size_t nn, char *url,
                       size_t un)
{
    size_t i;
    json_t *v, *best = NULL;
    pthread_mutex_lock(&cl->lock);
    json_array_foreach(cl->nodes, i, v)
    {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (!n || !strcmp(n, cl->name) || !json_string_value(json_object_get(v, "url")) || !has_template(v, team, tpl))
            continue;
        if (!best || json_integer_value(json_object_get(v, "freeMemoryMB")) >
                         json_integer_value(json_object_get(best, "freeMemoryMB")))
            best = v;
    }
    if (best) {
        snprintf(name, nn, "%s", json_string_value(json_object_get(best, "name")));
        snprintf(url, un, "%s", json_string_value(json_object_get(best, "url")));
    }
    pthread_mutex_unlock(&cl->lock);
    return best != NULL;
}
