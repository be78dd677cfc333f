/* What test_e2e_vm_suites found (node 18 and CPython's test_subprocess, test_epoll,
 * test_selectors): a thread waiting on a futex is woken by another thread after a fork shared
 * their page copy-on-write (node never exited after a child_process spawn: its threadpool
 * slept on), a non-blocking loopback TCP connect says EINPROGRESS and is then writable,
 * epoll_wait takes more than 4096 events' room. */
#include "guest_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A thread waits on a futex word; the process forks (the child sleeps a while, holding the
 * pages copy-on-write) and the main thread then changes the word and wakes it: the waiter must
 * hear of it whichever side's write moved the page. `op` private or not, as glibc's condition
 * variables and pthread_join use them. */
static uint32_t *fw_word; /* in a page of its own, which the child never touches */
static int fw_woke;

static void *fw_waiter(void *arg)
{
    int op = (int)(long)arg;
    while (__atomic_load_n(fw_word, __ATOMIC_SEQ_CST) == 0)
        syscall(SYS_futex, fw_word, op, 0, NULL, NULL, 0);
    fw_woke = 1;
    return NULL;
}

static void futex_after_fork(int private)
{
    /* a process this large forks copy-on-write (a small one is copied) */
    size_t big = 16 << 20;
    char *mem = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(mem, 0, big);
    fw_word = (uint32_t *)(mem + big / 2);
    fw_woke = 0;
    pthread_t t;
    pthread_create(&t, NULL, fw_waiter, (void *)(long)(private ? FUTEX_WAIT_PRIVATE : FUTEX_WAIT));
    struct timespec ms50 = {0, 50000000};
    nanosleep(&ms50, NULL); /* the waiter sleeps on the word */
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ms300 = {0, 300000000};
        nanosleep(&ms300, NULL);
        _exit(0);
    }
    __atomic_store_n(fw_word, 1, __ATOMIC_SEQ_CST); /* the parent's write copies the page */
    long woken = syscall(SYS_futex, fw_word, private ? FUTEX_WAKE_PRIVATE : FUTEX_WAKE, 1, NULL, NULL, 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    int joined = pthread_timedjoin_np(t, NULL, &until) == 0;
    say(private ? "a private futex wake after a fork reaches its waiter" : "a futex wake after a fork reaches its waiter",
        woken == 1 && joined && fw_woke, woken);
    waitpid(pid, NULL, 0);
    if (joined) /* (else the waiter sleeps on in the mapping until the program's end) */
        munmap(mem, big);
}

/* test_epoll's _connected_pair: connect of a non-blocking socket to a loopback listener */
static void nonblocking_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ok = l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 4) == 0 &&
             getsockname(l, (struct sockaddr *)&a, &len) == 0;
    errno = 0;
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    say("non-blocking loopback connect is EINPROGRESS", ok && r == -1 && errno == EINPROGRESS, errno);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = c}, got[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
    int n = epoll_wait(ep, got, 2, 2000);
    say("then EPOLLOUT", n == 1 && (got[0].events & EPOLLOUT), n);
    int err = -1;
    len = sizeof(err);
    say("and SO_ERROR 0", getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0, err);
    say("connect again says it is done", connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, errno);
    errno = 0;
    say("and then EISCONN", connect(c, (struct sockaddr *)&a, sizeof(a)) == -1 && errno == EISCONN, errno);
    int s = accept(l, NULL, NULL);
    say("the listener has it", s >= 0 && write(c, "x", 1) == 1, s);
    close(s);
    close(ep);
    close(c);
    close(l);
}

/* test_selectors: epoll_wait's maxevents may be as large as an int's worth of events */
static void epoll_maxevents(void)
{
    int ep = epoll_create1(0), p[2];
    if (pipe(p) < 0)
        return;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = p[1]};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev);
    size_t want = 8192;
    struct epoll_event *evs = calloc(want, sizeof(*evs));
    int n = epoll_wait(ep, evs, (int)want, 0);
    say("epoll_wait with 8192 events' room", n == 1 && evs[0].data.fd == p[1], n == -1 ? -errno : n);
    errno = 0;
    n = (int)syscall(SYS_epoll_wait, ep, evs, (int)(0x7fffffff / sizeof(struct epoll_event)) + 1, 0); /* not glibc's: it checks the room */
    say("past INT_MAX / sizeof(struct epoll_event) is EINVAL", n == -1 && errno == EINVAL, n == -1 ? -errno : n);
    free(evs);
    close(p[0]);
    close(p[1]);
    close(ep);
}

void suite_checks(void)
{
    futex_after_fork(1);
    futex_after_fork(0);
    nonblocking_connect();
    epoll_maxevents();
}
