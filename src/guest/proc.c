/* Processes. Page tables: PML4 slots 0..255 are the process's own, 256..511 are copied from
 * the kernel's (U/S=1 everywhere, as PVM requires; guest user/kernel isolation is not the
 * security boundary — the VM is). Every user pointer a syscall receives is translated through
 * the process's page table before it is touched, so a bad pointer is -EFAULT, never a kernel
 * fault.
 *
 * Scheduling: each process has its own kernel stack for its syscalls; the scheduler runs on the
 * kernel's boot stack (the context that serves host requests) and every switch goes through
 * it. A process leaves the CPU when it blocks (wait4, a pipe, poll, nanosleep), yields or
 * exits, and at every timer tick or host request that interrupts its user mode (proc_preempt),
 * so a busy loop starves neither other programs nor the host. Interrupts from user mode arrive
 * on one fixed stack (TSS.rsp0 never changes: whether PVM re-reads it on every event is not
 * known) and never switch processes there. Kernel code is never preempted: single CPU, no locks. */
#include "cpu.h"
#include "proc.h"

#include "fpu.h"
#include "fs.h"
#include "klib.h"
#include "rng.h"

#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_U 4ULL
#define PTE_ADDR 0x000ffffffffff000ULL
#define PTE_FILE (1ULL << 9) /* software bit: the page is a file's (a program's code), not this address space's */
#define USER_TOP 0x0000800000000000ULL
#define STACK_TOP 0x00007ffffff00000ULL
#define STACK_PAGES 64                /* mapped at exec (arguments and environment live there) */
#define STACK_MAX (8ULL << 20)        /* what the stack may grow to, a page at a time, as on Linux */
#define MMAP_BASE 0x00007f0000000000ULL
#define MMAP_TOP (STACK_TOP - (1ULL << 30)) /* mappings stay clear of the stack */
#define NFD 64

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084
#define MSR_FS_BASE 0xc0000100

enum { E2BIG_ = 7, EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12,
       EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24, ENOTTY = 25, ESPIPE = 29,
       EPIPE = 32, ERANGE = 34, ENOSYS = 38, ENOEXEC = 8, EIO_ = 5, ENXIO_ = 6, EXDEV_ = 18, ELIBBAD = 80, ETIMEDOUT = 110 };

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

extern void syscall_entry(void);
extern void syscall_exit(void);
extern void fresh_exit(void);
extern void switch_to(uint64_t *save_sp, uint64_t new_sp);
extern const uint8_t user_test_elf[], user_test_elf_end[];

uint64_t syscall_stack_top; /* read by syscall_entry: the current process's kernel stack */

enum ftype { F_NONE = 0, F_INODE, F_STDIN, F_OUT, F_PIPE_R, F_PIPE_W, F_EVENT, F_EPOLL, F_SOCK };
struct outbuf;
struct epoll;
struct sock;

/* A pipe holds 64 KiB as Linux's does (a one-page pipe cost a switch between writer and
 * reader every 4 KiB): a ring over PIPE_PAGES pages, each allocated when first written. The
 * ring restarts at page 0 whenever it empties, so a pipe used for small messages keeps one page. */
#define PIPE_PAGES 16
#define PIPE_SIZE (PIPE_PAGES * PAGE_SIZE)
#define PIPE_BUF_ 4096 /* writes up to this size are never split */
#define PIPE_NOSIG 1   /* pipe_write: EPIPE without SIGPIPE (send's MSG_NOSIGNAL) */
#define PIPE_PEEK 2    /* pipe_read: the bytes stay (recv's MSG_PEEK) */
struct pipe {
    uint8_t *page[PIPE_PAGES];
    uint64_t head, count;
    uint64_t seq; /* bumped by every change of either end's readiness (edge-triggered epoll) */
    int readers, writers;
    struct inode *fifo; /* a named pipe's node (held while the pipe lives) */
    uint32_t opens_r, opens_w; /* a named pipe: how often each end was opened */
};

struct file {
    enum ftype type;
    struct inode *ino;
    struct pipe *pipe;
    struct outbuf *ob; /* F_OUT: the session's buffer; NULL once the session ended (discarded) */
    struct epoll *ep;  /* F_EPOLL */
    struct sock *sock; /* F_SOCK */
    uint64_t off;
    uint64_t count, seq; /* F_EVENT: the counter, and how often it changed */
    int flags;
    int semaphore; /* F_EVENT: EFD_SEMAPHORE */
    int refs;
    int epolled; /* epoll instances that watch it */
};

enum pstate { P_FREE = 0, P_RUNNABLE, P_BLOCKED, P_ZOMBIE };
enum why { W_NONE = 0, W_WAIT, W_PIPE, W_SLEEP, W_SIGNAL, W_FUTEX, W_VFORK };

/* An address space: shared by the threads of a process, and by a vfork child (clone with
 * CLONE_VM) until it execs or exits; freed with its last user. */
#define LAZY_MAX 120 /* about one per thread stack (glibc: 8 MiB, lazy); struct mm stays a kmalloc size */
#define MM_FILES 8   /* a dynamically linked program's loader and libraries */
#define LAZY_MIN (1ULL << 20) /* anonymous mappings from this size on get pages as touched */
#define FAULT_AROUND 16       /* pages a fault in a lazy range maps (an aligned 64 KiB, clipped) */
struct mm {
    int refs, nlazy;
    uint64_t pml4, brk_start, brk, mmap_next;
    /* Ranges whose pages appear when first touched: anonymous mappings of LAZY_MIN or more (Go
     * maps a 32 MiB arena index and uses a few pages of it; a large malloc is often sparse),
     * and what was reserved PROT_NONE and then made accessible with mprotect (thread stacks,
     * malloc's per-thread arenas). Smaller mappings are populated when made: under PVM a fault
     * costs ~10 us where populating a page costs ~1 us, so a fault maps FAULT_AROUND pages. */
    struct {
        uint64_t start, end;
    } lazy[LAZY_MAX];
    /* Files whose pages this address space maps as they are (a program's interpreter, the
     * read-only mappings of shared libraries): held, and counted as running so that they
     * cannot change under it. When full, further mappings are copies. */
    struct inode *files[MM_FILES];
};
_Static_assert(sizeof(struct mm) <= 2048, "struct mm comes from kmalloc");

/* Descriptors and the working directory: shared by the threads of a process (CLONE_FILES and
 * CLONE_FS, which come together here), copied by fork. */
struct files {
    int refs;
    uint64_t cloexec; /* bit n: fd n closes on execve */
    struct inode *cwd; /* held */
    struct file *fd[NFD];
};

struct sigact {
    uint64_t handler, flags, restorer, mask; /* handler 0: default, 1: ignore; mask: internal bits */
};

/* A process is a thread group: its first thread (the leader, whose pid is the process's) and
 * the threads it made with clone(CLONE_THREAD), each a struct proc of its own with its own
 * kernel stack and registers, sharing the leader's address space, descriptors, signal actions
 * and identity. The leader's struct outlives it (a zombie) until the last thread ends; only then
 * does the parent hear of the process. Threads are never waited for: they free themselves. */
struct proc {
    enum pstate state;
    enum why why;
    int pid, ppid, exit_status, killed; /* pid: the thread's id; the process's is group->pid */
    struct proc *group;  /* the leader (itself for a leader): signal actions, identity, exit status */
    int nthreads;        /* leader: threads not yet ended, itself included */
    int group_exit, group_status, group_sig; /* leader: exit_group or a fatal signal ended them all */
    int teardown;        /* killed because its group is ending: ends quietly */
    uint64_t clear_tid;  /* set_tid_address, CLONE_CHILD_CLEARTID: zeroed and woken when it ends */
    uint64_t futex_key;  /* W_FUTEX: the guest-physical address it waits on; 0 once woken */
    uint64_t ss_sp, ss_size; /* sigaltstack (size 0: none), for handlers with SA_ONSTACK */
    struct proc *vfork_parent; /* CLONE_VFORK: blocked until this process execs or ends */
    struct mm *mm;       /* NULL until its first program is loaded */
    struct files *files;
    struct inode *exe; /* held (fs_hold): the program's file, for /proc/self/exe */
    uint64_t fs_base;
    uint64_t ksp, wake_tick;
    struct session *sess; /* NULL once detached (setsid, or it ignored the hangup when its command ended) */
    uint64_t sig_ign;     /* bit n: signal n is ignored (SIG_IGN); kept across fork and execve */
    uint64_t sig_handled; /* bit n: signal n has a handler */
    uint64_t sig_pending, sig_blocked, sig_saved; /* sig_saved: the mask before sigsuspend */
    int sig_saved_valid;
    int sig_from[64]; /* who sent each pending signal (siginfo's si_pid) */
    struct sigact sa[64];
    uint64_t hup_at;      /* left behind by a command: SIGHUP at this tick (its timeout); 0: never */
    uint64_t alarm_at, alarm_every; /* ITIMER_REAL (alarm, setitimer): SIGALRM at this tick, then every so many */
    uint64_t cpu_ns, children_cpu_ns; /* time on the CPU (its code and its syscalls); leader: reaped children's */
    uint64_t threads_cpu_ns;          /* leader: its ended threads' time on the CPU */
    uint64_t ran_at;                  /* kernel_ns() when it last went on the CPU */
    int fresh;            /* has not run yet (its first switch goes straight to user mode) */
    int nice;             /* leader: setpriority's value (-20..19), inherited; shown, not used */
    struct file *held;    /* the file its current syscall holds (file_hold): let go if it dies there */
    char comm[16];        /* the program's name (/proc/<pid>/comm) */
    char cmdline[256];    /* its arguments, NUL after each (/proc/<pid>/cmdline; cut at 256 bytes) */
    char exe_path[256];   /* the program's absolute path as it was run (/proc/<pid>/exe); "" unknown */
    uint32_t cmdline_len;
};

static struct proc procs[MAX_PROCS];
static uint8_t irq_stack[16384] __attribute__((aligned(16))); /* TSS.rsp0: interrupts from user mode */
static struct proc *cur; /* the running process, or NULL in the scheduler */

/* A command (session): its first process, its output, its deadline. It ends when that process
 * exits; the host then collects the result. Processes it started stay in it until then. */
#define MAX_SESS 16
#define OUT_PAGES (LEL_BULK_HALF / PAGE_SIZE) /* stdout and stderr are kept up to what the host reads */

struct outbuf {
    uint8_t *pages[OUT_PAGES];
    uint64_t len;
    int truncated;
};

struct session {
    int id; /* 0: a free slot */
    int done, background, timed_out, status;
    uint64_t deadline; /* kernel ticks; 0: none */
    struct proc *root;
    struct file *fout, *ferr, *fin; /* the session's own references */
    struct inode *stdin_file;
    struct outbuf out, err;
};

static struct session sessions[MAX_SESS];
static uint64_t cpu_busy_ns; /* all processes' time on the CPU (/proc/stat) */
static uint64_t sched_sp; /* the scheduler's stack pointer while a process runs */
static int next_pid, next_sess;

static uint64_t kstack_top(struct proc *p)
{
    return (uint64_t)KVA(LEL_GPA_KSTACKS) + (uint64_t)(p - procs + 1) * KSTACK;
}

/* Where a process's x87/SSE/AVX registers are kept while it is off the CPU: the bottom of
 * its kernel stack (page-aligned, FPU_AREA_MAX bytes; the stack never grows that deep). */
