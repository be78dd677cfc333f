/* A static Linux x86-64 program, raw syscalls only, that test_vmm copies into a guest and runs:
 * the syscall behaviour busybox does not reach or does not check. It prints one line per check
 * ("<name> ok" or "<name> FAIL <value>") and exits 0 when every check passed. Run on Linux, all
 * pass but two: the SA_RESTORER check below, and the MADV_DONTNEED one where sysinfo does not
 * follow page use (a gVisor-like sandbox); the check that touches more than the memory runs
 * only in our guest.
 * Files and descriptors: pread/pwrite leave the offset, lseek past the end makes a hole, dup3
 * and fcntl, ioctl TCGETS is ENOTTY, symlink/readlink/lstat, getcwd, getdents64, renameat2's
 * RENAME_NOREPLACE; hard links; /proc/self/fd and /dev/stdin, /dev/fd (readlink, open, stat); pipes: pipe2 flags, O_NONBLOCK (EAGAIN both ways), 64 KiB held, writes
 * up to PIPE_BUF never split, poll and its timeout,
 * writev/readv; eventfd (counter, semaphore) and epoll (level, edge, one-shot, hang-up, a
 * blocked epoll_pwait woken by a child, a closed file leaving the set); futex CMP_REQUEUE
 * (with a clone(CLONE_VM) child waiting) and the vfork syscall; a descriptor closed by one
 * thread while another blocks reading it; named pipes, close_range, setpriority; loopback TCP and AF_UNIX
 * sockets (connect, accept, both directions, half-close, errors, socketpair, sendmsg); UDP and
 * unix datagrams; ioctl FIONREAD/FIOCLEX; memory: anonymous and private file mmap, a PROT_NONE
 * reservation made accessible by mprotect (lazy; its rest faults), brk, the stack growing (from user
 * mode and from a syscall) and overflowing (SIGSEGV); large anonymous mappings getting pages as
 * touched (MADV_DONTNEED giving them back, mremap keeping them so, a touch past the memory
 * killing); execve's limits (Linux's: 128 KiB a string, 2 MiB in all, E2BIG past them); time, uname, arch_prctl, getrandom. Signals (from a forked child, after a delay long enough for the parent to be
 * asleep):
 *   - rt_sigaction refuses a handler without SA_RESTORER (there would be no way back; Linux
 *     takes it, so run on Linux this check alone fails)
 *   - tkill and tgkill to itself run the handler; with SA_ONSTACK it runs on the sigaltstack
 *   - a pipe read interrupted by a handler with SA_RESTART is restarted and gets the data;
 *     without SA_RESTART it fails with EINTR
 *   - pause() returns EINTR after a handler ran
 *   - setitimer(ITIMER_REAL) fires once and then repeatedly, getitimer reads it, alarm says
 *     the seconds left */
typedef unsigned long u64;

#define SIGUSR1 10
#define SIGUSR2 12
#define SIGALRM 14
#define SA_RESTART 0x10000000UL
#define SA_RESTORER 0x04000000UL
#define EINTR 4
#define EINVAL 22
#define ENOENT 2
#define EAGAIN 11
#define EEXIST 17
#define ENOTTY 25
#define EPERM 1
#define O_RDWR 2
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_NONBLOCK 04000
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define AT_FDCWD -100

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

static char altstack[16384] __attribute__((aligned(16)));
static volatile u64 alt_sp;
static volatile long alt_flags = -1;

