/* Malformed and abusive input: the service answers with an error (or drops the connection)
 * and keeps serving. Covers bad bodies, oversized headers, garbage bytes, and an HTTP/2
 * rapid-reset burst whose cancelled requests must not pile up work. */
#include "../../src/common/lel_codec.h"
#include "../lel_test.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static srv_t S;

static void still_serving(void)
{
    resp_t r;
    CHECK(http_req(&S, &r, H1, "GET", "/health", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
}

static void expect_400(enum proto p, const char *body, size_t len, int msgpack)
{
    char kh[128];
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *h[] = {kh, msgpack ? "Content-Type: application/msgpack" : "Content-Type: application/json", NULL};
    resp_t r;
    CHECK(http_req(&S, &r, p, "POST", "/sandboxes", body, len, h) == 0);
    CHECK_INT(r.status, 400);
    CHECK(json_integer_value(json_object_get(r.json, "code")) == 400);
    resp_free(&r);
}

static void bodies(enum proto p)
{
    const char *bad[] = {"{\"timeout\":", "{\"timeout\": 30", "{\"timeout\": 99999999999999999999999}",
                         "{\"timeout\": 1e400}", "{\"timeout\": true}", "{\"metadata\": [1]}", "{\"envVars\": {\"a\": {}}}",
                         "\"just a string\"", "{\"templateID\": \"\xff\xfe\"}", "{\"a\":1,\"a\":2}", "nul\0l"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_400(p, bad[i], i == 10 ? 5 : strlen(bad[i]), 0);
    /* 100 000 nested arrays (under the body cap) */
    size_t n = 100000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    expect_400(p, deep, n, 0);
    memset(deep, 0x91, n); /* msgpack: array of one, nested */
    expect_400(p, deep, n, 1);
    free(deep);
    expect_400(p, "\x82\xa1", 2, 1);                 /* truncated map */
    expect_400(p, "\xdf\x7f\xff\xff\xff", 5, 1);     /* map claiming 2^31 entries */
    expect_400(p, "\x81\xa1t\xa3\xff\xff\xff", 7, 1); /* invalid UTF-8 string */
    still_serving();
}

static void big_headers(enum proto p)
{
    size_t n = 200000;
    char *h = malloc(n + 32);
    strcpy(h, "X-Big: ");
    memset(h + 7, 'a', n);
    h[7 + n] = 0;
    const char *hdrs[] = {h, NULL};
    resp_t r;
    int rc = http_req(&S, &r, p, "GET", "/health", NULL, 0, hdrs);
    CHECK(rc < 0 || r.status >= 400); /* refused: error status or connection closed */
    resp_free(&r);
    free(h);
    char *path = malloc(70000);
    strcpy(path, "/sandboxes/");
    memset(path + 11, 'x', 65000);
    path[65011] = 0;
    rc = http_req(&S, &r, p, "GET", path, NULL, 0, NULL);
    CHECK(rc < 0 || r.status >= 400);
    resp_free(&r);
    free(path);
    still_serving();
}

static int connect_raw(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void garbage(void)
{
    const char *junk[] = {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "\x16\x03\x01\x00\x05hello", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int fd = connect_raw();
        CHECK(fd >= 0);
        if (fd < 0)
            continue;
        CHECK(write(fd, junk[i], strlen(junk[i])) > 0);
        char buf[512];
        ssize_t got = read(fd, buf, sizeof(buf)); /* an error reply or a close; never a hang */
        CHECK(got >= 0);
        close(fd);
    }
    still_serving();
}

/* HTTP/2 frame helpers for the rapid-reset burst. */
static size_t frame(unsigned char *out, int type, int flags, uint32_t stream, const void *payload, size_t len)
{
    out[0] = (unsigned char)(len >> 16);
    out[1] = (unsigned char)(len >> 8);
    out[2] = (unsigned char)len;
    out[3] = (unsigned char)type;
    out[4] = (unsigned char)flags;
    out[5] = (unsigned char)(stream >> 24);
    out[6] = (unsigned char)(stream >> 16);
    out[7] = (unsigned char)(stream >> 8);
    out[8] = (unsigned char)stream;
    memcpy(out + 9, payload, len);
    return 9 + len;
}

static size_t hpack_literal(unsigned char *o, const char *name, const char *value)
{
    size_t n = 0, nl = strlen(name), vl = strlen(value);
    o[n++] = 0x00; /* literal without indexing, new name; lengths < 127 */
    o[n++] = (unsigned char)nl;
    memcpy(o + n, name, nl);
    n += nl;
    o[n++] = (unsigned char)vl;
    memcpy(o + n, value, vl);
    return n + vl;
}

static void rapid_reset(const char *sid)
{
    int fd = connect_raw();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t cap = 4 << 20, len = 0;
    unsigned char *out = malloc(cap), hb[256];
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    len = 24;
    len += frame(out + len, 4, 0, 0, "", 0); /* SETTINGS */
    char path[64];
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    for (uint32_t i = 0; i < 3000; i++) {
        size_t h = 0;
        hb[h++] = 0x82; /* :method GET */
        hb[h++] = 0x86; /* :scheme http */
        h += hpack_literal(hb + h, ":path", path);
        h += hpack_literal(hb + h, ":authority", "127.0.0.1");
        h += hpack_literal(hb + h, "x-api-key", S.key);
        uint32_t stream = 1 + 2 * i;
        len += frame(out + len, 1, 0x4 | 0x1, stream, hb, h); /* HEADERS, END_HEADERS|END_STREAM */
        unsigned char code[4] = {0, 0, 0, 8};                 /* CANCEL */
        len += frame(out + len, 3, 0, stream, code, 4);       /* RST_STREAM */
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, out + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0) /* drain until the server closes or times out */
        ;
    close(fd);
    free(out);
    still_serving();
}

/* Concurrent clients on both protocols across both loop threads; every answer must be a 200. */
static const char *load_sid;
static void *load_worker(void *arg)
{
    long w = (long)arg, bad = 0;
    char path[64];
    snprintf(path, sizeof(path), "/sandboxes/%s", load_sid);
    for (int i = 0; i < 300; i++) {
        resp_t r;
        if (api(&S, &r, (w + i) % 2 ? H2 : H1, "GET", path, NULL) < 0 || r.status != 200)
            bad++;
        resp_free(&r);
    }
    return (void *)bad;
}

static void concurrent_load(const char *sid)
{
    pthread_t th[8];
    long bad = 0;
    load_sid = sid;
    for (long i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, load_worker, (void *)i);
    for (int i = 0; i < 8; i++) {
        void *b;
        pthread_join(th[i], &b);
        bad += (long)b;
    }
    CHECK_INT(bad, 0);
    still_serving();
}

/* lelantosd takes the hard open-files limit (two descriptors per sandbox): started with a low
 * soft limit, it runs with the hard one. */
static void fd_limit(void)
{
    char path[64], line[256];
    unsigned long long soft = 0, hard = 0;
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)S.pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Max open files", 14))
            sscanf(line + 14, "%llu %llu", &soft, &hard);
    if (f)
        fclose(f);
    printf("lelantosd open files: soft %llu, hard %llu\n", soft, hard);
    CHECK(hard > 0 && soft == hard);
}

int main(void)
{
    struct rlimit mine;
    getrlimit(RLIMIT_NOFILE, &mine);
    struct rlimit low = {mine.rlim_max > 256 ? 256 : mine.rlim_max, mine.rlim_max};
    setrlimit(RLIMIT_NOFILE, &low); /* the daemon inherits a low soft limit */
    int started = srv_start(&S, "rate_limits:\n  general_per_s: 1000000\n  auth_per_s: 100000\nhttp:\n  idle_timeout_ms: 2000\n");
    setrlimit(RLIMIT_NOFILE, &mine);
    if (started < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    fd_limit();
    for (int p = H1; p <= H2; p++) {
        bodies(p);
        big_headers(p);
    }
    garbage();
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{}");
    char *sid = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    concurrent_load(sid);
    rapid_reset(sid);
    /* the sandbox is intact and its actor still answers */
    char path[64];
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    api(&S, &r, H2, "GET", path, NULL);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    free(sid);
    CHECK_INT(srv_stop(&S), 0); /* and shutdown still drains cleanly */
    srv_cleanup(&S);
    return lel_test_finish();
}
