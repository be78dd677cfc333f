/* lelctl sandbox create|list|get|kill|pause|resume|logs|ports (exec and cp: lel_cli_exec.c). */
#include "lel_cli.h"
#include "lel_cli_sandbox.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parses "K=V" into obj; -1 (printed) without '='. */
int lel__cli_kv(json_t *obj, const char *opt, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        lel_cli_err("--%s wants KEY=VALUE, not '%s'", opt, arg);
        return -1;
    }
    json_object_setn_new_nocheck(obj, arg, (size_t)(eq - arg), json_string(eq + 1));
    return 0;
}

/* "/sandboxes/<escaped id><rest>" into buf. */
void lel__cli_sbx_path(char *buf, size_t cap, const char *id, const char *rest)
{
    char *e = lel_cli_escape(id);
    snprintf(buf, cap, "/sandboxes/%s%s", e ? e : "", rest);
    free(e);
}

static void sandbox_row(json_t *rows, json_t *s)
{
    json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s]", lel_cli_cell(s, "sandboxID"), lel_cli_cell(s, "templateID"),
                                          lel_cli_cell(s, "state"), lel_cli_cell(s, "startedAt"), lel_cli_cell(s, "endAt"),
                                          lel_cli_cell(s, "cpuCount"), lel_cli_cell(s, "memoryMB")));
}

static const char *const SANDBOX_COLS[] = {"SANDBOX ID", "TEMPLATE", "STATE", "STARTED", "ENDS", "CPU", "MEMORY MB", NULL};

/* A sandbox (or other record) as the user asked: JSON, its id alone, or its fields. */
static void show_one(struct lel_cli *cli, json_t *j, const char *id_field)
{
    if (cli->json)
        lel_cli_print_json(j);
    else if (cli->quiet)
        puts(lel_cli_cell(j, id_field));
    else
        lel_cli_print_fields(j);
}

static int create(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"template", 1, 0, 't'}, {"timeout", 1, 0, 'T'},
                                      {"metadata", 1, 0, 'm'}, {"env", 1, 0, 'e'}, {"auto-pause", 0, 0, 'P'},
                                      {"snapshot", 1, 0, 's'}, {0, 0, 0, 0}};
    json_t *body = json_pack("{s:s, s:{}, s:{}}", "templateID", "base", "metadata", "envVars");
    int c, r, rc = 0;
    long long v;
    while (!rc && (c = getopt_long(argc, argv, "qt:m:e:", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg)))
            rc = r < 0 ? LEL_EXIT_USAGE : 0;
        else if (c == 't')
            json_object_set_new(body, "templateID", json_string(optarg));
        else if (c == 'T')
            rc = (v = lel_cli_num("timeout", optarg)) < 0 ? LEL_EXIT_USAGE
                                                          : json_object_set_new(body, "timeout", json_integer(v));
        else if (c == 'm' || c == 'e')
            rc = lel__cli_kv(json_object_get(body, c == 'm' ? "metadata" : "envVars"), c == 'm' ? "metadata" : "env",
                             optarg) < 0
                     ? LEL_EXIT_USAGE
                     : 0;
        else if (c == 'P')
            json_object_set_new(body, "autoPause", json_true());
        else if (c == 's') {
            json_object_set_new(body, "snapshotID", json_string(optarg));
            json_object_del(body, "templateID");
        } else
            rc = LEL_EXIT_USAGE;
    }
    if (!rc && optind < argc)
        rc = lel_cli_usage("sandbox create takes no arguments (got '%s')", argv[optind]);
    struct lel_cli_resp resp;
    if (!rc && !(rc = lel_cli_ready(cli)) && !(rc = lel_cli_call(cli, "POST", "/sandboxes", body, 201, &resp))) {
        if (cli->json)
            lel_cli_print_json(resp.json);
        else
            puts(lel_cli_cell(resp.json, "sandboxID")); /* the id alone: id=$(lelctl sandbox create) */
        lel_cli_resp_free(&resp);
    }
    json_decref(body);
    return rc;
}

/* GET path, following X-Next-Token unless one page was asked for; *all gets the items. */
int lel__cli_list_all(struct lel_cli *cli, const char *path, int one_page, json_t **all)
{
    char p[8192], *tok = NULL;
    *all = json_array();
    for (;;) {
        snprintf(p, sizeof(p), "%s%snextToken=%s", path, strchr(path, '?') ? "&" : "?", tok ? tok : "");
        if (!tok)
            snprintf(p, sizeof(p), "%s", path);
        free(tok);
        tok = NULL;
        struct lel_cli_resp r;
        int rc = lel_cli_call(cli, "GET", p, NULL, 200, &r);
        if (rc) {
            json_decref(*all);
            *all = NULL;
            return rc;
        }
        json_array_extend(*all, r.json);
        if (r.next_token[0] && !one_page)
            tok = lel_cli_escape(r.next_token);
        lel_cli_resp_free(&r);
        if (!tok)
            return 0;
    }
}

