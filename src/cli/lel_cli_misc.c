/* lelctl snapshot create|list|delete, key create|list|revoke, and `completion bash`. */
#include "lel_cli_sandbox.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Options only; returns 0 (then argv[optind..] are the arguments) or an exit code. `extra`
 * names one more option with a value (its long name; short 'x'), stored in *val. */
static int opts(struct lel_cli *cli, int argc, char **argv, const char *extra, const char **val, const char *extra2,
                const char **val2)
{
    struct option o[9] = {LEL_CLI_OPTS};
    size_t n = 6; /* the entries LEL_CLI_OPTS filled */
    if (extra)
        o[n++] = (struct option){extra, 1, 0, 'x'};
    if (extra2)
        o[n++] = (struct option){extra2, 1, 0, 'y'};
    o[n] = (struct option){0, 0, 0, 0};
    int c, r;
    while ((c = getopt_long(argc, argv, "q", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg)) < 0)
            return LEL_EXIT_USAGE;
        if (r)
            continue;
        if (c == 'x' && extra)
            *val = optarg;
        else if (c == 'y' && extra2)
            *val2 = optarg;
        else
            return LEL_EXIT_USAGE;
    }
    return lel_cli_ready(cli);
}

static int snap_create(struct lel_cli *cli, int argc, char **argv)
{
    const char *name = NULL;
    int rc = opts(cli, argc, argv, "name", &name, NULL, NULL);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return lel_cli_usage("snapshot create takes one sandbox id");
    char path[1024];
    lel__cli_sbx_path(path, sizeof(path), argv[optind], "/snapshot");
    json_t *body = name ? json_pack("{s:s}", "name", name) : json_object();
    struct lel_cli_resp r;
    rc = lel_cli_call(cli, "POST", path, body, 201, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (cli->json)
        lel_cli_print_json(r.json);
    else
        puts(lel_cli_cell(r.json, "snapshotID"));
    lel_cli_resp_free(&r);
    return 0;
}

/* "12345678" as "11.8 MiB" for people. */
static const char *size_text(json_t *o, const char *field, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, field);
    if (!json_is_integer(v))
        return "";
    double b = (double)json_integer_value(v);
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4)
        b /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

static int snap_list(struct lel_cli *cli, int argc, char **argv)
{
    const char *sbx = NULL, *name = NULL;
    int rc = opts(cli, argc, argv, "sandbox", &sbx, "name", &name);
    if (rc)
        return rc;
    if (optind < argc)
        return lel_cli_usage("snapshot list takes options only");
    char path[2048] = "/snapshots";
    char *es = sbx ? lel_cli_escape(sbx) : NULL, *en = name ? lel_cli_escape(name) : NULL;
    snprintf(path, sizeof(path), "/snapshots%s%s%s%s%s%s", sbx || name ? "?" : "", sbx ? "sandboxID=" : "", sbx ? es : "",
             sbx && name ? "&" : "", name ? "name=" : "", name ? en : "");
    free(es);
    free(en);
    json_t *all, *s, *rows = json_array();
    if ((rc = lel__cli_list_all(cli, path, 0, &all))) {
        json_decref(rows);
        return rc;
    }
    size_t i;
    json_array_foreach (all, i, s) {
        char a[32], b[32];
        if (cli->quiet)
            puts(lel_cli_cell(s, "snapshotID"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s]", lel_cli_cell(s, "snapshotID"), lel_cli_cell(s, "sandboxID"),
                                              lel_cli_cell(s, "name"), lel_cli_cell(s, "createdAt"),
                                              size_text(s, "sizeBytes", a, sizeof(a)),
                                              size_text(s, "storedBytes", b, sizeof(b))));
    }
    static const char *const cols[] = {"SNAPSHOT ID", "SANDBOX ID", "NAME", "CREATED", "SIZE", "STORED", NULL};
    if (cli->json)
        lel_cli_print_json(all);
    else if (!cli->quiet)
        lel_cli_print_table(cols, rows);
    json_decref(rows);
    json_decref(all);
    return 0;
}

