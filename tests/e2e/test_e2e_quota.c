/* End to end with real microVMs: team quotas. GET /teams shows the config's defaults; the admin
 * API sets a team's own (POST /admin/teams with "limits", PUT /admin/teams/{id}/limits, null
 * back to the default) and refuses bad ones; over the concurrency, memory or snapshot quota a
 * create, resume, fork or snapshot answers 429 with the reason, E2B's way; a kill or a delete
 * frees the room; a team's limits and its snapshot count survive a restart; another team is
 * not touched by the first's quota. Without a usable /dev/kvm: skipped. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <string.h>
#include <unistd.h>

static srv_t S;
static const char *ADMIN_TOK = "X-Admin-Token: test-admin-token";

static long admin(const char *method, const char *path, const char *body, resp_t *keep)
{
    resp_t r;
    const char *h[] = {ADMIN_TOK, "Content-Type: application/json", NULL};
    if (http_req(&S, &r, H1, method, path, body, body ? strlen(body) : 0, h) < 0)
        return -1;
    long st = r.status;
    if (keep)
        *keep = r;
    else
        resp_free(&r);
    return st;
}

static json_t *limit(resp_t *r, const char *obj, const char *field)
{
    return json_object_get(json_object_get(r->json, obj), field);
}

static long long ival(resp_t *r, const char *obj, const char *field)
{
    json_t *v = limit(r, obj, field);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* Creates a sandbox with `key`: its id (caller frees), or NULL with the answer in *out. */
static char *create(const char *key, resp_t *out)
{
    resp_t r;
    api_key(&S, &r, H2, key, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":120}");
    char *id = r.status == 201 ? strdup(jstr(&r, "sandboxID")) : NULL;
    if (out)
        *out = r;
    else
        resp_free(&r);
    return id;
}

static long st(const char *key, const char *method, const char *path, const char *body)
{
    resp_t r;
    api_key(&S, &r, H2, key, method, path, body);
    long s = r.status;
    resp_free(&r);
    return s;
}

static void check_429(resp_t *r, const char *reason)
{
    CHECK_INT(r->status, 429);
    const char *m = jstr(r, "message");
    CHECK(strstr(m, reason) != NULL);
    if (!strstr(m, reason))
        fprintf(stderr, "429 message '%s' lacks '%s'\n", m, reason);
    CHECK_INT(json_integer_value(json_object_get(r->json, "code")), 429);
    CHECK(strstr(jstr(r, "error"), reason) != NULL);
}

static void defaults(void)
{
    resp_t r;
    api(&S, &r, H1, "GET", "/teams", NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 3);
    CHECK_INT(ival(&r, "limits", "maxMemoryMB"), 4096);
    CHECK_INT(ival(&r, "limits", "maxSnapshots"), 5);
    CHECK_INT(ival(&r, "limits", "maxTimeoutSeconds"), 86400);
    CHECK_INT(ival(&r, "usage", "runningSandboxes"), 0);
    CHECK_INT(ival(&r, "usage", "memoryMB"), 0);
    CHECK_INT(ival(&r, "usage", "snapshots"), 0);
    resp_free(&r);
}

static void bad_limits(const char *team)
{
    char path[128];
    snprintf(path, sizeof(path), "/admin/teams/%s/limits", team);
    CHECK_INT(admin("PUT", path, "{\"maxSandbox\":3}", NULL), 400);
    CHECK_INT(admin("PUT", path, "{\"maxSandboxes\":\"3\"}", NULL), 400);
    CHECK_INT(admin("PUT", path, "{\"maxSandboxes\":0}", NULL), 400);
    CHECK_INT(admin("PUT", path, "{\"maxMemoryMB\":-1}", NULL), 400);
    CHECK_INT(admin("PUT", path, "{\"limits\":[1]}", NULL), 400);
    CHECK_INT(admin("PUT", path, "[]", NULL), 400);
    CHECK_INT(admin("PUT", "/admin/teams/nosuchteam/limits", "{\"maxSandboxes\":3}", NULL), 404);
    resp_t r;
    const char *no[] = {"Content-Type: application/json", NULL};
    CHECK(http_req(&S, &r, H1, "PUT", path, "{\"maxSandboxes\":3}", 18, no) == 0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    CHECK_INT(st(S.key, "PUT", path, "{\"maxSandboxes\":3}"), 401); /* a team key is no admin token */
    /* nothing of the refused ones was applied */
    CHECK_INT(admin("PUT", path, "{}", &r), 200);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 2);
    resp_free(&r);
}

