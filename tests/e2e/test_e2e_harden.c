/* The daemon hardened, end to end with real microVMs (issue 22 §2, §3):
 * - jail: a sandbox whose vCPU thread makes a forbidden call (the test-only hook
 *   vmm.test_seccomp_violation) is killed with the call's name in its logs, and the daemon goes
 *   on serving and creating sandboxes;
 * - net jail: with network.test_seccomp_violation the net loop makes a forbidden call when a
 *   sandbox connects out; that sandbox is killed with the call's name in its logs, another
 *   sandbox goes on running commands, the daemon goes on serving; its threads are named, the
 *   loop threads at nice 0 with a short scheduler slice, workers, vCPUs, filler and reaper niced;
 * - unprivileged: lelantosd runs as uid/gid 65534 with only a copy of /dev/kvm its extra group
 *   can open (bind-mounted over /dev/kvm in this test's own mount namespace), creates, runs,
 *   pauses, resumes and snapshots; the data dir is 0700, keys and images 0600;
 * - disk full: the data dir on a small tmpfs; filled, storing requests answer 507 in API.md's
 *   error format and nothing stored is damaged; a snapshot that meets ENOSPC mid-write answers
 *   507 and leaves no file; once space returns everything works again, across a restart; with
 *   the reserve off and the disk filled to 1-2 MiB free, a store write is refused (the store's
 *   own floor, 4 MiB: RocksDB must never meet ENOSPC, its WAL writer aborts the process after one): 507
 *   saying so, the daemon alive, the refused change not stored, writes again once space returns,
 *   across a restart.
 * The parts that need a mount namespace say "skipped" with the reason where one cannot be made.
 * Skipped (77) without /dev/kvm. */
#include "../../src/common/lel_util.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define VM_CFG "rate_limits:\n  general_per_s: 100000\ntemplates:\n  warm_pool: 1\nvmm:\n  backend: auto\n"

static srv_t S;

static long call(const char *method, const char *path, const char *body, resp_t *out)
{
    resp_t r;
    if (api(&S, &r, H1, method, path, body) < 0)
        return -1;
    long st = r.status;
    if (out)
        *out = r;
    else
        resp_free(&r);
    return st;
}

static char *create(void)
{
    resp_t r;
    long st = call("POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":600}", &r);
    CHECK_INT(st, 201);
    char *id = st == 201 ? strdup(jstr(&r, "sandboxID")) : NULL;
    if (st != 201)
        fprintf(stderr, "create: %ld %s\n", st, r.body ? r.body : "");
    resp_free(&r);
    return id;
}

/* A command's stdout (static buffer), or NULL when it did not answer 200. */
static const char *run(const char *id, const char *cmd)
{
    static char out[4096];
    char path[96], body[1024];
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    snprintf(body, sizeof(body), "{\"cmd\":\"%s\"}", cmd);
    long st = call("POST", path, body, &r);
    const char *o = st == 200 ? jstr(&r, "stdout") : NULL;
    if (o)
        snprintf(out, sizeof(out), "%s", o);
    else
        fprintf(stderr, "command '%s': %ld %s\n", cmd, st, r.body ? r.body : "");
    resp_free(&r);
    return o ? out : NULL;
}

static const char *state_of(const char *id)
{
    static char st[32];
    char path[96];
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    st[0] = 0;
    if (call("GET", path, NULL, &r) == 200)
        snprintf(st, sizeof(st), "%s", jstr(&r, "state"));
    resp_free(&r);
    return st;
}

static int logs_contain(const char *id, const char *needle)
{
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/logs", id);
    for (int i = 0; i < 50; i++) {
        resp_t r;
        int found = call("GET", path, NULL, &r) == 200 && r.body && strstr(r.body, needle);
        resp_free(&r);
        if (found)
            return 1;
        usleep(100000);
    }
    return 0;
}

/* ---- the jail ---- */

