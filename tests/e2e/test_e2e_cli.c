/* lelctl end to end: the real binary against the real lelantosd, as a user's shell runs it
 * (environment, config file, flags; stdout, stderr and the exit code each checked). The
 * sandbox, snapshot and template parts run real microVMs; without /dev/kvm they are skipped and
 * the rest (configuration, keys, errors, completion) still runs. */
#include "../lel_test.h"
#include "../../src/vmm/lel_vmm.h"
#include "harness.h"

#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static srv_t S;
static char URL[64], HOME_DIR[256];

struct out {
    int code;
    char *out, *err;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = calloc(1, (size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        b[0] = 0;
    fclose(f);
    return b;
}

/* Runs lelctl with argv (NULL-terminated) in an environment of HOME=HOME_DIR plus `env`
 * ("K=V;K=V", NULL for the default URL and key), stdin from `in` (NULL: /dev/null). */
static struct out run_env(const char *env, const char *in, const char *const *argv)
{
    char o[300], e[300], i[300];
    snprintf(o, sizeof(o), "%s/out", S.dir);
    snprintf(e, sizeof(e), "%s/err", S.dir);
    snprintf(i, sizeof(i), "%s/in", S.dir);
    if (in) {
        FILE *f = fopen(i, "wb");
        fputs(in, f);
        fclose(f);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fi = open(in ? i : "/dev/null", O_RDONLY), fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"}; /* the sanitizer build's */
        char *kept[3];
        for (int k = 0; k < 3; k++)
            kept[k] = getenv(keep[k]) ? strdup(getenv(keep[k])) : NULL;
        clearenv();
        for (int k = 0; k < 3; k++)
            if (kept[k])
                setenv(keep[k], kept[k], 1);
        setenv("PATH", "/usr/bin:/bin", 1);
        setenv("HOME", HOME_DIR, 1);
        if (!env) {
            setenv("LELANTOS_URL", URL, 1);
            setenv("LELANTOS_API_KEY", S.key, 1);
        } else {
            char *copy = strdup(env), *save, *kv;
            for (kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save))
                putenv(kv);
        }
        execv(LELCTL_PATH, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    struct out r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), slurp(o), slurp(e)};
    return r;
}

#define LEL(...) run_env(NULL, NULL, (const char *const[]){"lelctl", __VA_ARGS__, NULL})
#define LEL_ENV(env, ...) run_env(env, NULL, (const char *const[]){"lelctl", __VA_ARGS__, NULL})
#define LEL_IN(in, ...) run_env(NULL, in, (const char *const[]){"lelctl", __VA_ARGS__, NULL})

static void done(struct out *r)
{
    if (lel_test_failed)
        fprintf(stderr, "  last lelctl: exit %d, stdout '%.300s', stderr '%.300s'\n", r->code, r->out, r->err);
    free(r->out);
    free(r->err);
}

static int matches(const char *s, const char *re)
{
    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB))
        return 0;
    int m = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return m;
}

static void chomp(char *s)
{
    s[strcspn(s, "\n")] = 0;
}

/* Where the URL and key come from: flags over the environment over the config file. */
static void config(void)
{
    char dir[300], path[400];
    snprintf(dir, sizeof(dir), "%s/.config", HOME_DIR);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/.config/lelantos", HOME_DIR);
    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# lelctl\nurl: %s/\napi_key: %s\n", URL, S.key);
    fclose(f);
    struct out r = LEL_ENV("", "key", "list", "-q"); /* the file alone */
    CHECK_INT(r.code, 0);
    CHECK(strlen(r.out) > 0);
    done(&r);
    r = LEL_ENV("LELANTOS_API_KEY=lel_0000000000000000000000000000000000000000", "key", "list");
    CHECK_INT(r.code, 5); /* the environment wins over the file: a wrong key */
    CHECK(strstr(r.err, "HTTP 401") != NULL);
    done(&r);
    char flag[128];
    snprintf(flag, sizeof(flag), "--api-key=%s", S.key);
    r = LEL_ENV("LELANTOS_API_KEY=lel_0000000000000000000000000000000000000000", "key", "list", flag);
    CHECK_INT(r.code, 0); /* the flag wins over both */
    done(&r);
    r = LEL_ENV("LELANTOS_URL=http://127.0.0.1:1", "sandbox", "list");
    CHECK_INT(r.code, 3); /* nothing listens there */
    CHECK(strstr(r.err, "127.0.0.1:1") != NULL);
    done(&r);
    r = LEL_ENV("LELANTOS_URL=ftp://x", "sandbox", "list");
    CHECK_INT(r.code, 2);
    done(&r);
    r = LEL_ENV("", "--config", "/nonexistent/lelctl.yaml", "sandbox", "list");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "does not exist") != NULL);
    done(&r);
    f = fopen(path, "w");
    fprintf(f, "url: %s\napikey: x\n", URL); /* a typo must not fall back silently */
    fclose(f);
    r = LEL_ENV("", "key", "list");
    CHECK_INT(r.code, 2);
    CHECK(strstr(r.err, "unknown key 'apikey'") != NULL);
    done(&r);
    f = fopen(path, "w");
    fprintf(f, "url: [\n");
    fclose(f);
    r = LEL_ENV("", "key", "list");
    CHECK_INT(r.code, 2);
    done(&r);
    unlink(path);
}

