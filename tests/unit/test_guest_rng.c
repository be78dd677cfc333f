/* The guest's random generator, built for the host: its ChaCha20 block equals OpenSSL's for
 * random keys, counters and nonces (so the stream is ChaCha20, not something that looks
 * random), and its output moves on: no two requests, and no request after a stir, repeat. */
#include "../../src/guest/lib/rng.h"
#include "../lel_test.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

static void same_as_openssl(void)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    static const uint8_t zeros[64];
    int diff = 0;
    for (int i = 0; i < 200 && ctx; i++) {
        uint32_t key[8];
        uint64_t ctr, nonce;
        uint8_t ours[64], theirs[64], iv[16];
        int len = 0;
        RAND_bytes((uint8_t *)key, sizeof(key));
        RAND_bytes((uint8_t *)&ctr, sizeof(ctr));
        RAND_bytes((uint8_t *)&nonce, sizeof(nonce));
        ctr &= ~0xffULL; /* OpenSSL's block counter is 32 bits: keep this block's from carrying over */
        krng_block(key, ctr, nonce, ours);
        memcpy(iv, &ctr, 8); /* x86 is little-endian, as ChaCha20's words are */
        memcpy(iv + 8, &nonce, 8);
        EVP_EncryptInit_ex(ctx, EVP_chacha20(), NULL, (const uint8_t *)key, iv);
        EVP_EncryptUpdate(ctx, theirs, &len, zeros, sizeof(zeros));
        diff += len != 64 || memcmp(ours, theirs, 64) != 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    CHECK(ctx != NULL);
    CHECK_INT(diff, 0);
}

static void moves_on(void)
{
    uint8_t a[100], b[100], c[100];
    krng_mix("seed", 4);
    krng_bytes(a, sizeof(a));
    krng_bytes(b, sizeof(b));
    CHECK(memcmp(a, b, sizeof(a)) != 0);
    krng_mix("seed", 4);
    krng_bytes(c, sizeof(c));
    CHECK(memcmp(a, c, sizeof(a)) != 0 && memcmp(b, c, sizeof(b)) != 0);
    int zero = 0;
    for (size_t i = 0; i < sizeof(a); i++)
        zero += a[i] == 0;
    CHECK(zero < 10); /* ~0.4 expected */
}

int main(void)
{
    same_as_openssl();
    moves_on();
    return lel_test_finish();
}
