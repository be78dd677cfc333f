/* The API layer on the loop thread: route, authenticate, rate-limit, decode, then hand the
 * call to the actor that owns the data. Everything here is cheap and never blocks on I/O
 * except the key index lookup (in memory). */
#include "lel_api_int.h"

#include "../cluster/lel_cluster.h"
#include "../cluster/lel_cluster_fwd.h"
#include "../cluster/lel_cluster_kv.h"
#include "../image/lel_image.h"
#include "../sandbox/lel_sandbox.h"
#include "../team/lel_team.h"
#include "../template/lel_template.h"
#include "../template/lel_template_travel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <strings.h>

enum cls { PUBLIC = 0, GENERAL, AUTHEP, ADMIN, ENVD, PORT, METRICS, NODE };

struct route_def {
    const char *pattern; /* '*' segments are parameters */
    enum cls cls;
    int get, post, put, del;
};

static const struct route_def routes[] = {
    {"/health", PUBLIC, R_HEALTH, 0, 0, 0},
    {"/openapi.json", PUBLIC, R_OPENAPI, 0, 0, 0},
    {"/docs", PUBLIC, R_DOCS, 0, 0, 0},
    {"/docs/*", PUBLIC, R_DOCS_ASSET, 0, 0, 0},
    {"/metrics", METRICS, R_METRICS, 0, 0, 0},
    {"/admin/teams", ADMIN, 0, R_ADMIN_TEAMS, 0, 0},
    {"/cluster/nodes", ADMIN, R_CLUSTER_NODES, 0, 0, 0},
    {"/admin/teams/*/limits", ADMIN, 0, 0, R_ADMIN_TEAM_LIMITS, 0},
    {"/admin/backup", ADMIN, 0, R_ADMIN_BACKUP, 0, 0},
    {"/api-keys", AUTHEP, R_KEYS_LIST, R_KEYS_CREATE, 0, 0},
    {"/api-keys/*", AUTHEP, 0, 0, 0, R_KEY_DELETE},
    {"/teams", GENERAL, R_TEAM_GET, 0, 0, 0},
    {"/teams/members", AUTHEP, R_MEMBERS_LIST, R_MEMBERS_CREATE, 0, 0},
    {"/teams/members/*", AUTHEP, 0, 0, 0, R_MEMBER_DELETE},
    {"/sandboxes", GENERAL, R_SBX_LIST, R_SBX_CREATE, 0, 0},
    {"/v2/sandboxes", GENERAL, R_SBX_LIST, R_SBX_CREATE, 0, 0},
    {"/v2/sandboxes/*/connect", GENERAL, 0, R_SBX_CONNECT, 0, 0},
    {"/sandboxes/*", GENERAL, R_SBX_GET, 0, 0, R_SBX_KILL},
    {"/sandboxes/*/pause", GENERAL, 0, R_SBX_PAUSE, 0, 0},
    {"/sandboxes/*/resume", GENERAL, 0, R_SBX_RESUME, 0, 0},
    {"/sandboxes/*/connect", GENERAL, 0, R_SBX_CONNECT, 0, 0},
    {"/sandboxes/*/timeout", GENERAL, 0, R_SBX_TIMEOUT, 0, 0},
    {"/sandboxes/*/refresh", GENERAL, 0, R_SBX_REFRESH, 0, 0},
    {"/sandboxes/*/refreshes", GENERAL, 0, R_SBX_REFRESH, 0, 0},
    {"/sandboxes/*/logs", GENERAL, R_SBX_LOGS, 0, 0, 0},
    {"/sandboxes/*/metrics", GENERAL, R_SBX_METRICS, 0, 0, 0},
    {"/sandboxes/*/snapshot", GENERAL, 0, R_SBX_SNAPSHOT, 0, 0},
    {"/sandboxes/*/restore", GENERAL, 0, R_SBX_RESTORE, 0, 0},
    {"/sandboxes/*/commands", GENERAL, 0, R_SBX_COMMANDS, 0, 0},
    {"/sandboxes/*/files", GENERAL, R_SBX_FILES_GET, 0, R_SBX_FILES_PUT, R_SBX_FILES_DELETE},
    {"/sandboxes/*/network", GENERAL, R_SBX_NETWORK, 0, R_SBX_NETWORK, 0},
    {"/sandboxes/*/snapshots", GENERAL, 0, R_SBX_SNAPSHOTS, 0, 0},
    {"/sandboxes/*/fork", GENERAL, 0, R_SBX_FORK, 0, 0},
    {"/snapshots", GENERAL, R_SNAP_LIST, 0, 0, 0},
    {"/snapshots/*", GENERAL, 0, 0, 0, R_SNAP_DELETE},
    {"/templates", GENERAL, R_TPL_LIST, R_TPL_CREATE, 0, 0},
    {"/templates/tags", GENERAL, 0, R_TPL_TAGS_ADD, 0, R_TPL_TAGS_DEL}, /* E2B's; before the next */
    {"/templates/*", GENERAL, R_TPL_GET, R_TPL_REBUILD, 0, R_TPL_DELETE},
    {"/templates/*/builds/*", GENERAL, R_TPL_BUILD, 0, 0, 0},
    {"/templates/*/builds/*/status", GENERAL, R_TPL_BUILD_STATUS, 0, 0, 0},
    {"/templates/*/files/*", GENERAL, R_TPL_FILES, 0, R_TPL_FILES_PUT, 0}, /* the PUT: its URL's token, no key */
    {"/templates/*/tags", GENERAL, R_TPL_TAGS_GET, 0, 0, 0},
    {"/templates/aliases/*", GENERAL, R_TPL_ALIAS, 0, 0, 0},
    {"/v3/templates", GENERAL, 0, R_TPL_E2B_CREATE, 0, 0},
    {"/v2/templates/*/builds/*", GENERAL, 0, R_TPL_E2B_BUILD, 0, 0},
    {"/templates/*/context", GENERAL, 0, 0, R_TPL_CONTEXT, 0},
    {"/images", GENERAL, R_IMG_LIST, 0, 0, 0},
    {"/images/*", GENERAL, R_IMG_GET, 0, R_IMG_PUT, R_IMG_DELETE},
};

