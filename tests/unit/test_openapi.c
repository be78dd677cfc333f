/* The OpenAPI document (docs/openapi.json, embedded in the library) against the router: every
 * route and method of the API layer's table is a path and operation of the document, and every
 * path and operation of the document is a route of the table, so neither can drift from the
 * other. Also checks the document hangs together: every $ref resolves, every operation has an
 * operationId (unique), responses and tags, and every path parameter is declared. */
#include "../../src/api/lel_api_int.h"
#include "../lel_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[5] = {"get", "post", "put", "delete", "patch"};

/* The document's path in the table's form: each "{name}" becomes '*'; a path marked
 * x-lelantos-rest-of-path ends in "**" (its last parameter takes the rest of the path). */
static void to_pattern(const char *path, int rest, char *out, size_t n)
{
    size_t j = 0;
    for (const char *p = path; *p && j + 3 < n; p++) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            if (!e)
                break;
            out[j++] = '*';
            if (rest && !e[1])
                out[j++] = '*';
            p = e;
        } else {
            out[j++] = *p;
        }
    }
    out[j] = 0;
}

static json_t *load_doc(void)
{
    const char *doc;
    size_t len;
    json_error_t e;
    lel_api_openapi(&doc, &len);
    json_t *j = json_loadb(doc, len, 0, &e);
    if (!j)
        fprintf(stderr, "docs/openapi.json: line %d: %s\n", e.line, e.text);
    return j;
}

/* every route of the table is in the document with each of its methods */
static void routes_in_doc(json_t *paths)
{
    const char *pattern;
    unsigned methods;
    int found_port = 0;
    for (size_t i = 0; lel__api_route_at(i, &pattern, &methods) == 0; i++) {
        const char *k;
        json_t *item, *hit = NULL;
        json_object_foreach(paths, k, item)
        {
            char pat[256];
            to_pattern(k, json_is_true(json_object_get(item, "x-lelantos-rest-of-path")), pat, sizeof(pat));
            if (!strcmp(pat, pattern))
                hit = item;
        }
        if (!hit) {
            fprintf(stderr, "route %s is not in docs/openapi.json\n", pattern);
            CHECK(hit != NULL);
            continue;
        }
        found_port |= strstr(pattern, "**") != NULL;
        for (int m = 0; m < 5; m++) {
            int want = (methods >> m) & 1, has = json_object_get(hit, method_names[m]) != NULL;
            if (want != has)
                fprintf(stderr, "%s %s: the router %s it, docs/openapi.json %s\n", method_names[m], pattern,
                        want ? "serves" : "does not serve", has ? "has it" : "lacks it");
            CHECK_INT(has, want);
        }
    }
    CHECK(found_port);
}

/* every path of the document is a route of the table */
static void doc_in_routes(json_t *paths)
{
    const char *k;
    json_t *item;
    json_object_foreach(paths, k, item)
    {
        char pat[256];
        const char *pattern;
        unsigned methods;
        int hit = 0;
        to_pattern(k, json_is_true(json_object_get(item, "x-lelantos-rest-of-path")), pat, sizeof(pat));
        for (size_t i = 0; lel__api_route_at(i, &pattern, &methods) == 0; i++)
            hit |= !strcmp(pat, pattern);
        if (!hit)
            fprintf(stderr, "docs/openapi.json has %s, which no route serves\n", k);
        CHECK(hit);
    }
}

/* a "#/components/..." reference names something */
static int ref_ok(json_t *doc, const char *ref)
{
    if (strncmp(ref, "#/", 2))
        return 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", ref + 2);
    json_t *at = doc;
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && at; t = strtok_r(NULL, "/", &save))
        at = json_object_get(at, t);
    return at != NULL;
}

static void refs_resolve(json_t *doc, json_t *v, int *bad)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (!strcmp(k, "$ref") && json_is_string(x) && !ref_ok(doc, json_string_value(x))) {
                fprintf(stderr, "unresolved $ref %s\n", json_string_value(x));
                (*bad)++;
            }
            refs_resolve(doc, x, bad);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) refs_resolve(doc, x, bad);
    }
}

/* the parameter's own object, following a $ref into components/parameters */
static json_t *param(json_t *doc, json_t *p)
{
    const char *ref = json_string_value(json_object_get(p, "$ref"));
    if (!ref || strncmp(ref, "#/components/parameters/", 24))
        return p;
    return json_object_get(json_object_get(json_object_get(doc, "components"), "parameters"), ref + 24);
}

static void operations_complete(json_t *doc, json_t *paths)
{
    json_t *ids = json_object();
    const char *k;
    json_t *item;
    json_object_foreach(paths, k, item)
    {
        for (int m = 0; m < 5; m++) {
            json_t *op = json_object_get(item, method_names[m]);
            if (!op)
                continue;
            const char *id = json_string_value(json_object_get(op, "operationId"));
            CHECK(id && !json_object_get(ids, id));
            if (id)
                json_object_set_new(ids, id, json_true());
            CHECK(json_array_size(json_object_get(op, "tags")) == 1);
            CHECK(json_object_size(json_object_get(op, "responses")) > 0);
            /* each {name} of the path is a declared path parameter of the operation */
            for (const char *p = strchr(k, '{'); p; p = strchr(p + 1, '{')) {
                const char *e = strchr(p, '}');
                int found = 0;
                size_t i;
                json_t *x;
                json_array_foreach(json_object_get(op, "parameters"), i, x)
                {
                    json_t *pp = param(doc, x);
                    const char *name = json_string_value(json_object_get(pp, "name"));
                    found |= name && !strcmp(json_string_value(json_object_get(pp, "in")), "path") &&
                             strlen(name) == (size_t)(e - p - 1) && !strncmp(name, p + 1, (size_t)(e - p - 1));
                }
                if (!found)
                    fprintf(stderr, "%s %s: path parameter %.*s is not declared\n", method_names[m], k,
                            (int)(e - p - 1), p + 1);
                CHECK(found);
            }
        }
    }
    json_decref(ids);
}

int main(void)
{
    json_t *doc = load_doc();
    CHECK(doc != NULL);
    if (!doc)
        return lel_test_finish();
    CHECK(!strcmp(json_string_value(json_object_get(doc, "openapi")), "3.1.0"));
    json_t *paths = json_object_get(doc, "paths");
    CHECK(json_object_size(paths) > 40);
    routes_in_doc(paths);
    doc_in_routes(paths);
    int bad = 0;
    refs_resolve(doc, doc, &bad);
    CHECK_INT(bad, 0);
    operations_complete(doc, paths);
    json_t *sec = json_object_get(json_object_get(doc, "components"), "securitySchemes");
    CHECK(json_object_get(sec, "ApiKeyAuth") && json_object_get(sec, "BearerAuth") && json_object_get(sec, "AdminToken"));
    json_t *hdr = json_object_get(json_object_get(doc, "components"), "headers");
    CHECK(json_object_get(hdr, "RateLimit-Limit") && json_object_get(hdr, "Retry-After"));
    json_decref(doc);
    return lel_test_finish();
}
