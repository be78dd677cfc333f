/* End to end: cluster mode. A real 3-member etcd and 3 lelantosd nodes (a, b, c) on loopback,
 * API-only (vmm.backend none). Membership: every node lists the three; kill -9 of c takes it
 * off the list within its lease TTL; one etcd member down changes nothing; two down make
 * creates answer 503 saying why while reads go on; quorum back, creates work again. Shared
 * state: a key made on a works on c, deleted there it works nowhere. Sandboxes: made through a,
 * paused, resumed and killed through b and c, lists agree; c killed -9, its sandbox reads lost.
 * Everything stopped and started again keeps every acknowledged change. Skipped (77) without
 * Debian's etcd. */
#include "../lel_test.h"
#include "etcdrun.h"
#include "harness.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TTL 3
static struct etcd_cluster E;
static srv_t N[3];
static const char *const ADMIN[] = {"X-Admin-Token: test-admin-token", NULL};
static char on_c[64];      /* a running sandbox node c owns */
static char last_made[256]; /* the last sandbox made */
static char team_key[64];   /* the key of the team made on b */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int start_node(int i)
{
    char yaml[1024];
    /* each node lists the members in another order, so they talk to different ones */
    snprintf(yaml, sizeof(yaml),
             "rate_limits:\n  auth_per_s: 1000\ncluster:\n  etcd: [%s, %s, %s]\n  node_name: %c\n  secret: test-cluster-secret\n"
             "  lease_ttl_s: %d\n%s",
             E.m[i % 3].url, E.m[(i + 1) % 3].url, E.m[(i + 2) % 3].url, 'a' + i, TTL,
             i == 2 ? "  placement: local\n" : ""); /* c keeps its creates: the test knows one sandbox's node */
    return srv_start(&N[i], yaml);
}

/* The names GET /cluster/nodes on node i lists, as "a,b,c"; "" on failure. */
static void node_names(int i, char *out, size_t n)
{
    resp_t r;
    out[0] = 0;
    if (http_req(&N[i], &r, H1, "GET", "/cluster/nodes", NULL, 0, ADMIN) < 0)
        return;
    size_t k, off = 0;
    json_t *v;
    if (r.status == 200)
        json_array_foreach(r.json, k, v)
        {
            off += (size_t)snprintf(out + off, n - off, "%s%s", off ? "," : "",
                                    json_string_value(json_object_get(v, "name")));
        }
    resp_free(&r);
}

/* Node i lists `want` within a renewal period (each node re-reads the list every TTL/3). */
static void lists(int i, const char *want)
{
    char names[64];
    int64_t t0 = now_ms();
    do {
        node_names(i, names, sizeof(names));
        if (!strcmp(names, want))
            break;
        usleep(100000);
    } while (now_ms() - t0 < TTL * 1000 / 3 + 1500);
    CHECK_STR(names, want);
}

/* lelctl against node i with the admin token `token` (NULL: none) and argv; its stdout into
 * out, its exit code returned (-1 when it could not run). */
