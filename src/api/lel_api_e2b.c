/* E2B's control-plane request shapes, mapped onto ours before the call goes to its actor.
 * The E2B SDK's create body carries fields our own API does not have (`secure`,
 * `allow_internet_access`, `network`, `autoPauseMemory`, `autoResume`, `mcp`, `iam`,
 * `volumeMounts`); the pause body carries `memory`. What asks for what lelantosd does anyway
 * is accepted, what asks for something it cannot do yet is a 400 naming the field: a user
 * must never believe a sandbox has what it has not. Facts: ../shared/docs/PEER-E2B.md §1.4. */
#include "lel_api_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A boolean field: absent or null 0 (*v untouched), 1 set, -EINVAL with a 400 set. */
static int bool_field(lel_call_t *c, json_t *obj, const char *name, const char *shown, int *v)
{
    json_t *j = json_object_get(obj, name);
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_boolean(j)) {
        lel_call_error(c, 400, "invalid field '%s': must be a boolean", shown);
        return -EINVAL;
    }
    *v = json_is_true(j);
    return 1;
}

static int unsupported(lel_call_t *c, const char *field, const char *why)
{
    lel_call_error(c, 400, "unsupported field '%s': %s", field, why);
    return -EINVAL;
}

/* `network`: an empty object (or null) asks for nothing; any setting is refused, since the
 * sandboxes have no network device yet (no egress, no public traffic to filter). */
static int network_field(lel_call_t *c, json_t *net)
{
    if (!net || json_is_null(net))
        return 0;
    if (!json_is_object(net)) {
        lel_call_error(c, 400, "invalid field 'network': must be an object");
        return -EINVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(net, k, v)
    {
        char name[96];
        snprintf(name, sizeof(name), "network.%.64s", k);
        return unsupported(c, name, "sandboxes have no network yet, so there is no traffic to allow, deny or route");
    }
    return 0;
}

static int create_fields(lel_call_t *c)
{
    json_t *b = c->json;
    int v = 0, r;
    /* E2B secures every sandbox's data plane; so do we (an envdAccessToken each): true or false
     * changes nothing, as on E2B since the SDK stopped sending it */
    if (bool_field(c, b, "secure", "secure", &v) < 0)
        return -EINVAL;
    if ((r = bool_field(c, b, "allow_internet_access", "allow_internet_access", &v)) < 0)
        return -EINVAL;
    if (r == 1 && v)
        return unsupported(c, "allow_internet_access", "sandboxes have no network yet (false is what they get)");
    if (network_field(c, json_object_get(b, "network")) < 0)
        return -EINVAL;
    v = 1;
    if (bool_field(c, b, "autoPauseMemory", "autoPauseMemory", &v) < 0)
        return -EINVAL;
    if (!v)
        return unsupported(c, "autoPauseMemory", "a pause always keeps the memory (no filesystem-only pause)");
    json_t *ar = json_object_get(b, "autoResume");
    if (ar && !json_is_null(ar)) {
        v = 0;
        if (!json_is_object(ar)) {
            lel_call_error(c, 400, "invalid field 'autoResume': must be an object");
            return -EINVAL;
        }
        if (bool_field(c, ar, "enabled", "autoResume.enabled", &v) < 0)
            return -EINVAL;
        if (v)
            return unsupported(c, "autoResume.enabled", "a paused sandbox resumes by connect or resume only");
    }
    json_t *mcp = json_object_get(b, "mcp"), *iam = json_object_get(b, "iam"), *vm = json_object_get(b, "volumeMounts");
    if (mcp && !json_is_null(mcp))
        return unsupported(c, "mcp", "there is no MCP gateway");
    if (iam && !json_is_null(iam))
        return unsupported(c, "iam", "there are no workload identity tokens");
    if (vm && !json_is_null(vm) && (!json_is_array(vm) || json_array_size(vm) > 0))
        return unsupported(c, "volumeMounts", "there are no volumes");
    static const char *const done[] = {"secure", "allow_internet_access", "network", "autoPauseMemory", "autoResume",
                                       "mcp", "iam", "volumeMounts", NULL};
    for (int i = 0; done[i]; i++)
        json_object_del(b, done[i]);
    return 0;
}

int lel__api_e2b_body(lel_call_t *c)
{
    if (!c->json)
        return 0;
    if (c->route == R_SBX_CREATE)
        return create_fields(c);
    if (c->route == R_SBX_PAUSE) {
        int keep = 1;
        if (bool_field(c, c->json, "memory", "memory", &keep) < 0)
            return -EINVAL;
        if (!keep)
            return unsupported(c, "memory", "a pause always keeps the memory (no filesystem-only pause)");
        json_object_del(c->json, "memory");
    }
    return 0;
}
