/* End to end over HTTP/1.1 and HTTP/2: the sandbox lifecycle, templates, snapshots, listing,
 * logs, timeouts, msgpack, and every documented error on these endpoints. */
#include "../../src/common/lel_codec.h"
#include "../lel_test.h"
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

static srv_t S;

static char *create(enum proto p, const char *body)
{
    resp_t r;
    api(&S, &r, p, "POST", "/sandboxes", body);
    CHECK_INT(r.status, 201);
    char *id = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    return id;
}

static long status_of(enum proto p, const char *method, const char *path, const char *body)
{
    resp_t r;
    if (api(&S, &r, p, method, path, body) < 0)
        return -1;
    long st = r.status;
    /* every error carries the documented body */
    if (st >= 400) {
        CHECK(json_integer_value(json_object_get(r.json, "code")) == st);
        CHECK(*jstr(&r, "error") && *jstr(&r, "message"));
    }
    resp_free(&r);
    return st;
}

static void lifecycle(enum proto p)
{
    resp_t r;
    char path[256];
    CHECK(api(&S, &r, p, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":120,\"metadata\":{\"user\":\"ann\",\"k\":\"v\"},\"envVars\":{\"A\":\"1\"}}") == 0);
    CHECK_INT(r.status, 201);
    CHECK_INT(r.version, p == H2 ? 20 : 11);
    const char *fields[] = {"sandboxID", "templateID", "clientID", "state", "startedAt", "endAt", "envdVersion", NULL};
    for (int i = 0; fields[i]; i++)
        CHECK(*jstr(&r, fields[i]));
    CHECK_STR(jstr(&r, "state"), "running");
    CHECK_STR(jstr(&r, "templateID"), "base");
    CHECK(json_integer_value(json_object_get(r.json, "memoryMB")) == 256);
    /* the root file system lives in the guest's memory: it holds no more than that */
    CHECK(json_integer_value(json_object_get(r.json, "diskSizeMB")) == 256);
    CHECK(json_object_get(r.json, "envVars") == NULL); /* private */
    CHECK(strlen(jstr(&r, "sandboxID")) >= 20);
    CHECK(resp_header(&r, "ratelimit-limit") != NULL);
    char *id = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);

    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "sandboxID"), id);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "metadata"), "user")), "ann");
    resp_free(&r);

    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(status_of(p, "POST", path, NULL), 204);
    CHECK_INT(status_of(p, "POST", path, NULL), 409);
    snprintf(path, sizeof(path), "/sandboxes/%s/timeout", id);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":30}"), 409); /* not running */
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    CHECK(api(&S, &r, p, "POST", path, "{\"timeout\":60}") == 0);
    CHECK_INT(r.status, 201);
    CHECK_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    CHECK_INT(status_of(p, "POST", path, NULL), 409);

    snprintf(path, sizeof(path), "/sandboxes/%s/timeout", id);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":30}"), 204);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":\"30\"}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":-1}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{}"), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, p, "GET", path, NULL);
    char end1[64];
    snprintf(end1, sizeof(end1), "%s", jstr(&r, "endAt"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/refresh", id);
    CHECK_INT(status_of(p, "POST", path, "{\"duration\":600}"), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s/refreshes", id); /* E2B alias; never shortens */
    CHECK_INT(status_of(p, "POST", path, "{\"duration\":1}"), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, p, "GET", path, NULL);
    CHECK(strcmp(jstr(&r, "endAt"), end1) > 0);
    resp_free(&r);

    /* connect: 200 when running, 201 when it resumed a paused one */
    snprintf(path, sizeof(path), "/sandboxes/%s/connect", id);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":60}"), 200);
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(status_of(p, "POST", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s/connect", id);
    CHECK_INT(status_of(p, "POST", path, "{\"timeout\":60}"), 201);

    snprintf(path, sizeof(path), "/sandboxes/%s/logs", id);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    json_t *logs = json_object_get(r.json, "logs"), *entries = json_object_get(r.json, "logEntries");
    CHECK(json_array_size(logs) >= 6);
    CHECK(json_array_size(entries) == json_array_size(logs));
    CHECK_STR(json_string_value(json_object_get(json_array_get(logs, 0), "line")), "sandbox created");
    CHECK(json_string_value(json_object_get(json_array_get(entries, 1), "level")) != NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/logs?limit=2", id);
    api(&S, &r, p, "GET", path, NULL);
    CHECK_INT(json_array_size(json_object_get(r.json, "logs")), 2);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/logs?limit=0", id);
    CHECK_INT(status_of(p, "GET", path, NULL), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/metrics", id);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(json_is_array(r.json));
    resp_free(&r);

    /* operations that need the VM say so instead of pretending */
    snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", id);
    CHECK_INT(status_of(p, "POST", path, "{}"), 501);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":\"true\"}"), 501); /* API-only mode: no guest */
    /* the request is validated before anything reaches a guest */
    CHECK_INT(status_of(p, "POST", path, "{}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":5}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":\"ls\",\"cwd\":\"tmp\"}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":\"ls\",\"envs\":{\"A\":1}}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":\"ls\",\"envs\":{\"A=B\":\"x\"}}"), 400);
    CHECK_INT(status_of(p, "POST", path, "{\"cmd\":\"ls\",\"timeoutMs\":0}"), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=relative/x", id);
    CHECK_INT(status_of(p, "GET", path, NULL), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/a/../b", id);
    CHECK_INT(status_of(p, "PUT", path, "x"), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/files", id);
    CHECK_INT(status_of(p, "GET", path, NULL), 400);
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/x", id);
    CHECK_INT(status_of(p, "GET", path, NULL), 501);

    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    CHECK_INT(status_of(p, "DELETE", path, NULL), 204);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0); /* visible as killed during the retention period */
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "state"), "killed");
    resp_free(&r);
    CHECK_INT(status_of(p, "DELETE", path, NULL), 404);
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    CHECK_INT(status_of(p, "POST", path, NULL), 404);
    CHECK(api(&S, &r, p, "GET", "/sandboxes", NULL) == 0);
    CHECK(strstr(r.body, id) == NULL);
    resp_free(&r);
    free(id);
}

static void listing(enum proto p)
{
    char *ids[5], body[128], path[256];
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof(body), "{\"metadata\":{\"batch\":\"%s\",\"i\":\"%d\"}}", p == H2 ? "h2" : "h1", i);
        ids[i] = create(p, body);
    }
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", ids[4]);
    CHECK_INT(status_of(p, "POST", path, NULL), 204);
    resp_t r;
    /* metadata filter, url-encoded */
    snprintf(path, sizeof(path), "/sandboxes?metadata=%s", p == H2 ? "batch%3Dh2%26i%3D3" : "batch%3Dh1%26i%3D3");
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(json_array_size(r.json), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(r.json, 0), "sandboxID")), ids[3]);
    resp_free(&r);
    /* state filter */
    snprintf(path, sizeof(path), "/sandboxes?state=paused&metadata=batch%%3D%s", p == H2 ? "h2" : "h1");
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(json_array_size(r.json), 1);
    resp_free(&r);
    CHECK_INT(status_of(p, "GET", "/sandboxes?state=sleeping", NULL), 400);
    CHECK_INT(status_of(p, "GET", "/sandboxes?limit=0", NULL), 400);
    CHECK_INT(status_of(p, "GET", "/sandboxes?limit=1001", NULL), 400);
    /* pagination: 2 per page until no X-Next-Token; all 5 seen exactly once */
    int seen = 0, pages = 0;
    char token[64] = "";
    do {
        snprintf(path, sizeof(path), "/v2/sandboxes?limit=2&metadata=batch%%3D%s%s%s", p == H2 ? "h2" : "h1",
                 *token ? "&nextToken=" : "", token);
        CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
        CHECK_INT(r.status, 200);
        seen += (int)json_array_size(r.json);
        const char *t = resp_header(&r, "x-next-token");
        snprintf(token, sizeof(token), "%s", t ? t : "");
        resp_free(&r);
    } while (*token && ++pages < 10);
    CHECK_INT(seen, 5);
    CHECK_INT(pages, 2);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
        CHECK_INT(status_of(p, "DELETE", path, NULL), 204);
        free(ids[i]);
    }
}

