/* Open files and descriptor tables: what a descriptor refers to (a file-system node, a pipe
 * end, a socket, an epoll instance, an eventfd, the session's stdin or output), references,
 * close-on-exec, and read and write on any kind of file. */
#include "file.h"

#include "dev.h"
#include "epoll.h"
#include "fs.h"
#include "pipe.h"
#include "../lib/errno.h"
#include "../mm/page.h"
#include "../net/socket.h"
#include "../proc/proc.h"
#include "../proc/session.h"

void fd_set_cloexec(int fd, int on)
{
    struct proc *cur = proc_cur();
    if (on)
        cur->files->cloexec |= 1ULL << fd;
    else
        cur->files->cloexec &= ~(1ULL << fd);
}

struct file *file_new(enum ftype t, struct inode *ino, int flags)
{
    struct file *f = kmalloc(sizeof(*f));
    if (f) {
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
    kfree(f, sizeof(*f));
}

int fd_install(struct file *f, int from, int cloexec)
{
    struct proc *cur = proc_cur();
    for (int i = from; i < NFD; i++) {
        if (!cur->files->fd[i]) {
            cur->files->fd[i] = f;
            fd_set_cloexec(i, cloexec);
            return i;
        }
    }
    return -EMFILE;
}

void fd_close(struct proc *p, int fd)
{
    file_put(p->files->fd[fd]);
    p->files->fd[fd] = 0;
    p->files->cloexec &= ~(1ULL << fd);
}

struct file *fd_get(uint64_t fd)
{
    struct proc *cur = proc_cur();
    return fd < NFD ? cur->files->fd[fd] : 0;
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

struct files *files_new(struct inode *cwd, const struct files *from)
{
    struct files *t = kmalloc(sizeof(*t));
    if (!t)
        return 0;
    t->refs = 1;
    t->cwd = from ? from->cwd : cwd;
    fs_hold(t->cwd);
    if (from) {
        for (int i = 0; i < NFD; i++)
            if ((t->fd[i] = from->fd[i]))
                t->fd[i]->refs++;
        t->cloexec = from->cloexec;
    }
    return t;
}

void files_put(struct proc *p)
{
    struct files *t = p->files;
    if (!t)
        return;
    if (--t->refs == 0) {
        for (int i = 0; i < NFD; i++)
            fd_close(p, i);
        fs_release(t->cwd);
        kfree(t, sizeof(*t));
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
