/* Sandbox networking end to end, with real microVMs (loopback only: every server is on
 * 127.0.0.1, and the sandboxes reach the host through network.host_gateway; whatever else they
 * try is refused by policy before any packet leaves).
 * Inbound: busybox httpd and ws_echo (tests/vm/ws_echo.c) in a sandbox, reached by the Host
 * form, E2B's headers and the path form over HTTP/1.1 and HTTP/2; 64 MiB down and up
 * byte-exact, 8 MiB down to a slow reader (16 MB/s) over both, a client that gives up on a
 * response the guest is slow to send (the daemon lives on); a chunked upload echoed back; SSE;
 * 100 requests on one keep-alive connection; a WebSocket echo; 502 naming the port; 403 without
 * the traffic token; autoResume and 409; 404 for another team and for a killed sandbox.
 * Outbound: busybox wget and the static client (tests/vm/guest_net.c) fetch from a server of
 * this test; a UDP round trip; the resolver's static names; refusals (metadata address,
 * denyOut, no internet access); PUT /network on the next connect; pause/resume resets.
 * maskRequestHost: the Host the guest's server is sent. Then a second lelantosd with the host's
 * resolver on (network.dns_upstream; only "localhost" is asked, which the host's files answer)
 * and a bandwidth limit: a name of network.hosts and one the host resolves (getaddrinfo_a),
 * both 127.0.0.1, reach a server inside the guest; three downloads through lelantosd run near
 * the limit. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char lel_guest_net_elf[], lel_ws_echo_elf[];
extern const size_t lel_guest_net_elf_size, lel_ws_echo_elf_size;

static srv_t S;
static int host_port; /* this test's server on 127.0.0.1: HTTP for GETs, an echo otherwise; UDP echo */

#define MIB (1u << 20)

static char *create(const char *body)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", body);
    CHECK_INT(r.status, 201);
    if (r.status != 201)
        fprintf(stderr, "create: %s\n", r.body ? r.body : "");
    char *id = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    return id;
}

/* Runs a command; its stdout (malloc'd). */
static char *run(const char *id, const char *cmd)
{
    char path[96];
    json_t *b = json_pack("{s:s, s:i}", "cmd", cmd, "timeoutMs", 60000);
    char *body = json_dumps(b, 0);
    json_decref(b);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", id);
    resp_t r;
    api(&S, &r, H1, "POST", path, body);
    free(body);
    const char *out = r.json ? json_string_value(json_object_get(r.json, "stdout")) : NULL;
    char *copy = strdup(out ? out : "");
    if (r.status != 200)
        fprintf(stderr, "command %s -> %ld %s\n", cmd, r.status, r.body ? r.body : "");
    printf("$ %s\n%s", cmd, copy);
    resp_free(&r);
    return copy;
}

static void put_file(const char *id, const char *path, const void *data, size_t n)
{
    char url[256];
    snprintf(url, sizeof(url), "/sandboxes/%s/files?path=%s", id, path);
    char key[96];
    snprintf(key, sizeof(key), "X-API-Key: %s", S.key);
    const char *h[] = {key, NULL};
    resp_t r;
    http_req(&S, &r, H1, "PUT", url, data, n, h);
    CHECK_INT(r.status, 204);
    resp_free(&r);
}