static void usage_and_errors(void)
{
    struct out r = LEL("sandbox", "frobnicate");
    CHECK_INT(r.code, 2);
    done(&r);
    r = LEL("nosuchgroup", "list");
    CHECK_INT(r.code, 2);
    done(&r);
    r = LEL("sandbox", "create", "--timeout", "soon");
    CHECK_INT(r.code, 2);
    done(&r);
    r = LEL("sandbox", "get", "doesnotexist0000000");
    CHECK_INT(r.code, 4);
    CHECK(strstr(r.err, "not found") != NULL);
    CHECK_STR(r.out, "");
    done(&r);
    r = LEL("sandbox", "exec", "doesnotexist0000000", "true");
    CHECK_INT(r.code, 125); /* lelctl's failure, not a command's exit code */
    done(&r);
    r = LEL("--help");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "sandbox exec") != NULL);
    done(&r);
}

/* lelctl backup: the admin token from the flag or LELANTOS_ADMIN_TOKEN (the harness's daemon has test-admin-token) */
static void backup(void)
{
    char dir[300], env[400];
    snprintf(dir, sizeof(dir), "%s/cli-backup", S.dir);
    struct out r = LEL("backup", "--admin-token", "test-admin-token", dir);
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "backup in ") == r.out);
    done(&r);
    char fmt[400];
    snprintf(fmt, sizeof(fmt), "%s/db/CURRENT", dir);
    CHECK(access(fmt, F_OK) == 0); /* a RocksDB checkpoint */
    snprintf(env, sizeof(env), "LELANTOS_URL=%s;LELANTOS_ADMIN_TOKEN=test-admin-token", URL);
    r = LEL_ENV(env, "backup", dir);
    CHECK_INT(r.code, 6); /* exists */
    done(&r);
    snprintf(env, sizeof(env), "LELANTOS_URL=%s;LELANTOS_ADMIN_TOKEN=wrong", URL);
    r = LEL_ENV(env, "backup", "/tmp/lelctl-never-made");
    CHECK_INT(r.code, 5);
    CHECK(access("/tmp/lelctl-never-made", F_OK) != 0);
    done(&r);
    r = LEL("backup", "/tmp/lelctl-never-made");
    CHECK_INT(r.code, 2); /* no token at all */
    done(&r);
}

static void keys(void)
{
    struct out r = LEL("key", "create", "ci-key");
    CHECK_INT(r.code, 0);
    chomp(r.out);
    CHECK(matches(r.out, "^lel_[0-9a-f]{40}$"));
    char key[64], env[200];
    snprintf(key, sizeof(key), "%s", r.out);
    done(&r);
    snprintf(env, sizeof(env), "LELANTOS_URL=%s;LELANTOS_API_KEY=%s", URL, key);
    r = LEL_ENV(env, "sandbox", "list", "--json");
    CHECK_INT(r.code, 0); /* the new key works */
    json_t *j = json_loads(r.out, 0, NULL);
    CHECK(json_is_array(j));
    json_decref(j);
    done(&r);
    r = LEL("key", "list", "--json");
    CHECK_INT(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    char id[64] = "";
    size_t i;
    json_t *k;
    json_array_foreach (j, i, k)
        if (!strcmp(json_string_value(json_object_get(k, "name")) ?: "", "ci-key"))
            snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(k, "id")));
    json_decref(j);
    CHECK(id[0] != 0);
    done(&r);
    r = LEL("key", "list");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "KEY ID") == r.out && strstr(r.out, "ci-key") != NULL);
    CHECK(strstr(r.out, key) == NULL); /* only the mask is ever listed */
    done(&r);
    r = LEL("key", "revoke", id);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL_ENV(env, "sandbox", "list");
    CHECK_INT(r.code, 5); /* revoked: stops working at once */
    done(&r);
    r = LEL("key", "revoke", id);
    CHECK_INT(r.code, 4);
    done(&r);
}

