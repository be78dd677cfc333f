/* JSON <-> MessagePack through jansson and msgpack-c. Both directions are bounded in depth so
 * hostile input cannot exhaust the stack. */
#include "lel_codec.h"

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
        json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
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
            if (kv->key.type != MSGPACK_OBJECT_STR || memchr(kv->key.via.str.ptr, 0, kv->key.via.str.size)) {
                snprintf(err, errlen, "map keys must be strings");
                json_decref(m);
                return NULL;
            }
            json_t *item = unpack(&kv->val, depth + 1, err, errlen);
            if (!item || json_object_setn_new(m, kv->key.via.str.ptr, kv->key.via.str.size, item) < 0) {
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