static void jail(void)
{
    if (srv_start(&S, VM_CFG "  test_seccomp_violation: true\n") < 0) {
        CHECK(!"cannot start lelantosd");
        return;
    }
    char *id = create();
    if (id) {
        const char *out = run(id, "echo hi"); /* its end's doorbell makes the vCPU thread call socket() */
        printf("jail: command -> %s\n", out ? out : "(failed)");
        int killed = 0;
        for (int i = 0; i < 50 && !(killed = !strcmp(state_of(id), "killed")); i++)
            usleep(100000);
        printf("jail: state %s\n", state_of(id));
        CHECK(killed);
        if (!logs_contain(id, "forbidden system call: socket")) {
            resp_t r;
            char path[96];
            snprintf(path, sizeof(path), "/sandboxes/%s/logs", id);
            call("GET", path, NULL, &r);
            fprintf(stderr, "logs: %s\n", r.body ? r.body : "");
            resp_free(&r);
            CHECK(!"the logs name the forbidden call");
        }
        CHECK_INT(call("GET", "/health", NULL, NULL), 200); /* the daemon goes on */
        char *id2 = create();
        CHECK(id2 != NULL);
        free(id2);
    }
    free(id);
    CHECK_INT(srv_stop(&S), 0);
    if (lel_test_failed)
        srv_log_tail(&S);
    srv_cleanup(&S);
}

/* ---- the daemon's threads ---- */

/* Each thread of `pid` named `name`: how many, and whether all have nice `nice` and (where the
 * kernel keeps a requested slice: sched_getattr's runtime) slice `slice_ns` (0: the default). */
static int threads_named(pid_t pid, const char *name, int nice, unsigned long long slice_ns, int *bad)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[400], comm[32] = "", st[1024] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(p, "r");
        if (f && fgets(comm, sizeof(comm), f))
            comm[strcspn(comm, "\n")] = 0;
        if (f)
            fclose(f);
        if (strcmp(comm, name))
            continue;
        n++;
        snprintf(p, sizeof(p), "%s/%s/stat", dir, e->d_name);
        if ((f = fopen(p, "r"))) {
            if (!fgets(st, sizeof(st), f))
                st[0] = 0;
            fclose(f);
        }
        /* field 19 is nice; count from after the ")" that ends comm */
        const char *q = strrchr(st, ')');
        int field = 2, got = 99;
        for (; q && *q; q++)
            if (*q == ' ' && ++field == 19) {
                got = atoi(q + 1);
                break;
            }
        struct {
            uint32_t size, policy;
            uint64_t flags;
            int32_t nice;
            uint32_t priority;
            uint64_t runtime, deadline, period;
        } a = {0};
        long r = syscall(SYS_sched_getattr, atoi(e->d_name), &a, sizeof(a), 0);
        if (got != nice || (r == 0 && slice_ns && a.runtime != slice_ns)) {
            fprintf(stderr, "thread %s (%s): nice %d (want %d), slice %llu ns (want %llu)\n", e->d_name, name, got, nice,
                    (unsigned long long)a.runtime, slice_ns);
            (*bad)++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* The loop threads answer fast reads ahead of the guests: named, nice 0 with a short slice;
 * the workers, vCPU threads, the warm pool's filler and the reaper at nice +5. */
static void thread_setup(pid_t pid)
{
    int bad = 0;
    CHECK(threads_named(pid, "lel-http", 0, LEL_INTERACTIVE_SLICE_NS, &bad) >= 1);
    CHECK(threads_named(pid, "lel-worker", LEL_BACKGROUND_NICE, 0, &bad) >= 1);
    CHECK(threads_named(pid, "lel-vcpu", LEL_BACKGROUND_NICE, 0, &bad) >= 1);
    CHECK_INT(threads_named(pid, "lel-warm", LEL_BACKGROUND_NICE, 0, &bad), 1);
    CHECK_INT(threads_named(pid, "lel-reaper", LEL_BACKGROUND_NICE, 0, &bad), 1);
    CHECK_INT(threads_named(pid, "lel-net", 0, 0, &bad), 1);
    CHECK_INT(threads_named(pid, "lel-resolve", 0, 0, &bad), 1);
    CHECK_INT(bad, 0);
}

/* The net loop's own filter: a connect out makes it call open() (the test hook), which its
 * filter traps; only the sandbox it was serving dies. */
static void net_jail(void)
{
    if (srv_start(&S, VM_CFG "network:\n  host_gateway: 10.0.2.2\n  test_seccomp_violation: true\n") < 0) {
        CHECK(!"cannot start lelantosd");
        return;
    }
    char *id = create(), *other = create();
    if (id && other) {
        const char *o = run(other, "echo before");
        CHECK(o && !strcmp(o, "before\n"));
        o = run(id, "wget -q -O - http://10.0.2.2:9/ 2>&1; echo done");
        printf("net jail: command -> %s\n", o ? o : "(failed)");
        int killed = 0;
        for (int i = 0; i < 50 && !(killed = !strcmp(state_of(id), "killed")); i++)
            usleep(100000);
        printf("net jail: state %s\n", state_of(id));
        CHECK(killed);
        CHECK(logs_contain(id, "the net thread made a forbidden system call: open"));
        CHECK_INT(call("GET", "/health", NULL, NULL), 200);
        o = run(other, "echo after");
        CHECK(o && !strcmp(o, "after\n")); /* the loop goes on serving the others */
        CHECK_STR(state_of(other), "running");
        thread_setup(S.pid);
    }
    free(id);
    free(other);
    CHECK_INT(srv_stop(&S), 0);
    if (lel_test_failed)
        srv_log_tail(&S);
    srv_cleanup(&S);
}

/* ---- unprivileged ---- */

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : (int)(st.st_mode & 07777);
}

