/* Streaming multipart/form-data. Bytes are gathered in one buffer; in a part's data everything
 * but the last delimiter-length bytes (which may be the delimiter's start) is passed on at
 * once. The body is taken to start with a virtual CRLF, so the first boundary line matches
 * the same "\r\n--boundary" that ends each part. */
#include "lel_multipart.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { ST_PREAMBLE = 0, ST_AFTER, ST_HEAD, ST_DATA, ST_DONE };

int lel_mp_init(struct lel_mp *m, const char *ct)
{
    memset(m, 0, offsetof(struct lel_mp, buf));
    m->len = 0;
    const char *b = ct && !strncasecmp(ct, "multipart/form-data", 19) ? strcasestr(ct, "boundary=") : NULL;
    if (!b)
        return -EINVAL;
    b += 9;
    size_t n;
    if (*b == '"') {
        const char *e = strchr(++b, '"');
        if (!e)
            return -EINVAL;
        n = (size_t)(e - b);
    } else {
        n = strcspn(b, "; \t");
    }
    if (n < 1 || n > 70) /* RFC 2046's limit */
        return -EINVAL;
    m->dlen = (size_t)snprintf(m->delim, sizeof(m->delim), "\r\n--%.*s", (int)n, b);
    memcpy(m->buf, "\r\n", 2); /* the virtual CRLF before the first boundary */
    m->len = 2;
    return 0;
}

/* The value of parameter `key` in a Content-Disposition (quoted or a token) into out. */
static void param(const char *line, size_t n, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key), o = 0;
    out[0] = 0;
    for (size_t i = 0; i + kl < n; i++) {
        if ((i && line[i - 1] != ';' && line[i - 1] != ' ' && line[i - 1] != '\t') || strncasecmp(line + i, key, kl) ||
            line[i + kl] != '=')
            continue;
        const char *v = line + i + kl + 1, *end = line + n;
        int quoted = v < end && *v == '"';
        for (v += quoted; v < end && o + 1 < cap; v++) {
            if (quoted ? *v == '"' : (*v == ';' || *v == ' '))
                break;
            if (quoted && *v == '\\' && v + 1 < end)
                v++;
            out[o++] = *v;
        }
        out[o] = 0;
        break;
    }
    /* browsers and undici escape these three as %XX in a quoted filename */
    char *w = out;
    for (const char *r = out; *r; r++) {
        if (r[0] == '%' && (!strncmp(r + 1, "22", 2) || !strncasecmp(r + 1, "0D", 2) || !strncasecmp(r + 1, "0A", 2))) {
            *w++ = r[1] == '2' ? '"' : (r[2] == 'D' || r[2] == 'd') ? '\r' : '\n';
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

static void head(struct lel_mp *m, const char *h, size_t n)
{
    m->name[0] = m->filename[0] = 0;
    for (const char *line = h, *end = h + n; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t ll = (size_t)((nl ? nl : end) - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        if (ll > 20 && !strncasecmp(line, "content-disposition:", 20)) {
            param(line + 20, ll - 20, "name", m->name, sizeof(m->name));
            param(line + 20, ll - 20, "filename", m->filename, sizeof(m->filename));
        }
        line = nl ? nl + 1 : end;
    }
}

/* Works through the buffer; returns 0 when it needs more bytes, or an error. */
static int run(struct lel_mp *m, lel_mp_cb cb, void *ctx)
{
    for (;;) {
        char *b = m->buf;
        size_t used = 0;
        int r = 0;
        if (m->state == ST_DONE) {
            m->len = 0; /* the epilogue is ignored */
            return 0;
        }
        if (m->state == ST_PREAMBLE || m->state == ST_DATA) {
            char *d = memmem(b, m->len, m->delim, m->dlen);
            size_t keep = m->dlen - 1;
            size_t upto = d ? (size_t)(d - b) : m->len > keep ? m->len - keep : 0;
            if (m->state == ST_DATA && upto)
                r = cb(ctx, LEL_MP_DATA, b, upto);
            if (!r && d && m->state == ST_DATA)
                r = cb(ctx, LEL_MP_PART_END, NULL, 0);
            used = d ? upto + m->dlen : upto;
            if (d)
                m->state = ST_AFTER;
        } else if (m->state == ST_AFTER) { /* "--" ends the body; else padding, then CRLF, then a head */
            size_t i = 0;
            if (m->len >= 2 && b[0] == '-' && b[1] == '-') {
                m->state = ST_DONE;
                continue;
            }
            while (i < m->len && (b[i] == ' ' || b[i] == '\t'))
                i++;
            if (i + 2 > m->len)
                return m->len > 256 ? -EINVAL : 0;
            if (b[i] != '\r' || b[i + 1] != '\n')
                return -EINVAL;
            used = i + 2;
            m->state = ST_HEAD;
        } else { /* ST_HEAD: up to the empty line */
            if (m->len < 2)
                return 0;
            if (b[0] == '\r' && b[1] == '\n') { /* a part with no header lines */
                head(m, b, 0);
                used = 2;
            } else {
                char *e = memmem(b, m->len, "\r\n\r\n", 4);
                if (!e)
                    return m->len == sizeof(m->buf) ? -EINVAL : 0;
                head(m, b, (size_t)(e - b));
                used = (size_t)(e - b) + 4;
            }
            m->state = ST_DATA;
            r = cb(ctx, LEL_MP_PART, NULL, 0);
        }
        if (r)
            return r;
        if (!used)
            return 0;
        memmove(b, b + used, m->len - used);
        m->len -= used;
    }
}

int lel_mp_feed(struct lel_mp *m, const char *p, size_t n, lel_mp_cb cb, void *ctx)
{
    while (n) {
        size_t k = sizeof(m->buf) - m->len < n ? sizeof(m->buf) - m->len : n;
        memcpy(m->buf + m->len, p, k);
        m->len += k;
        p += k;
        n -= k;
        int r = run(m, cb, ctx);
        if (r)
            return r;
        if (m->len == sizeof(m->buf) && n)
            return -EINVAL; /* nothing could be taken from a full buffer */
    }
    return 0;
}

int lel_mp_finish(const struct lel_mp *m)
{
    return m->state == ST_DONE ? 0 : -EINVAL;
}
