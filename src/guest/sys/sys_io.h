#ifndef LEL_GUEST_SYS_SYS_IO_H
#define LEL_GUEST_SYS_SYS_IO_H

#include <stdint.h>

struct file;

/* ioctl: the descriptor flags (FIOCLEX, FIONCLEX, FIONBIO: Rust sets close-on-exec this way)
 * and FIONREAD for pipes; no terminals (ENOTTY). */
long sys_ioctl(uint64_t fd, uint64_t req, uint64_t arg);

long sys_lseek(uint64_t fd, int64_t off, uint64_t whence);

/* close_range: closes [first, last] (CLOSE_RANGE_CLOEXEC, 4: marks them close-on-exec
 * instead); CLOSE_RANGE_UNSHARE (2) changes nothing (threads share one table, as they did). */
long sys_close_range(uint64_t first, uint64_t last, uint64_t flags);

/* dup (exact 0: the lowest free fd >= newfd), dup2 and dup3 (exact 1: newfd itself). */
long sys_dup3(uint64_t oldfd, uint64_t newfd, int exact, uint64_t flags);

long sys_fcntl(uint64_t fd, uint64_t cmd, uint64_t arg);

/* pread/pwrite: read/write at an offset without moving the file's own. */
long sys_prw(uint64_t fd, uint64_t buf, uint64_t n, int64_t off, int write);

/* read and write */
long sys_rw(uint64_t fd, uint64_t buf, uint64_t n, int write);

/* readv/writev on `f`, and sendmsg/recvmsg with MSG_* flags `msg`: one read or write per
 * vector element. */
long file_rwv(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg);

long sys_rwv(uint64_t fd, uint64_t iov, uint64_t cnt, int write);

long sys_pipe(uint64_t ufds, uint64_t flags);

#endif
