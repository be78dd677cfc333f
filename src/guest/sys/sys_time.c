/* Syscalls on time: clocks, sleeps, interval timers (alarm, setitimer), times, futexes (sleeping
 * until a word changes), and getrandom. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../fs/dev.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../lib/rng.h"
#include "../mm/vm.h"
#include "../proc/futex_pi.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

/* The interval timers (alarm, setitimer, getitimer): ITIMER_REAL on the clock, kept in ticks;
 * ITIMER_VIRTUAL and ITIMER_PROF on the process's CPU time (both the same time here, which is
 * not split into user and system), kept in ns (proc/session.c sends their signals). Values are
 * struct timeval pairs {interval, value}. */
static uint64_t tv_ns(const int64_t tv[2])
{
    return span_ns(tv[0], tv[1] > 0 && tv[1] < 1000000000 ? tv[1] * 1000 : 0);
}

static void ns_tv(uint64_t ns, int64_t tv[2])
{
    uint64_t us = (ns + 999) / 1000; /* a value left rounds up, so an armed timer never reads 0 */
    tv[0] = (int64_t)(us / 1000000);
    tv[1] = (int64_t)(us % 1000000);
}

static void ticks_tv(uint64_t ticks, int64_t tv[2])
{
    ns_tv(ticks * kernel_tick_ns(), tv);
}

static long sys_cpu_itimer(int k, const int64_t *v, uint64_t uold)
{
    struct proc *g = proc_cur()->group;
    uint64_t c = proc_cpu(g);
    if (uold) {
        int64_t o[4];
        ns_tv(g->cpu_itv_every[k], o);
        ns_tv(g->cpu_itv_at[k] > c ? g->cpu_itv_at[k] - c : g->cpu_itv_at[k] ? 1 : 0, o + 2);
        if (copy_user(uold, o, sizeof(o), 1) < 0)
            return -EFAULT;
    }
    if (v) {
        uint64_t first = tv_ns(v + 2);
        g->cpu_itv_at[k] = first ? c + first : 0;
        g->cpu_itv_every[k] = first ? tv_ns(v) : 0;
    }
    return 0;
}

static long sys_setitimer(uint64_t which, uint64_t unew, uint64_t uold)
{
    struct proc *cur = proc_cur();
    int64_t v[4];
    uint64_t now = kernel_ticks();
    if (which > 2)
        return -EINVAL;
    if (unew && copy_user(unew, v, sizeof(v), 0) < 0)
        return -EFAULT;
    if (unew && (v[0] < 0 || v[2] < 0 || v[1] < 0 || v[1] >= 1000000 || v[3] < 0 || v[3] >= 1000000))
        return -EINVAL;
    if (which)
        return sys_cpu_itimer((int)which - 1, unew ? v : 0, uold);
    if (uold) {
        int64_t o[4];
        ticks_tv(cur->alarm_every, o);
        ticks_tv(cur->alarm_at > now ? cur->alarm_at - now : 0, o + 2);
        if (copy_user(uold, o, sizeof(o), 1) < 0)
            return -EFAULT;
    }
    if (unew) {
        uint64_t first = tv_ns(v + 2), every = tv_ns(v), tick = kernel_tick_ns();
        cur->alarm_at = first ? tick_after_ns(first) : 0;
        cur->alarm_every = first ? (every + tick - 1) / tick : 0;
    }
    return 0;
}

/* alarm: seconds left of the previous one, rounded to the nearest (at least 1 while armed), as
 * Linux says them */
static long sys_alarm(uint64_t secs)
{
    struct proc *cur = proc_cur();
    uint64_t at = cur->alarm_at * kernel_tick_ns(), now = kernel_ns();
    long left = !cur->alarm_at ? 0 : at > now + 500000000ULL ? (long)((at - now + 500000000ULL) / 1000000000ULL) : 1;
    cur->alarm_every = 0;
    cur->alarm_at = secs ? tick_after_ns(span_ns((int64_t)(secs < (1ULL << 32) ? secs : 1ULL << 32), 0)) : 0;
    return left;
}

/* times: user time (system time is not split off), its and its reaped children's, and the
 * clock, all in 1/100 s. */
