/* Requests for a server in a sandbox, told from the API's own by their form: a Host
 * <port>-<sandboxID>.<domain> (E2B's getHost), E2B's headers E2b-Sandbox-Id with
 * E2b-Sandbox-Port, or the path /sandboxes/{id}/ports/{port}/<rest> for clients without
 * wildcard DNS (authenticated with the API key). Port 49983 of the first two forms is envd's
 * (lel_api_e2b.c). The request then goes to the sandbox's actor, which forwards it. */
#include "lel_api_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ENVD_PORT 49983

/* A port number of 1..65535 from digits [s, e). 0 when it is not one. */
static int port_of(const char *s, const char *e)
{
    long v = 0;
    if (e <= s || e - s > 5)
        return 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : 0;
}

static int id_ok(const char *s, size_t n)
{
    if (n != LEL_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* The request's own path and query, to send on as they came. */
static char *path_and_query(const lel_call_t *c, const char *path)
{
    size_t pl = strlen(path), ql = c->query ? strlen(c->query) : 0;
    char *s = malloc(pl + ql + 3);
    if (!s)
        return NULL;
    memcpy(s, *path ? path : "/", *path ? pl : 1);
    size_t n = *path ? pl : 1;
    if (c->query) {
        s[n++] = '?';
        memcpy(s + n, c->query, ql);
        n += ql;
    }
    s[n] = 0;
    return s;
}

static int set(lel_call_t *c, const char *id, size_t idlen, int port, const char *path, int route)
{
    free(c->id);
    free(c->proxy_path);
    c->id = strndup(id, idlen);
    c->proxy_path = path_and_query(c, path);
    c->proxy_port = port;
    c->route = route;
    if (!c->id || !c->proxy_path) {
        lel_call_error(c, 503, "out of memory");
        return 503;
    }
    return 1;
}

/* /sandboxes/{id}/ports/{port}[/rest] */
static int path_form(lel_call_t *c)
{
    const char *p = c->path;
    if (strncmp(p, "/sandboxes/", 11))
        return 0;
    const char *id = p + 11, *slash = strchr(id, '/');
    if (!slash || strncmp(slash, "/ports/", 7))
        return 0;
    const char *ps = slash + 7, *pe = strchr(ps, '/');
    pe = pe ? pe : ps + strlen(ps);
    int port = port_of(ps, pe);
    if (!port) {
        lel_call_error(c, 400, "invalid port in %s: must be 1..65535", c->path);
        return 400;
    }
    if (!id_ok(id, (size_t)(slash - id))) {
        lel_call_error(c, 404, "sandbox not found");
        return 404;
    }
    return set(c, id, (size_t)(slash - id), port, pe, R_SBX_PORT);
}

int lel__api_port_match(lel_call_t *c, int *keyed)
{
    *keyed = 0;
    const char *h = c->host;
    const char *dash = h ? strchr(h, '-') : NULL, *dot = dash ? strchr(dash, '.') : NULL;
    if (dot && !c->e2b_sandbox) { /* <port>-<id>.<domain> */
        int port = port_of(h, dash);
        if (port && port != ENVD_PORT && id_ok(dash + 1, (size_t)(dot - dash - 1)))
            return set(c, dash + 1, LEL_ID_LEN, port, c->path, R_PORT_PUBLIC);
    }
    if (c->e2b_sandbox && c->e2b_port) {
        int port = port_of(c->e2b_port, c->e2b_port + strlen(c->e2b_port));
        if (port && port != ENVD_PORT) {
            if (!id_ok(c->e2b_sandbox, strlen(c->e2b_sandbox))) {
                lel_call_error(c, 404, "sandbox not found");
                return 404;
            }
            return set(c, c->e2b_sandbox, strlen(c->e2b_sandbox), port, c->path, R_PORT_PUBLIC);
        }
    }
    int r = path_form(c);
    *keyed = r == 1;
    return r;
}
