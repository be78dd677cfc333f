/* The contract between the VMM (src/vmm) and our guest kernel (src/guest): where things live in
 * guest-physical memory, the boot information, the I/O ports and the host channel mailbox.
 * Both sides include this header; it uses only fixed-width types so it builds freestanding. */
#ifndef LEL_GUEST_ABI_H
#define LEL_GUEST_ABI_H

#include <stdint.h>

/* Guest-physical layout set up by the VMM before the first instruction. */
#define LEL_GPA_PML4 0x1000ULL
#define LEL_GPA_PDPT 0x2000ULL
#define LEL_GPA_PD 0x3000ULL /* LEL_MAX_PD pages of 2 MiB entries, one per GiB */
#define LEL_MAX_PD 16
#define LEL_GPA_GDT 0x13000ULL
#define LEL_GPA_TSS 0x14000ULL
#define LEL_GPA_VIF 0x15000ULL /* PVM virtual-interrupt page (if_ at +0, pending at +1, cr2 at +8) */
#define LEL_GPA_BOOT 0x16000ULL
#define LEL_GPA_IDT 0x17000ULL
#define LEL_GPA_CHAN 0x18000ULL  /* host channel mailbox, one page */
#define LEL_GPA_PDPT_HIGH 0x19000ULL /* PDPT of PML4 slot 511 (the kernel image window) */
#define LEL_GPA_BULK 0x200000ULL      /* 2 MiB for request and response bodies (commands, files) */
#define LEL_BULK_SIZE 0x200000ULL
#define LEL_BULK_HALF (LEL_BULK_SIZE / 2) /* a command's stdout goes to the first half, stderr to the second */
#define LEL_GPA_STACK_TOP 0x9f000ULL
#define LEL_GPA_KERNEL 0x100000ULL /* the flat kernel image is loaded here, entry at its start */
#define LEL_GPA_WORK 0x1000000ULL  /* 16 MiB: memory the guest hands to workloads (touch/checksum) */
#define LEL_KERNEL_MAX (LEL_GPA_WORK - LEL_GPA_KERNEL)

/* Virtual layout. User space owns PML4 slots 0..255 (static Linux executables are linked at
 * 0x400000); the kernel lives in the upper half: its image and low memory at KERNEL_BASE
 * (slot 511, -mcmodel=kernel) and all of RAM at DMAP_BASE (slot 273; slot 256 is unusable
 * under PVM). The VMM also identity-maps RAM in slot 0 for the first instructions only. */
#define LEL_KERNEL_BASE 0xffffffff80000000ULL /* VA of GPA 0 for the first GiB */
#define LEL_DMAP_BASE 0xffff888000000000ULL   /* VA of GPA 0 for all of RAM */
#define LEL_PML4_KERNEL_SLOT 511
#define LEL_PML4_DMAP_SLOT 273

#define LEL_SEL_KCODE 0x10
#define LEL_SEL_KDATA 0x18
#define LEL_SEL_TSS 0x40

#define LEL_PORT_CONSOLE 0x3f8  /* 16550 THR/RBR; LSR at +5 */
#define LEL_PORT_DOORBELL 0x510 /* guest -> host: 32-bit write of an LEL_BELL_* value */
#define LEL_PORT_PVM_IRQ 0x80   /* PVM: "deliver my pending interrupt" doorbell */
#define LEL_PORT_NETBELL 0x514  /* guest -> host: the net rings changed (a write of any value; see lel_net_area) */

#define LEL_VEC_TIMER 0x40
#define LEL_VEC_CHANNEL 0x41 /* host -> guest: MSI to APIC 0 */
#define LEL_VEC_NET 0x42     /* host -> guest: MSI, the net rings changed */

#define LEL_BOOT_MAGIC 0x544f4f424c454cULL /* "LELBOOT" */
#define LEL_BOOT_PVM 1u                    /* running under PVM: interrupt flag lives in the VIF page */

