/* Fuzz target: an HTTP/1 request as the router sees it, without sockets. The bytes are a request
 * head and body: parsed by the parser the gate and h2o run (picohttpparser), turned into a call
 * the way the frontend fills one (method, raw path and query, the credential and E2B headers,
 * content type), then routed (port, data-plane and table routes), its parameters decoded, its
 * body decoded and mapped from E2B's shapes (lel__api_route_decode), and the query read as the
 * handlers read it. Credentials and rate limits need the store and are not reached here. */
#include "api/lel_api_int.h"
#include "http/lel_phr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hname(const struct phr_header *h, const char *name)
{
    return h->name && h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

static enum lel_method method_of(const char *m, size_t len)
{
    static const char *const t[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (len == strlen(t[i]) && !memcmp(m, t[i], len))
            return (enum lel_method)(LEL_M_GET + i);
    return LEL_M_OTHER;
}

static void free_call(lel_call_t *c)
{
    char **s[] = {&c->path, &c->query, &c->body, &c->api_key, &c->bearer, &c->admin_token, &c->team_header,
                  &c->e2b_sandbox, &c->e2b_port, &c->host, &c->access_token, &c->traffic_token, &c->content_type,
                  &c->id, &c->id2, &c->proxy_path, &c->proxy_host, &c->next_token, &c->raw};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        free(*s[i]);
    json_decref(c->json);
    json_decref(c->resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lel_config_t cfg;
    static int ready;
    if (!ready) {
        if (lel_config_init(&cfg) != 0)
            abort();
        ready = 1;
    }
    const char *method, *path;
    size_t mlen, plen, nh = 100;
    int minor;
    struct phr_header hs[100];
    int hl = phr_parse_request((const char *)data, size, &method, &mlen, &path, &plen, &minor, hs, &nh, 0);
    if (hl <= 0)
        return 0;
    lel_call_t c;
    memset(&c, 0, sizeof(c));
    c.rl_limit = c.rl_remaining = c.rl_reset = c.retry_after = -1;
    c.declared_len = UINT64_MAX;
    c.proxy_fd = -1;
    c.method = method_of(method, mlen);
    const char *q = memchr(path, '?', plen);
    c.path = strndup(path, q ? (size_t)(q - path) : plen);
    c.query = q ? strndup(q + 1, plen - (size_t)(q - path) - 1) : NULL;
    for (size_t i = 0; i < nh; i++) {
        char **dst = hname(&hs[i], "x-api-key")                  ? &c.api_key
                   : hname(&hs[i], "authorization")              ? &c.bearer
                   : hname(&hs[i], "x-admin-token")              ? &c.admin_token
                   : hname(&hs[i], "x-team-id")                  ? &c.team_header
                   : hname(&hs[i], "e2b-sandbox-id")             ? &c.e2b_sandbox
                   : hname(&hs[i], "e2b-sandbox-port")           ? &c.e2b_port
                   : hname(&hs[i], "x-access-token")             ? &c.access_token
                   : hname(&hs[i], "e2b-traffic-access-token")   ? &c.traffic_token
                   : hname(&hs[i], "content-type")               ? &c.content_type
                   : hname(&hs[i], "host")                       ? &c.host
                                                                 : NULL;
        if (dst && !*dst)
            *dst = strndup(hs[i].value, hs[i].value_len);
    }
    c.body_msgpack = c.content_type && strstr(c.content_type, "application/msgpack") != NULL;
    size_t blen = size - (size_t)hl;
    if (blen && (c.body = malloc(blen + 1))) { /* the frontend's copy: NUL-terminated */
        memcpy(c.body, data + hl, blen);
        c.body[blen] = 0;
        c.body_len = blen;
        c.declared_len = blen;
    }
    snprintf(c.peer, sizeof(c.peer), "127.0.0.1");
    if (c.path && lel__api_route_decode(&cfg, &c) == 0) {
        static const char *const names[] = {"limit", "nextToken", "path", "username", "state", "metadata", "format"};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            size_t len;
            free(lel_call_query_len(&c, names[i], &len));
        }
        long long n;
        const char *s;
        (void)lel_call_int_field(&c, "timeout", 0, 86400, &n);
        (void)lel_call_str_field(&c, "templateID", 256, &s);
    }
    free_call(&c);
    return 0;
}
