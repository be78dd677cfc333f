/* lelctl template create|build|list|delete. A build is followed by polling its record
 * (`GET /templates/{id}/builds/{buildID}?logsOffset=N` answers at once while it runs): each new
 * log line is printed as it comes, under a progress line (step, elapsed time) on a terminal. */
#include "lel_cli_sandbox.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lel_cli_err("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0)
        if ((len += n) == cap - 1)
            buf = realloc(buf, cap *= 2);
    buf[len] = 0;
    fclose(f);
    return buf;
}

/* The create body from --spec (a JSON file of POST /templates' body) and the flags over it. */
static int body_opts(struct lel_cli *cli, int argc, char **argv, json_t **out, const char **follow)
{
    static const struct option o[] = {LEL_CLI_OPTS,
                                      {"name", 1, 0, 'n'},
                                      {"from-template", 1, 0, 't'},
                                      {"from-image", 1, 0, 'I'},
                                      {"dockerfile", 1, 0, 'D'},
                                      {"run", 1, 0, 'r'},
                                      {"start-cmd", 1, 0, 'S'},
                                      {"ready-cmd", 1, 0, 'R'},
                                      {"cpu", 1, 0, 'c'},
                                      {"memory", 1, 0, 'M'},
                                      {"spec", 1, 0, 's'},
                                      {"follow", 1, 0, 'f'},
                                      {0, 0, 0, 0}};
    json_t *b = json_object(), *steps = json_array();
    int c, r, rc = 0;
    long long v;
    while (!rc && (c = getopt_long(argc, argv, "qn:", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg))) {
            rc = r < 0 ? LEL_EXIT_USAGE : 0;
            continue;
        }
        switch (c) {
        case 'n': json_object_set_new(b, "name", json_string(optarg)); break;
        case 't': json_object_set_new(b, "fromTemplate", json_string(optarg)); break;
        case 'I': json_object_set_new(b, "fromImage", json_string(optarg)); break;
        case 'S': json_object_set_new(b, "startCmd", json_string(optarg)); break;
        case 'R': json_object_set_new(b, "readyCmd", json_string(optarg)); break;
        case 'r': json_array_append_new(steps, json_pack("{s:s, s:[s]}", "type", "run", "args", optarg)); break;
        case 'c':
        case 'M':
            if ((v = lel_cli_num(c == 'c' ? "cpu" : "memory", optarg)) < 0)
                rc = LEL_EXIT_USAGE;
            else
                json_object_set_new(b, c == 'c' ? "cpuCount" : "memoryMB", json_integer(v));
            break;
        case 'D':
        case 's': {
            char *text = read_text(optarg);
            if (!text) {
                rc = LEL_EXIT_ERROR;
                break;
            }
            if (c == 'D')
                json_object_set_new(b, "dockerfile", json_string(text));
            else {
                json_error_t je;
                json_t *spec = json_loads(text, 0, &je);
                if (!json_is_object(spec))
                    rc = lel_cli_usage("%s:%d: %s", optarg, je.line, spec ? "the spec must be a JSON object" : je.text);
                else
                    json_object_update_missing(b, spec); /* flags given before --spec still win */
                json_decref(spec);
            }
            free(text);
            break;
        }
        case 'f':
            if (follow) {
                *follow = optarg;
                break;
            } /* fall through */
        default: rc = c == 'f' ? lel_cli_usage("--follow is for template build") : LEL_EXIT_USAGE;
        }
    }
    if (json_array_size(steps)) {
        json_t *old = json_object_get(b, "steps");
        if (json_is_array(old))
            json_array_extend(old, steps);
        else
            json_object_set(b, "steps", steps);
    }
    json_decref(steps);
    if (!rc && optind < argc)
        rc = lel_cli_usage("template %s takes options only (got '%s')", argv[0], argv[optind]);
    if (!rc && !(follow && *follow) && !json_object_get(b, "name"))
        rc = lel_cli_usage("template %s needs --name (or a --spec with one)", argv[0]);
    if (rc)
        json_decref(b);
    else
        *out = b;
    return rc;
}

/* The number in a log line "step N ..." (the builder's way of naming its steps), else 0. */
static int step_of(const char *msg)
{
    int n = 0;
    return msg && sscanf(msg, "step %d", &n) == 1 ? n : 0;
}

struct progress {
    int tty, step, steps;
    double t0;
    const char *status;
};

static void progress_line(const struct progress *p)
{
    if (!p->tty)
        return;
    char steps[32] = "";
    if (p->step && p->steps)
        snprintf(steps, sizeof(steps), " · step %d/%d", p->step, p->steps);
    else if (p->step)
        snprintf(steps, sizeof(steps), " · step %d", p->step);
    fprintf(stderr, "\r\033[K%s%s · %.1f s", p->status, steps, now_s() - p->t0);
}

