/* RocksDB behind lel_store.h. Pitfalls handled here (see shared/docs/STACK.md §2): every
 * existing column family must be opened, error strings must be reset after use, iterator upper
 * bounds point at our buffer and must outlive the iterator. */
#include "lel_store.h"

#include "../common/lel_codec.h"
#include "../common/lel_util.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static const char *const cf_names[LEL_CF_COUNT] = {"default", "teams", "members", "keys", "sandboxes",
                                                   "templates", "builds", "snapshots", "events", "images", "layers"};

struct lel_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_column_family_handle_t *cf[LEL_CF_COUNT];
    rocksdb_writeoptions_t *wo, *wo_relaxed;
    rocksdb_readoptions_t *ro;
    int sync;
    /* the group commit's syncer (lel_store_write_async), started with the store when it syncs */
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    struct pending_sync *sync_head, *sync_tail;
    int sync_started, sync_stop;
    pthread_t sync_thread;
    struct lel_store_mirror mirror; /* cf_mask 0: none */
    lel_hist_t write_hist; /* every write's time in RocksDB (a synced one with its fsync) */
    lel_hist_t sync_hist;  /* the group commit's WAL fsyncs */
    /* the last write's error (0: it went in). After a failed WAL append RocksDB keeps answering
     * writes with that error until its own recovery has opened a new WAL, but a WAL sync in that
     * time reaches the failed file writer, which Debian's build asserts on (the process aborts):
     * so no sync is asked for while a failure stands; the next write that goes in clears it. */
    atomic_int write_failed;
    char *dir; /* where its files are: the free space checked before each write */
};

struct pending_sync {
    void (*done)(void *arg, int r);
    void *arg;
    struct pending_sync *next;
};

struct lel_batch {
    lel_store_t *st;
    rocksdb_writebatch_t *wb;
    int failed;
    int local; /* bypasses the mirror */
    struct lel_store_op *ops; /* changes to mirrored families */
    size_t nops, capops;
};

/* Records a change to a mirrored family; copies key and value. */
static void record_op(lel_batch_t *b, enum lel_cf cf, enum lel_store_op_type type, const char *key, const char *val,
                      size_t len)
{
    if (b->local || !(b->st->mirror.cf_mask & (1u << cf)))
        return;
    if (b->nops == b->capops) {
        size_t cap = b->capops ? b->capops * 2 : 4;
        struct lel_store_op *n = realloc(b->ops, cap * sizeof(*n));
        if (!n) {
            b->failed = 1;
            return;
        }
        b->ops = n;
        b->capops = cap;
    }
    struct lel_store_op *o = &b->ops[b->nops];
    o->cf = cf;
    o->type = type;
    o->len = len;
    o->key = strdup(key);
    o->val = val ? malloc(len ? len : 1) : NULL;
    if (!o->key || (val && !o->val)) {
        free(o->key);
        free(o->val);
        b->failed = 1;
        return;
    }
    if (val)
        memcpy(o->val, val, len);
    b->nops++;
}

void lel_store_set_mirror(lel_store_t *st, const struct lel_store_mirror *m)
{
    st->mirror = *m;
}

const char *lel_store_cf_name(enum lel_cf cf)
{
    return (unsigned)cf < LEL_CF_COUNT ? cf_names[cf] : NULL;
}

static void *syncer_main(void *arg);

int lel_store_open(const char *dir, int sync, lel_store_t **out, char *err, size_t errlen)
{
    lel_store_t *st = calloc(1, sizeof(*st));
    char *rerr = NULL;
    if (!st)
        return -ENOMEM;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        free(st);
        return -EIO;
    }
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_create_missing_column_families(st->opts, 1);
    rocksdb_options_set_compression(st->opts, rocksdb_zstd_compression);
    rocksdb_options_set_wal_recovery_mode(st->opts, rocksdb_point_in_time_recovery);
    rocksdb_options_set_keep_log_file_num(st->opts, 2);
    rocksdb_options_set_max_background_jobs(st->opts, 2);

    /* Open every column family we know. Unknown ones left by a newer version are refused below. */
    size_t nexisting = 0;
    char **existing = rocksdb_list_column_families(st->opts, dir, &nexisting, &rerr);
    if (rerr) { /* a missing DB is fine: it is created */
        rocksdb_free(rerr);
        rerr = NULL;
    }
    for (size_t i = 0; i < nexisting; i++) {
        int known = 0;
        for (int c = 0; c < LEL_CF_COUNT; c++)
            known |= !strcmp(existing[i], cf_names[c]);
        if (!known) {
            snprintf(err, errlen, "store %s has unknown column family '%s' (newer version?)", dir, existing[i]);
            rocksdb_list_column_families_destroy(existing, nexisting);
            rocksdb_options_destroy(st->opts);
            free(st);
            return -EINVAL;
        }
    }
    if (existing)
        rocksdb_list_column_families_destroy(existing, nexisting);

    const rocksdb_options_t *cfo[LEL_CF_COUNT];
    for (int c = 0; c < LEL_CF_COUNT; c++)
        cfo[c] = st->opts;
    st->db = rocksdb_open_column_families(st->opts, dir, LEL_CF_COUNT, cf_names, cfo, st->cf, &rerr);
    if (rerr) {
        snprintf(err, errlen, "cannot open store %s: %s", dir, rerr);
        rocksdb_free(rerr);
        rocksdb_options_destroy(st->opts);
        free(st);
        return -EIO;
    }
    st->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wo, sync ? 1 : 0);
    st->wo_relaxed = rocksdb_writeoptions_create();
    st->ro = rocksdb_readoptions_create();
    st->sync = sync;
    st->dir = strdup(dir);
    pthread_mutex_init(&st->sync_lock, NULL);
    pthread_cond_init(&st->sync_cond, NULL);
    /* the group commit's syncer, from the start (without it lel_store_write_async syncs inline) */
    st->sync_started = sync && pthread_create(&st->sync_thread, NULL, syncer_main, st) == 0;
    *out = st;
    return 0;
}

