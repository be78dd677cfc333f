/* Pipes and named pipes: the buffer shared by pipe ends, FIFOs, and stream sockets' two directions. */
#ifndef LEL_GUEST_FS_PIPE_H
#define LEL_GUEST_FS_PIPE_H

#include "../mm/page.h"
#include <stdint.h>

struct file;
struct inode;

/* A pipe holds 64 KiB at first as Linux's does (a one-page pipe cost a switch between writer
 * and reader every 4 KiB): a ring over PIPE_PAGES pages, each allocated when first written, which
 * F_SETPIPE_SZ makes from one page up to PIPE_PAGES_MAX (a power of two of pages, as Linux). The
 * ring restarts at page 0 whenever it empties, so a pipe used for small messages keeps one page. */
#define PIPE_PAGES 16
#define PIPE_SIZE (PIPE_PAGES * PAGE_SIZE)
#define PIPE_PAGES_MAX 256 /* 1 MiB: Linux's /proc/sys/fs/pipe-max-size */

#define PIPE_NOSIG 1   /* pipe_write: EPIPE without SIGPIPE (send's MSG_NOSIGNAL) */
#define PIPE_PEEK 2    /* pipe_read: the bytes stay (recv's MSG_PEEK) */

/* Descriptors sent over a unix stream socket (SCM_RIGHTS, net/scm.c) with the bytes at stream
 * positions [at, end) of the pipe that carries them; the files are held until received. */
#define PIPE_RIGHTS_MAX 252
struct pipe_rights {
    struct pipe_rights *next;
    uint64_t at, end;
    int n;
    struct file *f[];
};

/* Lets a record's files go and frees it. */
void pipe_rights_free(struct pipe_rights *r);

struct pipe {
    uint8_t **page;  /* npages slots (kmalloc), each page allocated when first written */
    uint32_t npages; /* the ring's size in pages: PIPE_PAGES, or what F_SETPIPE_SZ asked */
    uint64_t head, count;
    uint64_t taken; /* bytes ever read (not peeked) or taken: the stream position of the first unread one */
    struct pipe_rights *rights, *rights_last; /* oldest first */
    uint64_t seq; /* bumped by every change of either end's readiness (edge-triggered epoll) */
    uint64_t id; /* its inode number (anon_ino) */
    int readers, writers;
    struct inode *fifo; /* a named pipe's node (held while the pipe lives) */
    struct pipe *fifo_next; /* the other named pipes that are open */
    uint32_t opens_r, opens_w; /* a named pipe: how often each end was opened */
    /* told of every change (net/hostconn.c, whose connections have one end of their pipes in
     * the kernel); it may only take note, never call back into the pipe */
    void (*hook)(void *ctx);
    void *hook_ctx;
};

/* An empty pipe with one reader and one writer; NULL when out of memory. */
struct pipe *pipe_new(void);

/* What the pipe holds at most, in bytes. */
static inline uint64_t pipe_cap(const struct pipe *p)
{
    return (uint64_t)p->npages * PAGE_SIZE;
}

/* F_SETPIPE_SZ: the ring becomes `bytes` rounded up to a power of two of pages, at least one;
 * EPERM past PIPE_PAGES_MAX (as Linux says to a process without CAP_SYS_RESOURCE), EBUSY when
 * it holds more than the new size. Returns the new size in bytes. */
long pipe_resize(struct pipe *p, uint64_t bytes);

/* A reader (or writer) of `p` let go; the last one frees it. */
void pipe_drop(struct pipe *p, int reader);

/* open() of a named pipe: a reader waits until a writer has opened it, and a writer until a
 * reader has (O_NONBLOCK: a reader does not wait, a writer fails with ENXIO); O_RDWR is both
 * ends and waits for nobody, as on Linux. Returns the new descriptor. */
long fifo_open(struct inode *ino, uint64_t flags);

/* flags: O_NONBLOCK_, and PIPE_PEEK (recv's MSG_PEEK: the bytes stay in the pipe) */
long pipe_read(struct pipe *p, int flags, uint64_t buf, uint64_t n);

/* Bytes that can be written now without blocking: the free part of the ring up to the first
 * page that is missing and cannot be allocated (memory is short: the writer waits for the
 * reader as if the pipe were full; page 0 always exists, so an empty pipe always takes data). */
uint64_t pipe_room(struct pipe *p);

/* flags: O_NONBLOCK_, and PIPE_NOSIG (send's MSG_NOSIGNAL: EPIPE without SIGPIPE) */
long pipe_write(struct pipe *p, int flags, uint64_t buf, uint64_t n);

/* The kernel's end of a pipe: copies up to n bytes from kernel memory in, or out to it (no
 * waiting, no signals); returns the bytes moved (less than n when full, or empty). A put
 * allocates the pages it needs and stops short when memory is out. */
uint64_t pipe_put(struct pipe *p, const void *src, uint64_t n);
uint64_t pipe_take(struct pipe *p, void *dst, uint64_t n);

#endif
