/* Crash loop (issue 22 §3): lelantosd is killed with SIGKILL at random moments of a mixed load
 * and restarted, LEL_CRASH_KILLS times (5 here; tests/crashloop.sh runs 20). Client threads
 * create, pause (after writing a file into the sandbox), resume (reading that file back),
 * snapshot, delete sandboxes, build templates, create and delete API keys, invite and remove
 * members, upload images, and log every change the daemon acknowledged. After each restart:
 * - it serves (GET /health) within 1 s of being started;
 * - every acknowledged change is there: sandboxes paused are paused (those running at the kill
 *   are killed), deleted ones are gone, snapshots listed, templates known, keys created work
 *   and keys deleted do not, members listed and removed ones not, images uploaded found; a resume gets the file written before the pause;
 * - no orphaned or half-written image is left: every file under snapshots/ and templates/
 *   belongs to a record (a snapshot, a paused sandbox, a template), none is a temporary file.
 * A request in flight at the kill has no known outcome: its subject is left out of the checks.
 * At the end every paused sandbox is resumed and its file read, and a snapshot restored.
 * Prints kills, acknowledged changes, checks and lost (must be 0). Skipped (77) without KVM. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"
#include "tarbuild.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum kind { SBX, SNAP, TPL, KEY, MEMBER, IMAGE };
enum sstate { RUNNING, PAUSED, KILLED, DELETED };

struct rec {
    enum kind kind;
    char id[64], key[96];   /* key: an API key's secret */
    enum sstate st;         /* SBX */
    int deleted;            /* KEY, MEMBER */
    int uncertain;          /* a request about it was in flight at a kill */
    unsigned file_seq;      /* SBX: the content of /tmp/f written before its last acknowledged pause */
    int owner;
};

#define MAX_ENTS 4096
static struct {
    pthread_mutex_t lock;
    struct rec e[MAX_ENTS];
    int n;
    long acked, checks, lost;
    int down, hold, stop; /* down: killed, not yet serving; hold: the clients wait (checks run) */
    int busy; /* threads inside a request */
    pthread_cond_t cond;
} L = {PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static srv_t S;
static __thread int checker; /* the main thread: its requests pass a hold */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void lost(const char *what, const char *id, const char *detail)
{
    pthread_mutex_lock(&L.lock);
    L.lost++;
    pthread_mutex_unlock(&L.lock);
    fprintf(stderr, "LOST: %s %s: %s\n", what, id, detail);
}

/* One request while the daemon is up; -1 when it went down meanwhile (the outcome is unknown).
 * With `raw`, the body is `len` bytes of octets (an upload). */
static long req_any(const char *key, const char *method, const char *path, const char *body, size_t len, int raw,
                    resp_t *out)
{
    pthread_mutex_lock(&L.lock);
    while ((L.down || (L.hold && !checker)) && !L.stop)
        pthread_cond_wait(&L.cond, &L.lock);
    L.busy++;
    pthread_mutex_unlock(&L.lock);
    resp_t r;
    char kh[128];
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, "Content-Type: application/octet-stream", NULL};
    int rc = raw ? http_req(&S, &r, H1, method, path, body, len, hdrs)
             : key ? api_key(&S, &r, H1, key, method, path, body)
                   : api(&S, &r, H1, method, path, body);
    long st = rc < 0 ? -1 : r.status;
    pthread_mutex_lock(&L.lock);
    L.busy--;
    if (L.down) /* the kill came while it was on its way: whatever it says, it may not have been applied */
        st = st > 0 && st < 300 ? -1 : st;
    pthread_cond_broadcast(&L.cond);
    pthread_mutex_unlock(&L.lock);
    if (out && rc == 0)
        *out = r;
    else if (rc == 0)
        resp_free(&r);
    else if (out)
        memset(out, 0, sizeof(*out));
    return st;
}

static long req(const char *key, const char *method, const char *path, const char *body, resp_t *out)
{
    return req_any(key, method, path, body, 0, 0, out);
}

static struct rec *add(enum kind k, const char *id, int owner)
{
    pthread_mutex_lock(&L.lock);
    struct rec *e = L.n < MAX_ENTS ? &L.e[L.n++] : NULL;
    if (e) {
        memset(e, 0, sizeof(*e));
        e->kind = k;
        e->owner = owner;
        snprintf(e->id, sizeof(e->id), "%s", id);
        L.acked++;
    }
    pthread_mutex_unlock(&L.lock);
    return e;
}

