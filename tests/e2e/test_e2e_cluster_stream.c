/* End to end: cluster mode's streamed forwarding, with a real microVM. One etcd member and two
 * nodes on loopback: a runs the sandbox (VMs), b (API only) is asked everything and forwards it
 * to a as it streams. Through b: a 16 MiB upload sent chunked comes out byte-exact in the
 * sandbox (its sha256sum) and in a download over HTTP/2; a streamed command's events arrive
 * while it runs; busybox httpd in the sandbox answers in the three port forms (path with the
 * key, Host, E2B's headers) and never sees the cluster's secret. Skipped (77) without KVM or
 * Debian's etcd. */
#include "../lel_test.h"
#include "../../src/vmm/lel_vmm.h"
#include "etcdrun.h"
#include "harness.h"

#include <curl/curl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG (16u << 20)
#define SECRET "stream-cluster-secret"

static struct etcd_cluster E;
static srv_t A, B;
static char SID[64];

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
