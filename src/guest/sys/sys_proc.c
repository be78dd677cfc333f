/* Syscalls on processes and identity: execve, clone/fork/vfork, wait4, exit, ids, sessions,
 * priorities, names (prctl), limits, uname, sysinfo, resource usage. */
#include "syscall.h"
#include "sys_path.h"

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
#include "../fs/procfs.h"
#include "../proc/exec.h"
#include "../proc/fork.h"
#include "../proc/ktimer.h"
#include "../proc/proc.h"
#include "../proc/session.h"
#include "../proc/signal.h"

/* The host and domain names uname tells, which sethostname and setdomainname change (root's,
 * up to 64 bytes, as on Linux): the sandbox's own, so a restored one has what its template had. */
static char uts_names[2][65] = {"lelantos", "(none)"};

static long sys_uname(uint64_t buf)
{
    char u[6 * 65];
    const char *const f[6] = {"Linux", uts_names[0], "6.1.0-lelantos", "#1 lelantos", "x86_64", uts_names[1]};
    kmemset(u, 0, sizeof(u));
    for (int i = 0; i < 6; i++)
        kmemcpy(u + 65 * i, f[i], kstrlen(f[i]));
    return copy_user(buf, u, sizeof(u), 1);
}

static long sys_setuts(int which, uint64_t uname, uint64_t len)
{
    char name[65];
    if (proc_cur()->group->uid[1] != 0)
        return -EPERM;
    if ((int64_t)len < 0 || len > 64)
        return -EINVAL;
    if (copy_user(uname, name, len, 0) < 0)
        return -EFAULT;
    name[len] = 0;
    kmemcpy(uts_names[which], name, len + 1);
    return 0;
}

long sc_sethostname(const struct sysargs *s)
{
    return sys_setuts(s->nr == 171, s->a, s->b); /* sethostname, setdomainname */
}

/* The most a limit may be raised to (by root, which everyone is): what the guest has for
 * descriptors, processes and the stack; no bound for the others. */
static uint64_t rlim_ceiling(uint64_t res)
{
    return res == RLIMIT_NOFILE_ ? NFD_MAX : res == RLIMIT_NPROC_ ? MAX_PROCS : res == RLIMIT_STACK_ ? STACK_MAX : ~0ULL;
}

/* prlimit64 (and getrlimit, setrlimit): the limits of process `pid` (0: this one), kept and
 * inherited; RLIMIT_NOFILE bounds the descriptors. Raising one past what the guest has (see
 * rlim_ceiling) is EPERM, a soft limit above the hard one EINVAL. */
static long sys_prlimit(uint64_t pid, uint64_t res, uint64_t unew, uint64_t uold)
{
    struct proc *cur = proc_cur(), *g = cur->group;
    uint64_t want[2];
    if (pid && (int)pid != g->pid) {
        g = 0;
        for (int i = 0; i < MAX_PROCS && !g; i++)
            if (ptable.procs[i].state != P_FREE && ptable.procs[i].state != P_ZOMBIE && ptable.procs[i].pid == (int)pid)
                g = ptable.procs[i].group;
        if (!g)
            return -ESRCH;
    }
    if (res >= RLIM_N)
        return -EINVAL;
    struct rlim old = g->rlim[res];
    if (unew && copy_user(unew, want, sizeof(want), 0) < 0)
        return -EFAULT;
    if (unew && want[0] > want[1])
        return -EINVAL;
    if (unew && want[1] > rlim_ceiling(res))
        return -EPERM;
    if (uold && copy_user(uold, &old, sizeof(old), 1) < 0)
        return -EFAULT;
    if (unew) {
        g->rlim[res].cur = want[0];
        g->rlim[res].max = want[1];
    }
    return 0;
}

