/* Files in and out of a real microVM through the gate: uploads stream to the guest in chunks as
 * they arrive (HTTP/1 with a length or chunked, HTTP/2 with its flow control), downloads go out
 * a chunk at a time, so neither costs the daemon the file's size in memory, even with 20
 * clients that never read; errors found mid-upload answer at once. Skips (77) without KVM. */
#include "../lel_test.h"
#include "../../src/vmm/lel_vmm.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

extern const unsigned char lel_xattr_tool_elf[];
extern const size_t lel_xattr_tool_elf_size;

static srv_t S;
/* the file size (the transfers are slow under ASan, and its memory checks are off there) */
#define BIG (LEL_TEST_ASAN ? 8u << 20 : 32u << 20)
static char SID[64], TOKEN[128]; /* the sandbox, and its envdAccessToken (envd's POST /files) */

/* The daemon's resident memory without its guests': mappings as large as a guest's RAM (256 MiB
 * here) are the guests', whose pages hold the files they store; the rest is the daemon's. */
static long own_rss_kb(void)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)S.pid);
    FILE *f = fopen(path, "r");
    long kb = 0, size = 0, v;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Size: %ld kB", &v) == 1)
            size = v;
        else if (sscanf(line, "Rss: %ld kB", &v) == 1 && size < 256 * 1024)
            kb += v;
    }
    if (f)
        fclose(f);
    return kb;
}

/* The most own_rss_kb() reached while a transfer ran, sampled from a thread. */
static atomic_int sampling;
static long sampled_max;
static void *sampler(void *arg)
{
    (void)arg;
    while (atomic_load(&sampling)) {
        long kb = own_rss_kb();
        if (kb > sampled_max)
            sampled_max = kb;
        usleep(2000);
    }
    return NULL;
}

static pthread_t sampler_th;
static void sample_start(void)
{
    sampled_max = own_rss_kb();
    atomic_store(&sampling, 1);
    pthread_create(&sampler_th, NULL, sampler, NULL);
}

