/* Writing a rofs tree as an image file, and reading an image's header back. See
 * lel_rofs_build.h; the format is src/guest/lel_rofs_abi.h.
 *
 * The tables are laid out in memory first (inodes numbered breadth-first from the root, each
 * directory's entries sorted), then the whole file is written front to back through one buffer
 * that also feeds SHA-256 (the superblock goes first with its hash zeroed, as the hash is
 * defined), and the hash is patched in at the end. */
#include "lel_rofs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WBUF (1u << 20)
#define PAGE LEL_ROFS_PAGE

static uint64_t page_up(uint64_t n)
{
    return (n + PAGE - 1) & ~(PAGE - 1);
}

/* ---- the plan: every table in memory ---- */

struct plan {
    struct rnode **order; /* by inode index */
    uint64_t n, cap;
    struct lel_rofs_inode *inodes;
    struct lel_rofs_dirent *dirents;
    uint64_t ndirents;
    char *names;
    uint64_t names_len, names_cap;
    struct lel_rofs_super super;
    uint32_t gen;
};

static int kid_cmp(const void *a, const void *b)
{
    const struct rent *x = a, *y = b;
    return lel__rofs_name_cmp(x->name, x->len, y->name, y->len);
}

static int push(struct plan *p, struct rnode *n)
{
    if (p->n == p->cap) {
        uint64_t cap = p->cap ? p->cap * 2 : 1024;
        struct rnode **o = realloc(p->order, cap * sizeof(*o));
        if (!o)
            return -ENOMEM;
        p->order = o;
        p->cap = cap;
    }
    n->index = (uint32_t)p->n;
    n->indexed = p->gen;
    p->order[p->n++] = n;
    return 0;
}

static int64_t name_add(struct plan *p, const char *s, size_t len, int nul)
{
    if (p->names_len + len + 1 > p->names_cap) {
        uint64_t cap = (p->names_len + len + 1) * 2;
        char *b = cap > (1ULL << 32) ? NULL : realloc(p->names, cap);
        if (!b)
            return -ENOMEM;
        p->names = b;
        p->names_cap = cap;
    }
    int64_t at = (int64_t)p->names_len;
    memcpy(p->names + p->names_len, s, len);
    p->names_len += len;
    if (nul)
        p->names[p->names_len++] = 0;
    return at;
}

/* Numbers the inodes breadth-first (the order array is the queue) and sorts each directory. */
static int number(struct lel_rofs_tree *t, struct plan *p)
{
    p->gen = ++t->writes; /* a node numbered by an earlier write is numbered afresh */
    if (push(p, t->root) < 0)
        return -ENOMEM;
    for (uint64_t i = 0; i < p->n; i++) {
        struct rnode *d = p->order[i];
        if (!S_ISDIR(d->mode))
            continue;
        if (d->nkids)
            qsort(d->kids, d->nkids, sizeof(*d->kids), kid_cmp);
        d->first_dirent = p->ndirents;
        p->ndirents += d->nkids;
        for (size_t k = 0; k < d->nkids; k++)
            if (d->kids[k].node->indexed != p->gen && push(p, d->kids[k].node) < 0)
                return -ENOMEM;
    }
    return p->n > (1ULL << 32) ? -EFBIG : 0;
}

static void inode_of(const struct rnode *n, struct lel_rofs_inode *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = n->mode;
    o->uid = n->uid;
    o->gid = n->gid;
    o->rdev = n->rdev;
    o->nlink = n->nlink;
    o->size = S_ISDIR(n->mode) ? n->nkids : n->size;
    o->mtime = n->mtime;
    o->mtime_nsec = n->mtime_ns;
    o->ctime = n->ctime;
    o->ctime_nsec = n->ctime_ns;
    if (S_ISDIR(n->mode)) {
        o->data = n->first_dirent;
        o->nlink = 2;
        for (size_t k = 0; k < n->nkids; k++)
            o->nlink += S_ISDIR(n->kids[k].node->mode);
    }
}