/* One poll: prints the lines after *offset. Returns 0 with *status set (static storage), or an exit code. */
static int poll_build(struct lel_cli *cli, const char *tid, const char *bid, size_t *offset, struct progress *p,
                      char *status, size_t cap, char *reason, size_t rcap)
{
    char path[1024], *et = lel_cli_escape(tid), *eb = lel_cli_escape(bid);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s?logsOffset=%zu", et, eb, *offset);
    free(et);
    free(eb);
    struct lel_cli_resp r;
    int rc = lel_cli_call(cli, "GET", path, NULL, 200, &r);
    if (rc)
        return rc;
    json_t *entries = json_object_get(r.json, "logEntries"), *e;
    size_t i;
    FILE *out = cli->json ? stderr : stdout;
    json_array_foreach (entries, i, e) {
        const char *msg = lel_cli_cell(e, "message");
        if (step_of(msg))
            p->step = step_of(msg);
        if (p->tty)
            fputs("\r\033[K", stderr);
        fprintf(out, "%-5s %s\n", lel_cli_cell(e, "level"), msg);
    }
    fflush(out);
    *offset += json_array_size(entries);
    snprintf(status, cap, "%s", lel_cli_cell(r.json, "status"));
    json_t *why = json_object_get(r.json, "reason");
    snprintf(reason, rcap, "%s", json_is_string(why) ? json_string_value(why) : lel_cli_cell(why, "message"));
    p->status = status;
    progress_line(p);
    lel_cli_resp_free(&r);
    return 0;
}

/* Follows a build to its end: 0 when ready, LEL_EXIT_BUILD when it failed. */
static int follow_build(struct lel_cli *cli, const char *tid, const char *bid, int steps)
{
    struct progress p = {.tty = isatty(2), .steps = steps, .t0 = now_s(), .status = "waiting"};
    size_t offset = 0;
    char status[32] = "", reason[1024];
    int rc;
    while (!(rc = poll_build(cli, tid, bid, &offset, &p, status, sizeof(status), reason, sizeof(reason))))
        if (!strcmp(status, "ready") || !strcmp(status, "error"))
            break;
        else
            usleep(400 * 1000);
    if (p.tty)
        fputs("\r\033[K", stderr);
    if (rc)
        return rc;
    if (!strcmp(status, "error")) {
        lel_cli_err("build %s of template %s failed%s%s", bid, tid, reason[0] ? ": " : "", reason);
        return LEL_EXIT_BUILD;
    }
    fprintf(stderr, "template %s: build %s ready in %.1f s\n", tid, bid, now_s() - p.t0);
    return 0;
}

/* The template record, printed as the user asked (after a build: the id alone on stdout). */
static int show_template(struct lel_cli *cli, const char *tid)
{
    char path[1024], *e = lel_cli_escape(tid);
    snprintf(path, sizeof(path), "/templates/%s", e);
    free(e);
    struct lel_cli_resp r;
    int rc = lel_cli_call(cli, "GET", path, NULL, 200, &r);
    if (rc)
        return rc;
    if (cli->json)
        lel_cli_print_json(r.json);
    else
        puts(lel_cli_cell(r.json, "templateID"));
    lel_cli_resp_free(&r);
    return 0;
}

/* POST /templates; for `build`, a name the team has already is rebuilt instead (POST
 * /templates/{name}: the same id gets a new build from this body), as E2B's CLI builds a
 * template again under its name. The built-in one's name stays refused. */
static int create_template(struct lel_cli *cli, json_t *b, int build, struct lel_cli_resp *r)
{
    if (!build)
        return lel_cli_call(cli, "POST", "/templates", b, 202, r);
    int rc = lel_cli_request(cli, "POST", "/templates", b, r);
    if (rc)
        return rc;
    const char *msg = json_string_value(json_object_get(r->json, "message"));
    if (r->status != 409 || !msg || !strstr(msg, "already exists") || strstr(msg, "built-in")) {
        return lel_cli_call_done(r, 202, "POST", "/templates");
    }
    lel_cli_resp_free(r);
    const char *name = json_string_value(json_object_get(b, "name"));
    char path[1024], *e = lel_cli_escape(name);
    snprintf(path, sizeof(path), "/templates/%s", e);
    free(e);
    if (!cli->quiet)
        fprintf(stderr, "template %s exists: building it again\n", name);
    return lel_cli_call(cli, "POST", path, b, 202, r);
}

