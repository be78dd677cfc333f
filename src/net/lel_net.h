/* Sandbox networking on the host: the far end of the guests' connections. Each running
 * sandbox's VM is attached as an endpoint; its guest's connections out become real sockets
 * lelantosd opens for it under the sandbox's policy, and connections lelantosd opens to a port
 * in the guest (requests forwarded to a sandbox's server) are plain file descriptors to the
 * caller, relayed into the guest. Datagrams go the same way; the guest's resolver address is
 * answered here (static names from the config, else the host's resolver, asynchronously).
 *
 * Threads: one loop thread (epoll) does all the relaying, under a seccomp filter of its own
 * (lel_net_jail.c), and one submits the host resolver's lookups. lel_net_* calls come from any thread;
 * those on an endpoint from its owner (the sandbox's actor), one at a time. Memory: the net
 * object owns its endpoints; a policy is copied in. */
#ifndef LEL_NET_H
#define LEL_NET_H

#include "../vmm/lel_vmm.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lel_net lel_net_t;
typedef struct lel_net_ep lel_net_ep_t;

/** An address range: family 4 or 6, prefix bits, the address's bytes. */
struct lel_cidr {
    int family, bits;
    uint8_t addr[16];
};

/** A sandbox's egress policy. allowOut wins over denyOut; what neither names is allowed when
 * `internet` is set. Names match a DNS name exactly, or "*.suffix" any name under it. */
struct lel_net_policy {
    int internet;
    struct lel_cidr *allow, *deny;
    size_t nallow, ndeny;
    char **allow_names, **deny_names;
    size_t nallow_names, ndeny_names;
};

/** A static name for the guests' resolver. */
struct lel_net_host {
    char *name;
    struct lel_cidr addr; /* bits unused */
};

/** The operator's settings (from the config; copied at start). */
struct lel_net_opts {
    int host_gateway;               /* a guest address that reaches the host's loopback */
    uint8_t gateway_v4[4];          /* ... which one (default 10.0.2.2), also host.lelantos.internal */
    const struct lel_net_host *hosts; /* answered by the guests' resolver before the host's */
    size_t nhosts;
    int static_dns;                 /* names not in `hosts` are not found (the host's resolver is never asked) */
    const struct lel_cidr *allow_always; /* what the built-in denials (link-local, loopback, the host's own
                                            addresses) do not cover */
    size_t nallow_always;
    int max_conns;                  /* connections and datagram sockets per sandbox; 0: 1024 */
    uint64_t bandwidth_bps;         /* bytes per second each way per sandbox; 0: unlimited */
    uint32_t window;                /* credit per connection the guest gets; 0: 256 KiB */
    int unjailed;                   /* the loop runs without its seccomp filter (vmm.seccomp: false) */
    int test_violation;             /* tests only: the loop makes a forbidden call at each guest connect */
};

/** Starts the loop thread. Returns 0 or -errno with err filled. */
int lel_net_start(const struct lel_net_opts *o, lel_net_t **out, char *err, size_t errlen);
/** Stops the loop: endpoints still attached are detached. */
void lel_net_stop(lel_net_t *n);

/** Attaches a running VM (after boot or restore; the guest's old connections end). `name`
 * names it in log lines. Returns 0, -ENODEV when its guest has no net area, or -errno. */
int lel_net_attach(lel_net_t *n, lel_vm_t *vm, const char *name, const struct lel_net_policy *p, lel_net_ep_t **out);
/** Detaches and frees the endpoint: its connections close. Returns when the loop has let go of
 * the VM (call it before lel_vm_destroy). */
void lel_net_detach(lel_net_ep_t *ep);
/** A connection to `port` in the guest: *fd is the caller's end (a stream socket, nonblocking,
 * close-on-exec; the caller closes it). A refusal (nothing listens) shows as the end of the
 * stream before any byte. Returns 0 or -errno (-EMFILE, -ENOBUFS past the connection limit). */
int lel_net_open(lel_net_ep_t *ep, uint16_t port, int *fd);
/** Replaces the policy; the next connect and datagram go by it. Returns 0 or -ENOMEM. */
int lel_net_set_policy(lel_net_ep_t *ep, const struct lel_net_policy *p);
/** Bytes the sandbox received (from the outside, into the guest) and sent, so far. */
void lel_net_counters(lel_net_ep_t *ep, uint64_t *in, uint64_t *out);

/** Parses "a.b.c.d[/n]" or an IPv6 address with an optional prefix. 0 or -EINVAL. */
int lel_cidr_parse(const char *s, struct lel_cidr *c);
/** Builds a policy from strings: each entry a CIDR, an address or a name. The policy's arrays
 * are malloc'd (lel_net_policy_free). Returns 0, -EINVAL with err naming the entry, -ENOMEM. */
int lel_net_policy_build(struct lel_net_policy *p, int internet, const char *const *allow, size_t nallow,
                         const char *const *deny, size_t ndeny, char *err, size_t errlen);
void lel_net_policy_free(struct lel_net_policy *p);

#endif
