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
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/uio.h>
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


/* SCM_RIGHTS over a unix stream: the descriptors come with their bytes, a read stops after a
 * message that brings some, a buffer too small cuts them (MSG_CTRUNC) and closes the rest */
static int send_fds(int s, const char *data, const int *fds, int n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec io = {(void *)data, strlen(data)};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return (int)sendmsg(s, &m, 0);
}

static int recv_fds(int s, char *data, size_t dn, int *fds, size_t clen, int *flags)
{
    char cbuf[256];
    struct iovec io = {data, dn};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = clen ? cbuf : NULL, .msg_controllen = clen};
    int r = (int)recvmsg(s, &m, 0), n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    *flags = m.msg_flags;
    if (r >= 0)
        data[r] = 0;
    return r < 0 ? r : n;
}

static void fd_passing(void)
{
    int sv[2], p[2], got[8], flags;
    char buf[64];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0)
        return;
    int two[2] = {p[0], p[1]};
    say("sendmsg SCM_RIGHTS", send_fds(sv[0], "abc", two, 2) == 3, errno);
    (void)!write(sv[0], "tail", 4);
    int n = recv_fds(sv[1], buf, sizeof(buf) - 1, got, 256, &flags);
    say("two descriptors with their bytes only", n == 2 && !strcmp(buf, "abc") && !(flags & MSG_CTRUNC), n);
    say("which are the pipe's ends", n == 2 && write(got[1], "z", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == 'z', errno);
    n = recv_fds(sv[1], buf, sizeof(buf) - 1, got + 2, 256, &flags);
    say("then the plain bytes", n == 0 && !strcmp(buf, "tail"), n);
    (void)!write(sv[0], "x", 1);
    send_fds(sv[0], "yz", two, 2);
    n = recv_fds(sv[1], buf, sizeof(buf) - 1, got + 2, 256, &flags);
    say("a read goes on into a message with descriptors", n == 2 && !strcmp(buf, "xyz"), n);
    close(got[2]);
    close(got[3]);
    send_fds(sv[0], "yz", two, 2);
    (void)!write(sv[0], "!", 1);
    n = recv_fds(sv[1], buf, sizeof(buf) - 1, got + 2, CMSG_LEN(sizeof(int)), &flags);
    say("a control buffer for one of two: MSG_CTRUNC", n == 1 && (flags & MSG_CTRUNC) && !strcmp(buf, "yz"), n);
    n = recv_fds(sv[1], buf, sizeof(buf) - 1, got + 3, 256, &flags);
    say("the bytes after come next", n == 0 && !strcmp(buf, "!"), n);
    send_fds(sv[0], "w", two, 1);
    n = recv_fds(sv[1], buf, sizeof(buf) - 1, got + 3, 0, &flags);
    say("no control buffer: MSG_CTRUNC, nothing installed", n == 0 && (flags & MSG_CTRUNC) && !strcmp(buf, "w"), n);
    int bad = 999;
    errno = 0;
    say("a bad descriptor EBADF", send_fds(sv[0], "q", &bad, 1) == -1 && errno == EBADF, errno);
    for (int i = 0; i < 3; i++)
        close(got[i]);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}

/* loopback TCP: the first write after the peer closed goes (the peer's reset answers it), the
 * next one is EPIPE, as on Linux (python's test_socket NetworkConnectionBehaviourTest) */
static void tcp_after_close(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    bind(l, (struct sockaddr *)&a, sizeof(a));
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    connect(c, (struct sockaddr *)&a, sizeof(a));
    int s = accept(l, NULL, NULL);
    close(c);
    usleep(20000);
    long first = send(s, "done!", 5, MSG_NOSIGNAL);
    usleep(20000);
    errno = 0;
    long second = send(s, "more", 4, MSG_NOSIGNAL);
    say("TCP: a write after the peer closed, then EPIPE", first == 5 && second == -1 && errno == EPIPE, first * 100 + errno);
    close(s);
    close(l);
}

