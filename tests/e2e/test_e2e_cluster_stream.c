/* End to end: cluster mode's streamed forwarding, with a real microVM. One etcd member and two
 * nodes on loopback: a runs the sandbox (VMs), b (API only) is asked everything and forwards it
 * to a as it streams. Through b: a 16 MiB upload sent chunked comes out byte-exact in the
 * sandbox (its sha256sum) and in a download over HTTP/2; a streamed command's events arrive
 * while it runs; busybox httpd in the sandbox answers in the three port forms (path with the
 * key, Host, E2B's headers) and never sees the cluster's secret; a WebSocket upgrade becomes a
 * tunnel through both nodes and server-sent events come through over HTTP/2; envd's data plane
 * (E2b-Sandbox-Id) answers through b. Skipped (77) without KVM or Debian's etcd. */
#include "../lel_test.h"
#include "../../src/vmm/lel_vmm.h"
#include "etcdrun.h"
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BIG (16u << 20)
#define SECRET "stream-cluster-secret"

extern const unsigned char lel_ws_echo_elf[];
extern const size_t lel_ws_echo_elf_size;

static struct etcd_cluster E;
static srv_t A, B;
static char SID[64], TOKEN[128]; /* the sandbox, its envdAccessToken */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int start_node(srv_t *s, char name, const char *vmm)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "%srate_limits:\n  general_per_s: 100000\n  auth_per_s: 1000\ncluster:\n  etcd: [%s]\n  node_name: %c\n"
             "  secret: " SECRET "\n  lease_ttl_s: 5\n  placement: local\n",
             vmm, E.m[0].url, name);
    return srv_start(s, yaml);
}

/* Runs a command in the sandbox through b; its stdout (malloc'd). */
static char *run_b(const char *cmd)
{
    char path[128];
    json_t *j = json_pack("{s:s, s:i}", "cmd", cmd, "timeoutMs", 60000);
    char *body = json_dumps(j, 0);
    json_decref(j);
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    resp_t r;
    CHECK(api(&B, &r, H1, "POST", path, body) == 0);
    free(body);
    if (r.status != 200)
        fprintf(stderr, "command %s -> %ld %s\n", cmd, r.status, r.body ? r.body : "");
    CHECK_INT(r.status, 200);
    const char *out = r.json ? json_string_value(json_object_get(r.json, "stdout")) : NULL;
    char *copy = strdup(out ? out : "");
    resp_free(&r);
    return copy;
}

struct src {
    const unsigned char *p;
    size_t n, off;
};

static size_t on_read(char *buf, size_t sz, size_t nmemb, void *ctx)
{
    struct src *s = ctx;
    size_t n = sz * nmemb;
    if (n > 100000) /* many small pieces, as a slow client sends them */
        n = 100000;
    if (n > s->n - s->off)
        n = s->n - s->off;
    memcpy(buf, s->p + s->off, n);
    s->off += n;
    return n;
}

static size_t on_discard(char *p, size_t sz, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return sz * n;
}

