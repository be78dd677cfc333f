/* The e2e tests' check of real answers against docs/openapi.json: the harness hands every
 * answer of the API to oas_check, so each test that talks to the daemon also checks that what
 * it got is what the document promises. A small JSON Schema validator over jansson for the
 * subset the document uses ($ref, allOf, anyOf, oneOf, type, properties, required,
 * additionalProperties, items, enum, minimum, maximum, minLength, maxLength, pattern). */
#ifndef LEL_E2E_OAS_H
#define LEL_E2E_OAS_H

#include <jansson.h>
#include <stddef.h>

/** Checks one answer: the document's operation for `method` and `path` (its query ignored),
 * that operation's response for `status` (exact, then "4XX"-style, then "default"), and, when
 * that response has an application/json schema and the answer's `ctype` is JSON, `body`
 * against it. 1 when it conforms, 0 when the path is none of the document's (nothing
 * checked), -1 with `why` filled when it does not conform. The document is read once from
 * `doc_path`. */
int oas_check(const char *doc_path, const char *method, const char *path, long status, const char *ctype,
              const json_t *body, char *why, size_t n);

/** Validates `v` against `schema` (refs resolved in `doc`); 0 or -1 with `why` (a JSON pointer
 * and the reason). */
int oas_validate(const json_t *doc, const json_t *schema, const json_t *v, char *why, size_t n);

#endif
