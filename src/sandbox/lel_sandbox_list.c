/* GET /sandboxes: filtering (state, metadata) and pagination over the team's records, run on
 * the team actor; reads only the store, which every sandbox actor updates before it answers. */
#include "lel_sandbox_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_ctx {
    json_t *out;
    int want[3];
    json_t *meta; /* required metadata pairs */
    long long limit;
    char last[LEL_ID_LEN + 1];
    int more;
};

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
    if (!ok)
        return 0;
    if ((long long)json_array_size(l->out) == l->limit) {
        l->more = 1;
        return 1;
    }
    json_t *view = json_deep_copy(rec);
    for (int i = 0; lel__sbx_private_fields[i]; i++)
        json_object_del(view, lel__sbx_private_fields[i]);
    json_array_append_new(l->out, view);
    snprintf(l->last, sizeof(l->last), "%s", json_string_value(json_object_get(rec, "sandboxID")));
    return 0;
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
    struct list_ctx l = {json_array(), {1, 1, 0}, json_object(), 100, "", 0};
    char *state = lel_call_query(c, "state"), *meta = lel_call_query(c, "metadata"), *limit = lel_call_query(c, "limit");
    char *token = lel_call_query(c, "nextToken"), prefix[32], after[64], *end;
    int bad = 0;
    if (state) {
        l.want[0] = l.want[1] = 0;
        for (char *save = NULL, *p = strtok_r(state, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
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
    if (!bad && limit) {
        l.limit = strtoll(limit, &end, 10);
        if (!*limit || *end || l.limit < 1 || l.limit > 1000) {
            lel_call_error(c, 400, "invalid query 'limit': must be 1..1000");
            bad = 1;
        }
    }
    if (!bad && token && (strlen(token) != LEL_ID_LEN || strchr(token, '/'))) {
        lel_call_error(c, 400, "invalid query 'nextToken'");
        bad = 1;
    }
    snprintf(prefix, sizeof(prefix), "%s/", c->team->id);
    snprintf(after, sizeof(after), "%s%s", prefix, token ? token : "");
    if (!bad) {
        if (lel_store_scan(srv->store, LEL_CF_SANDBOXES, prefix, token ? after : NULL, collect_sandbox, &l) < 0) {
            lel__store_failed(c);
        } else {
            if (l.more)
                c->next_token = strdup(l.last);
            lel_call_reply(c, 200, json_incref(l.out));
        }
    }
    json_decref(l.out);
    json_decref(l.meta);
    free(state);
    free(meta);
    free(limit);
    free(token);
}

