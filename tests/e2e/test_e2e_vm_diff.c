/* Diff images through the API, with real microVMs: a pause of a sandbox from a template is a
 * diff over the template's image and resumes byte-exact (files, and a process's memory); chains
 * of snapshot -> restore -> snapshot restore at every link; DELETE /snapshots/{id} of an image
 * others depend on answers 204 while its files stay until the last dependant goes; a corrupt
 * diff, a missing or a changed base are refused with an error naming the image and nothing
 * starts; chains deeper than snapshots.max_chain_depth are flattened in the background and
 * still restore; a sandbox killed by a daemon's restart lets its base go; and kill -9 of the
 * daemon at random moments of a loop of snapshots (diffs of diffs) leaves every snapshot it
 * acknowledged usable and no image file that no record names. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 3

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

/* POST /sandboxes with `body`: the id (caller frees), or NULL with the answer in *status/msg. */
static char *create_as(const char *body, long *status, char *msg, size_t n)
{
    resp_t r;
    char *id = NULL;
    api(&S, &r, H2, "POST", "/sandboxes", body);
    *status = r.status;
    if (msg)
        snprintf(msg, n, "%s", r.body ? r.body : "");
    if (r.status == 201)
        id = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    return id;
}

static char *create(const char *body)
{
    long status;
    char msg[512];
    char *id = create_as(body, &status, msg, sizeof(msg));
    CHECK_INT(status, 201);
    if (!id)
        fprintf(stderr, "create %s: %s\n", body, msg);
    return id;
}

static char *from_snapshot(const char *snap)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\",\"timeout\":600}", snap);
    return create(body);
}

/* The command's stdout (caller frees), or NULL when it did not exit 0. */
static char *run(const char *id, const char *cmd)
{
    resp_t r;
    char path[96];
    json_t *body = json_pack("{s:s, s:i}", "cmd", cmd, "timeoutMs", 30000);
    char *b = json_dumps(body, 0);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    api(&S, &r, H2, "POST", path, b);
    char *out = NULL;
    if (r.status == 200 && json_integer_value(json_object_get(r.json, "exitCode")) == 0)
        out = strdup(jstr(&r, "stdout"));
    else
        fprintf(stderr, "command %s in %s -> %ld %s\n", cmd, id, r.status, r.body ? r.body : "");
    resp_free(&r);
    free(b);
    json_decref(body);
    return out;
}

static void check_out(const char *id, const char *cmd, const char *want)
{
    char *out = run(id, cmd);
    CHECK_STR(out, want);
    free(out);
}

static char *take_snapshot(const char *id)
{
    resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id);
    api(&S, &r, H2, "POST", path, "{}");
    CHECK_INT(r.status, 201);
    char *snap = r.status == 201 ? strdup(jstr(&r, "snapshotID")) : NULL;
    resp_free(&r);
    return snap;
}

static long restore_into(const char *id, const char *snap, char *msg, size_t n)
{
    resp_t r;
    char path[96], body[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/restore", id);
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", snap);
    api(&S, &r, H2, "POST", path, body);
    long s = r.status;
    if (msg)
        snprintf(msg, n, "%s", r.body ? r.body : "");
    resp_free(&r);
    return s;
}

static void kill_sandbox(const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(st("DELETE", path, NULL), 204);
}

static void delete_snapshot(const char *snap)
{
    char path[96];
    snprintf(path, sizeof(path), "/snapshots/%s", snap);
    CHECK_INT(st("DELETE", path, NULL), 204);
}

static void image_path(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/data/snapshots/%s.img", S.dir, name);
}

static int image_exists(const char *name)
{
    char p[400];
    image_path(name, p, sizeof(p));
    return access(p, F_OK) == 0;
}

/* The image's header (diff, depth, base); -1 when it cannot be read. */
static int image_info(const char *name, struct lel_snap_info *info, char *base, size_t n)
{
    char p[400], err[600];
    image_path(name, p, sizeof(p));
    return lel_image_info(p, info, base, n, NULL, err, sizeof(err)) == 0 ? 0 : -1;
}

/* The files in data/snapshots ending in `suffix` (.img, .raw, .tmp), as " a b c " names
 * without it (caller frees). */
static char *files_ending(const char *suffix, int *count)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/data/snapshots", S.dir);
    DIR *d = opendir(dir);
    size_t cap = 4096, len = 1, sl = strlen(suffix);
    char *out = malloc(cap);
    strcpy(out, " ");
    *count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n <= sl || strcmp(e->d_name + n - sl, suffix))
            continue;
        if (len + n + 2 > cap)
            out = realloc(out, cap = cap * 2 + n);
        memcpy(out + len, e->d_name, n - sl);
        len += n - sl;
        out[len++] = ' ';
        out[len] = 0;
        ++*count;
    }
    if (d)
        closedir(d);
    return out;
}

