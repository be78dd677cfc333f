/* The forwarder (lel_cluster_fwd.h). */
#include "lel_cluster_fwd.h"

#include "../common/lel_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    lel_call_t *c;
    char node[128], url[256];
    struct job *next;
};

struct lel_cluster_fwd {
    char *secret;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    int stop;
    int nthreads;
    pthread_t *threads;
};

struct body {
    char *p;
    size_t n, cap;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct body *b = ctx;
    size_t n = size * nmemb;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static const char *method_name(enum lel_method m)
{
    switch (m) {
    case LEL_M_GET: return "GET";
    case LEL_M_POST: return "POST";
    case LEL_M_PUT: return "PUT";
    case LEL_M_DELETE: return "DELETE";
    case LEL_M_PATCH: return "PATCH";
    default: return "GET";
    }
}

static struct curl_slist *add_hdr(struct curl_slist *l, const char *name, const char *v)
{
    char buf[1200];
    if (!v)
        return l;
    snprintf(buf, sizeof(buf), "%s: %s", name, v);
    return curl_slist_append(l, buf);
}

static void forward_one(struct lel_cluster_fwd *f, CURL *h, struct job *j)
{
    lel_call_t *c = j->c;
    char url[4096];
    snprintf(url, sizeof(url), "%s%s%s%s", j->url, c->path, c->query ? "?" : "", c->query ? c->query : "");
    struct curl_slist *hd = add_hdr(NULL, "X-Lelantos-Node", f->secret);
    hd = add_hdr(hd, "X-API-Key", c->api_key);
    hd = add_hdr(hd, "Authorization", c->bearer);
    hd = add_hdr(hd, "X-Admin-Token", c->admin_token);
    hd = add_hdr(hd, "X-Team-ID", c->team_header);
    hd = add_hdr(hd, "Content-Type", c->content_type ? c->content_type : (c->body_len ? "application/json" : NULL));
    hd = curl_slist_append(hd, "Expect:");
    struct body b = {0};
    char ctype[128] = "";
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method_name(c->method));
    if (c->body_len || c->method == LEL_M_POST || c->method == LEL_M_PUT) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)c->body_len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* one connection per forwarded request: a kept-alive idle one would hold the owner's
     * graceful stop (lel_http_stop waits for its connections) */
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 600000L); /* a command may run long */
    CURLcode cr = curl_easy_perform(h);
    curl_slist_free_all(hd);
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    if (ct)
        snprintf(ctype, sizeof(ctype), "%s", ct);
    if (cr != CURLE_OK || status < 100) {
        lel_call_error(c, 502, "cluster: node '%s' (%s), which owns this, did not answer: %s", j->node, j->url,
                       curl_easy_strerror(cr));
        free(b.p);
    } else {
        c->status = (int)status;
        c->raw = b.p ? b.p : strdup("");
        c->raw_len = b.n;
        c->raw_type = strstr(ctype, "json") ? "application/json" : strstr(ctype, "msgpack") ? "application/msgpack"
                    : strstr(ctype, "text/plain")                 ? "text/plain"
                                                                  : "application/octet-stream";
    }
    lel_call_done(c);
}

