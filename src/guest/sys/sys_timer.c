/* Timers with descriptors and POSIX timers: timerfd_create/settime/gettime and
 * timer_create/settime/gettime/getoverrun/delete, over the kernel timers (proc/ktimer.c). */
#include "syscall.h"

#include "../fs/file.h"
#include "../lib/errno.h"
#include "../proc/ktimer.h"
#include "../proc/proc.h"

/* struct itimerspec {interval, value}, each {tv_sec, tv_nsec} */
static long its_in(uint64_t u, uint64_t *every, uint64_t *value, int64_t *abs)
{
    int64_t v[4];
    if (copy_user(u, v, sizeof(v), 0) < 0)
        return -EFAULT;
    for (int i = 0; i < 4; i += 2)
        if (v[i] < 0 || v[i + 1] < 0 || v[i + 1] >= 1000000000)
            return -EINVAL;
    *every = span_ns(v[0], v[1]);
    *value = span_ns(v[2], v[3]);
    *abs = v[2] * 1000000000 + v[3];
    return 0;
}

static long its_out(uint64_t u, const struct ktimer *t)
{
    uint64_t left = ktimer_left(t);
    int64_t v[4] = {(int64_t)(t->every / 1000000000), (int64_t)(t->every % 1000000000), (int64_t)(left / 1000000000),
                    (int64_t)(left % 1000000000)};
    return u ? copy_user(u, v, sizeof(v), 1) : 0;
}

/* Arms `t` from a user itimerspec (`abs`: its value a time on the timer's clock), the old
 * setting first into `uold`. */
static long arm(struct ktimer *t, int abs, uint64_t unew, uint64_t uold)
{
    uint64_t every, value;
    int64_t at;
    long r = its_in(unew, &every, &value, &at);
    if (r < 0)
        return r;
    if ((r = its_out(uold, t)) < 0)
        return r;
    if (value && abs) { /* a time already past expires at once */
        int64_t now = ktimer_clock_now(t->clock);
        value = at > now ? (uint64_t)(at - now) : 1;
    }
    ktimer_set(t, value, every);
    return 0;
}

static struct ktimer *timerfd_of(uint64_t fd, long *err)
{
    struct file *f = fd_get(fd);
    *err = !f ? -EBADF : f->type != F_TIMERFD ? -EINVAL : 0;
    return *err ? 0 : f->timer;
}

/* timerfd_create(clock, flags): TFD_NONBLOCK, TFD_CLOEXEC. */
static long sys_timerfd_create(uint64_t clock, uint64_t flags)
{
    if (!ktimer_clock_ok((int)clock))
        return -EINVAL;
    if (flags & ~(uint64_t)(O_NONBLOCK_ | O_CLOEXEC_))
        return -EINVAL;
    struct file *f = file_new(F_TIMERFD, 0, (int)(flags & O_NONBLOCK_));
    if (f && !(f->timer = ktimer_new((int)clock))) {
        file_put(f);
        return -ENOMEM;
    }
    return anon_install(f, flags);
}

/* timer_create(clock, sigevent, id): SIGEV_SIGNAL (the default: SIGALRM with the id as its
 * value), SIGEV_NONE, SIGEV_THREAD_ID (glibc's SIGEV_THREAD comes as this). */
static long sys_timer_create(uint64_t clock, uint64_t usev, uint64_t uid)
{
    struct proc *g = proc_cur()->group;
    int64_t sev[2] = {0, 14}; /* sigev_value; sigev_signo (low half), sigev_notify (high) */
    int32_t tid = 0;
    if (!ktimer_clock_ok((int)clock))
        return -EINVAL;
    if (usev && (copy_user(usev, sev, sizeof(sev), 0) < 0 || copy_user(usev + 16, &tid, 4, 0) < 0))
        return -EFAULT;
    int signo = (int)(int32_t)sev[1], notify = (int)(sev[1] >> 32), id = ktimer_free_id(g->pid);
    if (notify != 0 && notify != 1 && notify != 4)
        return -EINVAL;
    if (notify != 1 && (signo <= 0 || signo >= 64))
        return -EINVAL;
    if (id < 0)
        return -EAGAIN;
    struct ktimer *t = ktimer_new((int)clock);
    if (!t)
        return -EAGAIN;
    *t = (struct ktimer){t->next, 0, 0, 0, 0, (int)clock, g->pid, id, signo, notify, tid, 0, 0, usev ? (uint64_t)sev[0] : (uint64_t)id};
    int32_t out = id;
    if (copy_user(uid, &out, 4, 1) < 0) {
        ktimer_free(t);
        return -EFAULT;
    }
    return 0;
}

static struct ktimer *posix_of(uint64_t id)
{
    return ktimer_find(proc_cur()->group->pid, (int)id);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_timerfd_create(const struct sysargs *s)
{
    return sys_timerfd_create(s->a, s->b);
}

long sc_timerfd_settime(const struct sysargs *s)
{
    long err;
    struct ktimer *t = timerfd_of(s->a, &err);
    if (!t)
        return err;
    if (s->b & ~3ULL) /* TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET (taken: the clock is never set under it) */
        return -EINVAL;
    return arm(t, s->b & 1, s->c, s->d);
}

long sc_timerfd_gettime(const struct sysargs *s)
{
    long err;
    struct ktimer *t = timerfd_of(s->a, &err);
    return t ? its_out(s->b, t) : err;
}

long sc_timer_create(const struct sysargs *s)
{
    return sys_timer_create(s->a, s->b, s->c);
}

long sc_timer_settime(const struct sysargs *s)
{
    struct ktimer *t = posix_of(s->a);
    return !t ? -EINVAL : (s->b & ~1ULL) ? -EINVAL : arm(t, s->b & 1, s->c, s->d); /* TIMER_ABSTIME */
}

long sc_timer_gettime(const struct sysargs *s)
{
    struct ktimer *t = posix_of(s->a);
    return t ? its_out(s->b, t) : -EINVAL;
}

long sc_timer_getoverrun(const struct sysargs *s)
{
    struct ktimer *t = posix_of(s->a);
    return t ? t->overrun : -EINVAL;
}

long sc_timer_delete(const struct sysargs *s)
{
    struct ktimer *t = posix_of(s->a);
    if (!t)
        return -EINVAL;
    ktimer_free(t);
    return 0;
}
