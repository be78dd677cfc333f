/* The net transport on the real /dev/kvm (src/vmm/lel_vsock.c, src/guest/net/hostconn.c,
 * src/net): connections the host opens to a guest listener and connections the guest opens
 * out (through the host gateway to servers this test runs on 127.0.0.1), 16 MiB each way
 * byte-exact through the credit windows, readiness in the guest's poll and epoll, datagrams,
 * the resolver, refusals by policy, and connections ending with ECONNRESET across a snapshot
 * and restore while the listener goes on. Loopback only. Skipped (77) without /dev/kvm. */
#include "../../src/guest/lel_guest_abi.h"
#include "../../src/net/lel_net.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ULL << 20)

extern const unsigned char lel_guest_net_elf[];
extern const size_t lel_guest_net_elf_size;

static void on_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (getenv("LEL_VM_VERBOSE"))
        fprintf(stderr, "console: %.*s\n", (int)len, line);
}

static void on_died(void *ctx, const char *why)
{
    (void)ctx;
    fprintf(stderr, "VM died: %s\n", why);
}

static const struct lel_vm_ops ops = {on_line, on_died, NULL};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put_file(lel_vm_t *vm, const char *path, const void *data, size_t n)
{
    size_t plen = strlen(path) + 1;
    char *bulk = malloc(plen + n);
    memcpy(bulk, path, plen);
    memcpy(bulk + plen, data, n);
    uint64_t arg[4] = {plen, 0, n, 1}, ret[4];
    CHECK_INT(lel_vm_call_bulk(vm, LEL_OP_FILE_WRITE, arg, bulk, plen + n, ret, 10000), 0);
    free(bulk);
}

/* Runs a shell line in the guest to its end; its stdout into out. */
static int run(lel_vm_t *vm, const char *line, char *out, size_t cap)
{
    struct lel_run_result res;
    const char *argv[] = {"/bin/sh", "-c", line, NULL};
    int r = lel_vm_run(vm, argv, NULL, NULL, NULL, 0, 30000, &res);
    size_t n = r == 0 ? lel_vm_bulk_read(vm, 0, out, res.out_len < cap - 1 ? res.out_len : cap - 1) : 0;
    out[n] = 0;
    printf("guest: %s -> %d: %s", line, r == 0 ? res.exit_status : r, n ? out : "(nothing)\n");
    return r == 0 ? res.exit_status : -1;
}

/* ---- servers on the host's loopback ---- */

struct server {
    int fd, udp, port, conns;
    pthread_t t, tu;
};

static void *echo_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t r;
    while ((r = read(c, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(c, buf + off, (size_t)(r - off));
            if (w <= 0)
                goto out;
            off += w;
        }
out:
    close(c);
    return NULL;
}

static void *tcp_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        __atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
        pthread_t t;
        pthread_create(&t, NULL, echo_conn, (void *)(intptr_t)c);
        pthread_detach(t);
    }
}