/* `lelctl completion bash` completes verbs and, asking the daemon, ids. */
static void completion(const char *sid)
{
    char script[2048];
    snprintf(script, sizeof(script),
             "export LELANTOS_URL=%s LELANTOS_API_KEY=%s; eval \"$(%s completion bash)\"; lelctl() { %s \"$@\"; };"
             "COMP_WORDS=(lelctl sandbox e); COMP_CWORD=2; _lelctl; echo \"verbs: ${COMPREPLY[*]}\";"
             "COMP_WORDS=(lelctl sandbox kill ''); COMP_CWORD=3; _lelctl; echo \"ids: ${COMPREPLY[*]}\";"
             "COMP_WORDS=(lelctl sandbox list --s); COMP_CWORD=3; _lelctl; echo \"opts: ${COMPREPLY[*]}\"",
             URL, S.key, LELCTL_PATH, LELCTL_PATH);
    char cmd[2300];
    snprintf(cmd, sizeof(cmd), "bash -c '%s' > %s/compl 2>&1", script, S.dir);
    CHECK_INT(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/compl", S.dir);
    char *out = slurp(cmd);
    CHECK(strstr(out, "verbs: exec\n") != NULL);
    CHECK(strstr(out, "opts: --state\n") != NULL);
    if (sid) {
        char want[128];
        snprintf(want, sizeof(want), "ids: %s", sid);
        CHECK(strstr(out, want) != NULL);
    }
    if (lel_test_failed)
        fprintf(stderr, "  completion: %s\n", out);
    free(out);
}

static void exec_checks(const char *sid)
{
    struct out r = LEL("sandbox", "exec", sid, "--", "sh", "-c", "echo out; echo err >&2; exit 7");
    CHECK_INT(r.code, 7);
    CHECK_STR(r.out, "out\n");
    CHECK_STR(r.err, "err\n");
    done(&r);
    r = LEL("sandbox", "exec", sid, "printf '%s|' \"$0\" it's; echo");
    CHECK_INT(r.code, 2); /* one argument is a shell line: this one does not parse */
    done(&r);
    r = LEL("sandbox", "exec", sid, "printf", "[%s]", "a b", "it's");
    CHECK_INT(r.code, 0); /* several are words, each quoted */
    CHECK_STR(r.out, "[a b][it's]");
    done(&r);
    r = LEL("sandbox", "exec", "-e", "GREETING=hi there", "--cwd", "/tmp", sid, "echo \"$GREETING\" $(pwd)");
    CHECK_STR(r.out, "hi there /tmp\n");
    done(&r);
    r = LEL_IN("line one\nline two\n", "sandbox", "exec", "--stdin", sid, "wc -l");
    CHECK_INT(r.code, 0);
    CHECK(matches(r.out, "^ *2\n$"));
    done(&r);
    r = LEL("sandbox", "exec", "--timeout", "1", sid, "sleep 5");
    CHECK_INT(r.code, 124);
    done(&r);
    r = LEL("sandbox", "exec", "--json", sid, "echo hi; exit 3");
    CHECK_INT(r.code, 3);
    json_t *j = json_loads(r.out, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "stdout")), "hi\n");
    json_decref(j);
    done(&r);
    r = LEL("sandbox", "exec", sid, "head -c 3000000 /dev/zero | tr '\\0' x");
    CHECK_INT(r.code, 0);
    CHECK_INT(strlen(r.out), 3000000); /* streamed whole, past the 1 MiB of a non-streamed answer */
    done(&r);
}