static int has_word(const char *words, const char *w)
{
    char pat[96];
    snprintf(pat, sizeof(pat), " %s ", w);
    return strstr(words, pat) != NULL;
}

/* The ids GET /snapshots lists, as " a b c " (caller frees). */
static char *listed_snapshots(int *count)
{
    resp_t r;
    size_t i;
    json_t *v;
    char *out = strdup(" ");
    *count = 0;
    api(&S, &r, H1, "GET", "/snapshots?limit=1000", NULL);
    CHECK_INT(r.status, 200);
    json_array_foreach(r.json, i, v)
    {
        char *grown;
        if (asprintf(&grown, "%s%s ", out, json_string_value(json_object_get(v, "snapshotID"))) >= 0) {
            free(out);
            out = grown;
            ++*count;
        }
    }
    resp_free(&r);
    return out;
}

static const char *state_of(const char *id, char *buf, size_t n)
{
    resp_t r;
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, H1, "GET", path, NULL);
    snprintf(buf, n, "%s", r.status == 200 ? jstr(&r, "state") : "gone");
    resp_free(&r);
    return buf;
}

/* ---- a process holding a value in its memory ----
 * hold.sh keeps $v in the shell's memory: USR2 sets it from /tmp/set (then removes the file),
 * USR1 writes it to /tmp/v1. The first value is random and goes to /tmp/v0. */
static const char hold_sh[] =
    "trap '' HUP\n"
    "v=$(head -c 64 /dev/urandom | sha256sum | cut -c1-64)\n"
    "echo $v > /tmp/v0\n"
    "trap 'v=$(cat /tmp/set); rm -f /tmp/set' USR2\n"
    "trap 'echo $v > /tmp/v1.tmp; mv /tmp/v1.tmp /tmp/v1' USR1\n"
    "while :; do sleep 0.05; done\n";

/* Starts hold.sh; its pid, the first value in `v` (65 bytes), and /tmp/v0 removed (the process's
 * memory is then the only place that holds it). */
static int start_holder(const char *id, char *v)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cat > /tmp/hold.sh <<'EOF'\n%sEOF\nsh /tmp/hold.sh </dev/null >/dev/null 2>&1 & echo $!", hold_sh);
    char *out = run(id, cmd);
    int pid = out ? atoi(out) : 0;
    free(out);
    out = run(id, "for i in $(seq 100); do [ -s /tmp/v0 ] && break; sleep 0.05; done; cat /tmp/v0; rm /tmp/v0");
    CHECK(out && strlen(out) == 65);
    snprintf(v, 65, "%s", out ? out : "");
    free(out);
    return pid;
}

/* The value the holder has in its memory now (caller frees). */
static char *holder_value(const char *id, int pid)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -f /tmp/v1; kill -USR1 %d && for i in $(seq 200); do [ -s /tmp/v1 ] && break; sleep 0.05; done; cat /tmp/v1",
             pid);
    char *out = run(id, cmd);
    if (out)
        out[strcspn(out, "\n")] = 0;
    return out;
}

static void holder_set(const char *id, int pid, const char *v)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "echo %s > /tmp/set; kill -USR2 %d && for i in $(seq 200); do [ -e /tmp/set ] || break; sleep 0.05; done; [ ! -e /tmp/set ]",
             v, pid);
    char *out = run(id, cmd);
    CHECK(out != NULL);
    free(out);
}

static void random_hex(char *out, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = "0123456789abcdef"[rand() % 16];
    out[n - 1] = 0;
}

/* A pause of a sandbox from the built template is a diff over the template's image, and resumes
 * with its files and a process's memory as they were, twice (the second pause again a diff over
 * the template: a resumed VM's base is its pause image's base). */