static void errors(enum proto p)
{
    CHECK_INT(status_of(p, "GET", "/sandboxes/doesnotexist", NULL), 404);
    CHECK_INT(status_of(p, "GET", "/nosuchthing", NULL), 404);
    CHECK_INT(status_of(p, "PATCH", "/sandboxes", NULL), 405);
    CHECK_INT(status_of(p, "DELETE", "/teams", NULL), 405);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"timeout\":\"x\"}"), 400);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"templateID\":5}"), 400);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"templateID\":\"nope\"}"), 404);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"metadata\":{\"a\":1}}"), 400);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"autoPause\":\"yes\"}"), 400);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "[1,2]"), 400);
    CHECK_INT(status_of(p, "POST", "/sandboxes", "{\"snapshotID\":\"nosuch\"}"), 404);
    resp_t r;
    api(&S, &r, p, "POST", "/sandboxes", "{\"timeout\":\"x\"}");
    CHECK(strstr(jstr(&r, "error"), "timeout") != NULL); /* the field is named */
    resp_free(&r);
    /* body over the cap (4096 in this config) */
    char *big = malloc(10000);
    memset(big, ' ', 9999);
    big[0] = '{';
    big[9998] = '}';
    big[9999] = 0;
    CHECK_INT(status_of(p, "POST", "/sandboxes", big), 413);
    free(big);
}

