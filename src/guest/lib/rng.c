/* ChaCha20 as a random generator: see rng.h. */
#include "rng.h"
#include "klib.h"

static uint32_t key[8];
static uint64_t counter; /* blocks produced under the current key */

static uint32_t rotl(uint32_t v, int n)
{
    return v << n | v >> (32 - n);
}

#define QR(a, b, c, d)                                                                                           \
    do {                                                                                                         \
        a += b, d = rotl(d ^ a, 16), c += d, b = rotl(b ^ c, 12), a += b, d = rotl(d ^ a, 8), c += d,            \
            b = rotl(b ^ c, 7);                                                                                  \
    } while (0)

void krng_block(const uint32_t k[8], uint64_t ctr, uint64_t nonce, uint8_t out[64])
{
    uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7],
                       (uint32_t)ctr, (uint32_t)(ctr >> 32), (uint32_t)nonce, (uint32_t)(nonce >> 32)};
    uint32_t x[16];
    kmemcpy(x, in, sizeof(x));
    for (int i = 0; i < 10; i++) { /* 20 rounds: a column round and a diagonal round each time */
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) { /* little-endian words */
        uint32_t v = x[i] + in[i];
        out[4 * i] = (uint8_t)v;
        out[4 * i + 1] = (uint8_t)(v >> 8);
        out[4 * i + 2] = (uint8_t)(v >> 16);
        out[4 * i + 3] = (uint8_t)(v >> 24);
    }
}

/* The key becomes the first half of the next block: what came before cannot be recomputed. */
static void rekey(void)
{
    uint8_t b[64];
    krng_block(key, counter++, 0, b);
    kmemcpy(key, b, sizeof(key));
    kmemset(b, 0, sizeof(b));
    counter = 0;
}

void krng_mix(const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)key)[i % sizeof(key)] ^= p[i];
    rekey();
}

void krng_bytes(void *out, size_t n)
{
    uint8_t *o = out, b[64];
    while (n) {
        size_t c = n < sizeof(b) ? n : sizeof(b);
        krng_block(key, counter++, 1, b); /* nonce 1: output never equals a rekeying block */
        kmemcpy(o, b, c);
        o += c;
        n -= c;
    }
    kmemset(b, 0, sizeof(b));
    rekey();
}