static void *fpu_of(struct proc *p)
{
    return (void *)(kstack_top(p) - KSTACK);
}

/* /dev with the character devices programs expect, and the links into /proc/self/fd that
 * shells and scripts use (echo oops > /dev/stderr, cat /dev/stdin, diff <(...) via /dev/fd). */
static void make_devices(void)
{
    static const struct {
        const char *name;
        uint32_t rdev;
    } devs[] = {{"null", 0x103}, {"zero", 0x105}, {"random", 0x108}, {"urandom", 0x109}};
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    struct inode *dev, *node;
    if (fs_lookup(fs_root(), "/dev", 1, &dev) < 0 && fs_create(fs_root(), "dev", 3, S_IFDIR | 0755, &dev) < 0)
        return;
    for (unsigned i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if (fs_create(dev, devs[i].name, kstrlen(devs[i].name), S_IFCHR | 0666, &node) == 0)
            node->rdev = devs[i].rdev;
    for (unsigned i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        uint64_t n = kstrlen(links[i][0]), tl = kstrlen(links[i][1]);
        if (fs_create(dev, links[i][0], n, S_IFLNK | 0777, &node) < 0)
            continue;
        node->size = tl;
        if (!(node->target = kstrndup(links[i][1], tl)))
            fs_unlink(dev, links[i][0], n, 0); /* never a link without a target */
    }
}

static void procfs_init(void); /* procfs.inc */

void proc_init(void)
{
    fpu_init(kernel_pvm);
    _Static_assert(KSTACK >= 4 * FPU_AREA_MAX, "the register area takes the bottom of a kernel stack");
    make_devices();
    procfs_init();
    syscall_stack_top = kstack_top(&procs[0]);
    *(uint64_t *)((uint8_t *)KVA(LEL_GPA_TSS) + 4) = (uint64_t)(irq_stack + sizeof(irq_stack));
    wrmsr(MSR_STAR, 0x0023001000000000ULL);
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, 0x47700); /* TF, IF, DF, IOPL, NT, AC */
}

int proc_active(void)
{
    return cur != 0;
}

int64_t proc_now_ns(void)
{
    const struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    return (int64_t)b->epoch_ms * 1000000 + (int64_t)kernel_ns();
}

/* ---- address spaces ---- */

static uint64_t *pte_of(uint64_t pml4, uint64_t va, int create)
{
    uint64_t table = pml4;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t *e = (uint64_t *)DMAP(table) + ((va >> shift) & 511);
        if (!(*e & PTE_P)) {
            void *t;
            if (!create || !(t = kpage_alloc()))
                return 0;
            *e = kpage_gpa(t) | PTE_P | PTE_W | PTE_U;
        }
        table = *e & PTE_ADDR;
    }
    return (uint64_t *)DMAP(table) + ((va >> 12) & 511);
}

static int map_new(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 1);
    void *p;
    if (!e)
        return -ENOMEM;
    if (*e & PTE_P)
        return 0;
    if (!(p = kpage_alloc_user()))
        return -ENOMEM;
    *e = kpage_gpa(p) | PTE_P | PTE_W | PTE_U;
    return 0;
}

static void unmap(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 0);
    if (e && (*e & PTE_P)) {
        if (!(*e & PTE_FILE))
            kpage_free(DMAP(*e & PTE_ADDR));
        *e = 0;
        __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); /* PVM resyncs shadow PTEs only here */
    }
}

/* The stack grows on demand below what exec mapped, up to STACK_MAX: `va` there gets a zeroed
 * page. 1 when it did. Only for pages nothing maps (MAP_FIXED may have put something there). */
static int stack_grow(uint64_t pml4, uint64_t va)
{
    if (va >= STACK_TOP || va < STACK_TOP - STACK_MAX || map_new(pml4, va & ~(PAGE_SIZE - 1)) < 0)
        return 0;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    return 1;
}

/* Makes [start, end) lazy (merged with what it touches); -ENOMEM when the table is full. */
static int lazy_add(struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++) {
        if (start <= m->lazy[i].end && end >= m->lazy[i].start) {
            uint64_t s = start < m->lazy[i].start ? start : m->lazy[i].start;
            uint64_t e = end > m->lazy[i].end ? end : m->lazy[i].end;
            m->lazy[i] = m->lazy[--m->nlazy]; /* merged ranges may now touch others */
            return lazy_add(m, s, e);
        }
    }
    if (m->nlazy == LAZY_MAX)
        return -ENOMEM;
    m->lazy[m->nlazy].start = start;
    m->lazy[m->nlazy++].end = end;
    return 0;
}

/* [start, end) is no longer lazy (unmapped, or PROT_NONE again). A range cut in two whose
 * second half finds no slot keeps the whole: touching the hole then maps a page there. */
static void lazy_remove(struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++) {
        uint64_t s = m->lazy[i].start, e = m->lazy[i].end;
        if (end <= s || start >= e)
            continue;
        if (start > s && end < e && m->nlazy == LAZY_MAX)
            continue;
        if (start > s && end < e) {
            m->lazy[i].end = start;
            m->lazy[m->nlazy].start = end;
            m->lazy[m->nlazy++].end = e;
        } else if (start > s) {
            m->lazy[i].end = start;
        } else if (end < e) {
            m->lazy[i].start = end;
        } else {
            m->lazy[i--] = m->lazy[--m->nlazy];
        }
    }
}

/* Whether any of [start, end) is lazy. */
static int lazy_overlaps(const struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++)
        if (start < m->lazy[i].end && end > m->lazy[i].start)
            return 1;
    return 0;
}

/* Whether `len` bytes may be promised without pages behind them: not more than is free for
 * programs now (Linux's heuristic overcommit refuses what obviously cannot be had, too). */
static int commit_ok(uint64_t len)
{
    uint64_t free = kpage_free_pages();
    return free > KPAGE_RESERVE && len / PAGE_SIZE <= free - KPAGE_RESERVE;
}

/* A missing page of the current address space at `va`: when it lies in a lazy range, it and
 * the missing pages around it (FAULT_AROUND, within the range) are mapped. 1 when it was,
 * 0 when `va` is not lazy, -1 when it is but memory ran out. Only the faulting page needs the
 * invlpg: the others were not present and have not been touched since (munmap and madvise
 * invalidate as they unmap). */
static int lazy_fault(uint64_t pml4, uint64_t va)
{
    struct mm *m = cur ? cur->mm : 0;
    for (int i = 0; m && m->pml4 == pml4 && i < m->nlazy; i++) {
        if (va < m->lazy[i].start || va >= m->lazy[i].end)
            continue;
        uint64_t page = va & ~(PAGE_SIZE - 1), lo = va & ~(FAULT_AROUND * PAGE_SIZE - 1), hi = lo + FAULT_AROUND * PAGE_SIZE;
        if (map_new(pml4, page) < 0)
            return -1;
        __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
        lo = lo > m->lazy[i].start ? lo : m->lazy[i].start;
        hi = hi < m->lazy[i].end ? hi : m->lazy[i].end;
        for (uint64_t p = lo; p < hi; p += PAGE_SIZE)
            if (p != page && map_new(pml4, p) < 0)
                break; /* memory is short: the rest waits for its own fault */
        return 1;
    }
    return 0;
}

static void die(int sig) __attribute__((noreturn));

int proc_page_fault(uint64_t addr, uint64_t err)
{
    if (!cur || (err & 1)) /* bit 0 of the error code: a protection fault, not a missing page */
        return 0;
    if (stack_grow(cur->mm->pml4, addr))
        return 1;
    int r = lazy_fault(cur->mm->pml4, addr);
    if (r < 0)
        die(9); /* a page it was promised and memory has none: killed, as by Linux's OOM killer */
    return r;
}

/* The guest-physical address behind user address `va`; 0 when unmapped, or read-only and
 * `write` is asked (the kernel writes through the direct map, past the page's protection). */
static uint64_t translate(uint64_t pml4, uint64_t va, int write)
{
    if (va >= USER_TOP)
        return 0;
    uint64_t *e = pte_of(pml4, va, 0);
    if ((!e || !(*e & PTE_P)) && (stack_grow(pml4, va) || lazy_fault(pml4, va) > 0))
        e = pte_of(pml4, va, 0); /* the kernel reached the page first (a read into a stack buffer) */
    return e && (*e & PTE_P) && (!write || (*e & PTE_W)) ? (*e & PTE_ADDR) | (va & (PAGE_SIZE - 1)) : 0;
}

/* Copies between user memory and the kernel through the page table; -EFAULT on any hole. */
static long copy_user(uint64_t va, void *buf, uint64_t n, int to_user)
{
    uint8_t *b = buf;
    if (va + n < va)
        return -EFAULT;
    while (n) {
        uint64_t gpa = translate(cur->mm->pml4, va, to_user), chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
        if (!gpa)
            return -EFAULT;
        if (chunk > n)
            chunk = n;
        if (to_user)
            kmemcpy(DMAP(gpa), b, chunk);
        else
            kmemcpy(b, DMAP(gpa), chunk);
        va += chunk;
        b += chunk;
        n -= chunk;
    }
    return 0;
}

/* A NUL-terminated user string into buf (cap bytes); -ENAMETOOLONG when it does not fit. */
static long copy_str(uint64_t va, char *buf, uint64_t cap)
{
    for (uint64_t i = 0; i < cap; i++) {
        if (copy_user(va + i, buf + i, 1, 0) < 0)
            return -EFAULT;
        if (!buf[i])
            return (long)i;
    }
    return -36;
}

static void free_level(uint64_t table, int level)
{
    uint64_t *e = DMAP(table);
    for (int i = 0; i < (level == 4 ? 256 : 512); i++) {
        if (!(e[i] & PTE_P))
            continue;
        if (level > 1)
            free_level(e[i] & PTE_ADDR, level - 1);
        else if (!(e[i] & PTE_FILE))
            kpage_free(DMAP(e[i] & PTE_ADDR));
    }
    kpage_free(DMAP(table));
}

static uint64_t pt_new(void)
{
    void *p = kpage_alloc();
    if (!p)
        return 0;
    uint64_t *dst = p, *src = KVA(LEL_GPA_PML4);
    for (int i = 256; i < 512; i++)
        dst[i] = src[i];
    return kpage_gpa(p);
}

/* A new, empty address space (its kernel half only). */
static struct mm *mm_new(void)
{
    struct mm *m = kmalloc(sizeof(*m));
    if (m && !(m->pml4 = pt_new())) {
        kfree(m, sizeof(*m));
        return 0;
    }
    if (m)
        m->refs = 1;
    return m;
}

/* Drops a user of `m`; the last one frees it (the caller is off its page tables by then). */
static void mm_put(struct mm *m)
{
    if (!m || --m->refs > 0)
        return;
    free_level(m->pml4, 4);
    for (int i = 0; i < MM_FILES && m->files[i]; i++) {
        m->files[i]->exec_users--;
        fs_release(m->files[i]);
    }
    kfree(m, sizeof(*m));
}

/* `ino`'s pages may be mapped into `m` as they are from now on (it is held until `m` goes);
 * -E_NOSPC when `m` holds as many files as it can. */
