/* Teams, API keys and members: the team actor and credential resolution.
 *
 * Records: teams/<teamID>, keys/<teamID>/<keyID> (holds only the key's SHA-256),
 * members/<teamID>/<memberID>. The key index (srv->keys, SHA-256 -> struct lel_key) is what
 * the loop threads consult; the team actor changes it only after the store has the change. */
#include "lel_team.h"

#include "../core/lel_layer.h"

#include "../sandbox/lel_sandbox.h"
#include "../template/lel_template.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_HEX 40

static void team_handle(lel_actor_t *self, void *state, lel_msg_t *m);

lel_team_t *lel_team_new(lel_server_t *srv, const char *id, const char *name, int64_t created_ms)
{
    lel_team_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->created_ms = created_ms;
    t->srv = srv;
    lel_team_set_limits(t, NULL);
    atomic_init(&t->running, 0);
    atomic_init(&t->memory_mb, 0);
    atomic_init(&t->snapshots, 0);
    pthread_mutex_init(&t->quota_lock, NULL);
    if (!(t->actor = lel_actor_new(srv->pool, team_handle, t, NULL))) {
        pthread_mutex_destroy(&t->quota_lock);
        free(t->name);
        free(t);
        return NULL;
    }
    return t;
}

void lel_team_free(lel_team_t *t)
{
    lel_actor_unref(t->actor);
    pthread_mutex_destroy(&t->quota_lock);
    free(t->name);
    free(t);
}

/* The quotas a team's record may set, each with its config default. */
static const struct quota {
    const char *name;
    size_t team_off, cfg_off;
    int min, max;
} quotas[] = {
    {"maxSandboxes", offsetof(lel_team_t, max_sandboxes), offsetof(lel_config_t, team_max_sandboxes), 1, 1000000},
    {"maxTimeoutSeconds", offsetof(lel_team_t, max_timeout_s), offsetof(lel_config_t, team_max_timeout_s), 1, 31536000},
    {"maxMemoryMB", offsetof(lel_team_t, max_memory_mb), offsetof(lel_config_t, team_max_memory_mb), 0, 1000000000},
    {"maxSnapshots", offsetof(lel_team_t, max_snapshots), offsetof(lel_config_t, team_max_snapshots), 0, 100000000},
};
#define NQUOTAS (sizeof(quotas) / sizeof(quotas[0]))

void lel_team_set_limits(lel_team_t *t, const json_t *limits)
{
    for (size_t i = 0; i < NQUOTAS; i++) {
        json_t *v = json_object_get(limits, quotas[i].name);
        int def = *(const int *)((const char *)&t->srv->cfg + quotas[i].cfg_off);
        atomic_store((atomic_int *)((char *)t + quotas[i].team_off), json_is_integer(v) ? (int)json_integer_value(v) : def);
    }
}

static int index_key(lel_server_t *srv, lel_team_t *team, const char *key_id, const char *hash, int64_t last_used)
{
    struct lel_key *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    snprintf(k->id, sizeof(k->id), "%s", key_id);
    k->team = team;
    atomic_init(&k->last_used_ms, last_used);
    atomic_init(&k->persisted_ms, last_used);
    int r = lel_registry_put(srv->keys, hash, k);
    if (r < 0)
        free(k);
    return r;
}

/* A new key: "lel_" + 40 hex from getrandom; the record keeps only its SHA-256 and a mask. */
static json_t *new_key(lel_team_t *team, const char *name, char key_out[KEY_HEX + 5], char hash[65])
{
    unsigned char raw[KEY_HEX / 2];
    char id[LEL_ID_LEN + 1], mask[32];
    if (lel_random_bytes(raw, sizeof(raw)) < 0 || lel_random_id(id) < 0)
        return NULL;
    memcpy(key_out, "lel_", 4);
    lel_hex(raw, sizeof(raw), key_out + 4);
    lel_sha256_hex(key_out, strlen(key_out), hash);
    snprintf(mask, sizeof(mask), "lel_%.4s...%s", key_out + 4, key_out + 4 + KEY_HEX - 4);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", id, "teamID", team->id, "name", name, "mask", mask,
                            "hash", hash);
    if (rec)
        lel_json_set_time(rec, "createdAt", lel_now_ms());
    return rec;
}

