/* Datagram sockets inside the sandbox: UDP over loopback (AF_INET/AF_INET6 SOCK_DGRAM) and
 * AF_UNIX SOCK_DGRAM; they share socket.c's addresses, binding
 * and socket table. A datagram is copied whole into the receiver's queue (its own
 * pages, up to UDP's 65507 bytes) and read whole: what does not fit the reader's buffer is cut
 * off (MSG_TRUNC). As on Linux, a full receiver drops UDP datagrams (the sender is not told)
 * and makes a unix sender wait; UDP to a port nobody has bound is dropped, and a connected
 * sender learns it at its next receive (ECONNREFUSED, Linux's ICMP error); a connected
 * receiver takes datagrams from its peer only. */
#include "dgram.h"

#include "../fs/epoll.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "cmsg.h"
#include "hostconn.h"
#include "netif.h"
#include "netlink.h"
#include "socket.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define DGRAM_COST 256
#define DGRAM_SEGS 64       /* iovecs a sendmsg/recvmsg may have here */
#define MSG_TRUNC_ 0x20

static void dgram_free(struct dgram *d)
{
    for (uint32_t i = 0; i * PAGE_SIZE < d->len; i++)
        if (d->pages[i])
            kpage_free(d->pages[i]);
    kfree(d, sizeof(*d));
}

/* Copies between the datagram's pages and the user's segments, from the start, `n` bytes at
 * most; `out`: to the user. Returns the bytes copied or -EFAULT. */
static long dgram_copy(struct dgram *d, const struct seg *sg, int nsg, uint64_t n, int out)
{
    uint64_t done = 0;
    for (int i = 0; i < nsg && done < n; i++)
        for (uint64_t off = 0; off < sg[i].n && done < n;) {
            uint64_t in_page = done % PAGE_SIZE, c = PAGE_SIZE - in_page;
            c = c < sg[i].n - off ? c : sg[i].n - off;
            c = c < n - done ? c : n - done;
            if (copy_user(sg[i].p + off, (uint8_t *)d->pages[done / PAGE_SIZE] + in_page, c, out) < 0)
                return -EFAULT;
            off += c;
            done += c;
        }
    return (long)done;
}

/* A new datagram holding the segments' bytes (n in all), from `from`, with its hop limit and
 * traffic class. */
static struct dgram *dgram_make(const struct seg *sg, int nsg, uint64_t n, const struct saddr *from, const int anc[2],
                                long *err)
{
    struct dgram *d = kmalloc(sizeof(*d));
    *err = -ENOBUFS_;
    if (!d)
        return 0;
    d->from = *from;
    d->hlim = (uint8_t)anc[0];
    d->tclass = (uint8_t)anc[1];
    d->len = (uint32_t)n;
    for (uint32_t i = 0; i * PAGE_SIZE < n; i++)
        if (!(d->pages[i] = kpage_alloc_user())) {
            dgram_free(d);
            return 0;
        }
    if (dgram_copy(d, sg, nsg, n, 0) < 0) {
        *err = -EFAULT;
        dgram_free(d);
        return 0;
    }
    return d;
}

void dgram_flush(struct sock *s)
{
    while (s->dq) {
        struct dgram *d = s->dq;
        s->dq = d->next;
        dgram_free(d);
    }
    s->dq_last = 0;
    s->dq_bytes = 0;
}

/* Resolves a unix datagram address to its socket file (held), or an error. */
static long dgram_unix_file(const struct saddr *to, struct inode **ino)
{
    struct proc *cur = proc_cur();
    *ino = 0;
    if (to->len <= 2)
        return -EINVAL;
    if (!to->b[2]) /* an abstract name */
        return 0;
    long err = fs_lookup(cur->files->cwd, (const char *)to->b + 2, 1, ino);
    if (err < 0)
        return err;
    if (((*ino)->mode & S_IFMT) != S_IFSOCK)
        return -ECONNREFUSED_;
    fs_hold(*ino);
    return 0;
}

/* The address a datagram from `s` carries: its own, the wildcard as loopback; an unbound unix
 * socket has none (length 0). An inet socket without a port gets an ephemeral one first. */
static long dgram_from(struct sock *s, struct saddr *from)
{
    if (!s->addr.len && s->family != AF_UNIX_) {
        struct saddr any;
        sa_default(&any, s->family, 0, 0);
        long r = sock_bind(s, &any);
        if (r < 0)
            return r;
    }
    *from = s->addr;
    if (s->family == AF_UNIX_ && s->addr.len <= 2)
        from->len = 0;
    else if (s->family != AF_UNIX_ && sa_wild(&s->addr))
        sa_default(from, s->family, sa_port(&s->addr), 1);
    return 0;
}

