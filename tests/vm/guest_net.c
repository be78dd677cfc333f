/* A static test program for the guest's connections through the host (test_vsock copies it in
 * and runs it). Every mode prints one result line:
 *   serve PORT N          listen on the wildcard address, echo N connections (nonblocking, epoll)
 *   client IP PORT BYTES  connect (nonblocking, poll), send BYTES of a pattern, read the echo back
 *   hold IP PORT          connect, one byte there and back, then read until the connection ends
 *   refused IP PORT       connect and print the error
 *   udp IP PORT           a datagram there and its answer back
 *   resolve NAME          an A query to the resolver in /etc/resolv.conf, the first address
 *   get HOST PORT PATH    an HTTP/1.0 GET (HOST a name is resolved so), the status line and body size
 * and for bench/net_bench.sh (the same binary runs on the host as the anchor):
 *   latency IP PORT N     N times: connect, one byte there and back, close; p50/p99 in microseconds
 *   send IP PORT BYTES    BYTES to the server, then its end; MB/s
 *   sink PORT             takes one connection to its end; the byte count
 *   syscalls N            N getppid calls: the cost of one kernel round trip, in nanoseconds
 *                         (every socket call pays it; the relay's latency is a few dozen of them) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case ECONNRESET: return "ECONNRESET";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case ENETUNREACH: return "ENETUNREACH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPIPE: return "EPIPE";
    default: return strerror(e);
    }
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

struct echo {
    int fd, eof;
    char buf[65536];
    size_t len;
};

/* Echoes N connections with epoll: readiness in both directions decides every read and write. */
static int serve(int port, int n)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1, ep = epoll_create1(0), done = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 8) < 0)
        return printf("serve: %s\n", strerror(errno)), 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    while (done < n) {
        struct epoll_event got[8];
        int k = epoll_wait(ep, got, 8, -1);
        for (int i = 0; i < k; i++) {
            struct echo *e = got[i].data.ptr;
            if (!e) {
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0)
                    continue;
                e = calloc(1, sizeof(*e));
                e->fd = c;
                ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = e};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            if ((got[i].events & EPOLLIN) && !e->eof && e->len < sizeof(e->buf)) {
                ssize_t r = read(e->fd, e->buf + e->len, sizeof(e->buf) - e->len);
                if (r == 0)
                    e->eof = 1;
                else if (r > 0)
                    e->len += (size_t)r;
            }
            if (e->len) {
                ssize_t w = write(e->fd, e->buf, e->len);
                if (w > 0) {
                    memmove(e->buf, e->buf + w, e->len - (size_t)w);
                    e->len -= (size_t)w;
                }
            }
            if (e->eof && !e->len) {
                close(e->fd);
                free(e);
                done++;
                continue;
            }
            ev = (struct epoll_event){.events = (e->len ? EPOLLOUT : 0) | (!e->eof && e->len < sizeof(e->buf) ? EPOLLIN : 0),
                                      .data.ptr = e};
            epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
        }
    }
    printf("serve ok %d\n", done);
    return 0;
}