/* Where the handler runs, and what sigaltstack says there (SS_ONSTACK: 1) */
static void on_alt(int sig)
{
    char here;
    u64 ss[3] = {0, 0, 0};
    alt_sp = (u64)&here;
    SYS(131, 0, ss, 0, 0);
    alt_flags = (int)ss[1];
    hits[sig]++;
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

static int same(const char *a, const char *b, long n)
{
    for (long i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static long mono_ms(void)
{
    long ts[2];
    SYS(228, 1, ts, 0, 0); /* CLOCK_MONOTONIC */
    return ts[0] * 1000 + ts[1] / 1000000;
}

static u64 st[18]; /* struct stat: st_mode is the low half of [3], st_size [6] */
#define ST_MODE ((unsigned)st[3] & 0170000)

static void files(void)
{
    static char buf[256];
    long fd = SYS(257, AT_FDCWD, "/tmp/st.f", O_CREAT | O_RDWR | O_TRUNC, 0644);
    say("openat create", fd >= 3, fd);
    long r = SYS(1, fd, "hello world", 11, 0);
    long w = SYS(18, fd, "HELLO", 5, 0); /* pwrite64 at 0 */
    long at = SYS(8, fd, 0, 1, 0);       /* lseek(SEEK_CUR) */
    say("pwrite keeps the offset", r == 11 && w == 5 && at == 11, at);
    r = raw_syscall6(17, fd, (long)buf, 5, 6, 0, 0); /* pread64 at 6 */
    say("pread", r == 5 && same(buf, "world", 5) && SYS(8, fd, 0, 1, 0) == 11, r);
    r = SYS(0, fd, buf, 10, 0);
    say("read at the end", r == 0, r);
    SYS(8, fd, 100, 0, 0); /* SEEK_SET past the end */
    SYS(1, fd, "x", 1, 0);
    buf[0] = 1;
    r = raw_syscall6(17, fd, (long)buf, 1, 50, 0, 0);
    SYS(5, fd, st, 0, 0);
    say("hole reads zero", r == 1 && buf[0] == 0 && st[6] == 101, (long)st[6]);
    /* statx (coreutils and Rust ask it first), extended attributes (ls -l asks), fadvise */
    static unsigned char sx[256];
    r = raw_syscall6(332, AT_FDCWD, (long)"/tmp/st.f", 0, 0x7ff, (long)sx, 0);
    say("statx", r == 0 && (*(unsigned *)sx & 0x7ff) == 0x7ff && *(u64 *)(sx + 40) == 101 &&
                     (*(unsigned short *)(sx + 28) & 0777) == 0644 && *(unsigned *)(sx + 16) == 1 && *(u64 *)(sx + 32) == st[1],
        r);
    r = raw_syscall6(332, fd, (long)"", 0x1000, 0x7ff, (long)sx, 0); /* AT_EMPTY_PATH */
    say("statx of a descriptor", r == 0 && *(u64 *)(sx + 40) == 101, r);
    r = SYS(191, "/tmp/st.f", "user.lelantos", buf, 16);
    long l = SYS(194, "/tmp/st.f", buf, sizeof(buf), 0), m = SYS(191, "/tmp/none", "user.lelantos", buf, 16);
    say("getxattr ENODATA, listxattr empty, ENOENT", r == -61 && l == 0 && m == -ENOENT, r != -61 ? r : l ? l : m);
    r = raw_syscall6(221, fd, 0, 0, 2, 0, 0); /* POSIX_FADV_SEQUENTIAL */
    say("fadvise64", r == 0, r);
    /* a read-only code mapping of a file (here: its own pages, shared) made writable becomes a
     * private copy: the write is seen through the mapping, never in the file */
    static char page[4096];
    for (int i = 0; i < 4096; i++)
        page[i] = 'p';
    long pf = SYS(257, AT_FDCWD, "/tmp/st.pg", O_CREAT | O_RDWR | O_TRUNC, 0644);
    SYS(1, pf, page, 4096, 0);
    char *mm = (char *)raw_syscall6(9, 0, 4096, 5, 2, pf, 0); /* PROT_READ|PROT_EXEC, MAP_PRIVATE */
    long mp = (long)mm < 0 ? (long)mm : SYS(10, mm, 4096, 3, 0); /* mprotect PROT_READ|PROT_WRITE */
    if (mp == 0)
        mm[0] = 'w';
    r = raw_syscall6(17, pf, (long)buf, 1, 0, 0, 0);
    say("mprotect writable copies a file mapping", mp == 0 && mm[0] == 'w' && mm[1] == 'p' && r == 1 && buf[0] == 'p', mp ? mp : r);
    SYS(3, pf, 0, 0, 0);
    SYS(87, "/tmp/st.pg", 0, 0, 0);
    r = SYS(292, fd, 10, O_CLOEXEC, 0);
    say("dup3 cloexec", r == 10 && SYS(72, 10, 1, 0, 0) == 1 && SYS(72, fd, 1, 0, 0) == 0, r);
    r = SYS(292, fd, fd, 0, 0);
    say("dup3 same fd EINVAL", r == -EINVAL, r);
    r = SYS(72, fd, 0, 20, 0); /* F_DUPFD from 20 */
    say("fcntl F_DUPFD", r >= 20, r);
    SYS(3, r, 0, 0, 0);
    SYS(3, 10, 0, 0, 0);
    r = SYS(16, fd, 0x5401, buf, 0); /* TCGETS */
    say("ioctl TCGETS ENOTTY", r == -ENOTTY, r);
    SYS(3, fd, 0, 0, 0);

    r = SYS(88, "/tmp/st.f", "/tmp/st.l", 0, 0);
    long n = SYS(89, "/tmp/st.l", buf, sizeof(buf), 0);
    say("symlink readlink", r == 0 && n == 9 && same(buf, "/tmp/st.f", 9), r ? r : n);
    SYS(6, "/tmp/st.l", st, 0, 0);
    unsigned lmode = ST_MODE;
    SYS(4, "/tmp/st.l", st, 0, 0);
    say("lstat and stat", lmode == 0120000 && ST_MODE == 0100000 && st[6] == 101, lmode);
    /* open(O_CREAT) through a symlink to nowhere creates what it names (relative to the link's
     * directory); with O_EXCL it is EEXIST */
    SYS(88, "st.dangle-target", "/tmp/st.dangle", 0, 0);
    long ex = SYS(2, "/tmp/st.dangle", O_CREAT | 0200 | O_RDWR, 0644, 0); /* O_EXCL */
    fd = SYS(2, "/tmp/st.dangle", O_CREAT | O_RDWR, 0644, 0);
    r = SYS(4, "/tmp/st.dangle-target", st, 0, 0);
    say("open O_CREAT through a dangling symlink", ex == -EEXIST && fd >= 0 && r == 0 && ST_MODE == 0100000, fd < 0 ? fd : ex);
    SYS(3, fd, 0, 0, 0);
    SYS(87, "/tmp/st.dangle", 0, 0, 0);
    SYS(87, "/tmp/st.dangle-target", 0, 0, 0);
    r = SYS(83, "/tmp/st.d", 0755, 0, 0);
    long c = SYS(80, "/tmp/st.d", 0, 0, 0);
    n = SYS(79, buf, sizeof(buf), 0, 0);
    say("mkdir chdir getcwd", r == 0 && c == 0 && n == 10 && same(buf, "/tmp/st.d", 10), r ? r : c ? c : n);
    SYS(3, SYS(257, AT_FDCWD, "a", O_CREAT | O_RDWR, 0644), 0, 0, 0);
    long d = SYS(257, AT_FDCWD, ".", O_DIRECTORY, 0);
    n = SYS(217, d, buf, sizeof(buf), 0);
    int seen = 0;
    for (long off = 0; n > 0 && off < n;) {
        unsigned short reclen = *(unsigned short *)(buf + off + 16);
        seen += same(buf + off + 19, "a", 2);
        off += reclen ? reclen : n;
    }
    say("getdents64", seen == 1, n);
    SYS(3, d, 0, 0, 0);
    d = SYS(257, AT_FDCWD, "/tmp", O_DIRECTORY, 0);
    SYS(80, "/", 0, 0, 0);
    r = SYS(81, d, 0, 0, 0); /* fchdir */
    n = SYS(79, buf, sizeof(buf), 0, 0);
    say("fchdir", r == 0 && n == 5 && same(buf, "/tmp", 5), r ? r : n);
    SYS(3, d, 0, 0, 0);
    SYS(80, "/", 0, 0, 0);
    fd = SYS(2, "/tmp/st.d/a", O_RDWR, 0, 0);
    short lk[16] = {1}; /* struct flock asking for F_WRLCK over the whole file */
    r = SYS(72, fd, 5, lk, 0); /* F_GETLK */
    long s = SYS(72, fd, 6, lk, 0), fl = SYS(73, fd, 2, 0, 0); /* F_SETLK, flock(LOCK_EX) */
    say("locks", r == 0 && lk[0] == 2 && s == 0 && fl == 0, r ? r : s ? s : fl ? fl : lk[0]);
    SYS(3, fd, 0, 0, 0);
    r = SYS(92, "/tmp/st.d/a", 0, 0, 0);
    say("chown", r == 0, r);
    r = raw_syscall6(316, AT_FDCWD, (long)"/tmp/st.f", AT_FDCWD, (long)"/tmp/st.d/a", 1, 0);
    say("renameat2 NOREPLACE EEXIST", r == -EEXIST, r);
    r = raw_syscall6(316, AT_FDCWD, (long)"/tmp/st.f", AT_FDCWD, (long)"/tmp/st.d/b", 1, 0);
    say("renameat2 NOREPLACE", r == 0 && SYS(4, "/tmp/st.f", st, 0, 0) == -ENOENT, r);
    r = SYS(82, "/tmp/st.d/b", "/tmp/st.d/a", 0, 0);
    say("rename replaces", r == 0 && SYS(4, "/tmp/st.d/a", st, 0, 0) == 0 && st[6] == 101, r);
    r = SYS(87, "/tmp/st.d/a", 0, 0, 0);
    if (r == 0)
        r = SYS(84, "/tmp/st.d", 0, 0, 0);
    if (r == 0)
        r = SYS(87, "/tmp/st.l", 0, 0, 0);
    say("unlink rmdir", r == 0 && SYS(4, "/tmp/st.d", st, 0, 0) == -ENOENT, r);
}

/* Hard links: two names, one file (same inode, nlink 2, a write through one seen through the
 * other, the file living on when one name goes); linkat of a descriptor's file (AT_EMPTY_PATH);
 * refused for directories (EPERM), an existing name (EEXIST), a missing file (ENOENT) and out
 * of /proc (EXDEV); rename from one name of a file to another does nothing. */
static void hard_links(void)
{
    static char buf[16];
    long fd = SYS(2, "/tmp/hl.a", O_CREAT | O_RDWR | O_TRUNC, 0644, 0);
    SYS(1, fd, "abc", 3, 0);
    long r = SYS(86, "/tmp/hl.a", "/tmp/hl.b", 0, 0);
    SYS(4, "/tmp/hl.a", st, 0, 0);
    u64 ino = st[1], nl = st[2];
    SYS(4, "/tmp/hl.b", st, 0, 0);
    say("link: one file, two names", r == 0 && nl == 2 && st[1] == ino && st[2] == 2, r ? r : (long)nl);
    long b = SYS(2, "/tmp/hl.b", O_RDWR, 0, 0);
    SYS(1, b, "X", 1, 0);
    SYS(3, b, 0, 0, 0);
    r = SYS(87, "/tmp/hl.a", 0, 0, 0);
    b = SYS(2, "/tmp/hl.b", 0, 0, 0);
    long n = SYS(0, b, buf, sizeof(buf), 0);
    SYS(5, b, st, 0, 0);
    say("link: writes shared, lives on unlinked", r == 0 && n == 3 && same(buf, "Xbc", 3) && st[2] == 1, n);
    r = raw_syscall6(265, fd, (long)"", AT_FDCWD, (long)"/tmp/hl.c", 0x1000, 0); /* AT_EMPTY_PATH */
    long r2 = raw_syscall6(265, AT_FDCWD, (long)"/tmp/hl.c", AT_FDCWD, (long)"/tmp/hl.d", 0, 0);
    SYS(4, "/tmp/hl.d", st, 0, 0);
    say("linkat AT_EMPTY_PATH", r == 0 && r2 == 0 && st[1] == ino && st[2] == 3, r ? r : r2);
    r = SYS(82, "/tmp/hl.c", "/tmp/hl.d", 0, 0);
    r2 = SYS(4, "/tmp/hl.c", st, 0, 0);
    say("rename between links of one file", r == 0 && r2 == 0 && st[2] == 3, r ? r : r2);
    long e1 = SYS(86, "/tmp", "/tmp/hl.dir", 0, 0), e2 = SYS(86, "/tmp/hl.b", "/tmp/hl.c", 0, 0);
    long e3 = SYS(86, "/tmp/hl.none", "/tmp/hl.e", 0, 0);
    long e4 = SYS(86, "/proc/meminfo", "/tmp/hl.m", 0, 0);
    say("link errors", e1 == -EPERM && e2 == -EEXIST && e3 == -ENOENT && e4 == -18, e1 != -EPERM ? e1 : e2 != -EEXIST ? e2 : e3 != -ENOENT ? e3 : e4);
    SYS(3, fd, 0, 0, 0);
    SYS(3, b, 0, 0, 0);
    SYS(87, "/tmp/hl.b", 0, 0, 0);
    SYS(87, "/tmp/hl.c", 0, 0, 0);
    SYS(87, "/tmp/hl.d", 0, 0, 0);
}

/* prefix followed by the decimal n, into buf */
static const char *num_path(char *buf, const char *prefix, long n)
{
    int at = 0, d = 0;
    char digits[24];
    while (*prefix)
        buf[at++] = *prefix++;
    do
        digits[d++] = (char)('0' + n % 10);
    while ((n /= 10) && d < 20);
    while (d)
        buf[at++] = digits[--d];
    buf[at] = 0;
    return buf;
}

/* Whether a getdents64 listing of directory d (read from its start) names `name`. */
static int lists(long d, const char *name)
{
    static char buf[2048];
    int seen = 0, n = 0;
    while (name[n])
        n++;
    SYS(8, d, 0, 0, 0);
    for (long got; (got = SYS(217, d, buf, sizeof(buf), 0)) > 0;)
        for (long off = 0; off < got;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            seen |= same(buf + off + 19, name, n + 1);
            off += reclen ? reclen : got;
        }
    return seen;
}

/* /proc/self/fd and the /dev links into it: readlink names a file's path, and one number for
 * both ends of a pipe; opening a link reaches the descriptor's file (a file anew, at its start;
 * a pipe's end shared); stat follows the link, lstat does not; a closed descriptor leaves the
 * listing, a reaped child its directory. */
static void proc_fds(void)
{
    static char a[64], b[64], buf[64];
    char path[40], name[24];
    long fd = SYS(2, "/etc/passwd", 0, 0, 0);
    long n = SYS(89, num_path(path, "/proc/self/fd/", fd), a, sizeof(a), 0);
    say("fd link names the file", n == 11 && same(a, "/etc/passwd", 11), n);
    SYS(8, fd, 5, 0, 0);
    long re = SYS(2, path, 0, 0, 0), r = SYS(0, re, buf, 5, 0);
    say("fd link opens the file anew", re > fd && r == 5 && same(buf, "root:", 5) && SYS(8, fd, 0, 1, 0) == 5, re < 0 ? re : r);
    SYS(3, re, 0, 0, 0);
    r = SYS(2, path, 0400000, 0, 0); /* O_NOFOLLOW */
    say("fd link O_NOFOLLOW ELOOP", r == -40, r);
    SYS(3, fd, 0, 0, 0);
    int p[2];
    SYS(22, p, 0, 0, 0);
    n = SYS(89, num_path(path, "/proc/self/fd/", p[0]), a, sizeof(a), 0);
    long m = SYS(89, num_path(path, "/dev/fd/", p[1]), b, sizeof(b), 0);
    say("fd link pipe", n > 7 && same(a, "pipe:[", 6) && n == m && same(a, b, n), n);
    long w = SYS(2, path, 1, 0, 0); /* /dev/fd/<write end>, O_WRONLY */
    r = SYS(1, w, "via", 3, 0);
    long got = SYS(0, p[0], buf, sizeof(buf), 0);
    say("fd link pipe write", w >= 0 && r == 3 && got == 3 && same(buf, "via", 3), w < 0 ? w : got);
    SYS(4, path, st, 0, 0);
    unsigned smode = ST_MODE;
    SYS(6, path, st, 0, 0);
    say("fd link stat lstat", smode == 0010000 && ST_MODE == 0120000, smode);
    long d = SYS(257, AT_FDCWD, "/proc/self/fd", O_DIRECTORY, 0);
    int listed = lists(d, num_path(name, "", w)) && lists(d, num_path(name, "", d));
    SYS(3, w, 0, 0, 0);
    say("fd dir lists descriptors", listed && !lists(d, num_path(name, "", w)) && lists(d, num_path(name, "", p[0])), listed);
    SYS(3, d, 0, 0, 0);
    SYS(3, p[0], 0, 0, 0);
    SYS(3, p[1], 0, 0, 0);
    r = SYS(2, "/proc/self/fd/60", 0, 0, 0);
    long nd = SYS(4, "/proc/self/fd/0/x", st, 0, 0);
    say("fd link errors", r == -ENOENT && nd == -20, r);
    n = SYS(89, "/dev/stdin", a, sizeof(a), 0);
    r = SYS(2, "/dev/stderr", 1, 0, 0);
    say("/dev/stdin /dev/stderr", n == 15 && same(a, "/proc/self/fd/0", 15) && r >= 0, n < 0 ? n : r);
    SYS(3, r, 0, 0, 0);
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0)
        SYS(60, 0, 0, 0, 0);
    reap(child);
    r = SYS(4, num_path(path, "/proc/", child), st, 0, 0);
    say("reaped child's /proc dir gone", r == -ENOENT, r);
    /* what readlink says of a directory, an eventfd and a socket; a link's mode is how the
     * descriptor is open (lr-x for reading) */
    long dfd = SYS(257, AT_FDCWD, "/tmp", O_DIRECTORY, 0), efd = SYS(290, 0, 0, 0, 0), sfd = SYS(41, 1, 1, 0, 0);
    long dn = SYS(89, num_path(path, "/proc/self/fd/", dfd), a, sizeof(a), 0);
    SYS(6, path, st, 0, 0);
    unsigned perm = (unsigned)st[3] & 0777;
    long en = SYS(89, num_path(path, "/proc/self/fd/", efd), b, sizeof(b), 0);
    long sn = SYS(89, num_path(path, "/proc/self/fd/", sfd), buf, sizeof(buf), 0);
    say("fd link words: directory, eventfd, socket; mode", dn == 4 && same(a, "/tmp", 4) && en == 20 &&
        same(b, "anon_inode:[eventfd]", 20) && sn > 9 && same(buf, "socket:[", 8) && perm == 0500, dn != 4 ? dn : en != 20 ? en : sn > 9 ? (long)perm : sn);
    SYS(3, dfd, 0, 0, 0);
    SYS(3, efd, 0, 0, 0);
    SYS(3, sfd, 0, 0, 0);
}

static void pipes(void)
{
    {
        int p[2] = {-1, -1};
        SYS(22, p, 0, 0, 0);
        SYS(1, p[1], "hello", 5, 0);
        int avail = -1;
        long a = SYS(16, p[0], 0x541b, &avail, 0); /* FIONREAD */
        long b = SYS(16, p[0], 0x5451, 0, 0);      /* FIOCLEX */
        long cl = SYS(72, p[0], 1, 0, 0);          /* F_GETFD */
        SYS(16, p[0], 0x5450, 0, 0);               /* FIONCLEX */
        say("ioctl FIONREAD FIOCLEX FIONCLEX", a == 0 && avail == 5 && b == 0 && cl == 1 && SYS(72, p[0], 1, 0, 0) == 0,
            a ? a : avail);
        char drain[8];
        int on = 1;
        SYS(0, p[0], drain, sizeof(drain), 0);
        long nb = SYS(16, p[0], 0x5421, &on, 0); /* FIONBIO */
        long er = SYS(0, p[0], drain, 1, 0);
        say("ioctl FIONBIO", nb == 0 && er == -EAGAIN && (SYS(72, p[0], 3, 0, 0) & O_NONBLOCK), nb ? nb : er);
        SYS(3, p[0], 0, 0, 0);
        SYS(3, p[1], 0, 0, 0);
    }
    static char buf[8192];
    int fds[2] = {-1, -1};
    long r = SYS(293, fds, O_NONBLOCK | O_CLOEXEC, 0, 0);
    say("pipe2", r == 0 && SYS(72, fds[0], 1, 0, 0) == 1 && (SYS(72, fds[0], 3, 0, 0) & O_NONBLOCK), r);
    long size = SYS(72, fds[1], 1032, 0, 0); /* F_GETPIPE_SZ */
    say("F_GETPIPE_SZ", size == 65536, size);
    r = SYS(0, fds[0], buf, 1, 0);
    say("empty non-blocking read EAGAIN", r == -EAGAIN, r);
    int pfd[2] = {fds[0], 1}; /* struct pollfd {fd, events = POLLIN, revents} */
    long t0 = mono_ms();
    r = SYS(7, pfd, 1, 60, 0);
    long waited = mono_ms() - t0;
    say("poll times out", r == 0 && waited >= 60 && waited < 5000, r ? r : waited);
    long w, total = 0;
    while ((w = SYS(1, fds[1], buf, sizeof(buf), 0)) > 0 && total < (1L << 24))
        total += w;
    say("full non-blocking write EAGAIN", total > 0 && w == -EAGAIN, w);
    say("pipe holds F_GETPIPE_SZ", total == size, total);
    SYS(0, fds[0], buf, 100, 0);
    w = SYS(1, fds[1], buf, 200, 0); /* at most PIPE_BUF: whole or not at all */
    say("small write not split", w == -EAGAIN, w);
    pfd[1] = 1;
    r = SYS(7, pfd, 1, 1000, 0);
    say("poll readable", r == 1 && (pfd[1] >> 16) == 1, pfd[1] >> 16);
    while (SYS(0, fds[0], buf, sizeof(buf), 0) > 0)
        ;
    u64 rd = 1UL << fds[0], wr = 1UL << fds[1];
    long tv[2] = {0, 50000}; /* select: 50 ms */
    t0 = mono_ms();
    r = raw_syscall6(23, fds[1] + 1, (long)&rd, 0, 0, (long)tv, 0);
    waited = mono_ms() - t0;
    say("select times out", r == 0 && rd == 0 && waited >= 50 && waited < 5000, r ? r : waited);
    SYS(1, fds[1], "z", 1, 0);
    rd = 1UL << fds[0];
    long ts[2] = {0, 0};
    r = raw_syscall6(270, fds[1] + 1, (long)&rd, (long)&wr, 0, (long)ts, 0); /* pselect6, no wait */
    say("pselect6 ready", r == 2 && rd == 1UL << fds[0] && wr == 1UL << fds[1], r);
    pfd[1] = 1;
    r = SYS(271, pfd, 1, 0, 0); /* ppoll without a timeout: ready at once */
    say("ppoll", r == 1 && (pfd[1] >> 16) == 1, r);
    SYS(0, fds[0], buf, 1, 0);
    long iov[4] = {(long)"ab", 2, (long)"cde", 3};
    w = SYS(20, fds[1], iov, 2, 0);
    char x[2], y[3];
    long riov[4] = {(long)x, 2, (long)y, 3};
    r = SYS(19, fds[0], riov, 2, 0);
    say("writev readv", w == 5 && r == 5 && same(x, "ab", 2) && same(y, "cde", 3), w == 5 ? r : w);
    SYS(3, fds[0], 0, 0, 0);
    SYS(3, fds[1], 0, 0, 0);
    r = SYS(293, fds, 1, 0, 0);
    say("pipe2 bad flags EINVAL", r == -EINVAL, r);
}

/* struct epoll_event: packed on x86-64 */
struct ev {
    unsigned events;
    u64 data;
} __attribute__((packed));
#define EPOLLIN 1
#define EPOLLHUP 0x10
#define EPOLLET (1U << 31)
#define EPOLLONESHOT (1U << 30)

static long ep_ctl(int ep, int op, int fd, unsigned events, u64 data)
{
    struct ev e = {events, data};
    return SYS(233, ep, op, fd, &e);
}

/* epoll_wait with room for four events; the first lands in *e */
static long ep_wait(int ep, struct ev *e, int timeout_ms)
{
    struct ev evs[4] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}};
    long r = SYS(232, ep, evs, 4, timeout_ms);
    *e = evs[0];
    return r;
}

