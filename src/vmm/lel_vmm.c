/* VM creation, the vCPU thread and its exits, the console and doorbell devices, the host
 * channel, and stopping at a clean point. Boot follows PVM.md §3.1 (long mode set up by the
 * VMM, U/S=1 at every page-table level, the VIF page registered under PVM); the same state is
 * valid on hardware KVM, where the guest uses plain sti/cli. */
#include "lel_vmm_int.h"

#include "../common/lel_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

extern const unsigned char lel_guest_image[];
extern const size_t lel_guest_image_size;
extern const unsigned char lel_rootfs_image[], lel_rootfs_image_end[];

#define CONSOLE_LINES_PER_S 200 /* more than this per second are dropped and counted */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int kvm_fd = -1, kvm_errno;
static enum lel_vmm_backend backend;
/* KVM_GET_SUPPORTED_CPUID, asked once: the answer never changes, and asking costs ~0.4 ms,
 * which every VM start paid */
static struct kvm_cpuid2 *supported_cpuid;
static size_t supported_cpuid_len;

static struct kvm_cpuid_entry2 *cpuid_entry(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return &c->entries[i];
    return NULL;
}

/* The leaf-2 descriptor (Intel SDM, CPUID leaf 2; all with 64-byte lines) of the largest cache
 * of `level` (1: data, 0: L1 instructions) no larger than `bytes`, or the smallest one. */
static uint8_t cache_descriptor(int level, uint64_t bytes)
{
    static const struct {
        uint8_t level, desc;
        uint32_t kib;
    } d[] = {{1, 0x0d, 16},   {1, 0x0e, 24},   {1, 0x2c, 32},    {0, 0x30, 32},    {2, 0x7a, 256},
             {2, 0x7b, 512},  {2, 0x7c, 1024}, {2, 0x7d, 2048},  {2, 0x48, 3072},  {2, 0x4e, 6144},
             {3, 0xd0, 512},  {3, 0xd1, 1024}, {3, 0xd2, 2048},  {3, 0xe3, 4096},  {3, 0xe4, 8192},
             {3, 0xea, 12288}, {3, 0xeb, 18432}, {3, 0xec, 24576}};
    uint8_t best = 0, smallest = 0;
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        if (d[i].level != level)
            continue;
        if (!smallest)
            smallest = d[i].desc;
        if ((uint64_t)d[i].kib << 10 <= bytes)
            best = d[i].desc;
    }
    return best ? best : smallest;
}

/* What the guest's user programs ask at every start. glibc's cache probe (its handle_intel,
 * run a dozen times per program start) walks leaf 4's subleaves anew for every question when
 * leaf 2 says 0xff ("see leaf 4"), and each cpuid is a trap into the hypervisor: ~60 traps per
 * `sh -c true`, most of its start. Leaf 2 then lists descriptors for the caches leaf 4 reports
 * (the nearest sizes the legacy table has), so the probe takes one cpuid per question; leaf 4
 * stays as it was for whoever reads it. HTT is cleared: the VM has one logical processor (glibc
 * then skips its leaf-4/leaf-11 walk for the threads sharing a cache). */
static void tune_guest_cpuid(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *l2 = cpuid_entry(c, 2, 0), *l1 = cpuid_entry(c, 1, 0);
    if (l1)
        l1->edx &= ~(1u << 28);
    int see_leaf4 = 0;
    uint32_t regs[4] = {l2 ? l2->eax : 0, l2 ? l2->ebx : 0, l2 ? l2->ecx : 0, l2 ? l2->edx : 0};
    for (int b = 1; b < 16; b++) /* byte 0 of eax is the round count */
        see_leaf4 |= (regs[b / 4] >> (8 * (b % 4)) & 0xff) == 0xff;
    if (!see_leaf4)
        return; /* descriptors already (or no leaf 2): as it is */
    uint8_t desc[4] = {cache_descriptor(1, 32 << 10), cache_descriptor(0, 32 << 10), cache_descriptor(2, 2 << 20),
                       cache_descriptor(3, 8 << 20)};
    for (uint32_t sub = 0; sub < 8; sub++) {
        struct kvm_cpuid_entry2 *e = cpuid_entry(c, 4, sub);
        if (!e || (e->eax & 0x1f) == 0)
            break;
        int type = e->eax & 0x1f, level = (e->eax >> 5) & 7;
        uint64_t bytes = (uint64_t)((e->ebx >> 22) + 1) * (((e->ebx >> 12) & 0x3ff) + 1) * ((e->ebx & 0xfff) + 1) *
                         ((uint64_t)e->ecx + 1);
        if (level == 1 && type != 3)
            desc[type == 1 ? 0 : 1] = cache_descriptor(type == 1 ? 1 : 0, bytes);
        else if (level == 2 || level == 3)
            desc[level] = cache_descriptor(level, bytes);
    }
    l2->eax = 0x01u | (uint32_t)desc[0] << 8 | (uint32_t)desc[2] << 16 | (uint32_t)desc[3] << 24;
    l2->ebx = desc[1];
    l2->ecx = l2->edx = 0;
}

static void cache_cpuid(void)
{
    for (int n = 128; n <= 4096; n *= 2) {
        size_t len = sizeof(struct kvm_cpuid2) + (size_t)n * sizeof(struct kvm_cpuid_entry2);
        struct kvm_cpuid2 *c = calloc(1, len);
        if (!c)
            return;
        c->nent = (uint32_t)n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            tune_guest_cpuid(c);
            supported_cpuid = c;
            supported_cpuid_len = sizeof(struct kvm_cpuid2) + c->nent * sizeof(struct kvm_cpuid_entry2);
            return;
        }
        free(c);
        if (errno != E2BIG)
            return;
    }
}

static void on_kick(int sig)
{
    (void)sig; /* only interrupts KVM_RUN */
}

