/* POST /sandboxes/{id}/commands with "stream": true in a real microVM: the answer is a stream
 * of events (newline-delimited JSON, or server-sent events) whose output arrives while the
 * command runs, whole past 1 MiB, never splitting a UTF-8 character; a client that stops
 * reading makes the command wait instead of growing the daemon. Skips (77) without KVM. */
#include "../lel_test.h"
#include "../../src/vmm/lel_vmm.h"
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static srv_t S;
static char SID[64];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A streamed answer as it arrived: the body, and when each of its first 64 events came. */
struct got {
    char *body;
    size_t len;
    double t0, at[64];
    size_t events;
    char type[256];
};

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
    struct got *g = ctx;
    g->body = realloc(g->body, g->len + sz * n + 1);
    memcpy(g->body + g->len, p, sz * n);
    for (size_t i = 0; i < sz * n; i++)
        if (p[i] == '\n' && g->events < 64)
            g->at[g->events++] = now_ms() - g->t0;
    g->len += sz * n;
    g->body[g->len] = 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
    struct got *g = ctx;
    if (sz * n > 14 && !strncasecmp(p, "content-type: ", 14))
        snprintf(g->type, sizeof(g->type), "%.*s", (int)(sz * n - 16), p + 14);
    return sz * n;
}

/* Streams a command (body: the request's JSON) into g; returns the HTTP status. */
static long stream(const char *body, int sse, struct got *g)
{
    char url[256], key[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/sandboxes/%s/commands", S.port, SID);
    snprintf(key, sizeof(key), "X-API-Key: %s", S.key);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, key);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (sse)
        h = curl_slist_append(h, "Accept: text/event-stream");
    memset(g, 0, sizeof(*g));
    g->t0 = now_ms();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* The events of a newline-delimited JSON body, as an array; stdout and stderr joined in out/err. */
static json_t *events(const struct got *g, char **out, char **err)
{
    json_t *all = json_array();
    size_t ol = 0, el = 0;
    *out = calloc(1, 1);
    *err = calloc(1, 1);
    for (char *line = g->body, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL);
        const char *type = json_string_value(json_object_get(j, "type")), *data = json_string_value(json_object_get(j, "data"));
        if (!j)
            continue;
        size_t n = data ? json_string_length(json_object_get(j, "data")) : 0;
        char **dst = type && !strcmp(type, "stdout") ? out : type && !strcmp(type, "stderr") ? err : NULL;
        size_t *dl = dst == out ? &ol : &el;
        if (dst && data) {
            *dst = realloc(*dst, *dl + n + 1);
            memcpy(*dst + *dl, data, n + 1);
            *dl += n;
        }
        json_array_append_new(all, j);
    }
    return all;
}

static const char *type_at(json_t *evs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(evs, i), "type")) ?: "";
}

static void basic(void)
{
    struct got g;
    char *out, *err;
    CHECK_INT(stream("{\"cmd\":\"echo first; sleep 1; echo second >&2; echo third\",\"stream\":true}", 0, &g), 200);
    CHECK_STR(g.type, "application/x-ndjson");
    json_t *evs = events(&g, &out, &err);
    size_t n = json_array_size(evs);
    CHECK(n >= 4);
    CHECK_STR(type_at(evs, 0), "start");
    CHECK(json_integer_value(json_object_get(json_array_get(evs, 0), "pid")) > 0);
    CHECK_STR(type_at(evs, 1), "stdout");
    CHECK_STR(type_at(evs, n - 1), "end");
    printf("events at %.0f, %.0f ... end at %.0f ms\n", g.at[0], g.at[1], g.at[n - 1]);
    CHECK(g.at[1] < 800 && g.at[n - 1] >= 1000); /* "first" came before the command ended */
    CHECK_STR(out, "first\nthird\n");
    CHECK_STR(err, "second\n");
    json_t *end = json_array_get(evs, n - 1);
    CHECK_INT(json_integer_value(json_object_get(end, "exitCode")), 0);
    CHECK(json_is_false(json_object_get(end, "truncated")));
    json_decref(evs);
    free(out);
    free(err);
    free(g.body);

    CHECK_INT(stream("{\"cmd\":\"echo hi; exit 4\",\"stream\":true}", 1, &g), 200);
    CHECK_STR(g.type, "text/event-stream");
    CHECK(strstr(g.body, "event: start\ndata: {") == g.body);
    CHECK(strstr(g.body, "event: stdout\ndata: {\"data\":\"hi\\n\",\"type\":\"stdout\"}\n\n") != NULL);
    CHECK(strstr(g.body, "event: end\ndata: {\"exitCode\":4,") != NULL);
    free(g.body);

    /* what JSON must escape, and bytes that are not UTF-8 */
    CHECK_INT(stream("{\"cmd\":\"printf 'q\\\"b\\\\\\\\s\\\\001\\\\t\\\\r\\\\377\\\\n'\",\"stream\":true}", 0, &g), 200);
    evs = events(&g, &out, &err);
    CHECK_STR(out, "q\"b\\s\x01\t\r\xef\xbf\xbd\n");
    json_decref(evs);
    free(out);
    free(err);
    free(g.body);

    resp_t r;
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    CHECK(api(&S, &r, H1, "POST", path, "{\"cmd\":\"true\",\"stream\":\"yes\"}") == 0);
    CHECK_INT(r.status, 400);
    resp_free(&r);
}

/* "pty": the command runs on a terminal of that size (its output as the terminal gives it, CR
 * before NL); without "stream", with "stdin" or a bad size: 400. */
