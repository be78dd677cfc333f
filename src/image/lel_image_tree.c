/* Applying layers onto an image's tree on disk. The archive is untrusted: every entry's path is
 * cleaned first (absolute paths and `..` are refused, not rewritten), and then walked from the
 * tree's root one component at a time with O_NOFOLLOW, so no entry can reach outside the tree:
 * a symlink met on the way is followed only when its target stays inside (relative and never
 * above the root), else the entry is refused. A directory is created without the entry's mode
 * (so a read-only directory does not stop the entries under it); modes and times of
 * directories are set at the end. Device nodes and sockets are skipped and logged. Bytes
 * written, all layers together, are bounded (compression bombs), and so is the entry count.
 *
 * OCI whiteouts: `.wh.<name>` deletes <name> from the layers below; `.wh..wh..opq` empties its
 * directory of what the layers below put there (what this layer put there stays, whichever
 * order the entries come in: the layer's paths are remembered in a set). */
#include "lel_image_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_ 4096

/* A set of paths (open addressing, FNV-1a), for what the current layer wrote. */
struct pathset {
    char **slot;
    size_t cap, n;
};

/* A directory whose mode, owner and times are set at the end. */
struct dirfix {
    char *path;
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec mtime;
};

struct lel_tree {
    int root;
    uint64_t max_bytes, bytes, entries;
    const atomic_int *stop;
    json_t *log;
    struct pathset layer;
    int whiteouts;
    struct dirfix *dirs;
    size_t ndirs, capdirs;
    int owners_kept; /* fchown works (lelantosd is root); else owners are not kept (logged once) */
    int warned_owner, skipped;
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int set_has(const struct pathset *s, const char *p)
{
    if (!s->cap)
        return 0;
    for (size_t i = fnv(p) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i])
            return 0;
        if (!strcmp(s->slot[i], p))
            return 1;
    }
}

static int set_add1(struct pathset *s, const char *p)
{
    if (set_has(s, p))
        return 0;
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        char **ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                size_t j = fnv(s->slot[i]) & (ncap - 1);
                while (ns[j])
                    j = (j + 1) & (ncap - 1);
                ns[j] = s->slot[i];
            }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t i = fnv(p) & (s->cap - 1);
    while (s->slot[i])
        i = (i + 1) & (s->cap - 1);
    if (!(s->slot[i] = strdup(p)))
        return -ENOMEM;
    s->n++;
    return 0;
}

/* Adds `p` and each directory above it. */
static int set_add(struct pathset *s, const char *p)
{
    char buf[PATH_MAX_];
    snprintf(buf, sizeof(buf), "%s", p);
    for (char *sl;; *sl = 0) {
        if (set_add1(s, buf) < 0)
            return -ENOMEM;
        if (!(sl = strrchr(buf, '/')))
            return 0;
    }
}

