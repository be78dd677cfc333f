/* Open files and descriptor tables: what a descriptor refers to (a file-system node, a pipe
 * end, a socket, an epoll instance, an eventfd, the session's stdin or output), references,
 * close-on-exec, and read and write on any kind of file. */
#include "file.h"
#include "dnotify.h"
#include "flock.h"

#include "dev.h"
#include "epoll.h"
#include "fs.h"
#include "inotify.h"
#include "pipe.h"
#include "pty.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../net/socket.h"
#include "../proc/ktimer.h"
#include "../proc/proc.h"
#include "../proc/session.h"
#include "../proc/signal.h"

void fd_set_cloexec(int fd, int on)
{
    struct proc *cur = proc_cur();
    if (fd < 0 || fd >= NFD_MAX)
        return;
    if (on)
        cur->files->cloexec[fd / 64] |= 1ULL << (fd % 64);
    else
        cur->files->cloexec[fd / 64] &= ~(1ULL << (fd % 64));
}

int fd_cloexec(const struct files *t, uint64_t fd)
{
    return fd < NFD_MAX && ((t->cloexec[fd / 64] >> (fd % 64)) & 1);
}

struct file *files_fd(const struct files *t, uint64_t fd)
{
    return fd < NFD_MAX && t->chunk[fd / FD_CHUNK] ? t->chunk[fd / FD_CHUNK][fd % FD_CHUNK] : 0;
}

int files_set(struct files *t, uint64_t fd, struct file *f)
{
    if (fd >= NFD_MAX)
        return -EMFILE;
    struct file ***c = &t->chunk[fd / FD_CHUNK];
    if (!*c && !f)
        return 0;
    if (!*c && !(*c = kpage_alloc()))
        return -ENOMEM;
    (*c)[fd % FD_CHUNK] = f;
    return 0;
}

int files_next(const struct files *t, int from)
{
    for (int fd = from < 0 ? 0 : from; fd < NFD_MAX; fd++) {
        if (!t->chunk[fd / FD_CHUNK])
            fd = (fd / FD_CHUNK + 1) * FD_CHUNK - 1; /* the whole page is empty */
        else if (t->chunk[fd / FD_CHUNK][fd % FD_CHUNK])
            return fd;
    }
    return -1;
}

uint64_t fd_limit(void)
{
    struct proc *cur = proc_cur();
    uint64_t lim = cur->group->rlim[RLIMIT_NOFILE_].cur;
    return lim < NFD_MAX ? lim : NFD_MAX;
}

uint64_t anon_ino(void)
{
    static uint64_t next = 10000;
    return ++next;
}

uint64_t file_ino(const struct file *f)
{
    if (f->ino)
        return f->ino->ino;
    if (f->pipe)
        return f->pipe->fifo ? f->pipe->fifo->ino : f->pipe->id;
    if (f->sock)
        return f->sock->id;
    return file_is_anon(f->type) ? 1 : f->id;
}

struct file *file_new(enum ftype t, struct inode *ino, int flags)
{
    struct file *f = kmalloc(sizeof(*f));
    if (f) {
        f->id = ino ? 0 : anon_ino();
        f->type = t;
        f->ino = ino;
        fs_hold(ino);
        f->flags = flags;
        f->refs = 1;
    }
    return f;
}

void file_put(struct file *f)
{
    if (!f || --f->refs > 0)
        return;
    if (f->type == F_INODE && f->ino && (f->ino->mode & S_IFMT) != S_IFCHR)
        fs_notify(0, 0, 0, f->ino, (f->flags & O_ACCMODE) ? IN_CLOSE_WRITE_ : IN_CLOSE_NOWRITE_, 0);
    fs_release(f->ino);
    if (f->epolled)
        epoll_forget(f);
    if (f->ep)
        epoll_free(f->ep);
    if (f->pipe && f->type == F_PIPE_R && (f->flags & O_ACCMODE) == 2)
        pipe_drop(f->pipe, 0); /* a named pipe opened O_RDWR is its writer too */
    if (f->pipe)
        pipe_drop(f->pipe, f->type == F_PIPE_R);
    if (f->sock)
        sock_close(f->sock);
    if (f->timer)
        ktimer_free(f->timer);
    if (f->in)
        inotify_free(f->in);
    if (f->pty)
        pty_close(f);
    if (f->type == F_INODE) {
        dnotify_forget(f);
        flock_forget(f);
    }
    kfree(f, sizeof(*f));
}

