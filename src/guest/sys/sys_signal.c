#include "sys_signal.h"

#include "../arch/arch.h"
#include "../arch/fpu.h"
#include "../lib/errno.h"
#include "../mm/vm.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

long sys_sigaltstack(uint64_t sp, uint64_t uss, uint64_t uold)
{
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

long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oldact, uint64_t setsize)
{
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

long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oldset, uint64_t setsize)
{
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

long sys_sigsuspend(uint64_t umask, int with_mask)
{
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

long sys_rt_sigreturn(struct uregs *r)
{
    static struct rt_sigframe_ f;
    if (copy_user(r->rsp - 8, &f, sizeof(f), 0) < 0)
        die(11);
    const struct sigcontext_ *m = &f.uc.mc;
    if (m->rip >= USER_TOP || (m->fpstate && copy_user(m->fpstate, sig_fx, fpu_size(), 0) < 0))
        die(11);
    if (m->fpstate) {
        fpu_sanitize(sig_fx); /* what the handler left there could fault in xrstor */
        fpu_restore(sig_fx);
    }
    cur->sig_blocked = (f.uc.sigmask << 1) & ~SIG_UNBLOCKABLE;
    uint64_t flags = (m->eflags & 0x40cd5) | 0x202; /* user flags only, interrupts on */
    if (f.uc.flags & UC_IRET_) {
        /* user selectors whatever the frame says: it must not iret into kernel mode */
        uint64_t fr[F_WORDS] = {[F_R15] = m->r15, [F_R14] = m->r14, [F_R13] = m->r13, [F_R12] = m->r12,
                                [F_RBP] = m->rbp, [F_RBX] = m->rbx, [F_R11] = m->r11, [F_R10] = m->r10,
                                [F_R9] = m->r9, [F_R8] = m->r8, [F_RDI] = m->rdi, [F_RSI] = m->rsi,
                                [F_RDX] = m->rdx, [F_RCX] = m->rcx, [F_RAX] = m->rax, [F_RIP] = m->rip,
                                [F_CS] = 0x33, [F_RFLAGS] = flags, [F_RSP] = m->rsp, [F_SS] = 0x2b};
        if (sig_ready(cur)) /* another handler first (it returns here through iret as well) */
            sig_deliver_preempted(fr);
        kernel_irq_off();
        iret_to(fr);
    }
    r->r8 = m->r8, r->r9 = m->r9, r->r10 = m->r10, r->r12 = m->r12, r->r13 = m->r13, r->r14 = m->r14;
    r->r15 = m->r15, r->rdi = m->rdi, r->rsi = m->rsi, r->rbp = m->rbp, r->rbx = m->rbx, r->rdx = m->rdx;
    r->rsp = m->rsp;
    r->rcx = m->rip; /* sysret's RIP; the interrupted syscall had clobbered rcx and r11 anyway */
    r->r11 = flags;
    return (long)m->rax;
}

long sys_kill(int64_t pid64, uint64_t sig)
{
    int pid = (int)pid64, found = 0;
    if (sig > 64)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        /* pid <= 0 (a process group, or everyone): the caller's command stands in for both */
        if (p->state == P_FREE || p->group != p || (p->state == P_ZOMBIE && !p->nthreads) ||
            (pid > 0 && p->pid != pid) || (pid <= 0 && (p->sess != cur->sess || (p == cur->group && pid == -1))))
            continue;
        found = 1;
        if (sig) /* 0 only checks */
            kill_process(p, (int)sig, cur->group->pid);
    }
    if (!found)
        return -ESRCH;
    if (cur->killed)
        proc_exit(128 + cur->killed);
    return 0;
}

long sys_tgkill(int64_t tgid, int64_t tid, uint64_t sig)
{
    if (sig > 64 || tid <= 0)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &procs[i];
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