/* Every regular file in dir whose name ends in `suffix` has mode 0600 and owner uid; returns how many. */
static int check_files(const char *dir, const char *suffix, uid_t uid)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l < sl || strcmp(e->d_name + l - sl, suffix))
            continue;
        char p[600];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            if ((st.st_mode & 0777) != 0600 || st.st_uid != uid)
                fprintf(stderr, "%s: mode %o owner %u\n", p, st.st_mode & 0777, st.st_uid);
            CHECK_INT(st.st_mode & 0777, 0600);
            CHECK_INT((long)st.st_uid, (long)uid);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

static long proc_uid(pid_t pid)
{
    char path[64], line[256];
    long uid = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Uid:", 4))
            uid = strtol(line + 4, NULL, 10);
    if (f)
        fclose(f);
    return uid;
}

/* A device node for /dev/kvm that group `gid` may open, bind-mounted over /dev/kvm in this
 * process's mount namespace (its children's too): the real node stays root's 0600. */
static int kvm_for_group(const char *dir, gid_t gid, char *why, size_t n)
{
    struct stat st;
    char node[300];
    snprintf(node, sizeof(node), "%s/kvm", dir);
    if (stat("/dev/kvm", &st) < 0 || mknod(node, S_IFCHR | 0660, st.st_rdev) < 0 || chown(node, 0, gid) < 0 ||
        chmod(node, 0660) < 0 || mount(node, "/dev/kvm", NULL, MS_BIND, NULL) < 0) {
        snprintf(why, n, "cannot give group %u a /dev/kvm of its own: %s", gid, strerror(errno));
        return -1;
    }
    return 0;
}

