/* Processes and threads (struct proc), the process table, the current process, and what every
 * layer above asks of them: sleeping, waking, ending, user memory. */
#ifndef LEL_GUEST_PROC_PROC_H
#define LEL_GUEST_PROC_PROC_H

#include <stdint.h>

struct file;
struct files;
struct inode;
struct mm;
struct session;

#define MAX_PROCS 128 /* processes and threads; also what a fork bomb meets: fork then fails with EAGAIN */
#define KSTACK 32768

/* The processes' kernel stacks lie at a fixed place below the page pool (too big for .bss,
 * which must end below the bulk area); a stack's pages are touched only as deep as it grows. */
#define LEL_GPA_KSTACKS 0x400000ULL
#define LEL_GPA_POOL (LEL_GPA_KSTACKS + (uint64_t)MAX_PROCS * KSTACK)

/* Saved user registers, as syscall_entry pushes them. */
struct uregs {
    uint64_t r15, r14, r13, r12, rbp, rbx, r9, r8, r10, rdx, rsi, rdi, rax, rcx, r11, rsp;
};

#define MSR_FS_BASE 0xc0000100

#define CLONE_VM_ 0x100
#define CLONE_FS_ 0x200
#define CLONE_FILES_ 0x400
#define CLONE_SIGHAND_ 0x800
#define CLONE_VFORK_ 0x4000
#define CLONE_THREAD_ 0x10000
#define CLONE_SETTLS_ 0x80000
#define CLONE_PARENT_SETTID_ 0x100000
#define CLONE_CHILD_CLEARTID_ 0x200000
#define CLONE_CHILD_SETTID_ 0x1000000

extern void switch_to(uint64_t *save_sp, uint64_t new_sp);

extern const uint8_t user_test_elf[], user_test_elf_end[];

extern uint64_t syscall_stack_top;

enum pstate { P_FREE = 0, P_RUNNABLE, P_BLOCKED, P_ZOMBIE };

enum why { W_NONE = 0, W_WAIT, W_PIPE, W_SLEEP, W_SIGNAL, W_FUTEX, W_VFORK, W_STOP /* its process is stopped */ };

/* The process (its leader) whose pid is `pid`, zombies included; NULL when there is none. */
struct proc *proc_by_pid(int pid);

/* Whether process `pid` has ended (all its threads: a zombie, or gone): what a pidfd waits for. */
int proc_ended(int pid);

/* Resource limits (getrlimit and setrlimit), kept per process and inherited; RLIMIT_NOFILE
 * bounds the descriptors, RLIMIT_NPROC and RLIMIT_STACK say what the guest has. */
#define RLIM_N 16
#define NGROUPS_ 32 /* supplementary groups a process may have here (Linux: 65536) */
#define RLIMIT_STACK_ 3
#define RLIMIT_NPROC_ 6
#define RLIMIT_NOFILE_ 7
struct rlim {
    uint64_t cur, max;
};

struct sigact {
    uint64_t handler, flags, restorer, mask; /* handler 0: default, 1: ignore; mask: internal bits */
};

/* A process is a thread group: its first thread (the leader, whose pid is the process's) and
 * the threads it made with clone(CLONE_THREAD), each a struct proc of its own with its own
 * kernel stack and registers, sharing the leader's address space, descriptors, signal actions
 * and identity. The leader's struct outlives it (a zombie) until the last thread ends; only then
 * does the parent hear of the process. Threads are never waited for: they free themselves. */
#define PROC_NGROUPS 64 /* supplementary groups a process may have (Linux: 65536) */

