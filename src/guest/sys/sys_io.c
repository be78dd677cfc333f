/* Syscalls on descriptors and their I/O: read, write and their positioned and vectored forms,
 * lseek, ioctl, fcntl, dup, close, close_range, pipe. */
#include "sys_io.h"

#include "syscall.h"

#include "../fs/dnotify.h"
#include "../fs/file.h"
#include "../fs/flock.h"
#include "../fs/inotify.h"
#include "../fs/pipe.h"
#include "../fs/pty.h"
#include "../lib/errno.h"
#include "../net/dgram.h"
#include "../net/netif.h"
#include "../net/socket.h"
#include "../proc/proc.h"
#include "../fs/fs.h"

/* ioctl: the descriptor flags (FIOCLEX, FIONCLEX, FIONBIO: Rust sets close-on-exec this way),
 * FIONREAD for pipes, the interface requests on sockets (net/netif.c), a pty's terminal ioctls
 * (fs/pty.c); ENOTTY on anything else. */
static long sys_ioctl(uint64_t fd, uint64_t req, uint64_t arg)
{
    struct file *f = fd_get(fd);
    int v;
    if (!f)
        return -EBADF;
    if (f->type == F_SOCK && (req >> 8) == 0x89) /* SIOC*: the network interfaces */
        return netif_ioctl(req, arg);
    switch (req) {
    case 0x5451: case 0x5450: /* FIOCLEX, FIONCLEX */
        fd_set_cloexec((int)fd, req == 0x5451);
        return 0;
    case 0x5421: /* FIONBIO */
        if (copy_user(arg, &v, sizeof(v), 0) < 0)
            return -EFAULT;
        f->flags = v ? f->flags | O_NONBLOCK_ : f->flags & ~O_NONBLOCK_;
        return 0;
    case 0x541b: /* FIONREAD: what a pipe or a connected socket holds */
        if (f->type == F_PTM || f->type == F_PTS)
            return pty_ioctl(f, fd, req, arg);
        if (f->type == F_PIPE_R)
            v = (int)f->pipe->count;
        else if (f->type == F_INOTIFY)
            v = (int)inotify_queued(f->in);
        else if (f->type == F_SOCK)
            v = f->sock->dgram ? (f->sock->dq ? (int)f->sock->dq->len : 0) : f->sock->rx ? (int)f->sock->rx->count : 0;
        else
            return -ENOTTY;
        return copy_user(arg, &v, sizeof(v), 1);
    }
    return f->type == F_PTM || f->type == F_PTS ? pty_ioctl(f, fd, req, arg) : -ENOTTY;
}

static long sys_lseek(uint64_t fd, int64_t off, uint64_t whence)
{
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    if (f->type != F_INODE)
        return -ESPIPE;
    int64_t base = whence == 0 ? 0 : whence == 1 ? (int64_t)f->off : whence == 2 ? (int64_t)f->ino->size : -1;
    if (base < 0 || base + off < 0)
        return -EINVAL;
    f->off = (uint64_t)(base + off);
    return (long)f->off;
}

/* close_range: closes [first, last] (CLOSE_RANGE_CLOEXEC, 4: marks them close-on-exec
 * instead); CLOSE_RANGE_UNSHARE (2) changes nothing (threads share one table, as they did). */
static long sys_close_range(uint64_t first, uint64_t last, uint64_t flags)
{
    struct proc *cur = proc_cur();
    if ((flags & ~6ULL) || (uint32_t)first > (uint32_t)last)
        return -EINVAL;
    if ((uint32_t)first >= NFD_MAX)
        return 0;
    for (int fd = files_next(cur->files, (int)(uint32_t)first); fd >= 0 && (uint64_t)fd <= (uint32_t)last;
         fd = files_next(cur->files, fd + 1)) {
        if (flags & 4)
            fd_set_cloexec(fd, 1);
        else
            fd_close(cur, fd);
    }
    return 0;
}