static int lelctl(int i, const char *token, const char *const *argv, char *out, size_t n)
{
    int fd[2];
    if (pipe(fd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", N[i].port);
        setenv("LELANTOS_URL", url, 1);
        setenv("HOME", N[i].dir, 1); /* no user config file */
        unsetenv("LELANTOS_API_KEY");
        unsetenv("LELANTOS_CONFIG");
        unsetenv("XDG_CONFIG_HOME");
        if (token)
            setenv("LELANTOS_ADMIN_TOKEN", token, 1);
        else
            unsetenv("LELANTOS_ADMIN_TOKEN");
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(LELCTL_PATH, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd[0], out + len, n - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = 0;
    close(fd[0]);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* lelctl nodes: the table (the answering node marked), --json, -q; no token: a usage error;
 * a wrong one: refused (5). */
static void cli_nodes(void)
{
    char out[8192];
    const char *table[] = {"lelctl", "nodes", NULL};
    CHECK_INT(lelctl(1, "test-admin-token", table, out, sizeof(out)), 0);
    printf("lelctl nodes:\n%s", out);
    CHECK(strncmp(out, "NAME", 4) == 0 && strstr(out, "STATE") && strstr(out, "SANDBOXES"));
    char url[64], *line;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", N[1].port);
    CHECK((line = strstr(out, "\nb ")) != NULL);
    CHECK(line && strstr(line, "*") && strstr(line, "ready") && strstr(line, url));
    CHECK(strstr(out, "\na ") && strstr(out, "\nc "));
    const char *json[] = {"lelctl", "nodes", "--json", NULL};
    CHECK_INT(lelctl(0, "test-admin-token", json, out, sizeof(out)), 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK(json_is_array(j) && json_array_size(j) == 3);
    CHECK_STR(json_string_value(json_object_get(json_array_get(j, 0), "name")), "a");
    CHECK(json_is_true(json_object_get(json_array_get(j, 0), "self")));
    json_decref(j);
    const char *quiet[] = {"lelctl", "nodes", "-q", NULL};
    CHECK_INT(lelctl(2, "test-admin-token", quiet, out, sizeof(out)), 0);
    CHECK_STR(out, "a\nb\nc\n");
    CHECK_INT(lelctl(2, NULL, table, out, sizeof(out)), 2);
    CHECK_INT(lelctl(2, "wrong-token", table, out, sizeof(out)), 5);
}

static void membership(void)
{
    for (int i = 0; i < 3; i++)
        lists(i, "a,b,c");
    resp_t r;
    CHECK(http_req(&N[1], &r, H1, "GET", "/cluster/nodes", NULL, 0, ADMIN) == 0);
    CHECK_INT(r.status, 200);
    json_t *b = json_array_get(r.json, 1);
    CHECK_STR(json_string_value(json_object_get(b, "name")), "b");
    CHECK(json_is_true(json_object_get(b, "self")));
    CHECK(json_is_false(json_object_get(json_array_get(r.json, 0), "self")));
    CHECK_STR(json_string_value(json_object_get(b, "state")), "ready");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", N[1].port);
    CHECK_STR(json_string_value(json_object_get(b, "url")), url);
    CHECK(json_integer_value(json_object_get(b, "cores")) >= 1);
    CHECK(json_integer_value(json_object_get(b, "freeMemoryMB")) > 0);
    CHECK(json_is_array(json_object_get(b, "templates")));
    resp_free(&r);
    /* an admin route: no token, no list */
    CHECK(http_req(&N[1], &r, H1, "GET", "/cluster/nodes", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    cli_nodes();
}

/* Node i answers `path` with `want` under `key` within 3 s (changes reach the others by watch). */
static void eventually(int i, const char *key, const char *path, long want)
{
    resp_t r;
    long got = -1;
    int64_t t0 = now_ms();
    do {
        if (api_key(&N[i], &r, H1, key, "GET", path, NULL) == 0) {
            got = r.status;
            resp_free(&r);
        }
        if (got == want)
            break;
        usleep(50000);
    } while (now_ms() - t0 < 3000);
    if (got != want)
        fprintf(stderr, "node %c: GET %s: %ld, want %ld\n", 'a' + i, path, got, want);
    CHECK_INT(got, want);
}

static void shared_state(void)
{
    resp_t r;
    /* one cluster, one default team: b and c joined it instead of making their own */
    CHECK(N[1].key[0] == 0 && N[2].key[0] == 0);
    snprintf(N[1].key, sizeof(N[1].key), "%s", N[0].key);
    snprintf(N[2].key, sizeof(N[2].key), "%s", N[0].key);
    char team[64];
    CHECK(api(&N[0], &r, H1, "GET", "/teams", NULL) == 0);
    snprintf(team, sizeof(team), "%s", jstr(&r, "teamID"));
    resp_free(&r);
    CHECK(api(&N[2], &r, H1, "GET", "/teams", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "teamID"), team);
    resp_free(&r);
    /* a key made on a works on c; deleted on c, a refuses it */
    CHECK(api(&N[0], &r, H1, "POST", "/api-keys", "{\"name\":\"made-on-a\"}") == 0);
    CHECK_INT(r.status, 201);
    char key[64], kid[64], path[128];
    snprintf(key, sizeof(key), "%s", jstr(&r, "key"));
    snprintf(kid, sizeof(kid), "%s", jstr(&r, "id"));
    resp_free(&r);
    eventually(2, key, "/teams", 200);
    eventually(1, key, "/sandboxes", 200);
    snprintf(path, sizeof(path), "/api-keys/%s", kid);
    CHECK(api(&N[2], &r, H1, "DELETE", path, NULL) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    eventually(0, key, "/teams", 401);
    eventually(1, key, "/teams", 401);
    /* a team made on b (admin) works on a; its member made on a is listed on c */
    const char *hd[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    const char *body = "{\"name\":\"made-on-b\"}";
    CHECK(http_req(&N[1], &r, H1, "POST", "/admin/teams", body, strlen(body), hd) == 0);
    CHECK_INT(r.status, 201);
    char tkey[64];
    snprintf(tkey, sizeof(tkey), "%s", jstr(&r, "apiKey"));
    snprintf(team_key, sizeof(team_key), "%s", tkey);
    resp_free(&r);
    eventually(0, tkey, "/teams", 200);
    CHECK(api_key(&N[0], &r, H1, tkey, "POST", "/teams/members", "{\"email\":\"ann@example.com\"}") == 0);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    int64_t t0 = now_ms();
    int listed = 0;
    do {
        CHECK(api_key(&N[2], &r, H1, tkey, "GET", "/teams/members", NULL) == 0);
        listed = r.body && strstr(r.body, "ann@example.com") != NULL;
        resp_free(&r);
        if (!listed)
            usleep(50000);
    } while (!listed && now_ms() - t0 < 3000);
    CHECK(listed);
    /* the same member twice, through another node: refused there too */
    eventually(1, tkey, "/teams", 200);
    usleep(300000);
    CHECK(api_key(&N[1], &r, H1, tkey, "POST", "/teams/members", "{\"email\":\"ann@example.com\"}") == 0);
    CHECK_INT(r.status, 409);
    resp_free(&r);
}

static void bad_config(void)
{
    srv_t s;
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "cluster:\n  etcd: [%s]\n  node_name: x\n", E.m[0].url); /* no secret */
    CHECK(srv_start(&s, yaml) < 0);
    srv_cleanup(&s);
}

static const char *create(int i, long *status, char *id, size_t idn)
{
    resp_t r;
    id[0] = 0;
    *status = -1;
    if (api(&N[i], &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":300}") < 0)
        return id;
    *status = r.status;
    snprintf(id, idn, "%s", r.status == 201 ? jstr(&r, "sandboxID") : jstr(&r, "message"));
    resp_free(&r);
    return id;
}

static long get_status(int i, const char *path)
{
    resp_t r;
    if (api(&N[i], &r, H1, "GET", path, NULL) < 0)
        return -1;
    long s = r.status;
    resp_free(&r);
    return s;
}

static long post_status(int i, const char *path, const char *body)
{
    resp_t r;
    if (api(&N[i], &r, H1, "POST", path, body) < 0)
        return -1;
    long s = r.status;
    resp_free(&r);
    return s;
}

/* GET /sandboxes/{id} through node i until its state is `want` (3 s): the catalog travels by watch. */
static void state_on(int i, const char *id, const char *want)
{
    char path[400], got[32] = "";
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    int64_t t0 = now_ms();
    do {
        resp_t r;
        if (api(&N[i], &r, H1, "GET", path, NULL) == 0) {
            snprintf(got, sizeof(got), "%s", r.status == 200 ? jstr(&r, "state") : "");
            resp_free(&r);
        }
        if (!strcmp(got, want))
            break;
        usleep(50000);
    } while (now_ms() - t0 < 3000);
    if (strcmp(got, want))
        fprintf(stderr, "node %c: sandbox %s is '%s', want '%s'\n", 'a' + i, id, got, want);
    CHECK_STR(got, want);
}

/* The sorted ids GET /sandboxes lists through node i, comma-separated. */
static void list_ids(int i, char *out, size_t n)
{
    resp_t r;
    char ids[64][32];
    int k = 0;
    out[0] = 0;
    if (api(&N[i], &r, H1, "GET", "/sandboxes?limit=100", NULL) < 0)
        return;
    size_t j;
    json_t *v;
    json_array_foreach(r.json, j, v)
    {
        if (k < 64)
            snprintf(ids[k++], sizeof(ids[0]), "%s", json_string_value(json_object_get(v, "sandboxID")));
    }
    resp_free(&r);
    qsort(ids, (size_t)k, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
    size_t off = 0;
    for (int m = 0; m < k; m++)
        off += (size_t)snprintf(out + off, n - off, "%s%s", m ? "," : "", ids[m]);
}

static void lists_agree(void)
{
    char l0[2400], l1[2400], l2[2400];
    int64_t t0 = now_ms();
    do {
        list_ids(0, l0, sizeof(l0));
        list_ids(1, l1, sizeof(l1));
        list_ids(2, l2, sizeof(l2));
        if (!strcmp(l0, l1) && !strcmp(l1, l2))
            break;
        usleep(100000);
    } while (now_ms() - t0 < 3000);
    CHECK(l0[0] != 0);
    CHECK_STR(l1, l0);
    CHECK_STR(l2, l0);
}


/* A sandbox made through a is paused through b, resumed through c, killed through b; lists
 * agree on every node. */
static void sandboxes_anywhere(void)
{
    char id[256], path[400];
    long st;
    for (int k = 0; k < 4; k++) { /* placed by free memory: on whichever node */
        create(0, &st, id, sizeof(id));
        CHECK_INT(st, 201);
    }
    state_on(1, id, "running");
    state_on(2, id, "running");
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(post_status(1, path, NULL), 204);
    state_on(2, id, "paused");
    state_on(0, id, "paused");
    CHECK_INT(post_status(2, path, NULL), 409); /* already paused: the owner says so, through c */
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK_INT(post_status(2, path, "{\"timeout\":120}"), 201);
    state_on(0, id, "running");
    snprintf(path, sizeof(path), "/sandboxes/%s/timeout", id);
    CHECK_INT(post_status(0, path, "{\"timeout\":200}"), 204);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK(api(&N[1], &r, H1, "DELETE", path, NULL) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    state_on(2, id, "killed");
    state_on(0, id, "killed");
    /* another team's key does not reach it through any node */
    CHECK_INT(get_status(2, "/sandboxes/nosuchsandbox"), 404);
    create(2, &st, on_c, sizeof(on_c)); /* c places locally */
    CHECK_INT(st, 201);
    state_on(0, on_c, "running");
    state_on(1, on_c, "running");
    lists_agree();
}

/* kill -9 of c: gone from every list within the lease TTL (plus etcd's lazy expiry). */
static void node_death(void)
{
    char names[64];
    srv_kill9(&N[2]);
    int64_t t0 = now_ms(), gone = -1;
    while (now_ms() - t0 < (TTL + 5) * 1000 && gone < 0) {
        node_names(0, names, sizeof(names));
        if (!strcmp(names, "a,b"))
            gone = now_ms() - t0;
        else
            usleep(100000);
    }
    printf("node c off the list %lld ms after kill -9 (lease TTL %d s)\n", (long long)gone, TTL);
    CHECK(gone >= 0);
    CHECK(gone <= (TTL + 3) * 1000);
    lists(1, "a,b");
    /* its running sandbox is lost, seen through a and b; new creates go elsewhere */
    state_on(0, on_c, "lost");
    state_on(1, on_c, "lost");
    char path[128], id[256];
    snprintf(path, sizeof(path), "/sandboxes/%.64s/pause", on_c);
    CHECK_INT(post_status(0, path, NULL), 503);
    for (int k = 0; k < 3; k++) {
        long st;
        create(k % 2, &st, id, sizeof(id));
        CHECK_INT(st, 201);
        state_on(1 - k % 2, id, "running");
    }
}

static void etcd_failures(void)
{
    char id[256], id2[256], names[64], path[300];
    long st;
    create(0, &st, id, sizeof(id));
    CHECK_INT(st, 201);
    etcd_member_stop(&E, 0); /* one of three: nothing changes */
    usleep((TTL * 1000 / 3 + 500) * 1000); /* a renewal or two go through the others */
    create(0, &st, id2, sizeof(id2));
    CHECK_INT(st, 201);
    node_names(0, names, sizeof(names));
    CHECK_STR(names, "a,b");
    etcd_member_stop(&E, 1); /* quorum lost: creates 503 with the reason, reads go on */
    int64_t t0 = now_ms();
    do {
        usleep(200000);
        create(0, &st, id2, sizeof(id2));
    } while (st == 201 && now_ms() - t0 < (TTL + 5) * 1000);
    CHECK_INT(st, 503);
    printf("without quorum, after %lld ms: %s\n", (long long)(now_ms() - t0), id2);
    CHECK(strstr(id2, "lost etcd") != NULL);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(get_status(0, path), 200);
    CHECK_INT(get_status(0, "/sandboxes"), 200);
    node_names(0, names, sizeof(names)); /* the last list read stays */
    CHECK(strstr(names, "a") != NULL);
    CHECK_INT(etcd_member_start(&E, 1), 0); /* quorum back: creates work again */
    t0 = now_ms();
    do {
        usleep(200000);
        create(0, &st, id2, sizeof(id2));
    } while (st != 201 && now_ms() - t0 < (TTL + 10) * 1000);
    CHECK_INT(st, 201);
    CHECK_INT(etcd_member_start(&E, 0), 0);
    snprintf(last_made, sizeof(last_made), "%s", id2);
}

/* Everything stopped and started again: every acknowledged change is still there. */
static void restart_all(void)
{
    for (int i = 0; i < 2; i++)
        CHECK_INT(srv_stop(&N[i]), 0);
    etcd_cluster_stop_all(&E);
    CHECK_INT(etcd_cluster_restart(&E), 0);
    for (int i = 0; i < 2; i++)
        CHECK_INT(srv_restart(&N[i]), 0);
    lists(0, "a,b");
    eventually(0, team_key, "/teams", 200); /* the team made on b, through a */
    eventually(1, team_key, "/teams", 200);
    state_on(1, last_made, "running"); /* made through a before the stop */
    state_on(0, last_made, "running");
    state_on(0, on_c, "lost"); /* c is still down */
}

int main(void)
{
    if (!etcd_binary()) {
        printf("SKIPPED: no etcd binary (tools/setup.sh installs Debian's etcd-server)\n");
        return 77;
    }
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
    CHECK(up);
    if (up) {
        membership();
        shared_state();
        sandboxes_anywhere();
        bad_config();
        node_death();
        etcd_failures();
        restart_all();
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
    return lel_test_finish();
}
