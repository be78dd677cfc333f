/* The scheduler. Each process has its own kernel stack for its syscalls; the scheduler runs on
 * the kernel's boot stack (the context that serves host requests) and every switch goes
 * through it. A process leaves the CPU when it blocks (wait4, a pipe, poll, nanosleep), yields
 * or exits, and at every timer tick or host request that interrupts its user mode
 * (proc_preempt), so a busy loop starves neither other programs nor the host. Interrupts from
 * user mode arrive on one fixed stack (TSS.rsp0 never changes: whether PVM re-reads it on every
 * event is not known) and never switch processes there. Kernel code is never preempted: single
 * CPU, no locks. */
#include "sched.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../arch/fpu.h"
#include "../fs/procfs.h"
#include "../lel_guest_abi.h"
#include "proc.h"
#include "session.h"
#include "signal.h"
#include "../mm/vm.h"

static struct proc *pick(void)
{
    static int last;
    uint64_t now = kernel_ticks();
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->state == P_BLOCKED && (p->why == W_SLEEP || p->wake_tick) && now >= p->wake_tick)
            p->state = P_RUNNABLE;
    }
    for (int i = 0; i < MAX_PROCS; i++) /* the dying first: they free what the others want */
        if (ptable.procs[i].state == P_RUNNABLE && ptable.procs[i].killed)
            return &ptable.procs[i];
    for (int k = 1; k <= MAX_PROCS; k++) {
        struct proc *p = &ptable.procs[(last + k) % MAX_PROCS];
        if (p->state == P_RUNNABLE) {
            last = (int)(p - ptable.procs);
            return p;
        }
    }
    return 0;
}

/* Called from the interrupt path (entry.S) on the process's kernel stack, with the user
 * registers saved below: the timer or a host request preempted user mode. */
void proc_preempt(uint64_t *frame)
{
    struct proc *cur = proc_cur();
    if (!cur)
        return;
    yield();
    job_park();
    sig_deliver_preempted(frame);
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
    ptable.cur = p;
    procfs_self(p->group->pid);
    syscall_stack_top = kstack_top(p);
    write_cr3(p->mm->pml4); /* a no-op when it is the last one's address space (a thread, or the same process) */
    wrmsr(MSR_FS_BASE, p->fs_base); /* likewise when unchanged (arch/cpu.h) */
    fpu_restore(fpu_of(p));
    kernel_irq_on(); /* the timer must reach user mode */
    p->ran_at = kernel_ns();
    switch_to(&ptable.sched_sp, p->ksp);
    uint64_t ran = kernel_ns() - p->ran_at;
    p->cpu_ns += ran;
    ptable.cpu_busy_ns += ran;
    fpu_save(fpu_of(p)); /* a process may be preempted anywhere */
    ptable.cur = 0;
    kernel_irq_off();
    /* the process's page tables stay loaded (they map the kernel as the boot ones do): the
     * next switch to it, or to one of its threads, then costs no CR3 write; mm_put leaves
     * them before freeing them */
    sessions_check();
    return 1;
}
