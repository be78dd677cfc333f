/* The guest's random numbers (getrandom, /dev/urandom, AT_RANDOM): a ChaCha20 keystream under
 * a 256-bit key, rekeyed after every request so earlier output cannot be recomputed from the
 * state, and seeded from the host (at boot and after every restore: sandboxes restored from one
 * image must not share a stream), the CPU's RDRAND where it has one, and the TSC. Built for the
 * host too, where tests compare the block function with OpenSSL's ChaCha20. */
#ifndef LEL_GUEST_RNG_H
#define LEL_GUEST_RNG_H

#include <stddef.h>
#include <stdint.h>

/** One ChaCha20 block (RFC 8439 layout, with a 64-bit block counter in words 12-13 and a
 * 64-bit nonce in words 14-15): 64 bytes of keystream. */
void krng_block(const uint32_t key[8], uint64_t counter, uint64_t nonce, uint8_t out[64]);
/** Stirs `n` bytes into the key (any amount, any quality: it never weakens the state). */
void krng_mix(const void *data, size_t n);
/** `n` random bytes. */
void krng_bytes(void *out, size_t n);

#endif
