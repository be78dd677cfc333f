/* Body and record codec: one document model (jansson json_t) carried as JSON or MessagePack.
 * The HTTP layer decodes request bodies and encodes responses with it; the store encodes its
 * records as MessagePack with it. */
#ifndef LEL_CODEC_H
#define LEL_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/** Maximum nesting accepted from MessagePack input (deeper input is refused, not recursed). */
#define LEL_CODEC_MAX_DEPTH 32

enum lel_codec_format { LEL_FMT_JSON = 0, LEL_FMT_MSGPACK };

/** Decodes a whole buffer. Returns 0 and a new reference in *out, or -EINVAL with a reason in err. */
int lel_codec_decode(const char *buf, size_t len, enum lel_codec_format fmt, json_t **out, char *err, size_t errlen);
/** Encodes `doc`. On success *buf is malloc'd (caller frees) and 0 is returned; -ENOMEM/-EINVAL otherwise. */
int lel_codec_encode(const json_t *doc, enum lel_codec_format fmt, char **buf, size_t *len);
/** Stores a time as RFC 3339 UTC ("2026-01-02T03:04:05.678Z") for ms (Unix epoch) into obj[key]. */
void lel_json_set_time(json_t *obj, const char *key, int64_t ms);

#endif
