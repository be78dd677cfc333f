/* Readiness of any open file (poll, select, epoll), epoll instances and eventfd counters. */
#ifndef LEL_GUEST_FS_EPOLL_H
#define LEL_GUEST_FS_EPOLL_H

#include "file.h"

#include <stdint.h>

struct file;

#define POLLIN_ 0x1
#define POLLOUT_ 0x4
#define POLLERR_ 0x8
#define POLLHUP_ 0x10
#define POLLNVAL_ 0x20
#define POLLRDHUP_ 0x2000

#define EFD_SEMAPHORE_ 1

/* An epoll instance: what it watches, by (file, descriptor) as on Linux. Items hold no
 * reference: a file that closes for good leaves every instance (epoll_forget). They are kept
 * in pages of EP_PER_PAGE, added as the set grows, up to one per descriptor a process may have. */
#define EP_MAX NFD_MAX
struct epitem {
    struct file *f;
    int32_t fd;
    uint32_t events; /* what was asked, EPOLLET/EPOLLONESHOT included; 0: a fired one-shot */
    uint64_t data;
    uint64_t seen; /* EPOLLET: the file's seq at the last report */
};
#define EP_PER_PAGE (4096 / sizeof(struct epitem))

struct epoll {
    struct epoll *next; /* every instance, for epoll_forget */
    uint32_t n;
    struct epitem *page[EP_MAX / EP_PER_PAGE];
};

/* Item `i` (below ep->n) of an instance. */
static inline struct epitem *ep_item(struct epoll *ep, uint32_t i)
{
    return &ep->page[i / EP_PER_PAGE][i % EP_PER_PAGE];
}

/* Adds an item at the end: -ENOSPC past EP_MAX, -ENOMEM when the set cannot grow. */
int epoll_add(struct epoll *ep, const struct epitem *it);

/* struct epoll_event as x86-64 lays it out (packed) */
struct epevent {
    uint32_t events;
    uint64_t data;
} __attribute__((packed));

/* The most events one epoll_wait may ask for, as Linux: INT_MAX / sizeof(struct epoll_event). */
#define EP_MAX_EVENTS (0x7fffffff / (int64_t)sizeof(struct epevent))

/* How often `f`'s readiness changed (0 for files that are always ready). */
uint64_t file_seq(const struct file *f);

/* What `f` is ready for now, as poll's revents (POLLRDHUP with POLLHUP for epoll's sake). */
uint32_t file_events(struct file *f, int depth);

void epoll_drop(struct epoll *ep, uint32_t i);

/* `f` closed for good: every instance forgets it. */
void epoll_forget(struct file *f);

/* The instance's own file closed for good. */
void epoll_free(struct epoll *ep);

/* Reports what is ready into the user's array (at most `max`): how many, or -EFAULT. */
long epoll_collect(struct epoll *ep, uint64_t uevs, int64_t max);

/* read (write 0) or write (1) of an eventfd: 8 bytes, blocking unless O_NONBLOCK while the
 * counter is 0 (read) or would pass its maximum (write). */
long eventfd_rw(struct file *f, uint64_t buf, uint64_t n, int write);

/** A new epoll instance watching nothing (freed by epoll_free when its file closes); NULL when
 * out of memory. */
struct epoll *epoll_new(void);

#endif
