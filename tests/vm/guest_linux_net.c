/* Network interfaces as programs find them: getifaddrs (node's os.networkInterfaces),
 * if_nameindex and if_nametoindex (python's socket module), the SIOCGIF* ioctls (ifconfig),
 * rtnetlink itself (ip: dumps, one link, refusals), /proc/net/dev and /proc/net/route; and
 * /sys, which glibc's CPU count, lscpu and libuv read. Each answer is checked against another
 * way of asking, so this holds on any Linux, not only for the guest's lo and eth0. */
#include "guest_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if_arp.h>
#include <linux/netlink.h>
#include <linux/inet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_ok(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A file's first line (NUL-terminated, newline dropped); -1 when it cannot be read. */
static long read_line(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    long n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    return n;
}

static void ifaddrs(void)
{
    struct ifaddrs *all = NULL;
    int v4 = 0, v6 = 0, packet = 0;
    say("getifaddrs", getifaddrs(&all) == 0, errno);
    for (struct ifaddrs *a = all; a; a = a->ifa_next) {
        if (!a->ifa_addr || strcmp(a->ifa_name, "lo"))
            continue;
        if (a->ifa_addr->sa_family == AF_INET) {
            struct sockaddr_in *in = (void *)a->ifa_addr, *m = (void *)a->ifa_netmask;
            v4 = in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && m && m->sin_addr.s_addr == htonl(0xff000000) &&
                 (a->ifa_flags & (IFF_UP | IFF_LOOPBACK)) == (IFF_UP | IFF_LOOPBACK);
        } else if (a->ifa_addr->sa_family == AF_INET6) {
            v6 = !memcmp(&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, &in6addr_loopback, 16);
        } else if (a->ifa_addr->sa_family == AF_PACKET) {
            packet = a->ifa_data != NULL; /* its struct rtnl_link_stats */
        }
    }
    say("getifaddrs: lo with 127.0.0.1/8, ::1 and its link", v4 && v6 && packet, v4 * 4 + v6 * 2 + packet);
    freeifaddrs(all);
    struct if_nameindex *ni = if_nameindex();
    int ok = ni != NULL, lo = 0, n = 0;
    for (struct if_nameindex *i = ni; ok && i->if_index; i++, n++) {
        char name[IF_NAMESIZE];
        ok = if_nametoindex(i->if_name) == i->if_index && if_indextoname(i->if_index, name) && !strcmp(name, i->if_name);
        lo |= !strcmp(i->if_name, "lo");
    }
    say("if_nameindex agrees with if_nametoindex and if_indextoname", ok && lo && n >= 1, n);
    if (ni)
        if_freenameindex(ni);
    say("if_nametoindex of no interface", if_nametoindex("nosuch0") == 0 && errno == ENODEV, errno);
}

/* A TCP listener on `a` (port 0: any) that a client reaches; 1 when it does. */
static int reachable(struct sockaddr_in a)
{
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s = -1;
    int ok = bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&a, &len) == 0 &&
             connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 && (s = accept(l, NULL, NULL)) >= 0 && write(c, "x", 1) == 1;
    char b;
    ok = ok && read(s, &b, 1) == 1 && b == 'x';
    close(s);
    close(c);
    close(l);
    return ok;
}

/* Every IPv4 address of an interface is this machine's: a server may bind it, a client reach it. */
static void own_addresses(void)
{
    struct ifaddrs *all = NULL;
    int n = 0, ok = getifaddrs(&all) == 0;
    for (struct ifaddrs *a = all; ok && a; a = a->ifa_next)
        if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET && (a->ifa_flags & IFF_UP)) {
            ok = reachable(*(struct sockaddr_in *)a->ifa_addr);
            n++;
        }
    say("every interface's IPv4 address can be bound and reached", ok && n >= 1, n);
    freeifaddrs(all);
}