size_t lel__api_route_count(void)
{
    return sizeof(routes) / sizeof(routes[0]);
}

int lel__api_route_at(size_t i, const char **pattern, unsigned *methods)
{
    if (i == sizeof(routes) / sizeof(routes[0])) { /* the path form of a sandbox's port (lel_api_port.c) */
        *pattern = "/sandboxes/*/ports/*/**";
        *methods = LEL_API_GET | LEL_API_POST | LEL_API_PUT | LEL_API_DELETE | LEL_API_PATCH;
        return 0;
    }
    if (i > sizeof(routes) / sizeof(routes[0]))
        return -ENOENT;
    const struct route_def *r = &routes[i];
    *pattern = r->pattern;
    *methods = (r->get ? LEL_API_GET : 0) | (r->post ? LEL_API_POST : 0) | (r->put ? LEL_API_PUT : 0) |
               (r->del ? LEL_API_DELETE : 0);
    return 0;
}

/* The Allow header of a route: bit 0 GET, 1 POST, 2 PUT, 3 DELETE. */
static const char *allow_of(const struct route_def *r)
{
    static const char *const s[16] = {"", "GET", "POST", "GET, POST", "PUT", "GET, PUT", "POST, PUT",
                                      "GET, POST, PUT", "DELETE", "GET, DELETE", "POST, DELETE", "GET, POST, DELETE",
                                      "PUT, DELETE", "GET, PUT, DELETE", "POST, PUT, DELETE", "GET, POST, PUT, DELETE"};
    return s[(r->get != 0) | (r->post != 0) << 1 | (r->put != 0) << 2 | (r->del != 0) << 3];
}

