#include "sys_proc.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../arch/fpu.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../proc/exec.h"
#include "../proc/fork.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

long sys_uname(uint64_t buf)
{
    char u[6 * 65];
    static const char *const f[6] = {"Linux", "lelantos", "6.1.0-lelantos", "#1 lelantos", "x86_64", "(none)"};
    kmemset(u, 0, sizeof(u));
    for (int i = 0; i < 6; i++)
        kmemcpy(u + 65 * i, f[i], kstrlen(f[i]));
    return copy_user(buf, u, sizeof(u), 1);
}

long sys_prlimit(uint64_t pid, uint64_t res, uint64_t unew, uint64_t uold)
{
    uint64_t lim[2] = {~0ULL, ~0ULL}, want[2];
    if (pid && pid != (uint64_t)cur->pid)
        return -ESRCH;
    if (res >= 16)
        return -EINVAL;
    if (res == 3) /* RLIMIT_STACK */
        lim[0] = lim[1] = STACK_MAX;
    else if (res == 6 || res == 7) /* RLIMIT_NPROC, RLIMIT_NOFILE */
        lim[0] = lim[1] = res == 6 ? MAX_PROCS : NFD;
    if (unew && copy_user(unew, want, sizeof(want), 0) < 0)
        return -EFAULT;
    if (unew && (want[0] > want[1] || want[1] > lim[1]))
        return want[0] > want[1] ? -EINVAL : -EPERM;
    return uold ? copy_user(uold, lim, sizeof(lim), 1) : 0;
}

long sys_sysinfo(uint64_t ubuf)
{
    uint64_t s[14];
    kmemset(s, 0, sizeof(s));
    const struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    s[0] = kernel_ns() / 1000000000ULL;
    s[4] = b->mem_bytes;                       /* totalram */
    s[5] = kpage_free_pages() * PAGE_SIZE;      /* freeram */
    uint16_t procs_n = 0;
    for (int i = 0; i < MAX_PROCS; i++)
        procs_n += procs[i].state != P_FREE;
    kmemcpy((uint8_t *)s + 80, &procs_n, 2);   /* procs, after the 7 longs and 3 loads */
    *(uint32_t *)((uint8_t *)s + 104) = 1;     /* mem_unit */
    return copy_user(ubuf, s, 112, 1);
}

long sys_getaffinity(uint64_t len, uint64_t umask)
{
    uint64_t mask = 1;
    if (len < sizeof(mask) || (len & 7))
        return -EINVAL;
    return copy_user(umask, &mask, sizeof(mask), 1) < 0 ? -EFAULT : (long)sizeof(mask);
}

long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp)
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

long sys_clone(struct uregs *regs, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls)
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

long sys_clone3(struct uregs *regs, uint64_t uargs, uint64_t size)
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

long put_rusage(uint64_t uru, uint64_t ns)
{
    int64_t ru[18];
    kmemset(ru, 0, sizeof(ru));
    ru[0] = (int64_t)(ns / 1000000000ULL);
    ru[1] = (int64_t)(ns % 1000000000ULL / 1000);
    return uru ? copy_user(uru, ru, sizeof(ru), 1) : 0;
}

long sys_wait4(int64_t pid64, uint64_t ustatus, uint64_t options, uint64_t urusage)
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
