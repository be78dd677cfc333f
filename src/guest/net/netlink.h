/* AF_NETLINK sockets of NETLINK_ROUTE: the kernel's answers about interfaces, addresses and
 * routes (net/netif.c's) to what getifaddrs, if_nameindex, ip and ss ask (see netlink.c). A
 * netlink socket is a datagram socket (net/dgram.c) whose sends netlink.c answers, each answer
 * queued for it as datagrams from the kernel. */
#ifndef LEL_GUEST_NET_NETLINK_H
#define LEL_GUEST_NET_NETLINK_H

#include <stdint.h>

struct saddr;
struct seg;
struct sock;

#define AF_NETLINK_ 16
#define NETLINK_ROUTE_ 0
#define NETLINK_SOCK_DIAG_ 4
#define SOCK_RAW_ 3

/* A new netlink socket (its peer the kernel); -EPROTONOSUPPORT for a protocol other than
 * NETLINK_ROUTE and NETLINK_SOCK_DIAG, -ESOCKTNOSUPPORT for a type other than SOCK_RAW and SOCK_DGRAM. */
long nl_socket(uint64_t type, uint64_t proto, struct sock **out);

/* bind: a port id (0: one is picked, the process's pid when free) and multicast groups
 * (kept; nothing is ever multicast, as nothing changes). */
long nl_bind(struct sock *s, const struct saddr *a);

/* connect: only the kernel (port id 0) answers. */
long nl_connect(struct sock *s, const struct saddr *a);

/* A datagram of requests (`n` bytes in the segments) to `to` (NULL: the kernel): each is
 * answered into the socket's queue. Returns `n`, or an error. */
long nl_send(struct sock *s, const struct seg *sg, int nsg, uint64_t n, const struct saddr *to);

#endif
