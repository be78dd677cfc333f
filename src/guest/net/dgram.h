/* Datagram sockets (UDP over loopback, AF_UNIX SOCK_DGRAM): their queues, send and receive. */
#ifndef LEL_GUEST_NET_DGRAM_H
#define LEL_GUEST_NET_DGRAM_H

#include "../mm/page.h"
#include "socket.h"
#include <stdint.h>

struct file;

#define DGRAM_MAX 65507     /* UDP's largest payload */

struct dgram {
    struct dgram *next;
    struct saddr from;
    uint32_t len;
    uint8_t hlim, tclass; /* inet6: the hop limit and traffic class it came with (IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS) */
    void *pages[(DGRAM_MAX + PAGE_SIZE - 1) / PAGE_SIZE];
};

void dgram_flush(struct sock *s);

/* sendto/sendmsg/write: one datagram of the segments to `to` (NULL: the connected peer). */
long dgram_send(struct file *f, const struct seg *sg, int nsg, uint64_t msg, const struct saddr *to);

/* recvfrom/recvmsg/read: the next datagram into the segments; `from` gets its sender,
 * `*trunc` whether it was cut. Returns the bytes given (MSG_TRUNC: the datagram's length). */
long dgram_recv(struct file *f, const struct seg *sg, int nsg, uint64_t msg, struct saddr *from, int *trunc);

/* connect on a datagram socket: the default destination, and the only sender taken. */
long dgram_connect(struct sock *s, struct saddr *a);

uint32_t dgram_events(const struct sock *s);

/* sendto and recvfrom on a datagram socket: `uaddr` the destination (its length `ulen`), or
 * where the sender goes (its length at `ulen`). */
long dgram_sendrecv(struct file *f, uint64_t buf, uint64_t n, uint64_t msg, uint64_t uaddr, uint64_t ulen, int write);

/* sendmsg and recvmsg on a datagram socket (h: the msghdr): the vector is one datagram; the
 * sender's address, its full length and MSG_TRUNC come back. On inet6 sockets the ancillary
 * data of RFC 3542 that Linux has for UDP: IPV6_HOPLIMIT and IPV6_TCLASS sent with a datagram
 * (or the socket's IPV6_UNICAST_HOPS and IPV6_TCLASS, else 64 and 0) and received when
 * IPV6_RECVHOPLIMIT or IPV6_RECVTCLASS is on. */
long dgram_msg(struct file *f, uint64_t umsg, const uint64_t h[7], uint64_t msg, int write);

/* readv and writev on a datagram socket: the vector is one datagram. */
long dgram_rwv(struct file *f, uint64_t iov, uint64_t cnt, int write, uint64_t msg);

/* A datagram from outside (the host), in two parts of kernel memory, into `r`'s queue: dropped
 * when it is full or memory is short, as UDP may. */
void dgram_deliver(struct sock *r, const void *p1, uint32_t n1, const void *p2, uint32_t n2, const struct saddr *from);

/* socketpair(AF_UNIX, SOCK_DGRAM): two unnamed sockets, each the other's only destination. */
long dgram_pair(struct sock **a, struct sock **b);

#endif