static int list(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"state", 1, 0, 's'}, {"metadata", 1, 0, 'm'},
                                      {"limit", 1, 0, 'l'}, {0, 0, 0, 0}};
    char path[4096] = "/sandboxes?", md[2048] = "";
    int c, r, rc = 0;
    long long limit = 0;
    while (!rc && (c = getopt_long(argc, argv, "qs:m:", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg)))
            rc = r < 0 ? LEL_EXIT_USAGE : 0;
        else if (c == 's') {
            char *e = lel_cli_escape(optarg);
            snprintf(path + strlen(path), sizeof(path) - strlen(path), "state=%s&", e);
            free(e);
        } else if (c == 'm') {
            if (!strchr(optarg, '='))
                rc = lel_cli_usage("--metadata wants KEY=VALUE, not '%s'", optarg);
            snprintf(md + strlen(md), sizeof(md) - strlen(md), "%s%s", md[0] ? "&" : "", optarg);
        } else if (c == 'l') {
            if ((limit = lel_cli_num("limit", optarg)) < 1 || limit > 1000)
                rc = lel_cli_usage("--limit is 1..1000");
        } else
            rc = LEL_EXIT_USAGE;
    }
    if (rc)
        return rc;
    if (md[0]) {
        char *e = lel_cli_escape(md);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "metadata=%s&", e);
        free(e);
    }
    if (limit)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "limit=%lld&", limit);
    path[strlen(path) - 1] = 0; /* the last '&' or the '?' */
    json_t *all;
    if ((rc = lel_cli_ready(cli)) || (rc = lel__cli_list_all(cli, path, limit > 0, &all)))
        return rc;
    if (cli->json)
        lel_cli_print_json(all);
    else {
        json_t *rows = json_array(), *s;
        size_t i;
        json_array_foreach (all, i, s)
            if (cli->quiet)
                puts(lel_cli_cell(s, "sandboxID"));
            else
                sandbox_row(rows, s);
        if (!cli->quiet)
            lel_cli_print_table(SANDBOX_COLS, rows);
        json_decref(rows);
    }
    json_decref(all);
    return 0;
}

/* Options only (the common ones, plus --timeout for resume); the ids are left at argv[optind..]. */
static int plain_opts(struct lel_cli *cli, int argc, char **argv, long long *timeout)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"timeout", 1, 0, 'T'}, {0, 0, 0, 0}};
    int c, r;
    while ((c = getopt_long(argc, argv, "q", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg))) {
            if (r < 0)
                return LEL_EXIT_USAGE;
        } else if (c == 'T' && timeout) {
            if ((*timeout = lel_cli_num("timeout", optarg)) < 0)
                return LEL_EXIT_USAGE;
        } else
            return c == 'T' ? lel_cli_usage("--timeout is for sandbox resume") : LEL_EXIT_USAGE;
    }
    if (optind >= argc)
        return lel_cli_usage("sandbox %s needs a sandbox id", argv[0]);
    return lel_cli_ready(cli);
}

/* get, kill, pause, resume: each id in turn; the exit code is the first failure's. */
static int each(struct lel_cli *cli, int argc, char **argv)
{
    long long timeout = -1;
    const char *verb = argv[0];
    int rc = plain_opts(cli, argc, argv, !strcmp(verb, "resume") ? &timeout : NULL), first = 0;
    if (rc)
        return rc;
    for (int i = optind; i < argc; i++) {
        char path[1024];
        struct lel_cli_resp r;
        json_t *body = NULL;
        if (!strcmp(verb, "get")) {
            lel__cli_sbx_path(path, sizeof(path), argv[i], "");
            rc = lel_cli_call(cli, "GET", path, NULL, 200, &r);
        } else if (!strcmp(verb, "kill")) {
            lel__cli_sbx_path(path, sizeof(path), argv[i], "");
            rc = lel_cli_call(cli, "DELETE", path, NULL, 204, &r);
        } else if (!strcmp(verb, "pause")) {
            lel__cli_sbx_path(path, sizeof(path), argv[i], "/pause");
            rc = lel_cli_call(cli, "POST", path, NULL, 204, &r);
        } else {
            lel__cli_sbx_path(path, sizeof(path), argv[i], "/resume");
            body = timeout >= 0 ? json_pack("{s:I}", "timeout", (json_int_t)timeout) : json_object();
            rc = lel_cli_call(cli, "POST", path, body, 201, &r);
        }
        json_decref(body);
        if (!rc) {
            if (r.json)
                show_one(cli, r.json, "sandboxID");
            else if (!cli->json && !cli->quiet)
                printf("%s: %s\n", argv[i], !strcmp(verb, "kill") ? "killed" : "paused");
            lel_cli_resp_free(&r);
        } else if (!first)
            first = rc;
    }
    return first;
}

