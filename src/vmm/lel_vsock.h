/* The host's end of the net transport (lel_guest_abi.h, "The net transport"): the two rings
 * in a VM's memory, the guest's doorbell as an eventfd, the interrupt the other way. It moves
 * messages, nothing more; what they mean is src/net's.
 *
 * Threads: one user at a time (the net loop that owns the sandbox's endpoint), between
 * lel_vsock_open and lel_vsock_close, which must come before lel_vm_destroy. Everything read
 * from the rings is checked: a guest that breaks the format gets -EPROTO, never a host fault. */
#ifndef LEL_VSOCK_H
#define LEL_VSOCK_H

#include "../guest/lel_guest_abi.h"
#include "lel_vmm.h"

#include <stdint.h>
#include <sys/uio.h>

typedef struct lel_vsock lel_vsock_t;

/** Attaches to the VM's net area with a new attachment (the guest ends whatever connections
 * it had and empties the rings), offering the guest `host_window` bytes of credit per
 * connection. Returns 0, -ENODEV for a guest without a net area (or a malformed one), -errno. */
int lel_vsock_open(lel_vm_t *vm, uint32_t host_window, lel_vsock_t **out);
void lel_vsock_close(lel_vsock_t *vs);

/** An eventfd that becomes readable when the guest rang (read it with lel_vsock_ack). */
int lel_vsock_fd(const lel_vsock_t *vs);
void lel_vsock_ack(lel_vsock_t *vs);
/** Makes that eventfd readable as the guest's ring would (its owner looks at the ring again). */
void lel_vsock_poke(lel_vsock_t *vs);
/** Whether the guest took the attachment (the rings are in use only after it did). */
int lel_vsock_ready(const lel_vsock_t *vs);
/** Bytes of a connection the guest takes unacknowledged (its window). */
uint32_t lel_vsock_guest_window(const lel_vsock_t *vs);

/** The next message from the guest: its header, and its payload as up to two pieces of the
 * ring (valid until lel_vsock_next). Returns 1, 0 when there is none, -EPROTO when the
 * guest's ring makes no sense. */
int lel_vsock_peek(lel_vsock_t *vs, struct lel_net_msg *m, struct iovec iov[2]);
/** Consumes the message lel_vsock_peek returned. */
void lel_vsock_next(lel_vsock_t *vs);
/** Copies `n` bytes of a message's payload from offset `off` (pieces as lel_vsock_peek gave). */
void lel_vsock_copy(const struct iovec iov[2], size_t off, void *dst, size_t n);

/** Payload bytes a message could carry now (0: the ring is full; the guest is asked to say
 * when it has room). */
uint32_t lel_vsock_space(lel_vsock_t *vs);
/** The payload area of a message of `len` bytes (at most lel_vsock_space), as one or two
 * pieces, to be filled and then published with lel_vsock_commit. */
void lel_vsock_reserve(lel_vsock_t *vs, uint32_t len, struct iovec iov[2]);
void lel_vsock_commit(lel_vsock_t *vs, uint32_t conn, uint16_t type, uint16_t flags, uint32_t arg, uint32_t len);
/** A whole message from host memory (two parts); 0, or -EAGAIN when the ring is full. */
int lel_vsock_send(lel_vsock_t *vs, uint32_t conn, uint16_t type, uint16_t flags, uint32_t arg, const void *p,
                   uint32_t n, const void *p2, uint32_t n2);
/** After a round of work: the guest is interrupted if it waits for messages or for room, and
 * asked to ring when it writes next. Returns 1 when it wrote more meanwhile: the caller must
 * then look again (peek), since the guest was told not to ring for it. */
int lel_vsock_idle(lel_vsock_t *vs);

#endif
