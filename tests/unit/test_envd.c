/* src/envd's pure parts: the streaming multipart parser (every split of a body gives the same
 * parts), envd's path resolution, and base64. */
#include "../../src/envd/lel_envd_int.h"
#include "../../src/envd/lel_multipart.h"
#include "../lel_test.h"

#include <errno.h>
#include <stdlib.h>

struct got {
    const struct lel_mp *mp;
    char names[8][256], files[8][4200];
    char data[8][256];
    size_t len[8];
    int parts, ends;
};

static int cb(void *ctx, enum lel_mp_event ev, const char *d, size_t n)
{
    struct got *g = ctx;
    if (ev == LEL_MP_PART) {
        if (g->parts == 8)
            return -ENOSPC;
        memcpy(g->names[g->parts], g->mp->name, sizeof(g->names[0]));
        memcpy(g->files[g->parts], g->mp->filename, sizeof(g->files[0]));
        g->parts++;
    } else if (ev == LEL_MP_DATA) {
        int i = g->parts - 1;
        if (g->len[i] + n > sizeof(g->data[i]))
            return -ENOSPC;
        memcpy(g->data[i] + g->len[i], d, n);
        g->len[i] += n;
    } else {
        g->ends++;
    }
    return 0;
}

struct run {
    struct got g;
    struct lel_mp mp;
};

static int parse(struct run *r, const char *ct, const char *body, size_t len, size_t split)
{
    memset(&r->g, 0, sizeof(r->g));
    r->g.mp = &r->mp;
    if (lel_mp_init(&r->mp, ct) < 0)
        return -100;
    for (size_t off = 0; off < len; off += split) {
        size_t n = len - off < split ? len - off : split;
        int e = lel_mp_feed(&r->mp, body + off, n, cb, &r->g);
        if (e)
            return e;
    }
    return lel_mp_finish(&r->mp);
}

static void multipart(void)
{
    static struct run r;
    const char *ct = "multipart/form-data; boundary=----formdata-undici-0123";
    const char body[] = "preamble\r\n"
                        "------formdata-undici-0123\r\n"
                        "Content-Disposition: form-data; name=\"file\"; filename=\"/home/user/a%22b.txt\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n"
                        "line1\r\n------formdata-undici-012 not the boundary\r\n"
                        "\r\n------formdata-undici-0123\r\n"
                        "Content-Disposition: form-data; name=\"other\"\r\n\r\n"
                        "\r\n------formdata-undici-0123  \r\n"
                        "Content-Disposition: form-data; name=\"file\"; filename=\"/x\"\r\n\r\n"
                        "\r\n------formdata-undici-0123--\r\nepilogue";
    size_t len = sizeof(body) - 1;
    const char *want0 = "line1\r\n------formdata-undici-012 not the boundary\r\n";
    for (size_t split = 1; split <= len; split++) {
        int e = parse(&r, ct, body, len, split);
        int ok = e == 0 && r.g.parts == 3 && r.g.ends == 3 && !strcmp(r.g.names[0], "file") &&
                 !strcmp(r.g.names[1], "other") && r.g.len[0] == strlen(want0) && !memcmp(r.g.data[0], want0, r.g.len[0]) &&
                 r.g.len[1] == 0 && r.g.len[2] == 0;
        if (!ok) {
            fprintf(stderr, "split %zu: e=%d parts=%d ends=%d len0=%zu\n", split, e, r.g.parts, r.g.ends, r.g.len[0]);
            CHECK(ok);
            break;
        }
    }
    CHECK(parse(&r, ct, body, len, 7) == 0);
    CHECK(!strcmp(r.g.files[0], "/home/user/a\"b.txt") && !strcmp(r.g.files[1], "") && !strcmp(r.g.files[2], "/x"));
    CHECK(parse(&r, ct, body, 200, 200) == -EINVAL); /* cut before the end: not finished */
    /* a quoted boundary; a body without the closing boundary; bad content types */
    const char q[] = "--b c\r\n\r\nxyz\r\n--b c--";
    CHECK(parse(&r, "multipart/form-data; boundary=\"b c\"", q, sizeof(q) - 1, 3) == 0 && r.g.len[0] == 3);
    CHECK(parse(&r, ct, "------formdata-undici-0123\r\n\r\nabc", 33, 5) == -EINVAL);
    CHECK(parse(&r, "application/json", "", 0, 1) == -100);
    CHECK(parse(&r, "multipart/form-data", "", 0, 1) == -100);
    /* a part's head larger than the buffer is refused, not read without end */
    size_t big = LEL_MP_BUF + 100;
    char *hostile = malloc(big + 40);
    int n = sprintf(hostile, "--b\r\nX: ");
    memset(hostile + n, 'a', big);
    CHECK(parse(&r, "multipart/form-data; boundary=b", hostile, (size_t)n + big, 4096) == -EINVAL);
    free(hostile);
}

static void paths(void)
{
    struct {
        const char *in, *want;
    } t[] = {{"", "/home/user"}, {"~", "/home/user"}, {"~/a", "/home/user/a"}, {"a/b", "/home/user/a/b"},
             {"/x//y/./z/", "/x/y/z"}, {"/a/../../b", "/b"}, {"/..", "/"}, {"../..", "/"}, {"/", "/"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *p = lel__envd_path(t[i].in, strlen(t[i].in), "/home/user");
        CHECK(p && !strcmp(p, t[i].want));
        if (!p || strcmp(p, t[i].want))
            fprintf(stderr, "path '%s' -> '%s', want '%s'\n", t[i].in, p ? p : "(null)", t[i].want);
        free(p);
    }
    CHECK(lel__envd_path("a\0b", 3, "/home/user") == NULL); /* a NUL inside */
    char *longp = malloc(5000);
    memset(longp, 'a', 4999);
    longp[0] = '/';
    longp[4999] = 0;
    CHECK(lel__envd_path(longp, 4999, "/") == NULL);
    free(longp);
}

static void base64(void)
{
    char *a = lel__envd_b64("hi\n", 3), *b = lel__envd_b64("ab", 2), *c = lel__envd_b64("", 0);
    CHECK(a && !strcmp(a, "aGkK"));
    CHECK(b && !strcmp(b, "YWI="));
    CHECK(c && !strcmp(c, ""));
    free(a);
    free(b);
    free(c);
    CHECK(lel__envd_code_status("not_found") == 404 && lel__envd_code_status("unauthenticated") == 401 &&
          lel__envd_code_status("bogus") == 500);
}

int main(void)
{
    multipart();
    paths();
    base64();
    return lel_test_finish();
}
