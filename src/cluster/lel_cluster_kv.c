/* Shared column families in etcd (lel_cluster_kv.h). */
#include "lel_cluster_kv.h"

#include "../common/lel_codec.h"
#include "../common/lel_registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TXN_MAX 64 /* ops per txn: etcd's --max-txn-ops is 128, comparisons count apart */

/* What this node last saw of a shared key: the revision of its last change, and whether that
 * change left it present. Deleted keys are kept so a late event for an older put is ignored. */
struct seen {
    int64_t rev;
    int exists;
};

/* A catalog change waiting for the publisher thread. */
struct pub {
    char *key; /* etcd key */
    char *val; /* the record with "node"; NULL: delete */
    size_t len;
    lel_call_t *call; /* a kill of a gone node's sandbox: answered once etcd has it (not retried) */
    json_t *rec;      /* ... and the record the catalog then holds for it */
    struct pub *next;
};

struct lel_cluster_kv {
    struct lel_cluster *cl;
    unsigned catalog; /* families published, not shared */
    lel_registry_t *remote; /* sandbox id -> json_t record of another node (under lock) */
    pthread_mutex_t pub_lock;
    pthread_cond_t pub_cond;
    struct pub *pub_head, *pub_tail;
    pthread_t pub_thread;
    int pub_started;
    lel_etcd_t *etcd;
    lel_store_t *st;
    unsigned mask;
    char prefix[160]; /* <cluster prefix>s/ */
    pthread_mutex_t lock; /* one shared write or applied change at a time; guards seen */
    lel_registry_t *seen; /* etcd key -> struct seen */
    int64_t rev;          /* the watch goes on from rev + 1 */
    lel_cluster_kv_cb cb;
    void *ctx;
    pthread_t thread;
    int started;
    volatile int stop;
};

static void etcd_key(struct lel_cluster_kv *kv, enum lel_cf cf, const char *key, char *out, size_t n)
{
    snprintf(out, n, "%s%s/%s", kv->prefix, lel_store_cf_name(cf), key);
}

/* The family and record key of an etcd key under our prefix; -1 when it is not one. */
static int split_key(struct lel_cluster_kv *kv, const char *ek, const char **key)
{
    size_t pl = strlen(kv->prefix);
    if (strncmp(ek, kv->prefix, pl))
        return -1;
    for (int cf = 0; cf < LEL_CF_COUNT; cf++) {
        const char *name = lel_store_cf_name(cf);
        size_t nl = strlen(name);
        if (((kv->mask | kv->catalog) & (1u << cf)) && !strncmp(ek + pl, name, nl) && ek[pl + nl] == '/') {
            *key = ek + pl + nl + 1;
            return cf;
        }
    }
    return -1;
}

static void get_seen(void *value, void *ctx)
{
    *(struct seen *)ctx = *(struct seen *)value;
}

/* Under kv->lock. */
static struct seen seen_of(struct lel_cluster_kv *kv, const char *ek)
{
    struct seen s = {0, 0};
    lel_registry_get(kv->seen, ek, get_seen, &s);
    return s;
}

static void set_seen(struct lel_cluster_kv *kv, const char *ek, int64_t rev, int exists)
{
    struct seen *s = lel_registry_get(kv->seen, ek, NULL, NULL);
    if (s) {
        s->rev = rev;
        s->exists = exists;
        return;
    }
    if (!(s = malloc(sizeof(*s))))
        return; /* only costs a comparison: the next write of the key fails once */
    s->rev = rev;
    s->exists = exists;
    if (lel_registry_put(kv->seen, ek, s) < 0)
        free(s);
}

struct prefix_del {
    const char *prefix;
    int64_t rev;
};

static void mark_deleted(void *ctx, const char *id, void *value)
{
    struct prefix_del *d = ctx;
    struct seen *s = value;
    if (!strncmp(id, d->prefix, strlen(d->prefix))) {
        s->rev = d->rev;
        s->exists = 0;
    }
}