static void *fwd_main(void *arg)
{
    struct lel_cluster_fwd *f = arg;
    CURL *h = curl_easy_init();
    pthread_mutex_lock(&f->lock);
    for (;;) {
        struct job *j = f->head;
        if (!j) {
            if (f->stop)
                break;
            pthread_cond_wait(&f->cond, &f->lock);
            continue;
        }
        f->head = j->next;
        if (!f->head)
            f->tail = NULL;
        pthread_mutex_unlock(&f->lock);
        if (f->stop || !h) {
            lel_call_error(j->c, 503, "cluster: this node is stopping");
            lel_call_done(j->c);
        } else {
            forward_one(f, h, j);
        }
        free(j);
        pthread_mutex_lock(&f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    curl_easy_cleanup(h);
    return NULL;
}

int lel_cluster_fwd_start(const char *secret, int threads, struct lel_cluster_fwd **out)
{
    struct lel_cluster_fwd *f = calloc(1, sizeof(*f));
    if (!f || !(f->secret = strdup(secret)) || !(f->threads = calloc((size_t)threads, sizeof(pthread_t)))) {
        if (f)
            free(f->secret);
        free(f);
        return -ENOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    for (; f->nthreads < threads; f->nthreads++)
        if (pthread_create(&f->threads[f->nthreads], NULL, fwd_main, f) != 0) {
            lel_cluster_fwd_stop(f);
            return -EAGAIN;
        }
    *out = f;
    return 0;
}

void lel_cluster_fwd_stop(struct lel_cluster_fwd *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; i < f->nthreads; i++)
        pthread_join(f->threads[i], NULL);
    for (struct job *j = f->head, *n; j; j = n) { /* no thread was left to answer them */
        n = j->next;
        lel_call_error(j->c, 503, "cluster: this node is stopping");
        lel_call_done(j->c);
        free(j);
    }
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->threads);
    free(f->secret);
    free(f);
}

/* A non-blocking connection (connecting) to the node at "http://host[:port]", or -errno
 * (-EPROTONOSUPPORT for another scheme). Node URLs are addresses as a rule; a name is looked
 * up here, on the caller's thread. */
static int dial(const char *url)
{
    if (strncmp(url, "http://", 7))
        return -EPROTONOSUPPORT;
    char host[256], port[8] = "80";
    const char *h = url + 7, *end = h + strcspn(h, "/?#"), *colon;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb || rb - h - 1 >= (long)sizeof(host))
            return -EINVAL;
        snprintf(host, sizeof(host), "%.*s", (int)(rb - h - 1), h + 1);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        size_t hl = (size_t)((colon ? colon : end) - h);
        if (!hl || hl >= sizeof(host))
            return -EINVAL;
        snprintf(host, sizeof(host), "%.*s", (int)hl, h);
    }
    if (colon && end - colon - 1 > 0 && end - colon - 1 < (long)sizeof(port))
        snprintf(port, sizeof(port), "%.*s", (int)(end - colon - 1), colon + 1);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai = NULL;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        r = getaddrinfo(host, port, &hints, &ai);
    }
    if (r || !ai)
        return -EHOSTUNREACH;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        freeaddrinfo(ai);
        return r;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* heads and small answers go at once */
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        r = -errno;
        close(fd);
        freeaddrinfo(ai);
        return r;
    }
    freeaddrinfo(ai);
    return fd;
}

void lel_cluster_forward(struct lel_cluster_fwd *f, lel_call_t *c, const char *node, const char *url)
{
    int fd = dial(url);
    if (fd >= 0) { /* the loop thread streams it both ways (src/http/lel_proxy.c) */
        if (lel_call_proxy_node(c, fd, node, f->secret) < 0)
            lel_call_error(c, 503, "cluster: out of memory");
        lel_call_done(c);
        return;
    }
    if (fd != -EPROTONOSUPPORT) {
        lel_call_error(c, 502, "cluster: node '%s' (%s), which owns this, cannot be reached: %s", node, url,
                       strerror(-fd));
        lel_call_done(c);
        return;
    }
    if (c->body_in) { /* an https node: libcurl's threads carry whole bodies only */
        lel_call_error(c, 502, "cluster: node '%s' has an https URL (%s); streamed uploads go to it directly", node,
                       url);
        lel_call_done(c);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        lel_call_error(c, 503, "cluster: out of memory");
        lel_call_done(c);
        return;
    }
    j->c = c;
    snprintf(j->node, sizeof(j->node), "%s", node);
    snprintf(j->url, sizeof(j->url), "%s", url);
    pthread_mutex_lock(&f->lock);
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

int lel_cluster_fwd_trusted(struct lel_cluster_fwd *f, const char *secret)
{
    return secret && lel_ct_equal(secret, strlen(secret), f->secret, strlen(f->secret));
}
