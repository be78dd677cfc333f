/* Requests forwarded to a server in a sandbox (a call answered with lel_call_proxy): the request
 * goes to the guest as HTTP/1.1 over the stream the sandbox's actor opened (src/net), and the
 * guest's HTTP/1.1 response comes back to the client in whatever the client speaks (HTTP/1.1,
 * h2c, h2): h2o frames it. The body streams both ways under backpressure: the request body is
 * read from the gate's lel_body only as the guest takes it, the guest is read only as the
 * client takes the response. A WebSocket (or other) Upgrade from an HTTP/1.1 client that the
 * guest accepts with 101 becomes a tunnel of the two sockets.
 *
 * In cluster mode the same carries a request for a sandbox another node owns to that node
 * (c->fwd_node): the whole request as it came, with the cluster's secret, over a connection of
 * its own (HTTP/1.1, closed after the answer), so uploads, downloads, streamed commands, port
 * traffic, upgrades and envd's streams pass through as they would on the owner.
 *
 * Ownership: the proxy holds the call's dispatch reference until it ends; the request's pool
 * tells it when the client went away (lel__proxy_gone), which ends it at once. Loop thread. */
#include "lel_gate_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <h2o/tunnel.h>

#define HEAD_MAX (64u << 10)   /* the guest's response head */
#define PIECE (256u << 10)     /* request body bytes per write to the guest */

struct lel_proxy {
    lel_call_t *c;
    h2o_req_t *req;
    struct loop *loop;
    h2o_socket_t *up;      /* the stream to the guest */
    h2o_generator_t gen;
    char *wbuf;            /* what is being written to the guest */
    int writing, body_done, chunked_req, ws;
    int head_done, started, chunked, eof_body, sending;
    int in_send;           /* inside h2o_send: the request may end there (see proxy_send) */
    uint64_t left;         /* response body bytes still to come (UINT64_MAX: to the end of the stream) */
    struct phr_chunked_decoder dec;
    char *sbuf;            /* what h2o is sending (until proceed) */
    h2o_timeout_t *tunnel_timeout;
};

static void body_more(void *ctx);
static void up_on_read(h2o_socket_t *sock, const char *err);

/* ---- the end ---- */

static void proxy_free(struct lel_proxy *x)
{
    struct call_priv *p = x->c->http;
    if (p->proxy == x)
        p->proxy = NULL;
    if (x->c->body_in)
        lel__body_sink(x->c->body_in, NULL, NULL);
    if (x->up)
        h2o_socket_close(x->up); /* no callback of ours runs after this */
    free(x->wbuf);
    free(x->sbuf);
    lel__http_call_unref(x->c); /* the dispatch reference */
    free(x);
}

void lel__proxy_gone(struct lel_proxy *x)
{
    x->req = NULL;
    if (!x->in_send) /* else the sender frees it when h2o returns */
        proxy_free(x);
}

/* h2o_send, where h2o may end the request before it returns (an HTTP/1 error closes the
 * connection at once): the request's pool then tells lel__proxy_gone from inside, which must not
 * free the proxy under its caller. Returns 1 when the request is gone (the caller frees x). A
 * client that left an HTTP/1 response waiting is found out only here, when the guest's end
 * closes (h2o does not read the connection meanwhile): lelantosd died with SIGSEGV at stop after
 * a stalled download, every time. */
static int proxy_send(struct lel_proxy *x, h2o_req_t *req, h2o_iovec_t *v, size_t n, h2o_send_state_t st)
{
    x->in_send = 1;
    h2o_send(req, v, n, st);
    x->in_send = 0;
    return x->req == NULL;
}

/* Answers with an error before the response started (502 and the like). */
static void fail(struct lel_proxy *x, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct lel_proxy *x, int status, const char *fmt, ...)
{
    h2o_req_t *req = x->req;
    if (req && !x->started) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        size_t len;
        char *body = lel__http_error_json(status, msg, &len);
        req->res.status = status;
        req->res.reason = lel__http_reason(status);
        req->res.content_length = len;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        struct gate *g = lel__gate_of(req);
        if (g)
            lel__gate_body_cut(g, x->c, req);
        h2o_iovec_t v = h2o_strdup(&req->pool, body ? body : "", len);
        free(body);
        x->started = 1;
        x->in_send = 1;
        h2o_send_inline(req, v.base, v.len);
        x->in_send = 0;
        if (g && x->req)
            lel__gate_after_send(g, req, 1);
    } else if (req && x->started) {
        proxy_send(x, req, NULL, 0, H2O_SEND_STATE_ERROR); /* a broken response, never a wrong one */
    }
    proxy_free(x);
}

