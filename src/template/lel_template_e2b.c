/* E2B's template builder (the SDK's Template().fromImage(...)...; Template.build), mapped onto
 * our templates:
 *
 * - POST /v3/templates {name ("name" or "name:tag"), tags?, cpuCount?, memoryMB?} makes a
 *   template that waits for its steps (its record's definition is null, its build `waiting`),
 *   on the team actor. A name the team has already is a rebuild: that template keeps its id and
 *   gets a new build (refused with 409 while sandboxes use it: its image is replaced).
 * - GET /templates/{id}/files/{hash} says whether a COPY step's files are here ({present}) and
 *   where to PUT them: a URL of lelantosd's own carrying the template's upload token (as a
 *   signed URL carries its signature: the SDK sends no key there). They are kept as
 *   <data_dir>/templates/<id>.files/<hash> (a tar of the files, as the SDK packs them) until
 *   the template is deleted, so a rebuild with the same files uploads nothing.
 * - POST /v2/templates/{id}/builds/{buildID} {fromImage | fromTemplate, steps, startCmd,
 *   readyCmd}: the SDK's steps (RUN, COPY, ENV, WORKDIR, USER) become ours, the definition is
 *   checked as POST /templates checks it, and the build starts.
 * - Its status (GET .../status) is the build's, in E2B's shape (lel_template.c); tags are names
 *   of the form name:tag that start sandboxes from the template (its current build).
 * Everything but the creation runs on the template's actor. */
#include "lel_template_int.h"

#include "../image/lel_image.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAGS_MAX 32

void lel__template_files_path(struct lel_template *t, const char *hash, char *buf, size_t n)
{
    snprintf(buf, n, "%s/templates/%s.files%s%s", t->srv->cfg.data_dir, t->id, hash ? "/" : "", hash ? hash : "");
}

