/* Stream sendmsg and recvmsg with descriptor passing; see scm.h. */
#include "scm.h"

#include "../fs/file.h"
#include "../fs/pipe.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "cmsg.h"
#include "socket.h"

#define MSG_WAITALL_ 0x100

/* The descriptors a control buffer passes (SOL_SOCKET/SCM_RIGHTS items, all of them together),
 * held, into `f` (PIPE_RIGHTS_MAX at most); credentials are taken and not used, other
 * SOL_SOCKET items are EINVAL and other levels are not looked at, as on Linux. */
static long rights_of(const uint64_t h[7], struct file **f, int *n)
{
    uint64_t p = h[4], end = h[4] + h[5];
    struct cmsg_in c;
    long r;
    *n = 0;
    while ((r = cmsg_next(&p, end, &c)) > 0) {
        if (c.level != SOL_SOCKET_ || c.type == SCM_CREDENTIALS_)
            continue;
        if (c.type != SCM_RIGHTS_ || c.len % 4 || *n + (int)(c.len / 4) > PIPE_RIGHTS_MAX)
            r = -EINVAL;
        for (uint64_t i = 0; r > 0 && i < c.len / 4; i++) {
            int32_t fd;
            struct file *x = copy_user(c.data + i * 4, &fd, 4, 0) < 0 ? 0 : fd_get((uint64_t)(int64_t)fd);
            if (!x) {
                r = -EBADF;
                break;
            }
            x->refs++;
            f[(*n)++] = x;
        }
        if (r < 0)
            break;
    }
    if (r < 0)
        while (*n)
            file_put(f[--*n]);
    return r;
}

/* Reads into (or writes from) the iovecs, `limit` bytes at most. */
static long io_upto(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg, uint64_t limit)
{
    long total = 0;
    if (cnt > 1024)
        return -EINVAL;
    for (uint64_t i = 0; i < cnt && (uint64_t)total < limit; i++) {
        uint64_t v[2];
        if (copy_user(iov + i * 16, v, 16, 0) < 0)
            return total ? total : -EFAULT;
        uint64_t want = v[1] < limit - (uint64_t)total ? v[1] : limit - (uint64_t)total;
        if (!want)
            continue;
        long r = sock_io(f, v[0], want, write, msg);
        if (r < 0)
            return total ? total : r;
        total += r;
        if ((uint64_t)r < want)
            break;
    }
    return total;
}

long scm_sendmsg(struct file *f, const uint64_t h[7], uint64_t msg)
{
    struct sock *s = f->sock;
    struct file *files[PIPE_RIGHTS_MAX];
    int n = 0;
    long r = s->family == AF_UNIX_ && h[5] ? rights_of(h, files, &n) : 0;
    if (r < 0)
        return r;
    struct pipe *p = s->tx;
    struct pipe_rights *rec = 0;
    if (n && p) {
        if (!(rec = kmalloc(sizeof(*rec) + (uint64_t)n * sizeof(rec->f[0])))) {
            while (n)
                file_put(files[--n]);
            return -ENOMEM;
        }
        rec->n = n;
        kmemcpy(rec->f, files, (uint64_t)n * sizeof(files[0]));
        rec->at = rec->end = p->taken + p->count;
    } else {
        while (n) /* nobody to receive them: the write fails (EPIPE) */
            file_put(files[--n]);
    }
    file_hold(f); /* while it may block */
    r = io_upto(f, h[2], h[3], 1, msg, ~0ULL);
    file_unhold(f);
    if (rec && (r <= 0 || s->tx != p)) {
        pipe_rights_free(rec);
    } else if (rec) {
        rec->end = rec->at + (uint64_t)r;
        if (p->rights_last)
            p->rights_last->next = rec;
        else
            p->rights = rec;
        p->rights_last = rec;
    }
    return r;
}

/* The records whose bytes were read without them (plain reads) go, with their files. */
static void rights_prune(struct pipe *p)
{
    while (p->rights && p->rights->at < p->taken) {
        struct pipe_rights *r = p->rights;
        p->rights = r->next;
        if (!p->rights)
            p->rights_last = 0;
        pipe_rights_free(r);
    }
}

/* What the records allow this read: it goes no further than the end of the first record after
 * the read position (as Linux, which stops after a message that brought descriptors), whose
 * files come with it when it reaches that record's bytes. */
static uint64_t rights_limit(struct pipe *p, struct pipe_rights **next)
{
    *next = p->rights;
    return p->rights ? p->rights->end - p->taken : ~0ULL;
}

/* The files of `r` for the reader (peek: copies, the record stays). */
static long rights_give(struct pipe *p, struct pipe_rights *r, struct cmsg_out *o, int cloexec, int peek)
{
    if (peek) {
        for (int i = 0; i < r->n; i++)
            r->f[i]->refs++;
        return cmsg_put_files(o, r->f, r->n, cloexec);
    }
    p->rights = r->next;
    if (!p->rights)
        p->rights_last = 0;
    long e = cmsg_put_files(o, r->f, r->n, cloexec); /* the references go to the descriptors */
    kfree(r, sizeof(*r) + (uint64_t)r->n * sizeof(r->f[0]));
    return e;
}

long scm_recvmsg(struct file *f, uint64_t umsg, const uint64_t h[7], uint64_t msg)
{
    struct sock *s = f->sock;
    struct pipe *p = s->rx;
    struct pipe_rights *take = 0;
    uint64_t from = 0;
    struct cmsg_out o;
    uint64_t limit = ~0ULL;
    long r = 0;
    cmsg_out_init(&o, h[4], h[5]);
    file_hold(f); /* while it may block */
    if (p && (p->rights || s->family == AF_UNIX_)) {
        /* wait for bytes first (or the end): what the records allow is known then */
        r = s->connected ? pipe_read(p, ((f->flags & O_NONBLOCK_) || (msg & MSG_DONTWAIT_)) ? O_NONBLOCK_ : 0,
                                     0, 0) : 0;
        rights_prune(p);
        limit = rights_limit(p, &take);
        from = p->taken;
    }
    if (r >= 0)
        r = io_upto(f, h[2], h[3], 0, limit != ~0ULL ? msg & ~(uint64_t)MSG_WAITALL_ : msg, limit);
    file_unhold(f);
    if (take && (r <= 0 || s->rx != p || from + (uint64_t)r <= take->at))
        take = 0; /* the read did not reach its bytes */
    if (take && rights_give(p, take, &o, (msg & MSG_CMSG_CLOEXEC_) != 0, (msg & MSG_PEEK_) != 0) < 0)
        return -EFAULT;
    if (r < 0)
        return r;
    uint32_t zero = 0;
    if (copy_user(umsg + 8, &zero, 4, 1) < 0 || copy_user(umsg + 40, &o.used, 8, 1) < 0 ||
        copy_user(umsg + 48, &o.flags, 4, 1) < 0)
        return -EFAULT; /* msg_namelen (a stream tells no address), msg_controllen, msg_flags */
    return r;
}
