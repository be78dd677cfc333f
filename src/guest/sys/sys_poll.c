/* Syscalls that wait for readiness: poll, ppoll, select, pselect6, epoll and eventfd. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../fs/epoll.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
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
    while (i < ep->n && (ep->it[i].f != f || ep->it[i].fd != (int32_t)fd))
        i++;
    switch (op) {
    case 1: /* EPOLL_CTL_ADD */
        if (i < ep->n)
            return -EEXIST;
        if (ep->n == EP_MAX)
            return -E_NOSPC;
        ep->it[ep->n++] = (struct epitem){f, (int32_t)fd, 0, 0, 0};
        f->epolled++;
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
    ep->it[i].events = ev.events & ~(1U << 28 | 1U << 29); /* EPOLLEXCLUSIVE, EPOLLWAKEUP: one CPU, no suspend */
    ep->it[i].data = ev.data;
    ep->it[i].seen = file_seq(f) - 1; /* what is ready now is reported once even when edge-triggered */
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
    if (e->type != F_EPOLL || max <= 0 || max > 1024)
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

static long poll_wait(struct pfd *p, uint64_t n, uint64_t deadline, int now)
{
    struct proc *cur = proc_cur();
    for (;;) {
        long ready = 0;
        for (uint64_t i = 0; i < n; i++) {
            struct file *f = p[i].fd < 0 ? 0 : fd_get((uint64_t)p[i].fd);
            if (p[i].fd < 0) {
                p[i].revents = 0;
                continue;
            }
            uint32_t ev = f ? file_events(f, 0) : POLLNVAL_;
            p[i].revents = (int16_t)(ev & ((uint16_t)p[i].events | POLLERR_ | POLLHUP_ | POLLNVAL_));
            ready += p[i].revents != 0;
        }
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
    struct pfd p[64];
    uint64_t deadline;
    int now;
    if (n > 64)
        return -EINVAL;
    if (n && copy_user(ufds, p, n * sizeof(p[0]), 0) < 0)
        return -EFAULT;
    long r = timeout_of(timeout_ms, ts, &deadline, &now);
    if (r < 0)
        return r;
    long ready = poll_wait(p, n, deadline, now);
    if (ready >= 0 && n && copy_user(ufds, p, n * sizeof(p[0]), 1) < 0)
        return -EFAULT;
    return ready;
}

/* epoll_wait, epoll_pwait and epoll_pwait2 (`ts`), as poll */
static long sys_epoll_timed(uint64_t epfd, uint64_t uevs, int64_t max, int64_t timeout_ms, uint64_t ts)
{
    uint64_t deadline;
    int now;
    long r = timeout_of(timeout_ms, ts, &deadline, &now);
    return r < 0 ? r : sys_epoll_wait(epfd, uevs, max, deadline, now);
}

/* select and pselect6 over poll_wait: fd_sets of the 64 descriptors a process can have. `tv`
 * is a struct timeval (select) or timespec (pselect6), 0 for none; pselect6's mask is not
 * applied. The sets come back holding the ready descriptors; the count of bits is returned. */
static long sys_select(uint64_t nfds, uint64_t urd, uint64_t uwr, uint64_t uex, uint64_t tv, int tv_is_ns)
{
    uint64_t set[3] = {0, 0, 0}, out[3] = {0, 0, 0};
    const uint64_t u[3] = {urd, uwr, uex};
    struct pfd p[64];
    uint64_t n = 0, deadline = 0;
    int now = 0;
    if ((int64_t)nfds < 0)
        return -EINVAL;
    for (int k = 0; k < 3; k++)
        if (u[k] && nfds && copy_user(u[k], &set[k], nfds < 64 ? (nfds + 7) / 8 : 8, 0) < 0)
            return -EFAULT;
    for (uint64_t fd = 0; fd < 64; fd++) {
        uint64_t bit = 1ULL << fd, any = (set[0] | set[1] | set[2]) & bit;
        if (fd >= nfds || !any)
            continue;
        if (!fd_get(fd))
            return -EBADF;
        p[n++] = (struct pfd){(int32_t)fd, (int16_t)((set[0] & bit ? 0x1 : 0) | (set[1] & bit ? 0x4 : 0) | (set[2] & bit ? 0x2 : 0)), 0};
    }
    if (tv) {
        int64_t t[2];
        if (copy_user(tv, t, sizeof(t), 0) < 0)
            return -EFAULT;
        long r = deadline_of(t[0], tv_is_ns ? t[1] : t[1] * 1000, &deadline, &now);
        if (r < 0)
            return r;
    }
    long ready = poll_wait(p, n, deadline, now), bits = 0;
    if (ready < 0)
        return ready;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t bit = 1ULL << p[i].fd;
        int16_t r = p[i].revents;
        out[0] |= (set[0] & bit) && (r & (0x1 | 0x8 | 0x10)) ? bit : 0;
        out[1] |= (set[1] & bit) && (r & (0x4 | 0x8)) ? bit : 0;
        out[2] |= (set[2] & bit) && (r & 0x2) ? bit : 0;
    }
    for (int k = 0; k < 3; k++) {
        for (uint64_t v = out[k]; v; v &= v - 1) /* freestanding: no popcount helper */
            bits++;
        if (u[k] && nfds && copy_user(u[k], &out[k], nfds < 64 ? (nfds + 7) / 8 : 8, 1) < 0)
            return -EFAULT;
    }
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