static void eventfds(void)
{
    u64 v = 0;
    int fd = (int)SYS(290, 3, O_NONBLOCK | O_CLOEXEC, 0, 0); /* eventfd2 */
    long r = SYS(0, fd, &v, 8, 0);
    say("eventfd read takes the count", fd >= 0 && r == 8 && v == 3 && SYS(72, fd, 1, 0, 0) == 1, fd < 0 ? fd : r);
    r = SYS(0, fd, &v, 8, 0);
    say("eventfd empty non-blocking EAGAIN", r == -EAGAIN, r);
    v = 2;
    SYS(1, fd, &v, 8, 0);
    v = 5;
    SYS(1, fd, &v, 8, 0);
    int pfd[2] = {fd, 1};
    long pr = SYS(7, pfd, 1, 0, 0);
    r = SYS(0, fd, &v, 8, 0);
    say("eventfd writes add up, poll sees them", r == 8 && v == 7 && pr == 1 && (pfd[1] >> 16) == 1, r == 8 ? (long)v : r);
    v = ~0UL;
    r = SYS(1, fd, &v, 8, 0);
    long r2 = SYS(0, fd, &v, 4, 0);
    say("eventfd bad write and short read EINVAL", r == -EINVAL && r2 == -EINVAL, r == -EINVAL ? r2 : r);
    SYS(3, fd, 0, 0, 0);
    fd = (int)SYS(290, 2, 1 | O_NONBLOCK, 0, 0); /* EFD_SEMAPHORE */
    long a = SYS(0, fd, &v, 8, 0), got = (long)v;
    long b = SYS(0, fd, &v, 8, 0);
    got += (long)v;
    say("eventfd semaphore counts down by one", a == 8 && b == 8 && got == 2 && SYS(0, fd, &v, 8, 0) == -EAGAIN, got);
    SYS(3, fd, 0, 0, 0);
    fd = (int)SYS(290, 0, 0, 0, 0); /* blocking: a read waits for a child's write */
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        long delay[2] = {0, 200000000};
        u64 six = 6;
        SYS(35, delay, 0, 0, 0);
        SYS(60, SYS(1, fd, &six, 8, 0) == 8 ? 0 : 1, 0, 0, 0);
    }
    long t0 = mono_ms();
    r = SYS(0, fd, &v, 8, 0);
    long waited = mono_ms() - t0;
    say("eventfd blocking read woken by a write", r == 8 && v == 6 && waited >= 150, r == 8 ? waited : r);
    reap(child);
    SYS(3, fd, 0, 0, 0);
}

static void epolls(void)
{
    static char buf[16];
    struct ev e;
    int p[2] = {-1, -1};
    int ep = (int)SYS(291, O_CLOEXEC, 0, 0, 0); /* epoll_create1 */
    SYS(293, p, O_NONBLOCK, 0, 0);
    long r = ep_ctl(ep, 1, p[0], EPOLLIN, 42);
    long again = ep_ctl(ep, 1, p[0], EPOLLIN, 42);
    long none = ep_ctl(ep, 2, p[1], 0, 0);
    if (none == -ENOENT)
        none = ep_ctl(ep, 3, p[1], EPOLLIN, 0); /* MOD of one not in the set */
    int file = (int)SYS(257, AT_FDCWD, "/", O_DIRECTORY, 0);
    long perm = ep_ctl(ep, 1, file, EPOLLIN, 0);
    SYS(3, file, 0, 0, 0);
    say("epoll_ctl ADD, EEXIST, ENOENT (DEL, MOD), EPERM for a file", ep >= 0 && r == 0 && again == -EEXIST && none == -ENOENT && perm == -EPERM,
        ep < 0 ? ep : r ? r : again != -EEXIST ? again : none != -ENOENT ? none : perm);
    long t0 = mono_ms();
    r = ep_wait(ep, &e, 50);
    long waited = mono_ms() - t0;
    say("epoll_wait times out", r == 0 && waited >= 50 && waited < 5000, r ? r : waited);
    SYS(1, p[1], "ab", 2, 0);
    r = ep_wait(ep, &e, -1);
    long r2 = ep_wait(ep, &e, 0);
    say("epoll level-triggered", r == 1 && r2 == 1 && e.events == EPOLLIN && e.data == 42, r == 1 ? r2 : r);
    int pfd[2] = {ep, 1};
    r = SYS(7, pfd, 1, 0, 0);
    say("poll on an epoll with a ready item", r == 1 && (pfd[1] >> 16) == 1, r);
    int outer = (int)SYS(291, 0, 0, 0, 0);
    r = ep_ctl(outer, 1, ep, EPOLLIN, 9);
    r2 = ep_wait(outer, &e, 0);
    say("epoll in an epoll", r == 0 && r2 == 1 && e.data == 9 && e.events == EPOLLIN, r ? r : r2);
    SYS(3, outer, 0, 0, 0);
    ep_ctl(ep, 3, p[0], EPOLLIN | EPOLLET, 43);
    r = ep_wait(ep, &e, 0);
    r2 = ep_wait(ep, &e, 0);
    SYS(1, p[1], "c", 1, 0);
    long r3 = ep_wait(ep, &e, 0);
    say("epoll edge-triggered: once, then at the next write", r == 1 && r2 == 0 && r3 == 1 && e.data == 43,
        r * 100 + r2 * 10 + r3);
    ep_ctl(ep, 3, p[0], EPOLLIN | EPOLLONESHOT, 44);
    r = ep_wait(ep, &e, 0);
    r2 = ep_wait(ep, &e, 0);
    ep_ctl(ep, 3, p[0], EPOLLIN | EPOLLONESHOT, 45);
    r3 = ep_wait(ep, &e, 0);
    say("epoll one-shot until re-armed", r == 1 && r2 == 0 && r3 == 1 && e.data == 45, r * 100 + r2 * 10 + r3);
    SYS(0, p[0], buf, sizeof(buf), 0);

    /* a child's eventfd write wakes a parent blocked in epoll_pwait */
    int efd = (int)SYS(290, 0, 0, 0, 0);
    ep_ctl(ep, 3, p[0], EPOLLIN, 42);
    ep_ctl(ep, 1, efd, EPOLLIN, 7);
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        long delay[2] = {0, 200000000};
        u64 one = 1;
        SYS(35, delay, 0, 0, 0);
        SYS(1, efd, &one, 8, 0);
        SYS(60, 0, 0, 0, 0);
    }
    t0 = mono_ms();
    struct ev evs[4];
    r = raw_syscall6(281, ep, (long)evs, 4, -1, 0, 8); /* epoll_pwait, no mask */
    waited = mono_ms() - t0;
    say("epoll_pwait woken by a child's eventfd write", r == 1 && evs[0].data == 7 && waited >= 150, r == 1 ? waited : r);
    reap(child);
    u64 n;
    SYS(0, efd, &n, 8, 0);

    SYS(3, p[1], 0, 0, 0);
    r = ep_wait(ep, &e, 0);
    say("epoll hang-up when the writer closes", r == 1 && e.data == 42 && (e.events & EPOLLHUP), e.events);
    SYS(3, p[0], 0, 0, 0);
    SYS(3, efd, 0, 0, 0);
    SYS(22, p, 0, 0, 0); /* the same descriptor numbers again, on new files */
    SYS(1, p[1], "d", 1, 0);
    r = ep_wait(ep, &e, 0);
    r2 = ep_ctl(ep, 1, p[0], EPOLLIN, 46);
    say("a closed file leaves the epoll", r == 0 && r2 == 0 && ep_wait(ep, &e, 0) == 1 && e.data == 46, r ? r : r2);
    SYS(3, p[0], 0, 0, 0);
    SYS(3, p[1], 0, 0, 0);
    SYS(3, ep, 0, 0, 0);
}

/* clone(flags, stack) whose child runs fn(arg) on `stack` and exits with what it returns (a
 * child of clone with CLONE_VM cannot return into its parent's frames) */
long clone_run(long flags, void *stack, long (*fn)(void *), void *arg);
__asm__(".text\n.globl clone_run\nclone_run:\n"
        "\tmov %rdx, %r9\n\tmov %rcx, %r8\n\txor %edx, %edx\n\txor %r10d, %r10d\n"
        "\tmov $56, %eax\n\tsyscall\n\ttest %rax, %rax\n\tjnz 1f\n"
        "\tmov %r8, %rdi\n\tcall *%r9\n\tmov %rax, %rdi\n\tmov $60, %eax\n\tsyscall\n\thlt\n"
        "1:\tret\n");

static volatile int fwords[4]; /* A, B, the waiter is about to wait, what its FUTEX_WAIT returned */
static char waiter_stack[16384] __attribute__((aligned(16)));

static long futex_waiter(void *unused)
{
    (void)unused;
    fwords[2] = 1;
    fwords[3] = (int)SYS(202, &fwords[0], 0, 0, 0); /* FUTEX_WAIT on A while it is 0 */
    return 0;
}

