/* The API layer, the top of the request path on the loop thread: the routing table,
 * authentication, rate limits, body decoding and the hand-off to the actor that owns the data.
 * The HTTP frontend calls it through lel_http_handlers_t; nothing below it calls into it. */
#ifndef LEL_API_H
#define LEL_API_H

#include "../core/lel_core.h"

/** Takes a complete request: judges it (unless admitted already), decodes its body, hands it on. */
void lel_api_dispatch(void *srv, lel_call_t *c);
/** Judges a request with a body from its head (lel_http_handlers_t.admit). */
int lel_api_admit(void *srv, lel_call_t *c);

/** A call ended (lel_http_handlers_t.finished): counted by route and status, with its latency. */
void lel_api_finished(void *srv, const lel_call_t *c, uint64_t us);

/** The API layer's counters (srv->api_stats) and the /docs files (srv->docs, from docs.ui_dir);
 * at start, before the frontend. A missing or incomplete docs.ui_dir is said on stderr and /docs
 * answers 404 saying so; the daemon runs on. 0 or -ENOMEM. */
int lel_api_init(lel_server_t *srv);
/** Frees what lel_api_init made (after the frontends stopped). */
void lel_api_free(lel_server_t *srv);
/** Serves GET /metrics without credentials on metrics.listen (a frontend of its own, one loop
 * thread) when that is set; 0 or -errno with err filled. lel_api_metrics_stop ends it. */
int lel_api_metrics_listen(lel_server_t *srv, char *err, size_t errlen);
void lel_api_metrics_stop(lel_server_t *srv);

/** The OpenAPI document (docs/openapi.json, embedded at build time) and its length. */
void lel_api_openapi(const char **doc, size_t *len);

#endif
