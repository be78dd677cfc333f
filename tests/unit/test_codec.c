/* JSON <-> MessagePack codec: round trips and hostile input. */
#include "../../src/common/lel_codec.h"
#include "../lel_test.h"

#include <errno.h>
#include <stdlib.h>

static void roundtrip(void)
{
    const char *doc = "{\"a\":1,\"b\":[true,false,null,-5,2.5,\"x\\u00e9\"],\"c\":{\"d\":\"e\"},\"big\":9223372036854775807}";
    json_t *in, *out;
    char err[128], *buf;
    size_t len;
    CHECK(lel_codec_decode(doc, strlen(doc), LEL_FMT_JSON, &in, err, sizeof(err)) == 0);
    CHECK(lel_codec_encode(in, LEL_FMT_MSGPACK, &buf, &len) == 0);
    CHECK(lel_codec_decode(buf, len, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == 0);
    CHECK(json_equal(in, out));
    /* trailing garbage and truncation are refused */
    json_t *o2;
    char *buf2 = malloc(len + 1);
    memcpy(buf2, buf, len);
    buf2[len] = (char)0xc0;
    CHECK(lel_codec_decode(buf2, len + 1, LEL_FMT_MSGPACK, &o2, err, sizeof(err)) == -EINVAL);
    CHECK(lel_codec_decode(buf, len - 1, LEL_FMT_MSGPACK, &o2, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "truncated") != NULL);
    /* a container claiming more elements than bytes left is refused before allocation */
    const char claim[] = {(char)0xdd, 0x7f, (char)0xff, (char)0xff, (char)0xff, 1, 2, 3};
    CHECK(lel_codec_decode(claim, sizeof(claim), LEL_FMT_MSGPACK, &o2, err, sizeof(err)) == -EINVAL);
    free(buf2);
    free(buf);
    json_decref(in);
    json_decref(out);
}

/* An empty string and an empty key survive MessagePack (msgpack-c hands them over as NULL;
 * found by tests/fuzz/fuzz_codec). */
static void empty_strings(void)
{
    json_t *in = json_pack("{s:s, s:[s]}", "", "", "a", ""), *out = NULL;
    char err[128], *buf;
    size_t len;
    CHECK(lel_codec_encode(in, LEL_FMT_MSGPACK, &buf, &len) == 0);
    CHECK(lel_codec_decode(buf, len, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == 0);
    CHECK(out && json_equal(in, out));
    free(buf);
    json_decref(in);
    json_decref(out);
}

static void hostile(void)
{
    json_t *out;
    char err[128];
    /* deep JSON nesting */
    char deep[5000];
    memset(deep, '[', 4000);
    deep[4000] = '\0';
    CHECK(lel_codec_decode(deep, strlen(deep), LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
    /* deep msgpack nesting: 0x91 = array of one, 40 levels */
    char mp[64];
    memset(mp, 0x91, 40);
    mp[40] = 0x01;
    CHECK(lel_codec_decode(mp, 41, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    /* invalid UTF-8 in JSON and in a msgpack string */
    CHECK(lel_codec_decode("\"\xff\xfe\"", 4, LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
    const char badstr[] = {(char)0xa2, (char)0xff, (char)0xfe};
    CHECK(lel_codec_decode(badstr, 3, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    /* a NUL inside a msgpack string, as JSON's \u0000 is (found by tests/fuzz/fuzz_codec) */
    const char nulstr[] = {(char)0xa3, 'a', 0, 'b'};
    CHECK(lel_codec_decode(nulstr, 4, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "NUL") != NULL);
    CHECK(lel_codec_decode("\"a\\u0000b\"", 10, LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
    /* integers beyond int64 */
    CHECK(lel_codec_decode("99999999999999999999999", 23, LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
    const char huge[] = {(char)0xcf, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
                         (char)0xff, (char)0xff, (char)0xff, (char)0xff};
    CHECK(lel_codec_decode(huge, 9, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    /* a map header claiming 2^28 entries with no data */
    const char bigmap[] = {(char)0xdf, 0x10, 0, 0, 0};
    CHECK(lel_codec_decode(bigmap, 5, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    /* non-string map keys */
    const char intkey[] = {(char)0x81, 0x01, 0x02};
    CHECK(lel_codec_decode(intkey, 3, LEL_FMT_MSGPACK, &out, err, sizeof(err)) == -EINVAL);
    /* duplicate JSON keys */
    CHECK(lel_codec_decode("{\"a\":1,\"a\":2}", 13, LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
    /* truncated JSON */
    CHECK(lel_codec_decode("{\"a\":", 5, LEL_FMT_JSON, &out, err, sizeof(err)) == -EINVAL);
}

int main(void)
{
    roundtrip();
    empty_strings();
    hostile();
    return lel_test_finish();
}
