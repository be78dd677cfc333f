/* Signal syscalls: actions, masks, sigsuspend/pause, the alternate stack, rt_sigreturn, kill,
 * tgkill/tkill. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../arch/fpu.h"
#include "../lib/errno.h"
#include "../mm/vm.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

/* sigaltstack(ss, old): the stack handlers with SA_ONSTACK run on (per thread; Go and Rust set
 * one for every thread). `sp`: the caller's stack pointer (SS_ONSTACK when it is on it). */
static long sys_sigaltstack(uint64_t sp, uint64_t uss, uint64_t uold)
{
    struct proc *cur = proc_cur();
    uint64_t ss[3], old[3] = {cur->ss_sp, on_altstack(sp) ? 1 : cur->ss_size ? 0 : 2, cur->ss_size};
    if (uss && copy_user(uss, ss, sizeof(ss), 0) < 0)
        return -EFAULT;
    if (uss) {
        uint32_t flags = (uint32_t)ss[1] & ~(1U << 31); /* SS_AUTODISARM: taken, not honoured */
        if (on_altstack(sp))
            return -EPERM;
        if (flags != 0 && flags != 2)
            return -EINVAL;
        if (flags == 0 && ss[2] < 2048) /* MINSIGSTKSZ */
            return -ENOMEM;
        cur->ss_sp = flags ? 0 : ss[0];
        cur->ss_size = flags ? 0 : ss[2];
    }
    return uold && copy_user(uold, old, sizeof(old), 1) < 0 ? -EFAULT : 0;
}

static long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oldact, uint64_t setsize)
{
    struct proc *cur = proc_cur();
    if (sig == 0 || sig > 64 || ((sig == 9 || sig == 19) && act) || setsize != 8)
        return -EINVAL;
    if (sig == 64)
        return 0; /* not tracked: the internal masks hold 1..63 */
    struct sigact *sa = &cur->group->sa[sig];
    uint64_t old[4] = {sa->handler, sa->flags, sa->restorer, sa->mask >> 1}, h[4];
    if (act) {
        if (copy_user(act, h, sizeof(h), 0) < 0)
            return -EFAULT;
        if (h[0] > 1 && !(h[1] & SA_RESTORER_))
            return -EINVAL; /* no way back from the handler (every libc passes its restorer) */
    }
    if (oldact && copy_user(oldact, old, sizeof(old), 1) < 0)
        return -EFAULT;
    if (act) {
        sa->flags = h[1];
        sa->restorer = h[2];
        sa->mask = (h[3] << 1) & ~SIG_UNBLOCKABLE;
        sig_set_action(cur, (int)sig, h[0]);
    }
    return 0;
}

static long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oldset, uint64_t setsize)
{
    struct proc *cur = proc_cur();
    uint64_t old = cur->sig_blocked >> 1, m;
    if (setsize != 8)
        return -EINVAL;
    if (set) {
        if (copy_user(set, &m, 8, 0) < 0)
            return -EFAULT;
        m <<= 1;
        if (how == 0)
            cur->sig_blocked |= m;
        else if (how == 1)
            cur->sig_blocked &= ~m;
        else if (how == 2)
            cur->sig_blocked = m;
        else
            return -EINVAL;
        cur->sig_blocked &= ~SIG_UNBLOCKABLE;
    }
    return oldset && copy_user(oldset, &old, 8, 1) < 0 ? -EFAULT : 0;
}

/* rt_sigsuspend (mask given) and pause (mask 0, none): sleeps until a handled signal comes;
 * the handler runs with the old mask saved in its frame. */
static long sys_sigsuspend(uint64_t umask, int with_mask)
{
    struct proc *cur = proc_cur();
    uint64_t m;
    if (with_mask) {
        if (copy_user(umask, &m, 8, 0) < 0)
            return -EFAULT;
        cur->sig_saved = cur->sig_blocked;
        cur->sig_saved_valid = 1;
        cur->sig_blocked = (m << 1) & ~SIG_UNBLOCKABLE;
    }
    while (!sig_ready(cur))
        block(W_SIGNAL);
    return -EINTR;
}


/* kill: to process `pid`, to every process of group -pid (pid below -1) or of the caller's
 * (0), or (-1) to every other process of the caller's command. A zombie counts as found, and
 * gets nothing, as on Linux. */
static long sys_kill(int64_t pid64, uint64_t sig)
{
    struct proc *cur = proc_cur(), *me = cur->group;
    int pid = (int)pid64, found = 0, pgid = pid == 0 ? me->pgid : pid == -2147483647 - 1 ? 0 : -pid;
    if (sig > 64)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->state == P_FREE || p->group != p)
            continue;
        int hit = pid > 0 ? p->pid == pid : pid == -1 ? p->sess == cur->sess && p != me : p->pgid == pgid;
        if (!hit)
            continue;
        found = 1;
        if (sig && (p->state != P_ZOMBIE || p->nthreads)) /* 0 only checks */
            kill_process(p, (int)sig, me->pid);
    }
    if (!found)
        return -ESRCH;
    if (cur->killed)
        proc_exit(128 + cur->killed);
    return 0;
}

/* tgkill and tkill (tgid 0): a signal to one thread. */
static long sys_tgkill(int64_t tgid, int64_t tid, uint64_t sig)
{
    struct proc *cur = proc_cur();
    if (sig > 64 || tid <= 0)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->pid != tid || (t->state != P_RUNNABLE && t->state != P_BLOCKED) || (tgid > 0 && t->group->pid != tgid))
            continue;
        if (sig)
            kill_proc(t, (int)sig, cur->group->pid);
        if (cur->killed)
            proc_exit(128 + cur->killed);
        return 0;
    }
    return -ESRCH;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_rt_sigaction(const struct sysargs *s)
{
    return sys_rt_sigaction(s->a, s->b, s->c, s->d);
}

long sc_rt_sigprocmask(const struct sysargs *s)
{
    return sys_rt_sigprocmask(s->a, s->b, s->c, s->d);
}

long sc_rt_sigreturn(const struct sysargs *s)
{
    return sig_return(s->r);
}

long sc_pause(const struct sysargs *s)
{
    (void)s;
    return sys_sigsuspend(0, 0); /* pause */
}

long sc_rt_sigsuspend(const struct sysargs *s)
{
    return sys_sigsuspend(s->a, 1);
}

long sc_sigaltstack(const struct sysargs *s)
{
    return sys_sigaltstack(s->r->rsp, s->a, s->b);
}

long sc_tkill(const struct sysargs *s)
{
    return sys_tgkill(0, (int64_t)s->a, s->b); /* tkill */
}

long sc_tgkill(const struct sysargs *s)
{
    return sys_tgkill((int64_t)s->a, (int64_t)s->b, s->c);
}

long sc_kill(const struct sysargs *s)
{
    return sys_kill((int64_t)s->a, s->b);
}
