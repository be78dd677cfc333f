/* Gathering a rofs tree in memory: from an unpacked image on disk (lel_rofs_add_dir) and from
 * an archive beneath it (lel_rofs_add_archive_under). See lel_rofs_build.h. */
#include "lel_rofs_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARCHIVE_FILE_MAX (256u << 20) /* one file of an in-memory archive */

static struct rnode *node_new(struct lel_rofs_tree *t, uint32_t mode)
{
    if (t->nodes >= ROFS_MAX_NODES)
        return NULL;
    struct rnode *n = calloc(1, sizeof(*n));
    if (n) {
        n->mode = mode;
        n->nlink = 1;
        t->nodes++;
    }
    return n;
}

struct lel_rofs_tree *lel_rofs_tree_new(void)
{
    struct lel_rofs_tree *t = calloc(1, sizeof(*t));
    if (t && !(t->root = node_new(t, S_IFDIR | 0755))) {
        free(t);
        return NULL;
    }
    if (t)
        t->root->parent = t->root;
    return t;
}

void lel__rofs_node_put(struct lel_rofs_tree *t, struct rnode *n)
{
    if (!n || --n->nlink > 0)
        return;
    for (size_t i = 0; i < n->nkids; i++) {
        lel__rofs_node_put(t, n->kids[i].node);
        free(n->kids[i].name);
    }
    free(n->kids);
    free(n->target);
    free(n->src);
    free(n->mem);
    free(n);
    t->nodes--;
}

struct link_key {
    uint64_t dev, ino;
    struct rnode *node;
};

static int link_cmp(const void *a, const void *b)
{
    const struct link_key *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

void lel_rofs_tree_free(struct lel_rofs_tree *t)
{
    if (!t)
        return;
    tdestroy(t->links, free);
    lel__rofs_node_put(t, t->root);
    free(t);
}

int lel__rofs_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : alen < blen ? -1 : alen > blen;
}

static struct rent *find(struct rnode *dir, const char *name, size_t len)
{
    for (size_t i = 0; i < dir->nkids; i++)
        if (dir->kids[i].len == len && !memcmp(dir->kids[i].name, name, len))
            return &dir->kids[i];
    return NULL;
}

/* Gives `dir` the entry `name` -> `node` (taking the caller's use of node), replacing one of
 * that name. */
static int put_entry(struct lel_rofs_tree *t, struct rnode *dir, const char *name, size_t len, struct rnode *node)
{
    struct rent *old = find(dir, name, len);
    if (old) {
        lel__rofs_node_put(t, old->node);
        old->node = node;
    } else {
        if (dir->nkids == dir->cap) {
            size_t cap = dir->cap ? dir->cap * 2 : 8;
            struct rent *k = realloc(dir->kids, cap * sizeof(*k));
            if (!k)
                return -ENOMEM;
            dir->kids = k;
            dir->cap = cap;
        }
        char *nm = malloc(len + 1);
        if (!nm)
            return -ENOMEM;
        memcpy(nm, name, len);
        nm[len] = 0;
        dir->kids[dir->nkids++] = (struct rent){nm, (uint16_t)len, node};
    }
    if (S_ISDIR(node->mode))
        node->parent = dir;
    return 0;
}

static void attrs_from_stat(struct rnode *n, const struct stat *st)
{
    n->mode = st->st_mode;
    n->uid = st->st_uid;
    n->gid = st->st_gid;
    n->mtime = n->ctime = st->st_mtim.tv_sec;
    n->mtime_ns = n->ctime_ns = (uint32_t)st->st_mtim.tv_nsec;
}

static int skipped(const char *name, const char *const *skip)
{
    for (size_t i = 0; skip && skip[i]; i++)
        if (!strcmp(name, skip[i]))
            return 1;
    return 0;
}

struct walk {
    struct lel_rofs_tree *t;
    const char *const *skip;
    char path[4096];
    char *err;
    size_t errlen;
};

static int walk_dir(struct walk *w, int dfd, struct rnode *dir, size_t plen, int depth);

/* A regular file: a new node, or another name of one seen (same device and inode). */
static struct rnode *file_node(struct walk *w, const struct stat *st)
{
    struct link_key *k = NULL, **found;
    if (st->st_nlink > 1) {
        struct link_key probe = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, NULL};
        found = tfind(&probe, &w->t->links, link_cmp);
        if (found) {
            (*found)->node->nlink++;
            return (*found)->node;
        }
    }
    struct rnode *n = node_new(w->t, st->st_mode);
    if (!n || !(n->src = strdup(w->path))) {
        lel__rofs_node_put(w->t, n);
        return NULL;
    }
    n->size = (uint64_t)st->st_size;
    if (st->st_nlink > 1 && (k = malloc(sizeof(*k)))) {
        *k = (struct link_key){(uint64_t)st->st_dev, (uint64_t)st->st_ino, n};
        if (!tsearch(k, &w->t->links, link_cmp))
            free(k);
    }
    return n;
}

