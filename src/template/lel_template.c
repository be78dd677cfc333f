/* Templates: definitions validated and stored, one actor per template, builds recorded and
 * run by the template's actor (lel_build.c), which also handles DELETE (cancelling a build).
 * Reads are answered from the store on the caller's team actor, never held up by a build. In
 * API-only mode (no VMs) a build stays `waiting` — never a fake `ready` — so only the built-ins
 * start sandboxes there.
 *
 * Records: templates/<teamID>/<templateID> (the built-in `base` lives under "_builtin"),
 * builds/<templateID>/<buildID>, and a built-in's spawns by one team in
 * meta/spawns/<teamID>/<templateID> (a team sees only its own). Images:
 * <data_dir>/templates/<templateID>.img and its unpacked memory <templateID>.raw, which
 * sandboxes map copy-on-write.
 *
 * Names: srv->template_names maps "<teamID>/<name>" (and each alias) to the template, so a
 * sandbox, a GET or a fromTemplate may name a template instead of giving its id. */
#include "lel_template_int.h"

#include "../core/lel_layer.h"
#include "../image/lel_image.h"
#include "../vmm/lel_vmm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const private_fields[] = {"guestImage", "teamID", "definition", "imageBuildID", "uploadToken", NULL};

static void template_handle(lel_actor_t *self, void *state, lel_msg_t *m);

static const char *const status_names[] = {"waiting", "building", "ready", "error"};

enum lel_tpl_status lel__template_status(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, status_names[i]))
            return (enum lel_tpl_status)i;
    return TPL_WAITING;
}

static int is_builtin(const struct lel_template *t)
{
    return !strcmp(t->team_id, LEL_BUILTIN_TEAM);
}

static void template_free(void *p)
{
    struct lel_template *t = p;
    lel__template_build_abandon(t); /* the daemon is stopping mid-build: the next start marks it error */
    lel__template_pool_drain(t, 1); /* emptied by the stop already; a template freed otherwise has none */
    pthread_mutex_destroy(&t->pool_lock);
    free(t->write_set);
    lel__template_context_abandon(t);
    if (t->image_id[0]) /* a template that was never made (its use is given back at DELETE) */
        lel_image_release(t->srv, t->image_id);
    json_decref(t->defaults);
    json_decref(t->retired);
    json_decref(t->rec);
    pthread_mutex_destroy(&t->image_lock);
    free(t);
}

static void load_image_stem(struct lel_template *t);

lel_actor_t *lel__template_new(lel_server_t *srv, json_t *rec)
{
    struct lel_template *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->srv = srv;
    t->rec = rec;
    snprintf(t->team_id, sizeof(t->team_id), "%s", json_string_value(json_object_get(rec, "teamID")));
    snprintf(t->id, sizeof(t->id), "%s", json_string_value(json_object_get(rec, "templateID")));
    snprintf(t->name, sizeof(t->name), "%s", json_string_value(json_object_get(rec, "name")));
    t->cpu = (int)json_integer_value(json_object_get(rec, "cpuCount"));
    t->mem_mb = (int)json_integer_value(json_object_get(rec, "memoryMB"));
    t->disk_mb = (int)json_integer_value(json_object_get(rec, "diskSizeMB"));
    json_t *def = json_object_get(rec, "definition");
    t->defaults = lel__template_defaults_of(def);
    snprintf(t->image_id, sizeof(t->image_id), "%s", lel__template_image_id(def) ?: "");
    atomic_init(&t->image_ready, json_is_string(json_object_get(rec, "imageBuildID")));
    pthread_mutex_init(&t->image_lock, NULL);
    load_image_stem(t);
    atomic_init(&t->in_use, 0);
    atomic_init(&t->status, lel__template_status(json_string_value(json_object_get(rec, "buildStatus"))));
    pthread_mutex_init(&t->pool_lock, NULL);
    lel_actor_t *a = lel_actor_new(srv->pool, template_handle, t, template_free);
    if (!a) {
        json_decref(t->defaults);
        pthread_mutex_destroy(&t->pool_lock);
        pthread_mutex_destroy(&t->image_lock);
        free(t);
    }
    else
        t->actor = a;
    return a;
}

void lel__template_rec_path(const char *team, const char *id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", team, id);
}

static void spawns_path(const char *team, const char *id, char *buf, size_t n)
{
    snprintf(buf, n, "spawns/%s/%s", team, id);
}

/* The record as `team` sees it: without private fields, and for a built-in (shared by every
 * team) with that team's own spawnCount and lastSpawnedAt. */
