/* End to end: credentials, API keys, members, admin, team isolation across every endpoint,
 * rate limits and TLS. */
#include "../lel_test.h"
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static srv_t S;

static long st(enum proto p, const char *key, const char *method, const char *path, const char *body)
{
    resp_t r;
    if (api_key(&S, &r, p, key, method, path, body) < 0)
        return -1;
    long s = r.status;
    if (s >= 400)
        CHECK(json_integer_value(json_object_get(r.json, "code")) == s);
    resp_free(&r);
    return s;
}

static void credentials(enum proto p)
{
    resp_t r;
    CHECK(http_req(&S, &r, p, "GET", "/health", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "status"), "ok");
    resp_free(&r);
    CHECK(http_req(&S, &r, p, "GET", "/sandboxes", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 401);
    CHECK(json_integer_value(json_object_get(r.json, "code")) == 401);
    resp_free(&r);
    CHECK_INT(st(p, "lel_nothex", "GET", "/sandboxes", NULL), 401);
    CHECK_INT(st(p, "lel_0123456789012345678901234567890123456789", "GET", "/sandboxes", NULL), 401);
    CHECK_INT(st(p, "LEL_0123456789012345678901234567890123456789", "GET", "/sandboxes", NULL), 401);
    char bearer[128];
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", S.key);
    const char *h[] = {bearer, NULL};
    CHECK(http_req(&S, &r, p, "GET", "/sandboxes", NULL, 0, h) == 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
}

static char *new_key(enum proto p, const char *name, char **id)
{
    resp_t r;
    char body[128];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    api(&S, &r, p, "POST", "/api-keys", body);
    CHECK_INT(r.status, 201);
    char *key = strdup(jstr(&r, "key"));
    *id = strdup(jstr(&r, "id"));
    CHECK(strncmp(key, "lel_", 4) == 0 && strlen(key) == 44);
    CHECK(*jstr(&r, "mask") && strstr(jstr(&r, "mask"), key + 8) == NULL);
    CHECK(*jstr(&r, "createdAt"));
    resp_free(&r);
    return key;
}

static void keys(enum proto p)
{
    char *id, *key = new_key(p, "ci", &id), path[128];
    resp_t r;
    CHECK_INT(st(p, key, "GET", "/teams", NULL), 200);
    CHECK(api(&S, &r, p, "GET", "/api-keys", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, id) != NULL);
    CHECK(strstr(r.body, key) == NULL); /* never shown again */
    CHECK(strstr(r.body, "hash") == NULL);
    size_t i;
    json_t *k;
    int used = 0;
    json_array_foreach(r.json, i, k)
    {
        if (!strcmp(json_string_value(json_object_get(k, "id")), id))
            used = json_is_string(json_object_get(k, "lastUsed"));
    }
    CHECK(used);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api-keys/%s", id);
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 204);
    CHECK_INT(st(p, key, "GET", "/teams", NULL), 401); /* revoked at once */
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 404);
    free(key);
    free(id);
}

static void members(enum proto p)
{
    resp_t r;
    char email[64], body[160], path[128];
    snprintf(email, sizeof(email), "dev-%d@example.com", p);
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"role\":\"admin\"}", email);
    CHECK(api(&S, &r, p, "POST", "/teams/members", body) == 0);
    CHECK_INT(r.status, 201);
    CHECK_STR(jstr(&r, "email"), email);
    CHECK_STR(jstr(&r, "role"), "admin");
    CHECK(*jstr(&r, "status") && *jstr(&r, "invitedAt"));
    char *mid = strdup(jstr(&r, "memberID"));
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"email\":\"DEV-%d@EXAMPLE.com\"}", p);
    CHECK_INT(st(p, S.key, "POST", "/teams/members", body), 409);
    CHECK_INT(st(p, S.key, "POST", "/teams/members", "{\"email\":\"not-an-email\"}"), 400);
    CHECK_INT(st(p, S.key, "POST", "/teams/members", "{\"email\":\"a@b.c\",\"role\":\"owner\"}"), 400);
    CHECK_INT(st(p, S.key, "POST", "/teams/members", "{\"email\":42}"), 400);
    CHECK(api(&S, &r, p, "GET", "/teams/members", NULL) == 0);
    CHECK(strstr(r.body, mid) != NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/teams/members/%s", mid);
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 204);
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 404);
    free(mid);
}