/* A log entry's RFC 3339 timestamp (UTC, with milliseconds) as ms since the epoch; 0 if bad. */
static long long ts_ms(const char *s)
{
    struct tm tm = {0};
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return 0;
    long long ms = (long long)timegm(&tm) * 1000;
    if (*rest == '.')
        ms += strtol(rest + 1, NULL, 10);
    return ms;
}

/* One page of logs from `*start` (ms); prints the entries not yet seen (`*seen_at_start` of
 * them share the ms `*start`). Returns 0, or the exit code; *n gets the page's size. */
static int logs_page(struct lel_cli *cli, const char *id, long long *start, size_t *seen_at_start, size_t *n)
{
    char path[1024], rest[128];
    snprintf(rest, sizeof(rest), "/logs?start=%lld&limit=1000", *start);
    lel__cli_sbx_path(path, sizeof(path), id, rest);
    struct lel_cli_resp r;
    int rc = lel_cli_call(cli, "GET", path, NULL, 200, &r);
    if (rc)
        return rc;
    json_t *entries = json_object_get(r.json, "logEntries"), *e;
    size_t i, skip = *seen_at_start;
    *n = json_array_size(entries);
    json_array_foreach (entries, i, e) {
        long long ms = ts_ms(lel_cli_cell(e, "timestamp"));
        if (ms == *start && skip > 0) {
            skip--;
            continue;
        }
        if (ms != *start) {
            *start = ms;
            *seen_at_start = 0;
        }
        (*seen_at_start)++;
        if (cli->json) {
            char *s = json_dumps(e, JSON_COMPACT); /* one entry a line: a follow is a stream */
            puts(s);
            free(s);
        } else
            printf("%s  %-5s  %s\n", lel_cli_cell(e, "timestamp"), lel_cli_cell(e, "level"), lel_cli_cell(e, "message"));
    }
    fflush(stdout);
    lel_cli_resp_free(&r);
    return 0;
}

/* The sandbox's state, "" once it is gone (404); NULL on another failure. */
static const char *state_of(struct lel_cli *cli, const char *id, char *buf, size_t cap)
{
    char path[1024];
    struct lel_cli_resp r;
    lel__cli_sbx_path(path, sizeof(path), id, "");
    if (lel_cli_request(cli, "GET", path, NULL, &r))
        return NULL;
    snprintf(buf, cap, "%s", r.status == 404 ? "" : r.status == 200 ? lel_cli_cell(r.json, "state") : "?");
    lel_cli_resp_free(&r);
    return buf;
}

static int logs(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"follow", 0, 0, 'f'}, {0, 0, 0, 0}};
    int c, r, follow = 0;
    while ((c = getopt_long(argc, argv, "qf", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg))) {
            if (r < 0)
                return LEL_EXIT_USAGE;
        } else if (c == 'f')
            follow = 1;
        else
            return LEL_EXIT_USAGE;
    }
    if (optind + 1 != argc)
        return lel_cli_usage("sandbox logs takes one sandbox id");
    int rc = lel_cli_ready(cli);
    long long start = 0;
    size_t seen = 0, n = 0;
    const char *id = argv[optind];
    while (!rc) {
        do
            rc = logs_page(cli, id, &start, &seen, &n);
        while (!rc && n == 1000);
        if (rc || !follow)
            break;
        char st[32];
        const char *s = state_of(cli, id, st, sizeof(st));
        if (!s)
            return LEL_EXIT_CONNECT;
        if (!*s || !strcmp(s, "killed")) { /* the last lines, then done */
            if (*s)
                rc = logs_page(cli, id, &start, &seen, &n);
            break;
        }
        usleep(500 * 1000);
    }
    return rc;
}

