/* The e2e harness; see harness.h. */
#include "harness.h"
#include "oas.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int srv_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &n) < 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static int spawn(srv_t *s)
{
    char cfg[300], log[300], listen[64], data[300];
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", s->dir);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    snprintf(data, sizeof(data), "%s/data", s->dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        /* a test that dies (an abort under a sanitizer, a crash) takes its daemon with it (the signal
         * comes when the thread that forked ends: tests start their daemons from the main thread) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("LELANTOS_ADMIN_TOKEN", "test-admin-token", 1);
        const char *bin = getenv("LELANTOSD") ? getenv("LELANTOSD") : LELANTOSD_PATH; /* another machine's copy */
        execl(bin, "lelantosd", "--config", cfg, "--listen", listen, "--data-dir", data, (char *)NULL);
        _exit(127);
    }
    /* ready when /health answers */
    for (int i = 0; i < 400; i++) {
        resp_t r;
        if (http_req(s, &r, H1, "GET", "/health", NULL, 0, NULL) == 0 && r.status == 200) {
            resp_free(&r);
            char kp[512];
            snprintf(kp, sizeof(kp), "%s/initial-api-key", data);
            FILE *f = fopen(kp, "r");
            if (f) {
                if (!fgets(s->key, sizeof(s->key), f))
                    s->key[0] = 0;
                s->key[strcspn(s->key, "\n")] = 0;
                fclose(f);
            }
            return 0;
        }
        resp_free(&r);
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stderr, "lelantosd exited early; see %s\n", log);
            s->pid = 0;
            return -1;
        }
        usleep(25000);
    }
    return -1;
}

int srv_start(srv_t *s, const char *extra_yaml)
{
    static int curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_ALL);
        signal(SIGPIPE, SIG_IGN);
        curl_ready = 1;
    }
    char cfg[300];
    snprintf(s->dir, sizeof(s->dir), "/tmp/lel-e2e-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->yaml, sizeof(s->yaml), "%s", extra_yaml ? extra_yaml : "");
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", s->dir);
    FILE *f = fopen(cfg, "w");
    /* API tests run without VMs unless they ask for them (vmm: in their extra config) */
    fprintf(f, "http:\n  threads: 2\nworkers: 4\n%s%s", strstr(s->yaml, "vmm:") ? "" : "vmm:\n  backend: none\n", s->yaml);
    fclose(f);
    s->port = srv_free_port();
    return spawn(s);
}

int srv_restart(srv_t *s)
{
    return spawn(s);
}

void srv_log_tail(const srv_t *s)
{
    char path[300], buf[8192];
    snprintf(path, sizeof(path), "%s/server.log", s->dir);
    int fd = open(path, O_RDONLY);
    off_t end = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
    ssize_t n = end < 0 ? -1 : pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0);
    if (n > 0) {
        buf[n] = 0;
        fprintf(stderr, "--- end of %s ---\n%s\n---\n", path, buf);
    }
    if (fd >= 0)
        close(fd);
}

int srv_stop(srv_t *s)
{
    int st = 0;
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 600; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (rc != 0)
                srv_log_tail(s);
            return rc;
        }
        usleep(50000);
    }
    srv_log_tail(s);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

void srv_kill9(srv_t *s)
{
    int st;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
        s->pid = 0;
    }
}

void srv_cleanup(srv_t *s)
{
    char cmd[200];
    if (s->pid > 0)
        srv_kill9(s);
    if (getenv("LEL_KEEP_TMP"))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", s->dir);
}

