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
#include "lel_http_int.h"
#include "lel_phr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define BODY_CAP (2u << 20)          /* undelivered body an upload may hold before reads stop */
#define LINGER_MAX (4u << 20)        /* body bytes drained after a refusal before closing anyway */
#define H2_STREAM_ACK (8u << 20)     /* HTTP/2 stream window handed back in steps of this much */
#define H2_PREFACE_LEN 24

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

static void gate_on_read(h2o_socket_t *sock, const char *err);
static void gate_on_write(h2o_socket_t *sock, const char *err);
static void reply_written(h2o_socket_t *sock, const char *err);
static void h1_input(struct gate *g);
static void h2_input(struct gate *g);
static void settle_windows(struct gate *g);
static void gs_remove(struct gate *g, struct gstream *s);

/* ---- life ---- */

static void drop_body(struct lel_body **bp)
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
    if (h2o_timeout_is_linked(&g->timer))
        h2o_timeout_unlink(&g->timer);
    if (g->pending)
        lel__http_call_unref(g->pending);
    drop_body(&g->body);
    while (g->ngs)
        gs_remove(g, &g->gs[0]);
    free(g->gs);
    free(g->reply);
    free(g);
}

static void gate_on_close(void *data)
{
    struct gate *g = data;
    g->closed = 1;
    if (!g->depth)
        gate_free(g);
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
static void rewrap(struct gate *g)
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
        drop_body(&g->body);
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
    if (g->mode == M_H1 && s->_cb.write && s->_cb.write != gate_on_write && s->_cb.write != reply_written) {
        g->inner_write = s->_cb.write;
        s->_cb.write = gate_on_write;
    }
}

static void enter(struct gate *g)
{
    g->depth++;
}

static void leave(struct gate *g)
{
    if (--g->depth)
        return;
    if (g->closed)
        gate_free(g);
    else
        rewrap(g);
}

/* Hands the read event to h2o's own callback. */
static void forward(struct gate *g, const char *err)
{
    h2o_socket_cb cb = g->inner_read;
    if (!cb)
        return;
    if (err)
        g->mode = M_OFF; /* h2o closes the connection for it */
    enter(g);
    g->sock->_cb.read = cb;
    cb(g->sock, err);
    if (!g->closed && g->sock->_cb.read == cb)
        g->sock->_cb.read = gate_on_read;
    leave(g);
}

/* Shows h2o only the first n bytes of the input, then puts the rest back behind what h2o left. */
static void forward_prefix(struct gate *g, size_t n)
{
    h2o_buffer_t *in = g->sock->input;
    size_t tail = in->size - n;
    char *t = tail ? malloc(tail) : NULL;
    if (tail && !t) {
        forward(g, h2o_socket_error_out_of_memory);
        return;
    }
    if (tail)
        memcpy(t, in->bytes + n, tail);
    in->size = n;
    enter(g);
    forward(g, NULL);
    if (!g->closed && tail) {
        h2o_iovec_t buf = h2o_buffer_reserve(&g->sock->input, tail);
        if (buf.base) {
            memcpy(buf.base, t, tail);
            g->sock->input->size += tail;
        }
    }
    leave(g);
    free(t);
}

/* Ends a connection h2o is in the middle of: its next read or write fails and h2o closes it. */
static void kill_conn(struct gate *g)
{
    shutdown(h2o_socket_get_fd(g->sock), SHUT_RDWR);
    if (g->sock->_cb.read == gate_on_read && g->inner_read && !gate_reads(g))
        forward(g, "refused by the gate");
}

static void on_timer(h2o_timeout_entry_t *e)
{
    struct gate *g = H2O_STRUCT_FROM_MEMBER(struct gate, timer, e);
    enter(g);
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
            forward(g, "closed after a refusal");
        }
    } else if (g->h1 == H1_BODY) { /* the client stopped sending its body */
        lel__body_end(g->body, 0);
        kill_conn(g);
    }
    leave(g);
}

static void arm(struct gate *g, h2o_timeout_t *t)
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
    g->timer.cb = on_timer;
    sock->on_close.cb = gate_on_close;
    sock->on_close.data = g;
    return g;
}

/* h2o starts on a connection with nothing in its input (it would parse it at once); then the
 * gate puts the input back and judges it first. */