/* Process-wide: one /dev/kvm descriptor (read-only after this) and the vCPU kick signal. */
static void init_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_kick; /* no SA_RESTART: KVM_RUN must return EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    lel__jail_init();
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) {
        kvm_errno = errno;
        return;
    }
    if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        kvm_errno = ENOTSUP;
        close(kvm_fd);
        kvm_fd = -1;
        return;
    }
    backend = access("/sys/module/kvm_pvm", F_OK) == 0 ? LEL_VMM_PVM : LEL_VMM_KVM;
    cache_cpuid();
}

int lel__kvm_fd(void)
{
    pthread_once(&once, init_once);
    return kvm_fd;
}

enum lel_vmm_backend lel_vmm_probe(char *why, size_t whylen)
{
    if (lel__kvm_fd() < 0) {
        snprintf(why, whylen, "/dev/kvm is not usable: %s", strerror(kvm_errno));
        return LEL_VMM_NONE;
    }
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
        ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
        snprintf(why, whylen, "/dev/kvm lacks the in-kernel irqchip or immediate exit");
        return LEL_VMM_NONE;
    }
    return backend;
}

const char *lel_vmm_backend_name(enum lel_vmm_backend b)
{
    return b == LEL_VMM_PVM ? "pvm" : b == LEL_VMM_KVM ? "kvm" : "none";
}

struct kvm_cpuid2 *lel__supported_cpuid(void)
{
    pthread_once(&once, init_once);
    struct kvm_cpuid2 *c = supported_cpuid ? malloc(supported_cpuid_len) : NULL;
    if (c)
        memcpy(c, supported_cpuid, supported_cpuid_len);
    return c;
}

uint32_t *lel__msr_list(size_t *n)
{
    struct kvm_msr_list probe = {0};
    ioctl(lel__kvm_fd(), KVM_GET_MSR_INDEX_LIST, &probe); /* E2BIG, fills nmsrs */
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + (probe.nmsrs + 1) * sizeof(uint32_t));
    if (!l)
        return NULL;
    l->nmsrs = probe.nmsrs;
    if (ioctl(lel__kvm_fd(), KVM_GET_MSR_INDEX_LIST, l) < 0) {
        free(l);
        return NULL;
    }
    uint32_t *out = malloc((l->nmsrs + 1) * sizeof(uint32_t));
    if (out) {
        memcpy(out, l->indices, l->nmsrs * sizeof(uint32_t));
        out[l->nmsrs] = LEL_MSR_PVM_VIF; /* not in KVM's list, but it is state (PVM.md §4.2) */
        *n = l->nmsrs + (backend == LEL_VMM_PVM);
    }
    free(l);
    return out;
}

/* ---- creation ---- */

static int set_memory(lel_vm_t *vm)
{
    uint64_t low = vm->mem_bytes < LEL_LOW_MEM_MAX ? vm->mem_bytes : LEL_LOW_MEM_MAX;
    struct kvm_userspace_memory_region r = {0, 0, 0, low, (uint64_t)(uintptr_t)vm->mem};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        return -errno;
    if (vm->mem_bytes > low) {
        r = (struct kvm_userspace_memory_region){1, 0, 1ULL << 32, vm->mem_bytes - low, (uint64_t)(uintptr_t)(vm->mem + low)};
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return -errno;
    }
    return 0;
}

