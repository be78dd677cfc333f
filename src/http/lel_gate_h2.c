/* The gate on HTTP/2: frames looked at before h2o parses them. See lel_gate.c. */
#include "lel_gate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- HTTP/2 ----
 * A HEADERS frame that opens a stream with a body gets its END_STREAM flag set before h2o
 * reads it (a flag bit: the HPACK block is untouched, so h2o's decoder state stays the
 * client's), so h2o hands the request to on_req at once; on_req lets the gate judge it, and
 * the stream's DATA frames never reach h2o. The gate gives the client its flow-control window
 * back for the DATA it takes (h2o would have), holding the connection's while an upload is
 * at its cap: that is the back-pressure. */

enum { F_DATA = 0, F_HEADERS = 1, F_PRIORITY = 2, F_RST = 3, F_SETTINGS = 4, F_PING = 6, F_CONT = 9 };
enum { FL_END_STREAM = 1, FL_ACK = 1, FL_END_HEADERS = 4, FL_PADDED = 8 };

static double refill(double have, double per_s, double burst, double dt_s)
{
    have += per_s * dt_s;
    return have > burst ? burst : have;
}

/* What a frame from the client costs of its connection's buckets: 0, or -1 once one is empty.
 * RST_STREAM costs a reset (each cancels work on_req had started); SETTINGS and PING (each
 * makes h2o write an ACK), PRIORITY, and frames that carry nothing and end nothing cost a
 * control token. The rest (requests, bodies, WINDOW_UPDATE, ACKs) are free. */
static int frame_cost(struct gate *g, uint8_t type, uint8_t flags, uint32_t len)
{
    uint64_t now = h2o_now(g->loop->ctx.loop);
    double dt = (double)(now - g->tokens_ms) / 1000.0;
    g->tokens_ms = now;
    g->rst_tokens = refill(g->rst_tokens, H2_RST_PER_S, H2_RST_BURST, dt);
    g->ctl_tokens = refill(g->ctl_tokens, H2_CTL_PER_S, H2_CTL_BURST, dt);
    double *b = NULL;
    if (type == F_RST)
        b = &g->rst_tokens;
    else if (((type == F_SETTINGS || type == F_PING) && !(flags & FL_ACK)) || type == F_PRIORITY)
        b = &g->ctl_tokens;
    else if (!len && ((type == F_DATA && !(flags & FL_END_STREAM)) ||
                      ((type == F_HEADERS || type == F_CONT) && !(flags & FL_END_HEADERS))))
        b = &g->ctl_tokens;
    if (!b)
        return 0;
    if (*b < 1)
        return -1;
    *b -= 1;
    return 0;
}

/* Ends an abusive connection: GOAWAY ENHANCE_YOUR_CALM queued, nothing more of its input read,
 * h2o told to close (it writes what it has first); lel__gate_doom closes the socket soon even if
 * the client never reads. */
static void calm(struct gate *g, const char *why)
{
    h2o_http2_conn_t *conn = g->conn;
    h2o_http2_encode_goaway_frame(&conn->_write.buf, conn->pull_stream_ids.max_open, H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM,
                                  h2o_iovec_init(why, strlen(why)));
    h2o_http2_conn_request_write(conn);
    lel__gate_doom(g);
    g->sock->input->size = 0;
    lel__gate_forward(g, why);
}

static struct gstream *find_gs(struct gate *g, uint32_t sid)
{
    for (size_t i = 0; i < g->ngs; i++)
        if (g->gs[i].sid == sid)
            return &g->gs[i];
    return NULL;
}

void lel__gate_gs_remove(struct gate *g, struct gstream *s)
{
    if (s->call)
        lel__http_call_unref(s->call);
    lel__gate_drop_body(&s->body);
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
void lel__gate_h2_settle(struct gate *g)
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
            lel__gate_drop_body(&s->body);
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
            lel__gate_gs_remove(g, s);
        } else if (s->st == GS_COLLECT) {
            collect_done(g, s);
            lel__gate_gs_remove(g, s);
        } else if (s->st == GS_DISCARD) {
            lel__gate_gs_remove(g, s);
        }
    }
    return 0;
}

void lel__gate_h2_input(struct gate *g)
{
    h2o_http2_conn_t *conn = g->conn;
    h2o_buffer_t *in = g->sock->input;
    size_t off = 0;
    lel__gate_enter(g);
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
        if (frame_cost(g, type, flags, len) < 0) {
            calm(g, type == F_RST ? "too many stream resets" : "too many control frames");
            goto out;
        }
        struct gstream *s = find_gs(g, sid);
        if (type == F_DATA && s) {
            if (take_data(g, s, off, len, flags) < 0) {
                lel__gate_kill(g);
                goto out;
            }
            continue;
        }
        if (type == F_HEADERS && s) { /* trailers after a body h2o was told had ended: unsupported */
            lel__gate_kill(g);
            goto out;
        }
        if (type == F_RST && s)
            lel__gate_gs_remove(g, s); /* h2o resets its side too: the call sees its client gone */
        if (type == F_HEADERS && !(flags & FL_END_STREAM) && (sid & 1) && sid > max_open && g->ngs < 4 * 256) {
            struct gstream *n = g->ngs == g->capgs ? NULL : &g->gs[g->ngs];
            if (!n) {
                size_t cap = g->capgs ? g->capgs * 2 : 8;
                struct gstream *ng = realloc(g->gs, cap * sizeof(*ng));
                if (!ng) {
                    lel__gate_kill(g);
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
    lel__gate_forward(g, NULL);
    lel__gate_h2_settle(g);
out:
    lel__gate_leave(g);
}

/* on_req of an HTTP/2 request: judges a stream whose body the gate holds. Returns the call to
 * go on with (refused ones carry their error) or NULL for an ordinary request; *later is set
 * when the gate dispatches it itself once its body is in. */
lel_call_t *lel__gate_h2_take(struct gate *g, h2o_req_t *req, int *later)
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
    if (lel__gate_admit(g, c)) {
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
        lel__gate_gs_remove(g, s);
    lel__gate_h2_settle(g);
    return c;
}