/* Team B: 2 concurrent, then memory 512 MiB (base is 256 MiB): the third is refused by one or
 * the other, with the reason; a kill frees the room; team A is unaffected meanwhile. */
static void concurrency_and_memory(const char *keyB, const char *teamB)
{
    char path[128];
    resp_t r;
    snprintf(path, sizeof(path), "/admin/teams/%s/limits", teamB);
    char *a = create(keyB, NULL), *b = create(keyB, NULL);
    CHECK(a && b);
    CHECK(!create(keyB, &r));
    check_429(&r, "maximum number of concurrent sandboxes (2)");
    CHECK(resp_header(&r, "retry-after") != NULL);
    resp_free(&r);
    char *other = create(S.key, NULL); /* team A (limit 3) is not B's */
    CHECK(other != NULL);
    /* memory: 512 MiB, room for two of 256 */
    CHECK_INT(admin("PUT", path, "{\"limits\":{\"maxSandboxes\":10,\"maxMemoryMB\":512}}", &r), 200);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 10);
    CHECK_INT(ival(&r, "limits", "maxMemoryMB"), 512);
    CHECK_INT(ival(&r, "usage", "memoryMB"), 512);
    CHECK_INT(ival(&r, "usage", "runningSandboxes"), 2);
    resp_free(&r);
    CHECK(!create(keyB, &r));
    check_429(&r, "maximum memory of concurrent sandboxes (512 MiB)");
    resp_free(&r);
    /* resume over the quota: pause one, take its room, resume it */
    char p[128];
    snprintf(p, sizeof(p), "/sandboxes/%s/pause", a);
    CHECK_INT(st(keyB, "POST", p, NULL), 204);
    char *c = create(keyB, NULL);
    CHECK(c != NULL);
    snprintf(p, sizeof(p), "/sandboxes/%s/resume", a);
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    check_429(&r, "maximum memory");
    resp_free(&r);
    /* a fork over the quota fails as a create does */
    snprintf(p, sizeof(p), "/sandboxes/%s/fork", b);
    api_key(&S, &r, H2, keyB, "POST", p, "{\"count\":1}");
    CHECK(r.status == 429 || strstr(r.body ? r.body : "", "maximum memory") != NULL);
    resp_free(&r);
    /* a kill frees the room: the resume goes through */
    snprintf(p, sizeof(p), "/sandboxes/%s", c);
    CHECK_INT(st(keyB, "DELETE", p, NULL), 204);
    snprintf(p, sizeof(p), "/sandboxes/%s/resume", a);
    CHECK_INT(st(keyB, "POST", p, "{}"), 201);
    /* null: back to the config's default (4096 MiB, 3 sandboxes) */
    CHECK_INT(admin("PUT", path, "{\"maxMemoryMB\":null,\"maxSandboxes\":null}", &r), 200);
    CHECK_INT(ival(&r, "limits", "maxMemoryMB"), 4096);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 3);
    resp_free(&r);
    char *d = create(keyB, NULL);
    CHECK(d != NULL);
    char *ids[] = {a, b, d, other};
    for (int i = 0; i < 4; i++) {
        if (!ids[i])
            continue;
        snprintf(p, sizeof(p), "/sandboxes/%s", ids[i]);
        CHECK_INT(st(i == 3 ? S.key : keyB, "DELETE", p, NULL), 204);
        free(ids[i]);
    }
    free(c);
}

