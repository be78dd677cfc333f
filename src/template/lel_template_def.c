/* A template's definition from the body of POST /templates: what it starts from (`fromTemplate`,
 * or `fromImage`: a base VM that gets the image's tree), its steps, startCmd and readyCmd.
 * Runs on the team actor. Every field is checked here, so the builder trusts the definition.
 *
 * Steps: `run` {args, user?}, `file` {path, content, mode: integer or octal string}, `env` {envs},
 * `workdir` {path}, `user` {user}, `copy` {src, dest, user?} (from the build context, PUT
 * /templates/{id}/context). A run step runs as its user, else the last user step's (root before
 * any); a copy's files are its user's, else that one's. Commands of the build and of the sandboxes inherit the env and
 * working directory: the definition keeps what the start point gave (`base`: the image's
 * config or the parent template's defaults) and what the steps make of it (`defaults`). */
#include "lel_template_int.h"

#include "../image/lel_image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...)                                                                                                       \
    do {                                                                                                               \
        lel_call_error(c, 400, __VA_ARGS__);                                                                           \
        return -EINVAL;                                                                                                \
    } while (0)

/* An absolute path without '..' components. */
static int abs_path_ok(const char *p)
{
    if (!p || p[0] != '/' || strlen(p) > 4095)
        return 0;
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (!s[2] || s[2] == '/'))
            return 0;
    return 1;
}

