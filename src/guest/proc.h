/* Guest processes: per-process page tables, the ELF loader, user mode, file descriptors and
 * the Linux x86-64 syscalls a static program (busybox) needs. One process at a time for now:
 * a run starts one executable and returns when it exits. */
#ifndef LEL_GUEST_PROC_H
#define LEL_GUEST_PROC_H

#include "lel_guest_abi.h"

#include <stddef.h>

#define KVA(gpa) ((void *)(LEL_KERNEL_BASE + (uint64_t)(gpa)))
#define DMAP(gpa) ((void *)(LEL_DMAP_BASE + (uint64_t)(gpa)))

/* Saved user registers, as syscall_entry pushes them. */
struct uregs {
    uint64_t r15, r14, r13, r12, rbp, rbx, r9, r8, r10, rdx, rsi, rdi, rax, rcx, r11, rsp;
};

/** Sets up syscalls (STAR/LSTAR/SFMASK) and the syscall stack. */
void proc_init(void);
/** What to run: argv[0] is a path in the root filesystem. Strings are NUL-separated lists. */
struct proc_spec {
    const char *argv;
    uint32_t argc;
    const char *env; /* NULL: PATH, HOME, TERM defaults */
    uint32_t envc;
    const char *cwd; /* NULL: "/" */
    const uint8_t *stdin_data;
    uint64_t stdin_len;
    char *out, *err; /* stdout and stderr buffers; err NULL: both go to out */
    uint64_t out_cap, err_cap;
    uint64_t timeout_ticks; /* 0: none */
};

struct proc_result {
    int status; /* as a shell sees it: 0..255, 128+signal when killed */
    uint64_t out_len, err_len;
    int out_truncated, err_truncated, timed_out;
};

/** Runs a program to its exit. Returns 0 with `res` filled, or a negative errno when it could not start. */
int proc_spawn(const struct proc_spec *spec, struct proc_result *res);
/** Timer tick from user mode: ends the process when its time is up. */
void proc_tick(void);
/** Runs the built-in static test executable (stdout and stderr to out). */
int proc_run_test(char *out, uint32_t cap, uint32_t *outlen);
/** Called by the exception handler for a fault in user mode: the process dies with 128+sig. */
void proc_fault(uint64_t vector, uint64_t rip);
/** Whether a process is running (its user mode or its syscalls). */
int proc_active(void);
/** Wall-clock time in ns, from the boot time the host gave and the timer ticks since. */
int64_t proc_now_ns(void);

/* from kmain.c */
void console_write(const char *s);
void console_hex(uint64_t v);
uint64_t kernel_ticks(void);
/** Opens interrupts for user mode: under PVM the VIF byte is the interrupt flag in both modes. */
void kernel_irq_on(void);
void kernel_irq_off(void);
/** Waits for the next interrupt with interrupts open, then closes them again. */
void kernel_idle(void);

#endif
