/* What CPython's regression tests (test_os, test_fcntl, test_subprocess, test_time, test_socket,
 * test_shutil, test_signal) found missing or wrong: owners kept by chown, EBADF for bad
 * descriptors, pipe sizes, the wall clock set, CPU-time clock ids, supplementary groups, socket
 * options read back, creat, open(O_CREAT) of a name with a trailing slash, host names. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void owners(void)
{
    struct stat st;
    int fd = open("/tmp/regr-own", O_CREAT | O_WRONLY | O_TRUNC, 06755);
    fchmod(fd, 06755);
    say("chown keeps the owner", chown("/tmp/regr-own", 1, 2) == 0 && stat("/tmp/regr-own", &st) == 0 &&
                                     st.st_uid == 1 && st.st_gid == 2, (long)st.st_uid);
    say("chown drops set-user-id and set-group-id", (st.st_mode & 06000) == 0, (long)st.st_mode);
    say("fchown -1 leaves the owner", fchown(fd, -1, 5) == 0 && fstat(fd, &st) == 0 && st.st_uid == 1 && st.st_gid == 5,
        (long)st.st_gid);
    symlink("/tmp/regr-own", "/tmp/regr-own-l");
    say("lchown changes the link", lchown("/tmp/regr-own-l", 7, 7) == 0 && lstat("/tmp/regr-own-l", &st) == 0 &&
                                       st.st_uid == 7 && stat("/tmp/regr-own", &st) == 0 && st.st_uid == 1, (long)st.st_uid);
    say("fchownat AT_EMPTY_PATH", fchownat(fd, "", 3, 3, AT_EMPTY_PATH) == 0 && fstat(fd, &st) == 0 && st.st_uid == 3, (long)st.st_uid);
    errno = 0;
    say("chown of nothing is ENOENT", chown("/tmp/regr-none", 0, 0) == -1 && errno == ENOENT, errno);
    pid_t pid = fork();
    if (pid == 0)
        _exit(setresuid(1000, 1000, 1000) == 0 && chown("/tmp/regr-own", 1000, -1) == -1 && errno == EPERM ? 0 : 1);
    int ws = -1;
    waitpid(pid, &ws, 0);
    say("chown by a user is EPERM", WIFEXITED(ws) && WEXITSTATUS(ws) == 0, ws);
    close(fd);
    unlink("/tmp/regr-own-l");
    unlink("/tmp/regr-own");
}

static void bad_descriptors(void)
{
    errno = 0;
    say("fsync(-1) EBADF", fsync(-1) == -1 && errno == EBADF, errno);
    errno = 0;
    say("fdatasync(99) EBADF", fdatasync(99) == -1 && errno == EBADF, errno);
    errno = 0;
    say("fchown(-1) EBADF", fchown(-1, -1, -1) == -1 && errno == EBADF, errno);
    errno = 0;
    say("pidfd_send_signal to a non-pidfd EBADF", syscall(SYS_pidfd_send_signal, 0, SIGINT, NULL, 0) == -1 && errno == EBADF, errno);
}

static void pipe_sizes(void)
{
    int p[2];
    char buf[8192];
    if (pipe(p) < 0)
        return;
    say("F_GETPIPE_SZ 64 KiB", fcntl(p[1], F_GETPIPE_SZ) == 65536, fcntl(p[1], F_GETPIPE_SZ));
    say("F_SETPIPE_SZ rounds up to pages", fcntl(p[1], F_SETPIPE_SZ, 5000) == 8192 && fcntl(p[0], F_GETPIPE_SZ) == 8192,
        fcntl(p[0], F_GETPIPE_SZ));
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    memset(buf, 'x', sizeof(buf));
    long n = write(p[1], buf, sizeof(buf));
    say("a 8 KiB pipe holds 8 KiB", n == 8192 && write(p[1], buf, 1) == -1 && errno == EAGAIN, n);
    errno = 0;
    say("shrinking below what it holds EBUSY", fcntl(p[1], F_SETPIPE_SZ, 4096) == -1 && errno == EBUSY, errno);
    say("growing keeps the data", fcntl(p[1], F_SETPIPE_SZ, 1 << 20) == 1 << 20 && write(p[1], "yz", 2) == 2, errno);
    n = read(p[0], buf, sizeof(buf));
    char tail[4] = {0};
    say("and its order", n == 8192 && buf[8191] == 'x' && read(p[0], tail, 3) == 2 && !strcmp(tail, "yz"), n);
    errno = 0;
    say("past 1 MiB EPERM", fcntl(p[1], F_SETPIPE_SZ, (1 << 20) + 1) == -1 && errno == EPERM, errno);
    close(p[0]);
    close(p[1]);
}

static void *spin(void *arg)
{
    volatile long i = 0;
    while (i < 20000000)
        i++;
    return arg;
}

static void clocks(void)
{
    struct timespec t0, t1, tc;
    struct utsname u;
    uname(&u);
    /* an hour back and forth only in the guest: a Linux host's clock is everyone's */
    if (!strstr(u.release, "lelantos")) {
        say("clock_settime (in the guest only)", 1, 0);
        return;
    }
    int hour = 3600;
    clock_gettime(CLOCK_REALTIME, &t0);
    struct timespec back = {t0.tv_sec - hour, t0.tv_nsec};
    say("clock_settime(REALTIME)", clock_settime(CLOCK_REALTIME, &back) == 0, errno);
    clock_gettime(CLOCK_REALTIME, &t1);
    say("the wall clock went back an hour", t1.tv_sec >= t0.tv_sec - hour - 1 && t1.tv_sec <= t0.tv_sec - hour + 1,
        (long)(t0.tv_sec - t1.tv_sec));
    clock_gettime(CLOCK_REALTIME, &t1);
    t1.tv_sec += hour;
    clock_settime(CLOCK_REALTIME, &t1);
    errno = 0;
    say("clock_settime(MONOTONIC) EINVAL", clock_settime(CLOCK_MONOTONIC, &t0) == -1 && errno == EINVAL, errno);
    clockid_t c;
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
    pthread_join(t, NULL);
    spin(NULL);
    say("pthread_getcpuclockid", pthread_getcpuclockid(pthread_self(), &c) == 0 && clock_gettime(c, &tc) == 0 &&
                                     (tc.tv_sec > 0 || tc.tv_nsec > 0), errno);
    struct timespec tp;
    say("clock_getcpuclockid(0)", clock_getcpuclockid(0, &c) == 0 && clock_gettime(c, &tp) == 0 &&
                                      (tp.tv_sec > tc.tv_sec || (tp.tv_sec == tc.tv_sec && tp.tv_nsec > tc.tv_nsec)), errno);
    say("clock_getres of a CPU clock", clock_getres(c, &tp) == 0, errno);
    errno = 0;
    say("a thread clock of nobody EINVAL", clock_gettime((clockid_t)(-8 * 1000000 + 6 - 8), &tp) == -1 && errno == EINVAL, errno);
}