/* What the proxy talks to, for errors. */
static const char *upstream_name(const struct lel_proxy *x, char *buf, size_t n)
{
    if (x->c->fwd_node)
        snprintf(buf, n, "node '%s', which owns sandbox %s,", x->c->fwd_node, x->c->id ? x->c->id : "");
    else
        snprintf(buf, n, "port %d of sandbox %s", x->c->proxy_port, x->c->id ? x->c->id : "");
    return buf;
}

/* ---- the request to the guest ---- */

/* Headers that stay here: hop-by-hop ones, the Host and length we write ourselves, and the
 * cluster's secret (never to a sandbox; to another node only as this node's own). A sandbox's
 * port does not get lelantosd's credentials either; another node gets the request's all: it
 * judges them itself. */
static int skip_request_header(const h2o_iovec_t *name, int path_form, int to_node)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                                      "upgrade", "http2-settings", "host", "content-length", "expect",
                                      "x-lelantos-node"};
    static const char *const creds[] = {"x-api-key", "e2b-sandbox-id", "e2b-sandbox-port", "e2b-traffic-access-token"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (h2o_memis(name->base, name->len, hop[i], strlen(hop[i])))
            return 1;
    if (to_node)
        return 0;
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        if (h2o_memis(name->base, name->len, creds[i], strlen(creds[i])))
            return 1;
    return path_form && h2o_memis(name->base, name->len, H2O_STRLIT("authorization")); /* lelantosd's key */
}

/* h2o keeps an HTTP/1 request's Upgrade (with Connection: upgrade) in req->upgrade, not among its headers. */
static int is_websocket(h2o_req_t *req)
{
    return req->version < 0x200 && req->upgrade.base && h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket"));
}

/* The request head as HTTP/1.1 for the guest, or for the owning node (the request's own path
 * and Host, with the cluster's secret) (malloc'd). */
static char *request_head(struct lel_proxy *x, size_t *len)
{
    h2o_req_t *req = x->req;
    lel_call_t *c = x->c;
    int to_node = c->fwd_node != NULL;
    const char *path = to_node ? NULL : c->proxy_path;
    h2o_iovec_t host = c->proxy_host && !to_node ? h2o_iovec_init(c->proxy_host, strlen(c->proxy_host))
                                                 : req->input.authority;
    size_t cap = 512 + (path ? strlen(path) : req->input.path.len) + host.len +
                 (to_node ? strlen(c->fwd_secret) : 0);
    for (size_t i = 0; i < req->headers.size; i++)
        cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    char *h = malloc(cap);
    if (!h)
        return NULL;
    size_t n = (size_t)snprintf(h, cap, "%.*s %s%.*s HTTP/1.1\r\nhost: %.*s\r\n", (int)req->input.method.len,
                                req->input.method.base, path ? path : "", path ? 0 : (int)req->input.path.len,
                                req->input.path.base, (int)host.len, host.base);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *e = &req->headers.entries[i];
        if (skip_request_header(e->name, c->proxy_path != NULL, to_node))
            continue;
        memcpy(h + n, e->name->base, e->name->len);
        n += e->name->len;
        memcpy(h + n, ": ", 2);
        memcpy(h + n + 2, e->value.base, e->value.len);
        n += 2 + e->value.len;
        memcpy(h + n, "\r\n", 2);
        n += 2;
    }
    uint64_t blen = c->body_in ? c->declared_len : c->body ? c->body_len : 0;
    x->chunked_req = c->body_in && blen == UINT64_MAX;
    if (x->chunked_req)
        n += (size_t)snprintf(h + n, cap - n, "transfer-encoding: chunked\r\n");
    else if (blen || c->method == LEL_M_POST || c->method == LEL_M_PUT || c->method == LEL_M_PATCH)
        n += (size_t)snprintf(h + n, cap - n, "content-length: %llu\r\n", (unsigned long long)blen);
    if (to_node) /* the owner sees the client's own request; the secret says a node sent it */
        n += (size_t)snprintf(h + n, cap - n, "x-lelantos-node: %s\r\n", c->fwd_secret);
    else
        n += (size_t)snprintf(h + n, cap - n, "x-forwarded-for: %s\r\nx-forwarded-proto: %s\r\n", c->peer,
                              req->scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http");
    n += (size_t)snprintf(h + n, cap - n, "%s\r\n",
                          x->ws ? "connection: upgrade\r\nupgrade: websocket\r\n" : "connection: close\r\n");
    *len = n;
    return h;
}