int fd_install(struct file *f, int from, int cloexec)
{
    struct proc *cur = proc_cur();
    uint64_t lim = fd_limit();
    for (uint64_t i = from < 0 ? 0 : (uint64_t)from; i < lim; i++) {
        if (!files_fd(cur->files, i)) {
            if (files_set(cur->files, i, f) < 0)
                return -ENOMEM;
            fd_set_cloexec((int)i, cloexec);
            return (int)i;
        }
    }
    return -EMFILE;
}

void fd_close(struct proc *p, int fd)
{
    struct file *f = files_fd(p->files, (uint64_t)fd);
    if (!f)
        return;
    files_set(p->files, (uint64_t)fd, 0);
    p->files->cloexec[fd / 64] &= ~(1ULL << (fd % 64));
    if (f->type == F_INODE && f->ino && p->group)
        flock_close_posix(f->ino, p->group->pid); /* POSIX: any close lets the process's locks on it go */
    file_put(f);
}

struct file *fd_get(uint64_t fd)
{
    struct proc *cur = proc_cur();
    return files_fd(cur->files, fd);
}

struct file *file_hold(struct file *f)
{
    struct proc *cur = proc_cur();
    if (f) {
        f->refs++;
        cur->held = f;
    }
    return f;
}

struct file *fd_hold(uint64_t fd)
{
    return file_hold(fd_get(fd));
}

void file_unhold(struct file *f)
{
    struct proc *cur = proc_cur();
    cur->held = 0;
    file_put(f);
}

static void files_free(struct files *t)
{
    for (int i = 0; i < NFD_MAX / FD_CHUNK; i++)
        if (t->chunk[i])
            kpage_free(t->chunk[i]);
    fs_release(t->cwd);
    kfree(t, sizeof(*t));
}

struct files *files_new(struct inode *cwd, const struct files *from)
{
    _Static_assert(sizeof(struct files) <= 2048, "struct files comes from kmalloc");
    struct files *t = kmalloc(sizeof(*t));
    if (!t)
        return 0;
    t->refs = 1;
    t->umask = from ? from->umask : 022;
    t->cwd = from ? from->cwd : cwd;
    fs_hold(t->cwd);
    for (int c = 0; from && c < NFD_MAX / FD_CHUNK; c++) {
        if (!from->chunk[c])
            continue;
        if (!(t->chunk[c] = kpage_alloc())) {
            files_free(t); /* nothing is held yet: the copies' references come last */
            return 0;
        }
        kmemcpy(t->chunk[c], from->chunk[c], PAGE_SIZE);
    }
    for (int fd = from ? files_next(t, 0) : -1; fd >= 0; fd = files_next(t, fd + 1))
        files_fd(t, (uint64_t)fd)->refs++;
    if (from)
        kmemcpy(t->cloexec, from->cloexec, sizeof(t->cloexec));
    return t;
}

void files_put(struct proc *p)
{
    struct files *t = p->files;
    if (!t)
        return;
    if (--t->refs == 0) {
        for (int fd = files_next(t, 0); fd >= 0; fd = files_next(t, fd + 1))
            fd_close(p, fd);
        files_free(t);
    }
    p->files = 0;
}

long anon_install(struct file *f, uint64_t flags)
{
    if (!f)
        return -ENOMEM;
    int fd = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
    if (fd < 0)
        file_put(f);
    return fd;
}

