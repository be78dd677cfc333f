/* A call: one HTTP request as it travels from the loop thread that accepted it, through the
 * API layer and an actor, back to that loop thread.
 *
 * Ownership: the HTTP layer creates it (lel_http), the API layer fills the response fields on
 * whichever thread handles it, and lel_call_done() hands it back; after lel_call_done() the
 * handler must not touch it. Workers never see the h2o request: the body is copied in. */
#ifndef LEL_CALL_H
#define LEL_CALL_H

#include "../common/lel_codec.h"
#include "../common/lel_util.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum lel_method { LEL_M_OTHER = 0, LEL_M_GET, LEL_M_POST, LEL_M_PUT, LEL_M_DELETE, LEL_M_PATCH };

struct lel_team;

typedef struct lel_call {
    /* request, read-only once dispatched */
    enum lel_method method;
    char *path;  /* normalized path, NUL-terminated */
    char *query; /* raw query string without '?', or NULL */
    char *body;  /* copy of the request body (NUL-terminated), or NULL */
    size_t body_len;
    int body_msgpack;                /* Content-Type: application/msgpack */
    enum lel_codec_format out_fmt;   /* from Accept */
    char *api_key, *bearer, *admin_token, *team_header; /* credential headers, or NULL */
    char peer[64];                   /* client address */
    /* filled by the API layer before actors see it */
    int route;
    char *id, *id2;      /* path parameters */
    json_t *json;        /* decoded body, or NULL */
    struct lel_team *team;
    char key_id[48];     /* rate-limit identity: key id, or "admin:<team>" */
    /* response */
    int status;
    json_t *resp;        /* body document; NULL for an empty body */
    char *next_token;    /* X-Next-Token */
    char *raw;           /* a raw body instead of resp; malloc'd */
    size_t raw_len;
    const char *raw_type; /* its content type (static string); NULL: application/octet-stream */
    long rl_limit, rl_remaining, rl_reset, retry_after; /* -1 = header absent */
    /* plumbing owned by the HTTP layer */
    void *http;
    atomic_int refs;
    atomic_int cancelled; /* the client went away (reset or closed) before the answer */
} lel_call_t;

/** Sets an error response: {"error": msg, "code": status, "message": msg}. */
void lel_call_error(lel_call_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Sets a response body (steals the reference) and status. */
void lel_call_reply(lel_call_t *c, int status, json_t *body);
/** Finishes the call: the response is sent on the owning loop thread (or dropped if the client left). */
void lel_call_done(lel_call_t *c);
/** Value of query parameter `name` (URL-decoded, malloc'd), or NULL when absent (or badly escaped). */
char *lel_call_query(const lel_call_t *c, const char *name);
/** The same with its decoded length in *len, which differs from its strlen when it held a NUL (%00). */
char *lel_call_query_len(const lel_call_t *c, const char *name, size_t *len);

#endif
