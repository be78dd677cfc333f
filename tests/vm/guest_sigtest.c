/* A static Linux x86-64 program, raw syscalls only, that test_vmm copies into a guest and runs:
 * the signal paths busybox does not reach. It prints one line per check ("<name> ok" or
 * "<name> FAIL <value>") and exits 0 when every check passed.
 *   - rt_sigaction refuses a handler without SA_RESTORER (there would be no way back)
 *   - tkill and tgkill to itself run the handler
 *   - a pipe read interrupted by a handler with SA_RESTART is restarted and gets the data;
 *     without SA_RESTART it fails with EINTR
 *   - pause() returns EINTR after a handler ran
 * Signals come from a forked child after a delay long enough for the parent to be asleep. */
typedef unsigned long u64;

#define SIGUSR1 10
#define SIGUSR2 12
#define SA_RESTART 0x10000000UL
#define SA_RESTORER 0x04000000UL
#define EINTR 4
#define EINVAL 22

#include "../../src/guest/user/raw_syscall.h"

void lel_restorer(void);
__asm__(".text\n.globl lel_restorer\nlel_restorer:\n\tmov $15, %eax\n\tsyscall\n\thlt\n");

static volatile int hits[65];
static int failed;

static void on_signal(int sig)
{
    hits[sig]++;
}

static void say(const char *name, int ok, long value)
{
    char line[96];
    int n = 0;
    for (const char *p = name; *p && n < 60; p++)
        line[n++] = *p;
    for (const char *p = ok ? " ok" : " FAIL "; *p; p++)
        line[n++] = *p;
    if (!ok) {
        char digits[24];
        int d = 0;
        u64 v = value < 0 ? (u64)-value : (u64)value;
        if (value < 0)
            line[n++] = '-';
        do
            digits[d++] = (char)('0' + v % 10);
        while ((v /= 10) && d < 20);
        while (d)
            line[n++] = digits[--d];
        failed = 1;
    }
    line[n++] = '\n';
    SYS(1, 1, line, n, 0);
}

static long handle(int sig, u64 flags)
{
    u64 act[4] = {(u64)on_signal, flags | SA_RESTORER, (u64)lel_restorer, 0};
    return SYS(13, sig, act, 0, 8);
}

/* A child that sends sig to this process after 300 ms and, with fd >= 0, writes one byte to
 * fd 300 ms later. */
static long poke_later(int sig, int fd)
{
    long parent = SYS(39, 0, 0, 0, 0), pid = SYS(57, 0, 0, 0, 0);
    if (pid != 0)
        return pid;
    long delay[2] = {0, 300000000};
    SYS(35, delay, 0, 0, 0);
    SYS(62, parent, sig, 0, 0);
    if (fd >= 0) {
        SYS(35, delay, 0, 0, 0);
        SYS(1, fd, "x", 1, 0);
    }
    SYS(60, 0, 0, 0, 0);
    return -1;
}

static void reap(long pid)
{
    int status = -1;
    long r = SYS(61, pid, &status, 0, 0);
    say("child reaped", r == pid && status == 0, r == pid ? status : r);
}

void _start(void)
{
    u64 bare[4] = {(u64)on_signal, 0, 0, 0};
    long r = SYS(13, SIGUSR1, bare, 0, 8);
    say("sigaction without restorer EINVAL", r == -EINVAL, r);

    r = handle(SIGUSR1, 0);
    say("sigaction", r == 0, r);
    long pid = SYS(39, 0, 0, 0, 0), tid = SYS(186, 0, 0, 0, 0);
    r = SYS(200, tid, SIGUSR1, 0, 0);
    say("tkill", r == 0 && hits[SIGUSR1] == 1, r ? r : hits[SIGUSR1]);
    r = SYS(234, pid, tid, SIGUSR1, 0);
    say("tgkill", r == 0 && hits[SIGUSR1] == 2, r ? r : hits[SIGUSR1]);

    int fds[2];
    char c = 0;
    r = SYS(22, fds, 0, 0, 0);
    say("pipe", r == 0, r);
    handle(SIGUSR2, SA_RESTART);
    long child = poke_later(SIGUSR2, fds[1]);
    r = SYS(0, fds[0], &c, 1, 0);
    say("SA_RESTART read restarted", r == 1 && c == 'x' && hits[SIGUSR2] == 1, r == 1 ? hits[SIGUSR2] : r);
    reap(child);

    handle(SIGUSR2, 0);
    child = poke_later(SIGUSR2, fds[1]);
    r = SYS(0, fds[0], &c, 1, 0);
    say("read interrupted EINTR", r == -EINTR && hits[SIGUSR2] == 2, r == -EINTR ? hits[SIGUSR2] : r);
    c = 0;
    r = SYS(0, fds[0], &c, 1, 0);
    say("read again", r == 1 && c == 'x', r);
    reap(child);

    child = poke_later(SIGUSR1, -1);
    r = SYS(34, 0, 0, 0, 0);
    say("pause EINTR", r == -EINTR && hits[SIGUSR1] == 3, r == -EINTR ? hits[SIGUSR1] : r);
    reap(child);

    SYS(231, failed, 0, 0, 0);
    for (;;)
        ;
}
