/* A rebuild: a template keeps its id and name and gets a new build, on its actor.
 *
 * - POST /templates/{id} (id or name) takes the body of POST /templates (its name, when given,
 *   must be the template's: a rebuild does not rename), checks it as a create does, and only
 *   then replaces the definition: a refused body leaves the template and its current build as
 *   they were. cpuCount and memoryMB default to the template's. A kept build context is
 *   dropped, so copy steps wait for a new PUT /templates/{id}/context.
 * - POST /v3/templates naming an existing template (lel_template_e2b.c) replaces its build with
 *   one that waits for E2B's steps; both end in lel__template_swap_build.
 * Both are refused (409) while sandboxes use the template (its image is replaced) or an upload
 * into it is in progress; a build still running is abandoned. */
#include "lel_template_int.h"

#include "../image/lel_image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lel__template_rebuild_refused(struct lel_template *t, lel_call_t *c)
{
    if (atomic_load(&t->in_use) > 0) {
        lel_call_error(c, 409, "template '%s' is used by %d sandboxes: a rebuild replaces its image (kill them first)", t->name,
                       atomic_load(&t->in_use));
        return 1;
    }
    if (t->ctx) {
        lel_call_error(c, 409, "template '%s' has uploads in progress", t->name);
        return 1;
    }
    return 0;
}

void lel__template_swap_build(struct lel_template *t, json_t *rec)
{
    lel__template_build_abandon(t);
    atomic_store(&t->image_ready, 0);
    atomic_store(&t->status, TPL_WAITING);
    lel__template_image_drop(t); /* its files stay while sandboxes or diffs over it need them */
    if (t->image_id[0]) {
        lel_image_release(t->srv, t->image_id);
        t->image_id[0] = 0;
    }
    lel__template_names_del(t);
    json_decref(t->rec);
    t->rec = rec;
    t->cpu = (int)json_integer_value(json_object_get(rec, "cpuCount"));
    t->mem_mb = t->disk_mb = (int)json_integer_value(json_object_get(rec, "memoryMB"));
    lel__template_names_put(t);
}

/* The body as a create's: the template's name where it names none. 0, or -1 with the 400 set. */
static int body_of(struct lel_template *t, lel_call_t *c)
{
    if (!c->json)
        c->json = json_object();
    if (!json_is_object(c->json)) {
        lel_call_error(c, 400, "the body must be a JSON object (that of POST /templates)");
        return -1;
    }
    json_t *name = json_object_get(c->json, "name");
    if (!name)
        json_object_set_new(c->json, "name", json_string(t->name));
    else if (!json_is_string(name) || strcmp(json_string_value(name), t->name)) {
        lel_call_error(c, 400, "invalid field 'name': a rebuild keeps the template's name ('%s')", t->name);
        return -1;
    }
    const char *from = json_string_value(json_object_get(c->json, "fromTemplate"));
    lel_actor_t *p = from ? lel_template_lookup(t->srv, lel_registry_get(t->srv->teams, t->team_id, NULL, NULL), from) : NULL;
    if (p)
        lel_actor_unref(p);
    if (p == t->actor) {
        lel_call_error(c, 400, "invalid field 'fromTemplate': a template cannot be built from itself");
        return -1;
    }
    return 0;
}

/* The new build's record, waiting (for a build slot, or for its context). */
static json_t *build_record(struct lel_template *t, const char *bid, json_t *def, int64_t now)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "buildID", bid, "templateID", t->id, "status", "waiting", "logs",
                          "logEntries");
    lel_json_set_time(b, "createdAt", now);
    if (b && lel__template_needs_context(def)) {
        char line[160], ts[32];
        snprintf(line, sizeof(line), "waiting for the build context of its copy steps: PUT /templates/%s/context", t->id);
        lel_rfc3339(now, ts);
        json_array_append_new(json_object_get(b, "logs"), json_string(line));
        json_array_append_new(json_object_get(b, "logEntries"),
                              json_pack("{s:s, s:s, s:s}", "timestamp", ts, "level", "info", "message", line));
    }
    return b;
}

/* The template's record with the new build and definition (def's reference is taken). */
static json_t *template_record(struct lel_template *t, const char *bid, json_t *def, long long cpu, long long mem,
                               int64_t now)
{
    json_t *rec = json_deep_copy(t->rec);
    if (!rec) {
        json_decref(def);
        return NULL;
    }
    json_object_set_new(rec, "buildID", json_string(bid));
    json_object_set_new(rec, "buildStatus", json_string("waiting"));
    json_object_set_new(rec, "definition", def);
    json_object_set_new(rec, "cpuCount", json_integer(cpu));
    json_object_set_new(rec, "memoryMB", json_integer(mem));
    json_object_set_new(rec, "diskSizeMB", json_integer(mem));
    json_object_del(rec, "tags"); /* E2B's tags name builds: a new build has none, as a create's */
    json_object_del(rec, "imageBuildID");
    lel_json_set_time(rec, "updatedAt", now);
    return rec;
}

void lel__template_rebuild(struct lel_template *t, lel_call_t *c)
{
    long long cpu = t->cpu, mem = t->mem_mb;
    if (lel__template_rebuild_refused(t, c) || body_of(t, c) < 0)
        return;
    json_t *def = lel__template_parse_definition(t->srv, c, &cpu, &mem);
    if (!def)
        return;
    const char *img = lel__template_image_id(def);
    char image_id[LEL_ID_LEN + 1], bid[LEL_ID_LEN + 1], path[64];
    snprintf(image_id, sizeof(image_id), "%s", img ? img : "");
    lel_random_id(bid);
    int64_t now = lel_now_ms();
    json_t *defaults = lel__template_defaults_of(def), *build = build_record(t, bid, def, now);
    json_t *rec = template_record(t, bid, def, cpu, mem, now);
    lel_batch_t *b = rec && build ? lel_batch_new(t->srv->store) : NULL;
    if (b) {
        lel__template_rec_path(t->team_id, t->id, path, sizeof(path));
        lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
        lel__template_rec_path(t->id, bid, path, sizeof(path));
        lel_batch_put(b, LEL_CF_BUILDS, path, build);
    }
    json_decref(build);
    int wr = b ? lel_store_write(t->srv->store, b) : -ENOMEM;
    if (wr < 0) {
        if (image_id[0]) /* the definition's use of its image goes with it */
            lel_image_release(t->srv, image_id);
        json_decref(rec);
        json_decref(defaults);
        if (b)
            lel_call_store_failed(c, wr);
        else
            lel_call_error(c, 503, "out of memory");
        return;
    }
    lel__template_swap_build(t, rec);
    snprintf(t->image_id, sizeof(t->image_id), "%s", image_id); /* its use is the template's now */
    if (!t->retired)
        t->retired = json_array();
    json_array_append_new(t->retired, t->defaults); /* a reader on another thread may still hold them */
    t->defaults = defaults;
    char ctx[4200];
    lel__template_context_path(t, ctx, sizeof(ctx));
    unlink(ctx); /* the old build's: copy steps wait for the new one's */
    if (t->srv->use_vm) {
        lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(bid));
        if (m && (!m->ptr || lel_actor_send(t->actor, m) < 0)) {
            free(m->ptr);
            lel_msg_free(m);
        }
    }
    lel_call_reply(c, 202, json_pack("{s:s, s:s, s:s}", "templateID", t->id, "buildID", bid, "status",
                                     t->srv->use_vm ? "building" : "waiting"));
}