static void ioctls(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq r[16];
    struct ifconf c = {.ifc_len = sizeof(r), .ifc_req = r};
    int lo = 0;
    say("SIOCGIFCONF", ioctl(s, SIOCGIFCONF, &c) == 0 && c.ifc_len > 0 && c.ifc_len % (int)sizeof(r[0]) == 0, c.ifc_len);
    for (int i = 0; i < c.ifc_len / (int)sizeof(r[0]); i++)
        lo |= !strcmp(r[i].ifr_name, "lo") && ((struct sockaddr_in *)&r[i].ifr_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    say("SIOCGIFCONF lists lo with 127.0.0.1", lo, c.ifc_len);
    struct ifreq q = {0};
    strcpy(q.ifr_name, "lo");
    say("SIOCGIFFLAGS: lo is up and loopback", ioctl(s, SIOCGIFFLAGS, &q) == 0 && (q.ifr_flags & (IFF_UP | IFF_LOOPBACK)) == (IFF_UP | IFF_LOOPBACK),
        q.ifr_flags);
    say("SIOCGIFNETMASK", ioctl(s, SIOCGIFNETMASK, &q) == 0 && ((struct sockaddr_in *)&q.ifr_netmask)->sin_addr.s_addr == htonl(0xff000000), errno);
    say("SIOCGIFHWADDR: a loopback device", ioctl(s, SIOCGIFHWADDR, &q) == 0 && q.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK, q.ifr_hwaddr.sa_family);
    say("SIOCGIFINDEX", ioctl(s, SIOCGIFINDEX, &q) == 0 && (unsigned)q.ifr_ifindex == if_nametoindex("lo"), q.ifr_ifindex);
    int mtu = ioctl(s, SIOCGIFMTU, &q) == 0 ? q.ifr_mtu : -1;
    char line[64];
    say("SIOCGIFMTU agrees with /sys/class/net/lo/mtu", mtu > 0 && read_line("/sys/class/net/lo/mtu", line, sizeof(line)) > 0 && atoi(line) == mtu, mtu);
    strcpy(q.ifr_name, "nosuch0");
    say("SIOCGIFFLAGS of no interface: ENODEV", ioctl(s, SIOCGIFFLAGS, &q) == -1 && errno == ENODEV, errno);
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(q.ifr_name, "lo");
        q.ifr_mtu = 1280;
        _exit(setuid(1000) == 0 && ioctl(s, SIOCSIFMTU, &q) == -1 && errno == EPERM ? 0 : 1);
    }
    say("SIOCSIFMTU as a user: EPERM", child_ok(pid), 0);
    close(s);
}

/* A netlink request: a header and `n` bytes of body. */
static int nl_ask(int fd, int type, int flags, unsigned seq, const void *body, size_t n)
{
    char b[256] = {0};
    struct nlmsghdr *h = (void *)b;
    h->nlmsg_len = (unsigned)NLMSG_LENGTH(n);
    h->nlmsg_type = (unsigned short)type;
    h->nlmsg_flags = (unsigned short)(NLM_F_REQUEST | flags);
    h->nlmsg_seq = seq;
    memcpy(NLMSG_DATA(h), body, n);
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    return sendto(fd, b, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof(k)) == (ssize_t)h->nlmsg_len ? 0 : -1;
}

/* What a dump or an answer brought: messages of `type` counted; lo found (links); the error
 * of an NLMSG_ERROR (1 when none came); whether all carried `seq` and `port`. */
struct nl_seen {
    int count, lo, done, err, seq_ok, routes_main;
};

