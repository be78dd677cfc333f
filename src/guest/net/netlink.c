/* rtnetlink (AF_NETLINK, NETLINK_ROUTE), answering from net/netif.c's interfaces and routes:
 * RTM_GETLINK (a dump, or one interface by index or name), RTM_GETADDR and RTM_GETROUTE dumps
 * (filtered by family) and a route lookup (`ip route get`); the other dumps (neighbours, rules,
 * queueing disciplines...) are empty. Requests to change anything are refused (EPERM; root:
 * EOPNOTSUPP): the interfaces are what the sandbox is given. Answers are queued as datagrams
 * from the kernel (port id 0) of up to a page, several messages each, a dump ending with
 * NLMSG_DONE, as Linux sends them: glibc's getifaddrs reads a page at a time, iproute2 peeks
 * each datagram's length first. Each answer carries the request's sequence number and the
 * socket's port id. */
#include "netlink.h"

#include "../fs/pipe.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "dgram.h"
#include "netif.h"
#include "socket.h"

#define NLMSG_ERROR 2
#define NLMSG_DONE 3
#define NLM_F_REQUEST 0x1
#define NLM_F_MULTI 0x2
#define NLM_F_ACK 0x4
#define NLM_F_DUMP 0x300
#define NLM_F_CAPPED 0x100
#define RTM_NEWLINK 16
#define RTM_GETLINK 18
#define RTM_NEWADDR 20
#define RTM_GETADDR 22
#define RTM_NEWROUTE 24
#define RTM_GETROUTE 26
#define RTM_MAX 127
#define NLMSG_MAX 768 /* one answer message: an interface's is the largest (~500 bytes) */

static uint32_t next_auto = 0xfffff000u; /* autobound port ids after the first: Linux's, from -4096 down */

struct nlhdr {
    uint32_t len;
    uint16_t type, flags;
    uint32_t seq, pid;
};

/* A message being written: header, fixed part, attributes. */
struct nlmsg {
    uint8_t b[NLMSG_MAX];
    uint32_t n;
};

/* The answers to one send, gathered a page (a datagram) at a time. */
struct nlq {
    struct sock *s;
    uint8_t *page;
    uint32_t n;
    uint32_t seq, pid; /* the request being answered; the socket's port id */
};

static uint32_t align4(uint32_t n)
{
    return (n + 3) & ~3u;
}

static void kernel_addr(struct saddr *a)
{
    kmemset(a, 0, sizeof(*a));
    a->b[0] = AF_NETLINK_;
    a->len = 12;
}

static uint32_t port_of(const struct sock *s)
{
    uint32_t pid;
    kmemcpy(&pid, s->addr.b + 4, 4);
    return pid;
}

/* ---- writing messages ---- */

static void msg_start(struct nlmsg *m, const struct nlq *q, uint16_t type, uint16_t flags, const void *fixed, uint32_t n)
{
    struct nlhdr h = {0, type, flags, q->seq, q->pid};
    kmemcpy(m->b, &h, sizeof(h));
    kmemcpy(m->b + sizeof(h), fixed, n);
    m->n = align4((uint32_t)sizeof(h) + n);
}

static void attr(struct nlmsg *m, uint16_t type, const void *p, uint32_t n)
{
    uint16_t h[2] = {(uint16_t)(4 + n), type};
    if (m->n + align4(4 + n) > NLMSG_MAX)
        return; /* cannot happen with the messages written here */
    kmemset(m->b + m->n, 0, align4(4 + n));
    kmemcpy(m->b + m->n, h, 4);
    kmemcpy(m->b + m->n + 4, p, n);
    m->n += align4(4 + n);
}

static void attr_u32(struct nlmsg *m, uint16_t type, uint32_t v)
{
    attr(m, type, &v, 4);
}

static void attr_u8(struct nlmsg *m, uint16_t type, uint8_t v)
{
    attr(m, type, &v, 1);
}

/* The page so far as one datagram into the socket's queue (a full queue: ENOBUFS at the
 * next receive, as Linux reports answers it dropped). */
