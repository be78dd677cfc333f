/* Pseudo-terminals: posix_openpt/grantpt/unlockpt/ptsname and openpty, devpts in /proc/mounts,
 * ttyname, termios (canonical editing with ERASE/KILL/WERASE, echo, ICRNL, OPOST+ONLCR, ^D,
 * raw mode with VMIN/VTIME), window sizes and SIGWINCH, a session's controlling terminal
 * (setsid, TIOCSCTTY, /dev/tty, TIOCNOTTY), keyboard signals to the foreground group, job
 * control's SIGTTIN/SIGTTOU and stops, the hangup when the master closes, EIO on the master
 * once the slave is gone, and readiness through poll and epoll. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Reads what the master has within `ms` into buf (NUL-terminated); its length. */
static int drain(int m, char *buf, int cap, int ms)
{
    int n = 0;
    struct pollfd p = {m, POLLIN, 0};
    while (n < cap - 1 && poll(&p, 1, ms) == 1 && (p.revents & POLLIN)) {
        ssize_t r = read(m, buf + n, (size_t)(cap - 1 - n));
        if (r <= 0)
            break;
        n += (int)r;
        ms = 50; /* what follows comes at once */
    }
    buf[n] = 0;
    return n;
}

static int open_pair(int *m, int *s)
{
    *m = posix_openpt(O_RDWR | O_NOCTTY);
    if (*m < 0 || grantpt(*m) < 0 || unlockpt(*m) < 0)
        return -1;
    *s = open(ptsname(*m), O_RDWR | O_NOCTTY);
    return *s < 0 ? -1 : 0;
}