/* struct sysinfo: uptime, memory (in bytes: mem_unit 1), process count. */
static long sys_sysinfo(uint64_t ubuf)
{
    uint64_t s[14];
    kmemset(s, 0, sizeof(s));
    const struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    s[0] = kernel_ns() / 1000000000ULL;
    s[4] = b->mem_bytes;                       /* totalram */
    s[5] = kpage_free_pages() * PAGE_SIZE;      /* freeram */
    uint16_t procs_n = 0;
    for (int i = 0; i < MAX_PROCS; i++)
        procs_n += ptable.procs[i].state != P_FREE;
    kmemcpy((uint8_t *)s + 80, &procs_n, 2);   /* procs, after the 7 longs and 3 loads */
    *(uint32_t *)((uint8_t *)s + 104) = 1;     /* mem_unit */
    return copy_user(ubuf, s, 112, 1);
}

/* execve and execveat: gathers argv/envp into the new program's stack, then replaces the old
 * one; on success the syscall "returns" into the new program through the saved user
 * registers. A script's interpreter may itself be a script, four levels deep as on Linux. The
 * program is the one at `upath` relative to `dirfd` (AT_FDCWD: the working directory), or
 * with AT_EMPTY_PATH and "" the file open at `dirfd` (fexecve: glibc's and python's os.execve
 * of a descriptor), whose path (a script's argument) is one that leads to it, or /dev/fd/N
 * for a removed one; AT_SYMLINK_NOFOLLOW refuses a final symlink (ELOOP). */