static void acked(void)
{
    pthread_mutex_lock(&L.lock);
    L.acked++;
    pthread_mutex_unlock(&L.lock);
}

/* A sandbox of this thread's in state `st`, chosen at random; NULL if none. */
static struct rec *pick(int owner, enum kind k, int st)
{
    struct rec *c[64];
    int n = 0;
    pthread_mutex_lock(&L.lock);
    for (int i = L.n - 1; i >= 0 && n < 64; i--) {
        struct rec *e = &L.e[i];
        if (e->owner == owner && e->kind == k && !e->uncertain && (k != SBX || (int)e->st == st) && !e->deleted)
            c[n++] = e;
    }
    pthread_mutex_unlock(&L.lock);
    return n ? c[rand() % n] : NULL;
}

static void op_create(int me)
{
    resp_t r;
    if (req(NULL, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":3600}", &r) == 201)
        add(SBX, jstr(&r, "sandboxID"), me)->st = RUNNING;
    resp_free(&r);
}

static void op_pause(int me, unsigned seq)
{
    struct rec *e = pick(me, SBX, RUNNING);
    if (!e)
        return op_create(me);
    char path[160], body[32];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/f", e->id);
    snprintf(body, sizeof(body), "v%u", seq);
    resp_t r;
    long st = req(NULL, "PUT", path, body, NULL);
    if (st < 0 || (st != 204 && st != 200)) {
        e->uncertain |= st < 0;
        if (st == 404 || st == 409) /* killed at a restart meanwhile */
            e->st = KILLED;
        return;
    }
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", e->id);
    st = req(NULL, "POST", path, NULL, &r);
    resp_free(&r);
    if (st == 204) {
        e->st = PAUSED;
        e->file_seq = seq;
        acked();
    } else if (st < 0) {
        e->uncertain = 1;
    }
}

static void op_resume(int me)
{
    struct rec *e = pick(me, SBX, PAUSED);
    if (!e)
        return;
    char path[160], want[32];
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", e->id);
    long st = req(NULL, "POST", path, "{\"timeout\":3600}", NULL);
    if (st < 0) {
        e->uncertain = 1;
        return;
    }
    if (st != 201) {
        char d[64];
        snprintf(d, sizeof(d), "resume answered %ld", st);
        lost("paused sandbox", e->id, d);
        e->uncertain = 1;
        return;
    }
    e->st = RUNNING;
    acked();
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/f", e->id);
    snprintf(want, sizeof(want), "v%u", e->file_seq);
    resp_t r;
    st = req(NULL, "GET", path, NULL, &r);
    pthread_mutex_lock(&L.lock);
    L.checks++;
    pthread_mutex_unlock(&L.lock);
    if (st == 200 && (r.len != strlen(want) || memcmp(r.body, want, r.len)))
        lost("file in a paused sandbox", e->id, want);
    else if (st > 0 && st != 200 && st != 404 && st != 409) /* 404/409: a kill came between */
        lost("file in a paused sandbox", e->id, "unreadable");
    e->uncertain |= st < 0;
    resp_free(&r);
}

static void op_snapshot(int me)
{
    struct rec *e = pick(me, SBX, RUNNING);
    if (!e)
        return;
    char path[128];
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", e->id);
    long st = req(NULL, "POST", path, "{}", &r);
    if (st == 201)
        add(SNAP, jstr(&r, "snapshotID"), me);
    e->uncertain |= st < 0;
    resp_free(&r);
}

static void op_delete(int me)
{
    struct rec *e = pick(me, SBX, rand() % 2 ? RUNNING : PAUSED);
    if (!e)
        return;
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s", e->id);
    long st = req(NULL, "DELETE", path, NULL, NULL);
    if (st == 204) {
        e->st = DELETED;
        acked();
    }
    e->uncertain |= st < 0;
}

