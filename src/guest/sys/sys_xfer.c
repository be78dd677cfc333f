/* Data moved between two descriptors in the kernel: sendfile, copy_file_range, splice and tee;
 * and vmsplice, between a pipe and the user's memory.
 * A page at a time goes through a kernel buffer; the files' own read and write paths move it
 * (copy_user takes the kernel buffer while the process's kcopy is set), so a pipe blocks, a
 * socket sends and a file grows as with read and write. What is read from a pipe or socket is
 * peeked first and taken only as far as it was written, so nothing is lost when the writer
 * takes less. */
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/pipe.h"
#include "../lib/errno.h"
#include "../mm/page.h"
#include "../net/socket.h"
#include "../proc/proc.h"

#define XFER_MAX 0x7ffff000ULL /* what Linux moves in one call at most */

static int is_reg(const struct file *f)
{
    return f->type == F_INODE && (f->ino->mode & S_IFMT) == S_IFREG;
}

static int is_pipe(const struct file *f)
{
    return f->type == F_PIPE_R || f->type == F_PIPE_W;
}

/* Reads into the kernel buffer `kb`: a file at `*off` (its own offset when `off` is NULL), a
 * pipe or socket peeked (`take`: taken instead). Blocks unless `nb`. */
static long xfer_in(struct file *f, void *kb, uint64_t n, uint64_t *off, int nb, int take)
{
    if (f->type == F_PIPE_R)
        return pipe_read(f->pipe, nb | (take ? 0 : PIPE_PEEK), (uint64_t)kb, n);
    if (f->type == F_SOCK)
        return sock_io(f, (uint64_t)kb, n, 0, (nb ? MSG_DONTWAIT_ : 0) | (take ? 0 : MSG_PEEK_));
    if (take)
        return (long)n; /* a file's bytes are taken by moving its offset */
    int64_t got = fs_read(f->ino, off ? *off : f->off, kb, n);
    return got;
}

static long xfer_out(struct file *f, const void *kb, uint64_t n, uint64_t *off, int nb)
{
    if (is_pipe(f))
        return pipe_write(f->pipe, nb, (uint64_t)kb, n);
    if (!off)
        return file_write(f, (uint64_t)kb, n);
    uint64_t saved = f->off;
    int app = f->flags & O_APPEND;
    f->off = *off;
    f->flags &= ~O_APPEND;
    long r = file_write(f, (uint64_t)kb, n);
    f->off = saved;
    f->flags |= app;
    return r;
}

/* Moves up to `len` bytes from `in` to `out` (offsets: see xfer_in). Only the first read may
 * wait (unless `nb`): then what is there is moved. Returns the bytes moved or an error. */
static long transfer(struct file *in, uint64_t *in_off, struct file *out, uint64_t *out_off, uint64_t len, int nb, int keep)
{
    struct proc *cur = proc_cur();
    void *kb = kpage_alloc();
    long done = 0, err = 0;
    if (!kb)
        return -ENOMEM;
    cur->kcopy = 1;
    cur->kbuf = kb;
    while ((uint64_t)done < len) {
        uint64_t chunk = len - (uint64_t)done < PAGE_SIZE ? len - (uint64_t)done : PAGE_SIZE;
        long got = xfer_in(in, kb, chunk, in_off, done ? O_NONBLOCK_ : nb, 0);
        if (got <= 0) { /* the end, or nothing more now */
            err = got;
            break;
        }
        long put = xfer_out(out, kb, (uint64_t)got, out_off, done ? O_NONBLOCK_ : nb);
        if (put <= 0) {
            err = put;
            break;
        }
        if (!keep)
            xfer_in(in, kb, (uint64_t)put, in_off, O_NONBLOCK_, 1);
        if (is_reg(in))
            *(in_off ? in_off : &in->off) += (uint64_t)put;
        if (out_off)
            *out_off += (uint64_t)put;
        done += put;
        if (put < got)
            break;
    }
    cur->kcopy = 0;
    cur->kbuf = 0;
    kpage_free(kb);
    return done ? done : err;
}

/* An offset argument (NULL: none) in and out of user memory. */
static long off_in(uint64_t uoff, uint64_t *off)
{
    int64_t v;
    if (!uoff)
        return 0;
    if (copy_user(uoff, &v, 8, 0) < 0)
        return -EFAULT;
    *off = (uint64_t)v;
    return v < 0 ? -EINVAL : 0;
}

static long xfer_with(struct file *in, uint64_t uin, struct file *out, uint64_t uout, uint64_t len, int nb, int keep)
{
    uint64_t io = 0, oo = 0;
    long r = off_in(uin, &io);
    if (r == 0)
        r = off_in(uout, &oo);
    if (r < 0)
        return r;
    if (len > XFER_MAX)
        len = XFER_MAX;
    file_hold(in);
    long n = transfer(in, uin ? &io : 0, out, uout ? &oo : 0, len, nb, keep);
    file_unhold(in);
    if ((uin && copy_user(uin, &io, 8, 1) < 0) || (uout && copy_user(uout, &oo, 8, 1) < 0))
        return -EFAULT;
    return n;
}