/* One entry of a directory on disk into `dir`. */
static int walk_entry(struct walk *w, int dfd, struct rnode *dir, const char *name, size_t plen, int depth)
{
    struct stat st;
    size_t nlen = strlen(name);
    if (nlen > LEL_ROFS_NAME_MAX || plen + 1 + nlen >= sizeof(w->path)) {
        snprintf(w->err, w->errlen, "name too long under %.200s", w->path);
        return -ENAMETOOLONG;
    }
    w->path[plen] = '/';
    memcpy(w->path + plen + 1, name, nlen + 1);
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        snprintf(w->err, w->errlen, "cannot stat %.300s: %s", w->path, strerror(errno));
        return -errno;
    }
    struct rnode *n = NULL;
    if (S_ISDIR(st.st_mode)) {
        struct rent *old = find(dir, name, nlen);
        if (old && S_ISDIR(old->node->mode)) { /* directories merge */
            attrs_from_stat(old->node, &st);
            n = old->node;
        } else if (!(n = node_new(w->t, st.st_mode)) || put_entry(w->t, dir, name, nlen, n) < 0) {
            return -ENOMEM;
        }
        attrs_from_stat(n, &st);
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            snprintf(w->err, w->errlen, "cannot open %.300s: %s", w->path, strerror(errno));
            return -errno;
        }
        int r = walk_dir(w, fd, n, plen + 1 + nlen, depth + 1);
        close(fd);
        return r;
    }
    if (S_ISREG(st.st_mode)) {
        n = file_node(w, &st);
    } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t tl = readlinkat(dfd, name, target, sizeof(target) - 1);
        if (tl <= 0) {
            snprintf(w->err, w->errlen, "cannot read the link %.300s", w->path);
            return -EIO;
        }
        target[tl] = 0;
        if ((n = node_new(w->t, st.st_mode)) && !(n->target = strdup(target))) {
            lel__rofs_node_put(w->t, n);
            n = NULL;
        }
        if (n)
            n->size = (uint64_t)tl;
    } else if (S_ISFIFO(st.st_mode)) {
        n = node_new(w->t, st.st_mode);
    } else {
        return 0; /* device nodes and sockets: the guest makes its own */
    }
    if (!n)
        return -ENOMEM;
    if (n->nlink == 1) /* a hard link's attributes are its first name's */
        attrs_from_stat(n, &st);
    if (put_entry(w->t, dir, name, nlen, n) < 0) {
        lel__rofs_node_put(w->t, n);
        return -ENOMEM;
    }
    return 0;
}

static int walk_dir(struct walk *w, int dfd, struct rnode *dir, size_t plen, int depth)
{
    if (depth > ROFS_MAX_DEPTH) {
        snprintf(w->err, w->errlen, "directories nest too deep at %.300s", w->path);
        return -ELOOP;
    }
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        snprintf(w->err, w->errlen, "cannot list %.300s: %s", w->path, strerror(errno));
        return -errno;
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (errno = 0, de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || (depth == 0 && skipped(de->d_name, w->skip)))
            continue;
        r = walk_entry(w, dfd, dir, de->d_name, plen, depth);
        w->path[plen] = 0;
    }
    if (r == 0 && errno) {
        r = -errno;
        snprintf(w->err, w->errlen, "cannot list %.300s: %s", w->path, strerror(errno));
    }
    closedir(d);
    if (r == -ENOMEM)
        snprintf(w->err, w->errlen, "out of memory, or more than %d entries", ROFS_MAX_NODES);
    return r;
}