/* The inode, entry and name tables, and every file's place in the data area. */
static int lay_out(struct lel_rofs_tree *t, struct plan *p)
{
    int r = number(t, p);
    if (r < 0)
        return r;
    p->inodes = calloc(p->n, sizeof(*p->inodes));
    p->dirents = calloc(p->ndirents ? p->ndirents : 1, sizeof(*p->dirents));
    if (!p->inodes || !p->dirents)
        return -ENOMEM;
    for (uint64_t i = 0; i < p->n; i++) {
        struct rnode *n = p->order[i];
        inode_of(n, &p->inodes[i]);
        for (size_t k = 0; S_ISDIR(n->mode) && k < n->nkids; k++) {
            int64_t at = name_add(p, n->kids[k].name, n->kids[k].len, 0);
            if (at < 0)
                return -ENOMEM;
            struct lel_rofs_dirent *d = &p->dirents[n->first_dirent + k];
            d->name = (uint32_t)at;
            d->ino = n->kids[k].node->index;
            d->name_len = n->kids[k].len;
            d->type = (uint8_t)(n->kids[k].node->mode >> 12);
        }
        if (S_ISLNK(n->mode)) {
            int64_t at = name_add(p, n->target, n->size, 1);
            if (at < 0)
                return -ENOMEM;
            p->inodes[i].data = (uint64_t)at;
        }
    }
    struct lel_rofs_super *s = &p->super;
    memcpy(s->magic, LEL_ROFS_MAGIC, sizeof(s->magic));
    s->version = LEL_ROFS_VERSION;
    s->page_size = PAGE;
    s->inode_off = PAGE;
    s->inode_count = p->n;
    s->dirent_off = s->inode_off + p->n * sizeof(struct lel_rofs_inode);
    s->dirent_count = p->ndirents;
    s->names_off = s->dirent_off + p->ndirents * sizeof(struct lel_rofs_dirent);
    s->names_bytes = p->names_len;
    s->data_off = page_up(s->names_off + s->names_bytes);
    uint64_t at = s->data_off;
    for (uint64_t i = 0; i < p->n; i++) {
        if (S_ISREG(p->order[i]->mode) && p->order[i]->size) {
            p->inodes[i].data = at;
            at += page_up(p->order[i]->size);
            if (at > LEL_ROFS_MAX_BYTES)
                return -EFBIG;
        }
    }
    s->data_bytes = at - s->data_off;
    s->file_bytes = at;
    return 0;
}

static void plan_free(struct plan *p)
{
    free(p->order);
    free(p->inodes);
    free(p->dirents);
    free(p->names);
}

/* ---- the writer: buffered, hashed ---- */

struct writer {
    int fd;
    uint8_t *buf;
    size_t fill;
    uint64_t off;
    EVP_MD_CTX *md;
};

