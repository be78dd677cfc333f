/* Files and descriptors: the umask (kept per process, inherited, applied to open, mkdir and
 * mknod), RLIMIT_NOFILE (1024, raisable: descriptors far past 64, in poll, select and epoll,
 * kept by fork), and named pipes past 32 open at once. */
#include "guest_linux.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mode & 07777 : 0xffff;
}

static void umasks(void)
{
    mode_t old = umask(027);
    say("umask starts at 022", old == 022, (long)old);
    unlink("/tmp/um.f");
    rmdir("/tmp/um.d");
    unlink("/tmp/um.p");
    int fd = open("/tmp/um.f", O_CREAT | O_WRONLY, 0666);
    close(fd);
    mkdir("/tmp/um.d", 0777);
    mkfifo("/tmp/um.p", 0666);
    say("umask applies to open(O_CREAT)", mode_of("/tmp/um.f") == 0640, mode_of("/tmp/um.f"));
    say("umask applies to mkdir", mode_of("/tmp/um.d") == 0750, mode_of("/tmp/um.d"));
    say("umask applies to mknod", mode_of("/tmp/um.p") == 0640, mode_of("/tmp/um.p"));
    pid_t pid = fork();
    if (pid == 0) {
        unlink("/tmp/um.c");
        close(open("/tmp/um.c", O_CREAT | O_WRONLY, 0777));
        _exit(umask(0) == 027 ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    say("umask inherited by a child", status == 0 && mode_of("/tmp/um.c") == 0750, status);
    say("umask returns the previous one", umask(old) == 027, 0);
}

/* An epoll set of 200 eventfds, all ready */
static void big_epoll(void)
{
    int ep = epoll_create1(0), added = 0, efd[200];
    for (int i = 0; i < 200; i++) {
        efd[i] = eventfd(1, 0);
        struct epoll_event ev = {EPOLLIN, {.u32 = (unsigned)i}};
        added += epoll_ctl(ep, EPOLL_CTL_ADD, efd[i], &ev) == 0;
    }
    struct epoll_event got[256];
    int n = epoll_wait(ep, got, 256, 1000);
    say("epoll watching 200 descriptors", added == 200 && n == 200, added * 1000 + n);
    close(ep);
    for (int i = 0; i < 200; i++)
        close(efd[i]);
}

/* Descriptors past 64: up to the soft limit, then (raised to the hard one) further still. */
static void many_fds(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    say("RLIMIT_NOFILE 1024, hard higher", rl.rlim_cur == 1024 && rl.rlim_max > 1024, (long)rl.rlim_cur);
    int fds[2], last = -1, opened = 0;
    if (pipe(fds) < 0)
        return;
    for (int i = 0; i < 1000; i++) {
        int fd = dup(fds[0]);
        if (fd < 0)
            break;
        last = fd;
        opened++;
    }
    say("a thousand descriptors", opened == 1000 && last > 1000, opened);
    int r = dup2(fds[0], 1023), past = dup2(fds[0], 1024), e = errno;
    say("dup2 to 1023, not to 1024 (EBADF)", r == 1023 && past == -1 && e == EBADF, r);
    if (write(fds[1], "x", 1) != 1)
        return;
    struct pollfd p = {last, POLLIN, 0};
    say("poll on a high descriptor", poll(&p, 1, 1000) == 1 && (p.revents & POLLIN), p.revents);
    fd_set set;
    FD_ZERO(&set);
    FD_SET(1023, &set);
    struct timeval tv = {1, 0};
    say("select on descriptor 1023", select(1024, &set, NULL, NULL, &tv) == 1 && FD_ISSET(1023, &set), 0);
    rl.rlim_cur = rl.rlim_max;
    r = setrlimit(RLIMIT_NOFILE, &rl);
    int high = dup2(fds[0], (int)rl.rlim_max - 1);
    say("soft limit raised to the hard one", r == 0 && high == (int)rl.rlim_max - 1, high);
    rl.rlim_max++;
    say("hard limit past the most EPERM", setrlimit(RLIMIT_NOFILE, &rl) == -1 && errno == EPERM, errno);
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        _exit(read(high, &c, 1) == 1 && c == 'x' ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    say("a child has the high descriptors", status == 0, status);
    int listed = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        listed += e->d_name[0] != '.';
    if (d)
        closedir(d);
    say("/proc/self/fd lists them", listed > 1000, listed);
    say("close_range", close_range(3, ~0U, 0) == 0 && fcntl(last, F_GETFD) == -1 && fcntl(high, F_GETFD) == -1, 0);
    rl.rlim_cur = 1024;
    rl.rlim_max--;
    setrlimit(RLIMIT_NOFILE, &rl);
}

#define NFIFOS 40

static void fifos(void)
{
    int fd[NFIFOS], ok = 0;
    char path[64];
    for (int i = 0; i < NFIFOS; i++) {
        snprintf(path, sizeof(path), "/tmp/fifo.%d", i);
        unlink(path);
        mkfifo(path, 0600);
        fd[i] = open(path, O_RDWR);
        ok += fd[i] >= 0;
    }
    char c = 0;
    int io = write(fd[NFIFOS - 1], "y", 1) == 1 && read(fd[NFIFOS - 1], &c, 1) == 1 && c == 'y';
    say("40 named pipes open at once", ok == NFIFOS && io, ok);
    for (int i = 0; i < NFIFOS; i++) {
        close(fd[i]);
        snprintf(path, sizeof(path), "/tmp/fifo.%d", i);
        unlink(path);
    }
}

/* Pipes and sockets have inode numbers of their own (both ends of a pipe the same one), as
 * readlink of /proc/self/fd names them: `diff <(echo a) <(echo b)` tells two pipes apart so. */
static void pipe_inodes(void)
{
    int a[2], b[2], s[2];
    if (pipe(a) < 0 || pipe(b) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0)
        return;
    struct stat ra, wa, rb, s0, s1;
    fstat(a[0], &ra);
    fstat(a[1], &wa);
    fstat(b[0], &rb);
    fstat(s[0], &s0);
    fstat(s[1], &s1);
    say("a pipe's ends share an inode", ra.st_ino == wa.st_ino && ra.st_ino != 0 && S_ISFIFO(ra.st_mode), (long)ra.st_ino);
    say("two pipes have two inodes", ra.st_ino != rb.st_ino, (long)rb.st_ino);
    say("sockets have inodes of their own", s0.st_ino != s1.st_ino && s0.st_ino && S_ISSOCK(s0.st_mode), (long)s0.st_ino);
    char link[64], want[64], path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", a[0]);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = 0;
    snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)ra.st_ino);
    say("readlink names the pipe's inode", !strcmp(link, want), n);
    struct stat via;
    snprintf(path, sizeof(path), "/dev/fd/%d", b[0]);
    say("stat through /dev/fd reaches the pipe", stat(path, &via) == 0 && via.st_ino == rb.st_ino, (long)via.st_ino);
    FILE *d = popen("echo a | (exec 3<&0; echo b | diff /dev/fd/3 - >/dev/null; echo $?)", "r");
    int rc = -1;
    if (!d || fscanf(d, "%d", &rc) != 1)
        rc = -1;
    if (d)
        pclose(d);
    say("diff of two pipes sees them differ", rc == 1, rc);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]), close(s[0]), close(s[1]);
}