json_t *lel__template_public_view(lel_server_t *srv, json_t *rec, const char *team)
{
    json_t *v = json_deep_copy(rec), *sp = NULL;
    char path[96];
    for (int i = 0; private_fields[i]; i++)
        json_object_del(v, private_fields[i]);
    if (!strcmp(json_string_value(json_object_get(rec, "teamID")), LEL_BUILTIN_TEAM)) {
        spawns_path(team, json_string_value(json_object_get(rec, "templateID")), path, sizeof(path));
        if (lel_store_get(srv->store, LEL_CF_META, path, &sp) < 0)
            sp = NULL;
        json_object_set_new(v, "spawnCount", json_integer(sp ? json_integer_value(json_object_get(sp, "spawnCount")) : 0));
        json_object_set(v, "lastSpawnedAt", sp ? json_object_get(sp, "lastSpawnedAt") : json_null());
        json_decref(sp);
    }
    return v;
}

struct find_ctx {
    lel_team_t *team;
    lel_actor_t *found;
};

static void ref_if_visible(void *value, void *ctx)
{
    struct find_ctx *f = ctx;
    struct lel_template *t = lel_actor_state(value);
    if (!strcmp(t->team_id, LEL_BUILTIN_TEAM) || !strcmp(t->team_id, f->team->id)) {
        lel_actor_ref(value);
        f->found = value;
    }
}

static void ref_found(void *value, void *ctx)
{
    lel_actor_ref(value);
    *(lel_actor_t **)ctx = value;
}

lel_actor_t *lel_template_lookup(lel_server_t *srv, lel_team_t *team, const char *id)
{
    struct find_ctx f = {team, NULL};
    char key[LEL_ID_LEN + 16 + 280];
    if (!id)
        return NULL;
    lel_registry_get(srv->templates, id, ref_if_visible, &f);
    size_t n = strlen(id);
    if (!f.found && n > 8 && !strcmp(id + n - 8, ":default") && n - 8 <= 128) { /* E2B's: no tag */
        char plain[136];
        snprintf(plain, sizeof(plain), "%.*s", (int)(n - 8), id);
        return lel_template_lookup(srv, team, plain);
    }
    if (!f.found && n <= 260) { /* a name, or E2B's name:tag (tags are indexed as names) */
        /* a name: the team's own first, then the built-ins' (which no team may take) */
        snprintf(key, sizeof(key), "%s/%s", team->id, id);
        lel_registry_get(srv->template_names, key, ref_found, &f.found);
        snprintf(key, sizeof(key), "%s/%s", LEL_BUILTIN_TEAM, id);
        if (!f.found)
            lel_registry_get(srv->template_names, key, ref_found, &f.found);
    }
    return f.found;
}

int lel_template_ready(lel_actor_t *a, const char **status)
{
    struct lel_template *t = lel_actor_state(a);
    int st = atomic_load(&t->status);
    *status = status_names[st];
    return is_builtin(t) || st == TPL_READY;
}

/* Its E2B tags as names: "<team>/<name>:<tag>". */
static void tag_key(struct lel_template *t, json_t *tag, char *key, size_t n)
{
    snprintf(key, n, "%s/%s:%s", t->team_id, t->name, json_string_value(json_object_get(tag, "tag")) ?: "");
}

/* Indexes its name, aliases and tags (a duplicate alias is skipped: the first holder keeps it). */
void lel__template_names_put(struct lel_template *t)
{
    char key[LEL_ID_LEN + 16 + 280];
    size_t i;
    json_t *al;
    snprintf(key, sizeof(key), "%s/%s", t->team_id, t->name);
    lel_registry_put(t->srv->template_names, key, t->actor);
    json_array_foreach(json_object_get(t->rec, "aliases"), i, al)
    {
        snprintf(key, sizeof(key), "%s/%s", t->team_id, json_string_value(al) ? json_string_value(al) : "");
        lel_registry_put(t->srv->template_names, key, t->actor);
    }
    json_array_foreach(json_object_get(t->rec, "tags"), i, al)
    {
        tag_key(t, al, key, sizeof(key));
        lel_registry_put(t->srv->template_names, key, t->actor);
    }
}

