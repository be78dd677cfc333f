/* Time: clock_nanosleep until an absolute time (python's time.sleep), a sleep's remainder;
 * timerfds and POSIX timers (signals with their value and overrun, SIGEV_THREAD's thread). */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static volatile int alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static long ns_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
}

/* clock_nanosleep(TIMER_ABSTIME) on `clk` until 200 ms from now: it ends then, not later (a
 * sleep taken as a span from zero would last the uptime or for ever: the alarm cuts it short) */
static void sleep_until(clockid_t clk, const char *name)
{
    struct timespec t0, target, t1;
    clock_gettime(clk, &t0);
    target = t0;
    target.tv_nsec += 200000000;
    if (target.tv_nsec >= 1000000000) {
        target.tv_sec++;
        target.tv_nsec -= 1000000000;
    }
    alarm(5);
    int r = clock_nanosleep(clk, TIMER_ABSTIME, &target, NULL);
    alarm(0);
    clock_gettime(clk, &t1);
    long took = ns_between(&t0, &t1);
    say(name, r == 0 && ns_between(&target, &t1) >= 0 && took < 2000000000L, r ? r : took / 1000000);
}

static void timerfds(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {{0, 50000000}, {0, 100000000}}, cur;
    uint64_t n = 0;
    long t0 = mono_ms();
    int r = timerfd_settime(fd, 0, &its, NULL);
    long got = read(fd, &n, 8), took = mono_ms() - t0;
    say("timerfd: a read waits for the first expiry", r == 0 && got == 8 && n == 1 && took >= 95 && took < 1000, took);
    usleep(160000);
    got = read(fd, &n, 8);
    timerfd_gettime(fd, &cur);
    say("timerfd: its interval counts expiries", got == 8 && n >= 2 && n <= 4 && cur.it_interval.tv_nsec == 50000000, (long)n);
    memset(&its, 0, sizeof(its));
    timerfd_settime(fd, 0, &its, NULL);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    say("timerfd: disarmed, EAGAIN", read(fd, &n, 8) == -1 && errno == EAGAIN, errno);
    close(fd);
    fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    its.it_value = now;
    its.it_value.tv_nsec += 100000000;
    if (its.it_value.tv_nsec >= 1000000000) {
        its.it_value.tv_sec++;
        its.it_value.tv_nsec -= 1000000000;
    }
    timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
    struct pollfd p = {fd, POLLIN, 0};
    t0 = mono_ms();
    r = poll(&p, 1, 2000);
    took = mono_ms() - t0;
    say("timerfd at an absolute time, polled", r == 1 && took >= 80 && took < 1500, took);
    close(fd);
    fd = timerfd_create(CLOCK_BOOTTIME, 0);
    int ep = epoll_create1(0), wakes = 0;
    struct epoll_event ev = {EPOLLIN, {.fd = fd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    struct itimerspec every = {{0, 20000000}, {0, 20000000}};
    timerfd_settime(fd, 0, &every, NULL);
    for (int i = 0; i < 5; i++)
        if (epoll_wait(ep, &ev, 1, 1000) == 1 && read(fd, &n, 8) == 8)
            wakes++;
    say("timerfd in epoll", wakes == 5, wakes);
    close(ep);
    close(fd);
}

static volatile int timer_sigs, timer_val, timer_code, thread_calls;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    timer_sigs++;
    timer_val = si->si_value.sival_int;
    timer_code = si->si_code;
}

static void on_thread(union sigval v)
{
    if (v.sival_int == 9)
        thread_calls++;
}

static void posix_timers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    sev.sigev_value.sival_int = 7;
    timer_t t;
    struct itimerspec once = {{0, 0}, {0, 50000000}}, left;
    int r = timer_create(CLOCK_MONOTONIC, &sev, &t);
    r = r ? r : timer_settime(t, 0, &once, NULL);
    for (int i = 0; i < 100 && !timer_sigs; i++)
        usleep(10000);
    say("timer_create: its signal with its value", r == 0 && timer_sigs == 1 && timer_val == 7 && timer_code == SI_TIMER, timer_sigs);
    /* expiries while the signal is blocked (pending) are its overrun */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    struct itimerspec fast = {{0, 10000000}, {0, 10000000}}, off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &fast, NULL);
    usleep(200000);
    siginfo_t si;
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(&usr1, &si, &zero);
    int over = timer_getoverrun(t);
    timer_settime(t, 0, &off, NULL);
    say("timer overrun", sig == SIGUSR1 && si.si_code == SI_TIMER && over >= 5 && si.si_overrun == over, over);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    timer_settime(t, 0, &fast, NULL);
    timer_gettime(t, &left);
    say("timer_gettime", left.it_interval.tv_nsec == 10000000 && left.it_value.tv_nsec > 0 && left.it_value.tv_nsec <= 10000000,
        left.it_value.tv_nsec);
    say("timer_delete", timer_delete(t) == 0 && timer_delete(t) == -1 && errno == EINVAL, errno);
    sev.sigev_notify = SIGEV_THREAD; /* glibc's helper thread, which the kernel signals by its id */
    sev.sigev_notify_function = on_thread;
    sev.sigev_value.sival_int = 9;
    r = timer_create(CLOCK_REALTIME, &sev, &t);
    r = r ? r : timer_settime(t, 0, &once, NULL);
    for (int i = 0; i < 100 && !thread_calls; i++)
        usleep(10000);
    say("SIGEV_THREAD timer", r == 0 && thread_calls == 1, r ? r : thread_calls);
    timer_delete(t);
}

void time_checks(void)
{
    timerfds();
    posix_timers();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sleep_until(CLOCK_MONOTONIC, "clock_nanosleep absolute monotonic");
    sleep_until(CLOCK_REALTIME, "clock_nanosleep absolute realtime");

    struct timespec past = {0, 1000}, t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    say("clock_nanosleep absolute in the past", r == 0 && ns_between(&t0, &t1) < 50000000L, r);

    /* a relative sleep cut short by a handled signal: EINTR, and what is left in rem */
    struct itimerval it = {{0, 0}, {0, 100000}};
    struct timespec span = {1, 0}, rem = {0, 0};
    setitimer(ITIMER_REAL, &it, NULL);
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &span, &rem);
    say("clock_nanosleep interrupted: remainder", r == EINTR && rem.tv_sec == 0 && rem.tv_nsec > 500000000L,
        r == EINTR ? rem.tv_nsec / 1000000 : r);
    setitimer(ITIMER_REAL, &it, NULL);
    rem.tv_sec = rem.tv_nsec = 0;
    r = nanosleep(&span, &rem);
    say("nanosleep interrupted: remainder", r == -1 && errno == EINTR && rem.tv_sec == 0 && rem.tv_nsec > 500000000L,
        r == -1 ? rem.tv_nsec / 1000000 : r);
    r = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &span, NULL);
    say("clock_nanosleep on a thread's CPU clock EINVAL", r == EINVAL, r);
    say("alarms", alarms == 2, alarms);
}
