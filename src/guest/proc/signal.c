/* Signals with handlers. A handled signal is delivered when its process
 * returns from a syscall (one sleeping in a syscall is woken for it): the registers and the
 * x87/SSE state go into a Linux rt_sigframe on the user stack and the handler runs; its
 * restorer's rt_sigreturn brings them back. A process that never makes a syscall gets its
 * handled signals at its next one (default actions, SIGKILL above all, act at once). Internal
 * masks have bit n for signal n; the user's sigset_t has bit n-1. */
#include "signal.h"

#include "../arch/arch.h"
#include "../arch/fpu.h"
#include "../lib/errno.h"
#include "../fs/file.h"
#include "../lib/klib.h"
#include "../mm/vm.h"
#include "exec.h"
#include "ktimer.h"
#include "proc.h"

#define SA_ONSTACK_ 0x08000000ULL
#define SA_RESTART_ 0x10000000ULL
#define SA_NODEFER_ 0x40000000ULL
#define SA_RESETHAND_ 0x80000000ULL

#define SIG_DEFAULT_IGNORED ((1ULL << 17) | (1ULL << 18) | (1ULL << 23) | (1ULL << 28)) /* CHLD CONT URG WINCH */

/* x87/SSE/AVX state on its way to or from a signal frame (one vCPU, no switch in between);
 * with XSAVE it is described as Linux describes it (magic numbers, sizes, UC_FP_XSTATE), so
 * unwinders and debuggers that look at it find what they expect */
static uint8_t sig_fx[FPU_AREA_MAX + 4] __attribute__((aligned(64)));

#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#define UC_FP_XSTATE_ 1ULL

static uint64_t sig_fx_len(void)
{
    return fpu_size() > 512 ? fpu_size() + 4 : 512;
}

static void sig_fx_fill(void)
{
    fpu_save(sig_fx);
    if (fpu_size() <= 512)
        return;
    uint32_t *sw = (uint32_t *)(sig_fx + 464); /* struct _fpx_sw_bytes */
    sw[0] = FP_XSTATE_MAGIC1;
    sw[1] = fpu_size() + 4;
    *(uint64_t *)(sw + 2) = fpu_features();
    sw[4] = fpu_size();
    *(uint32_t *)(sig_fx + fpu_size()) = FP_XSTATE_MAGIC2;
}

int on_altstack(uint64_t sp)
{
    struct proc *cur = proc_cur();
    return cur->ss_size && sp - cur->ss_sp <= cur->ss_size;
}

int sig_ready(const struct proc *p)
{
    return (p->sig_pending & ~p->sig_blocked) != 0;
}

int pgrp_orphaned(int pgrp)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        const struct proc *q = &ptable.procs[i];
        if (q->state == P_FREE || q->state == P_ZOMBIE || q->group != q || q->pgid != pgrp)
            continue;
        const struct proc *par = q->ppid > 1 ? proc_by_pid(q->ppid) : 0;
        if (par && par->state != P_ZOMBIE && par->pgid != pgrp && par->sid == q->sid)
            return 0;
    }
    return 1;
}

/* g stopped or continued: its parent's wait hears of it, and its SIGCHLD says so unless the
 * parent asked for none (SA_NOCLDSTOP). */
static void job_notify(struct proc *g, int code, int sig)
{
    struct proc *par = g->ppid > 1 ? proc_by_pid(g->ppid) : 0;
    g->stop_note = code;
    wake(W_WAIT, g->ppid);
    if (par && par->state != P_ZOMBIE && !(par->sa[17].flags & 1)) {
        struct sigsrc chld = {g->pid, code, 0, 0, (uint64_t)sig};
        sig_send_process(par, 17, &chld);
    }
}

static void job_stop(struct proc *g, int sig)
{
    if (g->stopped)
        return;
    g->stopped = sig;
    job_notify(g, CLD_STOPPED_, sig);
}