static void pause_resume(void)
{
    char path[128], v[72];
    char *id = create("{\"templateID\":\"base\",\"timeout\":600}");
    char *h = run(id, "head -c 4194304 /dev/urandom > /tmp/r; sha256sum /tmp/r");
    int pid = start_holder(id, v);
    CHECK(h && pid > 1);
    for (int round = 0; round < 2; round++) {
        snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
        CHECK_INT(st("POST", path, NULL), 204);
        char name[64], base[4200];
        struct lel_snap_info info;
        snprintf(name, sizeof(name), "%s.paused", id);
        CHECK(image_info(name, &info, base, sizeof(base)) == 0);
        CHECK(info.diff == 1 && info.depth == 1);
        CHECK(strstr(base, "/templates/base.") != NULL);
        /* the 4 MiB of random data and what the guest touched, not the whole 256 MiB */
        printf("pause %d: diff of %llu pages, %llu bytes stored\n", round, (unsigned long long)info.diff_pages,
               (unsigned long long)info.stored_bytes);
        CHECK(info.diff_pages >= 1024 && info.stored_bytes < (64ULL << 20));
        snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
        CHECK_INT(st("POST", path, NULL), 201);
        CHECK(!image_exists(name));
        check_out(id, "sha256sum /tmp/r", h);
        char *got = holder_value(id, pid);
        CHECK_STR(got, v);
        free(got);
        random_hex(v, 65); /* the next round's value, set in memory only */
        holder_set(id, pid, v);
    }
    kill_sandbox(id);
    free(h);
    free(id);
}

#define LINKS 5

/* snapshot -> restore -> snapshot ... : link k is a diff over link k-1 (link 1 over the
 * template), each restores byte-exact (its files, its process's memory), and a link deeper than
 * MAX_DEPTH is flattened in the background (its image becomes full, with the same content) and
 * still restores. Then DELETE of links others depend on: 204, the files stay while a dependant
 * is there, and all go with the last. */
static void chains(void)
{
    char *snap[LINKS + 1] = {0}, val[LINKS + 1][72], file[LINKS + 1][160], cmd[512], v0[72];
    uint32_t depth[LINKS + 1] = {0};
    char *id = create("{\"templateID\":\"base\",\"timeout\":600}");
    int pid = start_holder(id, v0);
    for (int k = 1; k <= LINKS; k++) {
        random_hex(val[k], 65);
        holder_set(id, pid, val[k]);
        snprintf(cmd, sizeof(cmd), "head -c %d /dev/urandom > /tmp/link%d; sha256sum /tmp/link%d", 100000 * k, k, k);
        char *h = run(id, cmd);
        snprintf(file[k], sizeof(file[k]), "%s", h ? h : "");
        free(h);
        snap[k] = take_snapshot(id);
        struct lel_snap_info info;
        CHECK(snap[k] && image_info(snap[k], &info, NULL, 0) == 0);
        printf("link %d: snapshot %s, depth %u, %llu pages\n", k, snap[k], info.depth, (unsigned long long)info.diff_pages);
        /* a diff over the link before; past MAX_DEPTH that one may be flattened already */
        depth[k] = info.depth;
        CHECK(info.diff && (info.depth == (uint32_t)k || (k > MAX_DEPTH + 1 && info.depth == (uint32_t)(k - MAX_DEPTH - 1))));
        /* the same sandbox goes on from the snapshot: the next one is a diff over it */
        char msg[512];
        CHECK_INT(restore_into(id, snap[k], msg, sizeof(msg)), 200);
        char *got = holder_value(id, pid);
        CHECK_STR(got, val[k]);
        free(got);
    }
    /* the links past MAX_DEPTH become full images in the background, of the same content */
    CHECK(depth[MAX_DEPTH + 1] > MAX_DEPTH);
    for (int k = MAX_DEPTH + 1; k <= LINKS; k++) {
        if (depth[k] <= MAX_DEPTH)
            continue;
        struct lel_snap_info info = {0};
        for (int i = 0; i < 300 && (image_info(snap[k], &info, NULL, 0) < 0 || info.diff); i++)
            usleep(100000);
        CHECK(!info.diff && info.depth == 0);
        printf("link %d flattened: %llu bytes\n", k, (unsigned long long)info.stored_bytes);
    }
    /* every link restores with its files (and not the later ones) and its process's value */
    for (int k = 1; k <= LINKS; k++) {
        char *c = from_snapshot(snap[k]);
        if (!c)
            continue;
        for (int j = 1; j <= LINKS; j++) {
            snprintf(cmd, sizeof(cmd), j <= k ? "sha256sum /tmp/link%d" : "[ ! -e /tmp/link%d ] && echo absent", j);
            check_out(c, cmd, j <= k ? file[j] : "absent\n");
        }
        char *got = holder_value(c, pid);
        CHECK_STR(got, val[k]);
        free(got);
        kill_sandbox(c);
        free(c);
    }
    /* the first two links go from the API, their files stay: link 3 is a diff over them */
    delete_snapshot(snap[1]);
    delete_snapshot(snap[2]);
    int n;
    char *listed = listed_snapshots(&n);
    CHECK(!has_word(listed, snap[1]) && !has_word(listed, snap[2]) && has_word(listed, snap[3]));
    free(listed);
    CHECK(image_exists(snap[1]) && image_exists(snap[2]));
    char *c = from_snapshot(snap[3]); /* the dependant still restores, over both */
    if (c) {
        check_out(c, "sha256sum /tmp/link1", file[1]);
        char *got = holder_value(c, pid);
        CHECK_STR(got, val[3]);
        free(got);
    }
    delete_snapshot(snap[3]);
    CHECK(image_exists(snap[1]) && image_exists(snap[3])); /* the sandbox from link 3 holds the chain */
    if (c) {
        kill_sandbox(c);
        free(c);
    }
    /* links 4 and 5 are full now: nothing else held 1..3 */
    CHECK(!image_exists(snap[1]) && !image_exists(snap[2]) && !image_exists(snap[3]));
    CHECK(image_exists(snap[4]));
    delete_snapshot(snap[4]);
    /* link 5 holds it only while it is a diff over it (link 4 was not flattened yet when 5 was taken) */
    CHECK(image_exists(snap[4]) == (depth[5] > 0 && depth[5] <= MAX_DEPTH));
    delete_snapshot(snap[5]);
    CHECK(image_exists(snap[5])); /* `id` was restored from it: its base */
    kill_sandbox(id);
    int imgs, raws;
    char *left = files_ending(".img", &imgs), *lraw = files_ending(".raw", &raws);
    CHECK_INT(imgs, 0);
    CHECK_INT(raws, 0);
    if (imgs || raws)
        fprintf(stderr, "left in snapshots/: images%s raw%s\n", left, lraw);
    free(left);
    free(lraw);
    for (int k = 1; k <= LINKS; k++)
        free(snap[k]);
    free(id);
}