static void cp_checks(const char *sid)
{
    char local[300], back[300], cmd[700];
    snprintf(local, sizeof(local), "%s/payload", S.dir);
    snprintf(back, sizeof(back), "%s/payload.back", S.dir);
    snprintf(cmd, sizeof(cmd), "head -c 2500000 /dev/urandom > %s", local);
    CHECK_INT(system(cmd), 0);
    char remote[128];
    snprintf(remote, sizeof(remote), "%s:/tmp/dir/", sid);
    struct out r = LEL("sandbox", "cp", local, remote);
    CHECK_INT(r.code, 0);
    done(&r);
    snprintf(remote, sizeof(remote), "%s:/tmp/dir/payload", sid);
    r = LEL("sandbox", "cp", remote, back);
    CHECK_INT(r.code, 0);
    done(&r);
    snprintf(cmd, sizeof(cmd), "cmp -s %s %s", local, back);
    CHECK_INT(system(cmd), 0);
    r = LEL("sandbox", "exec", sid, "sha256sum /tmp/dir/payload | cut -c1-64");
    snprintf(cmd, sizeof(cmd), "sha256sum %s | cut -c1-64 > %s/sum", local, S.dir);
    CHECK_INT(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/sum", S.dir);
    char *sum = slurp(cmd);
    CHECK_STR(r.out, sum);
    free(sum);
    done(&r);
    /* a missing file: 4, and nothing left behind locally */
    snprintf(remote, sizeof(remote), "%s:/tmp/nothing-here", sid);
    snprintf(back, sizeof(back), "%s/never", S.dir);
    r = LEL("sandbox", "cp", remote, back);
    CHECK_INT(r.code, 4);
    CHECK(access(back, F_OK) != 0);
    done(&r);
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c lelctl- > /dev/null", S.dir);
    CHECK(system(cmd) != 0); /* no temporary either */
    snprintf(remote, sizeof(remote), "%s:/tmp", sid);
    r = LEL("sandbox", "cp", remote, back);
    CHECK_INT(r.code, 1);
    CHECK(strstr(r.err, "is a directory") != NULL);
    done(&r);
    r = LEL_IN("from stdin\n", "sandbox", "cp", "-", remote); /* "-": stdin to /tmp is a directory */
    CHECK_INT(r.code, 6);
    done(&r);
    snprintf(remote, sizeof(remote), "%s:/tmp/piped", sid);
    r = LEL_IN("from stdin\n", "sandbox", "cp", "-", remote);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("sandbox", "cp", remote, "-");
    CHECK_STR(r.out, "from stdin\n");
    done(&r);
}

static void ports_checks(const char *sid)
{
    struct out r = LEL("sandbox", "exec", sid, "mkdir -p /srv && echo served > /srv/index.html && httpd -p 8080 -h /srv");
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("sandbox", "ports", sid, "--json");
    CHECK_INT(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL), *p;
    size_t i;
    const char *purl = NULL;
    json_array_foreach (j, i, p)
        if (json_integer_value(json_object_get(p, "port")) == 8080)
            purl = json_string_value(json_object_get(p, "pathUrl"));
    CHECK(purl != NULL);
    if (purl) { /* the URL it prints reaches the server */
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "curl -sf -H 'X-API-Key: %s' '%sindex.html' > %s/served", S.key, purl, S.dir);
        CHECK_INT(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "%s/served", S.dir);
        char *got = slurp(cmd);
        CHECK_STR(got, "served\n");
        free(got);
    }
    json_decref(j);
    done(&r);
    r = LEL("sandbox", "ports", sid);
    CHECK(strstr(r.out, "PORT") == r.out && strstr(r.out, "8080") != NULL);
    done(&r);
}