/* Team B must see none of team A's things, by any endpoint. */
static void isolation(enum proto p, const char *keyB, const char *teamB)
{
    resp_t r;
    char body[256], path[256];
    api(&S, &r, p, "POST", "/sandboxes", "{\"metadata\":{\"owner\":\"A\"}}");
    char *sid = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"name\":\"secret-%d\"}", p);
    api(&S, &r, p, "POST", "/templates", body);
    char *tid = strdup(jstr(&r, "templateID")), *bid = strdup(jstr(&r, "buildID"));
    resp_free(&r);
    char *kid, *key = new_key(p, "a-key", &kid);
    api(&S, &r, p, "POST", "/teams/members", p == H1 ? "{\"email\":\"iso1@a.io\"}" : "{\"email\":\"iso2@a.io\"}");
    char *mid = strdup(jstr(&r, "memberID"));
    resp_free(&r);

    const char *sbx_ops[][2] = {{"GET", ""},         {"POST", "/pause"},   {"POST", "/resume"},  {"POST", "/connect"},
                                {"POST", "/timeout"}, {"POST", "/refresh"}, {"POST", "/refreshes"}, {"GET", "/logs"},
                                {"GET", "/metrics"},  {"POST", "/snapshot"}, {"POST", "/restore"}, {"POST", "/commands"},
                                {"GET", "/files?path=/"}, {"DELETE", ""}};
    for (size_t i = 0; i < sizeof(sbx_ops) / sizeof(sbx_ops[0]); i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s%s", sid, sbx_ops[i][1]);
        CHECK_INT(st(p, keyB, sbx_ops[i][0], path, "{\"timeout\":10}"), 404);
    }
    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK_INT(st(p, keyB, "GET", path, NULL), 404);
    CHECK_INT(st(p, keyB, "DELETE", path, NULL), 404);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    CHECK_INT(st(p, keyB, "GET", path, NULL), 404);
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid);
    CHECK_INT(st(p, keyB, "POST", "/sandboxes", body), 404);
    snprintf(body, sizeof(body), "{\"name\":\"b\",\"fromTemplate\":\"%s\"}", tid);
    CHECK_INT(st(p, keyB, "POST", "/templates", body), 400);
    snprintf(path, sizeof(path), "/api-keys/%s", kid);
    CHECK_INT(st(p, keyB, "DELETE", path, NULL), 404);
    snprintf(path, sizeof(path), "/teams/members/%s", mid);
    CHECK_INT(st(p, keyB, "DELETE", path, NULL), 404);
    /* lists */
    const char *lists[] = {"/sandboxes", "/v2/sandboxes", "/templates", "/api-keys", "/teams/members", "/snapshots", "/teams"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        CHECK(api_key(&S, &r, p, keyB, "GET", lists[i], NULL) == 0);
        CHECK_INT(r.status, 200);
        CHECK(strstr(r.body, sid) == NULL && strstr(r.body, tid) == NULL && strstr(r.body, kid) == NULL &&
              strstr(r.body, mid) == NULL);
        resp_free(&r);
    }
    api_key(&S, &r, p, keyB, "GET", "/teams", NULL);
    CHECK_STR(jstr(&r, "teamID"), teamB);
    resp_free(&r);
    /* and A still has all of it */
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK_INT(st(p, S.key, "GET", path, NULL), 200);
    CHECK_INT(st(p, key, "GET", path, NULL), 200);
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK_INT(st(p, S.key, "DELETE", path, NULL), 204);
    free(sid);
    free(tid);
    free(bid);
    free(key);
    free(kid);
    free(mid);
}

