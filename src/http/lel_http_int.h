/* Internals of the HTTP frontend, shared by its files: lel_http.c (loops, listeners, requests
 * and responses), lel_gate.c (the admission gate in front of h2o's protocol code) and
 * lel_body.c (request bodies handed to an actor in pieces). Everything here runs on the loop
 * thread that owns the connection unless a comment says otherwise. */
#ifndef LEL_HTTP_INT_H
#define LEL_HTTP_INT_H

#include "lel_http.h"

#include <h2o.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/socket.h>

struct loop {
    h2o_context_t ctx; /* first: on_req finds the loop from req->conn->ctx */
    h2o_accept_ctx_t accept_ctx;
    h2o_multithread_receiver_t replies, wake, resumes;
    h2o_socket_t **listeners;
    int *fds; /* listening sockets, wrapped into h2o sockets by the loop thread */
    size_t nlisteners;
    int setup_error;
    pthread_t thread, tid; /* tid: set by the loop thread itself */
    lel_http_t *http;
    atomic_long inflight; /* calls and bodies created by this loop and not yet freed */
    h2o_timeout_t linger_timeout, body_timeout, tunnel_timeout;
    int woken; /* the stop message arrived (its receiver must be empty to unregister) */
    int exit;
};

struct lel_http {
    h2o_globalconf_t conf;
    SSL_CTX *ssl;
    const lel_config_t *cfg; /* the server's; outlives this */
    lel_http_handlers_t hd;
    void *hd_ctx;
    atomic_int stopping;
    atomic_size_t body_bytes; /* request body bytes admitted and not yet released */
    atomic_llong conns_open, conns_accepted; /* client connections (lel_gate.c counts them) */
    struct loop *loops;
    int nloops;
    sem_t ready; /* posted by each loop thread once set up */
};

/* What a response that comes in pieces is waiting for. */
enum piece_wait { PW_NONE = 0, PW_ACTOR, PW_PROCEED };

/* Per-call state of the HTTP layer; lives in lel_call_t.http. */
struct call_priv {
    h2o_multithread_message_t msg; /* first: replies are recovered from the message link */
    h2o_req_t *req;                /* NULL once the client is gone; loop thread only */
    struct loop *loop;
    lel_call_t *call;
    struct gate *gate;     /* the connection's gate while the request is in it; loop thread only */
    size_t reserved;       /* body bytes this call holds in lel_http.body_bytes */
    h2o_generator_t gen;   /* responses in pieces */
    enum piece_wait wait;
    int started;           /* the response's head went out */
    lel_actor_t *more_to;  /* who makes the next piece */
    int more_type;
    uint32_t more_id;
    int more;              /* the piece in hand: 1 more follow, 0 the last, -1 cut the response */
    uint64_t total;        /* the streamed body's length */
    struct lel_proxy *proxy; /* the request goes to a sandbox's port (lel_proxy.c) */
    int64_t t0_us;           /* monotonic: when its head arrived */
};

/* lel_http.c */
/** A new call for a request head (the h2o request comes later, with on_req); NULL without memory. */
lel_call_t *lel__http_call_new(struct loop *l);
/** The method named by m[0..len). */
enum lel_method lel__http_method(const char *m, size_t len);
/** The client's address as text ("unknown" without one). */
void lel__http_peer(const struct sockaddr *sa, socklen_t n, char out[64]);
/** Fills the request fields of `c` from `req` (path split from its query, credentials, formats). */
int lel__http_call_fill(lel_call_t *c, h2o_req_t *req);
void lel__http_call_ref(lel_call_t *c);
void lel__http_call_unref(lel_call_t *c);
/** Reserves n body bytes against http.max_inflight_body_bytes; 0 or -ENOBUFS. */
int lel__http_reserve(lel_http_t *h, size_t n);
void lel__http_release(lel_http_t *h, size_t n);
/** The JSON error body API.md prescribes, malloc'd; *len set. */
char *lel__http_error_json(int status, const char *msg, size_t *len);
const char *lel__http_reason(int status);
/** A pool dispose callback that frees the malloc'd pointer its slot holds. */
void lel__http_free_held(void *slot);