static void nl_read(int fd, int type, unsigned seq, unsigned port, struct nl_seen *v)
{
    static char b[65536];
    memset(v, 0, sizeof(*v));
    v->err = 1;
    v->seq_ok = 1;
    while (!v->done && v->err == 1) {
        struct sockaddr_nl from;
        struct iovec io = {b, sizeof(b)};
        struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &io, .msg_iovlen = 1};
        long n = recvmsg(fd, &m, MSG_DONTWAIT);
        if (n <= 0 || from.nl_pid != 0)
            break;
        for (struct nlmsghdr *h = (void *)b; NLMSG_OK(h, (unsigned long)n); h = NLMSG_NEXT(h, n)) {
            v->seq_ok &= h->nlmsg_seq == seq && h->nlmsg_pid == port;
            if (h->nlmsg_type == NLMSG_DONE)
                v->done = 1;
            else if (h->nlmsg_type == NLMSG_ERROR)
                v->err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            if (h->nlmsg_type != type)
                continue;
            v->count++;
            if (type == RTM_NEWLINK) {
                struct ifinfomsg *ifi = NLMSG_DATA(h);
                int len = (int)IFLA_PAYLOAD(h);
                for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len))
                    if (a->rta_type == IFLA_IFNAME && !strcmp(RTA_DATA(a), "lo"))
                        v->lo = ifi->ifi_index == (int)if_nametoindex("lo") && (ifi->ifi_flags & IFF_LOOPBACK);
            } else if (type == RTM_NEWROUTE) {
                struct rtmsg *rt = NLMSG_DATA(h);
                v->routes_main += rt->rtm_table == RT_TABLE_MAIN && rt->rtm_family == AF_INET;
            }
        }
    }
}

static void rtnetlink(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl me = {.nl_family = AF_NETLINK};
    socklen_t len = sizeof(me);
    say("netlink: socket and bind", fd >= 0 && bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0, errno);
    say("netlink: bound to a port id", getsockname(fd, (struct sockaddr *)&me, &len) == 0 && len == sizeof(me) && me.nl_family == AF_NETLINK && me.nl_pid != 0,
        (long)me.nl_pid);
    struct rtgenmsg g = {AF_UNSPEC};
    struct nl_seen v;
    nl_ask(fd, RTM_GETLINK, NLM_F_DUMP, 42, &g, sizeof(g));
    long peek = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC); /* iproute2 sizes its buffer so */
    say("netlink: MSG_PEEK|MSG_TRUNC tells the answer's length", peek >= (long)NLMSG_LENGTH(sizeof(struct ifinfomsg)), peek);
    nl_read(fd, RTM_NEWLINK, 42, me.nl_pid, &v);
    say("netlink: RTM_GETLINK dump: lo, then NLMSG_DONE, with our seq and port", v.lo && v.done && v.seq_ok && v.count >= 1, v.count);
    char body[64] = {0};
    struct ifinfomsg *ifi = (void *)body;
    struct rtattr *a = (void *)(body + NLMSG_ALIGN(sizeof(*ifi)));
    a->rta_type = IFLA_IFNAME;
    a->rta_len = RTA_LENGTH(3);
    memcpy(RTA_DATA(a), "lo", 3);
    nl_ask(fd, RTM_GETLINK, NLM_F_ACK, 43, body, NLMSG_ALIGN(sizeof(*ifi)) + RTA_ALIGN(a->rta_len));
    nl_read(fd, RTM_NEWLINK, 43, me.nl_pid, &v); /* the link, then the acknowledgement */
    say("netlink: RTM_GETLINK of lo by name, acknowledged", v.lo && v.count == 1 && v.err == 0 && v.seq_ok, v.err);
    struct rtmsg rt = {.rtm_family = AF_INET};
    nl_ask(fd, RTM_GETROUTE, NLM_F_DUMP, 44, &rt, sizeof(rt));
    nl_read(fd, RTM_NEWROUTE, 44, me.nl_pid, &v);
    FILE *f = fopen("/proc/net/route", "r");
    char line[256];
    int proc_routes = -1; /* its header line is not a route */
    while (f && fgets(line, sizeof(line), f))
        proc_routes++;
    if (f)
        fclose(f);
    say("netlink: the main IPv4 routes are /proc/net/route's", v.done && v.routes_main == proc_routes, v.routes_main * 100 + proc_routes);
    struct sockaddr_nl peer;
    len = sizeof(peer);
    say("netlink: the peer is the kernel", getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && peer.nl_pid == 0, errno);
    pid_t pid = fork();
    if (pid == 0) {
        struct {
            struct ifaddrmsg ifa;
            struct rtattr a;
            struct in_addr in;
        } req = {{AF_INET, 24, 0, 0, if_nametoindex("lo")}, {RTA_LENGTH(4), IFA_LOCAL}, {htonl(0x0a090807)}};
        if (setuid(1000) < 0 || nl_ask(fd, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE, 45, &req, sizeof(req)) < 0)
            _exit(1);
        nl_read(fd, -1, 45, me.nl_pid, &v);
        _exit(v.err == -EPERM ? 0 : 2);
    }
    say("netlink: RTM_NEWADDR as a user: EPERM", child_ok(pid), 0);
    close(fd);
    fd = socket(AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE);
    say("netlink: SOCK_STREAM is ESOCKTNOSUPPORT", fd == -1 && errno == ESOCKTNOSUPPORT, errno);
}