static int connect_nb(const char *ip, const char *port, int *err)
{
    struct sockaddr_in a = addr_of(ip, port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    *err = 0;
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
        return s;
    if (errno != EINPROGRESS) {
        *err = errno;
        close(s);
        return -1;
    }
    struct pollfd p = {s, POLLOUT, 0};
    socklen_t el = sizeof(*err);
    if (poll(&p, 1, 10000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, err, &el) < 0 || *err) {
        if (!*err)
            *err = ETIMEDOUT;
        close(s);
        return -1;
    }
    return s;
}

static int client(const char *ip, const char *port, long total)
{
    int err, s = connect_nb(ip, port, &err);
    if (s < 0)
        return printf("client: connect: %s\n", ename(err)), 1;
    long sent = 0, got = 0, bad = 0;
    char out[32768], in[32768];
    while (got < total) {
        struct pollfd p = {s, POLLIN | (sent < total ? POLLOUT : 0), 0};
        if (poll(&p, 1, 10000) != 1)
            return printf("client: stalled at %ld sent, %ld back\n", sent, got), 1;
        if ((p.revents & POLLOUT) && sent < total) {
            size_t n = total - sent < (long)sizeof(out) ? (size_t)(total - sent) : sizeof(out);
            for (size_t i = 0; i < n; i++)
                out[i] = (char)((sent + (long)i) * 7 + 3);
            ssize_t w = write(s, out, n);
            if (w > 0)
                sent += w;
            if (sent == total)
                shutdown(s, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t r = read(s, in, sizeof(in));
            if (r <= 0)
                return printf("client: read %zd (%s) at %ld\n", r, r < 0 ? ename(errno) : "end", got), 1;
            for (ssize_t i = 0; i < r; i++)
                bad += in[i] != (char)((got + i) * 7 + 3);
            got += r;
        }
    }
    char tail;
    struct pollfd p = {s, POLLIN, 0};
    poll(&p, 1, 10000); /* the end comes once the server has echoed all */
    ssize_t end = read(s, &tail, 1);
    printf("client %s %ld bytes back%s\n", bad ? "CORRUPT" : "ok", got, end == 0 ? ", end" : ", no end");
    return bad != 0;
}

static int hold(const char *ip, const char *port)
{
    int err, s = connect_nb(ip, port, &err);
    char c = 'h';
    if (s < 0)
        return printf("hold: connect: %s\n", ename(err)), 1;
    fcntl(s, F_SETFL, 0);
    if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1)
        return printf("hold: no echo\n"), 1;
    ssize_t r = read(s, &c, 1); /* blocks: through a pause and a restore */
    int e = errno;
    ssize_t w = send(s, &c, 1, MSG_NOSIGNAL);
    printf("hold: read %zd %s, then write %zd %s\n", r, r < 0 ? ename(e) : "", w, w < 0 ? ename(errno) : "");
    return 0;
}

static int udp(const char *ip, const char *port)
{
    struct sockaddr_in a = addr_of(ip, port), from;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    char buf[256];
    socklen_t fl = sizeof(from);
    struct timeval tv = {5, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (sendto(s, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)) != 4)
        return printf("udp: send: %s\n", ename(errno)), 1;
    ssize_t r = recvfrom(s, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
    if (r < 0)
        return printf("udp: recv: %s\n", ename(errno)), 1;
    buf[r] = 0;
    char who[32];
    inet_ntop(AF_INET, &from.sin_addr, who, sizeof(who));
    printf("udp ok '%s' from %s:%d\n", buf, who, ntohs(from.sin_port));
    return 0;
}

static int lookup(const char *name, char *ip, size_t cap);

static int resolve(const char *name)
{
    char ip[32];
    if (lookup(name, ip, sizeof(ip)) < 0)
        return 1;
    printf("resolve %s %s\n", name, ip);
    return 0;
}

static int get(const char *host, const char *port, const char *path)
{
    char ip[32], req[512], buf[65536];
    struct in_addr probe;
    if (inet_pton(AF_INET, host, &probe) == 1)
        snprintf(ip, sizeof(ip), "%s", host);
    else if (lookup(host, ip, sizeof(ip)) < 0)
        return 1;
    int err, s = connect_nb(ip, port, &err);
    if (s < 0)
        return printf("get: connect: %s\n", ename(err)), 1;
    fcntl(s, F_SETFL, 0);
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (write(s, req, (size_t)n) != n)
        return printf("get: write: %s\n", ename(errno)), 1;
    size_t got = 0;
    ssize_t r;
    while ((r = read(s, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    char *eol = strstr(buf, "\r\n"), *body = strstr(buf, "\r\n\r\n");
    if (eol)
        *eol = 0;
    printf("get: %s; body '%s'\n", buf, body ? body + 4 : "");
    return 0;
}

static int lookup(const char *name, char *ip, size_t cap)
{
    unsigned char q[512] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, r[512];
    size_t n = 12;
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        q[n++] = (unsigned char)len;
        memcpy(q + n, p, len);
        n += len;
        p += len + (dot != NULL);
    }
    q[n++] = 0;
    memcpy(q + n, "\0\1\0\1", 4);
    n += 4;
    char ns[64] = "";
    FILE *f = fopen("/etc/resolv.conf", "r");
    if (!f || fscanf(f, "nameserver %63s", ns) != 1)
        return printf("resolve: no nameserver\n"), -1;
    fclose(f);
    struct sockaddr_in a = addr_of(ns, "53");
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sendto(s, q, n, 0, (struct sockaddr *)&a, sizeof(a));
    ssize_t got = recv(s, r, sizeof(r), 0);
    if (got < (ssize_t)n + 16 || r[0] != 0x12 || r[1] != 0x34 || (r[3] & 0xf) || !r[7]) {
        printf("resolve: no answer (%zd bytes, rcode %d)\n", got, got > 3 ? r[3] & 0xf : -1);
        return -1;
    }
    snprintf(ip, cap, "%d.%d.%d.%d", r[n + 12], r[n + 13], r[n + 14], r[n + 15]);
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int latency(const char *ip, const char *port, int n)
{
    double *t = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        int err, s = connect_nb(ip, port, &err);
        char c = 'x';
        if (s < 0)
            return printf("latency: connect: %s\n", ename(err)), 1;
        fcntl(s, F_SETFL, 0);
        if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1)
            return printf("latency: no echo\n"), 1;
        t[i] = now_us() - t0;
        close(s);
    }
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    printf("latency p50 %.0f us p99 %.0f us (%d connects)\n", t[n / 2], t[n * 99 / 100], n);
    return 0;
}

static int send_bytes(const char *ip, const char *port, long total)
{
    int err, s = connect_nb(ip, port, &err);
    if (s < 0)
        return printf("send: connect: %s\n", ename(err)), 1;
    fcntl(s, F_SETFL, 0);
    static char buf[1 << 16];
    memset(buf, 'x', sizeof(buf));
    double t0 = now_us();
    for (long off = 0; off < total;) {
        ssize_t w = write(s, buf, total - off < (long)sizeof(buf) ? (size_t)(total - off) : sizeof(buf));
        if (w <= 0)
            return printf("send: write: %s\n", ename(errno)), 1;
        off += w;
    }
    shutdown(s, SHUT_WR);
    char c;
    if (read(s, &c, 1) < 0) /* the sink closes once it has all */
        return 1;
    double us = now_us() - t0;
    printf("send %ld bytes in %.0f ms: %.0f MB/s\n", total, us / 1e3, total / us);
    return 0;
}

static int sink(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 8) < 0)
        return printf("sink: %s\n", strerror(errno)), 1;
    int c = accept(l, NULL, NULL);
    static char buf[1 << 16];
    long n = 0;
    ssize_t r;
    while ((r = read(c, buf, sizeof(buf))) > 0)
        n += r;
    close(c);
    printf("sink %ld bytes\n", n);
    return 0;
}

static int syscalls(long n)
{
    double t0 = now_us();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid); /* (not the libc wrapper, which may cache) */
    printf("syscall %.0f ns (%ld getppid calls)\n", (now_us() - t0) * 1e3 / (double)n, n);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]), atoi(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "client"))
        return client(argv[2], argv[3], atol(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "hold"))
        return hold(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "refused")) {
        int err, s = connect_nb(argv[2], argv[3], &err);
        printf("refused: %s\n", s < 0 ? ename(err) : "connected");
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "udp"))
        return udp(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "resolve"))
        return resolve(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "get"))
        return get(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "latency"))
        return latency(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "send"))
        return send_bytes(argv[2], argv[3], atol(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "sink"))
        return sink(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "syscalls"))
        return syscalls(atol(argv[2]));
    fprintf(stderr, "usage: guest_net serve|client|hold|refused|udp|resolve ...\n");
    return 2;
}
