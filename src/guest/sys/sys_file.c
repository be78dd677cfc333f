/* Syscalls on paths and file metadata: open, access, readlink, directories and their entries,
 * links, renames, modes, times, truncation, extended attributes; stat and statfs are
 * sys_stat.c's. */
#include "sys_path.h"
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/flock.h"
#include "../fs/fs.h"
#include "../fs/inotify.h"
#include "../fs/pipe.h"
#include "../fs/pty.h"
#include "../fs/procfs.h"
#include "../fs/sysfs.h"
#include "../fs/xattr.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../proc/proc.h"

struct inode *base_dir(int64_t dirfd64, long *err)
{
    struct proc *cur = proc_cur();
    int dirfd = (int)dirfd64; /* an int in the ABI: the upper half of the register is not part of it */
    if (dirfd == AT_FDCWD)
        return cur->files->cwd;
    struct file *f = dirfd < 0 ? 0 : fd_get((uint64_t)dirfd);
    if (!f || f->type != F_INODE) {
        *err = -EBADF;
        return 0;
    }
    if ((f->ino->mode & S_IFMT) != S_IFDIR) {
        *err = -ENOTDIR;
        return 0;
    }
    return f->ino;
}

/* A user path (into `path`, FS_PATH_MAX bytes) and the directory it is relative to (dirfd, or
 * the working directory for AT_FDCWD). */
long path_at(int64_t dirfd, uint64_t upath, char *path, struct inode **base)
{
    long err = 0, n = copy_str(upath, path, FS_PATH_MAX);
    if (n < 0)
        return n;
    *base = base_dir(dirfd, &err);
    return *base ? 0 : err;
}

static long sys_openat(int64_t dirfd, uint64_t upath, uint64_t flags, uint64_t mode)
{
    char path[FS_PATH_MAX];
    struct inode *base, *ino;
    long err = path_at(dirfd, upath, path, &base);
    if (err < 0)
        return err;
    int r = fs_lookup(base, path, !(flags & O_NOFOLLOW), &ino);
    if (r == -ENOENT && (flags & O_CREAT)) {
        struct inode *dir;
        const char *name;
        uint64_t nlen;
        size_t plen = kstrlen(path);
        if (plen && path[plen - 1] == '/')
            return -EISDIR; /* a name with a trailing slash is a directory's, which O_CREAT does not make */
        /* through a symlink to nowhere, what it names is made (O_EXCL: it is refused, as on Linux) */
        if ((r = (flags & O_EXCL ? fs_parent : fs_parent_follow)(base, path, &dir, &name, &nlen)) < 0)
            return r;
        if ((r = fs_create(dir, name, nlen, S_IFREG | ((uint32_t)mode & 07777 & ~proc_cur()->files->umask), &ino)) < 0)
            return r;
        flags &= ~(uint64_t)O_TRUNC; /* as Linux: a file just made is not truncated (no IN_MODIFY before its first write) */
    } else if (r < 0) {
        return r;
    } else if ((flags & O_CREAT) && (flags & O_EXCL)) {
        return -EEXIST;
    } else if (ino->gen == GEN_FD_LINK) { /* /proc/<pid>/fd/N, /dev/stdout...: that descriptor's file */
        struct file *of = fd_link_file(ino);
        if (flags & O_NOFOLLOW)
            return -E_LOOP;
        if (!of)
            return -ENOENT;
        if (of->type == F_SOCK)
            return -ENXIO_;
        if (of->type != F_INODE) { /* a pipe, a command's output, an eventfd: shared, as dup does */
            if ((r = fd_install(of, 0, (flags & O_CLOEXEC_) != 0)) >= 0)
                of->refs++;
            return r;
        }
        ino = of->ino; /* a file is opened anew, with these flags and its own offset */
    }
    int is_dir = (ino->mode & S_IFMT) == S_IFDIR;
    if ((flags & O_DIRECTORY) && !is_dir)
        return -ENOTDIR;
    if ((ino->mode & S_IFMT) == S_IFIFO)
        return fifo_open(ino, flags);
    if ((ino->mode & S_IFMT) == S_IFCHR && tty_is_dev(ino->rdev))
        return tty_open(ino, flags); /* /dev/ptmx, /dev/pts/N, /dev/tty */
    if ((ino->mode & S_IFMT) == S_IFSOCK)
        return -ENXIO_; /* a socket is reached with connect, not open */
    if (is_dir && (flags & O_ACCMODE) != 0)
        return -EISDIR;
    if ((flags & O_TRUNC) && (flags & O_ACCMODE) && (ino->mode & S_IFMT) == S_IFREG && !ino->gen)
        fs_truncate(ino, 0);
    int gen = ino->gen && !is_dir;
    struct inode *fresh = gen ? procfs_render(ino) : 0; /* a /proc file: its contents as of now */
    if (gen && !fresh)
        return -ENOMEM;
    struct file *f = file_new(F_INODE, fresh ? fresh : ino, (int)flags);
    if (fresh)
        fs_anon_free(fresh); /* the file holds it now */
    if (!f)
        return -ENOMEM;
    r = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
    if (r < 0)
        file_put(f);
    else if (!gen)
        fs_notify(0, 0, 0, ino, IN_OPEN_, 0);
    return r;
}

