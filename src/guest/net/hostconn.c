/* Connections through the host (see hostconn.h). The rings are the transport: this file
 * writes and reads their messages, keeps the connections' table and moves bytes between the
 * rings and the sockets' pipes, under the credit each side gives.
 *
 * A connection (struct hconn) outlives its socket until what the socket wrote has gone and the
 * host was told it closed; it ends at once on a RESET either way, and all of them at a new
 * attachment (a restore: the host's side of them is gone), each socket then reading
 * ECONNRESET. Everything runs in kernel context (one CPU, never preempted): syscalls, and the
 * agent's loop (hc_poll). */
#include "hostconn.h"

#include "../arch/cpu.h"
#include "../fs/pipe.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"
#include "dgram.h"
#include "netif.h"
#include "socket.h"

#define HC_SLOTS 512 /* open addressing by id; at most HC_MAX live */
#define HC_MAX 256
/* A connection's receive pipe, and so the window the host may send unacknowledged. Each window
 * costs a round trip through a halted vCPU (the host's interrupt, the guest's credit), which
 * under host load takes tens of milliseconds: a pipe's 64 KiB held uploads to ~1 MB/s. The
 * pipe's pages come only as it fills (a reader that keeps up uses one). */
#define HC_RX_WINDOW (PIPE_PAGES_MAX * PAGE_SIZE)

enum { HC_CONNECTING = 1, HC_OPEN };
/* what a connection still has to tell the host, in this order */
enum { W_CONNECT = 1, W_ACCEPT = 2, W_REFUSE = 4, W_CLOSE = 8 };

struct hconn {
    uint32_t id;
    int state;
    uint32_t want;
    struct sock *s;        /* NULL once the socket closed */
    struct pipe *rx, *tx;  /* the kernel's ends: it writes rx and reads tx; NULL once let go */
    uint64_t tx_credit;    /* bytes the host still takes */
    uint64_t delivered;    /* bytes put into rx so far */
    uint64_t credited;     /* ... of which the host was told that the reader took them */
    int shut_sent, dirty;
    int sock_ends;         /* the socket holds the other end of each pipe (else the kernel does) */
    struct lel_net_addr to; /* W_CONNECT: the destination */
};

static struct lel_net_area *area;
static uint8_t *g2h, *h2g;
static uint32_t ring_mask;
static struct hconn *slots[HC_SLOTS];
static int nconns, any_dirty;
static uint32_t next_id = 1;

/* ---- the rings ---- */

static void ring_copy_in(uint8_t *ring, uint32_t at, const void *src, uint32_t n)
{
    uint32_t off = at & ring_mask, first = n < ring_mask + 1 - off ? n : ring_mask + 1 - off;
    kmemcpy(ring + off, src, first);
    kmemcpy(ring, (const uint8_t *)src + first, n - first);
}

static void ring_copy_out(const uint8_t *ring, uint32_t at, void *dst, uint32_t n)
{
    uint32_t off = at & ring_mask, first = n < ring_mask + 1 - off ? n : ring_mask + 1 - off;
    kmemcpy(dst, ring + off, first);
    kmemcpy((uint8_t *)dst + first, ring, n - first);
}

static uint32_t msg_size(uint32_t len)
{
    return (uint32_t)sizeof(struct lel_net_msg) + ((len + 7) & ~7u);
}

/* Room for a message of `len` payload bytes in g2h; when there is none, the host is asked to
 * say when there is. */
static int g2h_room(uint32_t len)
{
    uint32_t used = area->g2h.head - area->g2h.tail;
    if (used + msg_size(len) <= ring_mask + 1)
        return 1;
    area->g2h.room = 1;
    return 0;
}

/* The bytes of payload a message could carry now (0: none). */
static uint32_t g2h_space(void)
{
    uint32_t free = ring_mask + 1 - (area->g2h.head - area->g2h.tail);
    return free > sizeof(struct lel_net_msg) + 8 ? (free - (uint32_t)sizeof(struct lel_net_msg)) & ~7u : 0;
}

