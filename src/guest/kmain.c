/* The guest kernel: console, interrupts (IDT, x2APIC timer), the PVM/hardware interrupt-flag
 * switch, and the host channel's request loop. Runs in 64-bit kernel mode on the identity map
 * the VMM built. Under PVM the interrupt flag is the VIF byte (PVM.md §2.3); on hardware KVM it
 * is the real IF. */
#include "fpu.h"
#include "fs.h"
#include "klib.h"
#include "cpu.h"
#include "proc.h"
#include "rng.h"

#include <stddef.h>

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

static struct lel_boot_info *const boot = (struct lel_boot_info *)(LEL_KERNEL_BASE + LEL_GPA_BOOT);
static struct lel_chan *const chan = (struct lel_chan *)(LEL_KERNEL_BASE + LEL_GPA_CHAN);
static struct vif *const vif = (struct vif *)(LEL_KERNEL_BASE + LEL_GPA_VIF);
/* Under PVM (read by entry.S too: returns to user mode go through a hypercall there). */
int kernel_pvm;
#define pvm kernel_pvm

/* Time: with the TSC's rate known (boot info, then SET_CLOCK after each restore) it is read
 * from the TSC, in ns, and keeps running while the timer is stopped; without it, time is the
 * count of timer interrupts. */
static uint64_t tsc_khz, tsc_base, ns_base, ns_last;
static uint64_t timer_irqs; /* timer interrupts taken (LEL_OP_TICKS ret[1]) */
/* The timer ticks periodically while processes run (preemption); with none runnable it fires
 * once at the next deadline, or not at all (an idle sandbox costs the host nothing). */
static enum { TIMER_PERIODIC, TIMER_ONESHOT, TIMER_OFF } timer_mode;
static uint64_t oneshot_at; /* tick the one-shot timer is armed for; 0: not armed (it fired) */

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

static void irq_disable(void)
{
    if (pvm)
        vif->if_ = 0;
    else
        __asm__ volatile("cli" ::: "memory");
}

