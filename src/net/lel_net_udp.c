/* Datagrams from the guests, and the guests' resolver. A guest datagram socket that sends out
 * gets a host UDP socket of its own (made at its first datagram, closed with it); what that
 * socket receives goes back to the guest socket, dropped when the ring is full (UDP may drop).
 * Datagrams to the resolver address (10.0.2.3:53, /etc/resolv.conf in the guest) are DNS
 * queries answered here: from the config's static names first (and host.lelantos.internal
 * with the host gateway), else by the host's resolver through getaddrinfo_a (submitted by a
 * thread of its own, outside the loop's jail), whose answer comes back on the loop through an
 * eventfd: neither the loop nor any worker waits for it. */
#include "lel_net_int.h"
#include "../common/lel_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#define DNS_PORT 53
static const uint8_t dns_v4[4] = {10, 0, 2, 3};

void lel__addr_from_sa(const struct sockaddr *sa, struct lel_net_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        a->port = ntohs(s->sin_port);
        memcpy(a->addr, &s->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        a->family = AF_INET6;
        a->port = ntohs(s->sin6_port);
        memcpy(a->addr, &s->sin6_addr, 16);
    }
}

socklen_t lel__addr_to_sa(const struct lel_net_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(a->port);
        memcpy(&s->sin_addr, a->addr, 4);
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(a->port);
    memcpy(&s->sin6_addr, a->addr, 16);
    return sizeof(*s);
}

/* Sends a datagram to the guest socket `id` from `from`; dropped when the ring is full. */
static void to_guest(struct lel_net_ep *ep, uint32_t id, const struct lel_net_addr *from, const void *p, size_t n)
{
    if (n > LEL_NET_MSG_MAX - sizeof(*from) || !lel__net_tokens(ep, n))
        return;
    if (lel_vsock_send(ep->vs, id, LEL_NET_DGRAM, 0, 0, from, sizeof(*from), p, (uint32_t)n) == 0)
        atomic_fetch_add(&ep->in, n);
}

/* ---- the resolver ---- */

struct dns_req {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    lel_net_t *net;
    uint64_t gen; /* the endpoint's */
    uint32_t sock;
    struct lel_net_addr from;
    uint8_t query[512];
    size_t qlen, qend; /* the query, and where its question ends */
    int qtype;
    char name[256];
    int failed; /* getaddrinfo_a refused it */
    struct dns_req *next;
};

/* The question's name as text, and the offset past the question (type, class), or -1. */
static long dns_question(const uint8_t *q, size_t n, char *name, size_t cap, int *qtype)
{
    size_t at = 12, out = 0;
    if (n < 17 || (q[4] << 8 | q[5]) != 1)
        return -1;
    while (at < n && q[at]) {
        size_t len = q[at++];
        if (len > 63 || at + len > n || out + len + 2 > cap)
            return -1;
        if (out)
            name[out++] = '.';
        memcpy(name + out, q + at, len);
        out += len;
        at += len;
    }
    if (at + 5 > n)
        return -1;
    name[out] = 0;
    *qtype = q[at + 1] << 8 | q[at + 2];
    return (long)(at + 5);
}

/* Builds the answer to `r` with the addresses given (of the question's type) into out. */
static size_t dns_answer(const struct dns_req *r, const struct lel_net_addr *addrs, size_t n, int rcode, uint8_t *out)
{
    size_t len = r->qend, want = r->qtype == 28 ? 16 : 4;
    memcpy(out, r->query, len);
    out[2] = 0x80 | (r->query[2] & 0x01); /* a response, RD as asked */
    out[3] = 0x80 | (uint8_t)rcode;       /* RA */
    size_t an = 0;
    for (size_t i = 0; i < n && len + 16 + want <= 512; i++) {
        if ((addrs[i].family == AF_INET6) != (want == 16))
            continue;
        uint8_t rr[12] = {0xc0, 0x0c, 0, (uint8_t)r->qtype, 0, 1, 0, 0, 0, 60, 0, (uint8_t)want};
        memcpy(out + len, rr, sizeof(rr));
        memcpy(out + len + sizeof(rr), addrs[i].addr, want);
        len += sizeof(rr) + want;
        an++;
    }
    out[6] = 0;
    out[7] = (uint8_t)an;
    memset(out + 8, 0, 4); /* no authority or additional records */
    return len;
}

static void dns_reply(struct lel_net_ep *ep, const struct dns_req *r, const struct lel_net_addr *addrs, size_t n,
                      int rcode)
{
    uint8_t out[512];
    size_t len = dns_answer(r, addrs, n, rcode, out);
    for (size_t i = 0; i < n; i++)
        lel__policy_seen(ep, r->name, &addrs[i]);
    struct lel_net_addr from = {AF_INET, DNS_PORT, {10, 0, 2, 3}};
    to_guest(ep, r->sock, &from, out, len);
}

