/* h2o glue. Rules from shared/docs/STACK.md §1: every h2o call on a request happens on its own
 * loop thread; a request whose client vanished is detected through a shared slot in the
 * request pool whose dispose callback drops the request pointer; h2o_multithread carries the
 * answers back. Connections pass through the gate (lel_gate.c) before h2o sees their bytes. */
#include "lel_http_int.h"
#include "../common/lel_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct handler {
    h2o_handler_t super;
    lel_http_t *http;
};

/* ---- calls ---- */

lel_call_t *lel__http_call_new(struct loop *l)
{
    lel_call_t *c = calloc(1, sizeof(*c));
    struct call_priv *p = calloc(1, sizeof(*p));
    if (!c || !p) {
        free(c);
        free(p);
        return NULL;
    }
    c->http = p;
    p->call = c;
    p->loop = l;
    p->t0_us = lel_mono_us();
    atomic_init(&c->refs, 1);
    atomic_fetch_add(&l->inflight, 1);
    c->rl_limit = c->rl_remaining = c->rl_reset = c->retry_after = -1;
    c->declared_len = UINT64_MAX;
    c->proxy_fd = -1;
    return c;
}

void lel__http_call_ref(lel_call_t *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void lel__http_call_unref(lel_call_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    struct call_priv *p = c->http;
    lel_http_t *h = p->loop->http;
    if (h->hd.finished)
        h->hd.finished(h->hd_ctx, c, (uint64_t)(lel_mono_us() - p->t0_us));
    lel__http_release(h, p->reserved);
    if (c->body_in) {
        lel__body_detach(c->body_in);
        lel__body_unref(c->body_in);
    }
    if (p->more_to)
        lel_actor_unref(p->more_to);
    atomic_fetch_sub(&p->loop->inflight, 1);
    free(c->path);
    free(c->query);
    free(c->body);
    free(c->api_key);
    free(c->bearer);
    free(c->admin_token);
    free(c->team_header);
    free(c->node_secret);
    free(c->e2b_sandbox);
    free(c->e2b_port);
    free(c->host);
    free(c->access_token);
    free(c->traffic_token);
    free(c->content_type);
    free(c->content_encoding);
    free(c->connect_timeout);
    free(c->keepalive);
    free(c->id);
    free(c->id2);
    free(c->next_token);
    free(c->raw);
    free(c->proxy_path);
    free(c->proxy_host);
    free(c->fwd_node);
    free(c->fwd_secret);
    if (c->proxy_fd >= 0)
        close(c->proxy_fd);
    json_decref(c->json);
    json_decref(c->resp);
    json_decref(c->xmetadata);
    free(p);
    free(c);
}

int lel__http_reserve(lel_http_t *h, size_t n)
{
    size_t cur = atomic_load(&h->body_bytes);
    do {
        if (n > h->cfg->max_inflight_body_bytes || cur > h->cfg->max_inflight_body_bytes - n)
            return -ENOBUFS;
    } while (!atomic_compare_exchange_weak(&h->body_bytes, &cur, cur + n));
    return 0;
}

void lel__http_release(lel_http_t *h, size_t n)
{
    if (n)
        atomic_fetch_sub(&h->body_bytes, n);
}

static char *header_dup(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = req->headers.entries[i].value;
    return strndup(v.base, v.len);
}

static int header_has(h2o_req_t *req, const h2o_token_t *tok, const char *needle)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);
    if (i < 0)
        return 0;
    /* case-insensitive search without touching the value: h2 values may be shared HPACK entries */
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = strlen(needle);
    for (size_t off = 0; off + n <= v.len; off++)
        if (!strncasecmp(v.base + off, needle, n))
            return 1;
    return 0;
}