/* FUTEX_CMP_REQUEUE moves a waiter from A to B (musl's condition variables; glibc's no longer),
 * refusing when A changed; the vfork syscall shares memory and suspends the parent. */
static void futex_requeue_vfork(void)
{
    long child = clone_run(0x100 | 17, waiter_stack + sizeof(waiter_stack), futex_waiter, 0); /* CLONE_VM, SIGCHLD */
    while (child > 0 && !fwords[2])
        SYS(24, 0, 0, 0, 0);
    long delay[2] = {0, 50000000};
    SYS(35, delay, 0, 0, 0); /* one CPU: the waiter is asleep in FUTEX_WAIT by now */
    long bad = raw_syscall6(202, (long)&fwords[0], 4, 0, 1, (long)&fwords[1], 1); /* expects A == 1: EAGAIN */
    long moved = raw_syscall6(202, (long)&fwords[0], 4, 0, 1, (long)&fwords[1], 0);
    long on_a = SYS(202, &fwords[0], 1, 1, 0), on_b = SYS(202, &fwords[1], 1, 1, 0); /* FUTEX_WAKE */
    int status = -1;
    long r = SYS(61, child, &status, 0, 0);
    say("futex CMP_REQUEUE moves a waiter", child > 0 && bad == -EAGAIN && moved == 1 && on_a == 0 && on_b == 1 && r == child && status == 0 && fwords[3] == 0,
        child <= 0 ? child : bad != -EAGAIN ? bad : moved != 1 ? moved : on_a * 10 + on_b);

    fwords[2] = 0;
    long pid = SYS(58, 0, 0, 0, 0); /* vfork */
    if (pid == 0) {
        fwords[2] = 5; /* the parent's memory */
        SYS(60, 7, 0, 0, 0);
    }
    r = SYS(61, pid, &status, 0, 0);
    say("vfork shares memory", pid > 0 && fwords[2] == 5 && r == pid && status == 7 << 8, pid > 0 ? status : pid);
}

static volatile long rd_state[2]; /* the reader thread: 1 about to read, 2 done; what read returned */
static int rd_fd;

static long pipe_reader(void *unused)
{
    char buf[8];
    (void)unused;
    rd_state[0] = 1;
    rd_state[1] = SYS(0, rd_fd, buf, sizeof(buf), 0);
    rd_state[0] = 2;
    return 0;
}

/* A thread blocked in read keeps the file it reads: another thread closing the descriptor
 * neither ends the read nor frees the pipe under it, and the pipe keeps its reader. */
static void close_under_read(void)
{
    int p[2];
    u64 ign[4] = {1, 0, 0, 0}, dfl[4] = {0, 0, 0, 0};
    SYS(13, 13, ign, 0, 8); /* SIGPIPE ignored: a lost reader shows as EPIPE */
    SYS(22, p, 0, 0, 0);
    rd_fd = p[0];
    long t = clone_run(0x10f00, waiter_stack + sizeof(waiter_stack), pipe_reader, 0); /* a thread */
    while (t > 0 && !rd_state[0])
        SYS(24, 0, 0, 0, 0);
    long delay[2] = {0, 50000000};
    SYS(35, delay, 0, 0, 0); /* the reader is blocked by now */
    long c = SYS(3, p[0], 0, 0, 0), w = SYS(1, p[1], "data", 4, 0);
    for (int i = 0; i < 100 && rd_state[0] != 2; i++)
        SYS(35, delay, 0, 0, 0);
    say("close under a blocked read", t > 0 && c == 0 && w == 4 && rd_state[1] == 4, t <= 0 ? t : w != 4 ? w : rd_state[1]);
    SYS(3, p[1], 0, 0, 0);

    /* a process killed while blocked in read lets go of the pipe: the writer then has no reader */
    SYS(22, p, 0, 0, 0);
    long kid = SYS(57, 0, 0, 0, 0);
    if (kid == 0) {
        char b[4];
        SYS(3, p[1], 0, 0, 0);
        SYS(0, p[0], b, sizeof(b), 0); /* blocks until killed */
        SYS(60, 0, 0, 0, 0);
    }
    SYS(3, p[0], 0, 0, 0);
    SYS(35, delay, 0, 0, 0); /* the child is blocked in read by now */
    SYS(62, kid, 9, 0, 0);
    int st = 0;
    SYS(61, kid, &st, 0, 0);
    w = SYS(1, p[1], "x", 1, 0);
    say("killed in read, the pipe loses its reader", (st & 0x7f) == 9 && w == -32, w);
    SYS(3, p[1], 0, 0, 0);
    SYS(13, 13, dfl, 0, 8);
}

/* Named pipes: mknod makes one; a reader's open waits for a writer (a forked child), data
 * passes; a non-blocking writer with no reader gets ENXIO. close_range closes or marks a
 * range; setpriority/getpriority keep the nice value. */
static void fifos_and_more(void)
{
    const char *path = "/tmp/systest.fifo";
    char buf[8] = {0};
    SYS(87, path, 0, 0, 0);
    long mk = SYS(259, AT_FDCWD, path, 0010600, 0); /* mknodat S_IFIFO */
    long nx = SYS(257, AT_FDCWD, path, 1 | O_NONBLOCK, 0);
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        long delay[2] = {0, 100000000};
        SYS(35, delay, 0, 0, 0);
        int w = (int)SYS(257, AT_FDCWD, path, 1, 0); /* O_WRONLY: the parent is waiting to read */
        SYS(1, w, "fifo", 4, 0);
        SYS(60, 0, 0, 0, 0);
    }
    int rd = (int)SYS(257, AT_FDCWD, path, 0, 0); /* O_RDONLY: waits for the child to open */
    long r = SYS(0, rd, buf, sizeof(buf), 0);
    long eof = SYS(0, rd, buf + 4, 4, 0);
    SYS(4, path, st, 0, 0);
    say("named pipe", mk == 0 && nx == -6 && rd >= 0 && r == 4 && same(buf, "fifo", 4) && eof == 0 && (st[3] & 0170000) == 0010000,
        mk ? mk : nx != -6 ? nx : r);
    reap(child);
    SYS(3, rd, 0, 0, 0);
    SYS(87, path, 0, 0, 0);

    for (int fd = 40; fd < 44; fd++)
        SYS(33, 0, fd, 0, 0); /* dup2 */
    long cr = SYS(436, 40, 42, 0, 0), cx = SYS(436, 43, 43, 4, 0); /* CLOSE_RANGE_CLOEXEC */
    say("close_range", cr == 0 && cx == 0 && SYS(72, 40, 1, 0, 0) == -9 && SYS(72, 42, 1, 0, 0) == -9 && SYS(72, 43, 1, 0, 0) == 1,
        cr ? cr : cx);
    SYS(3, 43, 0, 0, 0);

    child = SYS(57, 0, 0, 0, 0);
    if (child == 0) /* exits with what getpriority says after setpriority(5): 20 - 5 */
        SYS(60, SYS(141, 0, 0, 5, 0) == 0 ? SYS(140, 0, 0, 0, 0) : 99, 0, 0, 0);
    int status = -1;
    SYS(61, child, &status, 0, 0);
    say("setpriority getpriority", (status >> 8) == 15, status >> 8);
}

/* struct sockaddr_in for 127.0.0.1:port (port in host order) */
static void sin_loop(unsigned char sa[16], int port)
{
    for (int i = 0; i < 16; i++)
        sa[i] = 0;
    sa[0] = 2;
    sa[2] = (unsigned char)(port >> 8);
    sa[3] = (unsigned char)port;
    sa[4] = 127;
    sa[7] = 1;
}

static int sin_port(const unsigned char sa[16])
{
    return sa[2] << 8 | sa[3];
}

/* Loopback TCP: bind to an ephemeral port, connect, accept, both directions, half-close; a
 * refused port; the port taken; epoll on a listener; a forked server blocked in accept. */
static void tcp_sockets(void)
{
    unsigned char sa[16], got[16];
    int len = 16;
    char buf[16];
    int l = (int)SYS(41, 2, 1 | O_CLOEXEC, 0, 0); /* AF_INET, SOCK_STREAM */
    int one = 1;
    SYS(54, l, 1, 2, &one); /* SO_REUSEADDR */
    sin_loop(sa, 0);
    long b = SYS(49, l, sa, 16, 0), li = SYS(50, l, 8, 0, 0);
    long gn = SYS(51, l, got, &len, 0);
    int port = sin_port(got);
    say("tcp bind, listen, ephemeral port", l >= 0 && b == 0 && li == 0 && gn == 0 && len == 16 && port > 0, l < 0 ? l : b ? b : li ? li : port);
    int ep = (int)SYS(291, 0, 0, 0, 0);
    ep_ctl(ep, 1, l, EPOLLIN, 9);
    struct ev e;
    long quiet = ep_wait(ep, &e, 0);
    int c = (int)SYS(41, 2, 1, 0, 0);
    sin_loop(sa, port);
    long cr = SYS(42, c, sa, 16, 0);
    long ready = ep_wait(ep, &e, 0);
    say("tcp connect, epoll sees the listener ready", quiet == 0 && cr == 0 && ready == 1 && e.data == 9, cr ? cr : quiet * 10 + ready);
    unsigned char peer[16];
    int plen = 16;
    int a = (int)SYS(288, l, peer, &plen, O_CLOEXEC); /* accept4 */
    len = 16;
    SYS(52, c, got, &len, 0); /* getpeername */
    long cl = SYS(72, a, 1, 0, 0);
    say("tcp accept4, peer addresses", a >= 0 && plen == 16 && peer[4] == 127 && sin_port(got) == port && cl == 1, a < 0 ? a : sin_port(got));
    long w = SYS(1, c, "ping", 4, 0), pk = SYS(45, a, buf, 2, 2); /* MSG_PEEK: the bytes stay */
    say("tcp MSG_PEEK", w == 4 && pk == 2 && same(buf, "pi", 2), pk);
    long r = SYS(0, a, buf, sizeof(buf), 0);
    long w2 = SYS(44, a, "pong!", 5, 0), r2 = SYS(45, c, buf + 4, sizeof(buf) - 4, 0); /* sendto, recvfrom */
    say("tcp both ways", w == 4 && r == 4 && w2 == 5 && r2 == 5 && same(buf, "pingpong!", 9), r * 10 + r2);
    SYS(48, c, 1, 0, 0); /* shutdown SHUT_WR */
    r = SYS(0, a, buf, sizeof(buf), 0);
    w = SYS(1, a, "still", 5, 0);
    r2 = SYS(0, c, buf, sizeof(buf), 0);
    say("tcp half-close: EOF one way, data the other", r == 0 && w == 5 && r2 == 5, r * 100 + r2);
    SYS(3, a, 0, 0, 0);
    r = SYS(0, c, buf, sizeof(buf), 0);
    say("tcp peer closed: EOF", r == 0, r);
    SYS(3, c, 0, 0, 0);

    int l2 = (int)SYS(41, 2, 1, 0, 0);
    sin_loop(sa, port);
    long inuse = SYS(49, l2, sa, 16, 0);
    SYS(3, l2, 0, 0, 0);
    say("tcp port taken EADDRINUSE", inuse == -98, inuse);

    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) { /* a server: accepts one connection and greets it */
        int s = (int)SYS(43, l, 0, 0, 0);
        SYS(1, s, "hi from child", 13, 0);
        SYS(60, s >= 0 ? 0 : 1, 0, 0, 0);
    }
    long delay[2] = {0, 50000000};
    SYS(35, delay, 0, 0, 0); /* the child is asleep in accept by now */
    c = (int)SYS(41, 2, 1, 0, 0);
    cr = SYS(42, c, sa, 16, 0);
    r = SYS(45, c, buf, 13, 0x100); /* MSG_WAITALL */
    say("tcp to a forked server blocked in accept", cr == 0 && r == 13 && same(buf, "hi from child", 13), cr ? cr : r);
    reap(child);
    SYS(3, c, 0, 0, 0);
    SYS(3, l, 0, 0, 0);
    SYS(3, ep, 0, 0, 0);
    c = (int)SYS(41, 2, 1, 0, 0);
    cr = SYS(42, c, sa, 16, 0);
    SYS(3, c, 0, 0, 0);
    say("tcp connect to a closed port ECONNREFUSED", cr == -111, cr);

    /* IPv6: a listener on ::1, a client, and /proc/net/tcp6 lists the listener (port in hex) */
    unsigned char s6[28] = {10, 0}; /* AF_INET6, port 0, ::1 */
    s6[23] = 1;
    int l6 = (int)SYS(41, 10, 1, 0, 0);
    long b6 = SYS(49, l6, s6, 28, 0) | SYS(50, l6, 4, 0, 0);
    int len6 = 28;
    SYS(51, l6, s6, &len6, 0);
    int c6 = (int)SYS(41, 10, 1, 0, 0);
    long cr6 = SYS(42, c6, s6, 28, 0);
    int a6 = (int)SYS(43, l6, 0, 0, 0);
    long w6 = SYS(1, c6, "v6", 2, 0), r6 = SYS(0, a6, buf, sizeof(buf), 0);
    static char net[4096];
    char want[8] = {':', 0};
    const char *hex = "0123456789ABCDEF";
    for (int i = 0; i < 4; i++)
        want[1 + i] = hex[(sin_port(s6) >> (12 - 4 * i)) & 0xf];
    want[5] = ' ';
    long fd6 = SYS(2, "/proc/net/tcp6", 0, 0, 0), nn = fd6 >= 0 ? SYS(0, fd6, net, sizeof(net) - 1, 0) : -1;
    int listed = 0;
    for (long i = 0; i + 6 <= nn && !listed; i++)
        listed = same(net + i, want, 6);
    say("tcp over ::1, /proc/net/tcp6", b6 == 0 && cr6 == 0 && a6 >= 0 && w6 == 2 && r6 == 2 && same(buf, "v6", 2) && listed,
        b6 ? b6 : cr6 ? cr6 : listed);
    SYS(3, fd6, 0, 0, 0);
    SYS(3, a6, 0, 0, 0);
    SYS(3, c6, 0, 0, 0);
    SYS(3, l6, 0, 0, 0);
    /* an IPv4 client of an IPv6 wildcard listener: both ends of the accepted socket are
     * ::ffff:127.0.0.1 */
    unsigned char any6[28] = {10, 0}, peer6[28], here6[28];
    l6 = (int)SYS(41, 10, 1, 0, 0);
    b6 = SYS(49, l6, any6, 28, 0) | SYS(50, l6, 4, 0, 0);
    len6 = 28;
    SYS(51, l6, any6, &len6, 0);
    int c4 = (int)SYS(41, 2, 1, 0, 0);
    unsigned char s4[16];
    sin_loop(s4, sin_port(any6));
    long cr4 = SYS(42, c4, s4, 16, 0);
    int plen6 = 28, hlen6 = 28;
    a6 = (int)SYS(43, l6, peer6, &plen6, 0);
    SYS(51, a6, here6, &hlen6, 0);
    say("tcp IPv4 client of an IPv6 listener: mapped addresses", b6 == 0 && cr4 == 0 && a6 >= 0 && plen6 == 28 && hlen6 == 28 &&
        peer6[19] == 0xff && peer6[20] == 127 && here6[19] == 0xff && here6[23] == 1 && sin_port(here6) == sin_port(any6),
        b6 ? b6 : cr4 ? cr4 : a6 < 0 ? a6 : plen6 * 100 + hlen6);
    SYS(3, a6, 0, 0, 0);
    SYS(3, c4, 0, 0, 0);
    SYS(3, l6, 0, 0, 0);
}