/* sendfile(out, in, offset, count): from a regular file to anything written. */
static long sys_sendfile(uint64_t ofd, uint64_t ifd, uint64_t uoff, uint64_t count)
{
    struct file *out = fd_get(ofd), *in = fd_get(ifd);
    if (!out || !in || (in->flags & O_ACCMODE) == 1 || (out->flags & O_ACCMODE) == 0)
        return -EBADF;
    if (!is_reg(in))
        return -EINVAL;
    return xfer_with(in, uoff, out, 0, count, out->flags & O_NONBLOCK_, 0);
}

/* copy_file_range: between regular files (flags 0), not into one opened O_APPEND, nor within
 * one file where the ranges overlap. */
static long sys_copy_file_range(uint64_t ifd, uint64_t uin, uint64_t ofd, uint64_t uout, uint64_t len, uint64_t flags)
{
    struct file *in = fd_get(ifd), *out = fd_get(ofd);
    uint64_t io = 0, oo = 0;
    if (!in || !out || (in->flags & O_ACCMODE) == 1 || (out->flags & O_ACCMODE) == 0 || (out->flags & O_APPEND))
        return -EBADF;
    if (flags || !is_reg(in) || !is_reg(out))
        return -EINVAL;
    if (in->ino == out->ino) {
        if (off_in(uin, &io) < 0 || off_in(uout, &oo) < 0)
            return -EFAULT;
        io = uin ? io : in->off;
        oo = uout ? oo : out->off;
        if (io < oo + len && oo < io + len)
            return -EINVAL;
    }
    return xfer_with(in, uin, out, uout, len, 0, 0);
}

/* splice: one end a pipe (whose offset must be NULL: ESPIPE), the other a file, pipe or socket;
 * SPLICE_F_NONBLOCK (2) makes the pipe's side not wait. */
static long sys_splice(uint64_t ifd, uint64_t uin, uint64_t ofd, uint64_t uout, uint64_t len, uint64_t flags)
{
    struct file *in = fd_get(ifd), *out = fd_get(ofd);
    if (!in || !out || (in->flags & O_ACCMODE) == 1 || (out->flags & O_ACCMODE) == 0)
        return -EBADF;
    if (!is_pipe(in) && !is_pipe(out))
        return -EINVAL;
    if ((is_pipe(in) && uin) || (is_pipe(out) && uout))
        return -ESPIPE;
    if ((uin && !is_reg(in)) || (uout && !is_reg(out)) || (in->type != F_INODE && !is_pipe(in) && in->type != F_SOCK))
        return -EINVAL;
    if (in->type == F_INODE && !is_reg(in))
        return -EINVAL;
    return xfer_with(in, uin, out, uout, len, flags & 2 ? O_NONBLOCK_ : 0, 0);
}

/* tee: a pipe's bytes copied into another pipe, left in the first. */
static long sys_tee(uint64_t ifd, uint64_t ofd, uint64_t len, uint64_t flags)
{
    struct file *in = fd_get(ifd), *out = fd_get(ofd);
    if (!in || !out)
        return -EBADF;
    if (in->type != F_PIPE_R || !is_pipe(out) || in->pipe == out->pipe)
        return -EINVAL;
    return xfer_with(in, 0, out, 0, len < PAGE_SIZE ? len : PAGE_SIZE, flags & 2 ? O_NONBLOCK_ : 0, 1);
}

/* vmsplice: the user's iovecs into a pipe's writing end, or out of its reading end (as writev
 * and readv, which is what a copying kernel does: Linux too copies unless SPLICE_F_GIFT, whose
 * pages it may then take, which changes nothing a program can see). Only the first segment
 * waits, and not with SPLICE_F_NONBLOCK (2) or O_NONBLOCK. */
static long sys_vmsplice(uint64_t fd, uint64_t uiov, uint64_t cnt, uint64_t flags)
{
    struct file *f = fd_hold(fd);
    long done = 0, r = 0;
    if (!f)
        return -EBADF;
    if (!is_pipe(f)) {
        file_unhold(f);
        return -EBADF;
    }
    int nb = (flags & 2) || (f->flags & O_NONBLOCK_) ? O_NONBLOCK_ : 0;
    if (cnt > 1024 || (flags & ~0xfULL))
        r = -EINVAL;
    for (uint64_t i = 0; r == 0 && i < cnt; i++) {
        uint64_t v[2];
        if (copy_user(uiov + i * 16, v, 16, 0) < 0) {
            r = -EFAULT;
            break;
        }
        if (!v[1])
            continue;
        r = f->type == F_PIPE_W ? pipe_write(f->pipe, done ? O_NONBLOCK_ : nb, v[0], v[1])
                                : pipe_read(f->pipe, done ? O_NONBLOCK_ : nb, v[0], v[1]);
        if (r <= 0)
            break;
        done += r;
        r = (uint64_t)r < v[1] ? 1 : 0; /* a short one ends it */
    }
    file_unhold(f);
    return done ? done : r < 0 ? r : 0;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_sendfile(const struct sysargs *s)
{
    return sys_sendfile(s->a, s->b, s->c, s->d);
}

long sc_copy_file_range(const struct sysargs *s)
{
    return sys_copy_file_range(s->a, s->b, s->c, s->d, s->e, s->f);
}

long sc_splice(const struct sysargs *s)
{
    return sys_splice(s->a, s->b, s->c, s->d, s->e, s->f);
}

long sc_tee(const struct sysargs *s)
{
    return sys_tee(s->a, s->b, s->c, s->d);
}

long sc_vmsplice(const struct sysargs *s)
{
    return sys_vmsplice(s->a, s->b, s->c, s->d);
}
