/* End to end with real microVMs: every sandbox is a VM on /dev/kvm. Create, console lines in
 * the logs, metrics, pause/resume, snapshot/restore, fork, kill, restart and kill -9, and 50
 * concurrent sandboxes created and killed without leaking descriptors, threads or files.
 * Without a usable /dev/kvm it checks that creating a sandbox fails with 503 and says why,
 * then reports itself skipped. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

static srv_t S;

static long st(const char *method, const char *path, const char *body)
{
    resp_t r;
    if (api(&S, &r, H2, method, path, body) < 0)
        return -1;
    long s = r.status;
    if (s >= 400)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, s, r.body ? r.body : "");
    resp_free(&r);
    return s;
}

static char *create(const char *body)
{
    resp_t r;
    api(&S, &r, H2, "POST", "/sandboxes", body);
    CHECK_INT(r.status, 201);
    if (r.status != 201)
        fprintf(stderr, "create: %s\n", r.body ? r.body : "");
    char *id = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    return id;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int proc_count(const char *what)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)S.pid, what);
    return count_dir(path);
}

static int logs_contain(const char *id, const char *needle)
{
    resp_t r;
    char path[96];
    int found = 0;
    snprintf(path, sizeof(path), "/sandboxes/%s/logs", id);
    for (int i = 0; i < 50 && !found; i++) {
        api(&S, &r, H1, "GET", path, NULL);
        found = r.body && strstr(r.body, needle);
        resp_free(&r);
        if (!found)
            usleep(100000);
    }
    return found;
}

static void check_cmd(const char *id, const char *body, int code, const char *out, const char *err_sub);

/* diskUsed of the newest metrics sample, once it is at least `min` (or at most `max`), within
 * 5 s (samples come every second here); -1 if it never is. */
static long long disk_used_when(const char *id, long long min, long long max)
{
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/metrics", id);
    for (int i = 0; i < 50; i++) {
        resp_t r;
        api(&S, &r, H1, "GET", path, NULL);
        size_t n = json_array_size(r.json);
        long long used = n ? json_integer_value(json_object_get(json_array_get(r.json, n - 1), "diskUsed")) : -1;
        resp_free(&r);
        if (used >= min && used <= max)
            return used;
        usleep(100000);
    }
    return -1;
}