/* The mirror's commit (lel_store.h): one txn comparing what this node saw, then the local apply. */
static void publish_op(struct lel_cluster_kv *kv, const struct lel_store_op *op);

static int commit(void *ctx, const struct lel_store_op *all, size_t nall, int (*apply)(void *arg), void *arg)
{
    struct lel_cluster_kv *kv = ctx;
    struct lel_store_op ops[TXN_MAX];
    size_t n = 0;
    for (size_t i = 0; i < nall; i++)
        if (!(kv->catalog & (1u << all[i].cf)) && n++ < TXN_MAX)
            ops[n - 1] = all[i];
    if (n < nall) { /* catalog changes: here first, etcd later */
        int r = n ? -E2BIG : apply(arg);
        if (n)
            return r; /* a batch mixing both is not made by anyone */
        for (size_t i = 0; r == 0 && i < nall; i++)
            publish_op(kv, &all[i]);
        return r;
    }
    if (n > TXN_MAX)
        return -E2BIG;
    struct lel_etcd_op eo[TXN_MAX];
    struct lel_etcd_cmp cmp[TXN_MAX];
    char keys[TXN_MAX][320], err[1024];
    size_t nc = 0;
    pthread_mutex_lock(&kv->lock);
    for (size_t i = 0; i < n; i++) {
        etcd_key(kv, ops[i].cf, ops[i].key, keys[i], sizeof(keys[i]));
        eo[i] = (struct lel_etcd_op){.type = ops[i].type == LEL_STORE_PUT ? LEL_ETCD_PUT
                                             : ops[i].type == LEL_STORE_DEL ? LEL_ETCD_DEL
                                                                            : LEL_ETCD_DEL_PREFIX,
                                     .key = keys[i], .val = ops[i].val, .len = ops[i].len};
        if (ops[i].type == LEL_STORE_DEL_PREFIX)
            continue;
        struct seen s = seen_of(kv, keys[i]);
        if (!s.exists && s.rev > 0 && ops[i].type == LEL_STORE_PUT) {
            /* deleted since the writer read it (a key revoked while its lastUsed was written): a
             * put would bring it back; the shared families' keys are random ids, never reused */
            pthread_mutex_unlock(&kv->lock);
            return -ECANCELED;
        }
        if (s.exists)
            cmp[nc++] = (struct lel_etcd_cmp){.key = keys[i], .rev = s.rev};
        else if (ops[i].type == LEL_STORE_PUT)
            cmp[nc++] = (struct lel_etcd_cmp){.key = keys[i], .create = 1, .rev = 0};
    }
    int64_t rev = 0;
    int r = lel_etcd_txn(kv->etcd, cmp, nc, eo, n, &rev, err, sizeof(err));
    if (r == 0) {
        for (size_t i = 0; i < n; i++) {
            if (ops[i].type == LEL_STORE_DEL_PREFIX) {
                struct prefix_del d = {keys[i], rev};
                lel_registry_foreach(kv->seen, mark_deleted, &d);
            } else {
                set_seen(kv, keys[i], rev, ops[i].type == LEL_STORE_PUT);
            }
        }
        r = apply(arg);
    } else {
        fprintf(stderr, "lelantosd: cluster: shared write refused: %s\n", err);
    }
    pthread_mutex_unlock(&kv->lock);
    return r;
}

/* The sandbox id of a catalog key "<teamID>/<sandboxID>". */
static const char *catalog_id(const char *key)
{
    const char *slash = strchr(key, '/');
    return slash ? slash + 1 : key;
}

/* Another node's sandbox record changed (under lock). Our own come back too: ignored. */
static void remote_change(struct lel_cluster_kv *kv, const char *key, const char *val, size_t len, int deleted)
{
    const char *id = catalog_id(key);
    json_t *rec = deleted ? NULL : lel_store_decode(val, len);
    const char *node = json_string_value(json_object_get(rec, "node"));
    if (!deleted && (!node || !strcmp(node, lel_cluster_name(kv->cl)))) {
        json_decref(rec);
        return;
    }
    json_decref(lel_registry_del(kv->remote, id));
    if (rec && lel_registry_put(kv->remote, id, rec) < 0)
        json_decref(rec);
}