enum lel_method lel__http_method(const char *m, size_t len)
{
    static const struct {
        const char *s;
        enum lel_method m;
    } t[] = {{"GET", LEL_M_GET}, {"POST", LEL_M_POST}, {"PUT", LEL_M_PUT}, {"DELETE", LEL_M_DELETE}, {"PATCH", LEL_M_PATCH}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (h2o_memis(m, len, t[i].s, strlen(t[i].s)))
            return t[i].m;
    return LEL_M_OTHER;
}

void lel__http_peer(const struct sockaddr *sa, socklen_t n, char out[64])
{
    strcpy(out, "unknown");
    if (n && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, 64);
    else if (n && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, 64);
}

/* X-Metadata-<key> headers into c->xmetadata: {key lowercased: value}, the first of a key
 * kept (as envd's Go does); values as they came (bytes: the envd layer validates them). */
static int metadata_headers(lel_call_t *c, h2o_req_t *req)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *nm = req->headers.entries[i].name, *v = &req->headers.entries[i].value;
        if (nm->len <= 11 || strncasecmp(nm->base, "x-metadata-", 11))
            continue;
        char key[256];
        size_t kl = nm->len - 11 < sizeof(key) - 1 ? nm->len - 11 : sizeof(key) - 1;
        for (size_t k = 0; k < kl; k++)
            key[k] = (char)tolower((unsigned char)nm->base[11 + k]);
        key[kl] = 0;
        if (!c->xmetadata && !(c->xmetadata = json_object()))
            return -ENOMEM;
        if (!json_object_get(c->xmetadata, key) &&
            json_object_set_new_nocheck(c->xmetadata, key, json_stringn_nocheck(v->base, v->len)) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Routing sees the path as sent, so a percent-encoded '/' or '.' can never change which route
 * matches (h2o's normalized path decodes them and folds ".."); parameters are decoded after. */
int lel__http_call_fill(lel_call_t *c, h2o_req_t *req)
{
    h2o_iovec_t path = req->input.path;
    size_t q = 0;
    while (q < path.len && path.base[q] != '?')
        q++;
    free(c->path);
    free(c->query);
    c->path = c->query = NULL;
    c->method = lel__http_method(req->input.method.base, req->input.method.len);
    if (!(c->path = strndup(path.base, q)))
        return -ENOMEM;
    if (q < path.len && !(c->query = strndup(path.base + q + 1, path.len - q - 1)))
        return -ENOMEM;
#define DUP(field, name)                                                                                               \
    do {                                                                                                               \
        free(c->field);                                                                                                \
        c->field = header_dup(req, H2O_STRLIT(name));                                                                  \
    } while (0)
    DUP(api_key, "x-api-key");
    DUP(bearer, "authorization");
    DUP(admin_token, "x-admin-token");
    DUP(team_header, "x-team-id");
    DUP(node_secret, "x-lelantos-node");
    DUP(e2b_sandbox, "e2b-sandbox-id");
    DUP(e2b_port, "e2b-sandbox-port");
    DUP(access_token, "x-access-token");
    DUP(traffic_token, "e2b-traffic-access-token");
    DUP(content_type, "content-type");
    DUP(content_encoding, "content-encoding");
    DUP(connect_timeout, "connect-timeout-ms");
    DUP(keepalive, "keepalive-ping-interval");
#undef DUP
    json_decref(c->xmetadata);
    c->xmetadata = NULL;
    if (metadata_headers(c, req) < 0)
        return -ENOMEM;
    free(c->host);
    c->host = req->input.authority.len ? strndup(req->input.authority.base, req->input.authority.len) : NULL;
    c->body_msgpack = header_has(req, H2O_TOKEN_CONTENT_TYPE, "application/msgpack");
    c->out_fmt = header_has(req, H2O_TOKEN_ACCEPT, "application/msgpack") ? LEL_FMT_MSGPACK : LEL_FMT_JSON;
    c->accept_sse = header_has(req, H2O_TOKEN_ACCEPT, "text/event-stream");
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    lel__http_peer((struct sockaddr *)&ss, sl, c->peer);
    return 0;
}

static int copy_body(lel_call_t *c, h2o_req_t *req)
{
    if (!req->entity.base || c->body_in || c->body)
        return 0;
    if (!(c->body = malloc(req->entity.len + 1)))
        return -ENOMEM;
    memcpy(c->body, req->entity.base, req->entity.len);
    c->body[req->entity.len] = '\0';
    c->body_len = req->entity.len;
    return 0;
}

/* ---- responses ---- */

static void add_num_header(h2o_req_t *req, const char *name, long v)
{
    if (v < 0)
        return;
    char *buf = h2o_mem_alloc_pool(&req->pool, 24);
    int n = snprintf(buf, 24, "%ld", v);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, buf, (size_t)n);
}

const char *lel__http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Internal Server Error";
    }
}

