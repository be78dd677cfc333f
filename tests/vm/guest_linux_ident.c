/* Identity: user and group ids (root becoming another user, and what it may then do), the
 * file-system ids and supplementary groups, who owns new files and who may chown them, the
 * capabilities root has, protection keys (none), prctl (the parent-death signal, flags). */
#include "guest_linux.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_ok(pid_t pid)
{
    int st = -1;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void ids(void)
{
    uid_t r, e, s;
    say("root's ids", getuid() == 0 && geteuid() == 0 && getgid() == 0 && getegid() == 0, (long)getuid());
    say("getresuid", getresuid(&r, &e, &s) == 0 && r == 0 && e == 0 && s == 0, (long)r);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = setresgid(100, 100, 100) == 0 && getgid() == 100 && getegid() == 100;
        ok = ok && setresuid(1000, 1000, 1000) == 0 && getuid() == 1000 && geteuid() == 1000;
        ok = ok && setuid(0) == -1 && errno == EPERM && setresuid(-1, 1000, -1) == 0;
        _exit(ok ? 0 : 1);
    }
    say("setresuid to a user, who cannot go back", child_ok(pid), 0);
    pid = fork();
    if (pid == 0) {
        int ok = setreuid(-1, 1000) == 0 && getuid() == 0 && geteuid() == 1000;
        ok = ok && setreuid(-1, 0) == 0 && geteuid() == 0 && setregid(5, 5) == 0 && getgid() == 5;
        ok = ok && setuid(2000) == 0 && getuid() == 2000 && geteuid() == 2000 && getresuid(&r, &e, &s) == 0 && s == 2000;
        _exit(ok ? 0 : 1);
    }
    say("setreuid, setregid, setuid", child_ok(pid), 0);
    say("setgroups as root", setgroups(0, NULL) == 0, errno);
}

static void *idle_thread(void *arg)
{
    for (;;) /* a signal's handler (SIGSETXID's) ends a pause */
        pause();
    return arg;
}

/* glibc changes ids in every thread (each gets SIGSETXID by tgkill and checks it came so) */
static void ids_with_threads(void)
{
    pthread_t t;
    pthread_create(&t, NULL, idle_thread, NULL);
    usleep(20000);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t u;
        pthread_create(&u, NULL, idle_thread, NULL);
        usleep(20000);
        _exit(setgid(7) == 0 && setuid(1000) == 0 && getuid() == 1000 ? 0 : 1);
    }
    say("setgroups with another thread", setgroups(0, NULL) == 0, errno);
    say("setuid in a process with threads", child_ok(pid), 0);
    pthread_cancel(t); /* SIGCANCEL by tgkill: glibc checks its si_code too */
    void *r = NULL;
    say("pthread_cancel", pthread_join(t, &r) == 0 && r == PTHREAD_CANCELED, 0);
}

struct cap_hdr {
    unsigned version;
    int pid;
};

static void caps(void)
{
    struct cap_hdr h = {0x20080522, 0};
    unsigned d[6] = {0};
    long r = syscall(SYS_capget, &h, d);
    say("capget: root has every capability", r == 0 && d[0] == ~0u && d[1] == ~0u && (d[3] & 0x1ff) == 0x1ff, r);
    h.version = 1;
    r = syscall(SYS_capget, &h, d);
    say("capget of an unknown version EINVAL, told the one there is", r == -1 && errno == EINVAL && h.version == 0x20080522,
        (long)h.version);
    h.version = 0x20080522;
    say("capset", syscall(SYS_capset, &h, d) == 0, errno);
    say("PR_CAPBSET_READ", prctl(PR_CAPBSET_READ, 0) == 1, errno);
}

static void keys_and_prctl(void)
{
    long k = syscall(SYS_pkey_alloc, 0, 0);
    say("pkey_alloc ENOSPC", k == -1 && errno == ENOSPC, k);
    void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("pkey_mprotect with key -1", syscall(SYS_pkey_mprotect, m, 4096, PROT_READ | PROT_WRITE, -1) == 0, errno);
    munmap(m, 4096);
    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 ? 0 : 1);
    say("PR_SET_NO_NEW_PRIVS", nnp == 0 && child_ok(pid), nnp);
    /* PR_SET_PDEATHSIG: a grandchild dies of it when its parent (the child) ends */
    int p[2];
    if (pipe(p) < 0)
        return;
    pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (write(p[1], "r", 1) != 1)
                _exit(1);
            pause();
            _exit(0);
        }
        char c;
        close(p[1]);
        _exit(read(p[0], &c, 1) == 1 ? 0 : 1);
    }
    close(p[1]);
    long t0 = mono_ms();
    char c;
    int ended = child_ok(pid) && read(p[0], &c, 1) == 0; /* EOF: the grandchild went too */
    say("PR_SET_PDEATHSIG", ended && mono_ms() - t0 < 3000, 0);
    close(p[0]);
}

static int owned(const char *path, uid_t uid, gid_t gid)
{
    struct stat st;
    return lstat(path, &st) == 0 && st.st_uid == uid && st.st_gid == gid;
}

