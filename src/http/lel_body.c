/* Request bodies handed to an actor in pieces, for routes that take large bodies (file uploads):
 * the gate pushes what arrives on the connection, the call's actor reads it on a worker. The
 * queue is bounded: past `cap` undelivered bytes the gate stops reading the connection (HTTP/1)
 * or stops opening the window (HTTP/2) until the actor has taken some; then a resume message
 * goes back to the loop thread. So an upload holds at most about `cap` bytes of the daemon's
 * memory, whatever its size and however slow the guest is.
 *
 * Threads: push/end/set_gate on the owning loop thread; read/notify/detach on the consumer's
 * worker; the queue and the consumer are under `lock`. References: the gate (while it feeds
 * the body), the call (until it is freed), each resume message in flight. */
#include "lel_http_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct piece {
    struct piece *next;
    size_t len, off;
    char data[];
};

struct lel_body {
    h2o_multithread_message_t msg; /* first: the resume message */
    pthread_mutex_t lock;
    atomic_int refs;
    struct loop *loop;
    struct piece *head, *tail;
    size_t queued, cap;
    uint64_t received, limit;
    int ended, ok;
    int paused;              /* the producer stopped at the cap and waits for a resume */
    atomic_int resume_queued; /* a resume message is on its way */
    lel_actor_t *consumer;   /* told by a message when there is something to read */
    int type;
    uint32_t id;
    int told;                /* a message is on its way to the consumer: no second one */
    struct gate *gate;       /* loop thread only */
    void (*sink)(void *);    /* a consumer on the loop thread (loop thread only) */
    void *sink_ctx;
};

struct lel_body *lel__body_new(struct loop *l, uint64_t limit, size_t cap)
{
    struct lel_body *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    atomic_init(&b->refs, 1);
    atomic_init(&b->resume_queued, 0);
    b->loop = l;
    b->cap = cap;
    b->limit = limit;
    atomic_fetch_add(&l->inflight, 1); /* the loop must outlive the messages a body sends it */
    return b;
}

void lel__body_ref(struct lel_body *b)
{
    atomic_fetch_add(&b->refs, 1);
}

