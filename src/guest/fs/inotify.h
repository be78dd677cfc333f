/* inotify: instances (a descriptor each) with watches on inodes, and the events the file
 * system reports (fs_notify, called by fs.c and the syscalls that change metadata) queued for
 * them in Linux's struct inotify_event layout. A watch holds its inode; one whose inode is
 * removed for good reports IN_DELETE_SELF and IN_IGNORED and goes. Queues hold up to
 * INOTIFY_QMAX events; past that one IN_Q_OVERFLOW stands for what was lost. An event equal to
 * the last one queued and not yet read is not queued again, as on Linux. */
#ifndef LEL_GUEST_FS_INOTIFY_H
#define LEL_GUEST_FS_INOTIFY_H

#include <stdint.h>

struct file;
struct inode;

#define IN_ACCESS_ 0x1
#define IN_MODIFY_ 0x2
#define IN_ATTRIB_ 0x4
#define IN_CLOSE_WRITE_ 0x8
#define IN_CLOSE_NOWRITE_ 0x10
#define IN_OPEN_ 0x20
#define IN_MOVED_FROM_ 0x40
#define IN_MOVED_TO_ 0x80
#define IN_CREATE_ 0x100
#define IN_DELETE_ 0x200
#define IN_DELETE_SELF_ 0x400
#define IN_MOVE_SELF_ 0x800
#define IN_Q_OVERFLOW_ 0x4000
#define IN_IGNORED_ 0x8000
#define IN_ISDIR_ 0x40000000
#define INOTIFY_QMAX 4096

struct inotify;

/* A new instance (no watches); NULL when out of memory. Freed with its file (inotify_free). */
struct inotify *inotify_new(void);
void inotify_free(struct inotify *in);

/* inotify_add_watch on `ino` (mask: the events, with IN_MASK_ADD, IN_MASK_CREATE, IN_ONESHOT,
 * IN_EXCL_UNLINK as Linux takes them): its watch descriptor, the same one again for an inode
 * already watched. */
long inotify_watch(struct inotify *in, struct inode *ino, uint32_t mask);
long inotify_unwatch(struct inotify *in, int wd);

/* read: whole events, waiting for one unless O_NONBLOCK; EINVAL when the buffer is too small
 * for the first. What is queued, in bytes (FIONREAD), and poll's readiness. */
long inotify_read(struct file *f, uint64_t buf, uint64_t n);
uint64_t inotify_queued(const struct inotify *in);
uint32_t inotify_events(const struct file *f);
uint64_t inotify_seq(const struct inotify *in);

#endif
