/* Node-to-node GETs (lel_cluster_get.h): libcurl, one connection per call (a kept-alive idle
 * one would hold the other node's graceful stop, as in the forwarder). */
#include "lel_cluster_get.h"

#include "../common/lel_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sink {
    int fd;
    uint64_t max;
    EVP_MD_CTX *md;
    char *p;
    size_t n, cap;
    int too_big, write_err;
};

static size_t keep(struct sink *s, const char *data, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        size_t cap = (s->n + n + 1) * 2;
        char *p = realloc(s->p, cap);
        if (!p)
            return 0;
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, data, n);
    s->n += n;
    s->p[s->n] = '\0';
    return n;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct sink *s = ctx;
    size_t n = size * nmemb;
    if (s->n + n > s->max) {
        s->too_big = 1;
        return 0;
    }
    if (s->fd < 0)
        return keep(s, data, n);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->write_err = w < 0 ? errno : EIO;
            return 0;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(s->md, data, n);
    s->n += n;
    return n;
}

int lel_cluster_get(const char *url, const char *secret, int fd, uint64_t max, long timeout_ms,
                    struct lel_cluster_got *out, char *err, size_t errlen)
{
    struct sink s = {.fd = fd, .max = max};
    char hdr[1200];
    memset(out, 0, sizeof(*out));
    CURL *h = curl_easy_init();
    if (!h || (fd >= 0 && (!(s.md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(s.md, EVP_sha256(), NULL)))) {
        curl_easy_cleanup(h);
        EVP_MD_CTX_free(s.md);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(hdr, sizeof(hdr), "X-Lelantos-Node: %s", secret);
    struct curl_slist *hd = curl_slist_append(NULL, hdr);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    int r = (int)status;
    if (s.too_big) {
        snprintf(err, errlen, "%s: the answer is larger than %llu bytes", url, (unsigned long long)max);
        r = -E2BIG;
    } else if (s.write_err) {
        snprintf(err, errlen, "writing what %s answered: %s", url, strerror(s.write_err));
        r = -s.write_err;
    } else if (cr != CURLE_OK || status < 100) {
        snprintf(err, errlen, "%s did not answer: %s", url, curl_easy_strerror(cr));
        r = -ECONNREFUSED;
    }
    if (fd >= 0) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_DigestFinal_ex(s.md, md, &mdlen);
        lel_hex(md, sizeof(md), out->sha256);
    }
    EVP_MD_CTX_free(s.md);
    out->len = s.n;
    if (r > 0 && fd < 0)
        out->body = s.p ? s.p : strdup("");
    else
        free(s.p);
    return r;
}