static long sys_getdents64(uint64_t fd, uint64_t buf, uint64_t n)
{
    struct file *f = fd_get(fd);
    if (!f || f->type != F_INODE)
        return -EBADF;
    uint64_t used = 0;
    if (f->off == 0 && f->ino->gen)
        fs_gen_dir_sync(f->ino); /* /proc/<pid>/fd as of the start of a listing */
    for (;;) {
        const char *name;
        struct inode *child;
        int r = fs_readdir(f->ino, f->off, &name, &child);
        if (r < 0)
            return r;
        if (r == 1)
            break;
        uint64_t nl = kstrlen(name), reclen = (19 + nl + 1 + 7) & ~7ULL;
        if (used + reclen > n)
            return used ? (long)used : -EINVAL;
        uint8_t rec[FS_NAME_MAX + 32];
        kmemset(rec, 0, reclen);
        *(uint64_t *)rec = child->ino;
        *(int64_t *)(rec + 8) = (int64_t)f->off + 1;
        *(uint16_t *)(rec + 16) = (uint16_t)reclen;
        uint32_t t = child->mode & S_IFMT;
        rec[18] = t == S_IFDIR ? 4 : t == S_IFLNK ? 10 : 8;
        kmemcpy(rec + 19, name, nl);
        if (copy_user(buf + used, rec, reclen, 1) < 0)
            return -EFAULT;
        used += reclen;
        f->off++;
    }
    return (long)used;
}

/* ---- extended attributes (fs/xattr.c keeps them; the namespaces are Linux's rules on tmpfs) ---- */

enum { XA_GET, XA_SET, XA_REMOVE };

/* The node an attribute call is about: `upath` (followed or not), or descriptor `fd` when it
 * is 0. *out NULL with 0: a descriptor of no node (a pipe, a socket), which Linux treats as a
 * special file. */
static long xattr_node(uint64_t upath, int64_t fd, int follow, struct inode **out)
{
    *out = 0;
    if (!upath) {
        struct file *f = fd_get((uint64_t)fd);
        if (!f)
            return -EBADF;
        *out = f->ino;
        return 0;
    }
    char path[FS_PATH_MAX];
    long n = copy_str(upath, path, sizeof(path));
    return n < 0 ? n : fs_lookup(proc_cur()->files->cwd, path, follow, out);
}

/* A user's attribute name into `name` (XATTR_NAME_MAX + 1 bytes): its length, or ERANGE for an
 * empty or too long one, as Linux says. */
static long xattr_name_in(uint64_t uname, char *name)
{
    long n = copy_str(uname, name, XATTR_NAME_MAX + 1);
    return n == -36 || n == 0 ? -ERANGE : n;
}

static int has_prefix(const char *name, long n, const char *prefix)
{
    long pl = (long)kstrlen(prefix);
    return n >= pl && kmemcmp(name, prefix, (size_t)pl) == 0;
}

/* Whether operation `op` on attribute `name` of `node` is one the file system keeps (0), or the
 * error Linux's tmpfs gives: EOPNOTSUPP for a namespace it does not know (and for /proc's
 * nodes), EINVAL for a bare prefix; user.* only on regular files and directories (others: EPERM
 * to change, ENODATA to read); system.* (ACLs, which we do not keep): none to read, none to
 * set. Everyone is root here, so trusted.* and security.* are kept as root's. */
