/* Priority-inheritance futexes, as glibc's PTHREAD_PRIO_INHERIT mutexes use them: the word
 * holds the owner's tid, FUTEX_LOCK_PI waits for it and is handed it by FUTEX_UNLOCK_PI (or
 * the owner's end), TRYLOCK_PI does not wait, a timeout is absolute, and a signal's handler
 * runs without ending the wait. Raw calls check the word and errors Linux gives; pthread's
 * mutex checks what programs see. */
#include "guest_linux.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint32_t word;

static long pi(int op, const struct timespec *ts)
{
    return syscall(SYS_futex, &word, op, 0, ts, NULL, 0) == 0 ? 0 : -errno;
}

static uint32_t tid(void)
{
    return (uint32_t)syscall(SYS_gettid);
}

/* Sleeps until the word shows a waiter (FUTEX_WAITERS), at most a second; 1 when it did. */
static int waiter_shows(void)
{
    for (int i = 0; i < 200; i++) {
        if (word & FUTEX_WAITERS)
            return 1;
        usleep(5000);
    }
    return 0;
}

struct other {
    int op;        /* what the thread asks first: FUTEX_LOCK_PI, TRYLOCK_PI, UNLOCK_PI */
    long ret;      /* ... its answer */
    uint32_t tid;  /* the thread's */
    uint32_t seen; /* the word, right after */
    int hold_ms;   /* LOCK_PI: then holds it this long, and ends holding it or (unlock) not */
    int unlock;
    int timeout_ms;
};

static void *other_run(void *arg)
{
    struct other *o = arg;
    o->tid = tid();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += o->timeout_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    o->ret = pi(o->op, o->timeout_ms ? &ts : NULL);
    o->seen = word;
    if (o->op == FUTEX_LOCK_PI && o->ret == 0) {
        usleep((useconds_t)o->hold_ms * 1000);
        if (o->unlock)
            pi(FUTEX_UNLOCK_PI, NULL);
    }
    return NULL;
}

static void raw_calls(void)
{
    word = 0;
    say("LOCK_PI of a free word takes it", pi(FUTEX_LOCK_PI, NULL) == 0 && word == tid(), (long)word);
    say("LOCK_PI of one's own lock: EDEADLK", pi(FUTEX_LOCK_PI, NULL) == -EDEADLK, 0);
    pthread_t t;
    struct other o = {.op = FUTEX_TRYLOCK_PI};
    pthread_create(&t, NULL, other_run, &o);
    pthread_join(t, NULL);
    say("TRYLOCK_PI of a held lock: EAGAIN, the owner unchanged", o.ret == -EAGAIN && (word & FUTEX_TID_MASK) == tid(), o.ret);
    o = (struct other){.op = FUTEX_UNLOCK_PI};
    pthread_create(&t, NULL, other_run, &o);
    pthread_join(t, NULL);
    say("UNLOCK_PI by another thread: EPERM", o.ret == -EPERM, o.ret);
    long t0 = mono_ms();
    o = (struct other){.op = FUTEX_LOCK_PI, .timeout_ms = 60};
    pthread_create(&t, NULL, other_run, &o);
    pthread_join(t, NULL);
    long waited = mono_ms() - t0;
    say("LOCK_PI with a deadline: ETIMEDOUT, not before it", o.ret == -ETIMEDOUT && waited >= 55 && waited < 2000, o.ret == -ETIMEDOUT ? waited : o.ret);
    o = (struct other){.op = FUTEX_LOCK_PI};
    pthread_create(&t, NULL, other_run, &o);
    int shows = waiter_shows();
    say("a waiter sets FUTEX_WAITERS in the word", shows && (word & FUTEX_TID_MASK) == tid(), (long)word);
    long un = pi(FUTEX_UNLOCK_PI, NULL);
    pthread_join(t, NULL);
    say("UNLOCK_PI hands the lock to the waiter", un == 0 && o.ret == 0 && (o.seen & FUTEX_TID_MASK) == o.tid, o.ret);
    say("... which ended holding it", (word & FUTEX_TID_MASK) == o.tid, (long)word);
    word = 0;
    say("UNLOCK_PI of a free word: EPERM", pi(FUTEX_UNLOCK_PI, NULL) == -EPERM, 0);
}

/* The owner ends while a thread waits: the waiter gets the lock. */
static void owner_ends(void)
{
    word = 0;
    pthread_t t;
    struct other o = {.op = FUTEX_LOCK_PI, .hold_ms = 150};
    pthread_create(&t, NULL, other_run, &o);
    for (int i = 0; i < 200 && !(word & FUTEX_TID_MASK); i++)
        usleep(2000);
    long r = pi(FUTEX_LOCK_PI, NULL);
    pthread_join(t, NULL);
    say("the owner ends: its waiter gets the lock", o.ret == 0 && r == 0 && (word & FUTEX_TID_MASK) == tid(), r ? r : (long)word);
    pi(FUTEX_UNLOCK_PI, NULL);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A handled signal (no SA_RESTART) runs its handler and the wait goes on, as on Linux. */
static void signal_in_wait(void)
{
    word = 0;
    pthread_t t;
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigaction(SIGALRM, &sa, &old);
    alarms = 0;
    struct other o = {.op = FUTEX_LOCK_PI, .hold_ms = 300, .unlock = 1};
    pthread_create(&t, NULL, other_run, &o);
    for (int i = 0; i < 200 && !(word & FUTEX_TID_MASK); i++)
        usleep(2000);
    struct itimerval it = {.it_value = {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long r = pi(FUTEX_LOCK_PI, NULL);
    pthread_join(t, NULL);
    say("a signal in LOCK_PI: the handler runs, the lock is taken after", r == 0 && alarms == 1 && (word & FUTEX_TID_MASK) == tid(),
        r ? r : alarms);
    pi(FUTEX_UNLOCK_PI, NULL);
    sigaction(SIGALRM, &old, NULL);
}

static pthread_mutex_t pim;
static long counter;

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&pim);
        long c = counter;
        if (i % 100 == 0)
            usleep(200); /* hold it across a sleep: the others wait in the kernel */
        counter = c + 1;
        pthread_mutex_unlock(&pim);
    }
    return NULL;
}

static void *tryer(void *x)
{
    *(int *)x = pthread_mutex_trylock(&pim);
    return NULL;
}

static void *timed_waiter(void *x)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 30000000;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    *(int *)x = pthread_mutex_timedlock(&pim, &ts);
    return NULL;
}

static void pthread_pi(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    int ok = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT) == 0 && pthread_mutex_init(&pim, &a) == 0;
    say("a PTHREAD_PRIO_INHERIT mutex", ok, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    say("PI mutex: four threads' increments all counted", counter == 8000, counter);
    pthread_mutex_lock(&pim);
    pthread_t u;
    int busy = -1, timed = -1;
    pthread_create(&u, NULL, tryer, &busy);
    pthread_join(u, NULL);
    say("PI mutex: trylock of a held one EBUSY", busy == EBUSY, busy);
    pthread_create(&u, NULL, timed_waiter, &timed);
    pthread_join(u, NULL);
    say("PI mutex: timedlock of a held one ETIMEDOUT", timed == ETIMEDOUT, timed);
    pthread_mutex_unlock(&pim);
    pthread_mutex_destroy(&pim);
}

void futex_checks(void)
{
    raw_calls();
    owner_ends();
    signal_in_wait();
    pthread_pi();
}