static int create_or_build(struct lel_cli *cli, int argc, char **argv, int build)
{
    json_t *b = NULL;
    const char *follow = NULL;
    int rc = body_opts(cli, argc, argv, &b, build ? &follow : NULL);
    if (rc || (rc = lel_cli_ready(cli))) {
        json_decref(b);
        return rc;
    }
    char tid[256], bid[256];
    int steps = (int)json_array_size(json_object_get(b, "steps"));
    struct lel_cli_resp r;
    if (follow) { /* an existing template's current build */
        char path[1024], *e = lel_cli_escape(follow);
        snprintf(path, sizeof(path), "/templates/%s", e);
        free(e);
        rc = lel_cli_call(cli, "GET", path, NULL, 200, &r);
    } else
        rc = create_template(cli, b, build, &r);
    json_decref(b);
    if (rc)
        return rc;
    snprintf(tid, sizeof(tid), "%s", lel_cli_cell(r.json, "templateID"));
    snprintf(bid, sizeof(bid), "%s", lel_cli_cell(r.json, "buildID"));
    if (!build) {
        if (cli->json)
            lel_cli_print_json(r.json);
        else
            puts(tid);
        lel_cli_resp_free(&r);
        return 0;
    }
    lel_cli_resp_free(&r);
    if (!bid[0]) {
        lel_cli_err("template %s has no build", tid);
        return LEL_EXIT_ERROR;
    }
    rc = follow_build(cli, tid, bid, steps);
    return rc ? rc : show_template(cli, tid);
}

static int list(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {0, 0, 0, 0}};
    int c, r;
    while ((c = getopt_long(argc, argv, "q", o, NULL)) != -1)
        if ((r = lel_cli_opt(cli, c, optarg)) <= 0)
            return LEL_EXIT_USAGE;
    json_t *all;
    int rc = lel_cli_ready(cli);
    if (rc || (rc = lel__cli_list_all(cli, "/templates", 0, &all)))
        return rc;
    static const char *const cols[] = {"TEMPLATE ID", "NAME", "STATUS", "CPU", "MEMORY MB", "CREATED", "SANDBOXES", NULL};
    json_t *rows = json_array(), *t;
    size_t i;
    json_array_foreach (all, i, t) {
        if (cli->quiet)
            puts(lel_cli_cell(t, "templateID"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s]", lel_cli_cell(t, "templateID"), lel_cli_cell(t, "name"),
                                              lel_cli_cell(t, "buildStatus"), lel_cli_cell(t, "cpuCount"),
                                              lel_cli_cell(t, "memoryMB"), lel_cli_cell(t, "createdAt"),
                                              lel_cli_cell(t, "spawnCount")));
    }
    if (cli->json)
        lel_cli_print_json(all);
    else if (!cli->quiet)
        lel_cli_print_table(cols, rows);
    json_decref(rows);
    json_decref(all);
    return 0;
}

/* DELETE <prefix>/<id> for each id; prints "<id>: <done>"; the first failure's code. */
int lel__cli_delete_each(struct lel_cli *cli, int argc, char **argv, const char *prefix, const char *done)
{
    static const struct option o[] = {LEL_CLI_OPTS, {0, 0, 0, 0}};
    int c, r, first = 0;
    while ((c = getopt_long(argc, argv, "q", o, NULL)) != -1)
        if ((r = lel_cli_opt(cli, c, optarg)) <= 0)
            return LEL_EXIT_USAGE;
    if (optind >= argc)
        return lel_cli_usage("%s needs an id", argv[0]);
    int rc = lel_cli_ready(cli);
    if (rc)
        return rc;
    for (int i = optind; i < argc; i++) {
        char path[1024], *e = lel_cli_escape(argv[i]);
        snprintf(path, sizeof(path), "%s/%s", prefix, e);
        free(e);
        struct lel_cli_resp resp;
        if ((rc = lel_cli_call(cli, "DELETE", path, NULL, 204, &resp))) {
            first = first ? first : rc;
            continue;
        }
        lel_cli_resp_free(&resp);
        if (!cli->json && !cli->quiet)
            printf("%s: %s\n", argv[i], done);
    }
    return first;
}

int lel_cli_template(struct lel_cli *cli, int argc, char **argv)
{
    const char *v = argv[0];
    if (!strcmp(v, "create"))
        return create_or_build(cli, argc, argv, 0);
    if (!strcmp(v, "build"))
        return create_or_build(cli, argc, argv, 1);
    if (!strcmp(v, "list") || !strcmp(v, "ls"))
        return list(cli, argc, argv);
    if (!strcmp(v, "delete") || !strcmp(v, "rm"))
        return lel__cli_delete_each(cli, argc, argv, "/templates", "deleted");
    return lel_cli_usage("unknown verb 'template %s'", v);
}