static long xattr_allowed(const char *name, long n, const struct inode *node, int op)
{
    static const char *const kept[] = {"user.", "trusted.", "security.", "system."};
    int ns = -1;
    for (int k = 0; k < 4 && ns < 0; k++)
        ns = has_prefix(name, n, kept[k]) ? k : -1;
    if (ns < 0)
        return -EOPNOTSUPP_;
    if (n == (long)kstrlen(kept[ns]))
        return -EINVAL;
    if (node && node->gen)
        return -EOPNOTSUPP_; /* /proc's files, as procfs has no attributes */
    if (ns == 3) {
        int acl = (n == 23 && kmemcmp(name, "system.posix_acl_access", 23) == 0) ||
                  (n == 24 && kmemcmp(name, "system.posix_acl_default", 24) == 0);
        return acl && op != XA_SET ? -61 /* ENODATA */ : -EOPNOTSUPP_;
    }
    uint32_t t = node ? node->mode & S_IFMT : 0;
    if (ns == 0 && t != S_IFREG && t != S_IFDIR)
        return op == XA_GET ? -61 : -EPERM;
    if (!node)
        return op == XA_GET ? -61 : -EOPNOTSUPP_; /* a pipe's or socket's own: none kept */
    return 0;
}

/* An attribute changed: the node's ctime and its watchers' IN_ATTRIB, as on Linux. */
static void xattr_changed(struct inode *node)
{
    node->ctime = proc_now_ns() / 1000000000;
    fs_notify(0, 0, 0, node, IN_ATTRIB_, 0);
}

static long xattr_get(struct inode *node, const char *name, long n, uint64_t uval, uint64_t size)
{
    const struct xattr *x = xattr_find(node, name, (uint64_t)n);
    if (!x)
        return -61;
    uint64_t len = xattr_size(x), k = 0;
    if (size == 0)
        return (long)len;
    if (len > (size > XATTR_SIZE_MAX ? XATTR_SIZE_MAX : size))
        return -ERANGE;
    for (uint64_t off = 0; off < len; off += k) {
        const void *p = xattr_bytes(x, off, &k);
        if (copy_user(uval + off, (void *)p, k, 1) < 0)
            return -EFAULT;
    }
    return (long)len;
}

static long xattr_put(struct inode *node, const char *name, long n, uint64_t uval, uint64_t size, int flags)
{
    struct xattr *x = xattr_new(name, (uint64_t)n, size);
    if (!x)
        return size > XATTR_SMALL ? -ENOSPC_ : -ENOMEM;
    for (uint64_t off = 0, k = 0; off < size; off += k) {
        void *p = xattr_room(x, off, &k);
        if (copy_user(uval + off, p, k, 0) < 0) {
            xattr_free(x);
            return -EFAULT;
        }
    }
    long r = xattr_install(node, x, flags);
    if (r == 0)
        xattr_changed(node);
    return r;
}

/* getxattr, setxattr, removexattr and their l- and f- forms (path 0: fd). */
static long sys_xattr(int op, uint64_t upath, int64_t fd, int follow, uint64_t uname, uint64_t uval, uint64_t size,
                      uint64_t flags)
{
    char name[XATTR_NAME_MAX + 1];
    if (op == XA_SET && (flags & ~(uint64_t)(XATTR_CREATE | XATTR_REPLACE)))
        return -EINVAL;
    long n = xattr_name_in(uname, name);
    if (n < 0)
        return n;
    if (op == XA_SET && size > XATTR_SIZE_MAX)
        return -E2BIG_;
    struct inode *node;
    long r = xattr_node(upath, fd, follow, &node);
    if (r == 0)
        r = xattr_allowed(name, n, node, op);
    if (r < 0)
        return r;
    if (op == XA_GET)
        return xattr_get(node, name, n, uval, size);
    if (op == XA_SET)
        return xattr_put(node, name, n, uval, size, (int)flags);
    if ((r = xattr_remove(node, name, (uint64_t)n)) == 0)
        xattr_changed(node);
    return r;
}

