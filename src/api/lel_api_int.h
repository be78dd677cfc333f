/* Internals of the API layer shared by its files: lel_api.c (routing, credentials, rate
 * limits, the hand-off) and lel_api_e2b.c (the mapping of E2B's request shapes onto ours).
 * Loop thread only. */
#ifndef LEL_API_INT_H
#define LEL_API_INT_H

#include "lel_api.h"

/** E2B's fields in a decoded body of a route both APIs share (create, pause): those E2B
 * treats as hints or that ask for what we do anyway are accepted and removed, those we cannot
 * honour answer 400 naming the field. Returns 0, or -EINVAL with the 400 set on c. */
int lel__api_e2b_body(lel_call_t *c);

/** Checks a `network` object (create, PUT /sandboxes/{id}/network): allowPublicTraffic,
 * allowOut, denyOut (addresses, CIDRs, names). 0 or -EINVAL with the 400 set on c. */
int lel__api_network_field(lel_call_t *c, json_t *net);
/** DELETE /templates/{id} where id is none of the team's templates but one of its snapshots
 * (E2B's SDK deletes snapshots so): 1 with c->route changed to R_SNAP_DELETE, else 0. */
int lel__api_snapshot_as_template(lel_server_t *srv, lel_call_t *c);
/** POST /templates/tags {target: "name:tag"} and DELETE /templates/tags {name}: to the actor of
 * the template the body names, or answered 400/404. */
void lel__api_tags_route(lel_server_t *srv, lel_call_t *c);
/** PUT /templates/{id}/files/{hash}: to the template's actor (the URL's token is checked
 * there), or answered 404. */
void lel__api_upload_route(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, void (*ref)(void *, void *));

/** A request for a port of a sandbox: Host <port>-<id>.<domain> or E2b-Sandbox-Id + E2b-Sandbox-Port
 * (any port but envd's; *keyed 0) or /sandboxes/{id}/ports/{port}/... (*keyed 1: the API key is the
 * credential). Fills c->route, c->id, c->proxy_port and c->proxy_path. 1 when it is one, 0 when not,
 * or the status of an error set on c. */
int lel__api_port_match(lel_call_t *c, int *keyed);

/** The request is for E2B's data plane (E2b-Sandbox-Id, or a Host <port>-<sandboxID>.<domain>,
 * which fills c->e2b_sandbox and c->e2b_port). */
int lel__api_envd_wants(lel_call_t *c);
/** Routes a data-plane request (R_ENVD_*; c->id the sandbox, c->id2 the RPC). Returns 0 or
 * the status of the error set on c (502 for a sandbox or port that cannot be reached). */
int lel__api_envd_match(lel_call_t *c);
/** The part of judging a request that needs neither the store nor a clock: the port, data-plane
 * and table routes in the order the dispatch tries them, then the body decoded as the route's
 * handler will see it (limits from cfg). No credential or rate limit is checked. Returns 0, or
 * the status of the error set on c. For the fuzz target of the request path (tests/fuzz). */
int lel__api_route_decode(const lel_config_t *cfg, lel_call_t *c);
/** Hands a routed data-plane call to the sandbox's actor, or answers 502 (no such sandbox). */
void lel__api_envd_route(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, void (*ref)(void *, void *));

/** Methods of a route, as lel__api_route_at reports them. */
enum { LEL_API_GET = 1, LEL_API_POST = 2, LEL_API_PUT = 4, LEL_API_DELETE = 8, LEL_API_PATCH = 16 };
/** The i-th route the API layer answers: its pattern ('*' a path parameter, a final '**' the rest
 * of the path, any number of segments) and its methods. The table's entries, then the path form
 * of a sandbox's port. 0, or -ENOENT past the last. For the test that holds the table against
 * docs/openapi.json; the strings are static. */
int lel__api_route_at(size_t i, const char **pattern, unsigned *methods);
/** Entries in the routing table (without the port form that lel__api_route_at adds). */
size_t lel__api_route_count(void);

/* lel_api_metrics.c: the counters of the API layer and /metrics */
/** Makes srv->api_stats (0 or -ENOMEM) / frees it. */
int lel__api_stats_new(lel_server_t *srv);
void lel__api_stats_free(lel_server_t *srv);
/** A rate limit refused a request in `bucket` ("api:<key>", "auth:...", "fail:<addr>", ...). */
void lel__api_stats_rate_limited(lel_server_t *srv, const char *bucket);
/** Answers GET /metrics (the Prometheus text format) on c. */
void lel__api_metrics_answer(lel_server_t *srv, lel_call_t *c);

/* lel_api_docs.c */
/** Answers GET /openapi.json, /docs and /docs/{file} on c. */
void lel__api_docs_answer(lel_server_t *srv, lel_call_t *c);

#endif
