/* End to end: cluster mode with real microVMs. A real 3-member etcd and 3 lelantosd nodes (a, b,
 * c) on loopback, each running VMs on /dev/kvm. A sandbox made through a is commanded, paused,
 * resumed and killed through b and c (its memory survives the pause); a template built on b
 * starts sandboxes on a (a fetches it from b, checked by hash, once: its files are a's then;
 * the node-to-node routes need the cluster secret; a damaged image fails the fetch and leaves
 * nothing; two creates at once fetch it once);
 * kill -9 of c: its running sandbox reads `lost` and its paused one `unavailable` within the
 * lease TTL, new creates go to a or b, the paused one is killed through a; c restarted
 * reconciles (the sandbox killed meanwhile is killed there too, its pause image removed; the
 * one that was running is recorded killed). Skipped (77) without Debian's etcd or /dev/kvm. */
#include "../../src/common/lel_util.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "etcdrun.h"
#include "harness.h"

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TTL 3
static struct etcd_cluster E;
static srv_t N[3];

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* a and c keep the creates they get (the test knows where each sandbox runs); b places them */
static int start_node(int i)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "vmm:\n  backend: auto\ntemplates:\n  warm_pool: 0\n  build_timeout_s: 60\n"
             "rate_limits:\n  auth_per_s: 1000\n  general_per_s: 100000\n"
             "cluster:\n  etcd: [%s, %s, %s]\n  node_name: %c\n  secret: test-cluster-secret\n  lease_ttl_s: %d\n%s",
             E.m[i % 3].url, E.m[(i + 1) % 3].url, E.m[(i + 2) % 3].url, 'a' + i, TTL,
             i != 1 ? "  placement: local\n" : "");
    return srv_start(&N[i], yaml);
}

/* One request through node i: its status, a JSON field into out (when given). */
static long req(int i, const char *method, const char *path, const char *body, const char *field, char *out, size_t n)
{
    resp_t r;
    if (out)
        out[0] = 0;
    if (api(&N[i], &r, H1, method, path, body) < 0)
        return -1;
    long s = r.status;
    if (out && field)
        snprintf(out, n, "%s", jstr(&r, field));
    if (s >= 500 || (s >= 400 && s != 404 && s != 409))
        fprintf(stderr, "node %c: %s %s -> %ld %s\n", 'a' + i, method, path, s, r.body ? r.body : "");
    resp_free(&r);
    return s;
}

/* The built-in base is built at each node's first start. */
static int base_ready(int i)
{
    char st[32] = "";
    int64_t t0 = now_ms();
    while (strcmp(st, "ready") && now_ms() - t0 < 120000) {
        req(i, "GET", "/templates/base", NULL, "buildStatus", st, sizeof(st));
        if (strcmp(st, "ready"))
            usleep(200000);
    }
    return !strcmp(st, "ready");
}

static long create(int i, const char *tpl, char *id, size_t n)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\",\"timeout\":300}", tpl);
    return req(i, "POST", "/sandboxes", body, "sandboxID", id, n);
}

/* A command in sandbox `id` through node i: its stdout (malloc'd), or NULL. */
static char *run(int i, const char *id, const char *cmd)
{
    resp_t r;
    char path[128];
    json_t *body = json_pack("{s:s}", "cmd", cmd);
    char *b = json_dumps(body, 0);
    json_decref(body);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    api(&N[i], &r, H1, "POST", path, b);
    free(b);
    char *out = r.status == 200 ? strdup(jstr(&r, "stdout")) : NULL;
    if (!out)
        fprintf(stderr, "node %c: command in %s -> %ld %s\n", 'a' + i, id, r.status, r.body ? r.body : "");
    resp_free(&r);
    return out;
}

static void check_run(int i, const char *id, const char *cmd, const char *want)
{
    char *out = run(i, id, cmd);
    CHECK(out != NULL);
    if (out)
        CHECK_STR(out, want);
    free(out);
}

