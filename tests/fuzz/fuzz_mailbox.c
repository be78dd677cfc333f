/* Fuzz target: the host side of the guest's mailbox (src/vmm/lel_vmm.c, lel_vmm_cmd.c): every
 * value a guest can answer a request with (status, the four return words, the data area and the
 * bulk area) in every request the host makes, taken through the host's calls that read them
 * (command start, also on a pty, result, read, stdin, resize, poll, signal, kill, free-page
 * trimming). No KVM:
 * guest memory is a plain mapping and a thread plays the guest, answering each request from the
 * input (an input that runs out answers ENOSYS). The first byte picks the host calls' order. */
#include "guest/lel_guest_abi.h"
#include "vmm/lel_vmm_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (16u << 20) /* the bulk area at 2 MiB and room above 8 MiB for trimmed pages */

static lel_vm_t vm;
static pthread_mutex_t in_lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *in_p;
static size_t in_n;

static void take(void *dst, size_t n)
{
    size_t k = n < in_n ? n : in_n;
    memcpy(dst, in_p, k);
    memset((uint8_t *)dst + k, 0, n - k);
    in_p += k;
    in_n -= k;
}

/* One answer: status (4), ret (32), data length (2) + bytes, bulk length (2) + bytes at an
 * offset (4); a pfn list for a trim is bulk bytes too. */
static void answer(struct lel_chan *ch)
{
    uint32_t status = LEL_ST_ENOSYS;
    uint16_t dlen = 0, blen = 0;
    uint32_t boff = 0;
    pthread_mutex_lock(&in_lock);
    if (in_n) {
        take(&status, 4);
        take(ch->ret, sizeof(ch->ret));
        take(&dlen, 2);
        dlen %= LEL_CHAN_DATA_MAX + 1;
        take(vm.mem + LEL_GPA_CHAN + LEL_CHAN_DATA_OFF, dlen);
        take(&blen, 2);
        take(&boff, 4);
        boff %= LEL_BULK_SIZE - blen;
        take(vm.mem + LEL_GPA_BULK + boff, blen);
        if (ch->op == LEL_OP_TRIM) /* (up to 512 Ki pages are sorted: legal, but slow to fuzz) */
            ch->ret[0] %= 4096;
        uint64_t dirty = 0;
        take(&dirty, 2);
        ch->dirty_free_pages = dirty;
    } else {
        memset(ch->ret, 0, sizeof(ch->ret));
    }
    pthread_mutex_unlock(&in_lock);
    ch->status = status;
}

static void *guest(void *arg)
{
    (void)arg;
    struct lel_chan *ch = (struct lel_chan *)(vm.mem + LEL_GPA_CHAN);
    for (;;) {
        uint32_t req = __atomic_load_n(&ch->req_seq, __ATOMIC_ACQUIRE);
        if (req != __atomic_load_n(&ch->resp_seq, __ATOMIC_ACQUIRE)) {
            answer(ch);
            pthread_mutex_lock(&vm.lock);
            __atomic_store_n(&ch->resp_seq, req, __ATOMIC_RELEASE);
            pthread_cond_broadcast(&vm.cond); /* what the vCPU thread does at the guest's doorbell */
            pthread_mutex_unlock(&vm.lock);
        } else {
            pthread_mutex_lock(&vm.lock);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&vm.cond, &vm.lock, &ts);
            pthread_mutex_unlock(&vm.lock);
        }
    }
    return NULL;
}

static void setup(void)
{
    vm.mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vm.mem == MAP_FAILED)
        abort();
    vm.mem_bytes = MEM;
    vm.vm_fd = vm.vcpu_fd = -1;
    vm.net_efd = -1;
    vm.state = VM_RUNNING;
    pthread_mutex_init(&vm.lock, NULL);
    pthread_cond_init(&vm.cond, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, guest, NULL) != 0)
        abort();
}

static void host_calls(int op)
{
    uint64_t a, b;
    int ended;
    size_t n;
    uint32_t id;
    struct lel_run_result res;
    struct lel_cmd_ready ready[64];
    static uint8_t buf[LEL_BULK_SIZE];
    const char *argv[] = {"/bin/sh", "-c", "true", NULL}, *env[] = {"A=b", NULL};
    struct lel_cmd cmd = {argv, env, "/", "in", 2, 1000, LEL_CMD_STREAM | LEL_CMD_STDIN_PIPE};
    switch (op) {
    case 0:
        if (lel_vm_cmd_start(&vm, &cmd, &id) == 0 && lel_vm_cmd_read(&vm, id, &a, &b, &ended) == 0) {
            if (a > LEL_BULK_HALF || b > LEL_BULK_HALF)
                abort(); /* the lengths the host then reads must be clamped */
            lel_vm_bulk_read(&vm, 0, buf, (size_t)a);
            lel_vm_bulk_read(&vm, LEL_BULK_HALF, buf, (size_t)b);
        }
        break;
    case 1:
        if (lel_vm_cmd_result(&vm, 0, &id, &res) == 0) {
            if (res.out_len > LEL_BULK_HALF || res.err_len > LEL_BULK_HALF)
                abort();
            lel_vm_bulk_read(&vm, 0, buf, (size_t)res.out_len);
            lel_vm_bulk_read(&vm, LEL_BULK_HALF, buf, (size_t)res.err_len);
        }
        break;
    case 2:
        if (lel_vm_cmd_poll(&vm, ready, 64, &n) == 0 && n > 64)
            abort();
        break;
    case 3:
        if (lel_vm_cmd_stdin(&vm, 1, buf, 1000, 0, &n) == 0 && n > 1000)
            abort(); /* never more taken than given */
        (void)lel_vm_cmd_resize(&vm, 1, 80, 24);
        (void)lel_vm_cmd_signal(&vm, 1, 15);
        break;
    case 4: /* pages a guest lists as free: never the fixed areas below 8 MiB */
        vm.mem[LEL_GPA_IDT] = vm.mem[(7u << 20) + 5] = 0x5a;
        (void)lel_vm_trim(&vm, 0);
        if (vm.mem[LEL_GPA_IDT] != 0x5a || vm.mem[(7u << 20) + 5] != 0x5a)
            abort();
        break;
    case 5: /* (lel_vm_run waits out its timeout for a command that never ends: too slow here) */
        (void)lel_vm_cmd_start_pty(&vm, &cmd, 80, 24, &id);
        (void)lel_vm_cmd_kill(&vm, id);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    pthread_mutex_lock(&in_lock);
    in_p = data + 1;
    in_n = size - 1;
    pthread_mutex_unlock(&in_lock);
    for (int i = 0; i < 6; i++)
        host_calls((data[0] + i) % 6);
    pthread_mutex_lock(&in_lock);
    in_n = 0;
    pthread_mutex_unlock(&in_lock);
    return 0;
}