/* POST /sandboxes/{id}/snapshot; returns the snapshot's id (caller frees). */
static char *take_snapshot(const char *id, const char *name)
{
    resp_t r;
    char path[96], body[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    api(&S, &r, H2, "POST", path, body);
    CHECK_INT(r.status, 201);
    char *snap = strdup(jstr(&r, "snapshotID"));
    resp_free(&r);
    return snap;
}

/* The ids GET /snapshots?<query> lists, following X-Next-Token page by page of `limit`, each
 * followed by a space (caller frees); *pages counts the pages. */
static char *list_snapshots(const char *query, int limit, int *pages)
{
    char path[400], token[64] = "", *ids = strdup("");
    *pages = 0;
    for (int more = 1; more && *pages < 20;) {
        resp_t r;
        snprintf(path, sizeof(path), "/snapshots?%s&limit=%d%s%s", query, limit, *token ? "&nextToken=" : "", token);
        api(&S, &r, H1, "GET", path, NULL);
        CHECK_INT(r.status, 200);
        CHECK(json_array_size(r.json) <= (size_t)limit);
        for (size_t i = 0; i < json_array_size(r.json); i++) {
            json_t *v = json_array_get(r.json, i);
            char *grown;
            CHECK(!json_object_get(v, "teamID") && !json_object_get(v, "memoryMB") && !json_object_get(v, "templateID"));
            if (asprintf(&grown, "%s%s ", ids, json_string_value(json_object_get(v, "snapshotID"))) >= 0) {
                free(ids);
                ids = grown;
            }
        }
        const char *next = resp_header(&r, "x-next-token");
        more = r.status == 200 && next;
        snprintf(token, sizeof(token), "%s", next ? next : "");
        (*pages)++;
        resp_free(&r);
    }
    return ids;
}

static int has_word(const char *ids, const char *id)
{
    char w[64];
    snprintf(w, sizeof(w), "%s ", id);
    return strstr(ids, w) != NULL;
}

/* GET /snapshots filters by sandboxID and name and pages with limit/nextToken (E2B's SDK lists
 * a sandbox's snapshots so). `snap` ("first") is of `id`. */
static void snapshot_listing(const char *id, const char *snap, const char *fork)
{
    char *second = take_snapshot(id, "second"), *forked = take_snapshot(fork, "forked"), q[128], path[96];
    int pages;
    snprintf(q, sizeof(q), "sandboxID=%s", id);
    char *ids = list_snapshots(q, 1, &pages);
    CHECK(has_word(ids, snap) && has_word(ids, second) && !has_word(ids, forked));
    CHECK_INT((int)strlen(ids), 2 * ((int)strlen(snap) + 1));
    CHECK_INT(pages, 2);
    free(ids);
    snprintf(q, sizeof(q), "sandboxID=%s", fork);
    ids = list_snapshots(q, 100, &pages);
    CHECK(has_word(ids, forked) && strlen(ids) == strlen(forked) + 1 && pages == 1);
    free(ids);
    snprintf(q, sizeof(q), "sandboxID=%s&name=second", id);
    ids = list_snapshots(q, 100, &pages);
    CHECK(has_word(ids, second) && strlen(ids) == strlen(second) + 1);
    free(ids);
    ids = list_snapshots("name=forked", 100, &pages);
    CHECK(has_word(ids, forked) && strlen(ids) == strlen(forked) + 1);
    free(ids);
    ids = list_snapshots("name=nosuchname", 100, &pages);
    CHECK_STR(ids, "");
    free(ids);
    ids = list_snapshots("x=1", 1, &pages); /* unfiltered: all three, one per page */
    CHECK(has_word(ids, snap) && has_word(ids, second) && has_word(ids, forked) && pages >= 3);
    free(ids);
    snprintf(path, sizeof(path), "/snapshots/%s", second);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/snapshots/%s", forked);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(second);
    free(forked);
}

static void lifecycle(void)
{
    char path[160], body[160];
    char *id = create("{\"timeout\":600}");
    CHECK(logs_contain(id, "lelantos guest: ready")); /* console lines are logs */
    sleep(2);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/metrics", id);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK(json_array_size(r.json) >= 1);
    json_t *m = json_array_get(r.json, 0);
    CHECK(json_integer_value(json_object_get(m, "memTotal")) == 256LL << 20);
    CHECK(json_integer_value(json_object_get(m, "memUsed")) > 0);
    CHECK(json_is_number(json_object_get(m, "cpuUsedPct")));
    /* the root file system is guest memory: it holds what the memory does (shared with processes) */
    CHECK(json_integer_value(json_object_get(m, "diskTotal")) == 256LL << 20);
    long long disk0 = json_integer_value(json_object_get(m, "diskUsed"));
    printf("diskUsed at start: %lld KiB\n", disk0 >> 10);
    CHECK(disk0 >= 1LL << 20); /* busybox and the rest of the root file system */
    resp_free(&r);
    /* the disk is the guest's file data: 8 MiB written show, and go when the file does */
    check_cmd(id, "{\"cmd\":\"yes | head -c 8388608 > /tmp/big\"}", 0, "", NULL);
    CHECK(disk_used_when(id, disk0 + (8LL << 20), disk0 + (9LL << 20)) > 0);
    check_cmd(id, "{\"cmd\":\"rm /tmp/big\"}", 0, "", NULL);
    CHECK(disk_used_when(id, disk0 - (1LL << 20), disk0 + (1LL << 20)) > 0);

    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(st("POST", path, NULL), 204);
    CHECK(logs_contain(id, "imageBytes"));
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK_INT(st("POST", path, NULL), 201);

    check_cmd(id, "{\"cmd\":\"echo before > /tmp/snap.txt\"}", 0, "", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id);
    api(&S, &r, H2, "POST", path, "{\"name\":\"first\"}");
    CHECK_INT(r.status, 201);
    char *snap = strdup(jstr(&r, "snapshotID"));
    CHECK(json_integer_value(json_object_get(r.json, "sizeBytes")) == 256LL << 20);
    CHECK(json_integer_value(json_object_get(r.json, "storedBytes")) > 0);
    CHECK_STR(jstr(&r, "sandboxID"), id);
    resp_free(&r);
    api(&S, &r, H1, "GET", "/snapshots", NULL);
    CHECK(r.body && strstr(r.body, snap));
    resp_free(&r);

    snprintf(path, sizeof(path), "/sandboxes/%s/restore", id);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", snap);
    CHECK_INT(st("POST", path, body), 200);
    CHECK_INT(st("POST", path, "{\"snapshotID\":\"nosuchsnapshot\"}"), 404);
    CHECK(logs_contain(id, "restored from a snapshot"));
    char raw[400]; /* a snapshot that starts a VM gets its memory unpacked, shared by all it starts */
    snprintf(raw, sizeof(raw), "%s/data/snapshots/%s.raw", S.dir, snap);
    CHECK(access(raw, F_OK) == 0);

    char *fork = create(body), *fork2 = create(body); /* {"snapshotID": ...}, over the shared memory */
    snprintf(path, sizeof(path), "/sandboxes/%s", fork);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    check_cmd(fork, "{\"cmd\":\"cat /tmp/snap.txt; echo one > /tmp/mine.txt\"}", 0, "before\n", NULL);
    check_cmd(fork2, "{\"cmd\":\"cat /tmp/snap.txt; cat /tmp/mine.txt 2>/dev/null || echo none\"}", 0, "before\nnone\n", NULL);
    check_cmd(fork, "{\"cmd\":\"cat /tmp/mine.txt\"}", 0, "one\n", NULL);
    snapshot_listing(id, snap, fork);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s", fork2);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);

    char img[400];
    snprintf(img, sizeof(img), "%s/data/snapshots/%s.img", S.dir, snap);
    CHECK(access(img, F_OK) == 0);
    snprintf(path, sizeof(path), "/snapshots/%s", snap);
    CHECK_INT(st("DELETE", path, NULL), 204);
    CHECK(access(img, F_OK) != 0 && access(raw, F_OK) != 0);
    free(snap);
    free(fork);
    free(fork2);
    free(id);
}

static void restarts(void)
{
    char path[160];
    char *paused = create("{\"timeout\":600}");
    char *running = create("{\"timeout\":600}");
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", paused);
    CHECK_INT(st("POST", path, NULL), 204);
    srv_kill9(&S);
    CHECK(srv_restart(&S) == 0);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s", running);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "state"), "killed"); /* its VM died with the daemon, and the log says so */
    resp_free(&r);
    CHECK(logs_contain(running, "stopped while the sandbox was running"));
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", paused);
    CHECK_INT(st("POST", path, NULL), 201); /* the image outlived the daemon */
    snprintf(path, sizeof(path), "/sandboxes/%s", paused);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(paused);
    free(running);
}

static json_t *run_cmd(const char *id, const char *body)
{
    resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    api(&S, &r, H2, "POST", path, body);
    if (r.status != 200) {
        fprintf(stderr, "command %s -> %ld %s\n", body, r.status, r.body ? r.body : "");
        resp_t l; /* why: the sandbox's last log entries (its console, its lifecycle) */
        snprintf(path, sizeof(path), "/sandboxes/%s/logs", id);
        api(&S, &l, H1, "GET", path, NULL);
        json_t *logs = json_object_get(l.json, "logs");
        for (size_t i = json_array_size(logs) > 8 ? json_array_size(logs) - 8 : 0; i < json_array_size(logs); i++)
            fprintf(stderr, "  log: %s\n", json_string_value(json_object_get(json_array_get(logs, i), "line")));
        resp_free(&l);
    }
    json_t *j = r.status == 200 ? json_incref(r.json) : NULL;
    resp_free(&r);
    return j;
}

static void check_cmd(const char *id, const char *body, int code, const char *out, const char *err_sub)
{
    json_t *j = run_cmd(id, body);
    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_INT(json_integer_value(json_object_get(j, "exitCode")), code);
    if (out)
        CHECK_STR(json_string_value(json_object_get(j, "stdout")), out);
    if (err_sub)
        CHECK(strstr(json_string_value(json_object_get(j, "stderr")), err_sub) != NULL);
    CHECK(json_is_integer(json_object_get(j, "durationMs")));
    json_decref(j);
}

struct loop_arg {
    const char *id;
    json_t *res;
};

/* A program running from /opt/busybox2 (a copy of busybox) for 1.5 s. */
static void *bb_sleep_cmd(void *arg)
{
    struct loop_arg *a = arg;
    a->res = run_cmd(a->id, "{\"cmd\":\"/opt/busybox2 sh -c 'sleep 1.5; true'\"}");
    return NULL;
}

static void *loop_cmd(void *arg)
{
    struct loop_arg *a = arg;
    a->res = run_cmd(a->id, "{\"cmd\":\"while true; do :; done\",\"timeoutMs\":3000}");
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void data_plane(void)
{
    char *id = create("{\"envVars\":{\"GREETING\":\"hi\"}}");
    check_cmd(id, "{\"cmd\":\"echo hello\"}", 0, "hello\n", NULL);
    check_cmd(id, "{\"cmd\":\"exit 3\"}", 3, "", NULL);
    check_cmd(id, "{\"cmd\":\"cat /nonexistent\"}", 1, "", "No such file");
    check_cmd(id, "{\"cmd\":\"echo $FOO $GREETING\",\"envs\":{\"FOO\":\"bar\"}}", 0, "bar hi\n", NULL);
    check_cmd(id, "{\"cmd\":\"pwd\",\"cwd\":\"/tmp\"}", 0, "/tmp\n", NULL);
    check_cmd(id, "{\"cmd\":\"cat\",\"stdin\":\"piped input\"}", 0, "piped input", NULL);
    /* a command that loops forever is ended at its timeout, while a second command in the same
     * sandbox answers meanwhile; pause and snapshot wait for running commands (409) */
    struct loop_arg la = {id, NULL};
    pthread_t th;
    pthread_create(&th, NULL, loop_cmd, &la);
    usleep(300000);
    double t0 = now_s();
    check_cmd(id, "{\"cmd\":\"echo second\"}", 0, "second\n", NULL);
    CHECK(now_s() - t0 < 2.0);
    char p2[96];
    snprintf(p2, sizeof(p2), "/sandboxes/%s/pause", id);
    CHECK_INT(st("POST", p2, NULL), 409);
    snprintf(p2, sizeof(p2), "/sandboxes/%s/snapshot", id);
    CHECK_INT(st("POST", p2, NULL), 409);
    pthread_join(th, NULL);
    json_t *j = la.res;
    CHECK(j && json_is_true(json_object_get(j, "timedOut")));
    CHECK(j && json_integer_value(json_object_get(j, "exitCode")) == 137);
    json_decref(j);
    check_cmd(id, "{\"cmd\":\"echo still here\"}", 0, "still here\n", NULL);
    check_cmd(id, "{\"cmd\":\"seq 1 10000 | sort -rn | head -1\"}", 0, "10000\n", NULL);
    /* a fork bomb and a memory hog end inside the sandbox, which keeps answering */
    json_t *bomb = run_cmd(id, "{\"cmd\":\"f() { f | f & }; f; sleep 10\",\"timeoutMs\":3000}");
    /* killed at its timeout, or its own shell could not fork any more (the process table is full) */
    CHECK(bomb && (json_is_true(json_object_get(bomb, "timedOut")) ||
                   json_integer_value(json_object_get(bomb, "exitCode")) == 2));
    json_decref(bomb);
    snprintf(p2, sizeof(p2), "/sandboxes/%s/commands", id);
    long s429 = 0;
    for (int i = 0; i < 50 && (s429 = st("POST", p2, "{\"cmd\":\"true\"}")) == 429; i++)
        usleep(200000); /* 429 until what the bomb left gets SIGHUP at its timeout */
    CHECK_INT(s429, 200);
    check_cmd(id, "{\"cmd\":\"echo after bomb\"}", 0, "after bomb\n", NULL);
    /* a program that takes all the memory gets ENOMEM and says so (the kernel's reserve keeps
     * its stderr, its pipes and the agent working), and so does one that fills the file system */
    json_t *hog = run_cmd(id, "{\"cmd\":\"awk 'BEGIN { while (1) a[i++] = sprintf(\\\"%2000d\\\", i) }'\",\"timeoutMs\":60000}");
    CHECK(hog != NULL && json_integer_value(json_object_get(hog, "exitCode")) != 0 &&
          strstr(json_string_value(json_object_get(hog, "stderr")), "out of memory"));
    if (hog) {
        char *dump = json_dumps(hog, 0);
        printf("memory hog: %.300s\n", dump);
        free(dump);
    }
    json_decref(hog);
    check_cmd(id, "{\"cmd\":\"echo after hog\"}", 0, "after hog\n", NULL);
    check_cmd(id, "{\"cmd\":\"dd if=/dev/zero of=/tmp/fill bs=1M count=1000\",\"timeoutMs\":60000}", 1, "",
              "No space left on device");
    check_cmd(id, "{\"cmd\":\"rm /tmp/fill && echo after fill\"}", 0, "after fill\n", NULL);

    /* files: 1 MiB of binary in, counted by a command, read back byte-exact */
    size_t n = 1 << 20;
    char *data = malloc(n), kh[128], path[160];
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 131 + (i >> 9));
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, "Content-Type: application/octet-stream", NULL};
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/sub/bin.dat", id);
    CHECK(http_req(&S, &r, H2, "PUT", path, data, n, hdrs) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    check_cmd(id, "{\"cmd\":\"wc -c /tmp/sub/bin.dat\"}", 0, "1048576 /tmp/sub/bin.dat\n", NULL);
    CHECK(http_req(&S, &r, H1, "GET", path, NULL, 0, hdrs) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.len == n && !memcmp(r.body, data, n));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/sub", id);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_INT(r.status, 200);
    CHECK(json_array_size(r.json) == 1 && json_integer_value(json_object_get(json_array_get(r.json, 0), "size")) == (json_int_t)n);
    CHECK_STR(json_string_value(json_object_get(json_array_get(r.json, 0), "name")), "bin.dat");
    resp_free(&r);
    /* /proc/<pid>/fd lists a process's descriptors as of the request; /dev/stdin is a
     * descriptor's link, which the API has none to follow (404) */
    json_t *bg = run_cmd(id, "{\"cmd\":\"sleep 30 </dev/null >/dev/null 2>&1 & echo $!\",\"timeoutMs\":30000}");
    int pid = bg ? atoi(json_string_value(json_object_get(bg, "stdout"))) : 0;
    json_decref(bg);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/proc/%d/fd", id, pid);
    /* (until the child has made its redirections and exec'd sleep, it holds the shell's fds) */
    for (int i = 0; i < 50; i++) {
        api(&S, &r, H1, "GET", path, NULL);
        if (pid <= 1 || (r.status == 200 && json_array_size(r.json) == 3))
            break;
        resp_free(&r);
        usleep(100000);
    }
    CHECK(pid > 1 && r.status == 200 && json_array_size(r.json) == 3);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/dev/stdin", id);
    CHECK_INT(st("GET", path, NULL), 404);
    snprintf(path, sizeof(path), "{\"cmd\":\"kill %d\"}", pid);
    check_cmd(id, path, 0, "", NULL);
    /* a script uploaded and run as a program ("#!", chmod), with jobs in the background and `wait` */
    static const char script[] = "#!/bin/sh\nfor i in 1 2 3; do (sleep 0.$i; echo job $i) & done\nwait\necho all $1\n";
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/opt/jobs.sh", id);
    CHECK(http_req(&S, &r, H2, "PUT", path, script, sizeof(script) - 1, hdrs) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    check_cmd(id, "{\"cmd\":\"chmod +x /opt/jobs.sh && /opt/jobs.sh done\"}", 0, "job 1\njob 2\njob 3\nall done\n", NULL);
    /* the default PATH is Linux's usual one: a program put in /usr/local/bin runs by its name */
    check_cmd(id, "{\"cmd\":\"mkdir -p /usr/local/bin && cp /opt/jobs.sh /usr/local/bin/myjobs && myjobs by-name | tail -1\"}", 0,
              "all by-name\n", NULL);
    /* a running program's file is replaced as mv replaces it: the program runs on from its own copy */
    check_cmd(id, "{\"cmd\":\"cp /bin/busybox /opt/busybox2 && chmod +x /opt/busybox2\"}", 0, "", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    struct loop_arg busy = {id, NULL};
    pthread_t bt;
    pthread_create(&bt, NULL, bb_sleep_cmd, &busy);
    usleep(500000);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/opt/busybox2", id);
    CHECK(http_req(&S, &r, H2, "PUT", path, "x", 1, hdrs) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    pthread_join(bt, NULL);
    CHECK(busy.res && json_integer_value(json_object_get(busy.res, "exitCode")) == 0);
    json_decref(busy.res);
    check_cmd(id, "{\"cmd\":\"cat /opt/busybox2; stat -c %a /opt/busybox2\"}", 0, "x755\n", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/proc/meminfo", id); /* written as it is read */
    CHECK(http_req(&S, &r, H1, "GET", path, NULL, 0, hdrs) == 0);
    CHECK(r.status == 200 && r.body && strstr(r.body, "MemTotal:") == r.body);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/missing", id);
    CHECK_INT(st("GET", path, NULL), 404);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=tmp/x", id);
    CHECK_INT(st("GET", path, NULL), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/../etc/passwd", id);
    CHECK_INT(st("GET", path, NULL), 400);

    /* paused: 409; after resume the file is still there (it lives in guest memory) */
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(st("POST", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    CHECK_INT(st("POST", path, "{\"cmd\":\"true\"}"), 409);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK_INT(st("POST", path, NULL), 201);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/sub/bin.dat", id);
    CHECK(http_req(&S, &r, H2, "GET", path, NULL, 0, hdrs) == 0);
    CHECK(r.status == 200 && r.len == n && !memcmp(r.body, data, n));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(data);
    free(id);
}

/* A files request (`q`: the path, as it goes in the query); its status. With `msg`, an error's
 * body must say it. */
static long file_req(const char *method, const char *id, const char *q, const void *data, size_t n, const char *msg)
{
    char url[8400], kh[128];
    snprintf(url, sizeof(url), "/sandboxes/%s/files?path=%s", id, q);
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, "Content-Type: application/octet-stream", NULL};
    resp_t r;
    long status = http_req(&S, &r, H2, method, url, data, n, hdrs) == 0 ? r.status : -1;
    if (msg && !(r.body && strstr(r.body, msg))) {
        fprintf(stderr, "%s %.80s -> %ld %.300s (wanted '%s')\n", method, q, status, r.body ? r.body : "", msg);
        CHECK(!"the error names what was wrong");
    }
    resp_free(&r);
    return status;
}

static long put_file(const char *id, const char *q, const void *data, size_t n, const char *msg)
{
    return file_req("PUT", id, q, data, n, msg);
}

/* Paths: what the caller got wrong is a 400 naming the path (a %00 once cut the path short and
 * served the rest, a 256-byte name was a 500), and what the path meets in the guest is a 4xx
 * (a symlink to nowhere was a 500). DELETE removes a file, a symlink or an empty directory. */
static void file_paths(const char *id)
{
    char name[300], path[4200];
    CHECK_INT(file_req("GET", id, "/etc/passwd%00.txt", NULL, 0, "'path': must not contain a NUL"), 400);
    CHECK_INT(put_file(id, "/tmp/x%00y", "a", 1, "NUL"), 400);
    CHECK_INT(file_req("DELETE", id, "/etc/passwd%00", NULL, 0, "NUL"), 400);
    memset(name, 'n', 256);
    name[256] = 0;
    snprintf(path, sizeof(path), "/tmp/%s", name);
    CHECK_INT(put_file(id, path, "a", 1, "'path': name too long"), 400);
    CHECK_INT(file_req("GET", id, path, NULL, 0, "name too long"), 400);
    name[255] = 0; /* the longest name */
    snprintf(path, sizeof(path), "/tmp/%s", name);
    CHECK_INT(put_file(id, path, "a", 1, NULL), 204);
    CHECK_INT(file_req("GET", id, path, NULL, 0, NULL), 200);
    size_t n = 0; /* the longest path: 4095 bytes, 15 directories of 255-byte names deep */
    for (int i = 0; i < 15; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "/%.255s", name);
    n += (size_t)snprintf(path + n, sizeof(path) - n, "/%.*s", (int)(4095 - n - 1), name);
    CHECK_INT(n, 4095);
    CHECK_INT(put_file(id, path, "deep", 4, NULL), 204);
    CHECK_INT(file_req("GET", id, path, NULL, 0, NULL), 200);
    strcat(path, "x");
    CHECK_INT(put_file(id, path, "a", 1, "'path': path too long"), 400);
    /* symlinks are followed to the file they name; one that leads nowhere is a 409 */
    check_cmd(id, "{\"cmd\":\"ln -s /tmp/real.txt /tmp/lnk && ln -s /nowhere/dir/file /tmp/dangle && "
                  "ln -s /nowhere /tmp/dlink && mkdir /tmp/adir && touch /tmp/adir/f\"}", 0, "", NULL);
    CHECK_INT(put_file(id, "/tmp/lnk", "via link", 8, NULL), 204);
    check_cmd(id, "{\"cmd\":\"readlink /tmp/lnk; cat /tmp/real.txt\"}", 0, "/tmp/real.txt\nvia link", NULL);
    CHECK_INT(put_file(id, "/tmp/dangle", "a", 1, "/tmp/dangle: a symbolic link"), 409);
    CHECK_INT(put_file(id, "/tmp/dlink/x", "a", 1, "/tmp/dlink/x: a symbolic link"), 409);
    CHECK_INT(put_file(id, "/tmp/adir", "a", 1, "/tmp/adir is a directory"), 409);
    CHECK_INT(put_file(id, "/etc/passwd/x", "a", 1, "not a directory"), 409);
    CHECK_INT(put_file(id, "/dev/null", "a", 1, "/dev/null is not a regular file"), 409);
    check_cmd(id, "{\"cmd\":\"test -c /dev/null && ls -a /tmp /tmp/adir | grep -c lelantos-upload\"}", 1, "0\n", NULL);
    /* DELETE: 204; a symlink goes, not what it names; 404 missing, 409 a non-empty directory or / */
    CHECK_INT(file_req("DELETE", id, "/tmp/lnk", NULL, 0, NULL), 204);
    check_cmd(id, "{\"cmd\":\"test -e /tmp/lnk || cat /tmp/real.txt\"}", 0, "via link", NULL);
    CHECK_INT(file_req("DELETE", id, "/tmp/adir", NULL, 0, "/tmp/adir is a directory that is not empty"), 409);
    CHECK_INT(file_req("DELETE", id, "/tmp/adir/f", NULL, 0, NULL), 204);
    CHECK_INT(file_req("DELETE", id, "/tmp/adir", NULL, 0, NULL), 204);
    CHECK_INT(file_req("DELETE", id, "/tmp/adir", NULL, 0, "no such file"), 404);
    CHECK_INT(file_req("DELETE", id, "/tmp/dangle", NULL, 0, NULL), 204);
    CHECK_INT(file_req("DELETE", id, "/", NULL, 0, "root directory"), 409);
    CHECK_INT(file_req("DELETE", id, "tmp/real.txt", NULL, 0, "'path'"), 400);
    CHECK_INT(file_req("DELETE", id, "/tmp/../tmp/real.txt", NULL, 0, "'..'"), 400);
}

/* An upload replaces its file whole or not at all (written under a temporary name, renamed over
 * the file, whose mode it keeps); one the guest's memory cannot hold leaves nothing behind
 * (once, a partial file stayed and every later command failed). A guest whose memory is full
 * of files, by uploads or by a command, still runs the command that frees it. */
static void uploads_fill(const char *id)
{
    size_t big = 100u << 20, sizes[] = {big, 16u << 20, 1u << 20, 64u << 10};
    char *data = malloc(big), q[64];
    memset(data, 'u', big);
    CHECK_INT(put_file(id, "/tmp/keep", "old", 3, NULL), 204);
    check_cmd(id, "{\"cmd\":\"chmod 750 /tmp/keep\"}", 0, "", NULL);
    CHECK_INT(put_file(id, "/tmp/keep", "new contents", 12, NULL), 204);
    check_cmd(id, "{\"cmd\":\"stat -c %a /tmp/keep; cat /tmp/keep\"}", 0, "750\nnew contents", NULL);
    int files = 0;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) { /* to the last 64 KiB */
        long status = 204;
        for (int i = 0; i < 64 && status == 204; i++) {
            snprintf(q, sizeof(q), "/tmp/fill%d", files);
            status = put_file(id, q, data, sizes[k], NULL);
            files += status == 204;
        }
        CHECK_INT(status, 503);
    }
    printf("uploads filled the guest with %d files\n", files);
    CHECK(files >= 2);
    CHECK_INT(put_file(id, "/tmp/keep", data, big, "out of memory"), 503);
    CHECK_INT(file_req("GET", id, "/tmp/keep", NULL, 0, NULL), 200);
    check_cmd(id, "{\"cmd\":\"cat /tmp/keep; ls -a /tmp | grep -c lelantos-upload\"}", 1, "new contents0\n", NULL);
    /* the same through a command: its file stops short of what processes need */
    check_cmd(id, "{\"cmd\":\"cat /dev/zero > /tmp/fill-cmd\"}", 1, "", "No space left on device");
    check_cmd(id, "{\"cmd\":\"rm /tmp/fill-cmd /tmp/fill0 && echo freed\"}", 0, "freed\n", NULL);
    for (int i = 1; i < files; i++) {
        snprintf(q, sizeof(q), "/tmp/fill%d", i);
        CHECK_INT(file_req("DELETE", id, q, NULL, 0, NULL), 204);
    }
    CHECK_INT(put_file(id, "/tmp/keep", data, big, NULL), 204);
    check_cmd(id, "{\"cmd\":\"wc -c < /tmp/keep\"}", 0, "104857600\n", NULL);
    free(data);
}

/* A file the API writes gets the time of its request, though no process ran since the last
 * command (it got that command's time). */
static void file_times(const char *id)
{
    check_cmd(id, "{\"cmd\":\"true\"}", 0, "", NULL);
    sleep(3);
    long long before = (long long)time(NULL);
    CHECK_INT(put_file(id, "/tmp/stamp", "t", 1, NULL), 204);
    json_t *j = run_cmd(id, "{\"cmd\":\"stat -c %Y /tmp/stamp\"}");
    long long m = j ? atoll(json_string_value(json_object_get(j, "stdout"))) : 0;
    printf("a file uploaded at %lld has mtime %lld\n", before, m);
    CHECK(m >= before - 1 && m <= (long long)time(NULL) + 1);
    json_decref(j);
}

/* POSTs a command built as JSON (stolen); with `out`, a 200 whose stdout that is; else an error
 * whose message has `msg`. The status. */
static long run_json(const char *id, json_t *body, const char *out, const char *msg)
{
    char path[96], *text = json_dumps(body, 0);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    api(&S, &r, H2, "POST", path, text);
    long status = r.status;
    const char *got = status == 200 ? json_string_value(json_object_get(r.json, "stdout")) : r.body;
    if (!got || !strstr(got, out ? out : msg) || (out && strcmp(got, out))) {
        fprintf(stderr, "command of %zu bytes -> %ld %.300s (wanted '%s')\n", strlen(text), status, got ? got : "",
                out ? out : msg);
        CHECK(!"the command's answer");
    }
    free(text);
    json_decref(body);
    resp_free(&r);
    return status;
}

static json_t *cmd_with(const char *cmd, int nvars, size_t len)
{
    json_t *envs = json_object();
    char *val = malloc(len + 1), name[16];
    memset(val, 'v', len);
    val[len] = 0;
    for (int i = 0; i < nvars; i++) {
        snprintf(name, sizeof(name), "V%d", i);
        json_object_set_new(envs, name, json_string(val));
    }
    free(val);
    return json_pack("{s:s, s:o}", "cmd", cmd, "envs", envs);
}

/* Linux's limits for what a program is started with (128 KiB a string, 2 MiB with a pointer
 * each): the guest takes them, in the command and in every program it runs; past them the
 * API answers 400 naming the field (once, ~4 KiB failed in the guest and 500 variables were a 500). */
static void arg_limits(const char *id)
{
    CHECK_INT(run_json(id, cmd_with("env | grep -c '^V[0-9]*='", 500, 8), "500\n", NULL), 200);
    CHECK_INT(run_json(id, cmd_with("sh -c 'printf %s \"$V0\" | wc -c'", 1, 100 << 10), "102400\n", NULL), 200);
    size_t n = 200 << 10;
    char *cmd = malloc(n + 1);
    memset(cmd, ' ', n);
    cmd[n] = 0;
    CHECK_INT(run_json(id, json_pack("{s:s}", "cmd", cmd), NULL, "invalid field 'cmd'"), 400);
    n = 131071; /* the longest: 128 KiB with its NUL */
    memcpy(cmd + n - 9, "; echo ok", 10);
    cmd[0] = ':';
    CHECK_INT(run_json(id, json_pack("{s:s}", "cmd", cmd), "ok\n", NULL), 200);
    memmove(cmd + 1, cmd, n + 1);
    CHECK_INT(run_json(id, json_pack("{s:s}", "cmd", cmd), NULL, "invalid field 'cmd'"), 400);
    free(cmd);
    /* "V0=" and the value: 131071 bytes, then one more */
    CHECK_INT(run_json(id, cmd_with("sh -c 'printf %s \"$V0\" | wc -c'", 1, 131068), "131068\n", NULL), 200);
    CHECK_INT(run_json(id, cmd_with("true", 1, 131069), NULL, "invalid field 'envs'"), 400);
    /* 15 of 127 KiB (1.9 MiB) reach a program the shell runs; 17 (2.1 MiB) are past the 2 MiB */
    CHECK_INT(run_json(id, cmd_with("sh -c 'echo ${#V14}'", 15, 130000), "130000\n", NULL), 200);
    CHECK_INT(run_json(id, cmd_with("true", 17, 130000), NULL, "invalid field 'envs'"), 400);
}

/* What testing the service from outside found in the data plane, in a sandbox of its own. */
static void data_plane_edges(void)
{
    char *id = create("{}");
    file_times(id);
    file_paths(id);
    arg_limits(id);
    uploads_fill(id);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(id);
}

/* Waits for a build to leave waiting/building; returns its final JSON (caller frees). */
static json_t *await_build(const char *tid, const char *bid)
{
    char path[160];
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 600; i++) {
        resp_t r;
        api(&S, &r, H1, "GET", path, NULL);
        const char *st = jstr(&r, "status");
        if (r.status == 200 && strcmp(st, "waiting") && strcmp(st, "building")) {
            json_t *j = json_incref(r.json);
            resp_free(&r);
            return j;
        }
        resp_free(&r);
        usleep(100000);
    }
    return NULL;
}

/* GET /sandboxes/{id} -> its record (caller frees). */
static json_t *get_sandbox(const char *id)
{
    resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, H1, "GET", path, NULL);
    json_t *j = json_incref(r.json);
    resp_free(&r);
    return j;
}

static long long rec_int(json_t *rec, const char *field)
{
    return json_integer_value(json_object_get(rec, field));
}

/* A snapshot restores only into a sandbox of its shape (a 512 MB image in a 256 MB sandbox
 * left a record that lied): 409 naming both; a fork takes the snapshot's shape. */
static void shapes(const char *tid512)
{
    char body[160], path[160];
    resp_t r;
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid512);
    char *big = create(body), *small = create("{}");
    json_t *rec = get_sandbox(big);
    CHECK(rec_int(rec, "memoryMB") == 512 && rec_int(rec, "diskSizeMB") == 512);
    json_decref(rec);
    char *sb = take_snapshot(big, "big"), *ss = take_snapshot(small, "small");
    snprintf(path, sizeof(path), "/sandboxes/%s/restore", small);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", sb);
    api(&S, &r, H2, "POST", path, body);
    CHECK_INT(r.status, 409);
    CHECK(strstr(jstr(&r, "error"), "512 MB") && strstr(jstr(&r, "error"), "256 MB"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/restore", big);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", ss);
    CHECK_INT(st("POST", path, body), 409);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", sb);
    CHECK_INT(st("POST", path, body), 200); /* its own shape */
    /* both guests still have what their records say */
    check_cmd(small, "{\"cmd\":\"awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo\"}", 0, "256\n", NULL);
    check_cmd(big, "{\"cmd\":\"awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo; cat /two\"}", 0, "512\ntwo\n", NULL);
    char *fork = create(body);
    rec = get_sandbox(fork);
    CHECK(rec_int(rec, "memoryMB") == 512 && rec_int(rec, "diskSizeMB") == 512);
    json_decref(rec);
    char *ids[] = {big, small, fork};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
        CHECK_INT(st("DELETE", path, NULL), 204);
        free(ids[i]);
    }
    snprintf(path, sizeof(path), "/snapshots/%s", sb);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/snapshots/%s", ss);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(sb);
    free(ss);
}

static void templates_vm(void)
{
    resp_t r;
    char body[512], path[160];
    /* the built-in template is built at first start; sandboxes from it are restored from then on */
    const char *bst = "";
    for (int i = 0; i < 1200 && strcmp(bst, "ready"); i++) {
        api(&S, &r, H1, "GET", "/templates/base", NULL);
        bst = !strcmp(jstr(&r, "buildStatus"), "ready") ? "ready" : "";
        resp_free(&r);
        if (!*bst)
            usleep(100000);
    }
    CHECK_STR(bst, "ready");
    char *fb = create("{\"templateID\":\"base\"}");
    check_cmd(fb, "{\"cmd\":\"echo from base\"}", 0, "from base\n", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s", fb);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(fb);
    api(&S, &r, H2, "POST", "/templates",
        "{\"name\":\"app\",\"memoryMB\":256,\"steps\":["
        "{\"type\":\"run\",\"args\":[\"mkdir -p /opt/app && echo built > /opt/app/marker\"]},"
        "{\"type\":\"file\",\"path\":\"/opt/app/run.sh\",\"content\":\"echo hi\\n\",\"mode\":493},"
        "{\"type\":\"file\",\"path\":\"/usr/local/bin/stamp\",\"content\":\"#!/bin/sh\\necho \\\"$*\\\" > $1\\n\",\"mode\":493},"
        "{\"type\":\"run\",\"args\":[\"stamp\",\"/opt/app/argv\",\"two words\",\"$HOME\"]},"
        "{\"type\":\"run\",\"args\":[\"/bin/touch\",\"/opt/app/touched\"]}],"
        "\"startCmd\":\"httpd -p 127.0.0.1:8080 -h /opt/app; while :; do date +%s > /tmp/hb.new && mv /tmp/hb.new /tmp/hb; sleep 0.2; done\","
        "\"readyCmd\":\"test -f /opt/app/marker && test -s /tmp/hb && wget -q -O- http://localhost:8080/marker\"}");
    CHECK_INT(r.status, 202);
    CHECK_STR(jstr(&r, "status"), "building");
    char *tid = strdup(jstr(&r, "templateID")), *bid = strdup(jstr(&r, "buildID"));
    resp_free(&r);
    /* a second build waits for the first (templates.max_parallel_builds: 1), then runs */
    api(&S, &r, H2, "POST", "/templates",
        "{\"name\":\"two\",\"memoryMB\":512,\"steps\":[{\"type\":\"run\",\"args\":[\"echo two > /two\"]}]}");
    CHECK_INT(r.status, 202);
    char *tid2 = strdup(jstr(&r, "templateID")), *bid2 = strdup(jstr(&r, "buildID"));
    resp_free(&r);
    json_t *b = await_build(tid2, bid2);
    CHECK(b && !strcmp(json_string_value(json_object_get(b, "status")), "ready"));
    json_decref(b);
    shapes(tid2);
    snprintf(path, sizeof(path), "/templates/%s", tid2);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(tid2);
    free(bid2);
    b = await_build(tid, bid);
    CHECK(b != NULL);
    CHECK_STR(json_string_value(json_object_get(b, "status")), "ready");
    char *logs = b ? json_dumps(json_object_get(b, "logs"), 0) : NULL;
    CHECK(logs && strstr(logs, "step 1") && strstr(logs, "readyCmd"));
    free(logs);
    json_decref(b);
    /* sandboxes from it start with the built files, and do not see each other's writes */
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid);
    char *a = create(body), *c = create(body);
    check_cmd(a, "{\"cmd\":\"cat /opt/app/marker\"}", 0, "built\n", NULL);
    /* argument steps: a bare name found in PATH (/usr/local/bin), arguments passed as they are */
    check_cmd(a, "{\"cmd\":\"cat /opt/app/argv; test -e /opt/app/touched && echo touched\"}", 0,
              "/opt/app/argv two words $HOME\ntouched\n", NULL);
    check_cmd(a, "{\"cmd\":\"ls -l /opt/app/run.sh | cut -c1-10\"}", 0, "-rwxr-xr-x\n", NULL);
    check_cmd(a, "{\"cmd\":\"echo mine > /opt/app/a-only\"}", 0, "", NULL);
    check_cmd(c, "{\"cmd\":\"test -e /opt/app/a-only; echo $?\"}", 0, "1\n", NULL);
    /* each got its own randomness after the restore */
    json_t *ra = run_cmd(a, "{\"cmd\":\"head -c 16 /dev/urandom | sha256sum\"}"),
           *rc = run_cmd(c, "{\"cmd\":\"head -c 16 /dev/urandom | sha256sum\"}");
    CHECK(ra && rc && strcmp(json_string_value(json_object_get(ra, "stdout")), json_string_value(json_object_get(rc, "stdout"))));
    json_decref(ra);
    json_decref(rc);
    /* the startCmd process runs in each of them: it rewrites its heartbeat with the current time */
    json_t *hb = run_cmd(a, "{\"cmd\":\"rm /tmp/hb; sleep 2; cat /tmp/hb\"}");
    long long beat = hb ? atoll(json_string_value(json_object_get(hb, "stdout"))) : 0;
    CHECK(beat >= (long long)time(NULL) - 10 && beat <= (long long)time(NULL) + 1);
    json_decref(hb);
    /* so does the server it started (loopback TCP): its listening socket is guest memory too */
    check_cmd(c, "{\"cmd\":\"wget -q -O- http://127.0.0.1:8080/marker; netstat -ltn | grep -c '127.0.0.1:8080 .*LISTEN'\"}", 0,
              "built\n1\n", NULL);
    /* the clock of a restored guest is now, not the build's */
    char want[64];
    snprintf(want, sizeof(want), "{\"cmd\":\"date +%%Y\"}");
    json_t *d = run_cmd(c, want);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char year[16];
    snprintf(year, sizeof(year), "%d\n", tm.tm_year + 1900);
    CHECK_STR(d ? json_string_value(json_object_get(d, "stdout")) : NULL, year);
    json_decref(d);
    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK_INT(st("DELETE", path, NULL), 409);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK(json_integer_value(json_object_get(r.json, "spawnCount")) == 2);
    resp_free(&r);
    /* the template and a paused sandbox from it survive a restart of the daemon */
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", a);
    CHECK_INT(st("POST", path, NULL), 204);
    CHECK_INT(srv_stop(&S), 0);
    CHECK(srv_restart(&S) == 0);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", a);
    CHECK_INT(st("POST", path, NULL), 201);
    check_cmd(a, "{\"cmd\":\"cat /opt/app/a-only\"}", 0, "mine\n", NULL);
    char *d2 = create(body);
    check_cmd(d2, "{\"cmd\":\"cat /opt/app/marker; test -e /opt/app/a-only || echo clean\"}", 0, "built\nclean\n", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s", d2);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(d2);
    snprintf(path, sizeof(path), "/sandboxes/%s", a);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s", c); /* it was running when the daemon stopped: paused */
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "state"), "paused");
    resp_free(&r);
    CHECK_INT(st("DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK_INT(st("DELETE", path, NULL), 204);
    /* a failing step: error, with the step's output and the reason */
    api(&S, &r, H2, "POST", "/templates", "{\"name\":\"broken\",\"steps\":[{\"type\":\"run\",\"args\":[\"echo oops; exit 4\"]}]}");
    CHECK_INT(r.status, 202);
    free(tid);
    free(bid);
    tid = strdup(jstr(&r, "templateID"));
    bid = strdup(jstr(&r, "buildID"));
    resp_free(&r);
    b = await_build(tid, bid);
    CHECK(b && !strcmp(json_string_value(json_object_get(b, "status")), "error"));
    logs = b ? json_dumps(b, 0) : NULL;
    CHECK(logs && strstr(logs, "oops") && strstr(logs, "exited with 4") && json_object_get(b, "reason"));
    free(logs);
    json_decref(b);
    free(tid);
    free(bid);
    free(a);
    free(c);
}

struct cmd_arg {
    const char *id, *body;
    json_t *res;
};

static void *cmd_thread(void *arg)
{
    struct cmd_arg *a = arg;
    a->res = run_cmd(a->id, a->body);
    return NULL;
}

/* Rewrites the daemon's config (as srv_start wrote it) for its next start. */
static void write_config(const char *yaml)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/config.yaml", S.dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "http:\n  threads: 2\nworkers: 4\n%s", yaml);
        fclose(f);
    }
}

static int state_is(const char *id, const char *want)
{
    json_t *rec = get_sandbox(id);
    int ok = !strcmp(json_string_value(json_object_get(rec, "state")) ? json_string_value(json_object_get(rec, "state")) : "", want);
    if (!ok)
        fprintf(stderr, "sandbox %s is %s, not %s\n", id, json_string_value(json_object_get(rec, "state")), want);
    json_decref(rec);
    return ok;
}

/* A graceful stop pauses every running sandbox (shutdown_pause_grace_ms, 6 s here), autoPause or
 * not, so a restart loses none: a command that ends within half the grace is answered as
 * usual, one still running then is killed and answered, and the sandbox pauses after it. New
 * sandboxes are refused meanwhile. After the restart they are paused with their memory, and
 * resume (connect). With the grace 0 they are killed at the stop, and the log says why. */
static void stop_pauses(const char *cfg, const char *cfg_nopause)
{
    char path[160];
    char *a = create("{\"timeout\":600}"), *b = create("{\"timeout\":600}"), *c = create("{\"timeout\":600}");
    check_cmd(a, "{\"cmd\":\"echo kept > /tmp/keep.txt\"}", 0, "", NULL);
    struct cmd_arg cb = {b, "{\"cmd\":\"sleep 1; echo done\"}", NULL};
    struct cmd_arg cc = {c, "{\"cmd\":\"echo started > /tmp/c.txt; sleep 100\",\"timeoutMs\":120000}", NULL};
    pthread_t tb, tc;
    pthread_create(&tb, NULL, cmd_thread, &cb);
    pthread_create(&tc, NULL, cmd_thread, &cc);
    usleep(300000);
    double t0 = now_s();
    kill(S.pid, SIGTERM);
    usleep(500000);
    CHECK_INT(st("POST", "/sandboxes", "{}"), 503); /* still answering, but starting nothing */
    CHECK_INT(srv_stop(&S), 0);
    printf("graceful stop with 3 running sandboxes (one command killed at half the grace): %.1f s\n", now_s() - t0);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    CHECK(cb.res && json_integer_value(json_object_get(cb.res, "exitCode")) == 0);
    CHECK_STR(cb.res ? json_string_value(json_object_get(cb.res, "stdout")) : NULL, "done\n");
    CHECK(cc.res && json_integer_value(json_object_get(cc.res, "exitCode")) == 137);
    json_decref(cb.res);
    json_decref(cc.res);
    CHECK(srv_restart(&S) == 0);
    CHECK(state_is(a, "paused") && state_is(b, "paused") && state_is(c, "paused"));
    CHECK(logs_contain(a, "paused: lelantosd is stopping"));
    snprintf(path, sizeof(path), "/sandboxes/%s/connect", a);
    CHECK_INT(st("POST", path, "{\"timeout\":60}"), 201);
    check_cmd(a, "{\"cmd\":\"cat /tmp/keep.txt\"}", 0, "kept\n", NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", c);
    CHECK_INT(st("POST", path, NULL), 201);
    check_cmd(c, "{\"cmd\":\"cat /tmp/c.txt\"}", 0, "started\n", NULL);
    char *ids[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
        CHECK_INT(st("DELETE", path, NULL), 204);
        free(ids[i]);
    }
    /* without the pause a graceful stop kills them, and says so */
    write_config(cfg_nopause);
    CHECK_INT(srv_stop(&S), 0);
    CHECK(srv_restart(&S) == 0);
    char *d = create("{\"timeout\":600}");
    write_config(cfg);
    CHECK_INT(srv_stop(&S), 0);
    CHECK(srv_restart(&S) == 0);
    CHECK(state_is(d, "killed"));
    CHECK(logs_contain(d, "could not pause the sandbox in time"));
    free(d);
}

static long rss_kib(void)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)S.pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

/* Memory a workload freed inside a sandbox goes back to the host within a few metrics samples
 * (free-page reporting): the daemon's resident memory falls again. */
static void memory_returned(void)
{
    char *id = create("{}");
    check_cmd(id, "{\"cmd\":\"head -c 64000000 /dev/zero > /tmp/big && rm /tmp/big && echo freed\"}", 0, "freed\n", NULL);
    long high = rss_kib(), now = high;
    for (int i = 0; i < 100 && now > high - 40 * 1024; i++) {
        usleep(100000);
        now = rss_kib();
    }
    printf("daemon RSS after a 64 MB file was written and removed: %ld KiB, then %ld KiB\n", high, now);
    CHECK(high > 0 && now <= high - 40 * 1024);
    check_cmd(id, "{\"cmd\":\"seq 1 1000 | tail -1\"}", 0, "1000\n", NULL);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(id);
}

static void *creator(void *arg)
{
    char **id = arg;
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\"}");
    *id = r.status == 201 ? strdup(jstr(&r, "sandboxID")) : NULL;
    if (r.status != 201)
        fprintf(stderr, "concurrent create -> %ld %s\n", r.status, r.body ? r.body : "");
    resp_free(&r);
    return NULL;
}

/* Command after command in one sandbox: every one answered, the sandbox alive throughout (a
 * request interrupt the guest slept through once killed a sandbox within ~150 commands under
 * nested virtualization). */
static void many_commands(void)
{
    char *id = create("{\"timeout\":600}");
    int ok = 0;
    for (int i = 0; i < 300; i++) {
        json_t *j = run_cmd(id, "{\"cmd\":\"true\"}");
        ok += j && json_integer_value(json_object_get(j, "exitCode")) == 0;
        json_decref(j);
        if (!j)
            break;
    }
    printf("300 commands in a row: %d answered\n", ok);
    CHECK_INT(ok, 300);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);
    free(id);
}