void lel__body_unref(struct lel_body *b)
{
    if (!b || atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    while (b->head) {
        struct piece *p = b->head;
        b->head = p->next;
        free(p);
    }
    if (b->consumer)
        lel_actor_unref(b->consumer);
    pthread_mutex_destroy(&b->lock);
    atomic_fetch_sub(&b->loop->inflight, 1);
    free(b);
}

/* Tells the consumer, outside the lock; `a` carries a reference taken under it. */
static void tell(lel_actor_t *a, int type, uint32_t id)
{
    if (!a)
        return;
    lel_msg_t *m = lel_msg_new(type, id, NULL);
    if (m && lel_actor_send(a, m) < 0)
        lel_msg_free(m);
    lel_actor_unref(a);
}

/* Under b->lock: the consumer to tell now, referenced, or NULL. */
static lel_actor_t *to_tell(struct lel_body *b)
{
    if (!b->consumer || b->told)
        return NULL;
    b->told = 1;
    lel_actor_ref(b->consumer);
    return b->consumer;
}

int lel__body_push(struct lel_body *b, const void *data, size_t n)
{
    if (!n)
        return 0;
    struct piece *p = malloc(sizeof(*p) + n);
    pthread_mutex_lock(&b->lock);
    if (!p || b->ended) {
        pthread_mutex_unlock(&b->lock);
        free(p);
        return 0;
    }
    if (b->received + n > b->limit) { /* past the route's limit: ended here, the consumer answers */
        b->ended = 1;
        b->ok = -E2BIG;
        lel_actor_t *a = to_tell(b);
        int type = b->type;
        uint32_t id = b->id;
        pthread_mutex_unlock(&b->lock);
        free(p);
        tell(a, type, id);
        return -1;
    }
    memcpy(p->data, data, n);
    p->len = n;
    p->off = 0;
    p->next = NULL;
    if (b->tail)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    b->queued += n;
    b->received += n;
    int pause = b->queued >= b->cap;
    b->paused |= pause;
    lel_actor_t *a = to_tell(b);
    int type = b->type;
    uint32_t id = b->id;
    pthread_mutex_unlock(&b->lock);
    tell(a, type, id);
    if (b->sink)
        b->sink(b->sink_ctx);
    return pause;
}

void lel__body_end(struct lel_body *b, int ok)
{
    pthread_mutex_lock(&b->lock);
    if (b->ended) {
        pthread_mutex_unlock(&b->lock);
        return;
    }
    b->ended = 1;
    b->ok = ok;
    lel_actor_t *a = to_tell(b);
    int type = b->type;
    uint32_t id = b->id;
    pthread_mutex_unlock(&b->lock);
    tell(a, type, id);
    if (b->sink)
        b->sink(b->sink_ctx);
}

void lel__body_sink(struct lel_body *b, void (*fn)(void *), void *ctx)
{
    b->sink = fn;
    b->sink_ctx = ctx;
}

size_t lel__body_queued(struct lel_body *b)
{
    pthread_mutex_lock(&b->lock);
    size_t q = b->queued;
    pthread_mutex_unlock(&b->lock);
    return q;
}

struct gate *lel__body_gate(struct lel_body *b)
{
    return b->gate;
}

void lel__body_set_gate(struct lel_body *b, struct gate *g)
{
    b->gate = g;
}

void lel__body_detach(struct lel_body *b)
{
    pthread_mutex_lock(&b->lock);
    lel_actor_t *a = b->consumer;
    b->consumer = NULL;
    pthread_mutex_unlock(&b->lock);
    if (a)
        lel_actor_unref(a);
}

void lel_call_body_notify(lel_call_t *c, lel_actor_t *a, int type, uint32_t id)
{
    struct lel_body *b = c->body_in;
    if (!b)
        return;
    lel_actor_ref(a);
    pthread_mutex_lock(&b->lock);
    lel_actor_t *old = b->consumer;
    b->consumer = a;
    b->type = type;
    b->id = id;
    b->told = 0;
    lel_actor_t *now = b->head || b->ended ? to_tell(b) : NULL;
    pthread_mutex_unlock(&b->lock);
    if (old)
        lel_actor_unref(old);
    tell(now, type, id);
}

ssize_t lel_call_body_read(lel_call_t *c, void *buf, size_t max)
{
    struct lel_body *b = c->body_in;
    if (!b) { /* an ordinary body, whole in c->body: read once */
        size_t n = c->body_len - c->body_off < max ? c->body_len - c->body_off : max;
        memcpy(buf, c->body + c->body_off, n);
        c->body_off += n;
        return (ssize_t)n;
    }
    size_t got = 0;
    int resume = 0;
    pthread_mutex_lock(&b->lock);
    while (got < max && b->head) {
        struct piece *p = b->head;
        size_t n = p->len - p->off < max - got ? p->len - p->off : max - got;
        memcpy((char *)buf + got, p->data + p->off, n);
        got += n;
        p->off += n;
        b->queued -= n;
        if (p->off == p->len) {
            b->head = p->next;
            if (!b->head)
                b->tail = NULL;
            free(p);
        }
    }
    ssize_t r = (ssize_t)got;
    if (!got) {
        r = !b->ended ? -EAGAIN : b->ok == 1 ? 0 : b->ok < 0 ? b->ok : -ECONNRESET;
        b->told = 0; /* found empty: the next push tells again */
    }
    if (b->paused && b->queued < b->cap / 2) {
        b->paused = 0;
        resume = !atomic_exchange(&b->resume_queued, 1);
    }
    pthread_mutex_unlock(&b->lock);
    if (resume) {
        lel__body_ref(b); /* the message's */
        h2o_multithread_send_message(&b->loop->resumes, &b->msg);
    }
    return r;
}

void lel__body_on_resumes(h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
    (void)recv;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct lel_body *b = (struct lel_body *)m;
        atomic_store(&b->resume_queued, 0);
        if (b->gate)
            lel__gate_body_resume(b->gate, b);
        lel__body_unref(b);
    }
}