static void start_h2o(struct gate *g, int h2)
{
    struct timeval at = *h2o_get_timestamp(&g->loop->ctx, NULL, NULL);
    size_t had = g->sock->input->size;
    g->sock->input->size = 0;
    enter(g);
    if (h2)
        h2o_http2_accept(&g->loop->accept_ctx, g->sock, at);
    else
        h2o_http1_accept(&g->loop->accept_ctx, g->sock, at);
    g->sock->input->size = had;
    g->conn = g->sock->data;
    g->mode = h2 ? M_H2 : M_H1;
    g->preface = h2;
    rewrap(g);
    if (had)
        gate_on_read(g->sock, NULL);
    leave(g);
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
        arm(g, &l->body_timeout);
        h2o_socket_ssl_handshake(sock, l->accept_ctx.ssl_ctx, NULL, on_handshake);
        return;
    }
    start_h2o(g, 0);
}

/* ---- callbacks ---- */

static void gate_on_read(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    enter(g);
    if (err) {
        if (g->mode == M_H1 && g->h1 == H1_BODY) {
            lel__body_end(g->body, 0);
            h2o_socket_read_stop(sock); /* h2o closes it when it answers */
            g->reading = 0;
        } else if (g->mode == M_H1 && g->h1 == H1_LINGER) {
            on_timer(&g->timer); /* the client closed: the drain is over */
        } else {
            forward(g, err);
        }
    } else if (g->mode == M_H1) {
        h1_input(g);
    } else if (g->mode == M_H2) {
        h2_input(g);
    } else {
        forward(g, NULL);
    }
    leave(g);
}

/* HTTP/1 write completions: the end of an answer is where h2o starts on the next request. */
static int complete_head_at_front(struct gate *g);
static void late_vet(struct gate *g);

static void gate_on_write(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    h2o_socket_cb cb = g->inner_write;
    int final = g->final_sent;
    g->inner_write = NULL;
    g->final_sent = 0;
    enter(g);
    if (final && g->close_after && !err && g->mode == M_H1) {
        /* h2o would close now with the client's body still coming: its kernel would answer the
         * unread bytes with a reset that can destroy the answer in flight; drain first */
        g->close_after = 0;
        g->held_write = cb;
        g->h1 = H1_LINGER;
        shutdown(h2o_socket_get_fd(sock), SHUT_WR);
        arm(g, &g->loop->linger_timeout);
        h2o_socket_read_start(sock, gate_on_read);
        leave(g);
        return;
    }
    unsigned reqs = g->reqs;
    if (final && g->h1 != H1_BODY)
        g->h1 = H1_HEAD;
    cb(sock, err);
    /* a pipelined request already in the input was parsed by h2o inside that callback */
    if (final && !g->closed && g->mode == M_H1 && g->reqs == reqs && g->h1 == H1_HEAD && complete_head_at_front(g))
        late_vet(g);
    leave(g);
}

static void reply_written(h2o_socket_t *sock, const char *err)
{
    struct gate *g = sock->on_close.data;
    enter(g);
    free(g->reply);
    g->reply = NULL;
    if (err) {
        on_timer(&g->timer);
    } else {
        shutdown(h2o_socket_get_fd(sock), SHUT_WR);
        arm(g, &g->loop->linger_timeout);
    }
    leave(g);
}

/* ---- HTTP/1 ---- */

static int hname(const struct phr_header *h, const char *name)
{
    return h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

static int parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (!n || n > 19)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Writes the gate's own answer (the JSON error API.md prescribes) and closes after a drain. */
static void reply(struct gate *g, lel_call_t *c, int status, const char *msg)
{
    size_t blen = 0;
    char *body = NULL, hdr[512];
    if (c && c->resp)
        body = json_dumps(c->resp, JSON_COMPACT);
    if (!body)
        body = lel__http_error_json(status, msg, &blen);
    blen = body ? strlen(body) : 0;
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n",
                     status, lel__http_reason(status), blen);
    if (c && c->retry_after >= 0)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "Retry-After: %ld\r\n", c->retry_after);
    if (c && c->rl_limit >= 0)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "RateLimit-Limit: %ld\r\nRateLimit-Remaining: %ld\r\nRateLimit-Reset: %ld\r\n",
                      c->rl_limit, c->rl_remaining, c->rl_reset);
    if (c && c->allow)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "Allow: %s\r\n", c->allow);
    n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "\r\n");
    free(g->reply);
    g->reply = malloc((size_t)n + blen);
    if (!g->reply) {
        free(body);
        forward(g, h2o_socket_error_out_of_memory);
        return;
    }
    memcpy(g->reply, hdr, (size_t)n);
    if (blen)
        memcpy(g->reply + n, body, blen);
    free(body);
    h2o_buffer_consume(&g->sock->input, g->sock->input->size);
    g->h1 = H1_LINGER;
    h2o_iovec_t v = h2o_iovec_init(g->reply, (size_t)n + blen);
    h2o_socket_write(g->sock, &v, 1, reply_written);
}

