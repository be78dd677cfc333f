/* Fuzz target: the host side of the guest's net rings (src/vmm/lel_vsock.c), against guest
 * memory that is a plain buffer (no KVM: the doorbell and interrupt ioctls go to fd -1 and
 * fail). What a guest can write is the input: the channel's net_gpa/net_bytes and the area's
 * magic and ring size (bit 0 of the first byte: taken from the input, else left valid), every
 * index word of both rings (head, tail, kick, room: ours and theirs), its window, and the bytes
 * of the guest-to-host ring. The host then attaches, reads every message it is shown (each
 * payload copied out as lel_net does), writes messages back until the ring is full, and runs
 * its idle check. ASan watches that nothing is read or written outside guest memory. */
#include "guest/lel_guest_abi.h"
#include "vmm/lel_vmm_int.h"
#include "vmm/lel_vsock.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEM (2u << 20)
#define NET_GPA 0x40000u
#define RING (4u * LEL_NET_MSG_MAX)

struct take { /* reads the input front to back; zeros once it runs out */
    const uint8_t *p;
    size_t n;
};

static void take(struct take *t, void *dst, size_t n)
{
    size_t k = n < t->n ? n : t->n;
    memcpy(dst, t->p, k);
    memset((uint8_t *)dst + k, 0, n - k);
    t->p += k;
    t->n -= k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *mem;
    if (!mem && !(mem = malloc(MEM)))
        abort();
    memset(mem, 0, MEM);
    struct take in = {data, size};
    uint8_t mode = 0;
    take(&in, &mode, 1);
    struct lel_chan *ch = (struct lel_chan *)(mem + LEL_GPA_CHAN);
    struct lel_net_area *a = (struct lel_net_area *)(mem + NET_GPA);
    ch->net_gpa = NET_GPA;
    ch->net_bytes = LEL_NET_RING_OFF + 2 * RING;
    a->magic = LEL_NET_MAGIC;
    a->ring_bytes = RING;
    if (mode & 1) { /* the attach's own checks */
        take(&in, &ch->net_gpa, 8);
        take(&in, &ch->net_bytes, 8);
        take(&in, &a->magic, 8);
        take(&in, &a->ring_bytes, 4);
    }
    lel_vm_t vm;
    memset(&vm, 0, sizeof(vm));
    vm.vm_fd = vm.vcpu_fd = -1;
    vm.mem = mem;
    vm.mem_bytes = MEM;
    vm.net_efd = -1;
    lel_vsock_t *vs = NULL;
    if (lel_vsock_open(&vm, 1u << 20, &vs) != 0)
        return 0;
    /* the guest takes the attachment, and writes whatever it likes */
    a->guest_epoch = a->host_epoch;
    if (mode & 2)
        take(&in, (void *)&a->guest_epoch, 4);
    take(&in, &a->guest_window, 4);
    take(&in, (void *)&a->g2h, 16);
    take(&in, (void *)&a->h2g, 16);
    uint8_t *g2h = (uint8_t *)a + LEL_NET_RING_OFF;
    uint32_t at = a->g2h.tail & (RING - 1);
    while (in.n) { /* its messages, from where our tail is, wrapping */
        size_t k = in.n < RING - at ? in.n : RING - at;
        take(&in, g2h + at, k);
        at = (at + (uint32_t)k) & (RING - 1);
    }
    static uint8_t payload[LEL_NET_MSG_MAX + sizeof(struct lel_net_addr)];
    for (int i = 0; i < 4096; i++) {
        struct lel_net_msg m;
        struct iovec iov[2];
        int r = lel_vsock_peek(vs, &m, iov);
        if (r <= 0)
            break;
        if (iov[0].iov_len + iov[1].iov_len != m.len || m.len > sizeof(payload))
            abort(); /* the pieces must be the message's payload */
        lel_vsock_copy(iov, 0, payload, m.len);
        lel_vsock_next(vs);
    }
    (void)lel_vsock_guest_window(vs);
    for (int i = 0; i < 64; i++) { /* answers, of every size, until the guest's ring is full */
        uint32_t n = (uint32_t)(i * 1021) % LEL_NET_MSG_MAX, room = lel_vsock_space(vs);
        if (room && i % 2) {
            struct iovec iov[2];
            uint32_t k = n < room ? n : room;
            lel_vsock_reserve(vs, k, iov);
            for (int j = 0; j < 2; j++)
                memset(iov[j].iov_base, 0xab, iov[j].iov_len);
            lel_vsock_commit(vs, 1, LEL_NET_DATA, 0, 0, k);
        } else if (lel_vsock_send(vs, 1, LEL_NET_DATA, 0, 0, payload, n / 2, payload, n - n / 2) != 0) {
            break;
        }
    }
    (void)lel_vsock_idle(vs);
    lel_vsock_close(vs);
    return 0;
}