/* Removes the entries of names_put that are this template's. */
void lel__template_names_del(struct lel_template *t)
{
    char key[LEL_ID_LEN + 16 + 280];
    size_t i;
    json_t *al;
    json_array_foreach(json_object_get(t->rec, "tags"), i, al)
    {
        tag_key(t, al, key, sizeof(key));
        if (lel_registry_get(t->srv->template_names, key, NULL, NULL) == t->actor)
            lel_registry_del(t->srv->template_names, key);
    }
    snprintf(key, sizeof(key), "%s/%s", t->team_id, t->name);
    if (lel_registry_get(t->srv->template_names, key, NULL, NULL) == t->actor)
        lel_registry_del(t->srv->template_names, key);
    json_array_foreach(json_object_get(t->rec, "aliases"), i, al)
    {
        snprintf(key, sizeof(key), "%s/%s", t->team_id, json_string_value(al) ? json_string_value(al) : "");
        if (lel_registry_get(t->srv->template_names, key, NULL, NULL) == t->actor)
            lel_registry_del(t->srv->template_names, key);
    }
}

int lel__template_name_taken(lel_server_t *srv, const char *team, const char *name)
{
    char key[LEL_ID_LEN + 16 + 140];
    snprintf(key, sizeof(key), "%s/%s", team, name);
    return lel_registry_get(srv->template_names, key, NULL, NULL) != NULL;
}

void lel_template_defaults(lel_actor_t *a, json_t **env, const char **workdir)
{
    struct lel_template *t = lel_actor_state(a);
    *env = json_object_get(t->defaults, "env");
    *workdir = json_string_value(json_object_get(t->defaults, "workdir"));
    if (!*workdir)
        *workdir = "/";
}

void lel_template_shape(lel_actor_t *a, const char **id, int *cpu, int *mem_mb, int *disk_mb)
{
    struct lel_template *t = lel_actor_state(a);
    *id = t->id;
    *cpu = t->cpu;
    *mem_mb = t->mem_mb;
    *disk_mb = t->disk_mb;
}

void lel__template_image(struct lel_template *t, char *buf, size_t n, int raw)
{
    pthread_mutex_lock(&t->image_lock);
    snprintf(buf, n, "%s/templates/%s.%s", t->srv->cfg.data_dir, t->image_stem, raw ? "raw" : "img");
    pthread_mutex_unlock(&t->image_lock);
}

void lel__template_build_image(struct lel_template *t, const char *build_id, char *buf, size_t n, int raw)
{
    snprintf(buf, n, "%s/templates/%s.%s.%s", t->srv->cfg.data_dir, t->id, build_id, raw ? "raw" : "img");
}

int lel__template_image_switch(struct lel_template *t, const char *build_id)
{
    char img[4200], key[4200], old[4200];
    lel__template_build_image(t, build_id, img, sizeof(img), 0);
    lel_layer_key(t->srv, img, key, sizeof(key));
    lel__template_image(t, img, sizeof(img), 0);
    lel_layer_key(t->srv, img, old, sizeof(old));
    int had = json_is_string(json_object_get(t->rec, "imageBuildID")) && access(img, F_OK) == 0 && strcmp(old, key);
    struct lel_layer_op ops[2] = {{key, 1, 1, NULL, 0, 0}, {old, -1, 0, NULL, 0, 0}};
    int r = lel_layer_write(t->srv, lel_batch_new(t->srv->store), ops, had ? 2 : 1);
    if (r == 0) {
        pthread_mutex_lock(&t->image_lock);
        snprintf(t->image_stem, sizeof(t->image_stem), "%s.%s", t->id, build_id);
        pthread_mutex_unlock(&t->image_lock);
    }
    return r;
}

void lel__template_image_drop(struct lel_template *t)
{
    char img[4200], key[4200];
    lel__template_image(t, img, sizeof(img), 0);
    lel_layer_key(t->srv, img, key, sizeof(key));
    struct lel_layer_op drop = {key, -1, 0, NULL, 0, 0};
    if (json_is_string(json_object_get(t->rec, "imageBuildID")) && access(img, F_OK) == 0 &&
        lel_layer_write(t->srv, lel_batch_new(t->srv->store), &drop, 1) < 0)
        fprintf(stderr, "lelantosd: template %s: its image's reference could not be dropped; its files stay\n", t->id);
    pthread_mutex_lock(&t->image_lock);
    t->image_stem[0] = 0; /* none now: a later build's switch has nothing to drop again */
    pthread_mutex_unlock(&t->image_lock);
}

/* The stem of the image a loaded template has: its build's own files, or the one name of
 * images built before each build had its own. */
