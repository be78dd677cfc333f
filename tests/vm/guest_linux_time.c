/* Time: clock_nanosleep until an absolute time (python's time.sleep), a sleep's remainder. */
#include "guest_linux.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
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

void time_checks(void)
{
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
