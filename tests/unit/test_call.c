/* The request object's helpers (src/call): query parameters (decoded, a %00 seen in the
 * length), body fields with their 400s, the error body every client parses. */
#include "../../src/call/lel_call.h"
#include "../lel_test.h"

#include <errno.h>
#include <stdlib.h>

static void query(void)
{
    lel_call_t c = {0};
    c.query = "path=%2Ftmp%2Fa%20b&empty=&flag&x=1&path2=/etc/passwd%00.txt&bad=%zz";
    char *v = lel_call_query(&c, "path");
    CHECK_STR(v, "/tmp/a b");
    free(v);
    v = lel_call_query(&c, "empty");
    CHECK_STR(v, "");
    free(v);
    v = lel_call_query(&c, "flag"); /* a name alone is an empty value */
    CHECK_STR(v, "");
    free(v);
    CHECK(lel_call_query(&c, "missing") == NULL);
    CHECK(lel_call_query(&c, "pat") == NULL); /* a prefix of a name is not the name */
    size_t len = 0;
    v = lel_call_query_len(&c, "path2", &len);
    CHECK(v && len == 16 && strlen(v) == 11); /* the NUL shows as a length past the string */
    free(v);
    CHECK(lel_call_query(&c, "bad") == NULL); /* badly escaped */
}

static void fields(void)
{
    lel_call_t c = {0};
    c.json = json_pack("{s:i, s:f, s:f, s:s, s:n, s:b}", "n", 42, "whole", 7.0, "frac", 1.5, "s", "hello", "null", "t", 1);
    long long n = -1;
    const char *s = NULL;
    CHECK_INT(lel_call_int_field(&c, "n", 0, 100, &n), 1);
    CHECK_INT(n, 42);
    CHECK_INT(lel_call_int_field(&c, "whole", 0, 100, &n), 1); /* 7.0 is the integer 7 */
    CHECK_INT(n, 7);
    n = -1;
    CHECK_INT(lel_call_int_field(&c, "absent", 0, 100, &n), 0);
    CHECK_INT(lel_call_int_field(&c, "null", 0, 100, &n), 0);
    CHECK_INT(n, -1); /* untouched */
    CHECK_INT(lel_call_int_field(&c, "frac", 0, 100, &n), -EINVAL);
    CHECK_INT(c.status, 400);
    CHECK(strstr(json_string_value(json_object_get(c.resp, "message")), "'frac'") != NULL);
    CHECK_INT(lel_call_int_field(&c, "n", 0, 10, &n), -EINVAL); /* out of range names the bounds */
    CHECK(strstr(json_string_value(json_object_get(c.resp, "message")), "between 0 and 10") != NULL);
    CHECK_INT(lel_call_str_field(&c, "s", 10, &s), 1);
    CHECK_STR(s, "hello");
    CHECK_INT(lel_call_str_field(&c, "s", 3, &s), -EINVAL);
    CHECK_INT(lel_call_str_field(&c, "t", 10, &s), -EINVAL);
    json_decref(c.json);
    json_decref(c.resp);
}

static void errors(void)
{
    lel_call_t c = {0};
    lel_call_error(&c, 409, "sandbox is %s, not running", "paused");
    CHECK_INT(c.status, 409);
    CHECK_STR(json_string_value(json_object_get(c.resp, "error")), "sandbox is paused, not running");
    CHECK_STR(json_string_value(json_object_get(c.resp, "message")), "sandbox is paused, not running");
    CHECK_INT(json_integer_value(json_object_get(c.resp, "code")), 409);
    lel_call_store_failed(&c, -EIO); /* replaces the previous answer */
    CHECK_INT(c.status, 500);
    lel_call_store_failed(&c, -ENOSPC); /* a full data dir: 507, saying so */
    CHECK_INT(c.status, 507);
    CHECK_INT(json_integer_value(json_object_get(c.resp, "code")), 507);
    CHECK(strstr(json_string_value(json_object_get(c.resp, "message")), "full") != NULL);
    json_decref(c.resp);
}

int main(void)
{
    query();
    fields();
    errors();
    return lel_test_finish();
}
