/* File locks; see flock.h. */
#include "flock.h"

#include "file.h"
#include "fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

enum { LK_FLOCK, LK_POSIX, LK_OFD };
#define RD 0 /* F_RDLCK */
#define WR 1 /* F_WRLCK */
#define UN 2 /* F_UNLCK */
#define END_MAX UINT64_MAX

struct lk {
    struct lk *next;
    struct inode *ino; /* not held: every lock goes before its file does */
    int kind, type;
    int pid;           /* LK_POSIX: the owner (a process); flock and OFD: who took it (for F_GETLK: -1) */
    struct file *f;    /* LK_FLOCK, LK_OFD: the owner (an open file) */
    uint64_t start, end; /* bytes [start, end], end END_MAX: to the end of the file, however long */
};

static struct lk *locks; /* every lock: few, searched whole */

static int same_owner(const struct lk *l, int kind, const struct file *f, int pid)
{
    return kind == LK_POSIX ? l->kind == LK_POSIX && l->pid == pid : l->kind == kind && l->f == f;
}

/* A lock of another owner that `type` over [start, end] conflicts with, or NULL. */
static struct lk *conflict(struct inode *ino, int kind, const struct file *f, int pid, int type, uint64_t start, uint64_t end)
{
    for (struct lk *l = locks; l; l = l->next) {
        if (l->ino != ino || (kind == LK_FLOCK) != (l->kind == LK_FLOCK) || same_owner(l, kind, f, pid))
            continue;
        if (l->start <= end && start <= l->end && (type == WR || l->type == WR))
            return l;
    }
    return 0;
}

static void lk_free(struct lk **pp)
{
    struct lk *l = *pp;
    *pp = l->next;
    kfree(l, sizeof(*l));
}

static struct lk *lk_new(struct inode *ino, int kind, struct file *f, int pid, int type, uint64_t start, uint64_t end)
{
    struct lk *l = kmalloc(sizeof(*l));
    if (l) {
        *l = (struct lk){locks, ino, kind, type, pid, f, start, end};
        locks = l;
    }
    return l;
}

/* The owner's locks over [start, end] go (a lock that reaches past either end keeps that part). */
static long unlock_range(struct inode *ino, int kind, struct file *f, int pid, uint64_t start, uint64_t end)
{
    for (struct lk **pp = &locks; *pp;) {
        struct lk *l = *pp;
        if (l->ino != ino || !same_owner(l, kind, f, pid) || l->end < start || end < l->start) {
            pp = &l->next;
            continue;
        }
        if (l->start < start && l->end > end) { /* it splits: the part past `end` is a lock of its own */
            if (!lk_new(ino, l->kind, l->f, l->pid, l->type, end + 1, l->end))
                return -ENOMEM;
            l->end = start - 1;
            pp = &l->next; /* (the new one went to the front) */
        } else if (l->start < start) {
            l->end = start - 1;
            pp = &l->next;
        } else if (l->end > end) {
            l->start = end + 1;
            pp = &l->next;
        } else {
            lk_free(pp);
        }
    }
    wake(W_PIPE, 0); /* waiters look again */
    return 0;
}

/* Takes (or changes, or with UN drops) the owner's lock over [start, end]; waits while another
 * owner's conflicts unless `nb`. */
static long set_lock(struct inode *ino, int kind, struct file *f, int pid, int type, uint64_t start, uint64_t end, int nb)
{
    struct proc *cur = proc_cur();
    if (type == UN)
        return unlock_range(ino, kind, f, pid, start, end);
    while (conflict(ino, kind, f, pid, type, start, end)) {
        if (nb)
            return -EAGAIN;
        if (sig_ready(cur))
            return kind == LK_FLOCK ? -ERESTART_ : -EINTR;
        block(W_PIPE);
    }
    long r = unlock_range(ino, kind, f, pid, start, end);
    if (r < 0)
        return r;
    return lk_new(ino, kind, f, pid, type, start, end) ? 0 : -ENOMEM;
}

