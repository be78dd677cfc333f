/* A file's space and its flushing: fallocate (as tmpfs has it: allocate or extend, keep the
 * size, punch a hole; the rest EOPNOTSUPP), and sync_file_range and syncfs, which have nothing
 * to do where memory is the disk. */
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"

#define FALLOC_FL_KEEP_SIZE 1
#define FALLOC_FL_PUNCH_HOLE 2

/* Zeroes [off, off + len) of `f` where it has data (holes read as zero already). */
static long punch(struct inode *f, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[PAGE_SIZE];
    uint64_t end = off + len < f->size ? off + len : f->size;
    while (off < end) {
        uint64_t in = off % PAGE_SIZE, n = PAGE_SIZE - in < end - off ? PAGE_SIZE - in : end - off;
        if (fs_page(f, off / PAGE_SIZE) && fs_write(f, off, zeros, n) != (int64_t)n)
            return -ENOSPC_;
        off += n;
    }
    return 0;
}

static long sys_fallocate(uint64_t fd, uint64_t mode, int64_t off, int64_t len)
{
    struct file *fl = fd_get(fd);
    if (!fl)
        return -EBADF;
    if (off < 0 || len <= 0 || off > (int64_t)(1ULL << 62) - len)
        return -EINVAL;
    if ((fl->flags & O_ACCMODE) == 0)
        return -EBADF;
    if (fl->type != F_INODE)
        return -ESPIPE;
    struct inode *f = fl->ino;
    if ((f->mode & S_IFMT) == S_IFDIR)
        return -EISDIR;
    if ((f->mode & S_IFMT) != S_IFREG)
        return -ENODEV_;
    if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
        return punch(f, (uint64_t)off, (uint64_t)len);
    if (mode & ~(uint64_t)FALLOC_FL_KEEP_SIZE)
        return -EOPNOTSUPP_; /* collapse, zero or insert range; a hole without KEEP_SIZE is EINVAL there, too */
    if (!(mode & FALLOC_FL_KEEP_SIZE) && (uint64_t)(off + len) > f->size) {
        if (fl->flags & O_APPEND)
            return -EBADF;
        int r = fs_truncate(f, (uint64_t)(off + len)); /* the new bytes read as zero, as allocated ones do */
        if (r < 0)
            return r;
        f->mtime = f->ctime = proc_now_ns() / 1000000000;
    }
    return 0;
}

long sc_fallocate(const struct sysargs *s)
{
    return sys_fallocate(s->a, s->b, (int64_t)s->c, (int64_t)s->d);
}

/* sync_file_range(fd, offset, nbytes, flags): a file only (a pipe: ESPIPE) */
long sc_sync_file_range(const struct sysargs *s)
{
    struct file *f = fd_get(s->a);
    if (!f)
        return -EBADF;
    if ((int64_t)s->b < 0 || (int64_t)s->c < 0 || (s->d & ~7ULL))
        return -EINVAL;
    return f->type == F_INODE ? 0 : -ESPIPE;
}

long sc_syncfs(const struct sysargs *s)
{
    return fd_get(s->a) ? 0 : -EBADF;
}