/* SIGCONT: pending stops go, and a stopped process goes on. */
static void job_continue(struct proc *g)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (ptable.procs[i].state != P_FREE && ptable.procs[i].group == g)
            ptable.procs[i].sig_pending &= ~SIG_STOPS;
    if (!g->stopped)
        return;
    g->stopped = 0;
    wake(W_STOP, g->pid);
    job_notify(g, CLD_CONTINUED_, 18);
}

void job_park(void)
{
    struct proc *cur = proc_cur();
    while (cur->group->stopped && !cur->killed)
        block(W_STOP);
}

void sig_send(struct proc *p, int sig, const struct sigsrc *src)
{
    uint64_t bit = sig > 0 && sig < 64 ? 1ULL << sig : 0;
    if (p->state == P_FREE || p->state == P_ZOMBIE || p->killed || !bit)
        return;
    if (sig == 18)
        job_continue(p->group);
    else if (bit & SIG_STOPS)
        p->sig_pending &= ~(1ULL << 18), p->group->sig_pending &= ~(1ULL << 18);
    int handled = sig != 9 && (p->group->sig_handled & bit), blocked = sig != 9 && (p->sig_blocked & bit);
    /* a program's signal waits while blocked (sig_next acts on it then); the kernel's hangup and
     * kill of what a command left act now: a fork bomb that keeps signals blocked must end */
    if (handled || (blocked && !src->force)) {
        if (!(p->sig_pending & bit)) { /* a standard signal pending twice is one */
            p->sig_info[sig].pid = src->pid;
            p->sig_info[sig].code = (int16_t)src->code;
            p->sig_info[sig].aux = (uint16_t)src->aux;
            p->sig_info[sig].val = src->val;
        }
        p->sig_pending |= bit;
        if (p->state == P_BLOCKED && (!blocked || (p->sig_wait & bit)))
            p->state = P_RUNNABLE; /* its syscall sees sig_ready (or what it waits for) and returns */
        if (blocked)
            wake(W_PIPE, p->group->pid); /* a signalfd of the process's may be polled */
        return;
    }
    if (sig != 9 && ((p->group->sig_ign | SIG_DEFAULT_IGNORED) & bit))
        return;
    if (bit & SIG_STOPS) {
        if (sig == 19 || !pgrp_orphaned(p->group->pgid))
            job_stop(p->group, sig);
        return;
    }
    p->killed = sig;
    if (p->state == P_BLOCKED)
        p->state = P_RUNNABLE;
}

void kill_proc(struct proc *p, int sig, int from)
{
    struct sigsrc src = {from, from ? SI_USER_ : SI_KERNEL_, 0, from == 0, 0};
    sig_send(p, sig, &src);
}

uint64_t sig_pending_of(const struct proc *p)
{
    return p->sig_pending | (p->group != p ? p->group->sig_pending : 0);
}

int sig_take(struct proc *p, uint64_t set, struct sigsrc *info)
{
    uint64_t ready = sig_pending_of(p) & set & ~1ULL;
    if (!ready)
        return 0;
    int sig = __builtin_ctzll(ready);
    struct proc *from = (p->sig_pending >> sig) & 1 ? p : p->group;
    from->sig_pending &= ~(1ULL << sig);
    *info = (struct sigsrc){from->sig_info[sig].pid, from->sig_info[sig].code, from->sig_info[sig].aux, 0,
                            from->sig_info[sig].val};
    if (info->code == SI_TIMER_)
        info->aux = ktimer_signal_taken(p->group->pid, info->pid);
    return sig;
}

void sig_set_action(struct proc *p, int sig, uint64_t handler)
{
    uint64_t bit = 1ULL << sig;
    p->group->sa[sig].handler = handler;
    p->group->sig_ign = handler == 1 ? p->group->sig_ign | bit : p->group->sig_ign & ~bit;
    p->group->sig_handled = handler > 1 ? p->group->sig_handled | bit : p->group->sig_handled & ~bit;
    if (handler == 1 || (handler == 0 && (SIG_DEFAULT_IGNORED & bit))) /* ignored now: dropped */
        p->sig_pending &= ~bit;
}

