/* GET /sandboxes and GET /snapshots: filtering and pagination over the team's records, run on
 * the team actor; reads only the store, which every sandbox actor updates before it answers.
 * Both lists page the same way: records in key order (<teamID>/<id>), `limit` per page, and
 * `nextToken` (sent back as X-Next-Token) the id of the last record of the page. */
#include "lel_sandbox_int.h"

#include "../cluster/lel_cluster_kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct page {
    json_t *out;
    long long limit;
    char last[LEL_ID_LEN + 1];
    int more;
};

/* Adds the public view of `rec` (without `private_fields`) under the id in rec[id_field];
 * returns 1 (stop the scan) when the page was already full. */
static int page_add(struct page *pg, json_t *rec, const char *id_field, const char *const *private_fields)
{
    if ((long long)json_array_size(pg->out) == pg->limit) {
        pg->more = 1;
        return 1;
    }
    json_t *view = json_deep_copy(rec);
    for (int i = 0; private_fields[i]; i++)
        json_object_del(view, private_fields[i]);
    if (json_object_get(view, "envdVersion")) /* the data plane is the host's, whatever the record says */
        json_object_set_new(view, "envdVersion", json_string(LEL_ENVD_VERSION));
    json_array_append_new(pg->out, view);
    snprintf(pg->last, sizeof(pg->last), "%s", json_string_value(json_object_get(rec, id_field)));
    return 0;
}

/* Reads `limit` and `nextToken` from the query; 0, or -EINVAL with the 400 set on c. *token is
 * malloc'd (NULL when absent) and the caller frees it. */
static int page_query(lel_call_t *c, struct page *pg, char **token)
{
    char *limit = lel_call_query(c, "limit"), *end;
    int r = 0;
    *token = lel_call_query(c, "nextToken");
    pg->limit = 100;
    if (limit) {
        pg->limit = strtoll(limit, &end, 10);
        if (!*limit || *end || pg->limit < 1 || pg->limit > 1000) {
            lel_call_error(c, 400, "invalid query 'limit': must be 1..1000");
            r = -EINVAL;
        }
    }
    if (!r && *token && (strlen(*token) != LEL_ID_LEN || strchr(*token, '/'))) {
        lel_call_error(c, 400, "invalid query 'nextToken'");
        r = -EINVAL;
    }
    free(limit);
    return r;
}

struct list_ctx {
    struct page pg;
    int want[3];
    json_t *meta;           /* required metadata pairs */
    char *tpl;              /* E2B's `template`: templateID or alias, or NULL */
    int64_t started_after;  /* E2B's `startedAfter` (ms), or INT64_MIN */
};

json_t *lel_sandbox_remote_view(lel_server_t *srv, const json_t *rec)
{
    json_t *v = json_deep_copy(rec);
    char url[256];
    const char *node = json_string_value(json_object_get(rec, "node"));
    for (int i = 0; v && lel__sbx_private_fields[i]; i++)
        json_object_del(v, lel__sbx_private_fields[i]);
    if (v && srv->cluster && node && !lel_cluster_node_url(srv->cluster, node, url, sizeof(url))) {
        /* its node's lease expired: a running sandbox died with it; a paused one's image is there */
        const char *st = json_string_value(json_object_get(v, "state"));
        if (st && !strcmp(st, "running"))
            json_object_set_new(v, "state", json_string("lost"));
        else if (st && !strcmp(st, "paused"))
            json_object_set_new(v, "unavailable", json_true());
    }
    return v;
}

struct remote_list {
    lel_server_t *srv;
    struct list_ctx *l;
    int (*cb)(void *p, const char *key, json_t *rec);
};

static int add_remote(void *ctx, json_t *rec)
{
    struct remote_list *rl = ctx;
    size_t before = json_array_size(rl->l->pg.out);
    rl->cb(rl->l, "", rec); /* the same filters as the local records */
    if (json_array_size(rl->l->pg.out) > before) {
        json_t *v = lel_sandbox_remote_view(rl->srv, rec);
        json_array_set_new(rl->l->pg.out, before, v);
    }
    return 0;
}

