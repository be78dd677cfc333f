/* Syscalls that wait for readiness: poll, ppoll, select, pselect6, epoll and eventfd. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../fs/epoll.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

static long sys_epoll_create(uint64_t flags)
{
    if (flags & ~(uint64_t)O_CLOEXEC_)
        return -EINVAL;
    struct file *f = file_new(F_EPOLL, 0, 0);
    if (!f || !(f->ep = epoll_new())) {
        file_put(f);
        return -ENOMEM;
    }
    return anon_install(f, flags);
}

static long sys_epoll_ctl(uint64_t epfd, uint64_t op, uint64_t fd, uint64_t uev)
{
    struct file *e = fd_get(epfd), *f = fd_get(fd);
    struct epevent ev = {0, 0};
    if (!e || !f)
        return -EBADF;
    if (e->type != F_EPOLL || e == f)
        return -EINVAL;
    if (f->type == F_INODE) /* regular files, directories, /dev/null: as on Linux, not pollable */
        return -EPERM;
    if (op != 2 && copy_user(uev, &ev, sizeof(ev), 0) < 0)
        return -EFAULT;
    struct epoll *ep = e->ep;
    uint32_t i = 0;
    while (i < ep->n && (ep_item(ep, i)->f != f || ep_item(ep, i)->fd != (int32_t)fd))
        i++;
    struct epitem *it = i < ep->n ? ep_item(ep, i) : 0, fresh = {f, (int32_t)fd, 0, 0, 0};
    long r;
    switch (op) {
    case 1: /* EPOLL_CTL_ADD */
        if (it)
            return -EEXIST;
        if ((r = epoll_add(ep, &fresh)) < 0)
            return r;
        it = ep_item(ep, i);
        break;
    case 2: /* EPOLL_CTL_DEL */
        if (i == ep->n)
            return -ENOENT;
        epoll_drop(ep, i);
        return 0;
    case 3: /* EPOLL_CTL_MOD */
        if (i == ep->n)
            return -ENOENT;
        break;
    default:
        return -EINVAL;
    }
    it->events = ev.events & ~(1U << 28 | 1U << 29); /* EPOLLEXCLUSIVE, EPOLLWAKEUP: one CPU, no suspend */
    it->data = ev.data;
    it->seen = file_seq(f) - 1; /* what is ready now is reported once even when edge-triggered */
    return 0;
}

/* The epoll_wait family, until `deadline` (a tick; 0: none), or not at all when `now` (the
 * signal mask of epoll_pwait is not applied, as for ppoll). */
static long sys_epoll_wait(uint64_t epfd, uint64_t uevs, int64_t max, uint64_t deadline, int now)
{
    struct proc *cur = proc_cur();
    struct file *e = fd_get(epfd);
    if (!e)
        return -EBADF;
    /* as Linux: up to as many events as an int's worth of bytes holds (the set, not this, bounds
     * what one call can return) */
    if (e->type != F_EPOLL || max <= 0 || max > EP_MAX_EVENTS)
        return -EINVAL;
    file_hold(e); /* while it waits */
    long got;
    while (!(got = epoll_collect(e->ep, uevs, max)) && !now && !(deadline && kernel_ticks() >= deadline)) {
        if (sig_ready(cur)) {
            got = -EINTR;
            break;
        }
        cur->wake_tick = deadline;
        block(W_PIPE);
    }
    file_unhold(e);
    return got;
}

static long sys_eventfd(uint64_t initval, uint64_t flags)
{
    if (flags & ~(uint64_t)(O_CLOEXEC_ | O_NONBLOCK_ | EFD_SEMAPHORE_))
        return -EINVAL;
    struct file *f = file_new(F_EVENT, 0, 2 | (int)(flags & O_NONBLOCK_)); /* O_RDWR */
    if (f) {
        f->count = (uint32_t)initval;
        f->semaphore = (flags & EFD_SEMAPHORE_) != 0;
    }
    return anon_install(f, flags);
}

/* poll: files are always ready; pipes when they have data, room, or lost their peer. Waits
 * (on any pipe change or tick) until something is ready or the deadline tick passes (0: no
 * deadline; `now`: do not wait). Returns how many entries have events, or -EINTR. */
struct pfd {
    int32_t fd;
    int16_t events, revents;
};

#define POLL_BATCH 64