static void syncer_stop(lel_store_t *st);

int lel_store_checkpoint(lel_store_t *st, const char *dir, char *err, size_t errlen)
{
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(st->db, &rerr);
    if (cp && !rerr)
        rocksdb_checkpoint_create(cp, dir, 0, &rerr); /* 0: memtables flushed first, so the WAL copied is short */
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    if (rerr) {
        snprintf(err, errlen, "checkpoint of the store into %s: %s", dir, rerr);
        rocksdb_free(rerr);
        return -EIO;
    }
    return 0;
}

void lel_store_close(lel_store_t *st)
{
    if (!st)
        return;
    syncer_stop(st); /* what it has queued is synced and told first */
    char *rerr = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int c = 0; c < LEL_CF_COUNT; c++) {
        rocksdb_flush_cf(st->db, fo, st->cf[c], &rerr);
        if (rerr) {
            fprintf(stderr, "lelantos: store flush: %s\n", rerr);
            rocksdb_free(rerr);
            rerr = NULL;
        }
    }
    rocksdb_flushoptions_destroy(fo);
    for (int c = 0; c < LEL_CF_COUNT; c++)
        rocksdb_column_family_handle_destroy(st->cf[c]);
    rocksdb_close(st->db);
    rocksdb_writeoptions_destroy(st->wo);
    rocksdb_writeoptions_destroy(st->wo_relaxed);
    rocksdb_readoptions_destroy(st->ro);
    rocksdb_options_destroy(st->opts);
    pthread_cond_destroy(&st->sync_cond);
    pthread_mutex_destroy(&st->sync_lock);
    free(st->dir);
    free(st);
}

static int decode_value(const char *v, size_t len, json_t **out)
{
    char err[128];
    json_t *doc;
    if (lel_codec_decode(v, len, LEL_FMT_MSGPACK, &doc, err, sizeof(err)) < 0)
        return -EIO;
    if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "_v")) != LEL_STORE_VERSION) {
        json_decref(doc);
        return -EIO;
    }
    json_object_del(doc, "_v");
    *out = doc;
    return 0;
}

int lel_store_get(lel_store_t *st, enum lel_cf cf, const char *key, json_t **out)
{
    char *rerr = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(st->db, st->ro, st->cf[cf], key, strlen(key), &len, &rerr);
    if (rerr) {
        fprintf(stderr, "lelantos: store get: %s\n", rerr);
        rocksdb_free(rerr);
        return -EIO;
    }
    if (!v)
        return -ENOENT;
    int r = decode_value(v, len, out);
    rocksdb_free(v);
    return r;
}

/* Smallest key greater than every key with this prefix; empty when none exists (all 0xff). */
static size_t prefix_successor(const char *prefix, size_t plen, char *out)
{
    memcpy(out, prefix, plen);
    while (plen > 0) {
        if ((unsigned char)out[plen - 1] != 0xff) {
            out[plen - 1]++;
            return plen;
        }
        plen--;
    }
    return 0;
}