/* Flips one byte at `off` from the end of the file; returns the old byte. */
static int flip_byte(const char *path, off_t from_end)
{
    int fd = open(path, O_RDWR);
    struct stat sb;
    unsigned char b = 0;
    if (fd < 0 || fstat(fd, &sb) < 0 || pread(fd, &b, 1, sb.st_size - from_end) != 1)
        return -1;
    unsigned char x = b ^ 0x5a;
    int ok = pwrite(fd, &x, 1, sb.st_size - from_end) == 1;
    close(fd);
    return ok ? b : -1;
}

static int running_count(void)
{
    resp_t r;
    api(&S, &r, H1, "GET", "/sandboxes", NULL);
    int n = (int)json_array_size(r.json);
    resp_free(&r);
    return n;
}

static int thread_count(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)S.pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* A start (POST /sandboxes) and a restore (into a running sandbox) of `snap` are refused with an
 * error containing `want` and naming `names`; nothing starts, and the running sandbox keeps its
 * state. */
static void refused(const char *snap, const char *keep_id, const char *want, const char *names)
{
    char body[128], msg[1024];
    long status;
    int before = running_count(), threads = thread_count();
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", snap);
    char *id = create_as(body, &status, msg, sizeof(msg));
    CHECK(id == NULL && status >= 500);
    CHECK(strstr(msg, want) != NULL && strstr(msg, names) != NULL);
    if (!strstr(msg, want) || !strstr(msg, names))
        fprintf(stderr, "start of %s: %ld %s (want '%s' naming %s)\n", snap, status, msg, want, names);
    free(id);
    CHECK_INT(restore_into(keep_id, snap, msg, sizeof(msg)), 500);
    CHECK(strstr(msg, want) != NULL && strstr(msg, names) != NULL);
    CHECK_INT(running_count(), before);
    CHECK_INT(thread_count(), threads); /* no VM thread was left behind */
    check_out(keep_id, "cat /tmp/who", "keeper\n");
}