/* dup (exact 0: the lowest free fd >= newfd), dup2 and dup3 (exact 1: newfd itself). */
static long sys_dup3(uint64_t oldfd, uint64_t newfd, int exact, uint64_t flags)
{
    struct proc *cur = proc_cur();
    struct file *f = fd_get(oldfd);
    int ce = (flags & O_CLOEXEC_) != 0;
    if (!f)
        return -EBADF;
    if (newfd >= fd_limit())
        return exact ? -EBADF : -EINVAL;
    if (!exact) {
        int r = fd_install(f, (int)newfd, ce);
        if (r >= 0)
            f->refs++;
        return r;
    }
    if (newfd == oldfd)
        return (long)newfd;
    f->refs++; /* first: closing newfd may drop the last other reference to what it had */
    fd_close(cur, (int)newfd);
    if (files_set(cur->files, newfd, f) < 0) {
        file_put(f);
        return -ENOMEM;
    }
    fd_set_cloexec((int)newfd, ce);
    return (long)newfd;
}

/* F_SETOWN_EX and F_GETOWN_EX: struct f_owner_ex {type, pid}; a thread (F_OWNER_TID, 0) is
 * kept as its process, a group (F_OWNER_PGRP, 2) as a negative id, as F_SETOWN keeps it */
static long fown_ex(struct file *f, int set, uint64_t arg)
{
    int32_t o[2];
    if (!set) {
        o[0] = f->owner < 0 ? 2 : 1;
        o[1] = f->owner < 0 ? -f->owner : f->owner;
        return copy_user(arg, o, sizeof(o), 1);
    }
    if (copy_user(arg, o, sizeof(o), 0) < 0)
        return -EFAULT;
    if (o[0] < 0 || o[0] > 2 || o[1] < 0)
        return -EINVAL;
    f->owner = o[0] == 2 ? -o[1] : o[1];
    return 0;
}

static long sys_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
    struct proc *cur = proc_cur();
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    switch (cmd) {
    case 0: return sys_dup3(fd, arg, 0, 0);                 /* F_DUPFD */
    case 1030: return sys_dup3(fd, arg, 0, O_CLOEXEC_);     /* F_DUPFD_CLOEXEC */
    case 1: return fd_cloexec(cur->files, fd);              /* F_GETFD */
    case 2: fd_set_cloexec((int)fd, arg & 1); return 0;     /* F_SETFD */
    case 3: return f->flags & ~O_CLOEXEC_;                  /* F_GETFL */
    case 4: /* F_SETFL: only O_APPEND and O_NONBLOCK may change */
        f->flags = (f->flags & ~(O_APPEND | O_NONBLOCK_)) | (int)(arg & (O_APPEND | O_NONBLOCK_));
        return 0;
    case 5: case 6: case 7: case 36: case 37: case 38: /* record locks (fs/flock.c) */
        file_hold(f); /* F_SETLKW may wait */
        long r = flock_fcntl(f, cmd, arg);
        file_unhold(f);
        return r;
    case 1033: case 1034: /* F_ADD_SEALS, F_GET_SEALS: a memfd's, kept (F_SEAL_SEAL: no more) */
        if (f->type != F_INODE || (f->ino->mode & S_IFMT) != S_IFREG)
            return -EINVAL;
        if (cmd == 1034)
            return f->ino->seals;
        if (f->ino->seals & 1)
            return -EPERM;
        f->ino->seals |= (uint8_t)(arg & 0x1f);
        return 0;
    case 8: f->owner = (int)arg; return 0;             /* F_SETOWN: kept (dnotify's signal goes there) */
    case 9: return f->owner;                           /* F_GETOWN */
    case 10: /* F_SETSIG */
        if (arg > 64)
            return -EINVAL;
        f->sig = (int)arg;
        return 0;
    case 11: return f->sig;                            /* F_GETSIG */
    case 15: case 16: return fown_ex(f, cmd == 15, arg); /* F_SETOWN_EX, F_GETOWN_EX (glibc's F_GETOWN) */
    case 1026: return dnotify_set(f, arg);             /* F_NOTIFY */
    case 1031: case 1032: /* F_SETPIPE_SZ, F_GETPIPE_SZ */
        if (f->type != F_PIPE_R && f->type != F_PIPE_W)
            return -EBADF;
        return cmd == 1032 ? (long)pipe_cap(f->pipe) : pipe_resize(f->pipe, (uint32_t)arg);
    default: return -EINVAL;
    }
}

