/* Actor runtime stress: many actors, many senders; checks that an actor never runs on two
 * threads at once, that each sender's messages arrive in order, that nothing is lost, and
 * that timers fire in deadline order. Built and run under ThreadSanitizer as well. */
#include "../../src/actor/lel_actor.h"
#include "../../src/common/lel_util.h"
#include "../lel_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define NACTORS 64
#define NSENDERS 8
#define PER_SENDER 4000

struct st {
    atomic_int inside;
    int overlap;
    long last[NSENDERS]; /* last sequence seen per sender; touched only by the handler */
    int disorder;
    long received;
};

static atomic_long total;

static void handler(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    struct st *s = state;
    if (atomic_fetch_add(&s->inside, 1) != 0)
        s->overlap++;
    int sender = m->type;
    if (m->arg <= s->last[sender])
        s->disorder++;
    s->last[sender] = m->arg;
    s->received++;
    atomic_fetch_sub(&s->inside, 1);
    atomic_fetch_add(&total, 1);
    lel_msg_free(m);
}

static lel_actor_t *actors[NACTORS];

static void *sender(void *arg)
{
    int id = (int)(long)arg;
    unsigned seed = (unsigned)id * 7919u;
    for (long i = 1; i <= PER_SENDER; i++) {
        int a = (int)(rand_r(&seed) % NACTORS);
        lel_actor_send(actors[a], lel_msg_new(id, i, NULL));
    }
    return NULL;
}

static int order[8], norder;
static void timer_handler(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    (void)state;
    order[norder++] = (int)m->arg;
    lel_msg_free(m);
}

int main(void)
{
    lel_pool_t *pool = lel_pool_new(4);
    struct st *states = calloc(NACTORS, sizeof(*states));
    for (int i = 0; i < NACTORS; i++)
        actors[i] = lel_actor_new(pool, handler, &states[i], NULL);
    pthread_t th[NSENDERS];
    for (long i = 0; i < NSENDERS; i++)
        pthread_create(&th[i], NULL, sender, (void *)i);
    for (int i = 0; i < NSENDERS; i++)
        pthread_join(th[i], NULL);
    for (int w = 0; w < 2000 && atomic_load(&total) < (long)NSENDERS * PER_SENDER; w++)
        usleep(5000);
    CHECK_INT(atomic_load(&total), (long)NSENDERS * PER_SENDER);
    int overlap = 0, disorder = 0;
    for (int i = 0; i < NACTORS; i++) {
        overlap += states[i].overlap;
        disorder += states[i].disorder;
    }
    CHECK_INT(overlap, 0);
    CHECK_INT(disorder, 0);

    /* a closed actor refuses mail */
    lel_actor_close(actors[0]);
    lel_msg_t *m = lel_msg_new(0, 1, NULL);
    CHECK(lel_actor_send(actors[0], m) == -EPIPE);
    lel_msg_free(m);

    /* timers: deadlines out of insertion order fire in deadline order */
    lel_timers_t *t = lel_timers_new();
    lel_actor_t *ta = lel_actor_new(pool, timer_handler, NULL, NULL);
    int64_t now = lel_mono_ms();
    int delays[] = {120, 30, 80, 10};
    for (int i = 0; i < 4; i++)
        lel_timers_at(t, now + delays[i], ta, lel_msg_new(0, delays[i], NULL));
    lel_timers_at(t, now + 100000, ta, lel_msg_new(0, 999, NULL)); /* dropped at shutdown */
    usleep(400000);
    lel_pool_free(pool); /* drains; after this nothing runs */
    CHECK_INT(norder, 4);
    CHECK(order[0] == 10 && order[1] == 30 && order[2] == 80 && order[3] == 120);
    /* stopped, it takes no new timer (an actor still draining at shutdown asks in vain) */
    lel_timers_stop(t);
    m = lel_msg_new(0, 7, NULL);
    CHECK(lel_timers_at(t, now, ta, m) == -ECANCELED);
    lel_msg_free(m);
    lel_timers_free(t);
    lel_actor_unref(ta);
    for (int i = 0; i < NACTORS; i++)
        lel_actor_unref(actors[i]);
    free(states);
    return lel_test_finish();
}