/* 16 MiB PUT through b with Transfer-Encoding: chunked (no length known up front). */
static long put_chunked(const unsigned char *data, size_t n, const char *path)
{
    char url[256], key[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sandboxes/%s/files?path=%s", B.port, SID, path);
    snprintf(key, sizeof(key), "X-API-Key: %s", B.key);
    struct src s = {data, n, 0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, key);
    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &s);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static void files(void)
{
    unsigned char *data = malloc(BIG), d[32];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < BIG; i++) { /* xorshift: no run a compressor or a zero page could hide */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    char want[65], path[256], key[128];
    SHA256(data, BIG, d);
    for (int i = 0; i < 32; i++)
        sprintf(want + 2 * i, "%02x", d[i]);
    double t0 = now_ms();
    CHECK_INT(put_chunked(data, BIG, "/tmp/big.bin"), 204);
    printf("16 MiB chunked upload through b: %.0f ms\n", now_ms() - t0);
    char *sum = run_b("sha256sum /tmp/big.bin | cut -d' ' -f1");
    CHECK(strncmp(sum, want, 64) == 0);
    free(sum);
    /* downloaded over HTTP/2 through b, byte for byte */
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/big.bin", SID);
    snprintf(key, sizeof(key), "X-API-Key: %s", B.key);
    const char *hs[] = {key, NULL};
    resp_t r;
    t0 = now_ms();
    CHECK(http_req(&B, &r, H2, "GET", path, NULL, 0, hs) == 0);
    printf("16 MiB download through b (h2): %.0f ms\n", now_ms() - t0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.version, 20);
    CHECK(r.len == BIG && r.body && memcmp(r.body, data, BIG) == 0);
    resp_free(&r);
    /* an error of the owner's comes back as it said it */
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/no-such-file", SID);
    CHECK(http_req(&B, &r, H1, "GET", path, NULL, 0, hs) == 0);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    free(data);
}

struct got {
    char *body;
    size_t len;
    double t0, at[16];
    size_t events;
};

static size_t on_events(char *p, size_t sz, size_t n, void *ctx)
{
    struct got *g = ctx;
    g->body = realloc(g->body, g->len + sz * n + 1);
    memcpy(g->body + g->len, p, sz * n);
    for (size_t i = 0; i < sz * n; i++)
        if (p[i] == '\n' && g->events < 16)
            g->at[g->events++] = now_ms() - g->t0;
    g->len += sz * n;
    g->body[g->len] = 0;
    return sz * n;
}

/* "stream": true through b: "first" arrives before the command ends a second later. */
static void streamed_command(void)
{
    char url[256], key[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sandboxes/%s/commands", B.port, SID);
    snprintf(key, sizeof(key), "X-API-Key: %s", B.key);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, key);
    h = curl_slist_append(h, "Content-Type: application/json");
    struct got g = {0};
    g.t0 = now_ms();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"cmd\":\"echo first; sleep 1; echo second\",\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_events);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    CHECK_INT(status, 200);
    CHECK(g.events >= 4);
    printf("streamed command through b: events at %.0f, %.0f ... end at %.0f ms\n", g.at[0], g.at[1],
           g.events ? g.at[g.events - 1] : -1.0);
    CHECK(g.events >= 4 && g.at[1] < 800 && g.at[g.events - 1] >= 1000); /* not gathered, then sent */
    CHECK(g.body && strstr(g.body, "\"data\":\"first\\n\"") && strstr(g.body, "\"data\":\"second\\n\""));
    CHECK(g.body && strstr(g.body, "\"type\":\"end\""));
    free(g.body);
}

/* GET to port 8080 of the sandbox through b, in form 0 (path + key), 1 (Host), 2 (E2B headers). */
static void port_get(resp_t *r, int form, const char *path)
{
    char h1[160], h2[160], url[300];
    const char *hs[3] = {h1, NULL, NULL};
    snprintf(url, sizeof(url), "%s", path);
    if (form == 0) {
        snprintf(url, sizeof(url), "/sandboxes/%s/ports/8080%s", SID, path);
        snprintf(h1, sizeof(h1), "X-API-Key: %s", B.key);
    } else if (form == 1) {
        snprintf(h1, sizeof(h1), "Host: 8080-%s.lelantos.localhost", SID);
    } else {
        snprintf(h1, sizeof(h1), "E2b-Sandbox-Id: %s", SID);
        snprintf(h2, sizeof(h2), "E2b-Sandbox-Port: 8080");
        hs[1] = h2;
    }
    CHECK(http_req(&B, r, form == 1 ? H2 : H1, "GET", url, NULL, 0, hs) == 0);
}

static void ports(void)
{
    free(run_b("mkdir -p /www/cgi-bin && echo hello-from-a > /www/index.html && "
               "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nenv\\n' > /www/cgi-bin/env && "
               "chmod +x /www/cgi-bin/env && httpd -p 8080 -h /www"));
    resp_t r;
    for (int form = 0; form < 3; form++) {
        port_get(&r, form, "/index.html");
        CHECK_INT(r.status, 200);
        CHECK(r.body && !strcmp(r.body, "hello-from-a\n"));
        resp_free(&r);
    }
    /* the guest's server sees the client's request, not the cluster's secret */
    port_get(&r, 0, "/cgi-bin/env");
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "REQUEST_METHOD=GET"));
    CHECK(r.body && !strstr(r.body, SECRET) && !strstr(r.body, "LELANTOS_NODE"));
    resp_free(&r);
}

/* A WebSocket on port 9000 (ws_echo) through b: 101, then one frame echoed through the tunnel
 * b -> a -> guest. */
