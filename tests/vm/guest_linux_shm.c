/* Shared memory: mmap MAP_SHARED of a file (the file's own pages: writes reach read() and the
 * other way round, a child's writes reach the parent, msync), the mapping outliving a
 * truncation and the file's name, growing with the file and with mremap; anonymous shared
 * memory across fork; /dev/shm with shm_open and sem_open (multiprocessing's locks);
 * memfd_create. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096

static int child_status(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void file_shared(void)
{
    int fd = open("/tmp/shared.map", O_RDWR | O_CREAT | O_TRUNC, 0600);
    char buf[16] = {0};
    if (fd < 0 || ftruncate(fd, 2 * PG) < 0)
        return;
    char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    say("mmap MAP_SHARED of a file", m != MAP_FAILED, errno);
    if (m == MAP_FAILED)
        return;
    memcpy(m + PG + 10, "mapped", 6);
    say("a write through the mapping reaches read()", pread(fd, buf, 6, PG + 10) == 6 && !memcmp(buf, "mapped", 6), 0);
    say("a write() shows in the mapping", pwrite(fd, "written", 7, 100) == 7 && !memcmp(m + 100, "written", 7), 0);
    pid_t pid = fork();
    if (pid == 0) {
        memcpy(m + 200, "child", 5);
        _exit(0);
    }
    say("a child's writes reach the parent", child_status(pid) == 0 && !memcmp(m + 200, "child", 5), 0);
    say("msync", msync(m, 2 * PG, MS_SYNC) == 0 && msync(m + 1, PG, MS_SYNC) == -1 && errno == EINVAL, errno);
    /* the file grows: its new page is mapped when touched, through the mapping made before */
    char *big = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int grown = big != MAP_FAILED && ftruncate(fd, 4 * PG) == 0;
    if (grown)
        memcpy(big + 3 * PG, "tail", 4);
    say("a mapping past the end reaches the file once it grows", grown && pread(fd, buf, 4, 3 * PG) == 4 && !memcmp(buf, "tail", 4), 0);
    /* mremap grows a shared mapping over more of the file (python's mmap.resize) */
    char *r = mremap(m, 2 * PG, 4 * PG, MREMAP_MAYMOVE);
    say("mremap of a shared mapping", r != MAP_FAILED && !memcmp(r + 3 * PG, "tail", 4) && !memcmp(r + 100, "written", 7), errno);
    if (r != MAP_FAILED)
        m = r;
    /* a truncation and the file's removal leave the mapping usable */
    int cut = ftruncate(fd, PG) == 0 && pread(fd, buf, 1, PG + 10) == 0 && m[100] == 'w';
    cut = cut && ftruncate(fd, 4 * PG) == 0 && m[PG + 10] == 0; /* what was cut off reads zero */
    say("truncated under a mapping", cut, m[PG + 10]);
    unlink("/tmp/shared.map");
    memcpy(m + 300, "gone", 4);
    say("the mapping outlives the file's name", pread(fd, buf, 4, 300) == 4 && !memcmp(buf, "gone", 4), 0);
    munmap(m, 4 * PG);
    munmap(big, 4 * PG);
    close(fd);
    fd = open("/etc/passwd", O_RDONLY);
    void *ro = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    say("a writable shared mapping of a read-only descriptor EACCES", ro == MAP_FAILED && errno == EACCES, errno);
    ro = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    say("a read-only shared mapping", ro != MAP_FAILED && !memcmp(ro, "root:", 5), errno);
    close(fd);
}

/* A large sparse file: its holes are mapped as touched, costing nothing before */
static void sparse(void)
{
    int fd = open("/tmp/sparse.map", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 256 << 20) < 0)
        return;
    char *m = mmap(NULL, 256 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED)
        m[200 << 20] = 'z';
    char c = 0;
    say("a shared mapping of a 256 MiB sparse file", m != MAP_FAILED && pread(fd, &c, 1, 200 << 20) == 1 && c == 'z', errno);
    if (m != MAP_FAILED)
        munmap(m, 256 << 20);
    close(fd);
    unlink("/tmp/sparse.map");
}

static void anon_shared(void)
{
    volatile int *w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) {
        say("anonymous shared memory", 0, errno);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        w[10] = 42;
        _exit(0);
    }
    say("anonymous shared memory across fork", child_status(pid) == 0 && w[10] == 42, w[10]);
    munmap((void *)w, PG);
}

static void posix_shm(void)
{
    struct stat st = {0};
    say("/dev/shm is a directory anyone may write", stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 01777) == 01777,
        st.st_mode);
    int fd = shm_open("/lel-test", O_RDWR | O_CREAT, 0600);
    char *m = fd >= 0 && ftruncate(fd, PG) == 0 ? mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (m != MAP_FAILED)
        strcpy(m, "shm");
    int other = shm_open("/lel-test", O_RDONLY, 0);
    char buf[4] = {0};
    say("shm_open", m != MAP_FAILED && read(other, buf, 3) == 3 && !strcmp(buf, "shm") && shm_unlink("/lel-test") == 0, errno);
    close(other);
    close(fd);
    sem_t *s = sem_open("/lel-sem", O_CREAT | O_EXCL, 0600, 0);
    say("sem_open", s != SEM_FAILED, errno);
    if (s == SEM_FAILED)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        sem_post(s);
        _exit(0);
    }
    long t0 = mono_ms();
    int r = sem_wait(s), waited = mono_ms() - t0 >= 50;
    say("a named semaphore posted by a child", r == 0 && waited && child_status(pid) == 0, r);
    sem_close(s);
    say("sem_unlink", sem_unlink("/lel-sem") == 0, errno);
}

static void memfds(void)
{
    int fd = memfd_create("lel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    char link[64] = {0}, path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    say("memfd_create", fd >= 0 && n > 0 && !strcmp(link, "/memfd:lel (deleted)") && (fcntl(fd, F_GETFD) & FD_CLOEXEC), fd);
    char *m = write(fd, "memfd data", 10) == 10 ? mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    say("a memfd mapped shared", m != MAP_FAILED && !memcmp(m, "memfd data", 10), errno);
    int seals = fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
    say("memfd seals", seals == 0 && fcntl(fd, F_GET_SEALS) == F_SEAL_SHRINK, fcntl(fd, F_GET_SEALS));
    if (m != MAP_FAILED)
        munmap(m, PG);
    close(fd);
}

void shm_checks(void)
{
    file_shared();
    sparse();
    anon_shared();
    posix_shm();
    memfds();
}
