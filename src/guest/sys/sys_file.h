#ifndef LEL_GUEST_SYS_SYS_FILE_H
#define LEL_GUEST_SYS_SYS_FILE_H

#include "../fs/file.h"
#include <stdint.h>

struct inode;

/* statfs/fstatfs: the root file system is memory (tmpfs's figures), /proc is proc's. */
long statfs_of(const struct inode *ino, uint64_t ubuf);

#define AT_FDCWD -100


#define AT_SYMLINK_NOFOLLOW 0x100

long fill_stat(struct inode *ino, enum ftype t, uint64_t buf);

long sys_openat(int64_t dirfd, uint64_t upath, uint64_t flags, uint64_t mode);

long sys_getdents64(uint64_t fd, uint64_t buf, uint64_t n);

long sys_newfstatat(int64_t dirfd, uint64_t upath, uint64_t buf, uint64_t flags);

/* statx: the same facts in struct statx (coreutils and Rust's std ask for it first). */
long sys_statx(int64_t dirfd, uint64_t upath, uint64_t flags, uint64_t buf);

/* Extended attributes: none exist and none can be set (as on a file system without them),
 * but the path or descriptor is checked first, as Linux does. `path` 0: `fd` is asked. */
long sys_xattr(uint64_t upath, int64_t fd, int follow, int set);

long sys_access(int64_t dirfd, uint64_t upath);

long sys_readlinkat(int64_t dirfd, uint64_t upath, uint64_t buf, uint64_t n);

long sys_getcwd(uint64_t buf, uint64_t n);

long sys_chdir(uint64_t upath);

/* mknod: regular files, named pipes and socket files; device nodes are refused (EPERM: the
 * sandbox has the devices it has). */
long sys_mknodat(int64_t dirfd, uint64_t upath, uint64_t mode);

long sys_mkdirat(int64_t dirfd, uint64_t upath, uint64_t mode);

long sys_unlinkat(int64_t dirfd, uint64_t upath, uint64_t flags);

/* link and linkat: another name for a file (AT_SYMLINK_FOLLOW: for what a symlink names;
 * AT_EMPTY_PATH: for the descriptor's file). Not for directories (EPERM), nor into or out of
 * /proc (EXDEV: another file system on Linux). */
long sys_linkat(int64_t odirfd, uint64_t oldp, int64_t ndirfd, uint64_t newp, uint64_t flags);

/* renameat2's flags: RENAME_NOREPLACE (1) is kept; exchange and whiteout are refused. */
long sys_renameat(int64_t ofd, uint64_t oldp, int64_t nfd, uint64_t newp, uint64_t flags);

long sys_symlinkat(uint64_t utarget, int64_t dirfd, uint64_t upath);

long sys_chmod(int64_t dirfd, uint64_t upath, uint64_t mode);

long sys_utimensat(int64_t dirfd, uint64_t upath, uint64_t utimes, uint64_t flags);

long sys_truncate(int64_t dirfd, uint64_t upath, int64_t len);

#endif
