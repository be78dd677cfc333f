/* Open files (struct file) and descriptor tables (struct files), and I/O on any open file. */
#ifndef LEL_GUEST_FS_FILE_H
#define LEL_GUEST_FS_FILE_H

#include <stdint.h>

struct epoll;
struct inode;
struct inotify;
struct ktimer;
struct pipe;
struct pty;
struct sock;
struct proc;
struct outbuf;

/* Descriptors: a process may have up to its RLIMIT_NOFILE soft limit open (NFD_SOFT at first,
 * as on Linux), which root may raise up to NFD_MAX (Linux's default hard limit). The table
 * grows a page of FD_CHUNK descriptors at a time as they are used. */
#define NFD_SOFT 1024
#define NFD_MAX 4096
#define FD_CHUNK 512

enum ftype { F_NONE = 0, F_INODE, F_STDIN, F_OUT, F_PIPE_R, F_PIPE_W, F_EVENT, F_EPOLL, F_SOCK, F_SIGNALFD, F_PIDFD, F_TIMERFD, F_INOTIFY,
             F_PTM, F_PTS /* a pty's master and slave (fs/pty.c) */ };

/* The kinds that are anonymous inodes on Linux (one inode for all, readlink "anon_inode:[kind]"). */
static inline int file_is_anon(enum ftype t)
{
    return t == F_EVENT || t == F_EPOLL || t == F_SIGNALFD || t == F_PIDFD || t == F_TIMERFD || t == F_INOTIFY;
}

struct file {
    enum ftype type;
    struct inode *ino;
    struct pipe *pipe;
    struct outbuf *ob; /* F_OUT: the session's buffer; NULL once the session ended (discarded) */
    struct epoll *ep;  /* F_EPOLL */
    struct sock *sock; /* F_SOCK */
    uint64_t off;
    uint64_t count, seq; /* F_EVENT: the counter, and how often it changed */
    uint64_t id; /* its inode number when it has no inode of its own (a command's output) */
    uint64_t sigmask; /* F_SIGNALFD: the signals it reads (bit n: signal n) */
    int pid;          /* F_PIDFD: the process it stands for */
    struct ktimer *timer; /* F_TIMERFD: its timer (proc/ktimer.c), freed with the file */
    struct inotify *in;   /* F_INOTIFY: its instance (fs/inotify.c), freed with the file */
    struct pty *pty;      /* F_PTM, F_PTS: its terminal (fs/pty.c), which the file holds */
    int flags;
    int owner, sig; /* F_SETOWN's process (0: none; a negative one is a group) and F_SETSIG's signal (0: SIGIO) */
    int semaphore; /* F_EVENT: EFD_SEMAPHORE */
    int refs;
    int epolled; /* epoll instances that watch it */
};

/* Descriptors, the working directory and the umask: shared by the threads of a process
 * (CLONE_FILES and CLONE_FS, which come together here), copied by fork. */
struct files {
    int refs;
    uint32_t umask;    /* what open(O_CREAT), mkdir and mknod leave out of a new file's mode */
    struct inode *cwd; /* held */
    struct file **chunk[NFD_MAX / FD_CHUNK]; /* a page each: descriptors n * FD_CHUNK.., or NULL */
    uint64_t cloexec[NFD_MAX / 64];          /* bit n: fd n closes on execve */
};

#define O_APPEND 02000
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000
#define O_CLOEXEC_ 02000000
#define O_ACCMODE 3
#define O_NONBLOCK_ 04000

void fd_set_cloexec(int fd, int on);

/* A new inode number for what lives on no file system (pipes, a command's output), as Linux's
 * pipefs numbers its pipes; their st_dev is PIPEFS_DEV. */
uint64_t anon_ino(void);
#define PIPEFS_DEV 12
#define SOCKFS_DEV 8
#define ANON_INODE_DEV 13

/* The inode number fstat reports for `f` and the one /proc/<pid>/fd's link names: its inode's,
 * its pipe's (both ends alike), its socket's, or its own; 1 for an anonymous inode (eventfd,
 * epoll), which Linux shares among them all. */
uint64_t file_ino(const struct file *f);

/* Whether descriptor `fd` of the table closes on execve. */
int fd_cloexec(const struct files *t, uint64_t fd);

/* The file descriptor `fd` of table `t` stands for; NULL when none. */
struct file *files_fd(const struct files *t, uint64_t fd);

/* Puts `f` (NULL: nothing) at descriptor `fd` of `t`, what was there left to the caller;
 * -EMFILE past NFD_MAX, -ENOMEM when the table cannot grow. */
int files_set(struct files *t, uint64_t fd, struct file *f);

/* The lowest open descriptor of `t` at or above `from`; -1 when none is. */
int files_next(const struct files *t, int from);

/* The soft RLIMIT_NOFILE of the current process: descriptors must stay below it. */
uint64_t fd_limit(void);

struct file *file_new(enum ftype t, struct inode *ino, int flags);

void file_put(struct file *f);

/* The lowest free descriptor >= from; `cloexec` marks it close-on-exec. */
int fd_install(struct file *f, int from, int cloexec);

void fd_close(struct proc *p, int fd);

struct file *fd_get(uint64_t fd);

/* A descriptor's file, held by this syscall until file_unhold: a thread that closes the
 * descriptor meanwhile cannot free what a blocked read, write or wait is using (Linux's fdget
 * does the same). A syscall holds one file at most; a thread that dies inside it (killed while
 * blocked) lets go at its end (proc_end), or the file would stay open for good. */
struct file *file_hold(struct file *f);

struct file *fd_hold(uint64_t fd);

void file_unhold(struct file *f);

/* A descriptor table with no descriptors, in `cwd` (held), umask 022; a copy of one (fork) when
 * `from`. NULL when out of memory. */
struct files *files_new(struct inode *cwd, const struct files *from);

/* Drops `p`'s use of its descriptor table; the last user closes the descriptors. */
void files_put(struct proc *p);

long anon_install(struct file *f, uint64_t flags);

long file_read(struct file *f, uint64_t buf, uint64_t n);

long file_write(struct file *f, uint64_t buf, uint64_t n);

/* The file's page at `off` when a private mapping can map it as it is instead of a copy: a
 * read-only mapping of code (PROT_EXEC) or by a loader (MAP_DENYWRITE: glibc's ld.so maps
 * libraries so), a whole page within the file, and a file this address space can hold (it
 * then cannot be written while the process lives, as a running program). NULL: a copy. */
void *file_page_shared(struct file *f, uint64_t prot, uint64_t flags, uint64_t off);

#endif
