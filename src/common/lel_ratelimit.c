/* Buckets live in a tsearch tree under one mutex; the critical section is a few arithmetic
 * operations. Buckets that have been full for a minute are dropped by a sweep so the table
 * stays bounded by recently active names. */
#include "lel_ratelimit.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_EVERY 4096
#define IDLE_MS 60000

struct bucket {
    char *name;
    double tokens;
    int64_t at_ms;
};

struct lel_ratelimit {
    pthread_mutex_t lock;
    void *root;
    size_t inserts;
};

static int cmp(const void *a, const void *b)
{
    return strcmp(((const struct bucket *)a)->name, ((const struct bucket *)b)->name);
}

static void free_bucket(void *b)
{
    free(((struct bucket *)b)->name);
    free(b);
}

lel_ratelimit_t *lel_ratelimit_new(void)
{
    lel_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl)
        pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void lel_ratelimit_free(lel_ratelimit_t *rl)
{
    if (!rl)
        return;
    tdestroy(rl->root, free_bucket);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

struct sweep {
    struct bucket **stale;
    size_t n, cap;
    int64_t now;
};

static void collect(const void *nodep, VISIT which, void *closure)
{
    struct sweep *s = closure;
    struct bucket *b = *(struct bucket *const *)nodep;
    if ((which == postorder || which == leaf) && s->now - b->at_ms > IDLE_MS && s->n < s->cap)
        s->stale[s->n++] = b;
}

static void sweep(lel_ratelimit_t *rl, int64_t now)
{
    struct sweep s = {calloc(SWEEP_EVERY, sizeof(struct bucket *)), 0, SWEEP_EVERY, now};
    if (!s.stale)
        return;
    twalk_r(rl->root, collect, &s);
    for (size_t i = 0; i < s.n; i++) {
        tdelete(s.stale[i], &rl->root, cmp);
        free_bucket(s.stale[i]);
    }
    free(s.stale);
}

int lel_ratelimit_check(lel_ratelimit_t *rl, const char *name, double rate, int take, int64_t now,
                        struct lel_rl_info *info)
{
    struct bucket key = {(char *)name, 0, 0}, *b;
    pthread_mutex_lock(&rl->lock);
    struct bucket **found = tfind(&key, &rl->root, cmp);
    if (found) {
        b = *found;
        b->tokens = fmin(rate, b->tokens + (double)(now - b->at_ms) * rate / 1000.0);
    } else {
        if (++rl->inserts % SWEEP_EVERY == 0)
            sweep(rl, now);
        b = malloc(sizeof(*b));
        if (!b || !(b->name = strdup(name)) || !tsearch(b, &rl->root, cmp)) {
            if (b)
                free(b->name);
            free(b);
            pthread_mutex_unlock(&rl->lock);
            return -ENOMEM;
        }
        b->tokens = rate;
    }
    b->at_ms = now;
    int ok = b->tokens >= 1.0;
    if (ok && take)
        b->tokens -= 1.0;
    double tokens = b->tokens;
    pthread_mutex_unlock(&rl->lock);
    info->limit = (long)ceil(rate);
    info->remaining = (long)floor(tokens);
    info->reset = (long)ceil((rate - tokens) / rate);
    info->retry_after = ok ? -1 : (long)fmax(1.0, ceil((1.0 - tokens) / rate));
    return ok;
}
