/* The host's end of the net rings (see lel_vsock.h). The guest's doorbell port is an ioeventfd
 * where KVM gives one (the write never leaves the kernel), else the vCPU thread writes the same
 * eventfd when it sees the port (lel_vmm.c). The guest's words in the ring header are read
 * afresh each time and checked against the ring size the host read once at attach. */
#include "lel_vsock.h"

#include "lel_vmm_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct lel_vsock {
    lel_vm_t *vm;
    struct lel_net_area *area;
    uint8_t *g2h, *h2g;
    uint32_t size, mask; /* ring bytes, read once */
    uint32_t epoch;
    uint32_t gwin;
    int efd, ioeventfd;
    int own_efd; /* efd is this attachment's (the VM had none of its own) */
    uint32_t peeked; /* bytes of the message lel_vsock_peek returned */
};

static uint32_t msg_size(uint32_t len)
{
    return (uint32_t)sizeof(struct lel_net_msg) + ((len + 7) & ~7u);
}

static int set_ioeventfd(lel_vm_t *vm, int efd, int deassign)
{
    struct kvm_ioeventfd io = {.addr = LEL_PORT_NETBELL, .len = 4, .fd = efd,
                               .flags = KVM_IOEVENTFD_FLAG_PIO | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0)};
    return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io);
}

static void kick_guest(lel_vsock_t *vs)
{
    struct kvm_msi msi = {.address_lo = 0xfee00000, .data = LEL_VEC_NET};
    ioctl(vs->vm->vm_fd, KVM_SIGNAL_MSI, &msi);
}