/* Applies one change read from etcd (not this node's own, which is seen already). Under lock. */
static void apply_change(struct lel_cluster_kv *kv, const char *ek, const char *val, size_t len, int64_t rev,
                         int deleted)
{
    const char *key;
    int cf = split_key(kv, ek, &key);
    if (cf >= 0 && (kv->catalog & (1u << cf))) {
        remote_change(kv, key, val, len, deleted);
        return;
    }
    if (cf < 0 || seen_of(kv, ek).rev >= rev)
        return;
    json_t *old = NULL, *rec = deleted ? NULL : lel_store_decode(val, len);
    if (!deleted && !rec) {
        fprintf(stderr, "lelantosd: cluster: %s in etcd is not a record; ignored\n", ek);
        return;
    }
    if (lel_store_get(kv->st, cf, key, &old) < 0)
        old = NULL;
    lel_batch_t *b = lel_batch_new_local(kv->st);
    if (deleted)
        lel_batch_del(b, cf, key);
    else
        lel_batch_put_raw(b, cf, key, val, len);
    if (lel_store_write(kv->st, b) == 0) {
        set_seen(kv, ek, rev, !deleted);
        if (kv->cb && (rec || old))
            kv->cb(kv->ctx, cf, key, rec, old);
    }
    json_decref(rec);
    json_decref(old);
}

struct local_keys {
    struct lel_cluster_kv *kv;
    lel_registry_t *in_etcd;
    enum lel_cf cf;
    char **gone;
    size_t ngone, cap;
};

static int collect_gone(void *ctx, const char *key, json_t *value)
{
    (void)value;
    struct local_keys *lk = ctx;
    char ek[320];
    etcd_key(lk->kv, lk->cf, key, ek, sizeof(ek));
    if (lel_registry_get(lk->in_etcd, ek, NULL, NULL))
        return 0;
    if (lk->ngone == lk->cap) {
        size_t cap = lk->cap ? lk->cap * 2 : 16;
        char **n = realloc(lk->gone, cap * sizeof(*n));
        if (!n)
            return 1;
        lk->gone = n;
        lk->cap = cap;
    }
    if ((lk->gone[lk->ngone] = strdup(ek)))
        lk->ngone++;
    return 0;
}

struct remote_gone {
    struct lel_cluster_kv *kv;
    lel_registry_t *in_etcd;
    char **ids;
    size_t n, cap;
};

static void collect_remote_gone(void *ctx, const char *id, void *value)
{
    struct remote_gone *g = ctx;
    char ek[320];
    json_t *rec = value;
    snprintf(ek, sizeof(ek), "%ssandboxes/%s/%s", g->kv->prefix, json_string_value(json_object_get(rec, "teamID")), id);
    if (lel_registry_get(g->in_etcd, ek, NULL, NULL))
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        char **n = realloc(g->ids, cap * sizeof(*n));
        if (!n)
            return;
        g->ids = n;
        g->cap = cap;
    }
    if ((g->ids[g->n] = strdup(id)))
        g->n++;
}

/* Other nodes' records etcd no longer has are forgotten (under lock). */
static void remote_missing(struct lel_cluster_kv *kv, lel_registry_t *in_etcd)
{
    if (!kv->catalog)
        return;
    struct remote_gone g = {kv, in_etcd, NULL, 0, 0};
    lel_registry_foreach(kv->remote, collect_remote_gone, &g);
    for (size_t i = 0; i < g.n; i++) {
        json_decref(lel_registry_del(kv->remote, g.ids[i]));
        free(g.ids[i]);
    }
    free(g.ids);
}