/* Publishes what was written up to `head`, and tells the host if it waits. */
static void g2h_publish(uint32_t head)
{
    __atomic_store_n(&area->g2h.head, head, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (area->g2h.kick) {
        area->g2h.kick = 0;
        outl(LEL_PORT_NETBELL, 1);
    }
}

/* Writes a message header at the producer's head; the payload follows at head + 16. */
static uint32_t g2h_header(uint32_t conn, uint16_t type, uint16_t flags, uint32_t len, uint32_t arg)
{
    struct lel_net_msg m = {conn, type, flags, len, arg};
    uint32_t head = area->g2h.head;
    ring_copy_in(g2h, head, &m, sizeof(m));
    return head + (uint32_t)sizeof(m);
}

/* A message with a payload from kernel memory (two parts); 0 when the ring is full. */
static int send_msg(uint32_t conn, uint16_t type, uint16_t flags, uint32_t arg, const void *p, uint32_t n,
                    const void *p2, uint32_t n2)
{
    if (!g2h_room(n + n2))
        return 0;
    uint32_t at = g2h_header(conn, type, flags, n + n2, arg), start = area->g2h.head;
    if (n)
        ring_copy_in(g2h, at, p, n);
    if (n2)
        ring_copy_in(g2h, at + n, p2, n2);
    g2h_publish(start + msg_size(n + n2));
    return 1;
}

/* ---- the table ---- */

static struct hconn **slot_of(uint32_t id)
{
    for (uint32_t i = 0; i < HC_SLOTS; i++) {
        struct hconn **s = &slots[(id + i) % HC_SLOTS];
        if (!*s || (*s)->id == id)
            return s;
    }
    return 0;
}

static struct hconn *find(uint32_t id)
{
    struct hconn **s = slot_of(id);
    return s ? *s : 0;
}

static void hook(void *ctx)
{
    struct hconn *c = ctx;
    c->dirty = 1;
    any_dirty = 1;
}

static struct hconn *hc_new(uint32_t id)
{
    struct hconn **s = nconns < HC_MAX ? slot_of(id) : 0;
    struct hconn *c = s && !*s ? kmalloc(sizeof(*c)) : 0;
    struct pipe *rx = c ? pipe_new() : 0, *tx = rx ? pipe_new() : 0;
    if (!tx || pipe_resize(rx, HC_RX_WINDOW) != (long)HC_RX_WINDOW) {
        if (tx) {
            pipe_drop(tx, 0);
            pipe_drop(tx, 1);
        }
        if (rx) {
            pipe_drop(rx, 0);
            pipe_drop(rx, 1);
        }
        if (c)
            kfree(c, sizeof(*c));
        return 0;
    }
    c->id = id;
    c->rx = rx;
    c->tx = tx;
    rx->hook = tx->hook = hook;
    rx->hook_ctx = tx->hook_ctx = c;
    c->tx_credit = area->host_window;
    *s = c;
    nconns++;
    return c;
}

/* Lets go of the kernel's end of rx (the reader then sees the end) or of tx. */
static void let_go(struct hconn *c, int rx)
{
    struct pipe **pp = rx ? &c->rx : &c->tx;
    if (!*pp)
        return;
    (*pp)->hook = 0;
    pipe_drop(*pp, !rx); /* the kernel writes rx and reads tx */
    *pp = 0;
}

/* Removes the entry and re-places those after it in its cluster (open addressing). */
static void hc_free(struct hconn *c)
{
    if (!c->sock_ends) { /* the socket never took its ends: they go too */
        if (c->rx)
            pipe_drop(c->rx, 1);
        if (c->tx)
            pipe_drop(c->tx, 0);
    }
    let_go(c, 1);
    let_go(c, 0);
    if (c->s)
        c->s->hc = 0;
    struct hconn **s = slot_of(c->id);
    uint32_t i = (uint32_t)(s - slots);
    *s = 0;
    for (uint32_t j = (i + 1) % HC_SLOTS; slots[j]; j = (j + 1) % HC_SLOTS) {
        struct hconn *m = slots[j];
        slots[j] = 0;
        *slot_of(m->id) = m;
    }
    nconns--;
    kfree(c, sizeof(*c));
}

/* The connection ended (err: what its socket reads next; 0 none). */
static void hc_end(struct hconn *c, uint32_t err)
{
    struct sock *s = c->s;
    if (s) {
        s->err = err;
        s->connecting = 0;
        s->seq++;
    }
    hc_free(c);
    wake(W_PIPE, 0);
}

/* ---- addresses ---- */

static void addr_to_net(const struct saddr *a, struct lel_net_addr *n)
{
    kmemset(n, 0, sizeof(*n));
    n->family = a->b[0];
    n->port = sa_port(a);
    kmemcpy(n->addr, a->b[0] == AF_INET_ ? a->b + 4 : a->b + 8, a->b[0] == AF_INET_ ? 4 : 16);
}

/* An address as a socket of `family` sees it (an IPv4 one mapped on an IPv6 socket). */
static void addr_from_net(const struct lel_net_addr *n, int family, struct saddr *a)
{
    struct saddr v;
    sa_default(&v, n->family == AF_INET6_ ? AF_INET6_ : AF_INET_, n->port, 0);
    kmemcpy(n->family == AF_INET6_ ? v.b + 8 : v.b + 4, n->addr, n->family == AF_INET6_ ? 16 : 4);
    sa_as_seen(&v, family, a);
}

/* ---- sending ---- */

/* Data the socket wrote, under the host's credit and the ring's room. */
static void pump_tx(struct hconn *c)
{
    while (c->tx && c->tx->count && c->tx_credit) {
        uint32_t n = g2h_space();
        n = n < LEL_NET_MSG_MAX ? n : LEL_NET_MSG_MAX;
        n = n < c->tx->count ? n : (uint32_t)c->tx->count;
        n = n < c->tx_credit ? n : (uint32_t)c->tx_credit;
        if (!n) {
            area->g2h.room = 1;
            return;
        }
        uint32_t start = area->g2h.head, at = g2h_header(c->id, LEL_NET_DATA, 0, n, 0);
        uint32_t off = at & ring_mask, first = n < ring_mask + 1 - off ? n : ring_mask + 1 - off;
        pipe_take(c->tx, g2h + off, first);
        if (n > first)
            pipe_take(c->tx, g2h, n - first);
        c->tx_credit -= n;
        g2h_publish(start + msg_size(n));
        netif_count(NETIF_ETH, 1, n);
    }
    if (c->tx && !c->tx->writers && !c->tx->count && !c->shut_sent) {
        if (!send_msg(c->id, LEL_NET_SHUT, 0, 0, 0, 0, 0, 0))
            return;
        c->shut_sent = 1;
        let_go(c, 0);
    }
}

/* Credit for what the socket's reader took: in quarters of the window, or all once it is
 * empty, so the host neither stalls nor hears of every small read. */
static void pump_credit(struct hconn *c)
{
    if (!c->rx)
        return;
    uint64_t taken = c->delivered - c->rx->count - c->credited;
    if (!taken || (taken < area->guest_window / 4 && c->rx->count))
        return;
    if (send_msg(c->id, LEL_NET_CREDIT, 0, (uint32_t)taken, 0, 0, 0, 0))
        c->credited += taken;
}

/* Everything the connection has for the host; it may end here (a refusal, a close). */
static void pump(struct hconn *c)
{
    c->dirty = 0;
    if (c->want & W_CONNECT) {
        if (!send_msg(c->id, LEL_NET_CONNECT, 0, LEL_NET_TCP, &c->to, sizeof(c->to), 0, 0))
            goto later;
        c->want &= ~(uint32_t)W_CONNECT;
    }
    if (c->want & W_REFUSE) {
        if (send_msg(c->id, LEL_NET_RESET, 0, ECONNREFUSED_, 0, 0, 0, 0))
            hc_free(c);
        else
            goto later;
        return;
    }
    if (c->want & W_ACCEPT) {
        if (!send_msg(c->id, LEL_NET_ACCEPTED, 0, 0, 0, 0, 0, 0))
            goto later;
        c->want &= ~(uint32_t)W_ACCEPT;
    }
    if (c->state != HC_OPEN)
        return;
    pump_tx(c);
    pump_credit(c);
    if ((c->want & W_CLOSE) && !(c->tx && c->tx->count)) {
        if (send_msg(c->id, LEL_NET_CLOSE, 0, 0, 0, 0, 0, 0))
            hc_free(c);
        else
            goto later;
        return;
    }
    if (c->tx && c->tx->count && c->tx_credit)
        goto later; /* the ring was full: again when the host makes room */
    return;
later:
    c->dirty = 1;
    any_dirty = 1;
}

/* ---- what the host sends ---- */

static void on_open(uint32_t id, const uint8_t *p, uint32_t n)
{
    struct lel_net_addr a[2];
    struct saddr to, peer;
    struct hconn *c = n >= sizeof(a) && (id & 0x80000000u) && !find(id) ? hc_new(id) : 0;
    if (!c) {
        send_msg(id, LEL_NET_RESET, 0, ECONNREFUSED_, 0, 0, 0, 0);
        return;
    }
    kmemcpy(a, p, sizeof(a));
    /* the sandbox's port: a listener on loopback (either family), the wildcard, or eth0's address */
    sa_default(&to, AF_INET_, a[0].port, 1);
    struct sock *l = sock_listener(&to, 0, 0);
    if (!l) {
        sa_default(&to, AF_INET6_, a[0].port, 1);
        l = sock_listener(&to, 0, 0);
    }
    if (!l) {
        sa_default(&to, AF_INET_, a[0].port, 0);
        kmemcpy(to.b + 4, netif_by_index(NETIF_ETH)->v4, 4);
        l = sock_listener(&to, 0, 0);
    }
    struct sock *srv = l && l->qn < l->backlog ? sock_new(l->family) : 0;
    if (!srv) {
        c->want = W_REFUSE;
        pump(c);
        return;
    }
    srv->rx = c->rx;
    srv->tx = c->tx;
    srv->connected = 1;
    srv->hc = c;
    c->sock_ends = 1;
    c->s = srv;
    c->state = HC_OPEN;
    c->want = W_ACCEPT;
    srv->addr = l->addr;
    if (sa_wild(&l->addr)) {
        struct saddr here;
        sa_default(&here, to.b[0], a[0].port, 1);
        sa_as_seen(&here, l->family, &srv->addr);
    }
    addr_from_net(&a[1], l->family, &peer);
    srv->peer = peer;
    l->queue[l->qn++] = srv;
    l->seq++;
    wake(W_PIPE, 0);
    pump(c);
}

static void on_connected(struct hconn *c, const uint8_t *p, uint32_t n)
{
    struct lel_net_addr a;
    struct sock *s = c->s;
    if (c->state != HC_CONNECTING || !s || n < sizeof(a))
        return;
    kmemcpy(&a, p, sizeof(a));
    c->state = HC_OPEN;
    s->connecting = 0;
    s->connected = 1;
    s->rx = c->rx;
    s->tx = c->tx;
    c->sock_ends = 1;
    addr_from_net(&a, s->family, &s->addr);
    s->seq++;
    c->dirty = any_dirty = 1;
    wake(W_PIPE, 0);
}

/* The bytes go from the ring into the pipe in at most two pieces (the ring may wrap): each
 * put wakes the readers and marks the connection. */
static void on_data(struct hconn *c, uint32_t at, uint32_t n)
{
    if (!c->rx) /* nobody reads: taken and credited all the same */
        return (void)(c->delivered += n, c->dirty = any_dirty = 1);
    uint32_t off = at & ring_mask, first = n < ring_mask + 1 - off ? n : ring_mask + 1 - off;
    uint64_t put = pipe_put(c->rx, h2g + off, first);
    if (put == first && n > first)
        put += pipe_put(c->rx, h2g, n - first);
    c->delivered += put;
    netif_count(NETIF_ETH, 0, put);
    if (put < n) { /* past the window (or out of memory): the host broke its word */
        send_msg(c->id, LEL_NET_RESET, 0, ENOBUFS_, 0, 0, 0, 0);
        hc_end(c, ECONNRESET_);
    }
}

static void on_dgram(uint32_t id, uint32_t at, uint32_t n);

static void dispatch(const struct lel_net_msg *m, uint32_t at)
{
    uint8_t small[64];
    uint32_t n = m->len < sizeof(small) ? m->len : (uint32_t)sizeof(small);
    if (m->type == LEL_NET_DGRAM) {
        on_dgram(m->conn, at, m->len);
        return;
    }
    ring_copy_out(h2g, at, small, n);
    if (m->type == LEL_NET_OPEN) {
        on_open(m->conn, small, n);
        return;
    }
    struct hconn *c = find(m->conn);
    if (!c)
        return;
    switch (m->type) {
    case LEL_NET_CONNECTED: on_connected(c, small, n); break;
    case LEL_NET_DATA: on_data(c, at, m->len); break;
    case LEL_NET_CREDIT:
        c->tx_credit += m->arg;
        c->dirty = any_dirty = 1;
        break;
    case LEL_NET_SHUT: let_go(c, 1); break;
    case LEL_NET_RESET:
        hc_end(c, m->arg && m->arg < 4096 ? m->arg : ECONNRESET_);
        break;
    }
}

/* ---- datagrams ---- */

static void on_dgram(uint32_t id, uint32_t at, uint32_t n)
{
    struct lel_net_addr a;
    struct sock *s = sock_find(id);
    if (!s || n < sizeof(a) || n - sizeof(a) > DGRAM_MAX)
        return;
    ring_copy_out(h2g, at, &a, sizeof(a));
    struct saddr from;
    addr_from_net(&a, s->family, &from);
    uint32_t len = n - (uint32_t)sizeof(a), off = (at + (uint32_t)sizeof(a)) & ring_mask;
    uint32_t first = len < ring_mask + 1 - off ? len : ring_mask + 1 - off;
    dgram_deliver(s, h2g + off, first, h2g, len - first, &from);
    netif_count(NETIF_ETH, 0, len);
}

long hc_dgram_send(struct sock *s, const struct saddr *to, const struct seg *sg, int nsg, uint64_t n)
{
    struct lel_net_addr a;
    if (!area || area->guest_epoch != area->host_epoch || !area->host_epoch)
        return -ENETUNREACH_;
    addr_to_net(to, &a);
    if (!g2h_room((uint32_t)(n + sizeof(a))))
        return (long)n; /* dropped, as a full network drops */
    uint32_t start = area->g2h.head, at = g2h_header((uint32_t)s->id, LEL_NET_DGRAM, 0, (uint32_t)(n + sizeof(a)), 0);
    ring_copy_in(g2h, at, &a, sizeof(a));
    at += (uint32_t)sizeof(a);
    for (int i = 0; i < nsg; i++)
        for (uint64_t off = 0; off < sg[i].n;) {
            uint32_t o = at & ring_mask, k = ring_mask + 1 - o;
            k = k < sg[i].n - off ? k : (uint32_t)(sg[i].n - off);
            if (copy_user(sg[i].p + off, g2h + o, k, 0) < 0)
                return -EFAULT; /* nothing published */
            off += k;
            at += k;
        }
    g2h_publish(start + msg_size((uint32_t)(n + sizeof(a))));
    netif_count(NETIF_ETH, 1, n);
    s->hc_dgram = 1;
    return (long)n;
}

/* ---- the attachment ---- */

/* A new attachment (the host restored the VM, or boots it): every connection ended with the
 * host's side of it; the rings start empty. */
static void reattach(void)
{
    for (uint32_t i = 0; i < HC_SLOTS; i++)
        while (slots[i])
            hc_end(slots[i], ECONNRESET_);
    area->g2h.head = area->g2h.tail = area->g2h.kick = area->g2h.room = 0;
    area->h2g.head = area->h2g.tail = area->h2g.kick = area->h2g.room = 0;
    any_dirty = 0;
    __atomic_store_n(&area->guest_epoch, area->host_epoch, __ATOMIC_RELEASE);
    outl(LEL_PORT_NETBELL, 1);
}

void hc_init(uint64_t gpa, uint64_t bytes)
{
    uint64_t ring = (bytes - LEL_NET_RING_OFF) / 2;
    if (bytes <= LEL_NET_RING_OFF || (ring & (ring - 1)) || ring < 2 * (LEL_NET_MSG_MAX + 64))
        return;
    area = (struct lel_net_area *)(LEL_DMAP_BASE + gpa);
    kmemset(area, 0, LEL_NET_RING_OFF);
    area->magic = LEL_NET_MAGIC;
    area->ring_bytes = (uint32_t)ring;
    area->guest_window = HC_RX_WINDOW; /* what a connection's receive pipe holds */
    g2h = (uint8_t *)area + LEL_NET_RING_OFF;
    h2g = g2h + ring;
    ring_mask = (uint32_t)ring - 1;
}

static int attached(void)
{
    return area && area->host_epoch && __atomic_load_n(&area->guest_epoch, __ATOMIC_ACQUIRE) == area->host_epoch;
}

/* Takes every message the host has written; 1 when there were any. */
static int consume(void)
{
    int any = 0;
    for (;;) {
        uint32_t head = __atomic_load_n(&area->h2g.head, __ATOMIC_ACQUIRE), tail = area->h2g.tail;
        struct lel_net_msg m;
        if (head == tail)
            break;
        if (head - tail > ring_mask + 1 || head - tail < sizeof(m))
            break; /* the host's indices make no sense: wait for a new attachment */
        ring_copy_out(h2g, tail, &m, sizeof(m));
        if (m.len > LEL_NET_MSG_MAX + sizeof(struct lel_net_addr) || msg_size(m.len) > head - tail)
            break;
        dispatch(&m, tail + (uint32_t)sizeof(m));
        __atomic_store_n(&area->h2g.tail, tail + msg_size(m.len), __ATOMIC_RELEASE);
        any = 1;
    }
    return any;
}

/* Pumps every connection marked dirty (gathered first: a pump may free one, which moves
 * others in the table). */
static void pump_dirty(void)
{
    uint32_t ids[HC_MAX], n = 0;
    any_dirty = 0;
    for (uint32_t i = 0; i < HC_SLOTS && n < HC_MAX; i++)
        if (slots[i] && slots[i]->dirty)
            ids[n++] = slots[i]->id;
    for (uint32_t i = 0; i < n; i++) {
        struct hconn *c = find(ids[i]);
        if (c && c->dirty)
            pump(c);
    }
}

int hc_poll(void)
{
    if (!area || !area->host_epoch)
        return 0;
    if (area->guest_epoch != area->host_epoch)
        reattach();
    for (int round = 0; round < 8; round++) {
        int took = consume();
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (took && area->h2g.room) { /* the host waits for room */
            area->h2g.room = 0;
            outl(LEL_PORT_NETBELL, 1);
        }
        if (any_dirty)
            pump_dirty();
        area->h2g.kick = 1;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&area->h2g.head, __ATOMIC_ACQUIRE) == area->h2g.tail)
            return 0;
        area->h2g.kick = 0;
    }
    /* the host keeps writing: with the kick cleared it will not interrupt for what is there,
     * so the caller must not wait for it (it polls again after its step) */
    return 1;
}

