/* The built-in test executable: a static Linux x86-64 program that uses only raw syscalls. It
 * proves that the guest loads an ELF, runs it in user mode in its own address space, and serves
 * its write and exit_group syscalls, and that a blocked signal waits until it is unblocked
 * (SIGTERM to itself while blocked: it writes "still here", then unblocking ends it, 143). */
typedef unsigned long u64;

static long sys3(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static long sys4(long nr, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

static char bss_buf[64]; /* proves .bss is zeroed and writable */
static const char msg[] = "hello from user mode\n";

void _start(void)
{
    long bad = sys3(9999, 0, 0, 0); /* unknown syscall: -ENOSYS */
    int i = 0;
    for (const char *p = "enosys ok\n"; *p; p++)
        bss_buf[i++] = *p;
    sys3(1, 1, (long)msg, sizeof(msg) - 1);
    if (bad == -38)
        sys3(1, 2, (long)bss_buf, i);
    sys3(1, 1, (long)0xffff888000000000UL, 16); /* a kernel address: -EFAULT, nothing written */
    static const char here[] = "still here\n";
    u64 term = 1UL << (15 - 1);                 /* SIGTERM in a sigset_t */
    sys4(14, 0, (long)&term, 0, 8);             /* rt_sigprocmask(SIG_BLOCK) */
    sys3(62, sys3(39, 0, 0, 0), 15, 0);         /* kill(getpid(), SIGTERM): pending */
    sys3(1, 1, (long)here, sizeof(here) - 1);
    sys4(14, 1, (long)&term, 0, 8);             /* SIG_UNBLOCK: SIGTERM acts on the way out */
    sys3(231, 7, 0, 0); /* exit_group(7): not reached */
    for (;;)
        ;
}