/* Matches the raw path (as sent, so no percent-encoding can change which route it is) against
 * the table; fills c->route/id/id2, each parameter decoded after the match. Returns 0 or the
 * status of the error it set (404, 405 with Allow). */
static int match(lel_call_t *c, enum cls *cls)
{
    const char *path = c->path;
    size_t plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/') /* tolerate one trailing slash */
        plen--;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *p = routes[i].pattern, *s = path, *send = path + plen;
        const char *params[2] = {0}, *pend[2] = {0};
        int np = 0, ok = 1;
        while (*p && ok) {
            if (*p == '*') {
                const char *e = memchr(s, '/', (size_t)(send - s));
                e = e ? e : send;
                if (e == s || np == 2)
                    ok = 0;
                else {
                    params[np] = s;
                    pend[np++] = e;
                    s = e;
                    p++;
                }
            } else if (s < send && *p == *s) {
                p++;
                s++;
            } else {
                ok = 0;
            }
        }
        if (!ok || s != send)
            continue;
        const struct route_def *r = &routes[i];
        int route = c->method == LEL_M_GET ? r->get : c->method == LEL_M_POST ? r->post : c->method == LEL_M_PUT ? r->put
                  : c->method == LEL_M_DELETE ? r->del : 0;
        if (!route) {
            c->allow = allow_of(r);
            lel_call_error(c, 405, "method not allowed on %s (allowed: %s)", c->path, c->allow);
            return 405;
        }
        c->route = route;
        c->route_slot = 1 + (int)i * 4 + (c->method == LEL_M_GET ? 0 : c->method == LEL_M_POST ? 1 : c->method == LEL_M_PUT ? 2 : 3);
        *cls = r->cls;
        free(c->id);
        free(c->id2);
        c->id = np > 0 ? strndup(params[0], (size_t)(pend[0] - params[0])) : NULL;
        c->id2 = np > 1 ? strndup(params[1], (size_t)(pend[1] - params[1])) : NULL;
        /* a parameter that decodes to something with a NUL or a '/' names nothing that exists */
        if ((np > 0 && (!c->id || lel_url_decode(c->id) < 0)) || (np > 1 && (!c->id2 || lel_url_decode(c->id2) < 0))) {
            lel_call_error(c, 404, "no such endpoint: %s", c->path);
            return 404;
        }
        return 0;
    }
    lel_call_error(c, 404, "no such endpoint: %s", c->path);
    return 404;
}

static int rate_limit(lel_server_t *srv, lel_call_t *c, const char *bucket, double rate)
{
    struct lel_rl_info info;
    if (c->from_node)
        return 0; /* the node that forwarded it counted it */
    /* cluster mode: each node enforces its share of a key's limit (README "Cluster mode"), so
     * requests spread over the live nodes get the whole limit without a round trip to etcd */
    if (srv->cluster)
        rate /= lel_cluster_live(srv->cluster);
    int ok = lel_ratelimit_check(srv->rl, bucket, rate, 1, lel_mono_ms(), &info);
    c->rl_limit = info.limit;
    c->rl_remaining = info.remaining;
    c->rl_reset = info.reset;
    if (ok > 0)
        return 0;
    lel__api_stats_rate_limited(srv, bucket);
    c->retry_after = ok == 0 ? info.retry_after : 1;
    lel_call_error(c, 429, "rate limit exceeded");
    return -EAGAIN;
}

/* A failed authentication costs the client address a token of the auth rate; past it, 429. */
static void auth_failed(lel_server_t *srv, lel_call_t *c)
{
    char bucket[96];
    json_t *keep = c->resp;
    int status = c->status;
    c->resp = NULL;
    snprintf(bucket, sizeof(bucket), "fail:%s", c->peer);
    if (rate_limit(srv, c, bucket, srv->cfg.rate_auth) == 0) {
        lel_call_reply(c, status, keep);
        c->rl_limit = c->rl_remaining = c->rl_reset = -1;
    } else {
        json_decref(keep);
    }
}