struct lel_boot_info {
    uint64_t magic;
    uint32_t flags;
    uint32_t tick_hz;
    uint64_t mem_bytes;   /* RAM below the MMIO hole */
    uint64_t initrd_gpa;  /* the root filesystem (cpio newc), page-aligned at the top of RAM */
    uint64_t initrd_size;
    uint64_t epoch_ms;    /* wall clock at boot */
    uint64_t tsc_khz;     /* the TSC's rate (KVM_GET_TSC_KHZ); 0: unknown, the timer never stops */
    uint64_t seed[4];     /* 256 random bits from the host for the guest's random numbers */
    /* the read-only root filesystem image (lel_rofs_abi.h) as read-only memory at LEL_GPA_ROFS,
     * the root's lower layer; 0 bytes: none (the cpio above is the root) */
    uint64_t rofs_gpa, rofs_bytes;
    uint64_t disk_bytes; /* what the root's writable layer may hold in file data; 0: memory's limit */
};

enum lel_bell { LEL_BELL_READY = 1, LEL_BELL_RESPONSE = 2, LEL_BELL_FATAL = 3,
                LEL_BELL_EVENT = 4 /* a command ended (collect it with LEL_OP_CMD_RESULT), or a streamed one
                                      has output or stdin room (LEL_OP_CMD_POLL says which) */ };

