/* A client of etcd's v3 API through its JSON gateway (HTTP/1.1 POSTs with JSON bodies, keys and
 * values base64, 64-bit numbers as strings: ../shared/docs/ETCD.md). libcurl carries the
 * requests, jansson the bodies. Why not gRPC: Debian ships no maintained C gRPC client for
 * etcd (grpc's C core is C++ inside and its C API is internal), while the gateway is on by
 * default on the client port and serves every call we need; its one limit (HTTP/1.1 is half
 * duplex, so a streaming keepalive answers nothing until its body ends) is met by sending each
 * lease renewal as its own POST and each watch's requests up front.
 *
 * Every call is synchronous and thread-safe: it takes an idle connection from the client's
 * pool (or opens one), tries the endpoints in turn starting at the last one that answered, and
 * fails over on a transport error or an "unavailable" answer (no leader, timed out). Calls
 * return 0 or a negative errno: -ENOENT (lease not found), -ECANCELED (a txn's comparison
 * failed, where asked), -EAGAIN (no endpoint could serve it: quorum lost or all down), -EPROTO
 * (an answer we could not read), -ESTALE (a revision that was compacted), -E2BIG, -EACCES.
 * The message of the last failure is kept per thread by the caller's `err` buffer. */
#ifndef LEL_ETCD_H
#define LEL_ETCD_H

#include <stddef.h>
#include <stdint.h>

typedef struct lel_etcd lel_etcd_t;

struct lel_etcd_opts {
    char *const *endpoints; /* "http://127.0.0.1:2379", "https://..."; copied */
    size_t nendpoints;
    const char *cacert;     /* PEM CA for https endpoints; NULL or "": the system's */
    const char *cert, *key; /* client certificate (etcd --client-cert-auth); NULL or "": none */
    const char *user, *password; /* etcd auth (v3 auth/authenticate); NULL or "": none */
    long timeout_ms;        /* one request's limit (watches excepted); 0: 5000 */
};

/** A key's record as etcd returns it. key and value are NUL-terminated copies (value may hold
 * NULs; len counts its bytes). Owned by the range result that holds it. */
struct lel_etcd_kv {
    char *key;
    char *value;
    size_t len;
    int64_t create_rev, mod_rev, version, lease;
};

struct lel_etcd_range {
    struct lel_etcd_kv *kvs;
    size_t n;
    int64_t revision; /* the store's revision the read was served at */
    int more;
};

/** Creates a client. Returns 0 or -EINVAL (no endpoint) / -ENOMEM. */
int lel_etcd_new(const struct lel_etcd_opts *o, lel_etcd_t **out);
void lel_etcd_free(lel_etcd_t *e);

/** Reads `key`, or with `prefix` every key starting with it (in key order, `limit` of them,
 * 0: all). `serializable` reads from the member's local copy (works without quorum, may be
 * stale). Fills *out (free with lel_etcd_range_free). */
int lel_etcd_range(lel_etcd_t *e, const char *key, int prefix, int64_t limit, int serializable,
                   struct lel_etcd_range *out, char *err, size_t errlen);
void lel_etcd_range_free(struct lel_etcd_range *r);

/** Puts a value (attached to `lease` unless 0). *rev (if given) gets the write's revision. */
int lel_etcd_put(lel_etcd_t *e, const char *key, const void *val, size_t len, int64_t lease, int64_t *rev, char *err,
                 size_t errlen);
/** Deletes `key` or, with `prefix`, every key starting with it. *deleted gets how many. */
int lel_etcd_delete(lel_etcd_t *e, const char *key, int prefix, int64_t *deleted, char *err, size_t errlen);

/** A comparison of a txn: the key's mod_revision (or create_revision with `create`) equals
 * `rev` (0 for "the key does not exist", with create). */
struct lel_etcd_cmp {
    const char *key;
    int create; /* compare create_revision instead of mod_revision */
    int64_t rev;
};
enum lel_etcd_op_type { LEL_ETCD_PUT = 0, LEL_ETCD_DEL, LEL_ETCD_DEL_PREFIX };
struct lel_etcd_op {
    enum lel_etcd_op_type type;
    const char *key;
    const void *val;
    size_t len;
    int64_t lease;
};
/** If every comparison holds, applies `ops` atomically: returns 0 with *rev the txn's
 * revision. Otherwise nothing is applied and it returns -ECANCELED. At most 128 ops and no key
 * twice (etcd's limits, -E2BIG / -EINVAL). */
int lel_etcd_txn(lel_etcd_t *e, const struct lel_etcd_cmp *cmps, size_t ncmp, const struct lel_etcd_op *ops,
                 size_t nops, int64_t *rev, char *err, size_t errlen);

/** Compacts the history below `rev` (watches from before it fail with -ESTALE). */
int lel_etcd_compact(lel_etcd_t *e, int64_t rev, char *err, size_t errlen);

/** Grants a lease of `ttl` seconds (etcd raises it to its minimum, 2 s by default). */
int lel_etcd_lease_grant(lel_etcd_t *e, int ttl, int64_t *id, int *granted, char *err, size_t errlen);
/** Renews a lease once (one POST). Returns 0 with *ttl the new TTL, or -ENOENT when etcd says
 * the lease is gone (expired or revoked: its keys are deleted). */
int lel_etcd_lease_keepalive(lel_etcd_t *e, int64_t id, int *ttl, char *err, size_t errlen);
int lel_etcd_lease_revoke(lel_etcd_t *e, int64_t id, char *err, size_t errlen);

/** One change seen by a watch. kv.value is empty for a delete. */
struct lel_etcd_event {
    int deleted;
    struct lel_etcd_kv kv;
};
/** Called per batch of events (same revision order as etcd's) on the watching thread; return
 * non-zero to end the watch. `revision` is the batch's header revision. */
typedef int (*lel_etcd_watch_cb)(void *ctx, const struct lel_etcd_event *ev, size_t n, int64_t revision);

/** Watches every key under `prefix` from revision `start` (inclusive) until cb returns
 * non-zero (returns 0), *stop becomes non-zero (returns -EINTR; checked at least every
 * 200 ms), the stream breaks (-EAGAIN after trying each endpoint once... the caller re-reads
 * and watches again), or `start` was compacted (-ESTALE: re-read, then watch from the read's
 * revision + 1). Blocks the calling thread. */
int lel_etcd_watch(lel_etcd_t *e, const char *prefix, int64_t start, lel_etcd_watch_cb cb, void *ctx,
                   const volatile int *stop, char *err, size_t errlen);

/** "k" with every byte after the last one that is not 0xff raised by one: the range end of a
 * prefix, written to out (at least strlen(prefix) + 1 bytes). "" maps to "\0" (all keys). */
void lel_etcd_prefix_end(const char *prefix, char *out, size_t *outlen);

#endif