static int decode_body(lel_server_t *srv, lel_call_t *c);

int lel__api_route_decode(const lel_config_t *cfg, lel_call_t *c)
{
    int keyed;
    enum cls cls = PUBLIC;
    int r = lel__api_port_match(c, &keyed);
    if (r)
        return r > 1 ? r : 0; /* a port's body is the sandbox server's, never decoded */
    if (lel__api_envd_wants(c))
        return lel__api_envd_match(c); /* the data plane's bodies are read by src/envd */
    if ((r = match(c, &cls)) || cls == PUBLIC)
        return r;
    lel_server_t srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = *cfg; /* decode_body reads only the limits */
    if (decode_body(&srv, c) < 0 || lel__api_e2b_body(c) < 0)
        return c->status;
    return 0;
}

static int decode_body(lel_server_t *srv, lel_call_t *c)
{
    if (c->body_in) /* arrives in pieces; its limit is kept as it comes */
        return 0;
    if (c->route == R_SBX_FILES_PUT) {
        if (c->body_len > srv->cfg.max_file_bytes) {
            lel_call_error(c, 413, "file larger than %zu bytes", srv->cfg.max_file_bytes);
            return -E2BIG;
        }
        return 0;
    }
    if (c->route == R_IMG_PUT || c->route == R_TPL_CONTEXT || c->route == R_TPL_FILES_PUT) /* raw bytes; whole here only when pipelined, so under max_body_bytes */
        return 0;
    if (c->body_len > srv->cfg.max_body_bytes) {
        lel_call_error(c, 413, "request body larger than %zu bytes", srv->cfg.max_body_bytes);
        return -E2BIG;
    }
    if (!c->body_len)
        return 0;
    char err[160];
    if (lel_codec_decode(c->body, c->body_len, c->body_msgpack ? LEL_FMT_MSGPACK : LEL_FMT_JSON, &c->json, err,
                         sizeof(err)) < 0) {
        lel_call_error(c, 400, "invalid body: %s", err);
        return -EINVAL;
    }
    if (!json_is_object(c->json)) {
        lel_call_error(c, 400, "invalid body: expected an object");
        return -EINVAL;
    }
    return 0;
}

static void actor_ref(void *a, void *ctx)
{
    (void)ctx;
    lel_actor_ref(a);
}

/* Cluster mode: a sandbox another node owns (the catalog says which): the call goes on to that
 * node, streamed (lel_cluster_forward). A keyed call must be for a sandbox of the caller's
 * team; a port's public form and envd's data plane carry their own tokens, which the owner
 * judges. With the node gone, GET answers the record (state "lost") and anything else 503.
 * 1 when the call was taken. */
static int to_owner(lel_server_t *srv, lel_call_t *c)
{
    int own_creds = c->route == R_PORT_PUBLIC || LEL_ROUTE_IS_ENVD(c->route);
    if (!srv->shared || c->from_node || !c->id || (!c->team && !own_creds))
        return 0;
    json_t *rec = lel_cluster_kv_remote(srv->shared, c->id);
    const char *team = json_string_value(json_object_get(rec, "teamID"));
    const char *node = json_string_value(json_object_get(rec, "node"));
    char url[256];
    if (!rec || !node || (c->team && (!team || strcmp(team, c->team->id)))) {
        json_decref(rec);
        return 0; /* 404 */
    }
    if (lel_cluster_node_url(srv->cluster, node, url, sizeof(url))) {
        lel_cluster_forward(srv->fwd, c, node, url);
    } else if (c->route == R_SBX_GET) {
        lel_call_reply(c, 200, lel_sandbox_remote_view(srv, rec));
        lel_call_done(c);
    } else if (c->route == R_SBX_KILL && lel_cluster_kv_kill_away(srv->shared, c, rec) == 0) {
        /* recorded in the catalog; its node cleans it up when it is back */
    } else {
        lel_call_error(c, 503, "cluster: sandbox %s was on node '%s', which is gone (its lease expired)", c->id, node);
        lel_call_done(c);
    }
    json_decref(rec);
    return 1;
}