static void sha_hex(const void *p, size_t n, char out[65])
{
    unsigned char d[32];
    SHA256(p, n, d);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* A request to port `port` of sandbox `id` by one of the forms (0 Host, 1 E2B headers, 2 path). */
static void port_req(resp_t *r, enum proto p, int form, const char *id, int port, const char *method, const char *path,
                     const void *body, size_t len, const char *extra)
{
    char h1[160], h2[160], url[256];
    const char *hs[4] = {NULL, NULL, NULL, NULL};
    int k = 0;
    snprintf(url, sizeof(url), "%s", path);
    if (form == 0) {
        snprintf(h1, sizeof(h1), "Host: %d-%s.lelantos.localhost", port, id);
        hs[k++] = h1;
    } else if (form == 1) {
        snprintf(h1, sizeof(h1), "E2b-Sandbox-Id: %s", id);
        snprintf(h2, sizeof(h2), "E2b-Sandbox-Port: %d", port);
        hs[k++] = h1;
        hs[k++] = h2;
    } else {
        snprintf(url, sizeof(url), "/sandboxes/%s/ports/%d%s", id, port, path);
        snprintf(h1, sizeof(h1), "X-API-Key: %s", S.key);
        hs[k++] = h1;
    }
    if (extra)
        hs[k++] = extra;
    http_req(&S, r, p, method, url, body, len, hs);
}

/* ---- this test's servers on the host's loopback ---- */

static void *host_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t r = read(c, buf, sizeof(buf));
    if (r > 4 && !memcmp(buf, "GET ", 4)) {
        const char *resp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhost says hi";
        if (write(c, resp, strlen(resp)) < 0)
            r = 0;
    } else {
        while (r > 0 && write(c, buf, (size_t)r) == r)
            r = read(c, buf, sizeof(buf));
    }
    close(c);
    return NULL;
}

static void *host_tcp(void *arg)
{
    int l = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_t t;
        pthread_create(&t, NULL, host_conn, (void *)(intptr_t)c);
        pthread_detach(t);
    }
}

static void *host_udp(void *arg)
{
    int u = (int)(intptr_t)arg;
    char buf[2048];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
        if (r < 0)
            return NULL;
        memcpy(buf, "pong", r >= 4 ? 4 : (size_t)r);
        sendto(u, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
    }
}

static void host_servers(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0);
    bind(l, (struct sockaddr *)&a, sizeof(a));
    listen(l, 64);
    getsockname(l, (struct sockaddr *)&a, &al);
    host_port = ntohs(a.sin_port);
    bind(u, (struct sockaddr *)&a, sizeof(a));
    pthread_t t;
    pthread_create(&t, NULL, host_tcp, (void *)(intptr_t)l);
    pthread_detach(t);
    pthread_create(&t, NULL, host_udp, (void *)(intptr_t)u);
    pthread_detach(t);
}

/* ---- raw connections to lelantosd (keep-alive, WebSocket) ---- */

static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {20, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(s);
        return -1;
    }
    return s;
}

