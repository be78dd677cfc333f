#ifndef LEL_GUEST_SYS_SYS_TIME_H
#define LEL_GUEST_SYS_SYS_TIME_H

#include <stdint.h>

long sys_setitimer(uint64_t which, uint64_t unew, uint64_t uold);

/* alarm: seconds left of the previous one, rounded to the nearest (at least 1 while armed), as
 * Linux says them */
long sys_alarm(uint64_t secs);

/* times: user time (system time is not split off), its and its reaped children's, and the
 * clock, all in 1/100 s. */
long sys_times(uint64_t ubuf);

long sys_clock_gettime(uint64_t clk, uint64_t ts);

/* getrandom and /dev/urandom: all that was asked, up to Linux's 32 MiB per call. */
long sys_getrandom(uint64_t buf, uint64_t n);

/* futex: WAIT and WAKE, with or without a bitset (any bitset matches any), and (CMP_)REQUEUE:
 * what glibc, musl and Go build their locks, condition variables and joins on. A futex is
 * named by the guest-physical address of its word, so private and shared ones are the same. */
long sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t utime, uint64_t uaddr2, uint64_t val3);

long sys_nanosleep(uint64_t ureq);

#endif