static int sa_same(const struct saddr *a, const struct saddr *b)
{
    return a->len == b->len && !kmemcmp(a->b, b->b, a->len);
}

/* dgram_send with the hop limit and traffic class the datagram goes with (-1: the socket's) */
static long send_anc(struct file *f, const struct seg *sg, int nsg, uint64_t msg, const struct saddr *to, const int want[2])
{
    int anc[2] = {want[0] >= 0 ? want[0] : sock_opt(f->sock, 41, 16, -1), /* IPV6_UNICAST_HOPS */
                  want[1] >= 0 ? want[1] : sock_opt(f->sock, 41, 67, 0)}; /* IPV6_TCLASS */
    anc[0] = anc[0] >= 0 && anc[0] <= 255 ? anc[0] : 64;
    anc[1] &= 0xff;
    struct proc *cur = proc_cur();
    struct sock *s = f->sock;
    struct saddr from;
    struct inode *ino = 0;
    uint64_t n = 0;
    long err;
    int nb = (f->flags & O_NONBLOCK_) || (msg & MSG_DONTWAIT_);
    for (int i = 0; i < nsg; i++)
        n += sg[i].n;
    if (s->family == AF_NETLINK_)
        return nl_send(s, sg, nsg, n, to); /* to the kernel, which answers at once */
    if (!to && !s->connected)
        return s->family == AF_UNIX_ ? -ENOTCONN_ : -EDESTADDRREQ_;
    int pair = !to && s->family == AF_UNIX_ && s->peer.len <= 2; /* socketpair's: no address, its pair */
    to = to ? to : &s->peer;
    if (n > DGRAM_MAX)
        return -EMSGSIZE_;
    if ((err = s->family == AF_UNIX_ && !pair ? dgram_unix_file(to, &ino) : 0) < 0 || (err = dgram_from(s, &from)) < 0)
        return err;
    if (s->family != AF_UNIX_ && !sa_local(to))
        return hc_dgram_send(s, to, sg, nsg, n); /* outside the guest: through the host */
    for (;;) { /* looked up again after each wait: the receiver may have gone meanwhile */
        struct sock *r = pair ? s->dpeer : sock_listener(to, ino, s->dgram);
        struct saddr seen;
        if (r)
            sa_as_seen(&from, r->family, &seen);
        if (!r || (r->connected && r->dpeer != s && !sa_same(&r->peer, &seen))) {
            if (!r && s->connected && s->family != AF_UNIX_)
                s->err = ECONNREFUSED_; /* the port is closed: the next receive says so */
            err = s->family == AF_UNIX_ ? (r ? -EPERM : -ECONNREFUSED_) : (long)n;
            break;
        }
        if (r->dq_bytes + n + DGRAM_COST > DGRAM_RCVBUF) { /* full: UDP drops, unix waits */
            err = s->family != AF_UNIX_ ? (long)n : nb ? -EAGAIN : sig_ready(cur) ? -EINTR : 0;
            if (s->family != AF_UNIX_ || err < 0)
                break;
            block(W_PIPE);
            continue;
        }
        struct dgram *d = dgram_make(sg, nsg, n, &seen, anc, &err);
        if (d) {
            if (r->dq_last)
                r->dq_last->next = d;
            else
                r->dq = d;
            r->dq_last = d;
            r->dq_bytes += n + DGRAM_COST;
            r->seq++;
            wake(W_PIPE, 0);
            err = (long)n;
            if (s->family != AF_UNIX_)
                netif_count(NETIF_LO, 1, n);
        }
        break;
    }
    fs_release(ino);
    return err;
}

long dgram_send(struct file *f, const struct seg *sg, int nsg, uint64_t msg, const struct saddr *to)
{
    const int dflt[2] = {-1, -1};
    return send_anc(f, sg, nsg, msg, to, dflt);
}