/* VM, memory, irqchip and the vCPU, with CPUID set; no register state yet. */
int lel__vm_new(const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen)
{
    if (lel__kvm_fd() < 0) {
        snprintf(err, errlen, "/dev/kvm is not usable: %s", strerror(kvm_errno));
        return -ENODEV;
    }
    if (cfg->mem_bytes < (32ULL << 20) || cfg->mem_bytes % (2ULL << 20) || cfg->mem_bytes > ((uint64_t)LEL_MAX_PD << 30) - (1ULL << 30)) {
        snprintf(err, errlen, "guest memory must be a multiple of 2 MiB between 32 MiB and %d GiB", LEL_MAX_PD - 1);
        return -EINVAL;
    }
    lel_vm_t *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return -ENOMEM;
    vm->vm_fd = vm->vcpu_fd = -1;
    vm->net_efd = vm->bell_efd = -1;
    vm->mem = MAP_FAILED;
    vm->mem_bytes = cfg->mem_bytes;
    vm->tick_hz = cfg->tick_hz ? cfg->tick_hz : 100;
    vm->backend = backend;
    if (cfg->ops)
        vm->ops = *cfg->ops;
    vm->ctx = cfg->ctx;
    vm->jailed = !cfg->unjailed;
    vm->test_violation = cfg->test_violation;
    vm->stats = cfg->stats;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    const char *step = "KVM_CREATE_VM";
    int r;
    if ((vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0)) < 0)
        goto fail;
    ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL); /* VMX without unrestricted guest needs it; others ignore */
    step = "mmap guest memory";
    if (cfg->memory_file) {
        /* copy-on-write over a shared raw memory file: the VM pays only for the pages it changes */
        struct stat st;
        int mfd = open(cfg->memory_file, O_RDONLY | O_CLOEXEC);
        if (mfd < 0 || fstat(mfd, &st) < 0 || ((uint64_t)st.st_size != vm->mem_bytes && (uint64_t)st.st_size != vm->mem_bytes + 4096)) {
            if (mfd >= 0)
                close(mfd);
            errno = mfd < 0 ? errno : EINVAL;
            step = "memory file (missing, or not the image's size)"; /* + a 4 KiB trailer naming the image */
            goto fail;
        }
        vm->mem = mmap(NULL, vm->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, mfd, 0);
        close(mfd);
    } else {
        vm->mem = mmap(NULL, vm->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        vm->mem_anon = 1;
    }
    if (vm->mem == MAP_FAILED)
        goto fail;
    step = "KVM_SET_USER_MEMORY_REGION";
    if ((r = set_memory(vm)) < 0) {
        errno = -r;
        goto fail;
    }
    /* the net doorbell's ioeventfd before the irqchip too: registering an I/O device waits for
     * the same grace period (0.5-4 ms measured when it came at the net attach, on the create's
     * path even for a pooled VM) */
    if ((vm->bell_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0) {
        struct kvm_ioeventfd io = {.addr = LEL_PORT_NETBELL, .len = 4, .fd = vm->bell_efd, .flags = KVM_IOEVENTFD_FLAG_PIO};
        vm->bell_ioeventfd = ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) == 0;
    }
    /* the irqchip after the memory: creating it starts an SRCU grace period (~7 ms here) that a
     * memory slot set after it waits out, which made the slot the largest part of a start; the
     * VM's destroy waits it out instead (off the request path, and long over by then) */
    step = "KVM_CREATE_IRQCHIP";
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        goto fail;
    step = "KVM_CREATE_VCPU";
    if ((vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0)) < 0)
        goto fail;
    vm->run_size = (size_t)ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    step = "mmap kvm_run";
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        goto fail;
    }
    /* CPUID must be set before any LAPIC state (PVM.md §4.3) */
    struct kvm_cpuid2 *cpuid = lel__supported_cpuid();
    step = "KVM_SET_CPUID2";
    if (!cpuid || ioctl(vm->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) {
        free(cpuid);
        goto fail;
    }
    free(cpuid);
    int khz = ioctl(vm->vcpu_fd, KVM_GET_TSC_KHZ, 0);
    vm->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
    *out = vm;
    return 0;
fail:
    r = errno ? -errno : -EIO;
    snprintf(err, errlen, "%s: %s", step, strerror(-r));
    lel_vm_destroy(vm);
    return r;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
    memset(s, 0, sizeof(*s));
    s->selector = sel;
    s->limit = 0xffffffff;
    s->type = type;
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

/* Identity map of all guest RAM with 2 MiB pages; U/S=1 at every level (required by PVM), and
 * accessed and dirty set: the shadow MMU then never writes them back (the guest's PTE_A, PTE_D). */
static void build_page_tables(lel_vm_t *vm)
{
    uint64_t *pml4 = (uint64_t *)(vm->mem + LEL_GPA_PML4), *pdpt = (uint64_t *)(vm->mem + LEL_GPA_PDPT);
    uint64_t top = vm->mem_bytes > LEL_LOW_MEM_MAX ? (1ULL << 32) + vm->mem_bytes - LEL_LOW_MEM_MAX : vm->mem_bytes;
    uint64_t ngb = (top + (1ULL << 30) - 1) >> 30;
    uint64_t *pdpt_high = (uint64_t *)(vm->mem + LEL_GPA_PDPT_HIGH);
    pml4[0] = LEL_GPA_PDPT | 0x27;                        /* identity, for the first instructions */
    pml4[LEL_PML4_DMAP_SLOT] = LEL_GPA_PDPT | 0x27;       /* the same GiB entries: the direct map */
    pml4[LEL_PML4_KERNEL_SLOT] = LEL_GPA_PDPT_HIGH | 0x27; /* -2 GiB: the first GiB again, for the kernel image */
    pdpt_high[510] = LEL_GPA_PD | 0x27;
    for (uint64_t g = 0; g < ngb; g++) {
        uint64_t *pd = (uint64_t *)(vm->mem + LEL_GPA_PD + g * 4096);
        pdpt[g] = (LEL_GPA_PD + g * 4096) | 0x27;
        for (int i = 0; i < 512; i++)
            pd[i] = ((g << 30) + ((uint64_t)i << 21)) | 0xe7;
    }
}

static void build_gdt(lel_vm_t *vm)
{
    uint64_t *gdt = (uint64_t *)(vm->mem + LEL_GPA_GDT);
    gdt[2] = 0x00af9b000000ffffULL; /* 0x10 kernel code, L=1 */
    gdt[3] = 0x00cf93000000ffffULL; /* 0x18 kernel data */
    gdt[4] = 0x00cffb000000ffffULL; /* 0x23 user code 32 */
    gdt[5] = 0x00cff3000000ffffULL; /* 0x2b user data */
    gdt[6] = 0x00affb000000ffffULL; /* 0x33 user code 64 */
    uint64_t tss = LEL_KERNEL_BASE + LEL_GPA_TSS, limit = 103;
    gdt[8] = (limit & 0xffff) | ((tss & 0xffffff) << 16) | (0x89ULL << 40) | (((tss >> 24) & 0xff) << 56);
    gdt[9] = tss >> 32;
    uint8_t *t = vm->mem + LEL_GPA_TSS;
    uint64_t rsp0 = LEL_KERNEL_BASE + LEL_GPA_STACK_TOP;
    uint16_t iomap = 104;                     /* no I/O bitmap */
    memcpy(t + 4, &rsp0, sizeof(rsp0));       /* the TSS puts it at offset 4: unaligned */
    memcpy(t + 102, &iomap, sizeof(iomap));
}

static int set_boot_state(lel_vm_t *vm, char *err, size_t errlen)
{
    struct kvm_sregs s;
    const char *step = "KVM_GET_SREGS";
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
        goto fail;
    seg(&s.cs, LEL_SEL_KCODE, 0xb, 1);
    seg(&s.ds, LEL_SEL_KDATA, 0x3, 0);
    s.es = s.fs = s.gs = s.ss = s.ds;
    memset(&s.tr, 0, sizeof(s.tr));
    s.tr.base = LEL_KERNEL_BASE + LEL_GPA_TSS; /* linear addresses: valid in every process's page table */
    s.tr.limit = 103;
    s.tr.selector = LEL_SEL_TSS;
    s.tr.type = 0xb;
    s.tr.present = 1;
    s.gdt.base = LEL_KERNEL_BASE + LEL_GPA_GDT;
    s.gdt.limit = 10 * 8 - 1;
    s.idt.base = LEL_KERNEL_BASE + LEL_GPA_IDT;
    s.idt.limit = 0;
    s.cr0 = 0x80050033;
    s.cr3 = LEL_GPA_PML4;
    s.cr4 = 0x6a0;
    s.efer = 0xd01;
    step = "KVM_SET_SREGS";
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0)
        goto fail;
    struct kvm_regs regs = {.rip = LEL_KERNEL_BASE + LEL_GPA_KERNEL, .rsp = LEL_KERNEL_BASE + LEL_GPA_STACK_TOP, .rflags = 2};
    step = "KVM_SET_REGS";
    if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
        goto fail;
    if (vm->backend == LEL_VMM_PVM) {
        /* kernel mode runs natively only with the VIF page registered; bit 10 = host write */
        struct {
            struct kvm_msrs h;
            struct kvm_msr_entry e;
        } m = {{.nmsrs = 1}, {.index = LEL_MSR_PVM_VIF, .data = LEL_GPA_VIF | 0x400}};
        step = "KVM_SET_MSRS(VIF)";
        if (ioctl(vm->vcpu_fd, KVM_SET_MSRS, &m) != 1)
            goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", step, strerror(errno ? errno : EIO));
    return -EIO;
}

/* ---- the vCPU thread ---- */

/* The VM is dead: the died callback runs once, before any waiter (a call, wait_ready) is told,
 * so whoever sees -EPIPE also sees what the callback recorded. */
static void die(lel_vm_t *vm, const char *why)
{
    pthread_mutex_lock(&vm->lock);
    int first = vm->state != VM_DEAD && !vm->dying;
    if (first) {
        vm->dying = 1;
        snprintf(vm->why, sizeof(vm->why), "%s", why);
    }
    void (*died)(void *, const char *) = vm->ops.died, *ctx = vm->ctx; /* as lel_vm_set_ops left them */
    pthread_mutex_unlock(&vm->lock);
    if (!first)
        return;
    if (died)
        died(ctx, why);
    pthread_mutex_lock(&vm->lock);
    vm->state = VM_DEAD;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

static void flush_line(lel_vm_t *vm)
{
    int64_t now = lel_mono_ms();
    pthread_mutex_lock(&vm->lock); /* lel_vm_set_ops may change them */
    void (*line)(void *, const char *, size_t) = vm->ops.console_line, *ctx = vm->ctx;
    pthread_mutex_unlock(&vm->lock);
    if (now - vm->line_window_ms >= 1000) {
        if (vm->lines_dropped && line) {
            char msg[64];
            int n = snprintf(msg, sizeof(msg), "[%u console lines dropped]", vm->lines_dropped);
            line(ctx, msg, (size_t)n);
        }
        vm->line_window_ms = now;
        vm->lines_in_window = vm->lines_dropped = 0;
    }
    if (++vm->lines_in_window > CONSOLE_LINES_PER_S)
        vm->lines_dropped++;
    else if (line)
        line(ctx, vm->line, vm->linelen);
    vm->linelen = 0;
}

static void console_byte(lel_vm_t *vm, uint8_t c)
{
    if (c == '\n') {
        flush_line(vm);
        return;
    }
    if (c == '\r')
        return;
    vm->line[vm->linelen++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
    if (vm->linelen == sizeof(vm->line))
        flush_line(vm);
}

static void doorbell(lel_vm_t *vm, uint32_t v)
{
    if (v == LEL_BELL_FATAL) {
        const struct lel_chan *ch = (const struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
        char why[160];
        snprintf(why, sizeof(why), "guest fatal exception %u at rip 0x%llx (error 0x%llx, address 0x%llx, rsp 0x%llx, cr3 0x%llx)",
                 ch->fatal_vector & 0xff, (unsigned long long)ch->fatal_rip, (unsigned long long)ch->fatal_err,
                 (unsigned long long)ch->fatal_addr, (unsigned long long)ch->fatal_rsp, (unsigned long long)ch->fatal_cr3);
        die(vm, why);
        return;
    }
    pthread_mutex_lock(&vm->lock);
    if (v == LEL_BELL_READY)
        vm->ready = 1;
    else if (v == LEL_BELL_RESPONSE)
        vm->responses++;
    else if (v == LEL_BELL_EVENT)
        vm->events++;
    void (*event)(void *) = vm->ops.event, *ctx = vm->ctx;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (v == LEL_BELL_EVENT && event)
        event(ctx);
    if (v == LEL_BELL_EVENT && vm->test_violation)
        lel__jail_test_violation();
}

static void net_bell(lel_vm_t *vm)
{
    int fd = __atomic_load_n(&vm->net_efd, __ATOMIC_ACQUIRE);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* full counter: the reader has it pending already */
    }
}

/* Port I/O. Sizes and offsets come from the kernel, but are checked all the same. */
static int handle_io(lel_vm_t *vm)
{
    struct kvm_run *run = vm->run;
    uint64_t bytes = (uint64_t)run->io.size * run->io.count;
    if (run->io.size == 0 || run->io.size > 4 || run->io.data_offset >= vm->run_size ||
        bytes > vm->run_size - run->io.data_offset)
        return -EINVAL;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    uint16_t port = run->io.port;
    if (run->io.direction == KVM_EXIT_IO_OUT) {
        if (port == LEL_PORT_CONSOLE)
            for (uint64_t i = 0; i < bytes; i += run->io.size)
                console_byte(vm, data[i]);
        else if (port == LEL_PORT_DOORBELL && run->io.size == 4)
            doorbell(vm, *(uint32_t *)data);
        else if (port == LEL_PORT_NETBELL) /* only without an ioeventfd (lel_vsock.c) */
            net_bell(vm);
        /* LEL_PORT_PVM_IRQ and everything else: the exit itself was the point, or ignored */
        return 0;
    }
    /* reads: the UART says "transmitter empty", anything else reads as all ones */
    uint8_t v = port == LEL_PORT_CONSOLE + 5 ? 0x60 : port >= LEL_PORT_CONSOLE && port < LEL_PORT_CONSOLE + 8 ? 0 : 0xff;
    memset(data, v, bytes);
    return 0;
}

/* A call the filter trapped ends the VM (the thread stays, stopped, until it is joined). */
static void jail_check(lel_vm_t *vm)
{
    int nr = __atomic_load_n(&vm->jail_syscall, __ATOMIC_ACQUIRE);
    char why[160];
    if (nr) {
        lel__jail_reason(nr - 1, why, sizeof(why));
        die(vm, why);
    }
    pthread_mutex_lock(&vm->lock);
    int fail = vm->fail_req && !vm->dying && vm->state != VM_DEAD;
    if (fail)
        memcpy(why, vm->fail_why, sizeof(why));
    pthread_mutex_unlock(&vm->lock);
    if (fail)
        die(vm, why);
}

void lel_vm_fail(lel_vm_t *vm, const char *why)
{
    pthread_mutex_lock(&vm->lock);
    if (!vm->fail_req && !vm->exit_req && vm->thread_started) {
        vm->fail_req = 1;
        snprintf(vm->fail_why, sizeof(vm->fail_why), "%s", why);
        if (vm->run)
            vm->run->immediate_exit = 1; /* a vCPU between its unlock and KVM_RUN leaves at once */
        if (vm->state == VM_RUNNING)
            pthread_kill(vm->thread, SIGUSR1);
    }
    pthread_mutex_unlock(&vm->lock);
}

static int exit_kind(uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_IO: return LEL_VMX_IO;
    case KVM_EXIT_MMIO: return LEL_VMX_MMIO;
    case KVM_EXIT_INTR: return LEL_VMX_INTR;
    case KVM_EXIT_HLT: return LEL_VMX_HLT;
    case KVM_EXIT_SHUTDOWN: return LEL_VMX_SHUTDOWN;
    case KVM_EXIT_INTERNAL_ERROR: return LEL_VMX_INTERNAL_ERROR;
    case KVM_EXIT_FAIL_ENTRY: return LEL_VMX_FAIL_ENTRY;
    default: return LEL_VMX_OTHER;
    }
}

static void count_exit(lel_vm_t *vm, int kind)
{
    if (vm->stats)
        atomic_fetch_add_explicit(&vm->stats->n[kind], 1, memory_order_relaxed);
}

const char *lel_vm_exit_name(int kind)
{
    static const char *const names[LEL_VMX_COUNT] = {"io", "mmio", "intr", "hlt", "shutdown", "internal_error",
                                                     "fail_entry", "other", "run_error"};
    return kind >= 0 && kind < LEL_VMX_COUNT ? names[kind] : "other";
}

static void *vcpu_main(void *arg)
{
    lel_thread_name("lel-vcpu");
    lel_vm_t *vm = arg;
    char err[160];
    lel_thread_background(); /* before the jail: setpriority is not on its list */
    if (vm->jailed && lel__jail_enter(vm, err, sizeof(err)) < 0)
        die(vm, err); /* never run a guest unjailed by accident */
    for (;;) {
        jail_check(vm);
        pthread_mutex_lock(&vm->lock);
        if (vm->stop_req && vm->state == VM_RUNNING) {
            /* one more run with immediate_exit completes a pending I/O instruction, so the
             * saved RIP is past it and its data is in the registers (PVM.md §4.3) */
            vm->run->immediate_exit = 1;
            pthread_mutex_unlock(&vm->lock);
            ioctl(vm->vcpu_fd, KVM_RUN, 0);
            pthread_mutex_lock(&vm->lock);
            vm->state = VM_STOPPED;
            pthread_cond_broadcast(&vm->cond);
        }
        while ((vm->stop_req || vm->state == VM_DEAD) && !vm->exit_req)
            pthread_cond_wait(&vm->cond, &vm->lock);
        if (vm->exit_req) {
            pthread_mutex_unlock(&vm->lock);
            lel__vm_stats_leave(vm);
            return NULL;
        }
        vm->state = VM_RUNNING;
        vm->run->immediate_exit = vm->fail_req; /* lel_vm_fail: out at once, to jail_check */
        pthread_mutex_unlock(&vm->lock);

        if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
            count_exit(vm, errno == EINTR || errno == EAGAIN ? LEL_VMX_INTR : LEL_VMX_RUN_ERROR);
            if (errno == EINTR || errno == EAGAIN)
                continue;
            char why[96];
            snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(errno));
            die(vm, why);
            continue;
        }
        char why[96];
        count_exit(vm, exit_kind(vm->run->exit_reason));
        switch (vm->run->exit_reason) {
        case KVM_EXIT_IO:
            if (handle_io(vm) < 0)
                die(vm, "malformed I/O exit");
            break;
        case KVM_EXIT_MMIO:
            if (!vm->run->mmio.is_write)
                memset(vm->run->mmio.data, 0xff, sizeof(vm->run->mmio.data));
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_SHUTDOWN:
            die(vm, "guest triple fault (shutdown)");
            break;
        case KVM_EXIT_HLT:
            die(vm, "guest halted with interrupts off");
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            snprintf(why, sizeof(why), "KVM internal error, suberror %u", vm->run->internal.suberror);
            die(vm, why);
            break;
        case KVM_EXIT_FAIL_ENTRY:
            snprintf(why, sizeof(why), "VM entry failed, reason 0x%llx",
                     (unsigned long long)vm->run->fail_entry.hardware_entry_failure_reason);
            die(vm, why);
            break;
        default:
            snprintf(why, sizeof(why), "unexpected exit %u", vm->run->exit_reason);
            die(vm, why);
        }
    }
}