/* The call a head stands for, as admit sees it. */
static lel_call_t *head_call(struct gate *g, const char *method, size_t mlen, const char *path, size_t plen,
                             const struct phr_header *hs, size_t nh)
{
    lel_call_t *c = lel__http_call_new(g->loop);
    if (!c)
        return NULL;
    c->method = lel__http_method(method, mlen);
    const char *q = memchr(path, '?', plen);
    c->path = strndup(path, q ? (size_t)(q - path) : plen);
    c->query = q ? strndup(q + 1, plen - (size_t)(q - path) - 1) : NULL;
    for (size_t i = 0; i < nh; i++) {
        char **dst = hname(&hs[i], "x-api-key") ? &c->api_key : hname(&hs[i], "authorization") ? &c->bearer
                   : hname(&hs[i], "x-admin-token") ? &c->admin_token : hname(&hs[i], "x-team-id") ? &c->team_header : NULL;
        if (dst && !*dst)
            *dst = strndup(hs[i].value, hs[i].value_len);
    }
    struct sockaddr_storage ss;
    socklen_t sl = h2o_socket_getpeername(g->sock, (struct sockaddr *)&ss);
    lel__http_peer((struct sockaddr *)&ss, sl, c->peer);
    if (!c->path) {
        lel__http_call_unref(c);
        return NULL;
    }
    return c;
}

/* Admission of a call with a body; reserves its memory. Returns 0 or the refusal's status
 * (the error set on c). */
static int admit(struct gate *g, lel_call_t *c)
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

/* The head with its Content-Length and Transfer-Encoding replaced by "content-length: 0", so
 * h2o takes the request as bodyless and the gate keeps the body. */
static char *bodyless_head(const char *method, size_t mlen, const char *path, size_t plen, int minor,
                           const struct phr_header *hs, size_t nh, size_t *len)
{
    size_t cap = mlen + plen + 64;
    for (size_t i = 0; i < nh; i++)
        cap += hs[i].name_len + hs[i].value_len + 4;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    p += sprintf(p, "%.*s %.*s HTTP/1.%d\r\n", (int)mlen, method, (int)plen, path, minor);
    for (size_t i = 0; i < nh; i++) {
        if (hname(&hs[i], "content-length") || hname(&hs[i], "transfer-encoding"))
            continue;
        p += sprintf(p, "%.*s: %.*s\r\n", (int)hs[i].name_len, hs[i].name, (int)hs[i].value_len, hs[i].value);
    }
    p += sprintf(p, "content-length: 0\r\n\r\n");
    *len = (size_t)(p - out);
    return out;
}

/* Replaces the first `old` bytes of the input with `head`. */
static int replace_head(struct gate *g, size_t old, const char *head, size_t len)
{
    h2o_buffer_t *in = g->sock->input;
    size_t rest = in->size - old;
    char *t = malloc(len + rest);
    if (!t)
        return -ENOMEM;
    memcpy(t, head, len);
    memcpy(t + len, in->bytes + old, rest);
    h2o_buffer_consume(&g->sock->input, g->sock->input->size);
    h2o_iovec_t buf = h2o_buffer_reserve(&g->sock->input, len + rest);
    if (!buf.base) {
        free(t);
        return -ENOMEM;
    }
    memcpy(buf.base, t, len + rest);
    g->sock->input->size += len + rest;
    free(t);
    return 0;
}

