/* Stream sockets inside the sandbox. The guest has no network device, so
 * what a program can reach is the guest itself: AF_UNIX (paths, which appear in the file system
 * as socket files, and abstract names) and TCP over loopback (127.0.0.0/8, ::1, and the
 * wildcard addresses, which mean the same here). That is what a template's server and its
 * readyCmd probe need (`nc`, `wget`, `httpd`, Go's net/http) and what socketpair users need.
 *
 * A connection is two pipes, one each way: a socket reads its `rx` and writes its `tx`, the
 * peer the other way round, so reads, writes, blocking, EOF, EPIPE/SIGPIPE and readiness are
 * the pipes'. connect() completes at once (the listener's queue is the backlog) and accept()
 * takes from that queue. Datagram sockets are dgram.c's; descriptors pass over unix streams
 * (scm.c). */
#include "socket.h"

#include "../fs/epoll.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/pipe.h"
#include "../fs/procfs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "dgram.h"
#include "hostconn.h"
#include "netif.h"
#include "netlink.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define MSG_WAITALL_ 0x100
#define MSG_NOSIGNAL_ 0x4000

static struct sock *socks_bound, *socks_all;

static uint64_t next_sock_id = 1000;

static uint16_t next_port = 32768;

uint16_t sa_port(const struct saddr *a)
{
    return (uint16_t)(a->b[2] << 8 | a->b[3]);
}

static void sa_set_port(struct saddr *a, uint16_t port)
{
    a->b[2] = (uint8_t)(port >> 8);
    a->b[3] = (uint8_t)port;
}

static int all_zero(const uint8_t *p, int n)
{
    while (n-- > 0)
        if (*p++)
            return 0;
    return 1;
}

/* An inet6 address that stands for an IPv4 one (::ffff:a.b.c.d): the IPv4 part, else NULL. */
static const uint8_t *sa_mapped(const struct saddr *a)
{
    return all_zero(a->b + 8, 10) && a->b[18] == 0xff && a->b[19] == 0xff ? a->b + 20 : 0;
}

int sa_wild(const struct saddr *a)
{
    return a->b[0] == AF_INET_ ? all_zero(a->b + 4, 4) : all_zero(a->b + 8, 16);
}

int sa_local(const struct saddr *a)
{
    const uint8_t *v4 = a->b[0] == AF_INET_ ? a->b + 4 : sa_mapped(a);
    if (v4) /* loopback, the wildcard, or eth0's address (net/netif.c) */
        return v4[0] == 127 || all_zero(v4, 4) || !kmemcmp(v4, netif_by_index(NETIF_ETH)->v4, 4);
    return sa_wild(a) || (all_zero(a->b + 8, 15) && a->b[23] == 1);
}

long sa_from_user(uint64_t uaddr, uint64_t len, int family, struct saddr *a)
{
    kmemset(a, 0, sizeof(*a));
    if (len < 2 || len > 128)
        return -EINVAL;
    a->len = len > SADDR_MAX ? SADDR_MAX : (uint32_t)len;
    if (copy_user(uaddr, a->b, a->len, 0) < 0)
        return -EFAULT;
    if (a->b[0] != family || a->b[1])
        return -EAFNOSUPPORT_;
    if (family == AF_INET_ || family == AF_INET6_ || family == AF_NETLINK_) {
        uint32_t want = family == AF_INET_ ? 16 : family == AF_NETLINK_ ? 12 : 28;
        if (a->len < (family == AF_INET6_ ? 24 : want))
            return -EINVAL;
        kmemset(a->b + want, 0, SADDR_MAX - want);
        a->len = want;
        return 0;
    }
    if (a->len > 2 && a->b[2]) { /* a path: up to its NUL, which the length then counts */
        uint32_t n = 2;
        while (n < a->len && a->b[n])
            n++;
        if (n == SADDR_MAX)
            return -EINVAL;
        a->b[n] = 0;
        a->len = n + 1;
    }
    return 0;
}

