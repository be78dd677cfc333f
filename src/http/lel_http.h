/* HTTP frontend on libh2o (evloop): N event-loop threads sharing one h2o config, each with its
 * own SO_REUSEPORT listeners; HTTP/1.1, h2c (prior knowledge and Upgrade) and TLS+ALPN h2.
 * Every request becomes a lel_call_t handed to the dispatch callback on the loop thread; its
 * answer comes back through lel_call_done() from any thread. */
#ifndef LEL_HTTP_H
#define LEL_HTTP_H

#include "../api/lel_call.h"

#include <lelantos/lelantos.h>

typedef struct lel_http lel_http_t;
typedef void (*lel_http_dispatch_fn)(void *ctx, lel_call_t *call);

/** Binds every configured address and starts the loop threads. Returns 0 or -errno with err filled. */
int lel_http_start(const lel_config_t *cfg, lel_http_dispatch_fn fn, void *ctx, lel_http_t **out, char *err,
                   size_t errlen);
/** Stops accepting, waits up to the configured grace for in-flight calls, joins the loops, frees. */
void lel_http_stop(lel_http_t *h);

#endif