static void set_clear(struct pathset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

void lel__image_log(json_t *log, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    if (!log || json_array_size(log) >= LEL_IMAGE_LOG_MAX)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (json_array_size(log) == LEL_IMAGE_LOG_MAX - 1)
        snprintf(line, sizeof(line), "(more lines left out)");
    json_t *j = json_string(line);
    json_array_append_new(log, j ? j : json_string("(a line that is not UTF-8)"));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

int lel__image_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) < 0 ? -errno : 0;
    return nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

/* Cleans an entry's name into out ("a/b/c": no leading "./", no empty or "." components).
 * Returns NULL, or why it is refused. An empty result is the root itself. */
static const char *clean_path(const char *in, char *out, size_t n)
{
    size_t o = 0, depth = 0;
    if (!in)
        return "has no readable name";
    if (in[0] == '/')
        return "has an absolute path";
    for (const char *p = in; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return "has '..' in its path";
        if (len > 255)
            return "has a name longer than 255 bytes";
        if (len && !(len == 1 && p[0] == '.')) {
            if (o + len + 2 > n)
                return "has a path longer than 4095 bytes";
            if (++depth > LEL_IMAGE_MAX_DEPTH)
                return "nests deeper than 128 directories";
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = e ? e + 1 : p + len;
    }
    out[o] = 0;
    return NULL;
}

/* Lexically joins dir (cleaned, maybe "") and a relative symlink target into out; -EXDEV when
 * the target climbs above the root. */
static int join_target(const char *dir, const char *target, const char *rest, char *out, size_t n)
{
    char buf[3 * PATH_MAX_];
    size_t o = 0;
    snprintf(buf, sizeof(buf), "%s/%s/%s", dir, target, rest);
    out[0] = 0;
    for (char *save = NULL, *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (!strcmp(c, "."))
            continue;
        if (!strcmp(c, "..")) {
            if (!o)
                return -EXDEV;
            while (o && out[o - 1] != '/')
                o--;
            o = o ? o - 1 : 0;
            out[o] = 0;
            continue;
        }
        size_t len = strlen(c);
        if (o + len + 2 > n)
            return -ENAMETOOLONG;
        if (o)
            out[o++] = '/';
        memcpy(out + o, c, len + 1);
        o += len;
    }
    return 0;
}

/* Opens directory `rel` (cleaned; "" is the root) of the tree. With `create`, missing
 * directories are made (0755, as tar does). A symlink on the way is followed when it stays in
 * the tree; one that leads out (absolute, or above the root) fails with -EXDEV and its path in
 * `bad`. Returns the fd, or -errno (-ENOENT with create = 0, -ENOTDIR, -ELOOP). */
static int open_dir(struct lel_tree *t, const char *rel, int create, char *bad, size_t badlen)
{
    char cur[PATH_MAX_], done[PATH_MAX_], target[PATH_MAX_];
    snprintf(cur, sizeof(cur), "%s", rel);
    for (int hops = 0; hops <= 40; hops++) {
        int fd = openat(t->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), restart = 0;
        size_t dl = 0;
        done[0] = 0;
        for (char *p = cur; fd >= 0 && *p && !restart;) {
            char *e = strchr(p, '/'), c[256];
            size_t len = e ? (size_t)(e - p) : strlen(p);
            memcpy(c, p, len);
            c[len] = 0;
            struct stat st;
            if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT || !create || (mkdirat(fd, c, 0755) < 0 && errno != EEXIST)) {
                    int r = -errno;
                    close(fd);
                    return r;
                }
                t->entries++;
                st.st_mode = S_IFDIR;
            }
            if (S_ISLNK(st.st_mode)) {
                ssize_t tl = readlinkat(fd, c, target, sizeof(target) - 1);
                close(fd);
                fd = -1;
                if (tl <= 0)
                    return tl < 0 ? -errno : -ENOENT;
                target[tl] = 0;
                snprintf(bad, badlen, "%.2000s%s%s (-> %.1000s)", done, dl ? "/" : "", c, target);
                if (target[0] == '/' || join_target(done, target, e ? e + 1 : "", cur, sizeof(cur)) < 0)
                    return -EXDEV;
                restart = 1;
                break;
            }
            if (!S_ISDIR(st.st_mode)) {
                close(fd);
                snprintf(bad, badlen, "%.3000s%s%s", done, dl ? "/" : "", c);
                return -ENOTDIR;
            }
            int nfd = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            close(fd);
            fd = nfd;
            dl += (size_t)snprintf(done + dl, sizeof(done) - dl, "%s%s", dl ? "/" : "", c);
            if (dl >= sizeof(done))
                dl = sizeof(done) - 1;
            p = e ? e + 1 : p + len;
        }
        if (!restart)
            return fd >= 0 ? fd : -errno;
    }
    return -ELOOP;
}