/* A static answer: the config's names, host.lelantos.internal. 1 when answered. */
static int dns_static(struct lel_net_ep *ep, const struct dns_req *r)
{
    lel_net_t *n = ep->net;
    struct lel_net_addr addrs[8];
    size_t k = 0;
    if (n->o.host_gateway && !strcasecmp(r->name, "host.lelantos.internal")) {
        addrs[k] = (struct lel_net_addr){AF_INET, 0, {0}};
        memcpy(addrs[k++].addr, n->o.gateway_v4, 4);
    }
    for (size_t i = 0; i < n->o.nhosts && k < 8; i++)
        if (!strcasecmp(n->o.hosts[i].name, r->name)) {
            addrs[k] = (struct lel_net_addr){n->o.hosts[i].addr.family == 4 ? AF_INET : AF_INET6, 0, {0}};
            memcpy(addrs[k++].addr, n->o.hosts[i].addr.addr, 16);
        }
    if (!k)
        return 0;
    dns_reply(ep, r, addrs, k, 0);
    return 1;
}

static void dns_notify(union sigval v)
{
    struct dns_req *r = v.sival_ptr;
    lel_net_t *n = r->net;
    uint64_t one = 1;
    pthread_mutex_lock(&n->lock);
    r->next = n->dns_done;
    n->dns_done = r;
    pthread_mutex_unlock(&n->lock);
    if (write(n->dnsfd, &one, sizeof(one)) < 0) {
        /* a wake-up is pending anyway */
    }
}

static void dns_query(struct lel_net_ep *ep, uint32_t sock, const struct iovec iov[2], size_t off, size_t n)
{
    struct dns_req *r = calloc(1, sizeof(*r));
    if (!r || n > sizeof(r->query)) {
        free(r);
        return;
    }
    r->net = ep->net;
    r->gen = ep->gen;
    r->sock = sock;
    r->qlen = n;
    lel_vsock_copy(iov, off, r->query, n);
    long qend = dns_question(r->query, n, r->name, sizeof(r->name), &r->qtype);
    if (qend < 0 || (r->query[2] & 0x80)) {
        free(r); /* not a query we can read: dropped, the client retries or gives up */
        return;
    }
    r->qend = (size_t)qend;
    int answered = dns_static(ep, r);
    if (!answered && r->qtype != 1 && r->qtype != 28) /* other types: no records */
        dns_reply(ep, r, NULL, 0, 0), answered = 1;
    if (!answered && ep->net->o.static_dns) /* only the static names exist */
        dns_reply(ep, r, NULL, 0, 3), answered = 1;
    if (answered) {
        free(r);
        return;
    }
    r->hints.ai_family = r->qtype == 28 ? AF_INET6 : AF_INET;
    r->hints.ai_socktype = SOCK_STREAM;
    r->cb.ar_name = r->name;
    r->cb.ar_request = &r->hints;
    r->sev.sigev_notify = SIGEV_THREAD;
    r->sev.sigev_notify_function = dns_notify;
    r->sev.sigev_value.sival_ptr = r;
    lel_net_t *net = ep->net;
    atomic_fetch_add(&net->dns_inflight, 1);
    pthread_mutex_lock(&net->lock);
    r->next = NULL;
    if (net->dns_queue_tail)
        net->dns_queue_tail->next = r;
    else
        net->dns_queue = r;
    net->dns_queue_tail = r;
    pthread_cond_signal(&net->dns_cond);
    pthread_mutex_unlock(&net->lock);
}

/* The submitting thread. getaddrinfo_a starts glibc's lookup threads from the thread that
 * calls it, and they inherit its seccomp filter: under the loop's they could open no
 * resolv.conf, load no NSS module, ask no nscd. So the loop queues its lookups here, to a
 * thread outside the jail that only submits them; their answers come back as before. */
static void *resolver_main(void *arg)
{
    lel_thread_name("lel-resolve");
    lel_net_t *n = arg;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        while (!n->dns_queue && !n->dns_exit)
            pthread_cond_wait(&n->dns_cond, &n->lock);
        struct dns_req *r = n->dns_queue;
        if (!r)
            break; /* told to end, nothing left to submit */
        if (!(n->dns_queue = r->next))
            n->dns_queue_tail = NULL;
        pthread_mutex_unlock(&n->lock);
        struct gaicb *list[1] = {&r->cb};
        if (getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev) != 0) {
            r->failed = 1; /* answered SERVFAIL on the loop */
            dns_notify(r->sev.sigev_value);
        }
        pthread_mutex_lock(&n->lock);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

int lel__dns_start(lel_net_t *n)
{
    int r = pthread_create(&n->dns_thread, NULL, resolver_main, n);
    n->dns_started = r == 0;
    return -r;
}

void lel__dns_stop(lel_net_t *n)
{
    if (!n->dns_started)
        return;
    pthread_mutex_lock(&n->lock);
    n->dns_exit = 1;
    pthread_cond_signal(&n->dns_cond);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->dns_thread, NULL);
    n->dns_started = 0;
}