enum lel_op {
    LEL_OP_PING = 1,     /* ret[0] = arg[0] + 1 */
    LEL_OP_TOUCH = 2,    /* fill arg[0] MiB at LEL_GPA_WORK with a pattern of seed arg[1]; ret[0] = checksum */
    LEL_OP_CHECKSUM = 3, /* ret[0] = checksum of arg[0] MiB at LEL_GPA_WORK */
    LEL_OP_TICKS = 4,    /* ret[0] = timer ticks since boot, ret[1] = timer interrupts taken (the timer stops when idle) */
    LEL_OP_MISBEHAVE = 5, /* for tests of host safety: arg[0] = enum lel_misbehave; does not answer */
    LEL_OP_SPIN = 6,      /* run lel_spin(arg[0]) (a fixed compute loop); ret[0] = its result */
    LEL_OP_RUN_TEST = 7,  /* run the built-in static test executable in user mode: ret[0] = exit code,
                             ret[1] = bytes of its stdout+stderr copied to the mailbox data area */
    LEL_OP_EXEC = 8,      /* run argv = arg[0] NUL-separated strings in the data area (argv[0] a path)
                             to its exit or arg[1] seconds (0: 15): ret[0] = status, ret[1] = output
                             bytes in the data area */
    LEL_OP_CMD = 9,       /* start struct lel_cmd_req (in the bulk area): ret[0] = its id; it runs on
                             after the answer, and LEL_BELL_EVENT says when it ended */
    LEL_OP_FILE_WRITE = 10, /* bulk = path, NUL, data; arg[0] = path bytes with the NUL, arg[1] = offset,
                               arg[2] = data bytes, arg[3] = 1: create or truncate first (parents made) */
    LEL_OP_SET_CLOCK = 12,  /* arg[0] = wall clock in ms now, arg[2] = TSC kHz (0: same), chan->seed random bits: after a
                               restore the guest's time moves on and its random numbers part from its siblings' */
    LEL_OP_CMD_RESULT = 13, /* arg[0] = command id, 0: any ended one. Status LEL_ST_EAGAIN: not ended.
                               ret[0] = exit status, ret[1]/ret[2] = stdout/stderr bytes (bulk
                               halves), ret[3] = LEL_CMD_* flags | id << 32. The command is freed.
                               LEL_CMD_LAST: no other ended one waits (older guests never say so) */
    LEL_OP_CMD_KILL = 14,   /* arg[0] = command id, arg[1] = signal (0: SIGKILL) to every process still in it
                               (as a terminal signals its foreground group); older guests send SIGKILL */
    LEL_OP_FILE_READ = 11,  /* bulk = path, NUL; arg[1] = offset, arg[2] = max bytes; ret[0] = 1 file or
                               2 directory, ret[1] = bytes in bulk, ret[2] = file size. A directory comes
                               as lines "<f|d|l> <size> <name>\n" */
    LEL_OP_TRIM = 15,       /* free-page reporting: ret[0] = n page numbers (uint32, GPA >> 12) in bulk,
                               free pages the host may now discard (MADV_DONTNEED); the guest keeps them
                               unused until LEL_OP_TRIM_DONE. n = 0: nothing worth it */
    LEL_OP_TRIM_DONE = 16,  /* the host discarded what LEL_OP_TRIM listed: the guest may use it again */
    LEL_OP_FILE_UPLOAD = 17, /* a chunk of a file written under a temporary name (".lelantos-upload-<id>"
                                beside it) that replaces the file at the end, as mv does: bulk = path, NUL,
                                data; arg[0] = path bytes with the NUL, arg[1] = offset, arg[2] = data bytes,
                                arg[3] = LEL_UP_* | id << 32. LEL_UP_FIRST makes missing parents and the
                                temporary (ret[0] = its id, for the later chunks); LEL_UP_LAST renames it over
                                the path (the mode of the file it replaces kept); LEL_UP_ABORT removes it. A
                                final symlink is followed. Any error removes the temporary. */
    LEL_OP_FILE_DELETE = 18, /* bulk = path, NUL; arg[0] = its bytes with the NUL: removes a file, a symlink
                                (not what it names) or an empty directory */
    LEL_OP_CMD_READ = 19,   /* arg[0] = id of a command started with LEL_CMD_STREAM: what it wrote since the last
                               read, stdout in the first bulk half and stderr in the second; ret[1]/ret[2] = their
                               bytes, ret[3] = LEL_CMD_ENDED once it ended (the rest comes with LEL_OP_CMD_RESULT).
                               Its writers, blocked while a stream held LEL_BULK_HALF unread bytes, go on. */
    LEL_OP_CMD_STDIN = 20,  /* arg[0] = id of a command started with LEL_CMD_STDIN_PIPE, arg[1] = bytes in bulk for
                               its stdin pipe, arg[2] = 1: close it after them. ret[0] = bytes taken: the rest did
                               not fit (LEL_POLL_STDIN says when it has room; the close waits for them too).
                               Status EPIPE: nobody reads it any more (the bytes are dropped), ENOENT: no such
                               command, EINVAL: its stdin is not a pipe, or closed */
    LEL_OP_CMD_POLL = 21,   /* the commands with something for the host, as ret[0] pairs of uint32 (id, LEL_POLL_*)
                               in the mailbox data area (ret[1] = their bytes); watches with unread events come
                               with LEL_POLL_WATCH and the watch's id */
    LEL_OP_CMD_RESIZE = 22, /* arg[0] = id of a command started with LEL_CMD_PTY, arg[1] = columns, arg[2] = rows:
                               its terminal's window size (TIOCSWINSZ; SIGWINCH to its foreground group).
                               Status ENOENT: no such command, EINVAL: no pty (or it ended) */
    LEL_OP_WATCH_ADD = 24,  /* bulk = path, NUL; arg[0] = its bytes with the NUL, arg[1] = 1: its whole tree. Watches
                               that directory (a symlink to one is followed): ret[0] = the watch's id. Status ENOENT,
                               ENOTDIR, ENOSPC (HWATCH_MAX watches, or a tree too large), ENOMEM. Its events ring
                               LEL_BELL_EVENT once until they are read */
    LEL_OP_WATCH_READ = 25, /* arg[0] = a watch's id: its queued events into bulk as struct lel_watch_rec records, as
                               many as fit; ret[0] = records, ret[1] = bytes, ret[2] = LEL_WATCH_* flags. ENOENT */
    LEL_OP_WATCH_REMOVE = 26, /* arg[0] = a watch's id, 0: all of them (the host forgets its watches with the VM: a
                                 restored guest still has them). ENOENT */
    LEL_OP_FILE_STAT = 27,  /* bulk = path, NUL; arg[0] = its bytes with the NUL, arg[1] = depth. 0: the path itself
                               (not followed); n > 0: the directory it names (followed), its entries down to n levels
                               (at most 255; symlinks are not followed), in no order. Into bulk as struct lel_stat_rec records; ret[0] =
                               records, ret[1] = bytes, ret[2] = 1 when more did not fit. ENOENT, ENOTDIR. arg[2] = bytes of
                               a name prefix after the path's NUL: each record carries its node's (a symlink: its final
                               target's) extended attributes whose names begin with it (none when 0; older guests: none) */
    LEL_OP_FILE_UPLOAD_PAGES = 28, /* LEL_OP_FILE_UPLOAD without the data in bulk: the guest gives the host pages of
                                the temporary to fill instead. arg[2] bytes (at most LEL_UP_PAGES_MAX) at arg[1]
                                (a multiple of 4096): their pages, not cleared, as ret[1] page numbers (uint32,
                                GPA >> 12; fewer when the disk is short, ENOSPC for none) at LEL_BULK_HALF, which the host fills whole (zeroes past the data);
                                the temporary is held, unwritable by programs, until the next request of the
                                upload. LEL_UP_LAST (arg[2] 0): all filled, arg[1] = the file's size; renamed as
                                LEL_OP_FILE_UPLOAD does. The temporary is 0600 until then. Older guests: ENOSYS */
    LEL_OP_FILE_XATTRS = 29, /* replaces a node's extended attributes of one prefix (E2B's metadata: "user.e2b."):
                                bulk = path, NUL, the prefix (arg[2] bytes, at least one), then at the next multiple of 8
                                arg[3] bytes of struct lel_xattr_rec records, each name beginning with the prefix;
                                arg[0] = path bytes with the NUL, arg[1] = an upload's id (LEL_OP_FILE_UPLOAD's ret[0]):
                                that upload's temporary of the path, which is first given the attributes of the file it
                                replaces outside the prefix (as an upload in place would keep them); 0: the path itself (a
                                final symlink followed). Whole or not at all. EINVAL (malformed), ENOENT, EPERM (no regular
                                file or directory), ENOSPC (XATTR_INODE_MAX, 1 MiB a node, or the disk), ENOMEM. Older
                                guests: ENOSYS */
};

