/* Mutex-based actor scheduling (the kvmtool/Pony rule, see shared/docs/STACK.md §5): an actor
 * is pushed onto the run queue only on its IDLE -> QUEUED transition, so exactly one party
 * owns the right to schedule it, and it can be on at most one thread at a time. */
#include "lel_actor.h"

#include "../common/lel_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define BATCH 64 /* messages per turn before the actor yields its worker (fairness) */

enum { IDLE = 0, QUEUED, RUNNING };

struct lel_actor {
    pthread_mutex_t lock;
    lel_msg_t *head, *tail; /* mailbox, FIFO */
    int sched;              /* IDLE / QUEUED / RUNNING, under lock */
    int closed;
    atomic_int refs;
    lel_actor_t *rq_next;
    lel_pool_t *pool;
    lel_actor_handler fn;
    void *state;
    void (*free_state)(void *);
};

struct lel_pool {
    pthread_mutex_t lock;
    pthread_cond_t work, idle;
    lel_actor_t *rq_head, *rq_tail;
    int busy; /* actors queued or running */
    int stopping;
    int nthreads;
    pthread_t *threads;
};

lel_msg_t *lel_msg_new(int type, int64_t arg, void *ptr)
{
    lel_msg_t *m = malloc(sizeof(*m));
    if (m) {
        m->next = NULL;
        m->type = type;
        m->arg = arg;
        m->ptr = ptr;
    }
    return m;
}

void lel_msg_free(lel_msg_t *m)
{
    free(m);
}

static void rq_push(lel_pool_t *p, lel_actor_t *a)
{
    pthread_mutex_lock(&p->lock);
    a->rq_next = NULL;
    if (p->rq_tail)
        p->rq_tail->rq_next = a;
    else
        p->rq_head = a;
    p->rq_tail = a;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

/* Runs up to BATCH messages of `a`, then either parks it (IDLE) or requeues it at the tail. */
static void run_actor(lel_pool_t *p, lel_actor_t *a)
{
    for (int n = 0; n < BATCH; n++) {
        pthread_mutex_lock(&a->lock);
        lel_msg_t *m = a->head;
        if (m) {
            a->head = m->next;
            if (!a->head)
                a->tail = NULL;
        }
        pthread_mutex_unlock(&a->lock);
        if (!m)
            break;
        m->next = NULL;
        a->fn(a, a->state, m);
    }
    pthread_mutex_lock(&a->lock);
    int more = a->head != NULL;
    a->sched = more ? QUEUED : IDLE;
    pthread_mutex_unlock(&a->lock);
    if (more) {
        rq_push(p, a);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (--p->busy == 0)
        pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->lock);
    lel_actor_unref(a); /* the reference taken when it was queued */
}

static void *worker(void *arg)
{
    lel_thread_name("lel-worker");
    lel_pool_t *p = arg;
    lel_thread_background();
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->rq_head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        lel_actor_t *a = p->rq_head;
        if (!a) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->rq_head = a->rq_next;
        if (!p->rq_head)
            p->rq_tail = NULL;
        pthread_mutex_unlock(&p->lock);
        pthread_mutex_lock(&a->lock);
        a->sched = RUNNING;
        pthread_mutex_unlock(&a->lock);
        run_actor(p, a);
    }
}

lel_pool_t *lel_pool_new(int nthreads)
{
    lel_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (!p->threads) {
        free(p);
        return NULL;
    }
    for (; p->nthreads < nthreads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) != 0)
            break;
    if (p->nthreads == 0) {
        free(p->threads);
        free(p);
        return NULL;
    }
    return p;
}

void lel_pool_free(lel_pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->busy > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

lel_actor_t *lel_actor_new(lel_pool_t *pool, lel_actor_handler fn, void *state, void (*free_state)(void *))
{
    lel_actor_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    atomic_init(&a->refs, 1);
    a->pool = pool;
    a->fn = fn;
    a->state = state;
    a->free_state = free_state;
    return a;
}

void lel_actor_ref(lel_actor_t *a)
{
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void lel_actor_unref(lel_actor_t *a)
{
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (lel_msg_t *m = a->head, *n; m; m = n) { /* only possible if nothing ever ran them */
        n = m->next;
        free(m);
    }
    if (a->free_state)
        a->free_state(a->state);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

void *lel_actor_state(lel_actor_t *a)
{
    return a->state;
}

int lel_actor_send(lel_actor_t *a, lel_msg_t *m)
{
    m->next = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->closed) {
        pthread_mutex_unlock(&a->lock);
        return -EPIPE;
    }
    if (a->tail)
        a->tail->next = m;
    else
        a->head = m;
    a->tail = m;
    int schedule = a->sched == IDLE;
    if (schedule) {
        a->sched = QUEUED;
        lel_actor_ref(a);
    }
    pthread_mutex_unlock(&a->lock);
    if (schedule) {
        pthread_mutex_lock(&a->pool->lock);
        a->pool->busy++;
        pthread_mutex_unlock(&a->pool->lock);
        rq_push(a->pool, a);
    }
    return 0;
}

void lel_actor_close(lel_actor_t *a)
{
    pthread_mutex_lock(&a->lock);
    a->closed = 1;
    pthread_mutex_unlock(&a->lock);
}