/* Removes `name` in dirfd whatever it is (a directory with everything under it). */
static int remove_at(int dirfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
    if (depth > LEL_IMAGE_MAX_DEPTH + 8)
        return -ELOOP;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    int r = 0;
    for (struct dirent *de; r == 0 && (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            r = remove_at(fd, de->d_name, depth + 1);
    closedir(d);
    return r ? r : unlinkat(dirfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* An opaque whiteout: removes what lies in directory fd (path `rel`) that this layer did not
 * write, keeping in a kept directory only what this layer wrote. */
static int purge_lower(struct lel_tree *t, int fd, const char *rel, int depth)
{
    DIR *d = fdopendir(dup(fd));
    char child[PATH_MAX_];
    int r = 0;
    if (!d)
        return -errno;
    for (struct dirent *de; r == 0 && (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        if (!set_has(&t->layer, child)) {
            r = remove_at(fd, de->d_name, 0);
            continue;
        }
        int cfd = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd >= 0 && depth < LEL_IMAGE_MAX_DEPTH) {
            r = purge_lower(t, cfd, child, depth + 1);
        }
        if (cfd >= 0)
            close(cfd);
    }
    closedir(d);
    return r;
}

static void set_owner(struct lel_tree *t, int dirfd, const char *leaf, struct archive_entry *e)
{
    if (!t->owners_kept)
        return;
    if (fchownat(dirfd, leaf, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0 &&
        errno == EPERM) {
        t->owners_kept = 0;
        if (!t->warned_owner++)
            lel__image_log(t->log, "owners are not kept: lelantosd is not running as root");
    }
}

static void set_times(int dirfd, const char *leaf, struct archive_entry *e)
{
    struct timespec ts[2] = {{archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                             {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    utimensat(dirfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
}

/* A regular file's data, written where libarchive says (sparse files keep their holes). */
static int write_file(struct lel_tree *t, struct archive *a, int dirfd, const char *leaf, struct archive_entry *e,
                      const char *path, char *err, size_t errlen)
{
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0 || (uint64_t)size > t->max_bytes - t->bytes) {
        snprintf(err, errlen, "the image expands past images.max_unpacked_bytes (%llu bytes) at '%s'",
                 (unsigned long long)t->max_bytes, path);
        return -EFBIG;
    }
    t->bytes += (uint64_t)size;
    int fd = openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return r;
    }
    const void *buf;
    size_t len;
    la_int64_t off;
    int r = 0, ar;
    while ((ar = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
        if (off < 0 || (uint64_t)off + len > (uint64_t)size) {
            snprintf(err, errlen, "entry '%s' has more data than its size", path);
            r = -EINVAL;
            break;
        }
        for (size_t w = 0; w < len;) {
            ssize_t n = pwrite(fd, (const char *)buf + w, len - w, off + (off_t)w);
            if (n < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
                break;
            }
            w += (size_t)n;
        }
        if (r)
            break;
    }
    if (!r && ar != ARCHIVE_EOF) {
        snprintf(err, errlen, "truncated or corrupt archive at '%s': %s", path, archive_error_string(a));
        r = -EINVAL;
    }
    if (!r && ftruncate(fd, size) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    }
    if (!r) { /* the owner first: chown clears the set-user-ID bit that chmod then sets */
        set_owner(t, dirfd, leaf, e);
        fchmod(fd, archive_entry_perm(e) & 07777);
        set_times(dirfd, leaf, e);
    }
    close(fd);
    return r;
}

static int add_dirfix(struct lel_tree *t, const char *path, struct archive_entry *e)
{
    if (t->ndirs == t->capdirs) {
        size_t nc = t->capdirs ? t->capdirs * 2 : 256;
        struct dirfix *nd = realloc(t->dirs, nc * sizeof(*nd));
        if (!nd)
            return -ENOMEM;
        t->dirs = nd;
        t->capdirs = nc;
    }
    struct dirfix *d = &t->dirs[t->ndirs];
    if (!(d->path = strdup(path)))
        return -ENOMEM;
    d->mode = archive_entry_perm(e) & 07777;
    d->uid = (uid_t)archive_entry_uid(e);
    d->gid = (gid_t)archive_entry_gid(e);
    d->mtime.tv_sec = archive_entry_mtime(e);
    d->mtime.tv_nsec = archive_entry_mtime_nsec(e);
    t->ndirs++;
    return 0;
}

/* A hard link to `target` (an earlier entry, this layer's or a lower one's). */
static int make_link(struct lel_tree *t, int dirfd, const char *leaf, const char *target, const char *path, char *err,
                     size_t errlen)
{
    char tp[PATH_MAX_], bad[PATH_MAX_ + 64] = "";
    const char *why = clean_path(target, tp, sizeof(tp));
    if (why || !*tp) {
        snprintf(err, errlen, "hard link '%s' to '%s': the target %s", path, target, why ? why : "is the root");
        return -EINVAL;
    }
    char *sl = strrchr(tp, '/');
    const char *tleaf = sl ? sl + 1 : tp;
    if (sl)
        *sl = 0;
    int tfd = open_dir(t, sl ? tp : "", 0, bad, sizeof(bad));
    struct stat st;
    if (tfd < 0 || fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode)) {
        if (tfd >= 0)
            close(tfd);
        snprintf(err, errlen, "hard link '%s' to '%s': %s", path, target,
                 tfd == -EXDEV ? "the target lies through a symlink that leads out of the image"
                               : "no such file in the image (a hard link must follow its target)");
        return -EINVAL;
    }
    int r = linkat(tfd, tleaf, dirfd, leaf, 0) < 0 ? -errno : 0;
    close(tfd);
    if (r)
        snprintf(err, errlen, "cannot link '%s' to '%s': %s", path, target, strerror(-r));
    return r;
}

/* A `.wh.` entry of an OCI layer in directory dirfd (path `dir`). */
static int whiteout(struct lel_tree *t, int dirfd, const char *dir, const char *leaf)
{
    if (!strcmp(leaf, ".wh..wh..opq"))
        return purge_lower(t, dirfd, dir, 0);
    const char *name = leaf + 4;
    if (!strncmp(leaf, ".wh..wh.", 8) || !*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return 0; /* aufs's own bookkeeping (.wh..wh.plnk), or a name that is no entry */
    return remove_at(dirfd, name, 0);
}

/* Makes the entry at dirfd/leaf once what is there (a file the layer replaces) is out of the way. */
static int make_entry(struct lel_tree *t, struct archive *a, struct archive_entry *e, int dirfd, const char *leaf,
                      const char *path, char *err, size_t errlen)
{
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e);
    struct stat st;
    int exists = fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0, r = 0;
    if (!hard && type == AE_IFDIR) {
        if (exists && S_ISDIR(st.st_mode))
            return add_dirfix(t, path, e);
        if (exists && (r = remove_at(dirfd, leaf, 0)) < 0)
            return r;
        if (mkdirat(dirfd, leaf, 0755) < 0)
            return -errno;
        set_owner(t, dirfd, leaf, e);
        return add_dirfix(t, path, e);
    }
    if (exists && (r = remove_at(dirfd, leaf, 0)) < 0)
        return r;
    if (hard)
        return make_link(t, dirfd, leaf, hard, path, err, errlen);
    switch (type) {
    case AE_IFREG:
        return write_file(t, a, dirfd, leaf, e, path, err, errlen);
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (!target || !*target || strlen(target) >= PATH_MAX_) {
            snprintf(err, errlen, "symlink '%s' has no usable target", path);
            return -EINVAL;
        }
        if (symlinkat(target, dirfd, leaf) < 0)
            return -errno;
        break;
    }
    case AE_IFIFO:
        if (mkfifoat(dirfd, leaf, 0600) < 0)
            return -errno;
        set_owner(t, dirfd, leaf, e);
        fchmodat(dirfd, leaf, archive_entry_perm(e) & 07777, 0);
        set_times(dirfd, leaf, e);
        return 0;
    default: /* character and block devices, sockets */
        t->skipped++;
        lel__image_log(t->log, "skipped %s '%s'", type == AE_IFSOCK ? "socket" : "device node", path);
        return 0;
    }
    set_owner(t, dirfd, leaf, e);
    set_times(dirfd, leaf, e);
    return 0;
}

static int apply_entry(struct lel_tree *t, struct archive *a, struct archive_entry *e, char *err, size_t errlen)
{
    char path[PATH_MAX_], dir[PATH_MAX_], bad[PATH_MAX_ + 64] = "";
    const char *name = archive_entry_pathname(e);
    const char *why = clean_path(name, path, sizeof(path));
    if (why) {
        snprintf(err, errlen, "entry '%.300s' %s", name ? name : "?", why);
        return -EINVAL;
    }
    if (!*path) /* the root's own entry ("./") */
        return 0;
    if (++t->entries > LEL_IMAGE_MAX_ENTRIES) {
        snprintf(err, errlen, "the image has more than %d entries", LEL_IMAGE_MAX_ENTRIES);
        return -EFBIG;
    }
    char *sl = strrchr(path, '/');
    const char *leaf = sl ? sl + 1 : path;
    snprintf(dir, sizeof(dir), "%.*s", sl ? (int)(sl - path) : 0, path);
    int wh = t->whiteouts && !strncmp(leaf, ".wh.", 4);
    int dfd = open_dir(t, dir, !wh, bad, sizeof(bad));
    if (dfd == -ENOENT && wh)
        return 0; /* a whiteout of something under a directory that is not there */
    if (dfd < 0) {
        if (dfd == -EXDEV)
            snprintf(err, errlen, "entry '%s' goes through symlink '%s', which points outside the image", path, bad);
        else if (dfd == -ENOTDIR)
            snprintf(err, errlen, "entry '%s' goes through '%s', which is not a directory", path, bad);
        else if (dfd == -ELOOP)
            snprintf(err, errlen, "entry '%s' goes through too many symlinks", path);
        else
            snprintf(err, errlen, "cannot make the directories of '%s': %s", path, strerror(-dfd));
        return dfd == -EXDEV || dfd == -ENOTDIR || dfd == -ELOOP ? -EINVAL : dfd;
    }
    int r;
    if (wh) {
        r = whiteout(t, dfd, dir, leaf);
    } else {
        r = t->whiteouts ? set_add(&t->layer, path) : 0;
        if (!r)
            r = make_entry(t, a, e, dfd, leaf, path, err, errlen);
    }
    close(dfd);
    if (r < 0 && !*err)
        snprintf(err, errlen, "cannot unpack '%s': %s", path, strerror(-r));
    return r;
}

struct lel_tree *lel__tree_open(const char *dir, uint64_t max_bytes, const atomic_int *stop, json_t *log)
{
    struct lel_tree *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (t->root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        free(t);
        return NULL;
    }
    t->max_bytes = max_bytes;
    t->stop = stop;
    t->log = log;
    t->owners_kept = geteuid() == 0;
    if (!t->owners_kept)
        lel__image_log(log, "owners are not kept: lelantosd is not running as root");
    return t;
}

int lel__tree_apply(struct lel_tree *t, struct archive *a, int whiteouts, const char *what, char *err, size_t errlen)
{
    struct archive_entry *e;
    int r = 0, ar;
    t->whiteouts = whiteouts;
    err[0] = 0;
    while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
        if (t->stop && atomic_load(t->stop)) {
            snprintf(err, errlen, "lelantosd is stopping");
            r = -ECANCELED;
            break;
        }
        if ((r = apply_entry(t, a, e, err, errlen)) < 0)
            break;
    }
    if (!r && ar != ARCHIVE_EOF) {
        snprintf(err, errlen, "truncated or corrupt archive: %s", archive_error_string(a) ? archive_error_string(a) : "read error");
        r = -EINVAL;
    }
    if (r < 0) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s: %s", what, err);
        snprintf(err, errlen, "%s", tmp);
    }
    set_clear(&t->layer);
    return r;
}

/* Counts entries and the bytes of regular files (a hard-linked one once) under dirfd. */
static int count_tree(int dirfd, struct pathset *inodes, uint64_t *bytes, uint64_t *files, int depth)
{
    DIR *d = fdopendir(dup(dirfd));
    if (!d)
        return -errno;
    for (struct dirent *de; (de = readdir(d));) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        (*files)++;
        if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
            char ino[32];
            snprintf(ino, sizeof(ino), "%llu", (unsigned long long)st.st_ino);
            if (set_has(inodes, ino))
                continue;
            set_add1(inodes, ino);
        }
        if (S_ISREG(st.st_mode))
            *bytes += (uint64_t)st.st_size;
        if (S_ISDIR(st.st_mode) && depth < LEL_IMAGE_MAX_DEPTH + 8) {
            int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) {
                count_tree(fd, inodes, bytes, files, depth + 1);
                close(fd);
            }
        }
    }
    closedir(d);
    return 0;
}

int lel__tree_finish(struct lel_tree *t, uint64_t *size_bytes, uint64_t *files)
{
    char bad[PATH_MAX_ + 64];
    /* deepest last-made first: a directory's time is set after everything inside it changed */
    for (size_t i = t->ndirs; i-- > 0;) {
        struct dirfix *d = &t->dirs[i];
        char *sl = strrchr(d->path, '/');
        if (sl)
            *sl = 0;
        int pfd = open_dir(t, sl ? d->path : "", 0, bad, sizeof(bad));
        const char *leaf = sl ? sl + 1 : d->path;
        int fd = pfd >= 0 ? openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (fd >= 0) {
            if (t->owners_kept)
                fchown(fd, d->uid, d->gid);
            fchmod(fd, d->mode);
            struct timespec ts[2] = {d->mtime, d->mtime};
            futimens(fd, ts);
            close(fd);
        }
        if (pfd >= 0)
            close(pfd);
    }
    struct pathset inodes = {0};
    *size_bytes = *files = 0;
    int r = count_tree(t->root, &inodes, size_bytes, files, 0);
    set_clear(&inodes);
    return r;
}

void lel__tree_close(struct lel_tree *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ndirs; i++)
        free(t->dirs[i].path);
    free(t->dirs);
    set_clear(&t->layer);
    close(t->root);
    free(t);
}
