/* Shared state in cluster mode: some of the store's column families (teams, keys, members)
 * live in etcd, under <prefix>s/<family>/<key>, with the same MessagePack values as in RocksDB.
 * RocksDB keeps a copy of them, so reads stay local and go on when etcd is unreachable;
 * everything else (sandboxes' logs and metrics, images, snapshots) stays node-local.
 *
 * Writes: the store's mirror hook (lel_store.h) sends a batch's changes to those families to
 * etcd as one txn that compares each key's mod_revision with the one this node last saw (or
 * create_revision 0 for a key it thinks absent), and applies the batch locally only when the
 * txn succeeded; a concurrent change by another node fails the write (-ECANCELED), etcd
 * unreachable fails it (-EAGAIN): nothing is changed either way.
 *
 * Reads of others' changes: a thread watches the prefix from the revision of the last full read
 * and applies each change to RocksDB, then tells the owner of the in-memory indexes (the team
 * module: new keys authenticate, deleted ones stop) through a callback. A watch that breaks or
 * falls behind a compaction is recovered by a full read, compared with the local copy. */
#ifndef LEL_CLUSTER_KV_H
#define LEL_CLUSTER_KV_H

#include "lel_cluster.h"

struct lel_cluster_kv;

/** A change another node made: `rec` the new record (NULL when deleted), `old` the record this
 * node had (NULL when none). Called on the watch thread; both are borrowed. */
typedef void (*lel_cluster_kv_cb)(void *ctx, enum lel_cf cf, const char *key, json_t *rec, json_t *old);

/** Makes the families in `cf_mask` (bits 1 << cf) shared: when etcd holds none of them yet, this
 * node's records are written there (the first node of a cluster seeds it); otherwise the local
 * copy is replaced by etcd's. Then sets the store's mirror. Returns 0 or -errno with err. */
int lel_cluster_kv_start(struct lel_cluster *cl, lel_store_t *st, unsigned cf_mask, struct lel_cluster_kv **out,
                         char *err, size_t errlen);
/** The sandbox catalog: the families in `catalog_mask` (the sandboxes' records) are not shared
 * but published: each change is applied here first and then, off the writer's thread, put in
 * etcd with this node's name in the record's "node" field (a write never waits for etcd, so a
 * node that lost it keeps running its sandboxes). Other nodes' records are kept in memory, not
 * in RocksDB. Call before lel_cluster_kv_watch; publishes every local record at once. */
int lel_cluster_kv_catalog(struct lel_cluster_kv *kv, unsigned catalog_mask);
/** Another node's sandbox record by sandbox id (with "node"), a new reference, or NULL. */
json_t *lel_cluster_kv_remote(struct lel_cluster_kv *kv, const char *id);
/** Calls cb for every other node's sandbox record of team `team` (borrowed, under a lock: cb
 * must not call back into kv). */
void lel_cluster_kv_remote_foreach(struct lel_cluster_kv *kv, const char *team, int (*cb)(void *ctx, json_t *rec),
                                   void *ctx);

/** A kill (DELETE) of another node's sandbox whose node is gone (`rec`: its catalog record): the
 * catalog's record becomes killed, with "killedBy" this node, so every node lists it killed and
 * its own node, back, cleans it up (lel_cluster_kv_killed_away). Takes the call: answered 204
 * once etcd has it, 503 when etcd could not be written (nothing changed). 0, or -ENOMEM (the
 * call is not taken). Any thread. */
int lel_cluster_kv_kill_away(struct lel_cluster_kv *kv, lel_call_t *c, const json_t *rec);
/** This node's sandboxes that another node killed while this one was gone, as the catalog in
 * etcd says: an object sandbox id -> record (with "killedBy"); empty when etcd cannot be read.
 * For the start, before the catalog publishes this node's records again. New reference. */
json_t *lel_cluster_kv_killed_away(struct lel_cluster_kv *kv);

/** Starts the watch thread that applies other nodes' changes and calls cb for each. */
int lel_cluster_kv_watch(struct lel_cluster_kv *kv, lel_cluster_kv_cb cb, void *ctx);
/** Stops the thread and frees; the store's mirror must no longer be used after (stop it after
 * every writer). NULL is fine. */
void lel_cluster_kv_stop(struct lel_cluster_kv *kv);

#endif
