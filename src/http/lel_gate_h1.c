/* The gate on HTTP/1: request heads judged before h2o takes them (framing, admission), the
 * gate's own answers for what it refuses, and the bodies of uploads read into their lel_body.
 * See lel_gate.c. */
#include "lel_gate_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

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
        lel__gate_forward(g, h2o_socket_error_out_of_memory);
        return;
    }
    memcpy(g->reply, hdr, (size_t)n);
    if (blen)
        memcpy(g->reply + n, body, blen);
    free(body);
    h2o_buffer_consume(&g->sock->input, g->sock->input->size);
    g->h1 = H1_LINGER;
    h2o_iovec_t v = h2o_iovec_init(g->reply, (size_t)n + blen);
    h2o_socket_write(g->sock, &v, 1, lel__gate_reply_written);
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
                   : hname(&hs[i], "x-admin-token") ? &c->admin_token : hname(&hs[i], "x-team-id") ? &c->team_header
                   : hname(&hs[i], "e2b-sandbox-id") ? &c->e2b_sandbox : hname(&hs[i], "e2b-sandbox-port") ? &c->e2b_port
                   : hname(&hs[i], "host") ? &c->host : hname(&hs[i], "x-lelantos-node") ? &c->node_secret : NULL;
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
        lel__gate_drop_body(&g->body);
        g->h1 = H1_PASS;
        if (bad)
            lel__gate_kill(g);
        else if (!done)
            g->close_after = 1; /* answered (413) while the client still sends: drain, close */
        return;
    }
    lel__gate_arm(g, &g->loop->body_timeout);
    if (pause && g->reading) {
        g->reading = 0;
        h2o_socket_read_stop(g->sock);
    }
}