static void load_image_stem(struct lel_template *t)
{
    const char *bid = json_string_value(json_object_get(t->rec, "imageBuildID"));
    char img[4200];
    snprintf(t->image_stem, sizeof(t->image_stem), "%s", t->id);
    if (!bid)
        return;
    lel__template_build_image(t, bid, img, sizeof(img), 0);
    if (access(img, F_OK) == 0)
        snprintf(t->image_stem, sizeof(t->image_stem), "%s.%s", t->id, bid);
}

int lel_template_image(lel_actor_t *a, char *img, char *raw, size_t n)
{
    struct lel_template *t = lel_actor_state(a);
    if (!atomic_load(&t->image_ready))
        return 0;
    lel__template_image(t, img, n, 0);
    lel__template_image(t, raw, n, 1);
    return 1;
}

void lel_template_acquire(lel_actor_t *a, lel_team_t *spawned_by)
{
    struct lel_template *t = lel_actor_state(a);
    atomic_fetch_add(&t->in_use, 1);
    if (spawned_by) { /* teams live until shutdown, after the actors */
        lel_msg_t *m = lel_msg_new(LEL_MSG_SPAWNED, lel_now_ms(), spawned_by);
        if (m && lel_actor_send(a, m) < 0)
            lel_msg_free(m);
    }
}

void lel_template_release(lel_actor_t *a)
{
    atomic_fetch_sub(&((struct lel_template *)lel_actor_state(a))->in_use, 1);
}

/* POST /templates, on the team actor (so names are unique per team). */
void lel_template_create(lel_server_t *srv, lel_call_t *c)
{
    long long cpu = 1, mem = 256;
    json_t *def = lel__template_parse_definition(srv, c, &cpu, &mem);
    if (!def)
        return;
    const char *image_id = lel__template_image_id(def);
    const char *name = json_string_value(json_object_get(c->json, "name"));
    char tid[LEL_ID_LEN + 1], bid[LEL_ID_LEN + 1], path[64];
    /* names are unique per team (creation runs on the team actor), and a built-in's name is
     * nobody's: a team template named `base` would shadow the built-in for that team */
    if (lel__template_name_taken(srv, LEL_BUILTIN_TEAM, name) || lel__template_name_taken(srv, c->team->id, name)) {
        if (image_id)
            lel_image_release(srv, image_id);
        json_decref(def);
        lel_call_error(c, 409, "a %stemplate named '%s' already exists", lel__template_name_taken(srv, LEL_BUILTIN_TEAM, name) ? "built-in " : "",
                       name);
        return;
    }
    lel_random_id(tid);
    lel_random_id(bid);
    int64_t now = lel_now_ms();
    json_t *rec = json_pack("{s:s, s:s, s:s, s:[], s:I, s:I, s:i, s:s, s:s, s:i, s:n, s:o}", "templateID", tid, "teamID",
                            c->team->id, "name", name, "aliases", "cpuCount", (json_int_t)cpu, "memoryMB",
                            (json_int_t)mem, "diskSizeMB", (json_int_t)mem, "buildID", bid, "buildStatus", "waiting", "spawnCount",
                            0, "lastSpawnedAt", "definition", def);
    lel_json_set_time(rec, "createdAt", now);
    lel_json_set_time(rec, "updatedAt", now);
    json_t *build = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "buildID", bid, "templateID", tid, "status", "waiting", "logs",
                              "logEntries");
    lel_json_set_time(build, "createdAt", now);
    if (lel__template_needs_context(def)) {
        char line[160], ts[32];
        snprintf(line, sizeof(line), "waiting for the build context of its copy steps: PUT /templates/%s/context", tid);
        lel_rfc3339(now, ts);
        json_array_append_new(json_object_get(build, "logs"), json_string(line));
        json_array_append_new(json_object_get(build, "logEntries"),
                              json_pack("{s:s, s:s, s:s}", "timestamp", ts, "level", "info", "message", line));
    }
    lel_batch_t *b = lel_batch_new(srv->store);
    lel__template_rec_path(c->team->id, tid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
    lel__template_rec_path(tid, bid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_BUILDS, path, build);
    json_decref(build);
    lel_actor_t *a = lel__template_new(srv, rec); /* the image's use is the template's from here */
    if (!a) {
        if (image_id)
            lel_image_release(srv, image_id);
        lel_batch_free(b);
        json_decref(rec);
        lel_call_error(c, 503, "out of memory");
        return;
    }
    int r = lel_store_write(srv->store, b);
    if (r < 0) {
        lel_actor_unref(a); /* gives the image's use back */
        lel_call_store_failed(c, r);
        return;
    }
    /* named before it can be found at all: a DELETE, which needs to find it, comes after */
    lel__template_names_put(lel_actor_state(a));
    if (lel_registry_put(srv->templates, tid, a) < 0) {
        lel__template_names_del(lel_actor_state(a));
        lel_actor_unref(a);
    } else if (srv->use_vm) {
        lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(bid));
        if (m && (!m->ptr || lel_actor_send(a, m) < 0)) {
            free(m->ptr);
            lel_msg_free(m);
        }
    }
    /* "building" as the contract has it once a builder took it (its record says "waiting" while
     * it waits for a build slot); without a VM backend nothing will build it */
    lel_call_reply(c, 202, json_pack("{s:s, s:s, s:s}", "templateID", tid, "buildID", bid, "status",
                                     srv->use_vm ? "building" : "waiting"));
}

