/* A sandbox's network: its endpoint on the net loop while its VM runs (src/net), the egress
 * policy its record holds (allowInternetAccess, network.allowOut/denyOut, changed live by
 * PUT /sandboxes/{id}/network), and requests for the servers in it, forwarded by the HTTP
 * layer (src/http/lel_proxy.c) over a connection to the guest's port opened here. Who may
 * send them: anyone who knows the host name, unless network.allowPublicTraffic is false (then
 * the trafficAccessToken given at create, in e2b-traffic-access-token); the path form is
 * authenticated with the team's API key. A paused sandbox with autoResume is resumed by the
 * first such request. Runs on the sandbox's actor. */
#include "lel_sandbox_int.h"

#include "../net/lel_net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The record's policy (strings checked when they were stored). */
static int policy_of(struct lel_sandbox *s, json_t *rec, struct lel_net_policy *p, char *err, size_t errlen)
{
    json_t *net = json_object_get(rec, "network"), *ai = json_object_get(rec, "allowInternetAccess");
    const char *lists[2][64];
    size_t n[2] = {0, 0};
    static const char *const names[2] = {"allowOut", "denyOut"};
    for (int k = 0; k < 2; k++) {
        json_t *l = json_object_get(net, names[k]), *v;
        size_t i;
        json_array_foreach(l, i, v)
        {
            if (n[k] < 64 && json_is_string(v))
                lists[k][n[k]++] = json_string_value(v);
        }
    }
    int internet = ai ? json_is_true(ai) : s->srv->cfg.net_allow_internet;
    return lel_net_policy_build(p, internet, lists[0], n[0], lists[1], n[1], err, errlen);
}

void lel__sbx_net_attach(struct lel_sandbox *s)
{
    struct lel_net_policy p;
    char err[160];
    if (!s->srv->net || !s->vm || s->ep)
        return;
    if (policy_of(s, s->rec, &p, err, sizeof(err)) < 0) {
        fprintf(stderr, "lelantosd: sandbox %s: its network policy does not parse (%s): no network\n", s->id, err);
        return;
    }
    int r = lel_net_attach(s->srv->net, s->vm, s->id, &p, &s->ep);
    lel_net_policy_free(&p);
    if (r < 0 && r != -ENODEV)
        fprintf(stderr, "lelantosd: sandbox %s: no network: %s\n", s->id, strerror(-r));
}

void lel__sbx_net_detach(struct lel_sandbox *s)
{
    if (!s->ep)
        return;
    uint64_t in, out;
    lel_net_counters(s->ep, &in, &out);
    s->net_in += in;
    s->net_out += out;
    lel_net_detach(s->ep);
    s->ep = NULL;
}

void lel__sbx_net_bytes(struct lel_sandbox *s, uint64_t *in, uint64_t *out)
{
    uint64_t i = 0, o = 0;
    if (s->ep)
        lel_net_counters(s->ep, &i, &o);
    *in = s->net_in + i;
    *out = s->net_out + o;
}

int lel__sbx_net_record(lel_server_t *srv, lel_call_t *c, json_t *rec)
{
    json_t *b = c->json, *net = json_object_get(b, "network"), *ai = json_object_get(b, "allow_internet_access");
    json_t *ar = json_object_get(json_object_get(b, "autoResume"), "enabled");
    json_t *pub = json_object_get(net, "allowPublicTraffic");
    json_t *kept = json_pack("{s:b}", "allowPublicTraffic", !pub || json_is_true(pub));
    if (!kept)
        return -ENOMEM;
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "denyOut" : "allowOut";
        json_t *l = json_object_get(net, name);
        json_object_set_new(kept, name, json_is_array(l) ? json_deep_copy(l) : json_array());
    }
    json_t *mask = json_object_get(net, "maskRequestHost"); /* (checked by the API layer) */
    if (json_is_string(mask))
        json_object_set(kept, "maskRequestHost", mask);
    json_object_set_new(rec, "network", kept);
    json_object_set_new(rec, "allowInternetAccess", json_boolean(ai && json_is_boolean(ai) ? json_is_true(ai)
                                                                                           : srv->cfg.net_allow_internet));
    json_object_set_new(rec, "autoResume", json_boolean(json_is_true(ar)));
    json_object_set_new(rec, "domain", json_string(srv->cfg.net_domain));
    if (pub && !json_is_true(pub)) { /* E2B's: traffic to its ports needs this token */
        unsigned char raw[24];
        char hex[2 * sizeof(raw) + 1];
        if (lel_random_bytes(raw, sizeof(raw)) < 0)
            return -EIO;
        lel_hex(raw, sizeof(raw), hex);
        json_object_set_new(rec, "trafficAccessToken", json_string(hex));
    }
    return 0;
}

/* Whether the request may reach the sandbox's ports (403 set when not). */
static int may_reach(struct lel_sandbox *s, lel_call_t *c)
{
    const char *tok = json_string_value(json_object_get(s->rec, "trafficAccessToken"));
    if (c->route == R_SBX_PORT || !tok) /* the API key, or public */
        return 1;
    if (c->traffic_token && lel_ct_equal(c->traffic_token, strlen(c->traffic_token), tok, strlen(tok)))
        return 1;
    lel_call_error(c, 403, "sandbox %s does not allow public traffic: send its trafficAccessToken in "
                   "e2b-traffic-access-token", s->id);
    return 0;
}

