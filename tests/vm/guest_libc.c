/* An ordinary C program, linked statically against the build machine's glibc (gcc -static),
 * that test_vmm copies into a guest and runs: what users upload is built this way, and glibc's
 * start-up and stdio, malloc (brk and mmap), qsort, time and errno paths use syscalls busybox
 * (musl-like, and older) does not; and threads (clone3/clone, futex, set_robust_list, tgkill),
 * posix_spawn's clone(CLONE_VM | CLONE_VFORK) through system(), and exit_group while a
 * thread still waits. Prints what it saw; test_vmm compares the lines. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter, started, tids_differ, usr1_tid;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_tid = syscall(SYS_gettid);
}

/* Counts under the lock; the last one to start wakes main, which waits on the condition. */
static void *worker(void *arg)
{
    pthread_mutex_lock(&lock);
    if (++started == 4)
        pthread_cond_signal(&cond);
    tids_differ += syscall(SYS_gettid) != getpid();
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return arg;
}

static long cpu_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spins until this thread has had 100 ms of CPU. */
static void *burner(void *arg)
{
    while (cpu_ms(CLOCK_THREAD_CPUTIME_ID) < 100)
        ;
    return arg;
}

/* A process's CPU time counts its threads', also once they ended; a thread's is its own. */
static int thread_cpu_counted(void)
{
    pthread_t b[2];
    long before = cpu_ms(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < 2; i++)
        pthread_create(&b[i], NULL, burner, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(b[i], NULL);
    long after = cpu_ms(CLOCK_PROCESS_CPUTIME_ID), mine = cpu_ms(CLOCK_THREAD_CPUTIME_ID);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long ru_ms = ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
    return after - before >= 200 && ru_ms >= after - 5 && mine < after - 150;
}

/* A child started and waited for by a thread other than the first. */
static void *spawner(void *arg)
{
    return (void *)(long)system((const char *)arg);
}

/* Waits for ever: the process's exit must end it (exit_group). */
static void *sleeper(void *arg)
{
    pthread_mutex_lock(&lock);
    for (;;)
        pthread_cond_wait(&cond, &lock);
    return arg;
}

/* 100 threads alive at once, with glibc's default 8 MiB stacks (each a large mapping of its
 * own, so the address space keeps that many lazy ranges) */
#define MANY 100
static pthread_barrier_t all_up;

static void *waiter(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&all_up);
    return NULL;
}

static void many_threads(void)
{
    pthread_t t[MANY];
    int made = 0;
    pthread_barrier_init(&all_up, NULL, MANY + 1);
    while (made < MANY && pthread_create(&t[made], NULL, waiter, NULL) == 0)
        made++;
    if (made == MANY)
        pthread_barrier_wait(&all_up);
    printf("many threads: %d of %d\n", made, MANY);
    for (int i = 0; made == MANY && i < made; i++)
        pthread_join(t[i], NULL);
}

static void threads(void)
{
    pthread_t t[4], s;
    long joined = 0;
    pthread_mutex_lock(&lock);
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    while (started < 4)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        joined += (long)r;
    }
    printf("threads: counter %ld, joined %ld, tids differ %ld\n", counter, joined, tids_differ);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    int r = pthread_cond_timedwait(&cond, &lock, &ts);
    pthread_mutex_unlock(&lock);
    printf("timedwait: %s\n", r == ETIMEDOUT ? "ETIMEDOUT" : strerror(r));
    signal(SIGUSR1, on_usr1);
    pthread_create(&s, NULL, sleeper, NULL);
    pthread_detach(s);
    usleep(20000);
    pthread_kill(s, SIGUSR1); /* tgkill: the handler runs in that thread */
    usleep(20000);
    printf("signal to a thread: %d\n", usr1_tid != 0 && usr1_tid != getpid());
    fflush(stdout);
    printf("system: %d\n", system("echo from system"));
    fflush(stdout);
    void *rc;
    pthread_create(&s, NULL, spawner, "echo from a thread; exit 4");
    pthread_join(s, &rc);
    printf("system in a thread: %d\n", WEXITSTATUS((int)(long)rc));
    printf("threads' CPU time counted: %d\n", thread_cpu_counted());
}

static int cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "sleep")) { /* a process that keeps its libraries mapped a while */
        sleep((unsigned)atoi(argv[2]));
        return 0;
    }
    const char *g = getenv("GREETING");
    printf("argc=%d argv1=%s env=%s\n", argc, argc > 1 ? argv[1] : "-", g ? g : "-");
    int n = 100000, *v = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        v[i] = (int)((i * 7919L) % 100003);
    qsort(v, (size_t)n, sizeof(int), cmp);
    printf("sorted %d %d\n", v[0], v[n - 1]);
    free(v);
    char *big = malloc(64 << 20); /* beyond glibc's mmap threshold: an anonymous mapping */
    memset(big, 1, 64 << 20);
    printf("big %d\n", big[(64 << 20) - 1]);
    free(big);
    FILE *f = fopen("/tmp/libc.txt", "w");
    fprintf(f, "%.3f %s\n", 3.14159, "pi");
    fclose(f);
    char buf[64] = {0};
    f = fopen("/tmp/libc.txt", "r");
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = 0;
    fclose(f);
    printf("file: %s", buf);
    struct stat st;
    int r = stat("/tmp/libc.txt", &st);
    printf("stat %d size %lld\n", r, (long long)st.st_size);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("year >= 2024: %d\n", tm.tm_year + 1900 >= 2024);
    f = fopen("/nonexistent", "r");
    int e = errno;
    printf("missing: %d %s\n", f == NULL, strerror(e));
    struct rlimit rl;
    r = getrlimit(RLIMIT_STACK, &rl);
    printf("stack limit %d %d\n", r, rl.rlim_cur >= (1 << 20) && rl.rlim_cur <= rl.rlim_max);
    printf("pages %d\n", sysconf(_SC_PHYS_PAGES) > 1000);
    threads();
    many_threads();
    fflush(stdout);
    fprintf(stderr, "to stderr\n");
    return 3; /* with the sleeper still waiting */
}