static void op_template(int me, unsigned seq)
{
    char body[256];
    resp_t r;
    snprintf(body, sizeof(body), "{\"name\":\"crash%d-%u\",\"memoryMB\":128,\"steps\":[{\"type\":\"run\",\"args\":[\"echo %u > /seq\"]}]}",
             me, seq, seq);
    if (req(NULL, "POST", "/templates", body, &r) == 202)
        add(TPL, jstr(&r, "templateID"), me);
    resp_free(&r);
}

static void op_key(int me, unsigned seq)
{
    struct rec *e = pick(me, KEY, 0);
    if (e && rand() % 2) {
        char path[128];
        snprintf(path, sizeof(path), "/api-keys/%s", e->id);
        long st = req(NULL, "DELETE", path, NULL, NULL);
        if (st == 204) {
            e->deleted = 1;
            acked();
        }
        e->uncertain |= st < 0;
        return;
    }
    char body[64];
    resp_t r;
    snprintf(body, sizeof(body), "{\"name\":\"crash%d-%u\"}", me, seq);
    if (req(NULL, "POST", "/api-keys", body, &r) == 201) {
        e = add(KEY, jstr(&r, "id"), me);
        snprintf(e->key, sizeof(e->key), "%s", jstr(&r, "key"));
    }
    resp_free(&r);
}

static void op_member(int me, unsigned seq)
{
    char body[128];
    resp_t r;
    struct rec *e = pick(me, MEMBER, 0);
    if (e && rand() % 2) {
        char path[128];
        snprintf(path, sizeof(path), "/teams/members/%s", e->id);
        long st = req(NULL, "DELETE", path, NULL, NULL);
        if (st == 204) {
            e->deleted = 1;
            acked();
        }
        e->uncertain |= st < 0;
        return;
    }
    snprintf(body, sizeof(body), "{\"email\":\"crash%d-%u@example.com\",\"role\":\"member\"}", me, seq);
    if (req(NULL, "POST", "/teams/members", body, &r) == 201)
        add(MEMBER, jstr(&r, "memberID"), me);
    resp_free(&r);
}

/* PUT /images/crash<me>-<seq>: a small plain rootfs tar, its file saying seq. */
static void op_image(int me, unsigned seq)
{
    char name[64], path[96], data[32];
    snprintf(name, sizeof(name), "crash%d-%u", me, seq);
    snprintf(data, sizeof(data), "%u\n", seq);
    const struct ent tree[] = {{'d', "./", NULL, 0755, 0}, {'d', "./etc", NULL, 0755, 0},
                               {'f', "./etc/seq", data, 0644, 0}, {0, NULL, NULL, 0, 0}};
    struct buf b = mk_tar(tree, 'g');
    snprintf(path, sizeof(path), "/images/%s", name);
    resp_t r;
    if (req_any(NULL, "PUT", path, b.p, b.n, 1, &r) == 201)
        add(IMAGE, name, me);
    resp_free(&r);
    free(b.p);
}

static void *client(void *arg)
{
    int me = (int)(long)arg;
    unsigned seq = (unsigned)me * 100000;
    while (!L.stop) {
        int x = rand() % 100;
        seq++;
        if (x < 22)
            op_create(me);
        else if (x < 42)
            op_pause(me, seq);
        else if (x < 57)
            op_resume(me);
        else if (x < 67)
            op_snapshot(me);
        else if (x < 73)
            op_delete(me);
        else if (x < 77)
            op_template(me, seq);
        else if (x < 88)
            op_key(me, seq);
        else if (x < 96)
            op_member(me, seq);
        else
            op_image(me, seq);
    }
    return NULL;
}

/* ---- checks after a restart ---- */