/* One look at the caller's pollfd array of `n` entries, a batch at a time, each entry's revents
 * written back: how many have events, or -EFAULT. */
static long poll_scan(uint64_t ufds, uint64_t n)
{
    struct pfd p[POLL_BATCH];
    long ready = 0;
    for (uint64_t at = 0; at < n; at += POLL_BATCH) {
        uint64_t k = n - at < POLL_BATCH ? n - at : POLL_BATCH, u = ufds + at * sizeof(p[0]);
        if (copy_user(u, p, k * sizeof(p[0]), 0) < 0)
            return -EFAULT;
        for (uint64_t i = 0; i < k; i++) {
            struct file *f = p[i].fd < 0 ? 0 : fd_get((uint64_t)p[i].fd);
            uint32_t ev = p[i].fd < 0 ? 0 : f ? file_events(f, 0) : POLLNVAL_;
            p[i].revents = (int16_t)(ev & ((uint16_t)p[i].events | POLLERR_ | POLLHUP_ | POLLNVAL_));
            ready += p[i].revents != 0;
        }
        if (copy_user(u, p, k * sizeof(p[0]), 1) < 0)
            return -EFAULT;
    }
    return ready;
}

static long poll_wait(uint64_t ufds, uint64_t n, uint64_t deadline, int now)
{
    struct proc *cur = proc_cur();
    for (;;) {
        long ready = poll_scan(ufds, n);
        if (ready || now || (deadline && kernel_ticks() >= deadline))
            return ready;
        if (sig_ready(cur))
            return -EINTR;
        cur->wake_tick = deadline; /* 0 (no limit): only a pipe change wakes it */
        block(W_PIPE);
    }
}

/* A timeout as a deadline tick (0: none) and whether not to wait at all; -EINVAL when malformed. */
static long deadline_of(int64_t sec, int64_t nsec, uint64_t *deadline, int *now)
{
    if (sec < 0 || nsec < 0 || nsec >= 1000000000)
        return -EINVAL;
    *now = sec == 0 && nsec == 0;
    *deadline = *now ? 0 : tick_after_ns(span_ns(sec, nsec));
    return 0;
}

/* The same from poll's and epoll's forms: a timeout in ms (negative: none) or, when `ts` is not
 * 0, a struct timespec there. */
static long timeout_of(int64_t timeout_ms, uint64_t ts, uint64_t *deadline, int *now)
{
    *deadline = 0;
    *now = timeout_ms == 0;
    if (ts) {
        int64_t t[2];
        return copy_user(ts, t, sizeof(t), 0) < 0 ? -EFAULT : deadline_of(t[0], t[1], deadline, now);
    }
    if (timeout_ms > 0)
        *deadline = tick_after_ns((uint64_t)timeout_ms * 1000000);
    return 0;
}

static long sys_poll(uint64_t ufds, uint64_t n, int64_t timeout_ms, uint64_t ts)
{
    uint64_t deadline;
    int now;
    if (n > fd_limit())
        return -EINVAL; /* as on Linux: more entries than descriptors the process may have */
    long r = timeout_of(timeout_ms, ts, &deadline, &now);
    return r < 0 ? r : poll_wait(ufds, n, deadline, now);
}

/* epoll_wait, epoll_pwait and epoll_pwait2 (`ts`), as poll */
static long sys_epoll_timed(uint64_t epfd, uint64_t uevs, int64_t max, int64_t timeout_ms, uint64_t ts)
{
    uint64_t deadline;
    int now;
    long r = timeout_of(timeout_ms, ts, &deadline, &now);
    return r < 0 ? r : sys_epoll_wait(epfd, uevs, max, deadline, now);
}

/* select and pselect6: fd_sets of up to NFD_MAX descriptors (a larger nfds is cut to that, as
 * Linux cuts it to its table). `tv` is a struct timeval (select) or timespec (pselect6), 0 for
 * none; pselect6's mask is not applied. The sets come back holding the ready descriptors; the
 * count of bits is returned. */
#define FDSET_WORDS (NFD_MAX / 64)