char *lel__http_error_json(int status, const char *msg, size_t *len)
{
    json_t *j = json_pack("{s:s, s:i, s:s}", "error", msg, "code", status, "message", msg);
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    *len = out ? strlen(out) : 0;
    return out;
}

static void add_headers(lel_call_t *c, h2o_req_t *req)
{
    add_num_header(req, "ratelimit-limit", c->rl_limit);
    add_num_header(req, "ratelimit-remaining", c->rl_remaining);
    add_num_header(req, "ratelimit-reset", c->rl_reset);
    add_num_header(req, "retry-after", c->retry_after);
    if (c->allow)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, c->allow, strlen(c->allow));
    if (c->next_token) {
        char *v = h2o_strdup(&req->pool, c->next_token, SIZE_MAX).base;
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-next-token"), 0, NULL, v, strlen(v));
    }
    if (c->close)
        req->http1_is_persistent = 0;
}

#define HELD_MSG "this connection holds too many answers its client has not read (or let through its HTTP/2 " \
                 "flow-control window)"

static void send_inline(lel_call_t *c, h2o_req_t *req, const char *type, const char *buf, size_t len)
{
    struct gate *g = lel__gate_of(req);
    char *refusal = NULL;
    if (g && lel__gate_would_overflow(g, len)) { /* its client is not reading what it has: not held */
        req->res.status = 503;
        req->res.reason = lel__http_reason(503);
        refusal = lel__http_error_json(503, HELD_MSG, &len);
        buf = refusal ? refusal : "";
        type = "application/json";
    }
    if (type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    req->res.content_length = len;
    if (g) {
        lel__gate_body_cut(g, c, req); /* no-op unless the body is still arriving */
        lel__gate_hold(g, req, len);
    }
    h2o_send_inline(req, buf, len);
    free(refusal);
    if (g)
        lel__gate_after_send(g, req, 1);
}

/* Asks the actor for the next piece; -EPIPE when it is gone (nobody makes the rest). */
static int ask_next(struct call_priv *p)
{
    lel_call_t *c = p->call;
    free(c->raw); /* h2o is done with it */
    c->raw = NULL;
    c->raw_len = 0;
    p->wait = PW_ACTOR;
    lel_msg_t *m = lel_msg_new(p->more_type, p->more_id, NULL);
    if (!m || lel_actor_send(p->more_to, m) < 0) {
        lel_msg_free(m);
        p->wait = PW_NONE;
        return -EPIPE;
    }
    return 0;
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct call_priv *p = H2O_STRUCT_FROM_MEMBER(struct call_priv, gen, gen);
    if (ask_next(p) < 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        lel__http_call_unref(p->call);
    }
}

void lel__http_free_held(void *p)
{
    free(*(char **)p);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)gen;
    (void)req; /* the pool's dispose marks the call cancelled and tells the actor */
}

/* Sends the piece in c->raw; `more` as lel_call_piece's. Returns 1 when the response ended. */
static int send_piece(lel_call_t *c, h2o_req_t *req, int more)
{
    struct call_priv *p = c->http;
    h2o_iovec_t v = h2o_iovec_init(c->raw ? c->raw : "", c->raw_len);
    if (more <= 0 && c->raw) { /* h2o may write the last piece after we are gone: the pool keeps it */
        char **held = h2o_mem_alloc_shared(&req->pool, sizeof(*held), lel__http_free_held);
        *held = c->raw;
        c->raw = NULL;
        c->raw_len = 0;
    }
    h2o_send_state_t st = more > 0 ? H2O_SEND_STATE_IN_PROGRESS : more == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR;
    p->wait = more > 0 ? PW_PROCEED : PW_NONE;
    struct gate *g = lel__gate_of(req);
    h2o_send(req, &v, more >= 0 ? 1 : 0, st);
    if (g)
        lel__gate_after_send(g, req, more <= 0);
    return more <= 0;
}

