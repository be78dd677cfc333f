/* End to end, API-only (vmm.backend: none): what a template is for the sandboxes that start
 * from it, across teams. A template that is not built starts no sandbox (409); names resolve
 * within the caller's team, then the built-ins, and no team may take a built-in's name; the
 * built-in `base` shows each team its own spawnCount and lastSpawnedAt; all of it survives a
 * restart. The same with real builds is in test_e2e_vm_templates.c. */
#include "../lel_test.h"
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static srv_t S;

static long st(const char *key, const char *method, const char *path, const char *body)
{
    resp_t r;
    if (api_key(&S, &r, H1, key, method, path, body) < 0)
        return -1;
    long s = r.status;
    resp_free(&r);
    return s;
}

/* A new team; returns its first key (caller frees). */
static char *new_team(const char *name)
{
    resp_t r;
    char body[128];
    const char *tok[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    CHECK(http_req(&S, &r, H1, "POST", "/admin/teams", body, strlen(body), tok) == 0);
    CHECK_INT(r.status, 201);
    char *key = strdup(jstr(&r, "apiKey"));
    resp_free(&r);
    return key;
}

/* POST /templates; returns its templateID (caller frees), or NULL when not 202. */
static char *new_template(const char *key, const char *body)
{
    resp_t r;
    api_key(&S, &r, H1, key, "POST", "/templates", body);
    CHECK_INT(r.status, 202);
    char *id = r.status == 202 ? strdup(jstr(&r, "templateID")) : NULL;
    resp_free(&r);
    return id;
}

/* GET /templates/{what} as `key`: its templateID, or "" (static buffer). */
static const char *resolves_to(const char *key, const char *what)
{
    static char id[64];
    char path[160];
    resp_t r;
    snprintf(path, sizeof(path), "/templates/%s", what);
    api_key(&S, &r, H1, key, "GET", path, NULL);
    snprintf(id, sizeof(id), "%s", r.status == 200 ? jstr(&r, "templateID") : "");
    resp_free(&r);
    return id;
}

/* Without a VM backend nothing is built: a template stays `waiting`, and a sandbox from it
 * would have none of its steps or startCmd. Only a built-in (which needs no build) starts them. */
static void not_ready(const char *key)
{
    resp_t r;
    char *tid = new_template(key, "{\"name\":\"unbuilt\",\"steps\":[{\"type\":\"run\",\"args\":[\"true\"]}]}");
    char body[128];
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid ? tid : "");
    api_key(&S, &r, H1, key, "POST", "/sandboxes", body);
    CHECK_INT(r.status, 409);
    CHECK(r.body && strstr(r.body, "template is not ready (status waiting)"));
    resp_free(&r);
    CHECK_INT(st(key, "POST", "/sandboxes", "{\"templateID\":\"unbuilt\"}"), 409); /* by name: the same */
    api_key(&S, &r, H1, key, "POST", "/sandboxes", "{\"templateID\":\"base\"}");
    CHECK_INT(r.status, 201);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    CHECK_INT(st(key, "DELETE", path, NULL), 204);
    CHECK_INT(st(key, "DELETE", "/templates/unbuilt", NULL), 204); /* DELETE by name */
    snprintf(path, sizeof(path), "/templates/%s", tid ? tid : "");
    CHECK_INT(st(key, "GET", path, NULL), 404);
    free(tid);
}

/* POST /templates/{id or name}: a new build of the same template from a create's body, kept
 * cpu and memory unless given; refused bodies change nothing; another team's template is not
 * found; the built-in cannot be rebuilt. */
static void rebuild(const char *ka, const char *kb)
{
    char *tid = new_template(ka, "{\"name\":\"again\",\"memoryMB\":512}");
    resp_t r;
    api_key(&S, &r, H1, ka, "GET", "/templates/again", NULL);
    char bid[64];
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    resp_free(&r);
    CHECK_INT(st(ka, "POST", "/templates/again", "{\"name\":\"other\"}"), 400); /* no rename */
    CHECK_INT(st(ka, "POST", "/templates/again", "{\"memoryMB\":7}"), 400);
    CHECK_INT(st(ka, "POST", "/templates/again", "{\"fromTemplate\":\"again\"}"), 400);
    CHECK_INT(st(ka, "POST", "/templates/again", "[]"), 400);
    CHECK_STR(resolves_to(ka, "again"), tid ? tid : "");
    api_key(&S, &r, H1, ka, "GET", "/templates/again", NULL);
    CHECK_STR(jstr(&r, "buildID"), bid); /* the refusals left its build */
    resp_free(&r);
    CHECK_INT(st(kb, "POST", "/templates/again", "{}"), 404);
    api_key(&S, &r, H1, ka, "POST", "/templates/again", "{\"steps\":[{\"type\":\"run\",\"args\":[\"true\"]}]}");
    CHECK_INT(r.status, 202);
    CHECK_STR(jstr(&r, "templateID"), tid ? tid : "");
    char nbid[64];
    snprintf(nbid, sizeof(nbid), "%s", jstr(&r, "buildID"));
    CHECK(strlen(nbid) > 4 && strcmp(nbid, bid));
    resp_free(&r);
    api_key(&S, &r, H1, ka, "GET", "/templates/again", NULL);
    CHECK_STR(jstr(&r, "buildID"), nbid);
    CHECK(json_integer_value(json_object_get(r.json, "memoryMB")) == 512); /* kept */
    resp_free(&r);
    char path[160];
    snprintf(path, sizeof(path), "/templates/again/builds/%s", nbid);
    CHECK_INT(st(ka, "GET", path, NULL), 200);
    CHECK_INT(st(ka, "POST", "/templates/base", "{}"), 403);
    CHECK_INT(st(ka, "DELETE", "/templates/again", NULL), 204);
    free(tid);
}