/* Scans the team's records in `cf` from the token on, `cb` adding matches to pg, and answers:
 * the page, with X-Next-Token when more records match. */
static void page_scan(lel_server_t *srv, lel_call_t *c, enum lel_cf cf, const char *token, struct page *pg,
                      lel_store_scan_cb cb, void *ctx)
{
    char prefix[32], after[64];
    snprintf(prefix, sizeof(prefix), "%s/", c->team->id);
    snprintf(after, sizeof(after), "%s%s", prefix, token ? token : "");
    if (lel_store_scan(srv->store, cf, prefix, token ? after : NULL, cb, ctx) < 0) {
        lel_call_store_failed(c, -EIO);
        return;
    }
    if (cf == LEL_CF_SANDBOXES && srv->shared && !pg->more) { /* cluster: the other nodes' after ours */
        struct remote_list rl = {srv, ctx, cb};
        lel_cluster_kv_remote_foreach(srv->shared, c->team->id, add_remote, &rl);
    }
    if (pg->more)
        c->next_token = strdup(pg->last);
    lel_call_reply(c, 200, json_incref(pg->out));
}

/* A filter `want` (NULL: any) against the string rec[field]. */
static int matches(const char *want, json_t *rec, const char *field)
{
    const char *have = json_string_value(json_object_get(rec, field));
    return !want || (have && !strcmp(want, have));
}

/* RFC 3339 in UTC ("2026-01-02T03:04:05Z", optional fraction, as toISOString writes it) -> ms;
 * -EINVAL for anything else. */
static int parse_time(const char *t, int64_t *ms)
{
    struct tm tm = {0};
    int n = 0, frac = 0, digits = 0;
    if (!t || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec, &n) != 6)
        return -EINVAL;
    t += n;
    if (*t == '.')
        for (t++; *t >= '0' && *t <= '9'; t++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*t - '0');
    if ((*t != 'Z' && *t != 'z') || t[1] || tm.tm_mon < 1 || tm.tm_mon > 12)
        return -EINVAL;
    while (digits > 0 && digits < 3)
        frac *= 10, digits++;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 0;
}

static int collect_sandbox(void *p, const char *key, json_t *rec)
{
    (void)key;
    struct list_ctx *l = p;
    const char *st = json_string_value(json_object_get(rec, "state"));
    int ok = 0;
    for (int i = 0; i < 3; i++)
        ok |= l->want[i] && st && !strcmp(st, state_names[i]);
    const char *k;
    json_t *v;
    json_t *md = json_object_get(rec, "metadata");
    json_object_foreach(l->meta, k, v)
    {
        ok &= json_equal(json_object_get(md, k), v);
    }
    if (l->tpl && !matches(l->tpl, rec, "templateID") && !matches(l->tpl, rec, "alias"))
        ok = 0;
    int64_t started;
    if (l->started_after != INT64_MIN &&
        (parse_time(json_string_value(json_object_get(rec, "startedAt")), &started) < 0 || started <= l->started_after))
        ok = 0;
    return ok ? page_add(&l->pg, rec, "sandboxID", lel__sbx_private_fields) : 0;
}

/* "k1=v1&k2=v2" (already URL-decoded once) -> object; each part is URL-decoded again. */
static int parse_metadata(char *q, json_t *out)
{
    for (char *save = NULL, *pair = strtok_r(q, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq || eq == pair)
            return -EINVAL;
        *eq = '\0';
        if (lel_url_decode(pair) < 0 || lel_url_decode(eq + 1) < 0)
            return -EINVAL;
        json_t *s = json_string(eq + 1);
        if (!s || json_object_set_new(out, pair, s) < 0)
            return -EINVAL;
    }
    return 0;
}

