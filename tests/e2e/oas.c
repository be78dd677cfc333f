/* The check of answers against docs/openapi.json (see oas.h). */
#include "oas.h"
#include "../../src/api/lel_api.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

static const json_t *resolve(const json_t *doc, const json_t *s)
{
    for (int depth = 0; depth < 16; depth++) {
        const char *ref = json_string_value(json_object_get(s, "$ref"));
        if (!ref || strncmp(ref, "#/", 2))
            return s;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", ref + 2);
        const json_t *at = doc;
        for (char *save = NULL, *t = strtok_r(buf, "/", &save); t && at; t = strtok_r(NULL, "/", &save))
            at = json_object_get(at, t);
        if (!at)
            return NULL;
        s = at;
    }
    return NULL;
}

static int type_is(const char *t, const json_t *v)
{
    if (!strcmp(t, "object"))
        return json_is_object(v);
    if (!strcmp(t, "array"))
        return json_is_array(v);
    if (!strcmp(t, "string"))
        return json_is_string(v);
    if (!strcmp(t, "integer"))
        return json_is_integer(v);
    if (!strcmp(t, "number"))
        return json_is_number(v);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(v);
    if (!strcmp(t, "null"))
        return json_is_null(v);
    return 0;
}

static int fail(char *why, size_t n, const char *at, const char *msg, const char *arg)
{
    snprintf(why, n, "%s: %s%s", *at ? at : "/", msg, arg ? arg : "");
    return -1;
}

static int check(const json_t *doc, const json_t *s, const json_t *v, const char *at, char *why, size_t n);

static int check_type(const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    const json_t *t = json_object_get(s, "type");
    if (json_is_string(t) && !type_is(json_string_value(t), v))
        return fail(why, n, at, "not of type ", json_string_value(t));
    if (json_is_array(t)) {
        size_t i;
        const json_t *x;
        int ok = 0;
        json_array_foreach(t, i, x) ok |= type_is(json_string_value(x), v);
        if (!ok)
            return fail(why, n, at, "none of the allowed types", NULL);
    }
    return 0;
}

static int check_enum(const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    const json_t *e = json_object_get(s, "enum");
    if (!e)
        return 0;
    size_t i;
    const json_t *x;
    json_array_foreach(e, i, x) if (json_equal(x, v)) return 0;
    char *enc = json_dumps(v, JSON_ENCODE_ANY);
    int r = fail(why, n, at, "not one of the enum's values: ", enc);
    free(enc);
    return r;
}

static int check_scalar(const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    const json_t *min = json_object_get(s, "minimum"), *max = json_object_get(s, "maximum");
    if (json_is_number(v) && min && json_number_value(v) < json_number_value(min))
        return fail(why, n, at, "below its minimum", NULL);
    if (json_is_number(v) && max && json_number_value(v) > json_number_value(max))
        return fail(why, n, at, "above its maximum", NULL);
    if (!json_is_string(v))
        return 0;
    size_t len = json_string_length(v);
    const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    if ((mn && (json_int_t)len < json_integer_value(mn)) || (mx && (json_int_t)len > json_integer_value(mx)))
        return fail(why, n, at, "string length out of bounds", NULL);
    const char *pat = json_string_value(json_object_get(s, "pattern"));
    if (pat) {
        regex_t re;
        if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB))
            return fail(why, n, at, "the document's pattern does not compile: ", pat);
        int m = regexec(&re, json_string_value(v), 0, NULL, 0);
        regfree(&re);
        if (m)
            return fail(why, n, at, "does not match ", pat);
    }
    return 0;
}

static int check_object(const json_t *doc, const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    if (!json_is_object(v))
        return 0;
    char sub[512];
    size_t i;
    const json_t *x;
    json_array_foreach(json_object_get(s, "required"), i, x) if (!json_object_get(v, json_string_value(x)))
        return fail(why, n, at, "lacks required property ", json_string_value(x));
    const json_t *props = json_object_get(s, "properties"), *addl = json_object_get(s, "additionalProperties");
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        const json_t *ps = json_object_get(props, k);
        snprintf(sub, sizeof(sub), "%s/%s", at, k);
        if (ps) {
            if (check(doc, ps, val, sub, why, n) < 0)
                return -1;
        } else if (json_is_false(addl)) {
            return fail(why, n, sub, "a property the schema does not allow", NULL);
        } else if (json_is_object(addl) && check(doc, addl, val, sub, why, n) < 0) {
            return -1;
        }
    }
    return 0;
}

static int check_items(const json_t *doc, const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    const json_t *items = json_object_get(s, "items");
    if (!json_is_array(v) || !items)
        return 0;
    char sub[512];
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        snprintf(sub, sizeof(sub), "%s/%zu", at, i);
        if (check(doc, items, x, sub, why, n) < 0)
            return -1;
    }
    return 0;
}

/* allOf: every one; anyOf: at least one; oneOf: exactly one */
static int check_combined(const json_t *doc, const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    size_t i;
    const json_t *x;
    json_array_foreach(json_object_get(s, "allOf"), i, x) if (check(doc, x, v, at, why, n) < 0) return -1;
    const char *kinds[2] = {"anyOf", "oneOf"};
    for (int k = 0; k < 2; k++) {
        const json_t *l = json_object_get(s, kinds[k]);
        if (!l)
            continue;
        int hits = 0;
        char tmp[256];
        json_array_foreach(l, i, x) hits += check(doc, x, v, at, tmp, sizeof(tmp)) == 0;
        if (hits == 0 || (k == 1 && hits > 1))
            return fail(why, n, at, k ? "not exactly one of oneOf" : "none of anyOf", NULL);
    }
    return 0;
}