int lel__vm_start(lel_vm_t *vm, char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGUSR1); /* the vCPU thread takes the kick signal and nothing else, */
    sigdelset(&all, SIGSYS);  /* but for its jail's (a blocked SIGSYS would kill the process) */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = lel__vm_stats_start(vm, vcpu_main);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the vCPU thread: %s", strerror(r));
        return -r;
    }
    vm->thread_started = 1;
    return 0;
}

int lel_vm_boot(const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen)
{
    lel_vm_t *vm;
    int r = lel__vm_new(cfg, &vm, err, errlen);
    if (r < 0)
        return r;
    if (lel_guest_image_size > LEL_KERNEL_MAX) {
        snprintf(err, errlen, "guest kernel too large");
        lel_vm_destroy(vm);
        return -E2BIG;
    }
    memcpy(vm->mem + LEL_GPA_KERNEL, lel_guest_image, lel_guest_image_size);
    build_page_tables(vm);
    build_gdt(vm);
    struct lel_boot_info *bi = (struct lel_boot_info *)(vm->mem + LEL_GPA_BOOT);
    bi->magic = LEL_BOOT_MAGIC;
    bi->flags = vm->backend == LEL_VMM_PVM ? LEL_BOOT_PVM : 0;
    bi->tick_hz = vm->tick_hz;
    bi->mem_bytes = vm->mem_bytes < LEL_LOW_MEM_MAX ? vm->mem_bytes : LEL_LOW_MEM_MAX;
    bi->epoch_ms = (uint64_t)lel_now_ms();
    bi->tsc_khz = vm->tsc_khz;
    if ((r = lel_random_bytes(bi->seed, sizeof(bi->seed))) < 0) {
        snprintf(err, errlen, "no random numbers for the guest: %s", strerror(-r));
        lel_vm_destroy(vm);
        return r;
    }
    bi->disk_bytes = cfg->disk_bytes;
    if (cfg->rofs_path) { /* the image is the root: the guest lays memory over it */
        if ((r = lel__rofs_map(vm, cfg->rofs_path, NULL, err, errlen)) < 0) {
            lel_vm_destroy(vm);
            return r;
        }
        bi->rofs_gpa = LEL_GPA_ROFS;
        bi->rofs_bytes = vm->rofs_bytes;
    }
    /* else the root filesystem goes at the top of low RAM; the guest unpacks it and reuses the pages */
    uint64_t rootfs_size = cfg->rofs_path ? 0 : (uint64_t)(lel_rootfs_image_end - lel_rootfs_image);
    if (rootfs_size + (32ULL << 20) > bi->mem_bytes) {
        snprintf(err, errlen, "guest memory too small for the root filesystem");
        lel_vm_destroy(vm);
        return -EINVAL;
    }
    bi->initrd_gpa = (bi->mem_bytes - rootfs_size) & ~4095ULL;
    bi->initrd_size = rootfs_size;
    memcpy(vm->mem + bi->initrd_gpa, lel_rootfs_image, rootfs_size);
    if ((r = set_boot_state(vm, err, errlen)) < 0 || (r = lel__vm_start(vm, err, errlen)) < 0) {
        lel_vm_destroy(vm);
        return r;
    }
    *out = vm;
    return 0;
}