/* Many creates at once (50; LEL_E2E_CONCURRENT=N for fewer), then every fd, thread and file is
 * given back. */
static void concurrent_creates(void)
{
    char snapdir[300];
    int n = getenv("LEL_E2E_CONCURRENT") ? atoi(getenv("LEL_E2E_CONCURRENT")) : 50;
    if (n < 1 || n > 50)
        n = 50;
    snprintf(snapdir, sizeof(snapdir), "%s/data/snapshots", S.dir);
    usleep(500000); /* the warm pool full again after the tests before */
    int fds0 = proc_count("fd"), th0 = proc_count("task"), files0 = count_dir(snapdir);
    pthread_t th[50];
    char *ids[50];
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, creator, &ids[i]);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ok += ids[i] != NULL;
    }
    CHECK_INT(ok, n);
    printf("%d VMs: %d fds, %d threads (before: %d, %d)\n", n, proc_count("fd"), proc_count("task"), fds0, th0);
    for (int i = 0; i < n; i++) {
        if (!ids[i])
            continue;
        char path[96];
        snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
        CHECK_INT(st("DELETE", path, NULL), 204);
        free(ids[i]);
    }
    /* VMs are destroyed off the request path (the reaper) and the warm pool refills: both
     * settle within moments */
    for (int i = 0; i < 100 && (proc_count("fd") > fds0 + 2 || proc_count("task") != th0); i++)
        usleep(100000);
    printf("after kill: %d fds, %d threads, %d files\n", proc_count("fd"), proc_count("task"), count_dir(snapdir));
    CHECK(proc_count("fd") <= fds0 + 2); /* loop sockets may differ by a keep-alive connection */
    CHECK_INT(proc_count("task"), th0);
    CHECK_INT(count_dir(snapdir), files0);
}

