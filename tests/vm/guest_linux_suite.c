/* What test_e2e_vm_suites found (node 18 and CPython's test_subprocess, test_epoll,
 * test_selectors): a thread waiting on a futex is woken by another thread after a fork shared
 * their page copy-on-write (node never exited after a child_process spawn: its threadpool
 * slept on), a non-blocking loopback TCP connect says EINPROGRESS and is then writable,
 * epoll_wait takes more than 4096 events' room; test_posix and test_resource: fexecve
 * (execveat of a descriptor), getrusage(RUSAGE_CHILDREN), preadv/pwritev (and the v2 pair),
 * the affinity calls' errors; test_asyncio's dual-stack server: an IPv4 and an IPV6_V6ONLY
 * socket share a port. */
#include "guest_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/uio.h>
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

/* A child runs `how` (0: fexecve of /bin/true, 1: execveat of "true" in /bin, 2: execveat of
 * a symlink to it with AT_SYMLINK_NOFOLLOW, which must fail with ELOOP: the child exits 7);
 * its exit status. */
static int exec_child(int how)
{
    char *argv[] = {"true", NULL}, *envp[] = {NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (how == 0) {
            int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
            fexecve(fd, argv, envp);
        } else if (how == 1) {
            int dir = open("/bin", O_RDONLY | O_DIRECTORY);
            syscall(SYS_execveat, dir, "true", argv, envp, 0);
        } else {
            unlink("/tmp/suite-true");
            if (symlink("/bin/true", "/tmp/suite-true") == 0 &&
                syscall(SYS_execveat, AT_FDCWD, "/tmp/suite-true", argv, envp, AT_SYMLINK_NOFOLLOW) == -1 && errno == ELOOP)
                _exit(7);
        }
        _exit(99);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void exec_and_rusage(void)
{
    int st = exec_child(0);
    say("fexecve runs the descriptor's program", st == 0, st);
    st = exec_child(1);
    say("execveat relative to a directory descriptor", st == 0, st);
    st = exec_child(2);
    say("execveat AT_SYMLINK_NOFOLLOW of a symlink is ELOOP", st == 7, st);
    unlink("/tmp/suite-true");
    struct rusage ru;
    /* who is an int: -1 in the register's lower half only, as a caller may leave it */
    long r = syscall(SYS_getrusage, 0xffffffffUL, &ru);
    say("getrusage(RUSAGE_CHILDREN)", r == 0, r == -1 ? -errno : r);
}

static void vectors_at(void)
{
    int fd = open("/tmp/suite-v", O_RDWR | O_CREAT | O_TRUNC, 0600);
    char a[4] = "abcd", b[3] = "efg", x[3] = {0}, y[4] = {0};
    struct iovec w[2] = {{a, 4}, {b, 3}}, r[2] = {{x, 3}, {y, 4}};
    say("pwritev at an offset", pwritev(fd, w, 2, 2) == 7 && lseek(fd, 0, SEEK_CUR) == 0, (long)lseek(fd, 0, SEEK_END));
    say("preadv at an offset", preadv(fd, r, 2, 2) == 7 && !memcmp(x, "abc", 3) && !memcmp(y, "defg", 4), (long)x[0]);
    memset(x, 0, sizeof(x));
    lseek(fd, 2, SEEK_SET);
    say("preadv2 at -1 reads at the file's offset", preadv2(fd, r, 1, -1, 0) == 3 && !memcmp(x, "abc", 3) &&
                                                        lseek(fd, 0, SEEK_CUR) == 5, (long)lseek(fd, 0, SEEK_CUR));
    say("pwritev2 with RWF_SYNC", pwritev2(fd, w, 1, 0, RWF_SYNC) == 4, errno);
    errno = 0;
    say("preadv at -1 is EINVAL", preadv(fd, r, 1, -1) == -1 && errno == EINVAL, errno);
    close(fd);
    unlink("/tmp/suite-v");
    cpu_set_t set;
    CPU_ZERO(&set);
    errno = 0;
    say("sched_getaffinity(-1) is ESRCH", sched_getaffinity(-1, sizeof(set), &set) == -1 && errno == ESRCH, errno);
    say("sched_getaffinity(0) has CPU 0", sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_ISSET(0, &set), errno);
    CPU_ZERO(&set);
    errno = 0;
    say("sched_setaffinity of no CPU is EINVAL", sched_setaffinity(0, sizeof(set), &set) == -1 && errno == EINVAL, errno);
}

/* A connection to `to` (family `fam`) is accepted by `l`. */
static int reaches(int fam, const void *to, socklen_t len, int l)
{
    int c = socket(fam, SOCK_STREAM, 0), ok = connect(c, to, len) == 0, s = ok ? accept(l, NULL, NULL) : -1;
    close(s);
    close(c);
    return ok && s >= 0;
}

static void dual_stack(void)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    socklen_t len = sizeof(a4);
    int one = 1, l4 = socket(AF_INET, SOCK_STREAM, 0), l6 = socket(AF_INET6, SOCK_STREAM, 0), d6 = socket(AF_INET6, SOCK_STREAM, 0);
    int ok = bind(l4, (struct sockaddr *)&a4, sizeof(a4)) == 0 && listen(l4, 4) == 0 && getsockname(l4, (struct sockaddr *)&a4, &len) == 0;
    a6.sin6_port = a4.sin_port;
    errno = 0;
    say("a dual-stack socket cannot take an IPv4 socket's port", ok && bind(d6, (struct sockaddr *)&a6, sizeof(a6)) == -1 && errno == EADDRINUSE, errno);
    setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    ok = bind(l6, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(l6, 4) == 0;
    say("an IPV6_V6ONLY socket shares the port with an IPv4 one", ok, errno);
    struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_port = a4.sin_port, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = a4.sin_port, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    say("each family's client reaches its own listener", ok && reaches(AF_INET, &to4, sizeof(to4), l4) && reaches(AF_INET6, &to6, sizeof(to6), l6), 0);
    close(d6);
    close(l6);
    close(l4);
}

void suite_checks(void)
{
    futex_after_fork(1);
    futex_after_fork(0);
    nonblocking_connect();
    epoll_maxevents();
    exec_and_rusage();
    vectors_at();
    dual_stack();
}
