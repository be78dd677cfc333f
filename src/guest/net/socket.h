/* Sockets inside the sandbox: addresses, binding, listening, connecting, stream I/O (see
 * socket.c for what a program can reach). */
#ifndef LEL_GUEST_NET_SOCKET_H
#define LEL_GUEST_NET_SOCKET_H

#include <stdint.h>

struct file;
struct inode;
struct pipe;
struct sbuf;
struct dgram;

#define AF_UNIX_ 1
#define AF_INET_ 2
#define AF_INET6_ 10
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2
#define DGRAM_RCVBUF 212992 /* what a datagram socket holds (Linux's default rmem), each costing its length + 256 */
#define SOCK_OPTS 16      /* the most int options a socket keeps (more are taken, not kept) */
#define SOCK_QUEUE 32     /* the most connections a listener holds unaccepted */
#define SADDR_MAX 110     /* sockaddr_un: the family and 108 bytes of path */
#define MSG_PEEK_ 0x2
#define MSG_DONTWAIT_ 0x40

/* A socket address as the program gives and gets it: len 0 when there is none. */
struct saddr {
    uint32_t len;
    uint8_t b[SADDR_MAX]; /* b[0..1]: the family; inet: b[2..3] port (big-endian), b[4..7] address;
                             inet6: b[8..23] address; unix: b[2..] the path, or NUL and a name;
                             netlink: b[4..7] the port id, b[8..11] the multicast groups */
};

struct sock {
    struct sock *next; /* bound sockets, which bind and connect search */
    struct sock *all_next; /* every socket (/proc/net) */
    uint64_t id;           /* the "inode" /proc/net shows */
    int family, listening, connected, v6only, dgram; /* dgram: SOCK_DGRAM (net/dgram.c), and netlink's */
    int raw;                /* netlink: SOCK_RAW (else SOCK_DGRAM, which is the same there) */
    int nl_proto;           /* netlink: NETLINK_ROUTE or NETLINK_SOCK_DIAG */
    uint32_t err;           /* dgram: an error for the next receive (ECONNREFUSED) */
    struct dgram *dq, *dq_last; /* dgram: datagrams received, oldest first */
    uint64_t dq_bytes;      /* ... what they cost against DGRAM_RCVBUF */
    struct sock *dpeer;     /* dgram socketpair: the other one, until it closes */
    int qn, backlog;
    uint64_t seq;           /* bumped when a connection is queued or taken, or a direction shut */
    struct pipe *rx, *tx;   /* connected: what the peer writes, what it reads; NULL once shut down */
    struct inode *ino;      /* AF_UNIX bound to a path: its socket file (held) */
    struct saddr addr, peer;
    struct sock *queue[SOCK_QUEUE]; /* listening: connections made, not yet accepted */
    struct hconn *hc;       /* a connection through the host (net/hostconn.c), while it lasts */
    int connecting;         /* hc: connect() asked the host and has no answer yet */
    int inprogress;         /* connect() said EINPROGRESS: the next one says 0 (done), as Linux, then EISCONN */
    int reset;              /* loopback TCP: it wrote once after its peer closed (the next write is EPIPE) */
    int hc_dgram;           /* a datagram socket that sent through the host (which holds a socket for it) */
    struct sockopt {        /* int options set (SO_REUSEADDR, TCP_NODELAY...): what getsockopt reads back */
        uint16_t level, opt;
        int32_t v;
    } opts[SOCK_OPTS];
    uint32_t nopts;
    uint32_t uid;           /* the effective user that made it (SO_REUSEPORT shares a port within one) */
};

/* A part of a user buffer: address and length (an iovec). */
struct seg {
    uint64_t p, n;
};

uint16_t sa_port(const struct saddr *a);

/* The wildcard address (0.0.0.0, ::). */
int sa_wild(const struct saddr *a);

/* Whether an inet address is this guest: loopback, the wildcard, or its address on eth0. */
int sa_local(const struct saddr *a);

/* The address at `uaddr` for a socket of `family`, checked and with its length normalised. */
long sa_from_user(uint64_t uaddr, uint64_t len, int family, struct saddr *a);

/* Gives `a` back as getsockname and accept do: cut to the caller's length, the full one told. */
long sa_to_user(const struct saddr *a, uint64_t uaddr, uint64_t ulen);

/* An unnamed address of `family` (an unbound socket's), with `port`; inet: loopback when
 * `loop`, else the wildcard. */
void sa_default(struct saddr *a, int family, uint16_t port, int loop);

/* An address as a socket of `family` sees it: an IPv4 one, on an IPv6 socket, as
 * ::ffff:a.b.c.d (Linux's mapped form). */
void sa_as_seen(const struct saddr *from, int family, struct saddr *out);

/* The listening socket that a connection to `a` (or, for a unix path, to socket file `ino`)
 * reaches, or with `dgram` the datagram socket a datagram to it reaches; NULL if none. An IPv4
 * sender reaches an inet6 wildcard socket that is not v6only. */
struct sock *sock_listener(const struct saddr *a, struct inode *ino, int dgram);

struct sock *sock_new(int family);

/* The socket whose /proc/net inode number is `id`, or NULL. */
struct sock *sock_find(uint64_t id);

/* Every socket in turn: the one after `s` (NULL: the first); NULL at the end. */
struct sock *sock_next(const struct sock *s);

/* The netlink socket bound to port id `pid`, or NULL. */
struct sock *sock_netlink(uint32_t pid);

/* Ends directions of a connection: bit 0 reading, bit 1 writing (the peer then reads EOF). */
void sock_shut(struct sock *s, int how);

/* The socket's last file closed (or, queued, its listener did): its connections end. */
void sock_close(struct sock *s);

/* What socket `s` is ready for, as poll's revents. */
uint32_t sock_events(struct sock *s);

uint64_t sock_seq(const struct sock *s);

struct sock *sock_of(uint64_t fd, long *err);

/* A new descriptor for socket `s` (freed on failure); flags: SOCK_NONBLOCK, SOCK_CLOEXEC. */
long sock_install(struct sock *s, uint64_t flags);

/* Binds `s` to `a`: a unix path creates its socket file (EADDRINUSE when the name exists). */
long sock_bind(struct sock *s, struct saddr *a);

/* EADDRINUSE when bound inet socket `s` may not listen on its address, as Linux: another
 * socket listens there already (two SO_REUSEADDR sockets may be bound there, not both listen,
 * unless both have SO_REUSEPORT); else 0. */
long sock_listen_check(const struct sock *s);

/* Joins `c` to a new socket queued on listener `l` (which is connected to `to`). */
long sock_join(struct sock *c, struct sock *l, const struct saddr *to);

/* Two connected unix stream sockets. */
long stream_pair(struct sock **a, struct sock **b);

/* read/recv (write 0) or write/send (1) on a socket; `msg`: MSG_* flags. */
/* An int option the socket keeps (setsockopt), or `dflt` when it was never set. */
int sock_opt(const struct sock *s, int level, int opt, int dflt);

long sock_io(struct file *f, uint64_t buf, uint64_t n, int write, uint64_t msg);

/* The same on a connected stream socket's pipes, whatever its peer (sock_io's second half). */
long sock_pipe_io(struct sock *s, struct file *f, uint64_t buf, uint64_t n, int write, uint64_t msg);

/* /proc/net/tcp, tcp6, udp, udp6 and unix: every socket of the kind, in Linux's columns (what
 * netstat reads; timers, uid and the like are 0). */
void gen_net(struct sbuf *b, int kind);

#endif
