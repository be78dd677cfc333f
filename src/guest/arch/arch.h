/* The guest's hardware as the rest of the kernel sees it: the console, interrupts (IDT, the
 * x2APIC timer, the PVM/hardware interrupt-flag switch), the clock, and the host channel's
 * fixed pages (boot information, mailbox, bulk area; see lel_guest_abi.h). The host channel's
 * protocol itself is the agent's. */
#ifndef LEL_GUEST_ARCH_ARCH_H
#define LEL_GUEST_ARCH_ARCH_H

#include <stdint.h>

struct lel_boot_info;
struct lel_chan;

/* The boot information, the host channel's mailbox, and its bulk area (requests' and answers'
 * data), at the fixed addresses the VMM uses. */
extern struct lel_boot_info *const boot;
extern struct lel_chan *const chan;
extern char *const bulk;

/** Running under PVM (the boot information says so; set once at boot, read by entry.S too:
 * returns to user mode go through a hypercall there). */
extern int kernel_pvm;

void console_write(const char *s);
void console_hex(uint64_t v);

/** Boot: interrupts closed, the IDT loaded, the x2APIC and its timer set up (and the clock's
 * rate read from the boot information). */
void irq_disable(void);
void idt_init(void);
void lapic_init(void);

/** The length of a timer tick, in ns (the boot info's tick rate, 100 Hz by default). */
uint64_t kernel_tick_ns(void);
/** Nanoseconds since boot (TSC resolution when its rate is known, else a tick's). */
uint64_t kernel_ns(void);
/** Timer ticks since boot (from the TSC when its rate is known, so they count while the timer
 * is stopped). */
uint64_t kernel_ticks(void);
/** The TSC's rate in kHz; 0 when unknown (time is then the count of timer interrupts). */
uint64_t kernel_tsc_khz(void);
/** Timer interrupts taken since boot. */
uint64_t kernel_timer_irqs(void);
/** After a restore: time goes on from where it is, at this host's TSC rate (0: keep the rate).
 * The TSC may have jumped either way meanwhile (PVM cannot restore it; a host may have
 * rebooted), so it is read afresh from here on. */
void clock_rebase(uint64_t khz);
/** The timer: periodic while a process can run (until 0), once at tick `until` when all wait,
 * off when nothing waits for time (UINT64_MAX), so an idle guest takes no interrupts; a guest
 * that just went idle keeps the tick until the next one (short waits then cost no MSR writes)
 * unless `until` comes first. Only when time can be read from the TSC; else it stays periodic. */
void kernel_timer(uint64_t until);

/** Opens interrupts for user mode: under PVM the VIF byte is the interrupt flag in both modes. */
void kernel_irq_on(void);
/** Before syscall_exit's pops: closes interrupts where sysret reopens them (hardware KVM), so no
 * interrupt lands on the user stack between restoring RSP and sysret; under PVM the VIF byte
 * stays open (sysret does not reach it). */
void kernel_sysret_prep(void);
void kernel_irq_off(void);
/** Waits for the next interrupt with interrupts open, then closes them again. */
void kernel_idle(void);
/** The end of an interrupt's handling ({error code, rip, cs, ...} as isr_common pushed them):
 * the timer's accounting, the idle window's fix-up, the EOI. */
void kernel_irq_done(uint64_t vector, uint64_t *frame);
/** An exception in the kernel itself: reported to the host through the channel (vector, RIP,
 * error code, address, RSP, CR3) and the fatal doorbell; never returns. */
void kernel_fatal(uint64_t vector, const uint64_t *frame) __attribute__((noreturn));
/** Tells the host that a session ended and waits to be collected. */
void kernel_event(void);

#endif