enum { LEL_POLL_OUTPUT = 1, /* a streamed command has output not read yet (LEL_OP_CMD_READ) */
       LEL_POLL_STDIN = 2,  /* its stdin pipe has room again after a write that did not fit */
       LEL_POLL_ENDED = 4,  /* it ended (LEL_OP_CMD_RESULT) */
       LEL_POLL_WATCH = 8 }; /* the id is a watch's, with events not read yet (LEL_OP_WATCH_READ) */

/* A watch's event (LEL_OP_WATCH_READ): `len` bytes of its path relative to the watched
 * directory ("." for the directory itself) follow, then padding to 8 bytes. */
struct lel_watch_rec {
    uint32_t type; /* LEL_WEV_* (E2B's EventType numbers) */
    uint32_t len;
};
enum { LEL_WEV_CREATE = 1, LEL_WEV_WRITE = 2, LEL_WEV_REMOVE = 3, LEL_WEV_RENAME = 4, LEL_WEV_CHMOD = 5 };
enum { LEL_WATCH_LOST = 1, /* events were lost (the queue was full, or the tree outgrew the index) */
       LEL_WATCH_GONE = 2, /* the directory was removed: the watch has nothing more to say */
       LEL_WATCH_MORE = 4 }; /* more events are queued than fit */

/* An entry (LEL_OP_FILE_STAT): name_len bytes of its path (relative to the listed directory;
 * none for depth 0), then target_len bytes of a symlink's final target as an absolute path
 * (none when it leads nowhere), then padding to 8 bytes, then xattr_len bytes of its
 * attributes (struct lel_xattr_rec records, each padded to 8). */