static void msgpack(enum proto p)
{
    json_t *doc = json_pack("{s:s, s:i, s:{s:s}}", "templateID", "base", "timeout", 60, "metadata", "mp", "yes");
    char *buf, kh[128];
    size_t len;
    lel_codec_encode(doc, LEL_FMT_MSGPACK, &buf, &len);
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, "Content-Type: application/msgpack", "Accept: application/msgpack", NULL};
    resp_t r;
    CHECK(http_req(&S, &r, p, "POST", "/sandboxes", buf, len, hdrs) == 0);
    CHECK_INT(r.status, 201);
    CHECK_STR(resp_header(&r, "content-type"), "application/msgpack");
    json_t *out = NULL;
    char err[128];
    CHECK(lel_codec_decode(r.body, r.len, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(out, "metadata"), "mp")), "yes");
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s", json_string_value(json_object_get(out, "sandboxID")));
    resp_free(&r);
    /* an error in msgpack too */
    CHECK(http_req(&S, &r, p, "POST", "/sandboxes", "\xc1", 1, hdrs) == 0);
    CHECK_INT(r.status, 400);
    json_t *e = NULL;
    CHECK(lel_codec_decode(r.body, r.len, LEL_FMT_MSGPACK, &e, err, sizeof(err)) == 0);
    CHECK(json_integer_value(json_object_get(e, "code")) == 400);
    json_decref(e);
    resp_free(&r);
    CHECK_INT(status_of(p, "DELETE", path, NULL), 204);
    json_decref(out);
    json_decref(doc);
    free(buf);
}