struct proc {
    enum pstate state;
    enum why why;
    int pid, ppid, exit_status, killed; /* pid: the thread's id; the process's is group->pid */
    struct proc *group;  /* the leader (itself for a leader): signal actions, identity, exit status */
    int nthreads;        /* leader: threads not yet ended, itself included */
    int group_exit, group_status, group_sig; /* leader: exit_group or a fatal signal ended them all */
    int teardown;        /* killed because its group is ending: ends quietly */
    uint64_t clear_tid;  /* set_tid_address, CLONE_CHILD_CLEARTID: zeroed and woken when it ends */
    uint64_t futex_key;  /* W_FUTEX: the futex it waits on (with futex_mm, see futex_name); 0 once woken */
    struct mm *futex_mm;
    int futex_pi, futex_owner; /* W_FUTEX on a PI lock (proc/futex_pi.c): it waits for thread futex_owner */
    uint64_t futex_uaddr, futex_seq; /* ... the lock's word in its address space; its place in the queue */
    uint64_t ss_sp, ss_size; /* sigaltstack (size 0: none), for handlers with SA_ONSTACK */
    struct proc *vfork_parent; /* CLONE_VFORK: blocked until this process execs or ends */
    struct mm *mm;       /* NULL until its first program is loaded */
    struct files *files;
    struct inode *exe; /* held (fs_hold): the program's file, for /proc/self/exe */
    uint64_t fs_base;
    uint64_t ksp, wake_tick;
    struct session *sess; /* NULL once detached (setsid, or it ignored the hangup when its command ended) */
    int pgid, sid;        /* leader: its process group and session (Linux's: a command's first process leads both) */
    int stopped;          /* leader: the stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) that stopped it; 0: running */
    int stop_note;        /* leader: what its parent's wait has yet to hear: CLD_STOPPED (5), CLD_CONTINUED (6), 0 */
    uint32_t uid[4], gid[4]; /* leader: real, effective, saved and file-system user and group ids (0: root), inherited */
    uint32_t groups[NGROUPS_]; /* leader: the supplementary groups, ngroups of them, inherited */
    int ngroups;
    int pdeathsig;        /* leader: PR_SET_PDEATHSIG, the signal it gets when its parent ends */
    uint8_t no_new_privs, subreaper, dumpable_off; /* leader: prctl's flags, kept */
    uint64_t sig_ign;     /* bit n: signal n is ignored (SIG_IGN); kept across fork and execve */
    uint64_t sig_handled; /* bit n: signal n has a handler */
    uint64_t sig_pending, sig_blocked, sig_saved; /* sig_saved: the mask before sigsuspend */
    int sig_saved_valid;
    struct {              /* each pending signal's siginfo: sender (a timer's id), si_code, a */
        int32_t pid;      /* timer's overrun, si_value (a child's status for SIGCHLD) */
        int16_t code;
        uint16_t aux;
        uint64_t val;
    } sig_info[64];
    uint64_t sig_wait;    /* sigtimedwait: the signals it waits for (blocked ones among them) */
    struct sigact sa[64];
    uint64_t hup_at;      /* left behind by a command: SIGHUP at this tick (its timeout); 0: never */
    uint64_t alarm_at, alarm_every; /* ITIMER_REAL (alarm, setitimer): SIGALRM at this tick, then every so many */
    uint64_t cpu_itv_at[2], cpu_itv_every[2]; /* leader: ITIMER_VIRTUAL, ITIMER_PROF: SIGVTALRM, SIGPROF once
                                                 its CPU time (ns) reaches at, then every so long; 0: off */
    uint64_t cpu_ns, children_cpu_ns; /* time on the CPU (its code and its syscalls); leader: reaped children's */
    uint64_t minflt;     /* page faults the kernel served for this thread (its own memory's: lazy, copy-on-write, stack, file) */
    uint64_t proc_minflt, children_minflt; /* leader: all its threads' faults; its reaped children's */
    uint64_t threads_cpu_ns;          /* leader: its ended threads' time on the CPU */
    uint64_t ran_at;                  /* kernel_ns() when it last went on the CPU */
    int fresh;            /* has not run yet (its first switch goes straight to user mode) */
    int nice;             /* leader: setpriority's value (-20..19), inherited; shown, not used */
    int sched_policy, sched_prio; /* leader: sched_setscheduler's, inherited (a realtime one not past SCHED_RESET_ON_FORK); kept, not used */
    uint8_t sched_reset;  /* leader: SCHED_RESET_ON_FORK */
    struct rlim rlim[RLIM_N]; /* leader: its resource limits */
    struct file *held;    /* the file its current syscall holds (file_hold): let go if it dies there */
    int kcopy;            /* the kernel moves data between two files (sys_xfer.c): copy_user takes
                             kernel addresses (at or above USER_TOP) for the buffer it was given */
    void *kbuf;           /* ... through this page, freed if the thread dies meanwhile */
    char comm[16];        /* the program's name (/proc/<pid>/comm) */
    char cmdline[256];    /* its arguments, NUL after each (/proc/<pid>/cmdline; cut at 256 bytes) */
    char exe_path[256];   /* the program's absolute path as it was run (/proc/<pid>/exe); "" unknown */
    uint32_t cmdline_len;
};

/* The kernel's processes. One CPU and no locks: kernel code is never preempted, so whoever
 * runs owns all of it. */
struct ptable {
    struct proc procs[MAX_PROCS];
    struct proc *cur;     /* the running process, or NULL in the scheduler */
    uint64_t sched_sp;    /* the scheduler's stack pointer while a process runs */
    uint64_t cpu_busy_ns; /* all processes' time on the CPU (/proc/stat) */
    int next_pid;         /* the last pid handed out */
};
extern struct ptable ptable;

/** The process whose syscall or fault the kernel is serving; NULL in the scheduler and the agent. */
static inline struct proc *proc_cur(void)
{
    return ptable.cur;
}

uint64_t kstack_top(struct proc *p);

/* Where a process's x87/SSE/AVX registers are kept while it is off the CPU: the bottom of
 * its kernel stack (page-aligned, FPU_AREA_MAX bytes; the stack never grows that deep). */
void *fpu_of(struct proc *p);

/** Sets up syscalls (STAR/LSTAR/SFMASK) and the syscall stack. */
void proc_init(void);

