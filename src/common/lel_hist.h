/* A latency histogram for the Prometheus metrics: fixed buckets (0.5 ms .. 10 s) of relaxed
 * atomic counters, so any thread records into it with one atomic add and no lock. Embedded by
 * value in its owner (the server object, the store); never allocated on its own. */
#ifndef LEL_HIST_H
#define LEL_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define LEL_HIST_BUCKETS 15 /* the last is +Inf */

typedef struct lel_hist {
    atomic_ullong n[LEL_HIST_BUCKETS]; /* per bucket, not cumulative: cumulated when rendered */
    atomic_ullong sum_us;
} lel_hist_t;

/** The upper bounds of the finite buckets in microseconds (LEL_HIST_BUCKETS - 1 of them). */
#define LEL_HIST_BOUNDS_US 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, \
                           5000000, 10000000

/** Records one observation of `us` microseconds. */
static inline void lel_hist_add(lel_hist_t *h, uint64_t us)
{
    static const uint64_t lim[LEL_HIST_BUCKETS - 1] = {LEL_HIST_BOUNDS_US};
    int i = 0;
    while (i < LEL_HIST_BUCKETS - 1 && us > lim[i])
        i++;
    atomic_fetch_add_explicit(&h->n[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

#endif
