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

#endif