struct list_ctx {
    json_t *out;
    lel_server_t *srv;
    const char *team;
};

static int collect(void *ctx, const char *key, json_t *rec)
{
    struct list_ctx *l = ctx;
    (void)key;
    json_array_append_new(l->out, lel__template_public_view(l->srv, rec, l->team));
    return 0;
}

void lel_template_list(lel_server_t *srv, lel_call_t *c)
{
    struct list_ctx l = {json_array(), srv, c->team->id};
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%s/", c->team->id);
    if (lel_store_scan(srv->store, LEL_CF_TEMPLATES, LEL_BUILTIN_TEAM "/", NULL, collect, &l) < 0 ||
        lel_store_scan(srv->store, LEL_CF_TEMPLATES, prefix, NULL, collect, &l) < 0) {
        json_decref(l.out);
        lel_call_store_failed(c, -EIO);
        return;
    }
    lel_call_reply(c, 200, l.out);
}

/* ---- reads: GET /templates/{id} and its builds, on the caller's team actor ---- */

static int collect_build(void *ctx, const char *key, json_t *rec)
{
    (void)key;
    json_t *v = json_pack("{s:O, s:O}", "buildID", json_object_get(rec, "buildID"), "status", json_object_get(rec, "status"));
    json_object_set(v, "createdAt", json_object_get(rec, "createdAt"));
    json_array_append_new(ctx, v);
    return 0;
}

/* A query parameter that must be an integer in lo..hi: 0 (absent: *v untouched), or -EINVAL
 * with the 400 set. */
static int int_query(lel_call_t *c, const char *name, long long lo, long long hi, long long *v)
{
    char *q = lel_call_query(c, name), *end = NULL;
    long long x = q ? strtoll(q, &end, 10) : 0;
    int bad = q && (!*q || *end || x < lo || x > hi);
    free(q);
    if (bad) {
        lel_call_error(c, 400, "invalid query '%s': must be an integer in %lld..%lld", name, lo, hi);
        return -EINVAL;
    }
    if (q)
        *v = x;
    return 0;
}

static void get_build(lel_server_t *srv, const char *tid, lel_call_t *c)
{
    char path[64];
    long long o = 0, limit = LLONG_MAX;
    int e2b = c->route == R_TPL_BUILD_STATUS; /* E2B's: pages of at most 100, reason an object */
    json_t *b;
    if (e2b)
        limit = 100;
    if (int_query(c, "logsOffset", 0, LLONG_MAX, &o) < 0 || (e2b && int_query(c, "limit", 0, 100, &limit) < 0))
        return;
    lel__template_rec_path(tid, c->id2, path, sizeof(path));
    if (strlen(c->id2) > LEL_ID_LEN || lel_store_get(srv->store, LEL_CF_BUILDS, path, &b) < 0) {
        lel_call_error(c, 404, "build not found");
        return;
    }
    json_t *logs = json_object_get(b, "logs"), *entries = json_object_get(b, "logEntries");
    json_t *v = json_pack("{s:s, s:O, s:O, s:[], s:[]}", "templateID", tid, "buildID", json_object_get(b, "buildID"),
                          "status", json_object_get(b, "status"), "logs", "logEntries");
    for (size_t i = (size_t)o; i < json_array_size(logs) && (long long)(i - (size_t)o) < limit; i++)
        json_array_append(json_object_get(v, "logs"), json_array_get(logs, i));
    for (size_t i = (size_t)o; i < json_array_size(entries) && (long long)(i - (size_t)o) < limit; i++)
        json_array_append(json_object_get(v, "logEntries"), json_array_get(entries, i));
    json_t *reason = json_object_get(b, "reason"), *step = json_object_get(b, "reasonStep");
    if (reason && e2b) /* {message, step ("base", the step's number, "finalize"), logEntries} as the SDK reads it */
        json_object_set_new(v, "reason", json_pack("{s:O, s:[]}", "message", reason, "logEntries"));
    else if (reason)
        json_object_set(v, "reason", reason);
    if (reason && e2b && json_is_string(step))
        json_object_set(json_object_get(v, "reason"), "step", step);
    json_decref(b);
    lel_call_reply(c, 200, v);
}

