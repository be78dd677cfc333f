/* Vectored I/O, which the socket syscalls share (sendmsg/recvmsg on stream sockets). */
#ifndef LEL_GUEST_SYS_SYS_IO_H
#define LEL_GUEST_SYS_SYS_IO_H

#include <stdint.h>

struct file;

/* readv/writev on `f`, and sendmsg/recvmsg with MSG_* flags `msg`: one read or write per
 * vector element. */
long file_rwv(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg);

#endif
