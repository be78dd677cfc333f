/* New processes and threads (clone): a copy of the address space (fork: its pages copied or
 * shared copy-on-write, mm/vm.c) or a share of it (vfork, threads), and of the descriptors. */
#include "fork.h"

#include "../fs/file.h"
#include "../fs/fmap.h"
#include "../fs/procfs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/vm.h"
#include "proc.h"

struct proc *thread_new(void)
{
    struct proc *cur = proc_cur();
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

struct proc *process_new(uint64_t flags, long *err)
{
    struct proc *cur = proc_cur();
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
    /* the parent's registers as the syscall saved them, at the top of its kernel stack */
    const struct uregs *u = (const struct uregs *)(kstack_top(cur) - sizeof(struct uregs));
    if (!c->files || (!(flags & CLONE_VM_) && (mm_fork_pages(cur->mm, c->mm, u->rsp) < 0 ||
                                                fmap_fork(c->mm, cur->mm) < 0))) {
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
    /* SCHED_RESET_ON_FORK: a realtime policy becomes SCHED_OTHER and a negative nice 0 in the
     * child, which does not keep the flag */
    int reset = g->sched_reset && (g->sched_policy == 1 || g->sched_policy == 2);
    c->nice = g->sched_reset && g->nice < 0 ? 0 : g->nice;
    c->sched_policy = reset ? 0 : g->sched_policy;
    c->sched_prio = reset ? 0 : g->sched_prio;
    c->pgid = g->pgid;
    c->sid = g->sid;
    kmemcpy(c->uid, g->uid, sizeof(c->uid));
    kmemcpy(c->gid, g->gid, sizeof(c->gid));
    kmemcpy(c->groups, g->groups, sizeof(c->groups));
    c->ngroups = g->ngroups;
    c->no_new_privs = g->no_new_privs;
    kmemcpy(c->rlim, g->rlim, sizeof(c->rlim));
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