/* Reads one response with a Content-Length; its body length, or -1. */
static long read_response(int s, char *body, size_t cap)
{
    char head[8192];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4))
        if (n + 1 >= sizeof(head) || read(s, head + n++, 1) != 1)
            return -1;
    head[n] = 0;
    const char *cl = strcasestr(head, "content-length:");
    if (strncmp(head, "HTTP/1.1 200", 12) || !cl)
        return -1;
    size_t len = strtoul(cl + 15, NULL, 10), got = 0;
    while (got < len && got < cap) {
        ssize_t r = read(s, body + got, len - got < cap - got ? len - got : cap - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (long)got;
}

static void keepalive(const char *id)
{
    int s = dial(), ok = 0;
    char req[256], body[64];
    int n = snprintf(req, sizeof(req), "GET /index.html HTTP/1.1\r\nHost: 8080-%s.lelantos.localhost\r\n\r\n", id);
    for (int i = 0; s >= 0 && i < 100; i++) {
        if (write(s, req, (size_t)n) != n)
            break;
        long got = read_response(s, body, sizeof(body));
        ok += got == 6 && !memcmp(body, "hello\n", 6);
    }
    printf("keep-alive: %d of 100 answered on one connection\n", ok);
    CHECK_INT(ok, 100);
    if (s >= 0)
        close(s);
}

static void websocket(const char *id)
{
    int s = dial();
    char req[512], resp[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws HTTP/1.1\r\nHost: 9000-%s.lelantos.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", id);
    CHECK(s >= 0 && write(s, req, (size_t)n) == n);
    size_t k = 0;
    while (s >= 0 && (k < 4 || memcmp(resp + k - 4, "\r\n\r\n", 4)) && k + 1 < sizeof(resp) && read(s, resp + k, 1) == 1)
        k++;
    resp[k] = 0;
    printf("websocket handshake: %.60s\n", resp);
    CHECK(!strncmp(resp, "HTTP/1.1 101", 12));
    CHECK(strcasestr(resp, "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL); /* RFC 6455's example */
    const char *msg = "hello through the sandbox";
    uint8_t frame[64] = {0x81, (uint8_t)(0x80 | strlen(msg)), 1, 2, 3, 4};
    for (size_t i = 0; i < strlen(msg); i++)
        frame[6 + i] = (uint8_t)(msg[i] ^ frame[2 + i % 4]);
    CHECK(write(s, frame, 6 + strlen(msg)) == (ssize_t)(6 + strlen(msg)));
    uint8_t back[64] = {0};
    size_t got = 0;
    while (got < 2 + strlen(msg)) {
        ssize_t r = read(s, back + got, sizeof(back) - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK(got == 2 + strlen(msg) && back[0] == 0x81 && back[1] == strlen(msg) && !memcmp(back + 2, msg, strlen(msg)));
    if (s >= 0)
        close(s);
}

/* ---- inbound ---- */

static void forms(const char *id)
{
    for (int p = 0; p < 2; p++)
        for (int form = 0; form < 3; form++) {
            resp_t r;
            port_req(&r, p ? H2 : H1, form, id, 8080, "GET", "/index.html", NULL, 0, NULL);
            printf("form %d over %s: %ld %.*s", form, p ? "h2" : "h1", r.status, (int)(r.len < 40 ? r.len : 40),
                   r.body ? r.body : "");
            CHECK_INT(r.status, 200);
            CHECK_INT(r.version, p ? 20 : 11);
            CHECK(r.len == 6 && !memcmp(r.body, "hello\n", 6));
            resp_free(&r);
        }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The 64 MiB transfers print how long each took. Their client limit is 300 s, not the
 * harness's 90: the upload goes through busybox httpd's CGI relay (8 KiB per read, a guest
 * syscall costing 20-100 us under PVM) into sha256sum, and took 60-90 s on a loaded machine
 * (load 12-20 on 2 cores); what is checked stays every byte. */
static void bulk(const char *id)
{
    long limit = S.http_timeout_s;
    S.http_timeout_s = 300;
    char *out = run(id, "dd if=/dev/urandom of=/www/big.bin bs=1M count=64 2>/dev/null; sha256sum /www/big.bin");
    char want[65], got[65];
    snprintf(want, sizeof(want), "%.64s", out);
    free(out);
    for (int p = 0; p < 2; p++) {
        resp_t r;
        double t0 = now_s();
        port_req(&r, p ? H2 : H1, 0, id, 8080, "GET", "/big.bin", NULL, 0, NULL);
        printf("64 MiB down over %s: %ld, %zu bytes in %.1f s\n", p ? "h2" : "h1", r.status, r.len, now_s() - t0);
        CHECK_INT(r.status, 200);
        CHECK_INT(r.len, 64 * MIB);
        sha_hex(r.body ? r.body : "", r.len, got);
        CHECK_STR(got, want);
        resp_free(&r);
    }
    /* a slow reader (libcurl at 16 MB/s): h2o takes the guest's bytes only as the client does,
     * so the loop's socket events drive the transfer, not the guest's doorbell (a wakeup those
     * events dropped stalled the 64 MiB download over h2 for good) */
    out = run(id, "dd if=/www/big.bin of=/www/part.bin bs=1M count=8 2>/dev/null; sha256sum /www/part.bin");
    snprintf(want, sizeof(want), "%.64s", out);
    free(out);
    S.recv_bps = 16000000;
    S.http_timeout_s = 60; /* ~0.5 s each when it works */
    for (int p = 0; p < 2; p++) {
        resp_t r;
        double t0 = now_s();
        port_req(&r, p ? H2 : H1, 0, id, 8080, "GET", "/part.bin", NULL, 0, NULL);
        printf("8 MiB down over %s to a reader at 16 MB/s: %ld, %zu bytes in %.1f s\n", p ? "h2" : "h1", r.status, r.len,
               now_s() - t0);
        CHECK_INT(r.len, 8 * MIB);
        sha_hex(r.body ? r.body : "", r.len, got);
        CHECK_STR(got, want);
        resp_free(&r);
    }
    S.recv_bps = 0;
    S.http_timeout_s = 300;
    char *up = malloc(64 * MIB);
    for (size_t i = 0; i < 64 * MIB; i++)
        up[i] = (char)(i * 2654435761u >> 13);
    sha_hex(up, 64 * MIB, want);
    resp_t r;
    double t0 = now_s();
    port_req(&r, H2, 0, id, 8080, "POST", "/cgi-bin/up", up, 64 * MIB, NULL);
    printf("64 MiB up over h2 to a CGI: %ld in %.1f s\n", r.status, now_s() - t0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && !strncmp(r.body, want, 64));
    resp_free(&r);
    port_req(&r, H1, 0, id, 9000, "POST", "/echo", up, 4 * MIB, "Transfer-Encoding: chunked"); /* chunked both ways */
    CHECK_INT(r.status, 200);
    CHECK(r.len == 4 * MIB && !memcmp(r.body, up, 4 * MIB));
    resp_free(&r);
    free(up);
    S.http_timeout_s = limit;
}

/* A client that gives up on a response the guest is slow to send (its CGI writes a head and a
 * little, then sleeps): over HTTP/1 h2o does not read the client meanwhile, so the proxy learns
 * of it only when the guest's end closes, and then h2o ends the request inside the proxy's own
 * send. That freed the proxy twice: lelantosd died (SIGSEGV) once the CGI exited. */
static void abandoned(const char *id)
{
    long limit = S.http_timeout_s;
    S.http_timeout_s = 1;
    for (int p = 0; p < 2; p++) {
        resp_t r;
        port_req(&r, p ? H2 : H1, 0, id, 8080, "GET", "/cgi-bin/hang", NULL, 0, NULL);
        printf("a client that gives up over %s: %ld, %zu bytes\n", p ? "h2" : "h1", r.status, r.len);
        CHECK(r.len < 1000000);
        resp_free(&r);
    }
    S.http_timeout_s = limit;
    sleep(3); /* the CGIs end: the guest closes both streams */
    resp_t r;
    port_req(&r, H1, 0, id, 8080, "GET", "/index.html", NULL, 0, NULL);
    CHECK_INT(r.status, 200);
    CHECK(r.len == 6 && !memcmp(r.body, "hello\n", 6));
    resp_free(&r);
}

static void inbound(void)
{
    /* it must outlive the test (ctest's limit is 600 s): the default 300 s ran out mid-test
     * on a loaded machine, and the sandbox's end showed as 404s to the requests after it */
    char *id = create("{\"templateID\":\"base\",\"timeout\":900}");
    free(run(id, "mkdir -p /www/cgi-bin && echo hello > /www/index.html && "
                 "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsha256sum\\n' > /www/cgi-bin/up && "
                 "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho Content-Length: 1000000\\necho\\n"
                 "echo partial\\nsleep 2\\n' > /www/cgi-bin/hang && "
                 "chmod +x /www/cgi-bin/up /www/cgi-bin/hang && httpd -p 8080 -h /www"));
    put_file(id, "/bin/ws_echo", lel_ws_echo_elf, lel_ws_echo_elf_size);
    free(run(id, "chmod +x /bin/ws_echo && (setsid ws_echo 9000 > /dev/null 2>&1 &) ; "
                   /* wait for its listen, not a fixed sleep: a loaded CI machine starts it late */
                   "for i in $(seq 100); do netstat -ltn | grep -q ':9000 ' && break; sleep 0.05; done"));
    forms(id);
    abandoned(id);
    bulk(id);
    resp_t r;
    port_req(&r, H2, 0, id, 9000, "GET", "/sse", NULL, 0, NULL);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "data: event 1\n\n") && strstr(r.body, "data: event 3\n\n"));
    CHECK(resp_header(&r, "content-type") && strstr(resp_header(&r, "content-type"), "text/event-stream"));
    resp_free(&r);
    keepalive(id);
    websocket(id);
    port_req(&r, H1, 0, id, 8081, "GET", "/", NULL, 0, NULL);
    CHECK_INT(r.status, 502);
    CHECK(r.body && strstr(r.body, "port 8081"));
    resp_free(&r);
    /* another team's key on the path form: 404, as for a sandbox that does not exist */
    resp_t t;
    const char *admin[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    http_req(&S, &t, H1, "POST", "/admin/teams", "{\"name\":\"other\"}", 16, admin);
    CHECK_INT(t.status, 201);
    char other[96];
    snprintf(other, sizeof(other), "X-API-Key: %s", jstr(&t, "apiKey"));
    resp_free(&t);
    char url[160];
    snprintf(url, sizeof(url), "/sandboxes/%s/ports/8080/index.html", id);
    const char *oh[] = {other, NULL};
    http_req(&S, &r, H1, "GET", url, NULL, 0, oh);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    snprintf(url, sizeof(url), "/sandboxes/%s", id);
    api(&S, &r, H1, "DELETE", url, NULL);
    resp_free(&r);
    port_req(&r, H1, 0, id, 8080, "GET", "/index.html", NULL, 0, NULL);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    free(id);
}

/* allowPublicTraffic false (403 without the token), and autoResume (409 without). */
static void access_and_resume(void)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\",\"network\":{\"allowPublicTraffic\":false},"
                                          "\"autoResume\":{\"enabled\":true}}");
    CHECK_INT(r.status, 201);
    char *id = strdup(jstr(&r, "sandboxID")), tok[160];
    snprintf(tok, sizeof(tok), "e2b-traffic-access-token: %s", jstr(&r, "trafficAccessToken"));
    CHECK(strlen(jstr(&r, "trafficAccessToken")) > 20);
    resp_free(&r);
    free(run(id, "mkdir -p /www && echo hello > /www/index.html && httpd -p 8080 -h /www"));
    port_req(&r, H1, 0, id, 8080, "GET", "/index.html", NULL, 0, NULL);
    CHECK_INT(r.status, 403);
    resp_free(&r);
    port_req(&r, H1, 0, id, 8080, "GET", "/index.html", NULL, 0, tok);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    api(&S, &r, H1, "POST", path, NULL);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    port_req(&r, H2, 0, id, 8080, "GET", "/index.html", NULL, 0, tok); /* resumes it */
    CHECK_INT(r.status, 200);
    CHECK(r.body && !strncmp(r.body, "hello", 5));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s", id);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "state"), "running");
    resp_free(&r);
    free(id);
    id = create("{\"templateID\":\"base\"}");
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    api(&S, &r, H1, "POST", path, NULL);
    resp_free(&r);
    port_req(&r, H1, 0, id, 8080, "GET", "/", NULL, 0, NULL);
    CHECK_INT(r.status, 409);
    CHECK(r.body && strstr(r.body, "paused"));
    resp_free(&r);
    free(id);
}

/* ---- outbound ---- */

static void set_network(const char *id, const char *body, long want)
{
    char path[96];
    snprintf(path, sizeof(path), "/sandboxes/%s/network", id);
    resp_t r;
    api(&S, &r, H1, "PUT", path, body);
    CHECK_INT(r.status, want);
    resp_free(&r);
}

static void outbound(void)
{
    char *id = create("{\"templateID\":\"base\",\"allow_internet_access\":false}"), cmd[256], *out;
    put_file(id, "/bin/guest_net", lel_guest_net_elf, lel_guest_net_elf_size);
    free(run(id, "chmod +x /bin/guest_net"));
    snprintf(cmd, sizeof(cmd), "wget -q -O - http://10.0.2.2:%d/ 2>&1", host_port);
    out = run(id, cmd);
    CHECK(strstr(out, "host says hi") != NULL);
    free(out);
    snprintf(cmd, sizeof(cmd), "guest_net get host.lelantos.internal %d /", host_port);
    out = run(id, cmd);
    CHECK(strstr(out, "get: HTTP/1.0 200 OK; body 'host says hi'") != NULL);
    free(out);
    snprintf(cmd, sizeof(cmd), "guest_net get web.test %d /", host_port); /* network.hosts */
    out = run(id, cmd);
    CHECK(strstr(out, "body 'host says hi'") != NULL);
    free(out);
    snprintf(cmd, sizeof(cmd), "guest_net udp 10.0.2.2 %d", host_port);
    out = run(id, cmd);
    CHECK(strstr(out, "udp ok 'pong' from 10.0.2.2:") != NULL);
    free(out);
    out = run(id, "guest_net refused 169.254.169.254 80; guest_net refused 10.99.1.1 80");
    CHECK(strstr(out, "refused: ECONNREFUSED\nrefused: EACCES\n") != NULL);
    free(out);
    set_network(id, "{\"denyOut\":[\"10.0.2.2/32\"]}", 200); /* closes the host gateway on the next connect */
    snprintf(cmd, sizeof(cmd), "guest_net refused 10.0.2.2 %d", host_port);
    out = run(id, cmd);
    CHECK(strstr(out, "refused: EACCES") != NULL);
    free(out);
    set_network(id, "{\"denyOut\":[]}", 200);
    out = run(id, cmd);
    CHECK(strstr(out, "refused: connected") != NULL);
    free(out);
    set_network(id, "{\"denyOut\":[\"not a cidr!\"]}", 400);
    /* an open connection does not survive pause and resume */
    snprintf(cmd, sizeof(cmd), "(setsid guest_net hold 10.0.2.2 %d > /tmp/hold.out 2>&1 &); sleep 0.5", host_port);
    free(run(id, cmd));
    char path[96];
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", id);
    api(&S, &r, H1, "POST", path, NULL);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", id);
    api(&S, &r, H1, "POST", path, "{}");
    CHECK_INT(r.status, 201);
    resp_free(&r);
    out = run(id, "sleep 0.5; cat /tmp/hold.out");
    CHECK(strstr(out, "hold: read -1 ECONNRESET") != NULL);
    free(out);
    snprintf(path, sizeof(path), "/sandboxes/%s/metrics", id);
    int seen = 0;
    for (int i = 0; i < 40 && !seen; i++) {
        api(&S, &r, H1, "GET", path, NULL);
        size_t n = r.json ? json_array_size(r.json) : 0;
        json_t *last = n ? json_array_get(r.json, n - 1) : NULL;
        seen = last && json_integer_value(json_object_get(last, "networkRxBytes")) > 0 &&
               json_integer_value(json_object_get(last, "networkTxBytes")) > 0;
        resp_free(&r);
        if (!seen)
            usleep(250000);
    }
    CHECK(seen);
    free(id);
}

/* network.maskRequestHost: the guest's server sees it (${PORT} replaced) as Host; a sandbox
 * without one sees the request's Host; a bad one is refused, and it stays as created. */
static void mask_host(void)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\",\"network\":{\"maskRequestHost\":\"a b\"}}");
    CHECK_INT(r.status, 400);
    CHECK(r.body && strstr(r.body, "maskRequestHost"));
    resp_free(&r);
    char *id = create("{\"templateID\":\"base\",\"network\":{\"maskRequestHost\":\"${PORT}-masked.example.test\"}}");
    char *plain = create("{\"templateID\":\"base\"}"), want[160], path[96];
    const char *ids[2] = {id, plain};
    for (int i = 0; i < 2; i++) {
        put_file(ids[i], "/bin/ws_echo", lel_ws_echo_elf, lel_ws_echo_elf_size);
        free(run(ids[i], "chmod +x /bin/ws_echo && (setsid ws_echo 9000 > /dev/null 2>&1 &) ; "
                   /* wait for its listen, not a fixed sleep: a loaded CI machine starts it late */
                   "for i in $(seq 100); do netstat -ltn | grep -q ':9000 ' && break; sleep 0.05; done"));
    }
    for (int form = 0; form < 3; form++) {
        port_req(&r, form == 1 ? H2 : H1, form, id, 9000, "GET", "/host", NULL, 0, NULL);
        CHECK_INT(r.status, 200);
        CHECK(r.body && r.len == strlen("9000-masked.example.test") && !memcmp(r.body, "9000-masked.example.test", r.len));
        resp_free(&r);
    }
    port_req(&r, H1, 0, plain, 9000, "GET", "/host", NULL, 0, NULL);
    snprintf(want, sizeof(want), "9000-%s.lelantos.localhost", plain);
    CHECK(r.body && r.len == strlen(want) && !memcmp(r.body, want, r.len));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/network", id);
    api(&S, &r, H1, "GET", path, NULL);
    CHECK_STR(jstr(&r, "maskRequestHost"), "${PORT}-masked.example.test");
    resp_free(&r);
    set_network(id, "{\"maskRequestHost\":\"other.test\"}", 400);
    set_network(id, "{\"denyOut\":[],\"maskRequestHost\":\"${PORT}-masked.example.test\"}", 200);
    free(id);
    free(plain);
}

#define BW_LIMIT (4u * MIB) /* network.bandwidth_bytes_per_s of the second server */

/* Names the guest resolves to its own loopback: from network.hosts, and from the host's
 * resolver; then a download under the bandwidth limit. */
static void resolver_and_bandwidth(void)
{
    char *id = create("{\"templateID\":\"base\"}"), cmd[160], *out;
    put_file(id, "/bin/guest_net", lel_guest_net_elf, lel_guest_net_elf_size);
    free(run(id, "chmod +x /bin/guest_net && mkdir -p /www2 && echo guest says hi > /www2/index.html && "
                 "dd if=/dev/urandom of=/www2/big.bin bs=1M count=8 2>/dev/null && httpd -p 127.0.0.1:8090 -h /www2"));
    out = run(id, "guest_net get loop.test 8090 /index.html"); /* network.hosts: 127.0.0.1 */
    CHECK(strstr(out, "200 OK; body 'guest says hi\n'") != NULL);
    free(out);
    out = run(id, "guest_net resolve localhost"); /* not in network.hosts: getaddrinfo_a on the host */
    CHECK(strstr(out, "resolve localhost 127.0.0.1\n") != NULL);
    free(out);
    out = run(id, "guest_net get localhost 8090 /index.html");
    CHECK(strstr(out, "200 OK; body 'guest says hi\n'") != NULL);
    free(out);
    snprintf(cmd, sizeof(cmd), "sha256sum /www2/big.bin");
    out = run(id, cmd);
    /* three times: a lost wakeup of the net loop made about 1 run in 3 crawl (1.6 MB in 90 s);
     * each takes ~2 s */
    S.http_timeout_s = 20;
    for (int i = 0; i < 3; i++) {
        resp_t r;
        double t0 = now_s();
        port_req(&r, H1, 0, id, 8090, "GET", "/big.bin", NULL, 0, NULL);
        double took = now_s() - t0, rate = took > 0 ? (double)r.len / took : 0;
        char sha[65];
        sha_hex(r.body ? r.body : "", r.len, sha);
        CHECK_INT(r.status, 200);
        CHECK(r.len == 8 * MIB && !strncmp(out, sha, 64));
        printf("download under a limit of %u B/s: %zu bytes in %.2f s: %.0f B/s\n", BW_LIMIT, r.len, took, rate);
        /* a behaviour, not a speed: without the limit this takes ~20 ms; the bucket's burst is a
         * tenth of a second */
        CHECK(rate > 0.5 * BW_LIMIT && rate < 1.3 * BW_LIMIT);
        resp_free(&r);
    }
    S.http_timeout_s = 0;
    free(out);
    free(id);
}

int main(void)
{
    char why[256];
    signal(SIGPIPE, SIG_IGN);
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    host_servers();
    const char *cfg = "vmm:\n  backend: auto\n  metrics_interval_s: 1\nrate_limits:\n  general_per_s: 100000\n"
                      "teams:\n  max_sandboxes: 50\n"
                      "http:\n  max_body_bytes: 4194304\n  max_inflight_body_bytes: 268435456\n"
                      "network:\n  host_gateway: 10.0.2.2\n  dns_upstream: false\n  hosts:\n    web.test: 10.0.2.2\n";
    if (srv_start(&S, cfg) < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    inbound();
    access_and_resume();
    outbound();
    mask_host();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    const char *cfg2 = "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n"
                       "network:\n  dns_upstream: true\n  bandwidth_bytes_per_s: 4194304\n"
                       "  hosts:\n    loop.test: 127.0.0.1\n";
    if (srv_start(&S, cfg2) < 0) {
        fprintf(stderr, "cannot start the second lelantosd\n");
        return 1;
    }
    resolver_and_bandwidth();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
