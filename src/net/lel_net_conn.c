/* Stream connections between a guest and a host socket. Bytes from the guest are written to
 * the socket straight from the ring (what the socket does not take waits in obuf, at most the
 * window the guest was given); bytes from the socket are read straight into the ring, at most
 * the guest's window unacknowledged. Control messages that find the ring full wait in `want`
 * and go when the guest makes room. */
#include "lel_net_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static struct conn *find(struct lel_net_ep *ep, uint32_t id)
{
    for (struct conn *c = ep->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static struct conn *conn_new(struct lel_net_ep *ep, uint32_t id, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || !(c->obuf = malloc(ep->net->o.window))) {
        free(c);
        return NULL;
    }
    c->h.kind = H_CONN;
    c->ep = ep;
    c->id = id;
    c->fd = fd;
    c->next = ep->conns;
    ep->conns = c;
    ep->nconns++;
    return c;
}

void lel__conn_close(struct conn *c)
{
    struct lel_net_ep *ep = c->ep;
    for (struct conn **pp = &ep->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ep->nconns--;
    if (c->fd >= 0) {
        lel__net_unwatch(ep->net, c->fd);
        close(c->fd);
    }
    free(c->obuf);
    c->obuf = NULL;
    lel__net_bury(ep->net, &c->h);
}

/* The epoll mask the connection needs now. A throttled endpoint's sockets are watched for
 * neither reading nor writing (the timer re-watches them): a level-triggered EPOLLOUT with
 * bytes waiting and an empty bucket spun the loop at full CPU until the bucket refilled. */
static void rewatch(struct conn *c)
{
    uint32_t ev = 0;
    if (c->state == C_CONNECTING || (c->olen && !c->ep->throttled))
        ev |= EPOLLOUT;
    if (c->state == C_OPEN && !c->fd_eof && c->inflight < c->ep->gwin && !c->ep->throttled)
        ev |= EPOLLIN;
    if (ev == c->events || c->fd < 0)
        return;
    lel__net_watch(c->ep->net, c->fd, &c->h, ev, c->events == UINT32_MAX);
    c->events = ev;
}

/* Sends what the connection owes the guest (control first); 0 when the ring was full. */
static int send_want(struct conn *c)
{
    lel_vsock_t *vs = c->ep->vs;
    if (c->want & W_RESET) {
        if (lel_vsock_send(vs, c->id, LEL_NET_RESET, 0, c->reset_err, NULL, 0, NULL, 0) < 0)
            return 0;
        lel__conn_close(c);
        return 1;
    }
    if (c->want & W_OPEN) {
        struct lel_net_addr a[2] = {{AF_INET, c->port, {0}}, {AF_INET, (uint16_t)(c->id & 0x7fff) | 0x8000, {10, 0, 2, 2}}};
        if (lel_vsock_send(vs, c->id, LEL_NET_OPEN, 0, 0, a, sizeof(a), NULL, 0) < 0)
            return 0;
        c->want &= ~(uint32_t)W_OPEN;
    }
    if (c->want & W_CONNECTED) {
        if (lel_vsock_send(vs, c->id, LEL_NET_CONNECTED, 0, 0, &c->local, sizeof(c->local), NULL, 0) < 0)
            return 0;
        c->want &= ~(uint32_t)W_CONNECTED;
    }
    if (c->want & W_CREDIT) {
        if (lel_vsock_send(vs, c->id, LEL_NET_CREDIT, 0, c->owed, NULL, 0, NULL, 0) < 0)
            return 0;
        c->owed = 0;
        c->want &= ~(uint32_t)W_CREDIT;
    }
    return 1;
}

/* The connection ends with a RESET to the guest (err its errno there). */
static void reset(struct conn *c, uint32_t err)
{
    c->want = W_RESET;
    c->reset_err = err;
    if (c->fd >= 0) {
        lel__net_unwatch(c->ep->net, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    if (!send_want(c))
        c->ep->pending = 1;
}

/* Writes obuf (then the ring's pieces, when given) to the socket; keeps what it does not take.
 * Returns 0, or -1 when the socket failed (the connection was reset). */
static int write_out(struct conn *c, const struct iovec *ring, int nring)
{
    struct iovec iov[3];
    int n = 0;
    size_t total = c->olen;
    if (c->olen)
        iov[n++] = (struct iovec){c->obuf, c->olen};
    for (int i = 0; i < nring; i++)
        if (ring[i].iov_len) {
            iov[n++] = ring[i];
            total += ring[i].iov_len;
        }
    if (!total)
        return 0;
    ssize_t w = c->fd >= 0 && c->state == C_OPEN ? writev(c->fd, iov, n) : 0;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        reset(c, ECONNRESET);
        return -1;
    }
    size_t done = w > 0 ? (size_t)w : 0, keep_old = done < c->olen ? c->olen - done : 0;
    if (keep_old)
        memmove(c->obuf, c->obuf + done, keep_old);
    size_t skip = done > c->olen ? done - c->olen : 0, at = keep_old;
    for (int i = 0; i < nring; i++) { /* what the socket did not take of the ring's bytes */
        size_t len = ring[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(c->obuf + at, (uint8_t *)ring[i].iov_base + skip, len - skip);
        at += len - skip;
        skip = 0;
    }
    c->olen = at;
    c->owed += (uint32_t)done;
    lel__net_spend(c->ep, done);
    atomic_fetch_add(&c->ep->out, done);
    if (done && (c->owed >= c->ep->net->o.window / 4 || !c->olen))
        c->want |= W_CREDIT;
    return 0;
}

/* After the guest's data went out: its half-close and close follow. */
static void after_write(struct conn *c)
{
    if (c->olen || c->fd < 0)
        return;
    if (c->guest_closed) {
        shutdown(c->fd, SHUT_WR);
        lel__conn_close(c);
        return;
    }
    if (c->guest_shut && !c->fd_shut) {
        shutdown(c->fd, SHUT_WR);
        c->fd_shut = 1;
        if (c->fd_eof && !c->want)
            lel__conn_close(c);
    }
}

/* Reads from the socket into the ring while the guest's window and the ring allow. */
static void read_in(struct conn *c)
{
    lel_vsock_t *vs = c->ep->vs;
    while (c->state == C_OPEN && !c->fd_eof && c->inflight < c->ep->gwin && !(c->want & W_RESET)) {
        uint32_t n = lel_vsock_space(vs), room = c->ep->gwin - c->inflight;
        n = n < room ? n : room;
        if (!n || !lel__net_tokens(c->ep, 0)) {
            c->ep->pending = 1;
            return;
        }
        struct iovec iov[2];
        lel_vsock_reserve(vs, n, iov);
        ssize_t r = readv(c->fd, iov, iov[1].iov_len ? 2 : 1);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            if (r < 0) {
                reset(c, errno == ECONNREFUSED ? ECONNREFUSED : ECONNRESET);
                return;
            }
            c->fd_eof = 1;
            c->want |= W_SHUT;
            return;
        }
        lel_vsock_commit(vs, c->id, LEL_NET_DATA, 0, 0, (uint32_t)r);
        lel__net_spend(c->ep, (size_t)r);
        c->inflight += (uint32_t)r;
        atomic_fetch_add(&c->ep->in, (uint64_t)r);
    }
}

/* Everything the connection can do now: control, reading in, the end. */
static void pump(struct conn *c)
{
    if (!send_want(c)) {
        c->ep->pending = 1;
        return;
    }
    if (c->h.kind != H_CONN) /* reset and closed */
        return;
    read_in(c);
    if (c->h.kind != H_CONN)
        return;
    if ((c->want & W_SHUT) && !(c->want & ~(uint32_t)W_SHUT)) {
        if (lel_vsock_send(c->ep->vs, c->id, LEL_NET_SHUT, 0, 0, NULL, 0, NULL, 0) < 0) {
            c->ep->pending = 1;
            return;
        }
        c->want &= ~(uint32_t)W_SHUT;
        if (c->guest_shut && c->fd_shut) {
            lel__conn_close(c);
            return;
        }
    }
    rewatch(c);
}

void lel__conn_pump_all(struct lel_net_ep *ep)
{
    if (!ep->pending || !lel_vsock_ready(ep->vs))
        return;
    ep->pending = 0;
    for (struct conn *c = ep->conns, *next; c; c = next) {
        next = c->next; /* c may close */
        pump(c);
    }
}

static void on_connect(struct lel_net_ep *ep, const struct lel_net_msg *m, const struct iovec iov[2])
{
    struct lel_net_addr dst, real;
    char why[128];
    if (find(ep, m->conn) || m->len < sizeof(dst) || (m->conn & 0x80000000u))
        return;
    lel_vsock_copy(iov, 0, &dst, sizeof(dst));
    if (ep->net->o.test_violation)
        lel__net_jail_test_violation();
    int r = ep->nconns >= ep->net->o.max_conns ? -EAGAIN : lel__policy_check(ep, &dst, &real, why, sizeof(why));
    struct sockaddr_storage ss;
    socklen_t sl = r == 0 ? lel__addr_to_sa(&real, &ss) : 0;
    int fd = r == 0 ? socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (r == 0 && fd < 0)
        r = -errno;
    if (r == -EAGAIN)
        lel__net_log(ep, "connection refused: the sandbox has %d connections (network.max_connections)", ep->nconns);
    else if (r < 0 && fd < 0 && *why)
        lel__net_log(ep, "connection refused: %s", why);
    struct conn *c = r == 0 ? conn_new(ep, m->conn, fd) : NULL;
    if (!c) {
        if (fd >= 0)
            close(fd);
        if (lel_vsock_send(ep->vs, m->conn, LEL_NET_RESET, 0, (uint32_t)(r < 0 ? -r : ENOBUFS), NULL, 0, NULL, 0) < 0)
            ep->pending = 1; /* lost: the guest's connect waits on; rare (a full ring) */
        return;
    }
    c->state = C_CONNECTING;
    c->events = UINT32_MAX;
    c->local = (struct lel_net_addr){dst.family, 0, {10, 0, 2, 15}};
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        reset(c, (uint32_t)errno);
        return;
    }
    rewatch(c);
}

static void on_data(struct conn *c, const struct iovec iov[2], uint32_t len)
{
    if (c->guest_shut || c->guest_closed || c->olen + len > c->ep->net->o.window) {
        reset(c, ENOBUFS); /* past the window the guest was given */
        return;
    }
    if (c->state != C_OPEN) { /* not up yet (cannot happen with a well-behaved guest) */
        reset(c, ENOTCONN);
        return;
    }
    if (!c->olen && lel__net_tokens(c->ep, 0)) {
        if (write_out(c, iov, 2) < 0)
            return;
    } else {
        lel_vsock_copy(iov, 0, c->obuf + c->olen, len);
        c->olen += len;
    }
    pump(c);
}

void lel__conn_msg(struct lel_net_ep *ep, const struct lel_net_msg *m, const struct iovec iov[2])
{
    if (m->type == LEL_NET_CONNECT) {
        on_connect(ep, m, iov);
        return;
    }
    struct conn *c = find(ep, m->conn);
    if (!c || (c->want & W_RESET))
        return;
    switch (m->type) {
    case LEL_NET_ACCEPTED:
        if (c->state == C_OPENING) {
            c->state = C_OPEN;
            pump(c);
        }
        break;
    case LEL_NET_RESET: /* refused or broken: the caller's end reads the end at once */
        lel__conn_close(c);
        break;
    case LEL_NET_DATA: on_data(c, iov, m->len); break;
    case LEL_NET_CREDIT:
        c->inflight = m->arg < c->inflight ? c->inflight - m->arg : 0;
        pump(c);
        break;
    case LEL_NET_SHUT:
    case LEL_NET_CLOSE:
        if (m->type == LEL_NET_SHUT)
            c->guest_shut = 1;
        else
            c->guest_closed = 1;
        after_write(c);
        break;
    case LEL_NET_OPT: {
        int on = m->flags != 0;
        if (m->arg == LEL_NET_OPT_NODELAY)
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        else if (m->arg == LEL_NET_OPT_KEEPALIVE)
            setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
        break;
    }
    }
}

void lel__conn_event(struct conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            lel__net_log(c->ep, "connect failed: %s", strerror(err));
            reset(c, (uint32_t)err);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
            struct lel_net_addr a;
            lel__addr_from_sa((struct sockaddr *)&ss, &a);
            c->local.port = a.port;
        }
        c->state = C_OPEN;
        c->want |= W_CONNECTED;
        pump(c);
        return;
    }
    if ((events & EPOLLOUT) && c->olen) {
        if (!lel__net_tokens(c->ep, 0)) {
            rewatch(c); /* the bucket is empty: off until the timer */
            return;
        }
        if (write_out(c, NULL, 0) < 0)
            return;
        after_write(c);
        if (c->h.kind != H_CONN)
            return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        read_in(c);
    if (c->h.kind == H_CONN)
        pump(c);
}

void lel__conn_open(struct lel_net_ep *ep, int fd, uint16_t port)
{
    struct conn *c = ep->nconns < ep->net->o.max_conns ? conn_new(ep, ep->next_id, fd) : NULL;
    if (!c) {
        close(fd); /* the caller reads the end: refused */
        return;
    }
    ep->next_id = ep->next_id + 1 > 0x80000000u ? ep->next_id + 1 : 0x80000001u;
    c->inbound = 1;
    c->port = port;
    c->state = C_OPENING;
    c->want = W_OPEN;
    c->events = UINT32_MAX;
    pump(c);
}