struct lel_stat_rec {
    uint32_t mode;  /* lstat's */
    uint32_t tmode; /* a symlink: what it finally leads to's mode (0: nothing) */
    uint32_t uid, gid;
    uint64_t size;
    int64_t mtime;  /* seconds */
    uint16_t name_len, target_len;
    uint32_t xattr_len; /* bytes of struct lel_xattr_rec records after the target (older guests: 0) */
};

/* An extended attribute (LEL_OP_FILE_STAT's answers, LEL_OP_FILE_XATTRS' requests): name_len bytes
 * of its name (1-255, no NUL), value_len bytes of its value (at most 65536), then padding to 8. */
struct lel_xattr_rec {
    uint16_t name_len, pad;
    uint32_t value_len;
};

/* LEL_OP_FILE_UPLOAD's arg[3]; OWNED (with FIRST): the file and the parents it makes are owned by
 * uid and gid (arg[3] >> 16) & 0xffff (else root's). XATTRS (with LAST): the temporary takes the
 * extended attributes of the file it replaces that it lacks, as a write in place would keep them
 * (ENOSPC/ENOMEM fail the upload); with XATTRS_NO_META, not those of E2B's metadata
 * (LEL_META_PREFIX: such an upload replaces them). Older guests ignore both: the file gets none. */
enum { LEL_UP_FIRST = 1, LEL_UP_LAST = 2, LEL_UP_ABORT = 4, LEL_UP_OWNED = 8, LEL_UP_XATTRS = 16, LEL_UP_XATTRS_NO_META = 32 };
#define LEL_META_PREFIX "user.e2b." /* E2B's file metadata: its keys are attributes of this prefix */
#define LEL_UP_PAGES_MAX (64ULL << 20) /* what one LEL_OP_FILE_UPLOAD_PAGES hands out */

enum lel_misbehave {
    LEL_BAD_SPIN = 1,        /* loop forever with interrupts off */
    LEL_BAD_TRIPLE_FAULT = 2,
    LEL_BAD_CONSOLE_SPAM = 3, /* endless console output */
    LEL_BAD_DOORBELL_SPAM = 4,
    LEL_BAD_WILD_WRITE = 5,   /* write past the end of guest RAM */
    LEL_BAD_BELL_FLOOD = 6,   /* endless RESPONSE and EVENT doorbells that answer nothing */
    LEL_BAD_SILENT = 7,       /* takes the request and never answers it (goes on running) */
    LEL_BAD_OUT_OF_ORDER = 8, /* answers with a stale and a future sequence number, then truly (ret[0] 0x600d) */
};

/* result flags (LEL_OP_CMD_RESULT's ret[3], LEL_OP_CMD_READ's); SIGNALED: a signal ended its first
 * process (the status is 128 + it) */
enum { LEL_CMD_STDOUT_TRUNCATED = 1, LEL_CMD_STDERR_TRUNCATED = 2, LEL_CMD_TIMED_OUT = 4, LEL_CMD_SIGNALED = 8,
       LEL_CMD_ENDED = 16, LEL_CMD_LAST = 32 };
/* lel_cmd_req.flags. BACKGROUND: nobody collects it (a template's startCmd). STREAM: its output
 * is read as it comes (LEL_OP_CMD_READ) and a writer waits while the host has not read a
 * stream's LEL_BULK_HALF bytes, instead of output past that being dropped. STDIN_PIPE: its
 * stdin is a pipe the host writes (LEL_OP_CMD_STDIN) instead of the request's bytes. */
