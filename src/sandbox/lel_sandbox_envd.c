/* The sandbox's side of E2B's data plane (src/envd): what the actor lends envd for each call
 * and message (its VM, token, envVars, and whether it can answer at all), and the hand-off of
 * guest command ends that are envd's. Runs on the sandbox's actor. */
#include "lel_sandbox_int.h"

#include <errno.h>
#include <string.h>

/* The view is read under its lock (the loop threads read it too); the copy is the caller's. */
json_t *lel__sbx_access_view(struct lel_sandbox *s)
{
    json_t *view = lel__sbx_public_view(s), *v = json_deep_copy(view), *tok = json_object_get(s->rec, "envdAccessToken");
    json_decref(view);
    if (v && tok)
        json_object_set(v, "envdAccessToken", tok);
    json_t *traffic = json_object_get(s->rec, "trafficAccessToken"); /* E2B's, for a sandbox closed to the public */
    if (v && traffic)
        json_object_set(v, "trafficAccessToken", traffic);
    return v;
}

int lel__sbx_new_token(json_t *rec)
{
    unsigned char raw[24];
    char hex[2 * sizeof(raw) + 1];
    if (lel_random_bytes(raw, sizeof(raw)) < 0)
        return -EIO;
    lel_hex(raw, sizeof(raw), hex);
    return json_object_set_new(rec, "envdAccessToken", json_string(hex)) < 0 ? -ENOMEM : 0;
}

void lel__sbx_envd_host(struct lel_sandbox *s, struct lel_envd_host *h)
{
    h->srv = s->srv;
    h->actor = s->actor;
    h->vm = s->vm;
    h->sandbox_id = s->id;
    h->token = json_string_value(json_object_get(s->rec, "envdAccessToken"));
    h->env_vars = json_object_get(s->rec, "envVars");
    h->tpl_env = NULL;
    h->workdir = NULL;
    if (s->tpl) {
        const char *workdir;
        lel_template_defaults(s->tpl, &h->tpl_env, &workdir);
        /* E2B's envd takes the template's workdir as the default cwd (its /init defaultWorkdir);
         * a template without one ("/", our default) keeps envd's own default, the home */
        h->workdir = workdir && strcmp(workdir, "/") ? workdir : NULL;
    }
    h->not_running = s->state == S_PAUSED ? "The sandbox is paused"
                   : s->state == S_KILLED ? "The sandbox was not found"
                   : s->stopping          ? "lelantosd is stopping: the sandbox is being paused"
                                          : NULL;
}

static int ensure(struct lel_sandbox *s)
{
    return s->envd || (s->envd = lel_envd_new()) ? 0 : -1;
}

void lel__sbx_envd_call(struct lel_sandbox *s, lel_call_t *c)
{
    struct lel_envd_host h;
    if (ensure(s) < 0) {
        lel_call_error(c, 503, "out of memory");
        return;
    }
    lel__sbx_envd_host(s, &h);
    if (lel_envd_call(s->envd, &h, c))
        s->kept = c;
}

void lel__sbx_envd_msg(struct lel_sandbox *s, int type, uint32_t arg)
{
    struct lel_envd_host h;
    if (!s->envd)
        return;
    lel__sbx_envd_host(s, &h);
    lel_envd_msg(s->envd, &h, type, arg);
}

int lel__sbx_envd_ended(struct lel_sandbox *s, uint32_t id, const struct lel_run_result *res)
{
    struct lel_envd_host h;
    if (!s->envd)
        return 0;
    lel__sbx_envd_host(s, &h);
    return lel_envd_cmd_ended(s->envd, &h, id, res);
}

void lel__sbx_envd_kill_all(struct lel_sandbox *s)
{
    struct lel_envd_host h;
    if (!s->envd)
        return;
    lel__sbx_envd_host(s, &h);
    lel_envd_kill_all(s->envd, &h);
}

int lel__sbx_ncmds(struct lel_sandbox *s)
{
    return s->ncmds + lel_envd_running(s->envd);
}