/* pread/pwrite: read/write at an offset without moving the file's own. */
static long sys_prw(uint64_t fd, uint64_t buf, uint64_t n, int64_t off, int write)
{
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    if (f->type != F_INODE)
        return -ESPIPE;
    if (off < 0)
        return -EINVAL;
    uint64_t saved = f->off;
    int app = f->flags & O_APPEND;
    f->off = (uint64_t)off;
    f->flags &= ~O_APPEND;
    long r = write ? file_write(f, buf, n) : file_read(f, buf, n);
    f->off = saved;
    f->flags |= app;
    return r;
}

/* preadv, pwritev, preadv2 and pwritev2: readv and writev at `off` (the file's offset and
 * O_APPEND untouched), or for the second pair with `off` -1 at the file's offset, as readv
 * and writev. Their flags (RWF_HIPRI, DSYNC, SYNC, NOWAIT) change nothing in memory; RWF_APPEND
 * writes at the end; others are EOPNOTSUPP. */
#define RWF_ALL 0x1fULL
#define RWF_APPEND 0x10ULL
static long sys_prwv(uint64_t fd, uint64_t iov, uint64_t cnt, int64_t off, uint64_t flags, int write)
{
    struct file *f = fd_hold(fd);
    if (!f)
        return -EBADF;
    long r;
    if (flags & ~RWF_ALL)
        r = -EOPNOTSUPP_;
    else if (off == -1 || (write && (flags & RWF_APPEND))) { /* (-1 only reaches here from the v2 pair) */
        int app = f->flags & O_APPEND;
        if (write && (flags & RWF_APPEND))
            f->flags |= O_APPEND;
        r = file_rwv(f, iov, cnt, write, 0);
        f->flags = (f->flags & ~O_APPEND) | app;
    } else if (f->type != F_INODE)
        r = -ESPIPE;
    else if (off < 0)
        r = -EINVAL;
    else {
        uint64_t saved = f->off;
        int app = f->flags & O_APPEND;
        f->off = (uint64_t)off;
        f->flags &= ~O_APPEND;
        r = file_rwv(f, iov, cnt, write, 0);
        f->off = saved;
        f->flags |= app;
    }
    file_unhold(f);
    return r;
}

/* read and write */
static long sys_rw(uint64_t fd, uint64_t buf, uint64_t n, int write)
{
    struct file *f = fd_hold(fd);
    if (!f)
        return -EBADF;
    long r = write ? file_write(f, buf, n) : file_read(f, buf, n);
    file_unhold(f);
    return r;
}

long file_rwv(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg)
{
    long total = 0;
    if (cnt > 1024)
        return -EINVAL;
    if (f->type == F_SOCK && f->sock->dgram) /* the vector is one datagram */
        return dgram_rwv(f, iov, cnt, write, msg);
    for (uint64_t i = 0; i < cnt; i++) {
        uint64_t v[2];
        if (copy_user(iov + i * 16, v, 16, 0) < 0)
            return total ? total : -EFAULT;
        if (!v[1])
            continue;
        long r = f->type == F_SOCK ? sock_io(f, v[0], v[1], write, msg)
                 : write           ? file_write(f, v[0], v[1])
                                   : file_read(f, v[0], v[1]);
        if (r < 0)
            return total ? total : r;
        total += r;
        if ((uint64_t)r < v[1])
            break;
    }
    return total;
}

static long sys_rwv(uint64_t fd, uint64_t iov, uint64_t cnt, int write)
{
    struct file *f = fd_hold(fd);
    if (!f)
        return -EBADF;
    long r = file_rwv(f, iov, cnt, write, 0);
    file_unhold(f);
    return r;
}