static void respond_pieces(lel_call_t *c, h2o_req_t *req)
{
    struct call_priv *p = c->http;
    if (!p->started) {
        p->started = 1;
        const char *type = c->raw_type ? c->raw_type : "application/octet-stream";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
        req->res.content_length = p->total;
        p->gen.proceed = on_proceed;
        p->gen.stop = on_stop;
        struct gate *g = lel__gate_of(req);
        if (g)
            lel__gate_body_cut(g, c, req);
        h2o_start_response(req, &p->gen);
    }
    if (send_piece(c, req, p->more))
        lel__http_call_unref(c);
}

/* Answers on the loop thread. Returns 1 when the call is finished with (the dispatch reference
 * is to be dropped), 0 while a streamed answer goes on. */
static int respond(lel_call_t *c)
{
    struct call_priv *p = c->http;
    h2o_req_t *req = p->req;
    if (c->proxy_fd >= 0) { /* forwarded to a sandbox's port: the proxy has it from here */
        if (!req)
            return 1;
        lel__proxy_start(c, req);
        return 0;
    }
    if (p->more_to) { /* an answer in pieces */
        if (!req) /* the actor sees c->cancelled at the next piece and ends it */
            return p->more <= 0 || ask_next(p) < 0;
        if (!p->started) {
            req->res.status = c->status ? c->status : 200;
            req->res.reason = lel__http_reason(req->res.status);
            add_headers(c, req);
        }
        respond_pieces(c, req);
        return 0;
    }
    if (!req)
        return 1; /* the client went away; the work is done, nobody to tell */
    req->res.status = c->status ? c->status : 500;
    req->res.reason = lel__http_reason(req->res.status);
    add_headers(c, req);
    if (c->raw) {
        send_inline(c, req, c->raw_type ? c->raw_type : "application/octet-stream", c->raw, c->raw_len);
        return 1;
    }
    char *buf = NULL;
    size_t len = 0;
    const char *type = NULL;
    struct gate *g = lel__gate_of(req);
    if (g && lel__gate_over_held(g)) { /* not even encoded: its client is not reading (SIZE_MAX is past */
        send_inline(c, req, NULL, NULL, SIZE_MAX); /* any cap: send_inline answers the 503 instead) */
        return 1;
    }
    if (c->resp && c->status != 204) {
        if (lel_codec_encode(c->resp, c->out_fmt, &buf, &len) < 0) {
            req->res.status = 500;
            c->out_fmt = LEL_FMT_JSON;
            buf = lel__http_error_json(500, "response encoding failed", &len);
        }
        type = c->out_fmt == LEL_FMT_MSGPACK ? "application/msgpack" : "application/json";
    }
    send_inline(c, req, type, buf ? buf : "", len);
    free(buf);
    return 1;
}

static void post(lel_call_t *c)
{
    struct call_priv *p = c->http;
    if (pthread_equal(pthread_self(), p->loop->tid)) {
        if (respond(c))
            lel__http_call_unref(c);
        return;
    }
    h2o_multithread_send_message(&p->loop->replies, &p->msg);
}

void lel_call_done(lel_call_t *c)
{
    if (c->body_in)
        lel__body_detach(c->body_in); /* the actor is done with the body: no more messages */
    post(c);
}

void lel_call_stream(lel_call_t *c, uint64_t total, lel_actor_t *a, int type, uint32_t id)
{
    struct call_priv *p = c->http;
    lel_actor_ref(a);
    p->more_to = a;
    p->more_type = type;
    p->more_id = id;
    p->total = total;
    p->more = c->raw_len < total ? 1 : 0;
}

