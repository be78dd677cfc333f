/* Identity: user and group ids (root becoming another user, and what it may then do), the
 * capabilities root has, protection keys (none), prctl (the parent-death signal, flags). */
#include "guest_linux.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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

void ident_checks(void)
{
    ids();
    ids_with_threads();
    caps();
    keys_and_prctl();
}
