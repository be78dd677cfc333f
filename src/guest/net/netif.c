/* The sandbox's network interfaces, as programs find them (getifaddrs, if_nameindex, ip,
 * ifconfig, netstat, route): `lo` with 127.0.0.1/8 and ::1, which is the guest's own loopback,
 * and `eth0` with 10.0.2.15/24, the guest's address on the connection through the host (the
 * host answers as 10.0.2.2, the gateway, and 10.0.2.3, the resolver). There is no device: what
 * they carry is counted where the data moves (loopback sockets, the net rings). Nothing can be
 * reconfigured; a request to change an interface or route is refused. */
#include "netif.h"

#include "../fs/procfs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../proc/proc.h"

#define IFF_UP 0x1
#define IFF_BROADCAST 0x2
#define IFF_LOOPBACK 0x8
#define IFF_RUNNING 0x40
#define IFF_MULTICAST 0x1000
#define IFF_LOWER_UP 0x10000

static const struct netif ifaces[NETIF_N] = {
    {"lo", NETIF_LO, 772, IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP, 65536, {0}, {0},
     {127, 0, 0, 1}, {0}, 8, 254, {[15] = 1}, 128, 254, 0},
    {"eth0", NETIF_ETH, 1, IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP, 1500,
     {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     {10, 0, 2, 15}, {10, 0, 2, 255}, 24, 0, {0}, 0, 0, 6},
};

/* The tables Linux would build for these addresses: main (the subnet and the default route)
 * and local (the addresses themselves and the broadcasts), for IPv4 and for ::1. */
static const struct nroute routes[] = {
    {2, 0, 254, 3, 0, 1, {0}, {10, 0, 2, 2}, {0}, NETIF_ETH, 0},
    {2, 24, 254, 2, 253, 1, {10, 0, 2, 0}, {0}, {10, 0, 2, 15}, NETIF_ETH, 0},
    {2, 32, 255, 2, 254, 2, {10, 0, 2, 15}, {0}, {10, 0, 2, 15}, NETIF_ETH, 0},
    {2, 32, 255, 2, 253, 3, {10, 0, 2, 255}, {0}, {10, 0, 2, 15}, NETIF_ETH, 0},
    {2, 8, 255, 2, 254, 2, {127, 0, 0, 0}, {0}, {127, 0, 0, 1}, NETIF_LO, 0},
    {2, 32, 255, 2, 254, 2, {127, 0, 0, 1}, {0}, {127, 0, 0, 1}, NETIF_LO, 0},
    {2, 32, 255, 2, 253, 3, {127, 255, 255, 255}, {0}, {127, 0, 0, 1}, NETIF_LO, 0},
    {10, 128, 254, 2, 0, 1, {[15] = 1}, {0}, {0}, NETIF_LO, 256},
    {10, 128, 255, 2, 0, 2, {[15] = 1}, {0}, {0}, NETIF_LO, 0},
};

static struct netif_stats stats[NETIF_N];

const struct netif *netif_at(int i)
{
    return i >= 0 && i < NETIF_N ? &ifaces[i] : 0;
}

const struct netif *netif_by_index(int index)
{
    return netif_at(index - 1);
}

const struct netif *netif_by_name(const char *name, uint64_t n)
{
    for (int i = 0; i < NETIF_N; i++)
        if (kstrlen(ifaces[i].name) == n && !kmemcmp(ifaces[i].name, name, n))
            return &ifaces[i];
    return 0;
}

const struct nroute *netif_route(int i)
{
    return i >= 0 && i < (int)(sizeof(routes) / sizeof(routes[0])) ? &routes[i] : 0;
}

void netif_count(int index, int tx, uint64_t bytes)
{
    if (index < 1 || index > NETIF_N)
        return;
    struct netif_stats *st = &stats[index - 1];
    if (tx || index == NETIF_LO) {
        st->tx_bytes += bytes;
        st->tx_packets++;
    }
    if (!tx || index == NETIF_LO) {
        st->rx_bytes += bytes;
        st->rx_packets++;
    }
}

const struct netif_stats *netif_stats(int index)
{
    return index >= 1 && index <= NETIF_N ? &stats[index - 1] : 0;
}

/* ---- ioctls ---- */

#define IFREQ_SIZE 40 /* struct ifreq: the name (16 bytes), then a union of 24 */

/* An IPv4 address as struct sockaddr_in, where an ifreq's union begins. */
static void put_sin(uint8_t *u, const uint8_t a[4])
{
    kmemset(u, 0, 16);
    u[0] = 2; /* AF_INET */
    kmemcpy(u + 4, a, 4);
}

static void mask_of(uint8_t prefix, uint8_t m[4])
{
    for (int i = 0; i < 4; i++) {
        int bits = prefix > 8 * i ? prefix - 8 * i : 0;
        m[i] = (uint8_t)(bits >= 8 ? 0xff : (0xff00 >> bits) & 0xff);
    }
}

/* SIOCGIFCONF: an ifreq per interface with an IPv4 address (its name and address), as many
 * as fit; with no buffer, the length all of them need. */
static long ifconf(uint64_t arg)
{
    uint64_t c[2]; /* struct ifconf: int ifc_len (padded), then the buffer */
    if (copy_user(arg, c, sizeof(c), 0) < 0)
        return -EFAULT;
    int32_t cap = (int32_t)c[0], len = 0;
    for (int i = 0; i < NETIF_N; i++) {
        uint8_t r[IFREQ_SIZE] = {0};
        if (c[1] && len + IFREQ_SIZE > cap)
            break;
        if (c[1]) {
            kmemcpy(r, ifaces[i].name, kstrlen(ifaces[i].name));
            put_sin(r + 16, ifaces[i].v4);
            if (copy_user(c[1] + (uint64_t)len, r, IFREQ_SIZE, 1) < 0)
                return -EFAULT;
        }
        len += IFREQ_SIZE;
    }
    return copy_user(arg, &len, 4, 1);
}

/* The SIOCGIF* requests that name their interface: the answer in the ifreq's union. */
static long ifreq_get(const struct netif *n, uint64_t req, uint8_t *u)
{
    uint8_t m[4];
    uint32_t v = 0;
    switch (req) {
    case 0x8913: v = n->flags & 0xffff; kmemcpy(u, &v, 2); return 0; /* SIOCGIFFLAGS: the ones that fit a short */
    case 0x8915: case 0x8917: put_sin(u, n->v4); return 0;         /* SIOCGIFADDR, SIOCGIFDSTADDR */
    case 0x8919: put_sin(u, n->v4_brd); return 0;                  /* SIOCGIFBRDADDR */
    case 0x891b: mask_of(n->v4_prefix, m); put_sin(u, m); return 0; /* SIOCGIFNETMASK */
    case 0x891d: break;                                            /* SIOCGIFMETRIC: 0 */
    case 0x8921: v = n->mtu; break;                                /* SIOCGIFMTU */
    case 0x8927:                                                   /* SIOCGIFHWADDR: sockaddr, family the type */
        kmemset(u, 0, 16);
        kmemcpy(u, &n->type, 2);
        kmemcpy(u + 2, n->mac, 6);
        return 0;
    case 0x8933: v = (uint32_t)n->index; break;  /* SIOCGIFINDEX */
    case 0x8942: v = 1000; break;                /* SIOCGIFTXQLEN: Linux's default */
    case 0x8970: kmemset(u, 0, 24); return 0;    /* SIOCGIFMAP: no hardware resources */
    default: return -EOPNOTSUPP_;
    }
    kmemcpy(u, &v, 4);
    return 0;
}

long netif_ioctl(uint64_t req, uint64_t arg)
{
    uint8_t r[IFREQ_SIZE];
    if (req == 0x8912) /* SIOCGIFCONF */
        return ifconf(arg);
    static const uint16_t sets[] = {0x890b, 0x890c, 0x8914, 0x8916, 0x8918, 0x891a, 0x891c, 0x891e, 0x8922,
                                    0x8923, 0x8924, 0x8931, 0x8932, 0x8934, 0x8943}; /* routes, SIOCSIF* */
    for (unsigned i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        if (req == sets[i])
            return proc_cur()->group->uid[1] ? -EPERM : -EOPNOTSUPP_;
    if (req < 0x8910 || req > 0x89ff)
        return -ENOTTY;
    if (copy_user(arg, r, sizeof(r), 0) < 0)
        return -EFAULT;
    const struct netif *n;
    if (req == 0x8910) { /* SIOCGIFNAME: by the index in the union */
        int32_t idx;
        kmemcpy(&idx, r + 16, 4);
        if (!(n = netif_by_index(idx)))
            return -ENODEV_;
        kmemset(r, 0, 16);
        kmemcpy(r, n->name, kstrlen(n->name));
        return copy_user(arg, r, 16, 1);
    }
    if (!(n = netif_by_name((const char *)r, kstrnlen((const char *)r, 16))))
        return -ENODEV_;
    long e = ifreq_get(n, req, r + 16);
    return e < 0 ? e : copy_user(arg + 16, r + 16, 24, 1);
}

/* ---- /proc/net ---- */

/* `v` in decimal, right-aligned in `width` columns */
static void put_w(struct sbuf *b, uint64_t v, int width)
{
    char d[21];
    const char *s = kutoa(d, v);
    for (int pad = width - (int)kstrlen(s); pad > 0; pad--)
        put_s(b, " ");
    put_s(b, s);
}

void gen_net_dev(struct sbuf *b)
{
    put_s(b, "Inter-|   Receive                                                |  Transmit\n"
             " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n");
    for (int i = 0; i < NETIF_N; i++) {
        const struct netif_stats *st = &stats[i];
        const uint64_t rx[8] = {st->rx_bytes, st->rx_packets}, tx[8] = {st->tx_bytes, st->tx_packets};
        static const int rw[8] = {7, 7, 4, 4, 4, 5, 10, 9}, tw[8] = {8, 7, 4, 4, 4, 5, 7, 10};
        for (int pad = 6 - (int)kstrlen(ifaces[i].name); pad > 0; pad--)
            put_s(b, " ");
        put_s(b, ifaces[i].name);
        put_s(b, ":");
        for (int k = 0; k < 8; k++) {
            put_s(b, " ");
            put_w(b, rx[k], rw[k]);
        }
        for (int k = 0; k < 8; k++) {
            put_s(b, " ");
            put_w(b, tx[k], tw[k]);
        }
        put_s(b, "\n");
    }
}

void gen_net_if_inet6(struct sbuf *b)
{
    for (int i = 0; i < NETIF_N; i++) {
        const struct netif *n = &ifaces[i];
        if (!n->v6_prefix)
            continue;
        for (int k = 0; k < 16; k++)
            put_hex(b, n->v6[k], 2);
        const uint8_t cols[4] = {(uint8_t)n->index, n->v6_prefix, n->v6_scope == 254 ? 0x10 : 0, 0x80}; /* IFA_F_PERMANENT */
        for (int k = 0; k < 4; k++) {
            put_s(b, " ");
            put_hex(b, cols[k], 2);
        }
        put_s(b, " ");
        for (int pad = 8 - (int)kstrlen(n->name); pad > 0; pad--)
            put_s(b, " ");
        put_s(b, n->name);
        put_s(b, "\n");
    }
}

/* An IPv4 address as /proc/net/route prints it: the 32-bit word as the CPU reads it. */
static void put_v4(struct sbuf *b, const uint8_t a[4])
{
    put_hex(b, (uint32_t)(a[0] | a[1] << 8 | a[2] << 16 | (uint32_t)a[3] << 24), 8);
}

void gen_net_route(struct sbuf *b)
{
    put_s(b, "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n");
    for (int i = 0; i < (int)(sizeof(routes) / sizeof(routes[0])); i++) {
        const struct nroute *r = &routes[i];
        uint8_t m[4];
        if (r->family != 2 || r->table != 254)
            continue;
        int gw = r->gw[0] != 0;
        mask_of(r->dst_len, m);
        put_s(b, netif_by_index(r->oif)->name);
        put_s(b, "\t");
        put_v4(b, r->dst);
        put_s(b, "\t");
        put_v4(b, r->gw);
        put_s(b, gw ? "\t0003\t0\t0\t" : "\t0001\t0\t0\t"); /* RTF_UP, RTF_GATEWAY */
        put_u(b, r->priority);
        put_s(b, "\t");
        put_v4(b, m);
        put_s(b, "\t0\t0\t0\n");
    }
}