void lel_call_piece(lel_call_t *c, int more)
{
    struct call_priv *p = c->http;
    p->more = more;
    post(c);
}

static void on_replies(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        lel_call_t *c = ((struct call_priv *)m)->call;
        if (respond(c))
            lel__http_call_unref(c);
    }
}

static void on_wake(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    struct loop *l = H2O_STRUCT_FROM_MEMBER(struct loop, wake, recv);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        free(m);
    }
    l->woken = 1;
    for (size_t i = 0; i < l->nlisteners; i++) {
        if (l->listeners[i]) {
            h2o_socket_read_stop(l->listeners[i]);
            h2o_socket_close(l->listeners[i]);
            l->listeners[i] = NULL;
        }
    }
    h2o_context_request_shutdown(&l->ctx);
}

static void on_slot_dispose(void *slot)
{
    lel_call_t *c = *(lel_call_t **)slot;
    struct call_priv *p = c->http;
    p->req = NULL;
    atomic_store(&c->cancelled, 1); /* actors that have not started on it will drop it */
    if (p->proxy)
        lel__proxy_gone(p->proxy);
    if (p->wait == PW_PROCEED && ask_next(p) < 0) /* h2o will not ask for it: the actor ends it */
        lel__http_call_unref(c);                 /* ...or is gone, and the stream with it */
    lel__http_call_unref(c);
}

/* ---- requests ---- */

static void answer_now(h2o_req_t *req, int status, const char *msg)
{
    size_t len;
    char *body = lel__http_error_json(status, msg, &len);
    req->res.status = status;
    req->res.reason = lel__http_reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    struct gate *g = lel__gate_of(req);
    if (g)
        lel__gate_hold(g, req, len);
    h2o_send_inline(req, body ? body : "", len);
    if (g)
        lel__gate_after_send(g, req, 1);
    free(body);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    lel_http_t *h = ((struct handler *)self)->http;
    struct loop *l = (struct loop *)req->conn->ctx;
    struct gate *g = lel__gate_of(req);
    int later = 0;
    lel_call_t *c = g ? lel__gate_take(g, req, &later) : NULL;
    if (atomic_load(&h->stopping)) {
        if (c)
            lel__http_call_unref(c);
        answer_now(req, 503, "shutting down");
        return 0;
    }
    if (g && lel__gate_over_held(g)) { /* its answers are not being read: no more work for it */
        if (c)
            lel__http_call_unref(c);
        answer_now(req, 503, HELD_MSG);
        return 0;
    }
    size_t hsize = req->path.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; i++)
        hsize += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (hsize > h->cfg->max_header_bytes) {
        if (c)
            lel__http_call_unref(c);
        answer_now(req, 431, "request headers too large");
        return 0;
    }
    if (!c && !(c = lel__http_call_new(l))) {
        answer_now(req, 503, "out of memory");
        return 0;
    }
    struct call_priv *p = c->http;
    p->req = req;
    /* the request pool holds one reference; dropping it marks the client as gone */
    lel_call_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_slot_dispose);
    *slot = c;
    atomic_fetch_add(&c->refs, 1);
    if (c->status) { /* refused at its head (HTTP/2: the gate let h2o dispatch it to answer here) */
        if (respond(c))
            lel__http_call_unref(c);
        return 0;
    }
    if (lel__http_call_fill(c, req) < 0 || copy_body(c, req) < 0) {
        lel_call_error(c, 503, "out of memory");
        if (respond(c))
            lel__http_call_unref(c);
        return 0;
    }
    if (later) /* the gate gathers its body and dispatches it then */
        lel__http_call_unref(c);
    else
        h->hd.dispatch(h->hd_ctx, c);
    return 0;
}

/* h2o answers some protocol errors itself (a chunked body past the cap, a broken
 * Content-Length, bad HTTP/2 header characters) as text/plain from the host's fallback path;
 * this filter there turns their body into the JSON every client of the API expects. */