/* Cluster mode: a data-plane call for a sandbox this node does not run but another does. 1 when
 * the call was taken. */
static int to_remote_envd(lel_server_t *srv, lel_call_t *c)
{
    if (!srv->shared || c->from_node)
        return 0;
    lel_actor_t *a = lel_registry_get(srv->sandboxes, c->id, actor_ref, NULL);
    if (a) {
        lel_actor_unref(a);
        return 0;
    }
    return to_owner(srv, c);
}

/* Cluster mode: a create placed on another node goes there. 1 when the call was taken. */
static int to_placed(lel_server_t *srv, lel_call_t *c)
{
    char name[128], url[256];
    const char *tpl = json_string_value(json_object_get(c->json, "templateID"));
    if (!srv->cluster || c->from_node || !c->team ||
        lel_cluster_place(srv->cluster, c->team->id, tpl ? tpl : "base", name, sizeof(name), url, sizeof(url)))
        return 0;
    lel_cluster_forward(srv->fwd, c, name, url);
    return 1;
}

/* Sends to the sandbox/template actor named by c->id if it belongs to the caller's team. */
static void to_entity(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, const char *what)
{
    lel_actor_t *a = NULL;
    if (reg == srv->templates)
        a = lel_template_lookup(srv, c->team, c->id);
    else
        a = lel_registry_get(reg, c->id, actor_ref, NULL);
    if (!a && reg == srv->sandboxes && to_owner(srv, c))
        return;
    if (!a) {
        lel_call_error(c, 404, "%s not found", what);
        lel_call_done(c);
        return;
    }
    /* ownership is checked inside the actor, which knows its team */
    lel_call_send(a, c);
    lel_actor_unref(a);
}

/* Creating something needs etcd in cluster mode: a node that lost it says so (503) and goes on
 * serving what it runs. 1 when the call was answered. */
static int refuse_create(lel_server_t *srv, lel_call_t *c)
{
    char why[512];
    switch (c->route) {
    case R_SBX_CREATE: case R_SBX_FORK: case R_TPL_CREATE: case R_TPL_E2B_CREATE: case R_TPL_REBUILD: case R_ADMIN_TEAMS:
    case R_KEYS_CREATE: case R_MEMBERS_CREATE:
        break;
    default:
        return 0;
    }
    if (!srv->cluster || lel_cluster_writable(srv->cluster, why, sizeof(why)))
        return 0;
    c->retry_after = 1;
    lel_call_error(c, 503, "cluster: this node lost etcd (%s); creates are refused until it is back", why);
    lel_call_done(c);
    return 1;
}

static void cluster_nodes(lel_server_t *srv, lel_call_t *c)
{
    if (!srv->cluster)
        lel_call_error(c, 404, "cluster mode is off (cluster.etcd is empty)");
    else
        lel_call_reply(c, 200, lel_cluster_nodes(srv->cluster));
    lel_call_done(c);
}