/* dgram_recv, and the datagram's hop limit and traffic class into `anc` */
static long recv_anc(struct file *f, const struct seg *sg, int nsg, uint64_t msg, struct saddr *from, int *trunc,
                     uint8_t anc[2])
{
    struct proc *cur = proc_cur();
    struct sock *s = f->sock;
    int nb = (f->flags & O_NONBLOCK_) || (msg & MSG_DONTWAIT_);
    uint64_t room = 0;
    for (int i = 0; i < nsg; i++)
        room += sg[i].n;
    while (!s->dq && !s->err) {
        if (nb)
            return -EAGAIN;
        if (sig_ready(cur))
            return -EINTR;
        block(W_PIPE);
    }
    if (!s->dq) { /* an error to report, once */
        long e = -(long)s->err;
        s->err = 0;
        s->seq++;
        return e;
    }
    struct dgram *d = s->dq;
    long got = dgram_copy(d, sg, nsg, room < d->len ? room : d->len, 1);
    if (got < 0)
        return got;
    if (from)
        *from = d->from;
    anc[0] = d->hlim;
    anc[1] = d->tclass;
    *trunc = d->len > room;
    long r = (msg & MSG_TRUNC_) ? (long)d->len : got;
    if (!(msg & MSG_PEEK_)) {
        s->dq = d->next;
        if (!s->dq)
            s->dq_last = 0;
        s->dq_bytes -= d->len + DGRAM_COST;
        s->seq++;
        dgram_free(d);
        wake(W_PIPE, 0); /* unix senders waiting for room */
    }
    return r;
}

long dgram_recv(struct file *f, const struct seg *sg, int nsg, uint64_t msg, struct saddr *from, int *trunc)
{
    uint8_t anc[2];
    return recv_anc(f, sg, nsg, msg, from, trunc, anc);
}

long dgram_connect(struct sock *s, struct saddr *a)
{
    struct inode *ino = 0;
    struct saddr from;
    long err;
    if (s->family == AF_NETLINK_)
        return nl_connect(s, a);
    if (s->family == AF_UNIX_) {
        if ((err = dgram_unix_file(a, &ino)) < 0)
            return err;
        err = sock_listener(a, ino, 1) ? 0 : -ECONNREFUSED_;
        fs_release(ino);
        if (err < 0)
            return err;
    } else if ((err = dgram_from(s, &from)) < 0) {
        return err;
    }
    s->peer = *a;
    if (s->family != AF_UNIX_ && sa_wild(a))
        sa_default(&s->peer, a->b[0], sa_port(a), 1);
    s->connected = 1;
    s->seq++;
    return 0;
}

/* The user's iovecs as segments; -EMSGSIZE past DGRAM_SEGS. */
static long dgram_segs(uint64_t iov, uint64_t cnt, struct seg *sg)
{
    if (cnt > DGRAM_SEGS)
        return -EMSGSIZE_;
    if (cnt && copy_user(iov, sg, cnt * sizeof(*sg), 0) < 0)
        return -EFAULT;
    return (long)cnt;
}

uint32_t dgram_events(const struct sock *s)
{
    return (s->dq || s->err ? POLLIN_ : 0) | (s->err ? POLLERR_ : 0) | POLLOUT_;
}

long dgram_sendrecv(struct file *f, uint64_t buf, uint64_t n, uint64_t msg, uint64_t uaddr, uint64_t ulen, int write)
{
    struct seg sg = {buf, n};
    struct saddr a;
    int trunc;
    long r = write && uaddr ? sa_from_user(uaddr, ulen, f->sock->family, &a) : 0;
    if (r < 0)
        return r;
    file_hold(f); /* while it may block */
    r = write ? dgram_send(f, &sg, 1, msg, uaddr ? &a : 0) : dgram_recv(f, &sg, 1, msg, &a, &trunc);
    file_unhold(f);
    long e = !write && r >= 0 && uaddr ? sa_to_user(&a, uaddr, ulen) : 0;
    return e < 0 ? e : r;
}

/* sendmsg's ancillary data on a datagram socket: IPV6_HOPLIMIT and IPV6_TCLASS (an int each,
 * -1..255; EINVAL else) on inet6; other IPv6 items and SOL_SOCKET ones are EINVAL, as on Linux,
 * and other levels are not looked at. */
static long send_cmsgs(struct sock *s, const uint64_t h[7], int anc[2])
{
    uint64_t p = h[4], end = h[4] + h[5];
    struct cmsg_in c;
    long r;
    while ((r = cmsg_next(&p, end, &c)) > 0) {
        int v;
        if (c.level != 41 && c.level != SOL_SOCKET_)
            continue;
        if (c.level == SOL_SOCKET_ || s->family != AF_INET6_ || (c.type != 52 && c.type != 67) || c.len != 4)
            return -EINVAL;
        if (copy_user(c.data, &v, 4, 0) < 0)
            return -EFAULT;
        if (v < -1 || v > 255)
            return -EINVAL;
        anc[c.type == 67] = v;
    }
    return r;
}

