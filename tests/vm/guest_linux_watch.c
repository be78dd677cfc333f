/* inotify (node's fs.watch, python's watchers): events for what is created, written, changed,
 * moved and removed in a watched directory, and for a watched file itself. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* What is queued, as "KIND:name ..." (a moved pair's cookies checked equal). */
static void events(int fd, char *out, size_t cap)
{
    char buf[4096] __attribute__((aligned(8)));
    size_t at = 0;
    uint32_t cookie = 0;
    out[0] = 0;
    long n = read(fd, buf, sizeof(buf));
    for (long off = 0; off < n;) {
        const struct inotify_event *e = (const void *)(buf + off);
        static const struct {
            uint32_t m;
            const char *s;
        } kinds[] = {{IN_CREATE, "CREATE"}, {IN_MODIFY, "MODIFY"}, {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_ATTRIB, "ATTRIB"},
                     {IN_MOVED_FROM, "FROM"}, {IN_MOVED_TO, "TO"}, {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"},
                     {IN_IGNORED, "IGNORED"}, {IN_OPEN, "OPEN"}};
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (e->mask & kinds[k].m)
                at += (size_t)snprintf(out + at, cap - at, "%s%s%s%s", at ? " " : "", kinds[k].s, e->mask & IN_ISDIR ? "/" : "",
                                       e->len ? ":" : "");
        if (e->len)
            at += (size_t)snprintf(out + at, cap - at, "%s", e->name);
        if ((e->mask & IN_MOVED_FROM) || (e->mask & IN_MOVED_TO)) {
            if (cookie && cookie != e->cookie)
                at += (size_t)snprintf(out + at, cap - at, "(cookie!)");
            cookie = e->cookie;
        }
        off += (long)sizeof(*e) + e->len;
    }
}

static void dir_watch(void)
{
    char got[512];
    mkdir("/tmp/w", 0755);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int wd = inotify_add_watch(fd, "/tmp/w", IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE);
    int f = open("/tmp/w/a", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    events(fd, got, sizeof(got)); /* a file just made is not truncated: no MODIFY yet */
    say("inotify: O_TRUNC of a file it creates is no change", !strcmp(got, "CREATE:a"), 0);
    if (strcmp(got, "CREATE:a"))
        printf("  got: %s\n", got);
    int w1 = write(f, "x", 1) == 1, w2 = write(f, "y", 1) == 1; /* two alike: one event */
    close(f);
    events(fd, got, sizeof(got));
    say("inotify: write, close in a watched directory", fd >= 0 && wd > 0 && w1 && w2 && !strcmp(got, "MODIFY:a CLOSE_WRITE:a"),
        wd);
    if (strcmp(got, "MODIFY:a CLOSE_WRITE:a"))
        printf("  got: %s\n", got);
    chmod("/tmp/w/a", 0600);
    rename("/tmp/w/a", "/tmp/w/b");
    unlink("/tmp/w/b");
    mkdir("/tmp/w/d", 0755);
    rmdir("/tmp/w/d");
    events(fd, got, sizeof(got));
    const char *want = "ATTRIB:a FROM:a TO:b DELETE:b CREATE/:d DELETE/:d";
    say("inotify: chmod, rename, unlink, mkdir, rmdir", !strcmp(got, want), 0);
    if (strcmp(got, want))
        printf("  got: %s\n", got);
    char tiny[8];
    close(open("/tmp/w/c", O_CREAT | O_WRONLY, 0644));
    int queued = 0;
    ioctl(fd, FIONREAD, &queued);
    say("inotify: FIONREAD; a buffer too small EINVAL", queued >= 32 && read(fd, tiny, sizeof(tiny)) == -1 && errno == EINVAL, queued);
    events(fd, got, sizeof(got));
    say("inotify_rm_watch: IN_IGNORED", inotify_rm_watch(fd, wd) == 0 && (events(fd, got, sizeof(got)), !strcmp(got, "IGNORED")), 0);
    unlink("/tmp/w/c");
    close(fd);
}

static void file_watch(void)
{
    char got[256];
    int fd = inotify_init1(0);
    int f = open("/tmp/w/f", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int wd = inotify_add_watch(fd, "/tmp/w/f", IN_MODIFY | IN_DELETE_SELF);
    int ok = write(f, "z", 1) == 1;
    close(f);
    unlink("/tmp/w/f");
    events(fd, got, sizeof(got));
    say("inotify on a file: modified, removed", wd > 0 && ok && !strcmp(got, "MODIFY DELETE_SELF IGNORED"), wd);
    if (strcmp(got, "MODIFY DELETE_SELF IGNORED"))
        printf("  got: %s\n", got);
    inotify_add_watch(fd, "/tmp/w", IN_CREATE);
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        close(open("/tmp/w/late", O_CREAT | O_WRONLY, 0644));
        _exit(0);
    }
    struct pollfd p = {fd, POLLIN, 0};
    long t0 = mono_ms();
    int r = poll(&p, 1, 3000);
    events(fd, got, sizeof(got));
    say("inotify: poll woken by another process's create", r == 1 && mono_ms() - t0 < 2000 && !strcmp(got, "CREATE:late"), r);
    waitpid(pid, NULL, 0);
    say("inotify_add_watch of nothing ENOENT", inotify_add_watch(fd, "/tmp/w/none", IN_CREATE) == -1 && errno == ENOENT, errno);
    unlink("/tmp/w/late");
    close(fd);
    rmdir("/tmp/w");
}

void watch_checks(void)
{
    dir_watch();
    file_watch();
}