static void groups(void)
{
    gid_t g[8] = {50, 65534, 7};
    pid_t pid = fork();
    if (pid == 0) {
        gid_t got[8];
        int ok = setgroups(3, g) == 0 && getgroups(0, NULL) == 3 && getgroups(8, got) == 3 && got[0] == 7 && got[1] == 50 && got[2] == 65534; /* sorted, as Linux keeps them */
        ok = ok && getgroups(1, got) == -1 && errno == EINVAL;
        pid_t k = fork(); /* inherited */
        if (k == 0)
            _exit(getgroups(8, got) == 3 && got[2] == 65534 ? 0 : 1);
        int ws = -1;
        waitpid(k, &ws, 0);
        _exit(ok && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : 1);
    }
    int ws = -1;
    waitpid(pid, &ws, 0);
    say("setgroups kept and inherited", WIFEXITED(ws) && WEXITSTATUS(ws) == 0, ws);
}

static void sockopts(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, v = 0;
    socklen_t n = sizeof(v);
    say("SO_REUSEADDR off at first", getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &n) == 0 && v == 0, v);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int a = 0, b = 0, c = 0;
    n = sizeof(a);
    getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &a, &n);
    getsockopt(s, SOL_SOCKET, SO_REUSEPORT, &b, &n);
    getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &c, &n);
    say("int options read back", a == 1 && b == 1 && c == 1, a * 100 + b * 10 + c);
    errno = 0;
    say("SO_TYPE cannot be set", setsockopt(s, SOL_SOCKET, SO_TYPE, &one, sizeof(one)) == -1 && errno == ENOPROTOOPT, errno);
    close(s);
}

static void names(void)
{
    int fd = creat("/tmp/regr-creat", 0600);
    struct stat st;
    say("creat", fd >= 0 && write(fd, "x", 1) == 1 && fstat(fd, &st) == 0 && st.st_size == 1 && (st.st_mode & 0777) == 0600, errno);
    close(fd);
    unlink("/tmp/regr-creat");
    errno = 0;
    say("open(O_CREAT) of \"name/\" EISDIR", open("/tmp/regr-dir/", O_CREAT | O_WRONLY, 0644) == -1 && errno == EISDIR &&
                                               access("/tmp/regr-dir", F_OK) == -1, errno);
    struct utsname u, u2;
    uname(&u);
    if (!strstr(u.release, "lelantos")) /* a Linux host's name is everyone's */
        return;
    say("sethostname", sethostname("regr-host", 9) == 0 && uname(&u2) == 0 && !strcmp(u2.nodename, "regr-host"), errno);
    sethostname(u.nodename, strlen(u.nodename));
    errno = 0;
    say("a host name of 65 bytes EINVAL", sethostname("0123456789012345678901234567890123456789012345678901234567890123456789", 65) == -1 &&
                                               errno == EINVAL, errno);
}