/* From the store alone (every change reaches it before the template's actor goes on), never
 * through the template's actor: a build there, even its snapshot, does not delay a read. */
void lel_template_read(lel_server_t *srv, lel_call_t *c)
{
    lel_actor_t *a = lel_template_lookup(srv, c->team, c->id);
    char path[64], tid[LEL_ID_LEN + 1], prefix[32];
    json_t *rec = NULL;
    int r = -ENOENT;
    if (a) {
        struct lel_template *t = lel_actor_state(a);
        snprintf(tid, sizeof(tid), "%s", t->id);
        lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
        lel_actor_unref(a);
        r = lel_store_get(srv->store, LEL_CF_TEMPLATES, path, &rec); /* -ENOENT: deleted just now */
    }
    if (r < 0) {
        if (r == -ENOENT)
            lel_call_error(c, 404, "template not found");
        else
            lel_call_store_failed(c, r);
        return;
    }
    if (c->route == R_TPL_BUILD || c->route == R_TPL_BUILD_STATUS) {
        json_decref(rec);
        get_build(srv, tid, c);
        return;
    }
    json_t *v = lel__template_public_view(srv, rec, c->team->id), *builds = json_array();
    json_decref(rec);
    snprintf(prefix, sizeof(prefix), "%s/", tid);
    if (lel_store_scan(srv->store, LEL_CF_BUILDS, prefix, NULL, collect_build, builds) < 0) {
        json_decref(v);
        json_decref(builds);
        lel_call_store_failed(c, -EIO);
        return;
    }
    json_object_set_new(v, "builds", builds);
    lel_call_reply(c, 200, v);
}

/* ---- the template actor ---- */

/* DELETE: the records go in one batch (nothing changes if it fails), then a build in progress
 * is cancelled (its VM, with the step running in it, destroyed; its slot released), then the
 * image files and the indexes. */
static void delete_template(struct lel_template *t, lel_call_t *c)
{
    char path[64], prefix[32], img[4200];
    lel_batch_t *b = lel_batch_new(t->srv->store);
    lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
    snprintf(prefix, sizeof(prefix), "%s/", t->id);
    lel_batch_del(b, LEL_CF_TEMPLATES, path);
    lel_batch_del_prefix(b, LEL_CF_BUILDS, prefix);
    int r = lel_store_write(t->srv->store, b);
    if (r < 0) {
        lel_call_store_failed(c, r);
        return;
    }
    lel__template_build_abandon(t);
    lel__template_pool_drain(t, 1); /* its pooled VMs go with it, before its image files */
    t->deleted = 1;
    if (t->image_id[0]) { /* its image may go now */
        lel_image_release(t->srv, t->image_id);
        t->image_id[0] = 0;
    }
    lel__template_image_drop(t);
    lel__template_context_abandon(t);
    lel__template_context_path(t, img, sizeof(img));
    unlink(img);
    lel__template_files_remove(t);
    /* the registry's reference goes; sandboxes of a deleted template keep theirs */
    lel__template_names_del(t);
    lel_actor_t *a = lel_registry_del(t->srv->templates, t->id);
    if (a)
        lel_actor_unref(a);
    lel_call_reply(c, 204, NULL);
}

/* DELETE /templates/{id} and PUT /templates/{id}/context (reads go to lel_template_read).
 * Returns 1 when the call is kept (a context's body streams in). */
static int template_call(struct lel_template *t, lel_call_t *c)
{
    int builtin = is_builtin(t);
    if (c->route == R_TPL_FILES_PUT) { /* no team: its token says who may */
        if (!t->deleted)
            return lel__template_e2b_call(t, c);
        lel_call_error(c, 404, "template not found");
        return 0;
    }
    if ((!builtin && strcmp(t->team_id, c->team->id)) || t->deleted) {
        lel_call_error(c, 404, "template not found");
        return 0;
    }
    if (c->route == R_TPL_CONTEXT) {
        if (builtin) {
            lel_call_error(c, 403, "the built-in template takes no build context");
            return 0;
        }
        return lel__template_context_put(t, c);
    }
    if (c->route == R_TPL_REBUILD) {
        if (builtin)
            lel_call_error(c, 403, "the built-in template cannot be rebuilt");
        else
            lel__template_rebuild(t, c);
        return 0;
    }
    if (c->route != R_TPL_DELETE) /* E2B's builder calls (lel_template_e2b.c) */
        return lel__template_e2b_call(t, c);
    if (builtin) {
        lel_call_error(c, 403, "the built-in template cannot be deleted");
    } else if (atomic_load(&t->in_use) > 0) {
        lel_call_error(c, 409, "template is used by %d sandboxes", atomic_load(&t->in_use));
    } else {
        delete_template(t, c);
    }
    return 0;
}