/* Moves body bytes from behind the head into the body; stops at its end or at its cap. */
static void h1_body(struct gate *g)
{
    h2o_buffer_t *in = g->sock->input;
    char *data = in->bytes + g->head_len;
    size_t avail = in->size - g->head_len, take, keep;
    int done = 0, bad = 0;
    if (g->chunked) {
        size_t n = avail;
        ssize_t r = avail ? phr_decode_chunked(&g->dec, data, &n) : -2;
        if (r == -1) {
            bad = 1;
            n = 0;
            r = 0;
        }
        take = n;
        keep = r >= 0 ? (size_t)r : 0;
        done = r >= 0 && !bad;
    } else {
        take = avail < g->body_left ? avail : (size_t)g->body_left;
        keep = avail - take;
        g->body_left -= take;
        done = g->body_left == 0;
    }
    int pause = lel__body_push(g->body, data, take);
    /* what follows the body (a pipelined request) stays for h2o; with chunked coding the
     * decoder has already put it right behind the decoded bytes */
    memmove(data, data + take, keep);
    in->size = g->head_len + keep;
    if (bad || pause < 0 || done) {
        if (g->reading)
            h2o_socket_read_stop(g->sock);
        g->reading = 0;
        if (h2o_timeout_is_linked(&g->timer))
            h2o_timeout_unlink(&g->timer);
        if (!done)
            lel__body_end(g->body, bad ? 0 : -E2BIG);
        else
            lel__body_end(g->body, 1);
        drop_body(&g->body);
        g->h1 = H1_PASS;
        if (bad)
            kill_conn(g);
        else if (!done)
            g->close_after = 1; /* answered (413) while the client still sends: drain, close */
        return;
    }
    arm(g, &g->loop->body_timeout);
    if (pause && g->reading) {
        g->reading = 0;
        h2o_socket_read_stop(g->sock);
    }
}

void lel__gate_body_resume(struct gate *g, struct lel_body *b)
{
    if (g->mode == M_H2 && !h2_alive(g))
        g->mode = M_OFF;
    enter(g);
    if (g->mode == M_H1 && g->h1 == H1_BODY && g->body == b && !g->reading) {
        g->reading = 1;
        h2o_socket_read_start(g->sock, gate_on_read);
    } else if (g->mode == M_H2) {
        settle_windows(g); /* hands back the window it held */
    }
    leave(g);
}

void lel__gate_body_cut(struct gate *g, lel_call_t *c, h2o_req_t *req)
{
    if (g->mode == M_H1 && ((g->body && g->body == c->body_in) || g->close_after)) {
        if (g->body) {
            if (g->reading)
                h2o_socket_read_stop(g->sock);
            g->reading = 0;
            drop_body(&g->body); /* the rest of the body is drained, not delivered */
            if (h2o_timeout_is_linked(&g->timer))
                h2o_timeout_unlink(&g->timer);
        }
        g->h1 = H1_PASS;
        g->close_after = 1;
        req->http1_is_persistent = 0;
        return;
    }
    for (size_t i = 0; i < g->ngs; i++)
        if (g->gs[i].body && g->gs[i].body == c->body_in) {
            g->gs[i].st = GS_DISCARD;
            drop_body(&g->gs[i].body);
        }
}

