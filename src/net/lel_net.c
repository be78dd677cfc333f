/* The net loop: one thread with an epoll set over every attached VM's doorbell, every host
 * socket of the guests' connections, the command eventfd (attach, detach, open, policy from
 * other threads) and the resolver's completions. See lel_net.h. */
#include "lel_net_int.h"

#include "../common/lel_util.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum ckind { K_ATTACH = 1, K_DETACH, K_OPEN, K_POLICY, K_SYNC };

struct cmd {
    enum ckind kind;
    struct lel_net_ep *ep;
    int fd;
    uint16_t port;
    struct lel_net_policy pol;
    int done, result;
    struct cmd *next;
};

void lel__net_log(struct lel_net_ep *ep, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "lelantosd: sandbox %s: net: %s\n", ep->name, msg);
}

void lel__net_watch(lel_net_t *n, int fd, struct handle *h, uint32_t events, int add)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    epoll_ctl(n->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

void lel__net_unwatch(lel_net_t *n, int fd)
{
    epoll_ctl(n->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void lel__net_bury(lel_net_t *n, struct handle *h)
{
    h->kind = 0;
    h->dead_next = n->dead;
    n->dead = h;
}

/* After a batch: the dead are freed, and the callers of finished commands told. */
static void after_batch(lel_net_t *n)
{
    while (n->dead) {
        struct handle *h = n->dead;
        n->dead = h->dead_next;
        free(h);
    }
    if (!n->finished)
        return;
    pthread_mutex_lock(&n->lock);
    while (n->finished) {
        struct cmd *c = n->finished;
        n->finished = c->next;
        c->done = 1;
    }
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The throttle timer goes off at the earliest deadline any endpoint asked for (one timerfd for
 * all: a later, longer deadline must not push back an earlier one). */
static void arm_timer(lel_net_t *n, int64_t at_us)
{
    if (n->timer_at_us && n->timer_at_us <= at_us)
        return;
    n->timer_at_us = at_us;
    struct itimerspec its = {{0, 0}, {at_us / 1000000, (long)(at_us % 1000000) * 1000}};
    timerfd_settime(n->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int lel__net_tokens(struct lel_net_ep *ep, size_t n)
{
    uint64_t rate = ep->net->o.bandwidth_bps;
    if (!rate)
        return 1;
    int64_t t = now_us();
    ep->tokens += (double)(t - ep->tokens_at_us) * (double)rate / 1e6;
    ep->tokens_at_us = t;
    if (ep->tokens > (double)rate / 10 + 65536) /* a burst of a tenth of a second */
        ep->tokens = (double)rate / 10 + 65536;
    if (ep->tokens <= 0) {
        if (!ep->throttled) {
            /* resumed when the bucket is back above zero (a pass may have overdrawn it by a
             * whole window), at least 1 ms on */
            int64_t wait = (int64_t)(-ep->tokens * 1e6 / (double)rate) + 1000;
            ep->throttled = 1;
            arm_timer(ep->net, t + wait);
        }
        return 0;
    }
    ep->tokens -= (double)n;
    return 1;
}

void lel__net_spend(struct lel_net_ep *ep, size_t n)
{
    if (ep->net->o.bandwidth_bps)
        ep->tokens -= (double)n;
}

/* ---- the guest's messages ---- */

static void ep_drop(lel_net_t *n, struct lel_net_ep *ep)
{
    while (ep->conns)
        lel__conn_close(ep->conns);
    while (ep->udps)
        lel__udp_close(ep->udps);
    if (ep->vs) {
        lel__net_unwatch(n, lel_vsock_fd(ep->vs));
        lel_vsock_close(ep->vs);
        ep->vs = NULL;
    }
}

static void ep_service(struct lel_net_ep *ep)
{
    lel_vsock_ack(ep->vs);
    if (ep->broken)
        return;
    for (int round = 0;; round++) {
        struct lel_net_msg m;
        struct iovec iov[2];
        int r, took = 0;
        while ((r = lel_vsock_peek(ep->vs, &m, iov)) == 1) {
            if (m.type == LEL_NET_DGRAM || m.type == LEL_NET_DGRAM_CLOSE)
                lel__udp_msg(ep, &m, iov);
            else
                lel__conn_msg(ep, &m, iov);
            lel_vsock_next(ep->vs);
            took = 1;
        }
        if (r < 0) {
            lel__net_log(ep, "the guest broke the ring format; its connections are closed");
            ep->broken = 1;
            while (ep->conns)
                lel__conn_close(ep->conns);
            return;
        }
        if (!ep->gwin && lel_vsock_ready(ep->vs))
            ep->gwin = lel_vsock_guest_window(ep->vs);
        lel__conn_pump_all(ep);
        int more = lel_vsock_idle(ep->vs);
        if (!more && !took)
            break;
        if (round >= 63) {
            /* the guest keeps writing: the other handles get their turn first. When idle found
             * more it cleared the guest's kick (the guest will not ring for it), so the
             * doorbell is rung here, or the rest would wait for an event that never comes */
            if (more)
                lel_vsock_poke(ep->vs);
            break;
        }
    }
}

void lel__net_after(struct lel_net_ep *ep)
{
    if (ep->h.kind == H_EP && ep->vs && lel_vsock_idle(ep->vs))
        ep_service(ep);
}

/* ---- commands from other threads ---- */

static void run_cmd(lel_net_t *n, struct cmd *c)
{
    struct lel_net_ep *ep = c->ep;
    switch (c->kind) {
    case K_ATTACH:
        ep->next = n->eps;
        n->eps = ep;
        lel__net_watch(n, lel_vsock_fd(ep->vs), &ep->h, EPOLLIN, 1);
        ep_service(ep);
        break;
    case K_DETACH:
        for (struct lel_net_ep **pp = &n->eps; *pp; pp = &(*pp)->next)
            if (*pp == ep) {
                *pp = ep->next;
                break;
            }
        ep_drop(n, ep);
        ep->h.kind = 0; /* an event of this batch may still name it; its caller frees it after */
        break;
    case K_OPEN:
        lel__conn_open(ep, c->fd, c->port);
        ep_service(ep);
        break;
    case K_POLICY:
        lel_net_policy_free(&ep->pol);
        ep->pol = c->pol;
        memset(&c->pol, 0, sizeof(c->pol));
        break;
    case K_SYNC:
        break;
    }
}

static void on_cmds(lel_net_t *n)
{
    uint64_t v;
    if (read(n->cmdfd, &v, sizeof(v)) < 0) {
        /* nothing pending: spurious */
    }
    pthread_mutex_lock(&n->lock);
    struct cmd *list = n->cmds;
    n->cmds = n->cmds_tail = NULL;
    pthread_mutex_unlock(&n->lock);
    while (list) {
        struct cmd *c = list;
        list = c->next;
        run_cmd(n, c);
        lel__net_blame(n, c->kind == K_DETACH ? NULL : c->ep); /* a detached one is gone */
        if (c->kind == K_DETACH || c->kind == K_SYNC) { /* the caller waits for these */
            c->next = n->finished;
            n->finished = c;
        } else {
            lel_net_policy_free(&c->pol);
            free(c);
        }
    }
}

/* Queues a command; with `wait`, returns once the loop ran it (the caller owns c then). */
static void send_cmd(lel_net_t *n, struct cmd *c, int wait)
{
    uint64_t one = 1;
    pthread_mutex_lock(&n->lock);
    c->next = NULL;
    if (n->cmds_tail)
        n->cmds_tail->next = c;
    else
        n->cmds = c;
    n->cmds_tail = c;
    pthread_mutex_unlock(&n->lock);
    if (write(n->cmdfd, &one, sizeof(one)) < 0) {
        /* the counter is full: the loop has a wake-up pending anyway */
    }
    if (!wait)
        return;
    pthread_mutex_lock(&n->lock);
    while (!c->done)
        pthread_cond_wait(&n->cond, &n->lock);
    pthread_mutex_unlock(&n->lock);
}

static void on_timer(lel_net_t *n)
{
    uint64_t v;
    if (read(n->timerfd, &v, sizeof(v)) < 0) {
        /* not expired */
    }
    n->timer_at_us = 0; /* disarmed: an endpoint throttled again re-arms it */
    for (struct lel_net_ep *ep = n->eps; ep; ep = ep->next)
        if (ep->throttled) {
            ep->throttled = 0;
            ep->pending = 1; /* every connection re-watches: reads and writes stopped while throttled */
            lel__conn_pump_all(ep);
            lel__net_after(ep);
            lel__net_blame(n, ep);
        }
}

/* The loop's jail first; lel_net_start waits for its outcome (a daemon whose filter cannot be
 * loaded does not start: it never relays unjailed by accident). */
static int enter_jail(lel_net_t *n)
{
    int r = n->o.unjailed ? 0 : lel__net_jail(n, n->jail_err, sizeof(n->jail_err));
    pthread_mutex_lock(&n->lock);
    n->jail_state = r < 0 ? r : 1;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->lock);
    return r;
}

static void *loop_main(void *arg)
{
    lel_thread_name("lel-net");
    lel_net_t *n = arg;
    struct epoll_event evs[64];
    if (enter_jail(n) < 0)
        return NULL;
    while (!n->exit) {
        int k = epoll_wait(n->epfd, evs, 64, -1);
        for (int i = 0; i < k; i++) {
            struct handle *h = evs[i].data.ptr;
            switch (h->kind) { /* 0: closed by an earlier event of this batch */
            case H_CMD: on_cmds(n); break;
            case H_EP:
                ep_service((struct lel_net_ep *)h);
                lel__net_blame(n, (struct lel_net_ep *)h);
                break;
            case H_CONN: {
                struct conn *c = (struct conn *)h;
                struct lel_net_ep *ep = c->ep;
                lel__conn_event(c, evs[i].events);
                lel__net_after(ep);
                lel__net_blame(n, ep);
                break;
            }
            case H_UDP: {
                struct lel_net_ep *ep = ((struct udp *)h)->ep;
                lel__udp_event((struct udp *)h);
                lel__net_blame(n, ep);
                break;
            }
            case H_DNS: lel__dns_done(n); break;
            case H_TIMER: on_timer(n); break;
            }
            lel__net_blame(n, NULL); /* what the cases above left to no one */
        }
        after_batch(n);
        lel__net_blame(n, NULL);
    }
    after_batch(n);
    return NULL;
}

/* The host's own addresses: a guest may never reach them (they would be the host's services). */
static void find_self(lel_net_t *n)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) < 0)
        return;
    for (i = ifs; i && n->nself < sizeof(n->self) / sizeof(n->self[0]); i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct lel_net_addr a;
        lel__addr_from_sa(i->ifa_addr, &a);
        struct lel_cidr *c = &n->self[n->nself++];
        c->family = a.family == AF_INET ? 4 : 6;
        c->bits = c->family == 4 ? 32 : 128;
        memcpy(c->addr, a.addr, 16);
    }
    freeifaddrs(ifs);
}

static int copy_opts(lel_net_t *n, const struct lel_net_opts *o)
{
    n->o = *o;
    n->o.hosts = NULL;
    n->o.allow_always = NULL;
    if (o->nhosts && !(n->hosts = calloc(o->nhosts, sizeof(*n->hosts))))
        return -ENOMEM;
    for (size_t i = 0; i < o->nhosts; i++) {
        n->hosts[i] = o->hosts[i];
        if (!(n->hosts[i].name = strdup(o->hosts[i].name)))
            return -ENOMEM;
    }
    if (o->nallow_always && !(n->allow_always = malloc(o->nallow_always * sizeof(*n->allow_always))))
        return -ENOMEM;
    if (o->nallow_always)
        memcpy(n->allow_always, o->allow_always, o->nallow_always * sizeof(*n->allow_always));
    n->o.hosts = n->hosts;
    n->o.allow_always = n->allow_always;
    if (!n->o.max_conns)
        n->o.max_conns = 1024;
    if (!n->o.window)
        n->o.window = 256u << 10;
    return 0;
}

static void free_net(lel_net_t *n)
{
    for (size_t i = 0; n->hosts && i < n->o.nhosts; i++)
        free(n->hosts[i].name);
    free(n->hosts);
    free(n->allow_always);
    if (n->epfd >= 0)
        close(n->epfd);
    if (n->cmdfd >= 0)
        close(n->cmdfd);
    if (n->dnsfd >= 0)
        close(n->dnsfd);
    if (n->timerfd >= 0)
        close(n->timerfd);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->cond);
    pthread_cond_destroy(&n->dns_cond);
    free(n);
}

int lel_net_start(const struct lel_net_opts *o, lel_net_t **out, char *err, size_t errlen)
{
    lel_net_t *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    pthread_cond_init(&n->dns_cond, NULL);
    n->h.kind = H_CMD;
    n->dns.kind = H_DNS;
    n->timer.kind = H_TIMER;
    n->epfd = epoll_create1(EPOLL_CLOEXEC);
    n->cmdfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    n->dnsfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    n->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int r = copy_opts(n, o);
    if (r == 0 && (n->epfd < 0 || n->cmdfd < 0 || n->dnsfd < 0 || n->timerfd < 0))
        r = -errno;
    if (r < 0) {
        snprintf(err, errlen, "net: cannot set up the loop: %s", strerror(-r));
        free_net(n);
        return r;
    }
    find_self(n);
    lel__net_watch(n, n->cmdfd, &n->h, EPOLLIN, 1);
    lel__net_watch(n, n->dnsfd, &n->dns, EPOLLIN, 1);
    lel__net_watch(n, n->timerfd, &n->timer, EPOLLIN, 1);
    if ((r = -lel__dns_start(n)) != 0) {
        snprintf(err, errlen, "net: cannot start the resolver thread: %s", strerror(r));
        free_net(n);
        return -r;
    }
    if ((r = pthread_create(&n->thread, NULL, loop_main, n)) != 0) {
        snprintf(err, errlen, "net: cannot start the loop thread: %s", strerror(r));
        lel__dns_stop(n);
        free_net(n);
        return -r;
    }
    pthread_mutex_lock(&n->lock);
    while (!n->jail_state)
        pthread_cond_wait(&n->cond, &n->lock);
    pthread_mutex_unlock(&n->lock);
    if (n->jail_state < 0) {
        snprintf(err, errlen, "net: %s", n->jail_err);
        r = n->jail_state;
        pthread_join(n->thread, NULL);
        lel__dns_stop(n);
        free_net(n);
        return r;
    }
    *out = n;
    return 0;
}

void lel_net_stop(lel_net_t *n)
{
    if (!n)
        return;
    struct cmd sync = {.kind = K_SYNC}; /* the attaches queued before are on n->eps after it */
    send_cmd(n, &sync, 1);
    while (n->eps)
        lel_net_detach(n->eps);
    n->exit = 1;
    uint64_t one = 1;
    if (write(n->cmdfd, &one, sizeof(one)) < 0) {
        /* the loop is woken anyway */
    }
    pthread_join(n->thread, NULL);
    lel__dns_stop(n); /* what it still had queued is submitted: waited for below */
    /* a lookup the host's resolver still has calls back into n: wait for it (a few seconds at
     * most), else leave n allocated rather than have it written after free */
    for (int i = 0; i < 500 && atomic_load(&n->dns_inflight) > 0; i++) {
        usleep(10000);
        lel__dns_done(n);
    }
    lel__dns_done(n);
    if (atomic_load(&n->dns_inflight) == 0)
        free_net(n);
}

int lel_net_attach(lel_net_t *n, lel_vm_t *vm, const char *name, const struct lel_net_policy *p, lel_net_ep_t **out)
{
    struct lel_net_ep *ep = calloc(1, sizeof(*ep));
    struct cmd *c = calloc(1, sizeof(*c));
    if (!ep || !c) {
        free(ep);
        free(c);
        return -ENOMEM;
    }
    ep->h.kind = H_EP;
    ep->net = n;
    ep->vm = vm;
    ep->next_id = 0x80000001u;
    snprintf(ep->name, sizeof(ep->name), "%s", name);
    ep->tokens_at_us = now_us();
    ep->gen = __atomic_add_fetch(&n->ep_gen, 1, __ATOMIC_RELAXED);
    int r = p ? lel__policy_copy(&ep->pol, p) : 0;
    if (r == 0)
        r = lel_vsock_open(vm, n->o.window, &ep->vs);
    if (r < 0) {
        lel_net_policy_free(&ep->pol);
        free(ep);
        free(c);
        return r;
    }
    c->kind = K_ATTACH;
    c->ep = ep;
    /* not waited for (the net thread's turn cost the create 0.1-1 ms on a busy host): whatever
     * comes after for this endpoint, its detach included, is queued behind it */
    send_cmd(n, c, 0);
    *out = ep;
    return 0;
}

void lel_net_detach(lel_net_ep_t *ep)
{
    if (!ep)
        return;
    struct cmd c = {.kind = K_DETACH, .ep = ep};
    send_cmd(ep->net, &c, 1);
    lel_net_policy_free(&ep->pol);
    free(ep);
}

int lel_net_open(lel_net_ep_t *ep, uint16_t port, int *fd)
{
    int sv[2];
    if (ep->nconns >= ep->net->o.max_conns) /* read off the loop: a hint, the loop checks again */
        return -ENOBUFS;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    struct cmd *c = calloc(1, sizeof(*c));
    if (!c) {
        close(sv[0]);
        close(sv[1]);
        return -ENOMEM;
    }
    c->kind = K_OPEN;
    c->ep = ep;
    c->fd = sv[1];
    c->port = port;
    send_cmd(ep->net, c, 0);
    *fd = sv[0];
    return 0;
}

int lel_net_set_policy(lel_net_ep_t *ep, const struct lel_net_policy *p)
{
    struct cmd *c = calloc(1, sizeof(*c));
    if (!c || lel__policy_copy(&c->pol, p) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->kind = K_POLICY;
    c->ep = ep;
    send_cmd(ep->net, c, 0);
    return 0;
}

void lel_net_counters(lel_net_ep_t *ep, uint64_t *in, uint64_t *out)
{
    *in = atomic_load(&ep->in);
    *out = atomic_load(&ep->out);
}