static volatile sig_atomic_t got_vt, got_prof, got_io;

static void on_sig(int sig)
{
    if (sig == SIGVTALRM)
        got_vt++;
    else if (sig == SIGPROF)
        got_prof++;
    else if (sig == SIGIO)
        got_io++;
}

/* ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time, not the clock's */
static void cpu_itimers(void)
{
    signal(SIGVTALRM, on_sig);
    signal(SIGPROF, on_sig);
    struct itimerval v = {{0, 50000}, {0, 100000}}, o;
    say("setitimer(ITIMER_VIRTUAL)", setitimer(ITIMER_VIRTUAL, &v, NULL) == 0, errno);
    say("setitimer(ITIMER_PROF)", setitimer(ITIMER_PROF, &v, NULL) == 0, errno);
    usleep(200000); /* asleep: no CPU time, no signal */
    say("no CPU-time signal while asleep", got_vt == 0 && got_prof == 0, got_vt);
    say("getitimer while armed", getitimer(ITIMER_VIRTUAL, &o) == 0 && o.it_interval.tv_usec == 50000 &&
                                     (o.it_value.tv_sec > 0 || o.it_value.tv_usec > 0), (long)o.it_value.tv_usec);
    long t0 = mono_ms();
    while ((got_vt < 3 || got_prof < 3) && mono_ms() - t0 < 5000)
        spin(NULL);
    say("SIGVTALRM and SIGPROF as the CPU time goes", got_vt >= 3 && got_prof >= 3, got_vt * 100 + got_prof);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &off, NULL);
    setitimer(ITIMER_PROF, &off, &o);
    say("setitimer off gives the old one back", o.it_interval.tv_usec == 50000, (long)o.it_interval.tv_usec);
    say("getitimer off", getitimer(ITIMER_PROF, &o) == 0 && !o.it_value.tv_sec && !o.it_value.tv_usec, (long)o.it_value.tv_usec);
}

/* a /proc/<pid> directory's descriptor is a pidfd (python's signal.pidfd_send_signal test) */
static void proc_dir_pidfd(void)
{
    int fd = open("/proc/self", O_DIRECTORY | O_RDONLY);
    signal(SIGUSR1, on_sig);
    got_io = 0;
    signal(SIGUSR2, SIG_IGN);
    say("pidfd_send_signal through /proc/<pid>", fd >= 0 && syscall(SYS_pidfd_send_signal, fd, SIGUSR2, NULL, 0) == 0, errno);
    signal(SIGUSR2, SIG_DFL);
    close(fd);
}

/* fcntl(F_NOTIFY): SIGIO when the directory changes; once unless DN_MULTISHOT */
static void dnotify(void)
{
    mkdir("/tmp/regr-dn", 0755);
    int d = open("/tmp/regr-dn", O_RDONLY | O_DIRECTORY);
    signal(SIGIO, on_sig);
    got_io = 0;
    say("F_NOTIFY DN_CREATE|DN_MULTISHOT", fcntl(d, F_NOTIFY, DN_CREATE | DN_DELETE | DN_MULTISHOT) == 0, errno);
    close(open("/tmp/regr-dn/a", O_CREAT | O_WRONLY, 0644));
    unlink("/tmp/regr-dn/a");
    say("SIGIO for a create and a delete", got_io == 2, got_io);
    fcntl(d, F_NOTIFY, DN_CREATE); /* adds to the mark, which stays DN_MULTISHOT */
    close(d);
    d = open("/tmp/regr-dn", O_RDONLY | O_DIRECTORY);
    fcntl(d, F_NOTIFY, DN_CREATE);
    got_io = 0;
    close(open("/tmp/regr-dn/b", O_CREAT | O_WRONLY, 0644));
    close(open("/tmp/regr-dn/c", O_CREAT | O_WRONLY, 0644));
    say("without DN_MULTISHOT once", got_io == 1, got_io);
    int f = open("/tmp/regr-dn/b", O_RDONLY);
    errno = 0;
    say("F_NOTIFY on a file ENOTDIR", fcntl(f, F_NOTIFY, DN_CREATE) == -1 && errno == ENOTDIR, errno);
    say("F_SETOWN, F_GETOWN", fcntl(f, F_SETOWN, getpid()) == 0 && fcntl(f, F_GETOWN) == getpid(), errno);
    close(f);
    close(d);
    unlink("/tmp/regr-dn/b");
    unlink("/tmp/regr-dn/c");
    rmdir("/tmp/regr-dn");
    signal(SIGIO, SIG_DFL);
}

void regr_checks(void)
{
    cpu_itimers();
    proc_dir_pidfd();
    dnotify();
    owners();
    bad_descriptors();
    pipe_sizes();
    clocks();
    groups();
    sockopts();
    names();
}