static void spawned(struct lel_template *t, const lel_team_t *team, int64_t ms)
{
    char path[96];
    if (t->deleted) /* a create that found it before the DELETE: the record stays gone */
        return;
    if (is_builtin(t)) { /* shared by every team: each sees only its own spawns */
        json_t *sp = NULL;
        spawns_path(team->id, t->id, path, sizeof(path));
        int r = lel_store_get(t->srv->store, LEL_CF_META, path, &sp);
        if (r == -ENOENT)
            sp = json_object();
        else if (r < 0)
            return; /* unreadable: rather one spawn uncounted than the count lost */
        json_object_set_new(sp, "spawnCount", json_integer(json_integer_value(json_object_get(sp, "spawnCount")) + 1));
        lel_json_set_time(sp, "lastSpawnedAt", ms);
        lel_store_put(t->srv->store, LEL_CF_META, path, sp);
        json_decref(sp);
        return;
    }
    json_t *rec = json_deep_copy(t->rec);
    json_object_set_new(rec, "spawnCount", json_integer(json_integer_value(json_object_get(rec, "spawnCount")) + 1));
    lel_json_set_time(rec, "lastSpawnedAt", ms);
    lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
    if (lel_store_put(t->srv->store, LEL_CF_TEMPLATES, path, rec) == 0) {
        json_decref(t->rec);
        t->rec = rec;
    } else {
        json_decref(rec);
    }
}

static void template_handle(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    struct lel_template *t = state;
    if (m->type == LEL_MSG_CALL) {
        if (lel__abandoned(m->ptr) || !template_call(t, m->ptr))
            lel_call_done(m->ptr);
    } else if (m->type == LEL_MSG_XFER) {
        lel__template_context_step(t, (uint32_t)m->arg);
    } else if (m->type == LEL_MSG_SPAWNED) {
        spawned(t, m->ptr, m->arg);
    } else if (m->type == LEL_MSG_BUILD) {
        lel__template_build(t, m->ptr);
        free(m->ptr);
    } else if (m->type == LEL_MSG_BUILD_STEP) {
        lel__template_build_step(t);
    }
    lel_msg_free(m);
}

/* ---- loading, and the built-in base ---- */

static int load_one(void *ctx, const char *key, json_t *rec)
{
    lel_server_t *srv = ctx;
    lel_core_fix_disk(srv, LEL_CF_TEMPLATES, key, rec);
    lel_actor_t *a = lel__template_new(srv, json_incref(rec));
    if (!a) {
        json_decref(rec);
        return 0;
    }
    struct lel_template *t = lel_actor_state(a);
    if (t->image_id[0] && lel_image_acquire_id(srv, t->image_id) < 0) {
        fprintf(stderr, "lelantosd: template %s names image %s, which is gone\n", t->id, t->image_id);
        t->image_id[0] = 0;
    }
    if (lel_registry_put(srv->templates, json_string_value(json_object_get(rec, "templateID")), a) < 0)
        lel_actor_unref(a);
    else
        lel__template_names_put(t);
    return 0;
}

/* A build that was running when the daemon stopped is over: it is marked error with the reason.
 * One still waiting is started again (when this host runs VMs). */