static void on_pty(void)
{
    struct got g;
    char *out, *err;
    CHECK_INT(stream("{\"cmd\":\"tty; stty size; test -t 0 && test -t 2 && echo both-ttys\",\"stream\":true,"
                     "\"pty\":{\"cols\":90,\"rows\":33}}", 0, &g), 200);
    json_t *evs = events(&g, &out, &err);
    size_t n = json_array_size(evs);
    CHECK(n >= 3);
    CHECK_STR(type_at(evs, n - 1), "end");
    CHECK_INT(json_integer_value(json_object_get(json_array_get(evs, n - 1), "exitCode")), 0);
    if (strncmp(out, "/dev/pts/", 9) || !strstr(out, "\r\n33 90\r\nboth-ttys\r\n"))
        fprintf(stderr, "  pty output: '%s'\n", out);
    CHECK(!strncmp(out, "/dev/pts/", 9) && strstr(out, "\r\n33 90\r\nboth-ttys\r\n") != NULL);
    CHECK_STR(err, "");
    json_decref(evs);
    free(out);
    free(err);
    free(g.body);
    static const char *const bad[] = {"{\"cmd\":\"tty\",\"pty\":{\"cols\":80,\"rows\":24}}",
                                      "{\"cmd\":\"cat\",\"stream\":true,\"stdin\":\"x\",\"pty\":{\"cols\":80,\"rows\":24}}",
                                      "{\"cmd\":\"tty\",\"stream\":true,\"pty\":{\"cols\":0,\"rows\":24}}",
                                      "{\"cmd\":\"tty\",\"stream\":true,\"pty\":true}"};
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp_t r;
        CHECK(api(&S, &r, H1, "POST", path, bad[i]) == 0);
        CHECK_INT(r.status, 400);
        resp_free(&r);
    }
}

/* 10 MB arrive whole (the plain answer keeps 1 MiB); multibyte characters are never split. */
static void big(void)
{
    struct got g;
    char *out, *err;
    double t0 = now_ms();
    CHECK_INT(stream("{\"cmd\":\"seq 1 1500000\",\"stream\":true}", 0, &g), 200);
    double ms = now_ms() - t0;
    json_t *evs = events(&g, &out, &err);
    size_t want = 0, outlen = strlen(out);
    int same = 1;
    char line[16];
    for (unsigned i = 1; i <= 1500000 && same; i++) {
        int k = snprintf(line, sizeof(line), "%u\n", i);
        same = want + (size_t)k <= outlen && !memcmp(out + want, line, (size_t)k);
        want += (size_t)k;
    }
    printf("seq 1 1500000 streamed: %zu bytes in %.0f ms, %zu events\n", outlen, ms, json_array_size(evs));
    CHECK(same && outlen == want);
    json_decref(evs);
    free(out);
    free(err);
    free(g.body);

    /* "é\n" is 3 bytes: 1 MiB reads end inside characters */
    CHECK_INT(stream("{\"cmd\":\"yes é | head -c 3000000\",\"stream\":true}", 0, &g), 200);
    evs = events(&g, &out, &err);
    outlen = strlen(out);
    int ok = outlen == 3000000;
    for (size_t i = 0; ok && i < outlen; i += 3)
        ok = !memcmp(out + i, "\xc3\xa9\n", 3);
    CHECK(ok);
    json_decref(evs);
    free(out);
    free(err);
    free(g.body);
}

static long own_rss_kb(void)
{
    char path[64], line[256];
    long kb = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)S.pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* A client that never reads: the command waits for it, the daemon holds little of its output. */
static void slow_reader(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    const char *body = "{\"cmd\":\"dd if=/dev/zero bs=1M count=300 2>/dev/null\",\"stream\":true}";
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /sandboxes/%s/commands HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     SID, S.key, strlen(body), body);
    long before = own_rss_kb();
    CHECK(write(fd, req, (size_t)n) == n);
    sleep(3);
    long during = own_rss_kb();
    printf("daemon RSS: %ld KiB before a streamed 300 MiB stdout nobody reads, %ld after 3 s of it\n", before, during);
    CHECK_MEM(during - before < 48 * 1024);
    resp_t r;
    char path[128];
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", SID);
    CHECK(api(&S, &r, H1, "POST", path, "{\"cmd\":\"echo still here\"}") == 0); /* the sandbox answers meanwhile */
    CHECK_STR(jstr(&r, "stdout"), "still here\n");
    resp_free(&r);
    close(fd); /* the command runs on, its output dropped, and ends */
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/sandboxes/%s/pause", SID);
        CHECK(api(&S, &r, H1, "POST", path, NULL) == 0);
        long st = r.status;
        resp_free(&r);
        if (st != 409) { /* 409 while a command runs */
            CHECK(st >= 200 && st < 300);
            break;
        }
        usleep(100000);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: VM tests need /dev/kvm: %s\n", why);
        return 77;
    }
    if (srv_start(&S, "vmm:\n  backend: auto\nrate_limits:\n  general_per_s: 100000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    resp_t r;
    CHECK(api(&S, &r, H1, "POST", "/sandboxes", "{\"templateID\":\"base\"}") == 0);
    CHECK_INT(r.status, 201);
    snprintf(SID, sizeof(SID), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    if (SID[0]) {
        double t0 = now_ms();
        basic();
        on_pty();
        big();
        printf("basic and big: %.0f ms\n", now_ms() - t0);
        slow_reader();
        printf("slow reader: %.0f ms\n", now_ms() - t0);
    }
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    curl_global_cleanup();
    return lel_test_finish();
}