static long sys_times(uint64_t ubuf)
{
    struct proc *cur = proc_cur();
    uint64_t t[4] = {proc_cpu(cur->group) / 10000000ULL, 0, cur->group->children_cpu_ns / 10000000ULL, 0};
    if (ubuf && copy_user(ubuf, t, sizeof(t), 1) < 0)
        return -EFAULT;
    return (long)(kernel_ns() / 10000000ULL);
}

/* A CPU-time clock named by id as glibc makes them (clock_getcpuclockid, pthread_getcpuclockid):
 * ~pid << 3, bit 2 for a thread's (pid then its tid, which must be of the caller's process, as
 * on Linux), and the kind in bits 0-1 (PROF, VIRT, SCHED: all the same CPU time here, which is
 * not split into user and system); pid 0 is the caller's. Negative, or -1 for no such one. */
static int64_t cpu_clock_ns(int64_t clk)
{
    struct proc *cur = proc_cur();
    int64_t id = ~(clk >> 3);
    if ((clk & 3) == 3)
        return -1;
    if (clk & 4) { /* a thread's */
        if (id == 0)
            return (int64_t)cpu_time(cur);
        for (int i = 0; i < MAX_PROCS; i++) {
            struct proc *t = &ptable.procs[i];
            if (t->pid == id && t->group == cur->group && (t->state == P_RUNNABLE || t->state == P_BLOCKED))
                return (int64_t)cpu_time(t);
        }
        return -1;
    }
    struct proc *p = id == 0 ? cur->group : id > 0 && id < (1LL << 31) ? proc_by_pid((int)id) : 0;
    return p ? (int64_t)proc_cpu(p) : -1;
}

/* The time on a clock, or -1 when there is no such clock. */
static int64_t clock_ns(int64_t clk)
{
    struct proc *cur = proc_cur();
    if (clk < 0)
        return cpu_clock_ns(clk);
    if (clk > 11 || clk == 10)
        return -1;
    return clk == 0 || clk == 5 || clk == 8 || clk == 11 ? proc_now_ns() /* REALTIME (and its kinds), TAI */
         : clk == 2 ? (int64_t)proc_cpu(cur->group)                      /* the process's CPU time */
         : clk == 3 ? (int64_t)cpu_time(cur)                             /* the thread's */
                    : (int64_t)kernel_ns();
}

static long sys_clock_gettime(uint64_t clk, uint64_t ts)
{
    int64_t ns = clock_ns((int32_t)clk);
    if (ns < 0)
        return -EINVAL;
    int64_t v[2] = {ns / 1000000000, ns % 1000000000};
    return copy_user(ts, v, sizeof(v), 1);
}

/* clock_settime: only the wall clock (CLOCK_REALTIME) can be set, by root, as on Linux; the
 * host sets it again when it restores the sandbox (its own clock is the truth). */
static long sys_clock_settime(uint64_t clk, uint64_t uts)
{
    int64_t v[2];
    if (clock_ns((int32_t)clk) < 0)
        return -EINVAL;
    if (copy_user(uts, v, sizeof(v), 0) < 0)
        return -EFAULT;
    if (clk != 0 || v[0] < 0 || v[1] < 0 || v[1] >= 1000000000)
        return -EINVAL;
    if (proc_cur()->group->uid[1] != 0)
        return -EPERM;
    proc_set_now_ns(v[0] * 1000000000 + v[1]);
    return 0;
}

/* getrandom and /dev/urandom: all that was asked, up to Linux's 32 MiB per call. */
static long sys_getrandom(uint64_t buf, uint64_t n)
{
    return dev_random_read(buf, n);
}

/* FUTEX_LOCK_PI (a time on the real-time clock), LOCK_PI2 (on the monotonic one, unless
 * FUTEX_CLOCK_REALTIME) and TRYLOCK_PI: proc/futex_pi.c. */