/* sock_diag (ss): a TCP listener and a unix one are listed with their inodes (what fstat says),
 * ports and names */
static void sock_diag(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG);
    int l = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    socklen_t len = sizeof(a);
    struct stat ls, us;
    strcpy(un.sun_path, "/tmp/net.diag");
    unlink(un.sun_path);
    int ok = fd >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0 && getsockname(l, (struct sockaddr *)&a, &len) == 0 &&
             bind(u, (struct sockaddr *)&un, sizeof(un)) == 0 && listen(u, 3) == 0 && fstat(l, &ls) == 0 && fstat(u, &us) == 0;
    say("sock_diag: a NETLINK_SOCK_DIAG socket", ok, errno);
    struct inet_diag_req_v2 ir = {.sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP, .idiag_states = 1 << 10}; /* TCP_LISTEN */
    static char b[65536];
    int found = 0;
    if (ok && nl_ask(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, 7, &ir, sizeof(ir)) == 0)
        for (int done = 0; !done;) {
            long n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
            if (n <= 0)
                break;
            for (struct nlmsghdr *h = (void *)b; NLMSG_OK(h, (unsigned long)n); h = NLMSG_NEXT(h, n)) {
                struct inet_diag_msg *m = NLMSG_DATA(h);
                done |= h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR;
                found |= h->nlmsg_type == SOCK_DIAG_BY_FAMILY && m->idiag_inode == ls.st_ino && m->id.idiag_sport == a.sin_port &&
                         m->idiag_state == 10 && m->id.idiag_src[0] == htonl(INADDR_LOOPBACK);
            }
        }
    say("sock_diag: the TCP listener, its port, address and inode", found, 0);
    struct unix_diag_req ur = {.sdiag_family = AF_UNIX, .udiag_states = 1 << 10, .udiag_show = UDIAG_SHOW_NAME};
    found = 0;
    if (ok && nl_ask(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, 8, &ur, sizeof(ur)) == 0)
        for (int done = 0; !done;) {
            long n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
            if (n <= 0)
                break;
            for (struct nlmsghdr *h = (void *)b; NLMSG_OK(h, (unsigned long)n); h = NLMSG_NEXT(h, n)) {
                struct unix_diag_msg *m = NLMSG_DATA(h);
                done |= h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR;
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || m->udiag_ino != us.st_ino)
                    continue;
                int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
                for (struct rtattr *r = (void *)(m + 1); RTA_OK(r, alen); r = RTA_NEXT(r, alen))
                    found |= r->rta_type == UNIX_DIAG_NAME && RTA_PAYLOAD(r) == strlen(un.sun_path) && !memcmp(RTA_DATA(r), un.sun_path, RTA_PAYLOAD(r));
            }
        }
    say("sock_diag: the unix listener and its name", found, 0); /* on Linux: with its unix_diag module loaded */
    close(fd);
    close(l);
    close(u);
    unlink(un.sun_path);
}

