/* inotify; see inotify.h. */
#include "inotify.h"

#include "dnotify.h"
#include "file.h"
#include "fs.h"
#include "hwatch.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

struct iwatch {
    struct iwatch *next;
    struct inode *ino; /* held */
    int wd;
    uint32_t mask;
};

struct ievent {
    struct ievent *next;
    int32_t wd;
    uint32_t mask, cookie, len; /* len: the name's, with its NUL and padding (0: none) */
    char name[];
};

struct inotify {
    struct inotify *next; /* every instance */
    struct iwatch *watches;
    struct ievent *head, *tail;
    uint32_t nq, overflowed;
    uint64_t bytes, seq;
    int next_wd;
};

#define IN_EXCL_UNLINK_ 0x04000000
#define IN_MASK_CREATE_ 0x10000000
#define IN_MASK_ADD_ 0x20000000
#define IN_ONESHOT_ 0x80000000
#define IN_ALL_ 0xfff

static struct inotify *instances;

struct inotify *inotify_new(void)
{
    struct inotify *in = kmalloc(sizeof(*in));
    if (in) {
        in->next_wd = 1;
        in->next = instances;
        instances = in;
    }
    return in;
}

static uint64_t ev_size(uint32_t len)
{
    return sizeof(struct ievent) + len;
}

static void queue(struct inotify *in, int wd, uint32_t mask, uint32_t cookie, const char *name, uint64_t n)
{
    uint32_t len = n ? (uint32_t)((n + 1 + 15) & ~15ULL) : 0; /* NUL-terminated, padded to 16 as Linux does */
    struct ievent *t = in->tail;
    if (t && t->wd == wd && t->mask == mask && t->cookie == cookie && t->len == len &&
        (!n || (kstrnlen(t->name, len) == n && !kmemcmp(t->name, name, n))))
        return; /* the same as the last one, unread: once */
    struct ievent *e = 0;
    if (in->nq >= INOTIFY_QMAX) {
        if (in->overflowed)
            return;
        in->overflowed = 1;
        wd = -1, mask = IN_Q_OVERFLOW_, cookie = 0, len = 0, n = 0;
    }
    if (!(e = kmalloc(ev_size(len)))) /* (at most 16 + 272 bytes) */
        return;
    e->wd = wd;
    e->mask = mask;
    e->cookie = cookie;
    e->len = len;
    kmemcpy(e->name, name, n);
    if (in->tail)
        in->tail->next = e;
    else
        in->head = e;
    in->tail = e;
    in->nq++;
    in->bytes += 16 + len;
    in->seq++;
    wake(W_PIPE, 0);
}

/* A watch goes: IN_IGNORED for it, and its inode let go. */
static void unwatch(struct inotify *in, struct iwatch **pp)
{
    struct iwatch *w = *pp;
    *pp = w->next;
    queue(in, w->wd, IN_IGNORED_, 0, 0, 0);
    w->ino->watches--;
    fs_release(w->ino);
    kfree(w, sizeof(*w));
}

