/* File locks between processes, as Linux keeps them: flock(2)'s whole-file locks (owned by the
 * open file, so dup and fork share them; gone with its last descriptor), POSIX record locks
 * (fcntl F_SETLK/F_SETLKW/F_GETLK: byte ranges owned by the process; all of a process's locks on
 * a file go when it closes any descriptor of it, or ends) and open file description locks
 * (F_OFD_*: byte ranges owned by the open file). flock locks and record locks do not see each
 * other; POSIX and OFD ones conflict. A waiter (LOCK_EX without LOCK_NB, F_SETLKW) sleeps until a
 * lock goes; a signal interrupts it. No deadlock detection (EDEADLK is never said). */
#ifndef LEL_GUEST_FS_FLOCK_H
#define LEL_GUEST_FS_FLOCK_H

#include <stdint.h>

struct file;
struct inode;

/* flock(fd, op) on `f`: 0 or -errno (EWOULDBLOCK for LOCK_NB, EINVAL, ERESTART). */
long flock_file(struct file *f, uint64_t op);

/* fcntl's F_GETLK (5), F_SETLK (6), F_SETLKW (7) and F_OFD_GETLK/SETLK/SETLKW (36-38) with
 * the user's struct flock at `uflock`. */
long flock_fcntl(struct file *f, uint64_t cmd, uint64_t uflock);

/* A descriptor of `ino` was closed by process `pid`: its record locks on it go. */
void flock_close_posix(struct inode *ino, int pid);

/* `f`'s last reference went: its flock and OFD locks go. */
void flock_forget(struct file *f);

#endif