static int mm_pin(struct mm *m, struct inode *ino)
{
    for (int i = 0; i < MM_FILES; i++) {
        if (m->files[i] == ino)
            return 0;
        if (!m->files[i]) {
            m->files[i] = ino;
            ino->exec_users++;
            fs_hold(ino);
            return 0;
        }
    }
    return -E_NOSPC;
}

/* ---- ELF ---- */

struct ehdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

/* Reads an executable's bytes from a file or the built-in image. */
struct image {
    struct inode *ino;
    const uint8_t *mem;
    uint64_t len;
};

static int img_read(const struct image *im, uint64_t off, void *buf, uint64_t n)
{
    if (off > im->len || n > im->len - off)
        return -ENOEXEC;
    if (im->mem) {
        kmemcpy(buf, im->mem + off, n);
        return 0;
    }
    return fs_read(im->ino, off, buf, n) == (int64_t)n ? 0 : -ENOEXEC;
}

struct loaded {
    uint64_t entry, phdr, phnum, end, bias;
};

#define PF_W 2

/* A page this address space maps from a file becomes its own copy (a writable segment that
 * shares a page with a read-only one). */
static int make_private(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 0);
    if (!e || !(*e & PTE_FILE))
        return 0;
    void *page = kpage_alloc_user();
    if (!page)
        return -ENOMEM;
    kmemcpy(page, DMAP(*e & PTE_ADDR), PAGE_SIZE);
    *e = kpage_gpa(page) | PTE_P | PTE_W | PTE_U;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    return 0;
}

/* A read-only segment maps the program file's own pages (read-only, shared by every process
 * running it) instead of copying them: exec and fork copy only the writable data. Only for a
 * file whose offsets line up with its addresses page by page and that has no holes there;
 * otherwise (-1) the segment is copied. */
static int map_file(const struct image *im, const struct phdr *p)
{
    uint64_t first = p->vaddr & ~(PAGE_SIZE - 1), lead = p->vaddr - first;
    if (!im->ino || p->memsz != p->filesz || (p->offset & (PAGE_SIZE - 1)) != lead)
        return -1;
    uint64_t page0 = (p->offset - lead) / PAGE_SIZE, n = (lead + p->memsz + PAGE_SIZE - 1) / PAGE_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *e = pte_of(cur->mm->pml4, first + i * PAGE_SIZE, 0);
        if (!fs_page(im->ino, page0 + i) || (e && (*e & PTE_P)))
            return -1; /* a hole, or a page another segment has */
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *e = pte_of(cur->mm->pml4, first + i * PAGE_SIZE, 1);
        if (!e)
            return -ENOMEM;
        *e = kpage_gpa(fs_page(im->ino, page0 + i)) | PTE_P | PTE_U | PTE_FILE;
    }
    return 0;
}

/* Where a position-independent executable (ET_DYN: static-pie, as Rust's musl target and gcc
 * -static-pie build, or a dynamically linked PIE) is loaded; Linux's base for PIE executables.
 * A dynamically linked program's interpreter (its loader, ld.so) goes where mappings start. */
#define PIE_BASE 0x555555554000ULL
#define INTERP_MAX 256

/* Loads an ELF64 x86-64 executable (fixed-address, or ET_DYN at `base`); every offset and
 * size is checked against the file. A dynamically linked one's interpreter path (PT_INTERP)
 * goes to `interp` (INTERP_MAX bytes; "" for a static program); with `interp` NULL (loading
 * an interpreter) it is -ELIBBAD, as on Linux. */
static int elf_load(const struct image *im, uint64_t base, struct loaded *L, char *interp)
{
    struct ehdr h;
    struct phdr ph[32];
    if (img_read(im, 0, &h, sizeof(h)) < 0 || h.ident[0] != 0x7f || h.ident[1] != 'E' || h.ident[2] != 'L' ||
        h.ident[3] != 'F' || h.ident[4] != 2 || (h.type != 2 && h.type != 3) || h.machine != 62 ||
        h.phentsize != sizeof(struct phdr) || h.phnum == 0 || h.phnum > 32 || h.entry >= USER_TOP - base ||
        img_read(im, h.phoff, ph, (uint64_t)h.phnum * sizeof(struct phdr)) < 0)
        return -ENOEXEC;
    uint64_t bias = h.type == 3 ? base : 0;
    L->phdr = 0;
    L->end = 0;
    L->bias = bias;
    if (interp)
        interp[0] = 0;
    for (int i = 0; interp && i < h.phnum; i++) /* first, so a missing loader costs no loading */
        if (ph[i].type == 3 && (ph[i].filesz < 2 || ph[i].filesz > INTERP_MAX ||
                                img_read(im, ph[i].offset, interp, ph[i].filesz) < 0 || interp[ph[i].filesz - 1] ||
                                kstrlen(interp) != ph[i].filesz - 1))
            return -ENOEXEC;
    for (int i = 0; i < h.phnum; i++) {
        if (ph[i].type == 3 && !interp)
            return -ELIBBAD; /* an interpreter that wants one */
        if (ph[i].type != 1)
            continue;
        struct phdr q = ph[i], *p = &q;
        if (p->filesz > p->memsz || p->vaddr >= USER_TOP - bias || p->memsz > USER_TOP - bias - p->vaddr ||
            p->offset > im->len || p->filesz > im->len - p->offset)
            return -ENOEXEC;
        q.vaddr += bias;
        if (!(p->flags & PF_W) && map_file(im, p) == 0)
            goto mapped;
        for (uint64_t va = p->vaddr & ~(PAGE_SIZE - 1); va < p->vaddr + p->memsz; va += PAGE_SIZE)
            if (map_new(cur->mm->pml4, va) < 0 || make_private(cur->mm->pml4, va) < 0)
                return -ENOMEM;
        /* file bytes, page by page straight into the process's memory */
        for (uint64_t done = 0; done < p->filesz;) {
            uint64_t va = p->vaddr + done, chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
            if (chunk > p->filesz - done)
                chunk = p->filesz - done;
            if (img_read(im, p->offset + done, DMAP(translate(cur->mm->pml4, va, 1)), chunk) < 0)
                return -ENOEXEC;
            done += chunk;
        }
    mapped:
        if (h.phoff >= p->offset && h.phoff < p->offset + p->filesz)
            L->phdr = p->vaddr + (h.phoff - p->offset);
        if (p->vaddr + p->memsz > L->end)
            L->end = p->vaddr + p->memsz;
    }
    L->entry = h.entry + bias;
    L->phnum = h.phnum;
    return 0;
}

/* A new program's arguments and environment, gathered straight into the top of its stack
 * (as Linux does) while the old program, where they come from, still exists: the strings of
 * argv, then those of envp, end at STACK_TOP; argv[0]'s is the lowest, at `bottom`. Linux's
 * limits: a string of at most MAX_ARG_STRLEN bytes with its NUL, and all of them with a
 * pointer each at most ARG_MAX (a quarter of the 8 MiB stack limit); E2BIG past either. */
#define MAX_ARG_STRLEN (128ULL << 10)
#define ARG_MAX (2ULL << 20)

struct args {
    struct mm *mm; /* the new address space (owned: load_program consumes it) */
    uint64_t bottom;
    uint32_t argc, envc;
    uint64_t room; /* of ARG_MAX, what is left */
};

static int args_init(struct args *a)
{
    a->mm = mm_new();
    a->bottom = STACK_TOP;
    a->argc = a->envc = 0;
    a->room = ARG_MAX;
    return a->mm ? 0 : -ENOMEM;
}

/* Length of the string at `va` in `pml4` without its NUL; -E2BIG when it runs past `max`. */
static long str_len(uint64_t pml4, uint64_t va, uint64_t max)
{
    for (uint64_t n = 0; n < max;) {
        uint64_t gpa = translate(pml4, va + n, 0), in = PAGE_SIZE - ((va + n) & (PAGE_SIZE - 1));
        if (!gpa)
            return -EFAULT;
        in = in < max - n ? in : max - n;
        uint64_t l = kstrnlen(DMAP(gpa), in);
        n += l;
        if (l < in)
            return (long)n;
    }
    return -E2BIG_;
}

/* Puts `n` bytes (`count` strings) below the others: from the kernel, or from the current
 * (old) address space when `user`. The new stack's pages appear as they are written. */
static int args_put(struct args *a, const void *src, uint64_t n, uint32_t count, int user)
{
    if (n + count * 8ULL > a->room)
        return -E2BIG_;
    a->room -= n + count * 8ULL;
    a->bottom -= n;
    for (uint64_t done = 0; done < n;) {
        uint64_t va = a->bottom + done, chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1)), gpa = translate(a->mm->pml4, va, 1);
        chunk = chunk < n - done ? chunk : n - done;
        if (!gpa)
            return -ENOMEM;
        if (!user)
            kmemcpy(DMAP(gpa), (const char *)src + done, chunk);
        else if (copy_user((uint64_t)src + done, DMAP(gpa), chunk, 0) < 0)
            return -EFAULT;
        done += chunk;
    }
    return 0;
}

/* `count` NUL-separated strings from kernel memory (a command's argv or env), below the others. */
static int args_put_list(struct args *a, const char *list, uint32_t count)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t len = kstrnlen(list + n, MAX_ARG_STRLEN) + 1;
        if (len > MAX_ARG_STRLEN)
            return -E2BIG_;
        n += len;
    }
    return args_put(a, list, n, count, 0);
}

/* A user's argv or envp array (NULL: none), last string first so they keep their order. */
static int args_put_user(struct args *a, uint64_t uvec, uint32_t *count)
{
    uint64_t n = 0, p;
    for (; uvec; n++) {
        if (copy_user(uvec + n * 8, &p, 8, 0) < 0)
            return -EFAULT;
        if (!p)
            break;
        if ((n + 1) * 8 > a->room)
            return -E2BIG_;
    }
    for (uint64_t i = n; i-- > 0;) {
        long len = copy_user(uvec + i * 8, &p, 8, 0) < 0 ? -EFAULT : str_len(cur->mm->pml4, p, MAX_ARG_STRLEN);
        int r = len < 0 ? (int)len : args_put(a, (const void *)p, (uint64_t)len + 1, 1, 1);
        if (r < 0)
            return r;
    }
    *count = (uint32_t)n;
    return 0;
}

/* A script's interpreter takes argv[0]'s place: its string goes. */
static void args_drop_first(struct args *a)
{
    long len = str_len(a->mm->pml4, a->bottom, MAX_ARG_STRLEN);
    if (len >= 0 && a->argc) {
        a->bottom += (uint64_t)len + 1;
        a->room += (uint64_t)len + 1 + 8;
        a->argc--;
    }
}

/* The initial stack as a C library's startup reads it, below the strings: argc, argv, envp,
 * auxv, the pointers into the strings `a` put there. */