/* Names and aliases resolve within the caller's team, then among the built-ins. */
static void names(const char *ka, const char *kb)
{
    char *a = new_template(ka, "{\"name\":\"web\"}");
    CHECK_STR(resolves_to(ka, "web"), a ? a : "?");
    CHECK_STR(resolves_to(kb, "web"), ""); /* another team's name is not B's */
    CHECK_INT(st(kb, "POST", "/sandboxes", "{\"templateID\":\"web\"}"), 404);
    char *b = new_template(kb, "{\"name\":\"web\"}"); /* names are per team */
    CHECK_STR(resolves_to(kb, "web"), b ? b : "?");
    CHECK_STR(resolves_to(ka, "web"), a ? a : "?");
    CHECK_INT(st(ka, "POST", "/templates", "{\"name\":\"web\"}"), 409);
    /* fromTemplate takes a name too */
    char *child = new_template(ka, "{\"name\":\"web-child\",\"fromTemplate\":\"web\"}");
    CHECK(child != NULL);
    CHECK_INT(st(kb, "POST", "/templates", "{\"name\":\"x\",\"fromTemplate\":\"web-child\"}"), 400);
    /* a built-in's name and alias are nobody's to take, and the built-in resolves for everyone */
    resp_t r;
    api_key(&S, &r, H1, ka, "POST", "/templates", "{\"name\":\"base\"}");
    CHECK_INT(r.status, 409);
    CHECK(r.body && strstr(r.body, "built-in"));
    resp_free(&r);
    CHECK_STR(resolves_to(ka, "base"), "base");
    CHECK_STR(resolves_to(kb, "base"), "base");
    free(a);
    free(b);
    free(child);
}

/* spawnCount and lastSpawnedAt of `base` as `key` sees them, in GET /templates/base and in the list. */
static long long base_spawns(const char *key, int *last_set)
{
    resp_t r;
    api_key(&S, &r, H1, key, "GET", "/templates/base", NULL);
    long long n = json_integer_value(json_object_get(r.json, "spawnCount"));
    *last_set = json_is_string(json_object_get(r.json, "lastSpawnedAt"));
    resp_free(&r);
    api_key(&S, &r, H1, key, "GET", "/templates", NULL);
    size_t i;
    json_t *t;
    json_array_foreach(r.json, i, t)
    {
        if (!strcmp(json_string_value(json_object_get(t, "templateID")), "base"))
            CHECK_INT(json_integer_value(json_object_get(t, "spawnCount")), n);
    }
    resp_free(&r);
    return n;
}

static void spawn(const char *key, int n)
{
    for (int i = 0; i < n; i++) {
        resp_t r;
        char path[96];
        api_key(&S, &r, H1, key, "POST", "/sandboxes", "{}");
        CHECK_INT(r.status, 201);
        snprintf(path, sizeof(path), "/sandboxes/%s", jstr(&r, "sandboxID"));
        resp_free(&r);
        CHECK_INT(st(key, "DELETE", path, NULL), 204);
    }
}

/* Checks A, B and C's views of base: A spawned `na`, B `nb`, C none. */
static void check_spawns(const char *ka, long long na, const char *kb, long long nb, const char *kc)
{
    int last;
    /* the count is written by the template's actor after the create answers: wait a moment */
    for (int i = 0; i < 50 && (base_spawns(ka, &last) != na || base_spawns(kb, &last) != nb); i++)
        usleep(20000);
    CHECK_INT(base_spawns(ka, &last), na);
    CHECK(last == (na > 0));
    CHECK_INT(base_spawns(kb, &last), nb);
    CHECK(last == (nb > 0));
    CHECK_INT(base_spawns(kc, &last), 0);
    CHECK(!last);
}

int main(void)
{
    if (srv_start(&S, "rate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    char *kb = new_team("team-b"), *kc = new_team("team-c");
    not_ready(S.key);
    names(S.key, kb);
    rebuild(S.key, kb);
    /* the shared base counts each team's spawns apart (the default team spawned one above) */
    spawn(S.key, 2);
    spawn(kb, 1);
    check_spawns(S.key, 3, kb, 1, kc);
    CHECK_INT(srv_stop(&S), 0);
    CHECK(srv_restart(&S) == 0);
    check_spawns(S.key, 3, kb, 1, kc);
    char *wa = strdup(resolves_to(S.key, "web")); /* names are indexed again at start */
    CHECK(strlen(wa) > 4 && strcmp(wa, resolves_to(kb, "web")) && *resolves_to(kb, "web"));
    free(wa);
    CHECK_INT(st(kb, "POST", "/templates", "{\"name\":\"base\"}"), 409);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    free(kb);
    free(kc);
    return lel_test_finish();
}