/* Local records etcd no longer has are deleted (as a delete seen at `rev`). Under lock. */
static void drop_missing(struct lel_cluster_kv *kv, lel_registry_t *in_etcd, int64_t rev)
{
    remote_missing(kv, in_etcd);
    for (int cf = 0; cf < LEL_CF_COUNT; cf++) {
        if (!(kv->mask & (1u << cf)))
            continue;
        struct local_keys lk = {kv, in_etcd, cf, NULL, 0, 0};
        lel_store_scan(kv->st, cf, "", NULL, collect_gone, &lk);
        for (size_t i = 0; i < lk.ngone; i++) {
            apply_change(kv, lk.gone[i], NULL, 0, rev, 1);
            free(lk.gone[i]);
        }
        free(lk.gone);
    }
}

/* A full read: every shared record etcd has is applied where newer than what we saw, local ones
 * it lacks are deleted. kv->rev becomes the read's revision. */
static int resync(struct lel_cluster_kv *kv, char *err, size_t errlen)
{
    struct lel_etcd_range rg;
    int r = lel_etcd_range(kv->etcd, kv->prefix, 1, 0, 0, &rg, err, errlen);
    if (r < 0)
        return r;
    lel_registry_t *in_etcd = lel_registry_new();
    if (!in_etcd) {
        lel_etcd_range_free(&rg);
        return -ENOMEM;
    }
    pthread_mutex_lock(&kv->lock);
    for (size_t i = 0; i < rg.n; i++) {
        lel_registry_put(in_etcd, rg.kvs[i].key, kv); /* a set: the value is unused */
        apply_change(kv, rg.kvs[i].key, rg.kvs[i].value, rg.kvs[i].len, rg.kvs[i].mod_rev, 0);
    }
    drop_missing(kv, in_etcd, rg.revision);
    kv->rev = rg.revision;
    pthread_mutex_unlock(&kv->lock);
    lel_registry_free(in_etcd);
    lel_etcd_range_free(&rg);
    return 0;
}

struct seed {
    struct lel_cluster_kv *kv;
    enum lel_cf cf;
    struct lel_store_op ops[TXN_MAX];
    size_t n;
    int r;
};

static int seed_flush(struct seed *sd)
{
    static const char noval[1];
    int r = 0;
    if (sd->n) {
        lel_batch_t *b = lel_batch_new(sd->kv->st); /* through the mirror: etcd first, then here again */
        for (size_t i = 0; i < sd->n; i++)
            lel_batch_put_raw(b, sd->ops[i].cf, sd->ops[i].key, sd->ops[i].val ? sd->ops[i].val : noval, sd->ops[i].len);
        r = lel_store_write(sd->kv->st, b);
    }
    for (size_t i = 0; i < sd->n; i++) {
        free(sd->ops[i].key);
        free(sd->ops[i].val);
    }
    sd->n = 0;
    return r;
}

/* lel_store_scan gives decoded records; the mirror wants them encoded as stored: re-put. */
static int seed_one(void *ctx, const char *key, json_t *value)
{
    struct seed *sd = ctx;
    char *buf = NULL;
    size_t len = 0;
    json_t *copy = json_copy(value);
    if (!copy || json_object_set_new(copy, "_v", json_integer(LEL_STORE_VERSION)) < 0 ||
        lel_codec_encode(copy, LEL_FMT_MSGPACK, &buf, &len) < 0) {
        json_decref(copy);
        sd->r = -ENOMEM;
        return 1;
    }
    json_decref(copy);
    sd->ops[sd->n++] = (struct lel_store_op){.cf = sd->cf, .type = LEL_STORE_PUT, .key = strdup(key), .val = buf, .len = len};
    if (sd->n == TXN_MAX && (sd->r = seed_flush(sd)) < 0)
        return 1;
    return 0;
}

/* The first node of a cluster: its shared records go to etcd (each created only if absent). */
static int seed(struct lel_cluster_kv *kv, char *err, size_t errlen)
{
    struct seed sd = {.kv = kv};
    for (int cf = 0; cf < LEL_CF_COUNT && sd.r == 0; cf++) {
        if (!(kv->mask & (1u << cf)))
            continue;
        sd.cf = cf;
        lel_store_scan(kv->st, cf, "", NULL, seed_one, &sd);
    }
    if (sd.r == 0)
        sd.r = seed_flush(&sd);
    else
        seed_flush(&sd);
    if (sd.r < 0)
        snprintf(err, errlen, "cluster: cannot write this node's teams and keys to etcd (%s)", strerror(-sd.r));
    return sd.r;
}

