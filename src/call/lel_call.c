/* The request object's helpers, for every component that answers calls: errors and replies,
 * query parameters, body fields, the hand-off to an actor. Any thread (the call's owner). */
#include "lel_call.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lel_call_error(lel_call_t *c, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lel_call_reply(c, status, json_pack("{s:s, s:i, s:s}", "error", msg, "code", status, "message", msg));
}

void lel_call_reply(lel_call_t *c, int status, json_t *body)
{
    json_decref(c->resp);
    c->resp = body;
    c->status = status;
}

void lel_call_proxy(lel_call_t *c, int fd, int port)
{
    c->proxy_fd = fd;
    c->proxy_port = port;
    c->status = 200;
}

int lel_call_proxy_node(lel_call_t *c, int fd, const char *node, const char *secret)
{
    char *n = strdup(node), *s = strdup(secret);
    if (!n || !s) {
        free(n);
        free(s);
        close(fd);
        return -ENOMEM;
    }
    c->fwd_node = n;
    c->fwd_secret = s;
    lel_call_proxy(c, fd, 0);
    return 0;
}

char *lel_call_query(const lel_call_t *c, const char *name)
{
    size_t len;
    return lel_call_query_len(c, name, &len);
}

char *lel_call_query_len(const lel_call_t *c, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *p = c->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= nlen && !strncmp(p, name, nlen) && (len == nlen || p[nlen] == '=')) {
            char *v = len > nlen ? strndup(p + nlen + 1, len - nlen - 1) : strdup("");
            long n = v ? lel_url_decode(v) : 0;
            if (n < 0) {
                free(v);
                return NULL;
            }
            *vlen = (size_t)n;
            return v;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

void lel_call_store_failed(lel_call_t *c, int r)
{
    if (r == -ENOSPC)
        lel_call_error(c, 507, "insufficient storage: the data directory is full; nothing was changed");
    else
        lel_call_error(c, 500, "storage error; nothing was changed");
}

int lel_call_int_field(lel_call_t *c, const char *name, long long min, long long max, long long *out)
{
    json_t *v = c->json ? json_object_get(c->json, name) : NULL;
    if (!v || json_is_null(v))
        return 0;
    long long n;
    if (json_is_integer(v))
        n = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v))
        n = (long long)json_real_value(v);
    else {
        lel_call_error(c, 400, "invalid field '%s': must be an integer", name);
        return -EINVAL;
    }
    if (n < min || n > max) {
        lel_call_error(c, 400, "invalid field '%s': must be between %lld and %lld", name, min, max);
        return -EINVAL;
    }
    *out = n;
    return 1;
}

int lel_call_str_field(lel_call_t *c, const char *name, size_t maxlen, const char **out)
{
    json_t *v = c->json ? json_object_get(c->json, name) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        lel_call_error(c, 400, "invalid field '%s': must be a string", name);
        return -EINVAL;
    }
    if (json_string_length(v) > maxlen) {
        lel_call_error(c, 400, "invalid field '%s': longer than %zu bytes", name, maxlen);
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 1;
}

void lel_call_send(lel_actor_t *a, lel_call_t *c)
{
    lel_msg_t *m = lel_msg_new(LEL_MSG_CALL, 0, c);
    if (!m || lel_actor_send(a, m) < 0) {
        lel_msg_free(m);
        lel_call_error(c, 503, "service is shutting down or out of memory");
        lel_call_done(c);
    }
}

