#ifndef LEL_GUEST_ARCH_ARCH_H
#define LEL_GUEST_ARCH_ARCH_H

#include <stdint.h>

struct lel_boot_info;
struct lel_chan;

#define MSR_X2APIC_EOI 0x80b

extern struct lel_boot_info *const boot;

extern struct lel_chan *const chan;

/* from kmain.c */
/** Running under PVM (the boot information says so). */
extern int kernel_pvm;

#define pvm kernel_pvm

extern uint64_t tsc_khz, tsc_base, ns_base, ns_last;

extern uint64_t timer_irqs;

extern uint64_t oneshot_at;

extern const char pvm_idle_window[], pvm_idle_window_end[];

void console_write(const char *s);

void console_hex(uint64_t v);

void irq_disable(void);

void idt_init(void);

/** The length of a timer tick, in ns (the boot info's tick rate, 100 Hz by default). */
uint64_t kernel_tick_ns(void);

/** Nanoseconds since boot (TSC resolution when its rate is known, else a tick's). */
uint64_t kernel_ns(void);

/** Timer ticks since boot (from the TSC when its rate is known, so they count while the timer
 * is stopped). */
uint64_t kernel_ticks(void);

/* After a restore: time goes on from where it is, at this host's TSC rate (0: keep the rate).
 * The TSC may have jumped either way meanwhile (PVM cannot restore it; a host may have
 * rebooted), so it is read afresh from here on. */
void clock_rebase(uint64_t khz);

/** The timer: periodic while a process can run (until 0), once at tick `until` when all wait,
 * off when nothing waits for time (UINT64_MAX), so an idle guest takes no interrupts. Only
 * when time can be read from the TSC; else it stays periodic. */
void kernel_timer(uint64_t until);

void lapic_init(void);

/** Opens interrupts for user mode: under PVM the VIF byte is the interrupt flag in both modes. */
void kernel_irq_on(void);

/** Before syscall_exit's pops: closes interrupts where sysret reopens them (hardware KVM), so no
 * interrupt lands on the user stack between restoring RSP and sysret; under PVM the VIF byte
 * stays open (sysret does not reach it). */
void kernel_sysret_prep(void);

void kernel_irq_off(void);

/** Waits for the next interrupt with interrupts open, then closes them again. */
void kernel_idle(void);

/** Tells the host that a session ended and waits to be collected. */
void kernel_event(void);

#endif