int lel_cluster_kv_start(struct lel_cluster *cl, lel_store_t *st, unsigned cf_mask, struct lel_cluster_kv **out,
                         char *err, size_t errlen)
{
    struct lel_cluster_kv *kv = calloc(1, sizeof(*kv));
    if (!kv || !(kv->seen = lel_registry_new()) || !(kv->remote = lel_registry_new())) {
        if (kv)
            lel_registry_free(kv->seen);
        free(kv);
        return -ENOMEM;
    }
    pthread_mutex_init(&kv->pub_lock, NULL);
    pthread_cond_init(&kv->pub_cond, NULL);
    kv->cl = cl;
    kv->etcd = lel_cluster_etcd(cl);
    kv->st = st;
    kv->mask = cf_mask;
    pthread_mutex_init(&kv->lock, NULL);
    snprintf(kv->prefix, sizeof(kv->prefix), "%ss/", lel_cluster_prefix(cl));
    struct lel_etcd_range rg;
    char why[1024];
    int r = lel_etcd_range(kv->etcd, kv->prefix, 1, 1, 0, &rg, why, sizeof(why));
    if (r < 0) {
        snprintf(err, errlen, "cluster: cannot read the shared state from etcd: %s", why);
        lel_cluster_kv_stop(kv);
        return r;
    }
    int empty = rg.n == 0;
    lel_etcd_range_free(&rg);
    struct lel_store_mirror m = {cf_mask, commit, kv};
    lel_store_set_mirror(st, &m);
    if ((r = empty ? seed(kv, err, errlen) : 0) < 0 || (r = resync(kv, why, sizeof(why))) < 0) {
        if (!empty || r != -ENOMEM)
            snprintf(err, errlen, "cluster: cannot load the shared state from etcd: %s", why);
        struct lel_store_mirror none = {0, NULL, NULL};
        lel_store_set_mirror(st, &none);
        lel_cluster_kv_stop(kv);
        return r;
    }
    *out = kv;
    return 0;
}

static int on_events(void *ctx, const struct lel_etcd_event *ev, size_t n, int64_t revision)
{
    struct lel_cluster_kv *kv = ctx;
    pthread_mutex_lock(&kv->lock);
    for (size_t i = 0; i < n; i++)
        apply_change(kv, ev[i].kv.key, ev[i].kv.value, ev[i].kv.len, ev[i].kv.mod_rev, ev[i].deleted);
    if (revision > kv->rev)
        kv->rev = revision;
    pthread_mutex_unlock(&kv->lock);
    return kv->stop;
}

static void *watch_main(void *arg)
{
    struct lel_cluster_kv *kv = arg;
    char err[1024];
    int need_read = 0;
    while (!kv->stop) {
        if (need_read && resync(kv, err, sizeof(err)) < 0) {
            for (int i = 0; i < 5 && !kv->stop; i++)
                usleep(100000);
            continue;
        }
        pthread_mutex_lock(&kv->lock);
        int64_t from = kv->rev + 1;
        pthread_mutex_unlock(&kv->lock);
        int r = lel_etcd_watch(kv->etcd, kv->prefix, from, on_events, kv, &kv->stop, err, sizeof(err));
        if (r == -EINTR || kv->stop)
            break;
        /* broken or compacted: read everything again, then watch from there */
        need_read = 1;
        if (r != -ESTALE)
            for (int i = 0; i < 3 && !kv->stop; i++)
                usleep(100000);
    }
    return NULL;
}

int lel_cluster_kv_watch(struct lel_cluster_kv *kv, lel_cluster_kv_cb cb, void *ctx)
{
    kv->cb = cb;
    kv->ctx = ctx;
    int r = -pthread_create(&kv->thread, NULL, watch_main, kv);
    kv->started = r == 0;
    return r;
}

