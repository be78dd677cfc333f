/* Small helpers shared by every component: clocks, RFC 3339 times, random ids, SHA-256. */
#ifndef LEL_UTIL_H
#define LEL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define LEL_ID_LEN 20 /* 20 base32 chars = 100 random bits */

/** Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
int64_t lel_now_ms(void);
/** Monotonic milliseconds (CLOCK_MONOTONIC), for deadlines and rate limits. */
int64_t lel_mono_ms(void);
/** CLOCK_MONOTONIC in microseconds. */
int64_t lel_mono_us(void);
/** Writes `ms` as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z") into buf[32]. */
void lel_rfc3339(int64_t ms, char buf[32]);
/** Fills `out` with `n` random bytes from getrandom(2). Returns 0 or -errno. */
int lel_random_bytes(void *out, size_t n);
/** Writes a NUL-terminated URL-safe random id of LEL_ID_LEN lowercase base32 chars. */
int lel_random_id(char out[LEL_ID_LEN + 1]);
/** Lowercase hex of `n` bytes into `out` (2n+1 bytes). */
void lel_hex(const void *in, size_t n, char *out);
/** SHA-256 of `in` as 64 lowercase hex chars + NUL. */
void lel_sha256_hex(const void *in, size_t n, char out[65]);
/** Constant-time comparison of two buffers; returns 1 when equal. */
int lel_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/** A malloc'd, NUL-terminated copy of `n` bytes that is valid UTF-8: every invalid sequence
 * becomes U+FFFD. *outlen gets its length. NULL when out of memory. */
char *lel_utf8_sanitize(const char *in, size_t n, size_t *outlen);
/** Decodes %XX and '+' in place; returns the decoded length (a %00 decodes to a NUL inside
 * it: compare with strlen where that matters), or -EINVAL on a bad escape. */
long lel_url_decode(char *s);

/** Runs the calling thread below the frontend's loop threads (nice +LEL_BACKGROUND_NICE): the
 * actor workers and the vCPU threads call it at their start, so a team that keeps the workers
 * and guests busy (creating sandboxes in a loop) delays other teams' fast reads, answered on the
 * loop threads, as little as the host allows. Best effort (nothing happens if it is refused). */
#define LEL_BACKGROUND_NICE 5
void lel_thread_background(void);
/** Asks the scheduler for short slices for the calling thread (a frontend loop thread: the
 * fair class's requested slice, sched_setattr's sched_runtime, LEL_INTERACTIVE_SLICE_NS): on
 * Linux >= 6.12 (EEVDF) a woken thread with a shorter slice than the running one preempts it,
 * where otherwise a busy vCPU thread keeps the core for the rest of its slice (~3 ms). Nice
 * stays 0. Best effort: older kernels refuse the field and nothing changes. */
#define LEL_INTERACTIVE_SLICE_NS 100000
void lel_thread_interactive(void);
/** Names the calling thread (at most 15 bytes: "lel-vcpu"…) for top -H, perf and /proc/<pid>/task. */
void lel_thread_name(const char *name);

#endif