static void key_path(char *buf, size_t n, const char *team, const char *id)
{
    snprintf(buf, n, "%s/%s", team, id);
}

static void read_last_used(void *value, void *ctx)
{
    *(int64_t *)ctx = atomic_load(&((struct lel_key *)value)->last_used_ms);
}

/* Public view of a key record (no hash). */
static json_t *key_view(lel_server_t *srv, json_t *rec)
{
    json_t *v = json_deep_copy(rec);
    json_object_del(v, "hash");
    json_object_del(v, "teamID");
    int64_t lu = 0;
    lel_registry_get(srv->keys, json_string_value(json_object_get(rec, "hash")), read_last_used, &lu);
    if (lu > 0)
        lel_json_set_time(v, "lastUsed", lu);
    else if (!json_object_get(v, "lastUsed"))
        json_object_set_new(v, "lastUsed", json_null());
    return v;
}

static void keys_create(lel_server_t *srv, lel_team_t *t, lel_call_t *c)
{
    const char *name = "key";
    char key[KEY_HEX + 5], hash[65], path[64];
    if (lel_call_str_field(c, "name", 256, &name) < 0)
        return;
    json_t *rec = new_key(t, name, key, hash);
    if (!rec) {
        lel_call_error(c, 500, "cannot generate a key");
        return;
    }
    key_path(path, sizeof(path), t->id, json_string_value(json_object_get(rec, "id")));
    int r = lel_store_put(srv->store, LEL_CF_KEYS, path, rec);
    if (r < 0 || (r = index_key(srv, t, json_string_value(json_object_get(rec, "id")), hash, 0)) < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        return;
    }
    json_t *v = key_view(srv, rec);
    json_object_set_new(v, "key", json_string(key));
    json_decref(rec);
    lel_call_reply(c, 201, v);
}

struct collect {
    lel_server_t *srv;
    json_t *arr;
    const char *match; /* members: lowercase email to look for */
    int found;
};

static int collect_key(void *ctx, const char *key, json_t *rec)
{
    (void)key;
    struct collect *col = ctx;
    json_array_append_new(col->arr, key_view(col->srv, rec));
    return 0;
}

/* Deletes the team's record <teamID>/<c->id> in `cf`; answers 404 naming `what` when it is
 * not there. On success *old (when given) receives the deleted record. Returns 0 when deleted. */
/* Deletes a record of the team; `image`: the record owns that snapshot image, whose owner's
 * reference goes in the same batch (its files go when no other image or sandbox needs it). */
static int delete_owned(lel_server_t *srv, lel_team_t *t, lel_call_t *c, enum lel_cf cf, const char *what, json_t **old,
                        const char *image)
{
    char path[96];
    json_t *rec;
    key_path(path, sizeof(path), t->id, c->id);
    if (strlen(c->id) > LEL_ID_LEN || lel_store_get(srv->store, cf, path, &rec) < 0) {
        lel_call_error(c, 404, "%s not found", what);
        return -ENOENT;
    }
    lel_batch_t *b = lel_batch_new(srv->store);
    lel_batch_del(b, cf, path);
    struct lel_layer_op drop = {image, -1, 0, NULL, 0, 0};
    int r = image ? lel_layer_write(srv, b, &drop, 1) : lel_store_write(srv->store, b);
    if (r < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        return r;
    }
    lel_call_reply(c, 204, NULL);
    if (old)
        *old = rec;
    else
        json_decref(rec);
    return 0;
}

static void key_delete(lel_server_t *srv, lel_team_t *t, lel_call_t *c)
{
    json_t *rec;
    if (delete_owned(srv, t, c, LEL_CF_KEYS, "api key", &rec, NULL) < 0)
        return;
    /* revoked for every later request the moment the store has it */
    free(lel_registry_del(srv->keys, json_string_value(json_object_get(rec, "hash"))));
    json_decref(rec);
}

