/* Actor runtime: actors with FIFO mailboxes run by a pthreads worker pool.
 *
 * Guarantees: an actor's handler never runs on two threads at once; messages from one sender
 * are handled in the order sent; an actor is freed (free_state called) when its last
 * reference is dropped, never while queued or running. Sends are cheap and never block on the
 * handler. A timer service delivers messages to actors at a deadline. */
#ifndef LEL_ACTOR_H
#define LEL_ACTOR_H

#include <stdint.h>

/** A message. Allocated by the sender (lel_msg_new); the handler owns it and frees it (lel_msg_free). */
typedef struct lel_msg {
    struct lel_msg *next;
    int type;
    int64_t arg;
    void *ptr;
} lel_msg_t;

typedef struct lel_actor lel_actor_t;
typedef struct lel_pool lel_pool_t;
typedef struct lel_timers lel_timers_t;

/** Called on a worker thread for each message, one at a time per actor. Owns `m`. */
typedef void (*lel_actor_handler)(lel_actor_t *self, void *state, lel_msg_t *m);

lel_msg_t *lel_msg_new(int type, int64_t arg, void *ptr);
void lel_msg_free(lel_msg_t *m);

/** Starts `nthreads` workers. Returns NULL on failure. */
lel_pool_t *lel_pool_new(int nthreads);
/** Waits until no actor is queued or running, then stops and joins the workers and frees the pool. */
void lel_pool_free(lel_pool_t *pool);

/** Creates an actor with one reference (the caller's). `free_state` may be NULL. */
lel_actor_t *lel_actor_new(lel_pool_t *pool, lel_actor_handler fn, void *state, void (*free_state)(void *state));
void lel_actor_ref(lel_actor_t *a);
void lel_actor_unref(lel_actor_t *a);
void *lel_actor_state(lel_actor_t *a);
/** Enqueues `m`. Returns 0, or -EPIPE when the actor is closed (then `m` still belongs to the caller). */
int lel_actor_send(lel_actor_t *a, lel_msg_t *m);
/** Refuses further sends; messages already queued are still handled. */
void lel_actor_close(lel_actor_t *a);

/** Starts the timer thread. */
lel_timers_t *lel_timers_new(void);
/** Delivers `m` to `a` at monotonic time `deadline_ms` (lel_mono_ms). Holds a reference to `a`
 * until then; if the actor is closed by then, `m` is freed. Returns 0 or -ENOMEM. */
int lel_timers_at(lel_timers_t *t, int64_t deadline_ms, lel_actor_t *a, lel_msg_t *m);
/** Stops delivering: the thread ends, and lel_timers_at answers -ECANCELED from then on (the
 * message stays the caller's), so actors still draining cannot reach a freed timer service. */
void lel_timers_stop(lel_timers_t *t);
/** Stops (if not yet) and frees; pending timers are dropped (messages freed, references released). */
void lel_timers_free(lel_timers_t *t);

#endif