void lel__gate_body_cut(struct gate *g, lel_call_t *c, h2o_req_t *req)
{
    if (g->mode == M_H1 && ((g->body && g->body == c->body_in) || g->close_after)) {
        if (g->body) {
            if (g->reading)
                h2o_socket_read_stop(g->sock);
            g->reading = 0;
            lel__gate_drop_body(&g->body); /* the rest of the body is drained, not delivered */
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
            lel__gate_drop_body(&g->gs[i].body);
        }
}

/* Judges a complete head h2o has not seen: returns 1 when it went to h2o. */
/* A request head as picohttpparser read it, and what its framing says. */
struct head {
    const char *method, *path;
    size_t mlen, plen, nh, len; /* len: the head's length in the input */
    int minor, chunked;
    uint64_t body; /* Content-Length (0 without one) */
    struct phr_header hs[H2O_MAX_HEADERS];
};

/* RFC 9112 §6.3 and friends: NULL when the head's framing is sound, else why not (*status the
 * answer: 400, or 417 for an Expect other than 100-continue). */
static const char *framing(struct head *h, int *status)
{
    int ncl = 0, nte = 0, host = 0;
    uint64_t l2;
    *status = 400;
    for (size_t i = 0; i < h->nh; i++) {
        const struct phr_header *x = &h->hs[i];
        if (!x->name)
            return "folded header lines are not accepted";
        if (hname(x, "content-length")) {
            if (parse_length(x->value, x->value_len, &l2) < 0)
                return "invalid Content-Length header";
            if (ncl++ && l2 != h->body)
                return "conflicting Content-Length headers";
            h->body = l2;
        } else if (hname(x, "transfer-encoding")) {
            nte++;
            h->chunked = x->value_len == 7 && !strncasecmp(x->value, "chunked", 7);
        } else if (hname(x, "host")) {
            host++;
        } else if (hname(x, "expect") && !(x->value_len == 12 && !strncasecmp(x->value, "100-continue", 12))) {
            *status = 417;
            return "unsupported Expect header (only 100-continue)";
        }
    }
    if (nte && ncl)
        return "a request may not have both Transfer-Encoding and Content-Length";
    if (nte && (nte > 1 || !h->chunked || h->minor == 0))
        return "unsupported Transfer-Encoding (only one 'chunked', on HTTP/1.1)";
    if (h->minor == 1 && host != 1)
        return host ? "more than one Host header" : "missing Host header";
    return NULL;
}

/* An admitted upload: h2o is shown the head without its body, the gate keeps the body. */
static void start_upload(struct gate *g, struct head *h, lel_call_t *c)
{
    size_t hl;
    char *head = bodyless_head(h->method, h->mlen, h->path, h->plen, h->minor, h->hs, h->nh, &hl);
    struct lel_body *b = head ? lel__body_new(g->loop, c->body_limit, BODY_CAP) : NULL;
    if (!b || replace_head(g, h->len, head, hl) < 0) {
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
    g->chunked = h->chunked;
    g->body_left = h->body;
    memset(&g->dec, 0, sizeof(g->dec));
    g->dec.consume_trailer = 1;
    g->pending = c;
    g->h1 = H1_BODY;
    /* h2o reads all the kernel holds at each event; on loopback that grows to megabytes, each
     * copied once into the body: a bounded receive buffer bounds what an upload holds */
    int rcv = BODY_CAP / 2;
    setsockopt(h2o_socket_get_fd(g->sock), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    lel__gate_enter(g);
    lel__gate_forward(g, NULL); /* h2o takes the head and dispatches it; the gate keeps the body */
    if (!g->closed && g->h1 == H1_BODY && g->body == b) {
        g->reading = 1;
        h1_body(g);
    }
    lel__gate_leave(g);
}

/* h2c with prior knowledge: h2o is shown the preface alone, moves to HTTP/2, and the gate
 * follows it with the rest of the input. */
static void prior_knowledge(struct gate *g)
{
    if (g->sock->input->size < H2_PREFACE_LEN)
        return;
    g->pri_seen = 1;
    /* h2o frees its HTTP/1 connection before it makes the HTTP/2 one, which may take the same
     * address: forget the old one so that rewrap sees a new connection either way */
    g->conn = NULL;
    lel__gate_forward_prefix(g, H2_PREFACE_LEN);
    if (!g->closed)
        lel__gate_rewrap(g);
    if (!g->closed && g->mode == M_H2)
        lel__gate_h2_input(g);
}

/* Judges a head h2o has not seen yet. */
static void h1_head(struct gate *g)
{
    h2o_buffer_t *in = g->sock->input;
    const lel_config_t *cfg = g->loop->http->cfg;
    if (in->size >= 12 && !memcmp(in->bytes, "PRI * HTTP/2", 12)) {
        prior_knowledge(g);
        return;
    }
    struct head h = {.nh = H2O_MAX_HEADERS};
    int r = phr_parse_request(in->bytes, in->size, &h.method, &h.mlen, &h.path, &h.plen, &h.minor, h.hs, &h.nh, 0), st;
    const char *why;
    if (r == -2 && in->size <= cfg->max_header_bytes) {
        lel__gate_forward(g, NULL); /* incomplete: h2o waits too */
        return;
    }
    if (r == -1) {
        reply(g, NULL, 400, "malformed request head (or more than 100 headers)");
        return;
    }
    if (r == -2 || (size_t)r > cfg->max_header_bytes) {
        reply(g, NULL, 431, "request headers too large");
        return;
    }
    h.len = (size_t)r;
    if ((why = framing(&h, &st))) {
        reply(g, NULL, st, why);
        return;
    }
    if (!h.chunked && h.body == 0) { /* no body: the dispatch judges it as it does every request */
        g->h1 = H1_PASS;
        lel__gate_forward(g, NULL);
        return;
    }
    lel_call_t *c = head_call(g, h.method, h.mlen, h.path, h.plen, h.hs, h.nh);
    if (!c) {
        reply(g, NULL, 503, "out of memory");
        return;
    }
    c->declared_len = h.chunked ? UINT64_MAX : h.body;
    if ((st = lel__gate_admit(g, c))) {
        reply(g, c, st, "refused");
        lel__http_call_unref(c);
    } else if (c->body_streams) {
        start_upload(g, &h, c);
    } else {
        g->pending = c;
        g->h1 = H1_PASS;
        lel__gate_forward(g, NULL);
    }
}

void lel__gate_h1_input(struct gate *g)
{
    switch (g->h1) {
    case H1_HEAD:
        h1_head(g);
        return;
    case H1_PASS:
        lel__gate_forward(g, NULL);
        return;
    case H1_BODY:
        h1_body(g);
        return;
    case H1_LINGER:
        g->drained += g->sock->input->size;
        h2o_buffer_consume(&g->sock->input, g->sock->input->size);
        if (g->drained > LINGER_MAX)
            lel__gate_on_timer(&g->timer);
        return;
    }
}

int lel__gate_h1_head_parsed(struct gate *g)
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
void lel__gate_h1_late_vet(struct gate *g)
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
    if (!c || lel__gate_admit(g, c)) {
        if (c)
            lel__http_call_unref(c);
        lel__gate_kill(g);
        return;
    }
    c->body_streams = 0; /* h2o has the body */
    g->pending = c;
}