static int load_build(void *ctx, const char *key, json_t *rec)
{
    lel_server_t *srv = ctx;
    const char *status = json_string_value(json_object_get(rec, "status"));
    lel_actor_t *a = lel_registry_get(srv->templates, json_string_value(json_object_get(rec, "templateID")), NULL, NULL);
    if (!a || !status)
        return 0;
    struct lel_template *t = lel_actor_state(a);
    if (!strcmp(status, "building")) {
        const char *why = "interrupted: lelantosd stopped during the build";
        json_t *b = json_deep_copy(rec);
        json_object_set_new(b, "status", json_string("error"));
        json_object_set_new(b, "reason", json_string(why));
        json_array_append_new(json_object_get(b, "logs"), json_string(why));
        lel_store_put(srv->store, LEL_CF_BUILDS, key, b);
        json_decref(b);
        if (json_equal(json_object_get(t->rec, "buildID"), json_object_get(rec, "buildID"))) {
            char path[64];
            json_object_set_new(t->rec, "buildStatus", json_string("error"));
            atomic_store(&t->status, TPL_ERROR);
            lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
            lel_store_put(srv->store, LEL_CF_TEMPLATES, path, t->rec);
        }
    } else if (!strcmp(status, "waiting") && srv->use_vm) {
        lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(json_string_value(json_object_get(rec, "buildID"))));
        if (m && (!m->ptr || lel_actor_send(a, m) < 0)) {
            free(m->ptr);
            lel_msg_free(m);
        }
    }
    return 0;
}

/* The built-in template is built at first start and again whenever the embedded guest changed
 * (its record keeps the guest's fingerprint); until then sandboxes from it boot. */
static void base_refresh(lel_server_t *srv)
{
    lel_actor_t *a = lel_registry_get(srv->templates, "base", NULL, NULL);
    struct lel_template *t = a ? lel_actor_state(a) : NULL;
    char fp[32], bid[LEL_ID_LEN + 1], path[64];
    if (!t)
        return;
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)lel_vmm_guest_fingerprint());
    const char *have = json_string_value(json_object_get(t->rec, "guestImage"));
    const char *status = json_string_value(json_object_get(t->rec, "buildStatus"));
    if (have && !strcmp(have, fp) && (atomic_load(&t->image_ready) || (status && !strcmp(status, "waiting"))))
        return;
    lel_random_id(bid);
    int64_t now = lel_now_ms();
    json_t *build = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "buildID", bid, "templateID", "base", "status", "waiting",
                              "logs", "logEntries");
    json_t *rec = json_deep_copy(t->rec);
    lel_json_set_time(build, "createdAt", now);
    json_object_set_new(rec, "buildID", json_string(bid));
    json_object_set_new(rec, "buildStatus", json_string("waiting"));
    json_object_set_new(rec, "guestImage", json_string(fp));
    lel_batch_t *b = lel_batch_new(srv->store);
    lel__template_rec_path(LEL_BUILTIN_TEAM, "base", path, sizeof(path));
    lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
    lel__template_rec_path("base", bid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_BUILDS, path, build);
    json_decref(build);
    if (lel_store_write(srv->store, b) < 0) {
        json_decref(rec);
        return;
    }
    json_decref(t->rec);
    t->rec = rec;
    atomic_store(&t->status, TPL_WAITING);
    lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(bid));
    if (m && (!m->ptr || lel_actor_send(a, m) < 0)) {
        free(m->ptr);
        lel_msg_free(m);
    }
}

int lel_template_load_all(lel_server_t *srv, char *err, size_t errlen)
{
    json_t *base;
    if (lel_store_get(srv->store, LEL_CF_TEMPLATES, LEL_BUILTIN_TEAM "/base", &base) == -ENOENT) {
        /* the built-in template: the default root filesystem and guest kernel, 1 vCPU, 256 MiB */
        int64_t now = lel_now_ms();
        base = json_pack("{s:s, s:s, s:s, s:[s], s:i, s:i, s:i, s:n, s:s, s:i, s:n, s:{}}", "templateID", "base", "teamID",
                         LEL_BUILTIN_TEAM, "name", "base", "aliases", "base", "cpuCount", 1, "memoryMB", 256,
                         "diskSizeMB", 256, "buildID", "buildStatus", "waiting", "spawnCount", 0, "lastSpawnedAt",
                         "definition");
        lel_json_set_time(base, "createdAt", now);
        lel_json_set_time(base, "updatedAt", now);
        if (lel_store_put(srv->store, LEL_CF_TEMPLATES, LEL_BUILTIN_TEAM "/base", base) < 0) {
            json_decref(base);
            snprintf(err, errlen, "cannot store the built-in template");
            return -EIO;
        }
    }
    json_decref(base);
    if (lel_store_scan(srv->store, LEL_CF_TEMPLATES, "", NULL, load_one, srv) < 0 ||
        lel_store_scan(srv->store, LEL_CF_BUILDS, "", NULL, load_build, srv) < 0) {
        snprintf(err, errlen, "cannot load templates from the store");
        return -EIO;
    }
    if (srv->use_vm)
        base_refresh(srv);
    return 0;
}