void sig_exec(struct proc *p)
{
    for (int s = 1; s < 64; s++)
        if ((p->group->sig_handled >> s) & 1)
            sig_set_action(p, s, 0);
}

/* The first deliverable signal with a handler (0: none); its pending bit goes. One that was
 * pending while blocked and has its default action now ends the process. */
static int sig_next(void)
{
    struct proc *cur = proc_cur();
    for (uint64_t ready = cur->sig_pending & ~cur->sig_blocked; ready; ready &= ready - 1) {
        int s = __builtin_ctzll(ready);
        cur->sig_pending &= ~(1ULL << s);
        if (cur->group->sa[s].handler > 1)
            return s;
        if (cur->group->sa[s].handler == 0 && (SIG_STOPS & (1ULL << s))) {
            if (s == 19 || !pgrp_orphaned(cur->group->pgid))
                job_stop(cur->group, s);
            continue;
        }
        if (cur->group->sa[s].handler == 0 && !(SIG_DEFAULT_IGNORED & (1ULL << s)))
            die(s);
    }
    return 0;
}

/* Puts the handler's frame for `sig` (the interrupted context `ctx`, its x87/SSE state and
 * signal mask) on the user stack below the red zone and blocks what the handler blocks.
 * Returns the handler's stack pointer; a stack the frame does not fit ends the process with
 * SIGSEGV, as on Linux. */
static uint64_t sig_push(const struct sigcontext_ *ctx, int sig, uint64_t uc_flags)
{
    struct proc *cur = proc_cur();
    static struct rt_sigframe_ f;
    struct sigact *sa = &cur->group->sa[sig];
    int alt = (sa->flags & SA_ONSTACK_) && cur->ss_size && !on_altstack(ctx->rsp); /* nested: stays there */
    uint64_t top = alt ? cur->ss_sp + cur->ss_size : ctx->rsp - 128; /* below the red zone */
    uint64_t fx_at = (top - sig_fx_len()) & ~63ULL;
    uint64_t sp = ((fx_at - sizeof(f)) & ~15ULL) - 8; /* as after a call: 16-byte boundary - 8 */
    kmemset(&f, 0, sizeof(f));
    f.pretcode = sa->restorer;
    f.uc.flags = uc_flags | (fpu_size() > 512 ? UC_FP_XSTATE_ : 0);
    f.uc.mc = *ctx;
    f.uc.mc.fpstate = fx_at;
    f.uc.sigmask = (cur->sig_saved_valid ? cur->sig_saved : cur->sig_blocked) >> 1;
    f.uc.ss_sp = cur->ss_sp;
    f.uc.ss_size = cur->ss_size;
    f.uc.ss_flags = cur->ss_size ? 0 : 2; /* SS_DISABLE */
    f.info.signo = sig;
    f.info.code = cur->sig_info[sig].code;
    f.info.pid = cur->sig_info[sig].pid;
    if (f.info.code == SI_TIMER_) /* si_tid, si_overrun */
        f.info.uid = ktimer_signal_taken(cur->group->pid, f.info.pid);
    if (f.info.code == SI_TIMER_ || f.info.code == SI_QUEUE_ || sig == 17) /* si_value; a child's si_status */
        kmemcpy(&f.info.status, &cur->sig_info[sig].val, 8);
    sig_fx_fill();
    if (sa->handler >= USER_TOP || copy_user(sp, &f, sizeof(f), 1) < 0 || copy_user(fx_at, sig_fx, sig_fx_len(), 1) < 0)
        die(11);
    cur->sig_blocked = (cur->sig_saved_valid ? cur->sig_saved : cur->sig_blocked) | sa->mask;
    if (!(sa->flags & SA_NODEFER_))
        cur->sig_blocked |= 1ULL << sig;
    cur->sig_blocked &= ~SIG_UNBLOCKABLE;
    cur->sig_saved_valid = 0;
    if (sa->flags & SA_RESETHAND_)
        sig_set_action(cur, sig, 0);
    fx_reset(cur); /* the handler starts with clean x87/SSE state */
    return sp;
}

