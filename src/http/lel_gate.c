/* The gate: a thin layer between each connection's socket and h2o's protocol code, because
 * h2o 2.2 reads a request's whole body before it calls any handler. The gate sees the bytes
 * first; a request that carries a body is judged from its head (route, credentials, rate
 * limit, declared length: lel_http_handlers_t.admit) before any of the body is read, and
 *  - refused: HTTP/1 gets the JSON error at once (no 100 Continue) and the connection closes
 *    after a short lingering drain; HTTP/2 gets the error on its stream, whose DATA is dropped;
 *  - admitted to a route that takes its body in pieces (uploads): h2o is shown a bodyless
 *    request and the gate feeds the body to the call's actor as it arrives (lel_body.c),
 *    stopping the reads (HTTP/1) or the window (HTTP/2) while the actor is behind;
 *  - admitted otherwise: h2o reads the body as usual (at most http.max_body_bytes).
 * It also answers malformed or ambiguous HTTP/1 heads (RFC 9112 §6.3: two Content-Lengths,
 * Content-Length with Transfer-Encoding, no Host) with a JSON 400 and closes.
 *
 * How it sits in front: h2o keeps the socket; the gate swaps itself in as the socket's read
 * (and, on HTTP/1, write-completion) callback and calls h2o's own callback after looking.
 * h2o sets those callbacks again at a few points (h2o_socket_read_start, h2o_socket_write), all
 * of them inside a call the gate makes, so after each such call the gate puts itself back
 * (rewrap). This leans on h2o 2.2.5's behaviour (Debian's libh2o-evloop 2.2.5+dfsg2); the e2e
 * tests exercise every path. Loop thread only. */
#include "lel_gate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int h2_alive(struct gate *g);
static void gate_on_read(h2o_socket_t *sock, const char *err);
static void gate_on_write(h2o_socket_t *sock, const char *err);
static int gate_reads(struct gate *g);

/* ---- life ---- */

void lel__gate_drop_body(struct lel_body **bp)
{
    if (!*bp)
        return;
    lel__body_end(*bp, 0);
    lel__body_set_gate(*bp, NULL);
    lel__body_unref(*bp);
    *bp = NULL;
}

static void gate_free(struct gate *g)
{
    if (g->held_reqs) /* the last request's pool frees it (held_done) */
        return;
    if (h2o_timeout_is_linked(&g->timer))
        h2o_timeout_unlink(&g->timer);
    if (h2o_timeout_is_linked(&g->stall))
        h2o_timeout_unlink(&g->stall);
    if (g->pending)
        lel__http_call_unref(g->pending);
    lel__gate_drop_body(&g->body);
    while (g->ngs)
        lel__gate_gs_remove(g, &g->gs[0]);
    free(g->gs);
    free(g->reply);
    free(g);
}

static void gate_on_close(void *data)
{
    struct gate *g = data;
    g->closed = 1;
    if (h2o_timeout_is_linked(&g->stall))
        h2o_timeout_unlink(&g->stall);
    if (h2o_timeout_is_linked(&g->timer))
        h2o_timeout_unlink(&g->timer);
    atomic_fetch_sub_explicit(&g->loop->http->conns_open, 1, memory_order_relaxed);
    if (!g->depth)
        gate_free(g);
}

/* ---- what a client makes the server hold ----
 * Answers go to h2o whole; a client that never reads them, or never opens its HTTP/2 window,
 * would have them held for as long as it keeps the connection. So they are counted until their
 * request is done (its pool is disposed), the connection's next requests answer 503 while the
 * count is past HELD_CAP, and a connection that holds answers and has had nothing written for
 * http.idle_timeout_ms is closed. */

struct held {
    struct gate *g;
    size_t n;
};

static void held_done(void *p)
{
    struct held *h = p;
    struct gate *g = h->g;
    g->held -= h->n;
    if (--g->held_reqs == 0 && g->closed && !g->depth)
        gate_free(g);
}

static void stall_check(h2o_timeout_entry_t *e)
{
    struct gate *g = H2O_STRUCT_FROM_MEMBER(struct gate, stall, e);
    if (g->closed)
        return;
    if (g->doomed || (g->held && g->sock->bytes_written == g->stall_written)) {
        lel__gate_enter(g);
        lel__gate_kill(g);
        lel__gate_leave(g);
    } else if (g->held) {
        g->stall_written = g->sock->bytes_written;
        h2o_timeout_link(g->loop->ctx.loop, &g->loop->body_timeout, &g->stall);
    }
}