/* setfsuid returns the old id and sets it only when allowed; new files are the fs ids' */
static void fs_ids(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        int ok = setfsuid(1234) == 0 && setfsuid(-1) == 1234 && setfsgid(4321) == 0;
        unlink("/tmp/id.fs");
        int fd = open("/tmp/id.fs", O_CREAT | O_WRONLY, 0644);
        ok = ok && fd >= 0 && owned("/tmp/id.fs", 1234, 4321);
        close(fd);
        unlink("/tmp/id.fs");
        ok = ok && setfsuid(0) == 1234 && setfsgid(0) == 4321;
        ok = ok && setuid(1000) == 0 && setfsuid(-1) == 1000; /* it follows the effective id */
        ok = ok && setfsuid(0) == 1000 && setfsuid(-1) == 1000; /* not root's any more */
        _exit(ok ? 0 : 1);
    }
    say("setfsuid, setfsgid: the old id back, new files theirs", child_ok(pid), 0);
    pid = fork();
    if (pid == 0) {
        int ok = setresgid(100, 100, 100) == 0 && setresuid(1000, 1000, 1000) == 0;
        rmdir("/tmp/id.d");
        ok = ok && mkdir("/tmp/id.d", 0755) == 0 && owned("/tmp/id.d", 1000, 100);
        ok = ok && symlink("x", "/tmp/id.d/l") == 0 && owned("/tmp/id.d/l", 1000, 100);
        _exit(ok ? 0 : 1);
    }
    say("a user's new directories and links are its own", child_ok(pid), 0);
    unlink("/tmp/id.d/l");
    rmdir("/tmp/id.d");
}

static void chowns(void)
{
    int fd = open("/tmp/id.own", O_CREAT | O_WRONLY | O_TRUNC, 04755);
    struct stat st;
    fchmod(fd, 04755);
    say("root's new file is root's", owned("/tmp/id.own", 0, 0), 0);
    say("root chowns to anyone", chown("/tmp/id.own", 2000, 300) == 0 && owned("/tmp/id.own", 2000, 300), errno);
    say("chown clears set-user-ID", stat("/tmp/id.own", &st) == 0 && !(st.st_mode & S_ISUID) && (st.st_mode & 0777) == 0755, (long)st.st_mode);
    say("fchown", fchown(fd, 1000, 100) == 0 && owned("/tmp/id.own", 1000, 100), errno);
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        gid_t g[1] = {7};
        int ok = setgroups(1, g) == 0 && setresgid(100, 100, 100) == 0 && setresuid(1000, 1000, 1000) == 0;
        ok = ok && chown("/tmp/id.own", 0, -1) == -1 && errno == EPERM;      /* give it away: no */
        ok = ok && chown("/tmp/id.own", -1, 7) == 0 && owned("/tmp/id.own", 1000, 7); /* to a group it is in */
        ok = ok && chown("/tmp/id.own", 1000, 100) == 0;                      /* its own ids */
        ok = ok && chown("/tmp/id.own", -1, 5) == -1 && errno == EPERM;      /* a group it is not in */
        ok = ok && lchown("/tmp", -1, 100) == -1 && errno == EPERM;          /* root's directory */
        _exit(ok ? 0 : 1);
    }
    say("a user chowns only its own files, to its own groups", child_ok(pid), 0);
    unlink("/tmp/id.own");
    /* a set-group-ID directory gives its group to what is made in it */
    rmdir("/tmp/id.sg/sub");
    unlink("/tmp/id.sg/f");
    rmdir("/tmp/id.sg");
    int ok = mkdir("/tmp/id.sg", 0775) == 0 && chown("/tmp/id.sg", 0, 77) == 0 && chmod("/tmp/id.sg", 02775) == 0;
    fd = open("/tmp/id.sg/f", O_CREAT | O_WRONLY, 0644);
    ok = ok && fd >= 0 && owned("/tmp/id.sg/f", 0, 77) && mkdir("/tmp/id.sg/sub", 0755) == 0 && stat("/tmp/id.sg/sub", &st) == 0 &&
         st.st_gid == 77 && (st.st_mode & S_ISGID);
    close(fd);
    say("a set-group-ID directory's group and bit are inherited", ok, errno);
    rmdir("/tmp/id.sg/sub");
    unlink("/tmp/id.sg/f");
    rmdir("/tmp/id.sg");
}

static void groups(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        gid_t set[2] = {5, 6}, got[4] = {0};
        int ok = setgroups(2, set) == 0 && getgroups(0, NULL) == 2 && getgroups(4, got) == 2 && got[0] == 5 && got[1] == 6;
        ok = ok && getgroups(1, got) == -1 && errno == EINVAL;
        char line[256] = "";
        FILE *f = fopen("/proc/self/status", "r");
        int shown = 0;
        while (f && fgets(line, sizeof(line), f))
            shown |= !strcmp(line, "Groups:\t5 6 \n");
        if (f)
            fclose(f);
        ok = ok && shown && setuid(1000) == 0 && setgroups(0, NULL) == -1 && errno == EPERM && getgroups(0, NULL) == 2;
        _exit(ok ? 0 : 1);
    }
    say("setgroups and getgroups keep the list; a user cannot change it", child_ok(pid), 0);
}

void ident_checks(void)
{
    ids();
    ids_with_threads();
    fs_ids();
    chowns();
    groups();
    caps();
    keys_and_prctl();
}
