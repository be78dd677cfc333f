/* Pseudo-terminals: /dev/ptmx, /dev/pts/N (devpts), /dev/tty, the line discipline (termios,
 * canonical editing, echo, signals from the keyboard), window sizes, controlling terminals and
 * job control's checks. A pty is owned by its open files (and by a host command that holds its
 * master, see proc/session.c); it goes, with its /dev/pts node, when the last of them closes. */
#ifndef LEL_GUEST_FS_PTY_H
#define LEL_GUEST_FS_PTY_H

#include <stdint.h>

struct file;
struct inode;
struct pty;

#define TTY_MAJOR_PTS 136
#define DEV_TTY 0x500  /* 5:0, the caller's controlling terminal */
#define DEV_PTMX 0x502 /* 5:2 */

/* /dev/tty, /dev/ptmx and the devpts directory /dev/pts, in `dev`. */
void pty_make_nodes(struct inode *dev);

/* Whether a character device number is one this module opens (ptmx, tty, pts/N). */
int tty_is_dev(uint32_t rdev);

/* open(2) of such a node: a new master (/dev/ptmx), a slave (/dev/pts/N: EIO while locked or
 * when its master is gone), or the controlling terminal (/dev/tty: ENXIO without one). A
 * session leader without a terminal that opens a slave without O_NOCTTY makes it its
 * controlling terminal, as on Linux. Returns the descriptor or -errno. */
long tty_open(struct inode *ino, uint64_t flags);

/* I/O on a master (F_PTM) or slave (F_PTS) file; blocking as on Linux (O_NONBLOCK: EAGAIN). */
long pty_read(struct file *f, uint64_t buf, uint64_t n);
long pty_write(struct file *f, uint64_t buf, uint64_t n);

/* The terminal ioctls on either side; -ENOTTY for requests that are not a terminal's. */
long pty_ioctl(struct file *f, uint64_t fd, uint64_t req, uint64_t arg);

/* Readiness (poll's revents) and its change counter (edge-triggered epoll). */
uint32_t pty_events(const struct file *f);
uint64_t pty_seq(const struct file *f);

/* A master or slave file closed for good: the last master hangs the terminal up (SIGHUP to its
 * session's leader and foreground group), the last of everything frees it. */
void pty_close(struct file *f);

/* ---- A master the kernel holds for a host command (proc/session.c) ---- */

/* A new unlocked pty of `cols` x `rows` whose master the caller holds (pty_kernel_close lets
 * go), and an open slave file on it (*slave, one reference) for the command's descriptors.
 * `hook(ctx)` is told whenever output arrives or input room comes back; it may only take note.
 * NULL when out of memory or ptys. */
struct pty *pty_kernel_open(uint16_t cols, uint16_t rows, void (*hook)(void *), void *ctx, struct file **slave);

/* The terminal's session and foreground group become the command's first process's (it leads
 * both): its controlling terminal. */
void pty_set_session(struct pty *t, int sid, int pgrp);

/* What the programs wrote (after output processing), up to n bytes taken into dst; and how
 * many bytes wait. */
uint64_t pty_take_output(struct pty *t, void *dst, uint64_t n);
uint64_t pty_output_pending(const struct pty *t);

/* Bytes typed at the terminal (input processing: echo, line editing, ^C...): how many were
 * taken (the rest waits for pty_input_room). */
uint64_t pty_put_input(struct pty *t, const uint8_t *src, uint64_t n);
uint64_t pty_input_room(const struct pty *t);

/* TIOCSWINSZ from the master's side: SIGWINCH to the foreground group when the size changed. */
void pty_resize(struct pty *t, uint16_t cols, uint16_t rows);

/* The kernel lets go of its master: a hangup, as the last master's close. */
void pty_kernel_close(struct pty *t);

#endif
