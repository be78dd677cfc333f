/* Priority-inheritance futexes (FUTEX_LOCK_PI, LOCK_PI2, TRYLOCK_PI, UNLOCK_PI): the locks
 * glibc's PTHREAD_PRIO_INHERIT mutexes are built on, whose word the kernel owns while anyone
 * waits. The word is Linux's: the owner's thread id (bits 0-29), FUTEX_OWNER_DIED (bit 30)
 * and FUTEX_WAITERS (bit 31). With one vCPU and round-robin threads there is no priority to
 * lend: what is kept is the ownership, the hand-over to the oldest waiter and the errors. */
#ifndef LEL_GUEST_PROC_FUTEX_PI_H
#define LEL_GUEST_PROC_FUTEX_PI_H

#include <stdint.h>

struct proc;

#define FUTEX_TID_MASK_ 0x3fffffffu
#define FUTEX_OWNER_DIED_ 0x40000000u
#define FUTEX_WAITERS_ 0x80000000u

/* LOCK_PI for the current thread on the word at `uaddr` (4-byte aligned): 0 once it owns it
 * (taken free, keeping OWNER_DIED, or handed over by its owner), EDEADLK when it owns it
 * already, ESRCH when the owner the word names does not exist, ETIMEDOUT at tick `deadline`
 * (0: none; `timed` with deadline 0: already past), EAGAIN for `try` (TRYLOCK_PI) when owned,
 * EFAULT; a signal restarts it (ERESTARTNOINTR) as on Linux. */
long futex_pi_lock(uint64_t uaddr, int try, int timed, uint64_t deadline);

/* UNLOCK_PI: the word must name the caller (EPERM else); the oldest waiter becomes its owner
 * (the word then its tid, WAITERS while others wait) and runs, else the word is 0. */
long futex_pi_unlock(uint64_t uaddr);

/* Thread `p` ends: each lock it owns that someone waits for goes to its oldest waiter. */
void futex_pi_exit(struct proc *p);

#endif
