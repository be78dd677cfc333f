/* lelctl's requests: one libcurl handle per run (connections are reused), JSON in and out, and
 * the one place where an HTTP status becomes an exit code. */
#include "lel_cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void lel_cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lelctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int lel_cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lelctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(lelctl --help lists the commands)\n", stderr);
    va_end(ap);
    return LEL_EXIT_USAGE;
}

int lel_cli_exit_for(long status)
{
    if (status >= 200 && status < 300)
        return LEL_EXIT_OK;
    switch (status) {
    case 401:
    case 403: return LEL_EXIT_AUTH;
    case 404: return LEL_EXIT_NOTFOUND;
    case 409: return LEL_EXIT_CONFLICT;
    case 429:
    case 503: return LEL_EXIT_BUSY;
    default: return LEL_EXIT_ERROR;
    }
}

char *lel_cli_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0), *out = e ? strdup(e) : NULL;
    curl_free(e);
    return out;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    struct lel_cli_resp *r = ctx;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = 0;
    return sz * n;
}

/* Copies a header's value (without CRLF) into dst when the line is `name: value`. */
static void header_value(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
        vl--;
    snprintf(dst, cap, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
    struct lel_cli_resp *r = ctx;
    header_value(p, sz * n, "x-next-token", r->next_token, sizeof(r->next_token));
    header_value(p, sz * n, "content-type", r->ctype, sizeof(r->ctype));
    return sz * n;
}

struct curl_slist *lel_cli_prepare(struct lel_cli *cli, const char *method, const char *path, const char *ctype)
{
    CURL *c = cli->curl;
    char url[8192], hdr[512];
    curl_easy_reset(c);
    snprintf(url, sizeof(url), "%s%s", cli->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, cli->timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "lelctl/" LEL_CLI_VERSION);
    struct curl_slist *h = NULL;
    if (cli->admin_token) { /* /admin takes the admin token alone */
        snprintf(hdr, sizeof(hdr), "X-Admin-Token: %s", cli->admin_token);
        h = curl_slist_append(h, hdr);
    } else if (cli->key) {
        snprintf(hdr, sizeof(hdr), "X-API-Key: %s", cli->key);
        h = curl_slist_append(h, hdr);
    }
    if (ctype) {
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
        h = curl_slist_append(h, hdr);
    }
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip for small bodies */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    return h;
}

int lel_cli_request(struct lel_cli *cli, const char *method, const char *path, json_t *body, struct lel_cli_resp *r)
{
    memset(r, 0, sizeof(*r));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *h = lel_cli_prepare(cli, method, path, text ? "application/json" : NULL);
    CURL *c = cli->curl;
    if (text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    } else if (!strcmp(method, "GET") || !strcmp(method, "DELETE")) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    free(text);
    if (rc != CURLE_OK) {
        lel_cli_err("%s %s%s: %s", method, cli->url, path, curl_easy_strerror(rc));
        lel_cli_resp_free(r);
        return LEL_EXIT_CONNECT;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->len && !strncasecmp(r->ctype, "application/json", 16))
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

int lel_cli_status(const struct lel_cli_resp *r, long ok)
{
    if (ok ? r->status == ok : (r->status >= 200 && r->status < 300))
        return 0;
    const char *msg = json_string_value(json_object_get(r->json, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(r->json, "error"));
    if (msg)
        lel_cli_err("%s (HTTP %ld)", msg, r->status);
    else if (r->status >= 200 && r->status < 300)
        lel_cli_err("unexpected answer: HTTP %ld", r->status);
    else
        lel_cli_err("HTTP %ld%s%.*s", r->status, r->len ? ": " : "", (int)(r->len > 200 ? 200 : r->len),
                    r->body ? r->body : "");
    int code = lel_cli_exit_for(r->status);
    return code ? code : LEL_EXIT_CONNECT;
}

int lel_cli_call(struct lel_cli *cli, const char *method, const char *path, json_t *body, long ok, struct lel_cli_resp *r)
{
    int rc = lel_cli_request(cli, method, path, body, r);
    if (rc)
        return rc;
    return lel_cli_call_done(r, ok, method, path);
}

int lel_cli_call_done(struct lel_cli_resp *r, long ok, const char *method, const char *path)
{
    int rc = lel_cli_status(r, ok);
    if (!rc && ok != 204 && r->status != 204 && !r->json) {
        lel_cli_err("%s %s: the answer is not JSON", method, path);
        rc = LEL_EXIT_CONNECT;
    }
    if (rc)
        lel_cli_resp_free(r);
    return rc;
}

void lel_cli_resp_free(struct lel_cli_resp *r)
{
    free(r->body);
    json_decref(r->json);
    r->body = NULL;
    r->json = NULL;
    r->len = 0;
}