static long futex_lock_pi(uint64_t op, uint64_t uaddr, uint64_t utime)
{
    int cmd = (int)(op & 127);
    uint64_t deadline = 0;
    if (cmd != 8 && utime) {
        int64_t ts[2];
        if (copy_user(utime, ts, sizeof(ts), 0) < 0)
            return -EFAULT;
        if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
            return -EINVAL;
        uint64_t at = span_ns(ts[0], ts[1]);
        uint64_t now = cmd == 6 || (op & 256) ? (uint64_t)proc_now_ns() : kernel_ns();
        deadline = at > now ? tick_after_ns(at - now) : 0;
    }
    return futex_pi_lock(uaddr, cmd == 8, cmd != 8 && utime, deadline);
}

/* futex: WAIT and WAKE, with or without a bitset (any bitset matches any), and (CMP_)REQUEUE:
 * what glibc, musl and Go build their locks, condition variables and joins on. A futex is
 * named as futex_name says (FUTEX_PRIVATE_FLAG changes nothing: a shared mapping's word is
 * named by its page, anything else by the address space and address, as on Linux). */
static long sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t utime, uint64_t uaddr2, uint64_t val3)
{
    struct proc *cur = proc_cur();
    int cmd = (int)(op & 127); /* without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME */
    struct mm *space = 0, *space2 = 0;
    uint64_t key = uaddr & 3 ? 0 : futex_name(cur->mm, uaddr, &space), deadline = 0;
    if (!key)
        return uaddr & 3 ? -EINVAL : -EFAULT;
    uint32_t word;
    if (copy_user(uaddr, &word, sizeof(word), 0) < 0)
        return -EFAULT;
    if (cmd == 6 || cmd == 8 || cmd == 13) /* LOCK_PI, TRYLOCK_PI, LOCK_PI2 */
        return futex_lock_pi(op, uaddr, utime);
    if (cmd == 7) /* UNLOCK_PI */
        return futex_pi_unlock(uaddr);
    if (cmd == 1 || cmd == 10) /* WAKE, WAKE_BITSET */
        return futex_wake(space, key, val);
    if (cmd == 3 || cmd == 4) { /* REQUEUE, CMP_REQUEUE: wake `val`, move up to `utime` to uaddr2 */
        uint64_t key2 = uaddr2 & 3 ? 0 : futex_name(cur->mm, uaddr2, &space2);
        if (!key2)
            return -EFAULT;
        if (cmd == 4 && word != (uint32_t)val3)
            return -EAGAIN;
        long n = futex_wake(space, key, val);
        for (int i = 0; i < MAX_PROCS && utime; i++) {
            struct proc *t = &ptable.procs[i];
            if (t->state == P_BLOCKED && t->why == W_FUTEX && !t->futex_pi && t->futex_key == key && t->futex_mm == space) {
                t->futex_key = key2;
                t->futex_mm = space2;
                utime--;
                n++;
            }
        }
        return n;
    }
    if ((cmd != 0 && cmd != 9) || (cmd == 9 && !val3))
        return cmd == 9 ? -EINVAL : -ENOSYS;
    if (utime) { /* WAIT: a span; WAIT_BITSET: a time on the monotonic (or the real-time) clock */
        int64_t ts[2];
        if (copy_user(utime, ts, sizeof(ts), 0) < 0)
            return -EFAULT;
        if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
            return -EINVAL;
        uint64_t ns = span_ns(ts[0], ts[1]);
        if (cmd == 9) {
            uint64_t now = op & 256 ? (uint64_t)proc_now_ns() : kernel_ns();
            ns = ns > now ? ns - now : 0;
        }
        if (ns == 0)
            return word != (uint32_t)val ? -EAGAIN : -ETIMEDOUT;
        deadline = tick_after_ns(ns);
    }
    if (word != (uint32_t)val)
        return -EAGAIN;
    cur->futex_key = key;
    cur->futex_mm = space;
    cur->wake_tick = deadline;
    block(W_FUTEX);
    if (!cur->futex_key)
        return 0; /* woken by FUTEX_WAKE */
    cur->futex_key = 0;
    if (sig_ready(cur))
        return -EINTR;
    return deadline && kernel_ticks() >= deadline ? -ETIMEDOUT : 0; /* else a spurious wake-up */
}