long sa_to_user(const struct saddr *a, uint64_t uaddr, uint64_t ulen)
{
    int32_t cap;
    if (!uaddr || !ulen)
        return 0;
    if (copy_user(ulen, &cap, 4, 0) < 0)
        return -EFAULT;
    if (cap < 0)
        return -EINVAL;
    uint32_t n = (uint32_t)cap < a->len ? (uint32_t)cap : a->len;
    if ((n && copy_user(uaddr, (void *)a->b, n, 1) < 0) || copy_user(ulen, (void *)&a->len, 4, 1) < 0)
        return -EFAULT;
    return 0;
}

void sa_default(struct saddr *a, int family, uint16_t port, int loop)
{
    kmemset(a, 0, sizeof(*a));
    a->b[0] = (uint8_t)family;
    a->len = family == AF_INET_ ? 16 : family == AF_INET6_ ? 28 : family == AF_NETLINK_ ? 12 : 2;
    if (family == AF_UNIX_ || family == AF_NETLINK_)
        return;
    sa_set_port(a, port);
    if (loop && family == AF_INET_) {
        a->b[4] = 127;
        a->b[7] = 1;
    } else if (loop) {
        a->b[23] = 1;
    }
}

void sa_as_seen(const struct saddr *from, int family, struct saddr *out)
{
    *out = *from;
    if (family != AF_INET6_ || from->len == 0 || from->b[0] != AF_INET_)
        return;
    sa_default(out, AF_INET6_, sa_port(from), 0);
    out->b[18] = out->b[19] = 0xff;
    kmemcpy(out->b + 20, from->b + 4, 4);
}

/* What addresses a bound inet socket covers, as Linux's bind conflict check and lookup see
 * them: an IPv4 part (a v4 socket's address, a v6 one bound to a mapped address, or a v6
 * wildcard that is not v6only), an IPv6 part (a v6 socket's other addresses), either one a
 * wildcard. */
struct span {
    int has4, has6, wild4, wild6;
    uint8_t v4[4], v6[16];
};

static void span_of(const struct saddr *a, int v6only, struct span *sp)
{
    kmemset(sp, 0, sizeof(*sp));
    const uint8_t *m = a->b[0] == AF_INET_ ? a->b + 4 : sa_mapped(a);
    if (m) {
        sp->has4 = 1;
        sp->wild4 = all_zero(m, 4);
        kmemcpy(sp->v4, m, 4);
        return;
    }
    sp->has6 = 1;
    sp->wild6 = all_zero(a->b + 8, 16);
    kmemcpy(sp->v6, a->b + 8, 16);
    if (sp->wild6 && !v6only)
        sp->has4 = sp->wild4 = 1;
}

/* Whether two bound sockets' addresses meet: equal, or one a wildcard of the other's family. */
static int spans_meet(const struct span *x, const struct span *y)
{
    if (x->has4 && y->has4 && (x->wild4 || y->wild4 || !kmemcmp(x->v4, y->v4, 4)))
        return 1;
    return x->has6 && y->has6 && (x->wild6 || y->wild6 || !kmemcmp(x->v6, y->v6, 16));
}

static int reuse_addr(const struct sock *s)
{
    return sock_opt(s, 1, 2, 0) != 0; /* SOL_SOCKET, SO_REUSEADDR */
}

static int reuse_port(const struct sock *s)
{
    return sock_opt(s, 1, 15, 0) != 0; /* SOL_SOCKET, SO_REUSEPORT */
}

/* Whether `s`, bound (or about to be) to `a`, may not share its port with bound socket `o`,
 * as Linux decides (inet_csk_bind_conflict, udp_lib_lport_inuse): only when their addresses
 * meet; then TCP lets two SO_REUSEADDR sockets share it while `o` does not listen, UDP two
 * SO_REUSEADDR ones always, and both two SO_REUSEPORT ones of the same user. */
static int bind_conflict(const struct sock *s, const struct saddr *a, const struct sock *o)
{
    struct span x, y;
    if (o == s || o->family == AF_UNIX_ || o->family == AF_NETLINK_ || o->dgram != s->dgram || sa_port(&o->addr) != sa_port(a))
        return 0;
    span_of(a, s->family == AF_INET6_ && s->v6only, &x);
    span_of(&o->addr, o->family == AF_INET6_ && o->v6only, &y);
    if (!spans_meet(&x, &y))
        return 0;
    if (reuse_addr(s) && reuse_addr(o) && (s->dgram || !o->listening))
        return 0;
    return !(reuse_port(s) && reuse_port(o) && s->uid == o->uid);
}