#define KICK_MS 20 /* see lel_vm_call */

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

uint64_t lel_vmm_guest_fingerprint(void)
{
    return XXH3_64bits(lel_guest_image, lel_guest_image_size) ^
           XXH3_64bits(lel_rootfs_image, (size_t)(lel_rootfs_image_end - lel_rootfs_image)) * 31;
}

const char *lel_vm_why(lel_vm_t *vm)
{
    pthread_mutex_lock(&vm->lock);
    const char *w = vm->state == VM_DEAD ? vm->why : "";
    pthread_mutex_unlock(&vm->lock);
    return w;
}

int lel_vm_wait_ready(lel_vm_t *vm, int timeout_ms)
{
    struct timespec ts;
    int r = 0;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&vm->lock);
    while (!vm->ready && vm->state != VM_DEAD && r == 0)
        r = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
    int ret = vm->ready ? 0 : vm->state == VM_DEAD ? -EPIPE : -ETIMEDOUT;
    pthread_mutex_unlock(&vm->lock);
    return ret;
}

/* Waits, with vm->lock held, until the guest has answered request `seq` or `end` passes or the
 * VM dies: 0 answered, -ETIMEDOUT, -EPIPE. The channel's interrupt goes again every KICK_MS
 * while unanswered: under nested virtualization (KVM in a VM, as on cloud hosts) a guest was
 * seen to sleep through the first one about once in a hundred commands (raised while the guest
 * had interrupts off, due at its `sti; hlt`); an idle guest has no timer tick to wake it, so it
 * slept until the call gave up. A spare interrupt costs an answered guest nothing. */
