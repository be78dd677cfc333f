/* The agent: the kernel's entry (kmain) and the host channel's request loop. The host writes a
 * request into the mailbox (and the bulk area) and interrupts; the loop answers it, and between
 * requests runs the scheduler, or waits for the next interrupt when nothing can run. Each
 * request's op is served here or by files.c (file requests) and work.c (test area). */
#include "files.h"
#include "work.h"
#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../arch/fpu.h"
#include "../fs/fs.h"
#include "../fs/hwatch.h"
#include "../lel_guest_abi.h"
#include "../lib/klib.h"
#include "../lib/rng.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../net/hostconn.h"
#include "../proc/proc.h"
#include "../proc/sched.h"
#include "../proc/session.h"

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
    int pty = (req.flags & LEL_CMD_PTY) != 0;
    uint64_t winsize = pty ? req.stdin_len : 0;
    if (pty)
        req.stdin_len = 0;
    if (req.argc == 0 || strings(&p, req.argc) < 0 || (env = p, strings(&p, req.envc)) < 0 || (cwd = p, strings(&p, 1)) < 0 ||
        req.stdin_len > (uint64_t)(bulk + LEL_BULK_SIZE - p)) {
        chan->status = LEL_ST_EINVAL;
        return;
    }
    uint32_t hz = boot->tick_hz ? boot->tick_hz : 100;
    struct proc_spec spec = {argv, req.argc, req.envc ? env : 0, req.envc, *cwd ? cwd : 0, (const uint8_t *)p, req.stdin_len,
                             req.timeout_ms ? (req.timeout_ms * hz + 999) / 1000 : 0, 0, (req.flags & LEL_CMD_BACKGROUND) != 0,
                             (req.flags & LEL_CMD_STREAM) != 0, (req.flags & LEL_CMD_STDIN_PIPE) != 0,
                             (req.flags & LEL_CMD_IDS) ? req.id : 0, pty, (uint16_t)winsize, (uint16_t)(winsize >> 16)};
    int r = proc_start(&spec);
    if (r < 0)
        chan->status = (uint32_t)-r;
    else
        chan->ret[0] = (uint64_t)r;
}

/* Whether another command has ended and waits to be collected: when none does, the host
 * need not ask again (one host-channel round trip less per command). */
static int another_ended(void)
{
    uint32_t pairs[2 * 32], n = proc_poll(pairs, 32);
    for (uint32_t i = 0; i < n; i++)
        if (pairs[2 * i + 1] & LEL_POLL_ENDED)
            return 1;
    return 0;
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
                   (res.timed_out ? LEL_CMD_TIMED_OUT : 0) | (res.signaled ? LEL_CMD_SIGNALED : 0) |
                   (another_ended() ? 0 : LEL_CMD_LAST) | (uint64_t)id << 32;
}

/* A streamed command's output so far, in the bulk halves. */
static void command_read(void)
{
    struct proc_result res;
    int r = proc_read_output((int)chan->arg[0], bulk, bulk + LEL_BULK_HALF, LEL_BULK_HALF, &res);
    if (r < 0) {
        chan->status = (uint32_t)-r;
        return;
    }
    chan->ret[1] = res.out_len;
    chan->ret[2] = res.err_len;
    chan->ret[3] = res.ended ? LEL_CMD_ENDED : 0;
}

static void command_stdin(void)
{
    uint64_t n = chan->arg[1] < LEL_BULK_SIZE ? chan->arg[1] : LEL_BULK_SIZE, taken = 0;
    int r = proc_write_stdin((int)chan->arg[0], (const uint8_t *)bulk, n, chan->arg[2] == 1, &taken);
    chan->ret[0] = taken;
    if (r < 0)
        chan->status = (uint32_t)-r;
}

static void command_resize(void)
{
    int r = proc_resize((int)chan->arg[0], (uint16_t)chan->arg[1], (uint16_t)chan->arg[2]);
    if (r < 0)
        chan->status = (uint32_t)-r;
}

static void command_poll(void)
{
    uint32_t *pairs = (uint32_t *)((char *)chan + LEL_CHAN_DATA_OFF), n = proc_poll(pairs, LEL_CHAN_DATA_MAX / 8);
    n += hwatch_poll(pairs + 2 * n, LEL_CHAN_DATA_MAX / 8 - n);
    chan->ret[0] = n;
    chan->ret[1] = (uint64_t)n * 8;
}

/* The test ops wait for their program here (other commands keep running) and answer with its
 * merged output in the mailbox's data area. */
/* Waits for the next interrupt, first telling the host what memory and disk are in use (it
 * reads them from the channel whenever it likes, without a request). */
static void agent_idle(void)
{
    chan->mem_used_pages = boot->mem_bytes / PAGE_SIZE - kpage_free_pages();
    chan->disk_used_pages = fs_data_pages();
    chan->dirty_free_pages = kpage_dirty_pages();
    kernel_idle();
}

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
            agent_idle();
    proc_collect(id, (char *)chan + LEL_CHAN_DATA_OFF, LEL_CHAN_DATA_MAX, 0, 0, &res);
    chan->ret[0] = (uint64_t)res.status;
    chan->ret[1] = res.out_len;
}