/* Enables interrupts and waits for one (entry.S: pvm_idle, for PVM's VIF byte). */
static void irq_enable_and_wait(void)
{
    if (pvm)
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

static void idt_init(void)
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

/* After a restore: time goes on from where it is, at this host's TSC rate (0: keep the rate).
 * The TSC may have jumped either way meanwhile (PVM cannot restore it; a host may have
 * rebooted), so it is read afresh from here on. */
static void clock_rebase(uint64_t khz)
{
    ns_base = kernel_ns();
    tsc_base = rdtsc();
    if (khz)
        tsc_khz = khz;
}

/* Random numbers: the host's seed, the CPU's RDRAND when CPUID says it has one, the TSC. */
static void rng_seed(const void *host, size_t n)
{
    uint64_t extra[6] = {rdtsc(), 0, 0, 0, 0, 0};
    uint32_t a = 1, b, c, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    for (int i = 1; i < 6 && (c & (1u << 30)); i++) {
        unsigned char ok = 0;
        __asm__ volatile("rdrand %0; setc %1" : "=r"(extra[i]), "=qm"(ok));
        if (!ok)
            extra[i] = 0;
    }
    krng_mix(host, n);
    krng_mix(extra, sizeof(extra));
    kmemset(extra, 0, sizeof(extra));
}

void kernel_timer(uint64_t until)
{
    if (!tsc_khz) /* without the TSC the timer is the clock: always periodic */
        return;
    if (until == 0) {
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

static void lapic_init(void)
{
    wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) | (1u << 11) | (1u << 10)); /* enable, x2APIC mode */
    wrmsr(MSR_X2APIC_SVR, 0x100 | 0xff);
    wrmsr(MSR_X2APIC_TDCR, 0xb); /* divide by 1 */
    wrmsr(MSR_X2APIC_LVT_TIMER, LEL_VEC_TIMER | (1u << 17)); /* periodic */
    wrmsr(MSR_X2APIC_TMICT, APIC_BUS_HZ * kernel_tick_ns() / 1000000000ULL);
    tsc_base = rdtsc();
    tsc_khz = boot->tsc_khz;
}

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
    if (vector < 32) {
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
    if (frame[1] >= (uint64_t)pvm_idle_window && frame[1] < (uint64_t)pvm_idle_window_end)
        frame[1] = (uint64_t)pvm_idle_window_end; /* woken before the hlt: do not sleep */
    if (vector == LEL_VEC_TIMER) {
        timer_irqs++;
        oneshot_at = 0; /* a one-shot fired: the next idle step arms it again */
        if (!tsc_khz)
            chan->ticks++;
    }
    wrmsr(MSR_X2APIC_EOI, 0);
    return (vector == LEL_VEC_TIMER || vector == LEL_VEC_CHANNEL) && (frame[2] & 3) == 3 && proc_active();
}

/* Words of the work area get a pattern derived from their address and the seed; the checksum
 * mixes every word, so any lost or stale page changes it. */
static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

/* The work area for touch/checksum: pages from the pool, listed in index pages of 512 entries.
 * Touching again replaces it. */
static void **work_index; /* one page of pointers to index pages */
static uint64_t work_pages;

static void work_free(void)
{
    for (uint64_t i = 0; work_index && i < 512; i++) {
        void **ix = work_index[i];
        if (!ix)
            continue;
        for (uint64_t j = 0; j < 512; j++)
            if (ix[j])
                kpage_free(ix[j]);
        kpage_free(ix);
    }
    if (work_index)
        kpage_free(work_index);
    work_index = 0;
    work_pages = 0;
}

static uint64_t *work_page(uint64_t i)
{
    return work_index[i / 512] ? ((void **)work_index[i / 512])[i % 512] : 0;
}

/* Builds the new area completely before the old one goes, so a request that does not fit
 * leaves the previous area (and its checksum) intact. */
static int work_alloc(uint64_t mib)
{
    uint64_t n = (mib << 20) / PAGE_SIZE;
    if (mib == 0 || (mib << 20) > boot->mem_bytes || n > 512 * 512)
        return -1;
    void **old_index = work_index;
    uint64_t old_pages = work_pages;
    work_index = kpage_alloc();
    work_pages = 0;
    for (uint64_t i = 0; work_index && i < n; i++) {
        void **ix = work_index[i / 512];
        if ((!ix && !(ix = work_index[i / 512] = kpage_alloc())) || !(ix[i % 512] = kpage_alloc())) {
            work_free();
            break;
        }
        work_pages++;
    }
    if (!work_index) {
        work_index = old_index;
        work_pages = old_pages;
        return -1;
    }
    void **new_index = work_index;
    uint64_t new_pages = work_pages;
    work_index = old_index;
    work_pages = old_pages;
    work_free();
    work_index = new_index;
    work_pages = new_pages;
    return 0;
}

/* Deliberate misbehaviour, so the host's defences can be tested. */
static void misbehave(uint64_t how)
{
    switch (how) {
    case LEL_BAD_SPIN:
        for (;;)
            __asm__ volatile("" ::: "memory");
    case LEL_BAD_TRIPLE_FAULT: {
        struct __attribute__((packed)) {
            uint16_t limit;
            uint64_t base;
        } none = {0, 0};
        __asm__ volatile("lidt %0; int3" ::"m"(none));
        break;
    }
    case LEL_BAD_CONSOLE_SPAM:
        for (;;)
            console_write("spam spam spam spam spam spam spam spam\n");
    case LEL_BAD_DOORBELL_SPAM:
        for (;;)
            outl(LEL_PORT_DOORBELL, 0x12345678);
    case LEL_BAD_WILD_WRITE:
        for (uint64_t a = boot->mem_bytes; a < boot->mem_bytes + (64ULL << 20); a += 4096)
            *(volatile uint64_t *)(LEL_DMAP_BASE + a) = a;
        break;
    }
    chan->status = LEL_ST_EINVAL;
}

static char *const bulk = (char *)(LEL_DMAP_BASE + LEL_GPA_BULK);

/* Walks `n` NUL-terminated strings starting at *p inside the bulk area; 0 when they fit. */
static int strings(const char **p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t left = (uint64_t)(bulk + LEL_BULK_SIZE - *p), len = kstrnlen(*p, left);
        if (len == left)
            return -1;
        *p += len + 1;
    }
    return 0;
}

static void command(void)
{
    struct lel_cmd_req req;
    kmemcpy(&req, bulk, sizeof(req));
    const char *argv = bulk + sizeof(req), *p = argv, *env, *cwd;
    if (req.argc == 0 || strings(&p, req.argc) < 0 || (env = p, strings(&p, req.envc)) < 0 || (cwd = p, strings(&p, 1)) < 0 ||
        req.stdin_len > (uint64_t)(bulk + LEL_BULK_SIZE - p)) {
        chan->status = LEL_ST_EINVAL;
        return;
    }
    uint32_t hz = boot->tick_hz ? boot->tick_hz : 100;
    struct proc_spec spec = {argv, req.argc, req.envc ? env : 0, req.envc, *cwd ? cwd : 0, (const uint8_t *)p, req.stdin_len,
                             req.timeout_ms ? (req.timeout_ms * hz + 999) / 1000 : 0, 0, (req.flags & LEL_CMD_BACKGROUND) != 0};
    int r = proc_start(&spec);
    if (r < 0)
        chan->status = (uint32_t)-r;
    else
        chan->ret[0] = (uint64_t)r;
}

