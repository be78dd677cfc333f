/* Guest processes: physical pages, per-process page tables, the ELF loader, user mode and the
 * syscall table. Single CPU, one process at a time for now. */
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

/** Sets up syscalls (STAR/LSTAR/SFMASK) and the page pool. */
void proc_init(void);
/** Runs the built-in test executable to its exit; output goes to `out` (cap bytes). Returns
 * the exit status (0..255, or 128+signal when killed by a fault) and the output length. */
int proc_run_test(char *out, uint32_t cap, uint32_t *outlen);
/** Called by the exception handler for a fault in user mode: the process dies with 128+sig. */
void proc_fault(uint64_t vector);
/** Whether a process is running (its user mode or its syscalls). */
int proc_active(void);

/* from kmain.c */
void console_write(const char *s);
void console_hex(uint64_t v);

#endif