int lel_store_scan(lel_store_t *st, enum lel_cf cf, const char *prefix, const char *after, lel_store_scan_cb cb,
                   void *ctx)
{
    size_t plen = strlen(prefix);
    char *upper = malloc(plen + 1);
    if (!upper)
        return -ENOMEM;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    size_t ulen = prefix_successor(prefix, plen, upper);
    if (ulen)
        rocksdb_readoptions_set_iterate_upper_bound(ro, upper, ulen);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, ro, st->cf[cf]);
    int r = 0;
    if (after && *after) {
        rocksdb_iter_seek(it, after, strlen(after));
        if (rocksdb_iter_valid(it)) {
            size_t klen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (klen == strlen(after) && !memcmp(k, after, klen))
                rocksdb_iter_next(it);
        }
    } else {
        rocksdb_iter_seek(it, prefix, plen);
    }
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < plen || memcmp(k, prefix, plen))
            break;
        json_t *doc;
        char *key = strndup(k, klen);
        if (!key) {
            r = -ENOMEM;
            break;
        }
        if (decode_value(v, vlen, &doc) < 0) {
            fprintf(stderr, "lelantos: store: undecodable value at %s/%s, skipped\n", cf_names[cf], key);
            free(key);
            continue;
        }
        int stop = cb(ctx, key, doc);
        json_decref(doc);
        free(key);
        if (stop)
            break;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr) {
        fprintf(stderr, "lelantos: store scan: %s\n", rerr);
        rocksdb_free(rerr);
        r = -EIO;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    free(upper);
    return r;
}

lel_batch_t *lel_batch_new(lel_store_t *st)
{
    lel_batch_t *b = calloc(1, sizeof(*b));
    if (b) {
        b->st = st;
        b->wb = rocksdb_writebatch_create();
    }
    return b;
}

lel_batch_t *lel_batch_new_local(lel_store_t *st)
{
    lel_batch_t *b = lel_batch_new(st);
    if (b)
        b->local = 1;
    return b;
}

int lel_batch_put_raw(lel_batch_t *b, enum lel_cf cf, const char *key, const char *val, size_t len)
{
    rocksdb_writebatch_put_cf(b->wb, b->st->cf[cf], key, strlen(key), val, len);
    record_op(b, cf, LEL_STORE_PUT, key, val, len);
    return b->failed ? -ENOMEM : 0;
}

json_t *lel_store_decode(const char *val, size_t len)
{
    json_t *out = NULL;
    return decode_value(val, len, &out) == 0 ? out : NULL;
}

int lel_batch_put(lel_batch_t *b, enum lel_cf cf, const char *key, const json_t *value)
{
    json_t *copy = json_copy((json_t *)value);
    char *val = NULL;
    size_t vallen = 0;
    int r = -ENOMEM;
    if (copy && json_object_set_new(copy, "_v", json_integer(LEL_STORE_VERSION)) == 0)
        r = lel_codec_encode(copy, LEL_FMT_MSGPACK, &val, &vallen);
    json_decref(copy);
    if (r < 0) {
        b->failed = 1;
        return r;
    }
    rocksdb_writebatch_put_cf(b->wb, b->st->cf[cf], key, strlen(key), val, vallen);
    record_op(b, cf, LEL_STORE_PUT, key, val, vallen);
    free(val);
    return b->failed ? -ENOMEM : 0;
}

void lel_batch_del(lel_batch_t *b, enum lel_cf cf, const char *key)
{
    rocksdb_writebatch_delete_cf(b->wb, b->st->cf[cf], key, strlen(key));
    record_op(b, cf, LEL_STORE_DEL, key, NULL, 0);
}

void lel_batch_del_prefix(lel_batch_t *b, enum lel_cf cf, const char *prefix)
{
    size_t plen = strlen(prefix);
    char *end = malloc(plen + 1);
    if (!end) {
        b->failed = 1;
        return;
    }
    size_t elen = prefix_successor(prefix, plen, end);
    if (elen)
        rocksdb_writebatch_delete_range_cf(b->wb, b->st->cf[cf], prefix, plen, end, elen);
    free(end);
    record_op(b, cf, LEL_STORE_DEL_PREFIX, prefix, NULL, 0);
}

void lel_batch_free(lel_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nops; i++) {
        free(b->ops[i].key);
        free(b->ops[i].val);
    }
    free(b->ops);
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

struct apply {
    lel_store_t *st;
    lel_batch_t *b;
    rocksdb_writeoptions_t *wo;
};

/* RocksDB's C API gives errors as text only: "IO error: No space left on device: While
 * appending to file: ..." for a WAL or table write that met ENOSPC (and the background error it
 * then keeps answering with until its own recovery, which retries once space returns). */
static int write_error(const char *what, char *rerr)
{
    int r = strstr(rerr, "No space left") || strstr(rerr, "Disk quota exceeded") ? -ENOSPC : -EIO;
    fprintf(stderr, "lelantos: store %s: %s\n", what, rerr);
    rocksdb_free(rerr);
    return r;
}

static int apply_local(void *arg)
{
    struct apply *a = arg;
    char *rerr = NULL;
    int64_t t0 = lel_mono_us();
    rocksdb_write(a->st->db, a->wo, a->b->wb, &rerr);
    lel_hist_add(&a->st->write_hist, (uint64_t)(lel_mono_us() - t0));
    int r = rerr ? write_error("write", rerr) : 0;
    atomic_store(&a->st->write_failed, r);
    return r;
}

