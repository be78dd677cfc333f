/* The Dockerfile subset of POST /templates {"dockerfile": "..."}: FROM (a local image of the
 * team, else a template), RUN, COPY and ADD of files from the build context, ENV, WORKDIR, USER,
 * ARG, and CMD/ENTRYPOINT, which become startCmd. It is turned into the same definition fields
 * the JSON form has (fromImage or fromTemplate, steps, startCmd), which are then checked as
 * those are. Any other instruction, a second FROM (multi-stage), ADD of a URL, COPY --from and
 * RUN --mount are a 400 naming the line.
 *
 * Lines: `\` at the end continues a line, `#` at the start is a comment (parser directives
 * too). `$NAME` and `${NAME}` in FROM, COPY, ADD, ENV, WORKDIR and USER are replaced by the ARG
 * and ENV values set above them (RUN and CMD leave theirs to the shell, as Docker does). */
#include "lel_template_int.h"

#include "../image/lel_image.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 65536

struct df {
    lel_call_t *c;
    int line;       /* where the instruction began */
    json_t *vars;   /* ARG and ENV values for substitution */
    json_t *steps;
    char workdir[4200];
    char *from;     /* malloc'd */
    json_t *entrypoint, *cmd; /* arrays (exec form) or strings (shell form) */
};

static int bad(struct df *d, const char *fmt, const char *arg) __attribute__((format(printf, 2, 0)));
static int bad(struct df *d, const char *fmt, const char *arg)
{
    char msg[400];
    snprintf(msg, sizeof(msg), fmt, arg);
    lel_call_error(d->c, 400, "invalid field 'dockerfile': line %d: %s", d->line, msg);
    return -EINVAL;
}

/* $NAME and ${NAME} replaced from d->vars into a new string (unknown names: empty). */
static char *subst(struct df *d, const char *s)
{
    size_t cap = strlen(s) * 2 + 64, o = 0;
    char *out = malloc(cap);
    for (const char *p = s; out && *p;) {
        const char *val = NULL;
        size_t skip = 1;
        if (p[0] == '\\' && p[1] == '$') {
            val = "$";
            skip = 2;
        } else if (p[0] == '$' && (p[1] == '{' || isalpha((unsigned char)p[1]) || p[1] == '_')) {
            int br = p[1] == '{';
            const char *n = p + 1 + br, *e = n;
            while (isalnum((unsigned char)*e) || *e == '_')
                e++;
            if (!br || *e == '}') {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(e - n), n);
                val = json_string_value(json_object_get(d->vars, name)) ?: "";
                skip = (size_t)(e - p) + br;
            }
        }
        size_t vl = val ? strlen(val) : 1;
        if (o + vl + 1 > cap) {
            cap = (o + vl + 1) * 2;
            char *nb = realloc(out, cap);
            if (!nb) {
                free(out);
                return NULL;
            }
            out = nb;
        }
        memcpy(out + o, val ? val : p, vl);
        o += vl;
        p += skip;
    }
    if (out)
        out[o] = 0;
    return out;
}

/* The words of a shell-like argument list (spaces split, "..." and '...' quote). */
static json_t *words(const char *s)
{
    json_t *a = json_array();
    char w[4096];
    while (*s) {
        size_t o = 0;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        char q = 0;
        for (; *s && (q || !isspace((unsigned char)*s)); s++) {
            if (!q && (*s == '"' || *s == '\'')) {
                q = *s;
                continue;
            }
            if (q && *s == q) {
                q = 0;
                continue;
            }
            if (*s == '\\' && s[1] && q != '\'')
                s++;
            if (o < sizeof(w) - 1)
                w[o++] = *s;
        }
        w[o] = 0;
        json_array_append_new(a, json_string(w));
    }
    return a;
}

