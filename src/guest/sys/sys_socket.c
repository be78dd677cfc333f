/* Socket syscalls: the user's addresses, descriptors and flags, onto net/'s sockets. */
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/pipe.h"
#include "../lib/errno.h"
#include "../net/dgram.h"
#include "../net/hostconn.h"
#include "../net/netlink.h"
#include "../net/scm.h"
#include "../net/socket.h"
#include "../proc/proc.h"
#include "../proc/signal.h"
#include "sys_io.h"

static long sys_socket(uint64_t family, uint64_t type, uint64_t proto)
{
    if (family != AF_UNIX_ && family != AF_INET_ && family != AF_INET6_ && family != AF_NETLINK_)
        return -EAFNOSUPPORT_;
    if (type & ~(uint64_t)(0xf | O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    if (family == AF_NETLINK_) {
        struct sock *s;
        long r = nl_socket(type, proto, &s);
        return r < 0 ? r : sock_install(s, type);
    }
    int dgram = (type & 0xf) == SOCK_DGRAM_;
    if ((type & 0xf) != SOCK_STREAM_ && !dgram)
        return -EPROTONOSUPPORT_;
    /* IPPROTO_UDP, IPPROTO_TCP; IPPROTO_UDPLITE: datagrams as UDP's (the checksum coverage it
     * sets is kept as an option: nothing here is checksummed), in a port space of its own */
    int lite = dgram && family != AF_UNIX_ && proto == 136;
    if (proto && !lite && !(family != AF_UNIX_ && proto == (dgram ? 17u : 6u)))
        return -EPROTONOSUPPORT_;
    struct sock *s = sock_new((int)family);
    if (s) {
        s->dgram = lite ? 2 : dgram;
        s->uid = proc_cur()->group->uid[1]; /* SO_REUSEPORT: shared by one user's sockets */
    }
    return s ? sock_install(s, type) : -ENOMEM;
}

static long sys_bind(uint64_t fd, uint64_t uaddr, uint64_t len)
{
    long err;
    struct sock *s = sock_of(fd, &err);
    struct saddr a;
    if (!s)
        return err;
    err = sa_from_user(uaddr, len, s->family, &a);
    return err < 0 ? err : s->family == AF_NETLINK_ ? nl_bind(s, &a) : sock_bind(s, &a);
}

static long sys_listen(uint64_t fd, int64_t backlog)
{
    long err;
    struct sock *s = sock_of(fd, &err);
    if (!s)
        return err;
    if (s->dgram)
        return -EOPNOTSUPP_;
    if (s->connected || (!s->addr.len && s->family == AF_UNIX_))
        return -EINVAL;
    if (!s->addr.len) { /* an inet socket listens on an ephemeral port of the wildcard address */
        struct saddr a;
        sa_default(&a, s->family, 0, 0);
        if ((err = sock_bind(s, &a)) < 0)
            return err;
    } else if (!s->listening && (err = sock_listen_check(s)) < 0) {
        return err;
    }
    s->listening = 1;
    /* as Linux: a backlog of n holds n + 1 connections (a negative one, the most) */
    s->backlog = backlog < 0 || backlog >= SOCK_QUEUE ? SOCK_QUEUE : (int)backlog + 1;
    s->seq++;
    return 0;
}

static long sys_connect(uint64_t fd, uint64_t uaddr, uint64_t len)
{
    struct proc *cur = proc_cur();
    long err;
    struct sock *s = sock_of(fd, &err);
    struct saddr a;
    struct inode *ino = 0;
    if (!s)
        return err;
    if (s->connected && !s->dgram) {
        long r = s->inprogress ? 0 : -EISCONN_;
        s->inprogress = 0;
        return r;
    }
    if (s->connecting)
        return -EALREADY_;
    if (s->listening)
        return -EINVAL;
    if ((err = sa_from_user(uaddr, len, s->family, &a)) < 0)
        return err;
    if (s->dgram)
        return dgram_connect(s, &a);
    if (s->family == AF_UNIX_ && a.len <= 2)
        return -EINVAL;
    if (s->family == AF_UNIX_ && a.b[2]) {
        if ((err = fs_lookup(cur->files->cwd, (const char *)a.b + 2, 1, &ino)) < 0)
            return err;
        if ((ino->mode & S_IFMT) != S_IFSOCK)
            return -ECONNREFUSED_;
    } else if (s->family != AF_UNIX_ && !sa_local(&a)) {
        struct file *f = fd_hold(fd); /* the socket may be closed while this waits */
        err = hc_connect(s, &a, (f->flags & O_NONBLOCK_) != 0); /* outside the guest: through the host */
        s->inprogress = err == -EINPROGRESS_;
        file_unhold(f);
        return err;
    }
    struct file *f = fd_hold(fd); /* and the socket file: both may go while this waits */
    fs_hold(ino);
    for (;;) { /* looked up again after each wait: the listener may have gone meanwhile */
        struct sock *l = sock_listener(&a, ino, 0);
        err = !l ? -ECONNREFUSED_ : l->qn < l->backlog ? sock_join(s, l, &a) : (f->flags & O_NONBLOCK_) ? -EAGAIN : sig_ready(cur) ? -EINTR : 1;
        if (err <= 0)
            break;
        block(W_PIPE);
    }
    /* A non-blocking TCP connect on Linux returns before the handshake, even on loopback:
     * EINPROGRESS, then writable (EPOLLOUT) with SO_ERROR 0. Ours is made already, so it is
     * writable at once; callers (asyncio, selectors, test_epoll) expect the EINPROGRESS. A unix
     * one completes in the call, as here. */
    if (err == 0 && s->family != AF_UNIX_ && (f->flags & O_NONBLOCK_)) {
        err = -EINPROGRESS_;
        s->inprogress = 1;
    }
    fs_release(ino);
    file_unhold(f);
    return err;
}

static long sys_accept(uint64_t fd, uint64_t uaddr, uint64_t ulen, uint64_t flags)
{
    struct proc *cur = proc_cur();
    long err;
    struct sock *s = sock_of(fd, &err);
    if (!s)
        return err;
    if (flags & ~(uint64_t)(O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    if (s->dgram)
        return -EOPNOTSUPP_;
    if (!s->listening)
        return -EINVAL;
    struct file *f = fd_hold(fd);
    while (!s->qn && !(f->flags & O_NONBLOCK_) && !sig_ready(cur))
        block(W_PIPE);
    struct sock *c = s->qn ? s->queue[0] : 0;
    if (c) {
        s->qn--;
        for (int i = 0; i < s->qn; i++)
            s->queue[i] = s->queue[i + 1];
        s->seq++;
        wake(W_PIPE, 0); /* connect waiting for room */
    }
    file_unhold(f);
    if (!c)
        return sig_ready(cur) ? -ERESTART_ : -EAGAIN;
    struct saddr peer = c->peer;
    long nfd = sock_install(c, flags);
    if (nfd >= 0 && sa_to_user(&peer, uaddr, ulen) < 0) {
        fd_close(cur, (int)nfd);
        return -EFAULT;
    }
    return nfd;
}

static long sys_socketpair(uint64_t family, uint64_t type, uint64_t proto, uint64_t usv)
{
    struct proc *cur = proc_cur();
    struct sock *a, *b;
    if (family != AF_UNIX_)
        return family == AF_INET_ || family == AF_INET6_ ? -EOPNOTSUPP_ : -EAFNOSUPPORT_;
    if (((type & 0xf) != SOCK_STREAM_ && (type & 0xf) != SOCK_DGRAM_) || proto)
        return -EPROTONOSUPPORT_;
    if (type & ~(uint64_t)(0xf | O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    long r = (type & 0xf) == SOCK_DGRAM_ ? dgram_pair(&a, &b) : stream_pair(&a, &b);
    if (r < 0)
        return r;
    int fds[2] = {(int)sock_install(a, type), -1};
    fds[1] = fds[0] < 0 ? -1 : (int)sock_install(b, type);
    if (fds[0] < 0 || fds[1] < 0 || copy_user(usv, fds, sizeof(fds), 1) < 0) {
        if (fds[0] >= 0)
            fd_close(cur, fds[0]);
        if (fds[1] >= 0)
            fd_close(cur, fds[1]);
        else if (fds[0] < 0)
            sock_close(b);
        return fds[0] < 0 ? fds[0] : fds[1] < 0 ? fds[1] : -EFAULT;
    }
    return 0;
}

static long sys_shutdown(uint64_t fd, uint64_t how)
{
    long err;
    struct sock *s = sock_of(fd, &err);
    if (!s)
        return err;
    if (how > 2)
        return -EINVAL;
    if (!s->connected)
        return -ENOTCONN_;
    if (s->dgram)
        return 0; /* nothing flows to stop */
    sock_shut(s, (int)how + 1); /* SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 */
    hc_touch(s);
    return 0;
}

static long sys_sockname(uint64_t fd, uint64_t uaddr, uint64_t ulen, int peer)
{
    long err;
    struct sock *s = sock_of(fd, &err);
    struct saddr a;
    if (!s)
        return err;
    if (peer && !s->connected && s->family != AF_NETLINK_) /* a netlink socket's peer is the kernel */
        return -ENOTCONN_;
    if (!peer && !s->addr.len)
        sa_default(&a, s->family, 0, 0);
    return sa_to_user(peer ? &s->peer : s->addr.len ? &s->addr : &a, uaddr, ulen);
}

/* An int option the socket keeps, or NULL; `make`: a free slot for it (NULL when all are used). */
static struct sockopt *opt_slot(struct sock *s, uint64_t level, uint64_t opt, int make)
{
    for (uint32_t i = 0; i < s->nopts; i++)
        if (s->opts[i].level == level && s->opts[i].opt == opt)
            return &s->opts[i];
    if (!make || s->nopts == SOCK_OPTS || level > 0xffff || opt > 0xffff)
        return 0;
    struct sockopt *o = &s->opts[s->nopts++];
    o->level = (uint16_t)level;
    o->opt = (uint16_t)opt;
    return o;
}

/* Options are accepted, and an int one (4 bytes) is kept for getsockopt to read back (so
 * SO_REUSEADDR, SO_REUSEPORT, SO_BROADCAST, TCP_NODELAY... read as set); IPV6_V6ONLY is the
 * guest's own, TCP_NODELAY and SO_KEEPALIVE go to the host's socket of a connection through
 * the host; the rest change nothing. */
static long sys_setsockopt(uint64_t fd, uint64_t level, uint64_t opt, uint64_t uval, uint64_t len)
{
    long err;
    struct sock *s = sock_of(fd, &err);
    int v = 0;
    if (!s)
        return err;
    if ((int64_t)(int)len < 0)
        return -EINVAL;
    if (len >= 4 && copy_user(uval, &v, 4, 0) < 0)
        return -EFAULT;
    if (level == 1 && (opt == 3 || opt == 4 || opt == 17 || opt == 30 || opt == 38 || opt == 39))
        return -ENOPROTOOPT_; /* SO_TYPE, SO_ERROR, SO_PEERCRED, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN: read-only */
    struct sockopt *o = len == 4 && !(level == 1 && (opt == 7 || opt == 8)) ? opt_slot(s, level, opt, 1) : 0;
    if (o) /* SO_SNDBUF and SO_RCVBUF read what the buffers are */
        o->v = v;
    if (level == 41 && opt == 26) /* IPPROTO_IPV6, IPV6_V6ONLY */
        s->v6only = v != 0;
    else if (level == 6 && opt == 1) /* IPPROTO_TCP, TCP_NODELAY: the host's socket takes it */
        hc_setopt(s, HC_OPT_NODELAY, v != 0);
    else if (level == 1 && opt == 9) /* SOL_SOCKET, SO_KEEPALIVE */
        hc_setopt(s, HC_OPT_KEEPALIVE, v != 0);
    return 0;
}

static long sys_getsockopt(uint64_t fd, uint64_t level, uint64_t opt, uint64_t uval, uint64_t ulen)
{
    struct proc *cur = proc_cur();
    long err;
    struct sock *s = sock_of(fd, &err);
    int32_t v[3] = {0, 0, 0}, cap;
    if (!s)
        return err;
    if (copy_user(ulen, &cap, 4, 0) < 0)
        return -EFAULT;
    if (cap < 0)
        return -EINVAL;
    uint32_t n = 4;
    if (level == 1) { /* SOL_SOCKET */
        switch (opt) {
        case 3: v[0] = s->raw ? SOCK_RAW_ : s->dgram ? SOCK_DGRAM_ : SOCK_STREAM_; break; /* SO_TYPE */
        case 4: v[0] = (int32_t)s->err; s->err = 0; break;        /* SO_ERROR, taken */
        case 7: case 8: v[0] = s->dgram ? DGRAM_RCVBUF : (int32_t)PIPE_SIZE; break; /* SO_SNDBUF, SO_RCVBUF */
        case 17: v[0] = cur->group->pid; n = 12; break;           /* SO_PEERCRED: the caller's pid (peers' are not kept), root */
        case 30: v[0] = s->listening; break;                      /* SO_ACCEPTCONN */
        case 38: v[0] = s->family == AF_UNIX_ || s->family == AF_NETLINK_ ? 0 : s->dgram ? 17 : 6; break; /* SO_PROTOCOL */
        case 39: v[0] = s->family; break;                         /* SO_DOMAIN */
        }                                                         /* SO_ERROR and the rest: 0 */
    } else if (level == 41 && opt == 26) {
        v[0] = s->v6only;
    }
    struct sockopt *o = opt_slot(s, level, opt, 0);
    if (o)
        v[0] = o->v;
    n = (uint32_t)cap < n ? (uint32_t)cap : n;
    if (copy_user(uval, v, n, 1) < 0 || copy_user(ulen, &n, 4, 1) < 0)
        return -EFAULT;
    return 0;
}

/* sendto and recvfrom: on a stream socket (connected) the address is not used and none is
 * given back (its length comes back 0); a datagram socket sends to it and tells it. */
static long sys_sendrecv(uint64_t fd, uint64_t buf, uint64_t n, uint64_t msg, uint64_t uaddr, uint64_t ulen, int write)
{
    uint32_t zero = 0;
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    if (f->type != F_SOCK)
        return -ENOTSOCK_;
    if (f->sock->dgram)
        return dgram_sendrecv(f, buf, n, msg, uaddr, ulen, write);
    if (!write && ulen && copy_user(ulen, &zero, 4, 1) < 0)
        return -EFAULT;
    file_hold(f); /* while it may block */
    long r = sock_io(f, buf, n, write, msg);
    file_unhold(f);
    return r;
}

/* sendmsg and recvmsg: the iovecs in turn; on a stream, descriptors pass over AF_UNIX
 * (net/scm.c); a datagram socket's ancillary data is net/dgram.c's. */
static long sys_msg(uint64_t fd, uint64_t umsg, uint64_t msg, int write)
{
    uint64_t h[7]; /* name, namelen, iov, iovlen, control, controllen, flags */
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    if (f->type != F_SOCK)
        return -ENOTSOCK_;
    if (copy_user(umsg, h, sizeof(h), 0) < 0)
        return -EFAULT;
    if (f->sock->dgram)
        return write && h[5] && f->sock->family == AF_UNIX_ ? -EOPNOTSUPP_ /* no descriptors in datagrams */
                                                           : dgram_msg(f, umsg, h, msg, write);
    return write ? scm_sendmsg(f, h, msg) : scm_recvmsg(f, umsg, h, msg);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_socket(const struct sysargs *s)
{
    return sys_socket(s->a, s->b, s->c);
}

long sc_connect(const struct sysargs *s)
{
    return sys_connect(s->a, s->b, s->c);
}

long sc_accept(const struct sysargs *s)
{
    return sys_accept(s->a, s->b, s->c, 0);
}

long sc_accept4(const struct sysargs *s)
{
    return sys_accept(s->a, s->b, s->c, s->d);
}

long sc_sendto(const struct sysargs *s)
{
    return sys_sendrecv(s->a, s->b, s->c, s->d, s->e, s->f, 1); /* sendto */
}

long sc_recvfrom(const struct sysargs *s)
{
    return sys_sendrecv(s->a, s->b, s->c, s->d, s->e, s->f, 0); /* recvfrom */
}

/* sendmmsg and recvmmsg: sendmsg or recvmsg for each struct mmsghdr of the vector (up to
 * UIO_MAXIOV), each one's length written beside it; the count done, or the first error when
 * none was. recvmmsg's MSG_WAITFORONE: only the first waits; its timeout is not applied. */
static long sys_mmsg(uint64_t fd, uint64_t uvec, uint64_t vlen, uint64_t msg, int write)
{
    uint64_t n = 0;
    if (vlen > 1024)
        vlen = 1024;
    for (; n < vlen; n++) {
        uint64_t flags = msg & ~0x10000ULL;
        if (!write && n && (msg & 0x10000)) /* MSG_WAITFORONE */
            flags |= MSG_DONTWAIT_;
        long r = sys_msg(fd, uvec + n * 64, flags, write);
        if (r < 0)
            return n ? (long)n : r;
        uint32_t len = (uint32_t)r;
        if (copy_user(uvec + n * 64 + 56, &len, 4, 1) < 0)
            return n ? (long)n : -EFAULT;
    }
    return (long)n;
}

long sc_sendmmsg(const struct sysargs *s)
{
    return sys_mmsg(s->a, s->b, s->c, s->d, 1);
}

long sc_recvmmsg(const struct sysargs *s)
{
    return sys_mmsg(s->a, s->b, s->c, s->d, 0);
}

long sc_sendmsg(const struct sysargs *s)
{
    return sys_msg(s->a, s->b, s->c, 1); /* sendmsg */
}

long sc_recvmsg(const struct sysargs *s)
{
    return sys_msg(s->a, s->b, s->c, 0); /* recvmsg */
}

long sc_shutdown(const struct sysargs *s)
{
    return sys_shutdown(s->a, s->b);
}

long sc_bind(const struct sysargs *s)
{
    return sys_bind(s->a, s->b, s->c);
}

long sc_listen(const struct sysargs *s)
{
    return sys_listen(s->a, (int)s->b);
}

long sc_getsockname(const struct sysargs *s)
{
    return sys_sockname(s->a, s->b, s->c, 0);
}

long sc_getpeername(const struct sysargs *s)
{
    return sys_sockname(s->a, s->b, s->c, 1);
}

long sc_socketpair(const struct sysargs *s)
{
    return sys_socketpair(s->a, s->b, s->c, s->d);
}

long sc_setsockopt(const struct sysargs *s)
{
    return sys_setsockopt(s->a, s->b, s->c, s->d, s->e);
}

long sc_getsockopt(const struct sysargs *s)
{
    return sys_getsockopt(s->a, s->b, s->c, s->d, s->e);
}
