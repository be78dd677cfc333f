/* Signals waited for: rt_sigpending, sigtimedwait/sigwaitinfo (with the sender, a sigqueue
 * value, a child's status, SIGALRM while blocked), signalfd (read, poll, epoll). */
#include "guest_linux.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static sigset_t one(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

static volatile int info_code = 1, info_pid;

static void on_info(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)uc;
    info_code = si->si_code;
    info_pid = si->si_pid;
}

/* A child that sends `sig` to this process after `ms`. */
static pid_t send_later(int sig, int ms)
{
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        usleep((useconds_t)ms * 1000);
        kill(parent, sig);
        _exit(0);
    }
    return pid;
}

static void waited_signals(void)
{
    sigset_t usr1 = one(SIGUSR1), usr2 = one(SIGUSR2), set;
    siginfo_t si;
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    sigprocmask(SIG_BLOCK, &usr2, NULL);
    kill(getpid(), SIGUSR1);
    sigpending(&set);
    say("sigpending", sigismember(&set, SIGUSR1) && !sigismember(&set, SIGUSR2), 0);
    struct timespec zero = {0, 0}, tenth = {0, 100000000};
    int r = sigtimedwait(&usr1, &si, &zero);
    say("sigtimedwait takes a pending signal", r == SIGUSR1 && si.si_pid == getpid() && si.si_code == SI_USER, r);
    long t0 = mono_ms();
    r = sigtimedwait(&usr1, &si, &tenth);
    say("sigtimedwait times out EAGAIN", r == -1 && errno == EAGAIN && mono_ms() - t0 >= 90, errno);
    pid_t child = send_later(SIGUSR2, 100);
    r = sigwaitinfo(&usr2, &si);
    say("sigwaitinfo of a child's signal", r == SIGUSR2 && si.si_pid == child, r);
    waitpid(child, NULL, 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGWINCH, &sa, &old);
    syscall(SYS_tgkill, getpid(), gettid(), SIGWINCH); /* a handler sees it (sigwaitinfo folds it into SI_USER) */
    say("tgkill's si_code SI_TKILL", info_code == SI_TKILL && info_pid == getpid(), info_code);
    sigaction(SIGWINCH, &old, NULL);
    sigset_t rt = one(SIGRTMIN);
    sigprocmask(SIG_BLOCK, &rt, NULL);
    union sigval v = {.sival_int = 42};
    r = sigqueue(getpid(), SIGRTMIN, v);
    int got = sigwaitinfo(&rt, &si);
    say("sigqueue's value", r == 0 && got == SIGRTMIN && si.si_code == SI_QUEUE && si.si_value.sival_int == 42, got);
    sigset_t chld = one(SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    got = sigwaitinfo(&chld, &si);
    say("SIGCHLD waited for, with the child's status", got == SIGCHLD && si.si_pid == c && si.si_code == CLD_EXITED && si.si_status == 7,
        got);
    waitpid(c, NULL, 0);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    sigset_t alrm = one(SIGALRM);
    sigprocmask(SIG_BLOCK, &alrm, NULL);
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    got = sigwaitinfo(&alrm, &si);
    say("SIGALRM stays pending while blocked", got == SIGALRM, got);
    sigprocmask(SIG_UNBLOCK, &alrm, NULL);
}

static void signalfds(void)
{
    sigset_t usr1 = one(SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int fd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
    struct signalfd_siginfo ssi;
    ssize_t n = read(fd, &ssi, sizeof(ssi));
    say("signalfd: nothing pending EAGAIN", fd >= 0 && n == -1 && errno == EAGAIN, errno);
    kill(getpid(), SIGUSR1);
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 1000);
    n = read(fd, &ssi, sizeof(ssi));
    say("signalfd: poll, then read", pr == 1 && n == sizeof(ssi) && ssi.ssi_signo == SIGUSR1 && ssi.ssi_pid == (unsigned)getpid(), n);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.fd = fd}}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    pid_t child = send_later(SIGUSR1, 100);
    long t0 = mono_ms();
    int k = epoll_wait(ep, &out, 1, 3000);
    n = read(fd, &ssi, sizeof(ssi));
    say("signalfd in epoll woken by a child's signal", k == 1 && n == sizeof(ssi) && mono_ms() - t0 < 2000 && ssi.ssi_pid == (unsigned)child, k);
    waitpid(child, NULL, 0);
    close(ep);
    close(fd);
}

void sig_checks(void)
{
    sigset_t old;
    sigprocmask(SIG_BLOCK, NULL, &old);
    waited_signals();
    signalfds();
    sigprocmask(SIG_SETMASK, &old, NULL);
}