static void q_flush(struct nlq *q)
{
    struct saddr from;
    if (!q->n)
        return;
    kernel_addr(&from);
    struct dgram *before = q->s->dq_last;
    dgram_deliver(q->s, q->page, q->n, 0, 0, &from);
    if (q->s->dq_last == before) {
        q->s->err = ENOBUFS_;
        q->s->seq++;
    }
    q->n = 0;
}

static void q_add(struct nlq *q, struct nlmsg *m)
{
    uint32_t len = m->n;
    kmemcpy(m->b, &len, 4);
    if (q->n + len > PAGE_SIZE)
        q_flush(q);
    kmemcpy(q->page + q->n, m->b, len);
    q->n += len;
}

/* NLMSG_ERROR: `err` (0: the acknowledgement) and the request's header. */
static void q_error(struct nlq *q, const struct nlhdr *req, int err)
{
    struct nlmsg m;
    int32_t e = err;
    uint8_t body[4 + sizeof(*req)];
    kmemcpy(body, &e, 4);
    kmemcpy(body + 4, req, sizeof(*req));
    msg_start(&m, q, NLMSG_ERROR, NLM_F_CAPPED, body, sizeof(body));
    q_add(q, &m);
}

static void q_done(struct nlq *q)
{
    struct nlmsg m;
    int32_t zero = 0;
    msg_start(&m, q, NLMSG_DONE, NLM_F_MULTI, &zero, 4);
    q_add(q, &m);
}

/* ---- the answers ---- */

/* RTM_NEWLINK for interface `n`: struct ifinfomsg, then what `ip link` prints and getifaddrs
 * reads (IFLA_STATS becomes ifa_data). */
static void link_msg(struct nlq *q, const struct netif *n, uint16_t flags)
{
    struct nlmsg m;
    struct {
        uint8_t family, pad;
        uint16_t type;
        int32_t index;
        uint32_t flags, change;
    } ifi = {0, 0, n->type, n->index, n->flags, 0};
    const struct netif_stats *st = netif_stats(n->index);
    uint32_t s32[24] = {(uint32_t)st->rx_packets, (uint32_t)st->tx_packets, (uint32_t)st->rx_bytes, (uint32_t)st->tx_bytes};
    uint64_t s64[25] = {st->rx_packets, st->tx_packets, st->rx_bytes, st->tx_bytes};
    msg_start(&m, q, RTM_NEWLINK, flags, &ifi, sizeof(ifi));
    attr(&m, 3, n->name, (uint32_t)kstrlen(n->name) + 1); /* IFLA_IFNAME */
    attr_u32(&m, 13, 1000);                                /* IFLA_TXQLEN */
    attr_u8(&m, 16, n->oper);                              /* IFLA_OPERSTATE */
    attr_u8(&m, 17, 0);                                    /* IFLA_LINKMODE */
    attr_u32(&m, 4, n->mtu);                               /* IFLA_MTU */
    attr_u32(&m, 27, 0);                                   /* IFLA_GROUP */
    attr_u32(&m, 30, 0);                                   /* IFLA_PROMISCUITY */
    attr_u32(&m, 31, 1);                                   /* IFLA_NUM_TX_QUEUES */
    attr_u32(&m, 32, 1);                                   /* IFLA_NUM_RX_QUEUES */
    attr_u8(&m, 33, 1);                                    /* IFLA_CARRIER */
    attr(&m, 6, "noqueue", 8);                             /* IFLA_QDISC */
    attr(&m, 1, n->mac, 6);                                /* IFLA_ADDRESS */
    attr(&m, 2, n->brd_mac, 6);                            /* IFLA_BROADCAST */
    attr(&m, 23, s64, sizeof(s64));                        /* IFLA_STATS64 */
    attr(&m, 7, s32, sizeof(s32));                         /* IFLA_STATS */
    q_add(q, &m);
}

/* RTM_NEWADDR: struct ifaddrmsg, the address (IPv4 also as IFA_LOCAL, with its label and
 * broadcast), permanent. */
