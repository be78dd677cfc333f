/* Extended attributes (python's os.setxattr/getxattr, E2B's file metadata as user.e2b.*, rsync
 * -X, cp --preserve=xattr): the user.* namespace on tmpfs files and directories with Linux's
 * errors, the flags, the limits, the three forms (path, l-, f-) and what renames, links and
 * removal do to them. Run in a fresh directory under /dev/shm, tmpfs on Linux as in the guest;
 * on a host whose /dev/shm is no tmpfs the section says so and checks nothing. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TMPFS_MAGIC_ 0x01021994

/* errno of a call that should fail (0 when it did not). */
#define ERR(call) ((call) < 0 ? errno : 0)

static void basic_checks(const char *f)
{
    char buf[64];
    say("xattr_set", setxattr(f, "user.a", "hello", 5, 0) == 0, errno);
    long n = getxattr(f, "user.a", buf, sizeof(buf));
    say("xattr_get", n == 5 && memcmp(buf, "hello", 5) == 0, n);
    say("xattr_get_size", getxattr(f, "user.a", 0, 0) == 5, errno);
    say("xattr_get_erange", ERR(getxattr(f, "user.a", buf, 2)) == ERANGE, errno);
    say("xattr_get_missing", ERR(getxattr(f, "user.none", buf, sizeof(buf))) == ENODATA, errno);
    say("xattr_create_exists", ERR(setxattr(f, "user.a", "x", 1, XATTR_CREATE)) == EEXIST, errno);
    say("xattr_replace_missing", ERR(setxattr(f, "user.none", "x", 1, XATTR_REPLACE)) == ENODATA, errno);
    say("xattr_bad_flags", ERR(setxattr(f, "user.a", "x", 1, 4)) == EINVAL, errno);
    say("xattr_replace", setxattr(f, "user.a", "bye", 3, XATTR_REPLACE) == 0, errno);
    n = getxattr(f, "user.a", buf, sizeof(buf));
    say("xattr_replaced", n == 3 && memcmp(buf, "bye", 3) == 0, n);
    say("xattr_create", setxattr(f, "user.b", "", 0, XATTR_CREATE) == 0, errno);
    say("xattr_empty_value", getxattr(f, "user.b", buf, sizeof(buf)) == 0, errno);
    char list[256];
    n = listxattr(f, list, sizeof(list));
    int a = 0, b = 0;
    for (long i = 0; i < n; i += (long)strlen(list + i) + 1) {
        a += !strcmp(list + i, "user.a");
        b += !strcmp(list + i, "user.b");
    }
    say("xattr_list", n == 14 && a == 1 && b == 1, n);
    say("xattr_list_size", listxattr(f, 0, 0) == 14, errno);
    say("xattr_list_erange", ERR(listxattr(f, list, 10)) == ERANGE, errno);
    say("xattr_remove", removexattr(f, "user.b") == 0 && ERR(getxattr(f, "user.b", buf, 8)) == ENODATA, errno);
    say("xattr_remove_missing", ERR(removexattr(f, "user.b")) == ENODATA, errno);
    say("xattr_list_after", listxattr(f, list, sizeof(list)) == 7 && !strcmp(list, "user.a"), errno);
}

static void limit_checks(const char *f)
{
    size_t big = 65536;
    char *v = malloc(big + 1), *back = malloc(big + 1);
    for (size_t i = 0; i <= big; i++)
        v[i] = (char)(i * 7 + 3);
    say("xattr_64k", setxattr(f, "user.big", v, big, 0) == 0, errno);
    memset(back, 0, big);
    long n = getxattr(f, "user.big", back, big);
    say("xattr_64k_back", n == (long)big && memcmp(v, back, big) == 0, n);
    say("xattr_too_big", ERR(setxattr(f, "user.big2", v, big + 1, 0)) == E2BIG, errno);
    say("xattr_64k_remove", removexattr(f, "user.big") == 0, errno);
    char name[300] = "user.";
    memset(name + 5, 'n', 250);
    name[255] = 0;
    say("xattr_name_255", setxattr(f, name, "1", 1, 0) == 0 && removexattr(f, name) == 0, errno);
    name[255] = 'n';
    name[256] = 0;
    say("xattr_name_256", ERR(setxattr(f, name, "1", 1, 0)) == ERANGE, errno);
    say("xattr_name_empty", ERR(setxattr(f, "", "1", 1, 0)) == ERANGE, errno);
    say("xattr_bare_prefix", ERR(setxattr(f, "user.", "1", 1, 0)) == EINVAL, errno);
    say("xattr_no_namespace", ERR(setxattr(f, "foo.bar", "1", 1, 0)) == EOPNOTSUPP &&
                                  ERR(getxattr(f, "foo.bar", v, 8)) == EOPNOTSUPP, errno);
    /* what programs probe: SELinux labels and ACLs, absent on a tmpfs without them */
    say("xattr_security_probe", ERR(getxattr(f, "security.selinux", v, 64)) == ENODATA, errno);
    say("xattr_acl_probe", ERR(getxattr(f, "system.posix_acl_access", v, 64)) == ENODATA, errno);
    say("xattr_acl_set", ERR(setxattr(f, "system.foo", "1", 1, 0)) == EOPNOTSUPP, errno);
    say("xattr_proc", ERR(getxattr("/proc/self/status", "user.a", v, 8)) == EOPNOTSUPP &&
                          listxattr("/proc/self/status", v, 64) == 0, errno);
    free(v);
    free(back);
}