/* Now on a clock that can be slept on: the wall clock (REALTIME, REALTIME_ALARM) or the time
 * since boot (MONOTONIC, BOOTTIME, BOOTTIME_ALARM); -1 for the others (the CPU-time clocks
 * among them: Linux refuses a thread's, and a process's is not kept as a deadline here). */
static int64_t sleep_clock_now(uint64_t clk)
{
    return clk == 0 || clk == 8 ? proc_now_ns() : clk == 1 || clk == 7 || clk == 9 ? (int64_t)kernel_ns() : -1;
}

/* nanosleep and clock_nanosleep: a span, or with TIMER_ABSTIME (flags bit 0) until a time on
 * `clk` (one already past returns at once). A handled signal ends it early with EINTR; a
 * relative sleep then leaves what was left of it in `urem` when given, as Linux does. */
static long sys_sleep(uint64_t clk, uint64_t flags, uint64_t ureq, uint64_t urem)
{
    struct proc *cur = proc_cur();
    int64_t ts[2], now = sleep_clock_now(clk);
    if (now < 0)
        return -EINVAL;
    if (copy_user(ureq, ts, sizeof(ts), 0) < 0)
        return -EFAULT;
    if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
        return -EINVAL;
    uint64_t ns = span_ns(ts[0], ts[1]);
    if (flags & 1) /* TIMER_ABSTIME */
        ns = ns > (uint64_t)now ? ns - (uint64_t)now : 0;
    if (ns == 0)
        return 0;
    uint64_t end = kernel_ns() + ns;
    while (kernel_ns() < end && !sig_ready(cur)) {
        cur->wake_tick = tick_after_ns(end - kernel_ns());
        block(W_SLEEP);
    }
    if (!sig_ready(cur))
        return 0;
    uint64_t left = end > kernel_ns() ? end - kernel_ns() : 0;
    int64_t rem[2] = {(int64_t)(left / 1000000000ULL), (int64_t)(left % 1000000000ULL)};
    if (!(flags & 1) && urem && copy_user(urem, rem, sizeof(rem), 1) < 0)
        return -EFAULT;
    return -EINTR;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_futex(const struct sysargs *s)
{
    return sys_futex(s->a, s->b, s->c, s->d, s->e, s->f);
}

long sc_nanosleep(const struct sysargs *s)
{
    return sys_sleep(1, 0, s->a, s->b); /* a span on the monotonic clock */
}

long sc_clock_nanosleep(const struct sysargs *s)
{
    return sys_sleep(s->a, s->b, s->c, s->d);
}

long sc_times(const struct sysargs *s)
{
    return sys_times(s->a);
}

long sc_alarm(const struct sysargs *s)
{
    return sys_alarm(s->a);
}

long sc_setitimer(const struct sysargs *s)
{
    return sys_setitimer(s->a, s->b, s->c);
}

long sc_getitimer(const struct sysargs *s)
{
    return s->a <= 2 ? sys_setitimer(s->a, 0, s->b) : -EINVAL; /* getitimer */
}

long sc_clock_getres(const struct sysargs *s)
{
    /* clock_getres: the clocks count nanoseconds */
    int64_t res[2] = {0, 1};
    if (clock_ns((int32_t)s->a) < 0)
        return -EINVAL;
    return s->b ? copy_user(s->b, res, sizeof(res), 1) : 0;
}

long sc_clock_settime(const struct sysargs *s)
{
    return sys_clock_settime(s->a, s->b);
}

long sc_gettimeofday(const struct sysargs *s)
{
    long ret;
    int64_t ns = proc_now_ns(), tv[2] = {ns / 1000000000, (ns % 1000000000) / 1000};
    ret = s->a ? copy_user(s->a, tv, sizeof(tv), 1) : 0;
    return ret;
}

long sc_time(const struct sysargs *s)
{
    /* time(tloc): also stored through tloc when given */
    long ret;
    int64_t t = proc_now_ns() / 1000000000;
    ret = s->a && copy_user(s->a, &t, 8, 1) < 0 ? -EFAULT : t;
    return ret;
}

long sc_clock_gettime(const struct sysargs *s)
{
    return sys_clock_gettime(s->a, s->b);
}

long sc_getrandom(const struct sysargs *s)
{
    return sys_getrandom(s->a, s->b);
}