void lel__dns_done(lel_net_t *n)
{
    uint64_t v;
    if (read(n->dnsfd, &v, sizeof(v)) < 0) {
        /* none */
    }
    pthread_mutex_lock(&n->lock);
    struct dns_req *list = n->dns_done;
    n->dns_done = NULL;
    pthread_mutex_unlock(&n->lock);
    while (list) {
        struct dns_req *r = list;
        list = r->next;
        atomic_fetch_sub(&n->dns_inflight, 1);
        struct lel_net_ep *ep = n->eps;
        while (ep && ep->gen != r->gen)
            ep = ep->next;
        struct addrinfo *res = r->failed ? NULL : r->cb.ar_result;
        if (ep && ep->vs) {
            struct lel_net_addr addrs[8];
            size_t k = 0;
            for (struct addrinfo *a = res; a && k < 8; a = a->ai_next)
                lel__addr_from_sa(a->ai_addr, &addrs[k++]);
            int rc = r->failed ? EAI_SYSTEM : gai_error(&r->cb);
            dns_reply(ep, r, addrs, k, rc == 0 ? 0 : rc == EAI_NONAME || rc == EAI_NODATA ? 3 : 2);
            lel__net_after(ep); /* else the answer waits in the ring for the guest's next kick */
        }
        if (res)
            freeaddrinfo(res);
        free(r);
    }
}

/* ---- datagram sockets ---- */

static struct udp *udp_find(struct lel_net_ep *ep, uint32_t id, int family)
{
    for (struct udp *u = ep->udps; u; u = u->next)
        if (u->id == id && u->family == family)
            return u;
    return NULL;
}

void lel__udp_close(struct udp *u)
{
    struct lel_net_ep *ep = u->ep;
    for (struct udp **pp = &ep->udps; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    ep->nudp--;
    lel__net_unwatch(ep->net, u->fd);
    close(u->fd);
    lel__net_bury(ep->net, &u->h);
}

static struct udp *udp_open(struct lel_net_ep *ep, uint32_t id, int family)
{
    if (ep->nudp + ep->nconns >= ep->net->o.max_conns)
        return NULL;
    struct udp *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    if ((u->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
        free(u);
        return NULL;
    }
    u->h.kind = H_UDP;
    u->ep = ep;
    u->id = id;
    u->family = family;
    u->next = ep->udps;
    ep->udps = u;
    ep->nudp++;
    lel__net_watch(ep->net, u->fd, &u->h, EPOLLIN, 1);
    return u;
}

void lel__udp_msg(struct lel_net_ep *ep, const struct lel_net_msg *m, const struct iovec iov[2])
{
    if (m->type == LEL_NET_DGRAM_CLOSE) {
        struct udp *u;
        while ((u = udp_find(ep, m->conn, AF_INET)) || (u = udp_find(ep, m->conn, AF_INET6)))
            lel__udp_close(u);
        return;
    }
    struct lel_net_addr dst, real;
    char why[128];
    if (m->len < sizeof(dst))
        return;
    lel_vsock_copy(iov, 0, &dst, sizeof(dst));
    size_t n = m->len - sizeof(dst);
    if (dst.family == AF_INET && dst.port == DNS_PORT && !memcmp(dst.addr, dns_v4, 4)) {
        dns_query(ep, m->conn, iov, sizeof(dst), n);
        return;
    }
    if (lel__policy_check(ep, &dst, &real, why, sizeof(why)) < 0) {
        lel__net_log(ep, "datagram dropped: %s", why);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = lel__addr_to_sa(&real, &ss);
    struct udp *u = udp_find(ep, m->conn, ss.ss_family);
    if (!u && !(u = udp_open(ep, m->conn, ss.ss_family)))
        return;
    uint8_t buf[LEL_NET_MSG_MAX];
    lel_vsock_copy(iov, sizeof(dst), buf, n);
    if (lel__net_tokens(ep, n) && sendto(u->fd, buf, n, 0, (struct sockaddr *)&ss, sl) >= 0)
        atomic_fetch_add(&ep->out, n);
}

void lel__udp_event(struct udp *u)
{
    uint8_t buf[LEL_NET_MSG_MAX];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        ssize_t r = recvfrom(u->fd, buf, sizeof(buf) - sizeof(struct lel_net_addr), 0, (struct sockaddr *)&ss, &sl);
        if (r < 0)
            break;
        struct lel_net_addr from;
        lel__addr_from_sa((struct sockaddr *)&ss, &from);
        lel_net_t *n = u->ep->net;
        if (n->o.host_gateway && from.family == AF_INET && from.addr[0] == 127)
            memcpy(from.addr, n->o.gateway_v4, 4); /* it answers as the gateway the guest sent to */
        to_guest(u->ep, u->id, &from, buf, (size_t)r);
    }
    lel__net_after(u->ep);
}