static int bind_conflicts(const struct sock *s, const struct saddr *a)
{
    for (struct sock *o = socks_bound; o; o = o->next)
        if (bind_conflict(s, a, o))
            return 1;
    return 0;
}

long sock_listen_check(const struct sock *s)
{
    return s->family != AF_UNIX_ && bind_conflicts(s, &s->addr) ? -EADDRINUSE_ : 0;
}

/* Whether a TCP (dgram 0) or UDP (1) port has any socket bound to it (an ephemeral port is
 * one nobody has, in either family). */
static int port_used(uint16_t port, int dgram)
{
    for (struct sock *s = socks_bound; s; s = s->next)
        if (s->family != AF_UNIX_ && s->family != AF_NETLINK_ && s->dgram == dgram && sa_port(&s->addr) == port)
            return 1;
    return 0;
}

/* A free port from the ephemeral range (32768..60999, as Linux's), 0 when all are taken. */
static uint16_t port_ephemeral(int dgram)
{
    for (int i = 0; i < 61000 - 32768; i++) {
        uint16_t p = next_port++;
        if (next_port == 61000)
            next_port = 32768;
        if (!port_used(p, dgram))
            return p;
    }
    return 0;
}

/* How well bound socket `s` takes what is sent to inet address `a`: 0 not at all, 3 its very
 * address, 2 a wildcard of its family, 1 an IPv6 wildcard taking IPv4 (Linux prefers them so).
 * A wildcard destination is this host's loopback, as Linux routes it. */
static int listener_score(const struct sock *s, const struct saddr *a)
{
    struct span to, at;
    if (s->family == AF_UNIX_ || s->family == AF_NETLINK_ || sa_port(&s->addr) != sa_port(a))
        return 0;
    span_of(a, 1, &to);
    if (to.has4 && to.wild4)
        to.v4[0] = 127, to.v4[3] = 1;
    if (to.has6 && to.wild6)
        to.v6[15] = 1;
    span_of(&s->addr, s->family == AF_INET6_ && s->v6only, &at);
    if (to.has4 && at.has4)
        return !at.wild4 ? (kmemcmp(at.v4, to.v4, 4) ? 0 : 3) : at.has6 ? 1 : 2;
    if (to.has6 && at.has6)
        return !at.wild6 ? (kmemcmp(at.v6, to.v6, 16) ? 0 : 3) : 2;
    return 0;
}

struct sock *sock_listener(const struct saddr *a, struct inode *ino, int dgram)
{
    struct sock *best = 0;
    int best_score = 0;
    for (struct sock *s = socks_bound; s; s = s->next) {
        if (dgram ? s->dgram != dgram : !s->listening) /* UDP and UDP-Lite have a port space each */
            continue;
        if (a->b[0] == AF_UNIX_) {
            if (s->family == AF_UNIX_ && (ino ? s->ino == ino : s->addr.len == a->len && !kmemcmp(s->addr.b, a->b, a->len)))
                return s;
            continue;
        }
        int sc = listener_score(s, a);
        if (sc > best_score) {
            best = s;
            best_score = sc;
        }
    }
    return best;
}

struct sock *sock_find(uint64_t id)
{
    for (struct sock *s = socks_all; s; s = s->all_next)
        if (s->id == id)
            return s;
    return 0;
}

struct sock *sock_next(const struct sock *s)
{
    return s ? s->all_next : socks_all;
}

struct sock *sock_netlink(uint32_t pid)
{
    for (struct sock *s = socks_all; s; s = s->all_next)
        if (s->family == AF_NETLINK_ && s->addr.len && !kmemcmp(s->addr.b + 4, &pid, 4))
            return s;
    return 0;
}

struct sock *sock_new(int family)
{
    struct sock *s = kmalloc(sizeof(*s));
    if (s) {
        s->family = family;
        s->id = next_sock_id++;
        s->all_next = socks_all;
        socks_all = s;
    }
    return s;
}