/* Listening TCP ports from /proc/net/tcp{,6} text: "sl local rem st ..." with st 0A. */
static json_t *listening(const char *text)
{
    json_t *ports = json_array();
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char local[80], st[8];
        unsigned port;
        if (sscanf(line, " %*[0-9]: %79s %*s %7s", local, st) != 2 || strcmp(st, "0A"))
            continue;
        char *colon = strrchr(local, ':');
        if (!colon || sscanf(colon + 1, "%x", &port) != 1)
            continue;
        *colon = 0;
        int loopback = !strcmp(local, "0100007F") || !strcmp(local, "00000000000000000000000001000000");
        int any = strspn(local, "0") == strlen(local);
        json_array_append_new(ports, json_pack("{s:i, s:s, s:b}", "port", (int)port, "address",
                                               any ? "any" : loopback ? "loopback" : local, "tcp6", strlen(local) > 8));
    }
    return ports;
}

/* The URLs that reach `port`: Host `<port>-<id>.<domain>` on the daemon's port, and the path form. */
static void port_urls(struct lel_cli *cli, json_t *sbx, json_t *p)
{
    const char *id = lel_cli_cell(sbx, "sandboxID"), *domain = lel_cli_cell(sbx, "domain");
    const char *hostpart = strstr(cli->url, "://") + 3, *portpart = strchr(hostpart, ':');
    const char *slash = strchr(hostpart, '/');
    int port = (int)json_integer_value(json_object_get(p, "port"));
    char host[1024], path[1024];
    int scheme_len = (int)(hostpart - cli->url);
    if (portpart && (!slash || portpart < slash))
        snprintf(host, sizeof(host), "%.*s%d-%s.%s:%.*s/", scheme_len, cli->url, port, id, domain,
                 (int)strcspn(portpart + 1, "/"), portpart + 1);
    else
        snprintf(host, sizeof(host), "%.*s%d-%s.%s/", scheme_len, cli->url, port, id, domain);
    snprintf(path, sizeof(path), "%s/sandboxes/%s/ports/%d/", cli->url, id, port);
    json_object_set_new(p, "url", json_string(host));
    json_object_set_new(p, "pathUrl", json_string(path));
}

static int ports(struct lel_cli *cli, int argc, char **argv)
{
    int rc = plain_opts(cli, argc, argv, NULL);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return lel_cli_usage("sandbox ports takes one sandbox id");
    char path[1024];
    struct lel_cli_resp sr, cr;
    lel__cli_sbx_path(path, sizeof(path), argv[optind], "");
    if ((rc = lel_cli_call(cli, "GET", path, NULL, 200, &sr)))
        return rc;
    lel__cli_sbx_path(path, sizeof(path), argv[optind], "/commands");
    json_t *body = json_pack("{s:s}", "cmd", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null");
    rc = lel_cli_call(cli, "POST", path, body, 200, &cr);
    json_decref(body);
    if (rc) {
        lel_cli_resp_free(&sr);
        return rc;
    }
    json_t *list = listening(lel_cli_cell(cr.json, "stdout")), *p, *rows = json_array();
    size_t i;
    json_array_foreach (list, i, p) {
        port_urls(cli, sr.json, p);
        json_array_append_new(rows, json_pack("[s,s,s,s]", lel_cli_cell(p, "port"), lel_cli_cell(p, "address"),
                                              lel_cli_cell(p, "url"), lel_cli_cell(p, "pathUrl")));
    }
    static const char *const cols[] = {"PORT", "LISTENS ON", "URL", "URL WITH THE API KEY", NULL};
    if (cli->json)
        lel_cli_print_json(list);
    else if (cli->quiet)
        json_array_foreach (list, i, p)
            puts(lel_cli_cell(p, "port"));
    else
        lel_cli_print_table(cols, rows);
    json_decref(rows);
    json_decref(list);
    lel_cli_resp_free(&sr);
    lel_cli_resp_free(&cr);
    return 0;
}

int lel_cli_sandbox(struct lel_cli *cli, int argc, char **argv)
{
    const char *v = argv[0];
    if (!strcmp(v, "create"))
        return create(cli, argc, argv);
    if (!strcmp(v, "list") || !strcmp(v, "ls"))
        return list(cli, argc, argv);
    if (!strcmp(v, "get") || !strcmp(v, "kill") || !strcmp(v, "pause") || !strcmp(v, "resume"))
        return each(cli, argc, argv);
    if (!strcmp(v, "exec"))
        return lel__cli_exec(cli, argc, argv);
    if (!strcmp(v, "cp"))
        return lel__cli_cp(cli, argc, argv);
    if (!strcmp(v, "logs"))
        return logs(cli, argc, argv);
    if (!strcmp(v, "ports"))
        return ports(cli, argc, argv);
    return lel_cli_usage("unknown verb 'sandbox %s'", v);
}
