/* lelctl: a thin main that picks the command group; see lel_cli.h and README "lelctl". */
#include "lel_cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char HELP[] =
    "lelctl: the command-line client of lelantosd's REST API\n"
    "\n"
    "usage: lelctl [options] GROUP VERB [args]\n"
    "\n"
    "  sandbox create [--template T] [--timeout S] [--metadata K=V]... [--env K=V]... [--auto-pause] [--snapshot ID]\n"
    "  sandbox list [--state running,paused] [--metadata K=V]... [--limit N]\n"
    "  sandbox get|kill|pause ID...       sandbox resume ID [--timeout S]\n"
    "  sandbox exec [--cwd DIR] [-e K=V]... [--stdin] [--timeout S] ID CMD [ARG...]\n"
    "  sandbox cp SRC DST                  one of them ID:/abs/path, the other a local path or -\n"
    "  sandbox logs [-f] ID                sandbox ports ID\n"
    "  template create|build --name N [--from-template T | --from-image I | --dockerfile FILE]\n"
    "                 [--run CMD]... [--start-cmd C] [--ready-cmd C] [--cpu N] [--memory MB] [--spec FILE.json]\n"
    "  template build --follow ID          template list            template delete ID...\n"
    "  snapshot create [--name N] SANDBOX  snapshot list [--sandbox ID]   snapshot delete ID...\n"
    "  key create NAME                     key list                 key revoke ID...\n"
    "  backup [--admin-token T] DIR        an online backup into DIR on the daemon's machine (LELANTOS_ADMIN_TOKEN)\n"
    "  nodes [--admin-token T]             cluster mode: the nodes, their state and capacity (LELANTOS_ADMIN_TOKEN)\n"
    "  completion bash\n"
    "\n"
    "options (anywhere after the verb too):\n"
    "  --url URL            the daemon (LELANTOS_URL; config `url`; default http://127.0.0.1:3000)\n"
    "  --api-key KEY        an API key (LELANTOS_API_KEY; config `api_key`)\n"
    "  --config FILE        config file (LELANTOS_CONFIG; default ~/.config/lelantos/config.yaml)\n"
    "  --json               print the API's JSON instead of tables\n"
    "  -q, --quiet          lists print ids only\n"
    "  --request-timeout S  give up on a request after S seconds (default: none)\n"
    "\n"
    "exit codes: 0 ok, 1 error, 2 usage, 3 cannot reach the daemon, 4 not found, 5 not allowed,\n"
    "6 wrong state (409), 7 rate limited or out of capacity, 8 template build failed;\n"
    "sandbox exec: the command's exit code (124 when it timed out), 125 when lelctl failed.\n";

long long lel_cli_num(const char *opt, const char *arg)
{
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end || v < 0) {
        lel_cli_err("--%s wants a non-negative integer, not '%s'", opt, arg);
        return -1;
    }
    return v;
}

int lel_cli_opt(struct lel_cli *cli, int c, const char *arg)
{
    switch (c) {
    case LEL_OPT_JSON: cli->json = 1; return 1;
    case 'q': cli->quiet = 1; return 1;
    case LEL_OPT_URL:
        free(cli->url);
        cli->url = strdup(arg);
        return 1;
    case LEL_OPT_KEY:
        free(cli->key);
        cli->key = strdup(arg);
        return 1;
    case LEL_OPT_CONFIG: cli->config_path = arg; return 1;
    case LEL_OPT_RTIMEOUT: {
        long long v = lel_cli_num("request-timeout", arg);
        if (v < 0)
            return -1;
        cli->timeout_s = (long)v;
        return 1;
    }
    default: return 0;
    }
}

int lel_cli_ready(struct lel_cli *cli)
{
    int rc = lel_cli_config_load(cli, cli->config_path);
    if (rc)
        return rc;
    cli->curl = curl_easy_init();
    if (!cli->curl) {
        lel_cli_err("cannot initialize libcurl");
        return LEL_EXIT_ERROR;
    }
    return 0;
}

/* Global options before the group: the same set every command takes. */
static int globals(struct lel_cli *cli, int argc, char **argv, int *next)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    int c, r;
    while ((c = getopt_long(argc, argv, "+qh", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg)) != 0) {
            if (r < 0)
                return LEL_EXIT_USAGE;
            continue;
        }
        if (c == 'h') {
            fputs(HELP, stdout);
            return -1;
        }
        if (c == 'V') {
            puts("lelctl " LEL_CLI_VERSION);
            return -1;
        }
        return LEL_EXIT_USAGE;
    }
    *next = optind;
    return 0;
}

int main(int argc, char **argv)
{
    struct lel_cli cli = {0};
    int first, rc = globals(&cli, argc, argv, &first);
    signal(SIGPIPE, SIG_IGN); /* `lelctl ... | head` ends with EPIPE, not a signal */
    if (rc) {
        free(cli.url);
        free(cli.key);
        return rc < 0 ? 0 : rc;
    }
    if (first >= argc) {
        fputs(HELP, stderr);
        return LEL_EXIT_USAGE;
    }
    const char *group = argv[first];
    int sub_argc = argc - first - 1;
    char **sub = argv + first + 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    optind = 0; /* glibc: 0 starts getopt afresh (its mode, "+" or not, is read again) from sub[1] */
    if (!strcmp(group, "help")) {
        fputs(HELP, stdout);
        rc = 0;
    } else if (!strcmp(group, "backup"))
        rc = lel_cli_backup(&cli, argc - first, argv + first);
    else if (!strcmp(group, "nodes"))
        rc = lel_cli_nodes(&cli, argc - first, argv + first);
    else if (!strcmp(group, "completion"))
        rc = lel_cli_completion(sub_argc, sub);
    else if (sub_argc < 1)
        rc = lel_cli_usage("'%s' needs a verb", group);
    else if (!strcmp(group, "sandbox") || !strcmp(group, "sandboxes") || !strcmp(group, "sbx"))
        rc = lel_cli_sandbox(&cli, sub_argc, sub);
    else if (!strcmp(group, "template") || !strcmp(group, "templates"))
        rc = lel_cli_template(&cli, sub_argc, sub);
    else if (!strcmp(group, "snapshot") || !strcmp(group, "snapshots"))
        rc = lel_cli_snapshot(&cli, sub_argc, sub);
    else if (!strcmp(group, "key") || !strcmp(group, "keys"))
        rc = lel_cli_key(&cli, sub_argc, sub);
    else
        rc = lel_cli_usage("unknown command group '%s'", group);
    if (cli.curl)
        curl_easy_cleanup(cli.curl);
    curl_global_cleanup();
    free(cli.url);
    free(cli.key);
    if (fflush(stdout) != 0 && rc == 0)
        rc = LEL_EXIT_ERROR; /* a full disk or closed pipe must not look like success */
    return rc;
}