long file_read(struct file *f, uint64_t buf, uint64_t n)
{
    uint8_t tmp[512];
    if ((f->flags & O_ACCMODE) == 1)
        return -EBADF;
    if (f->type == F_STDIN)
        return 0; /* no stdin given: end of file */
    if (f->type == F_PIPE_R)
        return pipe_read(f->pipe, f->flags & O_NONBLOCK_, buf, n);
    if (f->type == F_EVENT)
        return eventfd_rw(f, buf, n, 0);
    if (f->type == F_SOCK)
        return sock_io(f, buf, n, 0, 0);
    if (f->type == F_SIGNALFD)
        return signalfd_read(f, buf, n);
    if (f->type == F_TIMERFD)
        return timerfd_read(f, buf, n);
    if (f->type == F_INOTIFY)
        return inotify_read(f, buf, n);
    if (f->type == F_PTM || f->type == F_PTS)
        return pty_read(f, buf, n);
    if (f->type != F_INODE)
        return -EBADF;
    if ((f->ino->mode & S_IFMT) == S_IFCHR)
        return dev_read(f->ino, buf, n);
    uint64_t done = 0;
    while (done < n) {
        uint64_t chunk = n - done > sizeof(tmp) ? sizeof(tmp) : n - done;
        int64_t got = fs_read(f->ino, f->off, tmp, chunk);
        if (got < 0)
            return done ? (long)done : got;
        if (got == 0)
            break;
        if (copy_user(buf + done, tmp, (uint64_t)got, 1) < 0)
            return done ? (long)done : -EFAULT;
        f->off += (uint64_t)got;
        done += (uint64_t)got;
        if ((uint64_t)got < chunk)
            break;
    }
    return (long)done;
}

long file_write(struct file *f, uint64_t buf, uint64_t n)
{
    uint8_t tmp[512];
    if (f->type == F_STDIN || f->type == F_EPOLL || ((f->type == F_INODE || f->type == F_PIPE_R) && (f->flags & O_ACCMODE) == 0))
        return -EBADF;
    if (f->type == F_PIPE_W || f->type == F_PIPE_R) /* the latter: a named pipe opened O_RDWR */
        return pipe_write(f->pipe, f->flags & O_NONBLOCK_, buf, n);
    if (f->type == F_EVENT)
        return eventfd_rw(f, buf, n, 1);
    if (f->type == F_SOCK)
        return sock_io(f, buf, n, 1, 0);
    if (f->type == F_INODE && (f->ino->mode & S_IFMT) == S_IFCHR)
        return (long)n; /* /dev/null, /dev/zero, /dev/random: writes vanish */
    if (f->type == F_OUT)
        return outbuf_write_user(f, buf, n);
    if (f->type == F_PTM || f->type == F_PTS)
        return pty_write(f, buf, n);
    if (f->type != F_INODE)
        return -EINVAL; /* a signalfd, a timerfd...: not written */
    uint64_t done = 0;
    while (done < n) {
        uint64_t chunk = n - done > sizeof(tmp) ? sizeof(tmp) : n - done;
        if (copy_user(buf + done, tmp, chunk, 0) < 0)
            return done ? (long)done : -EFAULT;
        if (f->flags & O_APPEND)
            f->off = f->ino->size;
        int64_t w = fs_write(f->ino, f->off, tmp, chunk);
        if (w < 0)
            return done ? (long)done : w;
        f->off += (uint64_t)w;
        done += chunk;
    }
    return (long)n;
}

void *file_page_shared(struct file *f, uint64_t prot, uint64_t flags, uint64_t off)
{
    struct proc *cur = proc_cur();
    if (!f || (prot & 2))
        return 0;
    /* a page of the read-only image never changes: any read-only mapping shares it, unpinned
     * (the image zero-fills a file's last page, as a mapping past the end reads) */
    void *lower = off < f->ino->size ? fs_page_lower(f->ino, off / PAGE_SIZE) : 0;
    if (lower)
        return lower;
    if (!((prot & 4) || (flags & 0x800)) || off + PAGE_SIZE > f->ino->size || mm_pin(cur->mm, f->ino) < 0)
        return 0;
    return fs_page(f->ino, off / PAGE_SIZE);
}