static int chan_wait_locked(lel_vm_t *vm, uint32_t seq, int64_t end)
{
    const struct lel_chan *ch = (const struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    struct kvm_msi msi = {.address_lo = 0xfee00000, .data = LEL_VEC_CHANNEL};
    struct timespec ts;
    while (__atomic_load_n(&ch->resp_seq, __ATOMIC_ACQUIRE) != seq && vm->state != VM_DEAD) {
        int64_t left = end - lel_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        deadline_in(&ts, left > KICK_MS ? KICK_MS : (int)left);
        if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT && lel_mono_ms() < end)
            ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
    }
    return __atomic_load_n(&ch->resp_seq, __ATOMIC_ACQUIRE) == seq ? 0 : -EPIPE;
}

/* Whether the channel is free for a new request: the guest has answered the last one. One that
 * timed out may still be in the guest's hands (a stalled guest gets to it late); writing the
 * next request's words or data over it then would have the guest run a mix of the two. */
static int chan_free(lel_vm_t *vm, int timeout_ms)
{
    pthread_mutex_lock(&vm->lock);
    int r = vm->state == VM_DEAD ? -EPIPE : chan_wait_locked(vm, vm->seq, lel_mono_ms() + timeout_ms);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* Writes request `op` into the free channel and interrupts the guest; vm->lock held. Returns
 * the request's number, or -errno when the channel did not come free by `end`. */
static int64_t post_locked(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], int64_t end)
{
    struct lel_chan *ch = (struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    /* a vCPU just let go (lel_vm_cont) may not have left VM_STOPPED yet: it will run */
    if (vm->state == VM_DEAD || vm->stop_req)
        return vm->state == VM_DEAD ? -EPIPE : -EAGAIN;
    int r = chan_wait_locked(vm, vm->seq, end);
    if (r < 0)
        return r;
    ch->op = op;
    for (int i = 0; i < 4; i++)
        ch->arg[i] = arg ? arg[i] : 0;
    uint32_t seq = ++vm->seq;
    __atomic_store_n(&ch->req_seq, seq, __ATOMIC_RELEASE);
    struct kvm_msi msi = {.address_lo = 0xfee00000, .data = LEL_VEC_CHANNEL};
    ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);
    return seq;
}

int lel_vm_call(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], uint64_t ret[4], int timeout_ms)
{
    struct lel_chan *ch = (struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    int64_t end = lel_mono_ms() + timeout_ms;
    pthread_mutex_lock(&vm->lock);
    int64_t seq = post_locked(vm, op, arg, end);
    int r = seq < 0 ? (int)seq : chan_wait_locked(vm, (uint32_t)seq, end);
    pthread_mutex_unlock(&vm->lock);
    if (r < 0)
        return r;
    for (int i = 0; ret && i < 4; i++)
        ret[i] = ch->ret[i];
    return (int)ch->status;
}

int lel_vm_idle(lel_vm_t *vm, int timeout_ms)
{
    return chan_free(vm, timeout_ms);
}

static int set_clock(lel_vm_t *vm, int wait)
{
    uint64_t arg[4] = {(uint64_t)lel_now_ms(), 0, vm->tsc_khz, 0};
    struct lel_chan *ch = (struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    int r = chan_free(vm, 5000);
    if (r == 0)
        r = lel_random_bytes(ch->seed, sizeof(ch->seed));
    if (r < 0)
        return r; /* a restored sandbox must not go on with its image's random state */
    if (wait)
        return lel_vm_call(vm, LEL_OP_SET_CLOCK, arg, NULL, 5000);
    pthread_mutex_lock(&vm->lock);
    int64_t seq = post_locked(vm, LEL_OP_SET_CLOCK, arg, lel_mono_ms() + 5000);
    pthread_mutex_unlock(&vm->lock);
    return seq < 0 ? (int)seq : 0;
}

int lel_vm_set_clock(lel_vm_t *vm)
{
    return set_clock(vm, 1);
}

int lel_vm_set_clock_post(lel_vm_t *vm)
{
    return set_clock(vm, 0);
}

static void stop_locked(lel_vm_t *vm)
{
    vm->stop_req = 1;
    vm->run->immediate_exit = 1;
    while (vm->state == VM_RUNNING) {
        pthread_kill(vm->thread, SIGUSR1); /* interrupts a vCPU running natively */
        struct timespec ts;
        deadline_in(&ts, 5);
        pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
    }
}

/* Whether a stopped vCPU's mode reads the same three ways: its RIP's half of the address
 * space, its code segment's privilege and PVM's user-mode bit (bit 11 of the VIF MSR). Under
 * PVM a vCPU stopped right after an instruction the hypervisor emulated (a mov to CR3, seen
 * here) can report the hardware's code segment (0x33, user) in kernel mode; restored so, the
 * guest kernel runs as user mode and dies at its next kernel stack access. */
static int pvm_mode_settled(lel_vm_t *vm)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } m = {{.nmsrs = 1}, {.index = LEL_MSR_PVM_VIF}};
    if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0 || ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0 ||
        ioctl(vm->vcpu_fd, KVM_GET_MSRS, &m) != 1)
        return 1; /* nothing to judge by: the save reports its own errors */
    int user_rip = regs.rip < (1ULL << 47), user_cs = (sregs.cs.selector & 3) == 3, user_vif = (m.e.data >> 11) & 1;
    return user_rip == user_cs && user_cs == user_vif;
}

int lel_vm_stop(lel_vm_t *vm)
{
    pthread_mutex_lock(&vm->lock);
    stop_locked(vm);
    /* an unsettled state is never what a snapshot keeps: the vCPU runs on a moment and stops
     * again (its next instructions are native ones) */
    for (int i = 0; vm->backend == LEL_VMM_PVM && vm->state == VM_STOPPED && i < 100 && !pvm_mode_settled(vm); i++) {
        vm->stop_req = 0;
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        usleep(200);
        pthread_mutex_lock(&vm->lock);
        stop_locked(vm);
    }
    int dead = vm->state == VM_DEAD;
    pthread_mutex_unlock(&vm->lock);
    return dead ? -EPIPE : 0;
}

int lel_vm_cont(lel_vm_t *vm)
{
    pthread_mutex_lock(&vm->lock);
    int dead = vm->state == VM_DEAD;
    vm->stop_req = 0;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return dead ? -EPIPE : 0;
}

int lel_vm_set_ops(lel_vm_t *vm, const struct lel_vm_ops *ops, void *ctx)
{
    pthread_mutex_lock(&vm->lock);
    int dead = vm->dying || vm->state == VM_DEAD; /* its death went (or goes) to the old owner */
    if (!dead) {
        vm->ops = ops ? *ops : (struct lel_vm_ops){0};
        vm->ctx = ctx;
    }
    pthread_mutex_unlock(&vm->lock);
    return dead ? -EPIPE : 0;
}

