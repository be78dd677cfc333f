/* Abusive clients, written by hand on raw sockets (HTTP/2 framed per RFC 9113, headers per
 * RFC 7541), against the real daemon (API-only mode): HTTP/1.1 slowloris (many connections
 * trickling a head that never ends, and connections that never send a byte), and on HTTP/2
 * Rapid Reset (HEADERS + RST_STREAM floods), SETTINGS and PING floods from a client that never
 * reads, a CONTINUATION flood (a header block that never ends), and zero-window stalls (the
 * server has big answers to send and the client never opens its window, or never reads; and an
 * HTTP/1.1 client that pipelines such requests and never reads).
 * For each: while the abuse runs a normal client's GET /sandboxes/{id} keeps answering 200
 * within PROBE_BOUND_MS, the abusive connections are closed by the server within a bound
 * (timeouts or GOAWAY), and afterwards the daemon's descriptors are back to where they were and
 * its memory grew by at most a bound. */
#include "../lel_test.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define IDLE_MS 1000         /* http.idle_timeout_ms of the daemon under test */
#define PROBE_BOUND_MS (LEL_TEST_ASAN ? 3000 : 1500) /* a normal request's answer while the abuse runs */
#define FD_SLACK 2            /* descriptors the daemon may open meanwhile for itself (store files) */
#define CLOSE_BOUND_MS 4000  /* an abusive connection is closed by then (IDLE_MS and slack) */
/* a stalled connection is closed once nothing could be written to it for IDLE_MS; while its
 * requests are still being answered (the 503s' heads go out) it is not stalled yet, and under
 * ASan answering 200 lists takes seconds */
#define STALL_BOUND_MS (LEL_TEST_ASAN ? 20000 : 6000)

static srv_t S;
static char probe_path[96];
static atomic_int abuse_on;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int tcp_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends all of it; -1 once the server has closed or reset the connection. */
static int send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Waits up to `ms` for the server to end the connection (EOF or reset), reading (and dropping)
 * what it sends meanwhile. Returns the ms it took, or -1 if it is still open. */
static double wait_closed(int fd, double ms)
{
    double t0 = now_ms();
    char buf[65536];
    while (now_ms() - t0 < ms) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return now_ms() - t0;
    }
    return -1;
}

static int count_fds(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)S.pid);
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static long rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)S.pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* ---- the normal client ---- */

struct probes {
    int n, bad;
    double max_ms;
};

/* Probes (a fresh connection each time, HTTP/1.1 and h2c in turn) until the abuse ends. */
static void probe_while_abused(struct probes *p)
{
    memset(p, 0, sizeof(*p));
    while (atomic_load(&abuse_on) || p->n < 5) {
        resp_t r;
        double t0 = now_ms();
        int rc = api(&S, &r, p->n % 2 ? H2 : H1, "GET", probe_path, NULL);
        double dt = now_ms() - t0;
        if (rc < 0 || r.status != 200 || dt > PROBE_BOUND_MS) {
            p->bad++;
            fprintf(stderr, "probe %d: rc %d status %ld in %.0f ms\n", p->n, rc, rc < 0 ? 0 : r.status, dt);
        }
        if (dt > p->max_ms)
            p->max_ms = dt;
        p->n++;
        resp_free(&r);
        usleep(20000);
    }
}

/* Runs `abuse` on a thread while probing; checks the probes, the descriptors and the memory. */
static void under_abuse(const char *name, void *(*abuse)(void *), void *arg, long rss_bound_kb)
{
    int fds0 = count_fds();
    long rss0 = rss_kb();
    pthread_t th;
    struct probes p;
    atomic_store(&abuse_on, 1);
    pthread_create(&th, NULL, abuse, arg);
    probe_while_abused(&p);
    pthread_join(th, NULL);
    long rss1 = rss_kb();
    int fds1 = -1;
    for (int i = 0; i < 100 && (fds1 = count_fds()) > fds0 + FD_SLACK; i++) /* closes land within a loop turn */
        usleep(50000);
    printf("%s: %d probes, %d bad, max %.0f ms; daemon fds %d -> %d, rss %ld -> %ld KiB\n", name, p.n, p.bad, p.max_ms,
           fds0, fds1, rss0, rss1);
    CHECK_INT(p.bad, 0);
    CHECK(p.n >= 5);
    CHECK(fds1 <= fds0 + FD_SLACK);
    CHECK_MEM(rss1 - rss0 < rss_bound_kb);
}