/* listxattr and its forms: the names, each with its NUL. */
static long sys_listxattr(uint64_t upath, int64_t fd, int follow, uint64_t ubuf, uint64_t size)
{
    struct inode *node;
    long r = xattr_node(upath, fd, follow, &node);
    if (r < 0)
        return r;
    if (!node || node->gen)
        return 0;
    uint64_t total = 0, nl;
    for (const struct xattr *x = xattr_next(node, 0); x; x = xattr_next(node, x)) {
        xattr_name(x, &nl);
        total += nl + 1;
    }
    if (size == 0)
        return total > XATTR_LIST_MAX ? -E2BIG_ : (long)total;
    if (total > (size > XATTR_LIST_MAX ? XATTR_LIST_MAX : size))
        return total > XATTR_LIST_MAX ? -E2BIG_ : -ERANGE;
    uint64_t at = 0;
    for (const struct xattr *x = xattr_next(node, 0); x; x = xattr_next(node, x)) {
        const char *nm = xattr_name(x, &nl);
        char z = 0;
        if (copy_user(ubuf + at, (void *)nm, nl, 1) < 0 || copy_user(ubuf + at + nl, &z, 1, 1) < 0)
            return -EFAULT;
        at += nl + 1;
    }
    return (long)total;
}

static long sys_access(int64_t dirfd, uint64_t upath)
{
    char path[FS_PATH_MAX];
    struct inode *base, *ino;
    long err = path_at(dirfd, upath, path, &base);
    if (err < 0)
        return err;
    return fs_lookup(base, path, 1, &ino); /* everyone is root: existence is access */
}

/* faccessat2: faccessat with its flags (AT_EACCESS is the same here, AT_SYMLINK_NOFOLLOW, and
 * AT_EMPTY_PATH: the descriptor itself) */
static long sys_faccessat2(int64_t dirfd, uint64_t upath, uint64_t mode, uint64_t flags)
{
    char path[FS_PATH_MAX];
    struct inode *base, *ino;
    if ((flags & ~(uint64_t)(0x200 | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) || (mode & ~7ULL))
        return -EINVAL;
    char c = 1;
    if ((flags & AT_EMPTY_PATH) && copy_user(upath, &c, 1, 0) == 0 && !c)
        return dirfd == AT_FDCWD || fd_get((uint64_t)(int)dirfd) ? 0 : -EBADF;
    long err = path_at(dirfd, upath, path, &base);
    if (err < 0)
        return err;
    return fs_lookup(base, path, !(flags & AT_SYMLINK_NOFOLLOW), &ino); /* no file access is checked */
}

static long sys_readlinkat(int64_t dirfd, uint64_t upath, uint64_t buf, uint64_t n)
{
    char path[FS_PATH_MAX];
    struct inode *base, *ino;
    long err = path_at(dirfd, upath, path, &base);
    if (err < 0)
        return err;
    int r = fs_lookup(base, path, 0, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) != S_IFLNK)
        return -EINVAL;
    uint64_t tl = kstrlen(ino->target);
    if (tl > n)
        tl = n;
    return copy_user(buf, ino->target, tl, 1) < 0 ? -EFAULT : (long)tl;
}

static long sys_getcwd(uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    char path[FS_PATH_MAX];
    int len = fs_path_of(cur->files->cwd, path, sizeof(path));
    if (len < 0)
        return len;
    if ((uint64_t)len > n)
        return -ERANGE;
    return copy_user(buf, path, (uint64_t)len, 1) < 0 ? -EFAULT : len;
}

static long sys_chdir(uint64_t upath)
{
    struct proc *cur = proc_cur();
    char path[FS_PATH_MAX];
    struct inode *ino;
    long n = copy_str(upath, path, sizeof(path));
    if (n < 0)
        return n;
    int r = fs_lookup(cur->files->cwd, path, 1, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) != S_IFDIR)
        return -ENOTDIR;
    fs_hold(ino);
    fs_release(cur->files->cwd);
    cur->files->cwd = ino;
    return 0;
}

/* The directory and last component of a user path; `path` is the caller's buffer. */
static long parent_of(int64_t dirfd, uint64_t upath, char *path, struct inode **dir, const char **name, uint64_t *nlen)
{
    struct inode *base;
    long err = path_at(dirfd, upath, path, &base);
    if (err < 0)
        return err;
    return fs_parent(base, path, dir, name, nlen);
}