static void addr_msg(struct nlq *q, const struct netif *n, int v6)
{
    struct nlmsg m;
    uint8_t ifa[8] = {v6 ? 10 : 2, v6 ? n->v6_prefix : n->v4_prefix, 0x80, v6 ? n->v6_scope : n->v4_scope}; /* IFA_F_PERMANENT */
    const uint32_t forever[4] = {0xffffffffu, 0xffffffffu, 0, 0};
    kmemcpy(ifa + 4, &n->index, 4);
    msg_start(&m, q, RTM_NEWADDR, NLM_F_MULTI, ifa, sizeof(ifa));
    attr(&m, 1, v6 ? n->v6 : n->v4, v6 ? 16 : 4); /* IFA_ADDRESS */
    if (!v6) {
        attr(&m, 2, n->v4, 4);                                   /* IFA_LOCAL */
        if (n->v4_brd[0])
            attr(&m, 4, n->v4_brd, 4);                           /* IFA_BROADCAST */
        attr(&m, 3, n->name, (uint32_t)kstrlen(n->name) + 1);    /* IFA_LABEL */
    }
    attr_u32(&m, 8, 0x80);                                       /* IFA_FLAGS */
    attr(&m, 6, forever, sizeof(forever));                       /* IFA_CACHEINFO */
    q_add(q, &m);
}

/* RTM_NEWROUTE for route `r` (`flags`: the message's; `cloned`: the answer to a lookup, for
 * address `dst`). */
static void route_msg(struct nlq *q, const struct nroute *r, uint16_t flags, const uint8_t *dst, int cloned)
{
    struct nlmsg m;
    int alen = r->family == 2 ? 4 : 16;
    uint8_t rtm[12] = {r->family, cloned ? (uint8_t)(8 * alen) : r->dst_len, 0, 0, r->table, cloned ? 0 : r->protocol,
                       r->scope, r->type};
    uint32_t rflags = cloned ? 0x200 : 0; /* RTM_F_CLONED */
    static const uint8_t none[16];
    kmemcpy(rtm + 8, &rflags, 4);
    msg_start(&m, q, RTM_NEWROUTE, flags, rtm, sizeof(rtm));
    attr_u32(&m, 15, r->table); /* RTA_TABLE */
    if (cloned || r->dst_len)
        attr(&m, 1, cloned ? dst : r->dst, (uint32_t)alen); /* RTA_DST */
    if (r->priority || r->family == 10)
        attr_u32(&m, 6, r->priority); /* RTA_PRIORITY */
    if (kmemcmp(r->src, none, (size_t)alen))
        attr(&m, 7, r->src, (uint32_t)alen); /* RTA_PREFSRC */
    else if (cloned && r->type == 2)
        attr(&m, 7, dst, (uint32_t)alen); /* a local address is its own source */
    else if (cloned && r->family == 2)
        attr(&m, 7, netif_by_index(r->oif)->v4, 4); /* else the way out's address */
    if (kmemcmp(r->gw, none, (size_t)alen))
        attr(&m, 5, r->gw, (uint32_t)alen); /* RTA_GATEWAY */
    attr_u32(&m, 4, (uint32_t)(cloned && r->type == 2 ? NETIF_LO : r->oif)); /* RTA_OIF: local traffic is lo's */
    if (r->family == 10)
        attr_u8(&m, 20, 0); /* RTA_PREF: medium */
    if (cloned)
        attr_u32(&m, 25, proc_cur()->group->uid[0]); /* RTA_UID */
    q_add(q, &m);
}

static int in_prefix(const uint8_t *a, const uint8_t *net, int bits)
{
    for (int i = 0; i < bits; i++)
        if (((a[i / 8] ^ net[i / 8]) >> (7 - i % 8)) & 1)
            return 0;
    return 1;
}

/* `ip route get`: the route a packet to the request's RTA_DST takes (the local table first,
 * then the longest prefix of the main one); -ENETUNREACH when none. */
