/* Scheduling policy: sched_setscheduler and its family, kept per process as Linux reports them
 * (SCHED_OTHER, BATCH and IDLE at priority 0; root may ask for SCHED_FIFO or RR at 1..99) but
 * not applied: one vCPU runs every thread round robin, a tick each. getcpu says CPU 0, and the
 * affinity calls know that one CPU. */
#include "syscall.h"

#include "../lib/errno.h"
#include "../proc/proc.h"

#define SCHED_OTHER 0
#define SCHED_FIFO 1
#define SCHED_RR 2
#define SCHED_BATCH 3
#define SCHED_IDLE 5
#define SCHED_RESET_ON_FORK 0x40000000

/* The process `pid` names (0: the caller), by its leader; NULL when there is none. */
static struct proc *target(int64_t pid)
{
    if (pid < 0)
        return 0;
    struct proc *p = pid ? proc_by_pid((int)pid) : proc_cur();
    return p && p->state != P_ZOMBIE ? p->group : 0;
}

static int realtime(int policy)
{
    return policy == SCHED_FIFO || policy == SCHED_RR;
}

static long prio_max(int64_t policy)
{
    return realtime((int)policy) ? 99 : policy == SCHED_OTHER || policy == SCHED_BATCH || policy == SCHED_IDLE ? 0 : -EINVAL;
}

/* Sets `p`'s policy and priority, which must fit each other; realtime ones are root's. */
static long set_sched(struct proc *p, int policy, uint64_t uparam)
{
    int32_t prio;
    if (!uparam || copy_user(uparam, &prio, 4, 0) < 0)
        return !uparam ? -EINVAL : -EFAULT;
    if (prio_max(policy) < 0 || prio < (realtime(policy) ? 1 : 0) || prio > prio_max(policy))
        return -EINVAL;
    if (realtime(policy) && proc_cur()->group->uid[1] != 0)
        return -EPERM;
    p->sched_policy = policy;
    p->sched_prio = prio;
    return 0;
}

static long sys_setscheduler(int64_t pid, int64_t policy, uint64_t uparam)
{
    struct proc *p = target(pid);
    if (!p)
        return pid < 0 ? -EINVAL : -ESRCH;
    int reset = (policy & SCHED_RESET_ON_FORK) != 0;
    long r = set_sched(p, (int)(policy & ~SCHED_RESET_ON_FORK), uparam);
    if (r == 0)
        p->sched_reset = (uint8_t)reset;
    return r;
}

long sc_sched_setparam(const struct sysargs *s)
{
    struct proc *p = target((int64_t)s->a);
    return !p ? ((int64_t)s->a < 0 ? -EINVAL : -ESRCH) : set_sched(p, p->sched_policy, s->b);
}

long sc_sched_getparam(const struct sysargs *s)
{
    struct proc *p = target((int64_t)s->a);
    if (!p)
        return (int64_t)s->a < 0 ? -EINVAL : -ESRCH;
    int32_t prio = p->sched_prio;
    return s->b && copy_user(s->b, &prio, 4, 1) == 0 ? 0 : s->b ? -EFAULT : -EINVAL;
}

long sc_sched_setscheduler(const struct sysargs *s)
{
    return sys_setscheduler((int64_t)s->a, (int64_t)(int32_t)s->b, s->c);
}

long sc_sched_getscheduler(const struct sysargs *s)
{
    struct proc *p = target((int64_t)s->a);
    return !p ? ((int64_t)s->a < 0 ? -EINVAL : -ESRCH) : p->sched_policy | (p->sched_reset ? SCHED_RESET_ON_FORK : 0);
}

long sc_sched_get_priority_max(const struct sysargs *s)
{
    return prio_max((int64_t)(int32_t)s->a);
}

long sc_sched_get_priority_min(const struct sysargs *s)
{
    long m = prio_max((int64_t)(int32_t)s->a);
    return m < 0 ? m : m ? 1 : 0;
}

/* sched_rr_get_interval: the tick (10 ms), each thread's turn here */
long sc_sched_rr_get_interval(const struct sysargs *s)
{
    int64_t ts[2] = {0, 10000000};
    if (!target((int64_t)s->a))
        return (int64_t)s->a < 0 ? -EINVAL : -ESRCH;
    return copy_user(s->b, ts, sizeof(ts), 1);
}

long sc_getcpu(const struct sysargs *s)
{
    uint32_t zero = 0;
    if ((s->a && copy_user(s->a, &zero, 4, 1) < 0) || (s->b && copy_user(s->b, &zero, 4, 1) < 0))
        return -EFAULT;
    return 0;
}

/* sched_getaffinity and sched_setaffinity: one CPU, so every thread's set is {0}; a set to
 * take must hold CPU 0 (EINVAL else: no CPU it names is online), and the thread must exist
 * (ESRCH, as for pid -1). */
long sc_sched_getaffinity(const struct sysargs *s)
{
    uint64_t mask = 1;
    if (!target((int)s->a))
        return -ESRCH;
    if (s->b < sizeof(mask) || (s->b & 7))
        return -EINVAL;
    return copy_user(s->c, &mask, sizeof(mask), 1) < 0 ? -EFAULT : (long)sizeof(mask);
}

long sc_sched_setaffinity(const struct sysargs *s)
{
    uint8_t first = 0;
    if (s->b && copy_user(s->c, &first, 1, 0) < 0)
        return -EFAULT;
    if (!target((int)s->a))
        return -ESRCH;
    return first & 1 ? 0 : -EINVAL;
}