struct buf {
    char *p;
    size_t n, cap; /* grows by doubling: a 64 MiB body in 16 KiB pieces was quadratic under ASan */
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return 0;
        b->p = np;
        b->cap = cap;
    }
    char *np = b->p;
    memcpy(np + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* Answers that broke docs/openapi.json (the test process's count): a test that saw one exits 1
 * at its end, whatever its own checks said. */
static int oas_broken;

static void oas_verdict(void)
{
    if (oas_broken) {
        fprintf(stderr, "FAILED: %d answers did not match docs/openapi.json (see 'openapi:' above)\n", oas_broken);
        _exit(1);
    }
}

/* Holds the answer against the document, unless the request was for a sandbox's server (Host
 * or E2B's headers: its answer is that server's) or the answer is a transport failure. */
static void oas_answer(const char *method, const char *path, const char *const *hdrs, resp_t *r)
{
    static int registered;
    for (int i = 0; hdrs && hdrs[i]; i++)
        if (!strncasecmp(hdrs[i], "host:", 5) || !strncasecmp(hdrs[i], "e2b-sandbox", 11))
            return;
    if (!r->status || !strcmp(method, "HEAD"))
        return;
    char why[512];
    const char *ct = resp_header(r, "content-type");
    if (oas_check(LEL_OPENAPI_PATH, method, path, r->status, ct, r->json, why, sizeof(why)) < 0) {
        fprintf(stderr, "openapi: %s %.200s -> %ld: %s\n", method, path, r->status, why);
        oas_broken++;
        if (!registered++)
            atexit(oas_verdict);
    }
}

int http_req(srv_t *s, resp_t *r, enum proto p, const char *method, const char *path, const char *body, size_t len,
             const char *const *hdrs)
{
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    struct buf b = {0}, h = {0};
    char *url = NULL; /* as long as the path (a test of the longest file paths sends 4 KiB) */
    if (asprintf(&url, "%s://127.0.0.1:%d%s", s->tls ? "https" : "http", s->port, path) < 0)
        url = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url); /* libcurl keeps a copy */
    free(url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    /* longer than the longest command a test gives a limit (60 s, the memory hog): under QEMU's
     * emulation that one took 25 s and more, and a client that gave up first lost its answer;
     * a test running longer commands (a language's test suite) sets its own */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, s->http_timeout_s > 0 ? s->http_timeout_s : 90L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (s->recv_bps > 0)
        curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)s->recv_bps);
    if (getenv("LEL_CURL_VERBOSE"))
        curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    if (s->tls) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, p == H2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, p == H2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                                  : p == H2_UPGRADE ? CURL_HTTP_VERSION_2_0 : CURL_HTTP_VERSION_1_1);
    }
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (int i = 0; hdrs && hdrs[i]; i++)
        list = curl_slist_append(list, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    long ver = 0;
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &ver);
    r->version = ver == CURL_HTTP_VERSION_2_0 ? 20 : 11;
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    r->body = b.p;
    r->len = b.n;
    r->headers = h.p;
    for (size_t i = 0; i < h.n; i++)
        r->headers[i] = (char)tolower((unsigned char)r->headers[i]);
    if (r->body && r->len)
        r->json = json_loadb(r->body, r->len, 0, NULL);
    if (rc == CURLE_OK)
        oas_answer(method, path, hdrs, r);
    return rc == CURLE_OK ? 0 : -1;
}

int api_key(srv_t *s, resp_t *r, enum proto p, const char *key, const char *method, const char *path, const char *json_body)
{
    char kh[128];
    snprintf(kh, sizeof(kh), "X-API-Key: %s", key);
    const char *hdrs[] = {kh, "Content-Type: application/json", NULL};
    return http_req(s, r, p, method, path, json_body, json_body ? strlen(json_body) : 0, hdrs);
}

int api(srv_t *s, resp_t *r, enum proto p, const char *method, const char *path, const char *json_body)
{
    return api_key(s, r, p, s->key, method, path, json_body);
}

const char *resp_header(resp_t *r, const char *name)
{
    static __thread char val[512]; /* per thread: the crash loop reads answers on several */
    char needle[128];
    snprintf(needle, sizeof(needle), "\n%s:", name);
    const char *p = r->headers ? strstr(r->headers, needle) : NULL;
    if (!p)
        return NULL;
    p += strlen(needle);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= sizeof(val))
        n = sizeof(val) - 1;
    memcpy(val, p, n);
    val[n] = 0;
    return val;
}

void resp_free(resp_t *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

const char *jstr(resp_t *r, const char *field)
{
    const char *v = json_string_value(json_object_get(r->json, field));
    return v ? v : "";
}