static int route_get(struct nlq *q, const uint8_t *body, uint32_t n)
{
    uint8_t dst[16] = {0};
    if (n < 12)
        return -EINVAL;
    int family = body[0], alen = family == 2 ? 4 : family == 10 ? 16 : 0;
    if (!alen)
        return -EAFNOSUPPORT_;
    for (uint32_t off = 12; off + 4 <= n;) {
        uint16_t h[2];
        kmemcpy(h, body + off, 4);
        if (h[0] < 4 || off + h[0] > n)
            break;
        if (h[1] == 1 && h[0] == 4 + alen) /* RTA_DST */
            kmemcpy(dst, body + off + 4, (size_t)alen);
        off += align4(h[0]);
    }
    const struct nroute *best = 0;
    for (int pass = 0; pass < 2 && !best; pass++) {
        for (int i = 0; netif_route(i); i++) {
            const struct nroute *r = netif_route(i);
            if (r->family != family || r->table != (pass ? 254 : 255) || (!pass && r->type != 2) || !in_prefix(dst, r->dst, r->dst_len))
                continue;
            if (!best || r->dst_len > best->dst_len)
                best = r;
        }
    }
    if (!best)
        return -ENETUNREACH_;
    route_msg(q, best, 0, dst, 1);
    return 0;
}

/* A dump: every object of the kind (of `family`, AF_UNSPEC for all), then NLMSG_DONE. */
static void dump(struct nlq *q, int type, int family)
{
    for (int i = 0; netif_at(i); i++) {
        const struct netif *n = netif_at(i);
        if (type == RTM_GETLINK)
            link_msg(q, n, NLM_F_MULTI);
        if (type == RTM_GETADDR && (family == 0 || family == 2))
            addr_msg(q, n, 0);
        if (type == RTM_GETADDR && (family == 0 || family == 10) && n->v6_prefix)
            addr_msg(q, n, 1);
    }
    for (int i = 0; type == RTM_GETROUTE && netif_route(i); i++)
        if (family == 0 || netif_route(i)->family == family)
            route_msg(q, netif_route(i), NLM_F_MULTI, 0, 0);
    q_done(q);
}

/* RTM_GETLINK of one interface: by ifi_index, else by IFLA_IFNAME. */
static int link_get(struct nlq *q, const uint8_t *body, uint32_t n)
{
    int32_t index = 0;
    const struct netif *nif = 0;
    if (n >= 16)
        kmemcpy(&index, body + 4, 4);
    if (index > 0)
        nif = netif_by_index(index);
    for (uint32_t off = 16; !index && off + 4 <= n;) {
        uint16_t h[2];
        kmemcpy(h, body + off, 4);
        if (h[0] < 4 || off + h[0] > n)
            break;
        if (h[1] == 3 || h[1] == 53) /* IFLA_IFNAME, IFLA_ALT_IFNAME */
            nif = netif_by_name((const char *)body + off + 4, kstrnlen((const char *)body + off + 4, h[0] - 4u));
        off += align4(h[0]);
    }
    if (!nif)
        return -ENODEV_;
    link_msg(q, nif, 0);
    return 0;
}

/* ---- sock_diag (NETLINK_SOCK_DIAG): the sockets, as ss lists them ---- */

#define SOCK_DIAG_BY_FAMILY 20

/* A socket's state as TCP numbers them (unix sockets use the same): LISTEN, ESTABLISHED, CLOSE */
static int diag_state(const struct sock *s)
{
    return s->listening ? 10 : s->connected ? 1 : 7;
}

static void diag_queues(const struct sock *s, uint32_t q[2])
{
    q[0] = s->listening ? (uint32_t)s->qn : s->dgram ? (uint32_t)s->dq_bytes : s->rx ? (uint32_t)s->rx->count : 0;
    q[1] = s->listening ? (uint32_t)s->backlog - 1 : s->tx ? (uint32_t)s->tx->count : 0; /* listen(n) holds n + 1 */
}

/* inet_diag_msg for an inet socket: its addresses and ports as Linux's inet_diag_sockid holds
 * them (network order), queues and inode */
static void inet_diag_msg(struct nlq *q, const struct sock *s)
{
    struct nlmsg m;
    uint8_t d[72] = {(uint8_t)s->family, (uint8_t)diag_state(s)};
    int alen = s->family == AF_INET_ ? 4 : 16, at = s->family == AF_INET_ ? 4 : 8;
    if (s->addr.len) {
        kmemcpy(d + 4, s->addr.b + 2, 2);      /* sport */
        kmemcpy(d + 8, s->addr.b + at, (size_t)alen); /* src */
    }
    if (s->connected && s->peer.len) {
        kmemcpy(d + 6, s->peer.b + 2, 2);      /* dport */
        kmemcpy(d + 24, s->peer.b + at, (size_t)alen); /* dst */
    }
    uint32_t tail[5] = {0}; /* expires, rqueue, wqueue, uid, inode */
    diag_queues(s, tail + 1);
    tail[4] = (uint32_t)s->id;
    kmemcpy(d + 52, tail, sizeof(tail));
    msg_start(&m, q, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, d, sizeof(d));
    q_add(q, &m);
}

