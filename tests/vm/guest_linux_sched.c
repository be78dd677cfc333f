/* What runtimes ask at start and in passing (python's os.sched_* and os.posix_fallocate, node,
 * coreutils' df): scheduling policies, getcpu, mincore, mlock, membarrier, fallocate and the
 * sync calls, faccessat2, /proc/self/mountinfo. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_ok(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void policies(void)
{
    struct sched_param sp = {0};
    say("sched_getscheduler: SCHED_OTHER", sched_getscheduler(0) == SCHED_OTHER, errno);
    say("sched_get_priority_max/min", sched_get_priority_max(SCHED_FIFO) == 99 && sched_get_priority_min(SCHED_RR) == 1 &&
        sched_get_priority_max(SCHED_OTHER) == 0 && sched_get_priority_max(77) == -1 && errno == EINVAL, errno);
    say("sched_getparam", sched_getparam(0, &sp) == 0 && sp.sched_priority == 0, errno);
    pid_t pid = fork();
    if (pid == 0) {
        struct sched_param p = {.sched_priority = 5}, back = {0};
        int ok = sched_setscheduler(0, SCHED_BATCH, &p) == -1 && errno == EINVAL; /* BATCH takes priority 0 */
        p.sched_priority = 0;
        ok = ok && sched_setscheduler(0, SCHED_BATCH | SCHED_RESET_ON_FORK, &p) == 0 &&
             sched_getscheduler(0) == (SCHED_BATCH | SCHED_RESET_ON_FORK);
        pid_t g = fork();
        if (g == 0) /* BATCH is kept, the flag is not */
            _exit(sched_getscheduler(0) == SCHED_BATCH ? 0 : 1);
        ok = ok && child_ok(g);
        p.sched_priority = 20;
        ok = ok && sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) == 0;
        g = fork();
        if (g == 0) /* a realtime policy is reset */
            _exit(sched_getscheduler(0) == SCHED_OTHER ? 0 : 1);
        ok = ok && child_ok(g);
        p.sched_priority = 10;
        ok = ok && sched_setscheduler(0, SCHED_RR, &p) == 0 && sched_getparam(0, &back) == 0 && back.sched_priority == 10;
        struct timespec ts = {-1, -1};
        ok = ok && sched_rr_get_interval(0, &ts) == 0 && ts.tv_sec == 0 && ts.tv_nsec > 0;
        p.sched_priority = 0;
        ok = ok && sched_setscheduler(0, SCHED_OTHER, &p) == 0 && setuid(1000) == 0;
        p.sched_priority = 1;
        ok = ok && sched_setscheduler(0, SCHED_FIFO, &p) == -1 && errno == EPERM; /* realtime is root's */
        _exit(ok ? 0 : 1);
    }
    say("sched_setscheduler: kept, reset on fork, realtime only for root", child_ok(pid), 0);
    say("sched_getscheduler of no process: ESRCH", sched_getscheduler(4194000) == -1 && errno == ESRCH, errno);
    unsigned cpu = 99, node = 99;
    say("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL) == 0 && (int)cpu < get_nprocs_conf() && node == 0 && sched_getcpu() == (int)cpu,
        (long)cpu);
}

static void memory(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 4 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char v[4] = {9, 9, 9, 9};
    m[0] = 1;
    say("mincore: a touched page is there", mincore(m, 4 * (size_t)pg, v) == 0 && v[0] == 1, v[0]);
    say("mincore of an unaligned address: EINVAL", mincore(m + 1, 1, v) == -1 && errno == EINVAL, errno);
    munmap(m, 4 * (size_t)pg);
    say("mincore of unmapped memory: ENOMEM", mincore(m, (size_t)pg, v) == -1 && errno == ENOMEM, errno);
    char *big = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    static unsigned char bv[(64 << 20) / 4096];
    big[10 << 20] = 1;
    say("mincore of a large mapping: untouched pages are not there", mincore(big, 64 << 20, bv) == 0 && bv[(10 << 20) / pg] == 1 &&
        bv[(60 << 20) / pg] == 0, bv[(60 << 20) / pg]);
    say("mlock, munlock", mlock(big, 1 << 20) == 0 && munlock(big, 1 << 20) == 0, errno);
    say("mlockall(0): EINVAL", mlockall(0) == -1 && errno == EINVAL, errno);
    munmap(big, 64 << 20);
    long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
    say("membarrier: query and a private expedited barrier", q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0 &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0, q);
}