static int build_stack(const struct loaded *L, uint64_t interp_base, const struct args *a, uint64_t *sp_out)
{
    uint64_t pml4 = cur->mm->pml4, rnd[2]; /* the new address space, which load_program took from `a` */
    for (int i = 1; i <= STACK_PAGES; i++) /* mapped now: a fault costs more than a page (PVM) */
        if (map_new(pml4, STACK_TOP - (uint64_t)i * PAGE_SIZE) < 0)
            return -ENOMEM;
    uint64_t random = (a->bottom - 16) & ~15ULL;
    krng_bytes(rnd, sizeof(rnd)); /* AT_RANDOM: the C library's stack guard and pointer mangling */
    if (copy_user(random, rnd, 16, 1) < 0)
        return -ENOMEM;
    uint64_t aux[] = {6, PAGE_SIZE, 3, L->phdr, 4, sizeof(struct phdr), 5, L->phnum, 7, interp_base, 9, L->entry,
                      11, 0, 12, 0, 13, 0, 14, 0, 17, 100, 23, 0, 25, random, 0, 0};
    uint64_t naux = sizeof(aux) / sizeof(aux[0]), n = 1 + a->argc + 1 + a->envc + 1 + naux;
    uint64_t sp = (random - n * 8) & ~15ULL, at = sp, str = a->bottom, word;
    for (uint64_t i = 0; i < n; i++, at += 8) {
        if (i == 0) {
            word = a->argc;
        } else if (i == 1 + a->argc || i == 2 + a->argc + a->envc) {
            word = 0; /* the end of argv, of envp */
        } else if (i < 3 + a->argc + a->envc) {
            long len = str_len(pml4, str, MAX_ARG_STRLEN);
            if (len < 0)
                return -EFAULT;
            word = str;
            str += (uint64_t)len + 1;
        } else {
            word = aux[i - (3 + a->argc + a->envc)];
        }
        if (copy_user(at, &word, 8, 1) < 0) /* the stack grows here as needed */
            return -ENOMEM;
    }
    *sp_out = sp;
    return 0;
}

/* ---- file descriptors and pipes ---- */

#define O_CLOEXEC_ 02000000
#define O_ACCMODE 3
#define O_NONBLOCK_ 04000

static void fd_set_cloexec(int fd, int on)
{
    if (on)
        cur->files->cloexec |= 1ULL << fd;
    else
        cur->files->cloexec &= ~(1ULL << fd);
}

static void wake(enum why why, int pid)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        if (p->state == P_BLOCKED && p->why == why && (pid == 0 || p->group->pid == pid)) /* any of its threads */
            p->state = P_RUNNABLE;
    }
}

static struct file *file_new(enum ftype t, struct inode *ino, int flags)
{
    struct file *f = kmalloc(sizeof(*f));
    if (f) {
        f->type = t;
        f->ino = ino;
        fs_hold(ino);
        f->flags = flags;
        f->refs = 1;
    }
    return f;
}

static void epoll_forget(struct file *f);
static void epoll_free(struct epoll *ep);

/* A pipe's readiness changed: for poll, select and epoll waiters. */
static void pipe_changed(struct pipe *p)
{
    p->seq++;
    wake(W_PIPE, 0);
}

/* An empty pipe with one reader and one writer; NULL when out of memory. */
static struct pipe *pipe_new(void)
{
    struct pipe *p = kmalloc(sizeof(*p));
    if (p && !(p->page[0] = kpage_alloc())) { /* an empty pipe always takes data */
        kfree(p, sizeof(*p));
        return 0;
    }
    if (p)
        p->readers = p->writers = 1;
    return p;
}

/* Named pipes (mkfifo): the pipe of each FIFO node that is open, found by its node. The
 * pipe lives while either end is open; its data goes with it, as on Linux. */
#define MAX_FIFOS 32
static struct pipe *fifos[MAX_FIFOS];

static void fifo_forget(struct pipe *p)
{
    for (int i = 0; p->fifo && i < MAX_FIFOS; i++)
        if (fifos[i] == p)
            fifos[i] = 0;
    fs_release(p->fifo);
    p->fifo = 0;
}

/* A reader (or writer) of `p` let go; the last one frees it. */
static void pipe_drop(struct pipe *p, int reader)
{
    if (reader)
        p->readers--;
    else
        p->writers--;
    pipe_changed(p);
    if (p->readers == 0 && p->writers == 0) {
        fifo_forget(p);
        for (int i = 0; i < PIPE_PAGES; i++)
            if (p->page[i])
                kpage_free(p->page[i]);
        kfree(p, sizeof(*p));
    }
}

static void sock_close(struct sock *s);

static void file_put(struct file *f)
{
    if (!f || --f->refs > 0)
        return;
    fs_release(f->ino);
    if (f->epolled)
        epoll_forget(f);
    if (f->ep)
        epoll_free(f->ep);
    if (f->pipe && f->type == F_PIPE_R && (f->flags & O_ACCMODE) == 2)
        pipe_drop(f->pipe, 0); /* a named pipe opened O_RDWR is its writer too */
    if (f->pipe)
        pipe_drop(f->pipe, f->type == F_PIPE_R);
    if (f->sock)
        sock_close(f->sock);
    kfree(f, sizeof(*f));
}

/* The lowest free descriptor >= from; `cloexec` marks it close-on-exec. */
static int fd_install(struct file *f, int from, int cloexec)
{
    for (int i = from; i < NFD; i++) {
        if (!cur->files->fd[i]) {
            cur->files->fd[i] = f;
            fd_set_cloexec(i, cloexec);
            return i;
        }
    }
    return -EMFILE;
}

static void fd_close(struct proc *p, int fd)
{
    file_put(p->files->fd[fd]);
    p->files->fd[fd] = 0;
    p->files->cloexec &= ~(1ULL << fd);
}

static struct file *fd_get(uint64_t fd)
{
    return fd < NFD ? cur->files->fd[fd] : 0;
}

/* A descriptor's file, held by this syscall until file_unhold: a thread that closes the
 * descriptor meanwhile cannot free what a blocked read, write or wait is using (Linux's fdget
 * does the same). A syscall holds one file at most; a thread that dies inside it (killed while
 * blocked) lets go at its end (proc_end), or the file would stay open for good. */
static struct file *file_hold(struct file *f)
{
    if (f) {
        f->refs++;
        cur->held = f;
    }
    return f;
}

static struct file *fd_hold(uint64_t fd)
{
    return file_hold(fd_get(fd));
}

static void file_unhold(struct file *f)
{
    cur->held = 0;
    file_put(f);
}

/* A descriptor table with no descriptors, in `cwd` (held); a copy of one (fork) when `from`. */
static struct files *files_new(struct inode *cwd, const struct files *from)
{
    struct files *t = kmalloc(sizeof(*t));
    if (!t)
        return 0;
    t->refs = 1;
    t->cwd = from ? from->cwd : cwd;
    fs_hold(t->cwd);
    if (from) {
        for (int i = 0; i < NFD; i++)
            if ((t->fd[i] = from->fd[i]))
                t->fd[i]->refs++;
        t->cloexec = from->cloexec;
    }
    return t;
}

/* Drops `p`'s use of its descriptor table; the last user closes the descriptors. */
static void files_put(struct proc *p)
{
    struct files *t = p->files;
    if (!t)
        return;
    if (--t->refs == 0) {
        for (int i = 0; i < NFD; i++)
            fd_close(p, i);
        fs_release(t->cwd);
        kfree(t, sizeof(*t));
    }
    p->files = 0;
}

/* ---- scheduling ---- */

static void proc_exit(long status) __attribute__((noreturn));

/* Leaves the CPU to the scheduler; returns when this process is scheduled again. A process
 * killed meanwhile ends here instead of returning to what it was doing. */
static void yield(void)
{
    struct proc *p = cur;
    p->fs_base = rdmsr(MSR_FS_BASE);
    switch_to(&p->ksp, sched_sp);
    if (p->killed)
        proc_exit(128 + p->killed);
}

/* Sleeps until woken for `why` (or, when the caller set cur->wake_tick, until that tick). */
static void block(enum why why)
{
    cur->state = P_BLOCKED;
    cur->why = why;
    yield();
    cur->wake_tick = 0;
}

/* CPU time so far: the process's own, counting the current stretch when it is the one running */
static uint64_t cpu_time(const struct proc *p)
{
    return p->cpu_ns + (p == cur ? kernel_ns() - p->ran_at : 0);
}

/* A process's CPU time (leader `g`): all its threads', those running and those ended. */
static uint64_t proc_cpu(const struct proc *g)
{
    uint64_t ns = g->threads_cpu_ns;
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].state != P_FREE && procs[i].group == g)
            ns += cpu_time(&procs[i]);
    return ns;
}

#include "procfs.inc"

/* /proc/<pid>/exe: the path the program was run by, made absolute (symlinks in it are kept:
 * /bin/ls stays /bin/ls where Linux would say /bin/busybox). Too long: unknown. */
static void set_exe_path(struct proc *p, struct inode *cwd, const char *path)
{
    char dir[FS_PATH_MAX];
    while (path[0] == '.' && path[1] == '/')
        path += 2; /* ./prog */
    uint64_t n = kstrlen(path), d = 0;
    p->exe_path[0] = 0;
    if (path[0] != '/') {
        int len = fs_path_of(cwd, dir, sizeof(dir));
        if (len <= 0)
            return;
        d = kstrlen(dir);
        if (d > 1)
            dir[d++] = '/';
        else
            d = 1; /* the root: "/" */
    }
    if (d + n + 1 > sizeof(p->exe_path))
        return;
    kmemcpy(p->exe_path, dir, d);
    kmemcpy(p->exe_path + d, path, n + 1);
    procfs_exe(p);
}

/* Process IDs go from 2 up to Linux's largest and round again, skipping live ones; 1 stands
 * for the agent, the parent of every command and of orphans (getppid), as init is on Linux. */
#define PID_MAX 4194304

static int pid_new(void)
{
    for (;;) {
        next_pid = next_pid < 2 || next_pid >= PID_MAX - 1 ? 2 : next_pid + 1;
        int used = 0;
        for (int i = 0; i < MAX_PROCS && !used; i++)
            used = procs[i].state != P_FREE && procs[i].pid == next_pid;
        if (!used)
            return next_pid;
    }
}

static struct proc *proc_alloc(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        if (p->state == P_FREE) {
            kmemset(p, 0, sizeof(*p));
            p->group = p;
            p->nthreads = 1;
            p->pid = pid_new();
            procfs_add(p);
            return p;
        }
    }
    return 0;
}

/* Prepares a new process's kernel stack so that its first switch "returns" to user mode
 * through syscall_exit with the given registers. */
static void first_frame(struct proc *p, const struct uregs *regs)
{
    uint64_t top = kstack_top(p);
    struct uregs *u = (struct uregs *)(top - sizeof(*u));
    *u = *regs;
    uint64_t *sp = (uint64_t *)u;
    *--sp = (uint64_t)fresh_exit; /* switch_to's ret */
    for (int i = 0; i < 6; i++)
        *--sp = 0; /* rbx, rbp, r12..r15 */
    p->ksp = (uint64_t)sp;
    p->fresh = 1;
}

/* The program `p` runs (NULL: none): held, and counted as running, which keeps it from being
 * written (its code pages are the file's). */
static void exe_set(struct proc *p, struct inode *ino)
{
    if (p->exe) {
        p->exe->exec_users--;
        fs_release(p->exe);
    }
    p->exe = ino;
    if (ino) {
        ino->exec_users++;
        fs_hold(ino);
    }
}

static void proc_free(struct proc *p)
{
    procfs_remove(p);
    p->state = P_FREE;
    p->hup_at = 0;
}

#include "signal.inc"

