/* POST /admin/backup: the store first, as a RocksDB checkpoint (consistent as of one moment,
 * taken while it is written), then the image trees the records name. Images are written under
 * temporary names and renamed when complete, before the record that names them, and never
 * rewritten in place (a flatten writes a new file), so each final file is linked (same file
 * system: instant, no space) or copied as it is; one deleted between the checkpoint and its
 * link is missing from the backup, and a restore of what needed it fails naming it. */
#include "lel_backup.h"
#include "lel_datadir.h"

#include "../store/lel_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tally {
    long long files, linked, copied, bytes;
};

/* What a crash or a running write leaves that is not part of the data: temporaries, staging
 * trees, trees being removed. */
static int transient(const char *name)
{
    size_t n = strlen(name);
    return strstr(name, ".tmp") || (n > 8 && !strcmp(name + n - 8, ".staging")) ||
           (n > 5 && !strcmp(name + n - 5, ".gone")) || strstr(name, ".lelantos-upload-");
}

/* pread/pwrite of [*pos, end) at the same offsets; the count copied, or -errno. */
static ssize_t copy_plain(int in, int out, off_t *pos, off_t end)
{
    char buf[1 << 16];
    ssize_t total = 0;
    while (*pos < end) {
        size_t want = (size_t)(end - *pos) < sizeof(buf) ? (size_t)(end - *pos) : sizeof(buf);
        ssize_t n = pread(in, buf, want, *pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : total;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = pwrite(out, buf + done, (size_t)(n - done), *pos + done);
            if (w < 0 && errno != EINTR)
                return -errno;
            done += w > 0 ? w : 0;
        }
        *pos += n;
        total += n;
    }
    return total;
}

/* A copy that keeps holes (the .raw memory files are mostly holes): only the data segments
 * are copied (copy_file_range: a reflink or in-kernel copy where it can), then the length set. */
static int copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
    struct stat sb;
    if (in < 0)
        return -errno;
    if (fstat(in, &sb) < 0 || (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777)) < 0)
        r = -errno;
    for (off_t pos = 0; !r && pos < sb.st_size;) {
        off_t data = lseek(in, pos, SEEK_DATA), hole;
        if (data < 0) {
            r = errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
            break;
        }
        if ((hole = lseek(in, data, SEEK_HOLE)) < 0) {
            r = -errno;
            break;
        }
        off_t src = data, dst = data;
        while (!r && src < hole) {
            ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(hole - src), 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
                n = copy_plain(in, out, &src, hole); /* between two kinds of file system */
            else if (n < 0)
                n = -errno;
            if (n < 0)
                r = (int)n;
            else if (n == 0)
                break; /* the file shrank meanwhile */
            dst = src;
        }
        pos = hole;
    }
    if (!r && (ftruncate(out, sb.st_size) < 0 || fsync(out) < 0))
        r = -errno;
    close(in);
    if (out >= 0)
        close(out);
    return r;
}

/* Links (or copies) the tree at `from` into `to`; ENOENT of the top is fine (nothing there). */
static int link_tree(const char *from, const char *to, struct tally *t)
{
    DIR *d = opendir(from);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct stat top;
    int r = fstat(dirfd(d), &top) < 0 ? -errno : 0;
    if (!r && mkdir(to, 0700) < 0 && errno != EEXIST) /* its own mode once filled: a read-only tree's too */
        r = -errno;
    for (struct dirent *e; !r && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || transient(e->d_name))
            continue;
        char src[4096], dst[4096];
        struct stat sb;
        if (snprintf(src, sizeof(src), "%s/%s", from, e->d_name) >= (int)sizeof(src) ||
            snprintf(dst, sizeof(dst), "%s/%s", to, e->d_name) >= (int)sizeof(dst)) {
            r = -ENAMETOOLONG;
            break;
        }
        if (lstat(src, &sb) < 0) {
            if (errno != ENOENT) /* removed meanwhile: not in the backup */
                r = -errno;
            continue;
        }
        if (S_ISDIR(sb.st_mode))
            r = link_tree(src, dst, t);
        else if (S_ISLNK(sb.st_mode)) {
            char target[4096];
            ssize_t n = readlink(src, target, sizeof(target) - 1);
            if (n >= 0) {
                target[n] = 0;
                r = symlink(target, dst) < 0 ? -errno : 0;
            }
        } else if (S_ISREG(sb.st_mode)) {
            t->files++;
            t->bytes += sb.st_size;
            if (link(src, dst) == 0)
                t->linked++;
            else if (errno == EXDEV || errno == EPERM || errno == EMLINK) {
                r = copy_file(src, dst, sb.st_mode);
                t->copied++;
            } else if (errno != ENOENT)
                r = -errno;
        }
    }
    closedir(d);
    if (!r && chmod(to, top.st_mode & 07777) < 0)
        r = -errno;
    return r;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* The checked `dir` field, made (0700); 0, or the error answered. */