static void unprivileged(const char *bin, int have_ns)
{
    const uid_t uid = 65534;
    const gid_t gid = 65534, kvm_gid = 65533; /* nobody, nogroup, a stand-in for group kvm */
    char why[300], wrapper[300], dir[] = "/tmp/lel-unpriv-XXXXXX";
    if (!have_ns || !mkdtemp(dir) || kvm_for_group(dir, kvm_gid, why, sizeof(why)) < 0) {
        printf("unprivileged: skipped: %s\n", have_ns ? why : "no mount namespace of our own");
        return;
    }
    /* the daemon as that user: no capabilities, no new privileges, the kvm group alone */
    snprintf(wrapper, sizeof(wrapper), "%s/lelantosd", dir);
    FILE *f = fopen(wrapper, "w");
    fprintf(f, "#!/bin/sh\nd=\"$(dirname \"$6\")\"\nchown -R %u:%u \"$d\"\n"
               "exec setpriv --reuid=%u --regid=%u --groups=%u --inh-caps=-all --bounding-set=-all --no-new-privs '%s' \"$@\"\n",
            uid, gid, uid, gid, kvm_gid, bin);
    fclose(f);
    chmod(wrapper, 0755);
    chmod(dir, 0755);
    setenv("LELANTOSD", wrapper, 1);
    int r = srv_start(&S, VM_CFG);
    unsetenv("LELANTOSD");
    CHECK_INT(r, 0);
    if (r == 0) {
        printf("unprivileged: lelantosd runs as uid %ld\n", proc_uid(S.pid));
        CHECK_INT(proc_uid(S.pid), (long)uid);
        char *id = create();
        const char *out = id ? run(id, "echo unprivileged") : NULL;
        CHECK(out && !strcmp(out, "unprivileged\n"));
        char path[96];
        snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id ? id : "x");
        CHECK_INT(call("POST", path, "{}", NULL), 201);
        snprintf(path, sizeof(path), "/sandboxes/%s/pause", id ? id : "x");
        CHECK_INT(call("POST", path, NULL, NULL), 204);
        char data[300], p[400];
        snprintf(data, sizeof(data), "%s/data", S.dir);
        CHECK_INT(mode_of(data), 0700);
        snprintf(p, sizeof(p), "%s/initial-api-key", data);
        CHECK_INT(mode_of(p), 0600);
        snprintf(p, sizeof(p), "%s/snapshots", data);
        int snaps = check_files(p, ".img", uid);
        snprintf(p, sizeof(p), "%s/templates", data);
        int tpls = check_files(p, ".img", uid) + check_files(p, ".raw", uid);
        printf("unprivileged: %d snapshot/pause images, %d template files, all 0600\n", snaps, tpls);
        CHECK(snaps >= 2); /* the snapshot and the pause image */
        CHECK(tpls >= 1);
        snprintf(path, sizeof(path), "/sandboxes/%s/resume", id ? id : "x");
        CHECK_INT(call("POST", path, "{}", NULL), 201);
        out = id ? run(id, "echo again") : NULL;
        CHECK(out && !strcmp(out, "again\n"));
        free(id);
        CHECK_INT(srv_stop(&S), 0);
        if (lel_test_failed)
            srv_log_tail(&S);
    }
    srv_cleanup(&S);
    umount("/dev/kvm");
    snprintf(why, sizeof(why), "rm -rf '%s'", dir);
    if (system(why) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- disk full ---- */

/* Fills the filesystem of `dir` with `file` until `leave` bytes are free (about). */
static void fill(const char *file, uint64_t leave)
{
    static char chunk[1 << 20];
    memset(chunk, 0x5a, sizeof(chunk));
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0600);
    struct statvfs v;
    while (fd >= 0 && statvfs(file, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize > leave + sizeof(chunk))
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            break;
    if (fd >= 0)
        close(fd);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether GET /api-keys lists a key named `name`. */
static int key_listed(const char *name)
{
    resp_t r = {0};
    int found = 0;
    if (call("GET", "/api-keys", NULL, &r) == 200 && json_is_array(r.json))
        for (size_t i = 0; i < json_array_size(r.json); i++)
            found |= !strcmp(json_string_value(json_object_get(json_array_get(r.json, i), "name")) ?: "", name);
    resp_free(&r);
    return found;
}

/* The reserve off (storage.min_free_bytes: 0), the disk then filled under the store's floor: the
 * store refuses writes. (Filled to the last page, the daemon's own background writes can still
 * race the filler past the floor's check into RocksDB's ENOSPC: not provoked here.) The data dir
 * is left with less than RocksDB preallocates for a new WAL (~70 MB) before the restart, so its
 * WAL grows page by page, as it would into a full disk. */
static void store_full(const char *filler)
{
    char cfg[300], name[64];
    CHECK_INT(srv_stop(&S), 0);
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", S.dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "http:\n  threads: 2\nworkers: 4\nrate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n"
               "templates:\n  warm_pool: 1\nvmm:\n  backend: auto\nstorage:\n  min_free_bytes: 0\n");
    fclose(f);
    fill(filler, 24 << 20);
    CHECK_INT(srv_restart(&S), 0);
    fill(filler, 1 << 20);
    resp_t r;
    long st = 0;
    char body[96];
    int n = 0;
    for (; n < 2000; n++) { /* the first one already: nothing is free */
        snprintf(name, sizeof(name), "nospace-%d", n);
        snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
        memset(&r, 0, sizeof(r));
        st = call("POST", "/api-keys", body, &r);
        if (st != 201)
            break;
        resp_free(&r);
    }
    printf("store full: %d keys stored, then POST /api-keys -> %ld %s\n", n, st, r.body ? r.body : "");
    CHECK_INT(st, 507);
    CHECK_INT(json_integer_value(json_object_get(r.json, "code")), 507);
    CHECK(strstr(jstr(&r, "message"), "full") != NULL);
    resp_free(&r);
    CHECK_INT(call("GET", "/sandboxes", NULL, NULL), 200); /* reads go on */
    CHECK(!key_listed(name));                              /* the refused key is not stored */
    CHECK(n == 0 || key_listed("nospace-0"));              /* those acknowledged are */

    /* space returns: writes go in again */
    unlink(filler);
    int64_t t0 = now_ms();
    do {
        st = call("POST", "/api-keys", "{\"name\":\"after-full\"}", NULL);
        if (st != 201)
            usleep(200000);
    } while (st != 201 && now_ms() - t0 < 60000);
    printf("store full: writes again %lld ms after space returned (%ld)\n", (long long)(now_ms() - t0), st);
    CHECK_INT(st, 201);
    CHECK_INT(srv_stop(&S), 0);
    CHECK_INT(srv_restart(&S), 0);
    CHECK(key_listed("after-full"));
    CHECK(!key_listed(name));
}

static int count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        n += l >= sl && !strcmp(e->d_name + l - sl, suffix);
    }
    if (d)
        closedir(d);
    return n;
}