void lel__gate_hold(struct gate *g, h2o_req_t *req, size_t n)
{
    struct held *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), held_done);
    h->g = g;
    h->n = n;
    g->held += n;
    g->held_reqs++;
    if (!h2o_timeout_is_linked(&g->stall) && !g->closed) {
        g->stall_written = g->sock->bytes_written;
        h2o_timeout_link(g->loop->ctx.loop, &g->loop->body_timeout, &g->stall);
    }
}

int lel__gate_over_held(struct gate *g)
{
    return g->held >= HELD_CAP;
}

int lel__gate_would_overflow(struct gate *g, size_t n)
{
    return g->held && (n > HELD_CAP || g->held + n > HELD_CAP);
}

/* Abuse: h2o is told to end the connection (it sends what it has, the GOAWAY the caller queued
 * among it); the socket goes at the next linger tick even if the client never reads. */
void lel__gate_doom(struct gate *g)
{
    g->doomed = 1;
    if (h2o_timeout_is_linked(&g->stall))
        h2o_timeout_unlink(&g->stall);
    h2o_timeout_link(g->loop->ctx.loop, &g->loop->linger_timeout, &g->stall);
}

struct gate *lel__gate_of(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock && sock->on_close.cb == gate_on_close ? sock->on_close.data : NULL;
}

static int gate_reads(struct gate *g)
{
    return g->mode == M_H1 && (g->h1 == H1_LINGER || (g->h1 == H1_BODY && g->reading));
}

/* HTTP/2 reads through the gate for the whole connection; when h2o's read callback is other
 * than the one the gate wraps (or none), h2o is closing it (over TLS the socket outlives h2o's
 * connection object while close_notify goes out) and the gate stands aside for good. */
static int h2_alive(struct gate *g)
{
    h2o_socket_cb cb = g->sock->_cb.read;
    return !g->h2_read || cb == gate_on_read || (cb && cb == g->h2_read);
}

/* Puts the gate back in front of whatever callbacks h2o installed, and notices h2o moving the
 * connection from HTTP/1 to HTTP/2 (an Upgrade: a new connection object on the socket). */
void lel__gate_rewrap(struct gate *g)
{
    h2o_socket_t *s = g->sock;
    if (g->closed || g->mode == M_OFF)
        return;
    if (g->mode == M_H2 && !h2_alive(g)) {
        g->mode = M_OFF;
        return;
    }
    if (s->data != g->conn) {
        if (g->pending)
            lel__http_call_unref(g->pending);
        g->pending = NULL;
        lel__gate_drop_body(&g->body);
        g->mode = M_H2;
        g->conn = s->data;
        g->preface = !g->pri_seen; /* after an Upgrade the client's preface is still to come */
    }
    if (s->_cb.read && s->_cb.read != gate_on_read) {
        g->inner_read = s->_cb.read;
        s->_cb.read = gate_on_read;
        if (g->mode == M_H2)
            g->h2_read = g->inner_read; /* h2o's HTTP/2 reader, for the whole connection */
    }
    if (!s->_cb.read && gate_reads(g))
        h2o_socket_read_start(s, gate_on_read);
    if (g->mode == M_H1 && s->_cb.write && s->_cb.write != gate_on_write && s->_cb.write != lel__gate_reply_written) {
        g->inner_write = s->_cb.write;
        s->_cb.write = gate_on_write;
    }
}

void lel__gate_enter(struct gate *g)
{
    g->depth++;
}

void lel__gate_leave(struct gate *g)
{
    if (--g->depth)
        return;
    if (g->closed)
        gate_free(g); /* or its last request's pool does */
    else
        lel__gate_rewrap(g);
}

/* Hands the read event to h2o's own callback. */
void lel__gate_forward(struct gate *g, const char *err)
{
    h2o_socket_cb cb = g->inner_read;
    if (!cb)
        return;
    if (err)
        g->mode = M_OFF; /* h2o closes the connection for it */
    lel__gate_enter(g);
    g->sock->_cb.read = cb;
    cb(g->sock, err);
    if (!g->closed && g->sock->_cb.read == cb)
        g->sock->_cb.read = gate_on_read;
    lel__gate_leave(g);
}