static void templates(enum proto p)
{
    resp_t r;
    char path[256], body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"web-%s\",\"cpuCount\":1,\"memoryMB\":512,\"steps\":[{\"type\":\"run\",\"args\":[\"echo\",\"hi\"]},"
             "{\"type\":\"file\",\"path\":\"/etc/motd\",\"content\":\"hello\",\"mode\":420}],\"startCmd\":\"sleep 1000\","
             "\"readyCmd\":\"true\"}",
             p == H2 ? "h2" : "h1");
    CHECK(api(&S, &r, p, "POST", "/templates", body) == 0);
    CHECK_INT(r.status, 202);
    char *tid = strdup(jstr(&r, "templateID")), *bid = strdup(jstr(&r, "buildID"));
    CHECK_STR(jstr(&r, "status"), "waiting"); /* no VM backend, no builder: never a fake ready */
    resp_free(&r);
    CHECK_INT(status_of(p, "POST", "/templates", body), 409); /* same name */
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"cpuCount\":2}"), 400);
    api(&S, &r, p, "POST", "/templates", "{\"name\":\"x\",\"cpuCount\":2}");
    CHECK(strstr(jstr(&r, "error"), "cpuCount") != NULL);
    resp_free(&r);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"memoryMB\":127}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"memoryMB\":1001}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"memoryMB\":8194}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"steps\":[{\"type\":\"dance\"}]}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"steps\":[{\"type\":\"file\",\"path\":\"rel\",\"content\":\"\"}]}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"name\":\"x\",\"fromTemplate\":\"nope\"}"), 400);
    CHECK_INT(status_of(p, "POST", "/templates", "{\"cpuCount\":1}"), 400);

    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(json_integer_value(json_object_get(r.json, "memoryMB")) == 512);
    CHECK(json_integer_value(json_object_get(r.json, "diskSizeMB")) == 512);
    CHECK_STR(jstr(&r, "buildStatus"), "waiting");
    CHECK_INT(json_array_size(json_object_get(r.json, "builds")), 1);
    CHECK(json_object_get(r.json, "definition") == NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    CHECK(api(&S, &r, p, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "status"), "waiting");
    CHECK(json_is_array(json_object_get(r.json, "logs")));
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s/builds/nope", tid);
    CHECK_INT(status_of(p, "GET", path, NULL), 404);
    CHECK(api(&S, &r, p, "GET", "/templates", NULL) == 0);
    CHECK(strstr(r.body, tid) && strstr(r.body, "\"base\""));
    resp_free(&r);
    CHECK(api(&S, &r, p, "GET", "/templates/base", NULL) == 0);
    CHECK(json_integer_value(json_object_get(r.json, "diskSizeMB")) == 256);
    resp_free(&r);

    /* nothing builds it without VMs, so it never starts sandboxes (test_e2e_templates.c) */
    snprintf(body, sizeof(body), "{\"templateID\":\"%s\"}", tid);
    CHECK_INT(status_of(p, "POST", "/sandboxes", body), 409);
    snprintf(path, sizeof(path), "/templates/%s", tid);
    CHECK_INT(status_of(p, "DELETE", path, NULL), 204);
    CHECK_INT(status_of(p, "GET", path, NULL), 404);
    CHECK_INT(status_of(p, "DELETE", "/templates/base", NULL), 403);
    free(tid);
    free(bid);
}

