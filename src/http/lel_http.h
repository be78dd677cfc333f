/* HTTP frontend on libh2o (evloop): N event-loop threads sharing one h2o config and one
 * listening socket per address; HTTP/1.1, h2c (prior knowledge and Upgrade) and TLS+ALPN h2.
 * A gate in front of h2o's protocol code judges each request that carries a body from its head
 * (admit), before the body is read. Every request becomes a lel_call_t handed to the dispatch
 * callback on the loop thread; its answer comes back through lel_call_done() from any thread. */
#ifndef LEL_HTTP_H
#define LEL_HTTP_H

#include "../call/lel_call.h"

#include <lelantos/lelantos.h>

typedef struct lel_http lel_http_t;

typedef struct lel_http_handlers {
    /** Judges a request that has a body from its head, on the loop thread: c has method, path,
     * query, credentials, peer and declared_len. Returns 0 to admit it (c->admitted set, and
     * c->body_streams when the route takes its body in pieces), or an HTTP status with the
     * error set on c: the client gets that answer before any of its body is read. */
    int (*admit)(void *ctx, lel_call_t *c);
    /** Takes a complete request (its body whole in c->body, or arriving, c->body_in). */
    void (*dispatch)(void *ctx, lel_call_t *c);
    /** A call is over (its answer sent, or its client gone): `us` microseconds since its head
     * arrived. On any thread, just before c is freed; may be NULL. */
    void (*finished)(void *ctx, const lel_call_t *c, uint64_t us);
} lel_http_handlers_t;

/** What the frontend counts, for the metrics. */
struct lel_http_stats {
    long long conns_open;     /* client connections open now */
    long long conns_accepted; /* since start */
};
/** Reads the frontend's counters; any thread. */
void lel_http_stats(lel_http_t *h, struct lel_http_stats *out);

/** Binds every configured address and starts the loop threads; `cfg` must outlive the frontend.
 * Returns 0 or -errno with err filled. */
int lel_http_start(const lel_config_t *cfg, const lel_http_handlers_t *hd, void *ctx, lel_http_t **out, char *err,
                   size_t errlen);
/** Stops accepting, waits up to the configured grace for in-flight calls, joins the loops, frees. */
void lel_http_stop(lel_http_t *h);

#endif