static long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp);
static long sys_clone(struct uregs *regs, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls);
static long sys_clone3(struct uregs *regs, uint64_t uargs, uint64_t size);
static long sys_wait4(int64_t pid, uint64_t ustatus, uint64_t options, uint64_t urusage);
static long put_rusage(uint64_t uru, uint64_t ns);
static long sys_pipe(uint64_t ufds, uint64_t flags);
static long fifo_open(struct inode *ino, uint64_t flags);
static long pipe_read(struct pipe *p, int flags, uint64_t buf, uint64_t n);
static long pipe_write(struct pipe *p, int flags, uint64_t buf, uint64_t n);
static uint64_t pipe_room(struct pipe *p);
static long sys_kill(int64_t pid, uint64_t sig);
static long sys_tgkill(int64_t tgid, int64_t tid, uint64_t sig);
static void group_kill(struct proc *g, struct proc *except);
static long futex_wake(uint64_t key, uint64_t n);
static long sys_nanosleep(uint64_t ureq);

/* A span given as seconds and nanoseconds, in ns: negative parts count as 0, and seconds are
 * capped at 2^32 (past any sandbox's life), so nothing wraps. */
static uint64_t span_ns(int64_t sec, int64_t nsec)
{
    uint64_t s = sec <= 0 ? 0 : (uint64_t)sec < (1ULL << 32) ? (uint64_t)sec : 1ULL << 32;
    return s * 1000000000ULL + (uint64_t)(nsec > 0 ? nsec : 0);
}

/* The first tick at or after `ns` from now: a sleep or timeout never ends early (ticks only
 * rounded, it would end up to a tick early: 10 ms at 100 Hz), and ends at most a tick late. */
static uint64_t tick_after_ns(uint64_t ns)
{
    uint64_t tick = kernel_tick_ns(), now = kernel_ns();
    if (ns > (1ULL << 62))
        ns = 1ULL << 62;
    uint64_t t = (now + ns + tick - 1) / tick;
    return t > now / tick ? t : now / tick + 1;
}

#include "epoll.inc"
#include "socket.inc"
#include "dgram.inc"
#include "syscalls.inc"
/* ---- processes ---- */

/* Ends the current process: its files close (waking pipe peers), its memory goes, its parent
 * hears of it. Never returns: the scheduler moves on. */
/* Turns `p` into a zombie (from its own context, or from the scheduler's for one that never
 * ran): files, memory and children go, the parent is woken. */
/* Kills every thread of `g` but `except` (quietly: the group's end is already decided). */
static void group_kill(struct proc *g, struct proc *except)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &procs[i];
        if (t->group == g && t != except && (t->state == P_RUNNABLE || t->state == P_BLOCKED)) {
            t->killed = 9;
            t->teardown = 1;
            t->state = P_RUNNABLE;
        }
    }
}

/* Writes a 32-bit value into `m` (not necessarily the current address space); -EFAULT when
 * the address is not mapped writable. */
static int put_user_u32(struct mm *m, uint64_t va, uint32_t v)
{
    uint64_t *e = va & 3 ? 0 : pte_of(m->pml4, va, 0);
    if (!e || !(*e & PTE_P) || !(*e & PTE_W))
        return -EFAULT;
    *(uint32_t *)DMAP((*e & PTE_ADDR) | (va & (PAGE_SIZE - 1))) = v;
    return 0;
}

/* Wakes up to `n` threads waiting on the futex at guest-physical `key`; how many it woke. */
static long futex_wake(uint64_t key, uint64_t n)
{
    long woken = 0;
    for (int i = 0; i < MAX_PROCS && key && (uint64_t)woken < n; i++) {
        struct proc *t = &procs[i];
        if (t->state == P_BLOCKED && t->why == W_FUTEX && t->futex_key == key) {
            t->futex_key = 0;
            t->state = P_RUNNABLE;
            woken++;
        }
    }
    return woken;
}

/* A vfork child execs or ends: its parent, waiting since the clone, goes on. */
static void vfork_release(struct proc *p)
{
    struct proc *parent = p->vfork_parent;
    p->vfork_parent = 0;
    if (parent && parent->state == P_BLOCKED && parent->why == W_VFORK)
        parent->state = P_RUNNABLE;
}

static void proc_end(struct proc *p, long status)
{
    struct proc *g = p->group;
    if (p->killed && !p->teardown && !g->group_exit) { /* a fatal signal ends the whole process */
        g->group_exit = 1;
        g->group_status = 128 + p->killed;
        g->group_sig = p->killed;
        group_kill(g, p);
    }
    if (p->clear_tid && p->mm && put_user_u32(p->mm, p->clear_tid, 0) == 0) /* pthread_join waits on it */
        futex_wake(translate(p->mm->pml4, p->clear_tid, 0), 1);
    vfork_release(p);
    if (p->held) { /* it died inside a syscall that held a file */
        file_put(p->held);
        p->held = 0;
    }
    files_put(p);
    write_cr3(LEL_GPA_PML4); /* off the address space before freeing it */
    mm_put(p->mm);
    p->mm = 0;
    exe_set(p, 0);
    p->alarm_at = 0; /* a zombie gets no SIGALRM, and no timer for one */
    p->exit_status = (int)(status & 0xff);
    p->state = P_ZOMBIE;
    if (p != g) { /* a thread: nobody waits for it; its time stays the process's */
        g->threads_cpu_ns += cpu_time(p);
        proc_free(p);
    }
    if (--g->nthreads > 0)
        return; /* the process lives on in its other threads */
    if (g->group_exit) {
        g->exit_status = g->group_status & 0xff;
        g->killed = g->group_sig;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].state != P_FREE && procs[i].ppid == g->pid)
            procs[i].ppid = 0; /* orphans are reaped when the command ends */
    wake(W_WAIT, g->ppid);
    for (int i = 0; i < MAX_PROCS && g->ppid; i++)
        if (procs[i].pid == g->ppid && procs[i].state != P_FREE)
            kill_proc(&procs[i], 17, g->pid); /* SIGCHLD: ignored unless the parent handles it */
}

static void proc_exit(long status)
{
    proc_end(cur, status);
    uint64_t dead;
    switch_to(&dead, sched_sp);
    for (;;) /* a zombie is never scheduled */
        __asm__ volatile("hlt");
}

/* The current thread dies of signal `sig` (wait4 reports a death by signal), and so does its
 * process. */
static void die(int sig)
{
    cur->killed = sig;
    proc_exit(128 + sig);
}

void proc_fault(uint64_t vector, const uint64_t *frame, uint64_t addr)
{
    long sig = vector == 14 || vector == 13 ? 11 : vector == 0 ? 8 : vector == 6 ? 4 : 11;
    char digits[21];
    /* one line in the sandbox's log, as Linux's "segfault at ..." in its kernel log */
    console_write("guest: ");
    console_write(cur->comm);
    console_write("[");
    console_write(kutoa(digits, (uint64_t)cur->pid));
    console_write("]: exception ");
    console_write(kutoa(digits, vector));
    console_write(" at ");
    console_hex(addr);
    console_write(" ip ");
    console_hex(frame[1]);
    console_write(" sp ");
    console_hex(frame[4]);
    console_write(" error ");
    console_write(kutoa(digits, frame[0]));
    console_write("\n");
    cur->killed = (int)sig; /* wait4 reports a death by signal, not an exit code */
    proc_exit(128 + sig);
}

/* The x87/SSE state a new program starts with: FCW 0x37f, MXCSR 0x1f80, registers zero. When
 * the program is already running (execve) the live registers are reset too. */
static void fx_reset(struct proc *p)
{
    fpu_reset(fpu_of(p));
    fpu_restore(fpu_of(p));
}

/* What /proc shows of a program: its arguments (`argc` strings at `argv` in its memory: the
 * first cmdline bytes of them) and the last part of the first one as its name. */
static void set_cmdline(struct proc *p, uint64_t argv, uint32_t argc)
{
    uint64_t n = STACK_TOP - argv < sizeof(p->cmdline) ? STACK_TOP - argv : sizeof(p->cmdline), i = 0;
    if (copy_user(argv, p->cmdline, n, 0) < 0)
        n = 0;
    for (uint32_t seen = 0; i < n && seen < argc; i++)
        seen += !p->cmdline[i];
    p->cmdline_len = (uint32_t)i;
    const char *base = p->cmdline;
    for (uint32_t k = 0; k + 1 < i && p->cmdline[k]; k++)
        if (p->cmdline[k] == '/')
            base = p->cmdline + k + 1;
    uint64_t bl = kstrnlen(base, sizeof(p->comm) - 1);
    kmemcpy(p->comm, base, bl);
    p->comm[bl] = 0;
}

static int image_of(struct inode *cwd, const char *path, struct image *im);

/* A dynamically linked program's interpreter (glibc's or musl's ld.so) into the current,
 * new address space where mappings start; it then maps the program's libraries itself. Its
 * pages are the file's, held by the address space. */
static int load_interp(const char *path, struct loaded *I)
{
    struct image im;
    int r = image_of(fs_root(), path, &im);
    if (r < 0)
        return r;
    if ((r = mm_pin(cur->mm, im.ino)) < 0)
        return r;
    return elf_load(&im, MMAP_BASE, I, 0);
}

/* Loads `im` into the address space `a` holds the arguments in (consumed, whatever
 * happens); on success the current process runs on it (the old one is freed) and entry and
 * sp say where to start. */
