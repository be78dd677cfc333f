/* E2B's control-plane request shapes, mapped onto ours before the call goes to its actor.
 * The E2B SDK's create body carries fields our own API does not have (`secure`,
 * `allow_internet_access`, `network`, `autoPauseMemory`, `autoResume`, `mcp`, `iam`,
 * `volumeMounts`); the pause body carries `memory`. What asks for what lelantosd does anyway
 * is accepted, what asks for something it cannot do yet is a 400 naming the field: a user
 * must never believe a sandbox has what it has not. Facts: ../shared/docs/PEER-E2B.md §1.4. */
#include "lel_api_int.h"

#include "../net/lel_net.h"
#include "../template/lel_template.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A boolean field: absent or null 0 (*v untouched), 1 set, -EINVAL with a 400 set. */
static int bool_field(lel_call_t *c, json_t *obj, const char *name, const char *shown, int *v)
{
    json_t *j = json_object_get(obj, name);
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_boolean(j)) {
        lel_call_error(c, 400, "invalid field '%s': must be a boolean", shown);
        return -EINVAL;
    }
    *v = json_is_true(j);
    return 1;
}

static int unsupported(lel_call_t *c, const char *field, const char *why)
{
    lel_call_error(c, 400, "unsupported field '%s': %s", field, why);
    return -EINVAL;
}

/* One of network.allowOut / denyOut: at most 64 addresses, CIDRs or host names. */
static int rule_list(lel_call_t *c, json_t *net, const char *name)
{
    json_t *l = json_object_get(net, name);
    if (!l || json_is_null(l))
        return 0;
    const char *items[64];
    size_t n = 0, i;
    json_t *v;
    if (!json_is_array(l) || json_array_size(l) > 64) {
        lel_call_error(c, 400, "invalid field 'network.%s': must be an array of at most 64 strings", name);
        return -EINVAL;
    }
    json_array_foreach(l, i, v)
    {
        if (!json_is_string(v)) {
            lel_call_error(c, 400, "invalid field 'network.%s': must be an array of at most 64 strings", name);
            return -EINVAL;
        }
        items[n++] = json_string_value(v);
    }
    struct lel_net_policy p;
    char err[128];
    if (lel_net_policy_build(&p, 1, items, n, NULL, 0, err, sizeof(err)) < 0) {
        lel_call_error(c, 400, "invalid field 'network.%s': %s", name, err);
        return -EINVAL;
    }
    lel_net_policy_free(&p);
    return 0;
}

/* network.maskRequestHost: the Host the sandbox's servers are sent instead of the request's,
 * "${PORT}" standing for the port: a host name or address with an optional port (no spaces,
 * no control characters: it goes into a request head as it is). */
