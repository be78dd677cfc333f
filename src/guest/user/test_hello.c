/* The built-in test executable: a static Linux x86-64 program that uses only raw syscalls. It
 * proves that the guest loads an ELF, runs it in user mode in its own address space, and serves
 * its write and exit_group syscalls, and that a blocked signal waits until it is unblocked
 * (SIGTERM to itself while blocked: it writes "still here", then unblocking ends it, 143). */
typedef unsigned long u64;

#include "raw_syscall.h"

static char bss_buf[64]; /* proves .bss is zeroed and writable */
static const char msg[] = "hello from user mode\n";

void _start(void)
{
    long bad = SYS(9999, 0, 0, 0, 0); /* unknown syscall: -ENOSYS */
    int i = 0;
    for (const char *p = "enosys ok\n"; *p; p++)
        bss_buf[i++] = *p;
    SYS(1, 1, (long)msg, sizeof(msg) - 1, 0);
    if (bad == -38)
        SYS(1, 2, (long)bss_buf, i, 0);
    SYS(1, 1, (long)0xffff888000000000UL, 16, 0); /* a kernel address: -EFAULT, nothing written */
    static const char here[] = "still here\n";
    u64 term = 1UL << (15 - 1);                 /* SIGTERM in a sigset_t */
    SYS(14, 0, (long)&term, 0, 8);             /* rt_sigprocmask(SIG_BLOCK) */
    SYS(62, SYS(39, 0, 0, 0, 0), 15, 0, 0); /* kill(getpid(), SIGTERM): pending */
    SYS(1, 1, (long)here, sizeof(here) - 1, 0);
    SYS(14, 1, (long)&term, 0, 8);             /* SIG_UNBLOCK: SIGTERM acts on the way out */
    SYS(231, 7, 0, 0, 0); /* exit_group(7): not reached */
    for (;;)
        ;
}