void lel__template_files_remove(struct lel_template *t)
{
    char dir[4200], path[4500];
    lel__template_files_path(t, NULL, dir, sizeof(dir));
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int valid_tag(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 128 || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static int valid_hash(const char *h)
{
    return h && *h && strlen(h) <= 128 && strspn(h, "0123456789abcdef") == strlen(h);
}

/* What POST /v3/templates asks for. */
struct v3_req {
    char name[132];
    json_t *tags; /* array of strings, owned */
    long long cpu, mem;
};

/* Adds tag `s` to the array once. */
static void tag_add(json_t *tags, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(tags, i, v)
        if (!strcmp(json_string_value(v), s))
            return;
    json_array_append_new(tags, json_string(s));
}

/* Parses the body; 0, or -EINVAL with the 400 set. */
static int v3_parse(lel_call_t *c, struct v3_req *q)
{
    const char *name = NULL, *alias = NULL, *team = NULL;
    long long disk = -1;
    json_t *tags = c->json ? json_object_get(c->json, "tags") : NULL, *v;
    size_t i;
    q->cpu = 1;
    q->mem = 512;
    if (lel_call_str_field(c, "name", 260, &name) < 0 || lel_call_str_field(c, "alias", 128, &alias) < 0 ||
        lel_call_str_field(c, "teamID", 64, &team) < 0 || lel_call_int_field(c, "cpuCount", 1, 1LL << 31, &q->cpu) < 0 ||
        lel_call_int_field(c, "memoryMB", 0, 1LL << 31, &q->mem) < 0 ||
        lel_call_int_field(c, "minFreeDiskMb", 0, 1LL << 31, &disk) < 0)
        return -EINVAL;
    if (!(q->tags = json_array()))
        goto oom;
    if (!name)
        name = alias;
    const char *colon = name ? strchr(name, ':') : NULL;
    snprintf(q->name, sizeof(q->name), "%.*s", colon ? (int)(colon - name) : 128, name ? name : "");
    if (!name || (colon ? colon - name > 128 : strlen(name) > 128) || !lel__template_valid_name(q->name)) {
        lel_call_error(c, 400, "invalid field 'name': required, 1..128 of a-z 0-9 - _ . with an optional :tag");
        return -EINVAL;
    }
    if (colon && !valid_tag(colon + 1)) {
        lel_call_error(c, 400, "invalid field 'name': the tag after ':' must be [A-Za-z0-9_][A-Za-z0-9_.-]* (at most 128)");
        return -EINVAL;
    }
    if (team && strcmp(team, c->team->id)) {
        lel_call_error(c, 400, "invalid field 'teamID': templates are built in the caller's team (%s)", c->team->id);
        return -EINVAL;
    }
    if (q->cpu != 1) {
        lel_call_error(c, 400, "invalid field 'cpuCount': only 1 vCPU is supported until the guest runs more");
        return -EINVAL;
    }
    if (q->mem < 128 || q->mem > 8192 || q->mem % 2) {
        lel_call_error(c, 400, "invalid field 'memoryMB': must be an even number in 128..8192");
        return -EINVAL;
    }
    if (disk > q->mem) { /* the files live in the guest's memory: they have memoryMB at most */
        lel_call_error(c, 400, "invalid field 'minFreeDiskMb': a sandbox's disk is its memory (memoryMB %lld)", q->mem);
        return -EINVAL;
    }
    if (tags && !json_is_null(tags) && (!json_is_array(tags) || json_array_size(tags) > TAGS_MAX)) {
        lel_call_error(c, 400, "invalid field 'tags': must be an array of at most %d tags", TAGS_MAX);
        return -EINVAL;
    }
    json_array_foreach(tags, i, v)
    {
        if (!json_is_string(v) || !valid_tag(json_string_value(v))) {
            lel_call_error(c, 400, "invalid field 'tags[%zu]': must be [A-Za-z0-9_][A-Za-z0-9_.-]* (at most 128)", i);
            return -EINVAL;
        }
        tag_add(q->tags, json_string_value(v));
    }
    if (colon)
        tag_add(q->tags, colon + 1);
    if (!json_array_size(q->tags)) /* E2B's: a build without tags is name:default */
        tag_add(q->tags, "default");
    return 0;
oom:
    lel_call_error(c, 503, "out of memory");
    return -ENOMEM;
}

/* The record's tags for build `bid`, made at `now`. */
static json_t *tag_records(json_t *tags, const char *bid, int64_t now)
{
    json_t *out = json_array(), *v;
    size_t i;
    char ts[32];
    lel_rfc3339(now, ts);
    json_array_foreach(tags, i, v)
        json_array_append_new(out, json_pack("{s:O, s:s, s:s}", "tag", v, "buildID", bid, "createdAt", ts));
    return out;
}

/* The build record of a build waiting for its steps. */
static json_t *waiting_build(const char *tid, const char *bid, int64_t now)
{
    char line[200], ts[32];
    json_t *b = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "buildID", bid, "templateID", tid, "status", "waiting", "logs",
                          "logEntries");
    lel_json_set_time(b, "createdAt", now);
    snprintf(line, sizeof(line), "waiting for the build's steps (POST /v2/templates/%s/builds/%s)", tid, bid);
    lel_rfc3339(now, ts);
    json_array_append_new(json_object_get(b, "logs"), json_string(line));
    json_array_append_new(json_object_get(b, "logEntries"), json_pack("{s:s, s:s, s:s}", "timestamp", ts, "level", "info",
                                                                      "message", line));
    return b;
}

/* E2B's TemplateRequestResponseV3. */
static void v3_reply(lel_call_t *c, struct lel_template *t, const char *bid, json_t *tags)
{
    lel_call_reply(c, 202, json_pack("{s:s, s:s, s:b, s:[s], s:O, s:[s]}", "templateID", t->id, "buildID", bid, "public", 0,
                                     "names", t->name, "tags", tags, "aliases", t->name));
}

static json_t *upload_token(void)
{
    unsigned char raw[24];
    char hex[2 * sizeof(raw) + 1];
    if (lel_random_bytes(raw, sizeof(raw)) < 0)
        return NULL;
    lel_hex(raw, sizeof(raw), hex);
    return json_string(hex);
}

int lel_template_e2b_create(lel_server_t *srv, lel_call_t *c)
{
    struct v3_req q = {0};
    char tid[LEL_ID_LEN + 1], bid[LEL_ID_LEN + 1], path[64];
    if (v3_parse(c, &q) < 0)
        goto out;
    if (lel__template_name_taken(srv, LEL_BUILTIN_TEAM, q.name)) {
        lel_call_error(c, 409, "a built-in template named '%s' already exists", q.name);
        goto out;
    }
    lel_actor_t *old = lel__template_name_taken(srv, c->team->id, q.name) ? lel_template_lookup(srv, c->team, q.name) : NULL;
    if (old) { /* a rebuild, on that template's actor */
        lel_call_send(old, c);
        lel_actor_unref(old);
        json_decref(q.tags);
        return 1;
    }
    lel_random_id(tid);
    lel_random_id(bid);
    int64_t now = lel_now_ms();
    json_t *rec = json_pack("{s:s, s:s, s:s, s:[], s:I, s:I, s:I, s:s, s:s, s:i, s:n, s:n, s:o, s:o}", "templateID", tid,
                            "teamID", c->team->id, "name", q.name, "aliases", "cpuCount", (json_int_t)q.cpu, "memoryMB",
                            (json_int_t)q.mem, "diskSizeMB", (json_int_t)q.mem, "buildID", bid, "buildStatus", "waiting",
                            "spawnCount", 0, "lastSpawnedAt", "definition", "tags", tag_records(q.tags, bid, now),
                            "uploadToken", upload_token());
    json_t *build = waiting_build(tid, bid, now);
    if (!rec || !build || !json_is_string(json_object_get(rec, "uploadToken"))) {
        json_decref(rec);
        json_decref(build);
        lel_call_error(c, 503, "out of memory");
        goto out;
    }
    lel_json_set_time(rec, "createdAt", now);
    lel_json_set_time(rec, "updatedAt", now);
    lel_batch_t *b = lel_batch_new(srv->store);
    lel__template_rec_path(c->team->id, tid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
    lel__template_rec_path(tid, bid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_BUILDS, path, build);
    json_decref(build);
    lel_actor_t *a = lel__template_new(srv, rec);
    if (!a) {
        lel_batch_free(b);
        json_decref(rec);
        lel_call_error(c, 503, "out of memory");
        goto out;
    }
    int r = lel_store_write(srv->store, b);
    if (r < 0) {
        lel_actor_unref(a);
        lel_call_store_failed(c, r);
        goto out;
    }
    struct lel_template *t = lel_actor_state(a);
    lel__template_names_put(t);
    if (lel_registry_put(srv->templates, tid, a) < 0) {
        lel__template_names_del(t);
        lel_actor_unref(a);
        lel_call_error(c, 503, "out of memory");
        goto out;
    }
    v3_reply(c, t, bid, q.tags);
out:
    json_decref(q.tags);
    return 0;
}

/* POST /v3/templates naming this template: a new build replaces the old one (its image and
 * definition go; uploaded files stay). Refused while sandboxes use it. */
static void rebuild(struct lel_template *t, lel_call_t *c)
{
    struct v3_req q = {0};
    char bid[LEL_ID_LEN + 1], path[64];
    if (v3_parse(c, &q) < 0)
        goto out;
    if (lel__template_rebuild_refused(t, c))
        goto out;
    lel_random_id(bid);
    int64_t now = lel_now_ms();
    json_t *rec = json_deep_copy(t->rec), *build = waiting_build(t->id, bid, now);
    json_object_set_new(rec, "buildID", json_string(bid));
    json_object_set_new(rec, "buildStatus", json_string("waiting"));
    json_object_set_new(rec, "definition", json_null());
    json_object_set_new(rec, "cpuCount", json_integer(q.cpu));
    json_object_set_new(rec, "memoryMB", json_integer(q.mem));
    json_object_set_new(rec, "diskSizeMB", json_integer(q.mem));
    json_object_set_new(rec, "tags", tag_records(q.tags, bid, now));
    json_object_del(rec, "imageBuildID");
    lel_json_set_time(rec, "updatedAt", now);
    lel_batch_t *b = lel_batch_new(t->srv->store);
    lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
    lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
    lel__template_rec_path(t->id, bid, path, sizeof(path));
    lel_batch_put(b, LEL_CF_BUILDS, path, build);
    json_decref(build);
    int r = lel_store_write(t->srv->store, b);
    if (r < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        goto out;
    }
    lel__template_swap_build(t, rec);
    v3_reply(c, t, bid, q.tags);
out:
    json_decref(q.tags);
}

/* ---- the SDK's steps -> ours ---- */

#define BAD(...)                                                                                                       \
    do {                                                                                                               \
        lel_call_error(c, 400, __VA_ARGS__);                                                                           \
        return NULL;                                                                                                   \
    } while (0)

/* `rel` against the directory `dir` (an absolute path as it is); -1 when too long. */
static int join_path(const char *dir, const char *rel, char *out, size_t n)
{
    int k = rel[0] == '/' ? snprintf(out, n, "%s", rel)
                          : snprintf(out, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", rel);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* One step of E2B's (type, args[], filesHash) as ours; `workdir` tracks WORKDIR for relative
 * paths. NULL with the 400 set. */
static json_t *step_of(struct lel_template *t, lel_call_t *c, size_t i, json_t *st, char *workdir, size_t wn)
{
    const char *type = json_string_value(json_object_get(st, "type"));
    json_t *args = json_object_get(st, "args"), *a;
    const char *s[64] = {0};
    size_t n = json_array_size(args), j;
    char path[4200];
    if (!json_is_object(st) || !type)
        BAD("invalid field 'steps[%zu].type': required (RUN, COPY, ENV, WORKDIR, USER)", i);
    if (args && !json_is_array(args))
        BAD("invalid field 'steps[%zu].args': must be an array of strings", i);
    json_array_foreach(args, j, a)
    {
        if (!json_is_string(a) || j >= 64)
            BAD("invalid field 'steps[%zu].args[%zu]': must be a string (at most 64 of them)", i, j);
        s[j] = json_string_value(a);
    }
    if (!strcasecmp(type, "RUN")) {
        if (n < 1 || n > 2 || !*s[0])
            BAD("invalid field 'steps[%zu].args': RUN takes [command, user?]", i);
        json_t *r = json_pack("{s:s, s:[s]}", "type", "run", "args", s[0]);
        if (n == 2 && *s[1]) /* who it runs as (else the user of the steps before) */
            json_object_set_new(r, "user", json_string(s[1]));
        return r;
    }
    if (!strcasecmp(type, "COPY")) {
        const char *hash = json_string_value(json_object_get(st, "filesHash"));
        if (n < 2 || n > 4)
            BAD("invalid field 'steps[%zu].args': COPY takes [src, dest, user?, mode?]", i);
        if (!valid_hash(hash))
            BAD("invalid field 'steps[%zu].filesHash': required, the hex digest GET /templates/%s/files/{hash} was asked for", i,
                t->id);
        lel__template_files_path(t, hash, path, sizeof(path));
        if (access(path, R_OK) < 0)
            BAD("invalid field 'steps[%zu].filesHash': the files of %s were not uploaded (PUT to the URL of GET "
                "/templates/%s/files/%s)", i, s[0], t->id, hash);
        if (join_path(workdir, s[1], path, sizeof(path)) < 0)
            BAD("invalid field 'steps[%zu].args[1]': path too long", i);
        json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "type", "copy", "src", s[0], "dest", path, "filesHash", hash);
        if (n >= 3 && *s[2]) /* the copies' owner (else the user of the steps before) */
            json_object_set_new(r, "user", json_string(s[2]));
        if (n == 4 && *s[3])
            json_object_set_new(r, "mode", json_string(s[3]));
        return r;
    }
    if (!strcasecmp(type, "ENV")) {
        if (n % 2)
            BAD("invalid field 'steps[%zu].args': ENV takes name, value pairs", i);
        json_t *envs = json_object();
        for (j = 0; j + 1 < n; j += 2)
            json_object_set_new(envs, s[j], json_string(s[j + 1]));
        return json_pack("{s:s, s:o}", "type", "env", "envs", envs);
    }
    if (!strcasecmp(type, "WORKDIR")) {
        if (n != 1 || !*s[0])
            BAD("invalid field 'steps[%zu].args': WORKDIR takes [path]", i);
        if (join_path(workdir, s[0], path, sizeof(path)) < 0 || strlen(path) >= wn) /* relative: to the one before */
            BAD("invalid field 'steps[%zu].args[0]': path too long", i);
        memcpy(workdir, path, strlen(path) + 1);
        return json_pack("{s:s, s:s}", "type", "workdir", "path", path);
    }
    if (!strcasecmp(type, "USER")) {
        if (n != 1 || !*s[0])
            BAD("invalid field 'steps[%zu].args': USER takes [user]", i);
        return json_pack("{s:s, s:s}", "type", "user", "user", s[0]);
    }
    BAD("invalid field 'steps[%zu].type': '%.32s' is not one of RUN, COPY, ENV, WORKDIR, USER", i, type);
}

/* The SDK's TemplateBuildStartV2 as the body of our POST /templates. NULL with the error set. */
static json_t *definition_body(struct lel_template *t, lel_call_t *c)
{
    json_t *b = c->json, *steps = b ? json_object_get(b, "steps") : NULL, *st, *reg = b ? json_object_get(b, "fromImageRegistry") : NULL;
    const char *image = json_string_value(json_object_get(b, "fromImage"));
    const char *from = json_string_value(json_object_get(b, "fromTemplate"));
    char workdir[4200] = "/";
    size_t i;
    if (reg && !json_is_null(reg))
        BAD("unsupported field 'fromImageRegistry': lelantosd pulls from no registry; import the image with PUT "
            "/images/{name} and name it in fromImage");
    if (steps && !json_is_null(steps) && (!json_is_array(steps) || json_array_size(steps) > 256))
        BAD("invalid field 'steps': must be an array of at most 256 steps");
    json_t *out = json_pack("{s:s, s:I, s:I, s:[]}", "name", t->name, "cpuCount", (json_int_t)t->cpu, "memoryMB",
                            (json_int_t)t->mem_mb, "steps");
    /* the SDK's default base (Template() without from...) is E2B's base image: ours is `base` */
    if (image && strcmp(image, "e2bdev/base") && strncmp(image, "e2bdev/base:", 12))
        json_object_set_new(out, "fromImage", json_string(image));
    else if (from)
        json_object_set_new(out, "fromTemplate", json_string(from));
    json_array_foreach(steps, i, st)
    {
        json_t *ours = step_of(t, c, i, st, workdir, sizeof(workdir));
        if (!ours) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(json_object_get(out, "steps"), ours);
    }
    for (int k = 0; k < 2; k++) {
        const char *f = k ? "readyCmd" : "startCmd";
        json_t *v = json_object_get(b, f);
        if (v && !json_is_null(v))
            json_object_set(out, f, v);
    }
    if (!json_object_get(out, "startCmd")) /* E2B's builder runs no image Cmd unless told to */
        json_object_set_new(out, "startCmd", json_string(""));
    return out;
}

/* POST /v2/templates/{id}/builds/{buildID}: the steps come, the build starts. */
static void trigger(struct lel_template *t, lel_call_t *c)
{
    char bid[LEL_ID_LEN + 1], path[64];
    long long cpu = t->cpu, mem = t->mem_mb;
    snprintf(bid, sizeof(bid), "%s", json_string_value(json_object_get(t->rec, "buildID")) ?: "");
    if (!*bid || strcmp(bid, c->id2)) {
        lel_call_error(c, 404, "build '%s' of template '%s' not found", c->id2, t->id);
        return;
    }
    if (t->build || !json_is_null(json_object_get(t->rec, "definition"))) {
        lel_call_error(c, 400, "build is not in waiting state");
        return;
    }
    const char *from = json_string_value(json_object_get(c->json, "fromTemplate"));
    lel_actor_t *p = from ? lel_template_lookup(t->srv, lel_registry_get(t->srv->teams, t->team_id, NULL, NULL), from) : NULL;
    if (p)
        lel_actor_unref(p);
    if (p == t->actor) {
        lel_call_error(c, 400, "invalid field 'fromTemplate': a template cannot be built from itself");
        return;
    }
    json_t *body = definition_body(t, c), *orig = c->json;
    if (!body)
        return;
    c->json = body; /* checked as POST /templates checks its body */
    json_t *def = lel__template_parse_definition(t->srv, c, &cpu, &mem);
    c->json = orig;
    json_decref(body);
    if (!def)
        return;
    json_t *rec = json_deep_copy(t->rec);
    json_object_set(rec, "definition", def);
    lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
    int r = lel_store_put(t->srv->store, LEL_CF_TEMPLATES, path, rec);
    if (r < 0) {
        const char *img = lel__template_image_id(def);
        if (img)
            lel_image_release(t->srv, img);
        json_decref(def);
        json_decref(rec);
        lel_call_store_failed(c, r);
        return;
    }
    json_decref(t->rec);
    t->rec = rec;
    if (!t->retired)
        t->retired = json_array();
    json_array_append_new(t->retired, t->defaults); /* nobody reads them (not ready), but keep them */
    t->defaults = lel__template_defaults_of(def);
    snprintf(t->image_id, sizeof(t->image_id), "%s", lel__template_image_id(def) ?: ""); /* its use is the template's */
    json_decref(def);
    if (t->srv->use_vm) {
        lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(bid));
        if (m && (!m->ptr || lel_actor_send(t->actor, m) < 0)) {
            free(m->ptr);
            lel_msg_free(m);
        }
    }
    lel_call_reply(c, 202, json_pack("{s:s, s:s}", "templateID", t->id, "buildID", bid));
}

/* ---- files ---- */

/* GET /templates/{id}/files/{hash}: {present} and, when not, the URL to PUT them to. */
static void files_link(struct lel_template *t, lel_call_t *c)
{
    char path[4300];
    if (!valid_hash(c->id2)) {
        lel_call_error(c, 400, "invalid hash '%.64s': must be a lowercase hex digest", c->id2);
        return;
    }
    lel__template_files_path(t, c->id2, path, sizeof(path));
    if (access(path, R_OK) == 0) {
        lel_call_reply(c, 201, json_pack("{s:b}", "present", 1));
        return;
    }
    const char *tok = json_string_value(json_object_get(t->rec, "uploadToken"));
    char *url = NULL;
    if (!tok || !c->host ||
        asprintf(&url, "%s://%s/templates/%s/files/%s?token=%s", t->srv->cfg.tls_cert && *t->srv->cfg.tls_cert ? "https" : "http", c->host, t->id,
                 c->id2, tok) < 0) {
        lel_call_error(c, !tok ? 409 : 400, "%s", !tok ? "this template takes no uploads (it was not made by POST /v3/templates)"
                                                       : "cannot make an upload URL without a Host header");
        return;
    }
    lel_call_reply(c, 201, json_pack("{s:b, s:s}", "present", 0, "url", url));
    free(url);
}

/* PUT /templates/{id}/files/{hash}?token=: the upload (1: kept). */
static int files_put(struct lel_template *t, lel_call_t *c)
{
    const char *tok = json_string_value(json_object_get(t->rec, "uploadToken"));
    char *got = lel_call_query(c, "token"), path[4300];
    int ok = tok && got && lel_ct_equal(got, strlen(got), tok, strlen(tok));
    free(got);
    if (!ok) {
        lel_call_error(c, 403, "invalid or missing upload token (take the URL from GET /templates/{id}/files/{hash})");
        return 0;
    }
    if (!valid_hash(c->id2)) {
        lel_call_error(c, 400, "invalid hash '%.64s': must be a lowercase hex digest", c->id2);
        return 0;
    }
    lel__template_files_path(t, NULL, path, sizeof(path));
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/templates", t->srv->cfg.data_dir);
    mkdir(dir, 0700);
    mkdir(path, 0700);
    lel__template_files_path(t, c->id2, path, sizeof(path));
    return lel__template_files_put(t, c, path);
}

/* ---- tags ---- */

static json_t *find_tag(json_t *tags, const char *tag, size_t *at)
{
    size_t i;
    json_t *v;
    json_array_foreach(tags, i, v)
        if (!strcmp(json_string_value(json_object_get(v, "tag")) ?: "", tag)) {
            if (at)
                *at = i;
            return v;
        }
    return NULL;
}

/* Reads the body's `tags` (strings, valid); NULL with the 400 set. */
static json_t *body_tags(lel_call_t *c)
{
    json_t *tags = json_object_get(c->json, "tags"), *v;
    size_t i;
    if (!json_is_array(tags) || !json_array_size(tags) || json_array_size(tags) > TAGS_MAX) {
        lel_call_error(c, 400, "invalid field 'tags': must be an array of 1..%d tags", TAGS_MAX);
        return NULL;
    }
    json_array_foreach(tags, i, v)
        if (!json_is_string(v) || !valid_tag(json_string_value(v))) {
            lel_call_error(c, 400, "invalid field 'tags[%zu]': must be [A-Za-z0-9_][A-Za-z0-9_.-]* (at most 128)", i);
            return NULL;
        }
    return tags;
}

/* Writes `tags` as the record's (names re-indexed); 0, or -EIO with the 500 set. */
static int store_tags(struct lel_template *t, lel_call_t *c, json_t *tags)
{
    char path[64];
    json_t *rec = json_deep_copy(t->rec);
    json_object_set(rec, "tags", tags);
    lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
    int r = lel_store_put(t->srv->store, LEL_CF_TEMPLATES, path, rec);
    if (r < 0) {
        json_decref(rec);
        lel_call_store_failed(c, r);
        return r;
    }
    lel__template_names_del(t);
    json_decref(t->rec);
    t->rec = rec;
    lel__template_names_put(t);
    return 0;
}

/* POST /templates/tags {target: "name[:tag]", tags} and DELETE /templates/tags {name, tags}. */
static void tags_change(struct lel_template *t, lel_call_t *c)
{
    json_t *want = body_tags(c), *tags, *v;
    const char *target = json_string_value(json_object_get(c->json, c->route == R_TPL_TAGS_ADD ? "target" : "name"));
    const char *colon = target ? strchr(target, ':') : NULL;
    char bid[LEL_ID_LEN + 1]; /* copied: store_tags replaces t->rec */
    size_t i, at;
    snprintf(bid, sizeof(bid), "%s", json_string_value(json_object_get(t->rec, "buildID")) ?: "");
    if (!want)
        return;
    tags = json_deep_copy(json_object_get(t->rec, "tags"));
    if (!tags)
        tags = json_array();
    if (c->route == R_TPL_TAGS_ADD && colon && strcmp(colon + 1, "default") && !find_tag(tags, colon + 1, NULL)) {
        lel_call_error(c, 404, "tag '%s' does not exist for template '%s'", colon + 1, t->name);
        json_decref(tags);
        return;
    }
    json_array_foreach(want, i, v)
    {
        const char *tag = json_string_value(v);
        if (c->route == R_TPL_TAGS_DEL && !find_tag(tags, tag, &at)) {
            lel_call_error(c, 404, "tag '%s' does not exist for template '%s'", tag, t->name);
            json_decref(tags);
            return;
        }
        if (c->route == R_TPL_TAGS_DEL)
            json_array_remove(tags, at);
        else if (!find_tag(tags, tag, NULL)) {
            char ts[32];
            lel_rfc3339(lel_now_ms(), ts);
            json_array_append_new(tags, json_pack("{s:s, s:s, s:s}", "tag", tag, "buildID", bid, "createdAt", ts));
        }
    }
    if (store_tags(t, c, tags) == 0) {
        if (c->route == R_TPL_TAGS_ADD)
            lel_call_reply(c, 201, json_pack("{s:O, s:s}", "tags", want, "buildID", bid));
        else
            lel_call_reply(c, 204, NULL);
    }
    json_decref(tags);
}

int lel__template_e2b_call(struct lel_template *t, lel_call_t *c)
{
    int builtin = !strcmp(t->team_id, LEL_BUILTIN_TEAM);
    if (c->route == R_TPL_FILES_PUT)
        return files_put(t, c);
    if (c->route == R_TPL_TAGS_GET) {
        json_t *tags = json_object_get(t->rec, "tags");
        lel_call_reply(c, 200, tags ? json_deep_copy(tags) : json_array());
        return 0;
    }
    if (builtin) {
        lel_call_error(c, 403, "the built-in template cannot be changed");
        return 0;
    }
    switch (c->route) {
    case R_TPL_E2B_CREATE: rebuild(t, c); break;
    case R_TPL_E2B_BUILD: trigger(t, c); break;
    case R_TPL_FILES: files_link(t, c); break;
    case R_TPL_TAGS_ADD: case R_TPL_TAGS_DEL: tags_change(t, c); break;
    default: lel_call_error(c, 500, "unrouted call"); break;
    }
    return 0;
}

/* GET /templates/aliases/{alias}: which template a name (or name:tag) starts. */
void lel_template_alias(lel_server_t *srv, lel_call_t *c)
{
    lel_actor_t *a = lel_template_lookup(srv, c->team, c->id);
    if (!a) {
        lel_call_error(c, 404, "template '%s' not found", c->id);
        return;
    }
    struct lel_template *t = lel_actor_state(a);
    lel_call_reply(c, 200, json_pack("{s:s, s:b}", "templateID", t->id, "public", !strcmp(t->team_id, LEL_BUILTIN_TEAM)));
    lel_actor_unref(a);
}