void sig_deliver(struct uregs *r, uint64_t nr)
{
    struct proc *cur = proc_cur();
    long ret = (long)r->rax;
    int sig = sig_next();
    job_park();
    if ((ret == -ERESTART_ || ret == -ERESTARTNOINTR_) && nr != 15) { /* (after rt_sigreturn rax is the interrupted code's) */
        if (!sig || ret == -ERESTARTNOINTR_ || (cur->group->sa[sig].flags & SA_RESTART_)) {
            ret = (long)nr; /* the syscall runs again when the process (or its handler) returns */
            r->rcx -= 2;    /* back onto the syscall instruction */
        } else {
            ret = -EINTR;
        }
    }
    r->rax = (uint64_t)ret;
    if (!sig) {
        if (cur->sig_saved_valid) /* sigsuspend ended without a handler: its mask goes */
            cur->sig_blocked = cur->sig_saved;
        cur->sig_saved_valid = 0;
        return;
    }
    struct sigcontext_ c = {.r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11, .r12 = r->r12, .r13 = r->r13,
                            .r14 = r->r14, .r15 = r->r15, .rdi = r->rdi, .rsi = r->rsi, .rbp = r->rbp, .rbx = r->rbx,
                            .rdx = r->rdx, .rax = r->rax, .rcx = r->rcx, .rsp = r->rsp, .rip = r->rcx,
                            .eflags = r->r11, .cs = 0x33, .ss = 0x2b};
    uint64_t sp = sig_push(&c, sig, 0);
    r->rdi = (uint64_t)sig;
    r->rsi = sp + __builtin_offsetof(struct rt_sigframe_, info);
    r->rdx = sp + __builtin_offsetof(struct rt_sigframe_, uc);
    r->rax = 0;
    r->rsp = sp;
    r->rcx = cur->group->sa[sig].handler;
    r->r11 = (r->r11 & 0x8d5) | 0x202; /* arithmetic flags kept; DF, TF, AC cleared as on Linux */
}

void sig_deliver_preempted(uint64_t *f)
{
    struct proc *cur = proc_cur();
    int sig = sig_next();
    if (!sig)
        return;
    struct sigcontext_ c = {.r8 = f[F_R8], .r9 = f[F_R9], .r10 = f[F_R10], .r11 = f[F_R11], .r12 = f[F_R12],
                            .r13 = f[F_R13], .r14 = f[F_R14], .r15 = f[F_R15], .rdi = f[F_RDI], .rsi = f[F_RSI],
                            .rbp = f[F_RBP], .rbx = f[F_RBX], .rdx = f[F_RDX], .rax = f[F_RAX], .rcx = f[F_RCX],
                            .rsp = f[F_RSP], .rip = f[F_RIP], .eflags = f[F_RFLAGS], .cs = 0x33, .ss = 0x2b};
    uint64_t sp = sig_push(&c, sig, UC_IRET_);
    f[F_RDI] = (uint64_t)sig;
    f[F_RSI] = sp + __builtin_offsetof(struct rt_sigframe_, info);
    f[F_RDX] = sp + __builtin_offsetof(struct rt_sigframe_, uc);
    f[F_RAX] = 0;
    f[F_RSP] = sp;
    f[F_RIP] = cur->group->sa[sig].handler;
    f[F_RFLAGS] = (f[F_RFLAGS] & 0x8d5) | 0x202;
}

