/* Kernel timers; see ktimer.h. */
#include "ktimer.h"

#include "../arch/arch.h"
#include "../fs/file.h"
#include "../lib/errno.h"
#include "../mm/page.h"
#include "proc.h"
#include "signal.h"

static struct ktimer *timers;

int ktimer_clock_ok(int clock)
{
    return clock == 0 || clock == 1 || clock == 7 || clock == 8 || clock == 9;
}

int64_t ktimer_clock_now(int clock)
{
    return clock == 0 || clock == 8 ? proc_now_ns() : (int64_t)kernel_ns();
}

struct ktimer *ktimer_new(int clock)
{
    struct ktimer *t = kmalloc(sizeof(*t));
    if (t) {
        t->clock = clock;
        t->next = timers;
        timers = t;
    }
    return t;
}

void ktimer_free(struct ktimer *t)
{
    for (struct ktimer **pp = &timers; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    kfree(t, sizeof(*t));
}

void ktimer_set(struct ktimer *t, uint64_t first, uint64_t every)
{
    t->at = first ? kernel_ns() + first : 0;
    t->every = first ? every : 0;
    t->fired = 0;
    t->missed = t->overrun = 0;
}

uint64_t ktimer_left(const struct ktimer *t)
{
    uint64_t now = kernel_ns();
    return !t->at ? 0 : t->at > now ? t->at - now : 1;
}

/* A POSIX timer expired `n` times: its signal, unless the last one is still pending. */
static void posix_fire(struct ktimer *t, uint64_t n)
{
    struct proc *g = proc_by_pid(t->owner), *to = g;
    if (!g || t->notify == 1) /* SIGEV_NONE: only timer_gettime sees it */
        return;
    for (int i = 0; t->notify == 4 && i < MAX_PROCS; i++) /* SIGEV_THREAD_ID */
        if (ptable.procs[i].state != P_FREE && ptable.procs[i].group == g && ptable.procs[i].pid == t->tid)
            to = &ptable.procs[i];
    uint64_t bit = 1ULL << t->signo;
    if ((to->sig_pending | g->sig_pending) & bit) {
        t->missed += (int)n;
        return;
    }
    t->missed = (int)n - 1;
    struct sigsrc src = {t->id, SI_TIMER_, 0, 0, t->value};
    if (to != g)
        sig_send(to, t->signo, &src);
    else
        sig_send_process(g, t->signo, &src);
}

void ktimer_check(void)
{
    uint64_t now = kernel_ns();
    for (struct ktimer *t = timers; t; t = t->next) {
        if (!t->at || now < t->at)
            continue;
        uint64_t n = t->every ? 1 + (now - t->at) / t->every : 1;
        t->at = t->every ? t->at + n * t->every : 0;
        t->seq++;
        if (t->owner) {
            posix_fire(t, n);
        } else {
            t->fired += n;
            wake(W_PIPE, 0); /* its readers and pollers */
        }
    }
}

uint64_t ktimer_next(void)
{
    uint64_t first = 0, now = kernel_ns();
    for (struct ktimer *t = timers; t; t = t->next)
        if (t->at && (!first || t->at < first))
            first = t->at;
    return first ? tick_after_ns(first > now ? first - now : 0) : UINT64_MAX;
}

struct ktimer *ktimer_find(int pid, int id)
{
    for (struct ktimer *t = timers; t; t = t->next)
        if (t->owner == pid && pid && t->id == id)
            return t;
    return 0;
}

int ktimer_free_id(int pid)
{
    for (int id = 0; id < KTIMER_PER_PROC; id++)
        if (!ktimer_find(pid, id))
            return id;
    return -1;
}

int ktimer_signal_taken(int pid, int id)
{
    struct ktimer *t = ktimer_find(pid, id);
    if (!t)
        return 0;
    t->overrun = t->missed;
    t->missed = 0;
    return t->overrun;
}

void ktimer_owner_gone(int pid)
{
    for (struct ktimer *t = timers, *next; t; t = next) {
        next = t->next;
        if (pid && t->owner == pid)
            ktimer_free(t);
    }
}

long timerfd_read(struct file *f, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    if (n < 8)
        return -EINVAL;
    for (;;) {
        ktimer_check();
        if (f->timer->fired) {
            if (copy_user(buf, &f->timer->fired, 8, 1) < 0)
                return -EFAULT;
            f->timer->fired = 0;
            return 8;
        }
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
}

uint32_t timerfd_events(const struct file *f)
{
    ktimer_check();
    return f->timer->fired ? 0x1 /* POLLIN */ : 0;
}
