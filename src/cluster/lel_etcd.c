/* The etcd v3 JSON-gateway client (lel_etcd.h). Shapes and quirks it relies on are in
 * ../shared/docs/ETCD.md: absent fields mean zero, int64 come as strings, errors carry a gRPC
 * code, streamed answers are one {"result":...} object per message. */
#include "lel_etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX 16

struct lel_etcd {
    char **eps;
    size_t neps;
    atomic_uint cur; /* the endpoint that answered last: tried first */
    char *cacert, *cert, *key, *user, *password;
    long timeout_ms;
    pthread_mutex_t lock; /* guards idle[] and token */
    CURL *idle[POOL_MAX];
    int nidle;
    char token[512]; /* etcd auth token; "" until authenticated */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int lel_etcd_new(const struct lel_etcd_opts *o, lel_etcd_t **out)
{
    if (!o->nendpoints)
        return -EINVAL;
    pthread_once(&curl_once, curl_init_once);
    lel_etcd_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->eps = calloc(o->nendpoints, sizeof(char *)))) {
        free(e);
        return -ENOMEM;
    }
    pthread_mutex_init(&e->lock, NULL);
    for (; e->neps < o->nendpoints; e->neps++) {
        const char *s = o->endpoints[e->neps];
        size_t n = strlen(s);
        while (n && s[n - 1] == '/')
            n--;
        if (!(e->eps[e->neps] = strndup(s, n))) {
            lel_etcd_free(e);
            return -ENOMEM;
        }
    }
    e->cacert = dup_opt(o->cacert);
    e->cert = dup_opt(o->cert);
    e->key = dup_opt(o->key);
    e->user = dup_opt(o->user);
    e->password = dup_opt(o->password);
    e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    *out = e;
    return 0;
}

void lel_etcd_free(lel_etcd_t *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nidle; i++)
        curl_easy_cleanup(e->idle[i]);
    for (size_t i = 0; i < e->neps; i++)
        free(e->eps[i]);
    free(e->eps);
    free(e->cacert);
    free(e->cert);
    free(e->key);
    free(e->user);
    free(e->password);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* ---- encoding ---- */

