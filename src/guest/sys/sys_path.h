/* What the path syscalls (sys_file.c, sys_stat.c) share: the directory a path is relative to. */
#ifndef LEL_GUEST_SYS_SYS_PATH_H
#define LEL_GUEST_SYS_SYS_PATH_H

#include <stdint.h>

struct inode;

#define AT_FDCWD -100
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000

/* The directory `dirfd` names (AT_FDCWD: the working directory); NULL and *err when it is no
 * open directory (EBADF, ENOTDIR). */
struct inode *base_dir(int64_t dirfd, long *err);

/* A user path (into `path`, FS_PATH_MAX bytes) and the directory it is relative to. */
long path_at(int64_t dirfd, uint64_t upath, char *path, struct inode **base);

#endif