static void route_call(lel_server_t *srv, lel_call_t *c)
{
    if (refuse_create(srv, c))
        return;
    switch (c->route) {
    case R_CLUSTER_NODES:
        cluster_nodes(srv, c);
        return;
    case R_SBX_CREATE: /* placed here: a template another node has is fetched first */
        if (!to_placed(srv, c) && !lel_template_fetch(srv, c, lel_sandbox_create))
            lel_sandbox_create(srv, c);
        return;
    case R_SBX_GET:
        if (lel_sandbox_fast_get(srv, c))
            return;
        /* fall through */
    case R_SBX_KILL: case R_SBX_PAUSE: case R_SBX_RESUME: case R_SBX_CONNECT:
    case R_SBX_TIMEOUT: case R_SBX_REFRESH: case R_SBX_LOGS: case R_SBX_METRICS: case R_SBX_SNAPSHOT:
    case R_SBX_RESTORE: case R_SBX_COMMANDS: case R_SBX_FILES_PUT: case R_SBX_FILES_GET: case R_SBX_FILES_DELETE:
    case R_SBX_NETWORK: case R_SBX_PORT: case R_PORT_PUBLIC: case R_SBX_SNAPSHOTS: case R_SBX_FORK:
        to_entity(srv, c, srv->sandboxes, "sandbox");
        return;
    case R_TPL_DELETE:
        if (lel__api_snapshot_as_template(srv, c)) /* E2B deletes a snapshot as a template */
            lel_call_send(c->team->actor, c);
        else
            to_entity(srv, c, srv->templates, "template");
        return;
    case R_TPL_CONTEXT: case R_TPL_FILES: case R_TPL_E2B_BUILD: case R_TPL_TAGS_GET: case R_TPL_REBUILD:
        to_entity(srv, c, srv->templates, "template");
        return;
    case R_TPL_TAGS_ADD: case R_TPL_TAGS_DEL:
        lel__api_tags_route(srv, c);
        return;
    case R_TPL_FILES_PUT: /* no team: the template's actor checks the URL's token */
        lel__api_upload_route(srv, c, srv->templates, actor_ref);
        return;
    case R_IMG_LIST: case R_IMG_GET: case R_IMG_PUT: case R_IMG_DELETE:
        lel_image_call(srv, c);
        return;
    case R_ADMIN_TEAMS:
    case R_ADMIN_BACKUP:
        lel_call_send(srv->root, c);
        return;
    case R_ADMIN_TEAM_LIMITS:
        lel_team_admin_limits(srv, c);
        return;
    default: /* keys, members, team, lists, template creation and reads, snapshots */
        lel_call_send(c->team->actor, c);
        return;
    }
}

/* Whether the call stores something in the data dir (records, images, uploads): those need room. */
static int stores(const lel_call_t *c)
{
    switch (c->route) {
    case R_KEYS_CREATE: case R_MEMBERS_CREATE: case R_SBX_CREATE: case R_SBX_PAUSE: case R_SBX_SNAPSHOT:
    case R_SBX_SNAPSHOTS: case R_SBX_FORK: case R_TPL_CREATE: case R_TPL_BUILD: case R_TPL_CONTEXT: case R_IMG_PUT:
    case R_TPL_E2B_CREATE: case R_TPL_FILES_PUT: case R_TPL_E2B_BUILD: case R_TPL_REBUILD:
        return 1;
    case R_ADMIN_TEAMS:
        return c->method == LEL_M_POST;
    default:
        return 0;
    }
}

/* A full data dir answers 507 before anything is written, with storage.min_free_bytes kept free
 * so the store's own small writes (a kill's record, logs, deletes) go in; under them the store
 * refuses writes at its floor (LEL_STORE_FLOOR) so RocksDB never meets ENOSPC. Reads, deletes and what
 * runs inside sandboxes go on; the check passes again once space returns. */
static int space_check(lel_server_t *srv, lel_call_t *c)
{
    struct statvfs v;
    if (!stores(c) || !srv->cfg.storage_min_free_bytes || statvfs(srv->cfg.data_dir, &v) < 0)
        return 0;
    uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
    if (avail >= srv->cfg.storage_min_free_bytes)
        return 0;
    lel_call_error(c, 507, "insufficient storage: the data directory has %llu bytes free, under storage.min_free_bytes "
                   "(%zu); nothing was stored", (unsigned long long)avail, srv->cfg.storage_min_free_bytes);
    return 507;
}