/* GET /sandboxes/{id} through node i until `field` is `want` (within ms). */
static void field_on(int i, const char *id, const char *field, const char *want, int ms)
{
    char path[128], got[64] = "";
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    int64_t t0 = now_ms();
    do {
        resp_t r;
        if (api(&N[i], &r, H1, "GET", path, NULL) == 0) {
            json_t *v = r.status == 200 ? json_object_get(r.json, field) : NULL;
            snprintf(got, sizeof(got), "%s", json_is_string(v) ? json_string_value(v) : json_is_true(v) ? "true" : "");
            resp_free(&r);
        }
        if (!strcmp(got, want))
            break;
        usleep(100000);
    } while (now_ms() - t0 < ms);
    if (strcmp(got, want))
        fprintf(stderr, "node %c: sandbox %s %s is '%s', want '%s'\n", 'a' + i, id, field, got, want);
    CHECK_STR(got, want);
}

static void state_on(int i, const char *id, const char *want)
{
    field_on(i, id, "state", want, 3000);
}

/* A sandbox made through a (it stays there) answers b and c: commands, pause, resume, kill. */
static void sandbox_anywhere(void)
{
    char id[64], path[128];
    CHECK_INT(create(0, "base", id, sizeof(id)), 201);
    state_on(1, id, "running");
    check_run(1, id, "echo kept > /tmp/kept; echo $((6 * 7))", "42\n");
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(req(2, "POST", path, NULL, NULL, NULL, 0), 204);
    state_on(0, id, "paused");
    state_on(1, id, "paused");
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK_INT(req(1, "POST", path, "{\"timeout\":120}", NULL, NULL, 0), 201);
    check_run(2, id, "cat /tmp/kept", "kept\n"); /* its memory came back with it */
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(req(2, "DELETE", path, NULL, NULL, NULL, 0), 204);
    state_on(0, id, "killed");
    state_on(1, id, "killed");
}

/* Whether node i's record, as node `seen_by` last read it, lists template `tid`. */
static int node_lists(int seen_by, int i, const char *tid)
{
    resp_t r;
    const char *hd[] = {"X-Admin-Token: test-admin-token", NULL};
    if (http_req(&N[seen_by], &r, H1, "GET", "/cluster/nodes", NULL, 0, hd) < 0)
        return 0;
    int found = 0;
    size_t k, j;
    json_t *v, *t;
    json_array_foreach(r.json, k, v)
    {
        if (json_string_value(json_object_get(v, "name")) && json_string_value(json_object_get(v, "name"))[0] == 'a' + i)
            json_array_foreach(json_object_get(v, "templates"), j, t) found |= !strcmp(json_string_value(t) ?: "", tid);
    }
    resp_free(&r);
    return found;
}

/* Files in node i's data dir `sub` whose names start with `stem`. */
static int files_of(int i, const char *sub, const char *stem)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/data/%s", N[i].dir, sub);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, stem, strlen(stem));
    if (d)
        closedir(d);
    return n;
}

/* How many lines of node i's log hold `s`. */
static int log_count(int i, const char *s)
{
    char path[300], line[2048];
    snprintf(path, sizeof(path), "%s/server.log", N[i].dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, s) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* b's node-to-node routes: nothing without the cluster secret; with it, the description and an
 * image whose size and SHA-256 are the described ones. */
static void internal_routes(const char *tid)
{
    resp_t r, img;
    char team[64], path[256];
    const char *none[] = {NULL}, *wrong[] = {"X-Lelantos-Node: not-the-secret", NULL};
    const char *right[] = {"X-Lelantos-Node: test-cluster-secret", NULL};
    CHECK(api(&N[1], &r, H1, "GET", "/teams", NULL) == 0);
    snprintf(team, sizeof(team), "%s", jstr(&r, "teamID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/cluster/internal/templates/made-on-b?team=%s", team);
    CHECK(http_req(&N[1], &r, H1, "GET", path, NULL, 0, none) == 0);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK(http_req(&N[1], &r, H1, "GET", path, NULL, 0, wrong) == 0);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK(http_req(&N[1], &r, H1, "GET", path, NULL, 0, right) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "template"), "templateID")) ?: "", tid);
    snprintf(path, sizeof(path), "/cluster/internal/templates/%s/image?team=%s", tid, team);
    CHECK(http_req(&N[1], &img, H1, "GET", path, NULL, 0, right) == 0);
    CHECK_INT(img.status, 200);
    char sha[65];
    lel_sha256_hex(img.body, img.len, sha);
    json_t *desc = json_object_get(r.json, "image");
    CHECK_INT((long long)img.len, (long long)json_integer_value(json_object_get(desc, "size")));
    CHECK_STR(sha, json_string_value(json_object_get(desc, "sha256")) ?: "");
    resp_free(&img);
    resp_free(&r);
    snprintf(path, sizeof(path), "/cluster/internal/templates/made-on-b?team=someoneelse");
    CHECK(http_req(&N[1], &r, H1, "GET", path, NULL, 0, right) == 0);
    CHECK_INT(r.status, 404); /* another team's name finds nothing */
    resp_free(&r);
}