static void websocket(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)B.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {20, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(connect(s, (struct sockaddr *)&a, sizeof(a)) == 0);
    char req[512], resp[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws HTTP/1.1\r\nHost: 9000-%s.lelantos.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", SID);
    CHECK(write(s, req, (size_t)n) == n);
    size_t k = 0;
    while ((k < 4 || memcmp(resp + k - 4, "\r\n\r\n", 4)) && k + 1 < sizeof(resp) && read(s, resp + k, 1) == 1)
        k++;
    resp[k] = 0;
    CHECK(!strncmp(resp, "HTTP/1.1 101", 12));
    CHECK(strcasestr(resp, "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL); /* RFC 6455's example */
    const char *msg = "hello through two nodes";
    size_t ml = strlen(msg);
    uint8_t frame[64] = {0x81, (uint8_t)(0x80 | ml), 1, 2, 3, 4}, back[64] = {0};
    for (size_t i = 0; i < ml; i++)
        frame[6 + i] = (uint8_t)(msg[i] ^ frame[2 + i % 4]);
    CHECK(write(s, frame, 6 + ml) == (ssize_t)(6 + ml));
    size_t got = 0;
    while (got < 2 + ml) {
        ssize_t r = read(s, back + got, sizeof(back) - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK(got == 2 + ml && back[0] == 0x81 && back[1] == ml && !memcmp(back + 2, msg, ml));
    close(s);
}

static void upgrades_and_events(void)
{
    char path[256], key[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/bin/ws_echo", SID);
    snprintf(key, sizeof(key), "X-API-Key: %s", B.key);
    const char *hk[] = {key, NULL};
    resp_t r;
    CHECK(http_req(&B, &r, H1, "PUT", path, (const char *)lel_ws_echo_elf, lel_ws_echo_elf_size, hk) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    free(run_b("chmod +x /bin/ws_echo && (setsid ws_echo 9000 > /dev/null 2>&1 &) ; "
                   /* wait for its listen, not a fixed sleep: a loaded CI machine starts it late */
                   "for i in $(seq 100); do netstat -ltn | grep -q ':9000 ' && break; sleep 0.05; done"));
    websocket();
    char host[160];
    snprintf(host, sizeof(host), "Host: 9000-%s.lelantos.localhost", SID);
    const char *hh[] = {host, NULL};
    CHECK(http_req(&B, &r, H2, "GET", "/sse", NULL, 0, hh) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "data: event 1\n\n") && strstr(r.body, "data: event 3\n\n"));
    CHECK(resp_header(&r, "content-type") && strstr(resp_header(&r, "content-type"), "text/event-stream"));
    resp_free(&r);
}

/* envd's data plane (E2B's SDK talks to it so) through b. */
static void envd(void)
{
    char id[96];
    snprintf(id, sizeof(id), "E2b-Sandbox-Id: %s", SID);
    const char *hs[] = {id, "E2b-Sandbox-Port: 49983", NULL};
    resp_t r;
    CHECK(http_req(&B, &r, H1, "GET", "/health", NULL, 0, hs) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    CHECK(http_req(&B, &r, H2, "GET", "/files?path=/www/index.html", NULL, 0, hs) == 0);
    CHECK_INT(r.status, TOKEN[0] ? 401 : 200); /* the owner judges the token */
    resp_free(&r);
    char tok[160];
    snprintf(tok, sizeof(tok), "X-Access-Token: %s", TOKEN);
    const char *ht[] = {id, "E2b-Sandbox-Port: 49983", tok, NULL};
    CHECK(http_req(&B, &r, H2, "GET", "/files?path=/www/index.html", NULL, 0, ht) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && !strcmp(r.body, "hello-from-a\n"));
    resp_free(&r);
}

int main(void)
{
    char why[256];
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (!etcd_binary()) {
        printf("SKIPPED: no etcd binary (tools/setup.sh installs Debian's etcd-server)\n");
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (etcd_cluster_start(&E, 1) < 0) {
        CHECK(!"etcd started");
        etcd_cluster_free(&E);
        return lel_test_finish();
    }
    int up = start_node(&A, 'a', "vmm:\n  backend: auto\n") == 0;
    up = up && start_node(&B, 'b', "") == 0;
    CHECK(up);
    if (up) {
        snprintf(B.key, sizeof(B.key), "%s", A.key); /* b joined a's default team */
        resp_t r;
        CHECK(api(&A, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\",\"timeout\":300}") == 0);
        CHECK_INT(r.status, 201);
        snprintf(SID, sizeof(SID), "%s", jstr(&r, "sandboxID"));
        snprintf(TOKEN, sizeof(TOKEN), "%s", jstr(&r, "envdAccessToken"));
        resp_free(&r);
        char path[128];
        snprintf(path, sizeof(path), "/sandboxes/%s", SID);
        double t0 = now_ms();
        long st = -1;
        do { /* the catalog reaches b by watch */
            if (api(&B, &r, H1, "GET", path, NULL) == 0) {
                st = r.status;
                resp_free(&r);
            }
            if (st != 200)
                usleep(50000);
        } while (st != 200 && now_ms() - t0 < 5000);
        CHECK_INT(st, 200);
        if (st == 200) {
            files();
            streamed_command();
            ports();
            upgrades_and_events();
            envd();
        }
    }
    if (lel_test_failed) {
        srv_log_tail(&A);
        srv_log_tail(&B);
    }
    if (B.pid > 0)
        CHECK_INT(srv_stop(&B), 0);
    if (A.pid > 0)
        CHECK_INT(srv_stop(&A), 0);
    srv_cleanup(&A);
    srv_cleanup(&B);
    etcd_cluster_free(&E);
    curl_global_cleanup();
    return lel_test_finish();
}
