/* Archives for the image tests, built in memory with libarchive. */
#include "tarbuild.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



static la_ssize_t buf_write(struct archive *a, void *ud, const void *data, size_t n)
{
    (void)a;
    struct buf *b = ud;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np)
        return -1;
    memcpy(np + b->n, data, n);
    b->p = np;
    b->n += n;
    return (la_ssize_t)n;
}


/* A tar of the entries; filter 0 none, 'g' gzip, 'z' zstd, 'x' xz. */
struct buf mk_tar(const struct ent *es, int filter)
{
    struct buf b = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter == 'g')
        archive_write_add_filter_gzip(a);
    else if (filter == 'z')
        archive_write_add_filter_zstd(a);
    else if (filter == 'x')
        archive_write_add_filter_xz(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open(a, &b, NULL, buf_write, NULL);
    for (; es->type; es++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, es->name);
        archive_entry_set_mtime(e, 1600000000, 0);
        size_t size = es->data && es->type == 'f' ? strlen(es->data) : es->size;
        switch (es->type) {
        case 'f': archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_size(e, (la_int64_t)size); break;
        case 'd': archive_entry_set_filetype(e, AE_IFDIR); break;
        case 'l': archive_entry_set_filetype(e, AE_IFLNK); archive_entry_set_symlink(e, es->data); break;
        case 'h': archive_entry_set_filetype(e, AE_IFREG); archive_entry_set_hardlink(e, es->data); break;
        case 'c': archive_entry_set_filetype(e, AE_IFCHR); archive_entry_set_rdev(e, 0x0103); break;
        case 'p': archive_entry_set_filetype(e, AE_IFIFO); break;
        }
        archive_entry_set_perm(e, (mode_t)(es->mode ? es->mode : es->type == 'd' ? 0755 : 0644));
        archive_write_header(a, e);
        if (es->type == 'f' && es->data) {
            archive_write_data(a, es->data, size);
        } else if (es->type == 'f') {
            static char zeros[1 << 16];
            for (size_t left = size; left;) {
                size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
                archive_write_data(a, zeros, k);
                left -= k;
            }
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return b;
}


struct buf mk_outer(const struct blob *bs, int n)
{
    struct buf b = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open(a, &b, NULL, buf_write, NULL);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, bs[i].name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)bs[i].len);
        archive_write_header(a, e);
        archive_write_data(a, bs[i].data, bs[i].len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return b;
}

void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

