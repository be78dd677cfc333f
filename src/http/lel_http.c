/* h2o glue. Rules from shared/docs/STACK.md §1: every h2o call on a request happens on its own
 * loop thread; a request whose client vanished is detected through a shared slot in the
 * request pool whose dispose callback drops the request pointer; h2o_multithread carries the
 * answers back. */
#include "lel_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <h2o.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct loop {
    h2o_context_t ctx; /* first: on_req finds the loop from req->conn->ctx */
    h2o_accept_ctx_t accept_ctx;
    h2o_multithread_receiver_t replies, wake;
    h2o_socket_t **listeners;
    int *fds; /* bound by lel_http_start, wrapped into sockets by the loop thread */
    size_t nlisteners;
    int setup_error;
    pthread_t thread, tid; /* tid: set by the loop thread itself */
    lel_http_t *http;
    atomic_long inflight; /* calls created by this loop and not yet freed */
    int woken;            /* the stop message arrived (its receiver must be empty to unregister) */
    int exit;
};

struct lel_http {
    h2o_globalconf_t conf;
    SSL_CTX *ssl;
    size_t max_header;
    int grace_ms;
    lel_http_dispatch_fn dispatch;
    void *dispatch_ctx;
    atomic_int stopping;
    struct loop *loops;
    int nloops;
    sem_t ready; /* posted by each loop thread once set up */
};

struct handler {
    h2o_handler_t super;
    lel_http_t *http;
};

/* Per-call state the HTTP layer keeps; lives in lel_call_t.http. */
struct call_priv {
    h2o_multithread_message_t msg; /* first: replies are recovered from the message link */
    h2o_req_t *req;                /* NULL once the client is gone; loop thread only */
    struct loop *loop;
    lel_call_t *call;
};

static void call_unref(lel_call_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    struct call_priv *p = c->http;
    atomic_fetch_sub(&p->loop->inflight, 1);
    free(c->path);
    free(c->query);
    free(c->body);
    free(c->api_key);
    free(c->bearer);
    free(c->admin_token);
    free(c->team_header);
    free(c->id);
    free(c->id2);
    free(c->next_token);
    free(c->raw);
    json_decref(c->json);
    json_decref(c->resp);
    free(p);
    free(c);
}

static void add_num_header(h2o_req_t *req, const char *name, long v)
{
    if (v < 0)
        return;
    char *buf = h2o_mem_alloc_pool(&req->pool, 24);
    int n = snprintf(buf, 24, "%ld", v);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, buf, (size_t)n);
}