/* Runs the request in the channel. Returns 0 when it must go unanswered (a test's misbehaviour). */
static int handle(void)
{
    chan->status = LEL_ST_OK;
    /* what a request changes in the file system carries the time of the request, not the
     * time a process last made a syscall */
    fs_set_clock(proc_now_ns() / 1000000000);
    fs_set_owner(0, 0); /* the host's files are root's */
    switch (chan->op) {
    case LEL_OP_PING:
        chan->ret[0] = chan->arg[0] + 1;
        break;
    case LEL_OP_TOUCH:
        if (work_touch(chan->arg[0], chan->arg[1], &chan->ret[0]) < 0)
            chan->status = LEL_ST_EINVAL;
        break;
    case LEL_OP_CHECKSUM:
        if (work_checksum(chan->arg[0], &chan->ret[0]) < 0)
            chan->status = LEL_ST_EINVAL;
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
        if (chan->arg[1] >= 64 || proc_signal_session((int)chan->arg[0], chan->arg[1] ? (int)chan->arg[1] : 9) < 0)
            chan->status = chan->arg[1] >= 64 ? LEL_ST_EINVAL : LEL_ST_ENOENT;
        break;
    case LEL_OP_CMD_READ:
        command_read();
        break;
    case LEL_OP_CMD_STDIN:
        command_stdin();
        break;
    case LEL_OP_CMD_POLL:
        command_poll();
        break;
    case LEL_OP_CMD_RESIZE:
        command_resize();
        break;
    case LEL_OP_FILE_WRITE:
        agent_file_write();
        break;
    case LEL_OP_FILE_READ:
        agent_file_read();
        break;
    case LEL_OP_FILE_UPLOAD:
        agent_file_upload(0);
        break;
    case LEL_OP_FILE_UPLOAD_PAGES:
        agent_file_upload(1);
        break;
    case LEL_OP_FILE_DELETE:
        agent_file_delete();
        break;
    case LEL_OP_FILE_XATTRS:
        agent_file_xattrs();
        break;
    case LEL_OP_FILE_STAT:
        agent_file_stat();
        break;
    case LEL_OP_WATCH_ADD:
        agent_watch_add();
        break;
    case LEL_OP_WATCH_READ:
        agent_watch_read();
        break;
    case LEL_OP_WATCH_REMOVE:
        agent_watch_remove();
        break;
    case LEL_OP_SET_CLOCK: {
        clock_rebase(chan->arg[2]);
        boot->epoch_ms = chan->arg[0] - kernel_ns() / 1000000; /* proc_now_ns() = epoch + kernel_ns() */
        rng_seed((const void *)chan->seed, sizeof(chan->seed));
        break;
    }
    case LEL_OP_TICKS:
        chan->ret[0] = kernel_ticks();
        chan->ret[1] = kernel_timer_irqs();
        break;
    case LEL_OP_RUN_TEST:
        run_sync(proc_start_test());
        break;
    case LEL_OP_SPIN:
        chan->ret[0] = lel_spin(chan->arg[0]);
        break;
    case LEL_OP_MISBEHAVE:
        return misbehave(chan->arg[0]);
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
    return 1;
}

extern char __bss_start[], __bss_end[];

void kpool_init(uint64_t start_gpa, uint64_t end_gpa);

/* The net area: a page of indices and two rings of NET_RING bytes, in one physically
 * contiguous piece just below the root filesystem archive, so the host finds it whole. */
#define NET_RING (512ULL << 10)
#define NET_AREA (LEL_NET_RING_OFF + 2 * NET_RING)

static void rootfs_init(void)
{
    uint64_t end = (boot->initrd_size ? boot->initrd_gpa : boot->mem_bytes) & ~(PAGE_SIZE - 1);
    if (end > LEL_GPA_POOL + NET_AREA + (16ULL << 20)) {
        end -= NET_AREA;
        hc_init(end, NET_AREA);
        chan->net_gpa = end;
        chan->net_bytes = NET_AREA;
    }
    kpool_init(LEL_GPA_POOL, end);
    if (fs_init((int64_t)(boot->epoch_ms / 1000)) < 0) {
        console_write("guest: no memory for the root filesystem\n");
        return;
    }
    fs_set_disk_limit(boot->disk_bytes / PAGE_SIZE);
    if (boot->rofs_bytes) { /* the image is the lower layer; memory the writable one above it */
        int r = map_readonly_region(boot->rofs_gpa, boot->rofs_bytes);
        if (r == 0)
            r = fs_mount_lower((const void *)(LEL_DMAP_BASE + boot->rofs_gpa), boot->rofs_bytes);
        console_write(r == 0 ? "lelantos guest: root filesystem image mounted read-only under a writable layer\n"
                             : "guest: the root filesystem image is malformed or does not fit\n");
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
    kernel_pvm = boot->magic == LEL_BOOT_MAGIC && (boot->flags & LEL_BOOT_PVM);
    console_write(kernel_pvm ? "lelantos guest: booting (PVM)\n" : "lelantos guest: booting (KVM)\n");
    irq_disable();
    idt_init();
    lapic_init();
    if (kernel_tsc_khz()) {
        console_write("lelantos guest: clock from the TSC at ");
        char digits[21];
        console_write(kutoa(digits, kernel_tsc_khz()));
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
            int answer = handle();
            done = req;
            if (!answer)
                continue;
            __asm__ volatile("" ::: "memory");
            chan->resp_seq = req;
            outl(LEL_PORT_DOORBELL, LEL_BELL_RESPONSE);
            continue;
        }
        int net_more = hc_poll(); /* the net rings: what the host sent, what the sockets have for it */
        if (proc_step() || net_more) /* processes run between requests; a request preempts them */
            continue;
        agent_idle();
    }
}
