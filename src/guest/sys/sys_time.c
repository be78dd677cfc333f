#include "sys_time.h"

#include "../arch/arch.h"
#include "../fs/dev.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../lib/rng.h"
#include "../mm/vm.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

/* The real-time interval timer (alarm, setitimer, getitimer: ITIMER_REAL only; the CPU-time
 * ones, ITIMER_VIRTUAL and ITIMER_PROF, are refused). Values are struct timeval pairs
 * {interval, value}, kept in ticks. */
static uint64_t tv_ns(const int64_t tv[2])
{
    return span_ns(tv[0], tv[1] > 0 && tv[1] < 1000000000 ? tv[1] * 1000 : 0);
}

static void ticks_tv(uint64_t ticks, int64_t tv[2])
{
    uint64_t us = ticks * (kernel_tick_ns() / 1000);
    tv[0] = (int64_t)(us / 1000000);
    tv[1] = (int64_t)(us % 1000000);
}

long sys_setitimer(uint64_t which, uint64_t unew, uint64_t uold)
{
    int64_t v[4];
    uint64_t now = kernel_ticks();
    if (which != 0)
        return -EINVAL;
    if (unew && copy_user(unew, v, sizeof(v), 0) < 0)
        return -EFAULT;
    if (unew && (v[1] < 0 || v[1] >= 1000000 || v[3] < 0 || v[3] >= 1000000))
        return -EINVAL;
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

long sys_alarm(uint64_t secs)
{
    uint64_t at = cur->alarm_at * kernel_tick_ns(), now = kernel_ns();
    long left = !cur->alarm_at ? 0 : at > now + 500000000ULL ? (long)((at - now + 500000000ULL) / 1000000000ULL) : 1;
    cur->alarm_every = 0;
    cur->alarm_at = secs ? tick_after_ns(span_ns((int64_t)(secs < (1ULL << 32) ? secs : 1ULL << 32), 0)) : 0;
    return left;
}

long sys_times(uint64_t ubuf)
{
    uint64_t t[4] = {proc_cpu(cur->group) / 10000000ULL, 0, cur->group->children_cpu_ns / 10000000ULL, 0};
    if (ubuf && copy_user(ubuf, t, sizeof(t), 1) < 0)
        return -EFAULT;
    return (long)(kernel_ns() / 10000000ULL);
}

long sys_clock_gettime(uint64_t clk, uint64_t ts)
{
    if (clk > 11 || clk == 10)
        return -EINVAL; /* dynamic clocks (negative ids) included */
    int64_t ns = clk == 0 || clk == 5 || clk == 8 || clk == 11 ? proc_now_ns() /* REALTIME (and its kinds), TAI */
               : clk == 2 ? (int64_t)proc_cpu(cur->group)                      /* the process's CPU time */
               : clk == 3 ? (int64_t)cpu_time(cur)                             /* the thread's */
                                      : (int64_t)kernel_ns();
    int64_t v[2] = {ns / 1000000000, ns % 1000000000};
    return copy_user(ts, v, sizeof(v), 1);
}

long sys_getrandom(uint64_t buf, uint64_t n)
{
    return dev_random_read(buf, n);
}

long sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t utime, uint64_t uaddr2, uint64_t val3)
{
    int cmd = (int)(op & 127); /* without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME */
    uint64_t key = uaddr & 3 ? 0 : translate(cur->mm, uaddr, 0), deadline = 0;
    if (!key)
        return uaddr & 3 ? -EINVAL : -EFAULT;
    uint32_t word = *(volatile uint32_t *)DMAP(key);
    if (cmd == 1 || cmd == 10) /* WAKE, WAKE_BITSET */
        return futex_wake(key, val);
    if (cmd == 3 || cmd == 4) { /* REQUEUE, CMP_REQUEUE: wake `val`, move up to `utime` to uaddr2 */
        uint64_t key2 = uaddr2 & 3 ? 0 : translate(cur->mm, uaddr2, 0);
        if (!key2)
            return -EFAULT;
        if (cmd == 4 && word != (uint32_t)val3)
            return -EAGAIN;
        long n = futex_wake(key, val);
        for (int i = 0; i < MAX_PROCS && utime; i++)
            if (procs[i].state == P_BLOCKED && procs[i].why == W_FUTEX && procs[i].futex_key == key) {
                procs[i].futex_key = key2;
                utime--;
                n++;
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
    cur->wake_tick = deadline;
    block(W_FUTEX);
    if (!cur->futex_key)
        return 0; /* woken by FUTEX_WAKE */
    cur->futex_key = 0;
    if (sig_ready(cur))
        return -EINTR;
    return deadline && kernel_ticks() >= deadline ? -ETIMEDOUT : 0; /* else a spurious wake-up */
}

long sys_nanosleep(uint64_t ureq)
{
    int64_t ts[2];
    if (copy_user(ureq, ts, sizeof(ts), 0) < 0)
        return -EFAULT;
    if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000)
        return -EINVAL;
    cur->wake_tick = tick_after_ns(span_ns(ts[0], ts[1]));
    block(W_SLEEP);
    return sig_ready(cur) ? -EINTR : 0;
}