static int valid_email(const char *e)
{
    const char *at = strchr(e, '@');
    size_t n = strlen(e);
    if (n < 3 || n > 254 || !at || at == e || strchr(at + 1, '@'))
        return 0;
    const char *dot = strrchr(at, '.');
    if (!dot || dot == at + 1 || !dot[1])
        return 0;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',' || *p == ';' || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

static int collect_member(void *ctx, const char *key, json_t *rec)
{
    (void)key;
    struct collect *col = ctx;
    if (col->match) {
        col->found |= !strcasecmp(json_string_value(json_object_get(rec, "email")), col->match);
        return col->found;
    }
    json_t *v = json_deep_copy(rec);
    json_object_del(v, "teamID");
    json_array_append_new(col->arr, v);
    return 0;
}

static void members_create(lel_server_t *srv, lel_team_t *t, lel_call_t *c)
{
    const char *email = NULL, *role = "member";
    char id[LEL_ID_LEN + 1], prefix[32], path[64];
    if (lel_call_str_field(c, "email", 254, &email) < 0 || lel_call_str_field(c, "role", 16, &role) < 0)
        return;
    if (!email || !valid_email(email)) {
        lel_call_error(c, 400, "invalid field 'email': must be an email address");
        return;
    }
    if (strcmp(role, "member") && strcmp(role, "admin")) {
        lel_call_error(c, 400, "invalid field 'role': must be 'member' or 'admin'");
        return;
    }
    struct collect col = {srv, NULL, email, 0};
    snprintf(prefix, sizeof(prefix), "%s/", t->id);
    if (lel_store_scan(srv->store, LEL_CF_MEMBERS, prefix, NULL, collect_member, &col) < 0) {
        lel_call_store_failed(c, -EIO);
        return;
    }
    if (col.found) {
        lel_call_error(c, 409, "%s is already a member", email);
        return;
    }
    lel_random_id(id);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s}", "memberID", id, "teamID", t->id, "email", email, "role", role,
                            "status", "invited");
    lel_json_set_time(rec, "invitedAt", lel_now_ms());
    key_path(path, sizeof(path), t->id, id);
    int r = lel_store_put(srv->store, LEL_CF_MEMBERS, path, rec);
    if (r < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        return;
    }
    json_object_del(rec, "teamID");
    lel_call_reply(c, 201, rec);
}

static void list(lel_server_t *srv, lel_team_t *t, lel_call_t *c, enum lel_cf cf, lel_store_scan_cb cb)
{
    char prefix[32];
    struct collect col = {srv, json_array(), NULL, 0};
    snprintf(prefix, sizeof(prefix), "%s/", t->id);
    if (lel_store_scan(srv->store, cf, prefix, NULL, cb, &col) < 0) {
        json_decref(col.arr);
        lel_call_store_failed(c, -EIO);
        return;
    }
    lel_call_reply(c, 200, col.arr);
}

/* A cap of 0 on memory or snapshots is none: shown as null. */
static json_t *cap(int v)
{
    return v ? json_integer(v) : json_null();
}

static json_t *team_view(lel_team_t *t)
{
    json_t *v = json_pack("{s:s, s:s, s:{s:i, s:i, s:o, s:o}, s:{s:i, s:i, s:i}}", "teamID", t->id, "name", t->name,
                          "limits", "maxSandboxes", atomic_load(&t->max_sandboxes), "maxTimeoutSeconds",
                          atomic_load(&t->max_timeout_s), "maxMemoryMB", cap(atomic_load(&t->max_memory_mb)),
                          "maxSnapshots", cap(atomic_load(&t->max_snapshots)), "usage", "runningSandboxes",
                          atomic_load(&t->running), "memoryMB", atomic_load(&t->memory_mb), "snapshots",
                          atomic_load(&t->snapshots));
    lel_json_set_time(v, "createdAt", t->created_ms);
    return v;
}

static void team_get(lel_team_t *t, lel_call_t *c)
{
    lel_call_reply(c, 200, team_view(t));
}

/* Checks a "limits" object from the admin API against `old` (the record's) and returns the
 * merged one: a quota given as a number is the team's own, null goes back to the config's. */
