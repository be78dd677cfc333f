/* Internals of the host's networking, shared by its files: lel_net.c (the loop, endpoints and
 * the commands other threads send), lel_net_conn.c (stream connections), lel_net_udp.c
 * (datagram sockets and the guests' resolver), lel_net_policy.c (policies and the decision
 * where a guest may connect). Loop thread only unless a comment says otherwise. */
#ifndef LEL_NET_INT_H
#define LEL_NET_INT_H

#include "lel_net.h"

#include "../vmm/lel_vsock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

enum hkind { H_CMD = 1, H_EP, H_CONN, H_UDP, H_DNS, H_TIMER };

/* What an epoll event leads to (first member of each watched object). */
struct handle {
    enum hkind kind; /* 0 once closed: freed after the epoll batch it may still be in */
    struct handle *dead_next;
};

enum cstate { C_CONNECTING = 1, C_OPENING, C_OPEN };

/* A stream connection: the guest's end is its id on the rings, the host's a socket (a real
 * one out, or the caller's socketpair in). */
struct conn {
    struct handle h;
    struct lel_net_ep *ep;
    uint32_t id;
    int fd;
    enum cstate state;
    int inbound;
    uint16_t port;     /* inbound: the guest's port */
    uint8_t *obuf;     /* from the guest, not yet written to fd (at most the host's window) */
    size_t olen;
    uint32_t owed;     /* written to fd, not yet credited to the guest */
    uint32_t inflight; /* sent to the guest, not yet credited */
    int fd_eof, guest_shut, guest_closed, fd_shut;
    uint32_t want;     /* W_* messages still to send to the guest */
    uint32_t reset_err;
    uint32_t events;   /* the epoll mask it is registered with */
    struct lel_net_addr local; /* outbound: its address for CONNECTED */
    struct conn *next; /* the endpoint's list */
};
enum { W_OPEN = 1, W_CONNECTED = 2, W_SHUT = 4, W_RESET = 8, W_CREDIT = 16 };

/* A guest datagram socket's host socket. */
struct udp {
    struct handle h;
    struct lel_net_ep *ep;
    uint32_t id; /* the guest socket's */
    int fd, family;
    struct udp *next;
};

/* What the guest's resolver learnt: names and their addresses, for name rules. */
#define DNS_SEEN 256
struct seen {
    char name[256];
    struct lel_cidr addr;
};

struct lel_net_ep {
    struct handle h; /* H_EP: the vsock's doorbell */
    lel_net_t *net;
    lel_vm_t *vm;
    lel_vsock_t *vs;
    char name[48];
    struct lel_net_policy pol;
    struct conn *conns;
    struct udp *udps;
    int nconns, nudp;
    uint32_t next_id;
    int pending;    /* some connection waits for ring room */
    int broken;     /* the guest broke the ring format: relaying stopped */
    uint32_t gwin;  /* the guest's window */
    struct seen seen[DNS_SEEN];
    unsigned nseen;
    atomic_uint_fast64_t in, out;
    double tokens;  /* the bandwidth bucket (bytes), both ways */
    int64_t tokens_at_us;
    int throttled;
    uint64_t gen;
    struct lel_net_ep *next;
};

struct cmd;

struct lel_net {
    struct handle h; /* H_CMD: the command eventfd */
    struct lel_net_opts o;
    struct lel_net_host *hosts;
    struct lel_cidr *allow_always;
    struct lel_cidr self[32]; /* the host's own addresses */
    size_t nself;
    int epfd, cmdfd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct cmd *cmds, *cmds_tail;
    int exit;
    struct lel_net_ep *eps;
    struct handle dns; /* H_DNS: lookups finished */
    int dnsfd;
    struct dns_req *dns_done; /* finished lookups (under lock) */
    atomic_int dns_inflight;  /* lookups queued or the host's resolver still has */
    struct dns_req *dns_queue, *dns_queue_tail; /* lookups for the resolver thread (under lock) */
    pthread_cond_t dns_cond;  /* the resolver thread waits on it */
    pthread_t dns_thread;
    int dns_started, dns_exit;
    int jail_nr;              /* the loop's trapped call: its number + 1 (lel_net_jail.c; atomic) */
    int jail_state;           /* 1 the loop runs (jailed or not as asked), -errno its filter failed (under lock) */
    char jail_err[128];
    uint64_t ep_gen;          /* endpoints attached so far (a lookup finds its endpoint by it) */
    struct handle timer; /* H_TIMER: throttled endpoints */
    int timerfd;
    int64_t timer_at_us;  /* when it goes off (CLOCK_MONOTONIC); 0: disarmed */
    struct handle *dead;   /* closed handles, freed after the current batch */
    struct cmd *finished;  /* commands whose callers wait: told after the current batch */
};