/* AF_UNIX: a path that becomes a socket file, EPIPE once the peer is gone; socketpair with
 * sendmsg/recvmsg over two iovecs. */
/* Whether this runs in the lelantos guest (uname's release says so), not on a Linux host. */
static int in_our_guest(void)
{
    static char uts[6 * 65];
    SYS(63, uts, 0, 0, 0);
    for (int i = 2 * 65; i < 3 * 65 - 8; i++)
        if (same(uts + i, "lelantos", 8))
            return 1;
    return 0;
}

/* Lines of /proc/net/unix (every unix socket, and a header). */
static long unix_sockets_listed(void)
{
    static char net[8192];
    long fd = SYS(2, "/proc/net/unix", 0, 0, 0), n = fd >= 0 ? SYS(0, fd, net, sizeof(net), 0) : -1, lines = 0;
    SYS(3, fd, 0, 0, 0);
    for (long i = 0; i < n; i++)
        lines += net[i] == '\n';
    return n < 0 ? n : lines;
}

/* A sockaddr_un for `path` in sun; its length. */
static int sun_path(char *sun, const char *path)
{
    int n = 2;
    sun[0] = 1;
    sun[1] = 0;
    for (const char *p = path; *p; p++)
        sun[n++] = *p;
    sun[n++] = 0;
    return n;
}

static void unix_sockets(void)
{
    char sun[110];
    const char *path = "/tmp/systest.sock";
    int n = sun_path(sun, path);
    char buf[16];
    SYS(87, path, 0, 0, 0);
    int l = (int)SYS(41, 1, 1, 0, 0), c = (int)SYS(41, 1, 1, 0, 0);
    long b = SYS(49, l, sun, n, 0), li = SYS(50, l, 4, 0, 0);
    long st_r = SYS(4, path, st, 0, 0);
    long cr = SYS(42, c, sun, n, 0);
    int a = (int)SYS(43, l, 0, 0, 0);
    say("unix bind makes a socket file, connect, accept", b == 0 && li == 0 && st_r == 0 && (st[3] & 0170000) == 0140000 && cr == 0 && a >= 0,
        b ? b : li ? li : st_r ? st_r : cr ? cr : a);
    int l2 = (int)SYS(41, 1, 1, 0, 0);
    long inuse = SYS(49, l2, sun, n, 0);
    SYS(3, l2, 0, 0, 0);
    SYS(1, a, "abc", 3, 0);
    long r = SYS(0, c, buf, sizeof(buf), 0);
    SYS(3, a, 0, 0, 0);
    long w = SYS(44, c, "x", 1, 0x4000); /* MSG_NOSIGNAL */
    say("unix data, EADDRINUSE, EPIPE after the peer closed", inuse == -98 && r == 3 && w == -32, inuse != -98 ? inuse : r != 3 ? r : w);
    SYS(3, c, 0, 0, 0);
    SYS(3, l, 0, 0, 0);
    SYS(87, path, 0, 0, 0);

    /* a full backlog (listen 0 holds one connection, as on Linux): a non-blocking connect
     * gets EAGAIN, a blocking one waits until an accept makes room */
    l = (int)SYS(41, 1, 1, 0, 0);
    SYS(49, l, sun, n, 0);
    SYS(50, l, 0, 0, 0);
    c = (int)SYS(41, 1, 1, 0, 0);
    int c2 = (int)SYS(41, 1, 04000 | 1, 0, 0); /* SOCK_NONBLOCK */
    cr = SYS(42, c, sun, n, 0);
    long full = SYS(42, c2, sun, n, 0);
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        int c3 = (int)SYS(41, 1, 1, 0, 0);
        SYS(60, SYS(42, c3, sun, n, 0) == 0 && SYS(1, c3, "w", 1, 0) == 1 ? 0 : 1, 0, 0, 0);
    }
    long slept[2] = {0, 200000000};
    SYS(35, slept, 0, 0, 0);
    long a1 = SYS(43, l, 0, 0, 0);
    reap(child); /* its connect went through once there was room */
    long a2 = SYS(43, l, 0, 0, 0);
    r = SYS(0, a2, buf, sizeof(buf), 0);
    say("unix connect on a full backlog", cr == 0 && full == -EAGAIN && a1 >= 0 && a2 >= 0 && r == 1 && buf[0] == 'w',
        cr ? cr : full != -EAGAIN ? full : r);
    SYS(3, a1, 0, 0, 0);
    SYS(3, a2, 0, 0, 0);
    SYS(3, c, 0, 0, 0);
    SYS(3, c2, 0, 0, 0);
    SYS(3, l, 0, 0, 0);
    SYS(87, path, 0, 0, 0);

    /* autobind: binding just the family picks an abstract name (NUL and five hex digits), a
     * new one each time */
    int x1 = (int)SYS(41, 1, 1, 0, 0), x2 = (int)SYS(41, 1, 1, 0, 0);
    char n1[16] = {0}, n2[16] = {0}, fam[2] = {1, 0};
    int len1 = 16, len2 = 16;
    long ab = SYS(49, x1, fam, 2, 0) | SYS(49, x2, fam, 2, 0);
    SYS(51, x1, n1, &len1, 0);
    SYS(51, x2, n2, &len2, 0);
    say("unix autobind", ab == 0 && len1 == 8 && len2 == 8 && n1[2] == 0 && !same(n1, n2, 8), ab ? ab : len1);
    SYS(3, x1, 0, 0, 0);
    SYS(3, x2, 0, 0, 0);

    int sv[2] = {-1, -1};
    long listed = unix_sockets_listed();
    long sp = SYS(53, 1, 1, 0, sv);
    long iov[4] = {(long)"one", 3, (long)"two", 3};
    long msg[7] = {0, 0, (long)iov, 2, 0, 0, 0};
    w = SYS(46, sv[0], msg, 0, 0);
    char x[4] = {0}, y[2] = {0};
    long riov[4] = {(long)x, 4, (long)y, 2};
    long rmsg[7] = {0, 5, (long)riov, 2, 0, 9, 9};
    r = SYS(47, sv[1], rmsg, 0, 0);
    say("socketpair sendmsg recvmsg", sp == 0 && w == 6 && r == 6 && same(x, "onet", 4) && same(y, "wo", 2) && rmsg[5] == 0,
        sp ? sp : w * 10 + r);
    SYS(3, sv[0], 0, 0, 0);
    SYS(3, sv[1], 0, 0, 0);
    /* (only here: a host's list changes under other programs) */
    if (in_our_guest())
        say("socketpair leaves nothing in /proc/net/unix", unix_sockets_listed() == listed, unix_sockets_listed() - listed);

    /* a datagram pair: unnamed, each the other's destination; refused once the other closed */
    sp = SYS(53, 1, 2, 0, sv);
    w = SYS(1, sv[0], "one", 3, 0) + SYS(1, sv[0], "two", 3, 0);
    char d1[8], d2[8];
    r = SYS(0, sv[1], d1, sizeof(d1), 0) * 10 + SYS(0, sv[1], d2, sizeof(d2), 0);
    char nm[16];
    int nl = sizeof(nm);
    long gs = SYS(51, sv[0], nm, &nl, 0);
    long back = SYS(1, sv[1], "b", 1, 0) == 1 && SYS(0, sv[0], d1 + 4, 1, 0) == 1 && d1[4] == 'b';
    SYS(3, sv[1], 0, 0, 0);
    long refused = SYS(1, sv[0], "x", 1, 0), empty = SYS(45, sv[0], d2, 1, 0x40);
    say("socketpair datagrams", sp == 0 && w == 6 && r == 33 && same(d1, "one", 3) && same(d2, "two", 3) && gs == 0 && nl == 2 &&
        back && refused == -111 && empty == -EAGAIN, sp ? sp : w != 6 ? w : r != 33 ? r : refused != -111 ? refused : empty);
    SYS(3, sv[0], 0, 0, 0);
}

static long free_mib(void)
{
    static u64 si[16];
    SYS(99, si, 0, 0, 0); /* sysinfo: freeram at [5], in bytes (mem_unit 1) */
    return (long)(si[5] >> 20);
}

/* A large anonymous mapping gets pages as they are touched (96 MiB populated at once would
 * take most of a 256 MiB guest); MADV_DONTNEED gives touched pages back, and they read zero;
 * mremap, in place and moving, keeps the data and the rest still untouched. */
/* UDP over loopback and unix datagram sockets: datagrams keep their bounds and their sender's
 * address; one longer than the buffer is cut (MSG_TRUNC says by how much); a connected socket
 * sends without an address, and learns that nobody has the port at its next receive;
 * sendmsg's vector is one datagram and recvmsg scatters it; a blocking receive waits for a
 * child's datagram; a unix datagram socket bound to a path gets what is sent there. */