/* Route, credentials and rate limit: 0 to go on (*cls says which kind of route), or the status
 * of the error set on c. */
static int judge(lel_server_t *srv, lel_call_t *c, enum cls *cls)
{
    c->from_node = srv->fwd && lel_cluster_fwd_trusted(srv->fwd, c->node_secret);
    if (!strncmp(c->path, "/cluster/internal/", 18)) { /* node to node (templates travel): the secret alone */
        *cls = NODE;
        if (!c->from_node)
            lel_call_error(c, 404, "no such endpoint: %s", c->path);
        return c->status;
    }
    int keyed, pr = lel__api_port_match(c, &keyed);
    if (pr > 1)
        return pr;
    if (pr == 1) { /* a server in a sandbox: its actor judges the traffic token; the path form needs a key */
        *cls = PORT;
        if (!keyed)
            return 0;
        if (lel_auth_resolve(srv, c) < 0) {
            auth_failed(srv, c);
            return c->status;
        }
        char bucket[64];
        snprintf(bucket, sizeof(bucket), "api:%s", c->key_id);
        return rate_limit(srv, c, bucket, srv->cfg.rate_general) < 0 ? 429 : 0;
    }
    if (lel__api_envd_wants(c)) { /* E2B's data plane: the sandbox's access token is its credential */
        char bucket[64];
        *cls = ENVD;
        int st = lel__api_envd_match(c);
        if (st)
            return st;
        snprintf(bucket, sizeof(bucket), "envd:%s", c->id);
        return rate_limit(srv, c, bucket, srv->cfg.rate_general) < 0 ? 429 : 0;
    }
    int r = match(c, cls);
    if (r || *cls == PUBLIC)
        return r;
    if (c->route == R_TPL_FILES_PUT) { /* E2B's upload URL: its token is the credential (as a signed URL's) */
        char bucket[96];
        snprintf(bucket, sizeof(bucket), "upload:%s", c->peer);
        return rate_limit(srv, c, bucket, srv->cfg.rate_general) < 0 ? 429 : 0;
    }
    if (*cls == METRICS) { /* the operator's: X-Admin-Token, or the same token as a bearer (Prometheus sends that) */
        const char *bearer = c->bearer && !strncasecmp(c->bearer, "Bearer ", 7) ? c->bearer + 7 : NULL;
        const char *tok = c->admin_token ? c->admin_token : bearer;
        if (c->api_key || (c->admin_token && c->bearer))
            lel_call_error(c, 401, "conflicting credentials: /metrics takes the admin token alone");
        else if (!*srv->cfg.admin_token)
            lel_call_error(c, 401, "/metrics needs admin_token set (or metrics.listen: an address that serves it without credentials)");
        else if (!tok || !lel_ct_equal(tok, strlen(tok), srv->cfg.admin_token, strlen(srv->cfg.admin_token)))
            lel_call_error(c, 401, "invalid or missing admin token");
        if (c->status)
            auth_failed(srv, c);
        return c->status;
    }
    if (*cls == ADMIN) {
        const char *tok = c->admin_token;
        if (c->api_key || c->bearer)
            lel_call_error(c, 401, "conflicting credentials: /admin takes X-Admin-Token alone");
        else if (!*srv->cfg.admin_token || !tok ||
                 !lel_ct_equal(tok, strlen(tok), srv->cfg.admin_token, strlen(srv->cfg.admin_token)))
            lel_call_error(c, 401, "invalid or missing admin token");
        if (c->status) {
            auth_failed(srv, c);
            return c->status;
        }
        char bucket[96];
        snprintf(bucket, sizeof(bucket), "admin:%s", c->peer);
        return rate_limit(srv, c, bucket, srv->cfg.rate_auth) < 0 ? 429 : 0;
    }
    if (lel_auth_resolve(srv, c) < 0) {
        auth_failed(srv, c);
        return c->status;
    }
    char bucket[64];
    snprintf(bucket, sizeof(bucket), "%s:%s", *cls == AUTHEP ? "auth" : "api", c->key_id);
    if (rate_limit(srv, c, bucket, *cls == AUTHEP ? srv->cfg.rate_auth : srv->cfg.rate_general) < 0)
        return 429;
    return space_check(srv, c);
}