/* mknod: regular files, named pipes and socket files; device nodes are refused (EPERM: the
 * sandbox has the devices it has). */
static long sys_mknodat(int64_t dirfd, uint64_t upath, uint64_t mode)
{
    char path[FS_PATH_MAX];
    struct inode *dir, *node;
    const char *name;
    uint64_t nl;
    uint32_t type = (uint32_t)mode & S_IFMT;
    if (type == S_IFCHR || type == 0060000) /* S_IFBLK */
        return -EPERM;
    if (type != 0 && type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
        return -EINVAL;
    long r = parent_of(dirfd, upath, path, &dir, &name, &nl);
    return r < 0 ? r : fs_create(dir, name, nl, (type ? type : S_IFREG) | ((uint32_t)mode & 07777 & ~proc_cur()->files->umask), &node);
}

static long sys_mkdirat(int64_t dirfd, uint64_t upath, uint64_t mode)
{
    char path[FS_PATH_MAX];
    struct inode *dir, *d;
    const char *name;
    uint64_t nl;
    long r = parent_of(dirfd, upath, path, &dir, &name, &nl);
    return r < 0 ? r : fs_create(dir, name, nl, S_IFDIR | ((uint32_t)mode & 07777 & ~proc_cur()->files->umask), &d);
}

static long sys_unlinkat(int64_t dirfd, uint64_t upath, uint64_t flags)
{
    char path[FS_PATH_MAX];
    struct inode *dir;
    const char *name;
    uint64_t nl;
    long r = parent_of(dirfd, upath, path, &dir, &name, &nl);
    return r < 0 ? r : fs_unlink(dir, name, nl, (flags & 0x200) != 0); /* AT_REMOVEDIR */
}

/* link and linkat: another name for a file (AT_SYMLINK_FOLLOW: for what a symlink names;
 * AT_EMPTY_PATH: for the descriptor's file). Not for directories (EPERM), nor into or out of
 * /proc (EXDEV: another file system on Linux). */
static long sys_linkat(int64_t odirfd, uint64_t oldp, int64_t ndirfd, uint64_t newp, uint64_t flags)
{
    char path[FS_PATH_MAX];
    struct inode *target, *dir;
    const char *name;
    uint64_t nl;
    long err = 0, r, n = copy_str(oldp, path, sizeof(path));
    if (flags & ~(0x400ULL | AT_EMPTY_PATH))
        return -EINVAL;
    if (n < 0)
        return n;
    if (n == 0 && (flags & AT_EMPTY_PATH)) {
        struct file *f = fd_get((uint64_t)(int)odirfd);
        if (!f || f->type != F_INODE)
            return -EBADF;
        target = f->ino;
    } else {
        struct inode *base = base_dir(odirfd, &err);
        if (!base)
            return err;
        if ((r = fs_lookup(base, path, (flags & 0x400) != 0, &target)) < 0)
            return r;
    }
    if ((r = parent_of(ndirfd, newp, path, &dir, &name, &nl)) < 0)
        return r;
    if (in_procfs(target) || in_procfs(dir) || in_sysfs(target) || in_sysfs(dir))
        return -EXDEV_;
    return fs_link(dir, name, nl, target);
}

/* renameat2's flags: RENAME_NOREPLACE (1) is kept; exchange and whiteout are refused. */
static long sys_renameat(int64_t ofd, uint64_t oldp, int64_t nfd, uint64_t newp, uint64_t flags)
{
    char a[FS_PATH_MAX], b[FS_PATH_MAX];
    struct inode *od, *nd, *there;
    const char *on, *nn;
    uint64_t ol, nl;
    if (flags & ~1ULL)
        return -EINVAL;
    long r = parent_of(ofd, oldp, a, &od, &on, &ol);
    if (r == 0)
        r = parent_of(nfd, newp, b, &nd, &nn, &nl);
    if (r == 0 && (flags & 1) && fs_lookup(nd, nn, 0, &there) == 0)
        return -EEXIST;
    return r < 0 ? r : fs_rename(od, on, ol, nd, nn, nl);
}

static long sys_symlinkat(uint64_t utarget, int64_t dirfd, uint64_t upath)
{
    char target[FS_PATH_MAX], path[FS_PATH_MAX];
    struct inode *dir, *l;
    const char *name;
    uint64_t nl;
    long n = copy_str(utarget, target, sizeof(target)), r;
    if (n < 0)
        return n;
    if (n == 0)
        return -ENOENT;
    if ((r = parent_of(dirfd, upath, path, &dir, &name, &nl)) < 0 || (r = fs_create(dir, name, nl, S_IFLNK | 0777, &l)) < 0)
        return r;
    if (!(l->target = kstrndup(target, (uint64_t)n))) {
        fs_unlink(dir, name, nl, 0);
        return -ENOMEM;
    }
    l->size = (uint64_t)n;
    return 0;
}

/* chmod and utimensat: find the inode (fd when path is NULL) and change it. */
static long inode_at(int64_t dirfd, uint64_t upath, int follow, struct inode **out)
{
    char path[FS_PATH_MAX];
    long err = 0;
    if (!upath) {
        struct file *f = fd_get((uint64_t)(int)dirfd);
        if (!f || !f->ino)
            return -EBADF;
        *out = f->ino;
        return 0;
    }
    long n = copy_str(upath, path, sizeof(path));
    if (n < 0)
        return n;
    struct inode *base = base_dir(dirfd, &err);
    return base ? fs_lookup(base, path, follow, out) : err;
}

static long sys_chmod(int64_t dirfd, uint64_t upath, uint64_t mode)
{
    struct inode *ino;
    long r = inode_at(dirfd, upath, 1, &ino);
    if (r == 0) {
        ino->mode = (ino->mode & S_IFMT) | ((uint32_t)mode & 07777);
        fs_notify(0, 0, 0, ino, IN_ATTRIB_, 0);
    }
    return r;
}

/* Whether the caller is in group `gid`: its file-system group or a supplementary one. */
static int in_group(const struct proc *g, uint32_t gid)
{
    if (gid == g->gid[3])
        return 1;
    for (int i = 0; i < g->ngroups; i++)
        if (g->groups[i] == gid)
            return 1;
    return 0;
}

/* chown's rules (Linux's, uid or gid -1 left as they are): root changes anything; the owner may
 * only set its own uid and one of its groups. A change clears set-user-ID, and set-group-ID of a
 * group-executable file, as Linux does for root too. */
static long chown_ino(struct inode *ino, uint32_t uid, uint32_t gid)
{
    const struct proc *g = proc_cur()->group;
    int owner = g->uid[3] == ino->uid;
    if (g->uid[1] != 0) {
        if (uid != 0xffffffffu && (!owner || uid != ino->uid))
            return -EPERM;
        if (gid != 0xffffffffu && (!owner || (gid != ino->gid && !in_group(g, gid))))
            return -EPERM;
    }
    if (uid == 0xffffffffu && gid == 0xffffffffu)
        return 0;
    if (uid != 0xffffffffu)
        ino->uid = uid;
    if (gid != 0xffffffffu)
        ino->gid = gid;
    if ((ino->mode & S_IFMT) != S_IFDIR)
        ino->mode &= ~(uint32_t)(S_ISUID | ((ino->mode & 010) ? S_ISGID : 0));
    ino->ctime = proc_now_ns() / 1000000000;
    fs_notify(0, 0, 0, ino, IN_ATTRIB_, 0);
    return 0;
}

/* chown, lchown, fchown (path 0: dirfd is the descriptor) and fchownat (AT_SYMLINK_NOFOLLOW,
 * AT_EMPTY_PATH). A pipe's or socket's descriptor has no inode here to change. */
static long sys_chown(int64_t dirfd, uint64_t upath, uint64_t uid, uint64_t gid, uint64_t flags)
{
    struct inode *ino;
    char c = 0;
    if (upath && (flags & AT_EMPTY_PATH) && copy_user(upath, &c, 1, 0) == 0 && !c)
        upath = 0;
    if (!upath) {
        struct file *f = fd_get((uint64_t)(int)dirfd);
        if (!f)
            return -EBADF;
        return f->ino ? chown_ino(f->ino, (uint32_t)uid, (uint32_t)gid) : 0;
    }
    long r = inode_at(dirfd, upath, !(flags & AT_SYMLINK_NOFOLLOW), &ino);
    return r < 0 ? r : chown_ino(ino, (uint32_t)uid, (uint32_t)gid);
}

static long sys_utimensat(int64_t dirfd, uint64_t upath, uint64_t utimes, uint64_t flags)
{
    struct inode *ino;
    long r = inode_at(dirfd, upath, !(flags & AT_SYMLINK_NOFOLLOW), &ino);
    if (r < 0)
        return r;
    int64_t ts[4], now = proc_now_ns() / 1000000000;
    if (utimes && copy_user(utimes, ts, sizeof(ts), 0) < 0)
        return -EFAULT;
    /* UTIME_NOW = (1 << 30) - 1, UTIME_OMIT = (1 << 30) - 2 */
    if (!utimes || ts[1] == (1 << 30) - 1)
        ino->atime = now;
    else if (ts[1] != (1 << 30) - 2)
        ino->atime = ts[0];
    if (!utimes || ts[3] == (1 << 30) - 1)
        ino->mtime = now;
    else if (ts[3] != (1 << 30) - 2)
        ino->mtime = ts[2];
    fs_notify(0, 0, 0, ino, IN_ATTRIB_, 0);
    return 0;
}

static long sys_truncate(int64_t dirfd, uint64_t upath, int64_t len)
{
    struct inode *ino;
    if (len < 0)
        return -EINVAL;
    long r = inode_at(dirfd, upath, 1, &ino);
    return r < 0 ? r : fs_truncate(ino, (uint64_t)len);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_open(const struct sysargs *s)
{
    return sys_openat(AT_FDCWD, s->a, s->b, s->c);
}

long sc_creat(const struct sysargs *s)
{
    return sys_openat(AT_FDCWD, s->a, O_CREAT | 1 | O_TRUNC, s->b); /* O_WRONLY */
}

long sc_close(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    long ret;
    ret = fd_get(s->a) ? 0 : -EBADF;
    if (ret == 0)
        fd_close(cur, (int)s->a);
    return ret;
}

/* 188-199: setxattr, lsetxattr, fsetxattr; getxattr...; listxattr...; removexattr... */
long sc_setxattr(const struct sysargs *s)
{
    int op = s->nr < 191 ? XA_SET : s->nr < 194 ? XA_GET : XA_REMOVE, follow = s->nr != 189 && s->nr != 192 && s->nr != 198;
    return sys_xattr(op, s->a, 0, follow, s->b, s->c, s->d, s->e);
}

long sc_fsetxattr(const struct sysargs *s)
{
    int op = s->nr == 190 ? XA_SET : s->nr == 193 ? XA_GET : XA_REMOVE;
    return sys_xattr(op, 0, (int64_t)s->a, 1, s->b, s->c, s->d, s->e);
}

long sc_listxattr(const struct sysargs *s)
{
    return sys_listxattr(s->a, 0, s->nr == 194, s->b, s->c);
}

long sc_flistxattr(const struct sysargs *s)
{
    return sys_listxattr(0, (int64_t)s->a, 1, s->b, s->c);
}

long sc_fadvise64(const struct sysargs *s)
{
    return fd_get(s->a) ? 0 : -EBADF; /* fadvise64: advice taken */
}

long sc_access(const struct sysargs *s)
{
    return sys_access(AT_FDCWD, s->a);
}

long sc_faccessat2(const struct sysargs *s)
{
    return sys_faccessat2((int64_t)s->a, s->b, s->c, s->d);
}

long sc_getcwd(const struct sysargs *s)
{
    return sys_getcwd(s->a, s->b);
}

long sc_chdir(const struct sysargs *s)
{
    return sys_chdir(s->a);
}

long sc_readlink(const struct sysargs *s)
{
    return sys_readlinkat(AT_FDCWD, s->a, s->b, s->c);
}

long sc_getdents64(const struct sysargs *s)
{
    return sys_getdents64(s->a, s->b, s->c);
}

long sc_openat(const struct sysargs *s)
{
    return sys_openat((int64_t)s->a, s->b, s->c, s->d);
}

long sc_readlinkat(const struct sysargs *s)
{
    return sys_readlinkat((int64_t)s->a, s->b, s->c, s->d);
}

long sc_faccessat(const struct sysargs *s)
{
    return sys_access((int64_t)s->a, s->b);
}

long sc_fsync(const struct sysargs *s)
{
    /* fsync, fdatasync, syncfs, sync: memory is the disk, so only the descriptor is checked */
    return s->nr != 162 && !fd_get(s->a) ? -EBADF : 0;
}

long sc_truncate(const struct sysargs *s)
{
    return sys_truncate(AT_FDCWD, s->a, (int64_t)s->b);
}

long sc_ftruncate(const struct sysargs *s)
{
    return sys_truncate((int64_t)s->a, 0, (int64_t)s->b);
}

long sc_rename(const struct sysargs *s)
{
    return sys_renameat(AT_FDCWD, s->a, AT_FDCWD, s->b, 0);
}

long sc_renameat(const struct sysargs *s)
{
    return sys_renameat((int64_t)s->a, s->b, (int64_t)s->c, s->d, 0);
}

long sc_renameat2(const struct sysargs *s)
{
    return sys_renameat((int64_t)s->a, s->b, (int64_t)s->c, s->d, s->e); /* renameat2 */
}

long sc_mkdir(const struct sysargs *s)
{
    return sys_mkdirat(AT_FDCWD, s->a, s->b);
}

long sc_mknod(const struct sysargs *s)
{
    return sys_mknodat(AT_FDCWD, s->a, s->b);
}

long sc_mknodat(const struct sysargs *s)
{
    return sys_mknodat((int64_t)s->a, s->b, s->c);
}

long sc_mkdirat(const struct sysargs *s)
{
    return sys_mkdirat((int64_t)s->a, s->b, s->c);
}

long sc_rmdir(const struct sysargs *s)
{
    return sys_unlinkat(AT_FDCWD, s->a, 0x200);
}

long sc_unlink(const struct sysargs *s)
{
    return sys_unlinkat(AT_FDCWD, s->a, 0);
}

long sc_unlinkat(const struct sysargs *s)
{
    return sys_unlinkat((int64_t)s->a, s->b, s->c);
}

long sc_link(const struct sysargs *s)
{
    return sys_linkat(AT_FDCWD, s->a, AT_FDCWD, s->b, 0);
}

long sc_linkat(const struct sysargs *s)
{
    return sys_linkat((int64_t)s->a, s->b, (int64_t)s->c, s->d, s->e);
}

long sc_symlink(const struct sysargs *s)
{
    return sys_symlinkat(s->a, AT_FDCWD, s->b);
}

long sc_symlinkat(const struct sysargs *s)
{
    return sys_symlinkat(s->a, (int64_t)s->b, s->c);
}

long sc_chmod(const struct sysargs *s)
{
    return sys_chmod(AT_FDCWD, s->a, s->b);
}

long sc_fchmod(const struct sysargs *s)
{
    return sys_chmod((int64_t)s->a, 0, s->b);
}

long sc_fchmodat(const struct sysargs *s)
{
    return sys_chmod((int64_t)s->a, s->b, s->c);
}

long sc_chown(const struct sysargs *s)
{
    return sys_chown(AT_FDCWD, s->a, s->b, s->c, 0);
}

long sc_fchown(const struct sysargs *s)
{
    return sys_chown((int64_t)s->a, 0, s->b, s->c, 0);
}

long sc_lchown(const struct sysargs *s)
{
    return sys_chown(AT_FDCWD, s->a, s->b, s->c, AT_SYMLINK_NOFOLLOW);
}

long sc_fchownat(const struct sysargs *s)
{
    return sys_chown((int64_t)s->a, s->b, s->c, s->d, s->e);
}

long sc_utimensat(const struct sysargs *s)
{
    return sys_utimensat((int64_t)s->a, s->b, s->c, s->d);
}

long sc_fchdir(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* fchdir */
    long ret;
    struct file *fl = fd_get(s->a);
    ret = !fl || fl->type != F_INODE ? -EBADF : (fl->ino->mode & S_IFMT) != S_IFDIR ? -ENOTDIR : 0;
    if (ret == 0) {
        fs_hold(fl->ino);
        fs_release(cur->files->cwd);
        cur->files->cwd = fl->ino;
    }
    return ret;
}

long sc_flock(const struct sysargs *s)
{
    struct file *f = fd_hold(s->a); /* it may wait */
    if (!f)
        return -EBADF;
    long r = flock_file(f, s->b);
    file_unhold(f);
    return r;
}
