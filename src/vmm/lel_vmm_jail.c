/* The vCPU thread's jail: a seccomp-bpf filter (libseccomp) that the thread loads on itself
 * before its first KVM_RUN, so that a bug in the code that handles the guest's exits (port
 * I/O, the doorbell, the console) cannot be turned into anything but what that code does.
 *
 * The filter is the thread's own (no TSYNC): the daemon's other threads are not affected.
 * Anything off the list traps (SCMP_ACT_TRAP, SIGSYS) instead of killing: the kernel skips the
 * call, the handler below makes it return -EPERM and records its number, and the vCPU loop
 * (lel_vmm.c) then ends this VM with the call's name as its death reason. Killing the thread
 * (SCMP_ACT_KILL_THREAD) would leave its mutexes held and its joiner waiting forever, and
 * killing the process would take every other sandbox with it.
 *
 * The allow-list, and why each call is on it (README "The hypervisor's jail" says the same):
 *   ioctl(vcpu_fd, KVM_RUN)  running the guest; only this VM's vCPU, only KVM_RUN (the other
 *                            ioctls, state and memory, are made by the owning actor's thread)
 *   futex                    the VM's mutex and condition variable, the actor mailbox the
 *                            callbacks post to (glibc's pthread locks)
 *   write(count == 8)        the net doorbell's eventfd counter, when KVM has no ioeventfd
 *   write(fd 2)              diagnostics on stderr (sanitizers, glibc's fatal messages)
 *   mmap, munmap, mremap, madvise, brk, mprotect (never PROT_EXEC)
 *                            malloc: the callbacks copy console lines and messages for the
 *                            actor; glibc's arenas grow with mprotect and trim with madvise
 *   rt_sigreturn             returning from the SIGUSR1 kick that interrupts KVM_RUN
 *   rt_sigprocmask, sigaltstack
 *                            glibc and the sanitizers' thread exit and signal paths
 *   clock_gettime, gettimeofday
 *                            the console's rate limit and condition-variable deadlines (the
 *                            vDSO answers them without a call where the host's clock allows)
 *   sched_yield              lock back-off in the sanitizer runtimes
 *   exit                     the thread's own end (exit_group is not on it; glibc frees the
 *                            thread's stack with madvise, above)
 *   getpid, gettid, tgkill(SIGABRT only)
 *                            abort() on a failed assertion: a crash stays a crash
 * Anything else (open, socket, execve, ptrace, mmap with PROT_EXEC, ioctls on other
 * descriptors...) is a forbidden call. */
#include "lel_vmm_int.h"

#include <errno.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp trap (linux/signal.h; glibc hides it in some modes) */
#endif

/* Where this thread's trapped calls are recorded, for the SIGSYS handler (a handler gets no
 * context pointer; this is set once by the thread itself and read only by its own handler):
 * the vCPU thread's VM's jail_syscall, the net loop's own word (lel_jail_catch). */
static __thread int *jail_slot;

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
    (void)sig;
    ucontext_t *uc = uc_;
    int *slot = jail_slot;
    if (si->si_code != SYS_SECCOMP || !slot)
        return;
    uc->uc_mcontext.gregs[REG_RAX] = -EPERM; /* the skipped call fails; the thread's loop acts */
    int nr = si->si_syscall + 1;             /* 0 means none */
    __atomic_compare_exchange_n(slot, &(int){0}, nr, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

void lel_jail_catch(int *slot)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lel__jail_init); /* a daemon may jail its net loop before any VM runs */
    jail_slot = slot;
}

void lel_jail_describe(const char *who, int nr, char *buf, size_t n)
{
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    snprintf(buf, n, "%s made a forbidden system call: %s (%d); seccomp stopped it", who, name ? name : "?", nr);
    free(name);
}

void lel__jail_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
}

static int allow(scmp_filter_ctx f, int nr)
{
    return seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
}

/* An argument comparison with every field set (libseccomp's SCMP_Ax macros leave datum_b out,
 * which clang's -Wmissing-field-initializers refuses). MASKED_EQ: (arg & a) == b. */
static struct scmp_arg_cmp arg_is(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
    struct scmp_arg_cmp c = {arg, op, a, b};
    return c;
}

/* What every jailed thread of the daemon needs (lel_jail_load). */
static int add_base(scmp_filter_ctx f)
{
    static const int plain[] = {SCMP_SYS(futex),        SCMP_SYS(munmap),       SCMP_SYS(mremap),
                                SCMP_SYS(madvise),      SCMP_SYS(brk),          SCMP_SYS(rt_sigreturn),
                                SCMP_SYS(rt_sigprocmask), SCMP_SYS(sigaltstack), SCMP_SYS(clock_gettime),
                                SCMP_SYS(gettimeofday), SCMP_SYS(sched_yield),  SCMP_SYS(exit),
                                SCMP_SYS(getpid),       SCMP_SYS(gettid)};
    int r = 0;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]) && r == 0; i++)
        r = allow(f, plain[i]);
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, arg_is(2, SCMP_CMP_EQ, SIGABRT, 0));
    return r;
}

int lel_jail_load(const char *who, int (*add)(void *f, void *ctx), void *ctx, int *slot, char *err, size_t errlen)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    if (!f) {
        snprintf(err, errlen, "seccomp_init failed");
        return -ENOMEM;
    }
    int r = add_base(f);
    if (r == 0)
        r = add(f, ctx);
    if (r == 0) {
        lel_jail_catch(slot); /* before the filter: a trap from here on is recorded */
        r = seccomp_load(f);  /* sets no_new_privs for this thread first (libseccomp's default) */
    }
    seccomp_release(f);
    if (r < 0)
        snprintf(err, errlen, "cannot load %s's seccomp filter: %s", who, strerror(-r));
    return r;
}

/* The vCPU thread's own: KVM_RUN on its VM's vCPU, and its two kinds of write. */
static int add_vcpu(void *f, void *ctx)
{
    const lel_vm_t *vm = ctx;
    int r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2, arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)vm->vcpu_fd, 0),
                             arg_is(1, SCMP_CMP_EQ, KVM_RUN, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, arg_is(2, SCMP_CMP_EQ, 8, 0));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(write), 1, arg_is(0, SCMP_CMP_EQ, 2, 0));
    return r;
}

int lel__jail_enter(lel_vm_t *vm, char *err, size_t errlen)
{
    return lel_jail_load("the vCPU thread", add_vcpu, vm, &vm->jail_syscall, err, errlen);
}

void lel__jail_reason(int nr, char *buf, size_t n)
{
    lel_jail_describe("the vCPU thread", nr, buf, n);
}

void lel__jail_test_violation(void)
{
    /* what an exploited exit handler would do first: open a connection out */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
        close(fd); /* not jailed (vmm.seccomp: false): nothing happened */
}