/* ---- HTTP/1.1 slowloris ---- */

#define SLOW_CONNS 200

struct slow {
    int trickle;       /* 1: a byte every 100 ms; 0: nothing at all */
    int closed;        /* connections the server closed */
    double last_ms;    /* when the last of them was closed, from the start */
};

static void *slowloris(void *arg)
{
    struct slow *s = arg;
    int fds[SLOW_CONNS];
    int open_n = 0;
    const char *head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    double t0 = now_ms();
    for (int i = 0; i < SLOW_CONNS; i++)
        if ((fds[i] = tcp_open()) >= 0)
            open_n++;
    size_t pos = 0, hl = strlen(head);
    s->closed = 0;
    while (s->closed < open_n && now_ms() - t0 < CLOSE_BOUND_MS + 2000) {
        for (int i = 0; i < SLOW_CONNS; i++) {
            if (fds[i] < 0)
                continue;
            char c = head[pos < hl ? pos : hl - 1];
            struct pollfd p = {fds[i], POLLIN, 0};
            int gone = poll(&p, 1, 0) > 0 && recv(fds[i], (char[64]){0}, 64, MSG_DONTWAIT) <= 0;
            if (!gone && s->trickle)
                gone = send(fds[i], &c, 1, MSG_NOSIGNAL) < 0;
            if (gone) {
                close(fds[i]);
                fds[i] = -1;
                s->closed++;
                s->last_ms = now_ms() - t0;
            }
        }
        pos++;
        usleep(100000);
    }
    for (int i = 0; i < SLOW_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    CHECK_INT(open_n, SLOW_CONNS);
    atomic_store(&abuse_on, 0);
    return NULL;
}

static void slowloris_tests(void)
{
    for (int trickle = 1; trickle >= 0; trickle--) {
        struct slow s = {trickle, 0, 0};
        under_abuse(trickle ? "slowloris (a byte every 100 ms)" : "slowloris (silent connections)", slowloris, &s,
                    32 << 10);
        printf("  %d of %d closed by the server, the last after %.0f ms\n", s.closed, SLOW_CONNS, s.last_ms);
        CHECK_INT(s.closed, SLOW_CONNS);
        CHECK(s.last_ms < CLOSE_BOUND_MS);
    }
}

/* ---- HTTP/2 ---- */

enum { F_DATA, F_HEADERS, F_PRIORITY, F_RST, F_SETTINGS, F_PUSH, F_PING, F_GOAWAY, F_WINDOW, F_CONT };

static size_t frame(uint8_t *o, int type, int flags, uint32_t sid, const void *pl, size_t len)
{
    o[0] = (uint8_t)(len >> 16);
    o[1] = (uint8_t)(len >> 8);
    o[2] = (uint8_t)len;
    o[3] = (uint8_t)type;
    o[4] = (uint8_t)flags;
    o[5] = (uint8_t)(sid >> 24 & 0x7f);
    o[6] = (uint8_t)(sid >> 16);
    o[7] = (uint8_t)(sid >> 8);
    o[8] = (uint8_t)sid;
    if (len)
        memcpy(o + 9, pl, len);
    return 9 + len;
}

/* An HPACK string literal, not Huffman-coded (lengths < 127 here). */
static size_t hp_str(uint8_t *o, const char *s)
{
    size_t n = strlen(s);
    o[0] = (uint8_t)n;
    memcpy(o + 1, s, n);
    return 1 + n;
}

/* GET `path` with the server's key: the header block of a request. */
static size_t hp_get(uint8_t *o, const char *path)
{
    size_t n = 0;
    o[n++] = 0x82;                 /* indexed: :method GET */
    o[n++] = 0x86;                 /* indexed: :scheme http */
    o[n++] = 0x04;                 /* literal, not indexed, name :path (static 4) */
    n += hp_str(o + n, path);
    o[n++] = 0x01;                 /* literal, not indexed, name :authority (static 1) */
    n += hp_str(o + n, "127.0.0.1");
    o[n++] = 0x00;                 /* literal, not indexed, new name */
    n += hp_str(o + n, "x-api-key");
    n += hp_str(o + n, S.key);
    return n;
}

/* A connection with the preface sent and SETTINGS (`window0`: INITIAL_WINDOW_SIZE 0). */
static int h2_open(int window0)
{
    int fd = tcp_open();
    if (fd < 0)
        return -1;
    uint8_t b[64];
    size_t n = 0;
    memcpy(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n = 24;
    uint8_t set[6] = {0, 4, 0, 0, 0, 0}; /* SETTINGS_INITIAL_WINDOW_SIZE = 0 */
    n += frame(b + n, F_SETTINGS, 0, 0, set, window0 ? 6 : 0);
    if (send_all(fd, b, n) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A flood: `unit` (a batch of frames) sent again and again until the server closes the
 * connection or `budget` bytes went; `reads`: the client reads what the server sends (else it
 * never reads). */
struct flood {
    const char *name;
    int reads;
    size_t budget;
    uint8_t *(*unit)(uint32_t *sid, size_t *len); /* the next batch (malloc'd) */
    size_t sent;       /* bytes sent */
    double closed_ms;  /* when the server ended it, or -1 */
    int goaway;        /* a GOAWAY came (when reading) */
};

static void *flood_run(void *arg)
{
    struct flood *f = arg;
    int fd = h2_open(0);
    uint32_t sid = 1;
    double t0 = now_ms();
    f->sent = 0;
    f->closed_ms = -1;
    f->goaway = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (fd >= 0 && f->sent < f->budget && now_ms() - t0 < CLOSE_BOUND_MS + 3000) {
        size_t len;
        uint8_t *u = f->unit(&sid, &len), *p = u;
        int gone = 0;
        while (len && !gone) {
            ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
            if (w > 0) {
                p += w;
                len -= (size_t)w;
                f->sent += (size_t)w;
                continue;
            }
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                gone = 1;
                break;
            }
            struct pollfd pf = {fd, (short)(POLLOUT | (f->reads ? POLLIN : 0)), 0};
            poll(&pf, 1, 100);
            if (pf.revents & (POLLHUP | POLLERR))
                gone = 1;
            if (f->reads && (pf.revents & POLLIN)) {
                uint8_t buf[65536];
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                    gone = 1;
                for (ssize_t i = 0; i + 9 <= n; i++) /* a GOAWAY frame header on stream 0 (a rough scan) */
                    if (buf[i + 3] == F_GOAWAY && !buf[i + 5] && !buf[i + 6] && !buf[i + 7] && !buf[i + 8] && buf[i] == 0)
                        f->goaway = 1;
            }
            if (now_ms() - t0 > CLOSE_BOUND_MS + 3000)
                break;
        }
        free(u);
        if (f->reads && !gone) { /* what came meanwhile, and whether it ended */
            uint8_t buf[65536];
            ssize_t n;
            while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                for (ssize_t i = 0; i + 9 <= n; i++)
                    if (buf[i + 3] == F_GOAWAY && !buf[i + 5] && !buf[i + 6] && !buf[i + 7] && !buf[i + 8] && buf[i] == 0)
                        f->goaway = 1;
            if (n == 0 || (n < 0 && errno != EAGAIN))
                gone = 1;
        }
        if (gone) {
            f->closed_ms = now_ms() - t0;
            break;
        }
    }
    if (fd >= 0 && f->closed_ms < 0) { /* the budget went: the server must still end it in time */
        fcntl(fd, F_SETFL, 0);
        double w = wait_closed(fd, CLOSE_BOUND_MS);
        if (w >= 0)
            f->closed_ms = now_ms() - t0;
    }
    if (fd >= 0)
        close(fd);
    atomic_store(&abuse_on, 0);
    return NULL;
}

static uint8_t *unit_rapid_reset(uint32_t *sid, size_t *len)
{
    uint8_t *u = malloc(100 * 512), hb[256];
    size_t n = 0, h = hp_get(hb, probe_path);
    for (int i = 0; i < 100; i++, *sid += 2) {
        n += frame(u + n, F_HEADERS, 0x4 | 0x1, *sid, hb, h);          /* END_HEADERS | END_STREAM */
        n += frame(u + n, F_RST, 0, *sid, (uint8_t[4]){0, 0, 0, 8}, 4); /* CANCEL */
    }
    *len = n;
    return u;
}

static uint8_t *unit_settings(uint32_t *sid, size_t *len)
{
    (void)sid;
    uint8_t *u = malloc(1000 * 15);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += frame(u + n, F_SETTINGS, 0, 0, (uint8_t[6]){0, 3, 0, 0, 0, 100}, 6); /* MAX_CONCURRENT_STREAMS 100 */
    *len = n;
    return u;
}

static uint8_t *unit_ping(uint32_t *sid, size_t *len)
{
    (void)sid;
    uint8_t *u = malloc(1000 * 17);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += frame(u + n, F_PING, 0, 0, "abcdefgh", 8);
    *len = n;
    return u;
}

/* One HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB that never end it. */
static uint8_t *unit_continuation(uint32_t *sid, size_t *len)
{
    static const size_t piece = 16384;
    uint8_t *u = malloc(16 * (piece + 9) + 512), hb[256];
    size_t n = 0;
    if (*sid == 1) {
        size_t h = hp_get(hb, probe_path);
        n += frame(u + n, F_HEADERS, 0x1, 1, hb, h); /* END_STREAM, no END_HEADERS */
        *sid = 3;
    }
    uint8_t *blk = malloc(piece);
    for (size_t i = 0; i < piece; i += 8) /* literal headers "x-a: aaaaa" over and over */
        memcpy(blk + i, "\x00\x03x-a\x01" "a", 8);
    for (int i = 0; i < 16; i++)
        n += frame(u + n, F_CONT, 0, 1, blk, piece);
    free(blk);
    *len = n;
    return u;
}

/* `max_ms`: the server ends the connection this soon (well before the idle timeout: it is the
 * abuse that ends it, not the silence), having taken less than `max_bytes`. */
static void flood_test(const char *name, uint8_t *(*unit)(uint32_t *, size_t *), int reads, double max_ms,
                       size_t max_bytes)
{
    struct flood f = {name, reads, (size_t)256 << 20, unit, 0, -1, 0};
    under_abuse(name, flood_run, &f, 64 << 10);
    printf("  sent %zu bytes; closed by the server after %.0f ms%s\n", f.sent, f.closed_ms,
           f.goaway ? " (GOAWAY seen)" : "");
    CHECK(f.closed_ms >= 0);
    CHECK(f.closed_ms < max_ms);
    CHECK(f.sent < max_bytes);
}

/* ---- zero-window stalls ---- */

struct stall {
    int reads;       /* reads the socket (a flow-control stall) or never does (a TCP stall) */
    int h1;          /* HTTP/1.1: the requests pipelined on plain connections (never read) */
    int conns;
    int closed;
    double last_ms;
    int refused;     /* answers that came as 503 (HPACK: :status as a literal "503") */
};

/* Each connection asks for the big list on 50 streams and never gives a window. */
static void *stall_run(void *arg)
{
    struct stall *s = arg;
    int fds[16], base = count_fds();
    double t0 = now_ms();
    uint8_t *req = malloc(50 * 300), hb[256]; /* (an HTTP/1.1 request is under 150 bytes too) */
    size_t n = 0, h = hp_get(hb, "/sandboxes?limit=1000");
    for (uint32_t i = 0; i < 50; i++)
        n += frame(req + n, F_HEADERS, 0x4 | 0x1, 1 + 2 * i, hb, h);
    if (s->h1) { /* the same 50 requests as HTTP/1.1, pipelined */
        n = 0;
        for (int i = 0; i < 50; i++)
            n += (size_t)sprintf((char *)req + n, "GET /sandboxes?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                  "X-API-Key: %s\r\n\r\n", S.key);
    }
    for (int i = 0; i < s->conns; i++) {
        fds[i] = s->h1 ? tcp_open() : h2_open(1);
        if (fds[i] >= 0 && send_all(fds[i], req, n) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    free(req);
    s->closed = 0;
    while (s->closed < s->conns && now_ms() - t0 < STALL_BOUND_MS + 1000) {
        for (int i = 0; i < s->conns; i++) {
            if (fds[i] < 0)
                continue;
            struct pollfd p = {fds[i], POLLIN, 0};
            int gone = 0;
            if (s->reads && poll(&p, 1, 0) > 0) {
                char buf[65536];
                ssize_t r = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
                gone = r == 0 || (r < 0 && errno != EAGAIN);
                for (ssize_t k = 0; k + 4 <= r; k++)
                    s->refused += !memcmp(buf + k, "\x03" "503", 4);
            } else if (!s->reads) { /* never reads: its socket shows nothing yet, the daemon's descriptors do */
                gone = count_fds() <= base + 1; /* (a probe's connection may be open meanwhile) */
                if (gone) { /* then what the server had sent ends in EOF: it closed them */
                    fcntl(fds[i], F_SETFL, O_NONBLOCK);
                    gone = wait_closed(fds[i], 200) >= 0; /* not yet: the next turn looks again */
                }
            }
            if (gone) {
                close(fds[i]);
                fds[i] = -1;
                s->closed++;
                s->last_ms = now_ms() - t0;
            }
        }
        usleep(20000);
    }
    for (int i = 0; i < s->conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    atomic_store(&abuse_on, 0);
    return NULL;
}

static void stall_tests(void)
{
    /* a list of ~400 KiB: 150 sandboxes with 2 KiB of metadata each */
    char meta[2300], body[2400];
    memset(meta, 'm', 2000);
    meta[2000] = 0;
    snprintf(body, sizeof(body), "{\"metadata\":{\"pad\":\"%s\"}}", meta);
    for (int i = 0; i < 150; i++) {
        resp_t r;
        api(&S, &r, H2, "POST", "/sandboxes", body);
        if (r.status != 201)
            CHECK_INT(r.status, 201);
        resp_free(&r);
    }
    /* the client that reads and never opens its window, twice: answers past a connection's cap
     * are 503s (not even encoded), stalled connections close */
    long rss_round[3];
    for (int round = 0; round < 2; round++) {
        struct stall s = {1, 0, 4, 0, 0, 0};
        rss_round[round] = rss_kb();
        under_abuse("zero window (client reads, never opens its window)", stall_run, &s, 1 << 20);
        rss_round[round + 1] = rss_kb();
        printf("  round %d: %d of %d connections closed by the server, the last after %.0f ms; %d answers were 503\n",
               round, s.closed, s.conns, s.last_ms, s.refused);
        CHECK_INT(s.closed, s.conns);
        CHECK(s.last_ms < STALL_BOUND_MS);
        CHECK(s.refused > 0);
    }
    /* figures only: glibc's arenas keep what the first round's answers took (its RSS does not
     * fall), and how much of it the second round finds again varies; under ASan (which reuses
     * through its allocator) the second round takes nothing more, and LSan finds no leak at exit */
    printf("  rss growth: first round %ld KiB, second %ld KiB\n", rss_round[1] - rss_round[0],
           rss_round[2] - rss_round[1]);
    for (int h1 = 0; h1 <= 1; h1++) {
        struct stall s = {0, h1, 4, 0, 0, 0};
        under_abuse(h1 ? "HTTP/1.1 pipelined requests, client never reads" : "zero window (client never reads)",
                    stall_run, &s, 256 << 10);
        printf("  %d of %d connections closed by the server, the last after %.0f ms\n", s.closed, s.conns, s.last_ms);
        CHECK_INT(s.closed, s.conns);
        CHECK(s.last_ms < STALL_BOUND_MS);
    }
}

int main(void)
{
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "vmm:\n  backend: none\nstore:\n  sync: false\nrate_limits:\n  general_per_s: 1000000\n"
             "teams:\n  max_sandboxes: 1000\nhttp:\n  idle_timeout_ms: %d\n",
             IDLE_MS);
    if (srv_start(&S, cfg) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{}");
    CHECK_INT(r.status, 201);
    snprintf(probe_path, sizeof(probe_path), "/sandboxes/%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    slowloris_tests();
    flood_test("rapid reset (HEADERS + RST_STREAM)", unit_rapid_reset, 1, IDLE_MS / 2, (size_t)16 << 20);
    flood_test("SETTINGS flood (never reads)", unit_settings, 0, IDLE_MS / 2, (size_t)16 << 20);
    flood_test("PING flood (never reads)", unit_ping, 0, IDLE_MS / 2, (size_t)16 << 20);
    flood_test("CONTINUATION flood", unit_continuation, 1, IDLE_MS / 2, (size_t)32 << 20);
    stall_tests();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