static int load_program(const struct image *im, struct args *a, uint64_t *entry, uint64_t *sp)
{
    struct loaded L, I = {0};
    struct mm *old = cur->mm, *m = a->mm;
    char interp[INTERP_MAX];
    int r;
    a->mm = 0;
    cur->mm = m;
    write_cr3(m->pml4); /* the loader writes through the new mappings */
    if ((r = elf_load(im, PIE_BASE, &L, interp)) < 0 || (interp[0] && (r = load_interp(interp, &I)) < 0) ||
        (r = build_stack(&L, I.bias, a, sp)) < 0) {
        cur->mm = old;
        write_cr3(old ? old->pml4 : LEL_GPA_PML4);
        mm_put(m);
        return r;
    }
    mm_put(old); /* the last user frees it; a vfork child leaves its parent's */
    exe_set(cur, im->ino);
    set_cmdline(cur, a->bottom, a->argc);
    cur->mm->brk_start = cur->mm->brk = (L.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    cur->mm->mmap_next = I.end > MMAP_BASE ? ((I.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) + PAGE_SIZE : MMAP_BASE;
    fx_reset(cur);
    *entry = interp[0] ? I.entry : L.entry;
    return 0;
}

static int image_of(struct inode *cwd, const char *path, struct image *im)
{
    struct inode *ino;
    int r = fs_lookup(cwd, path, 1, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) == S_IFDIR)
        return -EISDIR;
    if ((ino->mode & S_IFMT) != S_IFREG || !(ino->mode & 0111))
        return -13; /* EACCES */
    im->ino = ino;
    im->mem = 0;
    im->len = ino->size;
    return 0;
}

/* A script ("#!interp [arg]" on its first line) runs as `interp [arg] path argv[1..]`, as on
 * Linux: in `a` those take argv[0]'s place, `im` becomes the interpreter and its path goes to
 * `exe` (INTERP_MAX bytes; `path` may be `exe` itself: a nested script is the last one's
 * interpreter). 0 when `im` is not a script. */
static int shebang(struct image *im, const char *path, struct args *a, char *exe)
{
    char line[INTERP_MAX];
    uint64_t n = im->len < sizeof(line) - 1 ? im->len : sizeof(line) - 1, i = 2, j;
    if (n < 2 || fs_read(im->ino, 0, line, n) != (int64_t)n || line[0] != '#' || line[1] != '!')
        return 0;
    line[n] = 0;
    while (line[i] == ' ' || line[i] == '\t')
        i++;
    for (j = i; line[j] && line[j] != '\n' && line[j] != ' ' && line[j] != '\t'; j++)
        ;
    if (j == i || (!line[j] && n == sizeof(line) - 1))
        return -ENOEXEC; /* no interpreter, or a first line longer than Linux takes */
    uint64_t s = j, e;
    while (line[s] == ' ' || line[s] == '\t')
        s++;
    for (e = s; line[e] && line[e] != '\n'; e++)
        ;
    while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    line[j] = line[e] = 0;
    args_drop_first(a);
    long r = args_put(a, path, kstrlen(path) + 1, 1, 0);
    if (r == 0 && e > s && (r = args_put(a, line + s, e - s + 1, 1, 0)) == 0)
        a->argc++;
    if (r == 0 && (r = args_put(a, line + i, j - i + 1, 1, 0)) == 0) {
        a->argc += 2;
        kmemcpy(exe, line + i, j - i + 1);
        r = image_of(cur->files->cwd, exe, im);
    }
    return r < 0 ? (int)r : 1;
}

/* execve: gathers argv/envp into the new program's stack, then replaces the old one; on
 * success the syscall "returns" into the new program through the saved user registers. A
 * script's interpreter may itself be a script, four levels deep as on Linux. */
static long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp)
{
    char path[FS_PATH_MAX], interp[INTERP_MAX];
    struct args a = {0};
    long r = copy_str(upath, path, sizeof(path));
    if (r < 0)
        return r;
    struct image im;
    uint64_t entry, sp;
    const char *exe = path; /* what /proc/<pid>/exe will say: the program, or a script's interpreter */
    if (!kstrcmp(path, "/proc/self/exe") && cur->exe) { /* how busybox runs itself (sh on a script without "#!") */
        im = (struct image){cur->exe, 0, cur->exe->size};
        exe = 0; /* the same program: its path stays */
    } else if ((r = image_of(cur->files->cwd, path, &im)) < 0) {
        goto out; /* first, as on Linux: a shell trying each PATH entry copies no arguments */
    }
    if ((r = args_init(&a)) < 0 || (r = args_put_user(&a, uenvp, &a.envc)) < 0 ||
        (r = args_put_user(&a, uargv, &a.argc)) < 0)
        goto out;
    if (a.argc == 0) {
        r = -EFAULT;
        goto out;
    }
    for (int depth = 0; (r = shebang(&im, depth ? interp : path, &a, interp)) > 0; depth++) {
        exe = interp;
        if (depth == 4) {
            r = -E_LOOP;
            goto out;
        }
    }
    if (r == 0 && cur != cur->group)
        r = -ENOSYS; /* from a thread other than the first: not supported (Linux moves it into the leader's place) */
    if (r < 0 || (r = load_program(&im, &a, &entry, &sp)) < 0)
        goto out;
    group_kill(cur, cur); /* the process's other threads end; it goes on as the new program */
    vfork_release(cur);
    cur->ss_sp = cur->ss_size = 0;
    if (exe)
        set_exe_path(cur, cur->files->cwd, exe);
    for (int i = 0; i < NFD; i++)
        if (cur->files->cloexec & (1ULL << i))
            fd_close(cur, i);
    sig_exec(cur);
    kmemset(regs, 0, sizeof(*regs));
    regs->rcx = entry; /* sysret's RIP */
    regs->r11 = 0x202;
    regs->rsp = sp;
    cur->fs_base = 0;
    wrmsr(MSR_FS_BASE, 0);
    r = 0;
out:
    mm_put(a.mm); /* what the arguments were gathered into, unless load_program took it */
    return r;
}

/* Copies every user page of `from` into a new address space; a program's code pages (the
 * file's) are shared, not copied. */
static int copy_level(uint64_t from, uint64_t to, int level)
{
    uint64_t *s = DMAP(from), *d = DMAP(to);
    for (int i = 0; i < (level == 4 ? 256 : 512); i++) {
        if (!(s[i] & PTE_P))
            continue;
        if (level == 1 && (s[i] & PTE_FILE)) {
            d[i] = s[i];
            continue;
        }
        void *page = kpage_alloc_user(); /* a fork's copy: the program's memory */
        if (!page)
            return -ENOMEM;
        d[i] = kpage_gpa(page) | (s[i] & ~PTE_ADDR);
        if (level > 1) {
            if (copy_level(s[i] & PTE_ADDR, kpage_gpa(page), level - 1) < 0)
                return -ENOMEM;
        } else {
            kmemcpy(page, DMAP(s[i] & PTE_ADDR), PAGE_SIZE);
        }
    }
    return 0;
}

/* A new thread of the current process (clone with CLONE_THREAD; glibc, musl and Go all pass
 * CLONE_VM, CLONE_FS, CLONE_FILES and CLONE_SIGHAND with it, and nothing less is supported). */
static struct proc *thread_new(void)
{
    struct proc *g = cur->group, *t = proc_alloc();
    if (!t)
        return 0;
    procfs_remove(t); /* /proc lists processes; a thread shows through its process */
    t->group = g;
    t->nthreads = 0;
    g->nthreads++;
    t->mm = cur->mm;
    t->mm->refs++;
    t->files = cur->files;
    t->files->refs++;
    t->ppid = g->ppid;
    kmemcpy(t->comm, cur->comm, sizeof(t->comm));
    return t;
}

/* A new process: a copy of this one's memory (fork), or sharing it until it execs or ends
 * (CLONE_VM without CLONE_THREAD: vfork, posix_spawn, Go's exec); its own descriptor table, a
 * copy of this one's. */
static struct proc *process_new(uint64_t flags, long *err)
{
    struct proc *c = proc_alloc();
    if (!c)
        return 0;
    *err = -ENOMEM;
    if (flags & CLONE_VM_) {
        c->mm = cur->mm;
        c->mm->refs++;
    } else if ((c->mm = mm_new())) {
        for (int i = 0; i < MM_FILES && cur->mm->files[i]; i++)
            mm_pin(c->mm, cur->mm->files[i]); /* the copy shares their pages */
    }
    c->files = c->mm ? files_new(0, cur->files) : 0;
    if (!c->files || (!(flags & CLONE_VM_) && copy_level(cur->mm->pml4, c->mm->pml4, 4) < 0)) {
        files_put(c);
        mm_put(c->mm);
        proc_free(c);
        return 0;
    }
    struct proc *g = cur->group;
    c->ppid = g->pid;
    kmemcpy(c->comm, g->comm, sizeof(c->comm));
    kmemcpy(c->cmdline, g->cmdline, sizeof(c->cmdline));
    c->cmdline_len = g->cmdline_len;
    kmemcpy(c->exe_path, g->exe_path, sizeof(c->exe_path));
    procfs_exe(c);
    c->sig_ign = g->sig_ign;
    c->sig_handled = g->sig_handled;
    c->nice = g->nice;
    kmemcpy(c->sa, g->sa, sizeof(c->sa));
    exe_set(c, g->exe);
    if (!(flags & CLONE_VM_)) {
        c->ss_sp = cur->ss_sp; /* a fork keeps the alternate signal stack (it has a copy of it) */
        c->ss_size = cur->ss_size;
        c->mm->brk_start = cur->mm->brk_start;
        c->mm->brk = cur->mm->brk;
        c->mm->mmap_next = cur->mm->mmap_next;
        c->mm->nlazy = cur->mm->nlazy;
        kmemcpy(c->mm->lazy, cur->mm->lazy, sizeof(c->mm->lazy));
    }
    return c;
}

/* fork, vfork and clone (flags, stack, parent_tid, child_tid, tls): a new process or thread
 * that returns 0 from the call, on `stack` when one is given. */
static long sys_clone(struct uregs *regs, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    int thread = (flags & CLONE_THREAD_) != 0;
    uint64_t all = CLONE_VM_ | CLONE_FS_ | CLONE_FILES_ | CLONE_SIGHAND_;
    if (thread ? (flags & all) != all : (flags & (CLONE_SIGHAND_ | CLONE_FS_ | CLONE_FILES_)) != 0)
        return -EINVAL;
    if (cur->killed || cur->group->group_exit) /* dying: no more children */
        proc_exit(128 + cur->killed);
    long err = -EAGAIN; /* the process table is full (what a fork bomb meets) */
    struct proc *c = thread ? thread_new() : process_new(flags, &err);
    if (!c)
        return err;
    c->sess = cur->sess;
    c->sig_blocked = cur->sig_blocked;
    c->hup_at = cur->hup_at;
    fpu_save(fpu_of(c)); /* the parent's live registers */
    c->fs_base = flags & CLONE_SETTLS_ ? tls : rdmsr(MSR_FS_BASE);
    struct uregs child = *regs;
    child.rax = 0;
    if (stack)
        child.rsp = stack;
    first_frame(c, &child);
    if (flags & CLONE_CHILD_SETTID_) /* the tid in the child's memory (a fork's copy, or the shared one) */
        put_user_u32(c->mm, ctid, (uint32_t)c->pid);
    if (flags & CLONE_PARENT_SETTID_)
        put_user_u32(cur->mm, ptid, (uint32_t)c->pid);
    if (flags & CLONE_CHILD_CLEARTID_)
        c->clear_tid = ctid;
    c->state = P_RUNNABLE;
    if (flags & CLONE_VFORK_) { /* the parent waits until the child execs or ends */
        c->vfork_parent = cur;
        while (c->vfork_parent == cur)
            block(W_VFORK);
    }
    return c->pid;
}

/* clone3: clone's flags and arguments in a struct clone_args (the stack given by its base and size). */
static long sys_clone3(struct uregs *regs, uint64_t uargs, uint64_t size)
{
    uint64_t a[8]; /* flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls */
    if (size < sizeof(a) || size > PAGE_SIZE)
        return size < sizeof(a) ? -EINVAL : -E2BIG_;
    if (copy_user(uargs, a, sizeof(a), 0) < 0)
        return -EFAULT;
    if (a[0] & 0x1000) /* CLONE_PIDFD: no pidfds */
        return -EINVAL;
    return sys_clone(regs, a[0] | (a[4] & 0xff), a[5] ? a[5] + a[6] : 0, a[3], a[2], a[7]);
}

/* struct rusage as wait4 and getrusage give it: user time only (system time is not split off) */
static long put_rusage(uint64_t uru, uint64_t ns)
{
    int64_t ru[18];
    kmemset(ru, 0, sizeof(ru));
    ru[0] = (int64_t)(ns / 1000000000ULL);
    ru[1] = (int64_t)(ns % 1000000000ULL / 1000);
    return uru ? copy_user(uru, ru, sizeof(ru), 1) : 0;
}

