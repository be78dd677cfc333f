/* Fuzz target: API-key and credential parsing, as a request's head reaches them. The bytes are
 * an HTTP/1 request head, parsed by the parser the gate and h2o run (picohttpparser); its
 * credential headers (X-API-Key, Authorization, X-Admin-Token, X-Team-ID) and route fill a
 * call as the frontend does, and the call is judged by the real server (lel_api_admit: route,
 * the key's format and lookup in the key index, Bearer, the admin token and X-Team-ID,
 * conflicting credentials, rate limits) started once on a scratch data dir, API-only. In the
 * input, "$KEY" stands for the server's real key, "$TEAM" for its team and "$ADMIN" for its
 * admin token, so the fuzzer reaches the accepting paths too. Checked: a request judged 0 on
 * a keyed route acts as an existing team under a key id; a refused one carries an error
 * status, and one refused for its credentials no team; the same credentials judged again give the same answer. */
#include "api/lel_api.h"
#include "core/lel_core.h"
#include "http/lel_phr.h"
#include "team/lel_team.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lel_server_t *srv;
static char key[64], team[LEL_ID_LEN + 1];
static const char *admin = "fuzz-admin-token-0123456789";

static char dir[] = "/tmp/lel-fuzz-auth-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* The scratch data dir goes when the fuzzer exits (the server is left running: exit ends it). */
static void rm_dir(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void start(void)
{
    lel_config_t cfg;
    char err[256], path[4200];
    if (!mkdtemp(dir) || atexit(rm_dir) != 0 || lel_config_init(&cfg) != 0 || lel_config_set_listen(&cfg, "127.0.0.1:0") != 0 ||
        lel_config_set_string(&cfg.data_dir, dir) != 0 || lel_config_set_string(&cfg.vmm_backend, "none") != 0 ||
        lel_config_set_string(&cfg.admin_token, admin) != 0)
        abort();
    cfg.store_sync = 0;
    cfg.rate_general = 1e9;
    cfg.rate_auth = 1e9; /* else failed credentials would soon all be 429 */
    if (lel_server_start(&cfg, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_auth: %s\n", err);
        abort();
    }
    lel_config_free(&cfg); /* the server has its copy */
    snprintf(path, sizeof(path), "%s/initial-api-key", dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(key, sizeof(key), f))
        abort();
    fclose(f);
    key[strcspn(key, "\n")] = 0;
    lel_call_t c;
    memset(&c, 0, sizeof(c));
    c.api_key = key;
    if (lel_auth_resolve(srv, &c) != 0 || !c.team)
        abort();
    snprintf(team, sizeof(team), "%s", c.team->id);
    json_decref(c.resp);
}

/* The input with the placeholders put in (caller frees). */
static char *expand(const uint8_t *data, size_t size, size_t *out_len)
{
    static const char *const from[] = {"$KEY", "$TEAM", "$ADMIN"};
    const char *to[] = {key, team, admin};
    char *out = malloc(size * 32 + 1), *o = out;
    for (size_t i = 0; i < size;) {
        size_t k = 0;
        while (k < 3 && (size - i < strlen(from[k]) || memcmp(data + i, from[k], strlen(from[k]))))
            k++;
        if (k < 3) {
            o = stpcpy(o, to[k]);
            i += strlen(from[k]);
        } else {
            *o++ = (char)data[i++];
        }
    }
    *out_len = (size_t)(o - out);
    return out;
}

static int hname(const struct phr_header *h, const char *name)
{
    return h->name && h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

static void fill(lel_call_t *c, const char *method, size_t mlen, const char *path, size_t plen, struct phr_header *hs,
                 size_t nh)
{
    memset(c, 0, sizeof(*c));
    c->rl_limit = c->rl_remaining = c->rl_reset = c->retry_after = -1;
    c->declared_len = UINT64_MAX;
    c->proxy_fd = -1;
    c->method = mlen == 3 && !memcmp(method, "GET", 3)      ? LEL_M_GET
              : mlen == 4 && !memcmp(method, "POST", 4)     ? LEL_M_POST
              : mlen == 3 && !memcmp(method, "PUT", 3)      ? LEL_M_PUT
              : mlen == 6 && !memcmp(method, "DELETE", 6)   ? LEL_M_DELETE
                                                            : LEL_M_OTHER;
    const char *q = memchr(path, '?', plen);
    c->path = strndup(path, q ? (size_t)(q - path) : plen);
    c->query = q ? strndup(q + 1, plen - (size_t)(q - path) - 1) : NULL;
    for (size_t i = 0; i < nh; i++) {
        char **dst = hname(&hs[i], "x-api-key")       ? &c->api_key
                   : hname(&hs[i], "authorization")   ? &c->bearer
                   : hname(&hs[i], "x-admin-token")   ? &c->admin_token
                   : hname(&hs[i], "x-team-id")       ? &c->team_header
                   : hname(&hs[i], "e2b-sandbox-id")  ? &c->e2b_sandbox
                   : hname(&hs[i], "e2b-sandbox-port") ? &c->e2b_port
                   : hname(&hs[i], "x-access-token")  ? &c->access_token
                   : hname(&hs[i], "host")            ? &c->host
                                                      : NULL;
        if (dst && !*dst)
            *dst = strndup(hs[i].value, hs[i].value_len);
    }
    snprintf(c->peer, sizeof(c->peer), "127.0.0.1");
}

static void unfill(lel_call_t *c)
{
    char **s[] = {&c->path, &c->query, &c->api_key, &c->bearer, &c->admin_token, &c->team_header, &c->e2b_sandbox,
                  &c->e2b_port, &c->access_token, &c->host, &c->id, &c->id2, &c->proxy_path, &c->proxy_host};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        free(*s[i]);
    json_decref(c->json);
    json_decref(c->resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        start();
    size_t len;
    char *req = expand(data, size, &len);
    const char *method, *path;
    size_t mlen, plen, nh = 64;
    int minor;
    struct phr_header hs[64];
    int hl = phr_parse_request(req, len, &method, &mlen, &path, &plen, &minor, hs, &nh, 0);
    if (hl > 0) {
        lel_call_t c;
        fill(&c, method, mlen, path, plen, hs, nh);
        int r = lel_api_admit(srv, &c);
        if (r == 0 && c.admitted && c.team && (!c.key_id[0] || lel_registry_get(srv->teams, c.team->id, NULL, NULL) != c.team))
            abort(); /* acting as a team that is not registered, or under no key */
        if (r != 0 && (c.status < 400 || (r == 401 && c.team)))
            abort(); /* refused without an error, or its credentials refused yet given a team */
        if (c.api_key || c.bearer || c.admin_token) { /* the credentials alone, judged twice alike */
            lel_call_t a, b;
            memset(&a, 0, sizeof(a));
            a.api_key = c.api_key, a.bearer = c.bearer, a.admin_token = c.admin_token, a.team_header = c.team_header;
            b = a;
            int ra = lel_auth_resolve(srv, &a), rb = lel_auth_resolve(srv, &b);
            if (ra != rb || a.team != b.team || (ra == 0 && !a.team))
                abort();
            json_decref(a.resp);
            json_decref(b.resp);
        }
        unfill(&c);
    }
    free(req);
    return 0;
}
