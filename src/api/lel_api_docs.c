/* The API's description for people and programs: GET /openapi.json (the document embedded at
 * build time from docs/openapi.json) and GET /docs, an interactive page (Swagger UI) over it.
 * The page is ours; Swagger UI's files come from docs.ui_dir (npm's swagger-ui-dist, which
 * tools/setup.sh installs), read once at start into the server object so no request waits on
 * the disk. All public: no credentials, as /health. */
#include "lel_api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char lel_openapi_json[], lel_openapi_json_end[];

void lel_api_openapi(const char **doc, size_t *len)
{
    *doc = lel_openapi_json;
    *len = (size_t)(lel_openapi_json_end - lel_openapi_json);
}

/* the files of swagger-ui-dist the page loads; the first two are needed */
static const struct {
    const char *name, *type;
} ui_files[] = {
    {"swagger-ui-bundle.js", "application/javascript"},
    {"swagger-ui.css", "text/css"},
    {"favicon-32x32.png", "image/png"},
    {"favicon-16x16.png", "image/png"},
};
#define NUI (sizeof(ui_files) / sizeof(ui_files[0]))

struct lel_docs {
    char *data[NUI];
    size_t len[NUI];
    char why[300]; /* why /docs cannot be served; "" when it can */
};

static const char page[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Lelantos API</title>\n<link rel=\"stylesheet\" href=\"/docs/swagger-ui.css\">\n"
    "<link rel=\"icon\" type=\"image/png\" href=\"/docs/favicon-32x32.png\" sizes=\"32x32\">\n"
    "</head>\n<body>\n<div id=\"swagger-ui\"></div>\n<script src=\"/docs/swagger-ui-bundle.js\"></script>\n"
    "<script>\nwindow.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true,\n"
    "  persistAuthorization: true, displayRequestDuration: true, docExpansion: 'none'});\n</script>\n"
    "</body>\n</html>\n";

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    for (;;) {
        if (n == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap ? cap * 2 : 65536) : NULL;
            if (!nb) {
                r = -ENOMEM;
                break;
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            r = ferror(f) ? -EIO : 0;
            break;
        }
    }
    fclose(f);
    if (r < 0) {
        free(buf);
        return r;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int docs_load(lel_server_t *srv)
{
    struct lel_docs *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    srv->docs = d;
    const char *dir = srv->cfg.docs_ui_dir;
    if (!*dir) {
        snprintf(d->why, sizeof(d->why), "/docs is not installed: docs.ui_dir is not set (tools/setup.sh installs "
                                         "swagger-ui-dist into tools/docs-ui/node_modules/swagger-ui-dist)");
        return 0;
    }
    for (size_t i = 0; i < NUI; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", dir, ui_files[i].name);
        int r = read_file(path, &d->data[i], &d->len[i]);
        if (r == -ENOMEM)
            return r;
        if (r < 0 && i < 2) {
            snprintf(d->why, sizeof(d->why), "/docs is not installed: cannot read %.200s (docs.ui_dir): %s", path,
                     strerror(-r));
            fprintf(stderr, "lelantosd: %s\n", d->why);
            return 0;
        }
    }
    return 0;
}

static void docs_free(lel_server_t *srv)
{
    struct lel_docs *d = srv->docs;
    if (!d)
        return;
    for (size_t i = 0; i < NUI; i++)
        free(d->data[i]);
    free(d);
    srv->docs = NULL;
}

int lel_api_init(lel_server_t *srv)
{
    int r = lel__api_stats_new(srv);
    if (r == 0 && (r = docs_load(srv)) < 0)
        lel__api_stats_free(srv);
    return r;
}

void lel_api_free(lel_server_t *srv)
{
    lel_api_metrics_stop(srv);
    docs_free(srv);
    lel__api_stats_free(srv);
}

/* A copy of the static bytes as the call's raw body (the call frees it). */
static void raw_copy(lel_call_t *c, const char *data, size_t len, const char *type)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        lel_call_error(c, 503, "out of memory");
        return;
    }
    memcpy(copy, data, len);
    c->status = 200;
    c->raw = copy;
    c->raw_len = len;
    c->raw_type = type;
}

void lel__api_docs_answer(lel_server_t *srv, lel_call_t *c)
{
    struct lel_docs *d = srv->docs;
    if (c->route == R_OPENAPI) {
        const char *doc;
        size_t len;
        lel_api_openapi(&doc, &len);
        raw_copy(c, doc, len, "application/json");
        return;
    }
    if (*d->why) {
        lel_call_error(c, 404, "%s", d->why);
        return;
    }
    if (c->route == R_DOCS) {
        raw_copy(c, page, sizeof(page) - 1, "text/html; charset=utf-8");
        return;
    }
    for (size_t i = 0; i < NUI; i++)
        if (c->id && !strcmp(c->id, ui_files[i].name) && d->data[i]) {
            raw_copy(c, d->data[i], d->len[i], ui_files[i].type);
            return;
        }
    lel_call_error(c, 404, "no such file of /docs: %s", c->id ? c->id : "");
}