/* Files past 2 GiB, sparse, as tmpfs keeps them (CPython's test_io large-file tests seek past
 * 2 GiB and write): the bytes written read back, the holes read as zeros, a shared mapping
 * far into the file sees them. */
static void large_files(void)
{
    const off_t g3 = 3LL << 30;
    char b[16] = {0};
    int fd = open("/tmp/lt-large", O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct stat st;
    int ok = fd >= 0 && pwrite(fd, "large", 5, g3 + 5) == 5 && fstat(fd, &st) == 0 && st.st_size == g3 + 10;
    say("large file: a write at 3 GiB", ok, fd < 0 ? errno : (long)st.st_size);
    ok = ok && pread(fd, b, 10, g3) == 10 && !memcmp(b, "\0\0\0\0\0large", 10) && pread(fd, b, 4, 2LL << 30) == 4 && !b[0] && !b[3];
    say("large file: reads back, the hole zeros", ok, errno);
    say("large file: SEEK_END past 3 GiB", fd >= 0 && lseek(fd, 0, SEEK_END) == g3 + 10, errno);
    ok = fd >= 0 && ftruncate(fd, 5LL << 30) == 0 && pread(fd, b, 4, (5LL << 30) - 2) == 2 && !b[0] && !b[1];
    say("large file: ftruncate to 5 GiB", ok, errno);
    char *m = fd >= 0 ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g3) : MAP_FAILED;
    ok = m != MAP_FAILED && !memcmp(m + 5, "large", 5);
    if (ok)
        memcpy(m + 100, "mapped", 6);
    ok = ok && pread(fd, b, 6, g3 + 100) == 6 && !memcmp(b, "mapped", 6);
    say("large file: a shared mapping at 3 GiB", ok, errno);
    if (m != MAP_FAILED)
        munmap(m, 4096);
    ok = fd >= 0 && ftruncate(fd, 100) == 0 && fstat(fd, &st) == 0 && st.st_size == 100;
    say("large file: truncated back", ok, errno);
    if (fd >= 0)
        close(fd);
    unlink("/tmp/lt-large");
}

void file_checks(void)
{
    large_files();
    pipe_inodes();
    umasks();
    big_epoll();
    many_fds();
    fifos();
}