/* Judges a complete head h2o has not seen: returns 1 when it went to h2o. */
static void h1_head(struct gate *g)
{
    h2o_buffer_t *in = g->sock->input;
    const lel_config_t *cfg = g->loop->http->cfg;
    const char *method, *path;
    size_t mlen, plen, nh = H2O_MAX_HEADERS;
    int minor;
    struct phr_header hs[H2O_MAX_HEADERS];
    if (in->size >= 12 && !memcmp(in->bytes, "PRI * HTTP/2", 12)) { /* h2c with prior knowledge */
        if (in->size < H2_PREFACE_LEN)
            return;
        g->pri_seen = 1;
        /* h2o frees its HTTP/1 connection before it makes the HTTP/2 one, which may take the
         * same address: forget the old one so that rewrap sees a new connection either way */
        g->conn = NULL;
        forward_prefix(g, H2_PREFACE_LEN);
        if (!g->closed)
            rewrap(g);
        if (!g->closed && g->mode == M_H2)
            h2_input(g);
        return;
    }
    int r = phr_parse_request(in->bytes, in->size, &method, &mlen, &path, &plen, &minor, hs, &nh, 0);
    if (r == -2) {
        if (in->size > cfg->max_header_bytes)
            reply(g, NULL, 431, "request headers too large");
        else
            forward(g, NULL);
        return;
    }
    if (r == -1) {
        reply(g, NULL, 400, "malformed request head (or more than 100 headers)");
        return;
    }
    if ((size_t)r > cfg->max_header_bytes) {
        reply(g, NULL, 431, "request headers too large");
        return;
    }
    uint64_t len = 0, l2;
    int ncl = 0, nte = 0, host = 0, chunked = 0;
    const char *expect = NULL;
    size_t elen = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!hs[i].name) {
            reply(g, NULL, 400, "folded header lines are not accepted");
            return;
        }
        if (hname(&hs[i], "content-length")) {
            if (parse_length(hs[i].value, hs[i].value_len, &l2) < 0) {
                reply(g, NULL, 400, "invalid Content-Length header");
                return;
            }
            if (ncl++ && l2 != len) {
                reply(g, NULL, 400, "conflicting Content-Length headers");
                return;
            }
            len = l2;
        } else if (hname(&hs[i], "transfer-encoding")) {
            nte++;
            chunked = hs[i].value_len == 7 && !strncasecmp(hs[i].value, "chunked", 7);
        } else if (hname(&hs[i], "host")) {
            host++;
        } else if (hname(&hs[i], "expect")) {
            expect = hs[i].value;
            elen = hs[i].value_len;
        }
    }
    if (nte && ncl) {
        reply(g, NULL, 400, "a request may not have both Transfer-Encoding and Content-Length");
        return;
    }
    if (nte && (nte > 1 || !chunked || minor == 0)) {
        reply(g, NULL, 400, "unsupported Transfer-Encoding (only one 'chunked', on HTTP/1.1)");
        return;
    }
    if (minor == 1 && host != 1) {
        reply(g, NULL, 400, host ? "more than one Host header" : "missing Host header");
        return;
    }
    if (expect && !(elen == 12 && !strncasecmp(expect, "100-continue", 12))) {
        reply(g, NULL, 417, "unsupported Expect header (only 100-continue)");
        return;
    }
    if (!chunked && len == 0) { /* no body: the dispatch judges it as it does every request */
        g->h1 = H1_PASS;
        forward(g, NULL);
        return;
    }
    lel_call_t *c = head_call(g, method, mlen, path, plen, hs, nh);
    if (!c) {
        reply(g, NULL, 503, "out of memory");
        return;
    }
    c->declared_len = chunked ? UINT64_MAX : len;
    int st = admit(g, c);
    if (st) {
        reply(g, c, st, "refused");
        lel__http_call_unref(c);
        return;
    }
    if (!c->body_streams) {
        g->pending = c;
        g->h1 = H1_PASS;
        forward(g, NULL);
        return;
    }
    size_t hl;
    char *head = bodyless_head(method, mlen, path, plen, minor, hs, nh, &hl);
    struct lel_body *b = head ? lel__body_new(g->loop, c->body_limit, BODY_CAP) : NULL;
    if (!b || replace_head(g, (size_t)r, head, hl) < 0) {
        free(head);
        if (b)
            lel__body_unref(b);
        lel__http_call_unref(c);
        reply(g, NULL, 503, "out of memory");
        return;
    }
    free(head);
    lel__body_ref(b);
    c->body_in = b;
    g->body = b;
    lel__body_set_gate(b, g);
    g->head_len = hl;
    g->chunked = chunked;
    g->body_left = len;
    memset(&g->dec, 0, sizeof(g->dec));
    g->dec.consume_trailer = 1;
    g->pending = c;
    g->h1 = H1_BODY;
    /* h2o reads all the kernel holds at each event; on loopback that grows to megabytes, each
     * copied once into the body: a bounded receive buffer bounds what an upload holds */
    int rcv = BODY_CAP / 2;
    setsockopt(h2o_socket_get_fd(g->sock), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    enter(g);
    forward(g, NULL); /* h2o takes the head and dispatches it; the gate keeps the body */
    if (!g->closed && g->h1 == H1_BODY && g->body == b) {
        g->reading = 1;
        h1_body(g);
    }
    leave(g);
}

static void h1_input(struct gate *g)
{
    switch (g->h1) {
    case H1_HEAD:
        h1_head(g);
        return;
    case H1_PASS:
        forward(g, NULL);
        return;
    case H1_BODY:
        h1_body(g);
        return;
    case H1_LINGER:
        g->drained += g->sock->input->size;
        h2o_buffer_consume(&g->sock->input, g->sock->input->size);
        if (g->drained > LINGER_MAX)
            on_timer(&g->timer);
        return;
    }
}