void lel__vm_join(lel_vm_t *vm)
{
    if (!vm->thread_started)
        return;
    pthread_mutex_lock(&vm->lock);
    vm->exit_req = vm->stop_req = 1;
    if (vm->run)
        vm->run->immediate_exit = 1;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    /* keep kicking until it notices: a natively running vCPU only leaves on a signal (a halted
     * one leaves at the first, so the first wait is short) */
    for (long wait_ns = 50000;; wait_ns = wait_ns < 2000000 ? wait_ns * 2 : wait_ns) {
        pthread_kill(vm->thread, SIGUSR1);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += wait_ns;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_timedjoin_np(vm->thread, NULL, &ts) == 0)
            break;
    }
    vm->thread_started = 0;
}

void lel__vm_release(lel_vm_t *vm)
{
    if (vm->run)
        munmap(vm->run, vm->run_size);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->bell_efd >= 0)
        close(vm->bell_efd);
    if (vm->mem != MAP_FAILED)
        munmap(vm->mem, vm->mem_bytes);
    lel__rofs_unmap(vm);
    lel__vm_base_free(vm);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}

void lel_vm_destroy(lel_vm_t *vm)
{
    if (!vm)
        return;
    lel__vm_join(vm);
    lel__vm_release(vm);
}

int lel_vm_call_data(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], const void *in, size_t inlen, uint64_t ret[4],
                     void *out, size_t outcap, size_t *outlen, int timeout_ms)
{
    uint8_t *area = vm->mem + LEL_GPA_CHAN + LEL_CHAN_DATA_OFF;
    uint64_t r4[4] = {0};
    *outlen = 0;
    if (inlen > LEL_CHAN_DATA_MAX)
        return -E2BIG;
    int r = chan_free(vm, timeout_ms);
    if (r < 0)
        return r;
    memcpy(area, in, inlen);
    r = lel_vm_call(vm, op, arg, r4, timeout_ms);
    if (r >= 0) {
        size_t n = r4[1] < LEL_CHAN_DATA_MAX ? (size_t)r4[1] : LEL_CHAN_DATA_MAX; /* never trust the guest's length */
        if (n > outcap)
            n = outcap;
        memcpy(out, area, n);
        *outlen = n;
    }
    if (ret)
        memcpy(ret, r4, sizeof(r4));
    return r;
}

int lel_vm_call_bulk(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], const void *in, size_t inlen, uint64_t ret[4],
                     int timeout_ms)
{
    if (inlen > LEL_BULK_SIZE)
        return -E2BIG;
    int r = chan_free(vm, timeout_ms);
    if (r < 0)
        return r;
    memcpy(vm->mem + LEL_GPA_BULK, in, inlen);
    return lel_vm_call(vm, op, arg, ret, timeout_ms);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The host's mapping of `pages` guest pages from `pfn` (GPA >> 12, as the guest listed them):
 * NULL unless all of them are guest RAM above the fixed areas (below 8 MiB: mailbox, bulk
 * area, kernel), in one piece of it. RAM above the 32-bit hole is mapped right after the low
 * part, so a GPA is not an offset into vm->mem there. */
static uint8_t *guest_run(lel_vm_t *vm, uint64_t pfn, uint64_t pages)
{
    uint64_t low = vm->mem_bytes < LEL_LOW_MEM_MAX ? vm->mem_bytes : LEL_LOW_MEM_MAX, high = vm->mem_bytes - low;
    if (pfn >= (1ULL << 40) || pages == 0 || pages >= (1ULL << 40))
        return NULL;
    uint64_t gpa = pfn << 12, len = pages << 12;
    if (gpa < (8ULL << 20))
        return NULL;
    if (gpa < low && len <= low - gpa)
        return vm->mem + gpa;
    if (gpa >= (1ULL << 32) && gpa - (1ULL << 32) < high && len <= high - (gpa - (1ULL << 32)))
        return vm->mem + low + (gpa - (1ULL << 32));
    return NULL;
}

int64_t lel_vm_trim(lel_vm_t *vm, uint64_t min_pages)
{
    const struct lel_chan *ch = (const struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    uint64_t arg[4] = {0, 0, 0, 0}, ret[4];
    if (ch->dirty_free_pages < min_pages || ch->dirty_free_pages > vm->mem_bytes / 4096)
        return 0;
    int r = lel_vm_call(vm, LEL_OP_TRIM, arg, ret, 5000);
    if (r == -ETIMEDOUT) /* the guest may still set the pages aside: it is told to let them go */
        lel_vm_call(vm, LEL_OP_TRIM_DONE, arg, ret, 5000);
    if (r != 0)
        return r > 0 ? 0 : r; /* a guest without the op says ENOSYS: nothing to do */
    size_t n = ret[0] < LEL_BULK_SIZE / 4 ? (size_t)ret[0] : LEL_BULK_SIZE / 4;
    uint32_t *pfn = n ? malloc(n * sizeof(*pfn)) : NULL;
    int64_t freed = 0;
    if (pfn) {
        lel_vm_bulk_read(vm, 0, pfn, n * sizeof(*pfn));
        qsort(pfn, n, sizeof(*pfn), cmp_u32);
        /* runs of consecutive pages, each within guest memory (the list is the guest's word,
         * so a wrong one can only cost the guest its own pages) */
        for (size_t i = 0, j; i < n; i = j) {
            for (j = i + 1; j < n && pfn[j] == pfn[j - 1] + 1; j++)
                ;
            uint64_t pages = (uint64_t)(pfn[j - 1] - pfn[i] + 1);
            uint8_t *at = guest_run(vm, pfn[i], pages);
            if (at && madvise(at, pages * 4096, MADV_DONTNEED) == 0)
                freed += (int64_t)(pages * 4096);
        }
    }
    free(pfn);
    r = lel_vm_call(vm, LEL_OP_TRIM_DONE, arg, ret, 5000); /* always: the guest holds them until told */
    return r < 0 ? r : freed;
}

uint8_t *lel_vm_guest_page(lel_vm_t *vm, uint64_t pfn)
{
    return guest_run(vm, pfn, 1);
}

size_t lel_vm_bulk_read(lel_vm_t *vm, uint64_t off, void *buf, size_t len)
{
    if (off >= LEL_BULK_SIZE)
        return 0;
    if (len > LEL_BULK_SIZE - off)
        len = (size_t)(LEL_BULK_SIZE - off);
    memcpy(buf, vm->mem + LEL_GPA_BULK + off, len);
    return len;
}

/* lel_vm_cmd_start, with the window size of a pty command (winsize: cols | rows << 16). */
static int cmd_start(lel_vm_t *vm, const struct lel_cmd *cmd, uint64_t winsize, uint32_t *id)
{
    uint8_t *bulk = vm->mem + LEL_GPA_BULK, *p = bulk + sizeof(struct lel_cmd_req), *end = bulk + LEL_BULK_SIZE;
    int piped = (cmd->flags & LEL_CMD_STDIN_PIPE) != 0, pty = (cmd->flags & LEL_CMD_PTY) != 0;
    struct lel_cmd_req req = {0, 0, piped || pty ? 0 : cmd->inlen, cmd->timeout_ms,
                              cmd->flags & (LEL_CMD_BACKGROUND | LEL_CMD_STREAM | LEL_CMD_STDIN_PIPE | LEL_CMD_IDS | LEL_CMD_PTY),
                              cmd->flags & LEL_CMD_IDS ? cmd->flags >> 16 : 0};
    int r = chan_free(vm, 5000);
    if (r < 0)
        return r;
    const char *const *lists[2] = {cmd->argv, cmd->env};
    uint32_t *counts[2] = {&req.argc, &req.envc};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            size_t n = strlen(lists[l][i]) + 1;
            if (n > (size_t)(end - p))
                return -E2BIG;
            memcpy(p, lists[l][i], n);
            p += n;
            (*counts[l])++;
        }
    }
    size_t cl = strlen(cmd->cwd ? cmd->cwd : "") + 1;
    if (req.argc == 0)
        return -EINVAL;
    if (cl + req.stdin_len > (size_t)(end - p))
        return -E2BIG;
    memcpy(p, cmd->cwd ? cmd->cwd : "", cl);
    if (req.stdin_len)
        memcpy(p + cl, cmd->in, req.stdin_len);
    if (pty) /* the window size rides in stdin_len (lel_guest_abi.h) */
        req.stdin_len = winsize;
    memcpy(bulk, &req, sizeof(req));
    uint64_t ret[4] = {0};
    r = lel_vm_call(vm, LEL_OP_CMD, NULL, ret, 5000);
    if (r == 0)
        *id = (uint32_t)ret[0];
    return r;
}