enum { LEL_CMD_BACKGROUND = 1, LEL_CMD_STREAM = 2, LEL_CMD_STDIN_PIPE = 4,
       LEL_CMD_IDS = 8, /* the first process's user and group ids are lel_cmd_req.id (else root) */
       /* PTY: the command runs on a new pseudo-terminal of its own (its controlling terminal, stdin, stdout
        * and stderr), its output streamed as stdout (the terminal's bytes, after output processing) and
        * LEL_OP_CMD_STDIN typing at it; lel_cmd_req.stdin_len carries its window size then, columns |
        * rows << 16 (there are no stdin bytes), so the request's layout is the same for older guests,
        * which run it without a terminal */
       LEL_CMD_PTY = 16 };

/* A command request: argc + envc NUL-terminated strings, then the cwd (NUL-terminated, or
 * empty), then stdin_len bytes of stdin. */
struct lel_cmd_req {
    uint32_t argc, envc;
    uint64_t stdin_len;
    uint64_t timeout_ms;
    uint32_t flags;
    uint32_t id; /* with LEL_CMD_IDS: its uid and gid (E2B's `user` is 1000:1000); older hosts write 0 */
};

enum lel_status { LEL_ST_OK = 0, LEL_ST_ENOENT = 2, LEL_ST_EAGAIN = 11, LEL_ST_EISDIR = 21, LEL_ST_EINVAL = 22,
                  LEL_ST_EPIPE = 32, LEL_ST_ENOSYS = 38 };

/* The mailbox. The host writes op/arg and then bumps req_seq and raises LEL_VEC_CHANNEL; the
 * guest answers in status/ret, sets resp_seq = req_seq and rings LEL_BELL_RESPONSE. The host
 * never trusts anything it reads back beyond comparing sequence numbers and copying ret. */
#define LEL_CHAN_DATA_OFF 256 /* bytes of the mailbox page after the struct: program output */
#define LEL_CHAN_DATA_MAX (4096 - LEL_CHAN_DATA_OFF)

struct lel_chan {
    volatile uint32_t req_seq, resp_seq;
    uint32_t op, status;
    uint64_t arg[4];
    uint64_t ret[4];
    volatile uint64_t ticks;
    uint32_t fatal_vector; /* set with LEL_BELL_FATAL */
    volatile uint32_t events; /* bumped with each LEL_BELL_EVENT */
    uint64_t fatal_rip;
    /* guest pages in use (kernel, processes, files), written each time the guest goes idle, so
     * the host's metrics read it without waking the guest; 0 from guests older than the field */
    volatile uint64_t mem_used_pages;
    /* pages of file data in the root file system (the sandbox's disk), written with the above */
    volatile uint64_t disk_used_pages;
    /* 256 random bits the host puts here before LEL_OP_SET_CLOCK (after a restore): the guest
     * stirs them into its random numbers, so sandboxes restored from one image diverge */
    uint64_t seed[4];
    /* free pages the host still backs (freed since the last LEL_OP_TRIM), written with
     * mem_used_pages: the host trims when it is worth it, without waking the guest to ask;
     * 0 from guests older than the field (fields are only ever appended) */
    volatile uint64_t dirty_free_pages;
    /* with fatal_vector: the error code, CR2 (the address of a page fault), RSP and CR3 at the
     * fault, for the host's report; 0 from guests older than the fields */
    uint64_t fatal_err, fatal_addr, fatal_rsp, fatal_cr3;
    /* the net area (struct lel_net_area and its two rings), set by the guest at boot; 0 from
     * guests without one. The host checks it lies inside guest memory before it touches it */
    uint64_t net_gpa, net_bytes;
};
_Static_assert(sizeof(struct lel_chan) <= LEL_CHAN_DATA_OFF, "the mailbox's fields must end before its data area");