static int complete_head_at_front(struct gate *g)
{
    h2o_buffer_t *in = g->sock->input;
    const char *m, *p;
    size_t ml, pl, nh = H2O_MAX_HEADERS;
    int minor;
    struct phr_header hs[H2O_MAX_HEADERS];
    return in->size && phr_parse_request(in->bytes, in->size, &m, &ml, &p, &pl, &minor, hs, &nh, 0) > 0;
}

/* A pipelined request h2o parsed before the gate could: h2o reads its body itself (at most
 * max_body_bytes), so only a refusal is left to act on, by closing. */
static void late_vet(struct gate *g)
{
    h2o_buffer_t *in = g->sock->input;
    const char *method, *path;
    size_t mlen, plen, nh = H2O_MAX_HEADERS;
    int minor;
    struct phr_header hs[H2O_MAX_HEADERS];
    phr_parse_request(in->bytes, in->size, &method, &mlen, &path, &plen, &minor, hs, &nh, 0);
    g->h1 = H1_PASS;
    uint64_t len = 0;
    int body = 0;
    for (size_t i = 0; i < nh; i++) {
        if (hs[i].name && hname(&hs[i], "transfer-encoding"))
            body = 1;
        if (hs[i].name && hname(&hs[i], "content-length") && parse_length(hs[i].value, hs[i].value_len, &len) == 0 && len)
            body = 1;
    }
    if (!body)
        return;
    lel_call_t *c = head_call(g, method, mlen, path, plen, hs, nh);
    if (!c || admit(g, c)) {
        if (c)
            lel__http_call_unref(c);
        kill_conn(g);
        return;
    }
    c->body_streams = 0; /* h2o has the body */
    g->pending = c;
}

static lel_call_t *h2_take(struct gate *g, h2o_req_t *req, int *later);

lel_call_t *lel__gate_take(struct gate *g, h2o_req_t *req, int *later)
{
    *later = 0;
    g->reqs++;
    if (g->mode == M_H1) {
        lel_call_t *c = g->pending;
        g->pending = NULL;
        return c;
    }
    return g->mode == M_H2 ? h2_take(g, req, later) : NULL;
}

void lel__gate_after_send(struct gate *g, h2o_req_t *req, int last)
{
    (void)req;
    if (last && g->mode == M_H1)
        g->final_sent = 1;
    if (!g->depth)
        rewrap(g);
}

/* ---- HTTP/2 ----
 * A HEADERS frame that opens a stream with a body gets its END_STREAM flag set before h2o
 * reads it (a flag bit: the HPACK block is untouched, so h2o's decoder state stays the
 * client's), so h2o hands the request to on_req at once; on_req lets the gate judge it, and
 * the stream's DATA frames never reach h2o. The gate gives the client its flow-control window
 * back for the DATA it takes (h2o would have), holding the connection's while an upload is
 * at its cap: that is the back-pressure. */

enum { F_DATA = 0, F_HEADERS = 1, F_RST = 3 };
enum { FL_END_STREAM = 1, FL_PADDED = 8 };

static struct gstream *find_gs(struct gate *g, uint32_t sid)
{
    for (size_t i = 0; i < g->ngs; i++)
        if (g->gs[i].sid == sid)
            return &g->gs[i];
    return NULL;
}

static void gs_remove(struct gate *g, struct gstream *s)
{
    if (s->call)
        lel__http_call_unref(s->call);
    drop_body(&s->body);
    free(s->buf);
    *s = g->gs[--g->ngs];
}

static void window(struct gate *g, uint32_t sid, uint64_t n)
{
    h2o_http2_conn_t *conn = g->conn;
    while (n) {
        int32_t step = n > 0x7fffffff ? 0x7fffffff : (int32_t)n;
        h2o_http2_encode_window_update_frame(&conn->_write.buf, sid, step);
        n -= (uint64_t)step;
    }
    h2o_http2_conn_request_write(conn);
}

static int any_paused(struct gate *g)
{
    for (size_t i = 0; i < g->ngs; i++)
        if (g->gs[i].st == GS_STREAM && g->gs[i].body && lel__body_queued(g->gs[i].body) >= BODY_CAP)
            return 1;
    return 0;
}