/* ---- the sockets' side ---- */

long hc_connect(struct sock *s, const struct saddr *to, int nonblock)
{
    struct proc *cur = proc_cur();
    if (s->connecting)
        return -EALREADY_;
    if (!attached())
        return -ENETUNREACH_;
    uint32_t id = next_id;
    while (find(id))
        id = id + 1 < 0x80000000u ? id + 1 : 1;
    next_id = id + 1 < 0x80000000u ? id + 1 : 1;
    struct hconn *c = hc_new(id);
    if (!c)
        return -ENOBUFS_;
    c->s = s;
    c->state = HC_CONNECTING;
    c->want = W_CONNECT;
    addr_to_net(to, &c->to);
    s->hc = c;
    s->connecting = 1;
    s->err = 0;
    s->peer = *to;
    pump(c);
    if (nonblock)
        return -EINPROGRESS_;
    while (s->connecting && !sig_ready(cur))
        block(W_PIPE);
    if (s->connecting)
        return -EINTR; /* it goes on; poll says when it is done, as on Linux */
    long err = -(long)s->err;
    s->err = 0;
    return s->connected ? 0 : err ? err : -ECONNREFUSED_;
}

void hc_touch(struct sock *s)
{
    if (s->hc && attached())
        pump(s->hc);
}

void hc_sock_closed(struct sock *s)
{
    if (s->hc_dgram && attached())
        send_msg((uint32_t)s->id, LEL_NET_DGRAM_CLOSE, 0, 0, 0, 0, 0, 0);
    struct hconn *c = s->hc;
    if (!c)
        return;
    c->s = 0;
    s->hc = 0;
    let_go(c, 1); /* nobody reads any more */
    if (c->state != HC_OPEN) { /* not up yet: the host drops it */
        send_msg(c->id, LEL_NET_RESET, 0, ECONNRESET_, 0, 0, 0, 0);
        hc_free(c);
        return;
    }
    c->want |= W_CLOSE;
    if (attached())
        pump(c);
}

void hc_setopt(struct sock *s, int opt, int on)
{
    if (s->hc && attached())
        send_msg(s->hc->id, LEL_NET_OPT, (uint16_t)(on != 0), (uint32_t)opt, 0, 0, 0, 0);
}
