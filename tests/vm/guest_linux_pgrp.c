/* Process groups and sessions: setpgid, getpgid, getpgrp, getsid, setsid; kill of a group
 * (-pgid), of the caller's (0); wait4 on a group; a group kill reaches that group only, as
 * GNU timeout and a shell's job control rely on. And pidfds and waitid. */
#include "guest_linux.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

static int status_of(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid ? st : -1;
}

/* A child that leads a group of its own (set on both sides, as shells do) with a grandchild in
 * it; both hold the pipe's write end, so its read end sees EOF once both are gone. */
static void group_kill(void)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    pid_t a = fork();
    if (a == 0) {
        setpgid(0, 0);
        close(p[0]);
        if (fork() == 0)
            pause();
        pause();
        _exit(0);
    }
    close(p[1]);
    setpgid(a, a);
    usleep(100000);
    say("getpgid of a child that made its group", getpgid(a) == a, getpgid(a));
    say("the group is of our session", getsid(a) == getsid(0), getsid(a));
    say("kill of the group", kill(-a, SIGTERM) == 0, errno);
    char c;
    say("its members all ended", read(p[0], &c, 1) == 0, 0);
    int st = status_of(a);
    say("the group leader died of SIGTERM", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, st);
    close(p[0]);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) /* the grandchild, an orphan, is reaped by init first */
        gone = kill(-a, 0) == -1 && errno == ESRCH ? 1 : (usleep(10000), 0);
    say("kill of a group that is gone ESRCH", gone, errno);
}

/* kill(0): the caller's group only. The child leads a group with a grandchild in it and signals
 * the group: its handler runs, the grandchild dies of the signal, this process is untouched. */
static void kill_zero(void)
{
    pid_t d = fork();
    if (d == 0) {
        setpgid(0, 0);
        signal(SIGUSR1, on_usr1);
        pid_t e = fork();
        if (e == 0) {
            signal(SIGUSR1, SIG_DFL);
            pause();
            _exit(0);
        }
        usleep(50000);
        kill(0, SIGUSR1);
        int st = status_of(e);
        _exit(usr1 == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1 ? 0 : 1);
    }
    int st = status_of(d);
    say("kill(0) reaches the caller's group only", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
}

/* waitpid(-pgid) takes a child of that group only; waitpid(0) one of the caller's group. */
static void wait_group(void)
{
    pid_t g = fork();
    if (g == 0) {
        setpgid(0, 0);
        usleep(200000);
        _exit(3);
    }
    setpgid(g, g);
    pid_t o = fork();
    if (o == 0)
        _exit(4);
    usleep(50000);
    int st = -1;
    pid_t r = waitpid(-g, &st, 0);
    say("waitpid of a group", r == g && WEXITSTATUS(st) == 3, r);
    r = waitpid(0, &st, 0);
    say("waitpid of our own group", r == o && WEXITSTATUS(st) == 4, r);
    say("waitpid of a group without children ECHILD", waitpid(-g, &st, WNOHANG) == -1 && errno == ECHILD, errno);
}

/* setsid in a child: a session and group named by its pid; again (now a group leader) EPERM,
 * and setpgid into a group of another session EPERM. */
static void sessions(void)
{
    pid_t parent_group = getpgrp();
    pid_t f = fork();
    if (f == 0) {
        pid_t me = getpid();
        int ok = setsid() == me && getsid(0) == me && getpgrp() == me && getpgid(0) == me;
        ok = ok && setsid() == -1 && errno == EPERM;
        ok = ok && setpgid(0, parent_group) == -1 && errno == EPERM;
        _exit(ok ? 0 : 1);
    }
    int st = status_of(f);
    say("setsid", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
    say("setpgid into a group that does not exist EPERM", setpgid(0, 999999) == -1 && errno == EPERM, errno);
    say("getpgid of nobody ESRCH", getpgid(999999) == -1 && errno == ESRCH, errno);
    say("getsid of nobody ESRCH", getsid(999999) == -1 && errno == ESRCH, errno);
    say("getpgrp is getpgid(0)", getpgrp() == getpgid(0), getpgrp());
}

/* GNU timeout's way: it leads a group, runs the command in it, and at the limit signals the
 * command and then its whole group (itself ignoring the signal); what ran it lives on. */
static void timeout_like(void)
{
    pid_t t = fork();
    if (t == 0) {
        setpgid(0, 0);
        pid_t cmd = fork();
        if (cmd == 0) {
            sleep(10);
            _exit(0);
        }
        usleep(100000);
        signal(SIGTERM, SIG_IGN);
        kill(cmd, SIGTERM);
        kill(0, SIGTERM);
        int st = status_of(cmd);
        _exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM ? 124 : 1);
    }
    int st = status_of(t);
    say("a timeout-like group kill ends its group only", WIFEXITED(st) && WEXITSTATUS(st) == 124, st);
}

/* pidfd_open: a descriptor readable once the process has ended; pidfd_send_signal; waitid on
 * it, on a pid with WNOWAIT, and with WNOHANG. */
static void pidfds(void)
{
    pid_t c = fork();
    if (c == 0) {
        usleep(200000);
        _exit(3);
    }
    int fd = (int)syscall(SYS_pidfd_open, c, 0);
    struct pollfd p = {fd, POLLIN, 0};
    int early = poll(&p, 1, 50);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    int none = waitid(P_ALL, 0, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0;
    int later = poll(&p, 1, 3000);
    say("pidfd_open: readable once the process ends", fd >= 0 && early == 0 && later == 1 && (p.revents & POLLIN) && none,
        early * 10 + later);
    memset(&si, 0, sizeof(si));
    int r = waitid(P_PIDFD, (id_t)fd, &si, WEXITED);
    say("waitid on a pidfd", r == 0 && si.si_pid == c && si.si_code == CLD_EXITED && si.si_status == 3, r);
    say("pidfd_send_signal to an ended process ESRCH", syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) == -1 && errno == ESRCH,
        errno);
    close(fd);
    c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    fd = (int)syscall(SYS_pidfd_open, c, 0);
    r = (int)syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0);
    memset(&si, 0, sizeof(si));
    int w = waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT);
    int st = status_of(c); /* WNOWAIT left it to be waited for */
    say("pidfd_send_signal, waitid WNOWAIT", r == 0 && w == 0 && si.si_code == CLD_KILLED && si.si_status == SIGTERM &&
        WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, r);
    close(fd);
    say("pidfd_open of nobody ESRCH", syscall(SYS_pidfd_open, 999999, 0) == -1 && errno == ESRCH, errno);
}

void pgrp_checks(void)
{
    pidfds();
    group_kill();
    kill_zero();
    wait_group();
    sessions();
    timeout_like();
}