static json_t *limits_merge(lel_call_t *c, const json_t *old, const json_t *in)
{
    if (!json_is_object(in)) {
        lel_call_error(c, 400, "invalid field 'limits': expected an object");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) {
        size_t i = 0;
        while (i < NQUOTAS && strcmp(k, quotas[i].name))
            i++;
        if (i == NQUOTAS) {
            lel_call_error(c, 400, "invalid field 'limits.%s': not a team limit (maxSandboxes, maxTimeoutSeconds, "
                                   "maxMemoryMB, maxSnapshots)", k);
            return NULL;
        }
        if (!json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < quotas[i].min ||
                                 json_integer_value(v) > quotas[i].max)) {
            lel_call_error(c, 400, "invalid field 'limits.%s': an integer in %d..%d, or null for the default", k,
                           quotas[i].min, quotas[i].max);
            return NULL;
        }
    }
    json_t *out = json_is_object(old) ? json_deep_copy(old) : json_object();
    json_object_foreach((json_t *)in, k, v) {
        if (json_is_null(v))
            json_object_del(out, k);
        else
            json_object_set(out, k, v);
    }
    return out;
}

/* PUT /admin/teams/{teamID}/limits: the team's own quotas, stored in its record, then in force.
 * Sandboxes and snapshots already over a lowered quota stay; new ones are refused. */
static void limits_put(lel_server_t *srv, lel_team_t *t, lel_call_t *c)
{
    json_t *rec, *body = c->json ? json_object_get(c->json, "limits") : NULL;
    if (!body)
        body = c->json; /* the limits themselves, or wrapped as {"limits": {...}} */
    if (!body) {
        lel_call_error(c, 400, "invalid body: expected the limits to set, e.g. {\"maxSandboxes\": 10}");
        return;
    }
    if (lel_store_get(srv->store, LEL_CF_TEAMS, t->id, &rec) < 0) {
        lel_call_error(c, 404, "team not found");
        return;
    }
    json_t *lim = limits_merge(c, json_object_get(rec, "limits"), body);
    if (!lim) {
        json_decref(rec);
        return;
    }
    json_object_set_new(rec, "limits", lim);
    int r = lel_store_put(srv->store, LEL_CF_TEAMS, t->id, rec);
    if (r < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        return;
    }
    lel_team_set_limits(t, lim);
    json_decref(rec);
    lel_call_reply(c, 200, team_view(t));
}

/* lastUsed is kept in memory on every request and persisted here at most once a second per key. */
static void key_touch(lel_server_t *srv, lel_team_t *t, const char *key_id, int64_t ms)
{
    char path[64];
    json_t *rec;
    key_path(path, sizeof(path), t->id, key_id);
    if (lel_store_get(srv->store, LEL_CF_KEYS, path, &rec) < 0)
        return; /* revoked meanwhile */
    lel_json_set_time(rec, "lastUsed", ms);
    lel_store_put(srv->store, LEL_CF_KEYS, path, rec);
    json_decref(rec);
}

static void team_call(lel_team_t *t, lel_call_t *c)
{
    lel_server_t *srv = t->srv;
    switch (c->route) {
    case R_KEYS_CREATE: keys_create(srv, t, c); break;
    case R_KEYS_LIST: list(srv, t, c, LEL_CF_KEYS, collect_key); break;
    case R_KEY_DELETE: key_delete(srv, t, c); break;
    case R_TEAM_GET: team_get(t, c); break;
    case R_ADMIN_TEAM_LIMITS: limits_put(srv, t, c); break;
    case R_MEMBERS_CREATE: members_create(srv, t, c); break;
    case R_MEMBERS_LIST: list(srv, t, c, LEL_CF_MEMBERS, collect_member); break;
    case R_MEMBER_DELETE: delete_owned(srv, t, c, LEL_CF_MEMBERS, "member", NULL, NULL); break;
    case R_SNAP_LIST: lel_snapshot_list(srv, c); break;
    case R_SNAP_DELETE: {
        /* the record and the image's owner reference in one batch: the files stay while a
         * sandbox started from it or a diff over it needs them */
        char img[4200], key[4200];
        lel_core_image_path(srv, c->id, img, sizeof(img));
        lel_layer_key(srv, img, key, sizeof(key));
        if (delete_owned(srv, t, c, LEL_CF_SNAPSHOTS, "snapshot", NULL, strlen(c->id) <= LEL_ID_LEN ? key : NULL) == 0)
            atomic_fetch_sub(&t->snapshots, 1);
        break;
    }
    case R_SBX_LIST: lel_sandbox_list(srv, c); break;
    case R_TPL_CREATE: lel_template_create(srv, c); break;
    case R_TPL_LIST: lel_template_list(srv, c); break;
    case R_TPL_GET: case R_TPL_BUILD: case R_TPL_BUILD_STATUS: lel_template_read(srv, c); break;
    case R_TPL_ALIAS: lel_template_alias(srv, c); break;
    case R_TPL_E2B_CREATE:
        if (lel_template_e2b_create(srv, c))
            return; /* a rebuild: that template's actor answers */
        break;
    default: lel_call_error(c, 500, "unrouted call"); break;
    }
    lel_call_done(c);
}