static long sys_execve(struct uregs *regs, int64_t dirfd, uint64_t upath, uint64_t uargv, uint64_t uenvp, uint64_t flags)
{
    struct proc *cur = proc_cur();
    char path[FS_PATH_MAX], interp[INTERP_MAX];
    struct args a = {0};
    if (flags & ~(uint64_t)(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    long r = copy_str(upath, path, sizeof(path));
    if (r < 0)
        return r;
    struct image im;
    uint64_t entry, sp;
    struct inode *base = cur->files->cwd;
    const char *exe = path; /* what /proc/<pid>/exe will say: the program, or a script's interpreter */
    if (r == 0 && (flags & AT_EMPTY_PATH)) {
        struct file *f = fd_get((uint64_t)(int)dirfd);
        if (!f)
            return -EBADF;
        if (f->type != F_INODE)
            return -13; /* EACCES: a pipe or socket is no program */
        if ((r = image_of_inode(f->ino, &im)) < 0)
            return r;
        if (fs_find_path(f->ino, 0, path, sizeof(path)) < 0) { /* a removed file: its descriptor's name */
            char digits[21];
            kmemcpy(path, "/dev/fd/", 9);
            kmemcpy(path + 8, kutoa(digits, (uint64_t)(int)dirfd), 12);
        }
        base = 0;
    } else if (!kstrcmp(path, "/proc/self/exe") && cur->exe) { /* how busybox runs itself (sh on a script without "#!") */
        im = (struct image){cur->exe, 0, cur->exe->size};
        exe = 0; /* the same program: its path stays */
    } else if (!(base = base_dir(path[0] == '/' ? AT_FDCWD : dirfd, &r)) ||
               (r = image_at(base, path, !(flags & AT_SYMLINK_NOFOLLOW), &im)) < 0) {
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
    ktimer_owner_gone(cur->pid); /* and its POSIX timers, as on Linux */
    vfork_release(cur);
    cur->ss_sp = cur->ss_size = 0;
    if (exe)
        set_exe_path(cur, exe == path && base ? base : cur->files->cwd, exe);
    for (int fd = files_next(cur->files, 0); fd >= 0; fd = files_next(cur->files, fd + 1))
        if (fd_cloexec(cur->files, (uint64_t)fd))
            fd_close(cur, fd);
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

/* fork, vfork and clone (flags, stack, parent_tid, child_tid, tls): a new process or thread
 * that returns 0 from the call, on `stack` when one is given. */
static long sys_clone(struct uregs *regs, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    struct proc *cur = proc_cur();
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

/* setpgid(pid, pgid), as on Linux: this process or a child of it (pid 0: this one) moves to
 * process group `pgid` of its session (0: a new one named by its pid); a session leader stays
 * where it is (EPERM), and so does a process of another session or asked into a group its
 * session does not have. */
static long sys_setpgid(int64_t pid64, int64_t pgid64)
{
    struct proc *me = proc_cur()->group;
    int pid = (int)pid64 ? (int)pid64 : me->pid, pgid = (int)pgid64 ? (int)pgid64 : pid;
    if ((int)pgid64 < 0)
        return -EINVAL;
    struct proc *p = proc_by_pid(pid);
    if (!p || p->state == P_ZOMBIE || (p != me && p->ppid != me->pid))
        return -ESRCH;
    if (p->sid == p->pid || p->sid != me->sid)
        return -EPERM;
    int exists = pgid == pid;
    for (int i = 0; i < MAX_PROCS && !exists; i++) {
        struct proc *q = &ptable.procs[i];
        exists = q->state != P_FREE && q->group == q && q->pgid == pgid && q->sid == me->sid;
    }
    if (!exists)
        return -EPERM;
    p->pgid = pgid;
    return 0;
}

/* setsid: a new session and process group, both named by this process's pid; refused (EPERM)
 * to a process that already leads a group, as on Linux. It also leaves its command, so the
 * command's end and its timeout no longer reach it (see session.c). */
static long sys_setsid(void)
{
    struct proc *me = proc_cur()->group;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *q = &ptable.procs[i];
        if (q->state != P_FREE && q->group == q && q->pgid == me->pid)
            return -EPERM;
    }
    me->pgid = me->sid = me->pid;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *t = &ptable.procs[i];
        if (t->state == P_FREE || t->group != me)
            continue;
        if (t->sess && t->sess->root != t)
            t->sess = 0;
        t->hup_at = 0;
    }
    return me->pid;
}

/* Whether process `p` is one that wait4's `pid` names for the caller `me`: any child (-1), a
 * child in the caller's group (0), in group -pid (below -1), or the child `pid`. */
static int wait_selects(const struct proc *p, const struct proc *me, int pid)
{
    return pid == -1 ? 1 : pid == 0 ? p->pgid == me->pgid : pid < 0 ? p->pgid == -(int64_t)pid : p->pid == pid;
}

/* struct rusage as wait4 and getrusage give it: user time only (system time is not split off),
 * and the minor faults (`minflt`: the page faults the kernel served) */
static long put_rusage(uint64_t uru, uint64_t ns, uint64_t minflt)
{
    int64_t ru[18];
    kmemset(ru, 0, sizeof(ru));
    ru[0] = (int64_t)(ns / 1000000000ULL);
    ru[1] = (int64_t)(ns % 1000000000ULL / 1000);
    ru[8] = (int64_t)minflt; /* ru_minflt, after the two timevals and maxrss, ixrss, idrss, isrss */
    return uru ? copy_user(uru, ru, sizeof(ru), 1) : 0;
}

#define WNOHANG_ 1
#define WSTOPPED_ 2 /* wait4's WUNTRACED */
#define WEXITED_ 4
#define WCONTINUED_ 8

/* Whether child `p` has news for a wait with `options`: it ended (WEXITED), stopped
 * (WSTOPPED) or continued (WCONTINUED) since its parent last heard. */
static int wait_news(const struct proc *p, uint64_t options)
{
    if (p->state == P_ZOMBIE)
        return (options & WEXITED_) && !p->nthreads; /* a process has ended when all its threads have */
    return ((options & WSTOPPED_) && p->stop_note == CLD_STOPPED_) || ((options & WCONTINUED_) && p->stop_note == CLD_CONTINUED_);
}

/* The first child that `pid` selects (see wait_selects) with news for the caller (see
 * wait_news): its pid, the child in *out (a zombie when it ended); 0 with WNOHANG when none has
 * any yet; -ECHILD when there is none to wait for. Otherwise it waits (a handled signal:
 * -ERESTART_). */
static long wait_child(int pid, uint64_t options, struct proc **out)
{
    struct proc *cur = proc_cur();
    for (;;) {
        int children = 0;
        for (int i = 0; i < MAX_PROCS; i++) {
            struct proc *p = &ptable.procs[i];
            if (p->state == P_FREE || p->group != p || p->ppid != cur->group->pid || !wait_selects(p, cur->group, pid))
                continue;
            children++;
            if (!wait_news(p, options))
                continue;
            *out = p;
            return p->pid;
        }
        if (!children)
            return -ECHILD;
        if (options & WNOHANG_)
            return 0;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_WAIT);
    }
}

/* A waited-for child goes: its time counts as its parent's children's. */
static void reap(struct proc *p)
{
    proc_cur()->group->children_cpu_ns += proc_cpu(p) + p->children_cpu_ns;
    proc_cur()->group->children_minflt += p->proc_minflt + p->children_minflt;
    proc_free(p);
}

static long sys_wait4(int64_t pid64, uint64_t ustatus, uint64_t options, uint64_t urusage)
{
    struct proc *p;
    long r = wait_child((int)pid64, (options & (WNOHANG_ | WSTOPPED_ | WCONTINUED_)) | WEXITED_, &p);
    if (r <= 0)
        return r;
    if (p->state != P_ZOMBIE) { /* stopped (0x7f with the signal) or continued (0xffff) */
        int js = p->stop_note == CLD_STOPPED_ ? p->stopped << 8 | 0x7f : 0xffff;
        p->stop_note = 0;
        return ustatus && copy_user(ustatus, &js, 4, 1) < 0 ? -EFAULT : r;
    }
    int st = p->exit_status >= 128 && p->killed ? (p->exit_status - 128) : (p->exit_status << 8);
    if ((ustatus && copy_user(ustatus, &st, 4, 1) < 0) || put_rusage(urusage, proc_cpu(p) + p->children_cpu_ns, p->proc_minflt + p->children_minflt) < 0)
        return -EFAULT;
    reap(p);
    return r;
}

/* waitid(idtype, id, info, options, rusage): P_ALL, P_PID, P_PGID (0: the caller's group) or
 * P_PIDFD; WEXITED, WSTOPPED, WCONTINUED, WNOHANG (info zeroed when none has news), WNOWAIT
 * (the child stays to be waited for, its news too). */
static long sys_waitid(uint64_t idtype, uint64_t id, uint64_t uinfo, uint64_t options, uint64_t urusage)
{
    int pid;
    if (!(options & 0xe) || (options & ~(0x100000fULL | 0xe0000000ULL)))
        return -EINVAL;
    if (idtype == 0) { /* P_ALL */
        pid = -1;
    } else if (idtype == 1 || idtype == 2) { /* P_PID, P_PGID */
        if ((int)id < 0 || (idtype == 1 && (int)id == 0))
            return -EINVAL;
        pid = idtype == 1 ? (int)id : -(int)id;
    } else if (idtype == 3) { /* P_PIDFD */
        struct file *f = fd_get((uint64_t)(int)id);
        if (!f)
            return -EBADF;
        if (f->type != F_PIDFD)
            return -EINVAL;
        pid = f->pid;
    } else {
        return -EINVAL;
    }
    struct proc *p = 0;
    long r = wait_child(pid, options, &p);
    if (r < 0)
        return r;
    int32_t info[32] = {0};
    int ended = p && p->state == P_ZOMBIE;
    if (p) {
        info[0] = 17; /* SIGCHLD */
        info[2] = !ended ? p->stop_note : p->killed ? 2 : 1; /* CLD_STOPPED, CLD_CONTINUED, CLD_KILLED, CLD_EXITED */
        info[4] = p->pid;
        info[6] = !ended ? (p->stop_note == CLD_STOPPED_ ? p->stopped : 18) : p->killed ? p->killed : p->exit_status;
    }
    if ((uinfo && copy_user(uinfo, info, sizeof(info), 1) < 0) || (p && put_rusage(urusage, proc_cpu(p) + p->children_cpu_ns, p->proc_minflt + p->children_minflt) < 0))
        return -EFAULT;
    if (p && !ended) {
        if (!(options & 0x1000000))
            p->stop_note = 0;
        return 0;
    }
    if (p && !(options & 0x1000000)) /* WNOWAIT */
        reap(p);
    return 0;
}

/* pidfd_open: a descriptor for process `pid` (close-on-exec, as on Linux), readable once the
 * process has ended; PIDFD_NONBLOCK. A thread that is not a process's first is EINVAL. */
static long sys_pidfd_open(int64_t pid, uint64_t flags)
{
    if ((flags & ~(uint64_t)O_NONBLOCK_) || (int)pid <= 0)
        return -EINVAL;
    if (!proc_by_pid((int)pid)) {
        for (int i = 0; i < MAX_PROCS; i++)
            if (ptable.procs[i].state != P_FREE && ptable.procs[i].pid == (int)pid)
                return -EINVAL;
        return -ESRCH;
    }
    struct file *f = file_new(F_PIDFD, 0, 2 | (int)(flags & O_NONBLOCK_));
    if (f)
        f->pid = (int)pid;
    return anon_install(f, O_CLOEXEC_);
}

/* pidfd_send_signal(pidfd, sig, info, flags): kill through a pidfd (info NULL), or with a
 * siginfo's code and value as rt_sigqueueinfo; ESRCH once the process has ended. */
static long sys_pidfd_send_signal(uint64_t fd, uint64_t sig, uint64_t uinfo, uint64_t flags)
{
    struct proc *cur = proc_cur();
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    /* a pidfd, or a /proc/<pid> directory's descriptor, as on Linux; anything else is EBADF */
    int pid = f->type == F_PIDFD ? f->pid : f->type == F_INODE ? procfs_dir_pid(f->ino) : 0;
    if (!pid)
        return -EBADF;
    if (flags || sig >= 64)
        return -EINVAL;
    struct proc *p = proc_by_pid(pid);
    if (!p || proc_ended(pid))
        return -ESRCH;
    struct sigsrc src = {cur->group->pid, SI_USER_, 0, 0, 0};
    if (uinfo) {
        int32_t head[4];
        if (copy_user(uinfo, head, sizeof(head), 0) < 0 || copy_user(uinfo + 24, &src.val, 8, 0) < 0)
            return -EFAULT;
        if ((head[2] >= 0 || head[2] == SI_TKILL_) && p != cur->group)
            return -EPERM;
        src.code = head[2];
    }
    if (sig)
        sig_send_process(p, (int)sig, &src);
    if (cur->killed)
        proc_exit(128 + cur->killed);
    return 0;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_getpid(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    (void)s;
    return cur->group->pid;
}

long sc_gettid(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    (void)s;
    return cur->pid; /* gettid */
}

long sc_getppid(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    (void)s;
    return cur->group->ppid ? cur->group->ppid : 1; /* getppid: 1, the agent, for a command or orphan */
}

long sc_clone(const struct sysargs *s)
{
    return sys_clone(s->r, s->a, s->b, s->c, s->d, s->e); /* clone(flags, stack, ptid, ctid, tls) */
}

long sc_fork(const struct sysargs *s)
{
    return sys_clone(s->r, 17, 0, 0, 0, 0); /* fork: SIGCHLD */
}

long sc_vfork(const struct sysargs *s)
{
    return sys_clone(s->r, CLONE_VM_ | CLONE_VFORK_ | 17, 0, 0, 0, 0); /* vfork */
}

long sc_clone3(const struct sysargs *s)
{
    return sys_clone3(s->r, s->a, s->b);
}

long sc_wait4(const struct sysargs *s)
{
    return sys_wait4((int64_t)s->a, s->b, s->c, s->d);
}

long sc_waitid(const struct sysargs *s)
{
    return sys_waitid(s->a, s->b, s->c, s->d, s->e);
}

long sc_pidfd_open(const struct sysargs *s)
{
    return sys_pidfd_open((int64_t)s->a, s->b);
}

long sc_pidfd_send_signal(const struct sysargs *s)
{
    return sys_pidfd_send_signal(s->a, s->b, s->c, s->d);
}

long sc_getrusage(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* getrusage: RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD */
    long ret;
    int who = (int)s->a; /* an int: the register's upper half is not the caller's (-1 came as 0xffffffff) */
    ret = who == 0    ? put_rusage(s->b, proc_cpu(cur->group), cur->group->proc_minflt)
          : who == -1 ? put_rusage(s->b, cur->group->children_cpu_ns, cur->group->children_minflt)
          : who == 1  ? put_rusage(s->b, cpu_time(cur), cur->minflt)
                      : -EINVAL;
    return ret;
}

long sc_setpgid(const struct sysargs *s)
{
    return sys_setpgid((int64_t)s->a, (int64_t)s->b);
}

long sc_setsid(const struct sysargs *s)
{
    (void)s;
    return sys_setsid();
}

long sc_getpgrp(const struct sysargs *s)
{
    (void)s;
    return proc_cur()->group->pgid;
}

long sc_getpgid(const struct sysargs *s)
{
    struct proc *p = (int)s->a ? proc_by_pid((int)s->a) : proc_cur()->group;
    return p ? p->pgid : -ESRCH;
}

long sc_getsid(const struct sysargs *s)
{
    struct proc *p = (int)s->a ? proc_by_pid((int)s->a) : proc_cur()->group;
    return p ? p->sid : -ESRCH;
}

long sc_uname(const struct sysargs *s)
{
    return sys_uname(s->a);
}

long sc_getrlimit(const struct sysargs *s)
{
    return sys_prlimit(0, s->a, 0, s->b); /* getrlimit */
}

long sc_setrlimit(const struct sysargs *s)
{
    return sys_prlimit(0, s->a, s->b, 0); /* setrlimit */
}

long sc_prlimit64(const struct sysargs *s)
{
    return sys_prlimit(s->a, s->b, s->c, s->d);
}

long sc_sysinfo(const struct sysargs *s)
{
    return sys_sysinfo(s->a);
}

long sc_arch_prctl(const struct sysargs *s)
{
    /* arch_prctl */
    long ret;
    if (s->a == 0x1002 && s->b < USER_TOP) {
        wrmsr(MSR_FS_BASE, s->b);
        ret = 0;
    } else if (s->a == 0x1003) {
        uint64_t fs = rdmsr(MSR_FS_BASE);
        ret = copy_user(s->b, &fs, 8, 1);
    } else {
        ret = -EINVAL;
    }
    return ret;
}

long sc_set_tid_address(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* set_tid_address */
    long ret;
    cur->clear_tid = s->a;
    ret = cur->pid;
    return ret;
}

long sc_set_robust_list(const struct sysargs *s)
{
    (void)s;
    return 0; /* set_robust_list */
}

long sc_execve(const struct sysargs *s)
{
    return sys_execve(s->r, AT_FDCWD, s->a, s->b, s->c, 0);
}

long sc_execveat(const struct sysargs *s)
{
    return sys_execve(s->r, (int64_t)(int)s->a, s->b, s->c, s->d, s->e);
}

long sc_getpriority(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    (void)s;
    return 20 - cur->group->nice; /* getpriority: any target reads as this process */
}

long sc_setpriority(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* setpriority: kept and shown, not used (one CPU, every process gets its turn) */
    long ret;
    cur->group->nice = (int)s->c < -20 ? -20 : (int)s->c > 19 ? 19 : (int)s->c;
    ret = 0;
    return ret;
}

long sc_ioprio_set(const struct sysargs *s)
{
    (void)s;
    return 0; /* ioprio_set: memory is the disk, there is no I/O queue */
}

long sc_ioprio_get(const struct sysargs *s)
{
    (void)s;
    return 2 << 13 | 4; /* ioprio_get: best effort, level 4 (the default) */
}

long sc_umask(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    uint32_t old = cur->files->umask;
    cur->files->umask = (uint32_t)s->a & 0777;
    return old;
}

long sc_sched_yield(const struct sysargs *s)
{
    (void)s;
    /* sched_yield */
    long ret;
    yield();
    ret = 0;
    return ret;
}

long sc_exit(const struct sysargs *s)
{
    /* exit: this thread */
    proc_exit((long)s->a);
}

long sc_exit_group(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* exit_group: every thread */
    if (!cur->group->group_exit) {
        cur->group->group_exit = 1;
        cur->group->group_status = (int)(s->a & 0xff);
    }
    group_kill(cur->group, cur);
    proc_exit((long)s->a);
}