static void free_seen(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    free(value);
}

static void free_remote(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    json_decref(value);
}

/* ---- the catalog's publisher ---- */

static void enqueue(struct lel_cluster_kv *kv, struct pub *p)
{
    pthread_mutex_lock(&kv->pub_lock);
    if (kv->pub_tail)
        kv->pub_tail->next = p;
    else
        kv->pub_head = p;
    kv->pub_tail = p;
    pthread_cond_signal(&kv->pub_cond);
    pthread_mutex_unlock(&kv->pub_lock);
}

/* Queues a catalog change: the record gets this node's name. */
static void publish_op(struct lel_cluster_kv *kv, const struct lel_store_op *op)
{
    struct pub *p = calloc(1, sizeof(*p));
    char ek[320];
    if (!p || op->type == LEL_STORE_DEL_PREFIX) {
        free(p);
        return;
    }
    etcd_key(kv, op->cf, op->key, ek, sizeof(ek));
    if (op->type == LEL_STORE_PUT) {
        json_t *rec = lel_store_decode(op->val, op->len);
        if (!rec || json_object_set_new(rec, "node", json_string(lel_cluster_name(kv->cl))) < 0 ||
            json_object_set_new(rec, "_v", json_integer(LEL_STORE_VERSION)) < 0 || /* decoding took it */
            lel_codec_encode(rec, LEL_FMT_MSGPACK, &p->val, &p->len) < 0) {
            json_decref(rec);
            free(p);
            return;
        }
        json_decref(rec);
    }
    if (!(p->key = strdup(ek))) {
        free(p->val);
        free(p);
        return;
    }
    enqueue(kv, p);
}

/* A kill of another node's sandbox reached etcd (r 0: the catalog says killed, here at once and
 * on the other nodes by watch) or did not (503: nothing changed). */
static void kill_answered(struct lel_cluster_kv *kv, struct pub *p, int r, const char *err)
{
    if (r < 0) {
        p->call->retry_after = 1;
        lel_call_error(p->call, 503, "cluster: the kill could not be recorded in etcd: %s", err);
    } else {
        pthread_mutex_lock(&kv->lock);
        json_t *rec = json_incref(p->rec);
        const char *id = json_string_value(json_object_get(rec, "sandboxID")) ?: "";
        json_decref(lel_registry_del(kv->remote, id));
        if (lel_registry_put(kv->remote, id, rec) < 0)
            json_decref(rec);
        pthread_mutex_unlock(&kv->lock);
        lel_call_reply(p->call, 204, NULL);
    }
    lel_call_done(p->call);
    p->call = NULL;
}

/* Puts the queue in etcd in order; a change that fails is tried again (etcd lost: the node goes
 * on, its catalog entries catch up when etcd is back). */
static void *pub_main(void *arg)
{
    struct lel_cluster_kv *kv = arg;
    char err[1024];
    pthread_mutex_lock(&kv->pub_lock);
    for (;;) {
        struct pub *p = kv->pub_head;
        if (!p) {
            if (kv->stop)
                break;
            pthread_cond_wait(&kv->pub_cond, &kv->pub_lock);
            continue;
        }
        pthread_mutex_unlock(&kv->pub_lock);
        int r = p->val ? lel_etcd_put(kv->etcd, p->key, p->val, p->len, 0, NULL, err, sizeof(err))
                       : lel_etcd_delete(kv->etcd, p->key, 0, NULL, err, sizeof(err));
        if (p->call)
            kill_answered(kv, p, r, err);
        pthread_mutex_lock(&kv->pub_lock);
        if (r < 0 && !kv->stop && !p->call) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 300000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&kv->pub_cond, &kv->pub_lock, &ts);
            continue;
        }
        kv->pub_head = p->next;
        if (!kv->pub_head)
            kv->pub_tail = NULL;
        json_decref(p->rec);
        free(p->key);
        free(p->val);
        free(p);
    }
    pthread_mutex_unlock(&kv->pub_lock);
    return NULL;
}