int lel_cli_snapshot(struct lel_cli *cli, int argc, char **argv)
{
    const char *v = argv[0];
    if (!strcmp(v, "create"))
        return snap_create(cli, argc, argv);
    if (!strcmp(v, "list") || !strcmp(v, "ls"))
        return snap_list(cli, argc, argv);
    if (!strcmp(v, "delete") || !strcmp(v, "rm"))
        return lel__cli_delete_each(cli, argc, argv, "/snapshots", "deleted");
    return lel_cli_usage("unknown verb 'snapshot %s'", v);
}

static int key_create(struct lel_cli *cli, int argc, char **argv)
{
    int rc = opts(cli, argc, argv, NULL, NULL, NULL, NULL);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return lel_cli_usage("key create takes one name");
    json_t *body = json_pack("{s:s}", "name", argv[optind]);
    struct lel_cli_resp r;
    rc = lel_cli_call(cli, "POST", "/api-keys", body, 201, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (cli->json)
        lel_cli_print_json(r.json);
    else {
        puts(lel_cli_cell(r.json, "key"));
        if (!cli->quiet)
            fprintf(stderr, "key %s (%s): shown this once, keep it now\n", lel_cli_cell(r.json, "id"),
                    lel_cli_cell(r.json, "name"));
    }
    lel_cli_resp_free(&r);
    return 0;
}

static int key_list(struct lel_cli *cli, int argc, char **argv)
{
    int rc = opts(cli, argc, argv, NULL, NULL, NULL, NULL);
    if (rc)
        return rc;
    json_t *all, *k, *rows = json_array();
    if ((rc = lel__cli_list_all(cli, "/api-keys", 0, &all))) {
        json_decref(rows);
        return rc;
    }
    size_t i;
    json_array_foreach (all, i, k) {
        if (cli->quiet)
            puts(lel_cli_cell(k, "id"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s]", lel_cli_cell(k, "id"), lel_cli_cell(k, "name"),
                                              lel_cli_cell(k, "mask"), lel_cli_cell(k, "createdAt"),
                                              lel_cli_cell(k, "lastUsed")));
    }
    static const char *const cols[] = {"KEY ID", "NAME", "KEY", "CREATED", "LAST USED", NULL};
    if (cli->json)
        lel_cli_print_json(all);
    else if (!cli->quiet)
        lel_cli_print_table(cols, rows);
    json_decref(rows);
    json_decref(all);
    return 0;
}

int lel_cli_key(struct lel_cli *cli, int argc, char **argv)
{
    const char *v = argv[0];
    if (!strcmp(v, "create"))
        return key_create(cli, argc, argv);
    if (!strcmp(v, "list") || !strcmp(v, "ls"))
        return key_list(cli, argc, argv);
    if (!strcmp(v, "revoke") || !strcmp(v, "delete") || !strcmp(v, "rm"))
        return lel__cli_delete_each(cli, argc, argv, "/api-keys", "revoked");
    return lel_cli_usage("unknown verb 'key %s'", v);
}