/* Builds template `name` on b (a step writes `word` to /etc/word); its id into tid. */
static void build_on_b(const char *name, const char *word, char tid[64])
{
    char body[400], bid[64], path[200], st[32] = "";
    resp_t r;
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"memoryMB\":128,\"steps\":[{\"type\":\"run\",\"args\":[\"echo %s > /etc/word\"]}]}",
             name, word);
    api(&N[1], &r, H1, "POST", "/templates", body);
    CHECK_INT(r.status, 202);
    snprintf(tid, 64, "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    int64_t t0 = now_ms();
    while (strcmp(st, "ready") && strcmp(st, "error") && now_ms() - t0 < 60000) {
        req(1, "GET", path, NULL, "status", st, sizeof(st));
        usleep(200000);
    }
    CHECK_STR(st, "ready");
}

/* The path of b's image file of template tid (the one not ending in .raw). */
static int image_on_b(const char *tid, char *out, size_t n)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/data/templates", N[1].dir);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (!strncmp(e->d_name, tid, strlen(tid)) && l > 4 && !strcmp(e->d_name + l - 4, ".img")) {
            snprintf(out, n, "%s/%s", dir, e->d_name);
            found = 1;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* A damaged image on b: c's fetch fails with the reason and leaves nothing; repaired, it works. */