struct own {
    struct lel_cluster_kv *kv;
    enum lel_cf cf;
};

static int publish_local(void *ctx, const char *key, json_t *rec)
{
    struct own *o = ctx;
    char *buf = NULL;
    size_t len = 0;
    json_t *copy = json_copy(rec);
    if (copy && json_object_set_new(copy, "_v", json_integer(LEL_STORE_VERSION)) == 0 &&
        lel_codec_encode(copy, LEL_FMT_MSGPACK, &buf, &len) == 0) {
        struct lel_store_op op = {o->cf, LEL_STORE_PUT, (char *)key, buf, len};
        publish_op(o->kv, &op);
    }
    json_decref(copy);
    free(buf);
    return 0;
}

int lel_cluster_kv_catalog(struct lel_cluster_kv *kv, unsigned catalog_mask)
{
    struct lel_etcd_range rg;
    char err[1024], prefix[200];
    kv->catalog = catalog_mask;
    int r = -pthread_create(&kv->pub_thread, NULL, pub_main, kv);
    kv->pub_started = r == 0;
    if (r < 0)
        return r;
    struct lel_store_mirror m = {kv->mask | catalog_mask, commit, kv};
    lel_store_set_mirror(kv->st, &m);
    for (int cf = 0; cf < LEL_CF_COUNT; cf++) {
        if (!(catalog_mask & (1u << cf)))
            continue;
        struct own o = {kv, cf};
        lel_store_scan(kv->st, cf, "", NULL, publish_local, &o); /* what this node holds, as it is now */
        /* what etcd says we held that we no longer do (killed while we were away): removed */
        snprintf(prefix, sizeof(prefix), "%s%s/", kv->prefix, lel_store_cf_name(cf));
        if (lel_etcd_range(kv->etcd, prefix, 1, 0, 1, &rg, err, sizeof(err)) < 0)
            continue;
        pthread_mutex_lock(&kv->lock);
        for (size_t i = 0; i < rg.n; i++) {
            const char *key = rg.kvs[i].key + strlen(prefix);
            json_t *rec = lel_store_decode(rg.kvs[i].value, rg.kvs[i].len), *mine = NULL;
            const char *node = json_string_value(json_object_get(rec, "node"));
            if (node && !strcmp(node, lel_cluster_name(kv->cl)) && lel_store_get(kv->st, cf, key, &mine) < 0) {
                struct pub *p = calloc(1, sizeof(*p));
                if (p && (p->key = strdup(rg.kvs[i].key)))
                    enqueue(kv, p);
                else
                    free(p);
            } else if (node) {
                remote_change(kv, key, rg.kvs[i].value, rg.kvs[i].len, 0);
            }
            json_decref(mine);
            json_decref(rec);
        }
        pthread_mutex_unlock(&kv->lock);
        lel_etcd_range_free(&rg);
    }
    return 0;
}

json_t *lel_cluster_kv_remote(struct lel_cluster_kv *kv, const char *id)
{
    pthread_mutex_lock(&kv->lock);
    json_t *rec = lel_registry_get(kv->remote, id, NULL, NULL);
    json_t *copy = rec ? json_deep_copy(rec) : NULL;
    pthread_mutex_unlock(&kv->lock);
    return copy;
}

struct remote_each {
    const char *team;
    int (*cb)(void *ctx, json_t *rec);
    void *ctx;
};

static void each_remote(void *ctx, const char *id, void *value)
{
    (void)id;
    struct remote_each *e = ctx;
    if (!strcmp(json_string_value(json_object_get(value, "teamID")) ?: "", e->team))
        e->cb(e->ctx, value);
}

void lel_cluster_kv_remote_foreach(struct lel_cluster_kv *kv, const char *team, int (*cb)(void *ctx, json_t *rec),
                                   void *ctx)
{
    struct remote_each e = {team, cb, ctx};
    pthread_mutex_lock(&kv->lock);
    lel_registry_foreach(kv->remote, each_remote, &e);
    pthread_mutex_unlock(&kv->lock);
}