/* unix_diag_msg, with the name and the queues when asked (UDIAG_SHOW_NAME 1, SHOW_RQLEN 16) */
static void unix_diag_msg(struct nlq *q, const struct sock *s, uint32_t show)
{
    struct nlmsg m;
    uint8_t d[16] = {AF_UNIX_, (uint8_t)(s->dgram ? SOCK_DGRAM_ : SOCK_STREAM_), (uint8_t)diag_state(s)};
    uint32_t ino = (uint32_t)s->id, rq[2];
    kmemcpy(d + 4, &ino, 4);
    msg_start(&m, q, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, d, sizeof(d));
    if ((show & 1) && s->addr.len > 2) /* UNIX_DIAG_NAME: the path without its NUL, or NUL and the abstract name */
        attr(&m, 0, s->addr.b + 2, s->addr.len - 2 - (s->addr.b[2] ? 1 : 0));
    diag_queues(s, rq);
    if (show & 16)
        attr(&m, 4, rq, sizeof(rq)); /* UNIX_DIAG_RQLEN */
    q_add(q, &m);
}

/* SOCK_DIAG_BY_FAMILY dumps: inet (inet_diag_req_v2: family, protocol, ext, pad, states) and
 * unix (unix_diag_req: family, protocol, pad, states, ino, show); the sockets in the states
 * asked for. Anything else: EOPNOTSUPP (ss then reads /proc/net). */
static int diag_request(struct nlq *q, const struct nlhdr *h, const uint8_t *body, uint32_t n)
{
    uint32_t states, show = 0;
    if (h->type != SOCK_DIAG_BY_FAMILY || (h->flags & NLM_F_DUMP) != NLM_F_DUMP || n < 8)
        return -EOPNOTSUPP_;
    int family = body[0], proto = body[1];
    kmemcpy(&states, body + 4, 4);
    if (family == AF_UNIX_ && n >= 16)
        kmemcpy(&show, body + 12, 4);
    if (family != AF_UNIX_ && family != AF_INET_ && family != AF_INET6_)
        return -EINVAL;
    if (family != AF_UNIX_ && proto != 6 && proto != 17)
        return -EINVAL;
    for (struct sock *s = sock_next(0); s; s = sock_next(s)) {
        if (s->family != family || !(states & (1u << diag_state(s))))
            continue;
        if (family == AF_UNIX_)
            unix_diag_msg(q, s, show);
        else if (s->dgram == (proto == 17))
            inet_diag_msg(q, s);
    }
    q_done(q);
    return 0;
}

/* One request message; what it asks for goes into `q`. */
static void request(struct nlq *q, const struct nlhdr *h, const uint8_t *body, uint32_t n)
{
    int err = 0, family = n ? body[0] : 0;
    q->seq = h->seq;
    if (q->s->nl_proto == NETLINK_SOCK_DIAG_ && (h->flags & NLM_F_REQUEST) && h->type >= 16) {
        if ((err = diag_request(q, h, body, n)) < 0 || (h->flags & NLM_F_ACK))
            q_error(q, h, err);
        return;
    }
    if (!(h->flags & NLM_F_REQUEST) || h->type < 16) { /* not a request, or a control message */
        if (h->flags & NLM_F_ACK)
            q_error(q, h, 0);
        return;
    }
    if (h->type > RTM_MAX)
        err = -EOPNOTSUPP_;
    else if ((h->type & 3) != 2) /* RTM_NEW*, RTM_DEL*, RTM_SET*: a change */
        err = proc_cur()->group->uid[1] ? -EPERM : -EOPNOTSUPP_;
    else if ((h->flags & NLM_F_DUMP) == NLM_F_DUMP) {
        dump(q, h->type, family);
        return;
    } else if (h->type == RTM_GETLINK)
        err = link_get(q, body, n);
    else if (h->type == RTM_GETROUTE)
        err = route_get(q, body, n);
    else
        err = -EOPNOTSUPP_;
    if (err || (h->flags & NLM_F_ACK))
        q_error(q, h, err);
}