static void admin(enum proto p)
{
    resp_t r;
    const char *tok[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    const char *bad[] = {"X-Admin-Token: wrong", NULL};
    const char *body = "{\"name\":\"team-b\"}";
    CHECK(http_req(&S, &r, p, "POST", "/admin/teams", body, strlen(body), bad) == 0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    CHECK(http_req(&S, &r, p, "POST", "/admin/teams", "{}", 2, tok) == 0);
    CHECK_INT(r.status, 400);
    resp_free(&r);
    CHECK(http_req(&S, &r, p, "POST", "/admin/teams", body, strlen(body), tok) == 0);
    CHECK_INT(r.status, 201);
    char *keyB = strdup(jstr(&r, "apiKey")), *teamB = strdup(jstr(&r, "teamID"));
    resp_free(&r);
    CHECK_INT(st(p, keyB, "GET", "/sandboxes", NULL), 200);
    /* operator access to a team */
    char th[64];
    snprintf(th, sizeof(th), "X-Team-ID: %s", teamB);
    const char *as_b[] = {"X-Admin-Token: test-admin-token", th, NULL};
    CHECK(http_req(&S, &r, p, "GET", "/teams", NULL, 0, as_b) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "teamID"), teamB);
    resp_free(&r);
    const char *no_team[] = {"X-Admin-Token: test-admin-token", "X-Team-ID: nosuchteam", NULL};
    CHECK(http_req(&S, &r, p, "GET", "/teams", NULL, 0, no_team) == 0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    isolation(p, keyB, teamB);
    free(keyB);
    free(teamB);
}

/* A second server with the documented low limits: 3/s auth endpoints and failed auths, 5/s general. */
static void rate_limits(void)
{
    srv_t R = {0};
    if (srv_start(&R, "rate_limits:\n  general_per_s: 5\n  auth_per_s: 3\n") < 0) {
        CHECK(0);
        return;
    }
    resp_t r;
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        api(&R, &r, H1, "GET", "/sandboxes", NULL);
        ok += r.status == 200;
        if (r.status == 429) {
            limited++;
            CHECK(resp_header(&r, "retry-after") && atoi(resp_header(&r, "retry-after")) >= 1);
            CHECK_STR(jstr(&r, "error"), "rate limit exceeded");
        } else {
            CHECK_STR(resp_header(&r, "ratelimit-limit"), "5");
            CHECK(resp_header(&r, "ratelimit-remaining") && resp_header(&r, "ratelimit-reset"));
        }
        resp_free(&r);
    }
    CHECK(ok >= 5 && ok <= 6);
    CHECK(limited >= 2);
    /* auth endpoints: their own 3/s bucket */
    ok = limited = 0;
    for (int i = 0; i < 6; i++) {
        api(&R, &r, H2, "GET", "/api-keys", NULL);
        ok += r.status == 200;
        limited += r.status == 429;
        resp_free(&r);
    }
    CHECK(ok >= 3 && ok <= 4);
    CHECK(limited >= 2);
    /* failed authentications per client address: 401 three times, then 429 */
    ok = limited = 0;
    for (int i = 0; i < 6; i++) {
        api_key(&R, &r, H1, "lel_0000000000000000000000000000000000000000", "GET", "/sandboxes", NULL);
        ok += r.status == 401;
        limited += r.status == 429;
        resp_free(&r);
    }
    CHECK(ok >= 3 && ok <= 4);
    CHECK(limited >= 2);
    sleep(2); /* buckets refill */
    api(&R, &r, H1, "GET", "/sandboxes", NULL);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK_INT(srv_stop(&R), 0);
    srv_cleanup(&R);
}

static void tls(void)
{
    srv_t T = {0};
    char cmd[600], yaml[600], dir[] = "/tmp/lel-tls-XXXXXX";
    mkdtemp(dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout %s/key.pem -out %s/cert.pem "
             ">/dev/null 2>&1",
             dir, dir);
    if (system(cmd) != 0) {
        printf("TLS test skipped: openssl cannot make a certificate\n");
        return;
    }
    snprintf(yaml, sizeof(yaml), "tls:\n  cert: %s/cert.pem\n  key: %s/key.pem\n", dir, dir);
    T.tls = 1;
    if (srv_start(&T, yaml) < 0) {
        CHECK(0);
        return;
    }
    resp_t r;
    CHECK(api(&T, &r, H2, "GET", "/sandboxes", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.version, 20); /* ALPN chose h2 */
    resp_free(&r);
    CHECK(api(&T, &r, H1, "GET", "/teams", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.version, 11);
    resp_free(&r);
    /* bodies through the gate over TLS: admitted ones arrive whole, refused ones are refused */
    size_t n = 2 << 20;
    char *big = calloc(1, n);
    for (int p = H1; p <= H2; p++) {
        CHECK(api(&T, &r, p, "POST", "/sandboxes", "{\"metadata\":{\"tls\":\"yes\"}}") == 0);
        CHECK_INT(r.status, 201);
        resp_free(&r);
        CHECK(http_req(&T, &r, p, "PUT", "/sandboxes/x/files?path=/tmp/a", big, n, NULL) == 0);
        CHECK_INT(r.status, 401);
        resp_free(&r);
    }
    free(big);
    CHECK_INT(srv_stop(&T), 0);
    srv_cleanup(&T);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    if (srv_start(&S, "rate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    for (int p = H1; p <= H2; p++) {
        credentials(p);
        keys(p);
        members(p);
        admin(p);
    }
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    rate_limits();
    tls();
    return lel_test_finish();
}