static void command_result(void)
{
    struct proc_result res;
    int id = proc_collect((int)chan->arg[0], bulk, LEL_BULK_HALF, bulk + LEL_BULK_HALF, LEL_BULK_HALF, &res);
    if (id <= 0) {
        chan->status = id == 0 ? LEL_ST_EAGAIN : LEL_ST_ENOENT;
        return;
    }
    chan->ret[0] = (uint64_t)res.status;
    chan->ret[1] = res.out_len;
    chan->ret[2] = res.err_len;
    chan->ret[3] = (res.out_truncated ? LEL_CMD_STDOUT_TRUNCATED : 0) | (res.err_truncated ? LEL_CMD_STDERR_TRUNCATED : 0) |
                   (res.timed_out ? LEL_CMD_TIMED_OUT : 0) | (uint64_t)id << 32;
}

/* The test ops wait for their program here (other commands keep running) and answer with its
 * merged output in the mailbox's data area. */
static void run_sync(int id)
{
    struct proc_result res;
    if (id < 0) {
        chan->status = (uint32_t)-id;
        chan->ret[0] = (uint64_t)(int64_t)id;
        return;
    }
    while (!proc_done(id))
        if (!proc_step())
            kernel_idle();
    proc_collect(id, (char *)chan + LEL_CHAN_DATA_OFF, LEL_CHAN_DATA_MAX, 0, 0, &res);
    chan->ret[0] = (uint64_t)res.status;
    chan->ret[1] = res.out_len;
}

#include "files.inc"

static void handle(void)
{
    uint64_t *p, n, h = 0;
    (void)n;
    chan->status = LEL_ST_OK;
    /* what a request changes in the file system carries the time of the request, not the
     * time a process last made a syscall */
    fs_set_clock(proc_now_ns() / 1000000000);
    switch (chan->op) {
    case LEL_OP_PING:
        chan->ret[0] = chan->arg[0] + 1;
        break;
    case LEL_OP_TOUCH:
        if (work_alloc(chan->arg[0]) < 0) {
            chan->status = LEL_ST_EINVAL;
            break;
        }
        for (uint64_t pg = 0; pg < work_pages; pg++) {
            p = work_page(pg);
            for (uint64_t w = 0; w < PAGE_SIZE / 8; w++) {
                uint64_t i = pg * (PAGE_SIZE / 8) + w;
                p[w] = (i * 0x100000001b3ULL) ^ chan->arg[1];
                h = mix(h, p[w]);
            }
        }
        chan->ret[0] = h;
        break;
    case LEL_OP_CHECKSUM:
        n = (chan->arg[0] << 20) / PAGE_SIZE;
        if (chan->arg[0] == 0 || n != work_pages) {
            chan->status = LEL_ST_EINVAL;
            break;
        }
        for (uint64_t pg = 0; pg < work_pages; pg++) {
            p = work_page(pg);
            for (uint64_t w = 0; w < PAGE_SIZE / 8; w++)
                h = mix(h, p[w]);
        }
        chan->ret[0] = h;
        break;
    case LEL_OP_EXEC: {
        char *data = (char *)chan + LEL_CHAN_DATA_OFF;
        data[LEL_CHAN_DATA_MAX - 1] = 0; /* the host's strings end inside the area */
        uint32_t hz = boot->tick_hz ? boot->tick_hz : 100;
        uint64_t secs = chan->arg[1] && chan->arg[1] <= 600 ? chan->arg[1] : 15; /* under the host's wait */
        struct proc_spec spec = {.argv = data, .argc = (uint32_t)chan->arg[0], .merge_err = 1,
                                 .timeout_ticks = secs * hz};
        run_sync(proc_start(&spec));
        break;
    }
    case LEL_OP_CMD:
        command();
        break;
    case LEL_OP_CMD_RESULT:
        command_result();
        break;
    case LEL_OP_CMD_KILL:
        if (proc_kill_session((int)chan->arg[0]) < 0)
            chan->status = LEL_ST_ENOENT;
        break;
    case LEL_OP_FILE_WRITE:
        file_write();
        break;
    case LEL_OP_FILE_READ:
        file_read();
        break;
    case LEL_OP_FILE_UPLOAD:
        file_upload();
        break;
    case LEL_OP_FILE_DELETE:
        file_delete();
        break;
    case LEL_OP_SET_CLOCK: {
        clock_rebase(chan->arg[2]);
        boot->epoch_ms = chan->arg[0] - kernel_ns() / 1000000; /* proc_now_ns() = epoch + kernel_ns() */
        rng_seed((const void *)chan->seed, sizeof(chan->seed));
        break;
    }
    case LEL_OP_TICKS:
        chan->ret[0] = kernel_ticks();
        chan->ret[1] = timer_irqs;
        break;
    case LEL_OP_RUN_TEST:
        run_sync(proc_start_test());
        break;
    case LEL_OP_SPIN:
        chan->ret[0] = lel_spin(chan->arg[0]);
        break;
    case LEL_OP_MISBEHAVE:
        misbehave(chan->arg[0]);
        break;
    case LEL_OP_TRIM:
        chan->ret[0] = kpage_trim((uint32_t *)(LEL_DMAP_BASE + LEL_GPA_BULK), LEL_BULK_SIZE / 4);
        chan->dirty_free_pages = kpage_dirty_pages();
        break;
    case LEL_OP_TRIM_DONE:
        kpage_trim_done();
        break;
    default:
        chan->status = LEL_ST_ENOSYS;
    }
}

