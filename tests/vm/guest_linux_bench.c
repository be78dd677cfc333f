/* tests/vm/guest_linux: the "bench" section, run only when named (LEL_VMM_LINUX=bench): the
 * cost of the guest kernel's hot paths, a syscall, a process switch, fork and exec, as
 * microseconds per operation. A measurement, not a check: no target, nothing fails. */
#include "guest_linux.h"

#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void report(const char *what, long t0, long n)
{
    printf("bench %s %.2f us/op (%ld ops)\n", what, (double)(now_ns() - t0) / 1000.0 / (double)n, n);
    fflush(stdout);
}

/* Round trips of one byte between two processes over two pipes: two switches each. */
static void ping_pong(long n)
{
    int ab[2], ba[2];
    char c = 0;
    if (pipe(ab) < 0 || pipe(ba) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(ab[1]); /* or its read never sees the end */
        while (read(ab[0], &c, 1) == 1 && write(ba[1], &c, 1) == 1)
            ;
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    long t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
            break;
    report("pipe_round_trip", t0, n);
    close(ab[1]);
    waitpid(pid, 0, 0);
    close(ba[0]);
}

void bench_run(void)
{
    long n = 3000, t0 = now_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getpid);
    report("getpid", t0, n);
    ping_pong(300);
    n = 30;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        waitpid(pid, 0, 0);
    }
    report("fork_exit_wait", t0, n);
    n = 20;
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/true", "true", (char *)0);
            _exit(127);
        }
        waitpid(pid, 0, 0);
    }
    report("fork_exec_true_wait", t0, n);
}