/** Whether a process is running (its user mode or its syscalls). */
int proc_active(void);

/** Wall-clock time in ns, from the boot time the host gave and the timer ticks since. */
int64_t proc_now_ns(void);
/* Sets the wall clock (clock_settime): the boot information's epoch, as the host sets it. */
void proc_set_now_ns(int64_t ns);

/** A user-mode page fault at `addr` (error code `err`) that the kernel resolves (the stack
 * growing): 1, and the program goes on; 0: it is a fault. */
int proc_page_fault(uint64_t addr, uint64_t err);

/* Copies between user memory and the kernel through the page table; -EFAULT on any hole. */
long copy_user(uint64_t va, void *buf, uint64_t n, int to_user);

/* A NUL-terminated user string into buf (cap bytes); -ENAMETOOLONG when it does not fit. */
long copy_str(uint64_t va, char *buf, uint64_t cap);

/* Drops a user of `m`; the last one frees it (the caller is off its page tables by then). */
void mm_put(struct mm *m);

/* `ino`'s pages may be mapped into `m` as they are from now on (it is held until `m` goes);
 * -E_NOSPC when `m` holds as many files as it can. */
int mm_pin(struct mm *m, struct inode *ino);

void wake(enum why why, int pid);

/* Leaves the CPU to the scheduler; returns when this process is scheduled again. A process
 * killed meanwhile ends here instead of returning to what it was doing. */
void yield(void);

/* Sleeps until woken for `why` (or, when the caller set cur->wake_tick, until that tick). */
void block(enum why why);

/* CPU time so far: the process's own, counting the current stretch when it is the one running */
uint64_t cpu_time(const struct proc *p);

/* A process's CPU time (leader `g`): all its threads', those running and those ended. */
uint64_t proc_cpu(const struct proc *g);

/* /proc/<pid>/exe: the path the program was run by, made absolute (symlinks in it are kept:
 * /bin/ls stays /bin/ls where Linux would say /bin/busybox). Too long: unknown. */
void set_exe_path(struct proc *p, struct inode *cwd, const char *path);

struct proc *proc_alloc(void);

/* A command's first process's resource limits: Linux's defaults (1024 descriptors, NFD_MAX
 * at most), and what the guest has for processes and the stack. */
void rlim_init(struct proc *p);

/* Prepares a new process's kernel stack so that its first switch "returns" to user mode
 * through syscall_exit with the given registers. */
void first_frame(struct proc *p, const struct uregs *regs);

/* The program `p` runs (NULL: none): held, and counted as running, which keeps it from being
 * written (its code pages are the file's). */
void exe_set(struct proc *p, struct inode *ino);

void proc_free(struct proc *p);

/* A span given as seconds and nanoseconds, in ns: negative parts count as 0, and seconds are
 * capped at 2^32 (past any sandbox's life), so nothing wraps. */
uint64_t span_ns(int64_t sec, int64_t nsec);

/* The first tick at or after `ns` from now: a sleep or timeout never ends early (ticks only
 * rounded, it would end up to a tick early: 10 ms at 100 Hz), and ends at most a tick late. */
uint64_t tick_after_ns(uint64_t ns);

/* Ends the current process: its files close (waking pipe peers), its memory goes, its parent
 * hears of it. Never returns: the scheduler moves on. */
/* Turns `p` into a zombie (from its own context, or from the scheduler's for one that never
 * ran): files, memory and children go, the parent is woken. */
/* Kills every thread of `g` but `except` (quietly: the group's end is already decided). */
void group_kill(struct proc *g, struct proc *except);

/* The name of the futex at user address `va` of `m`: in a shared mapping's page its
 * guest-physical address (`*space` NULL), which every address space mapping the file shares;
 * anywhere else `va` itself in `m` (`*space` m), as Linux names private memory's futexes. A
 * physical name there would not last: a page a fork shares copy-on-write moves to a new
 * physical page at the first write by either side, and a waker and its waiter then named
 * different words (node's libuv threadpool slept for ever after a child_process spawn).
 * 0 when `va` is not mapped. */
uint64_t futex_name(struct mm *m, uint64_t va, struct mm **space);

/* Wakes up to `n` threads waiting on the futex named (`space`, `key`); how many it woke. */
long futex_wake(struct mm *space, uint64_t key, uint64_t n);

/* A vfork child execs or ends: its parent, waiting since the clone, goes on. */
void vfork_release(struct proc *p);

void proc_end(struct proc *p, long status);

void proc_exit(long status) __attribute__((noreturn));

/* The current thread dies of signal `sig` (wait4 reports a death by signal), and so does its
 * process. */
void die(int sig) __attribute__((noreturn));

/** Called by the exception handler for a fault in user mode ({error code, rip, cs, rflags,
 * rsp, ss}; `addr`: a page fault's address): logged, and the process dies with 128+sig. */
void proc_fault(uint64_t vector, const uint64_t *frame, uint64_t addr);

#endif