int lel_vsock_open(lel_vm_t *vm, uint32_t host_window, lel_vsock_t **out)
{
    const struct lel_chan *ch = (const struct lel_chan *)(vm->mem + LEL_GPA_CHAN);
    uint64_t gpa = ch->net_gpa, bytes = ch->net_bytes, low = vm->mem_bytes < LEL_LOW_MEM_MAX ? vm->mem_bytes : LEL_LOW_MEM_MAX;
    uint64_t ring = bytes > LEL_NET_RING_OFF ? (bytes - LEL_NET_RING_OFF) / 2 : 0;
    if (!gpa || gpa % 4096 || gpa >= low || bytes > low - gpa || ring < 4 * LEL_NET_MSG_MAX || (ring & (ring - 1)) ||
        ring > (1u << 30) || bytes != LEL_NET_RING_OFF + 2 * ring)
        return -ENODEV;
    struct lel_net_area *a = (struct lel_net_area *)(vm->mem + gpa);
    if (a->magic != LEL_NET_MAGIC || a->ring_bytes != ring)
        return -ENODEV;
    lel_vsock_t *vs = calloc(1, sizeof(*vs));
    if (!vs)
        return -ENOMEM;
    vs->vm = vm;
    vs->area = a;
    vs->size = (uint32_t)ring;
    vs->mask = vs->size - 1;
    vs->g2h = (uint8_t *)a + LEL_NET_RING_OFF;
    vs->h2g = vs->g2h + ring;
    if (vm->bell_efd >= 0) { /* registered with the VM, off the attach's path */
        vs->efd = vm->bell_efd;
        vs->ioeventfd = vm->bell_ioeventfd;
        lel_vsock_ack(vs); /* what rang before the attachment is seen by its first service */
    } else if ((vs->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free(vs);
        return -errno;
    } else {
        vs->own_efd = 1;
        vs->ioeventfd = set_ioeventfd(vm, vs->efd, 0) == 0;
    }
    __atomic_store_n(&vm->net_efd, vs->efd, __ATOMIC_RELEASE); /* the vCPU thread's way when there is no ioeventfd */
    vs->epoch = a->host_epoch + 1 ? a->host_epoch + 1 : 1;
    a->host_window = host_window;
    __atomic_store_n(&a->host_epoch, vs->epoch, __ATOMIC_RELEASE);
    kick_guest(vs); /* it takes the attachment at once, even idle */
    *out = vs;
    return 0;
}

void lel_vsock_close(lel_vsock_t *vs)
{
    if (!vs)
        return;
    __atomic_store_n(&vs->vm->net_efd, -1, __ATOMIC_RELEASE);
    if (vs->own_efd) {
        if (vs->ioeventfd)
            set_ioeventfd(vs->vm, vs->efd, 1);
        close(vs->efd);
    }
    free(vs);
}

int lel_vsock_fd(const lel_vsock_t *vs)
{
    return vs->efd;
}

void lel_vsock_ack(lel_vsock_t *vs)
{
    uint64_t v;
    while (read(vs->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
}

void lel_vsock_poke(lel_vsock_t *vs)
{
    uint64_t one = 1;
    if (write(vs->efd, &one, sizeof(one)) < 0) {
        /* the counter is full: it is readable anyway */
    }
}

int lel_vsock_ready(const lel_vsock_t *vs)
{
    return __atomic_load_n(&vs->area->guest_epoch, __ATOMIC_ACQUIRE) == vs->epoch;
}

uint32_t lel_vsock_guest_window(const lel_vsock_t *vs)
{
    uint32_t w = vs->area->guest_window;
    return w < LEL_NET_MSG_MAX ? w : w > (16u << 20) ? 16u << 20 : w;
}

static void pieces(uint8_t *ring, uint32_t mask, uint32_t at, uint32_t n, struct iovec iov[2])
{
    uint32_t off = at & mask, first = n < mask + 1 - off ? n : mask + 1 - off;
    iov[0] = (struct iovec){ring + off, first};
    iov[1] = (struct iovec){ring, n - first};
}

void lel_vsock_copy(const struct iovec iov[2], size_t off, void *dst, size_t n)
{
    for (int i = 0; i < 2 && n; i++) {
        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - off < n ? iov[i].iov_len - off : n;
        memcpy(dst, (uint8_t *)iov[i].iov_base + off, k);
        dst = (uint8_t *)dst + k;
        n -= k;
        off = 0;
    }
}

int lel_vsock_peek(lel_vsock_t *vs, struct lel_net_msg *m, struct iovec iov[2])
{
    if (!lel_vsock_ready(vs))
        return 0;
    uint32_t head = __atomic_load_n(&vs->area->g2h.head, __ATOMIC_ACQUIRE), tail = vs->area->g2h.tail;
    uint32_t avail = head - tail;
    if (!avail)
        return 0;
    if (avail > vs->size || avail < sizeof(*m))
        return -EPROTO;
    struct iovec h[2];
    pieces(vs->g2h, vs->mask, tail, sizeof(*m), h);
    lel_vsock_copy(h, 0, m, sizeof(*m));
    if (m->len > LEL_NET_MSG_MAX + sizeof(struct lel_net_addr) || msg_size(m->len) > avail)
        return -EPROTO;
    pieces(vs->g2h, vs->mask, tail + (uint32_t)sizeof(*m), m->len, iov);
    vs->peeked = msg_size(m->len);
    return 1;
}

void lel_vsock_next(lel_vsock_t *vs)
{
    __atomic_store_n(&vs->area->g2h.tail, vs->area->g2h.tail + vs->peeked, __ATOMIC_RELEASE);
    vs->peeked = 0;
}

uint32_t lel_vsock_space(lel_vsock_t *vs)
{
    uint32_t used = vs->area->h2g.head - __atomic_load_n(&vs->area->h2g.tail, __ATOMIC_ACQUIRE);
    if (used > vs->size) /* the guest wrote nonsense into our index's partner: treat as full */
        return 0;
    uint32_t free = vs->size - used;
    if (free <= sizeof(struct lel_net_msg) + 8) {
        vs->area->h2g.room = 1;
        return 0;
    }
    uint32_t n = (free - (uint32_t)sizeof(struct lel_net_msg)) & ~7u;
    return n < LEL_NET_MSG_MAX ? n : LEL_NET_MSG_MAX;
}

void lel_vsock_reserve(lel_vsock_t *vs, uint32_t len, struct iovec iov[2])
{
    pieces(vs->h2g, vs->mask, vs->area->h2g.head + (uint32_t)sizeof(struct lel_net_msg), len, iov);
}

void lel_vsock_commit(lel_vsock_t *vs, uint32_t conn, uint16_t type, uint16_t flags, uint32_t arg, uint32_t len)
{
    struct lel_net_msg m = {conn, type, flags, len, arg};
    uint32_t head = vs->area->h2g.head;
    struct iovec h[2];
    pieces(vs->h2g, vs->mask, head, sizeof(m), h);
    memcpy(h[0].iov_base, &m, h[0].iov_len);
    memcpy(h[1].iov_base, (uint8_t *)&m + h[0].iov_len, h[1].iov_len);
    __atomic_store_n(&vs->area->h2g.head, head + msg_size(len), __ATOMIC_RELEASE);
}

int lel_vsock_send(lel_vsock_t *vs, uint32_t conn, uint16_t type, uint16_t flags, uint32_t arg, const void *p,
                   uint32_t n, const void *p2, uint32_t n2)
{
    if (!lel_vsock_ready(vs))
        return -EAGAIN;
    uint32_t used = vs->area->h2g.head - __atomic_load_n(&vs->area->h2g.tail, __ATOMIC_ACQUIRE);
    if (used > vs->size || vs->size - used < msg_size(n + n2)) {
        vs->area->h2g.room = 1;
        return -EAGAIN;
    }
    struct iovec iov[2];
    lel_vsock_reserve(vs, n + n2, iov);
    size_t done = 0;
    const uint8_t *parts[2] = {p, p2};
    uint32_t lens[2] = {n, n2};
    for (int k = 0; k < 2; k++)
        for (uint32_t i = 0; i < lens[k];) { /* into the (at most two) pieces */
            size_t at = done, piece = at < iov[0].iov_len ? 0 : 1, off = piece ? at - iov[0].iov_len : at;
            size_t c = iov[piece].iov_len - off < lens[k] - i ? iov[piece].iov_len - off : lens[k] - i;
            memcpy((uint8_t *)iov[piece].iov_base + off, parts[k] + i, c);
            i += (uint32_t)c;
            done += c;
        }
    lel_vsock_commit(vs, conn, type, flags, arg, n + n2);
    return 0;
}

/* A full barrier between our writes to the rings and our reads of the guest's flags. A locked
 * add of 0 to a word both sides use is one on x86, and TSan accepts it where it refuses
 * atomic_thread_fence (the guest is no thread TSan sees either way). */
static inline void ring_barrier(struct lel_net_area *a)
{
    (void)__atomic_fetch_add(&a->g2h.room, 0, __ATOMIC_SEQ_CST);
}

int lel_vsock_idle(lel_vsock_t *vs)
{
    struct lel_net_area *a = vs->area;
    if (!lel_vsock_ready(vs))
        return 0;
    ring_barrier(a);
    int irq = 0;
    if (a->h2g.kick && a->h2g.head != a->h2g.tail) { /* it waits for what we wrote */
        a->h2g.kick = 0;
        irq = 1;
    }
    if (a->g2h.room) { /* it waits for room we made */
        a->g2h.room = 0;
        irq = 1;
    }
    if (irq)
        kick_guest(vs);
    a->g2h.kick = 1;
    ring_barrier(a);
    if (__atomic_load_n(&a->g2h.head, __ATOMIC_ACQUIRE) != a->g2h.tail) {
        a->g2h.kick = 0;
        return 1;
    }
    return 0;
}
