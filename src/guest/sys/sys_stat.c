/* Syscalls that say what a file is: stat, lstat, fstat, newfstatat, statx, statfs, fstatfs. */
#include "sys_path.h"
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/pipe.h"
#include "../fs/procfs.h"
#include "../fs/sysfs.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../proc/proc.h"

/* statfs/fstatfs: the root file system is memory (tmpfs's figures; over a read-only image an
 * overlay whose size is the writable layer's: the disk limit when there is one), /proc is
 * proc's. */
static long statfs_of(const struct inode *ino, uint64_t ubuf)
{
    uint64_t s[15];
    kmemset(s, 0, sizeof(s));
    int in_sys = in_sysfs(ino), in_proc = in_sys || in_procfs(ino);
    const struct lel_boot_info *bi = KVA(LEL_GPA_BOOT);
    s[0] = in_sys ? 0x62656572 : in_proc ? 0x9fa0 : fs_root()->lower ? 0x794c7630 : 0x01021994; /* SYSFS_, PROC_, OVERLAYFS_, TMPFS_MAGIC */
    s[1] = s[10] = PAGE_SIZE;              /* f_bsize, f_frsize */
    if (!in_proc) {
        uint64_t limit = fs_disk_limit(), used = fs_data_pages(), free = kpage_free_pages();
        uint64_t avail = free > KPAGE_DATA_RESERVE ? free - KPAGE_DATA_RESERVE : 0; /* what files may still take */
        s[2] = bi->mem_bytes / PAGE_SIZE;  /* f_blocks */
        s[3] = free;                       /* f_bfree */
        if (limit) {
            s[2] = limit;
            s[3] = used < limit ? limit - used : 0;
            avail = avail < s[3] ? avail : s[3];
        }
        s[4] = avail;                      /* f_bavail */
        s[5] = s[2];                       /* f_files */
        s[6] = s[3];                       /* f_ffree */
    }
    s[8] = FS_NAME_MAX; /* f_namelen */
    return copy_user(ubuf, s, 120, 1);
}

struct kstat {
    uint64_t dev, ino, nlink;
    uint32_t mode, uid, gid, pad0;
    uint64_t rdev;
    int64_t size, blksize, blocks;
    uint64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
    int64_t unused[3];
};

static void kstat_of(struct inode *ino, struct kstat *out)
{
    struct kstat st;
    kmemset(&st, 0, sizeof(st));
    st.dev = in_procfs(ino) ? 4 : in_sysfs(ino) ? 21 : 1;
    st.blksize = 4096;
    st.ino = ino->ino;
    st.nlink = ino->nlink;
    st.mode = ino->mode;
    st.size = (int64_t)ino->size;
    st.blocks = (int64_t)((ino->size + 511) / 512);
    st.atime = (uint64_t)ino->atime;
    st.mtime = (uint64_t)ino->mtime;
    st.ctime = (uint64_t)ino->ctime;
    st.rdev = ino->rdev;
    st.uid = ino->uid;
    st.gid = ino->gid;
    *out = st;
}

/* What fstat says of an open file: its inode's (a named pipe's node), or for a pipe, a socket,
 * a command's output, an eventfd or epoll set what Linux says of theirs: an inode of their own
 * file system (both ends of a pipe alike: diff <(a) <(b) tells two pipes apart by it). */
static void kstat_file(const struct file *f, struct kstat *out)
{
    struct inode *ino = f->ino ? f->ino : f->pipe ? f->pipe->fifo : 0;
    if (ino) {
        kstat_of(ino, out);
        return;
    }
    int anon = file_is_anon(f->type);
    kmemset(out, 0, sizeof(*out));
    out->dev = anon ? ANON_INODE_DEV : f->type == F_SOCK ? SOCKFS_DEV : PIPEFS_DEV;
    out->ino = file_ino(f);
    out->mode = (anon ? 0 : f->type == F_SOCK ? S_IFSOCK : S_IFIFO) | 0600; /* eventfd, epoll: no type */
    out->nlink = 1;
    out->blksize = 4096;
}

static long fill_stat(const struct file *f, uint64_t buf)
{
    struct kstat st;
    kstat_file(f, &st);
    return copy_user(buf, &st, sizeof(st), 1);
}