static void udp_sockets(void)
{
    unsigned char sa[16], me[16], from[16];
    int len = 16, flen = 16;
    char buf[16];
    int r = (int)SYS(41, 2, 2, 0, 0), s = (int)SYS(41, 2, 2 | O_NONBLOCK, 17, 0); /* SOCK_DGRAM, IPPROTO_UDP */
    sin_loop(sa, 0);
    long b = SYS(49, r, sa, 16, 0);
    SYS(51, r, me, &len, 0);
    int port = sin_port(me);
    long w1 = raw_syscall6(44, s, (long)"one", 3, 0, (long)me, 16), w2 = raw_syscall6(44, s, (long)"two!", 4, 0, (long)me, 16);
    long g1 = raw_syscall6(45, r, (long)buf, sizeof(buf), 0, (long)from, (long)&flen);
    long g2 = SYS(0, r, buf + 3, sizeof(buf) - 3, 0);
    len = 16;
    SYS(51, s, me, &len, 0); /* the sender got a port when it first sent */
    say("udp sendto, recvfrom: bounds and sender kept", b == 0 && port > 0 && w1 == 3 && w2 == 4 && g1 == 3 && g2 == 4 &&
        same(buf, "onetwo!", 7) && flen == 16 && from[4] == 127 && sin_port(from) == sin_port(me) && sin_port(me) > 0,
        b ? b : w1 != 3 ? w1 : g1 != 3 ? g1 : g2);
    sin_loop(sa, port);
    long c = SYS(42, s, sa, 16, 0), w = SYS(1, s, "0123456789", 10, 0);
    long cut = raw_syscall6(45, r, (long)buf, 4, 0x20, 0, 0);   /* MSG_TRUNC: the datagram's length */
    long empty = raw_syscall6(45, r, (long)buf, 4, 0x40, 0, 0); /* MSG_DONTWAIT: the rest went with it */
    say("udp connect, write, truncation", c == 0 && w == 10 && cut == 10 && same(buf, "0123", 4) && empty == -EAGAIN, c ? c : w != 10 ? w : cut != 10 ? cut : empty);
    long iov[4] = {(long)"ab", 2, (long)"cde", 3};
    long msg[7] = {0, 0, (long)iov, 2, 0, 0, 0};
    long sm = SYS(46, s, msg, 0, 0);
    char x[2], y[2];
    long riov[4] = {(long)x, 2, (long)y, 2};
    long rmsg[7] = {(long)from, 16, (long)riov, 2, 0, 0, 0};
    long rm = SYS(47, r, rmsg, 0, 0);
    say("udp sendmsg one datagram, recvmsg scatters it", sm == 5 && rm == 4 && same(x, "ab", 2) && same(y, "cd", 2) &&
        (int)rmsg[1] == 16 && (int)rmsg[6] == 0x20 && sin_port(from) == sin_port(me), sm != 5 ? sm : rm);
    /* a port nobody has: the connected sender hears of it when it next receives */
    int lone = (int)SYS(41, 2, 2, 0, 0);
    sin_loop(sa, 0);
    SYS(49, lone, sa, 16, 0);
    len = 16;
    SYS(51, lone, me, &len, 0);
    SYS(3, lone, 0, 0, 0);
    SYS(42, s, me, 16, 0);
    w = SYS(1, s, "x", 1, 0);
    long refused = raw_syscall6(45, s, (long)buf, 1, 0x40, 0, 0);
    say("udp to a closed port: ECONNREFUSED", w == 1 && refused == -111, w != 1 ? w : refused);
    /* a blocking receive, woken by a child's datagram */
    sin_loop(sa, port);
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        long delay[2] = {0, 200000000};
        int k = (int)SYS(41, 2, 2, 0, 0);
        SYS(35, delay, 0, 0, 0);
        SYS(60, raw_syscall6(44, k, (long)"kid", 3, 0, (long)sa, 16) == 3 ? 0 : 1, 0, 0, 0);
    }
    long t0 = mono_ms();
    long got = SYS(0, r, buf, sizeof(buf), 0);
    say("udp blocking receive woken", got == 3 && same(buf, "kid", 3) && mono_ms() - t0 >= 150, got);
    reap(child);
    SYS(3, s, 0, 0, 0);
    SYS(3, r, 0, 0, 0);
    /* an IPv6 wildcard socket gets an IPv4 sender's datagram from ::ffff:127.0.0.1 */
    unsigned char six[28] = {10, 0}, from6[28];
    int r6 = (int)SYS(41, 10, 2, 0, 0), s4 = (int)SYS(41, 2, 2, 0, 0);
    len = 28;
    b = SYS(49, r6, six, 28, 0);
    SYS(51, r6, six, &len, 0);
    sin_loop(sa, sin_port(six));
    w = raw_syscall6(44, s4, (long)"v4", 2, 0, (long)sa, 16);
    flen = 28;
    got = raw_syscall6(45, r6, (long)buf, sizeof(buf), 0, (long)from6, (long)&flen);
    say("udp IPv4 sender to an IPv6 socket: mapped address", b == 0 && w == 2 && got == 2 && flen == 28 && from6[0] == 10 &&
        from6[18] == 0xff && from6[19] == 0xff && from6[20] == 127 && from6[23] == 1, b ? b : w != 2 ? w : got != 2 ? got : flen);
    SYS(3, r6, 0, 0, 0);
    SYS(3, s4, 0, 0, 0);

    char sun[32];
    const char *path = "/tmp/systest.dgram";
    int n = sun_path(sun, path);
    SYS(87, path, 0, 0, 0);
    int u = (int)SYS(41, 1, 2, 0, 0), v = (int)SYS(41, 1, 2, 0, 0);
    b = SYS(49, u, sun, n, 0);
    w1 = raw_syscall6(44, v, (long)"hi", 2, 0, (long)sun, n);
    flen = 16;
    g1 = raw_syscall6(45, u, (long)buf, sizeof(buf), 0, (long)from, (long)&flen);
    SYS(3, u, 0, 0, 0);
    w2 = raw_syscall6(44, v, (long)"hi", 2, 0, (long)sun, n); /* nobody reads there now */
    say("unix datagram: path, unnamed sender, refused when closed", b == 0 && w1 == 2 && g1 == 2 && same(buf, "hi", 2) &&
        flen == 0 && w2 == -111, b ? b : w1 != 2 ? w1 : g1 != 2 ? g1 : flen ? flen : w2);
    SYS(3, v, 0, 0, 0);
    SYS(87, path, 0, 0, 0);
}

/* The rest of the datagram paths: errors (no destination, too big, listen/accept), socket
 * options and FIONREAD, readv/writev as one datagram, a connected receiver dropping (UDP) or
 * refusing (unix, EPERM) other senders, /proc/net/udp, and a full unix receiver making a
 * sender wait (EAGAIN without blocking) until it reads. */
static void dgram_more(void)
{
    static char big[65508], buf[64];
    unsigned char sa[16], me[16];
    int len = 16, r = (int)SYS(41, 2, 2, 0, 0), s = (int)SYS(41, 2, 2, 0, 0), t = (int)SYS(41, 2, 2, 0, 0);
    sin_loop(sa, 0);
    SYS(49, r, sa, 16, 0);
    SYS(51, r, me, &len, 0);
    long nodest = SYS(1, s, "x", 1, 0), toobig = raw_syscall6(44, s, (long)big, sizeof(big), 0, (long)me, 16);
    long li = SYS(50, r, 1, 0, 0), ac = SYS(43, r, 0, 0, 0);
    int ty = 0, pr = 0, ol = 4, n = 0;
    raw_syscall6(55, r, 1, 3, (long)&ty, (long)&ol, 0); /* SO_TYPE */
    ol = 4;
    long o2 = raw_syscall6(55, r, 1, 38, (long)&pr, (long)&ol, 0); /* SO_PROTOCOL */
    say("udp errors and options", nodest == -89 && toobig == -90 && li == -95 && ac == -95 && ty == 2 && o2 == 0 && pr == 17,
        nodest != -89 ? nodest : toobig != -90 ? toobig : li != -95 ? li : ac != -95 ? ac : ty * 100 + pr);
    SYS(42, s, me, 16, 0);
    long iov[4] = {(long)"abc", 3, (long)"de", 2};
    long wv = SYS(20, s, iov, 2, 0); /* writev */
    SYS(16, r, 0x541b, &n, 0);       /* FIONREAD: the next datagram's size */
    char x[2], y[8];
    long riov[4] = {(long)x, 2, (long)y, 8};
    long rv = SYS(19, r, riov, 2, 0); /* readv */
    say("udp writev/readv one datagram, FIONREAD", wv == 5 && n == 5 && rv == 5 && same(x, "ab", 2) && same(y, "cde", 3), wv != 5 ? wv : n != 5 ? n : rv);
    unsigned char sme[16];
    len = 16;
    SYS(51, s, sme, &len, 0);
    SYS(42, r, sme, 16, 0); /* r takes s's datagrams only */
    long tw = raw_syscall6(44, t, (long)"no", 2, 0, (long)me, 16), sw = SYS(1, s, "yes", 3, 0);
    long got = raw_syscall6(45, r, (long)buf, sizeof(buf), 0x40, 0, 0), none = raw_syscall6(45, r, (long)buf, sizeof(buf), 0x40, 0, 0);
    static char net[8192];
    char want[8] = {':', 0};
    for (int i = 0; i < 4; i++)
        want[1 + i] = "0123456789ABCDEF"[(sin_port(me) >> (12 - 4 * i)) & 0xf];
    want[5] = ' ';
    long nf = SYS(2, "/proc/net/udp", 0, 0, 0), nn = nf >= 0 ? SYS(0, nf, net, sizeof(net) - 1, 0) : -1;
    SYS(3, nf, 0, 0, 0);
    int listed = 0;
    for (long i = 0; i + 6 <= nn && !listed; i++)
        listed = same(net + i, want, 6);
    say("udp connected receiver drops others; /proc/net/udp", tw == 2 && sw == 3 && got == 3 && same(buf, "yes", 3) && none == -EAGAIN && listed,
        tw != 2 ? tw : got != 3 ? got : none != -EAGAIN ? none : listed);
    SYS(3, r, 0, 0, 0);
    SYS(3, s, 0, 0, 0);
    SYS(3, t, 0, 0, 0);

    char pu[32], pq[32];
    int nu = sun_path(pu, "/tmp/systest.du"), nq = sun_path(pq, "/tmp/systest.dq");
    SYS(87, "/tmp/systest.du", 0, 0, 0);
    SYS(87, "/tmp/systest.dq", 0, 0, 0);
    int u = (int)SYS(41, 1, 2, 0, 0), q = (int)SYS(41, 1, 2, 0, 0), v = (int)SYS(41, 1, 2 | O_NONBLOCK, 0, 0);
    SYS(49, u, pu, nu, 0);
    SYS(49, q, pq, nq, 0);
    SYS(42, u, pq, nq, 0); /* u takes q's datagrams only */
    long perm = raw_syscall6(44, v, (long)"v", 1, 0, (long)pu, nu);
    SYS(3, u, 0, 0, 0);
    SYS(87, "/tmp/systest.du", 0, 0, 0);
    u = (int)SYS(41, 1, 2, 0, 0);
    SYS(49, u, pu, nu, 0);
    int sent = 0;
    long w;
    while (sent < 100000 && (w = raw_syscall6(44, v, (long)"z", 1, 0, (long)pu, nu)) == 1)
        sent++;
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) { /* blocks until the parent reads one */
        int k = (int)SYS(41, 1, 2, 0, 0);
        SYS(60, raw_syscall6(44, k, (long)"w", 1, 0, (long)pu, nu) == 1 ? 0 : 1, 0, 0, 0);
    }
    long slept[2] = {0, 200000000};
    SYS(35, slept, 0, 0, 0);
    long rd = SYS(0, u, buf, sizeof(buf), 0);
    say("unix datagram: EPERM from a stranger, a full receiver", perm == -EPERM && sent > 0 && w == -EAGAIN && rd == 1,
        perm != -EPERM ? perm : w != -EAGAIN ? w : sent);
    reap(child);
    SYS(3, u, 0, 0, 0);
    SYS(3, q, 0, 0, 0);
    SYS(3, v, 0, 0, 0);
    SYS(87, "/tmp/systest.du", 0, 0, 0);
    SYS(87, "/tmp/systest.dq", 0, 0, 0);
}