/* RocksDB must never meet ENOSPC itself: Debian's build asserts (the process aborts) in the WAL
 * writer after a failed append, so a write is refused here while the file system has less than
 * LEL_STORE_FLOOR free, whatever storage.min_free_bytes says. */
static int space_left(lel_store_t *st)
{
    struct statvfs v;
    if (statvfs(st->dir, &v) < 0)
        return 0; /* unknown: let RocksDB try */
    return (uint64_t)v.f_bavail * v.f_frsize < LEL_STORE_FLOOR ? -ENOSPC : 0;
}

static int write_with(lel_store_t *st, lel_batch_t *b, rocksdb_writeoptions_t *wo)
{
    struct apply a = {st, b, wo};
    int r = b->failed ? -ENOMEM : space_left(st);
    if (r == 0)
        r = b->nops ? st->mirror.commit(st->mirror.ctx, b->ops, b->nops, apply_local, &a) : apply_local(&a);
    lel_batch_free(b);
    return r;
}

const lel_hist_t *lel_store_hist(const lel_store_t *st, int sync)
{
    return sync ? &st->sync_hist : &st->write_hist;
}

int lel_store_write(lel_store_t *st, lel_batch_t *b)
{
    return write_with(st, b, st->wo);
}

int lel_store_write_relaxed(lel_store_t *st, lel_batch_t *b)
{
    return write_with(st, b, st->wo_relaxed);
}

static int sync_wal(lel_store_t *st)
{
    int failed = atomic_load(&st->write_failed);
    if (failed)
        return failed;
    char *rerr = NULL;
    int64_t t0 = lel_mono_us();
    rocksdb_flush_wal(st->db, 1, &rerr);
    lel_hist_add(&st->sync_hist, (uint64_t)(lel_mono_us() - t0));
    int r = rerr ? write_error("sync", rerr) : 0;
    if (r)
        atomic_store(&st->write_failed, r);
    return r;
}

/* Every write queued before a round began is in the WAL (it was written before it was queued),
 * so one sync of the WAL makes the whole round durable. */
static void *syncer_main(void *arg)
{
    lel_thread_name("lel-sync");
    lel_store_t *st = arg;
    pthread_mutex_lock(&st->sync_lock);
    for (;;) {
        struct pending_sync *round = st->sync_head;
        if (!round) {
            if (st->sync_stop)
                break;
            pthread_cond_wait(&st->sync_cond, &st->sync_lock);
            continue;
        }
        st->sync_head = st->sync_tail = NULL;
        pthread_mutex_unlock(&st->sync_lock);
        int r = sync_wal(st);
        for (struct pending_sync *p = round, *n; p; p = n) {
            n = p->next;
            p->done(p->arg, r);
            free(p);
        }
        pthread_mutex_lock(&st->sync_lock);
    }
    pthread_mutex_unlock(&st->sync_lock);
    return NULL;
}

static void syncer_stop(lel_store_t *st)
{
    pthread_mutex_lock(&st->sync_lock);
    int started = st->sync_started;
    st->sync_stop = 1;
    pthread_cond_signal(&st->sync_cond);
    pthread_mutex_unlock(&st->sync_lock);
    if (started)
        pthread_join(st->sync_thread, NULL);
}

void lel_store_write_async(lel_store_t *st, lel_batch_t *b, void (*done)(void *arg, int r), void *arg)
{
    int r = write_with(st, b, st->sync ? st->wo_relaxed : st->wo);
    struct pending_sync *p = r == 0 && st->sync ? malloc(sizeof(*p)) : NULL;
    if (r < 0 || !st->sync) {
        done(arg, r);
        return;
    }
    pthread_mutex_lock(&st->sync_lock);
    if (!p || !st->sync_started || st->sync_stop) { /* no syncer: this thread syncs */
        pthread_mutex_unlock(&st->sync_lock);
        free(p);
        done(arg, sync_wal(st));
        return;
    }
    p->done = done;
    p->arg = arg;
    p->next = NULL;
    if (st->sync_tail)
        st->sync_tail->next = p;
    else
        st->sync_head = p;
    st->sync_tail = p;
    pthread_cond_signal(&st->sync_cond);
    pthread_mutex_unlock(&st->sync_lock);
}

int lel_store_put(lel_store_t *st, enum lel_cf cf, const char *key, const json_t *value)
{
    lel_batch_t *b = lel_batch_new(st);
    if (!b)
        return -ENOMEM;
    int r = lel_batch_put(b, cf, key, value);
    if (r < 0) {
        lel_batch_free(b);
        return r;
    }
    return lel_store_write(st, b);
}
