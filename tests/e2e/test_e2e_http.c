/* The HTTP edge, tested from outside with raw sockets where curl would be too polite: requests
 * with bodies are judged from their heads before the body is read (401/413/429/503 at once, no
 * 100 Continue), bodies nobody was let in cost no memory, malformed and ambiguous HTTP/1 heads
 * get a JSON 400 and a close, routing is on the raw path, 405 says Allow, two credentials that
 * disagree are refused, and a second daemon cannot share the port. API-only mode. */
#include "../lel_test.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static srv_t S;

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Reads what the server sends until it closes (or 5 s pass); returns the bytes, NUL-ended. */
static size_t read_all(int fd, char *out, size_t cap, int *closed)
{
    size_t got = 0;
    *closed = 0;
    while (got < cap - 1) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n == 0) {
            *closed = 1;
            break;
        }
        if (n < 0) {
            *closed = errno == ECONNRESET;
            break;
        }
        got += (size_t)n;
    }
    out[got] = 0;
    return got;
}

static int status_of(const char *resp)
{
    int st = 0;
    return sscanf(resp, "HTTP/1.1 %d", &st) == 1 ? st : 0;
}

/* The body of a raw response parsed as JSON, or NULL. */
static json_t *body_json(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

/* Sends `head` (and nothing more) and checks the answer: `status`, a JSON error body with that
 * code, nothing else before it (no 100 Continue), and a close. Returns the time to the answer. */
static double refused_at_head(const char *head, int status)
{
    int fd = raw_connect(S.port), closed;
    char resp[8192];
    CHECK(fd >= 0);
    if (fd < 0)
        return 99;
    double t0 = now_s();
    CHECK(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    read_all(fd, resp, sizeof(resp), &closed);
    double dt = now_s() - t0;
    CHECK_INT(status_of(resp), status);
    CHECK(strstr(resp, "application/json") != NULL);
    json_t *j = body_json(resp);
    CHECK(j && json_integer_value(json_object_get(j, "code")) == status);
    CHECK(j && json_is_string(json_object_get(j, "message")));
    json_decref(j);
    CHECK(closed);
    close(fd);
    return dt;
}

static void early_refusals(void)
{
    char head[1024];
    /* no key, a 100 MiB upload announced with Expect: the 401 comes instead of 100 Continue */
    snprintf(head, sizeof(head),
             "PUT /sandboxes/x/files?path=/tmp/a HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n"
             "Expect: 100-continue\r\n\r\n");
    CHECK(refused_at_head(head, 401) < 2.0);
    /* a valid key, an upload over the file cap: 413 before any byte of it */
    snprintf(head, sizeof(head),
             "PUT /sandboxes/x/files?path=/tmp/a HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 4194305\r\n\r\n", S.key);
    CHECK(refused_at_head(head, 413) < 2.0);
    /* an ordinary endpoint with a body over its cap: 413 from the head */
    snprintf(head, sizeof(head),
             "POST /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 52428800\r\n\r\n", S.key);
    CHECK(refused_at_head(head, 413) < 2.0);
    /* a route that does not exist, with a body: 404 at once; a method the route lacks: 405 */
    snprintf(head, sizeof(head), "POST /nowhere HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 1000000\r\n\r\n", S.key);
    CHECK(refused_at_head(head, 404) < 2.0);
}

/* 30 clients push bodies without a key: each is refused from its head and drained for a
 * moment, so the daemon's memory stays where it was (30 x 100 MiB took ~1 GB when bodies were
 * read whole first). */
static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static void *pusher(void *arg)
{
    (void)arg;
    int fd = raw_connect(S.port);
    if (fd < 0)
        return (void *)1;
    /* as large as the file cap (4 MiB here) allows: a body the server once read whole */
    const char *head = "PUT /sandboxes/x/files?path=/tmp/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n";
    static char chunk[65536];
    int answered = 0;
    if (write(fd, head, strlen(head)) > 0)
        for (int i = 0; i < 64; i++) /* all of it, or until the server closes */
            if (write(fd, chunk, sizeof(chunk)) <= 0)
                break;
    char resp[4096];
    int closed;
    read_all(fd, resp, sizeof(resp), &closed);
    answered = status_of(resp) == 401 || status_of(resp) == 429 || !resp[0]; /* a reset may eat the answer */
    close(fd);
    return answered ? NULL : (void *)1;
}

static void unauthenticated_bodies(void)
{
    long before = rss_kb(S.pid);
    pthread_t th[30];
    long bad = 0;
    for (int i = 0; i < 30; i++)
        pthread_create(&th[i], NULL, pusher, NULL);
    for (int i = 0; i < 30; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    long after = rss_kb(S.pid);
    printf("peak RSS before %ld KiB, after 30 unauthenticated 4 MiB bodies %ld KiB\n", before, after);
    CHECK_INT(bad, 0);
    CHECK_MEM(after - before < 40 * 1024); /* read whole first, they took 120 MiB and more */
}

/* Heads h2o would have taken (or answered as text/plain) get the API's JSON 400 and a close. */
static void malformed_heads(void)
{
    static const char *const heads[] = {
        "GET /health HTTP/1.1\r\nHost : x\r\n\r\n",                                   /* space before the colon */
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", /* two lengths */
        "POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /health HTTP/1.1\r\n\r\n",                                              /* no Host */
        "POST /sandboxes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",     /* unknown coding */
        "POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",       /* broken length */
        "GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",               /* obs-fold */
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
        refused_at_head(heads[i], 400);
    /* a NUL inside a header value */
    {
        const char h[] = "GET /health HTTP/1.1\r\nHost: x\0y\r\n\r\n";
        int fd = raw_connect(S.port), closed;
        char resp[4096];
        CHECK(write(fd, h, sizeof(h) - 1) == (ssize_t)sizeof(h) - 1);
        read_all(fd, resp, sizeof(resp), &closed);
        CHECK_INT(status_of(resp), 400);
        CHECK(strstr(resp, "application/json") != NULL);
        close(fd);
    }
    /* 10 000 headers */
    size_t cap = 10000 * 12 + 64, n = 0;
    char *big = malloc(cap);
    n += (size_t)sprintf(big, "GET /health HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 10000; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i % 1000);
    n += (size_t)sprintf(big + n, "\r\n");
    refused_at_head(big, 400);
    free(big);
    /* an unsupported Expect */
    refused_at_head("POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: magic\r\n\r\n", 417);
}

/* A chunked body past the cap on an ordinary route: h2o itself refuses it; the answer is the
 * API's JSON all the same. */
static void chunked_over_cap(void)
{
    int fd = raw_connect(S.port), closed;
    char head[512], resp[8192];
    snprintf(head, sizeof(head), "POST /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n", S.key);
    CHECK(write(fd, head, strlen(head)) > 0);
    static char chunk[65536 + 16];
    int hl = sprintf(chunk, "10000\r\n");
    memset(chunk + hl, ' ', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    for (int i = 0; i < 40; i++) /* 2.5 MiB > the 1 MiB cap */
        if (write(fd, chunk, (size_t)hl + 65538) <= 0)
            break;
    read_all(fd, resp, sizeof(resp), &closed);
    CHECK_INT(status_of(resp), 413);
    CHECK(strstr(resp, "application/json") != NULL);
    json_t *j = body_json(resp);
    CHECK(j && json_integer_value(json_object_get(j, "code")) == 413);
    json_decref(j);
    close(fd);
}

static void routing(void)
{
    resp_t r;
    /* a percent-encoded slash never makes a path another route */
    CHECK(api(&S, &r, H1, "GET", "/sandboxes/..%2fteams", NULL) == 0);
    CHECK_INT(r.status, 404);
    CHECK(json_object_get(r.json, "teamID") == NULL);
    resp_free(&r);
    CHECK(api(&S, &r, H2, "GET", "/sandboxes/%2e%2e/teams", NULL) == 0);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    /* 405 lists what the path takes */
    CHECK(http_req(&S, &r, H1, "DELETE", "/health", NULL, 0, NULL) == 0);
    CHECK_INT(r.status, 405);
    CHECK(resp_header(&r, "allow") && !strcasecmp(resp_header(&r, "allow"), "GET"));
    CHECK(json_integer_value(json_object_get(r.json, "code")) == 405);
    resp_free(&r);
    CHECK(api(&S, &r, H2, "PUT", "/sandboxes", "{}") == 0);
    CHECK_INT(r.status, 405);
    CHECK(resp_header(&r, "allow") && !strcasecmp(resp_header(&r, "allow"), "GET, POST"));
    resp_free(&r);
}

static void credentials(void)
{
    resp_t r;
    const char *ah[] = {"X-Admin-Token: test-admin-token", NULL};
    CHECK(http_req(&S, &r, H1, "POST", "/admin/teams", "{\"name\":\"other\"}", 16, ah) == 0);
    CHECK_INT(r.status, 201);
    char other[64];
    snprintf(other, sizeof(other), "%s", jstr(&r, "key"));
    resp_free(&r);
    char k[128], b[128], b_same[128];
    snprintf(k, sizeof(k), "X-API-Key: %s", S.key);
    snprintf(b, sizeof(b), "Authorization: Bearer %s", other);
    snprintf(b_same, sizeof(b_same), "Authorization: Bearer %s", S.key);
    const char *both[] = {k, b, NULL}, *same[] = {k, b_same, NULL}, *admin[] = {k, "X-Admin-Token: wrong", NULL};
    for (int p = H1; p <= H2; p++) {
        CHECK(http_req(&S, &r, p, "GET", "/teams", NULL, 0, both) == 0);
        CHECK_INT(r.status, 401);
        CHECK(strstr(jstr(&r, "message"), "conflicting") != NULL);
        resp_free(&r);
        CHECK(http_req(&S, &r, p, "GET", "/teams", NULL, 0, admin) == 0);
        CHECK_INT(r.status, 401);
        resp_free(&r);
        CHECK(http_req(&S, &r, p, "GET", "/teams", NULL, 0, same) == 0); /* the same key twice is one */
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
}

static void h2_bodies(void)
{
    resp_t r;
    size_t n = 3 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    /* no key: refused on its stream, the connection and the server fine */
    CHECK(http_req(&S, &r, H2, "PUT", "/sandboxes/x/files?path=/tmp/a", big, n, NULL) == 0);
    CHECK_INT(r.status, 401);
    resp_free(&r);
    char k[128];
    snprintf(k, sizeof(k), "X-API-Key: %s", S.key);
    const char *h[] = {k, "Content-Type: application/json", NULL};
    CHECK(http_req(&S, &r, H2, "POST", "/sandboxes", big, n, h) == 0);
    CHECK_INT(r.status, 413);
    CHECK(json_integer_value(json_object_get(r.json, "code")) == 413);
    resp_free(&r);
    free(big);
    /* an ordinary body over HTTP/2 still arrives whole */
    const char *small = "{\"metadata\":{\"via\":\"h2\"}}";
    CHECK(http_req(&S, &r, H2, "POST", "/sandboxes", small, strlen(small), h) == 0);
    CHECK_INT(r.status, 201);
    resp_free(&r);
}

/* With http.max_inflight_body_bytes at 1 MiB, a second body that would pass it waits for none:
 * 503 with Retry-After; once the first is gone, bodies are let in again. */
static void inflight_cap(void)
{
    srv_t T = {0};
    if (srv_start(&T, "http:\n  max_inflight_body_bytes: 1048576\n") < 0) {
        CHECK(!"cannot start the second server");
        return;
    }
    char head[512], resp[4096];
    snprintf(head, sizeof(head), "POST /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 700000\r\n\r\n{", T.key);
    int a = raw_connect(T.port), b = raw_connect(T.port), closed;
    CHECK(write(a, head, strlen(head)) > 0); /* holds 700 000 bytes of the cap, sends 1 */
    usleep(200000);
    CHECK(write(b, head, strlen(head)) > 0);
    read_all(b, resp, sizeof(resp), &closed);
    CHECK_INT(status_of(resp), 503);
    CHECK(strstr(resp, "Retry-After: 1") != NULL);
    close(b);
    close(a);
    usleep(300000);
    /* failed authentications past the address's rate (3/s here) are 429 from the head too */
    int n429 = 0;
    for (int i = 0; i < 8; i++) {
        int fd = raw_connect(T.port);
        const char *h = "PUT /sandboxes/x/files?path=/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n";
        CHECK(write(fd, h, strlen(h)) > 0);
        read_all(fd, resp, sizeof(resp), &closed);
        if (status_of(resp) == 429) {
            n429++;
            CHECK(strstr(resp, "Retry-After:") != NULL);
        } else {
            CHECK_INT(status_of(resp), 401);
        }
        close(fd);
    }
    CHECK(n429 >= 4);
    resp_t r;
    CHECK(api_key(&T, &r, H1, T.key, "POST", "/sandboxes", "{}") == 0);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    CHECK_INT(srv_stop(&T), 0);
    srv_cleanup(&T);
}

/* A second lelantosd on the address refuses to start; the first keeps every connection. */
static void port_taken(void)
{
    char listen[64], data[300], log[300];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", S.port);
    snprintf(data, sizeof(data), "%s/data2", S.dir);
    snprintf(log, sizeof(log), "%s/second.log", S.dir);
    const char *bin = getenv("LELANTOSD") ? getenv("LELANTOSD") : LELANTOSD_PATH;
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        dup2(2, 1);
        execl(bin, "lelantosd", "--listen", listen, "--data-dir", data, (char *)NULL);
        _exit(127);
    }
    int st = 0, done = 0;
    for (int i = 0; i < 200 && !done; i++) {
        done = waitpid(pid, &st, WNOHANG) == pid;
        if (!done)
            usleep(25000);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    CHECK(done);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char buf[4096] = {0};
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    CHECK(strstr(buf, "in use") != NULL);
    int ok = 0;
    for (int i = 0; i < 40; i++) {
        resp_t r;
        ok += api(&S, &r, i % 2 ? H2 : H1, "GET", "/teams", NULL) == 0 && r.status == 200;
        resp_free(&r);
    }
    CHECK_INT(ok, 40);
}

int main(void)
{
    if (srv_start(&S, "http:\n  max_file_bytes: 4194304\nrate_limits:\n  auth_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    early_refusals();
    unauthenticated_bodies();
    malformed_heads();
    chunked_over_cap();
    routing();
    credentials();
    h2_bodies();
    port_taken();
    inflight_cap();
    resp_t r;
    CHECK(http_req(&S, &r, H1, "GET", "/health", NULL, 0, NULL) == 0 && r.status == 200); /* still serving */
    resp_free(&r);
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