int lel_cli_backup(struct lel_cli *cli, int argc, char **argv)
{
    const char *token = NULL;
    int rc = opts(cli, argc, argv, "admin-token", &token, NULL, NULL);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return lel_cli_usage("backup takes one directory (absolute, new, on the daemon's machine)");
    cli->admin_token = token ? token : getenv("LELANTOS_ADMIN_TOKEN");
    if (!cli->admin_token || !*cli->admin_token)
        return lel_cli_usage("backup needs the admin token: --admin-token or LELANTOS_ADMIN_TOKEN");
    char abs[4096];
    const char *dir = argv[optind];
    if (dir[0] != '/' && strlen(dir) < 2000 && getcwd(abs, sizeof(abs) - 2001)) { /* the daemon takes absolute paths */
        strcat(strcat(abs, "/"), dir);
        dir = abs;
    }
    json_t *body = json_pack("{s:s}", "dir", dir);
    struct lel_cli_resp r;
    rc = lel_cli_call(cli, "POST", "/admin/backup", body, 201, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (cli->json)
        lel_cli_print_json(r.json);
    else if (!cli->quiet)
        printf("backup in %s: the store and %s image files (%s linked, %s copied) in %s ms\n", lel_cli_cell(r.json, "dir"),
               lel_cli_cell(r.json, "files"), lel_cli_cell(r.json, "linked"), lel_cli_cell(r.json, "copied"),
               lel_cli_cell(r.json, "durationMs"));
    lel_cli_resp_free(&r);
    return 0;
}

/* Free and total memory of a node record as "free/total". */
static const char *memory_cell(json_t *n, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", lel_cli_cell(n, "freeMemoryMB"), lel_cli_cell(n, "memoryMB"));
    return buf;
}

int lel_cli_nodes(struct lel_cli *cli, int argc, char **argv)
{
    const char *token = NULL;
    int rc = opts(cli, argc, argv, "admin-token", &token, NULL, NULL);
    if (rc)
        return rc;
    if (optind != argc)
        return lel_cli_usage("nodes takes no arguments");
    cli->admin_token = token ? token : getenv("LELANTOS_ADMIN_TOKEN");
    if (!cli->admin_token || !*cli->admin_token)
        return lel_cli_usage("nodes needs the admin token: --admin-token or LELANTOS_ADMIN_TOKEN");
    struct lel_cli_resp r;
    if ((rc = lel_cli_call(cli, "GET", "/cluster/nodes", NULL, 200, &r)))
        return rc;
    if (!json_is_array(r.json)) {
        lel_cli_err("GET /cluster/nodes did not answer a list");
        lel_cli_resp_free(&r);
        return LEL_EXIT_CONNECT;
    }
    json_t *rows = json_array(), *n;
    size_t i;
    json_array_foreach (r.json, i, n) {
        char mem[64], tpl[16];
        snprintf(tpl, sizeof(tpl), "%zu", json_array_size(json_object_get(n, "templates")));
        if (cli->quiet)
            puts(lel_cli_cell(n, "name"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s,s]", lel_cli_cell(n, "name"),
                                              json_is_true(json_object_get(n, "self")) ? "*" : "",
                                              lel_cli_cell(n, "state"), lel_cli_cell(n, "url"), lel_cli_cell(n, "cores"),
                                              memory_cell(n, mem, sizeof(mem)), lel_cli_cell(n, "sandboxes"), tpl));
    }
    static const char *const cols[] = {"NAME", "SELF", "STATE", "URL", "CORES", "FREE/MEMORY MB", "SANDBOXES",
                                       "TEMPLATES", NULL};
    if (cli->json)
        lel_cli_print_json(r.json);
    else if (!cli->quiet)
        lel_cli_print_table(cols, rows);
    json_decref(rows);
    lel_cli_resp_free(&r);
    return 0;
}

/* The bash completion script: groups, verbs, options, and ids asked of the daemon itself
 * (`lelctl sandbox list -q` and the like, with the options already on the line). */