/* recvmsg's: what IPV6_RECVHOPLIMIT and IPV6_RECVTCLASS ask for, in Linux's order */
static long recv_cmsgs(struct sock *s, struct cmsg_out *o, const uint8_t anc[2])
{
    int hl = anc[0], tc = anc[1];
    if (s->family != AF_INET6_)
        return 0;
    if (sock_opt(s, 41, 51, 0) && cmsg_put(o, 41, 52, &hl, 4) < 0) /* IPV6_RECVHOPLIMIT: IPV6_HOPLIMIT */
        return -EFAULT;
    if (sock_opt(s, 41, 66, 0) && cmsg_put(o, 41, 67, &tc, 4) < 0) /* IPV6_RECVTCLASS: IPV6_TCLASS */
        return -EFAULT;
    return 0;
}

long dgram_msg(struct file *f, uint64_t umsg, const uint64_t h[7], uint64_t msg, int write)
{
    struct seg sg[DGRAM_SEGS];
    struct saddr a;
    struct cmsg_out o;
    int trunc = 0, want[2] = {-1, -1};
    uint8_t anc[2] = {64, 0};
    long r = dgram_segs(h[2], h[3], sg), nsg = r;
    if (r >= 0 && write && h[0])
        r = sa_from_user(h[0], (uint32_t)h[1], f->sock->family, &a);
    if (r >= 0 && write && h[5])
        r = send_cmsgs(f->sock, h, want);
    if (r < 0)
        return r;
    file_hold(f); /* while it may block */
    r = write ? send_anc(f, sg, (int)nsg, msg, h[0] ? &a : 0, want) : recv_anc(f, sg, (int)nsg, msg, &a, &trunc, anc);
    file_unhold(f);
    if (write || r < 0)
        return r;
    cmsg_out_init(&o, h[4], h[5]);
    if (recv_cmsgs(f->sock, &o, anc) < 0)
        return -EFAULT;
    uint32_t cap = (uint32_t)h[1], n = a.len < cap ? a.len : cap, full = h[0] ? a.len : 0;
    uint32_t flags = (trunc ? MSG_TRUNC_ : 0) | o.flags;
    if ((h[0] && n && copy_user(h[0], a.b, n, 1) < 0) || copy_user(umsg + 8, &full, 4, 1) < 0 ||
        copy_user(umsg + 40, &o.used, 8, 1) < 0 || copy_user(umsg + 48, &flags, 4, 1) < 0)
        return -EFAULT; /* msg_namelen, msg_controllen, msg_flags */
    return r;
}

long dgram_rwv(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg)
{
    struct seg sg[DGRAM_SEGS];
    int trunc;
    long n = dgram_segs(iov, cnt, sg);
    if (n < 0)
        return n;
    return write ? dgram_send(f, sg, (int)n, msg, 0) : dgram_recv(f, sg, (int)n, msg, 0, &trunc);
}

long dgram_pair(struct sock **a, struct sock **b)
{
    if (!(*a = sock_new(AF_UNIX_)) || !(*b = sock_new(AF_UNIX_))) {
        if (*a)
            sock_close(*a);
        return -ENOMEM;
    }
    struct sock *x = *a, *y = *b;
    x->dgram = y->dgram = x->connected = y->connected = 1;
    x->dpeer = y;
    y->dpeer = x;
    sa_default(&x->peer, AF_UNIX_, 0, 0);
    y->peer = x->peer;
    return 0;
}

void dgram_deliver(struct sock *r, const void *p1, uint32_t n1, const void *p2, uint32_t n2, const struct saddr *from)
{
    uint64_t n = (uint64_t)n1 + n2;
    if (n > DGRAM_MAX || r->dq_bytes + n + DGRAM_COST > DGRAM_RCVBUF)
        return;
    if (r->connected && !sa_same(&r->peer, from))
        return; /* a connected socket takes its peer's datagrams only */
    struct dgram *d = kmalloc(sizeof(*d));
    if (!d)
        return;
    d->from = *from;
    d->len = (uint32_t)n;
    d->hlim = 64;
    for (uint32_t i = 0; i * PAGE_SIZE < n; i++)
        if (!(d->pages[i] = kpage_alloc_user())) {
            dgram_free(d);
            return;
        }
    for (uint64_t done = 0; done < n;) {
        const uint8_t *src = done < n1 ? (const uint8_t *)p1 + done : (const uint8_t *)p2 + (done - n1);
        uint64_t left = done < n1 ? n1 - done : n - done, c = PAGE_SIZE - done % PAGE_SIZE;
        c = c < left ? c : left;
        kmemcpy((uint8_t *)d->pages[done / PAGE_SIZE] + done % PAGE_SIZE, src, c);
        done += c;
    }
    if (r->dq_last)
        r->dq_last->next = d;
    else
        r->dq = d;
    r->dq_last = d;
    r->dq_bytes += n + DGRAM_COST;
    r->seq++;
    wake(W_PIPE, 0);
}