static void up_on_written(h2o_socket_t *sock, const char *err)
{
    struct lel_proxy *x = sock->data;
    x->writing = 0;
    free(x->wbuf);
    x->wbuf = NULL;
    if (err) { /* the guest closed its end: its answer (if any) is still read */
        x->body_done = 1;
        return;
    }
    body_more(x);
}

static void up_write(struct lel_proxy *x, char *buf, size_t len)
{
    h2o_iovec_t v = h2o_iovec_init(buf, len);
    x->wbuf = buf;
    x->writing = 1;
    h2o_socket_write(x->up, &v, 1, up_on_written);
}

/* Sends the next piece of the request body, when the guest took the last one and some came. */
static void body_more(void *ctx)
{
    struct lel_proxy *x = ctx;
    lel_call_t *c = x->c;
    if (x->writing || x->body_done || !x->up)
        return;
    char *buf = malloc(PIECE + 32);
    if (!buf)
        return;
    size_t off = x->chunked_req ? 16 : 0; /* room for the chunk's size line */
    ssize_t n = lel_call_body_read(c, buf + off, PIECE);
    if (n == -EAGAIN || (n < 0 && n != -E2BIG)) {
        free(buf);
        if (n != -EAGAIN) /* the client went away mid-body */
            x->body_done = 1;
        return;
    }
    if (n <= 0) { /* the end */
        x->body_done = 1;
        if (!x->chunked_req) {
            free(buf);
            return;
        }
        memcpy(buf, "0\r\n\r\n", 5);
        up_write(x, buf, 5);
        return;
    }
    if (!x->chunked_req) {
        up_write(x, buf, (size_t)n);
        return;
    }
    char line[16];
    int l = snprintf(line, sizeof(line), "%zx\r\n", (size_t)n);
    memcpy(buf + off - (size_t)l, line, (size_t)l);
    memcpy(buf + off + n, "\r\n", 2);
    memmove(buf, buf + off - (size_t)l, (size_t)l + (size_t)n + 2);
    up_write(x, buf, (size_t)l + (size_t)n + 2);
}

/* ---- the response from the guest ---- */

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct lel_proxy *x = H2O_STRUCT_FROM_MEMBER(struct lel_proxy, gen, gen);
    (void)req;
    x->sending = 0;
    free(x->sbuf);
    x->sbuf = NULL;
    if (x->up)
        up_on_read(x->up, NULL); /* what is buffered, then more */
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)gen;
    (void)req; /* the request's pool tells lel__proxy_gone */
}

static int skip_response_header(const char *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                                      "trailer", "upgrade", "content-length", "date"}; /* h2o says its own date */
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (len == strlen(hop[i]) && !strncasecmp(name, hop[i], len))
            return 1;
    return 0;
}

/* A header of the guest's response onto h2o's (names lowercased: HTTP/2 requires it). */
static void add_header(h2o_req_t *req, const struct phr_header *h)
{
    h2o_iovec_t name = h2o_strdup(&req->pool, h->name, h->name_len);
    h2o_strtolower(name.base, name.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL,
                          h2o_strdup(&req->pool, h->value, h->value_len).base, h->value_len);
}

static void on_upgraded(void *data, h2o_socket_t *client, size_t reqsize)
{
    struct lel_proxy *x = data;
    if (client) /* the request's head is still in the client's input: the tunnel starts after it */
        h2o_buffer_consume(&client->input, reqsize);
    if (!client || !x->up) {
        proxy_free(x);
        return;
    }
    h2o_socket_t *up = x->up;
    x->up = NULL;
    h2o_socket_read_stop(up);
    h2o_tunnel_establish(&x->loop->ctx, client, up, &x->loop->tunnel_timeout);
    x->req = NULL;
    proxy_free(x);
}

