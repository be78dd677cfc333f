/* Interrupts and exceptions, as entry.S's isr_common hands them over: faults of user programs
 * go to their process (a page the kernel maps on demand, or the program's death); faults of
 * the kernel itself are fatal; ticks and host requests preempt user mode. */
#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../lel_guest_abi.h"
#include "proc.h"

/* Called from isr_common with the vector and a pointer to {error code, rip, cs, rflags, ...}.
 * Returns 1 to preempt the user-mode process it interrupted (isr_common then saves its
 * registers on the process's kernel stack and calls proc_preempt): every tick and every host
 * request goes back to the scheduler, so a busy program can starve neither other programs
 * nor the host. */
int isr(uint64_t vector, uint64_t *frame)
{
    /* The mode an event came from is its RIP's half of the address space: under PVM the first
     * interrupt after a restore of a halted vCPU was seen to push the hardware's user CS (0x33)
     * for kernel code, and going back "to user mode" there killed the guest. The frame is put
     * right, so iretq returns to the kernel as a kernel frame. */
    if ((frame[2] & 3) == 3 && frame[1] >= (1ULL << 47)) {
        frame[2] = 0x10;
        frame[5] = 0x18;
    }
    if (vector == 14 && (frame[2] & 3) == 3 && proc_active() && proc_page_fault(read_cr2(), frame[0]))
        return 0; /* resolved: the instruction runs again */
    if (vector < 32 && (frame[2] & 3) == 3 && proc_active())
        proc_fault(vector, frame, vector == 14 ? read_cr2() : 0); /* a user-mode fault ends the process, not the kernel */
    if (vector < 32)
        kernel_fatal(vector, frame); /* a fault of the kernel's own */
    kernel_irq_done(vector, frame);
    return (vector == LEL_VEC_TIMER || vector == LEL_VEC_CHANNEL || vector == LEL_VEC_NET) && (frame[2] & 3) == 3 &&
           proc_active();
}
