/* The net loop's jail: a seccomp-bpf filter (libseccomp) the loop thread loads on itself
 * before its first event. The loop parses what every guest writes into its rings (connects,
 * datagrams, DNS questions) and relays it; this bounds what a bug there could be made to do to
 * what relaying needs. Like the vCPU's (src/vmm/lel_vmm_jail.c), a call off the list traps:
 * it fails with -EPERM, and the loop, after the work it was doing for a sandbox, ends that
 * sandbox (lel__net_blame_slow: its connections close, its VM fails with the call's name) and
 * goes on serving the others.
 *
 * The allow-list, and why each call is on it (README "The hypervisor's jail" says the same):
 *   epoll_wait, epoll_pwait, epoll_ctl   the loop itself
 *   read, write, readv, writev           relaying, the eventfds (doorbells, commands, the
 *                                        resolver's answers) and the timerfd; log lines on stderr
 *   recvfrom, sendto                     datagrams
 *   socket(AF_INET or AF_INET6, SOCK_STREAM or SOCK_DGRAM)
 *                                        a guest's connection or datagram socket out (no
 *                                        AF_UNIX, AF_NETLINK, AF_PACKET, raw sockets)
 *   connect, shutdown, close, setsockopt, getsockopt, getsockname
 *                                        their life (the policy is checked before connect)
 *   timerfd_settime                      the bandwidth limit's timer
 *   ioctl(KVM_SIGNAL_MSI), ioctl(KVM_IOEVENTFD)
 *                                        telling a guest of its rings; a detach unregisters
 *                                        the doorbell (no other request, on any descriptor)
 *   futex                                the command queue's lock, waking the callers
 *   mmap, mprotect (never PROT_EXEC), munmap, mremap, madvise, brk
 *                                        malloc (connection buffers, handles)
 *   tgkill(SIGUSR1 or SIGABRT), getpid, gettid
 *                                        kicking a failed sandbox's vCPU (lel_vm_fail), abort()
 *   rt_sigreturn, rt_sigprocmask, sigaltstack, restart_syscall
 *                                        a process signal handled on this thread; glibc's and
 *                                        the sanitizers' signal and thread-exit paths
 *   clock_gettime, gettimeofday, sched_yield, exit
 *                                        the bandwidth clock, sanitizer back-off, the end
 * Host lookups are not made here: getaddrinfo_a's threads would inherit this filter (they
 * open files and load NSS modules), so the loop queues them to an unjailed thread. */
#include "lel_net_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* An argument comparison with every field set (libseccomp's SCMP_Ax macros leave datum_b out,
 * which clang's -Wmissing-field-initializers refuses). MASKED_EQ: (arg & a) == b. */
static struct scmp_arg_cmp arg_is(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
    struct scmp_arg_cmp c = {arg, op, a, b};
    return c;
}

static int allow_eq(scmp_filter_ctx f, int nr, unsigned arg, scmp_datum_t v)
{
    return seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 1, arg_is(arg, SCMP_CMP_EQ, v, 0));
}

/* The loop's own calls, beyond those every jailed thread has (lel_jail_load). */
static int add_net(void *f, void *ctx)
{
    (void)ctx;
    static const int plain[] = {SCMP_SYS(epoll_wait),  SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),  SCMP_SYS(read),
                                SCMP_SYS(write),       SCMP_SYS(readv),       SCMP_SYS(writev),     SCMP_SYS(recvfrom),
                                SCMP_SYS(sendto),      SCMP_SYS(connect),     SCMP_SYS(shutdown),   SCMP_SYS(close),
                                SCMP_SYS(setsockopt),  SCMP_SYS(getsockopt),  SCMP_SYS(getsockname),
                                SCMP_SYS(timerfd_settime), SCMP_SYS(restart_syscall)};
    int r = 0;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]) && r == 0; i++)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, plain[i], 0);
    static const int families[] = {AF_INET, AF_INET6}, types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2 && r == 0; j++) /* the type's low bits; NONBLOCK and CLOEXEC ride above */
            r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, arg_is(0, SCMP_CMP_EQ, families[i], 0),
                                 arg_is(1, SCMP_CMP_MASKED_EQ, 0xf, types[j]));
    if (r == 0)
        r = allow_eq(f, SCMP_SYS(ioctl), 1, KVM_SIGNAL_MSI);
    if (r == 0)
        r = allow_eq(f, SCMP_SYS(ioctl), 1, KVM_IOEVENTFD);
    if (r == 0)
        r = allow_eq(f, SCMP_SYS(tgkill), 2, SIGUSR1);
    return r;
}

int lel__net_jail(lel_net_t *n, char *err, size_t errlen)
{
    return lel_jail_load("the net loop", add_net, n, &n->jail_nr, err, errlen);
}

void lel__net_blame_slow(lel_net_t *n, struct lel_net_ep *ep)
{
    int nr = __atomic_exchange_n(&n->jail_nr, 0, __ATOMIC_ACQ_REL);
    if (!nr)
        return;
    char why[160];
    lel_jail_describe("the net thread", nr - 1, why, sizeof(why));
    if (!ep || !ep->vs || ep->h.kind != H_EP) {
        fprintf(stderr, "lelantosd: net: %s (serving no sandbox in particular)\n", why);
        return;
    }
    lel__net_log(ep, "%s while serving this sandbox: it is stopped", why);
    ep->broken = 1; /* relaying for it stops here; the sandbox's death detaches it */
    while (ep->conns)
        lel__conn_close(ep->conns);
    while (ep->udps)
        lel__udp_close(ep->udps);
    lel_vm_fail(ep->vm, why);
}

void lel__net_jail_test_violation(void)
{
    /* what an exploited relay would do first: read the host's files */
    int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd); /* not jailed (vmm.seccomp: false): nothing happened */
}