int lel_vm_cmd_start(lel_vm_t *vm, const struct lel_cmd *cmd, uint32_t *id)
{
    struct lel_cmd plain = *cmd;
    plain.flags &= ~(unsigned)LEL_CMD_PTY;
    return cmd_start(vm, &plain, 0, id);
}

int lel_vm_cmd_start_pty(lel_vm_t *vm, const struct lel_cmd *cmd, uint16_t cols, uint16_t rows, uint32_t *id)
{
    struct lel_cmd on = *cmd;
    on.flags |= LEL_CMD_PTY | LEL_CMD_STREAM;
    return cmd_start(vm, &on, (uint64_t)cols | (uint64_t)rows << 16, id);
}

int lel_vm_cmd_result(lel_vm_t *vm, uint32_t want, uint32_t *id, struct lel_run_result *res)
{
    uint64_t arg[4] = {want, 0, 0, 0}, ret[4] = {0};
    int r = lel_vm_call(vm, LEL_OP_CMD_RESULT, arg, ret, 5000);
    if (r == LEL_ST_EAGAIN)
        return -EAGAIN;
    if (r != 0)
        return r > 0 ? -r : r;
    memset(res, 0, sizeof(*res));
    *id = (uint32_t)(ret[3] >> 32);
    res->exit_status = (int)(ret[0] & 0xff);
    res->out_len = ret[1] < LEL_BULK_HALF ? ret[1] : LEL_BULK_HALF; /* never trust the guest's lengths */
    res->err_len = ret[2] < LEL_BULK_HALF ? ret[2] : LEL_BULK_HALF;
    res->truncated = (ret[3] & (LEL_CMD_STDOUT_TRUNCATED | LEL_CMD_STDERR_TRUNCATED)) != 0;
    res->timed_out = (ret[3] & LEL_CMD_TIMED_OUT) != 0;
    res->signaled = (ret[3] & LEL_CMD_SIGNALED) != 0;
    res->last = (ret[3] & LEL_CMD_LAST) != 0;
    return 0;
}

int lel_vm_cmd_kill(lel_vm_t *vm, uint32_t id)
{
    return lel_vm_cmd_signal(vm, id, 9);
}

int lel_vm_run(lel_vm_t *vm, const char *const *argv, const char *const *env, const char *cwd, const void *in,
               size_t inlen, uint64_t timeout_ms, struct lel_run_result *res)
{
    struct lel_cmd cmd = {argv, env, cwd, in, inlen, timeout_ms, 0};
    uint32_t id, got;
    memset(res, 0, sizeof(*res));
    int r = lel_vm_cmd_start(vm, &cmd, &id);
    if (r != 0)
        return r;
    /* the guest ends the command by its timeout; past that and a grace period (10 s: a fork
     * bomb's teardown under emulation takes seconds) it is wedged */
    struct timespec ts;
    deadline_in(&ts, timeout_ms ? (int)timeout_ms + 10000 : 24 * 3600 * 1000);
    for (;;) {
        pthread_mutex_lock(&vm->lock);
        uint64_t seen = vm->events;
        pthread_mutex_unlock(&vm->lock);
        if ((r = lel_vm_cmd_result(vm, id, &got, res)) != -EAGAIN)
            return r;
        int w = 0;
        pthread_mutex_lock(&vm->lock);
        while (vm->events == seen && vm->state != VM_DEAD && w == 0)
            w = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
        int dead = vm->state == VM_DEAD;
        pthread_mutex_unlock(&vm->lock);
        if (dead)
            return -EPIPE;
        if (w) {
            lel_vm_cmd_kill(vm, id);
            return -ETIMEDOUT;
        }
    }
}

uint64_t lel_vm_resident(lel_vm_t *vm)
{
    size_t pages = vm->mem_bytes / 4096, n = 0;
    unsigned char *v = malloc(pages);
    if (!v || mincore(vm->mem, vm->mem_bytes, v) < 0) {
        free(v);
        return 0;
    }
    for (size_t i = 0; i < pages; i++)
        n += v[i] & 1;
    free(v);
    return (uint64_t)n * 4096;
}

uint64_t lel_vm_mem_used(lel_vm_t *vm)
{
    const struct lel_chan *ch = (const struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    uint64_t pages = ch->mem_used_pages;
    return pages && pages <= vm->mem_bytes / 4096 ? pages * 4096 : lel_vm_resident(vm);
}

uint64_t lel_vm_disk_used(lel_vm_t *vm)
{
    uint64_t pages = ((const struct lel_chan *)(vm->mem + LEL_GPA_CHAN))->disk_used_pages;
    return pages <= vm->mem_bytes / 4096 ? pages * 4096 : 0;
}

uint64_t lel_vm_cpu_ns(lel_vm_t *vm)
{
    clockid_t cid;
    struct timespec ts;
    if (!vm->thread_started || pthread_getcpuclockid(vm->thread, &cid) != 0 || clock_gettime(cid, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
