/* Internals of the gate (lel_gate.c: the connection's life, the wrapping of h2o's callbacks,
 * admission; lel_gate_h1.c: HTTP/1 heads and bodies; lel_gate_h2.c: HTTP/2 frames). See
 * lel_gate.c for what the gate is. Loop thread only. */
#ifndef LEL_GATE_INT_H
#define LEL_GATE_INT_H

#include "lel_http_int.h"
#include "lel_phr.h"

#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#define BODY_CAP (2u << 20)          /* undelivered body an upload may hold before reads stop */
#define LINGER_MAX (4u << 20)        /* body bytes drained after a refusal before closing anyway */
#define H2_STREAM_ACK (8u << 20)     /* HTTP/2 stream window handed back in steps of this much */
#define H2_PREFACE_LEN 24
/* Abuse bounds. A connection's answers handed to h2o and not yet done (sent, or its stream
 * reset) may hold this much; past it its further requests answer 503 at once (a client that
 * asks for big answers and never reads them, or never opens its HTTP/2 window, holds no more). */
#define HELD_CAP (8u << 20)
/* HTTP/2 frames that cost the server work and give it nothing (RFC 9113 §10.5): client
 * RST_STREAMs (Rapid Reset), and SETTINGS, PING, PRIORITY and empty frames, each from a token
 * bucket per connection; an empty bucket ends the connection with GOAWAY ENHANCE_YOUR_CALM. */
#define H2_RST_BURST 400.0
#define H2_RST_PER_S 100.0
#define H2_CTL_BURST 1000.0
#define H2_CTL_PER_S 200.0

enum mode { M_H1 = 0, M_H2, M_OFF };
enum h1state {
    H1_HEAD = 0, /* h2o waits for a request head */
    H1_PASS,     /* h2o has the request (reading its body, or answering it) */
    H1_BODY,     /* the gate reads the request's body into its lel_body */
    H1_LINGER,   /* an answer went out; drain what the client still sends, then close */
};
enum gs_state {
    GS_OPEN = 0, /* its HEADERS went to h2o; on_req has not judged it yet */
    GS_STREAM,   /* admitted, the body goes to the call's lel_body */
    GS_COLLECT,  /* admitted, the body is gathered here, then the call is dispatched */
    GS_DISCARD,  /* refused or answered: what still comes is dropped */
};

/* An HTTP/2 stream whose body goes through the gate. */
struct gstream {
    uint32_t sid;
    enum gs_state st;
    int ended;             /* the client ended it (END_STREAM) */
    lel_call_t *call;      /* GS_COLLECT: the call waiting for its body (the gate's reference) */
    struct lel_body *body; /* GS_STREAM */
    char *buf;             /* GS_OPEN: body that came before the judgment; GS_COLLECT: the body */
    size_t len;
    uint64_t wire;         /* GS_OPEN: DATA frame bytes whose window is owed once judged */
    uint64_t unacked;      /* stream window owed to the client */
};

struct gate {
    h2o_socket_t *sock;
    struct loop *loop;
    void *conn; /* h2o's connection object (sock->data) in this mode; compared, never read,
                   except h2o's HTTP/2 connection while it reads through the gate */
    enum mode mode;
    h2o_socket_cb inner_read, inner_write;
    int depth, closed;
    int handshaking;           /* TLS: h2o has not been given the connection yet */
    h2o_socket_cb h2_read;     /* h2o's HTTP/2 read callback once wrapped */
    h2o_timeout_entry_t timer; /* TLS handshake, body idle, linger */
    /* bounds on what a client may make the server hold (lel__gate_hold) */
    h2o_timeout_entry_t stall; /* answers held and nothing written for http.idle_timeout_ms: closed */
    size_t held;               /* bytes of answers h2o holds for requests not yet done */
    unsigned held_reqs;        /* requests whose pools point here: the gate outlives them */
    size_t stall_written;      /* sock->bytes_written at the last check */
    int doomed;                /* sent GOAWAY for abuse: closed at the next check whatever happens */
    double rst_tokens, ctl_tokens;
    uint64_t tokens_ms;
    /* HTTP/1 */
    enum h1state h1;
    lel_call_t *pending;   /* the call admitted for the head h2o is taking */
    unsigned reqs;         /* requests h2o handed to on_req */
    int final_sent;        /* the last write of an answer is in flight */
    int close_after;       /* drain and close once the answer is out */
    int pri_seen;          /* the HTTP/2 preface went to h2o over HTTP/1 */
    h2o_socket_cb held_write; /* h2o's write callback held while lingering */
    struct lel_body *body; /* H1_BODY */
    size_t head_len;       /* the rewritten head at the front of the input */
    uint64_t body_left;
    int chunked, reading;
    struct phr_chunked_decoder dec;
    size_t drained;
    char *reply;           /* the gate's own answer while it is written */
    /* HTTP/2 */
    int preface;           /* the client's preface is still ahead */
    struct gstream *gs;
    size_t ngs, capgs;
    uint64_t conn_owed;    /* connection window held back while an upload is at its cap */
};

void lel__gate_drop_body(struct lel_body **bp);
void lel__gate_rewrap(struct gate *g);
void lel__gate_enter(struct gate *g);
void lel__gate_leave(struct gate *g);
void lel__gate_forward(struct gate *g, const char *err);
void lel__gate_forward_prefix(struct gate *g, size_t n);
void lel__gate_kill(struct gate *g);
void lel__gate_doom(struct gate *g);
void lel__gate_on_timer(h2o_timeout_entry_t *e);
void lel__gate_arm(struct gate *g, h2o_timeout_t *t);
void lel__gate_reply_written(h2o_socket_t *sock, const char *err);
int lel__gate_admit(struct gate *g, lel_call_t *c);
void lel__gate_h1_input(struct gate *g);
int lel__gate_h1_head_parsed(struct gate *g);
void lel__gate_h1_late_vet(struct gate *g);
void lel__gate_gs_remove(struct gate *g, struct gstream *s);
void lel__gate_h2_settle(struct gate *g);
void lel__gate_h2_input(struct gate *g);
lel_call_t *lel__gate_h2_take(struct gate *g, h2o_req_t *req, int *later);

#endif