/* Shows h2o only the first n bytes of the input, then puts the rest back behind what h2o left. */
void lel__gate_forward_prefix(struct gate *g, size_t n)
{
    h2o_buffer_t *in = g->sock->input;
    size_t tail = in->size - n;
    char *t = tail ? malloc(tail) : NULL;
    if (tail && !t) {
        lel__gate_forward(g, h2o_socket_error_out_of_memory);
        return;
    }
    if (tail)
        memcpy(t, in->bytes + n, tail);
    in->size = n;
    lel__gate_enter(g);
    lel__gate_forward(g, NULL);
    if (!g->closed && tail) {
        h2o_iovec_t buf = h2o_buffer_reserve(&g->sock->input, tail);
        if (buf.base) {
            memcpy(buf.base, t, tail);
            g->sock->input->size += tail;
        }
    }
    lel__gate_leave(g);
    free(t);
}

/* Ends a connection h2o is in the middle of: its next read or write fails and h2o closes it. */
void lel__gate_kill(struct gate *g)
{
    shutdown(h2o_socket_get_fd(g->sock), SHUT_RDWR);
    if (g->sock->_cb.read == gate_on_read && g->inner_read && !gate_reads(g))
        lel__gate_forward(g, "refused by the gate");
}

void lel__gate_on_timer(h2o_timeout_entry_t *e)
{
    struct gate *g = H2O_STRUCT_FROM_MEMBER(struct gate, timer, e);
    lel__gate_enter(g);
    if (g->handshaking) { /* the TLS handshake took too long */
        h2o_socket_close(g->sock);
    } else if (g->h1 == H1_LINGER) {
        g->h1 = H1_PASS;
        if (g->held_write) { /* an answer h2o sent: let h2o finish (it closes: not persistent) */
            h2o_socket_cb cb = g->held_write;
            g->held_write = NULL;
            h2o_socket_read_stop(g->sock);
            cb(g->sock, NULL);
        } else {
            lel__gate_forward(g, "closed after a refusal");
        }
    } else if (g->h1 == H1_BODY) { /* the client stopped sending its body */
        lel__body_end(g->body, 0);
        lel__gate_kill(g);
    }
    lel__gate_leave(g);
}

void lel__gate_arm(struct gate *g, h2o_timeout_t *t)
{
    if (h2o_timeout_is_linked(&g->timer))
        h2o_timeout_unlink(&g->timer);
    h2o_timeout_link(g->loop->ctx.loop, t, &g->timer);
}

/* ---- accepting ---- */

static struct gate *gate_new(struct loop *l, h2o_socket_t *sock)
{
    struct gate *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->sock = sock;
    g->loop = l;
    g->mode = M_OFF;
    g->timer.cb = lel__gate_on_timer;
    g->stall.cb = stall_check;
    g->rst_tokens = H2_RST_BURST;
    g->ctl_tokens = H2_CTL_BURST;
    g->tokens_ms = h2o_now(l->ctx.loop);
    sock->on_close.cb = gate_on_close;
    sock->on_close.data = g;
    atomic_fetch_add_explicit(&l->http->conns_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->http->conns_accepted, 1, memory_order_relaxed);
    return g;
}

/* h2o starts on a connection with nothing in its input (it would parse it at once); then the
 * gate puts the input back and judges it first. */
static void start_h2o(struct gate *g, int h2)
{
    struct timeval at = *h2o_get_timestamp(&g->loop->ctx, NULL, NULL);
    size_t had = g->sock->input->size;
    g->sock->input->size = 0;
    lel__gate_enter(g);
    if (h2)
        h2o_http2_accept(&g->loop->accept_ctx, g->sock, at);
    else
        h2o_http1_accept(&g->loop->accept_ctx, g->sock, at);
    g->sock->input->size = had;
    g->conn = g->sock->data;
    g->mode = h2 ? M_H2 : M_H1;
    g->preface = h2;
    lel__gate_rewrap(g);
    if (had)
        gate_on_read(g->sock, NULL);
    lel__gate_leave(g);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    if (err) {
        h2o_socket_close(sock);
        return;
    }
    h2o_timeout_unlink(&g->timer);
    g->handshaking = 0;
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    start_h2o(g, proto.len >= 2 && !memcmp(proto.base, "h2", 2));
}

void lel__gate_accept(struct loop *l, h2o_socket_t *sock)
{
    struct gate *g = gate_new(l, sock);
    if (!g) {
        h2o_socket_close(sock);
        return;
    }
    if (l->accept_ctx.ssl_ctx) {
        g->handshaking = 1;
        lel__gate_arm(g, &l->body_timeout);
        h2o_socket_ssl_handshake(sock, l->accept_ctx.ssl_ctx, NULL, on_handshake);
        return;
    }
    start_h2o(g, 0);
}

