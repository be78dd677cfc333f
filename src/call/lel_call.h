/* A call: one HTTP request as it travels from the loop thread that accepted it, through the
 * API layer and an actor, back to that loop thread.
 *
 * Ownership: the HTTP layer creates it (lel_http), the API layer fills the response fields on
 * whichever thread handles it, and lel_call_done() hands it back; after lel_call_done() the
 * handler must not touch it. Workers never see the h2o request: the body is copied in. */
#ifndef LEL_CALL_H
#define LEL_CALL_H

#include "../actor/lel_actor.h"
#include "../common/lel_codec.h"
#include "../common/lel_util.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum lel_method { LEL_M_OTHER = 0, LEL_M_GET, LEL_M_POST, LEL_M_PUT, LEL_M_DELETE, LEL_M_PATCH };

struct lel_team;

typedef struct lel_call {
    /* request, read-only once dispatched */
    enum lel_method method;
    char *path;  /* normalized path, NUL-terminated */
    char *query; /* raw query string without '?', or NULL */
    char *body;  /* copy of the request body (NUL-terminated), or NULL; NULL too when the body streams */
    size_t body_len, body_off;       /* body_off: what lel_call_body_read has taken of it */
    uint64_t declared_len;           /* the head's Content-Length; UINT64_MAX when unknown (chunked) */
    struct lel_body *body_in;        /* a body that arrives in pieces (routes that stream), or NULL */
    int body_msgpack;                /* Content-Type: application/msgpack */
    enum lel_codec_format out_fmt;   /* from Accept */
    int accept_sse;                  /* Accept names text/event-stream */
    char *api_key, *bearer, *admin_token, *team_header; /* credential headers, or NULL */
    /* E2B's data plane (src/envd): the sandbox and port a request is for (E2b-Sandbox-Id and
     * E2b-Sandbox-Port, or a Host of the form <port>-<sandboxID>.<domain>), its X-Access-Token,
     * and the headers its protocol reads; NULL when absent */
    char *e2b_sandbox, *e2b_port, *host, *access_token;
    char *node_secret;   /* X-Lelantos-Node: another node of the cluster forwarded this (its secret) */
    int from_node;       /* node_secret is the cluster's: never forwarded again, not rate-limited twice */
    char *traffic_token; /* e2b-traffic-access-token: a sandbox port's credential when it is not public */
    char *content_type, *content_encoding, *connect_timeout, *keepalive;
    json_t *xmetadata;               /* X-Metadata-<key> headers (E2B's file metadata on uploads): {key lowercased:
                                        value as sent (no UTF-8 check)}; NULL when none came. Owned by the call */
    char peer[64];                   /* client address */
    /* filled by the API layer before actors see it */
    int route;
    int route_slot;      /* for the metrics: 1 + the routing table's entry * 4 + method (GET, POST, PUT,
                            DELETE), or one of the API layer's slots past the table; 0: none matched */
    int admitted;        /* route, credentials and rate limit were judged from the head (lel_http admit) */
    int body_streams;    /* admit: the route takes its body in pieces, up to body_limit bytes */
    uint64_t body_limit;
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
    const char *allow;    /* Allow header of a 405 (static string), or NULL */
    int close;            /* close the connection after this answer (HTTP/1) */
    /* a request for a sandbox's port (lel_call_proxy): the stream to it, the port, the path and
     * the Host to send (malloc'd; NULL: the request's own); proxy_fd is -1 otherwise */
    int proxy_fd, proxy_port;
    char *proxy_path, *proxy_host;
    /* cluster mode: proxy_fd is a connection to the node that owns the sandbox (lel_call_proxy_node),
     * named fwd_node in errors; the request goes on as it came (its own path, Host and credentials)
     * with X-Lelantos-Node: fwd_secret. Both malloc'd; NULL for a sandbox's port */
    char *fwd_node, *fwd_secret;
    long rl_limit, rl_remaining, rl_reset, retry_after; /* -1 = header absent */
    /* plumbing owned by the HTTP layer */
    void *http;
    atomic_int refs;
    atomic_int cancelled; /* the client went away (reset or closed) before the answer */
} lel_call_t;

