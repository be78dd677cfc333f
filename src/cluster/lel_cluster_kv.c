/* Shared column families in etcd (lel_cluster_kv.h). */
#include "lel_cluster_kv.h"

#include "../common/lel_codec.h"
#include "../common/lel_registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TXN_MAX 64 /* ops per txn: etcd's --max-txn-ops is 128, comparisons count apart */

/* What this node last saw of a shared key: the revision of its last change, and whether that
 * change left it present. Deleted keys are kept so a late event for an older put is ignored. */
struct seen {
    int64_t rev;
    int exists;
};

struct lel_cluster_kv {
    struct lel_cluster *cl;
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
        if ((kv->mask & (1u << cf)) && !strncmp(ek + pl, name, nl) && ek[pl + nl] == '/') {
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
static int commit(void *ctx, const struct lel_store_op *ops, size_t n, int (*apply)(void *arg), void *arg)
{
    struct lel_cluster_kv *kv = ctx;
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

/* Applies one change read from etcd (not this node's own, which is seen already). Under lock. */
static void apply_change(struct lel_cluster_kv *kv, const char *ek, const char *val, size_t len, int64_t rev,
                         int deleted)
{
    const char *key;
    int cf = split_key(kv, ek, &key);
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

/* Local records etcd no longer has are deleted (as a delete seen at `rev`). Under lock. */
static void drop_missing(struct lel_cluster_kv *kv, lel_registry_t *in_etcd, int64_t rev)
{
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
    if (!kv || !(kv->seen = lel_registry_new())) {
        free(kv);
        return -ENOMEM;
    }
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

void lel_cluster_kv_stop(struct lel_cluster_kv *kv)
{
    if (!kv)
        return;
    kv->stop = 1;
    if (kv->started)
        pthread_join(kv->thread, NULL);
    lel_registry_foreach(kv->seen, free_seen, NULL);
    lel_registry_free(kv->seen);
    pthread_mutex_destroy(&kv->lock);
    free(kv);
}