static void basics(void)
{
    int m, s;
    say("posix_openpt grantpt unlockpt open", open_pair(&m, &s) == 0, errno);
    char *name = ptsname(m);
    say("ptsname is /dev/pts/N", name && !strncmp(name, "/dev/pts/", 9), 0);
    struct stat st;
    say("the slave is a character device of major 136", stat(name, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136, 0);
    say("isatty both sides", isatty(m) && isatty(s), errno);
    int pf[2];
    pipe(pf);
    errno = 0;
    int tty = isatty(pf[0]), e = errno;
    say("isatty of a pipe is false (ENOTTY)", !tty && e == ENOTTY, e);
    close(pf[0]);
    close(pf[1]);
    char *tn = ttyname(s);
    say("ttyname of the slave", tn && name && !strcmp(tn, name), 0);
    int locked = -1, n = -1;
    say("TIOCGPTN", ioctl(m, TIOCGPTN, &n) == 0 && n >= 0, n);
    say("TIOCGPTLCK after unlockpt", ioctl(m, TIOCGPTLCK, &locked) == 0 && locked == 0, locked);
    int lk = 1;
    ioctl(m, TIOCSPTLCK, &lk);
    say("a locked slave opens EIO", open(name, O_RDWR | O_NOCTTY) < 0 && errno == EIO, errno);
    FILE *f = fopen("/proc/mounts", "r");
    char line[256];
    int devpts = 0;
    while (f && fgets(line, sizeof(line), f))
        devpts |= !strncmp(line, "devpts /dev/pts devpts", 22);
    if (f)
        fclose(f);
    say("devpts in /proc/mounts", devpts, 0);
    close(s);
    close(m);
    int am, as;
    char nm[64];
    say("openpty", openpty(&am, &as, nm, NULL, NULL) == 0 && isatty(as) && !strncmp(nm, "/dev/pts/", 9), errno);
    close(am);
    close(as);
}

/* Canonical mode: the line is edited (ERASE, KILL, WERASE) and echoed, CR becomes NL, a read
 * takes one line, output gets CR before NL, ^D on an empty line reads as the end. */
static void cooked(void)
{
    int m, s;
    char buf[256], out[256];
    if (open_pair(&m, &s) < 0)
        return say("cooked: open", 0, errno);
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    write(m, "ab", 2);
    say("no line yet: EAGAIN", read(s, buf, sizeof(buf)) < 0 && errno == EAGAIN, errno);
    fcntl(s, F_SETFL, fl);
    write(m, "\177c\r", 3); /* erase the b, then CR */
    ssize_t r = read(s, buf, sizeof(buf));
    say("erase and CR to NL", r == 3 && !memcmp(buf, "ac\n", 3), r);
    drain(m, out, sizeof(out), 200);
    say("echo of the line with its erase", !strcmp(out, "ab\b \bc\r\n"), (long)strlen(out));
    write(m, "junk\025ok\n", 8); /* ^U */
    r = read(s, buf, sizeof(buf));
    say("kill erases the line", r == 3 && !memcmp(buf, "ok\n", 3), r);
    write(m, "one two\027three\n", 14); /* ^W */
    r = read(s, buf, sizeof(buf));
    say("werase erases a word", r == 10 && !memcmp(buf, "one three\n", 10), r);
    write(m, "x\ny\n", 4);
    r = read(s, buf, sizeof(buf));
    say("one line per read", r == 2 && buf[0] == 'x', r);
    r = read(s, buf, 1);
    ssize_t r2 = read(s, buf + 1, sizeof(buf) - 1);
    say("a short read leaves the rest of the line", r == 1 && buf[0] == 'y' && r2 == 1 && buf[1] == '\n', r2);
    write(m, "\004", 1);
    say("^D on an empty line reads 0", read(s, buf, sizeof(buf)) == 0, 0);
    write(m, "ab\004", 3);
    r = read(s, buf, sizeof(buf));
    say("^D after text ends the line without itself", r == 2 && !memcmp(buf, "ab", 2), r);
    drain(m, out, sizeof(out), 100);
    write(s, "hi\n", 3);
    drain(m, out, sizeof(out), 200);
    say("ONLCR: the slave's NL reaches the master as CR NL", !strcmp(out, "hi\r\n"), (long)strlen(out));
    struct termios t;
    tcgetattr(s, &t);
    say("default termios: ICANON ECHO ISIG ICRNL OPOST ONLCR",
        (t.c_lflag & (ICANON | ECHO | ISIG)) == (ICANON | ECHO | ISIG) && (t.c_iflag & ICRNL) &&
            (t.c_oflag & (OPOST | ONLCR)) == (OPOST | ONLCR) && t.c_cc[VINTR] == 3 && t.c_cc[VERASE] == 0177,
        (long)t.c_lflag);
    t.c_lflag &= ~ECHO;
    tcsetattr(s, TCSANOW, &t);
    write(m, "secret\n", 7);
    read(s, buf, sizeof(buf));
    say("no echo without ECHO", drain(m, out, sizeof(out), 150) == 0, (long)strlen(out));
    int avail = -1;
    write(m, "abc\n", 4);
    usleep(10000);
    say("FIONREAD on the slave", ioctl(s, FIONREAD, &avail) == 0 && avail == 4, avail);
    tcflush(s, TCIFLUSH);
    fcntl(s, F_SETFL, fl | O_NONBLOCK);
    say("tcflush empties the input", read(s, buf, sizeof(buf)) < 0 && errno == EAGAIN, errno);
    close(s);
    close(m);
}

/* Raw mode (cfmakeraw): bytes as they come, no echo, no CR translation; VMIN and VTIME. */
static void raw(void)
{
    int m, s;
    char buf[64], out[64];
    if (open_pair(&m, &s) < 0)
        return say("raw: open", 0, errno);
    struct termios t;
    tcgetattr(s, &t);
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    say("tcsetattr raw", tcsetattr(s, TCSANOW, &t) == 0, errno);
    write(m, "a\rb", 3);
    usleep(10000);
    ssize_t r = read(s, buf, sizeof(buf));
    say("raw: bytes as they are", r == 3 && !memcmp(buf, "a\rb", 3), r);
    say("raw: no echo", drain(m, out, sizeof(out), 100) == 0, 0);
    write(s, "x\n", 2);
    drain(m, out, sizeof(out), 200);
    say("raw: no output processing", !strcmp(out, "x\n"), (long)strlen(out));
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 2; /* 0.2 s */
    tcsetattr(s, TCSANOW, &t);
    long t0 = mono_ms();
    r = read(s, buf, sizeof(buf));
    long took = mono_ms() - t0;
    say("VMIN 0 VTIME 2: 0 bytes after 0.2 s", r == 0 && took >= 180 && took < 1000, took);
    t.c_cc[VMIN] = 3;
    t.c_cc[VTIME] = 0;
    tcsetattr(s, TCSANOW, &t);
    if (fork() == 0) {
        usleep(50000);
        write(m, "12", 2);
        usleep(50000);
        write(m, "34", 2);
        _exit(0);
    }
    r = read(s, buf, sizeof(buf));
    say("VMIN 3 waits for three bytes", r >= 3, r);
    wait(NULL);
    close(s);
    close(m);
}

/* A child that leads a new session with the slave as its controlling terminal, then runs
 * `body`; its exit status is the test's. */
static pid_t session_child(int m, int s, int (*body)(int s))
{
    pid_t c = fork();
    if (c == 0) {
        close(m);
        signal(SIGINT, SIG_DFL); /* a shell may have started us with them ignored */
        signal(SIGQUIT, SIG_DFL);
        setsid();
        if (ioctl(s, TIOCSCTTY, 0) < 0)
            _exit(90);
        _exit(body(s));
    }
    return c;
}

static volatile int winch, hups;

static void on_winch(int sig)
{
    (void)sig;
    winch++;
}

static void on_hup(int sig)
{
    (void)sig;
    hups++;
}

static int wait_winch(int s)
{
    struct winsize ws;
    signal(SIGWINCH, on_winch);
    write(s, "r", 1); /* ready */
    for (int i = 0; i < 200 && !winch; i++)
        usleep(10000);
    ioctl(s, TIOCGWINSZ, &ws);
    return winch && ws.ws_col == 100 && ws.ws_row == 30 ? 0 : 1;
}

static int ctty_checks(int s)
{
    int fd = open("/dev/tty", O_RDWR);
    if (fd < 0)
        return 10 + errno;
    pid_t pg = -1;
    if (ioctl(fd, TIOCGPGRP, &pg) < 0 || pg != getpgrp())
        return 2;
    if (tcgetsid(s) != getsid(0))
        return 3;
    signal(SIGHUP, SIG_IGN); /* the leader giving it up hangs up its foreground group: itself */
    if (ioctl(s, TIOCNOTTY) < 0)
        return 4;
    if (open("/dev/tty", O_RDWR) >= 0 || errno != ENXIO)
        return 5;
    return 0;
}

static int sleep_forever(int s)
{
    write(s, "r", 1);
    for (int i = 0; i < 1000; i++) /* 10 s at most */
        usleep(10000);
    return 1;
}

static int hup_wait(int s)
{
    signal(SIGHUP, on_hup);
    write(s, "r", 1);
    for (int i = 0; i < 300 && !hups; i++)
        usleep(10000);
    char c;
    ssize_t r = read(s, &c, 1); /* a hung-up terminal reads end-of-file */
    return hups && r == 0 ? 0 : 1;
}

static int status_of(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid ? st : -1;
}

/* Waits for the child's "r" on the master (and whatever it echoed). */
static void ready(int m)
{
    char b[64];
    drain(m, b, sizeof(b), 2000);
}

static void sessions(void)
{
    int m, s;
    if (open_pair(&m, &s) < 0)
        return say("sessions: open", 0, errno);
    pid_t c = session_child(m, s, wait_winch);
    ready(m);
    struct winsize ws = {30, 100, 0, 0};
    ioctl(m, TIOCSWINSZ, &ws);
    int st = status_of(c);
    say("TIOCSWINSZ: SIGWINCH to the foreground group, the size read back", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
    c = session_child(m, s, ctty_checks);
    st = status_of(c);
    say("/dev/tty, TIOCGPGRP, tcgetsid, TIOCNOTTY", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
    say("not our controlling terminal: TIOCGPGRP ENOTTY", tcgetpgrp(s) < 0 && errno == ENOTTY, errno);
    static const struct {
        const char *name, *key;
        int sig;
    } keys[] = {{"^\\ sends SIGQUIT to the foreground group", "\034", SIGQUIT},
                {"^C sends SIGINT", "\003", SIGINT}};
    for (int i = 0; i < 2; i++) {
        c = session_child(m, s, sleep_forever);
        ready(m);
        write(m, keys[i].key, 1);
        st = status_of(c);
        say(keys[i].name, WIFSIGNALED(st) && WTERMSIG(st) == keys[i].sig, st);
    }
    char out[64];
    drain(m, out, sizeof(out), 100);
    c = session_child(m, s, hup_wait);
    ready(m);
    close(s);
    close(m); /* the master goes: the session's leader gets SIGHUP */
    st = status_of(c);
    say("closing the master hangs up the session", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
}

/* Job control: a background group's read gets SIGTTIN (EIO when it ignores it), ^Z stops the
 * foreground group (WUNTRACED sees it) and SIGCONT continues it. */
static int bg_read(int s)
{
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0); /* a background group of the session */
        signal(SIGTTIN, SIG_IGN);
        char b;
        _exit(read(s, &b, 1) < 0 && errno == EIO ? 0 : 1);
    }
    int st = status_of(c);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    c = fork();
    if (c == 0) {
        setpgid(0, 0);
        char b;
        read(s, &b, 1); /* SIGTTIN stops it */
        _exit(2);
    }
    pid_t w = waitpid(c, &st, WUNTRACED);
    if (w != c || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTTIN)
        return 3;
    kill(c, SIGKILL);
    status_of(c);
    return 0;
}

static int fg_stop(int s)
{
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        for (;;)
            pause();
    }
    setpgid(c, c);
    signal(SIGTTOU, SIG_IGN); /* as a shell does, to hand the terminal to its job */
    if (tcsetpgrp(s, c) < 0)
        return 1;
    write(s, "r", 1);
    int st;
    pid_t w = waitpid(c, &st, WUNTRACED); /* the master types ^Z */
    if (w != c || !WIFSTOPPED(st) || WSTOPSIG(st) != SIGTSTP)
        return 2;
    tcsetpgrp(s, getpgrp());
    kill(c, SIGCONT);
    w = waitpid(c, &st, WCONTINUED);
    if (w != c || !WIFCONTINUED(st))
        return 3;
    kill(c, SIGTERM);
    st = status_of(c);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM ? 0 : 4;
}

static void jobs(void)
{
    int m, s;
    if (open_pair(&m, &s) < 0)
        return say("jobs: open", 0, errno);
    pid_t c = session_child(m, s, bg_read);
    int st = status_of(c);
    say("background read: EIO when SIGTTIN is ignored, else stopped by it", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
    c = session_child(m, s, fg_stop);
    ready(m);
    write(m, "\032", 1);
    st = status_of(c);
    say("^Z stops the foreground group, SIGCONT continues it", WIFEXITED(st) && WEXITSTATUS(st) == 0, st);
    close(s);
    close(m);
}

/* Readiness: the master is readable when the slave wrote, the slave when a line is complete;
 * the master reads EIO and polls POLLHUP once the slave closed. */
static void readiness(void)
{
    int m, s;
    if (open_pair(&m, &s) < 0)
        return say("readiness: open", 0, errno);
    struct termios t;
    tcgetattr(s, &t);
    t.c_lflag &= ~ECHO;
    tcsetattr(s, TCSANOW, &t);
    struct pollfd p[2] = {{m, POLLIN, 0}, {s, POLLIN, 0}};
    say("nothing to read at first", poll(p, 2, 0) == 0, p[0].revents);
    write(m, "partial", 7);
    say("a partial line is not readable", poll(&p[1], 1, 50) == 0, p[1].revents);
    write(m, "\n", 1);
    say("a complete line is", poll(&p[1], 1, 1000) == 1 && (p[1].revents & POLLIN), p[1].revents);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = m}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, m, &ev);
    say("epoll: the master not ready", epoll_wait(ep, &got, 1, 0) == 0, 0);
    write(s, "out", 3);
    say("epoll: the master readable after a slave write", epoll_wait(ep, &got, 1, 1000) == 1 && (got.events & EPOLLIN), 0);
    char buf[16];
    read(m, buf, sizeof(buf));
    close(s);
    say("the slave closed: master POLLHUP", poll(p, 1, 1000) == 1 && (p[0].revents & POLLHUP), p[0].revents);
    say("... and read EIO", read(m, buf, sizeof(buf)) < 0 && errno == EIO, errno);
    close(ep);
    close(m);
}

void pty_checks(void)
{
    signal(SIGTTOU, SIG_DFL);
    basics();
    cooked();
    raw();
    sessions();
    jobs();
    readiness();
}