/* Hands back the flow-control window for the DATA the gate took, unless an upload is behind. */
static void settle_windows(struct gate *g)
{
    if (g->mode != M_H2 || g->closed || any_paused(g))
        return;
    if (g->conn_owed) {
        window(g, 0, g->conn_owed);
        g->conn_owed = 0;
    }
    for (size_t i = 0; i < g->ngs; i++)
        if (g->gs[i].st == GS_STREAM && !g->gs[i].ended && g->gs[i].unacked >= H2_STREAM_ACK) {
            window(g, g->gs[i].sid, g->gs[i].unacked);
            g->gs[i].unacked = 0;
        }
}

static int append(struct gstream *s, const void *p, size_t n)
{
    char *nb = realloc(s->buf, s->len + n + 1);
    if (!nb)
        return -ENOMEM;
    memcpy(nb + s->len, p, n);
    s->buf = nb;
    s->len += n;
    nb[s->len] = 0;
    return 0;
}

/* GS_COLLECT: the whole body is in; the call goes on with it. */
static void collect_done(struct gate *g, struct gstream *s)
{
    lel_call_t *c = s->call;
    s->call = NULL;
    free(c->body);
    c->body = s->buf ? s->buf : strdup("");
    c->body_len = s->len;
    s->buf = NULL;
    s->len = 0;
    s->st = GS_DISCARD;
    lel_http_t *h = g->loop->http;
    h->hd.dispatch(h->hd_ctx, c);
}

/* A body passed its route's limit before it was dispatched: answered 413 now. */
static void too_large(struct gstream *s)
{
    lel_call_t *c = s->call;
    s->call = NULL;
    s->st = GS_DISCARD;
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    lel_call_error(c, 413, "request body larger than %llu bytes", (unsigned long long)c->body_limit);
    lel_call_done(c);
}

/* Takes one DATA frame (at `off`, payload `len`) out of the input for its stream. */
static int take_data(struct gate *g, struct gstream *s, size_t off, uint32_t len, uint8_t flags)
{
    h2o_buffer_t *in = g->sock->input;
    const uint8_t *pl = (const uint8_t *)in->bytes + off + 9;
    uint32_t n = len, pad;
    if (flags & FL_PADDED) {
        if (!len || (pad = pl[0]) >= len)
            return -EPROTO;
        pl++;
        n = len - 1 - pad;
    }
    switch (s->st) {
    case GS_OPEN:
        s->wire += len; /* the client's window stays spent until the stream is judged */
        if (append(s, pl, n) < 0)
            return -ENOMEM;
        break;
    case GS_STREAM:
        g->conn_owed += len;
        s->unacked += len;
        if (s->body && lel__body_push(s->body, pl, n) < 0) { /* past the limit: the actor answers 413 */
            s->st = GS_DISCARD;
            drop_body(&s->body);
        }
        break;
    case GS_COLLECT:
        g->conn_owed += len;
        if (s->len + n > s->call->body_limit)
            too_large(s);
        else if (append(s, pl, n) < 0)
            return -ENOMEM;
        break;
    case GS_DISCARD:
        g->conn_owed += len;
        break;
    }
    size_t end = off + 9 + len;
    memmove(in->bytes + off, in->bytes + end, in->size - end);
    in->size -= 9 + len;
    if (flags & FL_END_STREAM) {
        s->ended = 1;
        if (s->st == GS_STREAM) {
            lel__body_end(s->body, 1);
            gs_remove(g, s);
        } else if (s->st == GS_COLLECT) {
            collect_done(g, s);
            gs_remove(g, s);
        } else if (s->st == GS_DISCARD) {
            gs_remove(g, s);
        }
    }
    return 0;
}