/* flock and fcntl record locks between processes (sqlite's, pip's and git's locking) */
static int lock_range(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void file_locks(void)
{
    int fd = open("/tmp/regr-lock", O_CREAT | O_RDWR | O_TRUNC, 0644), p[2], ws = -1;
    if (fd < 0 || pipe(p) < 0)
        return;
    say("flock LOCK_EX", flock(fd, LOCK_EX) == 0, errno);
    pid_t pid = fork();
    if (pid == 0) {
        int g = open("/tmp/regr-lock", O_RDWR), ok = flock(g, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK;
        ok = ok && flock(fd, LOCK_SH | LOCK_NB) == 0; /* the inherited descriptor shares the parent's lock */
        _exit(ok ? 0 : 1);
    }
    waitpid(pid, &ws, 0);
    say("another open file's flock EWOULDBLOCK, a shared one converts", WIFEXITED(ws) && WEXITSTATUS(ws) == 0, ws);
    flock(fd, LOCK_UN);
    say("F_SETLK a write lock on bytes 10..19", lock_range(fd, F_SETLK, F_WRLCK, 10, 10) == 0, errno);
    pid = fork();
    if (pid == 0) {
        int g = open("/tmp/regr-lock", O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        int ok = fcntl(g, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK && fl.l_start == 10 && fl.l_len == 10 &&
                 fl.l_pid == getppid();
        ok = ok && lock_range(g, F_SETLK, F_RDLCK, 15, 1) == -1 && (errno == EAGAIN || errno == EACCES);
        ok = ok && lock_range(g, F_SETLK, F_WRLCK, 20, 5) == 0; /* beside it */
        (void)!write(p[1], "r", 1);
        long t0 = mono_ms();
        ok = ok && lock_range(g, F_SETLKW, F_WRLCK, 12, 2) == 0 && mono_ms() - t0 >= 50; /* waits for the parent */
        _exit(ok ? 0 : 1);
    }
    char c;
    (void)!read(p[0], &c, 1);
    usleep(100000);
    int other = open("/tmp/regr-lock", O_RDONLY);
    close(other); /* POSIX: closing any descriptor of the file lets the process's locks go */
    waitpid(pid, &ws, 0);
    say("F_GETLK, F_SETLK EAGAIN, F_SETLKW waits until a close lets the lock go", WIFEXITED(ws) && WEXITSTATUS(ws) == 0, ws);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    say("the child's locks went with it", fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK, fl.l_type);
    say("F_OFD_SETLK", lock_range(fd, F_OFD_SETLK, F_RDLCK, 0, 0) == 0, errno);
    pid = fork();
    if (pid == 0) {
        int g = open("/tmp/regr-lock", O_RDWR);
        _exit(lock_range(g, F_SETLK, F_WRLCK, 0, 1) == -1 && lock_range(g, F_SETLK, F_RDLCK, 0, 1) == 0 ? 0 : 1);
    }
    waitpid(pid, &ws, 0);
    say("an OFD read lock stops another's write lock, not its read lock", WIFEXITED(ws) && WEXITSTATUS(ws) == 0, ws);
    int ro = open("/tmp/regr-lock", O_RDONLY);
    errno = 0;
    say("a write lock on a read-only file EBADF", lock_range(ro, F_SETLK, F_WRLCK, 0, 1) == -1 && errno == EBADF, errno);
    close(ro);
    close(fd);
    close(p[0]);
    close(p[1]);
    unlink("/tmp/regr-lock");
}

/* IPv6 UDP's RFC 3542 ancillary data: the hop limit and traffic class sent and received */
static void ipv6_ancillary(void)
{
    int a = socket(AF_INET6, SOCK_DGRAM, 0), b = socket(AF_INET6, SOCK_DGRAM, 0), one = 1;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t sl = sizeof(sa);
    bind(b, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(b, (struct sockaddr *)&sa, &sl);
    setsockopt(b, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one));
    setsockopt(b, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
    char cbuf[CMSG_SPACE(4) * 2] = {0}, data[8];
    struct iovec io = {"hi", 2};
    struct msghdr m = {.msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &io, .msg_iovlen = 1,
                       .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int hl = 7, tc = 0x20;
    c->cmsg_level = IPPROTO_IPV6, c->cmsg_type = IPV6_HOPLIMIT, c->cmsg_len = CMSG_LEN(4);
    memcpy(CMSG_DATA(c), &hl, 4);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IPV6, c->cmsg_type = IPV6_TCLASS, c->cmsg_len = CMSG_LEN(4);
    memcpy(CMSG_DATA(c), &tc, 4);
    say("sendmsg IPV6_HOPLIMIT, IPV6_TCLASS", sendmsg(a, &m, 0) == 2, errno);
    char rbuf[256];
    struct iovec rio = {data, sizeof(data)};
    struct msghdr rm = {.msg_iov = &rio, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof(rbuf)};
    int r = (int)recvmsg(b, &rm, 0), ghl = -1, gtc = -1;
    for (c = CMSG_FIRSTHDR(&rm); r >= 0 && c; c = CMSG_NXTHDR(&rm, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
            memcpy(&ghl, CMSG_DATA(c), 4);
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS)
            memcpy(&gtc, CMSG_DATA(c), 4);
    }
    say("received with them", r == 2 && ghl == 7 && gtc == 0x20, ghl * 1000 + gtc);
    close(a);
    close(b);
    int l = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    say("a UDP-Lite socket", l >= 0, errno);
    close(l);
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
    fd_passing();
    ipv6_ancillary();
    tcp_after_close();
    file_locks();
}