/* One look at the descriptors in `in`: the ready ones into `out`; how many bits, or -EBADF. */
static long select_scan(uint64_t nfds, const uint64_t in[3][FDSET_WORDS], uint64_t out[3][FDSET_WORDS])
{
    static const uint32_t want[3] = {POLLIN_ | POLLERR_ | POLLHUP_, POLLOUT_ | POLLERR_, 0x2 /* POLLPRI */};
    long bits = 0;
    kmemset(out, 0, 3 * FDSET_WORDS * sizeof(uint64_t));
    for (uint64_t w = 0; w * 64 < nfds; w++) {
        for (uint64_t any = in[0][w] | in[1][w] | in[2][w]; any; any &= any - 1) {
            uint64_t bit = any & -any, fd = w * 64 + (uint64_t)__builtin_ctzll(any);
            struct file *f = fd_get(fd);
            if (!f)
                return -EBADF;
            uint32_t ev = file_events(f, 0);
            for (int k = 0; k < 3; k++)
                if ((in[k][w] & bit) && (ev & want[k])) {
                    out[k][w] |= bit;
                    bits++;
                }
        }
    }
    return bits;
}

static long sys_select(uint64_t nfds, uint64_t urd, uint64_t uwr, uint64_t uex, uint64_t tv, int tv_is_ns)
{
    struct proc *cur = proc_cur();
    uint64_t in[3][FDSET_WORDS], out[3][FDSET_WORDS], deadline = 0;
    const uint64_t u[3] = {urd, uwr, uex};
    int now = 0;
    if ((int64_t)nfds < 0)
        return -EINVAL;
    if (nfds > NFD_MAX)
        nfds = NFD_MAX;
    uint64_t bytes = (nfds + 7) / 8;
    kmemset(in, 0, sizeof(in));
    for (int k = 0; k < 3; k++)
        if (u[k] && bytes && copy_user(u[k], in[k], bytes, 0) < 0)
            return -EFAULT;
    if (nfds % 64) /* bits past nfds in its last word are not asked about */
        for (int k = 0; k < 3; k++)
            in[k][nfds / 64] &= (1ULL << (nfds % 64)) - 1;
    if (tv) {
        int64_t t[2];
        if (copy_user(tv, t, sizeof(t), 0) < 0)
            return -EFAULT;
        long r = deadline_of(t[0], tv_is_ns ? t[1] : t[1] * 1000, &deadline, &now);
        if (r < 0)
            return r;
    }
    long bits;
    for (;;) {
        bits = select_scan(nfds, (const uint64_t(*)[FDSET_WORDS])in, out);
        if (bits || now || (deadline && kernel_ticks() >= deadline))
            break;
        if (sig_ready(cur))
            return -EINTR;
        cur->wake_tick = deadline;
        block(W_PIPE);
    }
    if (bits < 0)
        return bits;
    for (int k = 0; k < 3; k++)
        if (u[k] && bytes && copy_user(u[k], out[k], bytes, 1) < 0)
            return -EFAULT;
    return bits;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_epoll_create(const struct sysargs *s)
{
    return (int)s->a <= 0 ? -EINVAL : sys_epoll_create(0);
}

long sc_epoll_create1(const struct sysargs *s)
{
    return sys_epoll_create(s->a);
}

long sc_epoll_ctl(const struct sysargs *s)
{
    return sys_epoll_ctl(s->a, s->b, s->c, s->d);
}

long sc_epoll_wait(const struct sysargs *s)
{
    return sys_epoll_timed(s->a, s->b, (int)s->c, (int)s->d, 0); /* epoll_wait, epoll_pwait */
}

long sc_epoll_pwait2(const struct sysargs *s)
{
    return s->d ? sys_epoll_timed(s->a, s->b, (int)s->c, 0, s->d) : sys_epoll_timed(s->a, s->b, (int)s->c, -1, 0); /* epoll_pwait2 */
}

long sc_eventfd(const struct sysargs *s)
{
    return sys_eventfd(s->a, 0);
}

long sc_eventfd2(const struct sysargs *s)
{
    return sys_eventfd(s->a, s->b);
}

long sc_poll(const struct sysargs *s)
{
    return sys_poll(s->a, s->b, (int64_t)(int)s->c, 0);
}

long sc_ppoll(const struct sysargs *s)
{
    return sys_poll(s->a, s->b, -1, s->c); /* ppoll */
}

long sc_select(const struct sysargs *s)
{
    return sys_select(s->a, s->b, s->c, s->d, s->e, 0);
}

long sc_pselect6(const struct sysargs *s)
{
    return sys_select(s->a, s->b, s->c, s->d, s->e, 1); /* pselect6 */
}