/* A JSON array of strings (the exec form), or NULL. */
static json_t *exec_form(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '[')
        return NULL;
    json_t *j = json_loads(s, JSON_DECODE_ANY, NULL), *v;
    size_t i;
    if (!json_is_array(j) || !json_array_size(j)) {
        json_decref(j);
        return NULL;
    }
    json_array_foreach(j, i, v) if (!json_is_string(v))
    {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void add_step(struct df *d, json_t *st)
{
    json_array_append_new(d->steps, st);
}

/* An absolute path for `p` from the current WORKDIR. */
static void resolve(struct df *d, const char *p, char *out, size_t n)
{
    if (p[0] == '/')
        snprintf(out, n, "%s", p);
    else
        snprintf(out, n, "%.2000s%s%.2000s", d->workdir, d->workdir[strlen(d->workdir) - 1] == '/' ? "" : "/", p);
}

static int copy(struct df *d, const char *args, int add)
{
    json_t *w = exec_form(args);
    if (!w)
        w = words(args);
    size_t n = json_array_size(w);
    char owner[72] = "root"; /* Docker's: a COPY is root's whatever USER says, unless --chown */
    while (n && !strncmp(json_string_value(json_array_get(w, 0)), "--", 2)) {
        const char *f = json_string_value(json_array_get(w, 0));
        if (strncmp(f, "--chown=", 8) || !f[8] || strlen(f + 8) >= sizeof(owner)) {
            int r = bad(d, "'%s' is not supported (only --chown=user[:group])", f);
            json_decref(w);
            return r;
        }
        snprintf(owner, sizeof(owner), "%s", f + 8);
        json_array_remove(w, 0);
        n--;
    }
    if (n < 2) {
        json_decref(w);
        return bad(d, "%s needs a source and a destination", add ? "ADD" : "COPY");
    }
    const char *dest = json_string_value(json_array_get(w, n - 1));
    char abs[4200];
    resolve(d, dest, abs, sizeof(abs));
    if (n > 2 && abs[strlen(abs) - 1] != '/')
        strcat(abs, "/"); /* several sources go into a directory */
    for (size_t i = 0; i + 1 < n; i++) {
        const char *src = json_string_value(json_array_get(w, i));
        if (strstr(src, "://")) {
            int r = bad(d, "ADD of a URL (%s) is not supported: put the file in the build context", src);
            json_decref(w);
            return r;
        }
        while (src[0] == '/')
            src++;
        add_step(d, json_pack("{s:s, s:s, s:s, s:s}", "type", "copy", "src", *src ? src : ".", "dest", abs, "user", owner));
    }
    json_decref(w);
    return 0;
}

static int env(struct df *d, const char *args)
{
    json_t *w = words(args), *envs = json_object(), *v;
    size_t i;
    if (json_array_size(w) >= 1 && !strchr(json_string_value(json_array_get(w, 0)), '=')) {
        /* ENV NAME value with spaces (the old form) */
        const char *sp = args;
        while (isspace((unsigned char)*sp))
            sp++;
        const char *e = sp;
        while (*e && !isspace((unsigned char)*e))
            e++;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(e - sp), sp);
        while (isspace((unsigned char)*e))
            e++;
        json_object_set_new(envs, name, json_string(e));
    } else {
        json_array_foreach(w, i, v)
        {
            const char *s = json_string_value(v), *eq = strchr(s, '=');
            if (!eq || eq == s) {
                int r = bad(d, "ENV wants NAME=value pairs (got '%s')", s);
                json_decref(w);
                json_decref(envs);
                return r;
            }
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - s) < 255 ? (int)(eq - s) : 255, s);
            json_object_set_new(envs, name, json_string(eq + 1));
        }
    }
    json_decref(w);
    json_object_update(d->vars, envs);
    add_step(d, json_pack("{s:s, s:o}", "type", "env", "envs", envs));
    return 0;
}

/* One instruction (the keyword upper-cased in kw, its arguments after substitution). */
static int instruction(struct df *d, const char *kw, const char *raw)
{
    int shell = !strcmp(kw, "RUN") || !strcmp(kw, "CMD") || !strcmp(kw, "ENTRYPOINT");
    char *args = shell ? strdup(raw) : subst(d, raw);
    int r = 0;
    if (!args)
        return bad(d, "%s", "out of memory");
    if (!strcmp(kw, "FROM")) {
        json_t *w = words(args);
        if (d->from)
            r = bad(d, "%s", "a second FROM: multi-stage builds are not supported");
        else if (json_array_size(w) != 1 && !(json_array_size(w) == 3 && !strcasecmp(json_string_value(json_array_get(w, 1)), "AS")))
            r = bad(d, "%s", "FROM wants one image or template (FROM name[:tag] [AS stage])");
        else
            d->from = strdup(json_string_value(json_array_get(w, 0)));
        json_decref(w);
    } else if (!d->from) {
        r = bad(d, "'%s' before FROM", kw);
    } else if (!strcmp(kw, "RUN")) {
        json_t *x = exec_form(args);
        const char *a = args;
        while (isspace((unsigned char)*a))
            a++;
        if (!strncmp(a, "--", 2))
            r = bad(d, "%s", "RUN flags (--mount, --network) are not supported");
        else
            add_step(d, json_pack("{s:s, s:o}", "type", "run", "args", x ? x : json_pack("[s]", a)));
    } else if (!strcmp(kw, "COPY") || !strcmp(kw, "ADD")) {
        if (strstr(args, "--from="))
            r = bad(d, "%s", "COPY --from is not supported (one stage only)");
        else
            r = copy(d, args, kw[0] == 'A');
    } else if (!strcmp(kw, "ENV")) {
        r = env(d, args);
    } else if (!strcmp(kw, "WORKDIR") || !strcmp(kw, "USER")) {
        json_t *w = words(args);
        const char *v = json_string_value(json_array_get(w, 0));
        if (json_array_size(w) != 1)
            r = bad(d, "%s wants one argument", kw);
        else if (kw[0] == 'W') {
            char abs[4200];
            resolve(d, v, abs, sizeof(abs));
            memcpy(d->workdir, abs, sizeof(abs));
            add_step(d, json_pack("{s:s, s:s}", "type", "workdir", "path", abs));
        } else {
            add_step(d, json_pack("{s:s, s:s}", "type", "user", "user", v));
        }
        json_decref(w);
    } else if (!strcmp(kw, "ARG")) {
        json_t *w = words(args), *v;
        size_t i;
        json_array_foreach(w, i, v)
        {
            const char *s = json_string_value(v), *eq = strchr(s, '=');
            char name[256];
            snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - s) : (int)strlen(s), s);
            if (!json_object_get(d->vars, name) || eq)
                json_object_set_new(d->vars, name, json_string(eq ? eq + 1 : ""));
        }
        json_decref(w);
    } else if (!strcmp(kw, "CMD") || !strcmp(kw, "ENTRYPOINT")) {
        json_t *x = exec_form(args);
        const char *a = args;
        while (isspace((unsigned char)*a))
            a++;
        json_t **slot = kw[0] == 'C' ? &d->cmd : &d->entrypoint;
        json_decref(*slot);
        *slot = x ? x : json_string(a);
    } else {
        r = bad(d, "'%s' is not supported (the subset: FROM, RUN, COPY, ADD, ENV, WORKDIR, USER, ARG, CMD, ENTRYPOINT)", kw);
    }
    free(args);
    return r;
}