/** The message type that carries a call to an actor (ptr: the call); the actors' other message
 * types follow it (src/core/lel_core.h). */
#define LEL_MSG_CALL 1

/** Sets an error response: {"error": msg, "code": status, "message": msg}. */
void lel_call_error(lel_call_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Sets a response body (steals the reference) and status. */
void lel_call_reply(lel_call_t *c, int status, json_t *body);
/** Finishes the call: the response is sent on the owning loop thread (or dropped if the client left). */
void lel_call_done(lel_call_t *c);
/** Answers by forwarding the request to a server in a sandbox: `fd` is a stream to it (the call
 * takes it), `port` names it in errors. Then lel_call_done(). */
void lel_call_proxy(lel_call_t *c, int fd, int port);
/** Answers by sending the whole request on to another node of the cluster over `fd` (a
 * connection to it, connected or connecting; the call takes it), streaming both ways as
 * lel_call_proxy does; `node` names it in errors, `secret` goes as X-Lelantos-Node. Then
 * lel_call_done(). 0, or -ENOMEM (fd closed, nothing set). */
int lel_call_proxy_node(lel_call_t *c, int fd, const char *node, const char *secret);
/** Copies up to `max` bytes of the request body that have arrived (any call: an ordinary body is
 * read from c->body). Returns the count, 0 at the end of the body, -EAGAIN when nothing more is
 * there yet (the consumer named with lel_call_body_notify gets a message when there is), or
 * -ECONNRESET when the client went away. A consumer reads until -EAGAIN or the end each time it
 * is told; it is told again only after that. */
ssize_t lel_call_body_read(lel_call_t *c, void *buf, size_t max);
/** Names the actor told, by a message of `type` with arg `id`, when more body has arrived or it
 * ended (at once if some is there already). Until lel_call_done(), which stops the telling. */
void lel_call_body_notify(lel_call_t *c, lel_actor_t *a, int type, uint32_t id);
/** Makes the answer a stream of pieces: set status and the first piece (c->raw, c->raw_len,
 * c->raw_type) and call lel_call_done(). `total` is the body's whole length (Content-Length).
 * Each time a piece has gone out, `a` gets a message of `type` with arg `id`; its handler puts
 * the next piece in c->raw/c->raw_len and calls lel_call_piece(). */
void lel_call_stream(lel_call_t *c, uint64_t total, lel_actor_t *a, int type, uint32_t id);
/** Hands over the next piece of a streamed answer: more = 1 when more follow, 0 for the last,
 * -1 to cut the response short (an error after the head went out: the client sees a broken
 * response, never a wrong one). After the last (or -1) the call is gone. When the client went
 * away (c->cancelled) the handler ends with -1 at once. */
void lel_call_piece(lel_call_t *c, int more);
/** Value of query parameter `name` (URL-decoded, malloc'd), or NULL when absent (or badly escaped). */
char *lel_call_query(const lel_call_t *c, const char *name);
/** The same with its decoded length in *len, which differs from its strlen when it held a NUL (%00). */
char *lel_call_query_len(const lel_call_t *c, const char *name, size_t *len);
/** Reads an optional integer field of the body: 0 (absent: *out untouched), 1 (set), or -EINVAL
 * with a 400 naming the field set on c. */
int lel_call_int_field(lel_call_t *c, const char *name, long long min, long long max, long long *out);
/** Optional string field (borrowed from c->json) with a length cap; same returns. */
int lel_call_str_field(lel_call_t *c, const char *name, size_t maxlen, const char **out);
/** Answers a failed store read or write `r` (negative errno): 507 for -ENOSPC (the data dir is
 * full), else 500; "nothing was changed" either way (writes are batches). */
void lel_call_store_failed(lel_call_t *c, int r);
/** Hands the call to actor `a` (LEL_MSG_CALL); when `a` refuses mail, answers 503 and finishes it. */
void lel_call_send(lel_actor_t *a, lel_call_t *c);

#endif