long nl_socket(uint64_t type, uint64_t proto, struct sock **out)
{
    if ((type & 0xf) != SOCK_RAW_ && (type & 0xf) != SOCK_DGRAM_)
        return -94; /* ESOCKTNOSUPPORT */
    if (proto != NETLINK_ROUTE_ && proto != NETLINK_SOCK_DIAG_)
        return -EPROTONOSUPPORT_;
    struct sock *s = sock_new(AF_NETLINK_);
    if (!s)
        return -ENOMEM;
    s->dgram = 1;
    s->raw = (type & 0xf) == SOCK_RAW_;
    s->nl_proto = (int)proto;
    kernel_addr(&s->peer);
    *out = s;
    return 0;
}

/* Gives `s` port id `pid` (0: picks one) and `groups`. */
static long nl_autobind(struct sock *s, uint32_t pid, uint32_t groups)
{
    if (!pid) {
        pid = (uint32_t)proc_cur()->group->pid;
        while (sock_netlink(pid))
            pid = next_auto--;
    } else if (sock_netlink(pid)) {
        return -EADDRINUSE_;
    }
    kernel_addr(&s->addr);
    kmemcpy(s->addr.b + 4, &pid, 4);
    kmemcpy(s->addr.b + 8, &groups, 4);
    return 0;
}

long nl_bind(struct sock *s, const struct saddr *a)
{
    uint32_t pid, groups;
    kmemcpy(&pid, a->b + 4, 4);
    kmemcpy(&groups, a->b + 8, 4);
    if (s->addr.len) { /* bound already: the groups may change, the port id may not */
        if (pid && pid != port_of(s))
            return -EINVAL;
        kmemcpy(s->addr.b + 8, &groups, 4);
        return 0;
    }
    return nl_autobind(s, pid, groups);
}

long nl_connect(struct sock *s, const struct saddr *a)
{
    uint32_t pid;
    kmemcpy(&pid, a->b + 4, 4);
    if (pid)
        return -ECONNREFUSED_; /* no socket but the kernel's answers */
    long r = s->addr.len ? 0 : nl_autobind(s, 0, 0);
    if (r == 0)
        s->connected = 1;
    return r;
}

long nl_send(struct sock *s, const struct seg *sg, int nsg, uint64_t n, const struct saddr *to)
{
    uint32_t pid = 0;
    long r = 0;
    if (to)
        kmemcpy(&pid, to->b + 4, 4);
    if (pid)
        return -ECONNREFUSED_;
    if (n > PAGE_SIZE)
        return -EMSGSIZE_; /* requests are small; Linux's limit is the send buffer */
    if (!s->addr.len && (r = nl_autobind(s, 0, 0)) < 0)
        return r;
    struct nlq q = {s, kpage_alloc(), 0, 0, port_of(s)};
    uint8_t *req = kpage_alloc();
    if (!q.page || !req) {
        if (q.page)
            kpage_free(q.page);
        if (req)
            kpage_free(req);
        return -ENOBUFS_;
    }
    uint64_t got = 0;
    for (int i = 0; i < nsg && r == 0; i++) {
        r = copy_user(sg[i].p, req + got, sg[i].n, 0) < 0 ? -EFAULT : 0;
        got += sg[i].n;
    }
    for (uint32_t off = 0; r == 0 && off + sizeof(struct nlhdr) <= n;) { /* each message in turn, as Linux parses them */
        struct nlhdr h;
        kmemcpy(&h, req + off, sizeof(h));
        if (h.len < sizeof(h) || h.len > n - off)
            break;
        request(&q, &h, req + off + sizeof(h), h.len - (uint32_t)sizeof(h));
        off += align4(h.len);
    }
    q_flush(&q);
    kpage_free(q.page);
    kpage_free(req);
    return r < 0 ? r : (long)n;
}
