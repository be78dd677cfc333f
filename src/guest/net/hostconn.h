/* Connections through the host: stream sockets to addresses outside the guest (the host
 * connects for the sandbox), connections the host opens to the guest's listeners (requests
 * lelantosd forwards to a sandbox's port), and datagrams to outside addresses, all carried by
 * the net rings (lel_guest_abi.h, "The net transport"). A connected socket keeps its two
 * pipes as a loopback one does, the kernel (this module) holding the other end of each, so
 * reading, writing, blocking and readiness are the pipes'. */
#ifndef LEL_GUEST_NET_HOSTCONN_H
#define LEL_GUEST_NET_HOSTCONN_H

#include <stdint.h>

struct sock;
struct saddr;
struct seg;

/* The guest's own address as the sockets it connects out with see it, and the resolver's
 * (/etc/resolv.conf names it; lelantosd answers it): 10.0.2.15 and 10.0.2.3. */
#define HC_GUEST_V4 0x0a00020fu
#define HC_DNS_V4 0x0a000203u
#define HC_OPT_NODELAY 1 /* LEL_NET_OPT_* */
#define HC_OPT_KEEPALIVE 2

/** Boot: the net area at guest-physical `gpa` (`bytes`, the header page and two rings) is the
 * module's; the mailbox tells the host where it is. */
void hc_init(uint64_t gpa, uint64_t bytes);

/** The agent's loop, between steps and on the net interrupt: a new attachment (every
 * connection then ends), the host's messages, and what the connections have to send. Cheap
 * when nothing changed. Returns 1 when it stopped with the host's messages still waiting (the
 * caller polls again before it halts: the host will not interrupt for them). */
int hc_poll(void);

/** connect() of a stream socket to an address outside the guest: asks the host, then waits
 * for its answer (nonblock: -EINPROGRESS at once). Returns 0 or -errno. */
long hc_connect(struct sock *s, const struct saddr *to, int nonblock);

/** The socket's connection has something to send now (after a write, a read, a shutdown). */
void hc_touch(struct sock *s);

/** The socket's last file closed: what it wrote still goes, then the host is told. */
void hc_sock_closed(struct sock *s);

/** One datagram of the user's segments (n bytes) from socket `s` (bound to `from`) to `to`
 * outside the guest. Returns n (a datagram the rings cannot take now is dropped, as UDP may). */
long hc_dgram_send(struct sock *s, const struct saddr *to, const struct seg *sg, int nsg, uint64_t n);

/** A socket option the host applies to its socket (TCP_NODELAY, SO_KEEPALIVE). */
void hc_setopt(struct sock *s, int opt, int on);

#endif