/* A corrupt diff, a missing base, a base replaced by another image: refused. */
static void bad_images(void)
{
    char p1[400], p2[400], saved[420];
    char *a = create("{\"templateID\":\"base\",\"timeout\":600}");
    char *keep = create("{\"templateID\":\"base\",\"timeout\":600}");
    free(run(keep, "echo keeper > /tmp/who"));
    free(run(a, "head -c 2000000 /dev/urandom > /tmp/x"));
    char *c1 = take_snapshot(a);
    CHECK_INT(restore_into(a, c1, NULL, 0), 200);
    free(run(a, "head -c 2000000 /dev/urandom > /tmp/y"));
    char *c2 = take_snapshot(a); /* a diff over c1 */
    char *other = take_snapshot(keep);
    struct lel_snap_info info;
    CHECK(image_info(c2, &info, NULL, 0) == 0 && info.diff && info.depth == 2);
    image_path(c1, p1, sizeof(p1));
    image_path(c2, p2, sizeof(p2));

    int old = flip_byte(p2, 100); /* inside its last memory frame */
    CHECK(old >= 0);
    refused(c2, keep, "checksum", c2);
    int fd = open(p2, O_RDWR);
    unsigned char b = (unsigned char)old;
    struct stat sb;
    CHECK(fd >= 0 && fstat(fd, &sb) == 0 && pwrite(fd, &b, 1, sb.st_size - 100) == 1);
    close(fd);

    snprintf(saved, sizeof(saved), "%s.away", p1);
    CHECK(rename(p1, saved) == 0);
    refused(c2, keep, "is missing", c1);
    char po[400];
    image_path(other, po, sizeof(po));
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "cp %s %s", po, p1); /* another image where the base was */
    CHECK(system(cmd) == 0);
    refused(c2, keep, "not the one it was taken over", c1);
    CHECK(rename(saved, p1) == 0);

    char *ok = from_snapshot(c2); /* the chain whole again: it starts */
    if (ok) {
        check_out(ok, "[ -s /tmp/x ] && [ -s /tmp/y ] && echo both", "both\n");
        kill_sandbox(ok);
        free(ok);
    }
    delete_snapshot(c1);
    delete_snapshot(c2);
    delete_snapshot(other);
    kill_sandbox(a);
    kill_sandbox(keep);
    free(c1);
    free(c2);
    free(other);
    free(a);
    free(keep);
}

/* A sandbox the restart marks killed (its VM died with the daemon) no longer holds the snapshot
 * it started from: deleting the snapshot then removes its files. */
static void killed_at_restart(void)
{
    char *a = create("{\"templateID\":\"base\",\"timeout\":600}");
    char *snap = take_snapshot(a);
    char *b = from_snapshot(snap);
    kill_sandbox(a);
    srv_kill9(&S);
    CHECK(srv_restart(&S) == 0);
    char stb[32];
    CHECK_STR(state_of(b, stb, sizeof(stb)), "killed");
    CHECK(image_exists(snap));
    delete_snapshot(snap);
    CHECK(!image_exists(snap));
    free(a);
    free(b);
    free(snap);
}

/* ---- kill -9 during snapshots ---- */

#define MAXACK 256

struct loader {
    const char *id;
    char acked[MAXACK][40];
    int mark[MAXACK];
    int nacked;
    int next_mark;
};

