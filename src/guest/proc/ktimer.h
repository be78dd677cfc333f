/* Kernel timers: timerfds and POSIX timers (timer_create). An armed timer expires at a time
 * since boot (one set on CLOCK_REALTIME is converted when it is armed), then every `every` ns
 * when it has an interval. The scheduler checks them at each step (ktimer_check, from
 * sessions_check) and the idle timer wakes for the first one (ktimer_next, from
 * next_deadline), so expiries are at the tick's resolution and never early. At expiry a
 * timerfd counts it and wakes its readers and pollers; a POSIX timer sends its signal, and
 * expiries while that signal is still pending are its overrun. Timers are kmalloc'd and
 * listed together; a POSIX timer belongs to its process and goes with it (and at execve). */
#ifndef LEL_GUEST_PROC_KTIMER_H
#define LEL_GUEST_PROC_KTIMER_H

#include <stdint.h>

struct file;

struct ktimer {
    struct ktimer *next;   /* every timer */
    uint64_t at, every;    /* kernel_ns() of the next expiry (0: disarmed); the interval (0: none) */
    uint64_t fired;        /* a timerfd's expiries not yet read */
    uint64_t seq;          /* changes at each expiry (edge-triggered epoll) */
    int clock;             /* CLOCK_REALTIME (0), MONOTONIC (1), BOOTTIME (7), and their _ALARM kinds */
    int owner, id;         /* a POSIX timer: its process's pid and its id (0..); owner 0: a timerfd */
    int signo, notify, tid; /* SIGEV_SIGNAL (0) to the process, SIGEV_NONE (1), SIGEV_THREAD_ID (4) to tid */
    int overrun;           /* expiries while its signal was pending, as of when it was last taken */
    int missed;            /* ... counting since it was sent */
    uint64_t value;        /* sigev_value */
};

/* Whether `clock` can drive a timer; a timer's idea of now on it (ns). */
int ktimer_clock_ok(int clock);
int64_t ktimer_clock_now(int clock);

/* A new, disarmed timer; NULL when out of memory. */
struct ktimer *ktimer_new(int clock);
void ktimer_free(struct ktimer *t);

/* Arms `t` to expire `first` ns from now (0: disarms it), then every `every` ns. */
void ktimer_set(struct ktimer *t, uint64_t first, uint64_t every);

/* ns until `t` expires next; 0 when disarmed. */
uint64_t ktimer_left(const struct ktimer *t);

void ktimer_check(void);
uint64_t ktimer_next(void);

/* Process `pid`'s POSIX timer `id`; NULL when it has none such. */
struct ktimer *ktimer_find(int pid, int id);

/* The smallest id process `pid` does not use for a timer; -1 past KTIMER_PER_PROC. */
#define KTIMER_PER_PROC 64
int ktimer_free_id(int pid);

/* A POSIX timer's signal is taken (delivered, or waited for): the expiries since it was sent
 * become the timer's overrun, which this returns (timer_getoverrun, si_overrun). */
int ktimer_signal_taken(int pid, int id);

/* Process `pid` ended or exec'd: its POSIX timers go. */
void ktimer_owner_gone(int pid);

/* A timerfd's read: the count of expiries since the last read (8 bytes), waiting for one
 * unless O_NONBLOCK; and what it is ready for (poll's revents). */
long timerfd_read(struct file *f, uint64_t buf, uint64_t n);
uint32_t timerfd_events(const struct file *f);

#endif