struct json_ostream {
    h2o_ostream_t super;
    int status;
};

static void json_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t state)
{
    struct json_ostream *o = (struct json_ostream *)self;
    char msg[256];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(msg) - 1; i++) {
        size_t k = bufs[i].len < sizeof(msg) - 1 - len ? bufs[i].len : sizeof(msg) - 1 - len;
        memcpy(msg + len, bufs[i].base, k);
        len += k;
    }
    msg[len] = 0;
    char *json = lel__http_error_json(o->status, msg, &len);
    h2o_iovec_t v = h2o_strdup(&req->pool, json ? json : "", len);
    free(json);
    h2o_ostream_send_next(self, req, &v, 1, state);
}

static void json_on_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && i >= 0 && h2o_memis(req->res.headers.entries[i].value.base, 10, H2O_STRLIT("text/plain"))) {
        req->res.headers.entries[i].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        req->res.content_length = SIZE_MAX; /* the JSON's length is known only when the body comes */
        struct json_ostream *o = (struct json_ostream *)h2o_add_ostream(req, sizeof(*o), slot);
        o->status = req->res.status;
        o->super.do_send = json_do_send;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- listeners and loops ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop *l = listener->data;
    if (err)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        lel__gate_accept(l, sock);
    }
}

/* One listening socket per address, shared by the loop threads through dup(): without
 * SO_REUSEPORT a second daemon (or any process) on the same address fails with "address in
 * use" instead of silently taking half of the connections. */
static int open_listener(const char *addr, char *err, size_t errlen)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    size_t hlen = (size_t)(colon - addr);
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    if (addr[0] == '[') {
        hlen -= 2;
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr + 1, hlen);
    } else {
        if (hlen >= sizeof(host))
            goto bad;
        memcpy(host, addr, hlen);
    }
    host[hlen] = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*s6);
    } else if (!strcmp(host, "localhost")) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sslen = sizeof(*s4);
    } else {
        goto bad;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -EADDRINUSE;
    }
    return fd;
bad:
    snprintf(err, errlen, "cannot listen on %s: address must be a numeric IP (or localhost) and port", addr);
    return -EINVAL;
}

/* Everything h2o of a loop is created and destroyed on the loop's own thread: h2o's buffer
 * recycling keeps thread-local free lists, and a socket created on another thread (the
 * context's message queue included) would recycle into that thread's list concurrently. */
static int loop_setup(struct loop *l)
{
    lel_http_t *h = l->http;
    h2o_context_init(&l->ctx, h2o_evloop_create(), &h->conf);
    l->accept_ctx.ctx = &l->ctx;
    l->accept_ctx.hosts = h->conf.hosts;
    l->accept_ctx.ssl_ctx = h->ssl;
    h2o_multithread_register_receiver(l->ctx.queue, &l->replies, on_replies);
    h2o_multithread_register_receiver(l->ctx.queue, &l->wake, on_wake);
    h2o_multithread_register_receiver(l->ctx.queue, &l->resumes, lel__body_on_resumes);
    h2o_timeout_init(l->ctx.loop, &l->linger_timeout, 2000);
    h2o_timeout_init(l->ctx.loop, &l->body_timeout, (uint64_t)h->cfg->idle_timeout_ms);
    h2o_timeout_init(l->ctx.loop, &l->tunnel_timeout, 3600000); /* an idle WebSocket to a sandbox: an hour */
    if (!(l->listeners = calloc(l->nlisteners, sizeof(*l->listeners))))
        return -ENOMEM;
    for (size_t j = 0; j < l->nlisteners; j++) {
        l->listeners[j] = h2o_evloop_socket_create(l->ctx.loop, l->fds[j], H2O_SOCKET_FLAG_DONT_READ);
        l->fds[j] = -1; /* the socket owns it now */
        l->listeners[j]->data = l;
        h2o_socket_read_start(l->listeners[j], on_accept);
    }
    return 0;
}

