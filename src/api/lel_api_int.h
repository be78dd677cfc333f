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

/** The request is for E2B's data plane (E2b-Sandbox-Id, or a Host <port>-<sandboxID>.<domain>,
 * which fills c->e2b_sandbox and c->e2b_port). */
int lel__api_envd_wants(lel_call_t *c);
/** Routes a data-plane request (R_ENVD_*; c->id the sandbox, c->id2 the RPC). Returns 0 or
 * the status of the error set on c (502 for a sandbox or port that cannot be reached). */
int lel__api_envd_match(lel_call_t *c);
/** Hands a routed data-plane call to the sandbox's actor, or answers 502 (no such sandbox). */
void lel__api_envd_route(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, void (*ref)(void *, void *));

#endif