/* A word for /bin/sh: quoted unless plain. */
static void sh_quote(char *out, size_t n, size_t *o, const char *w)
{
    int plain = *w != 0;
    for (const char *p = w; *p; p++)
        plain &= isalnum((unsigned char)*p) || strchr("-_./=:,+@%", *p) != NULL;
    *o += (size_t)snprintf(out + *o, *o < n ? n - *o : 0, "%s%s", *o ? " " : "", plain ? "" : "'");
    for (const char *p = w; *p && *o < n; p++)
        *o += (size_t)snprintf(out + *o, n - *o, *p == '\'' && !plain ? "'\\''" : "%c", *p);
    if (!plain && *o < n)
        *o += (size_t)snprintf(out + *o, n - *o, "'");
}

char *lel__template_start_line(json_t *entrypoint, json_t *cmd)
{
    static const size_t n = 65536;
    char *out = calloc(1, n + 1);
    size_t o = 0, i;
    json_t *v;
    if (!out || (!entrypoint && !cmd))
        return out;
    json_t *parts[2] = {entrypoint, json_is_string(entrypoint) ? NULL : cmd};
    for (int k = 0; k < 2; k++) {
        if (json_is_string(parts[k]))
            o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s", o ? " " : "", json_string_value(parts[k]));
        else
            json_array_foreach(parts[k], i, v)
            {
                if (json_is_string(v)) /* an image's config may hold anything */
                    sh_quote(out, n, &o, json_string_value(v));
            }
    }
    if (o >= n)
        out[n - 1] = 0;
    return out;
}

int lel__template_dockerfile(lel_call_t *c, const char *text, json_t **from_image, json_t **from_template, json_t **steps,
                             char **start)
{
    struct df d = {c, 0, json_object(), json_array(), "/", NULL, NULL, NULL};
    char *line = malloc(MAX_LINE + 1);
    size_t o = 0;
    int r = line ? 0 : -ENOMEM, lineno = 0, first = 1;
    for (const char *p = text; r == 0 && line && (*p || o);) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        lineno++;
        if (first)
            d.line = lineno;
        const char *s = p;
        while (s < p + len && isspace((unsigned char)*s))
            s++;
        int comment = s < p + len && *s == '#';
        size_t l = len;
        while (l && isspace((unsigned char)p[l - 1]))
            l--;
        int cont = !comment && l && p[l - 1] == '\\';
        if (!comment && o + l + 1 < MAX_LINE) {
            memcpy(line + o, p, cont ? l - 1 : l);
            o += cont ? l - 1 : l;
            line[o++] = ' ';
        }
        p = e ? e + 1 : p + len;
        first = 0;
        if (cont && *p)
            continue;
        line[o] = 0;
        char *q = line;
        while (isspace((unsigned char)*q))
            q++;
        if (*q) {
            char kw[16] = "";
            size_t k = 0;
            for (; q[k] && !isspace((unsigned char)q[k]) && k < sizeof(kw) - 1; k++)
                kw[k] = (char)toupper((unsigned char)q[k]);
            kw[k] = 0;
            r = instruction(&d, kw, q + k);
        }
        o = 0;
        first = 1;
        if (!*p)
            break;
    }
    if (r == 0 && !d.from) {
        d.line = lineno;
        r = bad(&d, "%s", "no FROM");
    }
    if (r == 0) {
        char canon[264];
        json_t *rec = NULL;
        /* an image of the team by that name, else a template */
        if (lel_image_canonical(d.from, canon, sizeof(canon)) == 0 && lel_image_acquire(c->team->srv, c->team->id, d.from, &rec) == 0) {
            lel_image_release(c->team->srv, json_string_value(json_object_get(rec, "imageID")));
            *from_image = json_string(d.from);
            json_decref(rec);
        } else {
            *from_template = json_string(strcmp(d.from, "scratch") ? d.from : "base");
        }
        *steps = json_incref(d.steps);
        *start = lel__template_start_line(d.entrypoint, d.cmd);
    }
    free(line);
    free(d.from);
    json_decref(d.vars);
    json_decref(d.steps);
    json_decref(d.cmd);
    json_decref(d.entrypoint);
    return r;
}
