/* The guest's hardware: the console port, interrupts (IDT, x2APIC timer), the PVM/hardware
 * interrupt-flag switch, the clock, and the host channel's doorbell. Runs in 64-bit kernel
 * mode on the identity map the VMM built. Under PVM the interrupt flag is the VIF byte
 * (PVM.md §2.3); on hardware KVM it is the real IF. */
#include "arch.h"

#include "cpu.h"
#include "../lel_guest_abi.h"

#define MSR_APIC_BASE 0x1b
#define MSR_X2APIC_EOI 0x80b
#define MSR_X2APIC_SVR 0x80f
#define MSR_X2APIC_LVT_TIMER 0x832
#define MSR_X2APIC_TMICT 0x838
#define MSR_X2APIC_TDCR 0x83e
#define APIC_BUS_HZ 1000000000ULL /* KVM's emulated APIC timer runs at 1 GHz */

struct vif {
    volatile uint8_t if_;
    volatile uint8_t pending;
};

struct lel_boot_info *const boot = (struct lel_boot_info *)(LEL_KERNEL_BASE + LEL_GPA_BOOT);

struct lel_chan *const chan = (struct lel_chan *)(LEL_KERNEL_BASE + LEL_GPA_CHAN);
char *const bulk = (char *)(LEL_DMAP_BASE + LEL_GPA_BULK);

static struct vif *const vif = (struct vif *)(LEL_KERNEL_BASE + LEL_GPA_VIF);

/* Under PVM (read by entry.S too: returns to user mode go through a hypercall there). */
int kernel_pvm;
uint64_t cpu_fs_base, cpu_cr3;
int cpu_fs_known;

/* Time: with the TSC's rate known (boot info, then SET_CLOCK after each restore) it is read
 * from the TSC, in ns, and keeps running while the timer is stopped; without it, time is the
 * count of timer interrupts. */
static uint64_t tsc_khz, tsc_base, ns_base, ns_last;

static uint64_t timer_irqs; /* timer interrupts taken (LEL_OP_TICKS ret[1]) */

/* The timer ticks periodically while processes run (preemption); with none runnable for a tick
 * it fires once at the next deadline, or not at all (an idle sandbox costs the host nothing). */
static enum { TIMER_PERIODIC, TIMER_ONESHOT, TIMER_OFF } timer_mode;

static uint64_t oneshot_at; /* tick the one-shot timer is armed for; 0: not armed (it fired) */

/* Whether the guest went idle with the periodic timer left running. Each mode change is one or
 * two MSR writes, each a trap of tens of microseconds under PVM, and a process that blocks for a
 * network round trip changed it twice: so the tick goes on while the guest waits, until the next
 * tick (at most one more interrupt for an idle guest) or a deadline before it. */
static int idle_grace; /* 1 from going idle so until the next tick; 2 once it came */

extern const uint64_t isr_stubs[256];

void pvm_idle(struct vif *v);
extern const char pvm_idle_window[], pvm_idle_window_end[];

void console_write(const char *s)
{
    for (; *s; s++)
        outb(LEL_PORT_CONSOLE, (uint8_t)*s);
}

void console_hex(uint64_t v)
{
    char buf[19] = "0x";
    for (int i = 0; i < 16; i++)
        buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    buf[18] = 0;
    console_write(buf);
}

void irq_disable(void)
{
    if (kernel_pvm)
        vif->if_ = 0;
    else
        __asm__ volatile("cli" ::: "memory");
}

/* Enables interrupts and waits for one (entry.S: pvm_idle, for PVM's VIF byte). */
static void irq_enable_and_wait(void)
{
    if (kernel_pvm)
        pvm_idle(vif);
    else
        __asm__ volatile("sti; hlt" ::: "memory");
}

struct idt_gate {
    uint16_t off0, sel;
    uint8_t ist, type;
    uint16_t off1;
    uint32_t off2, zero;
};

void idt_init(void)
{
    struct idt_gate *idt = (struct idt_gate *)(LEL_KERNEL_BASE + LEL_GPA_IDT);
    for (int v = 0; v < 256; v++) {
        uint64_t a = isr_stubs[v];
        idt[v] = (struct idt_gate){(uint16_t)a, LEL_SEL_KCODE, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
    }
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } d = {256 * sizeof(struct idt_gate) - 1, LEL_KERNEL_BASE + LEL_GPA_IDT};
    __asm__ volatile("lidt %0" ::"m"(d));
    __asm__ volatile("mov %%cr3, %0" : "=r"(cpu_cr3)); /* the VMM's tables: write_cr3 skips reloading them */
}

uint64_t kernel_tick_ns(void)
{
    return 1000000000ULL / (boot->tick_hz ? boot->tick_hz : 100);
}

uint64_t kernel_ns(void)
{
    if (!tsc_khz)
        return chan->ticks * kernel_tick_ns();
    uint64_t t = rdtsc(), d = t > tsc_base ? t - tsc_base : 0; /* a restore may move the TSC back */
    uint64_t ns = ns_base + d / tsc_khz * 1000000 + d % tsc_khz * 1000000 / tsc_khz;
    if (ns < ns_last)
        ns = ns_last;
    ns_last = ns;
    return ns;
}

uint64_t kernel_ticks(void)
{
    if (tsc_khz)
        chan->ticks = kernel_ns() / kernel_tick_ns();
    return chan->ticks;
}