int lel__template_mode(json_t *mode, int *out)
{
    if (json_is_integer(mode) && json_integer_value(mode) >= 0 && json_integer_value(mode) <= 07777) {
        *out = (int)json_integer_value(mode);
        return 0;
    }
    const char *s = json_string_value(mode);
    char *end;
    if (!s || !*s || strlen(s) > 6)
        return -EINVAL;
    long v = strtol(s, &end, 8);
    if (*end || v < 0 || v > 07777 || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static int check_run(lel_call_t *c, size_t i, json_t *st)
{
    json_t *args = json_object_get(st, "args"), *a;
    size_t j;
    if (!json_is_array(args) || json_array_size(args) == 0)
        BAD("invalid field 'steps[%zu].args': must be a non-empty array of strings", i);
    json_array_foreach(args, j, a)
    {
        if (!json_is_string(a))
            BAD("invalid field 'steps[%zu].args[%zu]': must be a string", i, j);
    }
    return 0;
}

static int check_step(lel_call_t *c, size_t i, json_t *st, const char *type)
{
    int mode;
    json_t *ju = json_object_get(st, "user");
    if ((!strcmp(type, "run") || !strcmp(type, "copy")) && ju && !json_is_null(ju) &&
        (!json_is_string(ju) || json_string_length(ju) > 64))
        BAD("invalid field 'steps[%zu].user': must be a user name or uid (at most 64 bytes)", i);
    if (!strcmp(type, "run"))
        return check_run(c, i, st);
    if (!strcmp(type, "file")) {
        json_t *m = json_object_get(st, "mode");
        if (!abs_path_ok(json_string_value(json_object_get(st, "path"))))
            BAD("invalid field 'steps[%zu].path': must be an absolute path without '..'", i);
        if (!json_is_string(json_object_get(st, "content")))
            BAD("invalid field 'steps[%zu].content': must be a string", i);
        if (m && !json_is_null(m) && lel__template_mode(m, &mode) < 0)
            BAD("invalid field 'steps[%zu].mode': must be an integer 0..07777 or an octal string such as \"0644\"", i);
        return 0;
    }
    if (!strcmp(type, "env")) {
        json_t *envs = json_object_get(st, "envs"), *v;
        const char *k;
        if (!json_is_object(envs))
            BAD("invalid field 'steps[%zu].envs': must be an object of strings", i);
        json_object_foreach(envs, k, v)
        {
            if (!json_is_string(v) || !*k || strchr(k, '=') || strlen(k) > 255)
                BAD("invalid field 'steps[%zu].envs.%.64s': names must be non-empty without '=', values strings", i, k);
        }
        return 0;
    }
    if (!strcmp(type, "workdir")) {
        if (!abs_path_ok(json_string_value(json_object_get(st, "path"))))
            BAD("invalid field 'steps[%zu].path': must be an absolute path without '..'", i);
        return 0;
    }
    if (!strcmp(type, "user")) {
        const char *u = json_string_value(json_object_get(st, "user"));
        if (!u || !*u || strlen(u) > 64)
            BAD("invalid field 'steps[%zu].user': must be a user name or uid (1..64 bytes)", i);
        return 0;
    }
    if (!strcmp(type, "copy")) {
        const char *src = json_string_value(json_object_get(st, "src"));
        if (!src || !*src || src[0] == '/' || strlen(src) > 4095 || strstr(src, ".."))
            BAD("invalid field 'steps[%zu].src': must be a relative path in the build context, without '..'", i);
        if (!abs_path_ok(json_string_value(json_object_get(st, "dest"))))
            BAD("invalid field 'steps[%zu].dest': must be an absolute path without '..'", i);
        json_t *m = json_object_get(st, "mode"), *h = json_object_get(st, "filesHash");
        if (m && !json_is_null(m) && lel__template_mode(m, &mode) < 0)
            BAD("invalid field 'steps[%zu].mode': must be an integer 0..07777 or an octal string such as \"0644\"", i);
        const char *hs = json_string_value(h);
        if (h && (!hs || !*hs || strlen(hs) > 128 || strspn(hs, "0123456789abcdef") != strlen(hs)))
            BAD("invalid field 'steps[%zu].filesHash': must be a lowercase hex digest", i);
        return 0;
    }
    BAD("invalid field 'steps[%zu].type': '%.32s' is not one of run, file, copy, env, workdir, user", i, type);
}

int lel__template_check_steps(lel_call_t *c, json_t *steps)
{
    size_t i;
    json_t *st;
    if (!json_is_array(steps) || json_array_size(steps) > 256)
        BAD("invalid field 'steps': must be an array of at most 256 steps");
    json_array_foreach(steps, i, st)
    {
        const char *type = json_string_value(json_object_get(st, "type"));
        if (!json_is_object(st) || !type)
            BAD("invalid field 'steps[%zu].type': must be one of run, file, copy, env, workdir, user", i);
        if (check_step(c, i, st, type) < 0)
            return -EINVAL;
    }
    return 0;
}

void lel__template_apply_defaults(json_t *d, json_t *st)
{
    const char *type = json_string_value(json_object_get(st, "type"));
    if (!strcmp(type, "env"))
        json_object_update(json_object_get(d, "env"), json_object_get(st, "envs"));
    else if (!strcmp(type, "workdir"))
        json_object_set(d, "workdir", json_object_get(st, "path"));
    else if (!strcmp(type, "user"))
        json_object_set(d, "user", json_object_get(st, "user"));
}

int lel__template_valid_name(const char *n)
{
    if (!*n || strlen(n) > 128)
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* fromImage: a use of the image is taken (given back by the caller when the template is not
 * made); *base gets its defaults and *img what the definition keeps of it. */
static int from_image(lel_server_t *srv, lel_call_t *c, const char *name, json_t **base, json_t **img)
{
    json_t *rec = NULL;
    int r = lel_image_acquire(srv, c->team->id, name, &rec);
    if (r == -EINVAL)
        BAD("invalid field 'fromImage': '%.140s' is not an image name", name);
    if (r < 0)
        BAD("invalid field 'fromImage': image '%.140s' not found", name);
    /* (its files take none of the template's memory: they are its read-only root filesystem
     * image, mapped into every VM from the host's page cache) */
    const char *id = json_string_value(json_object_get(rec, "imageID"));
    *img = json_pack("{s:O, s:O, s:O, s:O, s:O}", "imageID", json_object_get(rec, "imageID"), "name",
                     json_object_get(rec, "name"), "digest", json_object_get(rec, "digest"), "cmd", json_object_get(rec, "cmd"),
                     "entrypoint", json_object_get(rec, "entrypoint"));
    *base = json_pack("{s:O, s:O, s:O}", "env", json_object_get(rec, "env"), "workdir", json_object_get(rec, "workdir"),
                      "user", json_object_get(rec, "user"));
    json_decref(rec);
    if (!*img || !*base) {
        lel_image_release(srv, id);
        json_decref(*img);
        json_decref(*base);
        lel_call_error(c, 503, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* The starting point: fromImage or fromTemplate (default base). A template from one built on
 * an image runs over that image's root filesystem image too, so it holds a use of the image
 * (*use), which cannot then be deleted under it. */
static int start_point(lel_server_t *srv, lel_call_t *c, const char **from_id, json_t **base, json_t **img, json_t **use)
{
    const char *from = NULL, *image = NULL;
    if (lel_call_str_field(c, "fromTemplate", 128, &from) < 0 || lel_call_str_field(c, "fromImage", 300, &image) < 0)
        return -EINVAL;
    if (from && image)
        BAD("invalid field 'fromImage': give fromImage or fromTemplate, not both");
    if (image) {
        *from_id = "base";
        return from_image(srv, c, image, base, img);
    }
    lel_actor_t *parent = lel_template_lookup(srv, c->team, from ? from : "base");
    if (!parent)
        BAD("invalid field 'fromTemplate': template '%.64s' not found", from ? from : "base");
    struct lel_template *pt = lel_actor_state(parent);
    *from_id = pt->id; /* templates live while the registry holds them; ids are never reused */
    *base = json_deep_copy(pt->defaults);
    if (pt->image_id[0] && lel_image_acquire_id(srv, pt->image_id) == 0 && !(*use = json_pack("{s:s}", "imageID", pt->image_id)))
        lel_image_release(srv, pt->image_id);
    lel_actor_unref(parent);
    return 0;
}

const char *lel__template_image_id(json_t *def)
{
    const char *id = json_string_value(json_object_get(json_object_get(def, "fromImage"), "imageID"));
    return id ? id : json_string_value(json_object_get(json_object_get(def, "imageUse"), "imageID"));
}

/* {"dockerfile"}: turned into fromImage/fromTemplate, steps and startCmd in the body itself. */
static int take_dockerfile(lel_call_t *c)
{
    const char *text = NULL;
    json_t *fi = NULL, *ft = NULL, *steps = NULL;
    char *start = NULL;
    if (lel_call_str_field(c, "dockerfile", 1 << 20, &text) <= 0)
        return text ? 0 : c->status ? -EINVAL : 0;
    if (json_object_get(c->json, "steps") || json_object_get(c->json, "fromImage") || json_object_get(c->json, "fromTemplate"))
        BAD("invalid field 'dockerfile': give a dockerfile or steps with fromImage/fromTemplate, not both");
    if (lel__template_dockerfile(c, text, &fi, &ft, &steps, &start) < 0)
        return -EINVAL;
    json_object_set_new(c->json, fi ? "fromImage" : "fromTemplate", fi ? fi : ft);
    json_object_set_new(c->json, "steps", steps);
    if (start && *start && !json_object_get(c->json, "startCmd"))
        json_object_set_new(c->json, "startCmd", json_string(start));
    free(start);
    return 0;
}

json_t *lel__template_parse_definition(lel_server_t *srv, lel_call_t *c, long long *cpu, long long *mem)
{
    const char *name = NULL, *start = NULL, *ready = NULL, *from_id = NULL;
    if (c->json && take_dockerfile(c) < 0)
        return NULL;
    json_t *steps = c->json ? json_object_get(c->json, "steps") : NULL, *base = NULL, *img = NULL, *use = NULL, *st;
    size_t i;
    if (lel_call_str_field(c, "name", 128, &name) < 0 || lel_call_str_field(c, "startCmd", 65536, &start) < 0 ||
        lel_call_str_field(c, "readyCmd", 65536, &ready) < 0 || lel_call_int_field(c, "cpuCount", 1, 1LL << 31, cpu) < 0 ||
        lel_call_int_field(c, "memoryMB", 0, 1LL << 31, mem) < 0)
        return NULL;
    if (!name || !lel__template_valid_name(name)) {
        lel_call_error(c, 400, "invalid field 'name': required, 1..128 of a-z 0-9 - _ .");
        return NULL;
    }
    if (*cpu != 1) {
        lel_call_error(c, 400, "invalid field 'cpuCount': only 1 vCPU is supported until the guest runs more");
        return NULL;
    }
    if (*mem < 128 || *mem > 8192 || *mem % 2) {
        lel_call_error(c, 400, "invalid field 'memoryMB': must be an even number in 128..8192");
        return NULL;
    }
    if (steps && !json_is_null(steps) && lel__template_check_steps(c, steps) < 0)
        return NULL;
    if (start_point(srv, c, &from_id, &base, &img, &use) < 0)
        return NULL;
    /* The image's Entrypoint and Cmd are its templates' startCmd unless the body says otherwise
     * ("startCmd": "" for none); the build goes on without it when it cannot start. */
    char *image_start = img && !start ? lel__template_start_line(json_object_get(img, "entrypoint"), json_object_get(img, "cmd"))
                                      : NULL;
    if (image_start && *image_start)
        start = image_start;
    steps = steps && !json_is_null(steps) ? json_deep_copy(steps) : json_array();
    json_t *defaults = json_deep_copy(base);
    json_array_foreach(steps, i, st)
        lel__template_apply_defaults(defaults, st);
    json_t *def = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "fromTemplate", from_id, "steps", steps, "startCmd",
                            start ? json_string(start) : json_null(), "readyCmd", ready ? json_string(ready) : json_null(),
                            "base", base, "defaults", defaults);
    if (start && start == image_start)
        json_object_set_new(def, "startCmdFrom", json_string("image"));
    free(image_start);
    if (img)
        json_object_set_new(def, "fromImage", img);
    if (use)
        json_object_set_new(def, "imageUse", use);
    return def;
}

json_t *lel__template_defaults_of(json_t *def)
{
    json_t *d = json_object_get(def, "defaults");
    if (json_is_object(d) && json_is_object(json_object_get(d, "env")))
        return json_deep_copy(d);
    return json_pack("{s:{}, s:s, s:s}", "env", "workdir", "/", "user", ""); /* base, and templates from before */
}