static void space(void)
{
    int fd = open("/tmp/sched.fa", O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct stat st;
    char b[8192];
    say("fallocate extends a file with zeros", fallocate(fd, 0, 4096, 8192) == 0 && fstat(fd, &st) == 0 && st.st_size == 12288 &&
        pread(fd, b, 100, 5000) == 100 && b[0] == 0 && b[99] == 0, (long)st.st_size);
    say("fallocate KEEP_SIZE", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20) == 0 && fstat(fd, &st) == 0 && st.st_size == 12288,
        (long)st.st_size);
    memset(b, 'x', sizeof(b));
    pwrite(fd, b, sizeof(b), 0);
    say("fallocate punches a hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000) == 0 && pread(fd, b, 8192, 0) == 8192 &&
        b[99] == 'x' && b[100] == 0 && b[5099] == 0 && b[5100] == 'x', b[100]);
    say("fallocate without KEEP_SIZE punching: EOPNOTSUPP or EINVAL",
        fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10) == -1 && (errno == EOPNOTSUPP || errno == EINVAL), errno);
    say("posix_fallocate", posix_fallocate(fd, 0, 20000) == 0 && fstat(fd, &st) == 0 && st.st_size == 20000, (long)st.st_size);
    say("sync_file_range, syncfs", sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0 && syncfs(fd) == 0, errno);
    int p[2];
    if (pipe(p) == 0) {
        say("fallocate of a pipe: ESPIPE", fallocate(p[1], 0, 0, 10) == -1 && errno == ESPIPE, errno);
        close(p[0]);
        close(p[1]);
    }
    close(fd);
    unlink("/tmp/sched.fa");
    symlink("/nonexistent", "/tmp/sched.ln");
    say("faccessat2: AT_SYMLINK_NOFOLLOW sees the link itself", syscall(SYS_faccessat2, AT_FDCWD, "/tmp/sched.ln", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
        syscall(SYS_faccessat2, AT_FDCWD, "/tmp/sched.ln", F_OK, 0) == -1 && errno == ENOENT, errno);
    say("faccessat2 of bad flags: EINVAL", syscall(SYS_faccessat2, AT_FDCWD, "/tmp", F_OK, 0x4) == -1 && errno == EINVAL, errno);
    unlink("/tmp/sched.ln");
    fd = creat("/tmp/sched.cr", 0600);
    say("creat: a new file, open for writing only", fd >= 0 && write(fd, "ab", 2) == 2 && read(fd, b, 1) == -1 && errno == EBADF, errno);
    close(fd);
    fd = creat("/tmp/sched.cr", 0600);
    say("creat truncates", fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, (long)st.st_size);
    close(fd);
    unlink("/tmp/sched.cr");
}

static void mountinfo(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[512];
    int root = 0, proc = 0;
    struct stat st;
    stat("/", &st);
    while (f && fgets(line, sizeof(line), f)) {
        unsigned maj, min;
        char mnt[256];
        if (sscanf(line, "%*d %*d %u:%u %*s %255s", &maj, &min, mnt) == 3) {
            root |= !strcmp(mnt, "/") && makedev(maj, min) == st.st_dev;
            proc |= !strcmp(mnt, "/proc") && strstr(line, " - proc ") != NULL;
        }
    }
    if (f)
        fclose(f);
    say("/proc/self/mountinfo: / with stat's device, and /proc", root && proc, root * 2 + proc);
}

void sched_checks(void)
{
    policies();
    memory();
    space();
    mountinfo();
}