static long sys_wait4(int64_t pid64, uint64_t ustatus, uint64_t options, uint64_t urusage)
{
    int pid = (int)pid64;
    for (;;) {
        int children = 0;
        for (int i = 0; i < MAX_PROCS; i++) {
            struct proc *p = &procs[i];
            if (p->state == P_FREE || p->group != p || p->ppid != cur->group->pid || (pid > 0 && p->pid != pid))
                continue;
            children++;
            if (p->state != P_ZOMBIE || p->nthreads) /* a process has ended when all its threads have */
                continue;
            int st = p->exit_status >= 128 && p->killed ? (p->exit_status - 128) : (p->exit_status << 8);
            if ((ustatus && copy_user(ustatus, &st, 4, 1) < 0) || put_rusage(urusage, proc_cpu(p) + p->children_cpu_ns) < 0)
                return -EFAULT;
            cur->group->children_cpu_ns += proc_cpu(p) + p->children_cpu_ns;
            int reaped = p->pid;
            proc_free(p);
            return reaped;
        }
        if (!children)
            return -ECHILD;
        if (options & 1) /* WNOHANG */
            return 0;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_WAIT);
    }
}

static long sys_pipe(uint64_t ufds, uint64_t flags)
{
    if (flags & ~(uint64_t)(O_CLOEXEC_ | O_NONBLOCK_))
        return -EINVAL;
    int nb = (int)(flags & O_NONBLOCK_);
    struct pipe *p = pipe_new();
    struct file *r = p ? file_new(F_PIPE_R, 0, nb) : 0, *w = r ? file_new(F_PIPE_W, 0, 1 | nb) : 0;
    if (!w) {
        file_put(r);
        if (p) {
            pipe_drop(p, 1);
            pipe_drop(p, 0);
        }
        return -ENOMEM;
    }
    r->pipe = w->pipe = p;
    int ce = (flags & O_CLOEXEC_) != 0;
    int fr = fd_install(r, 0, ce), fw = fr < 0 ? fr : fd_install(w, 0, ce);
    int fds[2] = {fr, fw};
    if (fr < 0 || fw < 0 || copy_user(ufds, fds, sizeof(fds), 1) < 0) {
        if (fr >= 0)
            cur->files->fd[fr] = 0;
        if (fw >= 0)
            cur->files->fd[fw] = 0;
        file_put(r);
        file_put(w);
        return fr < 0 || fw < 0 ? -EMFILE : -EFAULT;
    }
    return 0;
}

/* open() of a named pipe: a reader waits until a writer has opened it, and a writer until a
 * reader has (O_NONBLOCK: a reader does not wait, a writer fails with ENXIO); O_RDWR is both
 * ends and waits for nobody, as on Linux. Returns the new descriptor. */
static long fifo_open(struct inode *ino, uint64_t flags)
{
    int acc = (int)(flags & O_ACCMODE), slot = -1;
    struct pipe *p = 0;
    for (int i = 0; i < MAX_FIFOS && !p; i++) {
        if (fifos[i] && fifos[i]->fifo == ino)
            p = fifos[i];
        else if (!fifos[i] && slot < 0)
            slot = i;
    }
    if (!p) {
        if (slot < 0 || !(p = pipe_new()))
            return -ENOMEM;
        p->readers = p->writers = 0;
        p->fifo = ino;
        fs_hold(ino);
        fifos[slot] = p;
    }
    uint32_t r0 = p->opens_r, w0 = p->opens_w;
    p->readers += acc != 1;
    p->writers += acc != 0;
    p->opens_r += acc != 1;
    p->opens_w += acc != 0;
    pipe_changed(p); /* the other end's opener may be waiting */
    long err = 0;
    for (;;) {
        int waits = acc == 0 ? !(flags & O_NONBLOCK_) && !p->writers && p->opens_w == w0
                  : acc == 1 ? !p->readers && p->opens_r == r0 : 0;
        if (!waits)
            break;
        if (acc == 1 && (flags & O_NONBLOCK_)) {
            err = -ENXIO_;
            break;
        }
        if (sig_ready(cur)) {
            err = -EINTR;
            break;
        }
        block(W_PIPE);
    }
    struct file *f = err ? 0 : file_new(acc == 1 ? F_PIPE_W : F_PIPE_R, 0, (int)(flags & (O_ACCMODE | O_NONBLOCK_)));
    if (f) {
        f->pipe = p;
        int fd = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
        if (fd < 0)
            file_put(f); /* drops its ends */
        return fd;
    }
    if (acc != 0)
        pipe_drop(p, 0);
    if (acc != 1)
        pipe_drop(p, 1);
    return err ? err : -ENOMEM;
}

/* flags: O_NONBLOCK_, and PIPE_PEEK (recv's MSG_PEEK: the bytes stay in the pipe) */
static long pipe_read(struct pipe *p, int flags, uint64_t buf, uint64_t n)
{
    while (p->count == 0) {
        if (p->writers == 0)
            return 0;
        if (flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    uint64_t done = 0, head = p->head;
    long err = 0;
    while (done < n && done < p->count) {
        uint64_t off = head % PAGE_SIZE, chunk = PAGE_SIZE - off;
        if (chunk > p->count - done)
            chunk = p->count - done;
        if (chunk > n - done)
            chunk = n - done;
        if (copy_user(buf + done, p->page[head / PAGE_SIZE] + off, chunk, 1) < 0) {
            err = -EFAULT;
            break;
        }
        head = (head + chunk) % PIPE_SIZE;
        done += chunk;
    }
    if (done && !(flags & PIPE_PEEK)) {
        p->count -= done;
        p->head = p->count ? head : 0;
        pipe_changed(p);
    }
    return done ? (long)done : err;
}

/* Bytes that can be written now without blocking: the free part of the ring up to the first
 * page that is missing and cannot be allocated (memory is short: the writer waits for the
 * reader as if the pipe were full; page 0 always exists, so an empty pipe always takes data). */
static uint64_t pipe_room(struct pipe *p)
{
    uint64_t room = 0;
    while (p->count + room < PIPE_SIZE) {
        uint64_t pos = (p->head + p->count + room) % PIPE_SIZE;
        uint8_t **pg = &p->page[pos / PAGE_SIZE];
        if (!*pg && !(*pg = kpage_alloc()))
            break;
        room += PAGE_SIZE - pos % PAGE_SIZE;
    }
    return room < PIPE_SIZE - p->count ? room : PIPE_SIZE - p->count;
}

/* flags: O_NONBLOCK_, and PIPE_NOSIG (send's MSG_NOSIGNAL: EPIPE without SIGPIPE) */
static long pipe_write(struct pipe *p, int flags, uint64_t buf, uint64_t n)
{
    uint64_t done = 0;
    while (done < n) {
        if (p->readers == 0) {
            if (done)
                return (long)done;
            if (flags & PIPE_NOSIG)
                return -EPIPE;
            kill_proc(cur, 13, cur->pid); /* SIGPIPE: ends it unless ignored or handled */
            if (cur->killed)
                proc_exit(128 + cur->killed);
            return -EPIPE;
        }
        uint64_t room = pipe_room(p);
        /* POSIX: a write of at most PIPE_BUF bytes goes in whole or waits */
        if (room == 0 || (n <= PIPE_BUF_ && room < n)) {
            pipe_changed(p);
            if (flags & O_NONBLOCK_)
                return done ? (long)done : -EAGAIN;
            if (sig_ready(cur))
                return done ? (long)done : -ERESTART_;
            block(W_PIPE);
            continue;
        }
        while (done < n && room) {
            uint64_t tail = (p->head + p->count) % PIPE_SIZE, off = tail % PAGE_SIZE, chunk = PAGE_SIZE - off;
            if (chunk > room)
                chunk = room;
            if (chunk > n - done)
                chunk = n - done;
            if (copy_user(buf + done, p->page[tail / PAGE_SIZE] + off, chunk, 0) < 0)
                return done ? (long)done : -EFAULT;
            p->count += chunk;
            room -= chunk;
            done += chunk;
        }
    }
    pipe_changed(p);
    return (long)done;
}

/* A signal to process `g`: taken by a thread that does not block it (the leader first), or
 * else by the first one that lives, as on Linux. */
static void kill_process(struct proc *g, int sig, int from)
{
    struct proc *to = 0;
    for (int i = -1; i < MAX_PROCS; i++) {
        struct proc *t = i < 0 ? g : &procs[i];
        if (t->group != g || (t->state != P_RUNNABLE && t->state != P_BLOCKED))
            continue;
        if (!to)
            to = t;
        if (sig < 64 && !(t->sig_blocked & (1ULL << sig))) {
            to = t;
            break;
        }
    }
    if (to)
        kill_proc(to, sig, from);
}

static long sys_kill(int64_t pid64, uint64_t sig)
{
    int pid = (int)pid64, found = 0;
    if (sig > 64)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        /* pid <= 0 (a process group, or everyone): the caller's command stands in for both */
        if (p->state == P_FREE || p->group != p || (p->state == P_ZOMBIE && !p->nthreads) ||
            (pid > 0 && p->pid != pid) || (pid <= 0 && (p->sess != cur->sess || (p == cur->group && pid == -1))))
            continue;
        found = 1;
        if (sig) /* 0 only checks */
            kill_process(p, (int)sig, cur->group->pid);
    }
    if (!found)
        return -ESRCH;
    if (cur->killed)
        proc_exit(128 + cur->killed);
    return 0;
}

/* tgkill and tkill (tgid 0): a signal to one thread. */
static long sys_tgkill(int64_t tgid, int64_t tid, uint64_t sig)
{
    if (sig > 64 || tid <= 0)
        return -EINVAL;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &procs[i];
        if (t->pid != tid || (t->state != P_RUNNABLE && t->state != P_BLOCKED) || (tgid > 0 && t->group->pid != tgid))
            continue;
        if (sig)
            kill_proc(t, (int)sig, cur->group->pid);
        if (cur->killed)
            proc_exit(128 + cur->killed);
        return 0;
    }
    return -ESRCH;
}

static long sys_nanosleep(uint64_t ureq)
{
    int64_t ts[2];
    if (copy_user(ureq, ts, sizeof(ts), 0) < 0)
        return -EFAULT;
    if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
        return -EINVAL;
    cur->wake_tick = tick_after_ns(span_ns(ts[0], ts[1]));
    block(W_SLEEP);
    return sig_ready(cur) ? -EINTR : 0;
}

/* ---- the scheduler, on the kernel's own stack ---- */

static struct proc *pick(void)
{
    static int last;
    uint64_t now = kernel_ticks();
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        if (p->state == P_BLOCKED && (p->why == W_SLEEP || p->wake_tick) && now >= p->wake_tick)
            p->state = P_RUNNABLE;
    }
    for (int i = 0; i < MAX_PROCS; i++) /* the dying first: they free what the others want */
        if (procs[i].state == P_RUNNABLE && procs[i].killed)
            return &procs[i];
    for (int k = 1; k <= MAX_PROCS; k++) {
        struct proc *p = &procs[(last + k) % MAX_PROCS];
        if (p->state == P_RUNNABLE) {
            last = (int)(p - procs);
            return p;
        }
    }
    return 0;
}

/* Called from the interrupt path (entry.S) on the process's kernel stack, with the user
 * registers saved below: the timer or a host request preempted user mode. */
void proc_preempt(uint64_t *frame)
{
    if (!cur)
        return;
    yield();
    sig_deliver_preempted(frame);
}

static void outbuf_free(struct outbuf *b)
{
    for (uint64_t i = 0; i < OUT_PAGES && b->pages[i]; i++) {
        kpage_free(b->pages[i]);
        b->pages[i] = 0;
    }
}