/* The guest said 101 to a WebSocket upgrade: the client's connection becomes a tunnel to it,
 * with what the guest sent after its head going first. */
static void upgrade(struct lel_proxy *x, struct phr_header *hs, size_t nh)
{
    h2o_req_t *req = x->req;
    struct gate *g = lel__gate_of(req);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    for (size_t i = 0; i < nh; i++) /* h2o writes "connection: upgrade" itself; the guest's upgrade stays */
        if (hs[i].name && ((hs[i].name_len == 7 && !strncasecmp(hs[i].name, "upgrade", 7)) ||
                           !skip_response_header(hs[i].name, hs[i].name_len)))
            add_header(req, &hs[i]);
    if (g)
        lel__gate_release(g);
    x->started = 1;
    h2o_iovec_t rest = h2o_strdup(&req->pool, x->up->input->bytes, x->up->input->size);
    h2o_buffer_consume(&x->up->input, x->up->input->size);
    h2o_socket_read_stop(x->up);
    /* h2o disposes the request before it calls on_upgraded: the proxy leaves the call first */
    ((struct call_priv *)x->c->http)->proxy = NULL;
    x->req = NULL;
    h2o_http1_upgrade(req, &rest, rest.len ? 1 : 0, on_upgraded, x);
}

/* Parses the guest's response head in the upstream's input; 0 when more is needed, 1 done,
 * -1 when the proxy ended. */
static int response_head(struct lel_proxy *x)
{
    h2o_buffer_t *in = x->up->input;
    char name[160];
    struct phr_header hs[100];
    size_t nh = 100, mlen;
    int minor, status;
    const char *msg;
    int r = phr_parse_response(in->bytes, in->size, &minor, &status, &msg, &mlen, hs, &nh, 0);
    if (r == -2 && in->size < HEAD_MAX)
        return 0;
    if (r < 0) {
        fail(x, 502, "%s answered something that is not HTTP/1.x", upstream_name(x, name, sizeof(name)));
        return -1;
    }
    if (status >= 100 && status < 200 && status != 101) { /* 100 Continue and the like: the real head follows */
        h2o_buffer_consume(&x->up->input, (size_t)r);
        return response_head(x);
    }
    if (status == 101 && x->ws) {
        h2o_buffer_consume(&x->up->input, (size_t)r);
        upgrade(x, hs, nh);
        return -1;
    }
    h2o_req_t *req = x->req;
    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg, mlen).base;
    x->left = UINT64_MAX;
    for (size_t i = 0; i < nh; i++) {
        if (!hs[i].name)
            continue;
        if (hs[i].name_len == 17 && !strncasecmp(hs[i].name, "transfer-encoding", 17))
            x->chunked = 1;
        else if (hs[i].name_len == 14 && !strncasecmp(hs[i].name, "content-length", 14))
            x->left = strtoull(hs[i].value, NULL, 10);
        if (!skip_response_header(hs[i].name, hs[i].name_len))
            add_header(req, &hs[i]);
    }
    if (x->chunked)
        x->left = UINT64_MAX;
    if (status == 204 || status == 304 || h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        x->left = 0, x->chunked = 0;
    if (x->left != UINT64_MAX)
        req->res.content_length = x->left;
    h2o_buffer_consume(&x->up->input, (size_t)r);
    memset(&x->dec, 0, sizeof(x->dec));
    x->dec.consume_trailer = 1;
    x->head_done = 1;
    x->gen.proceed = on_proceed;
    x->gen.stop = on_stop;
    x->started = 1;
    struct gate *g = lel__gate_of(req);
    h2o_start_response(req, &x->gen);
    if (g)
        lel__gate_after_send(g, req, 0);
    return 1;
}

/* Sends what the upstream's input holds of the body; the end when it is complete. Returns 1
 * when the proxy ended (x is gone). */