static void lifecycle(const char *sid)
{
    struct out r = LEL("sandbox", "pause", sid);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("sandbox", "pause", sid);
    CHECK_INT(r.code, 6); /* 409: already paused */
    done(&r);
    r = LEL("sandbox", "list", "--state", "paused", "-q");
    CHECK(strstr(r.out, sid) != NULL);
    done(&r);
    r = LEL("sandbox", "resume", "--timeout", "120", sid, "--json");
    CHECK_INT(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    done(&r);
    r = LEL("snapshot", "create", "--name", "cli-snap", sid);
    CHECK_INT(r.code, 0);
    char snap[64];
    snprintf(snap, sizeof(snap), "%s", r.out);
    chomp(snap);
    done(&r);
    r = LEL("snapshot", "list", "--sandbox", sid);
    CHECK(strstr(r.out, "SNAPSHOT ID") == r.out && strstr(r.out, snap) && strstr(r.out, "cli-snap"));
    done(&r);
    r = LEL("sandbox", "create", "--snapshot", snap, "--metadata", "from=snap");
    CHECK_INT(r.code, 0);
    char fork[64];
    snprintf(fork, sizeof(fork), "%s", r.out);
    chomp(fork);
    done(&r);
    r = LEL("sandbox", "exec", fork, "cat /tmp/piped");
    CHECK_STR(r.out, "from stdin\n"); /* the fork has the source's files */
    done(&r);
    r = LEL("sandbox", "list", "--metadata", "from=snap", "-q");
    CHECK_STR(r.out, fork[0] ? strcat(fork, "\n") : "?");
    done(&r);
    chomp(fork);
    r = LEL("sandbox", "kill", fork);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("snapshot", "delete", snap);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("snapshot", "delete", snap);
    CHECK_INT(r.code, 4);
    done(&r);
}

/* logs -f follows until the sandbox is killed, then ends with 0. */
static void logs_follow(const char *sid)
{
    char o[300];
    snprintf(o, sizeof(o), "%s/follow", S.dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        setenv("LELANTOS_URL", URL, 1);
        setenv("LELANTOS_API_KEY", S.key, 1);
        execl(LELCTL_PATH, "lelctl", "sandbox", "logs", "-f", sid, (char *)NULL);
        _exit(127);
    }
    usleep(1500 * 1000);
    struct out r = LEL("sandbox", "kill", sid);
    CHECK_INT(r.code, 0);
    done(&r);
    int st = -1;
    for (int i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++)
        usleep(100 * 1000);
    if (waitpid(pid, &st, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        CHECK(!"logs -f did not end when the sandbox was killed");
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *text = slurp(o);
    CHECK(strstr(text, "sandbox created") != NULL);
    CHECK(strstr(text, "killed") != NULL);
    char *first = strstr(text, "snapshot taken");
    CHECK(first && !strstr(first + 1, "snapshot taken")); /* each line once */
    free(text);
}

/* The first line of a sandbox of cli-tpl's `cmd` (the sandbox is killed after). */
static void tpl_exec(const char *cmd, const char *want)
{
    struct out r = LEL("sandbox", "create", "--template", "cli-tpl");
    CHECK_INT(r.code, 0);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", r.out);
    chomp(sid);
    done(&r);
    r = LEL("sandbox", "exec", sid, cmd);
    CHECK_STR(r.out, want);
    done(&r);
    r = LEL("sandbox", "kill", sid);
    done(&r);
}

/* `template build` of a name that exists builds that template again (POST /templates/{name}):
 * the same id, the new steps; `create` still refuses the name; a bad body changes nothing;
 * refused while a sandbox uses it, and for the built-in template. */
static void rebuild(const char *tid)
{
    struct out r = LEL("template", "create", "--name", "cli-tpl", "--run", "true");
    CHECK_INT(r.code, 6); /* create does not clobber: 409 */
    done(&r);
    r = LEL("template", "build", "--name", "cli-tpl", "--memory", "7");
    CHECK_INT(r.code, 1); /* 400 from the rebuild: the template stays as it was */
    CHECK(strstr(r.err, "memoryMB") != NULL);
    done(&r);
    tpl_exec("cat /etc/rebuilt 2>/dev/null || echo first", "first\n");
    r = LEL("template", "build", "--name", "cli-tpl", "--run", "echo second > /etc/rebuilt", "--ready-cmd", "true");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.err, "exists: building it again") != NULL);
    CHECK(strstr(r.out, "step 1 (run)") != NULL);
    char *last = strrchr(r.out, '\n');
    while (last && last > r.out && last[-1] != '\n')
        last--;
    CHECK(last && !strncmp(last, tid, strlen(tid))); /* the same template */
    done(&r);
    tpl_exec("cat /etc/rebuilt", "second\n");
    r = LEL("sandbox", "create", "--template", "cli-tpl");
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", r.out);
    chomp(sid);
    done(&r);
    r = LEL("template", "build", "--name", "cli-tpl", "--run", "true");
    CHECK_INT(r.code, 6); /* 409: a sandbox uses it */
    CHECK(strstr(r.err, "used by") != NULL);
    done(&r);
    r = LEL("sandbox", "kill", sid);
    done(&r);
    r = LEL("template", "build", "--name", "base", "--run", "true");
    CHECK_INT(r.code, 6); /* the built-in's name stays refused */
    CHECK(strstr(r.err, "built-in") != NULL);
    done(&r);
}

static void templates(void)
{
    struct out r = LEL("template", "build", "--name", "cli-tpl", "--run", "echo building-one; sleep 1; echo building-two",
                       "--run", "echo to-stderr >&2", "--ready-cmd", "true");
    CHECK_INT(r.code, 0);
    CHECK(strstr(r.out, "step 1 (run)") && strstr(r.out, "building-one\n") && strstr(r.out, "step 2 (run)"));
    CHECK(strstr(r.out, "to-stderr") != NULL);
    CHECK(strstr(r.err, "ready in") != NULL);
    char *last = strrchr(r.out, '\n');
    while (last > r.out && last[-1] != '\n')
        last--;
    char tid[64];
    snprintf(tid, sizeof(tid), "%s", last);
    chomp(tid);
    CHECK(strlen(tid) >= 10); /* the id last on stdout */
    done(&r);
    r = LEL("template", "list");
    CHECK(strstr(r.out, "cli-tpl") && strstr(r.out, "ready"));
    done(&r);
    r = LEL("sandbox", "create", "--template", "cli-tpl");
    CHECK_INT(r.code, 0);
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", r.out);
    chomp(sid);
    done(&r);
    r = LEL("template", "delete", "cli-tpl");
    CHECK_INT(r.code, 6); /* 409 while a sandbox uses it */
    done(&r);
    r = LEL("sandbox", "kill", sid);
    CHECK_INT(r.code, 0);
    done(&r);
    r = LEL("template", "build", "--follow", "cli-tpl", "-q");
    CHECK_INT(r.code, 0); /* following a finished build replays it */
    CHECK(strstr(r.out, "building-two") != NULL);
    done(&r);
    r = LEL("template", "build", "--name", "cli-bad", "--run", "echo before; exit 3");
    CHECK_INT(r.code, 8);
    CHECK(strstr(r.out, "exited with 3") != NULL);
    CHECK(strstr(r.err, "failed") != NULL);
    done(&r);
    rebuild(tid);
    r = LEL("template", "delete", "cli-tpl", "cli-bad");
    CHECK_INT(r.code, 0);
    done(&r);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256];
    int vms = lel_vmm_probe(why, sizeof(why)) != LEL_VMM_NONE;
    if (srv_start(&S, vms ? "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n  auth_per_s: 1000\n"
                          : "rate_limits:\n  general_per_s: 100000\n  auth_per_s: 1000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    snprintf(URL, sizeof(URL), "http://127.0.0.1:%d", S.port);
    snprintf(HOME_DIR, sizeof(HOME_DIR), "%s/home", S.dir);
    mkdir(HOME_DIR, 0700);
    config();
    usage_and_errors();
    keys();
    backup();
    char sid[64] = "";
    if (vms) {
        struct out r = LEL("sandbox", "create", "--metadata", "suite=cli", "--timeout", "600");
        CHECK_INT(r.code, 0);
        snprintf(sid, sizeof(sid), "%s", r.out);
        chomp(sid);
        done(&r);
        r = LEL("sandbox", "list");
        CHECK(strstr(r.out, "SANDBOX ID") == r.out && strstr(r.out, sid) && strstr(r.out, "running"));
        done(&r);
        r = LEL("sandbox", "get", sid, "--json");
        json_t *j = json_loads(r.out, 0, NULL);
        CHECK_STR(json_string_value(json_object_get(json_object_get(j, "metadata"), "suite")), "cli");
        json_decref(j);
        done(&r);
        exec_checks(sid);
        cp_checks(sid);
        ports_checks(sid);
        lifecycle(sid);
        completion(sid);
        logs_follow(sid);
        templates();
    } else {
        printf("SKIP the sandbox, snapshot and template parts: VMs need /dev/kvm: %s\n", why);
        completion(NULL);
    }
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
