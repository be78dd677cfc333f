/* Readiness of descriptors, eventfd and epoll. Go's runtime needs epoll as
 * soon as it polls a pipe (os/exec) and eventfd to wake its poller; libuv, tokio and asyncio
 * use the same pair.
 *
 * Everything that changes a pipe's or an eventfd's readiness bumps its `seq` and wakes W_PIPE
 * waiters; poll, select and epoll_wait sleep on W_PIPE. Edge-triggered epoll (EPOLLET) reports
 * an item when it is ready and its seq moved since the last report: every write to a pipe is
 * an edge, as on Linux, and a report that finds nothing new costs the caller one EAGAIN. */
#include "epoll.h"

#include "file.h"
#include "fs.h"
#include "inotify.h"
#include "pipe.h"
#include "pty.h"
#include "../lib/errno.h"
#include "../mm/page.h"
#include "../net/socket.h"
#include "../proc/ktimer.h"
#include "../proc/proc.h"
#include "../proc/session.h"
#include "../proc/signal.h"

static uint32_t epoll_ready(struct epoll *ep, int depth);

#define EPOLLONESHOT_ (1U << 30)
#define EPOLLET_ (1U << 31)

#define EVENTFD_MAX 0xfffffffffffffffeULL

static struct epoll *epolls;

uint64_t file_seq(const struct file *f)
{
    if (f->type == F_SOCK)
        return sock_seq(f->sock);
    if (f->type == F_OUT)
        return f->ob ? f->ob->rd : 0; /* the host's reads give room */
    if (f->type == F_SIGNALFD) /* what of its signals is pending, for the thread asking */
        return signalfd_events(f) ? 1 + (sig_pending_of(proc_cur()) & f->sigmask) : 0;
    if (f->type == F_PIDFD)
        return (uint64_t)proc_ended(f->pid);
    if (f->type == F_TIMERFD)
        return f->timer->seq;
    if (f->type == F_INOTIFY)
        return inotify_seq(f->in);
    if (f->type == F_PTM || f->type == F_PTS)
        return pty_seq(f);
    return f->pipe ? f->pipe->seq : f->type == F_EVENT ? f->seq : 0;
}

uint32_t file_events(struct file *f, int depth)
{
    switch (f->type) {
    case F_PIPE_R:
        return (f->pipe->count ? POLLIN_ : 0) | (f->pipe->writers ? 0 : POLLHUP_ | POLLRDHUP_);
    case F_PIPE_W:
        return f->pipe->readers == 0 ? POLLERR_ : pipe_room(f->pipe) ? POLLOUT_ : 0;
    case F_EVENT:
        return (f->count ? POLLIN_ : 0) | (f->count < EVENTFD_MAX ? POLLOUT_ : 0);
    case F_SOCK:
        return sock_events(f->sock);
    case F_SIGNALFD:
        return signalfd_events(f);
    case F_TIMERFD:
        return timerfd_events(f);
    case F_INOTIFY:
        return inotify_events(f);
    case F_PTM:
    case F_PTS:
        return pty_events(f);
    case F_PIDFD: /* readable once the process has ended */
        return proc_ended(f->pid) ? POLLIN_ : 0;
    case F_EPOLL: /* readable when an item is ready; nesting stops two levels down, as Linux's does at 4 */
        return depth < 2 && epoll_ready(f->ep, depth + 1) ? POLLIN_ : 0;
    case F_OUT: /* a streamed command's output waits while the host is behind */
        return POLLIN_ | (outbuf_writable(f->ob) ? POLLOUT_ : 0);
    default:
        return POLLIN_ | POLLOUT_;
    }
}

/* Whether item `it` has something to report, and what (0: nothing). */
static uint32_t epitem_events(const struct epitem *it, int depth)
{
    uint32_t ev = file_events(it->f, depth) & (it->events | POLLERR_ | POLLHUP_);
    if (!it->events || ((it->events & EPOLLET_) && it->seen == file_seq(it->f))) /* 0: a one-shot that fired */
        return 0;
    return ev;
}

static uint32_t epoll_ready(struct epoll *ep, int depth)
{
    for (uint32_t i = 0; i < ep->n; i++)
        if (epitem_events(ep_item(ep, i), depth))
            return 1;
    return 0;
}

void epoll_drop(struct epoll *ep, uint32_t i)
{
    ep_item(ep, i)->f->epolled--;
    *ep_item(ep, i) = *ep_item(ep, ep->n - 1);
    ep->n--;
}

void epoll_forget(struct file *f)
{
    for (struct epoll *ep = epolls; ep && f->epolled; ep = ep->next)
        for (uint32_t i = ep->n; i-- > 0;)
            if (ep_item(ep, i)->f == f)
                epoll_drop(ep, i);
}

void epoll_free(struct epoll *ep)
{
    while (ep->n)
        epoll_drop(ep, ep->n - 1);
    for (uint32_t k = 0; k < EP_MAX / EP_PER_PAGE; k++)
        if (ep->page[k])
            kpage_free(ep->page[k]);
    for (struct epoll **pp = &epolls; *pp; pp = &(*pp)->next)
        if (*pp == ep) {
            *pp = ep->next;
            break;
        }
    kfree(ep, sizeof(*ep));
}

long epoll_collect(struct epoll *ep, uint64_t uevs, int64_t max)
{
    long got = 0;
    for (uint32_t i = 0; i < ep->n && got < max; i++) {
        struct epitem *it = ep_item(ep, i);
        struct epevent out = {epitem_events(it, 0), it->data};
        if (!out.events)
            continue;
        if (copy_user(uevs + (uint64_t)got * sizeof(out), &out, sizeof(out), 1) < 0)
            return got ? got : -EFAULT;
        it->seen = file_seq(it->f);
        if (it->events & EPOLLONESHOT_)
            it->events = 0;
        got++;
    }
    return got;
}

long eventfd_rw(struct file *f, uint64_t buf, uint64_t n, int write)
{
    struct proc *cur = proc_cur();
    uint64_t v = 0;
    if (n < 8)
        return -EINVAL;
    if (write && copy_user(buf, &v, 8, 0) < 0)
        return -EFAULT;
    if (write && v == ~0ULL)
        return -EINVAL;
    while (write ? v > EVENTFD_MAX - f->count : f->count == 0) {
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    if (!write) {
        v = f->semaphore ? 1 : f->count;
        if (copy_user(buf, &v, 8, 1) < 0)
            return -EFAULT;
    }
    f->count = write ? f->count + v : f->count - v;
    f->seq++;
    wake(W_PIPE, 0);
    return 8;
}

struct epoll *epoll_new(void)
{
    struct epoll *ep = kmalloc(sizeof(*ep));
    if (ep) {
        ep->next = epolls;
        epolls = ep;
    }
    return ep;
}

int epoll_add(struct epoll *ep, const struct epitem *it)
{
    struct epitem **pg = &ep->page[ep->n / EP_PER_PAGE];
    if (ep->n == EP_MAX)
        return -E_NOSPC;
    if (!*pg && !(*pg = kpage_alloc()))
        return -ENOMEM;
    *ep_item(ep, ep->n++) = *it;
    it->f->epolled++;
    return 0;
}
