/* The network interfaces the sandbox presents: `lo` (the loopback inside the guest) and `eth0`
 * (the connection through the host, 10.0.2.15/24 behind the host's 10.0.2.2), what they carry,
 * the SIOCGIF* ioctls and the /proc/net files that describe them (see netif.c). */
#ifndef LEL_GUEST_NET_NETIF_H
#define LEL_GUEST_NET_NETIF_H

#include <stdint.h>

struct sbuf;

#define NETIF_LO 1  /* interface indexes, as Linux numbers them: lo first */
#define NETIF_ETH 2
#define NETIF_N 2

/* An interface as rtnetlink and the ioctls describe it. */
struct netif {
    const char *name;
    int index;
    uint16_t type;     /* ARPHRD_LOOPBACK, ARPHRD_ETHER */
    uint32_t flags;    /* IFF_* (IFF_LOWER_UP and the rest above 16 bits included) */
    uint32_t mtu;
    uint8_t mac[6], brd_mac[6];
    uint8_t v4[4], v4_brd[4]; /* its IPv4 address and broadcast (0.0.0.0: none) */
    uint8_t v4_prefix, v4_scope; /* RT_SCOPE_HOST 254, RT_SCOPE_UNIVERSE 0 */
    uint8_t v6[16], v6_prefix;   /* its IPv6 address (prefix 0: none) */
    uint8_t v6_scope, oper;      /* IF_OPER_UNKNOWN 0 (lo), IF_OPER_UP 6 */
};

/* Interface `i` (0..NETIF_N-1), or NULL past the end. */
const struct netif *netif_at(int i);

/* The interface with this index or name (`n` bytes, not NUL-terminated), or NULL. */
const struct netif *netif_by_index(int index);
const struct netif *netif_by_name(const char *name, uint64_t n);

/* A route, as rtnetlink describes it (struct rtmsg's fields and the attributes used). */
struct nroute {
    uint8_t family, dst_len, table, protocol, scope, type; /* RT_TABLE_MAIN 254, RT_TABLE_LOCAL 255 */
    uint8_t dst[16], gw[16], src[16]; /* gw, src: all zero when there is none */
    int oif;
    uint32_t priority;
};

/* Route `i` of every table (IPv4 first), or NULL past the end. */
const struct nroute *netif_route(int i);

/* What an interface carried: bytes and packets each way (tx: sent from the guest). */
struct netif_stats {
    uint64_t rx_bytes, rx_packets, tx_bytes, tx_packets;
};

/* Counts one packet (a write, a datagram, a ring message) of `bytes` on interface `index`. Over
 * loopback the guest both sends and receives it. */
void netif_count(int index, int tx, uint64_t bytes);

const struct netif_stats *netif_stats(int index);

/* The interface ioctls on a socket (SIOCGIFCONF, SIOCGIFFLAGS, SIOCGIFADDR, ...): reads as
 * Linux answers them; the settings cannot change (EPERM, root: EOPNOTSUPP). -ENOTTY for any
 * other request. */
long netif_ioctl(uint64_t req, uint64_t arg);

/* /proc/net/dev, /proc/net/if_inet6 and /proc/net/route, in Linux's columns. */
void gen_net_dev(struct sbuf *b);
void gen_net_if_inet6(struct sbuf *b);
void gen_net_route(struct sbuf *b);

#endif
