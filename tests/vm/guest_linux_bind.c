/* Which binds share a port, as Linux decides (inet_csk_bind_conflict, udp_lib_lport_inuse):
 * addresses that do not meet (127.0.0.1 and 127.0.0.2, ::1 and 127.0.0.1) share it freely; a
 * wildcard meets every address of its family (and an IPv6 one IPv4's unless IPV6_V6ONLY);
 * SO_REUSEADDR lets TCP sockets share it while none of them listens and UDP ones always;
 * SO_REUSEPORT lets one user's sockets share it, listening too. And what is sent to a port
 * reaches the socket bound to its very address before a wildcard one. */
#include "guest_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in in4(const char *addr, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, addr, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 in6(const char *addr, int port)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    inet_pton(AF_INET6, addr, &a.sin6_addr);
    return a;
}

/* A socket of `family`/`type` with SO_REUSEADDR (bit 0), SO_REUSEPORT (bit 1), IPV6_V6ONLY
 * (bit 2) as `opts` says, bound to `a`: the descriptor, or -errno of the bind. */
static int bound(int family, int type, int opts, const void *a, socklen_t len)
{
    int one = 1, fd = socket(family, type, 0);
    if (fd < 0)
        return -errno;
    if (opts & 1)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (opts & 2)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (opts & 4)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, a, len) == 0)
        return fd;
    int e = errno;
    close(fd);
    return -e;
}

static int tcp4(int opts, const char *addr, int port)
{
    struct sockaddr_in a = in4(addr, port);
    return bound(AF_INET, SOCK_STREAM, opts, &a, sizeof(a));
}

static int tcp6(int opts, const char *addr, int port)
{
    struct sockaddr_in6 a = in6(addr, port);
    return bound(AF_INET6, SOCK_STREAM, opts, &a, sizeof(a));
}

static int udp4(int opts, const char *addr, int port)
{
    struct sockaddr_in a = in4(addr, port);
    return bound(AF_INET, SOCK_DGRAM, opts, &a, sizeof(a));
}

/* A port nobody has now: one the kernel picks for a wildcard TCP and UDP bind (then let go). */
static int free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        int t = tcp4(0, "0.0.0.0", 0);
        int port = t >= 0 && getsockname(t, (struct sockaddr *)&a, &len) == 0 ? ntohs(a.sin_port) : -1;
        int u = port > 0 ? udp4(0, "0.0.0.0", port) : -1;
        if (t >= 0)
            close(t);
        if (u >= 0) {
            close(u);
            return port;
        }
    }
    return -1;
}