static int w_flush(struct writer *w)
{
    for (size_t done = 0; done < w->fill;) {
        ssize_t n = write(w->fd, w->buf + done, w->fill - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    if (w->fill && EVP_DigestUpdate(w->md, w->buf, w->fill) != 1)
        return -EIO;
    w->fill = 0;
    return 0;
}

static int w_put(struct writer *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        size_t c = WBUF - w->fill < n ? WBUF - w->fill : n;
        if (p)
            memcpy(w->buf + w->fill, p, c);
        else
            memset(w->buf + w->fill, 0, c);
        w->fill += c;
        w->off += c;
        n -= c;
        if (p)
            p += c;
        if (w->fill == WBUF) {
            int r = w_flush(w);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* A file's data from the host (it must still be the file that was listed), zero-padded. */
static int w_file(struct writer *w, const struct rnode *n, char *err, size_t errlen)
{
    if (n->mem) {
        int r = w_put(w, n->mem, n->size);
        return r < 0 ? r : w_put(w, NULL, page_up(n->size) - n->size);
    }
    struct stat st;
    int fd = open(n->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != n->size) {
        snprintf(err, errlen, "%.300s: %s", n->src, fd < 0 ? strerror(errno) : "changed while the image was built");
        if (fd >= 0)
            close(fd);
        return fd < 0 ? -errno : -EIO;
    }
    uint64_t left = n->size;
    int r = 0;
    while (left && r == 0) {
        if (w->fill == WBUF && (r = w_flush(w)) < 0)
            break;
        size_t want = WBUF - w->fill < left ? WBUF - w->fill : (size_t)left;
        ssize_t got = read(fd, w->buf + w->fill, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r = got < 0 ? -errno : -EIO;
            snprintf(err, errlen, "reading %.300s: %s", n->src, got < 0 ? strerror(errno) : "it got shorter");
            break;
        }
        w->fill += (size_t)got;
        w->off += (uint64_t)got;
        left -= (uint64_t)got;
    }
    close(fd);
    return r < 0 ? r : w_put(w, NULL, page_up(n->size) - n->size);
}

static int write_all(struct plan *p, struct writer *w, char *err, size_t errlen)
{
    const struct lel_rofs_super *s = &p->super;
    int r;
    if ((r = w_put(w, s, sizeof(*s))) < 0 || (r = w_put(w, NULL, PAGE - sizeof(*s))) < 0 ||
        (r = w_put(w, p->inodes, p->n * sizeof(*p->inodes))) < 0 ||
        (r = w_put(w, p->dirents, p->ndirents * sizeof(*p->dirents))) < 0 ||
        (r = w_put(w, p->names, p->names_len)) < 0 || (r = w_put(w, NULL, s->data_off - w->off)) < 0)
        goto fail;
    for (uint64_t i = 0; i < p->n; i++) {
        const struct rnode *n = p->order[i];
        if (!S_ISREG(n->mode) || !n->size)
            continue;
        if (w->off != p->inodes[i].data) {
            r = -EIO;
            goto fail;
        }
        if ((r = w_file(w, n, err, errlen)) < 0)
            return r;
    }
    if ((r = w_flush(w)) < 0 || w->off != s->file_bytes)
        goto fail;
    return 0;
fail:
    r = r < 0 ? r : -EIO;
    snprintf(err, errlen, "writing the image: %s", strerror(-r));
    return r;
}

static void fsync_dir_of(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int lel_rofs_write(struct lel_rofs_tree *t, const char *path, struct lel_rofs_stats *st, uint8_t hash[32], char *err,
                   size_t errlen)
{
    struct plan p;
    struct writer w = {-1, NULL, 0, 0, NULL};
    char tmp[4200];
    uint8_t digest[32];
    unsigned dlen = 0;
    memset(&p, 0, sizeof(p));
    int r = lay_out(t, &p);
    if (r < 0) {
        if (r == -EFBIG)
            snprintf(err, errlen, "the image would be larger than %llu GiB", LEL_ROFS_MAX_BYTES >> 30);
        else
            snprintf(err, errlen, "out of memory laying out the image");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)syscall(SYS_gettid));
    w.buf = malloc(WBUF);
    w.md = EVP_MD_CTX_new();
    if (!w.buf || !w.md || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot create %.300s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((r = write_all(&p, &w, err, errlen)) < 0)
        goto out;
    if (EVP_DigestFinal_ex(w.md, digest, &dlen) != 1 || dlen != 32 ||
        pwrite(w.fd, digest, 32, offsetof(struct lel_rofs_super, content_hash)) != 32 || fsync(w.fd) < 0) {
        r = errno ? -errno : -EIO;
        snprintf(err, errlen, "writing %.300s: %s", tmp, strerror(-r));
        goto out;
    }
    r = close(w.fd) < 0 ? -errno : 0;
    w.fd = -1;
    if (r < 0 || rename(tmp, path) < 0) {
        r = r < 0 ? r : -errno;
        snprintf(err, errlen, "cannot write %.300s: %s", path, strerror(-r));
        goto out;
    }
    fsync_dir_of(path);
    if (hash)
        memcpy(hash, digest, 32);
    if (st)
        *st = (struct lel_rofs_stats){p.super.file_bytes, p.n, p.ndirents, p.super.data_bytes};
out:
    if (w.fd >= 0)
        close(w.fd);
    if (r < 0)
        unlink(tmp);
    EVP_MD_CTX_free(w.md);
    free(w.buf);
    plan_free(&p);
    return r;
}

/* ---- reading an image back ---- */

int lel_rofs_header(const char *path, struct lel_rofs_super *s, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %.300s: %s", path, strerror(e));
        return -e;
    }
    int ok = fstat(fd, &st) == 0 && pread(fd, s, sizeof(*s), 0) == (ssize_t)sizeof(*s) &&
             lel_rofs_super_ok(s, (uint64_t)st.st_size);
    close(fd);
    if (!ok) {
        snprintf(err, errlen, "%.300s is not a well-formed root filesystem image", path);
        return -EBADMSG;
    }
    return 0;
}

int lel_rofs_verify(const char *path, char *err, size_t errlen)
{
    struct lel_rofs_super s;
    int r = lel_rofs_header(path, &s, err, errlen);
    if (r < 0)
        return r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t *m = fd < 0 ? MAP_FAILED : mmap(NULL, s.file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %.300s: %s", path, strerror(errno));
        return -errno;
    }
    struct lel_rofs_super zeroed = s;
    memset(zeroed.content_hash, 0, sizeof(zeroed.content_hash));
    uint8_t digest[32];
    unsigned dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(md, &zeroed, sizeof(zeroed)) == 1 &&
             EVP_DigestUpdate(md, m + sizeof(zeroed), s.file_bytes - sizeof(zeroed)) == 1 &&
             EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
    EVP_MD_CTX_free(md);
    munmap(m, s.file_bytes);
    if (!ok || memcmp(digest, s.content_hash, 32)) {
        snprintf(err, errlen, "%.300s does not match its content hash: changed or damaged", path);
        return -EBADMSG;
    }
    return 0;
}

void lel_rofs_hash_hex(const uint8_t hash[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", hash[i]);
}