static void check_ent(struct rec *e, const char *snaps, const char *members)
{
    char path[160], got[32] = "";
    resp_t r;
    long st;
    switch (e->kind) {
    case SBX:
        snprintf(path, sizeof(path), "/sandboxes/%s", e->id);
        st = req(NULL, "GET", path, NULL, &r);
        if (st == 200)
            snprintf(got, sizeof(got), "%s", jstr(&r, "state"));
        resp_free(&r);
        if (e->st == DELETED ? st != 404 && strcmp(got, "killed") : e->st == PAUSED ? strcmp(got, "paused")
                                                                                      : strcmp(got, "killed")) {
            char d[96];
            snprintf(d, sizeof(d), "expected %s, got %ld '%s'",
                     e->st == DELETED ? "gone" : e->st == PAUSED ? "paused" : "killed", st, got);
            lost("sandbox", e->id, d);
        }
        break;
    case SNAP:
        if (!strstr(snaps, e->id))
            lost("snapshot", e->id, "not listed");
        break;
    case TPL:
        snprintf(path, sizeof(path), "/templates/%s", e->id);
        if ((st = req(NULL, "GET", path, NULL, NULL)) != 200)
            lost("template", e->id, "not found");
        break;
    case KEY:
        st = req(e->key, "GET", "/sandboxes?limit=1", NULL, NULL);
        if (st != (e->deleted ? 401 : 200))
            lost("api key", e->id, e->deleted ? "deleted key still works" : "created key refused");
        break;
    case MEMBER:
        if ((strstr(members, e->id) != NULL) == e->deleted)
            lost("member", e->id, e->deleted ? "removed member still listed" : "not listed");
        break;
    case IMAGE:
        snprintf(path, sizeof(path), "/images/%s", e->id);
        if ((st = req(NULL, "GET", path, NULL, NULL)) != 200)
            lost("image", e->id, "not found");
        break;
    }
}

static char *get_body(const char *path)
{
    resp_t r;
    char *b = req(NULL, "GET", path, NULL, &r) == 200 && r.body ? strdup(r.body) : strdup("");
    resp_free(&r);
    return b;
}

/* Every image file belongs to a record; no temporary file is left. */
static int orphans(const char *snaps, const char *paused, const char *tpls, int say)
{
    static const char *dirs[] = {"snapshots", "templates"};
    int n = 0;
    for (int d = 0; d < 2; d++) {
        char path[400];
        snprintf(path, sizeof(path), "%s/data/%s", S.dir, dirs[d]);
        DIR *dir = opendir(path);
        for (struct dirent *e; dir && (e = readdir(dir));) {
            if (e->d_name[0] == '.')
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%s", e->d_name);
            char *dot = strchr(name, '.');
            if (dot)
                *dot = 0; /* the record's id: <snapshot>.img/.raw, <sandbox>.paused.img, <template>.<build>.img */
            int ok = !strstr(e->d_name, ".tmp") &&
                     (d == 0 ? strstr(snaps, name) || (strstr(e->d_name, ".paused.img") && strstr(paused, name))
                             : strstr(tpls, name) != NULL);
            if (!ok) {
                if (say)
                    fprintf(stderr, "orphan: %s/%s\n", dirs[d], e->d_name);
                n++;
            }
        }
        if (dir)
            closedir(dir);
    }
    return n;
}

static void verify(int round)
{
    char *snaps = get_body("/snapshots?limit=1000"), *members = get_body("/teams/members");
    int n;
    pthread_mutex_lock(&L.lock);
    n = L.n;
    pthread_mutex_unlock(&L.lock);
    long checked = 0;
    for (int i = 0; i < n; i++) {
        struct rec e;
        pthread_mutex_lock(&L.lock);
        e = L.e[i];
        pthread_mutex_unlock(&L.lock);
        if (e.uncertain)
            continue;
        check_ent(&e, snaps, members);
        checked++;
    }
    /* start-up's cleanup may still be removing what a crash left: give it a moment */
    int orph = -1;
    for (int t = 0; t < 30 && orph; t++) {
        char *paused = get_body("/sandboxes?state=paused&limit=1000"), *tpls = get_body("/templates");
        free(snaps);
        snaps = get_body("/snapshots?limit=1000");
        orph = orphans(snaps, paused, tpls, t == 29); /* a restarted build's temporary files come and go */
        free(paused);
        free(tpls);
        if (orph)
            usleep(100000);
    }
    CHECK_INT(orph, 0);
    pthread_mutex_lock(&L.lock);
    L.checks += checked;
    pthread_mutex_unlock(&L.lock);
    printf("round %d: %ld acknowledged so far, %ld checked now, %d orphans, %ld lost\n", round, L.acked, checked, orph, L.lost);
    free(snaps);
    free(members);
}

/* Running sandboxes die with the daemon: restart records them killed. */
static void running_are_killed(void)
{
    pthread_mutex_lock(&L.lock);
    for (int i = 0; i < L.n; i++)
        if (L.e[i].kind == SBX && L.e[i].st == RUNNING)
            L.e[i].st = KILLED;
    pthread_mutex_unlock(&L.lock);
}