void syscall_exit_pvm(const struct uregs *r)
{
    uint64_t f[F_WORDS] = {[F_R15] = r->r15, [F_R14] = r->r14, [F_R13] = r->r13, [F_R12] = r->r12, [F_RBP] = r->rbp,
                           [F_RBX] = r->rbx, [F_R11] = r->r11, [F_R10] = r->r10, [F_R9] = r->r9,   [F_R8] = r->r8,
                           [F_RDI] = r->rdi, [F_RSI] = r->rsi, [F_RDX] = r->rdx, [F_RCX] = r->rcx, [F_RAX] = r->rax,
                           [F_RIP] = r->rcx, [F_CS] = 0x33,    [F_RFLAGS] = r->r11, [F_RSP] = r->rsp, [F_SS] = 0x2b};
    iret_to(f);
    __builtin_unreachable();
}

void sig_send_process(struct proc *g, int sig, const struct sigsrc *src)
{
    struct proc *to = 0;
    for (int i = -1; i < MAX_PROCS; i++) {
        struct proc *t = i < 0 ? g : &ptable.procs[i];
        if (t->group != g || (t->state != P_RUNNABLE && t->state != P_BLOCKED))
            continue;
        if (!to)
            to = t;
        if (sig > 0 && sig < 64 && (!(t->sig_blocked & (1ULL << sig)) || (t->sig_wait & (1ULL << sig)))) {
            to = t; /* one that does not block it, or waits for it */
            break;
        }
    }
    if (to)
        sig_send(to, sig, src);
}

void kill_process(struct proc *g, int sig, int from)
{
    struct sigsrc src = {from, from ? SI_USER_ : SI_KERNEL_, 0, from == 0, 0};
    sig_send_process(g, sig, &src);
}

/* rt_sigreturn: back to where the handler interrupted, from the frame it was given (the
 * restorer runs with the stack just past pretcode). A context taken at a syscall returns
 * through sysret; one taken from a preempted program through iret, with every register. */
long sig_return(struct uregs *r)
{
    struct proc *cur = proc_cur();
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

void siginfo_fill(uint8_t out[128], int sig, const struct sigsrc *si)
{
    int32_t head[6] = {sig, 0, si->code, 0, si->pid, si->code == SI_TIMER_ ? si->aux : 0};
    kmemset(out, 0, 128);
    kmemcpy(out, head, sizeof(head));
    if (si->code == SI_TIMER_ || si->code == SI_QUEUE_ || sig == 17) /* si_value; a child's si_status */
        kmemcpy(out + 24, &si->val, 8);
}

long signalfd_read(struct file *f, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint64_t done = 0;
    if (n < 128)
        return -EINVAL;
    for (;;) {
        struct sigsrc si;
        int sig;
        while (done + 128 <= n && (sig = sig_take(cur, f->sigmask, &si))) {
            uint32_t ssi[32]; /* struct signalfd_siginfo */
            kmemset(ssi, 0, sizeof(ssi));
            ssi[0] = (uint32_t)sig;
            ssi[2] = (uint32_t)si.code;
            ssi[3] = (uint32_t)si.pid;
            ssi[6] = si.code == SI_TIMER_ ? (uint32_t)si.pid : 0; /* ssi_tid */
            ssi[8] = si.code == SI_TIMER_ ? si.aux : 0;           /* ssi_overrun */
            ssi[10] = sig == 17 ? (uint32_t)si.val : 0;          /* ssi_status */
            ssi[11] = (uint32_t)si.val;                           /* ssi_int */
            kmemcpy(&ssi[12], &si.val, 8);                        /* ssi_ptr */
            if (copy_user(buf + done, ssi, sizeof(ssi), 1) < 0)
                return done ? (long)done : -EFAULT;
            done += 128;
        }
        if (done)
            return (long)done;
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -EINTR;
        block(W_PIPE);
    }
}

uint32_t signalfd_events(const struct file *f)
{
    struct proc *cur = proc_cur();
    return cur && (sig_pending_of(cur) & f->sigmask) ? 0x1 /* POLLIN */ : 0;
}