static void closeall(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* A client's connection to `addr`:`port` lands on listener `l` (and not `other`). */
static int lands_on(const char *addr, int port, int l, int other)
{
    struct sockaddr_in a = in4(addr, port);
    int c = socket(AF_INET, SOCK_STREAM, 0), s = -1, ok = connect(c, (struct sockaddr *)&a, sizeof(a)) == 0;
    struct sockaddr_in here;
    socklen_t len = sizeof(here);
    ok = ok && (s = accept(l, (struct sockaddr *)&here, &len)) >= 0 && getsockname(s, (struct sockaddr *)&here, &len) == 0 &&
         here.sin_addr.s_addr == a.sin_addr.s_addr;
    if (s >= 0)
        close(s);
    close(c);
    if (ok && other >= 0) { /* nothing queued on the other one */
        struct timeval tv = {0, 0};
        fd_set r;
        FD_ZERO(&r);
        FD_SET(other, &r);
        ok = select(other + 1, &r, NULL, NULL, &tv) == 0;
    }
    return ok;
}

static void tcp_addresses(void)
{
    int p = free_port(), fd[4] = {-1, -1, -1, -1};
    fd[0] = tcp4(0, "127.0.0.1", p);
    fd[1] = tcp4(0, "127.0.0.2", p);
    say("bind: 127.0.0.1:P and 127.0.0.2:P both", p > 0 && fd[0] >= 0 && fd[1] >= 0, fd[1]);
    say("bind: both listen", listen(fd[0], 4) == 0 && listen(fd[1], 4) == 0, errno);
    say("bind: 127.0.0.2:P is reached at its listener", lands_on("127.0.0.2", p, fd[1], fd[0]), 0);
    say("bind: 127.0.0.1:P is reached at its listener", lands_on("127.0.0.1", p, fd[0], fd[1]), 0);
    fd[2] = tcp4(0, "127.0.0.1", p);
    say("bind: 127.0.0.1:P again EADDRINUSE", fd[2] == -EADDRINUSE, fd[2]);
    fd[2] = tcp4(1, "0.0.0.0", p);
    say("bind: the wildcard over listeners EADDRINUSE (SO_REUSEADDR or not)", fd[2] == -EADDRINUSE, fd[2]);
    fd[3] = tcp6(0, "::1", p);
    say("bind: [::1]:P beside IPv4 listeners", fd[3] >= 0, fd[3]);
    closeall(fd, 4);
    int q = free_port(), g[4] = {-1, -1, -1, -1};
    g[0] = tcp4(0, "0.0.0.0", q);
    g[1] = tcp4(0, "127.0.0.1", q);
    say("bind: a specific address under a bound wildcard EADDRINUSE", q > 0 && g[0] >= 0 && g[1] == -EADDRINUSE, g[1]);
    g[2] = tcp6(0, "::", q);
    say("bind: the IPv6 wildcard over an IPv4 one EADDRINUSE", g[2] == -EADDRINUSE, g[2]);
    g[3] = tcp6(4, "::", q);
    say("bind: an IPV6_V6ONLY wildcard beside it", g[3] >= 0, g[3]);
    closeall(g, 4);
    int r = free_port(), h[2] = {-1, -1};
    h[0] = tcp6(0, "::1", r);
    h[1] = tcp4(0, "0.0.0.0", r);
    say("bind: the IPv4 wildcard beside [::1]:P", r > 0 && h[0] >= 0 && h[1] >= 0, h[1]);
    closeall(h, 2);
}

static void tcp_reuse(void)
{
    int p = free_port(), fd[3] = {-1, -1, -1};
    fd[0] = tcp4(1, "0.0.0.0", p);
    fd[1] = tcp4(1, "127.0.0.1", p);
    say("SO_REUSEADDR: the wildcard and 127.0.0.1, neither listening", p > 0 && fd[0] >= 0 && fd[1] >= 0, fd[1]);
    say("SO_REUSEADDR: the first listens", fd[0] >= 0 && listen(fd[0], 4) == 0, errno);
    errno = 0;
    say("SO_REUSEADDR: the second may not listen then (EADDRINUSE)", fd[1] >= 0 && listen(fd[1], 4) == -1 && errno == EADDRINUSE, errno);
    fd[2] = tcp4(1, "127.0.0.1", p);
    say("SO_REUSEADDR: no more binds beside a listener", fd[2] == -EADDRINUSE, fd[2]);
    closeall(fd, 3);
    fd[0] = tcp4(0, "127.0.0.1", p);
    say("bind: the port is free once they closed", fd[0] >= 0, fd[0]);
    closeall(fd, 1);
    int q = free_port(), r[3] = {-1, -1, -1};
    r[0] = tcp4(2, "127.0.0.1", q);
    r[1] = tcp4(2, "127.0.0.1", q);
    say("SO_REUSEPORT: two listeners on one address", q > 0 && r[0] >= 0 && r[1] >= 0 && listen(r[0], 4) == 0 && listen(r[1], 4) == 0, r[1]);
    r[2] = tcp4(1, "127.0.0.1", q);
    say("SO_REUSEPORT: a third without it EADDRINUSE", r[2] == -EADDRINUSE, r[2]);
    closeall(r, 3);
}

static void udp_rules(void)
{
    int p = free_port(), fd[4] = {-1, -1, -1, -1};
    fd[0] = udp4(0, "127.0.0.1", p);
    fd[1] = udp4(0, "127.0.0.2", p);
    say("udp bind: 127.0.0.1:P and 127.0.0.2:P both", p > 0 && fd[0] >= 0 && fd[1] >= 0, fd[1]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = in4("127.0.0.2", p);
    char b[4] = {0};
    int ok = sendto(s, "two", 3, 0, (struct sockaddr *)&to, sizeof(to)) == 3 && fd[1] >= 0 && recv(fd[1], b, sizeof(b), MSG_DONTWAIT) == 3 &&
             !memcmp(b, "two", 3) && fd[0] >= 0 && recv(fd[0], b, sizeof(b), MSG_DONTWAIT) == -1 && errno == EAGAIN;
    say("udp: a datagram to 127.0.0.2:P reaches its socket only", ok, errno);
    close(s);
    fd[2] = udp4(1, "0.0.0.0", p);
    say("udp bind: the wildcard with SO_REUSEADDR over sockets without EADDRINUSE", fd[2] == -EADDRINUSE, fd[2]);
    closeall(fd, 3);
    fd[0] = udp4(1, "0.0.0.0", p);
    fd[1] = udp4(1, "0.0.0.0", p);
    fd[2] = udp4(1, "127.0.0.1", p);
    fd[3] = udp4(0, "127.0.0.1", p);
    say("udp SO_REUSEADDR: sockets with it share the port", fd[0] >= 0 && fd[1] >= 0 && fd[2] >= 0, fd[2]);
    say("udp SO_REUSEADDR: one without it EADDRINUSE", fd[3] == -EADDRINUSE, fd[3]);
    closeall(fd, 4);
}

void bind_checks(void)
{
    tcp_addresses();
    tcp_reuse();
    udp_rules();
}