static int make_dir(lel_server_t *srv, lel_call_t *c, const char **dir)
{
    if (lel_call_str_field(c, "dir", 3000, dir) < 0)
        return -EINVAL;
    const char *d = *dir;
    char real_data[4096];
    if (!d || d[0] != '/' || strstr(d, "/../") || strstr(d, "/./") || (strlen(d) >= 3 && !strcmp(d + strlen(d) - 3, "/.."))) {
        lel_call_error(c, 400, "invalid field 'dir': an absolute path (without '..') for a directory that does not exist yet");
        return -EINVAL;
    }
    if (realpath(srv->cfg.data_dir, real_data) && !strncmp(d, real_data, strlen(real_data)) &&
        (d[strlen(real_data)] == '/' || !d[strlen(real_data)])) {
        lel_call_error(c, 400, "invalid field 'dir': %s is inside the data dir %s", d, real_data);
        return -EINVAL;
    }
    if (mkdir(d, 0700) < 0) {
        int e = errno;
        if (e == EEXIST)
            lel_call_error(c, 409, "%s exists: a backup goes into a new directory", d);
        else
            lel_call_error(c, e == ENOENT || e == ENOTDIR ? 400 : 500, "cannot create %s: %s", d, strerror(e));
        return -e;
    }
    return 0;
}

void lel__backup_call(lel_server_t *srv, lel_call_t *c)
{
    const char *dir;
    if (make_dir(srv, c, &dir) < 0)
        return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char path[4096], from[4096], err[8400] = "";
    struct tally t = {0};
    int r;
    snprintf(path, sizeof(path), "%s/db", dir);
    if ((r = lel_store_checkpoint(srv->store, path, err, sizeof(err))) == 0) {
        static const char *const trees[] = {"snapshots", "templates", "images"};
        for (size_t i = 0; !r && i < sizeof(trees) / sizeof(trees[0]); i++) {
            snprintf(from, sizeof(from), "%s/%s", srv->cfg.data_dir, trees[i]);
            snprintf(path, sizeof(path), "%s/%s", dir, trees[i]);
            if ((r = link_tree(from, path, &t)) < 0)
                snprintf(err, sizeof(err), "cannot copy %s into %s: %s", from, path, strerror(-r));
        }
        static const char *const files[] = {LEL_DATA_FORMAT_FILE, "initial-api-key"};
        for (size_t i = 0; !r && i < sizeof(files) / sizeof(files[0]); i++) {
            snprintf(from, sizeof(from), "%s/%s", srv->cfg.data_dir, files[i]);
            snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
            if ((r = copy_file(from, path, 0600)) == -ENOENT)
                r = 0;
            else if (r < 0)
                snprintf(err, sizeof(err), "cannot copy %s: %s", from, strerror(-r));
        }
    }
    if (r < 0) { /* nothing half-made is left to be taken for a backup */
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        fprintf(stderr, "lelantosd: backup into %s failed: %s\n", dir, err);
        lel_call_error(c, 500, "backup failed: %s", err);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ms = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    fprintf(stderr, "lelantosd: backup into %s: the store, and %lld image files (%lld linked, %lld copied) in %lld ms\n",
            dir, t.files, t.linked, t.copied, ms);
    lel_call_reply(c, 201, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "dir", dir, "files", (json_int_t)t.files,
                                     "linked", (json_int_t)t.linked, "copied", (json_int_t)t.copied, "bytes",
                                     (json_int_t)t.bytes, "durationMs", (json_int_t)ms));
}
