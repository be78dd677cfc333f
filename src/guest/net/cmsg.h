/* Ancillary data: a struct msghdr's control buffer, in Linux's x86-64 layout (struct cmsghdr:
 * a 64-bit length, level, type, then the data; each item 8-aligned). Read for sendmsg and
 * written for recvmsg with Linux's rules for a buffer that is too small. */
#ifndef LEL_GUEST_NET_CMSG_H
#define LEL_GUEST_NET_CMSG_H

#include <stdint.h>

struct file;

#define CMSG_HDR 16       /* sizeof(struct cmsghdr) */
#define MSG_CTRUNC_ 0x8
#define MSG_CMSG_CLOEXEC_ 0x40000000
#define SOL_SOCKET_ 1
#define SCM_RIGHTS_ 1
#define SCM_CREDENTIALS_ 2

/* One item of a control buffer being read: its level, type and data (a user address). */
struct cmsg_in {
    int level, type;
    uint64_t data, len;
};

/* The next item of the user's control buffer at [*p, end) into `c` (and *p moves past it):
 * 1, or 0 at the end (what is left is shorter than a header), -EINVAL for an item whose length
 * is shorter than its header or runs past the buffer, -EFAULT. */
long cmsg_next(uint64_t *p, uint64_t end, struct cmsg_in *c);

/* A control buffer being written for recvmsg: where the next item goes, what is left of it,
 * what was used (the msg_controllen that goes back) and MSG_CTRUNC when something was cut. */
struct cmsg_out {
    uint64_t p, left, used;
    uint32_t flags;
};

void cmsg_out_init(struct cmsg_out *o, uint64_t p, uint64_t len);

/* An item of `len` bytes of data, as Linux's put_cmsg: cut (MSG_CTRUNC) to what is left, and
 * nothing at all when not even a header fits. 0 or -EFAULT. */
long cmsg_put(struct cmsg_out *o, int level, int type, const void *data, uint32_t len);

/* SCM_RIGHTS: the `n` files become descriptors of the caller as far as they fit (their
 * references go to the descriptors), as Linux's scm_detach_fds; the rest are let go, and
 * MSG_CTRUNC says so. `cloexec`: MSG_CMSG_CLOEXEC. 0 or -EFAULT (the files are let go then). */
long cmsg_put_files(struct cmsg_out *o, struct file **f, int n, int cloexec);

#endif