/* Team B keeps at most 1 snapshot; the second is refused until the first is deleted. */
static char *snapshots(const char *keyB, const char *teamB)
{
    char path[128], p[128];
    resp_t r;
    snprintf(path, sizeof(path), "/admin/teams/%s/limits", teamB);
    CHECK_INT(admin("PUT", path, "{\"maxSnapshots\":1}", NULL), 200);
    char *a = create(keyB, NULL);
    CHECK(a != NULL);
    if (!a)
        return NULL;
    snprintf(p, sizeof(p), "/sandboxes/%s/snapshot", a);
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    CHECK_INT(r.status, 201);
    char *snap = strdup(jstr(&r, "snapshotID"));
    resp_free(&r);
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    check_429(&r, "maximum number of stored snapshots (1)");
    resp_free(&r);
    snprintf(p, sizeof(p), "/sandboxes/%s/snapshots", a); /* E2B's form */
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    check_429(&r, "stored snapshots");
    resp_free(&r);
    api_key(&S, &r, H2, keyB, "GET", "/snapshots", NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT((long long)json_array_size(r.json), 1);
    resp_free(&r);
    snprintf(p, sizeof(p), "/snapshots/%s", snap);
    CHECK_INT(st(keyB, "DELETE", p, NULL), 204);
    snprintf(p, sizeof(p), "/sandboxes/%s/snapshot", a);
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    CHECK_INT(r.status, 201);
    free(snap);
    snap = strdup(jstr(&r, "snapshotID"));
    resp_free(&r);
    snprintf(p, sizeof(p), "/sandboxes/%s", a);
    CHECK_INT(st(keyB, "DELETE", p, NULL), 204);
    free(a);
    return snap;
}

/* After a restart: B's own limits and its one stored snapshot are still counted. */
static void after_restart(const char *keyB, const char *teamB)
{
    resp_t r;
    char th[64];
    snprintf(th, sizeof(th), "X-Team-ID: %s", teamB);
    const char *as_b[] = {ADMIN_TOK, th, NULL};
    CHECK(http_req(&S, &r, H1, "GET", "/teams", NULL, 0, as_b) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(ival(&r, "limits", "maxSnapshots"), 1);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 3);
    CHECK_INT(ival(&r, "usage", "snapshots"), 1);
    CHECK_INT(ival(&r, "usage", "runningSandboxes"), 0);
    resp_free(&r);
    char *a = create(keyB, NULL);
    CHECK(a != NULL);
    if (!a)
        return;
    char p[128];
    snprintf(p, sizeof(p), "/sandboxes/%s/snapshot", a);
    api_key(&S, &r, H2, keyB, "POST", p, "{}");
    check_429(&r, "stored snapshots (1)");
    resp_free(&r);
    snprintf(p, sizeof(p), "/sandboxes/%s", a);
    CHECK_INT(st(keyB, "DELETE", p, NULL), 204);
    free(a);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n"
                      "teams:\n  max_sandboxes: 3\n  max_memory_mb: 4096\n  max_snapshots: 5\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    const char *bst = "";
    for (int i = 0; i < 1200 && strcmp(bst, "ready"); i++) {
        resp_t r;
        api(&S, &r, H1, "GET", "/templates/base", NULL);
        bst = !strcmp(jstr(&r, "buildStatus"), "ready") ? "ready" : "";
        resp_free(&r);
        if (!*bst)
            usleep(100000);
    }
    CHECK_STR(bst, "ready");
    defaults();
    resp_t r;
    CHECK_INT(admin("POST", "/admin/teams", "{\"name\":\"b\",\"limits\":{\"maxSandboxes\":0}}", NULL), 400);
    CHECK_INT(admin("POST", "/admin/teams", "{\"name\":\"b\",\"limits\":{\"maxSandboxes\":2}}", &r), 201);
    char *keyB = strdup(jstr(&r, "apiKey")), *teamB = strdup(jstr(&r, "teamID"));
    resp_free(&r);
    api_key(&S, &r, H1, keyB, "GET", "/teams", NULL);
    CHECK_INT(ival(&r, "limits", "maxSandboxes"), 2);
    CHECK_INT(ival(&r, "limits", "maxMemoryMB"), 4096); /* the rest from the config */
    CHECK_INT(ival(&r, "limits", "maxSnapshots"), 5);
    resp_free(&r);
    bad_limits(teamB);
    concurrency_and_memory(keyB, teamB);
    char *snap = snapshots(keyB, teamB);
    CHECK_INT(srv_stop(&S), 0);
    CHECK_INT(srv_restart(&S), 0);
    after_restart(keyB, teamB);
    free(snap);
    free(keyB);
    free(teamB);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
