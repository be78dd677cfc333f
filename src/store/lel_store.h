/* The store: RocksDB with one column family per record type. Values are documents
 * (jansson) encoded as MessagePack with a schema version field "_v". Changes go through
 * atomic write batches on the WAL; with `sync` the WAL is fsynced before a write returns, so a
 * change acknowledged to a client survives kill -9 and power loss. Thread-safe. */
#ifndef LEL_STORE_H
#define LEL_STORE_H

#include "../common/lel_hist.h"

#include <jansson.h>
#include <stddef.h>

#define LEL_STORE_VERSION 1

enum lel_cf {
    LEL_CF_META = 0,
    LEL_CF_TEAMS,
    LEL_CF_MEMBERS,
    LEL_CF_KEYS,
    LEL_CF_SANDBOXES,
    LEL_CF_TEMPLATES,
    LEL_CF_BUILDS,
    LEL_CF_SNAPSHOTS,
    LEL_CF_EVENTS,
    LEL_CF_IMAGES,
    LEL_CF_LAYERS, /* snapshot images' reference counts (src/core/lel_layer.h) */
    LEL_CF_COUNT
};

typedef struct lel_store lel_store_t;
typedef struct lel_batch lel_batch_t;

/** Opens (creating if needed) the database in `dir`. Returns 0 or -errno with err filled. */
int lel_store_open(const char *dir, int sync, lel_store_t **out, char *err, size_t errlen);
/** Flushes memtables and closes. */
void lel_store_close(lel_store_t *st);
/** A consistent copy of the database as of now in `dir` (which must not exist), while it stays
 * open and written: a RocksDB checkpoint (hard links of the table files where dir is on the same
 * file system, copies otherwise, and the WAL up to this point). Returns 0 or -EIO with err. */
int lel_store_checkpoint(lel_store_t *st, const char *dir, char *err, size_t errlen);

/** Reads one record. Returns 0 and a new reference, -ENOENT, or -EIO (corrupt value / DB error). */
int lel_store_get(lel_store_t *st, enum lel_cf cf, const char *key, json_t **out);

/** Called per record in key order; return non-zero to stop. `key` is NUL-terminated. */
typedef int (*lel_store_scan_cb)(void *ctx, const char *key, json_t *value);
/** Visits records whose key starts with `prefix`, beginning strictly after `after` when given.
 * Returns 0 or -EIO. */
int lel_store_scan(lel_store_t *st, enum lel_cf cf, const char *prefix, const char *after, lel_store_scan_cb cb,
                   void *ctx);

/** A set of changes applied all-or-nothing by lel_store_write. */
lel_batch_t *lel_batch_new(lel_store_t *st);
/** Queues a put of `value` (the "_v" field is added). Returns 0 or -ENOMEM/-EINVAL. */
int lel_batch_put(lel_batch_t *b, enum lel_cf cf, const char *key, const json_t *value);
void lel_batch_del(lel_batch_t *b, enum lel_cf cf, const char *key);
/** Queues deletion of every key starting with `prefix`. */
void lel_batch_del_prefix(lel_batch_t *b, enum lel_cf cf, const char *prefix);
/** The store's latency histograms (the metrics read them): sync 0 every write into RocksDB (with
 * its WAL fsync when it is a synced write), 1 the group commit's WAL fsyncs. Lives with the store. */
const lel_hist_t *lel_store_hist(const lel_store_t *st, int sync);
/** Below this many bytes free on its file system the store refuses writes (-ENOSPC) before
 * RocksDB sees them: RocksDB must not meet ENOSPC itself (see lel_store.c). */
#define LEL_STORE_FLOOR ((unsigned long long)4 << 20)
/** Applies the batch atomically (durable before return when sync). Frees it. Returns 0, -ENOSPC
 * (the data dir is full, under LEL_STORE_FLOOR or RocksDB's own write met it: nothing was
 * applied) or -EIO. */
int lel_store_write(lel_store_t *st, lel_batch_t *b);
/** Like lel_store_write but without waiting for the WAL fsync: survives a process crash, not
 * a power loss. For data nobody was promised (console lines). */
int lel_store_write_relaxed(lel_store_t *st, lel_batch_t *b);
/** Group commit: applies the batch at once (readers see it) and calls done(arg, 0) once it is
 * durable, or done(arg, -ENOSPC / -EIO). With sync the store's syncer thread fsyncs the WAL once for
 * every write queued since its last sync, so concurrent writers share one fsync and none waits
 * for it on its own thread; `done` then runs on that thread. Without sync, or when the write
 * itself fails, `done` runs here before the return. */
void lel_store_write_async(lel_store_t *st, lel_batch_t *b, void (*done)(void *arg, int r), void *arg);
/** Frees a batch without applying it. */
void lel_batch_free(lel_batch_t *b);

/* ---- a mirror under some column families (cluster mode: src/cluster/lel_cluster_kv.c) ---- */

/** One change of a batch to a mirrored column family, as the mirror sees it. `val` is the
 * encoded record (MessagePack with "_v"), NULL for deletes. Owned by the batch. */
enum lel_store_op_type { LEL_STORE_PUT = 0, LEL_STORE_DEL, LEL_STORE_DEL_PREFIX };
struct lel_store_op {
    enum lel_cf cf;
    enum lel_store_op_type type;
    char *key;
    char *val;
    size_t len;
};
/** With a mirror set, a batch that changes one of the `cf_mask` families (bit 1 << cf) is
 * first committed by the mirror: commit() gets the batch's changes to those families and, once
 * the mirror holds them, must call apply(arg) (which writes the whole batch here and returns 0
 * or -EIO) before it returns; its result is the write's. A commit that fails applies nothing.
 * Set once, before the store is shared between threads. */
struct lel_store_mirror {
    unsigned cf_mask;
    int (*commit)(void *ctx, const struct lel_store_op *ops, size_t n, int (*apply)(void *arg), void *arg);
    void *ctx;
};
void lel_store_set_mirror(lel_store_t *st, const struct lel_store_mirror *m);
/** A batch that bypasses the mirror: for applying what the mirror itself reports. */
lel_batch_t *lel_batch_new_local(lel_store_t *st);
/** Queues a put of an already encoded record (as a mirror holds it). 0 or -ENOMEM. */
int lel_batch_put_raw(lel_batch_t *b, enum lel_cf cf, const char *key, const char *val, size_t len);
/** The column family's name ("teams", "keys", ...) or NULL. */
const char *lel_store_cf_name(enum lel_cf cf);
/** Decodes an encoded record (MessagePack) into a new reference; NULL when it is not one. */
json_t *lel_store_decode(const char *val, size_t len);

/** Convenience: one put in its own batch. */
int lel_store_put(lel_store_t *st, enum lel_cf cf, const char *key, const json_t *value);

#endif
