/* End to end, API-only (vmm.backend: none): what a template is for the sandboxes that start
 * from it. A template that is not built starts no sandbox (409). The same with real builds is
 * in test_e2e_vm_templates.c. */
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
    api_key(&S, &r, H1, key, "POST", "/sandboxes", "{\"templateID\":\"base\"}");
    CHECK_INT(r.status, 201);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    CHECK_INT(st(key, "DELETE", path, NULL), 204);
    snprintf(path, sizeof(path), "/templates/%s", tid ? tid : "");
    CHECK_INT(st(key, "DELETE", path, NULL), 204);
    CHECK_INT(st(key, "GET", path, NULL), 404);
    free(tid);
}

int main(void)
{
    if (srv_start(&S, "rate_limits:\n  general_per_s: 100000\n  auth_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    not_ready(S.key);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