/* lel_proxy.c */
struct lel_proxy;
/** Forwards the request to c->proxy_fd (lel_call_proxy); takes the call's dispatch reference. */
void lel__proxy_start(lel_call_t *c, h2o_req_t *req);
/** The client went away: the proxy ends (its stream to the guest closes). */
void lel__proxy_gone(struct lel_proxy *x);

/* lel_gate.c */
struct gate;
/** Puts a gate in front of h2o on a new connection (plain or TLS) and hands it to h2o. */
void lel__gate_accept(struct loop *l, h2o_socket_t *sock);
/** The gate of the connection `req` came on, or NULL. */
struct gate *lel__gate_of(h2o_req_t *req);
/** The call the gate judged for `req` (taken: the caller owns that reference), or NULL for a
 * request the gate did not judge (no body), which goes the ordinary way. A refused one carries
 * its error. *later is set when the gate dispatches the call itself once its body is in. */
lel_call_t *lel__gate_take(struct gate *g, h2o_req_t *req, int *later);
/** A response on the connection was started or finished (`last`); after every h2o call made
 * outside the gate's own callbacks the gate re-installs itself. */
void lel__gate_after_send(struct gate *g, h2o_req_t *req, int last);
/** An answer of `n` bytes went to h2o whole (h2o_send_inline): counted against the connection's
 * HELD_CAP until the request is done; arms the stall check. */
void lel__gate_hold(struct gate *g, h2o_req_t *req, size_t n);
/** Whether the connection holds as many answers as it may (its next request answers 503). */
int lel__gate_over_held(struct gate *g);
/** Whether an answer of `n` bytes would take the connection past what it may hold (the first
 * one never does, whatever its size): it answers 503 instead. */
int lel__gate_would_overflow(struct gate *g, size_t n);
/** The call's answer is going out while its body is still arriving: what is left of the body is
 * thrown away and, on HTTP/1, the connection closes after the answer. */
void lel__gate_body_cut(struct gate *g, lel_call_t *c, h2o_req_t *req);
/** A body's consumer drained it below its cap: reading resumes (message from a worker). */
void lel__gate_body_resume(struct gate *g, struct lel_body *b);
/** The connection leaves HTTP (an Upgrade to a tunnel): the gate stands aside for good. */
void lel__gate_release(struct gate *g);

/* lel_body.c */
/** A body of at most `limit` bytes that holds up to `cap` bytes undelivered; the gate feeds it. */
struct lel_body *lel__body_new(struct loop *l, uint64_t limit, size_t cap);
void lel__body_ref(struct lel_body *b);
void lel__body_unref(struct lel_body *b);
/** Appends n bytes; returns 1 when the producer should pause (cap reached), 0 to go on, -1 when
 * the body passed its limit (it is ended then: the consumer reads -E2BIG). */
int lel__body_push(struct lel_body *b, const void *data, size_t n);
/** The body is complete (ok 1), the client went away (0) or sent too much (-E2BIG); the
 * consumer is told. */
void lel__body_end(struct lel_body *b, int ok);
/** Bytes queued and not yet taken by the consumer. */
size_t lel__body_queued(struct lel_body *b);
/** The gate feeding the body; set and read on the loop thread only. */
struct gate *lel__body_gate(struct lel_body *b);
void lel__body_set_gate(struct lel_body *b, struct gate *g);
/** The consumer stops listening (its call was answered). */
void lel__body_detach(struct lel_body *b);
/** A consumer on the loop thread itself (the proxy): `fn` runs there whenever more body came or it
 * ended (NULL: none). */
void lel__body_sink(struct lel_body *b, void (*fn)(void *), void *ctx);
/** Handles resume messages on the loop thread. */
void lel__body_on_resumes(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages);

#endif
