#ifndef LEL_GUEST_SYS_SYS_POLL_H
#define LEL_GUEST_SYS_SYS_POLL_H

#include <stdint.h>

long sys_epoll_create(uint64_t flags);

long sys_epoll_ctl(uint64_t epfd, uint64_t op, uint64_t fd, uint64_t uev);

long sys_eventfd(uint64_t initval, uint64_t flags);

/* poll and ppoll (ts: a struct timespec, 0 for none; ppoll's signal mask is not applied) */
long sys_poll(uint64_t ufds, uint64_t n, int64_t timeout_ms, uint64_t ts);

/* epoll_wait, epoll_pwait and epoll_pwait2 (`ts`), as poll */
long sys_epoll_timed(uint64_t epfd, uint64_t uevs, int64_t max, int64_t timeout_ms, uint64_t ts);

/* select and pselect6 over poll_wait: fd_sets of the 64 descriptors a process can have. `tv`
 * is a struct timeval (select) or timespec (pselect6), 0 for none; pselect6's mask is not
 * applied. The sets come back holding the ready descriptors; the count of bits is returned. */
long sys_select(uint64_t nfds, uint64_t urd, uint64_t uwr, uint64_t uex, uint64_t tv, int tv_is_ns);

#endif