/* What stat says of a path (or, with AT_EMPTY_PATH and "", of dirfd itself). */
static long stat_at(int64_t dirfd, uint64_t upath, uint64_t flags, struct kstat *st)
{
    char path[FS_PATH_MAX];
    long err = 0;
    long n = copy_str(upath, path, sizeof(path));
    if (n < 0)
        return n;
    if (n == 0 && (flags & AT_EMPTY_PATH)) {
        struct file *f = fd_get((uint64_t)dirfd);
        if (!f)
            return -EBADF;
        kstat_file(f, st);
        return 0;
    }
    struct inode *base = base_dir(dirfd, &err), *ino;
    if (!base)
        return err;
    int r = fs_lookup(base, path, !(flags & AT_SYMLINK_NOFOLLOW), &ino);
    struct file *of = r < 0 || (flags & AT_SYMLINK_NOFOLLOW) ? 0 : fd_link_file(ino);
    if (r < 0)
        return r;
    if (of)
        kstat_file(of, st);
    else
        kstat_of(ino, st);
    return 0;
}

static long sys_newfstatat(int64_t dirfd, uint64_t upath, uint64_t buf, uint64_t flags)
{
    struct kstat st;
    long r = stat_at(dirfd, upath, flags, &st);
    return r < 0 ? r : copy_user(buf, &st, sizeof(st), 1);
}

/* statx: the same facts in struct statx (coreutils and Rust's std ask for it first). */
static long sys_statx(int64_t dirfd, uint64_t upath, uint64_t flags, uint64_t buf)
{
    struct kstat st;
    long r = stat_at(dirfd, upath, flags, &st);
    if (r < 0)
        return r;
    uint8_t x[256];
    kmemset(x, 0, sizeof(x));
    *(uint32_t *)(x + 0) = 0x7ff; /* STATX_BASIC_STATS */
    *(uint32_t *)(x + 4) = (uint32_t)st.blksize;
    *(uint32_t *)(x + 16) = (uint32_t)st.nlink;
    *(uint16_t *)(x + 28) = (uint16_t)st.mode;
    *(uint64_t *)(x + 32) = st.ino;
    *(int64_t *)(x + 40) = st.size;
    *(int64_t *)(x + 48) = st.blocks;
    uint64_t times[4] = {st.atime, st.ctime, st.ctime, st.mtime}; /* atime, btime, ctime, mtime */
    for (int i = 0; i < 4; i++)
        *(uint64_t *)(x + 64 + 16 * i) = times[i];
    *(uint32_t *)(x + 128) = (uint32_t)((st.rdev >> 8) & 0xfff);
    *(uint32_t *)(x + 132) = (uint32_t)((st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00));
    *(uint32_t *)(x + 140) = (uint32_t)st.dev;
    return copy_user(buf, x, sizeof(x), 1);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_stat(const struct sysargs *s)
{
    return sys_newfstatat(AT_FDCWD, s->a, s->b, 0);
}

long sc_statx(const struct sysargs *s)
{
    return sys_statx((int64_t)s->a, s->b, s->c, s->e);
}

long sc_fstat(const struct sysargs *s)
{
    long ret;
    struct file *fl = fd_get(s->a);
    ret = fl ? fill_stat(fl, s->b) : -EBADF;
    return ret;
}

long sc_lstat(const struct sysargs *s)
{
    return sys_newfstatat(AT_FDCWD, s->a, s->b, AT_SYMLINK_NOFOLLOW);
}

long sc_statfs(const struct sysargs *s)
{
    struct proc *cur = proc_cur();
    /* statfs */
    long ret;
    char path[FS_PATH_MAX];
    struct inode *ino;
    long n = copy_str(s->a, path, sizeof(path));
    ret = n < 0 ? n : fs_lookup(cur->files->cwd, path, 1, &ino);
    if (ret == 0)
        ret = statfs_of(ino, s->b);
    return ret;
}

long sc_fstatfs(const struct sysargs *s)
{
    /* fstatfs */
    long ret;
    struct file *fl = fd_get(s->a);
    ret = !fl ? -EBADF : statfs_of(fl->type == F_INODE ? fl->ino : fs_root(), s->b);
    return ret;
}

long sc_newfstatat(const struct sysargs *s)
{
    return sys_newfstatat((int64_t)s->a, s->b, s->c, s->d);
}