/* lel_net.c */
void lel__net_watch(lel_net_t *n, int fd, struct handle *h, uint32_t events, int add);
void lel__net_unwatch(lel_net_t *n, int fd);
/** Frees `p` (whose first member is `h`) after the current batch of events. */
void lel__net_bury(lel_net_t *n, struct handle *h);
/** Takes n bytes out of the endpoint's bandwidth bucket; 0 when it is empty (a timer resumes). */
int lel__net_tokens(struct lel_net_ep *ep, size_t n);
/* Takes n bytes that moved from the bucket (a stream asks lel__net_tokens(ep, 0) first, then
 * pays for what the socket took: charging what it offered starved a limited stream whose
 * socket took a little at a time). */
void lel__net_spend(struct lel_net_ep *ep, size_t n);
/** After work for the endpoint outside its doorbell's handler (a socket's event, the throttle
 * timer, a datagram, a lookup's answer): the guest is told of what was written to it, and what
 * it wrote meanwhile is taken. lel_vsock_idle clears the guest's kick when it finds more, so a
 * caller that dropped that answer left the guest writing without ever ringing: the stalls of
 * test_e2e_vm_net's 64 MiB download over h2 and of the bandwidth-limited one. */
void lel__net_after(struct lel_net_ep *ep);
void lel__net_log(struct lel_net_ep *ep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* lel_net_conn.c */
void lel__conn_msg(struct lel_net_ep *ep, const struct lel_net_msg *m, const struct iovec iov[2]);
void lel__conn_event(struct conn *c, uint32_t events);
/** Connections that wait for ring room or credit try again. */
void lel__conn_pump_all(struct lel_net_ep *ep);
void lel__conn_close(struct conn *c);
/** A connection to the guest's port on fd (the loop's end of the caller's socketpair). */
void lel__conn_open(struct lel_net_ep *ep, int fd, uint16_t port);

/* lel_net_udp.c */
void lel__udp_msg(struct lel_net_ep *ep, const struct lel_net_msg *m, const struct iovec iov[2]);
void lel__udp_event(struct udp *u);
void lel__udp_close(struct udp *u);
void lel__dns_done(lel_net_t *n);
/** Starts / stops (after the loop's end: it drains the queue first) the thread that submits
 * the loop's lookups. Start returns 0 or -errno. */
int lel__dns_start(lel_net_t *n);
void lel__dns_stop(lel_net_t *n);
/** Addresses as the guest writes them. */
void lel__addr_from_sa(const struct sockaddr *sa, struct lel_net_addr *a);
socklen_t lel__addr_to_sa(const struct lel_net_addr *a, struct sockaddr_storage *ss);

/* lel_net_policy.c */
/** Where the guest may go for `dst`: 0 with *real the address to use (the host gateway maps to
 * loopback), or -EACCES (its policy) / -ECONNREFUSED (always denied), with `why` filled. */
int lel__policy_check(struct lel_net_ep *ep, const struct lel_net_addr *dst, struct lel_net_addr *real, char *why,
                      size_t whylen);
int lel__cidr_has(const struct lel_cidr *c, const struct lel_net_addr *a);
/** A name the resolver answered with an address (for name rules). */
void lel__policy_seen(struct lel_net_ep *ep, const char *name, const struct lel_net_addr *a);
int lel__policy_copy(struct lel_net_policy *dst, const struct lel_net_policy *src);

/* lel_net_jail.c */
/** On the loop thread, first: loads its seccomp filter. 0 or -errno with err filled. */
int lel__net_jail(lel_net_t *n, char *err, size_t errlen);
void lel__net_blame_slow(lel_net_t *n, struct lel_net_ep *ep);
/** After work done for `ep` (NULL: for none in particular): a call the jail trapped meanwhile
 * ends that sandbox (its relaying stops, its VM fails with the call's name); with no endpoint
 * the loop only logs it. One load when nothing trapped. */
static inline void lel__net_blame(lel_net_t *n, struct lel_net_ep *ep)
{
    if (__atomic_load_n(&n->jail_nr, __ATOMIC_RELAXED))
        lel__net_blame_slow(n, ep);
}
/** The test hook (lel_net_opts.test_violation): a call the filter forbids, as an exploited
 * relay would make. */
void lel__net_jail_test_violation(void);

#endif