static long sys_pipe(uint64_t ufds, uint64_t flags)
{
    struct proc *cur = proc_cur();
    if (flags & ~(uint64_t)(O_CLOEXEC_ | O_NONBLOCK_))
        return -EINVAL;
    int nb = (int)(flags & O_NONBLOCK_);
    struct pipe *p = pipe_new();
    struct file *r = p ? file_new(F_PIPE_R, 0, nb) : 0, *w = r ? file_new(F_PIPE_W, 0, 1 | nb) : 0;
    if (!w) {
        file_put(r);
        if (p) {
            pipe_drop(p, 1);
            pipe_drop(p, 0);
        }
        return -ENOMEM;
    }
    r->pipe = w->pipe = p;
    int ce = (flags & O_CLOEXEC_) != 0;
    int fr = fd_install(r, 0, ce), fw = fr < 0 ? fr : fd_install(w, 0, ce);
    int fds[2] = {fr, fw};
    if (fr < 0 || fw < 0 || copy_user(ufds, fds, sizeof(fds), 1) < 0) {
        if (fr >= 0)
            files_set(cur->files, (uint64_t)fr, 0);
        if (fw >= 0)
            files_set(cur->files, (uint64_t)fw, 0);
        file_put(r);
        file_put(w);
        return fr < 0 || fw < 0 ? -EMFILE : -EFAULT;
    }
    return 0;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_read(const struct sysargs *s)
{
    return sys_rw(s->a, s->b, s->c, 0);
}

long sc_write(const struct sysargs *s)
{
    return sys_rw(s->a, s->b, s->c, 1);
}

long sc_lseek(const struct sysargs *s)
{
    return sys_lseek(s->a, (int64_t)s->b, s->c);
}

long sc_ioctl(const struct sysargs *s)
{
    return sys_ioctl(s->a, s->b, s->c);
}

long sc_dup(const struct sysargs *s)
{
    return sys_dup3(s->a, 0, 0, 0);
}

long sc_dup2(const struct sysargs *s)
{
    return sys_dup3(s->a, s->b, 1, 0);
}

long sc_dup3(const struct sysargs *s)
{
    return s->a == s->b ? -EINVAL : sys_dup3(s->a, s->b, 1, s->c);
}

long sc_pipe(const struct sysargs *s)
{
    return sys_pipe(s->a, 0);
}

long sc_pipe2(const struct sysargs *s)
{
    return sys_pipe(s->a, s->b);
}

long sc_fcntl(const struct sysargs *s)
{
    return sys_fcntl(s->a, s->b, s->c);
}

long sc_pread64(const struct sysargs *s)
{
    return sys_prw(s->a, s->b, s->c, (int64_t)s->d, 0);
}

long sc_pwrite64(const struct sysargs *s)
{
    return sys_prw(s->a, s->b, s->c, (int64_t)s->d, 1);
}

long sc_preadv(const struct sysargs *s)
{
    return (int64_t)s->d == -1 ? -EINVAL : sys_prwv(s->a, s->b, s->c, (int64_t)s->d, 0, 0);
}

long sc_pwritev(const struct sysargs *s)
{
    return (int64_t)s->d == -1 ? -EINVAL : sys_prwv(s->a, s->b, s->c, (int64_t)s->d, 0, 1);
}

long sc_preadv2(const struct sysargs *s)
{
    return sys_prwv(s->a, s->b, s->c, (int64_t)s->d, s->f, 0);
}

long sc_pwritev2(const struct sysargs *s)
{
    return sys_prwv(s->a, s->b, s->c, (int64_t)s->d, s->f, 1);
}

long sc_readv(const struct sysargs *s)
{
    return sys_rwv(s->a, s->b, s->c, 0);
}

long sc_writev(const struct sysargs *s)
{
    return sys_rwv(s->a, s->b, s->c, 1);
}

long sc_close_range(const struct sysargs *s)
{
    return sys_close_range(s->a, s->b, s->c);
}