static const char *reason(int status)
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
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void respond(lel_call_t *c)
{
    struct call_priv *p = c->http;
    h2o_req_t *req = p->req;
    if (!req)
        return; /* the client went away; the work is done, nobody to tell */
    req->res.status = c->status ? c->status : 500;
    req->res.reason = reason(req->res.status);
    add_num_header(req, "ratelimit-limit", c->rl_limit);
    add_num_header(req, "ratelimit-remaining", c->rl_remaining);
    add_num_header(req, "ratelimit-reset", c->rl_reset);
    add_num_header(req, "retry-after", c->retry_after);
    if (c->next_token) {
        char *v = h2o_mem_alloc_pool(&req->pool, strlen(c->next_token) + 1);
        strcpy(v, c->next_token);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-next-token"), 0, NULL, v, strlen(v));
    }
    char *buf = NULL;
    size_t len = 0;
    if (c->raw) {
        const char *type = c->raw_type ? c->raw_type : "application/octet-stream";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
        req->res.content_length = c->raw_len;
        h2o_send_inline(req, c->raw, c->raw_len);
        return;
    }
    if (c->resp && c->status != 204) {
        if (lel_codec_encode(c->resp, c->out_fmt, &buf, &len) < 0) {
            req->res.status = 500;
            c->out_fmt = LEL_FMT_JSON;
            buf = strdup("{\"error\":\"response encoding failed\",\"code\":500,\"message\":\"response encoding failed\"}");
            len = buf ? strlen(buf) : 0;
        }
        if (c->out_fmt == LEL_FMT_MSGPACK)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/msgpack"));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    }
    req->res.content_length = len;
    h2o_send_inline(req, buf ? buf : "", len);
    free(buf);
}

void lel_call_done(lel_call_t *c)
{
    struct call_priv *p = c->http;
    if (pthread_equal(pthread_self(), p->loop->tid)) {
        respond(c);
        call_unref(c);
        return;
    }
    h2o_multithread_send_message(&p->loop->replies, &p->msg);
}

static void on_replies(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        lel_call_t *c = ((struct call_priv *)m)->call;
        respond(c);
        call_unref(c);
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
    ((struct call_priv *)c->http)->req = NULL;
    atomic_store(&c->cancelled, 1); /* actors that have not started on it will drop it */
    call_unref(c);
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

static enum lel_method method_of(h2o_iovec_t m)
{
    static const struct {
        const char *s;
        enum lel_method m;
    } t[] = {{"GET", LEL_M_GET}, {"POST", LEL_M_POST}, {"PUT", LEL_M_PUT}, {"DELETE", LEL_M_DELETE}, {"PATCH", LEL_M_PATCH}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (h2o_memis(m.base, m.len, t[i].s, strlen(t[i].s)))
            return t[i].m;
    return LEL_M_OTHER;
}

static void peer_of(h2o_req_t *req, char out[64])
{
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    strcpy(out, "unknown");
    if (n && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, 64);
    else if (n && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, 64);
}

static lel_call_t *call_new(struct loop *l, h2o_req_t *req)
{
    lel_call_t *c = calloc(1, sizeof(*c));
    struct call_priv *p = calloc(1, sizeof(*p));
    if (!c || !p)
        goto fail;
    c->http = p;
    p->call = c;
    p->req = req;
    p->loop = l;
    atomic_init(&c->refs, 1);
    atomic_fetch_add(&l->inflight, 1);
    c->rl_limit = c->rl_remaining = c->rl_reset = c->retry_after = -1;
    c->method = method_of(req->method);
    if (!(c->path = strndup(req->path_normalized.base, req->path_normalized.len)))
        goto fail_counted;
    if (req->query_at != SIZE_MAX &&
        !(c->query = strndup(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)))
        goto fail_counted;
    if (req->entity.base) {
        if (!(c->body = malloc(req->entity.len + 1)))
            goto fail_counted;
        memcpy(c->body, req->entity.base, req->entity.len);
        c->body[req->entity.len] = '\0';
        c->body_len = req->entity.len;
    }
    c->api_key = header_dup(req, H2O_STRLIT("x-api-key"));
    c->bearer = header_dup(req, H2O_STRLIT("authorization"));
    c->admin_token = header_dup(req, H2O_STRLIT("x-admin-token"));
    c->team_header = header_dup(req, H2O_STRLIT("x-team-id"));
    c->body_msgpack = header_has(req, H2O_TOKEN_CONTENT_TYPE, "application/msgpack");
    c->out_fmt = header_has(req, H2O_TOKEN_ACCEPT, "application/msgpack") ? LEL_FMT_MSGPACK : LEL_FMT_JSON;
    peer_of(req, c->peer);
    return c;
fail_counted:
    call_unref(c);
    return NULL;
fail:
    free(c);
    free(p);
    return NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    lel_http_t *h = ((struct handler *)self)->http;
    struct loop *l = (struct loop *)req->conn->ctx;
    if (atomic_load(&h->stopping)) {
        h2o_send_error_503(req, "Service Unavailable", "shutting down", 0);
        return 0;
    }
    size_t hsize = req->path.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; i++)
        hsize += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (hsize > h->max_header) {
        static const char body[] = "{\"error\":\"request headers too large\",\"code\":431,\"message\":\"request headers too large\"}";
        req->res.status = 431;
        req->res.reason = "Request Header Fields Too Large";
        req->res.content_length = sizeof(body) - 1;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        h2o_send_inline(req, body, sizeof(body) - 1);
        return 0;
    }
    lel_call_t *c = call_new(l, req);
    if (!c) {
        h2o_send_error_503(req, "Service Unavailable", "out of memory", 0);
        return 0;
    }
    /* the request pool holds one reference; dropping it marks the client as gone */
    lel_call_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_slot_dispose);
    *slot = c;
    atomic_fetch_add(&c->refs, 1);
    h->dispatch(h->dispatch_ctx, c);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct loop *l = listener->data;
    if (err)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        h2o_accept(&l->accept_ctx, sock);
    }
}

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
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0 || bind(fd, (struct sockaddr *)&ss, sslen) < 0 ||
        listen(fd, 1024) < 0) {
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
    h2o_evloop_t *loop = l->ctx.loop;
    /* request_shutdown arms h2's GOAWAY resend timer even with no connection left */
    if (h2o_timeout_is_linked(&l->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&l->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&l->ctx);
    h2o_evloop_destroy(loop);
}

static void *loop_main(void *arg)
{
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
            deadline = now + h->grace_ms;
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

int lel_http_start(const lel_config_t *cfg, lel_http_dispatch_fn fn, void *ctx, lel_http_t **out, char *err,
                   size_t errlen)
{
    lel_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    sem_init(&h->ready, 0, 0);
    h->dispatch = fn;
    h->dispatch_ctx = ctx;
    h->grace_ms = cfg->shutdown_grace_ms;
    h->max_header = cfg->max_header_bytes;
    h2o_config_init(&h->conf);
    /* h2o rejects bodies above this itself (h1: 413, h2: reset); the API layer applies the finer caps */
    h->conf.max_request_entity_size = (cfg->max_file_bytes > cfg->max_body_bytes ? cfg->max_file_bytes : cfg->max_body_bytes) + 1;
    h->conf.http2.max_concurrent_requests_per_connection = (size_t)cfg->h2_max_streams;
    h->conf.http2.idle_timeout = (uint64_t)cfg->idle_timeout_ms;
    h->conf.http1.req_timeout = (uint64_t)cfg->idle_timeout_ms;
    h->conf.server_name = h2o_iovec_init(H2O_STRLIT("lelantos"));
    h2o_hostconf_t *host = h2o_config_register_host(&h->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *hd = (struct handler *)h2o_create_handler(path, sizeof(*hd));
    hd->super.on_req = on_req;
    hd->http = h;
    int r = init_ssl(h, cfg, err, errlen);
    if (r < 0)
        goto fail;
    r = -ENOMEM;
    if (!(h->loops = calloc((size_t)cfg->http_threads, sizeof(*h->loops))))
        goto fail;
    /* bind everything first, so a bad address fails the start before any thread runs */
    for (int i = 0; i < cfg->http_threads; i++, h->nloops++) {
        struct loop *l = &h->loops[i];
        l->http = h;
        if (!(l->fds = malloc(cfg->nlisten * sizeof(int))))
            goto fail;
        for (size_t j = 0; j < cfg->nlisten; j++)
            l->fds[j] = -1;
        l->nlisteners = cfg->nlisten;
        for (size_t j = 0; j < cfg->nlisten; j++)
            if ((l->fds[j] = open_listener(cfg->listen[j], err, errlen)) < 0) {
                r = l->fds[j];
                h->nloops++;
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

void lel_http_stop(lel_http_t *h)
{
    long left = stop_loops(h, h->nloops);
    if (left) {
        fprintf(stderr, "lelantos: %ld requests still in flight after the shutdown grace\n", left);
        return; /* workers will still post to the loops: keep them allocated */
    }
    free_http(h);
}
