/* Signal syscalls: actions, masks, sigsuspend/pause, the alternate stack, rt_sigreturn, kill,
 * tgkill/tkill. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../arch/fpu.h"
#include "../fs/file.h"
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
        struct sigsrc src = {cur->group->pid, SI_TKILL_, 0, 0, 0}; /* glibc's setxid handler checks for it */
        if (sig)
            sig_send(t, (int)sig, &src);
        if (cur->killed)
            proc_exit(128 + cur->killed);
        return 0;
    }
    return -ESRCH;
}

/* A user sigset_t (8 bytes) in the kernel's bit order (bit n: signal n), SIGKILL and SIGSTOP
 * left out; -EFAULT or -EINVAL (another size). */
static long sigset_in(uint64_t uset, uint64_t setsize, uint64_t *set)
{
    if (setsize != 8)
        return -EINVAL;
    if (copy_user(uset, set, 8, 0) < 0)
        return -EFAULT;
    *set = (*set << 1) & ~SIG_UNBLOCKABLE;
    return 0;
}

/* rt_sigtimedwait (sigwait, sigwaitinfo, sigtimedwait): takes the first pending signal of the
 * set (blocked ones, as the caller blocks what it waits for) with its siginfo, waiting up to
 * the timeout (none: for ever; zero: not at all, EAGAIN). A signal outside the set that the
 * caller handles ends the wait with EINTR. */
static long sys_sigtimedwait(uint64_t uset, uint64_t uinfo, uint64_t uts, uint64_t setsize)
{
    struct proc *cur = proc_cur();
    uint64_t set, deadline = 0;
    int64_t ts[2];
    long r = sigset_in(uset, setsize, &set);
    if (r < 0)
        return r;
    if (uts && copy_user(uts, ts, sizeof(ts), 0) < 0)
        return -EFAULT;
    if (uts && (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000))
        return -EINVAL;
    int now = uts && ts[0] == 0 && ts[1] == 0;
    if (uts && !now)
        deadline = tick_after_ns(span_ns(ts[0], ts[1]));
    for (;;) {
        struct sigsrc si;
        int sig = sig_take(cur, set, &si);
        if (sig) {
            uint8_t info[128];
            siginfo_fill(info, sig, &si);
            return uinfo && copy_user(uinfo, info, sizeof(info), 1) < 0 ? -EFAULT : sig;
        }
        if (sig_ready(cur))
            return -EINTR;
        if (now || (deadline && kernel_ticks() >= deadline))
            return -EAGAIN;
        cur->sig_wait = set;
        cur->wake_tick = deadline;
        block(W_SIGNAL);
        cur->sig_wait = 0;
    }
}

/* rt_sigqueueinfo and rt_tgsigqueueinfo (tid > 0): a signal with a value (sigqueue). As on
 * Linux a process may claim a code other than SI_QUEUE's kind only for itself. */
static long sys_sigqueue(int64_t tgid, int64_t tid, uint64_t sig, uint64_t uinfo)
{
    struct proc *cur = proc_cur();
    int32_t head[4];
    uint64_t val;
    if (sig == 0 || sig >= 64)
        return sig == 64 ? 0 : -EINVAL;
    if (copy_user(uinfo, head, sizeof(head), 0) < 0 || copy_user(uinfo + 24, &val, 8, 0) < 0)
        return -EFAULT;
    if ((head[2] >= 0 || head[2] == SI_TKILL_) && (int)tgid != cur->group->pid)
        return -EPERM;
    struct sigsrc src = {cur->group->pid, head[2], 0, 0, val};
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->state != P_RUNNABLE && t->state != P_BLOCKED)
            continue;
        if (tid > 0 ? t->pid == (int)tid && t->group->pid == (int)tgid : t == t->group && t->pid == (int)tgid) {
            if (tid > 0)
                sig_send(t, (int)sig, &src);
            else
                sig_send_process(t, (int)sig, &src);
            if (cur->killed)
                proc_exit(128 + cur->killed);
            return 0;
        }
    }
    return -ESRCH;
}

/* signalfd4 (and signalfd: flags 0): a descriptor that reads the signals of the mask as they
 * are pending (the caller blocks them so they are not delivered); with an existing signalfd,
 * its mask changes. */
static long sys_signalfd(int64_t fd, uint64_t umask, uint64_t size, uint64_t flags)
{
    uint64_t mask;
    if (flags & ~(uint64_t)(O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    long r = sigset_in(umask, size, &mask);
    if (r < 0)
        return r;
    if ((int)fd != -1) {
        struct file *f = fd_get((uint64_t)(int)fd);
        if (!f)
            return -EBADF;
        if (f->type != F_SIGNALFD)
            return -EINVAL;
        f->sigmask = mask;
        return (int)fd;
    }
    struct file *f = file_new(F_SIGNALFD, 0, (int)(flags & O_NONBLOCK_));
    if (f)
        f->sigmask = mask;
    return anon_install(f, flags);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_rt_sigpending(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    uint64_t pending = (sig_pending_of(cur) & cur->sig_blocked) >> 1; /* the others were delivered */
    if (s->b != 8)
        return -EINVAL;
    return copy_user(s->a, &pending, 8, 1);
}

long sc_rt_sigtimedwait(const struct sysargs *s)
{
    return sys_sigtimedwait(s->a, s->b, s->c, s->d);
}

long sc_rt_sigqueueinfo(const struct sysargs *s)
{
    return sys_sigqueue((int64_t)s->a, 0, s->b, s->c);
}

long sc_rt_tgsigqueueinfo(const struct sysargs *s)
{
    return sys_sigqueue((int64_t)s->a, (int64_t)s->b, s->c, s->d);
}

long sc_signalfd(const struct sysargs *s)
{
    return sys_signalfd((int64_t)s->a, s->b, s->c, 0);
}

long sc_signalfd4(const struct sysargs *s)
{
    return sys_signalfd((int64_t)s->a, s->b, s->c, s->d);
}

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
