/* Signals: sending, default actions, handlers and their frames on the user stack, masks. */
#ifndef LEL_GUEST_PROC_SIGNAL_H
#define LEL_GUEST_PROC_SIGNAL_H

#include "../arch/fpu.h"
#include <stdint.h>

struct file;
struct proc;
struct uregs;

#define SA_RESTORER_ 0x04000000ULL

#define ERESTART_ 512 /* a sleeping syscall a signal interrupted: restarted under SA_RESTART, else EINTR */
#define ERESTARTNOINTR_ 513 /* ... restarted whatever the handler's flags (FUTEX_LOCK_PI) */
#define UC_IRET_ (1ULL << 40) /* our uc_flags bit: the context was taken from a preempted program */
#define SIG_UNBLOCKABLE ((1ULL << 9) | (1ULL << 19))

struct sigcontext_ {
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2, fpstate, reserved[8];
};

struct rt_sigframe_ {
    uint64_t pretcode; /* the restorer: the handler's return address */
    struct {
        uint64_t flags, link, ss_sp;
        int32_t ss_flags, pad;
        uint64_t ss_size;
        struct sigcontext_ mc;
        uint64_t sigmask;
    } uc;
    struct {
        int32_t signo, errno_, code, pad;
        int32_t pid, uid, status, pad2;
        uint8_t rest[96];
    } info;
};

int on_altstack(uint64_t sp);

int sig_ready(const struct proc *p);

/* Where a signal comes from, as its siginfo tells: the sender's pid (0: the kernel), si_code,
 * and for timers their id (pid), overrun (aux) and value; `force`: the kernel's hangup or kill
 * of what a command left, which acts even on a process that blocks it. */
struct sigsrc {
    int pid, code, aux, force;
    uint64_t val;
};
#define SI_USER_ 0
#define SI_KERNEL_ 0x80
#define SI_QUEUE_ (-1)
#define SI_TIMER_ (-2)
#define SI_TKILL_ (-6)

/* Sends `sig` to thread `p`: a blocked one stays pending (woken: a sigtimedwait for it, and
 * the process's threads waiting in poll, for a signalfd) unless `force`d; a handled one waits
 * for delivery (waking `p` from a sleep); an ignored one, or one ignored by default, is
 * dropped; any other ends `p`. SIGKILL cannot be caught, ignored or blocked. */
void sig_send(struct proc *p, int sig, const struct sigsrc *src);

/* Job control: a stop signal's default action stops the whole process (its threads park when
 * they next return to user mode, wait4's WUNTRACED and the parent's SIGCHLD hear of it);
 * SIGCONT continues it (WCONTINUED), whatever its action, and either discards the other's
 * pending signals. SIGTSTP, SIGTTIN and SIGTTOU do nothing to a process in an orphaned group. */
#define SIG_STOPS ((1ULL << 19) | (1ULL << 20) | (1ULL << 21) | (1ULL << 22))
#define CLD_STOPPED_ 5
#define CLD_CONTINUED_ 6

/* Whether process group `pgrp` is orphaned: no member has a parent in another group of its
 * session, so nobody is left to continue it. */
int pgrp_orphaned(int pgrp);

/* The current thread waits here while its process is stopped (at every return to user mode). */
void job_park(void);

/* sig_send from process `from` (SI_USER), or from the kernel (0: SI_KERNEL, forced). */
void kill_proc(struct proc *p, int sig, int from);

/* The lowest signal of `set` pending for `p` (its own, or its process's: those that landed on
 * the leader), taken off with its siginfo; 0 when none. */
int sig_take(struct proc *p, uint64_t set, struct sigsrc *info);

/* Signals pending for thread `p`: its own and those that landed on its process's leader. */
uint64_t sig_pending_of(const struct proc *p);

/* A signal's siginfo as Linux lays it out for user memory (128 bytes): rt_sigtimedwait's. */
void siginfo_fill(uint8_t out[128], int sig, const struct sigsrc *si);

/* read of a signalfd: a struct signalfd_siginfo (128 bytes) per pending signal of its mask,
 * taken off; waits for one unless O_NONBLOCK. */
long signalfd_read(struct file *f, uint64_t buf, uint64_t n);

/* What a signalfd is ready for, as poll's revents, for the thread asking (its signals). */
uint32_t signalfd_events(const struct file *f);

void sig_set_action(struct proc *p, int sig, uint64_t handler);

/* After execve: handlers are gone (the code they were in is), ignored signals stay ignored. */
void sig_exec(struct proc *p);

/* At the end of every syscall: the first deliverable signal's handler runs next (a syscall a
 * signal interrupted is restarted first when the handler has SA_RESTART). */
void sig_deliver(struct uregs *r, uint64_t nr);

/* The frame isr_preempt leaves on the kernel stack: callee-saved registers, the caller-saved
 * ones isr_common pushed, vector and error code, then the CPU's interrupt frame. */
enum { F_R15, F_R14, F_R13, F_R12, F_RBP, F_RBX, F_R11, F_R10, F_R9, F_R8, F_RDI, F_RSI, F_RDX, F_RCX, F_RAX,
       F_VEC, F_ERR, F_RIP, F_CS, F_RFLAGS, F_RSP, F_SS, F_WORDS };

/* A process preempted in user mode (a busy loop that makes no syscalls) gets its handled
 * signals when it runs again; the frame says to return from the handler through iret, which
 * brings back every register (sysret cannot: it takes rcx and r11). */
void sig_deliver_preempted(uint64_t *f);

void iret_to(const uint64_t *frame); /* entry.S: restores a preemption frame and irets */

/* A signal to process `g`: taken by a thread that does not block it (the leader first), or
 * else by the first one that lives, as on Linux. */
void kill_process(struct proc *g, int sig, int from);

/* The same with a siginfo (sigqueue, timers). */
void sig_send_process(struct proc *g, int sig, const struct sigsrc *src);

/** rt_sigreturn: the registers (and the x87/SSE/AVX state) a handler's frame on the user stack
 * holds come back, and the mask; a frame taken from a preempted program returns through iret
 * (never comes back here). A bad frame kills the process with SIGSEGV, as on Linux. */
long sig_return(struct uregs *r);

#endif