static char *b64(const void *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* Decodes base64 into a NUL-terminated buffer; *len its bytes. NULL on bad input. */
static char *unb64(const char *in, size_t *len)
{
    size_t n = strlen(in);
    if (n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    if (r < 0) {
        free(out);
        return NULL;
    }
    size_t pad = n >= 1 && in[n - 1] == '=' ? (n >= 2 && in[n - 2] == '=' ? 2 : 1) : 0;
    *len = (size_t)r - pad;
    out[*len] = '\0';
    return out;
}

/* An int64 field: etcd sends strings, accepts both; absent is 0. */
static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static json_t *jstr64(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

static int set_b64(json_t *o, const char *k, const void *v, size_t n)
{
    char *s = b64(v, n);
    if (!s || json_object_set_new(o, k, json_string(s)) < 0) {
        free(s);
        return -ENOMEM;
    }
    free(s);
    return 0;
}

void lel_etcd_prefix_end(const char *prefix, char *out, size_t *outlen)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    while (n && (unsigned char)out[n - 1] == 0xff)
        n--;
    if (!n) { /* every key: etcd's "\0" range end */
        out[0] = '\0';
        *outlen = 1;
        return;
    }
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    *outlen = n;
}

/* Sets key (and range_end for a prefix) on a request object. */
static int set_key(json_t *req, const char *key, int prefix)
{
    if (set_b64(req, "key", key, strlen(key)) < 0)
        return -ENOMEM;
    if (!prefix)
        return 0;
    size_t n = strlen(key) + 1, elen;
    char *end = malloc(n);
    if (!end)
        return -ENOMEM;
    lel_etcd_prefix_end(key, end, &elen);
    int r = set_b64(req, "range_end", end, elen);
    free(end);
    return r;
}

static int parse_kv(json_t *j, struct lel_etcd_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    const char *k = json_string_value(json_object_get(j, "key"));
    const char *v = json_string_value(json_object_get(j, "value"));
    size_t klen;
    if (!k || !(kv->key = unb64(k, &klen)) || !(kv->value = unb64(v ? v : "", &kv->len))) {
        free(kv->key);
        kv->key = NULL;
        return -EPROTO;
    }
    kv->create_rev = jint(j, "create_revision");
    kv->mod_rev = jint(j, "mod_revision");
    kv->version = jint(j, "version");
    kv->lease = jint(j, "lease");
    return 0;
}

static void kv_free(struct lel_etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
}

/* ---- transport ---- */

struct buf {
    char *p;
    size_t n, cap;
};

static size_t buf_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct buf *b = ctx;
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

static CURL *take_handle(lel_etcd_t *e)
{
    CURL *h = NULL;
    pthread_mutex_lock(&e->lock);
    if (e->nidle)
        h = e->idle[--e->nidle];
    pthread_mutex_unlock(&e->lock);
    return h ? h : curl_easy_init();
}

static void give_handle(lel_etcd_t *e, CURL *h)
{
    pthread_mutex_lock(&e->lock);
    if (e->nidle < POOL_MAX) {
        e->idle[e->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&e->lock);
    if (h)
        curl_easy_cleanup(h);
}

static void setup(lel_etcd_t *e, CURL *h, const char *url, const char *body, struct curl_slist *hdrs, struct buf *b)
{
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, e->timeout_ms < 2000 ? e->timeout_ms : 2000L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1); /* the gateway: HTTP/1 only (ETCD.md B3) */
    if (e->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->cacert);
    if (e->cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
    if (e->key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
}

/* What an error answer's gRPC code means to us; 1 in *retry where another member may serve it. */
static int map_error(long http, json_t *j, int *retry, char *err, size_t errlen)
{
    int code = (int)json_integer_value(json_object_get(j, "code"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(j, "error"));
    snprintf(err, errlen, "etcd: %s (HTTP %ld, code %d)", msg ? msg : "unreadable answer", http, code);
    *retry = 0;
    switch (code) {
    case 3:
        return msg && strstr(msg, "too large") ? -E2BIG : msg && strstr(msg, "too many operations") ? -E2BIG : -EINVAL;
    case 4: case 14: case 10: /* deadline, unavailable (no leader, timed out), aborted: another member may serve */
        *retry = 1;
        return -EAGAIN;
    case 5:
        return -ENOENT;
    case 7: case 16:
        return -EACCES;
    case 8:
        return -ENOSPC;
    case 11:
        return msg && strstr(msg, "compacted") ? -ESTALE : -ERANGE;
    default:
        if (http == 503 || http == 502 || http == 504) {
            *retry = 1;
            return -EAGAIN;
        }
        return -EPROTO;
    }
}

static int authenticate(lel_etcd_t *e, const char *base, CURL *h, char *err, size_t errlen);

/* "Authorization: <token>" into buf when authenticated; 0 when there is no token. */
static int auth_header(lel_etcd_t *e, char *buf, size_t n)
{
    pthread_mutex_lock(&e->lock);
    int have = e->token[0] != '\0';
    if (have)
        snprintf(buf, n, "Authorization: %s", e->token);
    pthread_mutex_unlock(&e->lock);
    return have;
}

/* One POST to one endpoint. 0 with *out the answer's first JSON object, or -errno with *retry
 * 1 when another endpoint should be tried. */
static int post_one(lel_etcd_t *e, CURL *h, const char *base, const char *path, const char *body, json_t **out,
                    int *retry, char *err, size_t errlen)
{
    char url[512], auth[600 + 16];
    struct buf b = {0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth_header(e, auth, sizeof(auth)))
        hdrs = curl_slist_append(hdrs, auth);
    snprintf(url, sizeof(url), "%s%s", base, path);
    setup(e, h, url, body, hdrs, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    CURLcode cr = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    *retry = 1;
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "etcd %s: %s", base, curl_easy_strerror(cr));
        free(b.p);
        return -EAGAIN;
    }
    json_error_t je;
    json_t *j = b.p ? json_loadb(b.p, b.n, JSON_DISABLE_EOF_CHECK, &je) : NULL;
    free(b.p);
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(err, errlen, "etcd %s: unreadable answer (HTTP %ld)", base, http);
        *retry = http >= 500;
        return http >= 500 ? -EAGAIN : -EPROTO;
    }
    json_t *inner = json_object_get(j, "error");
    if (http != 200 || (json_is_object(inner) && !json_object_get(j, "result"))) {
        int r = map_error(http, json_is_object(inner) ? inner : j, retry, err, errlen);
        json_decref(j);
        return r;
    }
    *retry = 0;
    *out = j;
    return 0;
}

/* POSTs `req` (consumed) to `path`, failing over across the endpoints. */
static int post(lel_etcd_t *e, const char *path, json_t *req, json_t **out, char *err, size_t errlen)
{
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body)
        return -ENOMEM;
    CURL *h = take_handle(e);
    if (!h) {
        free(body);
        return -ENOMEM;
    }
    int r = -EAGAIN, retry = 1, reauthed = 0;
    unsigned start = atomic_load(&e->cur);
    char why[1024] = "", one[640];
    for (size_t i = 0; i < e->neps && retry; i++) {
        unsigned k = (start + (unsigned)i) % (unsigned)e->neps;
        one[0] = '\0';
        if (e->user && !auth_header(e, one, sizeof(one)) && (r = authenticate(e, e->eps[k], h, one, sizeof(one))) < 0) {
            snprintf(why, sizeof(why), "%s", one);
            continue;
        }
        r = post_one(e, h, e->eps[k], path, body, out, &retry, one, sizeof(one));
        if (r == -EACCES && e->user && !reauthed) { /* the token expired: once more with a new one */
            reauthed = 1;
            pthread_mutex_lock(&e->lock);
            e->token[0] = '\0';
            pthread_mutex_unlock(&e->lock);
            if (authenticate(e, e->eps[k], h, one, sizeof(one)) == 0)
                r = post_one(e, h, e->eps[k], path, body, out, &retry, one, sizeof(one));
        }
        if (r == 0 || !retry)
            atomic_store(&e->cur, k);
        size_t wl = strlen(why); /* what each member said, for the caller's message */
        if (r < 0 && wl + 3 < sizeof(why))
            snprintf(why + wl, sizeof(why) - wl, "%s%s", wl ? "; " : "", one);
    }
    if (r < 0)
        snprintf(err, errlen, "%s", why);
    give_handle(e, h);
    free(body);
    return r;
}

static int authenticate(lel_etcd_t *e, const char *base, CURL *h, char *err, size_t errlen)
{
    json_t *req = json_pack("{s:s, s:s}", "name", e->user, "password", e->password ? e->password : ""), *j = NULL;
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return -ENOMEM;
    int retry;
    int r = post_one(e, h, base, "/v3/auth/authenticate", body, &j, &retry, err, errlen);
    free(body);
    if (r < 0)
        return r;
    const char *tok = json_string_value(json_object_get(j, "token"));
    pthread_mutex_lock(&e->lock);
    snprintf(e->token, sizeof(e->token), "%s", tok ? tok : "");
    pthread_mutex_unlock(&e->lock);
    json_decref(j);
    return tok ? 0 : -EPROTO;
}

/* ---- KV ---- */

static int parse_range(json_t *j, struct lel_etcd_range *out)
{
    json_t *kvs = json_object_get(j, "kvs"), *kv;
    size_t i;
    memset(out, 0, sizeof(*out));
    out->revision = jint(json_object_get(j, "header"), "revision");
    out->more = json_is_true(json_object_get(j, "more"));
    if (!json_array_size(kvs))
        return 0;
    if (!(out->kvs = calloc(json_array_size(kvs), sizeof(*out->kvs))))
        return -ENOMEM;
    json_array_foreach(kvs, i, kv)
    {
        if (parse_kv(kv, &out->kvs[out->n]) < 0) {
            lel_etcd_range_free(out);
            return -EPROTO;
        }
        out->n++;
    }
    return 0;
}

int lel_etcd_range(lel_etcd_t *e, const char *key, int prefix, int64_t limit, int serializable,
                   struct lel_etcd_range *out, char *err, size_t errlen)
{
    json_t *req = json_object(), *j = NULL;
    if (!req || set_key(req, key, prefix) < 0) {
        json_decref(req);
        return -ENOMEM;
    }
    if (limit > 0)
        json_object_set_new(req, "limit", jstr64(limit));
    if (serializable)
        json_object_set_new(req, "serializable", json_true());
    int r = post(e, "/v3/kv/range", req, &j, err, errlen);
    if (r < 0)
        return r;
    r = parse_range(j, out);
    json_decref(j);
    return r;
}

void lel_etcd_range_free(struct lel_etcd_range *r)
{
    for (size_t i = 0; i < r->n; i++)
        kv_free(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof(*r));
}

static json_t *put_req(const char *key, const void *val, size_t len, int64_t lease)
{
    json_t *req = json_object();
    if (!req || set_key(req, key, 0) < 0 || set_b64(req, "value", val, len) < 0) {
        json_decref(req);
        return NULL;
    }
    if (lease)
        json_object_set_new(req, "lease", jstr64(lease));
    return req;
}

int lel_etcd_put(lel_etcd_t *e, const char *key, const void *val, size_t len, int64_t lease, int64_t *rev, char *err,
                 size_t errlen)
{
    json_t *req = put_req(key, val, len, lease), *j = NULL;
    if (!req)
        return -ENOMEM;
    int r = post(e, "/v3/kv/put", req, &j, err, errlen);
    if (r == 0 && rev)
        *rev = jint(json_object_get(j, "header"), "revision");
    json_decref(j);
    return r;
}

int lel_etcd_delete(lel_etcd_t *e, const char *key, int prefix, int64_t *deleted, char *err, size_t errlen)
{
    json_t *req = json_object(), *j = NULL;
    if (!req || set_key(req, key, prefix) < 0) {
        json_decref(req);
        return -ENOMEM;
    }
    int r = post(e, "/v3/kv/deleterange", req, &j, err, errlen);
    if (r == 0 && deleted)
        *deleted = jint(j, "deleted");
    json_decref(j);
    return r;
}

static json_t *txn_req(const struct lel_etcd_cmp *cmps, size_t ncmp, const struct lel_etcd_op *ops, size_t nops)
{
    json_t *req = json_object(), *cmp = json_array(), *succ = json_array();
    if (!req || !cmp || !succ)
        goto fail;
    json_object_set_new(req, "compare", cmp);
    json_object_set_new(req, "success", succ);
    for (size_t i = 0; i < ncmp; i++) {
        json_t *c = json_pack("{s:s, s:s}", "result", "EQUAL", "target", cmps[i].create ? "CREATE" : "MOD");
        if (!c || set_key(c, cmps[i].key, 0) < 0 || json_array_append_new(cmp, c) < 0)
            goto fail;
        json_object_set_new(c, cmps[i].create ? "create_revision" : "mod_revision", jstr64(cmps[i].rev));
    }
    for (size_t i = 0; i < nops; i++) {
        json_t *inner = ops[i].type == LEL_ETCD_PUT ? put_req(ops[i].key, ops[i].val, ops[i].len, ops[i].lease)
                                                    : json_object();
        if (!inner || (ops[i].type != LEL_ETCD_PUT && set_key(inner, ops[i].key, ops[i].type == LEL_ETCD_DEL_PREFIX) < 0)) {
            json_decref(inner);
            goto fail;
        }
        json_t *op = json_pack("{s:o}", ops[i].type == LEL_ETCD_PUT ? "request_put" : "request_delete_range", inner);
        if (!op || json_array_append_new(succ, op) < 0)
            goto fail;
    }
    return req;
fail:
    json_decref(req);
    return NULL;
}

int lel_etcd_txn(lel_etcd_t *e, const struct lel_etcd_cmp *cmps, size_t ncmp, const struct lel_etcd_op *ops,
                 size_t nops, int64_t *rev, char *err, size_t errlen)
{
    if (nops > 128 || ncmp > 128) {
        snprintf(err, errlen, "etcd txn: %zu ops, at most 128", nops);
        return -E2BIG;
    }
    json_t *req = txn_req(cmps, ncmp, ops, nops), *j = NULL;
    if (!req)
        return -ENOMEM;
    int r = post(e, "/v3/kv/txn", req, &j, err, errlen);
    if (r < 0)
        return r;
    if (rev)
        *rev = jint(json_object_get(j, "header"), "revision");
    if (!json_is_true(json_object_get(j, "succeeded"))) { /* absent when false (ETCD.md B3) */
        snprintf(err, errlen, "etcd txn: a comparison failed (a concurrent change)");
        r = -ECANCELED;
    }
    json_decref(j);
    return r;
}

int lel_etcd_compact(lel_etcd_t *e, int64_t rev, char *err, size_t errlen)
{
    json_t *req = json_object(), *j = NULL;
    if (!req)
        return -ENOMEM;
    json_object_set_new(req, "revision", jstr64(rev));
    json_object_set_new(req, "physical", json_true());
    int r = post(e, "/v3/kv/compaction", req, &j, err, errlen);
    json_decref(j);
    return r;
}

/* ---- leases ---- */

int lel_etcd_lease_grant(lel_etcd_t *e, int ttl, int64_t *id, int *granted, char *err, size_t errlen)
{
    json_t *req = json_pack("{s:i}", "TTL", ttl), *j = NULL;
    if (!req)
        return -ENOMEM;
    int r = post(e, "/v3/lease/grant", req, &j, err, errlen);
    if (r < 0)
        return r;
    *id = jint(j, "ID");
    if (granted)
        *granted = (int)jint(j, "TTL");
    json_decref(j);
    if (!*id) {
        snprintf(err, errlen, "etcd lease grant: no ID in the answer");
        return -EPROTO;
    }
    return 0;
}

int lel_etcd_lease_keepalive(lel_etcd_t *e, int64_t id, int *ttl, char *err, size_t errlen)
{
    json_t *req = json_object(), *j = NULL;
    if (!req)
        return -ENOMEM;
    json_object_set_new(req, "ID", jstr64(id));
    int r = post(e, "/v3/lease/keepalive", req, &j, err, errlen);
    if (r < 0)
        return r;
    int t = (int)jint(json_object_get(j, "result"), "TTL");
    json_decref(j);
    if (ttl)
        *ttl = t;
    if (t <= 0) { /* an expired or revoked lease still answers 200, without TTL (ETCD.md B5) */
        snprintf(err, errlen, "etcd: lease %lld is gone (expired or revoked)", (long long)id);
        return -ENOENT;
    }
    return 0;
}

int lel_etcd_lease_revoke(lel_etcd_t *e, int64_t id, char *err, size_t errlen)
{
    json_t *req = json_object(), *j = NULL;
    if (!req)
        return -ENOMEM;
    json_object_set_new(req, "ID", jstr64(id));
    int r = post(e, "/v3/lease/revoke", req, &j, err, errlen);
    json_decref(j);
    return r;
}

/* ---- watch ---- */

struct watch {
    struct buf b;
    size_t scan, start; /* scanner position and where the current object began */
    int depth, in_str, esc;
    lel_etcd_watch_cb cb;
    void *ctx;
    const volatile int *stop;
    int result; /* 1: created seen; set <0 / 2 to end */
    int r;
    int64_t compact;
};

static int watch_events(struct watch *w, json_t *res)
{
    json_t *evs = json_object_get(res, "events"), *ev;
    size_t n = json_array_size(evs), i, got = 0;
    if (!n)
        return 0;
    struct lel_etcd_event *e = calloc(n, sizeof(*e));
    if (!e)
        return -ENOMEM;
    int r = 0;
    json_array_foreach(evs, i, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        e[got].deleted = type && !strcmp(type, "DELETE"); /* a PUT has no type (ETCD.md B3) */
        if (parse_kv(json_object_get(ev, "kv"), &e[got].kv) < 0) {
            r = -EPROTO;
            break;
        }
        got++;
    }
    if (r == 0 && w->cb(w->ctx, e, got, jint(json_object_get(res, "header"), "revision")))
        r = 1;
    for (i = 0; i < got; i++)
        kv_free(&e[i].kv);
    free(e);
    return r;
}

/* One streamed message. Returns 0 to go on, non-zero to end (w->r says how). */
static int watch_message(struct watch *w, const char *p, size_t n)
{
    json_t *j = json_loadb(p, n, 0, NULL);
    json_t *res = json_object_get(j, "result");
    int r = 0;
    if (!json_is_object(res)) {
        w->r = -EAGAIN; /* an in-stream error: the caller re-reads and watches again */
        r = 1;
    } else if (json_is_true(json_object_get(res, "canceled"))) {
        w->compact = jint(res, "compact_revision");
        w->r = w->compact ? -ESTALE : -EAGAIN;
        r = 1;
    } else if ((r = watch_events(w, res)) != 0) {
        w->r = r < 0 ? r : 0;
    }
    json_decref(j);
    return r;
}

/* Splits the de-chunked stream into top-level JSON objects by brace depth (no reliance on one
 * chunk or one line per message: ETCD.md B5). */
static size_t watch_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct watch *w = ctx;
    size_t n = size * nmemb;
    if (buf_write(data, size, nmemb, &w->b) != n)
        return 0;
    for (; w->scan < w->b.n; w->scan++) {
        char ch = w->b.p[w->scan];
        if (w->in_str) {
            w->esc = !w->esc && ch == '\\';
            if (!w->esc && ch == '"')
                w->in_str = 0;
            continue;
        }
        if (ch == '"' && w->depth > 0)
            w->in_str = 1;
        else if (ch == '{' && w->depth++ == 0)
            w->start = w->scan;
        else if (ch == '}' && w->depth > 0 && --w->depth == 0 &&
                 watch_message(w, w->b.p + w->start, w->scan + 1 - w->start))
            return 0; /* ends the transfer */
    }
    if (w->depth == 0) { /* nothing pending: drop what was consumed */
        w->b.n = w->scan = 0;
    } else if (w->start > 0) { /* keep only the object in progress */
        memmove(w->b.p, w->b.p + w->start, w->b.n - w->start);
        w->b.n -= w->start;
        w->scan -= w->start;
        w->start = 0;
    }
    return n;
}

static int watch_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct watch *w = ctx;
    return w->stop && *w->stop;
}

