/* JSON <-> MessagePack through jansson and msgpack-c. Both directions are bounded in depth so
 * hostile input cannot exhaust the stack. */
#include "lel_codec.h"
#include "lel_util.h"

#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pack(msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth > LEL_CODEC_MAX_DEPTH)
        return -EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *item;
        if (msgpack_pack_map(pk, json_object_size(v)) < 0)
            return -ENOMEM;
        json_object_foreach((json_t *)v, k, item)
        {
            if (msgpack_pack_str_with_body(pk, k, strlen(k)) < 0)
                return -ENOMEM;
            int r = pack(pk, item, depth + 1);
            if (r < 0)
                return r;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        if (msgpack_pack_array(pk, json_array_size(v)) < 0)
            return -ENOMEM;
        json_array_foreach(v, i, item)
        {
            int r = pack(pk, item, depth + 1);
            if (r < 0)
                return r;
        }
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v)) < 0 ? -ENOMEM : 0;
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v)) < 0 ? -ENOMEM : 0;
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v)) < 0 ? -ENOMEM : 0;
    case JSON_TRUE:
        return msgpack_pack_true(pk) < 0 ? -ENOMEM : 0;
    case JSON_FALSE:
        return msgpack_pack_false(pk) < 0 ? -ENOMEM : 0;
    case JSON_NULL:
        return msgpack_pack_nil(pk) < 0 ? -ENOMEM : 0;
    }
    return -EINVAL;
}

/* Converts one msgpack object; returns NULL and fills err on anything JSON cannot carry. */
static json_t *unpack(const msgpack_object *o, int depth, char *err, size_t errlen)
{
    if (depth > LEL_CODEC_MAX_DEPTH) {
        snprintf(err, errlen, "nesting deeper than %d", LEL_CODEC_MAX_DEPTH);
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            snprintf(err, errlen, "integer out of range");
            return NULL;
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        /* msgpack-c gives an empty fixstr a NULL pointer, which jansson refuses (found by
         * tests/fuzz/fuzz_codec) */
        const char *p = o->via.str.size ? o->via.str.ptr : "";
        /* a NUL is refused as the JSON decoder refuses \u0000: handlers read C strings, and a
         * path or name cut short at it would name something else (found by fuzz_codec) */
        if (memchr(p, 0, o->via.str.size)) {
            snprintf(err, errlen, "string contains a NUL");
            return NULL;
        }
        json_t *s = json_stringn(p, o->via.str.size);
        if (!s)
            snprintf(err, errlen, "string is not valid UTF-8");
        return s;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *item = unpack(&o->via.array.ptr[i], depth + 1, err, errlen);
            if (!item || json_array_append_new(a, item) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            const char *key = kv->key.via.str.size ? kv->key.via.str.ptr : ""; /* NULL when empty, as above */
            if (kv->key.type != MSGPACK_OBJECT_STR || memchr(key, 0, kv->key.via.str.size)) {
                snprintf(err, errlen, "map keys must be strings");
                json_decref(m);
                return NULL;
            }
            json_t *item = unpack(&kv->val, depth + 1, err, errlen);
            if (!item || json_object_setn_new(m, key, kv->key.via.str.size, item) < 0) {
                if (item)
                    snprintf(err, errlen, "map key is not valid UTF-8");
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        snprintf(err, errlen, "unsupported MessagePack type");
        return NULL;
    }
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walks the MessagePack framing (not the values) and refuses any array/map whose declared
 * element count exceeds the bytes left: msgpack-c reserves count x 16/32 bytes up front, so a
 * 5-byte header could otherwise ask for gigabytes. Each element takes at least one byte. */
static int framing_sane(const unsigned char *p, size_t len)
{
    uint64_t pending = 1;
    size_t i = 0;
    while (pending > 0) {
        if (i >= len)
            return 0;
        unsigned b = p[i++];
        uint64_t skip = 0, items = 0;
        int n;
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x8f)
            items = 2 * (uint64_t)(b & 0xf);
        else if (b >= 0x90 && b <= 0x9f)
            items = b & 0xf;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else if (b >= 0xca && b <= 0xd3) {
            static const int sizes[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
            skip = (uint64_t)sizes[b - 0xca];
        } else if (b >= 0xd4 && b <= 0xd8)
            skip = 1 + (1u << (b - 0xd4));
        else {
            switch (b) {
            case 0xc4: case 0xd9: n = 1; break;
            case 0xc5: case 0xda: case 0xdc: case 0xde: n = 2; break;
            case 0xc6: case 0xdb: case 0xdd: case 0xdf: n = 4; break;
            case 0xc7: n = 1; skip = 1; break;
            case 0xc8: n = 2; skip = 1; break;
            case 0xc9: n = 4; skip = 1; break;
            default: return 0; /* 0xc1 is never used */
            }
            if (len - i < (size_t)n)
                return 0;
            uint64_t v = be(p + i, n);
            i += (size_t)n;
            if (b == 0xdc || b == 0xdd)
                items = v;
            else if (b == 0xde || b == 0xdf)
                items = 2 * v;
            else
                skip += v;
        }
        if (skip > len - i)
            return 0;
        i += (size_t)skip;
        pending += items;
        if (pending > len - i)
            return 0;
    }
    return 1;
}

int lel_codec_decode(const char *buf, size_t len, enum lel_codec_format fmt, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (fmt == LEL_FMT_JSON) {
        json_error_t je;
        json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!doc) {
            snprintf(err, errlen, "malformed JSON: %s", je.text);
            return -EINVAL;
        }
        *out = doc;
        return 0;
    }
    if (!framing_sane((const unsigned char *)buf, len)) {
        snprintf(err, errlen, "malformed MessagePack: truncated, or a length larger than the body");
        return -EINVAL;
    }
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    int r = msgpack_unpack_next(&u, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        snprintf(err, errlen, "malformed MessagePack%s",
                 r == MSGPACK_UNPACK_CONTINUE ? ": truncated" : r == MSGPACK_UNPACK_NOMEM_ERROR ? ": too deep or too large" : "");
        msgpack_unpacked_destroy(&u);
        return -EINVAL;
    }
    err[0] = '\0';
    *out = unpack(&u.data, 0, err, errlen);
    msgpack_unpacked_destroy(&u);
    return *out ? 0 : -EINVAL;
}

int lel_codec_encode(const json_t *doc, enum lel_codec_format fmt, char **buf, size_t *len)
{
    if (fmt == LEL_FMT_JSON) {
        size_t n = json_dumpb(doc, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        char *p = n ? malloc(n) : NULL;
        if (!p)
            return -ENOMEM;
        *len = json_dumpb(doc, p, n, JSON_COMPACT | JSON_ENCODE_ANY);
        *buf = p;
        return 0;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int r = pack(&pk, doc, 0);
    if (r < 0) {
        msgpack_sbuffer_destroy(&sb);
        return r;
    }
    *len = sb.size;
    *buf = msgpack_sbuffer_release(&sb);
    return 0;
}

void lel_json_set_time(json_t *obj, const char *key, int64_t ms)
{
    char buf[32];
    lel_rfc3339(ms, buf);
    json_object_set_new(obj, key, json_string(buf));
}