static int check(const json_t *doc, const json_t *s, const json_t *v, const char *at, char *why, size_t n)
{
    s = resolve(doc, s);
    if (!s)
        return fail(why, n, at, "the document's $ref does not resolve", NULL);
    if (json_is_true(s))
        return 0;
    if (check_type(s, v, at, why, n) < 0 || check_enum(s, v, at, why, n) < 0 || check_scalar(s, v, at, why, n) < 0 ||
        check_object(doc, s, v, at, why, n) < 0 || check_items(doc, s, v, at, why, n) < 0 ||
        check_combined(doc, s, v, at, why, n) < 0)
        return -1;
    return 0;
}

int oas_validate(const json_t *doc, const json_t *schema, const json_t *v, char *why, size_t n)
{
    return check(doc, schema, v, "", why, n);
}

/* ---- finding the operation ---- */

/* How well the template `tpl` matches the path [p, pend): -1 not at all, else the number of
 * literal segments (the most literal template wins: /templates/tags over /templates/{id}). */
static int match_score(const char *tpl, int rest, const char *p, const char *pend)
{
    int score = 0;
    while (*tpl) {
        if (*tpl != '/' || p >= pend || *p != '/')
            return -1;
        tpl++;
        p++;
        const char *te = strchr(tpl, '/'), *se = memchr(p, '/', (size_t)(pend - p));
        te = te ? te : tpl + strlen(tpl);
        se = se ? se : pend;
        if (*tpl == '{') {
            if (se == p)
                return -1;
            if (rest && !*te) /* the rest of the path, however many segments */
                return score;
        } else {
            if ((size_t)(te - tpl) != (size_t)(se - p) || strncmp(tpl, p, (size_t)(te - tpl)))
                return -1;
            score++;
        }
        tpl = te;
        p = se;
    }
    return p == pend || (p + 1 == pend && *p == '/') ? score : -1;
}

static const json_t *find_response(const json_t *op, long status)
{
    const json_t *rs = json_object_get(op, "responses");
    char code[24];
    snprintf(code, sizeof(code), "%ld", status);
    const json_t *r = json_object_get(rs, code);
    if (!r) {
        snprintf(code, sizeof(code), "%ldXX", status / 100);
        r = json_object_get(rs, code);
    }
    return r ? r : json_object_get(rs, "default");
}

/* The file, or where the tests run without the source tree (the QEMU runs), the copy built
 * into the library from it: the same document the daemon under test serves. */
static json_t *load(const char *doc_path)
{
    static json_t *doc; /* the test process's; read once */
    if (!doc) {
        json_error_t e;
        const char *built;
        size_t len;
        lel_api_openapi(&built, &len);
        doc = access(doc_path, R_OK) == 0 ? json_load_file(doc_path, 0, &e) : json_loadb(built, len, 0, &e);
        if (!doc)
            fprintf(stderr, "oas: cannot read %s: %s\n", doc_path, e.text);
    }
    return doc;
}

int oas_check(const char *doc_path, const char *method, const char *path, long status, const char *ctype,
              const json_t *body, char *why, size_t n)
{
    json_t *doc = load(doc_path);
    if (!doc) {
        snprintf(why, n, "no document");
        return -1;
    }
    const char *pend = path + strcspn(path, "?");
    const json_t *best = NULL;
    int best_score = -1;
    const char *k;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), k, item)
    {
        int sc = match_score(k, json_is_true(json_object_get(item, "x-lelantos-rest-of-path")), path, pend);
        if (sc > best_score) {
            best_score = sc;
            best = item;
        }
    }
    if (!best)
        return 0;
    char m[16];
    snprintf(m, sizeof(m), "%s", method);
    for (char *c = m; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    const json_t *op = json_object_get(best, m);
    const char *err_ref = "#/components/schemas/Error";
    const json_t *schema = NULL;
    if (!op) { /* a method the path does not take: 405 with the Error body */
        if (status != 405) {
            snprintf(why, n, "%s is not an operation of this path, yet the answer is %ld", method, status);
            return -1;
        }
        schema = json_pack("{s:s}", "$ref", err_ref);
    } else {
        const json_t *r = resolve(doc, find_response(op, status));
        if (!r) {
            snprintf(why, n, "status %ld is not a documented response", status);
            return -1;
        }
        schema = json_incref(json_object_get(json_object_get(json_object_get(r, "content"), "application/json"), "schema"));
    }
    int json_answer = ctype && !strncasecmp(ctype, "application/json", 16);
    int rc = 1;
    if (schema && json_answer) {
        if (!body) {
            snprintf(why, n, "the answer's body is not JSON");
            rc = -1;
        }
        else if (oas_validate(doc, schema, body, why, n) < 0)
            rc = -1;
    } else if (!schema && json_answer && body && status != 204 && op &&
               json_object_get(json_object_get(resolve(doc, find_response(op, status)), "content"), "*/*") == NULL) {
        snprintf(why, n, "a JSON body where the document says none");
        rc = -1;
    }
    json_decref((json_t *)schema);
    return rc;
}