void inotify_free(struct inotify *in)
{
    while (in->watches) {
        struct iwatch *w = in->watches;
        in->watches = w->next;
        w->ino->watches--;
        fs_release(w->ino);
        kfree(w, sizeof(*w));
    }
    for (struct ievent *e = in->head, *next; e; e = next) {
        next = e->next;
        kfree(e, ev_size(e->len));
    }
    for (struct inotify **pp = &instances; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    kfree(in, sizeof(*in));
}

long inotify_watch(struct inotify *in, struct inode *ino, uint32_t mask)
{
    if (!(mask & IN_ALL_))
        return -EINVAL;
    for (struct iwatch *w = in->watches; w; w = w->next) {
        if (w->ino != ino)
            continue;
        if (mask & IN_MASK_CREATE_)
            return -EEXIST;
        w->mask = (mask & IN_MASK_ADD_ ? w->mask : 0) | (mask & ~IN_MASK_ADD_);
        return w->wd;
    }
    struct iwatch *w = kmalloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->ino = ino;
    w->wd = in->next_wd++;
    w->mask = mask & ~(IN_MASK_ADD_ | IN_MASK_CREATE_);
    w->next = in->watches;
    in->watches = w;
    fs_hold(ino);
    ino->watches++;
    return w->wd;
}

long inotify_unwatch(struct inotify *in, int wd)
{
    for (struct iwatch **pp = &in->watches; *pp; pp = &(*pp)->next)
        if ((*pp)->wd == wd) {
            unwatch(in, pp);
            return 0;
        }
    return -EINVAL;
}

/* An event for every watch on `ino` that asked for it (`name`: the entry it is about, in a
 * watched directory). A watch with IN_ONESHOT goes after its first. */
static void deliver(struct inode *ino, uint32_t mask, uint32_t cookie, const char *name, uint64_t n)
{
    for (struct inotify *in = instances; in; in = in->next)
        for (struct iwatch **pp = &in->watches; *pp;) {
            struct iwatch *w = *pp;
            if (w->ino != ino || !(w->mask & mask & IN_ALL_)) {
                pp = &w->next;
                continue;
            }
            queue(in, w->wd, mask & (IN_ALL_ | IN_ISDIR_), cookie, name, n);
            if (w->mask & IN_ONESHOT_)
                unwatch(in, pp);
            else
                pp = &w->next;
        }
}

/* The watches on `ino` go: it was removed for good (IN_DELETE_SELF, then IN_IGNORED). */
static void gone(struct inode *ino)
{
    deliver(ino, IN_DELETE_SELF_, 0, 0, 0);
    for (struct inotify *in = instances; in && ino->watches; in = in->next)
        for (struct iwatch **pp = &in->watches; *pp;)
            if ((*pp)->ino == ino)
                unwatch(in, pp);
            else
                pp = &(*pp)->next;
}

/* A write or a metadata change knows only its inode: each watched directory that has it as an
 * entry sees the event with that entry's name. */
static void to_parents(struct inode *node, uint32_t mask)
{
    for (struct inotify *in = instances; in; in = in->next)
        for (struct iwatch *w = in->watches; w; w = w->next) {
            if ((w->ino->mode & S_IFMT) != S_IFDIR || !(w->mask & mask))
                continue;
            const char *name;
            struct inode *child;
            for (uint64_t i = 2; fs_readdir(w->ino, i, &name, &child) == 0; i++) /* past "." and ".." */
                if (child == node)
                    queue(in, w->wd, mask, 0, name, kstrlen(name));
        }
}

void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie)
{
    hwatch_notify(dir, name, n, node, mask); /* the host's watches (E2B's WatchDir) */
    if (dir)
        dnotify_event(dir, mask);
    if (!instances)
        return;
    uint32_t isdir = node && (node->mode & S_IFMT) == S_IFDIR ? IN_ISDIR_ : 0;
    if (dir && dir->watches)
        deliver(dir, mask | isdir, cookie, name, n);
    else if (!dir && node)
        to_parents(node, mask);
    if (!node || !node->watches)
        return;
    if ((mask & IN_DELETE_) && node->nlink == 0) {
        gone(node);
        return;
    }
    uint32_t self = mask & (IN_MODIFY_ | IN_ATTRIB_ | IN_OPEN_ | IN_CLOSE_WRITE_ | IN_CLOSE_NOWRITE_ | IN_ACCESS_);
    self |= mask & IN_MOVED_FROM_ ? IN_MOVE_SELF_ : 0;
    if (self)
        deliver(node, self | (self & IN_MOVE_SELF_ ? 0 : isdir), 0, 0, 0);
}

long inotify_read(struct file *f, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    struct inotify *in = f->in;
    while (!in->head) {
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    uint64_t done = 0;
    while (in->head && done + 16 + in->head->len <= n) {
        struct ievent *e = in->head;
        if (copy_user(buf + done, &e->wd, 16, 1) < 0 || (e->len && copy_user(buf + done + 16, e->name, e->len, 1) < 0))
            return done ? (long)done : -EFAULT;
        done += 16 + e->len;
        in->head = e->next;
        if (!in->head)
            in->tail = 0;
        in->nq--;
        in->bytes -= 16 + e->len;
        if (e->mask == IN_Q_OVERFLOW_)
            in->overflowed = 0;
        kfree(e, ev_size(e->len));
    }
    return done ? (long)done : -EINVAL; /* the first event does not fit */
}

uint64_t inotify_queued(const struct inotify *in)
{
    return in->bytes;
}

uint32_t inotify_events(const struct file *f)
{
    return f->in->head ? 0x1 /* POLLIN */ : 0;
}

uint64_t inotify_seq(const struct inotify *in)
{
    return in->seq;
}