static void damaged_image(void)
{
    char tid[64], img[600], id[64], msg[512];
    build_on_b("damaged", "whole", tid);
    CHECK(image_on_b(tid, img, sizeof(img)));
    struct stat st;
    CHECK(stat(img, &st) == 0 && st.st_size > 8192);
    FILE *f = fopen(img, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    unsigned char keep[64], junk[64];
    memset(junk, 0x5a, sizeof(junk));
    long at = (long)st.st_size / 2; /* inside the compressed memory: its chunk's hash no longer holds */
    fseek(f, at, SEEK_SET);
    CHECK(fread(keep, 1, sizeof(keep), f) == sizeof(keep));
    fseek(f, at, SEEK_SET);
    fwrite(junk, 1, sizeof(junk), f);
    fflush(f);
    int64_t t0 = now_ms();
    while (!node_lists(2, 1, tid) && now_ms() - t0 < TTL * 1000 + 2000)
        usleep(100000);
    CHECK_INT(req(2, "POST", "/sandboxes", "{\"templateID\":\"damaged\"}", "message", msg, sizeof(msg)), 502);
    CHECK(strstr(msg, "cannot be unpacked") != NULL);
    CHECK_INT(files_of(2, "templates", tid), 0); /* nothing of it left on c */
    fseek(f, at, SEEK_SET);
    fwrite(keep, 1, sizeof(keep), f);
    fclose(f);
    CHECK_INT(create(2, "damaged", id, sizeof(id)), 201);
    check_run(2, id, "cat /etc/word", "whole\n");
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(req(2, "DELETE", path, NULL, NULL, NULL, 0), 204);
}

/* A template built on b starts sandboxes on a: fetched once, then a's own. */
static void template_travels(void)
{
    char tid[64], bid[64], st[32] = "", path[200], id[64], id2[64];
    resp_t r;
    api(&N[1], &r, H1, "POST", "/templates",
        "{\"name\":\"made-on-b\",\"memoryMB\":128,\"steps\":[{\"type\":\"run\",\"args\":[\"echo built on b > /etc/made-on\"]}]}");
    CHECK_INT(r.status, 202);
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    int64_t t0 = now_ms();
    while (strcmp(st, "ready") && strcmp(st, "error") && now_ms() - t0 < 60000) {
        req(1, "GET", path, NULL, "status", st, sizeof(st));
        usleep(200000);
    }
    CHECK_STR(st, "ready");
    printf("template built on b in %lld ms\n", (long long)(now_ms() - t0));
    CHECK_INT(files_of(0, "templates", tid), 0); /* a has none of it yet */
    internal_routes(tid);
    t0 = now_ms();
    while (!node_lists(0, 1, tid) && now_ms() - t0 < TTL * 1000 + 2000)
        usleep(100000);
    CHECK(node_lists(0, 1, tid)); /* a sees that b has it */
    /* through a (placement local): fetched from b, then started on a */
    t0 = now_ms();
    CHECK_INT(create(0, "made-on-b", id, sizeof(id)), 201);
    int64_t first = now_ms() - t0;
    check_run(0, id, "cat /etc/made-on", "built on b\n");
    check_run(2, id, "cat /etc/made-on", "built on b\n"); /* and through c, forwarded to a */
    CHECK(files_of(0, "templates", tid) >= 2); /* its image and unpacked memory, on a now */
    t0 = now_ms();
    CHECK_INT(create(0, tid, id2, sizeof(id2)), 201); /* by id this time: cached */
    int64_t second = now_ms() - t0;
    printf("a sandbox of b's template through a: %lld ms with the fetch, %lld ms cached\n", (long long)first,
           (long long)second);
    CHECK_INT(log_count(0, "fetched from node 'b'"), 1);
    t0 = now_ms();
    while (!node_lists(1, 0, tid) && now_ms() - t0 < TTL * 1000 + 2000)
        usleep(100000);
    CHECK(node_lists(1, 0, tid)); /* a's record lists it now: creates may be placed there */
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(req(1, "DELETE", path, NULL, NULL, NULL, 0), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s", id2);
    CHECK_INT(req(2, "DELETE", path, NULL, NULL, NULL, 0), 204);
    /* one a's does not know and no node has: 404 as on a single node */
    CHECK_INT(create(0, "no-such-template", id, sizeof(id)), 404);
}

struct par {
    long status;
    char id[64];
};

static void *create_on_c(void *arg)
{
    struct par *p = arg;
    p->status = create(2, "made-on-b", p->id, sizeof(p->id));
    return NULL;
}

/* Two creates at once on c of a template it lacks: both start, it is fetched once. */
static void fetched_once(void)
{
    struct par p[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, create_on_c, &p[i]) == 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT(p[i].status, 201);
        check_run(2, p[i].id, "cat /etc/made-on", "built on b\n");
        char path[128];
        snprintf(path, sizeof(path), "/sandboxes/%s", p[i].id);
        CHECK_INT(req(2, "DELETE", path, NULL, NULL, NULL, 0), 204);
    }
    CHECK_INT(log_count(2, "(made-on-b) fetched from node"), 1);
}

static char running_c[64], paused_c[64];

/* kill -9 of c: its running sandbox lost, its paused one unavailable, creates go elsewhere, and
 * the paused one killed through a while c is away. */
static void node_death(void)
{
    char path[128], id[64];
    CHECK_INT(create(2, "base", running_c, sizeof(running_c)), 201);
    CHECK_INT(create(2, "base", paused_c, sizeof(paused_c)), 201);
    state_on(0, paused_c, "running"); /* the catalog reached a */
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", paused_c);
    CHECK_INT(req(0, "POST", path, NULL, NULL, NULL, 0), 204);
    state_on(1, paused_c, "paused");
    state_on(0, running_c, "running");
    CHECK_INT(files_of(2, "snapshots", paused_c), 1);
    srv_kill9(&N[2]);
    int64_t t0 = now_ms();
    field_on(0, running_c, "state", "lost", (TTL + 4) * 1000);
    printf("c's running sandbox read lost through a %lld ms after kill -9 (lease TTL %d s)\n",
           (long long)(now_ms() - t0), TTL);
    CHECK(now_ms() - t0 <= (TTL + 3) * 1000);
    state_on(1, running_c, "lost");
    field_on(1, paused_c, "state", "paused", 3000);
    field_on(1, paused_c, "unavailable", "true", 3000);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", paused_c);
    CHECK_INT(req(0, "POST", path, "{}", NULL, NULL, 0), 503); /* its image is on c */
    for (int k = 0; k < 2; k++) { /* b places them: on a or b, never the dead c */
        CHECK_INT(create(1, "base", id, sizeof(id)), 201);
        state_on(0, id, "running");
        check_run(0, id, "echo alive", "alive\n");
        snprintf(path, sizeof(path), "/sandboxes/%s", id);
        CHECK_INT(req(1, "DELETE", path, NULL, NULL, NULL, 0), 204);
    }
    snprintf(path, sizeof(path), "/sandboxes/%s", paused_c);
    CHECK_INT(req(0, "DELETE", path, NULL, NULL, NULL, 0), 204); /* recorded in the catalog */
    state_on(1, paused_c, "killed");
    state_on(0, paused_c, "killed");
}

/* c back: what was killed meanwhile is killed there too (its image removed), what ran is lost
 * for good (recorded killed), and every node agrees. */
static void node_back(void)
{
    CHECK_INT(srv_restart(&N[2]), 0);
    for (int i = 0; i < 2; i++) { /* a and b see c again within a renewal period */
        int64_t t0 = now_ms();
        while (!node_lists(i, 2, "base") && now_ms() - t0 < TTL * 1000 + 2000)
            usleep(100000);
        CHECK(node_lists(i, 2, "base"));
    }
    state_on(2, paused_c, "killed");
    CHECK_INT(files_of(2, "snapshots", paused_c), 0);
    resp_t r; /* its logs say why */
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/logs", paused_c);
    CHECK(api(&N[2], &r, H1, "GET", path, NULL) == 0);
    CHECK(r.body && strstr(r.body, "killed through node 'a' while this node was gone") != NULL);
    resp_free(&r);
    state_on(2, running_c, "killed");
    state_on(0, running_c, "killed");
    state_on(1, paused_c, "killed");
    char id[64];
    CHECK_INT(create(2, "base", id, sizeof(id)), 201); /* c takes creates again */
    state_on(1, id, "running");
    check_run(1, id, "echo back", "back\n");
}

int main(void)
{
    char why[256];
    if (!etcd_binary()) {
        printf("SKIPPED: no etcd binary (tools/setup.sh installs Debian's etcd-server)\n");
        return 77;
    }
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    int64_t t0 = now_ms();
    if (etcd_cluster_start(&E, 3) < 0) {
        CHECK(!"etcd started");
        etcd_cluster_free(&E);
        return lel_test_finish();
    }
    int up = 1;
    for (int i = 0; i < 3; i++)
        if (start_node(i) < 0) {
            fprintf(stderr, "node %c did not start\n", 'a' + i);
            srv_log_tail(&N[i]);
            up = 0;
        }
    snprintf(N[1].key, sizeof(N[1].key), "%s", N[0].key); /* one cluster, one default team */
    snprintf(N[2].key, sizeof(N[2].key), "%s", N[0].key);
    for (int i = 0; up && i < 3; i++)
        up = base_ready(i);
    CHECK(up);
    printf("3 etcd members and 3 nodes up, base built on each, in %lld ms\n", (long long)(now_ms() - t0));
    if (up) {
        sandbox_anywhere();
        template_travels();
        damaged_image();
        fetched_once();
        node_death();
        node_back();
    }
    if (lel_test_failed)
        for (int i = 0; i < 3; i++)
            srv_log_tail(&N[i]);
    for (int i = 0; i < 3; i++) {
        if (N[i].pid > 0)
            CHECK_INT(srv_stop(&N[i]), 0);
        srv_cleanup(&N[i]);
    }
    etcd_cluster_free(&E);
    printf("whole test: %lld ms\n", (long long)(now_ms() - t0));
    return lel_test_finish();
}