static long sample_stop(void)
{
    atomic_store(&sampling, 0);
    pthread_join(sampler_th, NULL);
    return sampled_max;
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int put(enum proto p, const char *file, const char *data, size_t n)
{
    char path[256], k[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=%s", SID, file);
    snprintf(k, sizeof(k), "X-API-Key: %s", S.key);
    const char *h[] = {k, "Content-Type: application/octet-stream", NULL};
    resp_t r;
    int st = http_req(&S, &r, p, "PUT", path, data, n, h) == 0 ? (int)r.status : -1;
    resp_free(&r);
    return st;
}

/* Downloads `file` and compares it with `want`. */
static int same(enum proto p, const char *file, const char *want, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=%s", SID, file);
    resp_t r;
    int ok = api(&S, &r, p, "GET", path, NULL) == 0 && r.status == 200 && r.len == n && (!n || !memcmp(r.body, want, n));
    if (!ok)
        fprintf(stderr, "download of %s: status %ld, %zu bytes (want %zu)\n", file, r.status, r.len, n);
    resp_free(&r);
    return ok;
}

static char *random_bytes(size_t n)
{
    char *b = malloc(n);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (char)(x >> 16);
    }
    return b;
}

static void big_files(void)
{
    size_t n = BIG;
    char *data = random_bytes(n);
    long before = own_rss_kb();
    sample_start();
    CHECK_INT(put(H1, "/tmp/big1", data, n), 204);
    long up = sample_stop();
    sample_start();
    CHECK(same(H1, "/tmp/big1", data, n));
    long down = sample_stop();
    printf("daemon RSS: %ld KiB before, at most %ld during a %u MiB upload, %ld during its download\n", before, up,
           BIG >> 20, down);
    /* buffered whole, an upload took 64 MiB more (h2o's buffer and a copy), a download 32 MiB;
     * what is left is malloc's arenas warming up, whatever the file's size */
    CHECK_MEM(up - before < 40 * 1024);
    CHECK_MEM(down - before < 24 * 1024);
    data[77] ^= 1; /* HTTP/2, both ways: the window is held and handed back as the guest takes it */
    before = own_rss_kb();
    sample_start();
    CHECK_INT(put(H2, "/tmp/big2", data, n), 204);
    CHECK(same(H2, "/tmp/big2", data, n));
    long h2 = sample_stop();
    printf("daemon RSS: at most %ld KiB during the same over HTTP/2\n", h2);
    CHECK_MEM(h2 - before < 40 * 1024);
    free(data);
    /* small and empty files keep working, and an upload truncates what was there */
    CHECK_INT(put(H1, "/tmp/big1", "tiny", 4), 204);
    CHECK(same(H2, "/tmp/big1", "tiny", 4));
    CHECK_INT(put(H2, "/tmp/big2", "", 0), 204); /* frees the guest's memory for what follows */
    CHECK_INT(put(H2, "/tmp/empty", "", 0), 204);
    CHECK(same(H1, "/tmp/empty", "", 0));
}

/* 20 clients ask for a 32 MiB file and never read: each holds a chunk, not the file. */
static void slow_readers(void)
{
    size_t n = BIG;
    char *data = random_bytes(n);
    CHECK_INT(put(H1, "/tmp/slow", data, n), 204);
    free(data);
    long before = own_rss_kb();
    int fds[20];
    char req[512];
    snprintf(req, sizeof(req), "GET /sandboxes/%s/files?path=/tmp/slow HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n", SID, S.key);
    for (int i = 0; i < 20; i++) {
        fds[i] = raw_connect();
        CHECK(fds[i] >= 0 && write(fds[i], req, strlen(req)) == (ssize_t)strlen(req));
    }
    sleep(2);
    long during = own_rss_kb();
    printf("daemon RSS: %ld KiB before 20 readers that never read a %u MiB file, %ld with them\n", before, BIG >> 20,
           during);
    CHECK_MEM(during - before < 64 * 1024); /* it took 20 x 32 MiB when each download was built whole */
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    /* the sandbox answers as before, and a full read of it still works */
    resp_t r;
    char path[256];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/slow", SID);
    CHECK(api(&S, &r, H2, "GET", path, NULL) == 0 && r.status == 200 && r.len == n);
    resp_free(&r);
}

/* A chunked upload (no length given), and one that passes the file cap as it goes: 413. */
static void chunked(void)
{
    int fd = raw_connect();
    char head[512], resp[4096];
    snprintf(head, sizeof(head),
             "PUT /sandboxes/%s/files?path=/tmp/chunked HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
             SID, S.key);
    CHECK(write(fd, head, strlen(head)) > 0);
    const char *body = "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n";
    CHECK(write(fd, body, strlen(body)) > 0);
    ssize_t got = read(fd, resp, sizeof(resp) - 1);
    resp[got > 0 ? got : 0] = 0;
    CHECK(!strncmp(resp, "HTTP/1.1 204", 12));
    /* the connection goes on: a second request on it */
    snprintf(head, sizeof(head), "GET /sandboxes/%s/files?path=/tmp/chunked HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n", SID,
             S.key);
    CHECK(write(fd, head, strlen(head)) > 0);
    got = read(fd, resp, sizeof(resp) - 1);
    resp[got > 0 ? got : 0] = 0;
    CHECK(!strncmp(resp, "HTTP/1.1 200", 12) && strstr(resp, "\r\n\r\nhello world"));
    close(fd);

    fd = raw_connect();
    snprintf(head, sizeof(head),
             "PUT /sandboxes/%s/files?path=/tmp/toobig HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
             SID, S.key);
    CHECK(write(fd, head, strlen(head)) > 0);
    static char chunk[65536 + 16];
    int hl = sprintf(chunk, "10000\r\n");
    memset(chunk + hl, 'z', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    int status = 0;
    for (int i = 0; i < 1200 && !status; i++) { /* up to 75 MiB, past the 48 MiB cap */
        if (write(fd, chunk, (size_t)hl + 65538) <= 0)
            break;
        struct timeval tv = {0, 0};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        if (select(fd + 1, &rs, NULL, NULL, &tv) > 0 && (got = read(fd, resp, sizeof(resp) - 1)) > 0) {
            resp[got] = 0;
            sscanf(resp, "HTTP/1.1 %d", &status);
        }
    }
    if (!status && (got = read(fd, resp, sizeof(resp) - 1)) > 0) {
        resp[got] = 0;
        sscanf(resp, "HTTP/1.1 %d", &status);
    }
    CHECK_INT(status, 413);
    close(fd);
}

/* An error found at the first chunk (the path is a directory) answers while the body still
 * comes; the rest is drained and the connection closed, the sandbox unharmed. */
static void early_answer(void)
{
    size_t n = 16u << 20;
    char *data = random_bytes(n);
    CHECK_INT(put(H1, "/tmp", data, n), 409);
    CHECK_INT(put(H2, "/tmp", data, n), 409);
    free(data);
    CHECK_INT(put(H1, "/tmp/after", "ok", 2), 204);
    CHECK(same(H1, "/tmp/after", "ok", 2));
}

/* Whether /tmp holds an upload's temporary. */
static int temp_left(void)
{
    char path[256];
    snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp", SID);
    resp_t r;
    int left = api(&S, &r, H1, "GET", path, NULL) != 0 || r.status != 200 || (r.body && strstr(r.body, ".lelantos-upload-"));
    resp_free(&r);
    return left;
}

/* Uploads go into pages the guest hands out: one cut short leaves no temporary and holds
 * nothing (the same path takes the next upload); a chunked one of unknown length spans several
 * hand-outs (8 MiB each) and ends at the right size, with a new file's usual mode. */
static void into_guest_pages(void)
{
    int fd = raw_connect();
    char head[512];
    snprintf(head, sizeof(head),
             "PUT /sandboxes/%s/files?path=/tmp/cut HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: %u\r\n\r\n",
             SID, S.key, 20u << 20);
    char *data = random_bytes(20u << 20);
    CHECK(write(fd, head, strlen(head)) > 0);
    for (size_t off = 0; off < (9u << 20);) { /* past the first hand-out, then gone */
        ssize_t w = write(fd, data + off, (9u << 20) - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    int left = 1;
    for (int i = 0; i < 100 && (left = temp_left()); i++)
        usleep(100000);
    CHECK(!left);
    CHECK_INT(put(H1, "/tmp/cut", data, 3u << 20), 204);
    CHECK(same(H1, "/tmp/cut", data, 3u << 20));

    size_t n = (17u << 20) + 12345; /* chunked: 64 KiB pieces, a short last one */
    fd = raw_connect();
    snprintf(head, sizeof(head),
             "PUT /sandboxes/%s/files?path=/tmp/chunkbig HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
             SID, S.key);
    CHECK(write(fd, head, strlen(head)) > 0);
    for (size_t off = 0; off < n;) {
        size_t k = n - off < 65536 ? n - off : 65536;
        char hl[32];
        int l = snprintf(hl, sizeof(hl), "%zx\r\n", k);
        int ok = write(fd, hl, (size_t)l) == l;
        for (size_t done = 0; ok && done < k;) {
            ssize_t w = write(fd, data + off + done, k - done);
            ok = w > 0;
            done += ok ? (size_t)w : 0;
        }
        CHECK(ok && write(fd, "\r\n", 2) == 2);
        off += k;
    }
    char resp[1024];
    CHECK(write(fd, "0\r\n\r\n", 5) == 5);
    ssize_t got = read(fd, resp, sizeof(resp) - 1);
    resp[got > 0 ? got : 0] = 0;
    CHECK(!strncmp(resp, "HTTP/1.1 204", 12));
    close(fd);
    CHECK(same(H2, "/tmp/chunkbig", data, n));
    free(data);
    resp_t r;
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    CHECK(api(&S, &r, H1, "POST", path, "{\"cmd\":\"stat -c %a /tmp/chunkbig; ls -a /tmp | grep -c lelantos-upload\"}") == 0);
    CHECK_STR(jstr(&r, "stdout"), "644\n0\n");
    resp_free(&r);
    CHECK_INT(put(H1, "/tmp/chunkbig", "", 0), 204); /* its memory back for what follows */
    CHECK_INT(put(H1, "/tmp/cut", "", 0), 204);
}

/* A command's stdout (malloc'd; "" when it failed). */
static char *run(const char *cmd)
{
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    json_t *b = json_pack("{s:s}", "cmd", cmd);
    char *body = json_dumps(b, 0);
    resp_t r;
    char *out = strdup(api(&S, &r, H1, "POST", path, body) == 0 && r.status == 200 ? jstr(&r, "stdout") : "");
    if (r.status != 200)
        fprintf(stderr, "%s: status %ld %s\n", cmd, r.status, r.body ? r.body : "");
    resp_free(&r);
    free(body);
    json_decref(b);
    return out;
}

/* envd's POST /files of one file (octet-stream), with an X-Metadata-<meta> header when given. */
static int envd_post(const char *file, const char *data, const char *meta)
{
    char path[256], sid[96], tok[160];
    snprintf(path, sizeof(path), "/files?path=%s&username=root", file);
    snprintf(sid, sizeof(sid), "E2b-Sandbox-Id: %s", SID);
    snprintf(tok, sizeof(tok), "X-Access-Token: %s", TOKEN);
    const char *h[] = {sid, "E2b-Sandbox-Port: 49983", tok, "Content-Type: application/octet-stream", meta, NULL};
    resp_t r;
    int st = http_req(&S, &r, H1, "POST", path, data, strlen(data), h) == 0 ? (int)r.status : -1;
    resp_free(&r);
    return st;
}

/* An upload replaces a file through a temporary, yet keeps its extended attributes as a write in
 * place would: all of them through our PUT; through envd's POST all but its metadata (user.e2b.*),
 * which each upload replaces with its X-Metadata headers' (none without). */
static void keeps_xattrs(void)
{
    CHECK_INT(put(H1, "/bin/xattr_tool", (const char *)lel_xattr_tool_elf, lel_xattr_tool_elf_size), 204);
    CHECK_INT(put(H1, "/tmp/xa", "one", 3), 204);
    char *out = run("chmod +x /bin/xattr_tool && xattr_tool set /tmp/xa user.a apple && xattr_tool set /tmp/xa user.e2b.k v1 && "
                    "chmod 640 /tmp/xa && xattr_tool dump /tmp/xa");
    CHECK_STR(out, "user.a=apple\nuser.e2b.k=v1\n");
    free(out);
    CHECK_INT(put(H1, "/tmp/xa", "two", 3), 204);
    out = run("cat /tmp/xa; echo; stat -c %a /tmp/xa; xattr_tool dump /tmp/xa");
    CHECK_STR(out, "two\n640\nuser.a=apple\nuser.e2b.k=v1\n");
    free(out);
    CHECK_INT(envd_post("/tmp/xa", "three", NULL), 200);
    out = run("cat /tmp/xa; echo; xattr_tool dump /tmp/xa");
    CHECK_STR(out, "three\nuser.a=apple\n");
    free(out);
    CHECK_INT(envd_post("/tmp/xa", "four", "X-Metadata-Stage: final"), 200);
    out = run("cat /tmp/xa; echo; xattr_tool dump /tmp/xa; ls -a /tmp | grep -c lelantos-upload");
    CHECK_STR(out, "four\nuser.a=apple\nuser.e2b.stage=final\n0\n");
    free(out);
    CHECK_INT(envd_post("/tmp/xa", "five", NULL), 200);
    out = run("xattr_tool dump /tmp/xa; rm /tmp/xa");
    CHECK_STR(out, "user.a=apple\n");
    free(out);
}

int main(void)
{
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\nhttp:\n  max_file_bytes: 50331648\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    resp_t r;
    CHECK(api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\"}") == 0);
    CHECK_INT(r.status, 201);
    snprintf(SID, sizeof(SID), "%s", jstr(&r, "sandboxID"));
    snprintf(TOKEN, sizeof(TOKEN), "%s", jstr(&r, "envdAccessToken"));
    resp_free(&r);
    if (SID[0]) {
        big_files();
        slow_readers();
        chunked();
        early_answer();
        into_guest_pages();
        keeps_xattrs();
    }
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