static void final_checks(void)
{
    /* every paused sandbox resumes with its file */
    for (int i = 0; i < L.n; i++)
        if (L.e[i].kind == SBX && L.e[i].st == PAUSED && !L.e[i].uncertain) {
            int owner = L.e[i].owner;
            L.e[i].owner = -1; /* op_resume picks among "its own": this one alone */
            op_resume(-1);
            L.e[i].owner = owner;
        }
    /* and a snapshot restores */
    for (int i = L.n - 1; i >= 0; i--)
        if (L.e[i].kind == SNAP && !L.e[i].uncertain) {
            char body[160];
            snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", L.e[i].id);
            long st = req(NULL, "POST", "/sandboxes", body, NULL);
            L.checks++;
            if (st != 201)
                lost("snapshot", L.e[i].id, "does not restore");
            break;
        }
}

int main(void)
{
    char why[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    int kills = getenv("LEL_CRASH_KILLS") ? atoi(getenv("LEL_CRASH_KILLS")) : 5;
    unsigned seed = getenv("LEL_CRASH_SEED") ? (unsigned)atoi(getenv("LEL_CRASH_SEED")) : (unsigned)time(NULL);
    srand(seed);
    printf("crash loop: %d kills, seed %u\n", kills, seed);
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n"
                      "sandboxes:\n  killed_retention_s: 86400\nteams:\n  max_sandboxes: 1000\n"
                      "templates:\n  warm_pool: 1\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    enum { THREADS = 3 };
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, client, (void *)i);
    double worst_start = 0;
    checker = 1;
    for (int k = 1; k <= kills; k++) {
        usleep((useconds_t)(300000 + rand() % 2200000)); /* a random moment of the load */
        pthread_mutex_lock(&L.lock);
        L.down = 1;
        pthread_mutex_unlock(&L.lock);
        srv_kill9(&S);
        pthread_mutex_lock(&L.lock);
        while (L.busy) /* the requests in flight fail (and are marked uncertain) */
            pthread_cond_wait(&L.cond, &L.lock);
        pthread_mutex_unlock(&L.lock);
        running_are_killed();
        double t0 = now_ms();
        int r = srv_restart(&S);
        double ms = now_ms() - t0;
        worst_start = ms > worst_start ? ms : worst_start;
        printf("kill %d: restarted, serving after %.0f ms\n", k, ms);
        CHECK_INT(r, 0);
        if (r < 0)
            break;
        CHECK(ms < 1000);
        /* the clients wait while the checks run, so what is checked holds still */
        pthread_mutex_lock(&L.lock);
        L.hold = 1;
        L.down = 0;
        pthread_mutex_unlock(&L.lock);
        verify(k);
        pthread_mutex_lock(&L.lock);
        L.hold = 0;
        pthread_cond_broadcast(&L.cond);
        pthread_mutex_unlock(&L.lock);
    }
    pthread_mutex_lock(&L.lock);
    L.stop = 1;
    L.down = 0;
    pthread_cond_broadcast(&L.cond);
    pthread_mutex_unlock(&L.lock);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    final_checks();
    int by[IMAGE + 1] = {0}, removed = 0;
    for (int i = 0; i < L.n; i++) {
        by[L.e[i].kind]++;
        removed += L.e[i].kind == MEMBER && L.e[i].deleted;
    }
    printf("crash loop: acknowledged sandboxes %d, snapshots %d, templates %d, keys %d, members %d (%d removed), "
           "images %d\n", by[SBX], by[SNAP], by[TPL], by[KEY], by[MEMBER], removed, by[IMAGE]);
    printf("crash loop: %d kills, %ld acknowledged changes, %ld checks, %ld lost, slowest restart to serving %.0f ms\n",
           kills, L.acked, L.checks, L.lost, worst_start);
    CHECK_INT(L.lost, 0);
    CHECK(L.acked > 0);
    CHECK_INT(srv_stop(&S), 0);
    if (lel_test_failed)
        srv_log_tail(&S);
    srv_cleanup(&S);
    return lel_test_finish();
}