static void loop_teardown(struct loop *l)
{
    for (size_t j = 0; j < l->nlisteners; j++)
        if (l->listeners && l->listeners[j])
            h2o_socket_close(l->listeners[j]);
    int idle = h2o_linklist_is_empty(&l->ctx.http1._conns) && h2o_linklist_is_empty(&l->ctx.http2._conns);
    /* a call still held by a worker will post its answer here, and a connection still open
     * after the grace would be freed under h2o: in both cases the loop is left allocated */
    if (!idle || atomic_load(&l->inflight) > 0)
        return;
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->replies);
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->wake);
    h2o_multithread_unregister_receiver(l->ctx.queue, &l->resumes);
    h2o_evloop_t *loop = l->ctx.loop;
    /* request_shutdown arms h2's GOAWAY resend timer even with no connection left */
    if (h2o_timeout_is_linked(&l->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&l->ctx.http2._graceful_shutdown_timeout);
    h2o_timeout_dispose(loop, &l->linger_timeout);
    h2o_timeout_dispose(loop, &l->body_timeout);
    h2o_timeout_dispose(loop, &l->tunnel_timeout);
    h2o_context_dispose(&l->ctx);
    h2o_evloop_destroy(loop);
}

static void *loop_main(void *arg)
{
    lel_thread_name("lel-http");
    lel_thread_interactive();
    struct loop *l = arg;
    lel_http_t *h = l->http;
    int64_t deadline = 0, drained_at = 0;
    l->tid = pthread_self();
    l->setup_error = loop_setup(l);
    sem_post(&h->ready);
    while (!l->exit) {
        h2o_evloop_run(l->ctx.loop, atomic_load(&h->stopping) ? 20 : INT32_MAX);
        if (!l->woken)
            continue;
        int64_t now = lel_mono_ms();
        if (!deadline)
            deadline = now + h->cfg->shutdown_grace_ms;
        if (!drained_at && atomic_load(&l->inflight) == 0)
            drained_at = now;
        int conns = !h2o_linklist_is_empty(&l->ctx.http1._conns) || !h2o_linklist_is_empty(&l->ctx.http2._conns);
        /* leave once our calls are answered and connections closed (idle keep-alive ones get
         * a second to go), or when the grace runs out */
        if ((drained_at && (!conns || now > drained_at + 1000)) || now > deadline)
            l->exit = 1;
    }
    loop_teardown(l);
    return NULL;
}

