/* A small static HTTP/1.1 server for the inbound tests (run inside a sandbox):
 *   GET  /ws     a WebSocket (RFC 6455): every text or binary frame is sent back, until close
 *   POST /echo   the request body (Content-Length or chunked) back, as a chunked response
 *   GET  /sse    text/event-stream: three events 100 ms apart, chunked
 *   GET  /host   the request's Host header as the body (what the proxy sent)
 * Connections are kept alive; one at a time, each in a child process.
 * Usage: ws_echo PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int readn(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int writen(int fd, const void *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, (const char *)buf + off, n - off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* ---- SHA-1, for Sec-WebSocket-Accept ---- */

static uint32_t rol(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    uint8_t *m = calloc(1, total);
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[off + 4 * i] << 24 | m[off + 4 * i + 1] << 16 | m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
        for (int i = 16; i < 80; i++)
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20)
                f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40)
                f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60)
                f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else
                f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    free(m);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- requests ---- */

struct req {
    char method[16], path[256], key[128], host[256];
    long length; /* -1: none */
    int chunked, upgrade;
};

/* Reads a head into buf (up to its blank line); 0, or -1 at the end. */
static int read_head(int fd, char *buf, size_t cap, struct req *r)
{
    size_t n = 0;
    while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4)) {
        if (n + 1 >= cap || read(fd, buf + n, 1) != 1)
            return -1;
        n++;
    }
    buf[n] = 0;
    memset(r, 0, sizeof(*r));
    r->length = -1;
    if (sscanf(buf, "%15s %255s", r->method, r->path) != 2)
        return -1;
    for (char *line = strstr(buf, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
        char *h = line + 2, *colon = strchr(h, ':');
        if (!colon)
            break;
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        size_t vl = strcspn(v, "\r");
        if (!strncasecmp(h, "content-length:", 15))
            r->length = atol(v);
        else if (!strncasecmp(h, "transfer-encoding:", 18) && !strncasecmp(v, "chunked", 7))
            r->chunked = 1;
        else if (!strncasecmp(h, "upgrade:", 8) && !strncasecmp(v, "websocket", 9))
            r->upgrade = 1;
        else if (!strncasecmp(h, "sec-websocket-key:", 18) && vl < sizeof(r->key))
            memcpy(r->key, v, vl);
        else if (!strncasecmp(h, "host:", 5) && vl < sizeof(r->host))
            memcpy(r->host, v, vl);
    }
    return 0;
}

static int send_chunk(int fd, const void *p, size_t n)
{
    char line[32];
    int l = snprintf(line, sizeof(line), "%zx\r\n", n);
    return writen(fd, line, (size_t)l) || writen(fd, p, n) || writen(fd, "\r\n", 2) ? -1 : 0;
}

static int echo_body(int fd, const struct req *r)
{
    static char buf[65536];
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (writen(fd, head, strlen(head)))
        return -1;
    if (!r->chunked) {
        for (long left = r->length > 0 ? r->length : 0; left > 0;) {
            ssize_t k = read(fd, buf, left < (long)sizeof(buf) ? (size_t)left : sizeof(buf));
            if (k <= 0 || send_chunk(fd, buf, (size_t)k))
                return -1;
            left -= k;
        }
        return writen(fd, "0\r\n\r\n", 5);
    }
    for (;;) { /* chunked in: each chunk out as it came */
        char line[64];
        size_t n = 0;
        while (n < 2 || memcmp(line + n - 2, "\r\n", 2))
            if (n + 1 >= sizeof(line) || read(fd, line + n++, 1) != 1)
                return -1;
        long size = strtol(line, NULL, 16);
        if (size == 0) {
            char crlf[2];
            return readn(fd, crlf, 2) || writen(fd, "0\r\n\r\n", 5) ? -1 : 0;
        }
        for (long left = size; left > 0;) {
            size_t k = left < (long)sizeof(buf) ? (size_t)left : sizeof(buf);
            if (readn(fd, buf, k) || send_chunk(fd, buf, k))
                return -1;
            left -= (long)k;
        }
        char crlf[2];
        if (readn(fd, crlf, 2))
            return -1;
    }
}

static int sse(int fd)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (writen(fd, head, strlen(head)))
        return -1;
    for (int i = 1; i <= 3; i++) {
        char ev[64];
        int n = snprintf(ev, sizeof(ev), "data: event %d\n\n", i);
        if (send_chunk(fd, ev, (size_t)n))
            return -1;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    return writen(fd, "0\r\n\r\n", 5);
}

static void websocket(int fd, const struct req *r)
{
    char cat[256], acc[64], head[256];
    uint8_t dig[20];
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", r->key);
    sha1((const uint8_t *)cat, strlen(cat), dig);
    base64(dig, 20, acc);
    int n = snprintf(head, sizeof(head), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                         "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    if (writen(fd, head, (size_t)n))
        return;
    for (;;) {
        uint8_t h[2], mask[4], ext[8];
        if (readn(fd, h, 2))
            return;
        uint64_t len = h[1] & 0x7f;
        if (len == 126 && !readn(fd, ext, 2))
            len = (uint64_t)ext[0] << 8 | ext[1];
        else if (len == 127 && !readn(fd, ext, 8))
            for (int i = 0, k = 0; i < 8; i++, k++)
                len = (k ? len << 8 : 0) | ext[i];
        if (len > (1u << 24) || ((h[1] & 0x80) && readn(fd, mask, 4)))
            return;
        uint8_t *p = malloc(len + 1);
        if (!p || readn(fd, p, len)) {
            free(p);
            return;
        }
        for (uint64_t i = 0; (h[1] & 0x80) && i < len; i++)
            p[i] ^= mask[i % 4];
        int op = h[0] & 0x0f;
        uint8_t out[10] = {(uint8_t)(0x80 | (op == 8 ? 8 : op))};
        size_t hl = 2;
        if (len < 126)
            out[1] = (uint8_t)len;
        else if (len < 65536)
            out[1] = 126, out[2] = (uint8_t)(len >> 8), out[3] = (uint8_t)len, hl = 4;
        else
            for (int i = 0; i < 8; i++)
                out[1] = 127, out[2 + i] = (uint8_t)(len >> (56 - 8 * i)), hl = 10;
        int bad = writen(fd, out, hl) || writen(fd, p, len);
        free(p);
        if (bad || op == 8)
            return;
    }
}

static void serve(int fd)
{
    char head[8192];
    struct req r;
    while (read_head(fd, head, sizeof(head), &r) == 0) {
        if (!strcmp(r.path, "/ws") && r.upgrade) {
            websocket(fd, &r);
            return;
        }
        int bad;
        if (!strcmp(r.path, "/echo"))
            bad = echo_body(fd, &r);
        else if (!strcmp(r.path, "/sse"))
            bad = sse(fd);
        else if (!strcmp(r.path, "/host")) {
            char resp[400];
            int n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(r.host), r.host);
            bad = writen(fd, resp, (size_t)n);
        }
        else
            bad = writen(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 45);
        if (bad)
            return;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    signal(SIGCHLD, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 16) < 0)
        return perror("ws_echo"), 1;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        if (fork() == 0) {
            close(l);
            serve(c);
            _exit(0);
        }
        close(c);
    }
}
