/* dnotify (fcntl F_NOTIFY): a directory's descriptor asks for a signal when something in the
 * directory is read, written, created, removed, renamed or has its attributes changed. The
 * signal (SIGIO, or the file's F_SETSIG one; si_code POLL_MSG, si_fd not told) goes to the file's owner, the process
 * that asked (F_SETOWN changes it). Without DN_MULTISHOT a mark fires once; another F_NOTIFY adds to
 * its events; a mask of 0 removes it; it goes with the file. Reported by the file system through fs_notify (fs/inotify.c). */
#ifndef LEL_GUEST_FS_DNOTIFY_H
#define LEL_GUEST_FS_DNOTIFY_H

#include <stdint.h>

struct file;
struct inode;

/* F_NOTIFY on file `f` (a directory: ENOTDIR else): 0 or -errno. */
long dnotify_set(struct file *f, uint64_t mask);

/* Something happened in directory `dir` (inotify's IN_* mask). */
void dnotify_event(struct inode *dir, uint32_t in_mask);

/* `f`'s last reference went: its mark goes with it. */
void dnotify_forget(struct file *f);

#endif