static void lazy_mappings(void)
{
    const u64 M = 1UL << 20;
    long f0 = free_mib();
    char *big = (char *)raw_syscall6(9, 0, 96 * M, 3, 0x22, -1, 0); /* PROT_RW, MAP_PRIVATE|ANON */
    int zeros = (long)big > 0 && big[50 * M] == 0;
    if ((long)big > 0) {
        big[0] = 1;
        big[96 * M - 1] = 2;
    }
    long f1 = free_mib();
    say("large mmap gets pages as touched", (long)big > 0 && zeros && f0 - f1 < 8, (long)big > 0 ? f0 - f1 : (long)big);
    if ((long)big <= 0)
        return;
    for (u64 off = 32 * M; off < 48 * M; off += 4096)
        big[off] = 7;
    long f2 = free_mib();
    long r = SYS(28, big + 32 * M, 16 * M, 4, 0); /* MADV_DONTNEED */
    long f3 = free_mib();
    say("MADV_DONTNEED gives pages back, zeroed", r == 0 && f2 - f3 < -12 && big[40 * M] == 0, r ? r : f3 - f2);
    char *g1 = (char *)raw_syscall6(25, (long)big, 96 * M, 128 * M, 1, 0, 0); /* MREMAP_MAYMOVE */
    char *other = (char *)raw_syscall6(9, 0, 4096, 3, 0x22, -1, 0);
    char *g2 = (long)g1 > 0 ? (char *)raw_syscall6(25, (long)g1, 128 * M, 160 * M, 1, 0, 0) : g1;
    long f4 = free_mib();
    int kept = (long)g2 > 0 && g2[0] == 1 && g2[96 * M - 1] == 2 && g2[150 * M] == 0 && g2[100 * M] == 0;
    say("mremap keeps a lazy mapping lazy", kept && f0 - f4 < 24, (long)g2 > 0 ? f0 - f4 : (long)g2);
    SYS(11, (long)g2 > 0 ? g2 : big, (long)g2 > 0 ? 160 * M : 96 * M, 0, 0);
    SYS(11, other, 4096, 0, 0);

    /* two mappings of 60% of the memory each are granted (each fits what is free); touching
     * both runs out, and the child doing it is killed (SIGKILL) rather than the guest failing.
     * Only in our guest: elsewhere it would press a whole machine. */
    if (!in_our_guest()) {
        SYS(1, 1, "touching more than memory: skipped outside the guest\n", 53, 0);
        return;
    }
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        static u64 si[16];
        SYS(99, si, 0, 0, 0);
        u64 each = (si[4] / 10 * 6) & ~4095UL; /* totalram at [4] */
        char *a = (char *)raw_syscall6(9, 0, (long)each, 3, 0x22, -1, 0);
        char *b = (char *)raw_syscall6(9, 0, (long)each, 3, 0x22, -1, 0);
        if ((long)a <= 0 || (long)b <= 0)
            SYS(60, 3, 0, 0, 0);
        for (u64 off = 0; off < each; off += 4096)
            a[off] = b[off] = 1;
        SYS(60, 4, 0, 0, 0);
    }
    int st = -1;
    SYS(61, child, &st, 0, 0);
    say("touching more than memory kills (SIGKILL)", (st & 0x7f) == 9, st);
}

static void memory_and_more(void)
{
    char *m = (char *)raw_syscall6(9, 0, 3 * 4096, 3, 0x22, -1, 0); /* PROT_RW, MAP_PRIVATE|ANON */
    int zero = (long)m > 0 && m[0] == 0 && m[3 * 4096 - 1] == 0;
    if ((long)m > 0)
        m[4096] = 7;
    say("mmap anonymous", zero && m[4096] == 7 && SYS(11, m, 3 * 4096, 0, 0) == 0, (long)m);
    char *again = (char *)raw_syscall6(9, 0, 3 * 4096, 3, 0x22, -1, 0);
    say("munmap gives the addresses back", again == m && again[4096] == 0, (long)again);
    SYS(11, again, 3 * 4096, 0, 0);
    /* mremap: a buffer grows (moving when it must) keeping its contents, and shrinks in place */
    char *g = (char *)raw_syscall6(9, 0, 2 * 4096, 3, 0x22, -1, 0);
    char *other = (char *)raw_syscall6(9, 0, 4096, 3, 0x22, -1, 0);
    g[0] = 1;
    g[4096 + 5] = 2;
    char *grown = (char *)raw_syscall6(25, (long)g, 2 * 4096, 64 * 4096, 1, 0, 0); /* MREMAP_MAYMOVE */
    int kept = (long)grown > 0 && grown[0] == 1 && grown[4096 + 5] == 2 && grown[63 * 4096] == 0;
    if (kept)
        grown[63 * 4096] = 3;
    say("mremap grows", kept && grown[63 * 4096] == 3, (long)grown);
    char *shrunk = (char *)raw_syscall6(25, (long)grown, 64 * 4096, 4096, 0, 0, 0);
    say("mremap shrinks in place", shrunk == grown && shrunk[0] == 1, (long)shrunk);
    SYS(11, shrunk, 4096, 0, 0);
    SYS(11, other, 4096, 0, 0);
    /* a PROT_NONE reservation made accessible costs only the pages touched (thread stacks and
     * malloc arenas are made so: 256 MiB here would not fit in the guest if populated), and
     * its PROT_NONE rest faults */
    static u64 si0[16], si1[16];
    SYS(99, si0, 0, 0, 0); /* sysinfo: freeram at [5] */
    char *rsv = (char *)raw_syscall6(9, 0, 256UL << 20, 0, 0x22 | 0x4000, -1, 0); /* PROT_NONE, MAP_NORESERVE */
    long pr = SYS(10, rsv, 128UL << 20, 3, 0);
    if (pr == 0)
        rsv[(128UL << 20) - 1] = 5;
    SYS(99, si1, 0, 0, 0);
    say("mprotect of a reservation is lazy", (long)rsv > 0 && pr == 0 && rsv[(128UL << 20) - 1] == 5 &&
        si1[5] + (32UL << 20) > si0[5], (long)(si0[5] - si1[5]) >> 10);
    long kid = SYS(57, 0, 0, 0, 0);
    if (kid == 0) {
        rsv[(200UL << 20)] = 1; /* PROT_NONE: SIGSEGV */
        SYS(60, 0, 0, 0, 0);
    }
    int st = 0;
    SYS(61, kid, &st, 0, 0);
    say("PROT_NONE faults", (st & 0x7f) == 11, st);
    SYS(11, rsv, 256UL << 20, 0, 0);
    lazy_mappings();
    long fd = SYS(2, "/etc/passwd", 0, 0, 0);
    char *f = (char *)raw_syscall6(9, 0, 4096, 1, 0x02, fd, 0); /* PROT_READ, MAP_PRIVATE */
    say("mmap file", (long)f > 0 && same(f, "root:", 5), (long)f);
    SYS(11, f, 4096, 0, 0);
    SYS(3, fd, 0, 0, 0);
    long b0 = SYS(12, 0, 0, 0, 0), b1 = SYS(12, b0 + 8192, 0, 0, 0);
    if (b1 == b0 + 8192)
        ((char *)b0)[8191] = 1;
    say("brk", b0 > 0 && b1 == b0 + 8192, b1);
    long t0 = mono_ms(), req[2] = {0, 30000000};
    long r = SYS(35, req, 0, 0, 0);
    long slept = mono_ms() - t0;
    say("nanosleep", r == 0 && slept >= 30 && slept < 5000, r ? r : slept);
    static char uts[6 * 65];
    r = SYS(63, uts, 0, 0, 0);
    say("uname", r == 0 && same(uts, "Linux", 6), r);
    static long tls[4];
    u64 old = 0, now = 0;
    SYS(158, 0x1003, &old, 0, 0); /* ARCH_GET_FS */
    r = SYS(158, 0x1002, tls, 0, 0);
    SYS(158, 0x1003, &now, 0, 0);
    SYS(158, 0x1002, old, 0, 0);
    say("arch_prctl", r == 0 && now == (u64)tls, r);
    static u64 rnd[8];
    r = SYS(318, rnd, 32, 0, 0);
    long r2 = SYS(318, rnd + 4, 32, 0, 0);
    say("getrandom", r == 32 && r2 == 32 && (rnd[0] | rnd[1]) != 0 && rnd[0] != rnd[4], r);
    /* whole reads, as dd bs=1M expects: 1 MiB from /dev/zero, /dev/urandom and getrandom */
    char *big = (char *)raw_syscall6(9, 0, 1 << 20, 3, 0x22, -1, 0);
    long z = SYS(2, "/dev/zero", 0, 0, 0), u = SYS(2, "/dev/urandom", 0, 0, 0);
    big[(1 << 20) - 1] = 1;
    long rz = SYS(0, z, big, 1 << 20, 0), last = big[(1 << 20) - 1];
    long ru = SYS(0, u, big, 1 << 20, 0), rg = SYS(318, big, 1 << 20, 0, 0);
    say("whole reads of devices", rz == 1 << 20 && last == 0 && ru == 1 << 20 && rg == 1 << 20, rz != 1 << 20 ? rz : ru != 1 << 20 ? ru : rg);
    SYS(3, z, 0, 0, 0);
    SYS(3, u, 0, 0, 0);
    SYS(11, big, 1 << 20, 0, 0);
    say("getppid getuid", SYS(110, 0, 0, 0, 0) > 0 && SYS(102, 0, 0, 0, 0) == 0, 0);
    static char name[16];
    r = SYS(157, 15, "a-rather-long-name", 0, 0); /* PR_SET_NAME: cut to 15 bytes */
    long got = SYS(157, 16, name, 0, 0);         /* PR_GET_NAME */
    say("prctl name", r == 0 && got == 0 && same(name, "a-rather-long-n", 16), r ? r : got);
    u64 mask[2] = {0, 0};
    r = SYS(204, 0, sizeof(mask), mask, 0);
    say("sched_getaffinity", r >= 8 && (mask[0] & 1), r);
    long res[2] = {-1, -1};
    r = SYS(229, 1, res, 0, 0);
    say("clock_getres", r == 0 && res[0] == 0 && res[1] > 0 && res[1] <= 10000000, r ? r : res[1]);
    char *page = (char *)raw_syscall6(9, 0, 4096, 3, 0x22, -1, 0);
    page[100] = 9;
    r = SYS(28, page, 4096, 4, 0); /* MADV_DONTNEED */
    say("madvise DONTNEED zeroes", r == 0 && page[100] == 0, r ? r : page[100]);
    SYS(11, page, 4096, 0, 0);
}

/* Each level holds a 4000-byte frame: 500 levels need ~2 MB of stack, 8 times what exec maps. */
static long deep(long n)
{
    volatile char pad[4000];
    pad[0] = 1;
    pad[3999] = 0;
    return n ? deep(n - 1) + pad[0] + pad[3999] : 0;
}

/* A read into a buffer 1 MiB down the stack, where the program has not been yet: the kernel
 * meets the missing page first. */
static long read_deep(void)
{
    char big[1 << 20];
    long fd = SYS(2, "/etc/passwd", 0, 0, 0), r = SYS(0, fd, big, 4096, 0);
    SYS(3, fd, 0, 0, 0);
    return r > 5 && same(big, "root:", 5) ? r : -1;
}

static void stack(void)
{
    long r = deep(500);
    say("stack grows", r == 500, r);
    r = read_deep();
    say("syscall into unreached stack", r > 0, r);
    long pid = SYS(57, 0, 0, 0, 0);
    if (pid == 0) {
        deep(1L << 20); /* 4 GB: past any stack limit */
        SYS(60, 0, 0, 0, 0);
    }
    int status = -1;
    SYS(61, pid, &status, 0, 0);
    say("stack overflow SIGSEGV", (status & 0x7f) == 11, status);
}

/* execve of `sh -c 'exit 7'` with `n` copies of env string `s` (and `extra` as sh's $0):
 * the child's exit status, or 100 + the errno execve failed with. */
static int exec_with(const char *s, int n, const char *extra)
{
    static const char *envp[600];
    const char *argv[] = {"sh", "-c", "exit 7", extra, 0};
    for (int i = 0; i < n; i++)
        envp[i] = s;
    envp[n] = 0;
    long pid = SYS(57, 0, 0, 0, 0);
    if (pid == 0) {
        long r = SYS(59, "/bin/sh", argv, envp, 0);
        SYS(60, 100 - r, 0, 0, 0);
    }
    int status = -1;
    SYS(61, pid, &status, 0, 0);
    return (status >> 8) & 0xff;
}

/* Linux's limits on what execve carries: 128 KiB a string with its NUL (MAX_ARG_STRLEN), and
 * 2 MiB for the strings and their pointers together (a quarter of the 8 MiB stack limit). */