void lel_cluster_kv_stop(struct lel_cluster_kv *kv)
{
    if (!kv)
        return;
    kv->stop = 1;
    if (kv->started)
        pthread_join(kv->thread, NULL);
    if (kv->pub_started) {
        pthread_mutex_lock(&kv->pub_lock);
        pthread_cond_signal(&kv->pub_cond);
        pthread_mutex_unlock(&kv->pub_lock);
        pthread_join(kv->pub_thread, NULL);
    }
    for (struct pub *p = kv->pub_head, *n; p; p = n) {
        n = p->next;
        if (p->call)
            kill_answered(kv, p, -EAGAIN, "this node is stopping");
        json_decref(p->rec);
        free(p->key);
        free(p->val);
        free(p);
    }
    pthread_mutex_destroy(&kv->pub_lock);
    pthread_cond_destroy(&kv->pub_cond);
    lel_registry_foreach(kv->remote, free_remote, NULL);
    lel_registry_free(kv->remote);
    lel_registry_foreach(kv->seen, free_seen, NULL);
    lel_registry_free(kv->seen);
    pthread_mutex_destroy(&kv->lock);
    free(kv);
}

int lel_cluster_kv_kill_away(struct lel_cluster_kv *kv, lel_call_t *c, const json_t *rec)
{
    struct pub *p = calloc(1, sizeof(*p));
    const char *team = json_string_value(json_object_get(rec, "teamID"));
    const char *id = json_string_value(json_object_get(rec, "sandboxID"));
    char key[200], ek[400];
    int64_t now = lel_now_ms();
    if (!p || !team || !id || !(p->rec = json_deep_copy(rec))) {
        free(p);
        return -ENOMEM;
    }
    json_object_set_new(p->rec, "state", json_string("killed"));
    json_object_set_new(p->rec, "killedBy", json_string(lel_cluster_name(kv->cl)));
    json_object_set_new(p->rec, "killedAtMs", json_integer(now));
    json_object_set_new(p->rec, "endAtMs", json_integer(now));
    lel_json_set_time(p->rec, "endAt", now);
    json_t *enc = json_copy(p->rec);
    snprintf(key, sizeof(key), "%s/%s", team, id);
    etcd_key(kv, LEL_CF_SANDBOXES, key, ek, sizeof(ek));
    if (!enc || json_object_set_new(enc, "_v", json_integer(LEL_STORE_VERSION)) < 0 ||
        lel_codec_encode(enc, LEL_FMT_MSGPACK, &p->val, &p->len) < 0 || !(p->key = strdup(ek))) {
        json_decref(enc);
        json_decref(p->rec);
        free(p->val);
        free(p);
        return -ENOMEM;
    }
    json_decref(enc);
    p->call = c;
    enqueue(kv, p);
    return 0;
}

json_t *lel_cluster_kv_killed_away(struct lel_cluster_kv *kv)
{
    struct lel_etcd_range rg;
    char err[1024], prefix[200];
    json_t *out = json_object();
    snprintf(prefix, sizeof(prefix), "%s%s/", kv->prefix, lel_store_cf_name(LEL_CF_SANDBOXES));
    if (!out || lel_etcd_range(kv->etcd, prefix, 1, 0, 1, &rg, err, sizeof(err)) < 0)
        return out; /* etcd unreachable: nothing learnt; the catalog still says killed next time */
    for (size_t i = 0; i < rg.n; i++) {
        json_t *rec = lel_store_decode(rg.kvs[i].value, rg.kvs[i].len);
        const char *node = json_string_value(json_object_get(rec, "node"));
        const char *id = json_string_value(json_object_get(rec, "sandboxID"));
        if (node && id && !strcmp(node, lel_cluster_name(kv->cl)) && json_is_string(json_object_get(rec, "killedBy")))
            json_object_set(out, id, rec);
        json_decref(rec);
    }
    lel_etcd_range_free(&rg);
    return out;
}
