/* Raw Linux x86-64 syscalls for the freestanding test programs (no libc): the guest's built-in
 * test_hello and tests/vm/guest_sigtest. */
#ifndef LEL_RAW_SYSCALL_H
#define LEL_RAW_SYSCALL_H

static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    long r;
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}

/* Up to four arguments, any integer or pointer type. */
#define SYS(nr, a, b, c, d) raw_syscall6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

#endif
