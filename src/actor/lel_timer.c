/* Timer service: one thread, a binary min-heap of deadlines, a condvar that wakes it for
 * earlier deadlines. Firing a timer is just an actor send, so timers obey mailbox order. */
#include "../common/lel_util.h"
#include "lel_actor.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct entry {
    int64_t deadline;
    uint64_t seq; /* FIFO among equal deadlines */
    lel_actor_t *actor;
    lel_msg_t *msg;
};

struct lel_timers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct entry *heap;
    size_t n, cap;
    uint64_t seq;
    int stopping;
    pthread_t thread;
};

static int before(const struct entry *a, const struct entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void swap(struct entry *a, struct entry *b)
{
    struct entry t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(struct entry *h, size_t i)
{
    while (i > 0 && before(&h[i], &h[(i - 1) / 2])) {
        swap(&h[i], &h[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct entry *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[l], &h[m]))
            m = l;
        if (r < n && before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        swap(&h[i], &h[m]);
        i = m;
    }
}

static void deliver(struct entry *e)
{
    if (lel_actor_send(e->actor, e->msg) < 0)
        lel_msg_free(e->msg);
    lel_actor_unref(e->actor);
}

static void *timer_thread(void *arg)
{
    lel_thread_name("lel-timer");
    lel_timers_t *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        int64_t now = lel_mono_ms();
        if (t->heap[0].deadline > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wait = t->heap[0].deadline - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
            continue;
        }
        struct entry e = t->heap[0];
        t->heap[0] = t->heap[--t->n];
        sift_down(t->heap, t->n, 0);
        pthread_mutex_unlock(&t->lock);
        deliver(&e);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

lel_timers_t *lel_timers_new(void)
{
    lel_timers_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, timer_thread, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

int lel_timers_at(lel_timers_t *t, int64_t deadline_ms, lel_actor_t *a, lel_msg_t *m)
{
    pthread_mutex_lock(&t->lock);
    if (t->stopping) { /* shutting down: nothing is delivered any more */
        pthread_mutex_unlock(&t->lock);
        return -ECANCELED;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        struct entry *h = realloc(t->heap, ncap * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&t->lock);
            return -ENOMEM;
        }
        t->heap = h;
        t->cap = ncap;
    }
    lel_actor_ref(a);
    t->heap[t->n] = (struct entry){deadline_ms, t->seq++, a, m};
    sift_up(t->heap, t->n++);
    if (t->heap[0].msg == m)
        pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void lel_timers_stop(lel_timers_t *t)
{
    pthread_mutex_lock(&t->lock);
    int was = t->stopping;
    t->stopping = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (!was)
        pthread_join(t->thread, NULL);
}

void lel_timers_free(lel_timers_t *t)
{
    lel_timers_stop(t);
    for (size_t i = 0; i < t->n; i++) {
        lel_msg_free(t->heap[i].msg);
        lel_actor_unref(t->heap[i].actor);
    }
    free(t->heap);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
