/* fork of a large process: its memory is shared copy-on-write (src/guest/mm/vm.c), so each side
 * sees only its own writes, whoever writes first and however the write comes (the program, the
 * kernel filling a read() buffer, a signal frame), a shared mapping stays shared, a futex in a
 * shared page still wakes, exec and nested forks work, and the fork does not cost a second
 * copy of the memory. Each check also holds on Linux. */
#include "guest_linux.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG (24UL << 20) /* well past what a fork copies rather than shares (FORK_COPY_MAX pages) */

static long free_kib(void)
{
    struct sysinfo si;
    sysinfo(&si);
    return (long)(si.freeram * si.mem_unit >> 10);
}

/* Whether every byte of the page at `p` is `v`. */
static int page_is(const unsigned char *p, unsigned char v)
{
    for (int i = 0; i < 4096; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* Runs `child` in a fork; its return value is the exit status, which the parent returns. */
static int in_child(int (*child)(void *), void *arg)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(arg));
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static unsigned char *big;

/* The child sees the parent's bytes, writes its own over every other page, and sees them. */
static int child_writes(void *arg)
{
    (void)arg;
    for (size_t off = 0; off < BIG; off += 4096)
        if (!page_is(big + off, 0x5a))
            return 2;
    for (size_t off = 0; off < BIG; off += 8192)
        memset(big + off, 0xc3, 4096);
    for (size_t off = 0; off < BIG; off += 4096)
        if (!page_is(big + off, off % 8192 ? 0x5a : 0xc3))
            return 3;
    return 0;
}

/* The child sees what the parent wrote after the last fork. */
static int child_sees_new(void *arg)
{
    (void)arg;
    return page_is(big, 0x77) && page_is(big + BIG - 4096, 0x5a) ? 0 : 4;
}

/* How much free memory the fork took, measured by the child at once. */
static int child_free(void *arg)
{
    long before = *(long *)arg, used = before - free_kib();
    return used < (long)(BIG >> 10) / 4 ? 0 : 5; /* a copy would take all of BIG */
}

/* The kernel writes into a shared page (a read() into it): the parent keeps its bytes. */
static int child_reads_into(void *arg)
{
    int *fds = arg;
    char *buf = (char *)big + 5 * 4096 + 100;
    if (read(fds[0], buf, 5) != 5 || memcmp(buf, "hello", 5))
        return 6;
    return 0;
}

static volatile sig_atomic_t handled;
static void on_usr1(int sig)
{
    (void)sig;
    handled = 1;
}

/* A signal handler on an alternate stack inside the shared memory: the kernel writes the
 * frame there. */
static int child_signal(void *arg)
{
    (void)arg;
    stack_t ss = {.ss_sp = big + 64 * 4096, .ss_size = 16 * 4096};
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK};
    if (sigaltstack(&ss, NULL) < 0 || sigaction(SIGUSR1, &sa, NULL) < 0)
        return 7;
    raise(SIGUSR1);
    return handled ? 0 : 8;
}

static int child_execs(void *arg)
{
    (void)arg;
    execl("/bin/sh", "sh", "-c", "exit 42", (char *)NULL);
    return 9;
}

/* A fork within the fork: three address spaces share the pages, each writes its own. */
static int grandchild(void *arg)
{
    (void)arg;
    memset(big + 8 * 4096, 0x11, 4096);
    return page_is(big + 8 * 4096, 0x11) && page_is(big + 9 * 4096, 0x22) ? 0 : 10; /* page 9: its parent's */
}

static int child_forks(void *arg)
{
    (void)arg;
    memset(big + 9 * 4096, 0x22, 4096);
    int r = in_child(grandchild, NULL);
    if (r)
        return r;
    return page_is(big + 8 * 4096, 0x5a) && page_is(big + 9 * 4096, 0x22) ? 0 : 11;
}

static uint32_t *futex_word;
static long futex_ret = -1;
static int futex_waiting;

static void *futex_waiter(void *arg)
{
    (void)arg;
    struct timespec ts = {3, 0};
    __atomic_store_n(&futex_waiting, 1, __ATOMIC_SEQ_CST);
    futex_ret = syscall(SYS_futex, futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    if (futex_ret < 0)
        futex_ret = -errno;
    if (futex_ret == -EAGAIN) /* the word had changed already: woken in effect */
        futex_ret = 0;
    return NULL;
}

void fork_checks(void)
{
    big = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) {
        say("fork: a large private mapping", 0, errno);
        return;
    }
    memset(big, 0x5a, BIG);
    say("fork: the child sees the parent's memory and its own writes", in_child(child_writes, NULL) == 0, 0);
    int same = 1;
    for (size_t off = 0; off < BIG; off += 4096)
        same &= page_is(big + off, 0x5a);
    say("fork: the child's writes stay the child's", same, 0);
    memset(big, 0x77, 4096);
    say("fork: the parent's writes after a fork reach the next child", in_child(child_sees_new, NULL) == 0, 0);
    memset(big, 0x5a, 4096);

    long before = free_kib();
    int r = in_child(child_free, &before);
    say("fork: a large process forks without a second copy of its memory", r == 0, r);

    int fds[2];
    if (pipe(fds) == 0) {
        write(fds[1], "hello", 5);
        r = in_child(child_reads_into, fds);
        say("fork: the kernel writing into a shared page (read) writes the child's copy",
            r == 0 && page_is(big + 5 * 4096, 0x5a), r);
        close(fds[0]);
        close(fds[1]);
    }
    r = in_child(child_signal, NULL);
    say("fork: a signal frame on a shared page goes to the child's copy", r == 0 && page_is(big + 70 * 4096, 0x5a), r);
    r = in_child(child_execs, NULL);
    say("fork: exec in the child of a large process", r == 42, r);
    r = in_child(child_forks, NULL);
    say("fork: nested forks share and separate", r == 0 && page_is(big + 8 * 4096, 0x5a) && page_is(big + 9 * 4096, 0x5a), r);

    /* a shared mapping stays one memory across the fork, beside the copy-on-write one */
    volatile uint32_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh != MAP_FAILED) {
        *sh = 1;
        pid_t pid = fork();
        if (pid == 0) {
            *sh = 2;
            big[0] = 3;
            _exit(0);
        }
        waitpid(pid, NULL, 0);
        say("fork: MAP_SHARED memory stays shared", *sh == 2 && big[0] == 0x5a, *sh);
    }

    /* a futex word in a shared page: the waiter keys it on the parent's own page, so the wake
     * that follows the parent's write (which would copy the page) still finds it */
    futex_word = (uint32_t *)(big + 200 * 4096);
    *futex_word = 0;
    int hold[2];
    if (pipe(hold) == 0) {
        pid_t pid = fork();
        if (pid == 0) { /* keeps the pages shared until the parent is done */
            char c;
            close(hold[1]);
            read(hold[0], &c, 1);
            _exit(0);
        }
        close(hold[0]);
        pthread_t t;
        pthread_create(&t, NULL, futex_waiter, NULL);
        while (!__atomic_load_n(&futex_waiting, __ATOMIC_SEQ_CST))
            usleep(1000);
        usleep(50000); /* the thread is in FUTEX_WAIT by now */
        __atomic_store_n(futex_word, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        pthread_join(t, NULL);
        say("fork: a futex in a shared page wakes its waiter", futex_ret == 0, futex_ret);
        close(hold[1]);
        waitpid(pid, NULL, 0);
    }
    munmap(big, BIG);
}
