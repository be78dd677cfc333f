/* Priority-inheritance futexes (see futex_pi.h). A waiter is a thread blocked in W_FUTEX with
 * `futex_pi` set, named by the futex's key as any waiter (futex_name), and remembering the
 * word's address in its own address space and the owner it waits for; FUTEX_WAKE and REQUEUE
 * pass such waiters by, as Linux keeps the two kinds apart. The word is read and written in
 * the kernel without a break (one vCPU, no preemption in kernel mode), so a hand-over is one
 * step: the new owner's tid is in the word before it runs. */
#include "futex_pi.h"

#include "../arch/arch.h"
#include "../lib/errno.h"
#include "../mm/vm.h"
#include "proc.h"
#include "signal.h"

static uint64_t pi_seq; /* orders waiters: the oldest is handed the lock first */

/* The word at `va` of `m`, writable (a copy-on-write page becomes its own); NULL when unmapped. */
static uint32_t *pi_word(struct mm *m, uint64_t va)
{
    uint64_t gpa = va & 3 ? 0 : translate(m, va, 1);
    return gpa ? (uint32_t *)DMAP(gpa) : 0;
}

static int pi_waiting(const struct proc *t, struct mm *space, uint64_t key)
{
    return t->state == P_BLOCKED && t->why == W_FUTEX && t->futex_pi && t->futex_key == key && t->futex_mm == space;
}

/* The oldest thread waiting on the lock (`space`, `key`) but `except`; NULL when none. */
static struct proc *pi_oldest(struct mm *space, uint64_t key, const struct proc *except)
{
    struct proc *best = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t != except && pi_waiting(t, space, key) && (!best || t->futex_seq < best->futex_seq))
            best = t;
    }
    return best;
}

/* Whether thread `tid` exists (and has not ended). */
static int tid_alive(uint32_t tid)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if ((uint32_t)t->pid == tid && (t->state == P_RUNNABLE || t->state == P_BLOCKED))
            return 1;
    }
    return 0;
}

/* Hands the lock (`space`, `key`), whose word is `w`, to its oldest waiter: the word names it
 * (OWNER_DIED kept, WAITERS while others wait), the others now wait for it, and it runs. 0
 * when nobody waits. */
static int pi_hand_over(struct mm *space, uint64_t key, uint32_t *w)
{
    struct proc *next = pi_oldest(space, key, 0);
    if (!next)
        return 0;
    struct proc *more = pi_oldest(space, key, next);
    *w = (uint32_t)next->pid | (*w & FUTEX_OWNER_DIED_) | (more ? FUTEX_WAITERS_ : 0);
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t != next && pi_waiting(t, space, key))
            t->futex_owner = next->pid;
    }
    next->futex_key = 0; /* (so it knows it was handed the lock) */
    next->futex_pi = 0;
    next->state = P_RUNNABLE;
    return 1;
}

long futex_pi_lock(uint64_t uaddr, int try, int timed, uint64_t deadline)
{
    struct proc *cur = proc_cur();
    struct mm *space;
    uint64_t key = uaddr & 3 ? 0 : futex_name(cur->mm, uaddr, &space);
    uint32_t *w = key ? pi_word(cur->mm, uaddr) : 0;
    if (!w)
        return uaddr & 3 ? -EINVAL : -EFAULT;
    uint32_t owner = *w & FUTEX_TID_MASK_;
    if (!owner) { /* free (perhaps its last owner died): taken, as the user's compare-and-swap would */
        *w = (uint32_t)cur->pid | (*w & FUTEX_OWNER_DIED_) | (pi_oldest(space, key, 0) ? FUTEX_WAITERS_ : 0);
        return 0;
    }
    if (owner == (uint32_t)cur->pid)
        return -EDEADLK_;
    if (!tid_alive(owner))
        return -ESRCH;
    *w |= FUTEX_WAITERS_; /* the owner's unlock now comes to the kernel (a try's too, as Linux's) */
    if (try)
        return -EAGAIN;
    if (timed && !deadline)
        return -ETIMEDOUT;
    cur->futex_key = key;
    cur->futex_mm = space;
    cur->futex_pi = 1;
    cur->futex_owner = (int)owner;
    cur->futex_uaddr = uaddr;
    cur->futex_seq = ++pi_seq;
    cur->wake_tick = deadline;
    block(W_FUTEX);
    if (!cur->futex_key)
        return 0; /* handed over: the word names it already */
    cur->futex_key = 0;
    cur->futex_pi = 0;
    if (deadline && (uint64_t)kernel_ticks() >= deadline)
        return -ETIMEDOUT;
    /* a signal (its handler runs, then the lock is asked for again, as Linux restarts it), a
     * stop, or nothing: asked again either way (the word may have changed meanwhile) */
    return -ERESTARTNOINTR_;
}

long futex_pi_unlock(uint64_t uaddr)
{
    struct proc *cur = proc_cur();
    struct mm *space;
    uint64_t key = uaddr & 3 ? 0 : futex_name(cur->mm, uaddr, &space);
    uint32_t *w = key ? pi_word(cur->mm, uaddr) : 0;
    if (!w)
        return uaddr & 3 ? -EINVAL : -EFAULT;
    if ((*w & FUTEX_TID_MASK_) != (uint32_t)cur->pid)
        return -EPERM;
    if (!pi_hand_over(space, key, w))
        *w = 0;
    return 0;
}

void futex_pi_exit(struct proc *p)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->state != P_BLOCKED || t->why != W_FUTEX || !t->futex_pi || t->futex_owner != p->pid || !t->mm)
            continue;
        uint32_t *w = pi_word(t->mm, t->futex_uaddr);
        if (w && (*w & FUTEX_TID_MASK_) == (uint32_t)p->pid)
            pi_hand_over(t->futex_mm, t->futex_key, w);
    }
}
