/* Registry and rate limiter: the small shared structures the loop threads use. */
#include "../../src/common/lel_ratelimit.h"
#include "../../src/common/lel_registry.h"
#include "../../src/common/lel_util.h"
#include "../lel_test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void count(void *ctx, const char *id, void *v)
{
    (void)id;
    *(long *)ctx += (long)v;
}

int main(void)
{
    lel_registry_t *r = lel_registry_new();
    CHECK(lel_registry_put(r, "a", (void *)1) == 0);
    CHECK(lel_registry_put(r, "b", (void *)2) == 0);
    CHECK(lel_registry_put(r, "a", (void *)3) == -EEXIST);
    CHECK(lel_registry_get(r, "b", NULL, NULL) == (void *)2);
    long sum = 0;
    lel_registry_foreach(r, count, &sum);
    CHECK_INT(sum, 3);
    CHECK(lel_registry_del(r, "a") == (void *)1);
    CHECK(lel_registry_get(r, "a", NULL, NULL) == NULL);
    CHECK_INT(lel_registry_count(r), 1);
    lel_registry_free(r);

    lel_ratelimit_t *rl = lel_ratelimit_new();
    struct lel_rl_info info;
    int64_t t = 1000000;
    int ok = 0;
    for (int i = 0; i < 5; i++)
        ok += lel_ratelimit_check(rl, "k", 3, 1, t, &info) == 1;
    CHECK_INT(ok, 3); /* burst = one second's worth */
    CHECK_INT(info.remaining, 0);
    CHECK(info.retry_after >= 1);
    CHECK_INT(info.limit, 3);
    CHECK_INT(lel_ratelimit_check(rl, "k", 3, 1, t + 400, &info), 1); /* 1.2 tokens refilled */
    CHECK_INT(lel_ratelimit_check(rl, "k", 3, 1, t + 400, &info), 0);
    CHECK_INT(lel_ratelimit_check(rl, "other", 3, 1, t, &info), 1); /* buckets are independent */
    CHECK_INT(lel_ratelimit_check(rl, "k", 3, 0, t + 1400, &info), 1); /* peek does not take */
    CHECK_INT(info.remaining, 3);
    lel_ratelimit_free(rl);

    char id1[LEL_ID_LEN + 1], id2[LEL_ID_LEN + 1], ts[32], hex[65];
    lel_random_id(id1);
    lel_random_id(id2);
    CHECK(strcmp(id1, id2) != 0);
    CHECK_INT(strlen(id1), LEL_ID_LEN);
    lel_rfc3339(1700000000123LL, ts);
    CHECK_STR(ts, "2023-11-14T22:13:20.123Z");
    lel_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char enc[] = "a%20b+c%3D";
    CHECK(lel_url_decode(enc) == (long)strlen(enc));
    CHECK_STR(enc, "a b c=");
    char bad[] = "%zz";
    CHECK(lel_url_decode(bad) < 0);
    /* UTF-8 sanitizing: valid text unchanged, every invalid sequence one U+FFFD */
    size_t n;
    char *u = lel_utf8_sanitize("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &n);
    CHECK(n == 11 && !memcmp(u, "h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    free(u);
    u = lel_utf8_sanitize("a\xff" "b\xc0\xaf" "c\xed\xa0\x80", 9, &n); /* stray byte, overlong, surrogate */
    CHECK_STR(u, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(u);
    u = lel_utf8_sanitize("x\xe2\x82", 3, &n); /* truncated at the end */
    CHECK_STR(u, "x\xef\xbf\xbd\xef\xbf\xbd");
    free(u);
    return lel_test_finish();
}
