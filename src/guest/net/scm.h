/* sendmsg and recvmsg on stream sockets, with their ancillary data: descriptors passed over
 * AF_UNIX (SCM_RIGHTS), as Linux passes them. A sendmsg's descriptors are held with the stream
 * position of the bytes it wrote (fs/pipe.h's pipe_rights); the recvmsg that reads from that
 * position gets them as new descriptors, and reads no further than those bytes; a read that
 * comes to them from before stops short of them, and one without room for them (or a plain
 * read) lets them go, as Linux closes what does not fit. MSG_PEEK gives copies and leaves them.
 * Up to PIPE_RIGHTS_MAX descriptors a message (Linux: 253). A socket passed over itself keeps
 * itself alive (Linux collects such cycles; here they stay until the sandbox ends). */
#ifndef LEL_GUEST_NET_SCM_H
#define LEL_GUEST_NET_SCM_H

#include <stdint.h>

struct file;

/* `h`: the user's msghdr (name, namelen, iov, iovlen, control, controllen, flags) at `umsg`. */
long scm_sendmsg(struct file *f, const uint64_t h[7], uint64_t msg);
long scm_recvmsg(struct file *f, uint64_t umsg, const uint64_t h[7], uint64_t msg);

#endif