static void team_handle(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    lel_team_t *t = state;
    if (m->type == LEL_MSG_CALL && lel__abandoned(m->ptr))
        lel_call_done(m->ptr);
    else if (m->type == LEL_MSG_CALL)
        team_call(t, m->ptr);
    else if (m->type == LEL_MSG_KEY_TOUCH)
        key_touch(t->srv, t, m->ptr, m->arg);
    if (m->type == LEL_MSG_KEY_TOUCH)
        free(m->ptr);
    lel_msg_free(m);
}

/* ---- credentials (loop threads) ---- */

static int valid_key_format(const char *k)
{
    if (strncmp(k, "lel_", 4) || strlen(k) != KEY_HEX + 4)
        return 0;
    for (const char *p = k + 4; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return 0;
    return 1;
}

struct touch {
    int64_t now;
    lel_team_t *team;
    char id[LEL_ID_LEN + 1];
    int persist;
};

/* Under the index lock: a revocation may free the entry as soon as we let go. */
static void use_key(void *value, void *ctx)
{
    struct lel_key *k = value;
    struct touch *tc = ctx;
    tc->team = k->team;
    memcpy(tc->id, k->id, sizeof(tc->id));
    atomic_store(&k->last_used_ms, tc->now);
    long long prev = atomic_load(&k->persisted_ms);
    tc->persist = tc->now - prev >= 1000 && atomic_compare_exchange_strong(&k->persisted_ms, &prev, tc->now);
}

int lel_auth_resolve(lel_server_t *srv, lel_call_t *c)
{
    const char *key = c->api_key;
    const char *bearer = c->bearer && !strncasecmp(c->bearer, "Bearer ", 7) ? c->bearer + 7 : NULL;
    /* two credentials that disagree are refused, never resolved by precedence: a proxy that adds
     * one must not silently decide which team a request acts as */
    if ((key && bearer && strcmp(key, bearer)) || (c->admin_token && (key || bearer))) {
        lel_call_error(c, 401, "conflicting credentials: send one of X-API-Key, Authorization: Bearer or X-Admin-Token");
        return -EACCES;
    }
    if (!key)
        key = bearer;
    if (key) {
        if (!valid_key_format(key)) {
            lel_call_error(c, 401, "malformed API key (expected lel_ followed by 40 lowercase hex digits)");
            return -EACCES;
        }
        char hash[65];
        struct touch tc = {lel_now_ms(), NULL, {0}, 0};
        lel_sha256_hex(key, strlen(key), hash);
        if (!lel_registry_get(srv->keys, hash, use_key, &tc)) {
            lel_call_error(c, 401, "invalid API key");
            return -EACCES;
        }
        if (tc.persist) {
            lel_msg_t *m = lel_msg_new(LEL_MSG_KEY_TOUCH, tc.now, strdup(tc.id));
            if (m && (!m->ptr || lel_actor_send(tc.team->actor, m) < 0)) {
                free(m->ptr);
                lel_msg_free(m);
            }
        }
        c->team = tc.team;
        snprintf(c->key_id, sizeof(c->key_id), "%s", tc.id);
        return 0;
    }
    if (c->admin_token) {
        const char *tok = c->admin_token, *want = srv->cfg.admin_token;
        if (!*want || !lel_ct_equal(tok, strlen(tok), want, strlen(want))) {
            lel_call_error(c, 401, "invalid admin token");
            return -EACCES;
        }
        lel_team_t *t = c->team_header ? lel_registry_get(srv->teams, c->team_header, NULL, NULL) : NULL;
        if (!t) {
            lel_call_error(c, 401, "X-Team-ID must name an existing team when using X-Admin-Token");
            return -EACCES;
        }
        c->team = t;
        snprintf(c->key_id, sizeof(c->key_id), "admin:%s", t->id);
        return 0;
    }
    lel_call_error(c, 401, "missing credentials: send X-API-Key or Authorization: Bearer");
    return -EACCES;
}

/* ---- creation, loading, first start ---- */

static int write_key_file(const char *dir, const char *key, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/initial-api-key", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || dprintf(fd, "%s\n", key) < 0 || fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

/* Creates a team and its first key in one batch (plus `meta` when given) and registers both.
 * With `key_file_dir`, the key is written there before the batch commits: only its hash is
 * stored, so a key the store knows must never be lost. Returns the key record (caller frees), or
 * NULL with err filled and *rc the store's error (-ENOSPC: the data dir is full) or -EIO. */
static json_t *create_team(lel_server_t *srv, const char *id, const char *name, char key[KEY_HEX + 5],
                           const json_t *meta, const char *key_file_dir, json_t *limits, char *err, size_t errlen,
                           int *rc)
{
    int64_t now = lel_now_ms();
    char hash[65], path[64];
    lel_team_t *t = lel_team_new(srv, id, name, now);
    json_t *rec = t ? new_key(t, "initial", key, hash) : NULL;
    if (!rec)
        goto fail;
    if (key_file_dir && write_key_file(key_file_dir, key, err, errlen) < 0)
        goto fail;
    json_t *team = json_pack("{s:s, s:s, s:I}", "teamID", id, "name", name, "createdAtMs", (json_int_t)now);
    if (limits) {
        json_object_set(team, "limits", limits);
        lel_team_set_limits(t, limits);
    }
    lel_batch_t *b = lel_batch_new(srv->store);
    key_path(path, sizeof(path), id, json_string_value(json_object_get(rec, "id")));
    lel_batch_put(b, LEL_CF_TEAMS, id, team);
    lel_batch_put(b, LEL_CF_KEYS, path, rec);
    if (meta)
        lel_batch_put(b, LEL_CF_META, "initialized", meta);
    json_decref(team);
    if ((*rc = lel_store_write(srv->store, b)) < 0) {
        snprintf(err, errlen, "store write failed%s", *rc == -ENOSPC ? ": the data directory is full" : "");
        goto fail;
    }
    if (lel_registry_put(srv->teams, id, t) < 0 || index_key(srv, t, json_string_value(json_object_get(rec, "id")), hash, 0) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail; /* the records are stored; the next start loads them */
    }
    return rec;
fail:
    json_decref(rec);
    if (t)
        lel_team_free(t);
    return NULL;
}

void lel_team_admin_create(lel_server_t *srv, lel_call_t *c)
{
    const char *name = NULL;
    char id[LEL_ID_LEN + 1], key[KEY_HEX + 5];
    if (lel_call_str_field(c, "name", 128, &name) < 0)
        return;
    if (!name || !*name) {
        lel_call_error(c, 400, "invalid field 'name': a team name is required");
        return;
    }
    json_t *in = json_object_get(c->json, "limits"), *lim = in ? limits_merge(c, NULL, in) : NULL;
    if (in && !lim)
        return;
    char err[128];
    lel_random_id(id);
    int r = -EIO;
    json_t *rec = create_team(srv, id, name, key, NULL, NULL, lim, err, sizeof(err), &r);
    json_decref(lim);
    if (!rec) {
        lel_call_store_failed(c, r);
        return;
    }
    json_t *kv = key_view(srv, rec);
    json_object_set_new(kv, "key", json_string(key));
    json_t *v = json_pack("{s:s, s:s, s:s, s:o}", "teamID", id, "name", name, "apiKey", key, "key", kv);
    lel_json_set_time(v, "createdAt", lel_now_ms());
    json_decref(rec);
    lel_call_reply(c, 201, v);
}

void lel_team_admin_limits(lel_server_t *srv, lel_call_t *c)
{
    lel_team_t *t = lel_registry_get(srv->teams, c->id, NULL, NULL); /* teams live as long as the server */
    if (!t) {
        lel_call_error(c, 404, "team not found");
        lel_call_done(c);
        return;
    }
    lel_call_send(t->actor, c);
}

int lel_team_bootstrap(lel_server_t *srv, char *err, size_t errlen)
{
    json_t *meta;
    if (lel_store_get(srv->store, LEL_CF_META, "initialized", &meta) == 0) {
        json_decref(meta);
        return 0;
    }
    if (srv->cluster && lel_registry_count(srv->teams) > 0) { /* another node started the cluster */
        meta = json_pack("{s:b}", "joinedCluster", 1);
        int r = lel_store_put(srv->store, LEL_CF_META, "initialized", meta);
        json_decref(meta);
        if (r < 0)
            snprintf(err, errlen, "store write failed");
        return r;
    }
    char id[LEL_ID_LEN + 1], key[KEY_HEX + 5];
    lel_random_id(id);
    meta = json_pack("{s:s}", "defaultTeam", id);
    int r = -EIO;
    json_t *rec = create_team(srv, id, "default", key, meta, srv->cfg.data_dir, NULL, err, errlen, &r);
    json_decref(meta);
    if (!rec)
        return -EIO;
    json_decref(rec);
    printf("lelantosd: created team 'default' (%s) with its first API key (also in %s/initial-api-key):\n%s\n", id,
           srv->cfg.data_dir, key);
    fflush(stdout);
    return 0;
}

static int load_team(void *ctx, const char *key, json_t *rec)
{
    lel_server_t *srv = ctx;
    (void)key;
    lel_team_t *t = lel_team_new(srv, json_string_value(json_object_get(rec, "teamID")),
                                 json_string_value(json_object_get(rec, "name")),
                                 json_integer_value(json_object_get(rec, "createdAtMs")));
    if (t)
        lel_team_set_limits(t, json_object_get(rec, "limits"));
    if (t && lel_registry_put(srv->teams, t->id, t) < 0)
        lel_team_free(t);
    return 0;
}

/* A stored snapshot (snapshots/<teamID>/<id>) counts against its team's quota. */
static int count_snapshot(void *ctx, const char *key, json_t *rec)
{
    lel_server_t *srv = ctx;
    char team[LEL_ID_LEN + 1];
    const char *slash = strchr(key, '/');
    (void)rec;
    if (!slash || (size_t)(slash - key) > LEL_ID_LEN)
        return 0;
    snprintf(team, sizeof(team), "%.*s", (int)(slash - key), key);
    lel_team_t *t = lel_registry_get(srv->teams, team, NULL, NULL);
    if (t)
        atomic_fetch_add(&t->snapshots, 1);
    return 0;
}

static int load_key(void *ctx, const char *key, json_t *rec)
{
    lel_server_t *srv = ctx;
    (void)key;
    lel_team_t *t = lel_registry_get(srv->teams, json_string_value(json_object_get(rec, "teamID")), NULL, NULL);
    if (t)
        index_key(srv, t, json_string_value(json_object_get(rec, "id")), json_string_value(json_object_get(rec, "hash")), 0);
    return 0;
}

int lel_team_load_all(lel_server_t *srv, char *err, size_t errlen)
{
    if (lel_store_scan(srv->store, LEL_CF_TEAMS, "", NULL, load_team, srv) < 0 ||
        lel_store_scan(srv->store, LEL_CF_KEYS, "", NULL, load_key, srv) < 0 ||
        lel_store_scan(srv->store, LEL_CF_SNAPSHOTS, "", NULL, count_snapshot, srv) < 0) {
        snprintf(err, errlen, "cannot load teams and keys from the store");
        return -EIO;
    }
    return 0;
}

void lel_team_shared_changed(void *ctx, enum lel_cf cf, const char *key, json_t *rec, json_t *old)
{
    lel_server_t *srv = ctx;
    (void)key;
    if (cf == LEL_CF_TEAMS && rec) {
        const char *id = json_string_value(json_object_get(rec, "teamID"));
        if (id && !lel_registry_get(srv->teams, id, NULL, NULL))
            load_team(srv, key, rec); /* teams are never deleted */
    } else if (cf == LEL_CF_KEYS && rec) {
        const char *hash = json_string_value(json_object_get(rec, "hash"));
        if (hash && !lel_registry_get(srv->keys, hash, NULL, NULL))
            load_key(srv, key, rec); /* a touch of a known key changes nothing here */
    } else if (cf == LEL_CF_KEYS && old) {
        const char *hash = json_string_value(json_object_get(old, "hash"));
        if (hash)
            free(lel_registry_del(srv->keys, hash)); /* revoked here too */
    }
}
