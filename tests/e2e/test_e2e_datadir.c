/* The data dir's format version (<data_dir>/FORMAT): a new dir gets this build's, a dir from
 * before FORMAT existed is adopted as format 1, and a newer format (or a FORMAT that is not one)
 * stops lelantosd at start with a message saying what to do, the dir left as it was. */
#include "../../src/server/lel_datadir.h"
#include "../lel_test.h"
#include "harness.h"

#include <lelantos/lelantos.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static srv_t S;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *b = calloc(1, 65536);
    if (f) {
        size_t n = fread(b, 1, 65535, f);
        b[n] = 0;
        fclose(f);
    }
    return b;
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Runs lelantosd on S's dir by hand: its exit code within 20 s (-1 if it kept running), its
 * stderr in *out. */
static int run_daemon(char **out)
{
    char cfg[300], data[300], listen[64], log[300];
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", S.dir);
    snprintf(data, sizeof(data), "%s/data", S.dir);
    snprintf(log, sizeof(log), "%s/refused.log", S.dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", S.port);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        freopen(log, "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(LELANTOSD_PATH, "lelantosd", "--config", cfg, "--listen", listen, "--data-dir", data, (char *)NULL);
        _exit(127);
    }
    int st = 0, code = -1;
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        usleep(100 * 1000);
    }
    if (code == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    *out = slurp(log);
    return code;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (srv_start(&S, NULL) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    char fmt[300], data[300], want[64];
    snprintf(data, sizeof(data), "%s/data", S.dir);
    snprintf(fmt, sizeof(fmt), "%s/data/" LEL_DATA_FORMAT_FILE, S.dir);
    snprintf(want, sizeof(want), "lelantos-data-format %d\n", LEL_DATA_FORMAT);
    char *text = slurp(fmt);
    CHECK(!strncmp(text, want, strlen(want))); /* a new dir has this build's format */
    CHECK(strstr(text, "written by lelantosd " LEL_VERSION) != NULL);
    free(text);
    CHECK_INT(lel__datadir_format(data), LEL_DATA_FORMAT);
    resp_t r;
    CHECK(api(&S, &r, H1, "POST", "/sandboxes", "{\"metadata\":{\"kept\":\"yes\"}}") == 0);
    CHECK_INT(r.status, 201);
    char sid[64], path[128];
    snprintf(sid, sizeof(sid), "%s", jstr(&r, "sandboxID"));
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    resp_free(&r);
    CHECK_INT(srv_stop(&S), 0);

    /* a dir from before FORMAT existed: adopted as format 1, its records kept */
    CHECK_INT(unlink(fmt), 0);
    CHECK_INT(srv_restart(&S), 0);
    CHECK_INT(lel__datadir_format(data), LEL_DATA_FORMAT);
    CHECK(api(&S, &r, H1, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(srv_stop(&S), 0);

    /* a newer daemon's dir: refused at start, nothing changed */
    char newer[128];
    snprintf(newer, sizeof(newer), "lelantos-data-format %d\nwritten by lelantosd 99.0.0\n", LEL_DATA_FORMAT + 1);
    put(fmt, newer);
    char *err;
    CHECK_INT(run_daemon(&err), 1);
    char msg[256];
    snprintf(msg, sizeof(msg), "has format %d, written by a newer lelantosd; this lelantosd (%s) reads format %d",
             LEL_DATA_FORMAT + 1, LEL_VERSION, LEL_DATA_FORMAT);
    CHECK(strstr(err, msg) != NULL);
    CHECK(strstr(err, "restore the backup") != NULL);
    if (lel_test_failed)
        fprintf(stderr, "  the daemon said: %s\n", err);
    free(err);
    text = slurp(fmt);
    CHECK_STR(text, newer); /* untouched */
    free(text);

    /* a FORMAT that is not one */
    put(fmt, "hello\n");
    CHECK_INT(run_daemon(&err), 1);
    CHECK(strstr(err, "does not say a format this daemon knows") != NULL);
    free(err);
    CHECK_INT(lel__datadir_format(data), -22);

    /* back to this format: everything is there */
    put(fmt, want);
    CHECK_INT(srv_restart(&S), 0);
    CHECK(api(&S, &r, H1, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"kept\":\"yes\"") != NULL);
    resp_free(&r);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
