#ifndef LEL_GUEST_SYS_SYS_SOCKET_H
#define LEL_GUEST_SYS_SYS_SOCKET_H

#include <stdint.h>

long sys_socket(uint64_t family, uint64_t type, uint64_t proto);

long sys_bind(uint64_t fd, uint64_t uaddr, uint64_t len);

long sys_listen(uint64_t fd, int64_t backlog);

long sys_connect(uint64_t fd, uint64_t uaddr, uint64_t len);

long sys_accept(uint64_t fd, uint64_t uaddr, uint64_t ulen, uint64_t flags);

long sys_socketpair(uint64_t family, uint64_t type, uint64_t proto, uint64_t usv);

long sys_shutdown(uint64_t fd, uint64_t how);

long sys_sockname(uint64_t fd, uint64_t uaddr, uint64_t ulen, int peer);

/* Options are accepted and, but for IPV6_V6ONLY, change nothing: there is no network to tune. */
long sys_setsockopt(uint64_t fd, uint64_t level, uint64_t opt, uint64_t uval, uint64_t len);

long sys_getsockopt(uint64_t fd, uint64_t level, uint64_t opt, uint64_t uval, uint64_t ulen);

/* sendto and recvfrom: on a stream socket (connected) the address is not used and none is
 * given back (its length comes back 0); a datagram socket sends to it and tells it. */
long sys_sendrecv(uint64_t fd, uint64_t buf, uint64_t n, uint64_t msg, uint64_t uaddr, uint64_t ulen, int write);

/* sendmsg and recvmsg: the iovecs in turn; no control data (descriptor passing) either way. */
long sys_msg(uint64_t fd, uint64_t umsg, uint64_t msg, int write);

#endif