/* network.maskRequestHost with each ${PORT} replaced by `port` (malloc'd; NULL: out of memory). */
static char *mask_expand(const char *mask, int port)
{
    char num[12], *out = malloc(strlen(mask) / 7 * sizeof(num) + strlen(mask) + 1), *o = out;
    int nl = snprintf(num, sizeof(num), "%d", port);
    for (const char *p = mask; out && *p;) {
        if (!strncmp(p, "${PORT}", 7)) {
            memcpy(o, num, (size_t)nl);
            o += nl;
            p += 7;
        } else {
            *o++ = *p++;
        }
    }
    if (out)
        *o = 0;
    return out;
}

void lel__sbx_port_call(struct lel_sandbox *s, lel_call_t *c)
{
    if ((c->route == R_SBX_PORT && c->team != s->team) || s->state == S_KILLED) {
        lel_call_error(c, 404, "sandbox not found");
        return;
    }
    if (!may_reach(s, c))
        return;
    if (s->state == S_PAUSED) {
        if (!json_is_true(json_object_get(s->rec, "autoResume"))) {
            lel_call_error(c, 409, "sandbox %s is paused (resume it, or create it with autoResume)", s->id);
            return;
        }
        if (s->stopping) {
            lel_call_error(c, 503, "lelantosd is stopping: its sandboxes are being paused");
            return;
        }
        if (lel__sbx_resume(s, json_integer_value(json_object_get(s->rec, "timeoutS")), c,
                            "sandbox resumed by a request to its port") < 0)
            return;
    }
    if (!s->ep) {
        lel_call_error(c, 502, "sandbox %s has no network (%s)", s->id,
                       s->vm ? "its guest is older than networking" : "API-only mode: no VM");
        return;
    }
    int fd, r = lel_net_open(s->ep, (uint16_t)c->proxy_port, &fd);
    if (r < 0) {
        lel_call_error(c, 503, "cannot open a connection to port %d of sandbox %s: %s", c->proxy_port, s->id,
                       strerror(-r));
        return;
    }
    const char *mask = json_string_value(json_object_get(json_object_get(s->rec, "network"), "maskRequestHost"));
    if (mask && !(c->proxy_host = mask_expand(mask, c->proxy_port))) {
        close(fd);
        lel_call_error(c, 503, "out of memory");
        return;
    }
    lel_call_proxy(c, fd, c->proxy_port);
}

static json_t *network_view(struct lel_sandbox *s)
{
    json_t *v = json_deep_copy(json_object_get(s->rec, "network"));
    if (!v)
        v = json_pack("{s:b, s:[], s:[]}", "allowPublicTraffic", 1, "allowOut", "denyOut");
    json_t *ai = json_object_get(s->rec, "allowInternetAccess");
    json_object_set_new(v, "allowInternetAccess", json_boolean(ai ? json_is_true(ai) : s->srv->cfg.net_allow_internet));
    return v;
}

/* PUT: allowOut, denyOut and allowInternetAccess replace the record's whole, as E2B's update
 * does: one omitted is cleared (the lists empty, internet access the configured default).
 * allowPublicTraffic is fixed at create (its token was given then); the next connect goes by
 * the new policy. */
static void network_put(struct lel_sandbox *s, lel_call_t *c)
{
    json_t *b = c->json, *pub = json_object_get(b, "allowPublicTraffic");
    if (!b) {
        lel_call_error(c, 400, "invalid body: expected an object with allowOut, denyOut or allowInternetAccess");
        return;
    }
    json_t *cur = json_object_get(s->rec, "network");
    if (pub && json_is_true(pub) != json_is_true(json_object_get(cur, "allowPublicTraffic"))) {
        lel_call_error(c, 400, "invalid field 'allowPublicTraffic': fixed when the sandbox was created");
        return;
    }
    json_t *mask = json_object_get(b, "maskRequestHost"), *had = json_object_get(cur, "maskRequestHost");
    if (mask && !json_equal(mask, had)) {
        lel_call_error(c, 400, "invalid field 'maskRequestHost': fixed when the sandbox was created");
        return;
    }
    json_t *rec = json_deep_copy(s->rec), *net = json_object_get(rec, "network");
    if (!net) {
        net = json_pack("{s:b}", "allowPublicTraffic", 1);
        json_object_set_new(rec, "network", net);
    }
    for (int k = 0; k < 2; k++) {
        const char *name = k ? "denyOut" : "allowOut";
        json_t *l = json_object_get(b, name);
        json_object_set_new(net, name, json_is_array(l) ? json_deep_copy(l) : json_array());
    }
    json_t *ai = json_object_get(b, "allowInternetAccess");
    json_object_set_new(rec, "allowInternetAccess",
                        json_boolean(json_is_boolean(ai) ? json_is_true(ai) : s->srv->cfg.net_allow_internet));
    struct lel_net_policy p;
    char err[160];
    if (policy_of(s, rec, &p, err, sizeof(err)) < 0) {
        json_decref(rec);
        lel_call_error(c, 400, "invalid network: %s", err);
        return;
    }
    int r = lel__sbx_commit(s, rec, "info", "network policy changed", json_deep_copy(net));
    if (r < 0) {
        lel_net_policy_free(&p);
        lel_call_store_failed(c, r);
        return;
    }
    if (s->ep && lel_net_set_policy(s->ep, &p) < 0)
        fprintf(stderr, "lelantosd: sandbox %s: the new policy did not reach the net loop (out of memory)\n", s->id);
    lel_net_policy_free(&p);
    lel_call_reply(c, 200, network_view(s));
}

void lel__sbx_network_call(struct lel_sandbox *s, lel_call_t *c)
{
    if (c->method == LEL_M_GET)
        lel_call_reply(c, 200, network_view(s));
    else
        network_put(s, c);
}
