/* Archives for the image tests, built in memory with libarchive (tests only). */
#ifndef LEL_E2E_TARBUILD_H
#define LEL_E2E_TARBUILD_H

#include <stddef.h>

struct buf {
    char *p; /* malloc'd */
    size_t n;
};

/* An entry: type 'f' file, 'd' dir, 'l' symlink (data: target), 'h' hard link (data: target),
 * 'c' char device, 'p' fifo; a list ends with type 0. A file with data NULL has `size` zero bytes. */
struct ent {
    char type;
    const char *name, *data;
    int mode;
    size_t size;
};

/* An outer archive's member. */
struct blob {
    const char *name;
    const char *data;
    size_t len;
};

/** A pax tar of the entries (mtime 1600000000); filter 0 none, 'g' gzip, 'z' zstd, 'x' xz. */
struct buf mk_tar(const struct ent *es, int filter);
/** An uncompressed tar of n blobs (regular files). */
struct buf mk_outer(const struct blob *bs, int n);
/** sha256 of p as 64 hex chars + NUL. */
void sha256_hex(const void *p, size_t n, char out[65]);

#endif
