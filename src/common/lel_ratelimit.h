/* Token buckets keyed by name (an API key id, "auth:<key>", "fail:<address>"). A bucket of
 * rate r holds at most r tokens (one second of burst) and refills continuously. Thread-safe. */
#ifndef LEL_RATELIMIT_H
#define LEL_RATELIMIT_H

#include <stdint.h>

typedef struct lel_ratelimit lel_ratelimit_t;

struct lel_rl_info {
    long limit;       /* RateLimit-Limit */
    long remaining;   /* RateLimit-Remaining */
    long reset;       /* RateLimit-Reset: seconds until the bucket is full */
    long retry_after; /* Retry-After when refused, seconds */
};

lel_ratelimit_t *lel_ratelimit_new(void);
void lel_ratelimit_free(lel_ratelimit_t *rl);
/** Takes one token (when `take`) or only checks for one. Returns 1 when allowed, 0 when limited, -ENOMEM. */
int lel_ratelimit_check(lel_ratelimit_t *rl, const char *name, double rate, int take, int64_t now_ms,
                        struct lel_rl_info *info);

#endif