void lel_sandbox_list(lel_server_t *srv, lel_call_t *c)
{
    struct list_ctx l = {{json_array(), 100, "", 0}, {1, 1, 0}, json_object(), lel_call_query(c, "template"), INT64_MIN};
    char *state = lel_call_query(c, "state"), *meta = lel_call_query(c, "metadata"), *token = NULL;
    char *after = lel_call_query(c, "startedAfter"), *order = lel_call_query(c, "order");
    int bad = 0;
    if (after && parse_time(after, &l.started_after) < 0) {
        lel_call_error(c, 400, "invalid query 'startedAfter': expected an RFC 3339 time in UTC");
        bad = 1;
    }
    if (!bad && order && strcmp(order, "asc") && strcmp(order, "desc")) {
        lel_call_error(c, 400, "invalid query 'order': must be asc or desc");
        bad = 1;
    }
    if (!bad && state) {
        l.want[0] = l.want[1] = 0;
        for (char *save = NULL, *p = strtok_r(state, ",", &save); p && !bad; p = strtok_r(NULL, ",", &save)) {
            if (!strcmp(p, "running"))
                l.want[0] = 1;
            else if (!strcmp(p, "paused"))
                l.want[1] = 1;
            else {
                lel_call_error(c, 400, "invalid query 'state': '%.32s' is not running or paused", p);
                bad = 1;
            }
        }
    }
    if (!bad && meta && parse_metadata(meta, l.meta) < 0) {
        lel_call_error(c, 400, "invalid query 'metadata': expected url-encoded k1=v1&k2=v2");
        bad = 1;
    }
    if (!bad && page_query(c, &l.pg, &token) == 0)
        page_scan(srv, c, LEL_CF_SANDBOXES, token, &l.pg, collect_sandbox, &l);
    json_decref(l.pg.out);
    json_decref(l.meta);
    free(l.tpl);
    free(after);
    free(order);
    free(state);
    free(meta);
    free(token);
}

struct snap_ctx {
    struct page pg;
    char *sandbox, *name; /* filters, or NULL */
};

static int collect_snapshot(void *p, const char *key, json_t *rec)
{
    (void)key;
    struct snap_ctx *l = p;
    if (!matches(l->sandbox, rec, "sandboxID") || !matches(l->name, rec, "name"))
        return 0;
    if (page_add(&l->pg, rec, "snapshotID", lel__snap_private_fields))
        return 1;
    /* E2B's SnapshotInfo: the names that start a sandbox from it (its id does too) */
    const char *name = json_string_value(json_object_get(rec, "name"));
    json_object_set_new(json_array_get(l->pg.out, json_array_size(l->pg.out) - 1), "names",
                        name && *name ? json_pack("[s]", name) : json_array());
    return 0;
}

void lel_snapshot_list(lel_server_t *srv, lel_call_t *c)
{
    struct snap_ctx l = {{json_array(), 100, "", 0}, lel_call_query(c, "sandboxID"), lel_call_query(c, "name")};
    char *token = NULL;
    if (page_query(c, &l.pg, &token) == 0)
        page_scan(srv, c, LEL_CF_SNAPSHOTS, token, &l.pg, collect_snapshot, &l);
    json_decref(l.pg.out);
    free(l.sandbox);
    free(l.name);
    free(token);
}

/* ---- counts for the metrics ---- */

static void count_one(void *ctx, const char *id, void *value)
{
    (void)id;
    struct lel_sandbox_counts *n = ctx;
    struct lel_sandbox *s = lel_actor_state(value);
    if (!s)
        return;
    json_t *v = lel__sbx_public_view(s);
    const char *st = json_string_value(json_object_get(v, "state"));
    int i = !st ? -1 : !strcmp(st, "running") ? 0 : !strcmp(st, "paused") ? 1 : !strcmp(st, "killed") ? 2 : -1;
    if (i >= 0)
        n->by_state[i]++;
    if (i == 0) {
        n->running_mem_bytes += (long long)json_integer_value(json_object_get(v, "memoryMB")) << 20;
        n->running_vcpus += json_integer_value(json_object_get(v, "cpuCount"));
    }
    json_decref(v);
}

void lel_sandbox_count(lel_server_t *srv, struct lel_sandbox_counts *out)
{
    memset(out, 0, sizeof(*out));
    lel_registry_foreach(srv->sandboxes, count_one, out);
}