/* lo's received bytes in /proc/net/dev; -1 when it is not listed */
static long lo_rx_bytes(void)
{
    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    long rx = -1;
    while (f && fgets(line, sizeof(line), f)) {
        char *p = line + strspn(line, " ");
        if (!strncmp(p, "lo:", 3))
            rx = atol(p + 3);
    }
    if (f)
        fclose(f);
    return rx;
}

static void proc_net_dev(void)
{
    long before = lo_rx_bytes();
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), a = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    static char buf[10000];
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&sa, &len) == 0 &&
        connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 && (a = accept(l, NULL, NULL)) >= 0) {
        long got = 0, r;
        if (write(c, buf, sizeof(buf)) == (long)sizeof(buf))
            while (got < (long)sizeof(buf) && (r = read(a, buf, sizeof(buf))) > 0)
                got += r;
    }
    long after = lo_rx_bytes();
    say("/proc/net/dev counts lo's traffic", before >= 0 && after >= before + (long)sizeof(buf), after - before);
    close(a);
    close(c);
    close(l);
    struct if_nameindex *ni = if_nameindex();
    FILE *f = fopen("/proc/net/dev", "r");
    char all[4096] = "";
    size_t n = f ? fread(all, 1, sizeof(all) - 1, f) : 0;
    all[n] = 0;
    int ok = ni && f;
    for (struct if_nameindex *i = ni; ok && i->if_index; i++) {
        char want[IF_NAMESIZE + 2];
        snprintf(want, sizeof(want), "%s:", i->if_name);
        ok = strstr(all, want) != NULL;
    }
    say("/proc/net/dev lists every interface", ok, (long)n);
    if (f)
        fclose(f);
    if (ni)
        if_freenameindex(ni);
}

static void sys(void)
{
    char line[256];
    struct statfs fs = {0};
    say("/sys is sysfs", statfs("/sys", &fs) == 0 && fs.f_type == 0x62656572, (long)fs.f_type);
    int lo = -1, hi = -1, cpus = 0;
    if (read_line("/sys/devices/system/cpu/online", line, sizeof(line)) > 0)
        for (char *p = line; *p;) { /* "0", "0-3", "0,2-5" */
            lo = (int)strtol(p, &p, 10);
            hi = *p == '-' ? (int)strtol(p + 1, &p, 10) : lo;
            cpus += hi - lo + 1;
            p += *p == ',';
        }
    say("/sys/devices/system/cpu/online is the online CPU count", cpus >= 1 && cpus == get_nprocs() && cpus == sysconf(_SC_NPROCESSORS_ONLN), cpus);
    say("cpu0's topology", read_line("/sys/devices/system/cpu/cpu0/topology/core_id", line, sizeof(line)) > 0 && line[0] >= '0' && line[0] <= '9',
        0);
    say("/sys/devices/system/cpu/possible", read_line("/sys/devices/system/cpu/possible", line, sizeof(line)) > 0 && line[0] == '0', 0);
    say("/sys/class/net/lo/ifindex", read_line("/sys/class/net/lo/ifindex", line, sizeof(line)) > 0 && (unsigned)atoi(line) == if_nametoindex("lo"),
        atoi(line));
    say("/sys/class/net/lo/address", read_line("/sys/class/net/lo/address", line, sizeof(line)) == 18 && !strcmp(line, "00:00:00:00:00:00"), 0);
    int fd = open("/sys/devices/system/cpu/online", O_WRONLY);
    long w = fd >= 0 ? write(fd, "7\n", 2) : -1;
    if (fd >= 0)
        close(fd);
    say("writing /sys changes nothing", (w < 0 || w == 2) && read_line("/sys/devices/system/cpu/online", line, sizeof(line)) > 0 && line[0] == '0',
        w);
}

void net_checks(void)
{
    ifaddrs();
    own_addresses();
    ioctls();
    rtnetlink();
    proc_net_dev();
    sock_diag();
    sys();
}