static void *udp_main(void *arg)
{
    struct server *s = arg;
    char buf[2048];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(s->udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (r < 0)
            return NULL;
        memcpy(buf, "pong", 4);
        sendto(s->udp, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
    }
}

static void server_start(struct server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(s->fd, (struct sockaddr *)&a, sizeof(a));
    listen(s->fd, 16);
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    s->udp = socket(AF_INET, SOCK_DGRAM, 0);
    bind(s->udp, (struct sockaddr *)&a, sizeof(a)); /* the same port number, for UDP */
    pthread_create(&s->t, NULL, tcp_main, s);
    pthread_create(&s->tu, NULL, udp_main, s);
}

/* ---- host-originated connections ---- */

struct feed {
    int fd;
    size_t n;
};

static void *feed_main(void *arg)
{
    struct feed *f = arg;
    char buf[65536];
    for (size_t off = 0; off < f->n;) {
        size_t k = f->n - off < sizeof(buf) ? f->n - off : sizeof(buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = (char)((off + i) * 13 + 1);
        struct pollfd p = {f->fd, POLLOUT, 0};
        poll(&p, 1, 1000);
        ssize_t w = write(f->fd, buf, k);
        if (w < 0 && errno != EAGAIN)
            break;
        off += w > 0 ? (size_t)w : 0;
    }
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

/* Sends n bytes to the guest's echo and reads them back; the bytes that came back right. */
static size_t echo_through(lel_net_ep_t *ep, int port, size_t n, int *refused)
{
    int fd;
    *refused = 0;
    if (lel_net_open(ep, (uint16_t)port, &fd) < 0)
        return 0;
    struct feed f = {fd, n};
    pthread_t t;
    pthread_create(&t, NULL, feed_main, &f);
    char buf[65536];
    size_t got = 0, good = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1)
            break;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            good += buf[i] == (char)((got + (size_t)i) * 13 + 1);
        got += (size_t)r;
    }
    pthread_join(t, NULL);
    close(fd);
    *refused = got == 0;
    return good;
}

static void inbound(lel_vm_t *vm, lel_net_ep_t *ep, uint32_t *serve_id)
{
    const char *argv[] = {"/bin/guest_net", "serve", "7000", "4", NULL};
    struct lel_cmd c = {argv, NULL, NULL, NULL, 0, 120000, 0};
    CHECK_INT(lel_vm_cmd_start(vm, &c, serve_id), 0);
    int refused = 1;
    size_t got = 0;
    for (int i = 0; i < 100 && refused; i++) { /* until it listens */
        got = echo_through(ep, 7000, 5, &refused);
        if (refused)
            usleep(20000);
    }
    CHECK_INT(got, 5);
    double t0 = now_ms();
    got = echo_through(ep, 7000, 16 * MIB, &refused);
    double ms = now_ms() - t0;
    printf("host -> guest echo: 16 MiB there and back in %.0f ms (%.0f MB/s each way)\n", ms, 16.0 * 1.048576 / (ms / 1000));
    CHECK_INT(got, 16 * MIB);
    got = echo_through(ep, 7001, 10, &refused); /* nothing listens there */
    CHECK(refused && got == 0);
}

static void outbound(lel_vm_t *vm, struct server *srv)
{
    char line[256], out[4096];
    snprintf(line, sizeof(line), "/bin/guest_net client 10.0.2.2 %d 16777216", srv->port);
    double t0 = now_ms();
    CHECK_INT(run(vm, line, out, sizeof(out)), 0);
    printf("guest -> host echo: 16 MiB there and back in %.0f ms\n", now_ms() - t0);
    CHECK(strstr(out, "client ok 16777216 bytes back, end") != NULL);
    snprintf(line, sizeof(line), "/bin/guest_net udp 10.0.2.2 %d", srv->port);
    CHECK_INT(run(vm, line, out, sizeof(out)), 0);
    CHECK(strstr(out, "udp ok 'pong' from 10.0.2.2:") != NULL);
    CHECK_INT(run(vm, "/bin/guest_net refused 169.254.169.254 80", out, sizeof(out)), 0);
    CHECK(strstr(out, "refused: ECONNREFUSED") != NULL);
    CHECK_INT(run(vm, "/bin/guest_net refused 10.99.1.1 80", out, sizeof(out)), 0); /* no internet access */
    CHECK(strstr(out, "refused: EACCES") != NULL);
    CHECK_INT(run(vm, "/bin/guest_net resolve host.lelantos.internal", out, sizeof(out)), 0);
    CHECK(strstr(out, "resolve host.lelantos.internal 10.0.2.2") != NULL);
    CHECK_INT(run(vm, "/bin/guest_net resolve static.test", out, sizeof(out)), 0);
    CHECK(strstr(out, "resolve static.test 10.0.2.2") != NULL);
    CHECK(run(vm, "/bin/guest_net resolve nowhere.invalid.test.", out, sizeof(out)) != 0);
}

/* A connection open across a snapshot and restore ends with ECONNRESET in the restored guest;
 * the listener that was open goes on taking connections. */
static lel_vm_t *across_restore(lel_net_t *net, lel_vm_t *vm, lel_net_ep_t **ep, struct server *srv, const char *dir)
{
    char line[128], img[300], err[256];
    int before = srv->conns;
    snprintf(line, sizeof(line), "/bin/guest_net hold 10.0.2.2 %d", srv->port);
    const char *argv[] = {"/bin/sh", "-c", line, NULL};
    struct lel_cmd c = {argv, NULL, NULL, NULL, 0, 60000, 0};
    uint32_t id;
    CHECK_INT(lel_vm_cmd_start(vm, &c, &id), 0);
    for (int i = 0; i < 200 && srv->conns == before; i++)
        usleep(10000);
    usleep(100000);
    snprintf(img, sizeof(img), "%s/net.img", dir);
    CHECK_INT(lel_vm_stop(vm), 0);
    CHECK_INT(lel_vm_save(vm, img, NULL, err, sizeof(err)), 0);
    lel_net_detach(*ep);
    lel_vm_destroy(vm);
    struct lel_vm_config cfg = {.mem_bytes = 256 * MIB, .tick_hz = 100, .ops = &ops};
    lel_vm_t *r = NULL;
    CHECK_INT(lel_vm_restore(img, &cfg, &r, err, sizeof(err)), 0);
    if (!r)
        return NULL;
    CHECK_INT(lel_vm_set_clock(r), 0);
    CHECK_INT(lel_net_attach(net, r, "restored", NULL, ep), 0);
    struct lel_run_result res;
    uint32_t got = 0;
    int st = -EAGAIN;
    for (int i = 0; i < 500 && st == -EAGAIN; i++) {
        st = lel_vm_cmd_result(r, id, &got, &res);
        if (st == -EAGAIN)
            usleep(10000);
    }
    char out[256] = "";
    if (st == 0)
        lel_vm_bulk_read(r, 0, out, res.out_len < sizeof(out) - 1 ? res.out_len : sizeof(out) - 1);
    printf("after restore: result %d, exit %d, %llu bytes: %s\n", st, res.exit_status, (unsigned long long)res.out_len, out);
    CHECK(strstr(out, "hold: read -1 ECONNRESET") != NULL);
    return r;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* a refused connection's end is closed under the writer */
    char why[256], err[256], dir[] = "/tmp/lel-vsock-XXXXXX";
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (!mkdtemp(dir))
        return 1;
    struct server srv = {0};
    server_start(&srv);
    struct lel_net_host hosts[1] = {{(char *)"static.test", {4, 32, {10, 0, 2, 2}}}};
    struct lel_net_opts o = {.host_gateway = 1, .gateway_v4 = {10, 0, 2, 2}, .hosts = hosts, .nhosts = 1,
                            .static_dns = 1 /* no test asks the host's resolver */};
    lel_net_t *net = NULL;
    CHECK_INT(lel_net_start(&o, &net, err, sizeof(err)), 0);
    struct lel_vm_config cfg = {.mem_bytes = 256 * MIB, .tick_hz = 100, .ops = &ops};
    lel_vm_t *vm = NULL;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0) {
        fprintf(stderr, "boot: %s\n", err);
        CHECK(0);
        return lel_test_finish();
    }
    lel_net_ep_t *ep = NULL;
    CHECK_INT(lel_net_attach(net, vm, "test", NULL, &ep), 0);
    put_file(vm, "/bin/guest_net", lel_guest_net_elf, lel_guest_net_elf_size);
    char out0[256];
    CHECK_INT(run(vm, "chmod 755 /bin/guest_net", out0, sizeof(out0)), 0);
    uint32_t serve_id = 0;
    inbound(vm, ep, &serve_id);
    outbound(vm, &srv);
    uint64_t in, out;
    lel_net_counters(ep, &in, &out);
    printf("counters: %llu bytes in, %llu out\n", (unsigned long long)in, (unsigned long long)out);
    CHECK(in >= 32 * MIB && out >= 32 * MIB);
    vm = across_restore(net, vm, &ep, &srv, dir);
    if (vm) {
        int refused = 1;
        size_t got = echo_through(ep, 7000, 1 * MIB, &refused); /* the listener restored with its process */
        CHECK_INT(got, 1 * MIB);
        lel_net_detach(ep);
        lel_vm_destroy(vm);
    }
    lel_net_stop(net);
    char rm[400];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return lel_test_finish();
}
