/* /dev: its nodes at boot, and reads of the character devices. */
#ifndef LEL_GUEST_FS_DEV_H
#define LEL_GUEST_FS_DEV_H

#include <stdint.h>

struct inode;

/* /dev with the character devices programs expect, and the links into /proc/self/fd that
 * shells and scripts use (echo oops > /dev/stderr, cat /dev/stdin, diff <(...) via /dev/fd). */
void make_devices(void);

/* /dev/null reads as empty, /dev/zero as zeros, /dev/random and /dev/urandom as random bytes. */
long dev_read(struct inode *ino, uint64_t buf, uint64_t n);

/** Fills `n` bytes of user memory at `buf` with random bytes (up to 32 MiB); how many, or
 * -EFAULT. */
long dev_random_read(uint64_t buf, uint64_t n);

#endif