static void snapshots(enum proto p)
{
    resp_t r;
    CHECK(api(&S, &r, p, "GET", "/snapshots", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(json_is_array(r.json));
    resp_free(&r);
    CHECK_INT(status_of(p, "DELETE", "/snapshots/nosuchsnapshot", NULL), 404);
    /* filters and pages as GET /sandboxes (the listing itself needs VMs: test_e2e_vm) */
    CHECK(api(&S, &r, p, "GET", "/snapshots?sandboxID=nosuchsandbox&name=x&limit=5", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(json_is_array(r.json) && json_array_size(r.json) == 0);
    CHECK(resp_header(&r, "x-next-token") == NULL);
    resp_free(&r);
    CHECK_INT(status_of(p, "GET", "/snapshots?limit=0", NULL), 400);
    CHECK_INT(status_of(p, "GET", "/snapshots?limit=1001", NULL), 400);
    CHECK_INT(status_of(p, "GET", "/snapshots?limit=ten", NULL), 400);
    CHECK_INT(status_of(p, "GET", "/snapshots?nextToken=short", NULL), 400);
}

static void timeouts(void)
{
    char *killed = create(H1, "{\"timeout\":1}");
    char *paused = create(H2, "{\"timeout\":1,\"autoPause\":true}");
    char *zero = create(H1, "{\"timeout\":60}");
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/timeout", zero);
    CHECK_INT(status_of(H1, "POST", path, "{\"timeout\":0}"), 204); /* 0 ends it now */
    resp_t r;
    const char *want[] = {"killed", "paused", "killed"};
    char *ids[] = {killed, paused, zero};
    for (int i = 0; i < 3; i++) {
        int ok = 0;
        for (int w = 0; w < 60 && !ok; w++) {
            snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
            api(&S, &r, H1, "GET", path, NULL);
            ok = r.status == 200 && !strcmp(jstr(&r, "state"), want[i]);
            resp_free(&r);
            if (!ok)
                usleep(100000);
        }
        CHECK(ok);
    }
    /* killed ones vanish after the retention period (2 s in this config) */
    int gone = 0;
    for (int w = 0; w < 60 && !gone; w++) {
        snprintf(path, sizeof(path), "/sandboxes/%s", killed);
        api(&S, &r, H1, "GET", path, NULL);
        gone = r.status == 404;
        resp_free(&r);
        if (!gone)
            usleep(100000);
    }
    CHECK(gone);
    snprintf(path, sizeof(path), "/sandboxes/%s/logs", paused);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK(strstr(r.body, "autoPause") != NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s", paused);
    CHECK_INT(status_of(H1, "DELETE", path, NULL), 204);
    free(killed);
    free(paused);
    free(zero);
}

static void team_limit(void)
{
    /* max_sandboxes is 8 in this config */
    char *ids[9];
    int created = 0;
    resp_t r;
    for (int i = 0; i < 9; i++) {
        api(&S, &r, H1, "POST", "/sandboxes", "{}");
        if (r.status == 201)
            ids[created++] = strdup(jstr(&r, "sandboxID"));
        else
            CHECK_INT(r.status, 429);
        resp_free(&r);
    }
    CHECK_INT(created, 8);
    api(&S, &r, H1, "GET", "/teams", NULL);
    CHECK(json_integer_value(json_object_get(json_object_get(r.json, "usage"), "runningSandboxes")) == 8);
    resp_free(&r);
    /* a paused sandbox frees its slot; resuming needs one */
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", ids[0]);
    CHECK_INT(status_of(H1, "POST", path, NULL), 204);
    char *extra = create(H1, "{}");
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", ids[0]);
    CHECK_INT(status_of(H1, "POST", path, NULL), 429);
    snprintf(path, sizeof(path), "/sandboxes/%s", extra);
    CHECK_INT(status_of(H1, "DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", ids[0]);
    CHECK_INT(status_of(H1, "POST", path, NULL), 201);
    for (int i = 0; i < created; i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s", ids[i]);
        CHECK_INT(status_of(H1, "DELETE", path, NULL), 204);
        free(ids[i]);
    }
    free(extra);
}

/* Cleartext HTTP/1.1 with "Upgrade: h2c" switches to HTTP/2 on the same connection. */
static void upgrade(void)
{
    resp_t r;
    CHECK(api(&S, &r, H2_UPGRADE, "GET", "/sandboxes", NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.version, 20);
    CHECK(r.headers && strstr(r.headers, "101 switching protocols"));
    resp_free(&r);
}

int main(void)
{
    if (srv_start(&S, "http:\n  max_body_bytes: 4096\nrate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n"
                      "sandboxes:\n  killed_retention_s: 2\nteams:\n  max_sandboxes: 8\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    for (int p = H1; p <= H2; p++) {
        lifecycle(p);
        listing(p);
        errors(p);
        msgpack(p);
        templates(p);
        snapshots(p);
    }
    upgrade();
    timeouts();
    team_limit();
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