static int response_body(struct lel_proxy *x, int eof)
{
    h2o_buffer_t *in = x->up->input;
    size_t n = in->size;
    int final = 0;
    if (!x->chunked && x->left != UINT64_MAX && n > x->left)
        n = (size_t)x->left;
    char *buf = n ? malloc(n) : NULL;
    if (n && !buf)
        return 0;
    if (n)
        memcpy(buf, in->bytes, n);
    h2o_buffer_consume(&x->up->input, n);
    size_t len = n;
    if (x->chunked && n) {
        ssize_t r = phr_decode_chunked(&x->dec, buf, &len);
        if (r == -1) {
            free(buf);
            fail(x, 502, "bad chunked body");
            return 1;
        }
        final = r >= 0;
    } else if (!x->chunked && x->left != UINT64_MAX) {
        x->left -= n;
        final = x->left == 0;
    }
    if (eof && !final) {
        if (x->chunked || x->left != UINT64_MAX) { /* cut short: the client sees a broken response */
            free(buf);
            fail(x, 502, "cut short");
            return 1;
        }
        final = 1; /* to the end of the stream */
    }
    if (!len && !final) {
        free(buf);
        return 0;
    }
    h2o_iovec_t v = h2o_iovec_init(buf ? buf : "", len);
    x->sbuf = buf;
    x->sending = 1;
    h2o_req_t *req = x->req;
    struct gate *g = lel__gate_of(req);
    if (final) { /* h2o may write it after we are gone: the pool keeps it */
        char **held = h2o_mem_alloc_shared(&req->pool, sizeof(*held), lel__http_free_held);
        *held = buf;
        x->sbuf = NULL;
        h2o_socket_read_stop(x->up);
    }
    if (proxy_send(x, req, &v, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS)) {
        proxy_free(x);
        return 1;
    }
    if (g)
        lel__gate_after_send(g, req, final);
    if (final)
        proxy_free(x);
    return final;
}

static void up_on_read(h2o_socket_t *sock, const char *err)
{
    struct lel_proxy *x = sock->data;
    char name[160];
    if (!x->req) {
        proxy_free(x);
        return;
    }
    if (!x->head_done) {
        if (err && !sock->input->size) {
            if (x->c->fwd_node)
                fail(x, 502, "cluster: %s did not answer", upstream_name(x, name, sizeof(name)));
            else
                fail(x, 502, "nothing answered on %s (is a server listening there?)", upstream_name(x, name, sizeof(name)));
            return;
        }
        int r = response_head(x);
        if (r <= 0) {
            if (r == 0 && err)
                fail(x, 502, "%s closed before its response head", upstream_name(x, name, sizeof(name)));
            return;
        }
    }
    if (x->sending) {
        h2o_socket_read_stop(sock); /* the client is behind: wait for proceed */
        return;
    }
    if (response_body(x, err != NULL))
        return;
    if (!x->sending && !err && x->up) /* nothing to send yet: read on */
        h2o_socket_read_start(sock, up_on_read);
}

/* ---- the start ---- */

void lel__proxy_start(lel_call_t *c, h2o_req_t *req)
{
    struct call_priv *p = c->http;
    struct lel_proxy *x = calloc(1, sizeof(*x));
    int fd = c->proxy_fd;
    c->proxy_fd = -1;
    if (!x) {
        close(fd);
        lel__http_call_unref(c);
        return;
    }
    x->c = c;
    x->req = req;
    x->loop = p->loop;
    p->proxy = x;
    x->ws = is_websocket(req);
    x->up = h2o_evloop_socket_create(p->loop->ctx.loop, fd, 0);
    if (!x->up) {
        close(fd);
        fail(x, 503, "out of memory");
        return;
    }
    x->up->data = x;
    size_t len;
    char *head = request_head(x, &len);
    if (!head) {
        fail(x, 503, "out of memory");
        return;
    }
    if (c->body && c->body_len && !c->body_in) { /* a whole body: with the head */
        char *all = realloc(head, len + c->body_len);
        if (!all) {
            free(head);
            fail(x, 503, "out of memory");
            return;
        }
        memcpy(all + len, c->body, c->body_len);
        head = all;
        len += c->body_len;
    }
    x->body_done = !c->body_in;
    if (c->body_in)
        lel__body_sink(c->body_in, body_more, x);
    up_write(x, head, len);
    h2o_socket_read_start(x->up, up_on_read);
}
