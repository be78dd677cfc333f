/* Guest processes: per-process page tables, the ELF loader, user mode, file descriptors, the
 * Linux x86-64 syscalls a static program (busybox) needs, and the scheduler. Commands from the
 * host are sessions: several run at once, each with its own output and deadline. */
#ifndef LEL_GUEST_PROC_H
#define LEL_GUEST_PROC_H

#include "lel_guest_abi.h"

#include <stddef.h>

#define MAX_PROCS 128 /* processes and threads; also what a fork bomb meets: fork then fails with EAGAIN */
#define KSTACK 32768
/* The processes' kernel stacks lie at a fixed place below the page pool (too big for .bss,
 * which must end below the bulk area); a stack's pages are touched only as deep as it grows. */
#define LEL_GPA_KSTACKS 0x400000ULL
#define LEL_GPA_POOL (LEL_GPA_KSTACKS + (uint64_t)MAX_PROCS * KSTACK)

#define KVA(gpa) ((void *)(LEL_KERNEL_BASE + (uint64_t)(gpa)))
#define DMAP(gpa) ((void *)(LEL_DMAP_BASE + (uint64_t)(gpa)))

/* Saved user registers, as syscall_entry pushes them. */
struct uregs {
    uint64_t r15, r14, r13, r12, rbp, rbx, r9, r8, r10, rdx, rsi, rdi, rax, rcx, r11, rsp;
};

/** Sets up syscalls (STAR/LSTAR/SFMASK) and the syscall stack. */
void proc_init(void);
/** What to run: argv[0] is a path in the root filesystem. Strings are NUL-separated lists;
 * everything is copied before proc_start returns. */
struct proc_spec {
    const char *argv;
    uint32_t argc;
    const char *env; /* NULL: PATH, HOME, TERM defaults */
    uint32_t envc;
    const char *cwd; /* NULL: "/" */
    const uint8_t *stdin_data;
    uint64_t stdin_len;
    uint64_t timeout_ticks; /* 0: none */
    int merge_err;          /* stderr goes to stdout */
    int background;         /* nobody collects the result: the session frees itself when it ends */
};

struct proc_result {
    int status; /* as a shell sees it: 0..255, 128+signal when killed */
    uint64_t out_len, err_len;
    int out_truncated, err_truncated, timed_out;
};

/** Starts a command (a session): its first process is loaded and runnable when this returns.
 * Returns the session id (> 0) or a negative errno when it could not start. Processes run
 * from proc_step. */
int proc_start(const struct proc_spec *spec);
/** The same with the built-in static test executable (stdout and stderr merged). */
int proc_start_test(void);
/** One scheduling step on the kernel's stack: runs one runnable process until it blocks,
 * yields, exits or is preempted, and ends sessions whose first process exited or whose
 * deadline passed (calling kernel_event for each one that waits to be collected). Returns 1
 * when a process ran, 0 when none was runnable. */
int proc_step(void);
/** Whether session `id` has ended (or does not exist). */
int proc_done(int id);
/** Takes the result of ended session `id` (0: any ended one): stdout and stderr are copied to
 * out/err (err NULL: not wanted) up to the caps, and the session is freed. Returns its id, 0
 * when it has not ended, -ENOENT when there is no such session. */
int proc_collect(int id, void *out, uint64_t out_cap, void *err, uint64_t err_cap, struct proc_result *res);
/** Kills every process still in session `id`. */
int proc_kill_session(int id);
/** Called by the exception handler for a fault in user mode ({error code, rip, cs, rflags,
 * rsp, ss}; `addr`: a page fault's address): logged, and the process dies with 128+sig. */
void proc_fault(uint64_t vector, const uint64_t *frame, uint64_t addr);
/** A user-mode page fault at `addr` (error code `err`) that the kernel resolves (the stack
 * growing): 1, and the program goes on; 0: it is a fault. */
int proc_page_fault(uint64_t addr, uint64_t err);
struct inode;
/** For a /proc file, its contents as of now in a new anonymous file (release it with
 * fs_anon_free); NULL for any other file, or when out of memory. */
struct inode *proc_file_render(struct inode *f);
/** Whether a process is running (its user mode or its syscalls). */
int proc_active(void);
/** Wall-clock time in ns, from the boot time the host gave and the timer ticks since. */
int64_t proc_now_ns(void);

/* from kmain.c */
/** Running under PVM (the boot information says so). */
extern int kernel_pvm;
void console_write(const char *s);
void console_hex(uint64_t v);
/** Timer ticks since boot (from the TSC when its rate is known, so they count while the timer
 * is stopped). */
uint64_t kernel_ticks(void);
/** Nanoseconds since boot (TSC resolution when its rate is known, else a tick's). */
uint64_t kernel_ns(void);
/** The length of a timer tick, in ns (the boot info's tick rate, 100 Hz by default). */
uint64_t kernel_tick_ns(void);
/** The timer: periodic while a process can run (until 0), once at tick `until` when all wait,
 * off when nothing waits for time (UINT64_MAX), so an idle guest takes no interrupts. Only
 * when time can be read from the TSC; else it stays periodic. */
void kernel_timer(uint64_t until);
/** Opens interrupts for user mode: under PVM the VIF byte is the interrupt flag in both modes. */
void kernel_irq_on(void);
void kernel_irq_off(void);
/** Before syscall_exit's pops: closes interrupts where sysret reopens them (hardware KVM), so no
 * interrupt lands on the user stack between restoring RSP and sysret; under PVM the VIF byte
 * stays open (sysret does not reach it). */
void kernel_sysret_prep(void);
/** Waits for the next interrupt with interrupts open, then closes them again. */
void kernel_idle(void);
/** Tells the host that a session ended and waits to be collected. */
void kernel_event(void);

#endif
