/* Fuzz target: request bodies as the HTTP layer decodes them (JSON and MessagePack through the
 * codec). The first byte picks the format; whatever decodes must re-encode and decode again. */
#include "common/lel_codec.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum lel_codec_format fmt = (data[0] & 1) ? LEL_FMT_MSGPACK : LEL_FMT_JSON;
    char err[128];
    json_t *doc = NULL;
    if (lel_codec_decode((const char *)data + 1, size - 1, fmt, &doc, err, sizeof(err)) != 0)
        return 0;
    /* a decoded document must survive a round trip in both formats */
    for (int f = LEL_FMT_JSON; f <= LEL_FMT_MSGPACK; f++) {
        char *buf = NULL;
        size_t len = 0;
        if (lel_codec_encode(doc, (enum lel_codec_format)f, &buf, &len) == 0) {
            json_t *again = NULL;
            if (lel_codec_decode(buf, len, (enum lel_codec_format)f, &again, err, sizeof(err)) != 0)
                abort();
            json_decref(again);
            free(buf);
        }
    }
    json_decref(doc);
    return 0;
}