static int init_ssl(lel_http_t *h, const lel_config_t *cfg, char *err, size_t errlen)
{
    if (!*cfg->tls_cert && !*cfg->tls_key)
        return 0;
    if (!*cfg->tls_cert || !*cfg->tls_key) {
        snprintf(err, errlen, "config keys 'tls.cert' and 'tls.key' must be set together");
        return -EINVAL;
    }
    h->ssl = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(h->ssl, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(h->ssl, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(h->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(h->ssl) != 1) {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof(e));
        snprintf(err, errlen, "config keys 'tls.cert'/'tls.key': cannot load %s / %s: %s", cfg->tls_cert, cfg->tls_key, e);
        return -EINVAL;
    }
    h2o_ssl_register_alpn_protocols(h->ssl, h2o_alpn_protocols);
    return 0;
}

static void free_http(lel_http_t *h)
{
    for (int i = 0; h->loops && i < h->nloops; i++) {
        struct loop *l = &h->loops[i];
        for (size_t j = 0; l->fds && j < l->nlisteners; j++)
            if (l->fds[j] >= 0)
                close(l->fds[j]);
        free(l->fds);
        free(l->listeners);
    }
    free(h->loops);
    sem_destroy(&h->ready);
    h2o_config_dispose(&h->conf);
    if (h->ssl)
        SSL_CTX_free(h->ssl);
    free(h);
}

/* Stops and joins the first n loops; returns the calls they still had in flight. */
static long stop_loops(lel_http_t *h, int n)
{
    long left = 0;
    atomic_store(&h->stopping, 1);
    for (int i = 0; i < n; i++) {
        h2o_multithread_message_t *m = calloc(1, sizeof(*m));
        if (m)
            h2o_multithread_send_message(&h->loops[i].wake, m);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(h->loops[i].thread, NULL);
        left += atomic_load(&h->loops[i].inflight);
    }
    return left;
}

static void config_h2o(lel_http_t *h, const lel_config_t *cfg)
{
    h2o_config_init(&h->conf);
    /* h2o buffers an ordinary body whole (h1: 413 above this, h2: stream reset); bodies of the
     * routes that take more (file uploads) stream through the gate and never reach h2o */
    h->conf.max_request_entity_size = cfg->max_body_bytes + 1;
    h->conf.http2.max_concurrent_requests_per_connection = (size_t)cfg->h2_max_streams;
    h->conf.http2.idle_timeout = (uint64_t)cfg->idle_timeout_ms;
    h->conf.http1.req_timeout = (uint64_t)cfg->idle_timeout_ms;
    h->conf.server_name = h2o_iovec_init(H2O_STRLIT("lelantos"));
    h2o_hostconf_t *host = h2o_config_register_host(&h->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *hd = (struct handler *)h2o_create_handler(path, sizeof(*hd));
    hd->super.on_req = on_req;
    hd->http = h;
    h2o_filter_t *f = h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->on_setup_ostream = json_on_setup;
}

int lel_http_start(const lel_config_t *cfg, const lel_http_handlers_t *hd, void *ctx, lel_http_t **out, char *err,
                   size_t errlen)
{
    lel_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    sem_init(&h->ready, 0, 0);
    h->hd = *hd;
    h->hd_ctx = ctx;
    h->cfg = cfg;
    atomic_init(&h->body_bytes, 0);
    config_h2o(h, cfg);
    int r = init_ssl(h, cfg, err, errlen);
    if (r < 0)
        goto fail;
    r = -ENOMEM;
    if (!(h->loops = calloc((size_t)cfg->http_threads, sizeof(*h->loops))))
        goto fail;
    for (int i = 0; i < cfg->http_threads; i++, h->nloops++) {
        struct loop *l = &h->loops[i];
        l->http = h;
        if (!(l->fds = malloc(cfg->nlisten * sizeof(int))))
            goto fail;
        for (size_t j = 0; j < cfg->nlisten; j++)
            l->fds[j] = -1;
        l->nlisteners = cfg->nlisten;
    }
    /* bind everything first, so a bad or taken address fails the start before any thread runs */
    for (size_t j = 0; j < cfg->nlisten; j++) {
        if ((r = open_listener(cfg->listen[j], err, errlen)) < 0)
            goto fail;
        h->loops[0].fds[j] = r;
        for (int i = 1; i < h->nloops; i++)
            if ((h->loops[i].fds[j] = fcntl(r, F_DUPFD_CLOEXEC, 0)) < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen[j], strerror(errno));
                r = -errno;
                goto fail;
            }
    }
    for (int i = 0; i < h->nloops; i++) {
        int failed = pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]) != 0;
        if (!failed) {
            sem_wait(&h->ready);
            failed = h->loops[i].setup_error < 0;
            i += failed; /* the thread runs; stop it with the others */
        }
        if (failed) {
            snprintf(err, errlen, "cannot start the HTTP loop threads");
            stop_loops(h, i);
            r = -EAGAIN;
            goto fail;
        }
    }
    *out = h;
    return 0;
fail:
    free_http(h);
    return r;
}

void lel_http_stats(lel_http_t *h, struct lel_http_stats *out)
{
    out->conns_open = atomic_load_explicit(&h->conns_open, memory_order_relaxed);
    out->conns_accepted = atomic_load_explicit(&h->conns_accepted, memory_order_relaxed);
}

void lel_http_stop(lel_http_t *h)
{
    long left = stop_loops(h, h->nloops);
    if (left) {
        fprintf(stderr, "lelantos: %ld requests still in flight after the shutdown grace\n", left);
        return; /* workers will still post to the loops: keep them allocated */
    }
    free_http(h);
}