static void h2_input(struct gate *g)
{
    h2o_http2_conn_t *conn = g->conn;
    h2o_buffer_t *in = g->sock->input;
    size_t off = 0;
    enter(g);
    if (g->preface) {
        if (in->size < H2_PREFACE_LEN)
            goto fwd;
        off = H2_PREFACE_LEN;
    }
    uint32_t max_open = conn->pull_stream_ids.max_open;
    while (!g->closed && in->size - off >= 9) {
        uint8_t *f = (uint8_t *)in->bytes + off;
        uint32_t len = (uint32_t)f[0] << 16 | (uint32_t)f[1] << 8 | f[2];
        uint8_t type = f[3], flags = f[4];
        uint32_t sid = ((uint32_t)f[5] & 0x7f) << 24 | (uint32_t)f[6] << 16 | (uint32_t)f[7] << 8 | f[8];
        if (len > H2O_HTTP2_SETTINGS_HOST.max_frame_size || in->size - off < 9 + (size_t)len)
            break; /* incomplete (h2o waits too) or too large (h2o ends the connection) */
        struct gstream *s = find_gs(g, sid);
        if (type == F_DATA && s) {
            if (take_data(g, s, off, len, flags) < 0) {
                kill_conn(g);
                goto out;
            }
            continue;
        }
        if (type == F_HEADERS && s) { /* trailers after a body h2o was told had ended: unsupported */
            kill_conn(g);
            goto out;
        }
        if (type == F_RST && s)
            gs_remove(g, s); /* h2o resets its side too: the call sees its client gone */
        if (type == F_HEADERS && !(flags & FL_END_STREAM) && (sid & 1) && sid > max_open && g->ngs < 4 * 256) {
            struct gstream *n = g->ngs == g->capgs ? NULL : &g->gs[g->ngs];
            if (!n) {
                size_t cap = g->capgs ? g->capgs * 2 : 8;
                struct gstream *ng = realloc(g->gs, cap * sizeof(*ng));
                if (!ng) {
                    kill_conn(g);
                    goto out;
                }
                g->gs = ng;
                g->capgs = cap;
                n = &g->gs[g->ngs];
            }
            memset(n, 0, sizeof(*n));
            n->sid = sid;
            g->ngs++;
            f[4] |= FL_END_STREAM;
            max_open = sid;
        }
        off += 9 + len;
    }
fwd:
    if (g->preface && in->size >= H2_PREFACE_LEN)
        g->preface = 0; /* h2o takes it in this forward */
    forward(g, NULL);
    settle_windows(g);
out:
    leave(g);
}

/* on_req of an HTTP/2 request: judges a stream whose body the gate holds. Returns the call to
 * go on with (refused ones carry their error) or NULL for an ordinary request; *later is set
 * when the gate dispatches it itself once its body is in. */
static lel_call_t *h2_take(struct gate *g, h2o_req_t *req, int *later)
{
    h2o_http2_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    struct gstream *s = find_gs(g, st->stream_id);
    if (!s || s->st != GS_OPEN)
        return NULL;
    lel_call_t *c = lel__http_call_new(g->loop);
    if (!c || lel__http_call_fill(c, req) < 0) {
        if (c)
            lel__http_call_unref(c);
        s->st = GS_DISCARD;
        return NULL;
    }
    c->declared_len = st->_expected_content_length == SIZE_MAX ? UINT64_MAX : st->_expected_content_length;
    g->conn_owed += s->wire;
    s->wire = 0;
    if (admit(g, c)) {
        s->st = GS_DISCARD;
    } else if (c->body_streams) {
        struct lel_body *b = lel__body_new(g->loop, c->body_limit, BODY_CAP);
        if (!b) {
            lel_call_error(c, 503, "out of memory");
            s->st = GS_DISCARD;
        } else {
            lel__body_ref(b);
            c->body_in = b;
            s->body = b;
            lel__body_set_gate(b, g);
            s->st = GS_STREAM;
            if (s->len && lel__body_push(b, s->buf, s->len) < 0)
                s->st = GS_DISCARD;
            if (s->ended)
                lel__body_end(b, 1);
        }
    } else if (s->len > c->body_limit) {
        lel_call_error(c, 413, "request body larger than %llu bytes", (unsigned long long)c->body_limit);
        s->st = GS_DISCARD;
    } else if (s->ended) { /* the whole body came with the head */
        c->body = s->buf ? s->buf : strdup("");
        c->body_len = s->len;
        s->buf = NULL;
        s->len = 0;
        s->st = GS_DISCARD;
    } else {
        s->st = GS_COLLECT;
        lel__http_call_ref(c); /* the gate's, until the body is in */
        s->call = c;
        *later = 1;
    }
    if (s->st != GS_COLLECT) {
        free(s->buf);
        s->buf = NULL;
        s->len = 0;
    }
    if (s->ended && s->st != GS_COLLECT)
        gs_remove(g, s);
    settle_windows(g);
    return c;
}