/* ---- The net transport: byte streams and datagrams between the host and the guest ----
 * Two rings in guest memory, one each way (g2h: the guest writes, h2g: the host writes), of
 * messages (struct lel_net_msg + payload, 8-byte aligned, wrapping at the ring's end). The
 * indices are free-running byte counts; each side writes only its own (the producer `head`
 * and `room`, the consumer `tail` and `kick`). A consumer about to wait sets `kick` and looks
 * again; a producer that published and finds `kick` set clears it and notifies (guest:
 * LEL_PORT_NETBELL, host: LEL_VEC_NET). A producer that finds no room sets `room`; the
 * consumer that then takes something clears it and notifies the same way.
 * Connections are ids: the guest's from 1 upwards, the host's with bit 31 set, never reused
 * within an attachment; a message for an id one side does not know is dropped. Data flows
 * under credit: a side may have at most the other's window (lel_net_area) of a connection's
 * bytes unacknowledged; the receiver gives CREDIT as its reader takes them.
 * Attachment: the host writes a new host_epoch whenever it attaches to a VM (boot, restore);
 * the guest, seeing it differ from guest_epoch, ends every connection with ECONNRESET, empties
 * both rings and then sets guest_epoch to it. The host uses the rings only while the two agree. */
#define LEL_NET_MAGIC 0x3154454e4c454cULL /* "LELNET1" */
#define LEL_NET_RING_OFF 4096             /* g2h ring; h2g follows it */
#define LEL_NET_MSG_MAX 65536             /* payload bytes of one message at most */
#define LEL_NET_TCP 1
#define LEL_NET_UDP 2

struct lel_net_ring {
    volatile uint32_t head, tail, kick, room;
    uint32_t pad[12];
};

struct lel_net_area {
    uint64_t magic;
    uint32_t ring_bytes;           /* each ring's size, a power of two */
    volatile uint32_t host_epoch;  /* the host's attachment (never 0 once attached) */
    volatile uint32_t guest_epoch; /* the attachment the rings and connections are for */
    uint32_t guest_window;         /* bytes of a connection the host may send unacknowledged */
    volatile uint32_t host_window; /* the same the other way, written by the host at attach */
    uint32_t pad[9];
    struct lel_net_ring g2h, h2g;
};

/* An address: family 2 (inet) or 10 (inet6), the port in host order, the address's bytes
 * (inet: the first four). */
struct lel_net_addr {
    uint16_t family, port;
    uint8_t addr[16];
};

struct lel_net_msg {
    uint32_t conn;
    uint16_t type, flags;
    uint32_t len; /* payload bytes after the header */
    uint32_t arg;
};

enum lel_net_type {
    LEL_NET_CONNECT = 1,   /* g2h: a new connection, arg LEL_NET_TCP; payload: the destination address */
    LEL_NET_CONNECTED = 2, /* h2g: it is up; payload: the address the guest's end has */
    LEL_NET_OPEN = 3,      /* h2g: a connection to the guest's port; payload: the port (port field of the first
                              address) and the peer's address (the second) */
    LEL_NET_ACCEPTED = 4,  /* g2h: a listener took it */
    LEL_NET_RESET = 5,     /* either: the connection ends now, arg = errno (ECONNREFUSED for a refused open) */
    LEL_NET_DATA = 6,      /* either: bytes of the stream */
    LEL_NET_CREDIT = 7,    /* either: arg = bytes the receiver's reader took since its last credit */
    LEL_NET_SHUT = 8,      /* either: no more data from the sender (the reader sees its end) */
    LEL_NET_CLOSE = 9,     /* g2h: the guest's socket closed: the host sends what it holds, then closes */
    LEL_NET_DGRAM = 10,    /* either: conn = the guest socket's id; payload: an address (g2h: where to, h2g:
                              from whom), then the datagram */
    LEL_NET_DGRAM_CLOSE = 11, /* g2h: that datagram socket closed */
    LEL_NET_OPT = 12,      /* g2h: arg = LEL_NET_OPT_*, flags = its value (0/1) */
};

enum { LEL_NET_OPT_NODELAY = 1, LEL_NET_OPT_KEEPALIVE = 2 };

/* The compute loop of LEL_OP_SPIN, shared so the host can run the very same code for a
 * speed comparison. */
static inline uint64_t lel_spin(uint64_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

#endif
