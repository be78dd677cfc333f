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

#endif