int lel_etcd_watch(lel_etcd_t *e, const char *prefix, int64_t start, lel_etcd_watch_cb cb, void *ctx,
                   const volatile int *stop, char *err, size_t errlen)
{
    json_t *cr = json_object();
    if (!cr || set_key(cr, prefix, 1) < 0) {
        json_decref(cr);
        return -ENOMEM;
    }
    if (start > 0)
        json_object_set_new(cr, "start_revision", jstr64(start));
    json_t *req = json_pack("{s:o}", "create_request", cr);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    CURL *h = curl_easy_init();
    if (!body || !h) {
        free(body);
        curl_easy_cleanup(h);
        return -ENOMEM;
    }
    unsigned k = atomic_load(&e->cur) % (unsigned)e->neps;
    char url[512], auth[600 + 16];
    struct watch w = {.cb = cb, .ctx = ctx, .stop = stop, .r = -EAGAIN};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth_header(e, auth, sizeof(auth)))
        hdrs = curl_slist_append(hdrs, auth);
    snprintf(url, sizeof(url), "%s/v3/watch", e->eps[k]);
    setup(e, h, url, body, hdrs, &w.b);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
    CURLcode c = curl_easy_perform(h);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(body);
    free(w.b.p);
    if (stop && *stop)
        return -EINTR;
    if (c == CURLE_OK || w.r != -EAGAIN || c == CURLE_WRITE_ERROR) {
        if (w.r == -ESTALE)
            snprintf(err, errlen, "etcd watch: revision %lld was compacted (at %lld)", (long long)start,
                     (long long)w.compact);
        else if (w.r < 0)
            snprintf(err, errlen, "etcd watch on %s ended (HTTP %ld)", e->eps[k], http);
        return w.r;
    }
    snprintf(err, errlen, "etcd watch on %s: %s", e->eps[k], curl_easy_strerror(c));
    atomic_store(&e->cur, (k + 1) % (unsigned)e->neps); /* the next try goes to another member */
    return -EAGAIN;
}