int lel_api_admit(void *ctx, lel_call_t *c)
{
    lel_server_t *srv = ctx;
    enum cls cls = PUBLIC;
    int r = judge(srv, c, &cls);
    if (r || cls == PUBLIC || cls == METRICS || cls == NODE) /* answered without their body */
        return r;
    if (cls == PORT) { /* the body streams to the sandbox's server, whatever its size */
        c->body_streams = 1;
        c->body_limit = UINT64_MAX - 1;
        c->admitted = 1;
        return 0;
    }
    int archive = c->route == R_IMG_PUT || c->route == R_TPL_CONTEXT || c->route == R_TPL_FILES_PUT;
    c->body_streams = archive || c->route == R_SBX_FILES_PUT || c->route == R_ENVD_FILES_POST;
    c->body_limit = archive ? srv->cfg.image_max_bytes
                  : c->body_streams      ? srv->cfg.max_file_bytes
                                         : srv->cfg.max_body_bytes;
    if (c->declared_len != UINT64_MAX && c->declared_len > c->body_limit) {
        if (c->route == R_TPL_CONTEXT || c->route == R_TPL_FILES_PUT)
            lel_call_error(c, 413, "build context larger than images.max_bytes (%zu bytes)", srv->cfg.image_max_bytes);
        else if (c->route == R_IMG_PUT)
            lel_call_error(c, 413, "image archive larger than images.max_bytes (%zu bytes)", srv->cfg.image_max_bytes);
        else if (c->body_streams)
            lel_call_error(c, 413, "file larger than %zu bytes", srv->cfg.max_file_bytes);
        else
            lel_call_error(c, 413, "request body larger than %zu bytes", srv->cfg.max_body_bytes);
        return 413;
    }
    c->admitted = 1;
    return 0;
}

void lel_api_dispatch(void *ctx, lel_call_t *c)
{
    lel_server_t *srv = ctx;
    enum cls cls = PUBLIC;
    if (!c->admitted && judge(srv, c, &cls)) {
        lel_call_done(c);
        return;
    }
    if (!c->admitted && cls == NODE) { /* another node's GET: read off the loop thread */
        lel_template_serve(srv, c);
        return;
    }
    if (!c->admitted && (cls == PUBLIC || cls == METRICS)) { /* answered here, on the loop thread */
        if (c->route == R_HEALTH)
            lel_call_reply(c, 200, json_pack("{s:s, s:s}", "status", "ok", "version", LEL_VERSION));
        else if (c->route == R_METRICS)
            lel__api_metrics_answer(srv, c);
        else
            lel__api_docs_answer(srv, c);
        lel_call_done(c);
        return;
    }
    if (c->route == R_SBX_PORT || c->route == R_PORT_PUBLIC) { /* its body is the sandbox server's */
        to_entity(srv, c, srv->sandboxes, "sandbox");
        return;
    }
    if (LEL_ROUTE_IS_ENVD(c->route)) { /* its bodies are the envd protocol's, read by src/envd */
        if (!c->body_in && c->body_len > srv->cfg.max_body_bytes) {
            lel_call_error(c, 413, "request body larger than %zu bytes", srv->cfg.max_body_bytes);
            lel_call_done(c);
        } else if (!to_remote_envd(srv, c)) {
            lel__api_envd_route(srv, c, srv->sandboxes, actor_ref);
        }
        return;
    }
    if (decode_body(srv, c) < 0 || lel__api_e2b_body(c) < 0) {
        lel_call_done(c);
        return;
    }
    route_call(srv, c);
}