static const char BASH[] =
    "# bash completion for lelctl: eval \"$(lelctl completion bash)\"\n"
    "_lelctl() {\n"
    "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
    "    local common='--json --quiet --url --api-key --config --request-timeout'\n"
    "    local i group= verb= conn=()\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        case ${COMP_WORDS[i]} in\n"
    "        --url|--api-key|--config) conn+=(\"${COMP_WORDS[i]}\" \"${COMP_WORDS[i+1]}\"); ((i++)) ;;\n"
    "        --request-timeout|--template|--timeout|--metadata|--env|-e|--snapshot|--state|--limit|--cwd|--name|"
    "--from-template|--from-image|--dockerfile|--run|--start-cmd|--ready-cmd|--cpu|--memory|--spec|--follow|--sandbox) ((i++)) ;;\n"
    "        -*) ;;\n"
    "        *) if [[ -z $group ]]; then group=${COMP_WORDS[i]}; elif [[ -z $verb ]]; then verb=${COMP_WORDS[i]}; fi ;;\n"
    "        esac\n"
    "    done\n"
    "    case $prev in\n"
    "    --config|--dockerfile|--spec) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
    "    --url|--api-key|--request-timeout|--timeout|--metadata|--env|-e|--state|--limit|--cwd|--name|--run|"
    "--start-cmd|--ready-cmd|--cpu|--memory|--from-image) return ;;\n"
    "    --template|--from-template|--follow) COMPREPLY=($(compgen -W \"$(lelctl \"${conn[@]}\" template list -q 2>/dev/null)\" -- \"$cur\")); return ;;\n"
    "    --snapshot) COMPREPLY=($(compgen -W \"$(lelctl \"${conn[@]}\" snapshot list -q 2>/dev/null)\" -- \"$cur\")); return ;;\n"
    "    --sandbox) COMPREPLY=($(compgen -W \"$(lelctl \"${conn[@]}\" sandbox list -q 2>/dev/null)\" -- \"$cur\")); return ;;\n"
    "    esac\n"
    "    if [[ -z $group ]]; then\n"
    "        COMPREPLY=($(compgen -W \"sandbox template snapshot key backup nodes completion help $common --help --version\" -- \"$cur\")); return\n"
    "    fi\n"
    "    local verbs opts ids=\n"
    "    case $group in\n"
    "    sandbox) verbs='create list get kill pause resume exec cp logs ports' ;;\n"
    "    template) verbs='create build list delete' ;;\n"
    "    snapshot) verbs='create list delete' ;;\n"
    "    key) verbs='create list revoke' ;;\n"
    "    completion) verbs='bash' ;;\n"
    "    backup) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n"
    "    nodes) COMPREPLY=($(compgen -W \"--admin-token $common\" -- \"$cur\")); return ;;\n"
    "    esac\n"
    "    if [[ -z $verb ]]; then COMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\")); return; fi\n"
    "    case $group/$verb in\n"
    "    sandbox/create) opts='--template --timeout --metadata --env --auto-pause --snapshot' ;;\n"
    "    sandbox/list) opts='--state --metadata --limit' ;;\n"
    "    sandbox/resume) opts='--timeout'; ids=sandbox ;;\n"
    "    sandbox/exec) opts='--cwd --env --stdin --timeout'; ids=sandbox ;;\n"
    "    sandbox/logs) opts='--follow'; ids=sandbox ;;\n"
    "    sandbox/cp) ids=sandbox: ;;\n"
    "    sandbox/*) ids=sandbox ;;\n"
    "    template/create|template/build) opts='--name --from-template --from-image --dockerfile --run --start-cmd --ready-cmd --cpu --memory --spec'\n"
    "        [[ $verb == build ]] && opts+=' --follow' ;;\n"
    "    template/delete) ids=template ;;\n"
    "    snapshot/create) opts='--name'; ids=sandbox ;;\n"
    "    snapshot/list) opts='--sandbox --name' ;;\n"
    "    snapshot/delete) ids=snapshot ;;\n"
    "    key/revoke) ids=key ;;\n"
    "    esac\n"
    "    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$opts $common\" -- \"$cur\")); return; fi\n"
    "    case $ids in\n"
    "    sandbox:) COMPREPLY=($(compgen -f -- \"$cur\") $(compgen -S : -W \"$(lelctl \"${conn[@]}\" sandbox list -q 2>/dev/null)\" -- \"$cur\"))\n"
    "        compopt -o nospace 2>/dev/null ;;\n"
    "    ?*) COMPREPLY=($(compgen -W \"$(lelctl \"${conn[@]}\" $ids list -q 2>/dev/null)\" -- \"$cur\")) ;;\n"
    "    esac\n"
    "}\n"
    "complete -F _lelctl lelctl\n";

int lel_cli_completion(int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "bash"))
        return lel_cli_usage("completion takes one shell: bash");
    fputs(BASH, stdout);
    return 0;
}