/* ---- callbacks ---- */

static void gate_on_read(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    lel__gate_enter(g);
    if (err) {
        if (g->mode == M_H1 && g->h1 == H1_BODY) {
            lel__body_end(g->body, 0);
            h2o_socket_read_stop(sock); /* h2o closes it when it answers */
            g->reading = 0;
        } else if (g->mode == M_H1 && g->h1 == H1_LINGER) {
            lel__gate_on_timer(&g->timer); /* the client closed: the drain is over */
        } else {
            lel__gate_forward(g, err);
        }
    } else if (g->mode == M_H1) {
        lel__gate_h1_input(g);
    } else if (g->mode == M_H2) {
        lel__gate_h2_input(g);
    } else {
        lel__gate_forward(g, NULL);
    }
    lel__gate_leave(g);
}

/* HTTP/1 write completions: the end of an answer is where h2o starts on the next request. */

static void gate_on_write(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    h2o_socket_cb cb = g->inner_write;
    int final = g->final_sent;
    g->inner_write = NULL;
    g->final_sent = 0;
    lel__gate_enter(g);
    if (final && g->close_after && !err && g->mode == M_H1) {
        /* h2o would close now with the client's body still coming: its kernel would answer the
         * unread bytes with a reset that can destroy the answer in flight; drain first */
        g->close_after = 0;
        g->held_write = cb;
        g->h1 = H1_LINGER;
        shutdown(h2o_socket_get_fd(sock), SHUT_WR);
        lel__gate_arm(g, &g->loop->linger_timeout);
        h2o_socket_read_start(sock, gate_on_read);
        lel__gate_leave(g);
        return;
    }
    unsigned reqs = g->reqs;
    if (final && g->h1 != H1_BODY)
        g->h1 = H1_HEAD;
    cb(sock, err);
    /* a pipelined request already in the input was parsed by h2o inside that callback */
    if (final && !g->closed && g->mode == M_H1 && g->reqs == reqs && g->h1 == H1_HEAD && lel__gate_h1_head_parsed(g))
        lel__gate_h1_late_vet(g);
    lel__gate_leave(g);
}

void lel__gate_reply_written(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    lel__gate_enter(g);
    free(g->reply);
    g->reply = NULL;
    if (err) {
        lel__gate_on_timer(&g->timer);
    } else {
        shutdown(h2o_socket_get_fd(sock), SHUT_WR);
        lel__gate_arm(g, &g->loop->linger_timeout);
    }
    lel__gate_leave(g);
}

/* Admission of a call with a body; reserves its memory. Returns 0 or the refusal's status
 * (the error set on c). */
int lel__gate_admit(struct gate *g, lel_call_t *c)
{
    lel_http_t *h = g->loop->http;
    int st = h->hd.admit(h->hd_ctx, c);
    if (st)
        return st;
    struct call_priv *p = c->http;
    size_t want = c->body_streams ? BODY_CAP : c->declared_len == UINT64_MAX ? h->cfg->max_body_bytes + 1 : (size_t)c->declared_len;
    if (lel__http_reserve(h, want) < 0) {
        lel_call_error(c, 503, "the server is receiving too many request bodies at once; retry shortly");
        c->retry_after = 1;
        return 503;
    }
    p->reserved = want;
    return 0;
}


lel_call_t *lel__gate_take(struct gate *g, h2o_req_t *req, int *later)
{
    *later = 0;
    g->reqs++;
    if (g->mode == M_H1) {
        lel_call_t *c = g->pending;
        g->pending = NULL;
        return c;
    }
    return g->mode == M_H2 ? lel__gate_h2_take(g, req, later) : NULL;
}

void lel__gate_after_send(struct gate *g, h2o_req_t *req, int last)
{
    (void)req;
    if (last && g->mode == M_H1)
        g->final_sent = 1;
    if (!g->depth)
        lel__gate_rewrap(g);
}

void lel__gate_release(struct gate *g)
{
    g->mode = M_OFF;
}

void lel__gate_body_resume(struct gate *g, struct lel_body *b)
{
    if (g->mode == M_H2 && !h2_alive(g))
        g->mode = M_OFF;
    lel__gate_enter(g);
    if (g->mode == M_H1 && g->h1 == H1_BODY && g->body == b && !g->reading) {
        g->reading = 1;
        h2o_socket_read_start(g->sock, gate_on_read);
    } else if (g->mode == M_H2) {
        lel__gate_h2_settle(g); /* hands back the window it held */
    }
    lel__gate_leave(g);
}