static void sock_unbind(struct sock *s)
{
    for (struct sock **pp = &socks_bound; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    fs_release(s->ino);
}

void sock_shut(struct sock *s, int how)
{
    if ((how & 1) && s->rx) {
        pipe_drop(s->rx, 1);
        s->rx = 0;
    }
    if ((how & 2) && s->tx) {
        pipe_drop(s->tx, 0);
        s->tx = 0;
    }
    s->seq++;
}

void sock_close(struct sock *s)
{
    while (s->qn)
        sock_close(s->queue[--s->qn]);
    dgram_flush(s);
    int hc = s->hc || s->hc_dgram;
    if (s->dpeer) { /* its pair's sends are refused from now on */
        s->dpeer->dpeer = 0;
        s->dpeer->seq++;
    }
    sock_shut(s, 3);
    if (hc)
        hc_sock_closed(s); /* what it wrote still goes to the host */
    sock_unbind(s);
    for (struct sock **pp = &socks_all; *pp; pp = &(*pp)->all_next)
        if (*pp == s) {
            *pp = s->all_next;
            break;
        }
    wake(W_PIPE, 0); /* connect waiting for room in this listener's queue */
    kfree(s, sizeof(*s));
}

uint32_t sock_events(struct sock *s)
{
    if (s->dgram)
        return dgram_events(s);
    if (s->listening)
        return s->qn ? POLLIN_ : 0;
    if (s->connecting)
        return 0;
    if (!s->connected)
        return s->err ? POLLOUT_ | POLLERR_ | POLLHUP_ : POLLOUT_;
    int rd_end = !s->rx || !s->rx->writers, wr_end = !s->tx || !s->tx->readers;
    uint32_t ev = (s->err ? POLLERR_ : 0) | (rd_end || s->rx->count ? POLLIN_ : 0) | (rd_end ? POLLRDHUP_ : 0) | (rd_end && wr_end ? POLLHUP_ : 0);
    return ev | (wr_end || pipe_room(s->tx) ? POLLOUT_ : 0); /* a write would not wait (it may fail) */
}

uint64_t sock_seq(const struct sock *s)
{
    return s->seq + (s->rx ? s->rx->seq : 0) + (s->tx ? s->tx->seq : 0);
}

struct sock *sock_of(uint64_t fd, long *err)
{
    struct file *f = fd_get(fd);
    *err = !f ? -EBADF : f->type != F_SOCK ? -ENOTSOCK_ : 0;
    return *err ? 0 : f->sock;
}

long sock_install(struct sock *s, uint64_t flags)
{
    struct file *f = file_new(F_SOCK, 0, 2 | (int)(flags & O_NONBLOCK_));
    if (!f) {
        sock_close(s);
        return -ENOMEM;
    }
    f->sock = s;
    int fd = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
    if (fd < 0)
        file_put(f);
    return fd;
}

long sock_bind(struct sock *s, struct saddr *a)
{
    struct proc *cur = proc_cur();
    if (s->addr.len || s->connected)
        return -EINVAL;
    if (s->family == AF_UNIX_ && a->len > 2 && a->b[2]) {
        struct inode *dir;
        const char *name;
        uint64_t nl;
        long r = fs_parent(cur->files->cwd, (const char *)a->b + 2, &dir, &name, &nl);
        if (r == 0)
            r = fs_create(dir, name, nl, S_IFSOCK | (0777 & ~proc_cur()->files->umask), &s->ino);
        if (r < 0)
            return r == -E_EXIST ? -EADDRINUSE_ : r;
        fs_hold(s->ino);
    } else if (s->family == AF_UNIX_) {
        if (a->len == 2) { /* autobind: an abstract name of five hex digits, as Linux picks */
            static uint32_t autoname;
            uint32_t id = ++autoname;
            a->b[2] = 0;
            for (int i = 0; i < 5; i++)
                a->b[3 + i] = (uint8_t)"0123456789abcdef"[(id >> (4 * (4 - i))) & 0xf];
            a->len = 8;
        }
        for (struct sock *o = socks_bound; o; o = o->next)
            if (o->family == AF_UNIX_ && !o->ino && o->addr.len == a->len && !kmemcmp(o->addr.b, a->b, a->len))
                return -EADDRINUSE_;
    } else {
        if (!sa_local(a))
            return -EADDRNOTAVAIL_;
        uint16_t port = sa_port(a);
        if (port && bind_conflicts(s, a))
            return -EADDRINUSE_;
        if (!port && !(port = port_ephemeral(s->dgram)))
            return -EADDRINUSE_;
        sa_set_port(a, port);
    }
    s->addr = *a;
    s->next = socks_bound;
    socks_bound = s;
    return 0;
}

long sock_join(struct sock *c, struct sock *l, const struct saddr *to)
{
    struct sock *srv = sock_new(l->family);
    struct pipe *up = srv ? pipe_new() : 0, *down = up ? pipe_new() : 0;
    if (!down) {
        if (up) {
            pipe_drop(up, 1);
            pipe_drop(up, 0);
        }
        if (srv)
            sock_close(srv); /* not kfree: every socket is on the /proc/net list */
        return -ENOMEM;
    }
    if (!c->addr.len) /* the client's address: a loopback one with an ephemeral port, or unnamed */
        sa_default(&c->addr, c->family, c->family == AF_UNIX_ ? 0 : port_ephemeral(0), 1);
    c->tx = srv->rx = up;
    c->rx = srv->tx = down;
    c->connected = srv->connected = 1;
    srv->addr = l->addr;
    sa_as_seen(&c->addr, l->family, &srv->peer); /* an IPv4 client of an IPv6 listener: mapped */
    c->peer = l->family == AF_UNIX_ ? l->addr : *to;
    if (l->family != AF_UNIX_ && sa_wild(&l->addr)) { /* the wildcard means loopback, as the client reached it */
        struct saddr here;
        sa_default(&here, c->family, sa_port(&l->addr), 1);
        sa_as_seen(&here, l->family, &srv->addr);
    }
    if (l->family != AF_UNIX_ && sa_wild(to))
        sa_default(&c->peer, to->b[0], sa_port(to), 1);
    l->queue[l->qn++] = srv;
    l->seq++;
    wake(W_PIPE, 0);
    return 0;
}

long stream_pair(struct sock **a, struct sock **b)
{
    struct sock *l;
    if (!(*a = sock_new(AF_UNIX_)) || !(l = sock_new(AF_UNIX_))) {
        if (*a)
            sock_close(*a);
        return -ENOMEM;
    }
    /* `l` stands in as a listener, its queue getting `a`'s peer */
    sa_default(&l->addr, AF_UNIX_, 0, 0);
    long r = sock_join(*a, l, &l->addr);
    *b = r == 0 ? l->queue[--l->qn] : 0;
    sock_close(l); /* not kfree: every socket is on the /proc/net list */
    if (r < 0)
        sock_close(*a);
    return r;
}

int sock_opt(const struct sock *s, int level, int opt, int dflt)
{
    for (uint32_t i = 0; i < s->nopts; i++)
        if (s->opts[i].level == level && s->opts[i].opt == opt)
            return s->opts[i].v;
    return dflt;
}

long sock_io(struct file *f, uint64_t buf, uint64_t n, int write, uint64_t msg)
{
    struct sock *s = f->sock;
    if (s->dgram) {
        struct seg sg = {buf, n};
        int trunc;
        return write ? dgram_send(f, &sg, 1, msg, 0) : dgram_recv(f, &sg, 1, msg, 0, &trunc);
    }
    if (s->err) { /* a connection through the host ended: told once */
        long e = -(long)s->err;
        s->err = 0;
        s->seq++;
        return e;
    }
    if (!s->connected)
        return -ENOTCONN_;
    int through = s->hc != 0;
    long r = sock_pipe_io(s, f, buf, n, write, msg);
    if (!through && write && r > 0 && s->family != AF_UNIX_)
        netif_count(NETIF_LO, 1, (uint64_t)r); /* loopback TCP: a segment each way, as lo counts it */
    if (s->hc)
        hc_touch(s); /* what it wrote goes, what it read is credited, now */
    if (through && s->err && (write ? r == -EPIPE : r == 0 && n)) { /* it ended while this waited */
        r = -(long)s->err;
        s->err = 0;
    }
    return r;
}

long sock_pipe_io(struct sock *s, struct file *f, uint64_t buf, uint64_t n, int write, uint64_t msg)
{
    struct proc *cur = proc_cur();
    int nb = (f->flags & O_NONBLOCK_) || (msg & MSG_DONTWAIT_) ? O_NONBLOCK_ : 0;
    if (write) {
        if (s->tx && !s->tx->readers && s->family != AF_UNIX_ && !s->hc && !s->reset && n) {
            /* TCP: the first write after the peer closed goes out, and the peer's reset
             * answers it; only later writes fail (EPIPE), as on Linux */
            s->reset = 1;
            return (long)n;
        }
        if (s->tx)
            return pipe_write(s->tx, nb | (msg & MSG_NOSIGNAL_ ? PIPE_NOSIG : 0), buf, n);
        if (!(msg & MSG_NOSIGNAL_))
            kill_proc(cur, 13, cur->pid); /* written after shutdown(SHUT_WR): SIGPIPE and EPIPE */
        return -EPIPE;
    }
    if (msg & MSG_PEEK_)
        return s->rx ? pipe_read(s->rx, nb | PIPE_PEEK, buf, n) : 0;
    uint64_t done = 0;
    while (s->rx) { /* MSG_WAITALL: until all of n, the end, or an error */
        long r = pipe_read(s->rx, nb, buf + done, n - done);
        if (r <= 0)
            return done ? (long)done : r;
        done += (uint64_t)r;
        if (!(msg & MSG_WAITALL_) || done == n)
            break;
    }
    return (long)done;
}

/* An inet address as /proc/net/tcp{,6} prints it: the address's 32-bit words as the CPU reads
 * them, then the port. */
static void put_inet(struct sbuf *b, const struct saddr *a, int v6)
{
    const uint8_t *w = a->b + (v6 ? 8 : 4);
    for (int i = 0; i < (v6 ? 4 : 1); i++, w += 4)
        put_hex(b, (uint32_t)(w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24), 8);
    put_s(b, ":");
    put_hex(b, sa_port(a), 4);
}

void gen_net(struct sbuf *b, int kind)
{
    int dgram = kind == GEN_NET_UDP || kind == GEN_NET_UDP6, sl = 0;
    int fam = kind == GEN_NET_TCP || kind == GEN_NET_UDP ? AF_INET_ : kind == GEN_NET_UNIX ? AF_UNIX_ : AF_INET6_;
    put_s(b, fam == AF_UNIX_ ? "Num       RefCount Protocol Flags    Type St Inode Path\n"
                             : "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
    for (struct sock *s = socks_all; s; s = s->all_next) {
        struct saddr none;
        if (s->family != fam || (fam != AF_UNIX_ && s->dgram != dgram))
            continue;
        sa_default(&none, fam, 0, 0);
        if (fam == AF_UNIX_) {
            put_s(b, "0000000000000000: 00000002 00000000 ");
            put_s(b, s->listening ? "00010000 0001 01 " : s->dgram ? "00000000 0002 01 " : s->connected ? "00000000 0001 03 " : "00000000 0001 01 ");
            put_u(b, s->id);
            const struct saddr *a = s->addr.len > 2 ? &s->addr : 0; /* named (accepted ones share the name) */
            if (a) {
                put_s(b, " ");
                put_s(b, a->b[2] ? "" : "@");
                put_s(b, (const char *)a->b + 2 + !a->b[2]);
            }
            put_s(b, "\n");
            continue;
        }
        put_s(b, sl < 10 ? "   " : sl < 100 ? "  " : " ");
        put_u(b, (uint64_t)sl++);
        put_s(b, ": ");
        put_inet(b, s->addr.len ? &s->addr : &none, fam == AF_INET6_);
        put_s(b, " ");
        put_inet(b, s->connected ? &s->peer : &none, fam == AF_INET6_);
        put_s(b, s->listening ? " 0A " : s->connected ? " 01 " : " 07 "); /* LISTEN, ESTABLISHED, CLOSE */
        put_hex(b, s->tx ? s->tx->count : 0, 8);
        put_s(b, ":");
        put_hex(b, s->listening ? (uint64_t)s->qn : s->dgram ? s->dq_bytes : s->rx ? s->rx->count : 0, 8);
        put_s(b, " 00:00000000 00000000     0        0 ");
        put_u(b, s->id);
        put_s(b, "\n");
    }
}
