/* Processes and threads: the process table, their life (allocation, the end of a thread or of
 * a whole process, zombies, orphans), sleeping and waking, the current process's user memory
 * (copy_user), and user-mode faults. */
#include "proc.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../arch/fpu.h"
#include "../fs/dev.h"
#include "../fs/file.h"
#include "../fs/fmap.h"
#include "../fs/fs.h"
#include "../fs/procfs.h"
#include "../fs/sysfs.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "futex_pi.h"
#include "ktimer.h"
#include "sched.h"
#include "signal.h"

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084

extern void syscall_entry(void);

extern void syscall_exit(void);

extern void fresh_exit(void);

uint64_t syscall_stack_top; /* read by syscall_entry: the current process's kernel stack */

struct ptable ptable;

static uint8_t irq_stack[16384] __attribute__((aligned(16))); /* TSS.rsp0: interrupts from user mode */

uint64_t kstack_top(struct proc *p)
{
    return (uint64_t)KVA(LEL_GPA_KSTACKS) + (uint64_t)(p - ptable.procs + 1) * KSTACK;
}

void *fpu_of(struct proc *p)
{
    return (void *)(kstack_top(p) - KSTACK);
}

void proc_init(void)
{
    fpu_init(kernel_pvm);
    _Static_assert(KSTACK >= 4 * FPU_AREA_MAX, "the register area takes the bottom of a kernel stack");
    make_devices();
    procfs_init();
    sysfs_init();
    syscall_stack_top = kstack_top(&ptable.procs[0]);
    *(uint64_t *)((uint8_t *)KVA(LEL_GPA_TSS) + 4) = (uint64_t)(irq_stack + sizeof(irq_stack));
    wrmsr(MSR_STAR, 0x0023001000000000ULL);
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, 0x47700); /* TF, IF, DF, IOPL, NT, AC */
}

int proc_active(void)
{
    return ptable.cur != 0;
}

int64_t proc_now_ns(void)
{
    const struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    return (int64_t)b->epoch_ms * 1000000 + (int64_t)kernel_ns();
}

void proc_set_now_ns(int64_t ns)
{
    struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    b->epoch_ms = (uint64_t)((ns - (int64_t)kernel_ns()) / 1000000);
}

/* A fault the kernel served: counted as Linux's minor faults (getrusage, /proc/<pid>/stat). */
static int served(struct proc *p, int r)
{
    if (r > 0) {
        p->minflt++;
        p->group->proc_minflt++;
    }
    return r;
}

int proc_page_fault(uint64_t addr, uint64_t err)
{
    struct proc *cur = proc_cur();
    if (!cur)
        return 0;
    if (err & 1) { /* bit 0 of the error code: a protection fault, not a missing page */
        int w = (err & 2) ? cow_fault(cur->mm, addr) : 0; /* a write to a page a fork shares */
        if (w < 0)
            die(9);
        return served(cur, w);
    }
    if (stack_grow(cur->mm->pml4, addr) || fmap_fault(cur->mm, addr))
        return served(cur, 1);
    int r = lazy_fault(cur->mm, addr);
    if (r < 0)
        die(9); /* a page it was promised and memory has none: killed, as by Linux's OOM killer */
    return served(cur, r);
}

long copy_user(uint64_t va, void *buf, uint64_t n, int to_user)
{
    struct proc *cur = proc_cur();
    uint8_t *b = buf;
    if (va + n < va)
        return -EFAULT;
    if (cur->kcopy && va >= USER_TOP) { /* the kernel's own buffer (sendfile, splice) */
        kmemcpy(to_user ? (void *)va : buf, to_user ? buf : (void *)va, n);
        return 0;
    }
    while (n) {
        uint64_t gpa = translate(cur->mm, va, to_user), chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
        if (!gpa && fmap_fault(cur->mm, va)) /* a shared mapping's page not touched yet */
            gpa = translate(cur->mm, va, to_user);
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

long copy_str(uint64_t va, char *buf, uint64_t cap)
{
    for (uint64_t i = 0; i < cap; i++) {
        if (copy_user(va + i, buf + i, 1, 0) < 0)
            return -EFAULT;
        if (!buf[i])
            return (long)i;
    }
    return -36;
}

void mm_put(struct mm *m)
{
    if (!m || --m->refs > 0)
        return;
    if (cpu_cr3 == m->pml4) /* off these page tables before freeing them: sched.c leaves them loaded */
        write_cr3(LEL_GPA_PML4);
    free_level(m->pml4, 4);
    fmap_free(m);
    for (int i = 0; i < MM_FILES && m->files[i]; i++) {
        m->files[i]->exec_users--;
        fs_release(m->files[i]);
    }
    kfree(m, sizeof(*m));
}

int mm_pin(struct mm *m, struct inode *ino)
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

void wake(enum why why, int pid)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->state == P_BLOCKED && p->why == why && (pid == 0 || p->group->pid == pid)) /* any of its threads */
            p->state = P_RUNNABLE;
    }
}