extern char __bss_start[], __bss_end[];

void kernel_irq_on(void)
{
    /* sysret's RFLAGS.IF does not reach the VIF byte, and a tick that arrived while the kernel
     * had interrupts off stays pending until the port-0x80 doorbell asks for it (PVM.md §2.3):
     * without both, a user program that never traps would never see the timer again */
    if (pvm) {
        vif->if_ = 1;
        __asm__ volatile("" ::: "memory");
        if (vif->pending)
            outb(LEL_PORT_PVM_IRQ, 0);
    }
}

void kernel_sysret_prep(void)
{
    if (!pvm)
        irq_disable();
}

void kernel_irq_off(void)
{
    irq_disable();
}

void kernel_idle(void)
{
    chan->mem_used_pages = boot->mem_bytes / PAGE_SIZE - kpage_free_pages();
    chan->disk_used_pages = fs_data_pages();
    chan->dirty_free_pages = kpage_dirty_pages();
    irq_enable_and_wait();
    irq_disable();
}

void kernel_event(void)
{
    chan->events++;
    outl(LEL_PORT_DOORBELL, LEL_BELL_EVENT);
}


void kpool_init(uint64_t start_gpa, uint64_t end_gpa);

static void rootfs_init(void)
{
    uint64_t end = boot->initrd_size ? boot->initrd_gpa : boot->mem_bytes;
    kpool_init(LEL_GPA_POOL, end & ~(PAGE_SIZE - 1));
    if (fs_init((int64_t)(boot->epoch_ms / 1000)) < 0) {
        console_write("guest: no memory for the root filesystem\n");
        return;
    }
    if (!boot->initrd_size)
        return;
    int r = fs_unpack_cpio((const uint8_t *)(LEL_DMAP_BASE + boot->initrd_gpa), boot->initrd_size);
    console_write(r == 0 ? "lelantos guest: root filesystem unpacked\n" : "guest: root filesystem archive is malformed\n");
    /* the archive's pages join the pool: the files are copies now */
    for (uint64_t a = boot->initrd_gpa; r == 0 && a + PAGE_SIZE <= boot->initrd_gpa + boot->initrd_size; a += PAGE_SIZE)
        kpage_free((void *)(LEL_DMAP_BASE + a));
}

void kmain(void)
{
    for (char *b = __bss_start; b < __bss_end; b++)
        *b = 0;
    pvm = boot->magic == LEL_BOOT_MAGIC && (boot->flags & LEL_BOOT_PVM);
    console_write(pvm ? "lelantos guest: booting (PVM)\n" : "lelantos guest: booting (KVM)\n");
    irq_disable();
    idt_init();
    lapic_init();
    if (tsc_khz) {
        console_write("lelantos guest: clock from the TSC at ");
        char digits[21];
        console_write(kutoa(digits, tsc_khz));
        console_write(" kHz\n");
    } else {
        console_write("lelantos guest: clock from timer ticks (TSC rate unknown)\n");
    }
    rng_seed(boot->seed, sizeof(boot->seed));
    rootfs_init();
    proc_init();
    console_write("lelantos guest: user registers saved with ");
    console_write(fpu_size() > 512 ? "XSAVE, features " : "FXSAVE, features ");
    console_hex(fpu_features());
    console_write("\nlelantos guest: ready\n");
    outl(LEL_PORT_DOORBELL, LEL_BELL_READY);
    uint32_t done = chan->resp_seq;
    for (;;) {
        irq_disable();
        uint32_t req = chan->req_seq;
        if (req != done) {
            handle();
            done = req;
            __asm__ volatile("" ::: "memory");
            chan->resp_seq = req;
            outl(LEL_PORT_DOORBELL, LEL_BELL_RESPONSE);
            continue;
        }
        if (proc_step()) /* processes run between requests; a request preempts them */
            continue;
        kernel_idle();
    }
}