long flock_file(struct file *f, uint64_t op)
{
    int nb = (op & 4) != 0, how = (int)(op & ~4ULL); /* LOCK_NB */
    if (f->type != F_INODE || !f->ino)
        return 0; /* pipes, sockets...: Linux takes it too, and nobody else can reach them by name */
    if (how != 1 && how != 2 && how != 8) /* LOCK_SH, LOCK_EX, LOCK_UN */
        return -EINVAL;
    int type = how == 1 ? RD : how == 2 ? WR : UN;
    if (type != UN) /* a conversion lets the old lock go first, as Linux does */
        unlock_range(f->ino, LK_FLOCK, f, 0, 0, END_MAX);
    return set_lock(f->ino, LK_FLOCK, f, proc_cur()->group->pid, type, 0, END_MAX, nb);
}

/* struct flock's range as [start, end], from l_whence, l_start and l_len; -EINVAL when it
 * starts before the file. */
static long range_of(struct file *f, int whence, int64_t start, int64_t len, uint64_t *s, uint64_t *e)
{
    int64_t base = whence == 0 ? 0 : whence == 1 ? (int64_t)f->off : whence == 2 ? (int64_t)f->ino->size : -1;
    if (base < 0)
        return -EINVAL;
    int64_t a = base + start;
    if (len < 0) {
        a += len;
        len = -len;
    }
    if (a < 0)
        return -EINVAL;
    *s = (uint64_t)a;
    *e = len == 0 ? END_MAX : (uint64_t)a + (uint64_t)len - 1;
    return 0;
}

long flock_fcntl(struct file *f, uint64_t cmd, uint64_t uflock)
{
    struct {
        int16_t type, whence;
        int32_t pad;
        int64_t start, len;
        int32_t pid, pad2;
    } fl;
    uint64_t s, e;
    int ofd = cmd >= 36, pid = proc_cur()->group->pid;
    if (copy_user(uflock, &fl, sizeof(fl), 0) < 0)
        return -EFAULT;
    if (f->type != F_INODE || !f->ino || (fl.type != RD && fl.type != WR && fl.type != UN) || (ofd && fl.pid))
        return -EINVAL;
    long r = range_of(f, fl.whence, fl.start, fl.len, &s, &e);
    if (r < 0)
        return r;
    int kind = ofd ? LK_OFD : LK_POSIX;
    if (cmd == 5 || cmd == 36) { /* F_GETLK: the first lock that would be in the way */
        struct lk *l = fl.type == UN ? 0 : conflict(f->ino, kind, f, pid, fl.type, s, e);
        if (l) {
            fl.type = (int16_t)l->type;
            fl.whence = 0;
            fl.start = (int64_t)l->start;
            fl.len = l->end == END_MAX ? 0 : (int64_t)(l->end - l->start + 1);
            fl.pid = l->kind == LK_POSIX ? l->pid : -1;
        } else {
            fl.type = UN;
        }
        return copy_user(uflock, &fl, sizeof(fl), 1);
    }
    int acc = f->flags & O_ACCMODE;
    if ((fl.type == RD && acc == 1) || (fl.type == WR && acc == 0))
        return -EBADF; /* a read lock needs the file open for reading, a write lock for writing */
    return set_lock(f->ino, kind, f, pid, fl.type, s, e, cmd == 6 || cmd == 37);
}

void flock_close_posix(struct inode *ino, int pid)
{
    for (struct lk *l = locks; l; l = l->next)
        if (l->ino == ino && l->kind == LK_POSIX && l->pid == pid) {
            unlock_range(ino, LK_POSIX, 0, pid, 0, END_MAX);
            return;
        }
}

void flock_forget(struct file *f)
{
    int gone = 0;
    for (struct lk **pp = &locks; *pp;)
        if ((*pp)->kind != LK_POSIX && (*pp)->f == f) {
            lk_free(pp);
            gone = 1;
        } else {
            pp = &(*pp)->next;
        }
    if (gone)
        wake(W_PIPE, 0);
}