static void session_put_files(struct session *s)
{
    file_put(s->fout);
    file_put(s->ferr);
    file_put(s->fin);
    s->fout = s->ferr = s->fin = 0;
    fs_anon_free(s->stdin_file);
    s->stdin_file = 0;
}

/* The session's root exited: its status is kept for the host. The processes it leaves behind
 * run on detached, their output discarded and their stdin empty; those of a command (not of a
 * background start) get SIGHUP at the command's timeout, which ends them unless they ignore it
 * (nohup) or left with setsid, so nothing a command starts outlives it unasked (a fork bomb,
 * a forgotten `&`). The host hears of the end unless nobody waits for it. */
static void session_finish(struct session *s)
{
    s->status = s->root->exit_status;
    proc_free(s->root);
    s->root = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i].sess == s) {
            procs[i].sess = 0;
            procs[i].hup_at = s->background ? 0 : s->deadline ? s->deadline : kernel_ticks();
        }
    }
    if (s->fout)
        s->fout->ob = 0;
    if (s->ferr)
        s->ferr->ob = 0;
    if (s->fin && s->fin->ino) { /* the stdin copy goes; whoever still holds it reads an empty stdin */
        s->fin->type = F_STDIN;
        fs_release(s->fin->ino);
        s->fin->ino = 0;
    }
    session_put_files(s);
    s->stdin_file = 0;
    s->done = 1;
    if (s->background) {
        outbuf_free(&s->out);
        outbuf_free(&s->err);
        s->id = 0;
    } else {
        kernel_event();
    }
}

/* Deadlines, finished sessions, and zombies nobody will wait for (their parent is gone). */
static void sessions_check(void)
{
    uint64_t now = kernel_ticks();
    for (int k = 0; k < MAX_SESS; k++) {
        struct session *s = &sessions[k];
        if (!s->id || s->done)
            continue;
        if (s->deadline && now >= s->deadline) { /* again each time: children forked meanwhile too */
            s->timed_out = 1;
            for (int i = 0; i < MAX_PROCS; i++)
                if (procs[i].sess == s)
                    kill_proc(&procs[i], 9, 0);
        }
        if (s->root->state == P_ZOMBIE && !s->root->nthreads)
            session_finish(s);
    }
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &procs[i];
        if (p->state == P_ZOMBIE && !p->nthreads && p->ppid == 0 && !(p->sess && p->sess->root == p))
            proc_free(p);
        if (p->hup_at && now >= p->hup_at) {
            p->hup_at = 0;
            kill_proc(p, 1, 0);
        }
        if (p->alarm_at && now >= p->alarm_at) {
            p->alarm_at = p->alarm_every ? now + p->alarm_every : 0;
            kill_proc(p, 14, 0); /* SIGALRM */
        }
    }
}

/* With no process runnable: the first tick anything waits for (a sleep or a poll's limit, a
 * hangup to come, an alarm, a command's deadline); UINT64_MAX when nothing does. */
static uint64_t next_deadline(void)
{
    uint64_t t = UINT64_MAX;
    for (int i = 0; i < MAX_PROCS; i++) {
        const struct proc *p = &procs[i];
        if (p->state != P_BLOCKED)
            continue;
        if ((p->why == W_SLEEP || p->wake_tick) && p->wake_tick < t)
            t = p->wake_tick;
        if (p->hup_at && p->hup_at < t)
            t = p->hup_at;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].alarm_at && procs[i].alarm_at < t)
            t = procs[i].alarm_at;
    for (int k = 0; k < MAX_SESS; k++)
        if (sessions[k].id && !sessions[k].done && sessions[k].deadline && sessions[k].deadline < t)
            t = sessions[k].deadline;
    return t ? t : 1;
}

int proc_step(void)
{
    sessions_check();
    struct proc *p = pick();
    kernel_timer(p ? 0 : next_deadline());
    if (!p)
        return 0;
    if (p->killed && p->fresh) { /* killed before it ever ran: no need to run it to end it */
        proc_end(p, 128 + p->killed);
        sessions_check();
        return 1;
    }
    p->fresh = 0;
    cur = p;
    procfs_self(p->group->pid);
    syscall_stack_top = kstack_top(p);
    write_cr3(p->mm->pml4);
    wrmsr(MSR_FS_BASE, p->fs_base);
    fpu_restore(fpu_of(p));
    kernel_irq_on(); /* the timer must reach user mode */
    p->ran_at = kernel_ns();
    switch_to(&sched_sp, p->ksp);
    uint64_t ran = kernel_ns() - p->ran_at;
    p->cpu_ns += ran;
    cpu_busy_ns += ran;
    fpu_save(fpu_of(p)); /* a process may be preempted anywhere */
    cur = 0;
    kernel_irq_off();
    write_cr3(LEL_GPA_PML4);
    sessions_check();
    return 1;
}

static struct session *session_new(void)
{
    for (int k = 0; k < MAX_SESS; k++) {
        struct session *s = &sessions[k];
        if (!s->id) {
            kmemset(s, 0, sizeof(*s));
            next_sess = next_sess >= 0x7ffffff0 ? 1 : next_sess + 1;
            s->id = next_sess;
            return s;
        }
    }
    return 0;
}

/* Undoes a session that could not start (its one process never ran). */
static void session_abort(struct session *s)
{
    struct proc *p = s->root;
    files_put(p);
    write_cr3(LEL_GPA_PML4);
    mm_put(p->mm);
    p->mm = 0;
    exe_set(p, 0);
    proc_free(p);
    session_put_files(s);
    outbuf_free(&s->out);
    outbuf_free(&s->err);
    s->id = 0;
}

/* Opens the session's stdin (the given bytes, or empty), stdout and stderr as fds 0-2 of its
 * first process; the session keeps a reference of its own to each. */
static int session_files(struct session *s, struct proc *p, const struct proc_spec *spec)
{
    s->fout = file_new(F_OUT, 0, 1);
    s->ferr = spec->merge_err ? 0 : file_new(F_OUT, 0, 1);
    if (spec->stdin_len) {
        if ((s->stdin_file = fs_anon_file()) &&
            fs_write(s->stdin_file, 0, spec->stdin_data, spec->stdin_len) == (int64_t)spec->stdin_len)
            s->fin = file_new(F_INODE, s->stdin_file, 0);
    } else {
        s->fin = file_new(F_STDIN, 0, 0);
    }
    if (!s->fout || (!spec->merge_err && !s->ferr) || !s->fin)
        return -ENOMEM;
    s->fout->ob = &s->out;
    if (s->ferr)
        s->ferr->ob = &s->err;
    struct file *e = s->ferr ? s->ferr : s->fout;
    p->files->fd[0] = s->fin;
    p->files->fd[1] = s->fout;
    p->files->fd[2] = e;
    s->fin->refs++;
    s->fout->refs += 1 + (e == s->fout);
    if (s->ferr)
        s->ferr->refs++;
    return 0;
}

/* A command's argv and env (without one: PATH, HOME and TERM) into a new address space. */
static int args_of_spec(struct args *a, const struct proc_spec *spec)
{
    static const char defenv[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0HOME=/root\0TERM=dumb";
    int r = spec->argc ? args_init(a) : -E2BIG_;
    if (r == 0)
        r = args_put_list(a, spec->env ? spec->env : defenv, spec->env ? spec->envc : 3);
    if (r == 0)
        r = args_put_list(a, spec->argv, spec->argc);
    a->argc = spec->argc;
    a->envc = spec->env ? spec->envc : 3;
    return r;
}

static int start(const struct image *im, const struct proc_spec *spec)
{
    uint64_t entry, sp;
    struct inode *cwd = fs_root();
    if (spec->cwd && (fs_lookup(fs_root(), spec->cwd, 1, &cwd) < 0 || (cwd->mode & S_IFMT) != S_IFDIR))
        return -ENOENT;
    struct session *s = session_new();
    struct proc *p = s ? proc_alloc() : 0;
    if (!p) {
        if (s)
            s->id = 0;
        return -EAGAIN;
    }
    s->root = p;
    s->background = spec->background;
    p->sess = s;
    p->state = P_BLOCKED; /* not runnable until it is complete */
    cur = p; /* the loader and the file helpers work on the current process */
    struct args a = {0};
    int r = (p->files = files_new(cwd, 0)) ? 0 : -ENOMEM;
    if (r == 0)
        r = args_of_spec(&a, spec);
    if (r == 0)
        r = load_program(im, &a, &entry, &sp);
    mm_put(a.mm); /* what load_program did not take */
    if (r == 0 && im->ino)
        set_exe_path(p, fs_root(), spec->argv);
    if (r == 0)
        r = session_files(s, p, spec);
    cur = 0;
    write_cr3(LEL_GPA_PML4);
    if (r < 0) {
        session_abort(s);
        return r;
    }
    struct uregs u;
    kmemset(&u, 0, sizeof(u));
    u.rcx = entry;
    u.r11 = 0x202;
    u.rsp = sp;
    first_frame(p, &u);
    s->deadline = spec->timeout_ticks ? kernel_ticks() + spec->timeout_ticks : 0;
    p->state = P_RUNNABLE;
    return s->id;
}

int proc_start(const struct proc_spec *spec)
{
    struct image im;
    int r = image_of(fs_root(), spec->argv, &im);
    return r < 0 ? r : start(&im, spec);
}

int proc_start_test(void)
{
    struct image im = {0, user_test_elf, (uint64_t)(user_test_elf_end - user_test_elf)};
    struct proc_spec spec = {.argv = "test", .argc = 1, .merge_err = 1};
    return start(&im, &spec);
}

static struct session *session_find(int id)
{
    for (int k = 0; k < MAX_SESS; k++)
        if (sessions[k].id && (sessions[k].id == id || (id == 0 && sessions[k].done && !sessions[k].background)))
            return &sessions[k];
    return 0;
}

int proc_done(int id)
{
    struct session *s = session_find(id);
    return !s || s->done;
}

static uint64_t outbuf_copy(const struct outbuf *b, uint8_t *dst, uint64_t cap)
{
    uint64_t n = b->len < cap ? b->len : cap;
    for (uint64_t off = 0; off < n; off += PAGE_SIZE)
        kmemcpy(dst + off, b->pages[off / PAGE_SIZE], n - off < PAGE_SIZE ? n - off : PAGE_SIZE);
    return n;
}

int proc_collect(int id, void *out, uint64_t out_cap, void *err, uint64_t err_cap, struct proc_result *res)
{
    struct session *s = session_find(id);
    if (!s && id == 0)
        return 0; /* none has ended */
    if (!s || s->background) /* a background command's result is never kept */
        return -ENOENT;
    if (!s->done)
        return 0;
    kmemset(res, 0, sizeof(*res));
    res->status = s->status;
    res->timed_out = s->timed_out;
    res->out_len = outbuf_copy(&s->out, out, out_cap);
    res->err_len = err ? outbuf_copy(&s->err, err, err_cap) : 0;
    res->out_truncated = s->out.truncated || res->out_len < s->out.len;
    res->err_truncated = s->err.truncated || res->err_len < s->err.len;
    outbuf_free(&s->out);
    outbuf_free(&s->err);
    id = s->id;
    s->id = 0;
    return id;
}

int proc_kill_session(int id)
{
    struct session *s = session_find(id);
    if (!s || !id)
        return -ENOENT;
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].sess == s)
            kill_proc(&procs[i], 9, 0);
    return 0;
}