void yield(void)
{
    struct proc *cur = proc_cur();
    struct proc *p = cur;
    p->fs_base = rdmsr(MSR_FS_BASE);
    switch_to(&p->ksp, ptable.sched_sp);
    if (p->killed)
        proc_exit(128 + p->killed);
}

void block(enum why why)
{
    struct proc *cur = proc_cur();
    cur->state = P_BLOCKED;
    cur->why = why;
    yield();
    cur->wake_tick = 0;
}

uint64_t cpu_time(const struct proc *p)
{
    struct proc *cur = proc_cur();
    return p->cpu_ns + (p == cur ? kernel_ns() - p->ran_at : 0);
}

uint64_t proc_cpu(const struct proc *g)
{
    uint64_t ns = g->threads_cpu_ns;
    for (int i = 0; i < MAX_PROCS; i++)
        if (ptable.procs[i].state != P_FREE && ptable.procs[i].group == g)
            ns += cpu_time(&ptable.procs[i]);
    return ns;
}

void set_exe_path(struct proc *p, struct inode *cwd, const char *path)
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
        ptable.next_pid = ptable.next_pid < 2 || ptable.next_pid >= PID_MAX - 1 ? 2 : ptable.next_pid + 1;
        int used = 0;
        for (int i = 0; i < MAX_PROCS && !used; i++)
            used = ptable.procs[i].state != P_FREE && ptable.procs[i].pid == ptable.next_pid;
        if (!used)
            return ptable.next_pid;
    }
}

struct proc *proc_alloc(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
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

struct proc *proc_by_pid(int pid)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->state != P_FREE && p->group == p && p->pid == pid)
            return p;
    }
    return 0;
}

int proc_ended(int pid)
{
    struct proc *p = proc_by_pid(pid);
    return !p || (p->state == P_ZOMBIE && !p->nthreads);
}

void rlim_init(struct proc *p)
{
    for (int r = 0; r < RLIM_N; r++)
        p->rlim[r].cur = p->rlim[r].max = ~0ULL;
    p->rlim[RLIMIT_STACK_] = (struct rlim){STACK_MAX, STACK_MAX};
    p->rlim[4] = (struct rlim){0, ~0ULL};                 /* RLIMIT_CORE: no core files */
    p->rlim[RLIMIT_NPROC_] = (struct rlim){MAX_PROCS, MAX_PROCS};
    p->rlim[RLIMIT_NOFILE_] = (struct rlim){NFD_SOFT, NFD_MAX};
    p->rlim[8] = (struct rlim){8ULL << 20, 8ULL << 20};   /* RLIMIT_MEMLOCK */
    p->rlim[11] = (struct rlim){4096, 4096};              /* RLIMIT_SIGPENDING */
    p->rlim[12] = (struct rlim){819200, 819200};          /* RLIMIT_MSGQUEUE */
    p->rlim[13] = p->rlim[14] = (struct rlim){0, 0};      /* RLIMIT_NICE, RLIMIT_RTPRIO */
}

void first_frame(struct proc *p, const struct uregs *regs)
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

void exe_set(struct proc *p, struct inode *ino)
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

void proc_free(struct proc *p)
{
    procfs_remove(p);
    p->state = P_FREE;
    p->hup_at = 0;
}

uint64_t span_ns(int64_t sec, int64_t nsec)
{
    uint64_t s = sec <= 0 ? 0 : (uint64_t)sec < (1ULL << 32) ? (uint64_t)sec : 1ULL << 32;
    return s * 1000000000ULL + (uint64_t)(nsec > 0 ? nsec : 0);
}

uint64_t tick_after_ns(uint64_t ns)
{
    uint64_t tick = kernel_tick_ns(), now = kernel_ns();
    if (ns > (1ULL << 62))
        ns = 1ULL << 62;
    uint64_t t = (now + ns + tick - 1) / tick;
    return t > now / tick ? t : now / tick + 1;
}

void group_kill(struct proc *g, struct proc *except)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->group == g && t != except && (t->state == P_RUNNABLE || t->state == P_BLOCKED)) {
            t->killed = 9;
            t->teardown = 1;
            t->state = P_RUNNABLE;
        }
    }
}