static int mask_host(lel_call_t *c, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    int ok = n > 0 && n <= 255;
    for (size_t i = 0; ok && i < n; i++) {
        if (!strncmp(s + i, "${PORT}", 7)) {
            i += 6;
            continue;
        }
        unsigned char ch = (unsigned char)s[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr(".-_:[]", ch);
    }
    if (!ok) {
        lel_call_error(c, 400, "invalid field 'network.maskRequestHost': must be a host name (1 to 255 of letters, "
                       "digits, '.', '-', '_', ':', '[', ']'; ${PORT} stands for the port)");
        return -EINVAL;
    }
    return 0;
}

int lel__api_network_field(lel_call_t *c, json_t *net)
{
    if (!net || json_is_null(net))
        return 0;
    if (!json_is_object(net)) {
        lel_call_error(c, 400, "invalid field 'network': must be an object");
        return -EINVAL;
    }
    const char *k;
    json_t *v;
    int b = 0;
    json_object_foreach(net, k, v)
    {
        if (!strcmp(k, "allowPublicTraffic") || !strcmp(k, "allowInternetAccess")) {
            char shown[64];
            snprintf(shown, sizeof(shown), "network.%s", k);
            if (bool_field(c, net, k, shown, &b) < 0)
                return -EINVAL;
        } else if (!strcmp(k, "allowOut") || !strcmp(k, "denyOut")) {
            if (rule_list(c, net, k) < 0)
                return -EINVAL;
        } else if (!strcmp(k, "maskRequestHost")) {
            if (mask_host(c, v) < 0)
                return -EINVAL;
        } else {
            char name[96];
            snprintf(name, sizeof(name), "network.%.64s", k);
            return unsupported(c, name, "not a network setting lelantosd knows (allowPublicTraffic, allowOut, denyOut, "
                                        "maskRequestHost)");
        }
    }
    return 0;
}

/* PUT /sandboxes/{id}/network: E2B's SDK names the internet switch `allow_internet_access`
 * there (ours: allowInternetAccess); an egress proxy and per-domain transform rules are not
 * done here. */
static int network_update(lel_call_t *c)
{
    json_t *b = c->json, *ai = json_object_get(b, "allow_internet_access");
    json_t *px = json_object_get(b, "egressProxy"), *rules = json_object_get(b, "rules");
    if (px && !json_is_null(px))
        return unsupported(c, "egressProxy", "there is no egress proxy support");
    if (rules && !json_is_null(rules) && (!json_is_object(rules) || json_object_size(rules)))
        return unsupported(c, "rules", "there are no per-domain transform rules");
    json_object_del(b, "egressProxy");
    json_object_del(b, "rules");
    if (ai) {
        if (json_object_get(b, "allowInternetAccess")) {
            lel_call_error(c, 400, "invalid field 'allow_internet_access': give it or allowInternetAccess, not both");
            return -EINVAL;
        }
        json_object_set(b, "allowInternetAccess", ai);
        json_object_del(b, "allow_internet_access");
    }
    return lel__api_network_field(c, b);
}

static int create_fields(lel_call_t *c)
{
    json_t *b = c->json;
    int v = 0, r;
    /* E2B secures every sandbox's data plane; so do we (an envdAccessToken each): true or false
     * changes nothing, as on E2B since the SDK stopped sending it */
    if (bool_field(c, b, "secure", "secure", &v) < 0)
        return -EINVAL;
    if ((r = bool_field(c, b, "allow_internet_access", "allow_internet_access", &v)) < 0)
        return -EINVAL;
    if (lel__api_network_field(c, json_object_get(b, "network")) < 0)
        return -EINVAL;
    v = 1;
    if (bool_field(c, b, "autoPauseMemory", "autoPauseMemory", &v) < 0)
        return -EINVAL;
    if (!v)
        return unsupported(c, "autoPauseMemory", "a pause always keeps the memory (no filesystem-only pause)");
    json_t *ar = json_object_get(b, "autoResume");
    if (ar && !json_is_null(ar)) {
        v = 0;
        if (!json_is_object(ar)) {
            lel_call_error(c, 400, "invalid field 'autoResume': must be an object");
            return -EINVAL;
        }
        if (bool_field(c, ar, "enabled", "autoResume.enabled", &v) < 0)
            return -EINVAL;
    }
    json_t *mcp = json_object_get(b, "mcp"), *iam = json_object_get(b, "iam"), *vm = json_object_get(b, "volumeMounts");
    if (mcp && !json_is_null(mcp))
        return unsupported(c, "mcp", "there is no MCP gateway");
    if (iam && !json_is_null(iam))
        return unsupported(c, "iam", "there are no workload identity tokens");
    if (vm && !json_is_null(vm) && (!json_is_array(vm) || json_array_size(vm) > 0))
        return unsupported(c, "volumeMounts", "there are no volumes");
    /* allow_internet_access, network and autoResume stay: the sandbox keeps them (src/sandbox/lel_sandbox_net.c) */
    static const char *const done[] = {"secure", "autoPauseMemory", "mcp", "iam", "volumeMounts", NULL};
    for (int i = 0; done[i]; i++)
        json_object_del(b, done[i]);
    return 0;
}

int lel__api_e2b_body(lel_call_t *c)
{
    if (!c->json)
        return 0;
    if (c->route == R_SBX_CREATE)
        return create_fields(c);
    if (c->route == R_SBX_NETWORK)
        return network_update(c);
    if (c->route == R_SBX_PAUSE) {
        int keep = 1;
        if (bool_field(c, c->json, "memory", "memory", &keep) < 0)
            return -EINVAL;
        if (!keep)
            return unsupported(c, "memory", "a pause always keeps the memory (no filesystem-only pause)");
        json_object_del(c->json, "memory");
    }
    return 0;
}

/* ---- E2B's template calls that name their template in the body or by a token ---- */

int lel__api_snapshot_as_template(lel_server_t *srv, lel_call_t *c)
{
    lel_actor_t *a = lel_template_lookup(srv, c->team, c->id);
    json_t *snap = NULL;
    char path[64];
    if (a) {
        lel_actor_unref(a);
        return 0;
    }
    if (strlen(c->id) != LEL_ID_LEN)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", c->team->id, c->id);
    if (lel_store_get(srv->store, LEL_CF_SNAPSHOTS, path, &snap) < 0)
        return 0;
    json_decref(snap);
    c->route = R_SNAP_DELETE;
    return 1;
}

void lel__api_tags_route(lel_server_t *srv, lel_call_t *c)
{
    const char *field = c->route == R_TPL_TAGS_ADD ? "target" : "name", *v = NULL;
    char name[160];
    if (lel_call_str_field(c, field, 140, &v) < 0 || !v || !*v) {
        if (!c->status)
            lel_call_error(c, 400, "invalid field '%s': required (%s)", field,
                           c->route == R_TPL_TAGS_ADD ? "the build to tag, as name:tag" : "the template's name");
        lel_call_done(c);
        return;
    }
    snprintf(name, sizeof(name), "%s", v);
    name[strcspn(name, ":")] = 0; /* the template; its actor checks the tag */
    lel_actor_t *a = lel_template_lookup(srv, c->team, name);
    if (!a) {
        lel_call_error(c, 404, "template '%s' not found", name);
        lel_call_done(c);
        return;
    }
    lel_call_send(a, c); /* the actor checks the tag of a target */
    lel_actor_unref(a);
}

void lel__api_upload_route(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, void (*ref)(void *, void *))
{
    (void)srv;
    lel_actor_t *a = lel_registry_get(reg, c->id, ref, NULL);
    if (!a) {
        lel_call_error(c, 404, "template not found");
        lel_call_done(c);
        return;
    }
    lel_call_send(a, c);
    lel_actor_unref(a);
}

/* ---- the data plane: E2B's envd protocol, routed to the sandbox's actor (src/envd) ---- */

#define ENVD_PORT "49983"

/* The E2B proxy's answer for a sandbox it cannot reach: 502, which the SDK reads as "not
 * running" (isRunning() false, TimeoutError, SandboxNotFoundError while starting a stream). */
static void not_reachable(lel_call_t *c, const char *id, const char *msg)
{
    lel_call_reply(c, 502, json_pack("{s:s, s:s, s:i}", "sandboxId", id ? id : "", "message", msg, "code", 502));
}

/* The Host form the SDK uses without E2B_SANDBOX_URL: <port>-<sandboxID>.<domain>. */
static int host_form(lel_call_t *c)
{
    const char *h = c->host, *dash = h ? strchr(h, '-') : NULL, *dot = dash ? strchr(dash, '.') : NULL;
    if (!dot || dash == h || dash - h > 5 || dot - dash - 1 != LEL_ID_LEN)
        return 0;
    for (const char *p = h; p < dash; p++)
        if (*p < '0' || *p > '9')
            return 0;
    for (const char *p = dash + 1; p < dot; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    if (!c->e2b_port) /* an E2b-Sandbox-Port header says it already (and would leak if replaced) */
        c->e2b_port = strndup(h, (size_t)(dash - h));
    c->e2b_sandbox = strndup(dash + 1, LEL_ID_LEN);
    return c->e2b_port && c->e2b_sandbox;
}

int lel__api_envd_wants(lel_call_t *c)
{
    return c->e2b_sandbox || host_form(c);
}

int lel__api_envd_match(lel_call_t *c)
{
    const char *p = c->path;
    free(c->id);
    free(c->id2);
    c->id = strdup(c->e2b_sandbox);
    c->id2 = NULL;
    if (!c->id) {
        lel_call_error(c, 503, "out of memory");
        return 503;
    }
    if (strlen(c->id) != LEL_ID_LEN) {
        not_reachable(c, c->id, "The sandbox was not found");
        return 502;
    }
    if (c->e2b_port && strcmp(c->e2b_port, ENVD_PORT)) {
        not_reachable(c, c->id, "no service listens on that port in the sandbox (only envd, port 49983)");
        return 502;
    }
    int get = c->method == LEL_M_GET, post = c->method == LEL_M_POST;
    if (!strcmp(p, "/health") && get)
        c->route = R_ENVD_HEALTH;
    else if (!strcmp(p, "/files") && (get || post))
        c->route = get ? R_ENVD_FILES_GET : R_ENVD_FILES_POST;
    else if (post && (!strncmp(p, "/process.Process/", 17) || !strncmp(p, "/filesystem.Filesystem/", 23)) &&
             strlen(p) < 64 && !strchr(strchr(p + 1, '/') + 1, '/')) {
        c->route = R_ENVD_RPC;
        c->id2 = strdup(p + 1);
    } else {
        c->allow = !strcmp(p, "/health") ? "GET" : !strcmp(p, "/files") ? "GET, POST" : NULL;
        if (c->allow)
            lel_call_error(c, 405, "method not allowed on %s (allowed: %s)", p, c->allow);
        else /* connect-go's answer to a procedure it does not know */
            lel_call_reply(c, 404, json_pack("{s:s, s:s%}", "code", "unimplemented", "message", p, strlen(p)));
        return c->status;
    }
    return 0;
}

void lel__api_envd_route(lel_server_t *srv, lel_call_t *c, lel_registry_t *reg, void (*ref)(void *, void *))
{
    (void)srv;
    lel_actor_t *a = lel_registry_get(reg, c->id, ref, NULL);
    if (!a) {
        not_reachable(c, c->id, "The sandbox was not found");
        lel_call_done(c);
        return;
    }
    lel_call_send(a, c); /* its access token is checked by the actor, which knows it */
    lel_actor_unref(a);
}