static char arg_buf[(128 << 10) + 2];

static void exec_limits(void)
{
    char small[16] = "V=0123456789ab";
    int st = exec_with(small, 500, 0);
    say("execve 500 env strings", st == 7, st);
    for (int i = 0; i < (128 << 10) + 1; i++)
        arg_buf[i] = 'x';
    arg_buf[0] = 'B';
    arg_buf[1] = '=';
    arg_buf[(128 << 10) - 1] = 0; /* 128 KiB with its NUL: the longest a string may be */
    st = exec_with(arg_buf, 1, 0);
    say("execve env string of 128 KiB", st == 7, st);
    st = exec_with(small, 0, arg_buf);
    say("execve argument of 128 KiB", st == 7, st);
    st = exec_with(arg_buf, 15, 0);
    say("execve 15 env strings of 128 KiB", st == 7, st); /* 1.9 MiB */
    st = exec_with(arg_buf, 17, 0);
    say("execve past 2 MiB E2BIG", st == 100 + 7, st);
    arg_buf[(128 << 10) - 1] = 'x';
    arg_buf[128 << 10] = 0; /* a byte more */
    st = exec_with(arg_buf, 1, 0);
    say("execve env string past 128 KiB E2BIG", st == 100 + 7, st);
    st = exec_with(small, 0, arg_buf);
    say("execve argument past 128 KiB E2BIG", st == 100 + 7, st);
}

/* CPU time: a process's own (clock_gettime, getrusage, times), and a reaped child's (wait4's
 * rusage, RUSAGE_CHILDREN), after ~60 ms of spinning each (user and system time together: the
 * spin is mostly clock_gettime syscalls, which Linux counts as system time). */
static long spin_ms(long ms)
{
    long t0 = mono_ms(), n = 0;
    while (mono_ms() - t0 < ms)
        n++;
    return n;
}

static long ms_of(const long tv[2], long unit) /* {seconds, unit fractions} in ms */
{
    return tv[0] * 1000 + tv[1] / unit;
}

static long ru_ms(const long ru[18]) /* user + system time (this guest counts it all as user) */
{
    return ms_of(ru, 1000) + ms_of(ru + 2, 1000);
}

static void cpu_times(void)
{
    spin_ms(60);
    long ts[2] = {0, 0}, ru[18], tms[4];
    long r = SYS(228, 2, ts, 0, 0); /* CLOCK_PROCESS_CPUTIME_ID */
    say("process CPU clock", r == 0 && ms_of(ts, 1000000) >= 30, r ? r : ms_of(ts, 1000000));
    r = SYS(98, 0, ru, 0, 0);
    say("getrusage self", r == 0 && ru_ms(ru) >= 30, r ? r : ru_ms(ru));
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        spin_ms(60);
        SYS(60, 0, 0, 0, 0);
    }
    int status = -1;
    r = SYS(61, child, &status, 0, ru);
    say("wait4 rusage", r == child && ru_ms(ru) >= 30, ru_ms(ru));
    r = SYS(98, -1, ru, 0, 0);
    long clock = SYS(100, tms, 0, 0, 0);
    say("children's CPU time", r == 0 && ru_ms(ru) >= 30 && tms[0] + tms[1] >= 3 && tms[2] + tms[3] >= 3 && clock > 0,
        tms[2] + tms[3]);
}

/* Every register survives being preempted (under PVM a return to user mode is a hypercall
 * that must restore them all): this process checks 13 registers against their values in a
 * tight loop while a child spins on other values, until SIGALRM after 300 ms stops it. */
static volatile u64 regs_want[14]; /* rax..r15 as set, then the stop flag */

static void on_stop(int sig)
{
    (void)sig;
    regs_want[13] = 1;
}

static long spin_check(u64 base)
{
    for (int i = 0; i < 13; i++)
        regs_want[i] = base + (u64)i * 0x1010101;
    register u64 r8 __asm__("r8") = regs_want[5], r9 __asm__("r9") = regs_want[6], r10 __asm__("r10") = regs_want[7];
    register u64 r11 __asm__("r11") = regs_want[8], r12 __asm__("r12") = regs_want[9], r13 __asm__("r13") = regs_want[10];
    register u64 r14 __asm__("r14") = regs_want[11], r15 __asm__("r15") = regs_want[12];
    u64 a = regs_want[0], b = regs_want[1], c = regs_want[2], d = regs_want[3], si = regs_want[4];
    __asm__ volatile("1:\n"
                     "cmp 0(%%rdi), %%rax\n jne 2f\n cmp 8(%%rdi), %%rbx\n jne 2f\n"
                     "cmp 16(%%rdi), %%rcx\n jne 2f\n cmp 24(%%rdi), %%rdx\n jne 2f\n"
                     "cmp 32(%%rdi), %%rsi\n jne 2f\n cmp 40(%%rdi), %%r8\n jne 2f\n"
                     "cmp 48(%%rdi), %%r9\n jne 2f\n cmp 56(%%rdi), %%r10\n jne 2f\n"
                     "cmp 64(%%rdi), %%r11\n jne 2f\n cmp 72(%%rdi), %%r12\n jne 2f\n"
                     "cmp 80(%%rdi), %%r13\n jne 2f\n cmp 88(%%rdi), %%r14\n jne 2f\n"
                     "cmp 96(%%rdi), %%r15\n jne 2f\n"
                     "cmpq $0, 104(%%rdi)\n je 1b\n"
                     "xor %%eax, %%eax\n jmp 3f\n"
                     "2: mov $1, %%eax\n"
                     "3:\n"
                     : "+a"(a), "+b"(b), "+c"(c), "+d"(d), "+S"(si), "+r"(r8), "+r"(r9), "+r"(r10), "+r"(r11), "+r"(r12),
                       "+r"(r13), "+r"(r14), "+r"(r15)
                     : "D"(regs_want)
                     : "memory", "cc");
    return (long)a;
}

/* The same for the 256-bit AVX registers ymm0-ymm7 (their upper halves are what FXSAVE does
 * not keep); 0 when they were kept, -1 without AVX. */
static u64 ymm_want[8][4] __attribute__((aligned(32)));

static int have_avx(void)
{
    unsigned a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    if (!(c & (1u << 27)) || !(c & (1u << 28))) /* OSXSAVE, AVX */
        return 0;
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return (a & 6) == 6;
}

static long spin_check_avx(u64 base)
{
    if (!have_avx())
        return -1;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            ymm_want[i][j] = base + (u64)(i * 4 + j) * 0x10001;
    long bad;
    __asm__ volatile("vmovdqa 0(%1), %%ymm0\n vmovdqa 32(%1), %%ymm1\n vmovdqa 64(%1), %%ymm2\n vmovdqa 96(%1), %%ymm3\n"
                     "vmovdqa 128(%1), %%ymm4\n vmovdqa 160(%1), %%ymm5\n vmovdqa 192(%1), %%ymm6\n vmovdqa 224(%1), %%ymm7\n"
                     "1:\n"
                     "vpxor 0(%1), %%ymm0, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 32(%1), %%ymm1, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 64(%1), %%ymm2, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 96(%1), %%ymm3, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 128(%1), %%ymm4, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 160(%1), %%ymm5, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 192(%1), %%ymm6, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "vpxor 224(%1), %%ymm7, %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 2f\n"
                     "cmpq $0, (%2)\n je 1b\n"
                     "xor %0, %0\n jmp 3f\n"
                     "2: mov $1, %0\n"
                     "3: vzeroupper\n"
                     : "=r"(bad)
                     : "r"(ymm_want), "r"(&regs_want[13])
                     : "memory", "cc");
    return bad;
}

/* Runs `check` in this process for 300 ms (SIGALRM ends it) while a child runs it with other
 * values (until killed); the check's result, or -2 when it ended too early. */
static long spin_both(long (*check)(u64))
{
    regs_want[13] = 0;
    long child = SYS(57, 0, 0, 0, 0);
    if (child == 0) {
        check(0x5a5a000000000000ULL); /* until killed */
        SYS(60, 0, 0, 0, 0);
    }
    u64 act[4] = {(u64)on_stop, SA_RESTORER, (u64)lel_restorer, 0};
    long once[4] = {0, 0, 0, 300000}, t0 = mono_ms();
    SYS(13, SIGALRM, act, 0, 8);
    SYS(38, 0, once, 0, 0);
    long bad = check(0x1234000000000000ULL), took = mono_ms() - t0;
    int status = -1;
    SYS(62, child, 9, 0, 0);
    SYS(61, child, &status, 0, 0);
    return bad ? bad : took >= 250 && status == 9 ? 0 : -2;
}

static void preempted_registers(void)
{
    long r = spin_both(spin_check);
    say("registers kept across preemption", r == 0, r);
    if (!have_avx()) {
        say("AVX registers kept across preemption (no AVX here)", 1, 0);
        return;
    }
    r = spin_both(spin_check_avx);
    say("AVX registers kept across preemption", r == 0, r);
}

static void signals(void)
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

    u64 ss[3] = {(u64)altstack, 0, sizeof(altstack)}, was[3] = {1, 1, 1};
    r = SYS(131, ss, was, 0, 0);
    say("sigaltstack", r == 0 && (int)was[1] == 2 && was[2] == 0, r ? r : (long)was[1]); /* was SS_DISABLE */
    u64 alt[4] = {(u64)on_alt, 0x08000000UL | SA_RESTORER, (u64)lel_restorer, 0}; /* SA_ONSTACK */
    SYS(13, SIGUSR1, alt, 0, 8);
    SYS(200, tid, SIGUSR1, 0, 0);
    say("handler on the alternate stack", alt_sp >= (u64)altstack && alt_sp < (u64)altstack + sizeof(altstack) && alt_flags == 1,
        alt_flags);
    ss[1] = 2; /* SS_DISABLE */
    r = SYS(131, ss, 0, 0, 0);
    SYS(131, 0, was, 0, 0);
    say("sigaltstack disabled", r == 0 && (int)was[1] == 2, r ? r : (long)was[1]);
    u64 tiny[3] = {(u64)altstack, 0, 100}, odd[3] = {(u64)altstack, 0x40, sizeof(altstack)};
    long small = SYS(131, tiny, 0, 0, 0), bad = SYS(131, odd, 0, 0, 0);
    say("sigaltstack too small ENOMEM, bad flags EINVAL", small == -12 && bad == -EINVAL, small == -12 ? bad : small);
    handle(SIGUSR1, 0);

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
    say("pause EINTR", r == -EINTR && hits[SIGUSR1] == 4, r == -EINTR ? hits[SIGUSR1] : r);
    reap(child);

    /* the real-time interval timer: once, then every 50 ms, then off; alarm's seconds left */
    handle(SIGALRM, 0);
    long once[4] = {0, 0, 0, 100000}, every[4] = {0, 50000, 0, 50000}, off[4] = {0, 0, 0, 0}, old[4] = {-1, -1, -1, -1};
    long t0 = mono_ms();
    r = SYS(38, 0, once, 0, 0);
    long p = SYS(34, 0, 0, 0, 0), took = mono_ms() - t0;
    say("setitimer once", r == 0 && p == -EINTR && hits[SIGALRM] == 1 && took >= 100 && took < 5000, r ? r : took);
    SYS(38, 0, every, 0, 0);
    for (int i = 0; i < 3; i++)
        SYS(34, 0, 0, 0, 0);
    r = SYS(38, 0, off, old, 0);
    say("setitimer repeats", r == 0 && hits[SIGALRM] == 4 && old[0] == 0 && old[1] == 50000, hits[SIGALRM]);
    r = SYS(36, 0, old, 0, 0);
    say("getitimer off", r == 0 && old[1] == 0 && old[3] == 0 && old[2] == 0, r);
    SYS(37, 5, 0, 0, 0);
    r = SYS(37, 0, 0, 0, 0);
    say("alarm", r == 5, r);
}

void _start(void)
{
    files();
    hard_links();
    proc_fds();
    pipes();
    eventfds();
    epolls();
    futex_requeue_vfork();
    close_under_read();
    fifos_and_more();
    tcp_sockets();
    unix_sockets();
    udp_sockets();
    dgram_more();
    memory_and_more();
    stack();
    exec_limits();
    cpu_times();
    preempted_registers();
    signals();
    SYS(231, failed, 0, 0, 0);
    for (;;)
        ;
}