/* lelantosd says at start when the kernel's limit on memory mappings (about four per sandbox)
 * allows fewer than 16384 sandboxes, and stays quiet otherwise. */
static void host_limits(void)
{
    char path[200], buf[8192];
    unsigned long long maps = 0;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (!f || fscanf(f, "%llu", &maps) != 1)
        maps = 0;
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "%s/server.log", S.dir);
    f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    printf("vm.max_map_count %llu\n", maps);
    CHECK(maps == 0 || !strstr(buf, "vm.max_map_count is") == (maps >= 4 * 16384));
}

int main(void)
{
    char why[256];
    enum lel_vmm_backend b = lel_vmm_probe(why, sizeof(why));
#define VM_CFG "vmm:\n  backend: auto\n  metrics_interval_s: 1\nrate_limits:\n  general_per_s: 100000\n" \
               "http:\n  max_body_bytes: 4194304\n" \
               "teams:\n  max_sandboxes: 100\ntemplates:\n  max_parallel_builds: 1\n"
    const char *cfg = VM_CFG "shutdown_pause_grace_ms: 6000\n";
    if (srv_start(&S, cfg) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    host_limits();
    if (b == LEL_VMM_NONE) {
        resp_t r;
        api(&S, &r, H1, "POST", "/sandboxes", "{}");
        CHECK_INT(r.status, 503);
        CHECK(r.body && strstr(r.body, "/dev/kvm"));
        resp_free(&r);
        api(&S, &r, H1, "GET", "/sandboxes", NULL); /* the rest of the API keeps working */
        CHECK_INT(r.status, 200);
        resp_free(&r);
        CHECK_INT(srv_stop(&S), 0);
        srv_cleanup(&S);
        if (lel_test_failed)
            return lel_test_finish();
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    printf("backend: %s\n", lel_vmm_backend_name(b));
    lifecycle();
    data_plane();
    data_plane_edges();
    many_commands();
    memory_returned();
    templates_vm();
    stop_pauses(cfg, VM_CFG "shutdown_pause_grace_ms: 0\n");
    restarts();
    concurrent_creates();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