/* user.* only on regular files and directories; the l- forms act on a symlink itself */
static void kind_checks(const char *dir, const char *f)
{
    char link[256], fifo[256], sub[256], buf[16];
    snprintf(link, sizeof(link), "%s/link", dir);
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    symlink(f, link);
    mkfifo(fifo, 0644);
    mkdir(sub, 0755);
    say("xattr_symlink_lset", ERR(lsetxattr(link, "user.a", "1", 1, 0)) == EPERM, errno);
    say("xattr_symlink_lget", ERR(lgetxattr(link, "user.a", buf, sizeof(buf))) == ENODATA, errno);
    say("xattr_symlink_llist", llistxattr(link, buf, sizeof(buf)) == 0, errno);
    say("xattr_symlink_lremove", ERR(lremovexattr(link, "user.a")) == EPERM, errno);
    long n = getxattr(link, "user.a", buf, sizeof(buf)); /* followed: the file's */
    say("xattr_symlink_follow", n == 3 && memcmp(buf, "bye", 3) == 0, n);
    say("xattr_fifo", ERR(setxattr(fifo, "user.a", "1", 1, 0)) == EPERM && ERR(getxattr(fifo, "user.a", buf, 8)) == ENODATA,
        errno);
    say("xattr_dir", setxattr(sub, "user.d", "dd", 2, 0) == 0 && getxattr(sub, "user.d", buf, sizeof(buf)) == 2, errno);
    say("xattr_trusted", setxattr(f, "trusted.t", "t", 1, 0) == 0 && removexattr(f, "trusted.t") == 0, errno);
    int p[2];
    if (pipe(p) == 0) {
        say("xattr_pipe", ERR(fsetxattr(p[0], "user.a", "1", 1, 0)) == EPERM && ERR(fgetxattr(p[0], "user.a", buf, 8)) == ENODATA &&
                              flistxattr(p[0], buf, sizeof(buf)) == 0, errno);
        close(p[0]);
        close(p[1]);
    }
    say("xattr_missing_path", ERR(getxattr("/nonexistent/x", "user.a", buf, 8)) == ENOENT, errno);
    say("xattr_bad_fd", ERR(fgetxattr(-1, "user.a", buf, 8)) == EBADF, errno);
    unlink(link);
    unlink(fifo);
    rmdir(sub);
}

/* the f- forms; attributes belong to the inode: kept by a rename, shared by a hard link, alive
 * with an open descriptor after the last name goes; a change is IN_ATTRIB */
static void inode_checks(const char *dir)
{
    char f[256], g[256], h[256], buf[16];
    snprintf(f, sizeof(f), "%s/fd", dir);
    snprintf(g, sizeof(g), "%s/moved", dir);
    snprintf(h, sizeof(h), "%s/linked", dir);
    int fd = open(f, O_CREAT | O_RDWR, 0644);
    say("xattr_fset", fsetxattr(fd, "user.f", "ff", 2, 0) == 0, errno);
    say("xattr_fget", fgetxattr(fd, "user.f", buf, sizeof(buf)) == 2 && !memcmp(buf, "ff", 2), errno);
    say("xattr_flist", flistxattr(fd, buf, sizeof(buf)) == 7 && !strcmp(buf, "user.f"), errno);
    say("xattr_write_keeps", write(fd, "data", 4) == 4 && ftruncate(fd, 0) == 0 && fgetxattr(fd, "user.f", buf, 16) == 2, errno);
    rename(f, g);
    say("xattr_rename", getxattr(g, "user.f", buf, sizeof(buf)) == 2, errno);
    link(g, h);
    setxattr(h, "user.l", "l", 1, 0);
    say("xattr_link", getxattr(g, "user.l", buf, sizeof(buf)) == 1, errno);
    struct stat before, after;
    fstat(fd, &before);
    int in = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(in, h, IN_ATTRIB);
    sleep(1); /* ctime has a second's resolution in the guest */
    fsetxattr(fd, "user.t", "t", 1, 0);
    fstat(fd, &after);
    char ev[256] __attribute__((aligned(8)));
    long n = read(in, ev, sizeof(ev));
    say("xattr_inotify", n >= (long)sizeof(struct inotify_event) && (((struct inotify_event *)ev)->mask & IN_ATTRIB), n);
    say("xattr_ctime", after.st_ctime > before.st_ctime && after.st_mtime == before.st_mtime, (long)(after.st_ctime - before.st_ctime));
    close(in);
    unlink(g);
    unlink(h);
    say("xattr_unlinked_fd", fgetxattr(fd, "user.f", buf, sizeof(buf)) == 2 && fremovexattr(fd, "user.f") == 0 &&
                                 ERR(fremovexattr(fd, "user.f")) == ENODATA, errno);
    close(fd);
    /* a new file of a removed one's name starts with none */
    fd = open(f, O_CREAT | O_RDWR, 0644);
    say("xattr_new_file", flistxattr(fd, buf, sizeof(buf)) == 0, errno);
    close(fd);
    unlink(f);
}

void xattr_checks(void)
{
    char dir[128], f[256];
    struct statfs sf;
    snprintf(dir, sizeof(dir), "/dev/shm/xattr-test-%d", (int)getpid());
    if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC_ || mkdir(dir, 0755) < 0) {
        printf("xattr skipped: /dev/shm is no tmpfs here\n");
        return;
    }
    snprintf(f, sizeof(f), "%s/file", dir);
    close(open(f, O_CREAT | O_WRONLY, 0644));
    basic_checks(f);
    limit_checks(f);
    kind_checks(dir, f);
    inode_checks(dir);
    unlink(f);
    say("xattr_cleanup", rmdir(dir) == 0, errno);
}