static void check_507(long st, resp_t *r, const char *what)
{
    printf("disk full: %s -> %ld %s\n", what, st, r->body ? r->body : "");
    CHECK_INT(st, 507);
    CHECK_INT(json_integer_value(json_object_get(r->json, "code")), 507);
    CHECK(strstr(jstr(r, "message"), "storage") || strstr(jstr(r, "message"), "full"));
    CHECK(*jstr(r, "error"));
    resp_free(r);
}

static void disk_full(int have_ns)
{
    char fs[200], data[200], moved[256], filler[300], snapdir[300], cmd[1400];
    if (!have_ns) {
        printf("disk full: skipped: no mount namespace of our own\n");
        return;
    }
    if (srv_start(&S, VM_CFG "storage:\n  min_free_bytes: 16777216\n") < 0) { /* builds base, then moves */
        CHECK(!"cannot start lelantosd");
        return;
    }
    CHECK_INT(srv_stop(&S), 0);
    snprintf(fs, sizeof(fs), "%s/fs", S.dir);
    snprintf(data, sizeof(data), "%s/data", S.dir);
    mkdir(fs, 0700);
    if (mount("tmpfs", fs, "tmpfs", 0, "size=320m,mode=0700") < 0) {
        printf("disk full: skipped: cannot mount a tmpfs: %s\n", strerror(errno));
        srv_cleanup(&S);
        return;
    }
    snprintf(moved, sizeof(moved), "%s/data", fs);
    snprintf(cmd, sizeof(cmd), "cp -a --sparse=always '%s' '%s' && rm -rf '%s' && ln -s fs/data '%s'", data, fs, data, data);
    CHECK_INT(system(cmd), 0);
    snprintf(filler, sizeof(filler), "%s/filler", fs);
    snprintf(snapdir, sizeof(snapdir), "%s/snapshots", moved);
    CHECK_INT(srv_restart(&S), 0);

    /* what is stored before the disk fills */
    char *id = create(), path[128], snap[64] = "", key[128] = "";
    resp_t r;
    CHECK(id && run(id, "echo kept > /tmp/kept && head -c 30000000 /dev/urandom > /tmp/big && echo ok"));
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id ? id : "x");
    long st = call("POST", path, "{}", &r);
    CHECK_INT(st, 201);
    snprintf(snap, sizeof(snap), "%s", jstr(&r, "snapshotID"));
    resp_free(&r);
    CHECK_INT(call("POST", "/api-keys", "{\"name\":\"before\"}", &r), 201);
    snprintf(key, sizeof(key), "%s", jstr(&r, "key"));
    resp_free(&r);
    int snaps_before = count_suffix(snapdir, ".img");

    /* under the reserve: storing requests answer 507 before writing anything */
    fill(filler, 8 << 20); /* under the 16 MiB reserve */
    check_507(call("POST", "/sandboxes", "{\"templateID\":\"base\"}", &r), &r, "create");
    check_507(call("POST", "/api-keys", "{\"name\":\"full\"}", &r), &r, "api key");
    check_507(call("POST", path, "{}", &r), &r, "snapshot");
    char pause[128];
    snprintf(pause, sizeof(pause), "/sandboxes/%s/pause", id ? id : "x");
    check_507(call("POST", pause, NULL, &r), &r, "pause");
    /* reads, commands and deletes go on */
    CHECK_INT(call("GET", "/sandboxes", NULL, NULL), 200);
    const char *out = id ? run(id, "cat /tmp/kept") : NULL;
    CHECK(out && !strcmp(out, "kept\n"));

    /* above the reserve but short of what the image needs: the write meets ENOSPC */
    unlink(filler);
    fill(filler, (16 << 20) + (4 << 20)); /* the image needs ~30 MB */
    st = call("POST", path, "{}", &r);
    printf("disk full: snapshot meeting ENOSPC -> %ld %s\n", st, r.body ? r.body : "");
    CHECK_INT(st, 507);
    CHECK(strstr(jstr(&r, "message"), "full") != NULL);
    resp_free(&r);
    CHECK_INT(count_suffix(snapdir, ".img"), snaps_before); /* nothing half-written stays */
    CHECK_INT(count_suffix(snapdir, ".tmp"), 0);
    out = id ? run(id, "cat /tmp/kept") : NULL; /* the sandbox runs on */
    CHECK(out && !strcmp(out, "kept\n"));

    /* space returns: everything works again, and what was stored is intact */
    unlink(filler);
    CHECK_INT(call("POST", path, "{}", NULL), 201);
    char body[160];
    snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\",\"timeout\":600}", snap);
    CHECK_INT(call("POST", "/sandboxes", body, &r), 201);
    char restored[64];
    snprintf(restored, sizeof(restored), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    out = run(restored, "cat /tmp/kept");
    CHECK(out && !strcmp(out, "kept\n"));
    CHECK_INT(call("POST", pause, NULL, NULL), 204);
    CHECK_INT(srv_stop(&S), 0);
    CHECK_INT(srv_restart(&S), 0);
    resp_t k;
    CHECK_INT(api_key(&S, &k, H1, key, "GET", "/sandboxes", NULL) == 0 ? k.status : -1, 200);
    resp_free(&k);
    snprintf(cmd, sizeof(cmd), "/sandboxes/%s/resume", id ? id : "x");
    CHECK_INT(call("POST", cmd, "{}", NULL), 201);
    out = id ? run(id, "cat /tmp/kept") : NULL;
    CHECK(out && !strcmp(out, "kept\n"));
    store_full(filler);
    free(id);
    CHECK_INT(srv_stop(&S), 0);
    if (lel_test_failed)
        srv_log_tail(&S);
    umount(fs);
    srv_cleanup(&S);
}

int main(void)
{
    char why[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    const char *bin = getenv("LELANTOSD") ? getenv("LELANTOSD") : LELANTOSD_PATH;
    /* mounts below (a tmpfs, a /dev/kvm for a group) stay in a namespace of this test's own */
    int have_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
    jail();
    net_jail();
    unprivileged(bin, have_ns);
    disk_full(have_ns);
    return lel_test_finish();
}