void clock_rebase(uint64_t khz)
{
    /* after a restore (SET_CLOCK follows each): forget what FS_BASE and CR3 were thought to
     * hold, in case the restored vCPU's differ; the next switch writes both again */
    cpu_fs_known = 0;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cpu_cr3));
    ns_base = kernel_ns();
    tsc_base = rdtsc();
    if (khz)
        tsc_khz = khz;
}

void kernel_timer(uint64_t until)
{
    if (!tsc_khz) /* without the TSC the timer is the clock: always periodic */
        return;
    if (until && timer_mode == TIMER_PERIODIC && idle_grace < 2) {
        idle_grace = 1;
        /* the next periodic interrupt comes within a tick, before a deadline past that */
        if (until == UINT64_MAX || until * kernel_tick_ns() > kernel_ns() + kernel_tick_ns())
            return;
    }
    if (until == 0) {
        idle_grace = 0;
        if (timer_mode != TIMER_PERIODIC) {
            wrmsr(MSR_X2APIC_LVT_TIMER, LEL_VEC_TIMER | (1u << 17));
            wrmsr(MSR_X2APIC_TMICT, APIC_BUS_HZ * kernel_tick_ns() / 1000000000ULL);
            timer_mode = TIMER_PERIODIC;
        }
    } else if (until == UINT64_MAX) {
        if (timer_mode != TIMER_OFF)
            wrmsr(MSR_X2APIC_TMICT, 0);
        timer_mode = TIMER_OFF;
    } else if (timer_mode != TIMER_ONESHOT || oneshot_at != until) {
        uint64_t at = until * kernel_tick_ns(), now = kernel_ns();
        uint64_t ns = at > now + 10000 ? at - now : 10000; /* passed or close: fire at once */
        if (ns > 0xffffffffULL)
            ns = 0xffffffffULL; /* the count register's limit (4.3 s): it fires early and is re-armed */
        if (timer_mode != TIMER_ONESHOT)
            wrmsr(MSR_X2APIC_LVT_TIMER, LEL_VEC_TIMER);
        wrmsr(MSR_X2APIC_TMICT, ns * (APIC_BUS_HZ / 1000000000ULL));
        timer_mode = TIMER_ONESHOT;
        oneshot_at = until;
    }
}

void lapic_init(void)
{
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 11) | (1u << 10)); /* enable, x2APIC mode */
    wrmsr(MSR_X2APIC_SVR, 0x100 | 0xff);
    wrmsr(MSR_X2APIC_TDCR, 0xb); /* divide by 1 */
    wrmsr(MSR_X2APIC_LVT_TIMER, LEL_VEC_TIMER | (1u << 17)); /* periodic */
    wrmsr(MSR_X2APIC_TMICT, APIC_BUS_HZ * kernel_tick_ns() / 1000000000ULL);
    tsc_base = rdtsc();
    tsc_khz = boot->tsc_khz;
}

void kernel_irq_on(void)
{
    /* sysret's RFLAGS.IF does not reach the VIF byte, and a tick that arrived while the kernel
     * had interrupts off stays pending until the port-0x80 doorbell asks for it (PVM.md §2.3):
     * without both, a user program that never traps would never see the timer again */
    if (kernel_pvm) {
        vif->if_ = 1;
        __asm__ volatile("" ::: "memory");
        if (vif->pending)
            outb(LEL_PORT_PVM_IRQ, 0);
    }
}

void kernel_sysret_prep(void)
{
    if (!kernel_pvm)
        irq_disable();
}

void kernel_irq_off(void)
{
    irq_disable();
}

void kernel_idle(void)
{
    irq_enable_and_wait();
    irq_disable();
}

void kernel_event(void)
{
    chan->events++;
    outl(LEL_PORT_DOORBELL, LEL_BELL_EVENT);
}

uint64_t kernel_tsc_khz(void)
{
    return tsc_khz;
}

uint64_t kernel_timer_irqs(void)
{
    return timer_irqs;
}

void kernel_fatal(uint64_t vector, const uint64_t *frame)
{
    chan->fatal_vector = (uint32_t)vector;
    chan->fatal_rip = frame[1];
    chan->fatal_err = frame[0];
    chan->fatal_addr = vector == 14 ? read_cr2() : 0;
    chan->fatal_rsp = frame[4];
    __asm__ volatile("mov %%cr3, %0" : "=r"(chan->fatal_cr3));
    console_write("guest: fatal exception ");
    console_hex(vector);
    console_write(" at ");
    console_hex(frame[1]);
    console_write("\n");
    outl(LEL_PORT_DOORBELL, LEL_BELL_FATAL);
    for (;;)
        __asm__ volatile("hlt");
}

void kernel_irq_done(uint64_t vector, uint64_t *frame)
{
    if (frame[1] >= (uint64_t)pvm_idle_window && frame[1] < (uint64_t)pvm_idle_window_end)
        frame[1] = (uint64_t)pvm_idle_window_end; /* woken before the hlt: do not sleep */
    if (vector == LEL_VEC_TIMER) {
        timer_irqs++;
        oneshot_at = 0; /* a one-shot fired: the next idle step arms it again */
        if (idle_grace)
            idle_grace = 2; /* an idle guest's tick: the next idle step stops the periodic timer */
        if (!tsc_khz)
            chan->ticks++;
    }
    wrmsr(MSR_X2APIC_EOI, 0);
}
