/* A streaming multipart/form-data parser (RFC 7578): bytes go in as they arrive, in pieces of
 * any size; each part's head and its data come out through a callback, the data in pieces
 * (never the whole part at once), so an upload of any size holds one buffer. No allocation:
 * the parser lives in its owner's memory. */
#ifndef LEL_MULTIPART_H
#define LEL_MULTIPART_H

#include <stddef.h>

#define LEL_MP_BUF 65536 /* a part's head must fit; data is passed on in pieces of at most this */

enum lel_mp_event {
    LEL_MP_PART = 1, /* a part begins: `name` and `filename` (Content-Disposition) are set */
    LEL_MP_DATA,     /* data of the current part: data[0..n) */
    LEL_MP_PART_END, /* the current part is complete */
};

struct lel_mp {
    char delim[80]; /* "\r\n--" + boundary */
    size_t dlen;
    int state;
    char buf[LEL_MP_BUF];
    size_t len;
    char name[256];      /* the part's form field name */
    char filename[4200]; /* its filename parameter, with %22, %0D and %0A decoded; "" when absent */
};

/** The callback: returns 0 to go on, anything else to stop (lel_mp_feed returns it). */
typedef int (*lel_mp_cb)(void *ctx, enum lel_mp_event ev, const char *data, size_t n);

/** Sets up for a Content-Type "multipart/form-data; boundary=...". 0, or -EINVAL. */
int lel_mp_init(struct lel_mp *m, const char *content_type);
/** Takes n more bytes. Returns 0, -EINVAL for a malformed body (a part's head too large or
 * broken), or what a callback returned. */
int lel_mp_feed(struct lel_mp *m, const char *p, size_t n, lel_mp_cb cb, void *ctx);
/** The body ended: 0 when the closing boundary came, -EINVAL otherwise. */
int lel_mp_finish(const struct lel_mp *m);

#endif