/* Snapshots of l->id, each after writing its number into /tmp/mark, until the daemon is gone. */
static void *snapshot_loop(void *arg)
{
    struct loader *l = arg;
    char path[96], cmd[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", l->id);
    while (l->nacked < MAXACK) {
        resp_t r;
        snprintf(cmd, sizeof(cmd), "{\"cmd\":\"echo %d > /tmp/mark\"}", l->next_mark);
        char p2[96];
        snprintf(p2, sizeof(p2), "/sandboxes/%s/commands", l->id);
        if (api(&S, &r, H1, "POST", p2, cmd) < 0 || r.status != 200) {
            resp_free(&r);
            break;
        }
        resp_free(&r);
        if (api(&S, &r, H1, "POST", path, "{}") < 0) {
            resp_free(&r);
            break;
        }
        if (r.status == 201) {
            snprintf(l->acked[l->nacked], sizeof(l->acked[0]), "%s", jstr(&r, "snapshotID"));
            l->mark[l->nacked++] = l->next_mark;
        }
        resp_free(&r);
        l->next_mark++;
    }
    return NULL;
}

/* After a restart: every image in snapshots/ is a listed snapshot (or the paused sandbox's), no
 * raw file lacks its image, no temporary file is left. */
static void no_orphans(const char *paused)
{
    int nimg, nraw, ntmp, nlisted;
    char *imgs = files_ending(".img", &nimg), *raws = files_ending(".raw", &nraw), *tmps = files_ending(".tmp", &ntmp);
    char *listed = listed_snapshots(&nlisted), pname[64];
    snprintf(pname, sizeof(pname), "%s.paused", paused);
    CHECK_INT(ntmp, 0);
    CHECK(has_word(imgs, pname));
    CHECK_INT(nimg, nlisted + 1);
    for (char *w = strtok(listed, " "); w; w = strtok(NULL, " "))
        CHECK(has_word(imgs, w));
    for (char *w = strtok(raws, " "); w; w = strtok(NULL, " "))
        CHECK(has_word(imgs, w));
    if (nimg != nlisted + 1)
        fprintf(stderr, "images:%s\n", imgs);
    free(imgs);
    free(raws);
    free(tmps);
    free(listed);
}

static void kill9_during_snapshots(void)
{
    char *paused = create("{\"templateID\":\"base\",\"timeout\":600}"), path[128], stb[32];
    free(run(paused, "echo still here > /tmp/p"));
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", paused);
    CHECK_INT(st("POST", path, NULL), 204);
    char *id = create("{\"templateID\":\"base\",\"timeout\":600}");
    static struct loader l;
    char last[40] = "";
    int last_mark = -1;
    unsigned seed = (unsigned)time(NULL);
    printf("kill -9 rounds, seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < 6 && id; round++) {
        memset(&l, 0, sizeof(l));
        l.id = id;
        l.next_mark = round * 1000;
        pthread_t th;
        pthread_create(&th, NULL, snapshot_loop, &l);
        usleep(300000 + (useconds_t)(rand() % 700) * 1000);
        srv_kill9(&S);
        pthread_join(th, NULL);
        CHECK(srv_restart(&S) == 0);
        printf("round %d: %d snapshot(s) acknowledged before the kill\n", round, l.nacked);
        CHECK_STR(state_of(id, stb, sizeof(stb)), "killed"); /* its VM went with the daemon */
        no_orphans(paused);
        if (l.nacked) {
            snprintf(last, sizeof(last), "%s", l.acked[l.nacked - 1]);
            last_mark = l.mark[l.nacked - 1];
        }
        /* an earlier acknowledged one and the last restore with their state */
        for (int k = l.nacked > 1 ? 0 : 1; k < 2 && last[0]; k++) {
            int i = k == 0 ? rand() % (l.nacked - 1) : 0;
            const char *s = k == 0 ? l.acked[i] : last;
            int m = k == 0 ? l.mark[i] : last_mark;
            char *c = from_snapshot(s), want[32];
            if (!c)
                continue;
            char *out = run(c, "cat /tmp/mark");
            snprintf(want, sizeof(want), "%d\n", m);
            CHECK_STR(out, want);
            free(out);
            kill_sandbox(c);
            free(c);
        }
        free(id); /* the next round's sandbox goes on from the last snapshot: diffs of diffs */
        id = last[0] ? from_snapshot(last) : create("{\"templateID\":\"base\",\"timeout\":600}");
    }
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", paused);
    CHECK_INT(st("POST", path, NULL), 201);
    check_out(paused, "cat /tmp/p", "still here\n");
    kill_sandbox(paused);
    if (id)
        kill_sandbox(id);
    int n;
    char *listed = listed_snapshots(&n);
    for (char *w = strtok(listed, " "); w; w = strtok(NULL, " "))
        delete_snapshot(w);
    free(listed);
    int nimg, nraw;
    char *imgs = files_ending(".img", &nimg), *raws = files_ending(".raw", &nraw);
    CHECK_INT(nimg, 0);
    CHECK_INT(nraw, 0);
    if (nimg || nraw)
        fprintf(stderr, "left:%s /%s\n", imgs, raws);
    free(imgs);
    free(raws);
    free(paused);
    free(id);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\nteams:\n  max_sandboxes: 100\n"
             "snapshots:\n  max_chain_depth: %d\nshutdown_pause_grace_ms: 6000\n",
             MAX_DEPTH);
    if (srv_start(&S, cfg) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    const char *bst = ""; /* the built-in template is built at first start */
    for (int i = 0; i < 1200 && strcmp(bst, "ready"); i++) {
        resp_t r;
        api(&S, &r, H1, "GET", "/templates/base", NULL);
        bst = !strcmp(jstr(&r, "buildStatus"), "ready") ? "ready" : "";
        resp_free(&r);
        if (!*bst)
            usleep(100000);
    }
    CHECK_STR(bst, "ready");
    srand((unsigned)time(NULL));
    pause_resume();
    chains();
    bad_images();
    killed_at_restart();
    kill9_during_snapshots();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