int lel_rofs_add_dir(struct lel_rofs_tree *t, const char *dir, const char *const *skip, char *err, size_t errlen)
{
    struct walk w = {t, skip, {0}, err, errlen};
    struct stat st;
    size_t plen = strlen(dir);
    while (plen > 1 && dir[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(w.path) - 1) {
        snprintf(err, errlen, "path too long");
        return -ENAMETOOLONG;
    }
    memcpy(w.path, dir, plen);
    w.path[plen] = 0;
    int fd = open(w.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %.300s: %s", dir, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    attrs_from_stat(t->root, &st);
    int r = walk_dir(&w, fd, t->root, plen, 0);
    close(fd);
    tdestroy(t->links, free); /* hard links are found within one tree on disk */
    t->links = NULL;
    return r;
}

/* ---- an archive beneath the tree ---- */

/* The node `path` leads to from `cur`, symlinks followed as the guest follows them (the last
 * one too when follow_last); NULL when nothing is there. */
static struct rnode *resolve(struct lel_rofs_tree *t, struct rnode *cur, const char *path, int follow_last, int *depth)
{
    if (path[0] == '/')
        cur = t->root;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = p, *rest;
        while (*e && *e != '/')
            e++;
        for (rest = e; *rest == '/'; rest++)
            ;
        size_t n = (size_t)(e - p);
        if (!S_ISDIR(cur->mode))
            return NULL;
        struct rnode *next;
        if (n == 1 && p[0] == '.') {
            next = cur;
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            next = cur->parent;
        } else {
            struct rent *r = find(cur, p, n);
            if (!r)
                return NULL;
            next = r->node;
        }
        if (S_ISLNK(next->mode) && (*rest || follow_last)) {
            if (++*depth > 40)
                return NULL;
            if (!(next = resolve(t, cur, next->target, 1, depth)))
                return NULL;
        }
        cur = next;
        p = e;
    }
    return cur;
}

/* A node for the archive's entry `e` (its data read now), or NULL (left out, or no memory:
 * *r says which). */
static struct rnode *archive_node(struct lel_rofs_tree *t, struct archive *a, struct archive_entry *e, int *r)
{
    uint32_t mode = (uint32_t)archive_entry_mode(e);
    int64_t size = archive_entry_size(e);
    struct rnode *n = NULL;
    *r = 0;
    if (!S_ISDIR(mode) && !S_ISREG(mode) && !S_ISLNK(mode) && !S_ISFIFO(mode))
        return NULL;
    if (S_ISREG(mode) && (size < 0 || size > ARCHIVE_FILE_MAX)) {
        *r = -EFBIG;
        return NULL;
    }
    if (!(n = node_new(t, mode)))
        goto nomem;
    n->uid = (uint32_t)archive_entry_uid(e);
    n->gid = (uint32_t)archive_entry_gid(e);
    n->mtime = n->ctime = archive_entry_mtime(e);
    n->mtime_ns = n->ctime_ns = (uint32_t)archive_entry_mtime_nsec(e);
    if (S_ISLNK(mode)) {
        const char *tg = archive_entry_symlink(e);
        if (!tg || !*tg || !(n->target = strdup(tg)))
            goto nomem;
        n->size = strlen(tg);
    } else if (S_ISREG(mode) && size > 0) {
        if (!(n->mem = malloc((size_t)size)))
            goto nomem;
        if (archive_read_data(a, n->mem, (size_t)size) != size) {
            *r = -EBADMSG;
            lel__rofs_node_put(t, n);
            return NULL;
        }
        n->size = (uint64_t)size;
    }
    return n;
nomem:
    lel__rofs_node_put(t, n);
    *r = -ENOMEM;
    return NULL;
}

/* One archive entry, beneath the tree: 0 (in, or left out) or -errno. */
static int archive_entry_under(struct lel_rofs_tree *t, struct archive *a, struct archive_entry *e, char *err, size_t errlen)
{
    char path[4096];
    const char *p = archive_entry_pathname(e);
    while (p && (*p == '/' || (p[0] == '.' && p[1] == '/')))
        p += *p == '/' ? 1 : 2;
    if (!p || !*p || !strcmp(p, ".") || strlen(p) >= sizeof(path))
        return 0;
    snprintf(path, sizeof(path), "%s", p);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = 0;
    char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    int depth = 0;
    if (slash)
        *slash = 0;
    struct rnode *dir = slash ? resolve(t, t->root, path, 1, &depth) : t->root;
    size_t nlen = strlen(name);
    if (!dir || !S_ISDIR(dir->mode) || nlen > LEL_ROFS_NAME_MAX || (nlen <= 2 && name[0] == '.' && name[nlen - 1] == '.') ||
        find(dir, name, nlen))
        return 0; /* the tree has something there, or cannot hold it */
    const char *hl = archive_entry_hardlink(e);
    int r;
    if (hl) {
        depth = 0;
        struct rnode *target = resolve(t, t->root, hl, 0, &depth);
        if (!target || !S_ISREG(target->mode))
            return 0;
        target->nlink++;
        return put_entry(t, dir, name, nlen, target);
    }
    struct rnode *n = archive_node(t, a, e, &r);
    if (!n) {
        if (r < 0)
            snprintf(err, errlen, "archive entry %.300s: %s", archive_entry_pathname(e), strerror(-r));
        return r;
    }
    if ((r = put_entry(t, dir, name, nlen, n)) < 0)
        lel__rofs_node_put(t, n);
    return r;
}

int lel_rofs_add_archive_under(struct lel_rofs_tree *t, const void *buf, size_t len, char *err, size_t errlen)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int r = 0, ar;
    if (!a || archive_read_support_format_all(a) != ARCHIVE_OK || archive_read_support_filter_all(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot read the archive: %s", a ? archive_error_string(a) : "out of memory");
        if (a)
            archive_read_free(a);
        return -EBADMSG;
    }
    while (r == 0 && (ar = archive_read_next_header(a, &e)) != ARCHIVE_EOF) {
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            snprintf(err, errlen, "cannot read the archive: %s", archive_error_string(a));
            r = -EBADMSG;
            break;
        }
        r = archive_entry_under(t, a, e, err, errlen);
    }
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory, or more than %d entries", ROFS_MAX_NODES);
    archive_read_free(a);
    return r;
}