uint64_t futex_name(struct mm *m, uint64_t va, struct mm **space)
{
    uint64_t gpa = translate(m, va, 0); /* (brings in a lazy page, and checks it is mapped) */
    if (!gpa)
        return 0;
    int shared = vm_shared_page(m, va);
    *space = shared ? 0 : m;
    return shared ? gpa : va;
}

long futex_wake(struct mm *space, uint64_t key, uint64_t n)
{
    long woken = 0;
    for (int i = 0; i < MAX_PROCS && key && (uint64_t)woken < n; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->state == P_BLOCKED && t->why == W_FUTEX && !t->futex_pi && t->futex_key == key && t->futex_mm == space) {
            t->futex_key = 0;
            t->state = P_RUNNABLE;
            woken++;
        }
    }
    return woken;
}

void vfork_release(struct proc *p)
{
    struct proc *parent = p->vfork_parent;
    p->vfork_parent = 0;
    if (parent && parent->state == P_BLOCKED && parent->why == W_VFORK)
        parent->state = P_RUNNABLE;
}

void proc_end(struct proc *p, long status)
{
    struct proc *g = p->group;
    if (p->killed && !p->teardown && !g->group_exit) { /* a fatal signal ends the whole process */
        g->group_exit = 1;
        g->group_status = 128 + p->killed;
        g->group_sig = p->killed;
        group_kill(g, p);
    }
    struct mm *space;
    uint64_t key;
    if (p->clear_tid && p->mm && put_user_u32(p->mm, p->clear_tid, 0) == 0 && (key = futex_name(p->mm, p->clear_tid, &space)))
        futex_wake(space, key, 1); /* pthread_join waits on it */
    futex_pi_exit(p);
    vfork_release(p);
    if (p->held) { /* it died inside a syscall that held a file */
        file_put(p->held);
        p->held = 0;
    }
    if (p->kbuf) { /* ... or a page to move data through */
        kpage_free(p->kbuf);
        p->kbuf = 0;
    }
    p->kcopy = 0;
    files_put(p);
    mm_put(p->mm); /* its last user leaves the page tables before freeing them */
    p->mm = 0;
    exe_set(p, 0);
    p->alarm_at = 0; /* a zombie gets no SIGALRM, and no timer for one */
    p->cpu_itv_at[0] = p->cpu_itv_at[1] = 0;
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
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *c = &ptable.procs[i];
        if (c->state == P_FREE || c->ppid != g->pid)
            continue;
        if (c->group == c && c->pdeathsig) { /* PR_SET_PDEATHSIG */
            struct sigsrc death = {g->pid, SI_USER_, 0, 0, 0};
            sig_send_process(c, c->pdeathsig, &death);
        }
        c->ppid = 0; /* orphans are reaped when the command ends */
    }
    wake(W_WAIT, g->ppid);
    wake(W_PIPE, 0); /* its pidfds are readable now */
    ktimer_owner_gone(g->pid); /* its POSIX timers */
    /* SIGCHLD: ignored unless the parent handles it (or blocks it, to wait for it) */
    struct sigsrc chld = {g->pid, g->killed ? 2 : 1, 0, 0, (uint64_t)(g->killed ? g->killed : g->exit_status)};
    for (int i = 0; i < MAX_PROCS && g->ppid; i++) {
        struct proc *par = &ptable.procs[i];
        if (par->pid != g->ppid || par->state == P_FREE || par->group != par)
            continue;
        /* a parent that ignores SIGCHLD (or set SA_NOCLDWAIT) leaves no zombie, as on Linux:
         * busybox httpd forks a child per connection and never waits for them */
        if (par->sig_ign >> 17 & 1 || (par->sa[17].flags & 2)) {
            proc_free(g);
            return;
        }
        sig_send_process(par, 17, &chld); /* CLD_KILLED or CLD_EXITED, and the status */
    }
}

void proc_exit(long status)
{
    struct proc *cur = proc_cur();
    proc_end(cur, status);
    uint64_t dead;
    switch_to(&dead, ptable.sched_sp);
    for (;;) /* a zombie is never scheduled */
        __asm__ volatile("hlt");
}

void die(int sig)
{
    struct proc *cur = proc_cur();
    cur->killed = sig;
    proc_exit(128 + sig);
}

void proc_fault(uint64_t vector, const uint64_t *frame, uint64_t addr)
{
    struct proc *cur = proc_cur();
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
