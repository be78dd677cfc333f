/* inotify's syscalls: inotify_init1 (and inotify_init), inotify_add_watch, inotify_rm_watch,
 * over fs/inotify.c. */
#include "sys_path.h"
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/inotify.h"
#include "../lib/errno.h"
#include "../proc/proc.h"

#define IN_ONLYDIR_ 0x01000000
#define IN_DONT_FOLLOW_ 0x02000000

static struct inotify *inotify_of(uint64_t fd, long *err)
{
    struct file *f = fd_get(fd);
    *err = !f ? -EBADF : f->type != F_INOTIFY ? -EINVAL : 0;
    return *err ? 0 : f->in;
}

static long sys_inotify_init(uint64_t flags)
{
    if (flags & ~(uint64_t)(O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    struct file *f = file_new(F_INOTIFY, 0, (int)(flags & O_NONBLOCK_));
    if (f && !(f->in = inotify_new())) {
        file_put(f);
        return -ENOMEM;
    }
    return anon_install(f, flags);
}

static long sys_inotify_add_watch(uint64_t fd, uint64_t upath, uint64_t mask)
{
    char path[FS_PATH_MAX];
    struct inode *base, *ino;
    long err;
    struct inotify *in = inotify_of(fd, &err);
    if (!in)
        return err;
    if ((err = path_at(AT_FDCWD, upath, path, &base)) < 0)
        return err;
    if ((err = fs_lookup(base, path, !(mask & IN_DONT_FOLLOW_), &ino)) < 0)
        return err;
    if ((mask & IN_ONLYDIR_) && (ino->mode & S_IFMT) != S_IFDIR)
        return -ENOTDIR;
    return inotify_watch(in, ino, (uint32_t)mask & ~(IN_ONLYDIR_ | IN_DONT_FOLLOW_));
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_inotify_init(const struct sysargs *s)
{
    (void)s;
    return sys_inotify_init(0);
}

long sc_inotify_init1(const struct sysargs *s)
{
    return sys_inotify_init(s->a);
}

long sc_inotify_add_watch(const struct sysargs *s)
{
    return sys_inotify_add_watch(s->a, s->b, s->c);
}

long sc_inotify_rm_watch(const struct sysargs *s)
{
    long err;
    struct inotify *in = inotify_of(s->a, &err);
    return in ? inotify_unwatch(in, (int)s->b) : err;
}
