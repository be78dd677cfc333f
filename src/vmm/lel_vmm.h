/* The hypervisor: one microVM per sandbox on the /dev/kvm ioctl interface, running our guest
 * kernel (src/guest). Works on hardware KVM and on the PVM /dev/kvm of the development
 * machines (PVM.md), detected at probe time.
 *
 * Threads: each VM has one vCPU thread running KVM_RUN; lel_vm_* calls come from the owning
 * sandbox actor (one at a time). Callbacks (console lines, exit) run on the vCPU thread and
 * must only hand data off. Everything read from guest memory or an exit is bounds-checked. */
#ifndef LEL_VMM_H
#define LEL_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum lel_vmm_backend { LEL_VMM_NONE = 0, LEL_VMM_KVM, LEL_VMM_PVM };

/** Opens /dev/kvm once and finds the backend. Returns the backend, or LEL_VMM_NONE with `why` filled. */
enum lel_vmm_backend lel_vmm_probe(char *why, size_t whylen);
const char *lel_vmm_backend_name(enum lel_vmm_backend b);

/** A hash of the embedded guest kernel and root filesystem: images built by another guest
 * differ in it (the built-in template is rebuilt then). */
uint64_t lel_vmm_guest_fingerprint(void);

typedef struct lel_vm lel_vm_t;

struct lel_vm_ops {
    /** A complete console line (without the newline), on the vCPU thread. */
    void (*console_line)(void *ctx, const char *line, size_t len);
    /** The VM stopped on its own (triple fault, guest fatal, internal error); on the vCPU thread. */
    void (*died)(void *ctx, const char *why);
    /** A command ended in the guest (collect it with lel_vm_cmd_result), or a streamed one has
     * output or stdin room (lel_vm_cmd_poll); on the vCPU thread. May be NULL. */
    void (*event)(void *ctx);
};

/** What the VMs of one owner (the server object) did and hold, shared by all of them and
 * outliving them: exits by reason (relaxed atomic adds on the vCPU threads), the vCPU time of
 * the threads that ended, and the VMs whose vCPU thread runs (lel_vm_stats_usage reads them).
 * lel_vm_stats_init before the first VM, lel_vm_stats_destroy after the last (lel_vm_stats.c). */
enum lel_vm_exit_kind {
    LEL_VMX_IO = 0, LEL_VMX_MMIO, LEL_VMX_INTR, LEL_VMX_HLT, LEL_VMX_SHUTDOWN, LEL_VMX_INTERNAL_ERROR,
    LEL_VMX_FAIL_ENTRY, LEL_VMX_OTHER, LEL_VMX_RUN_ERROR, LEL_VMX_COUNT
};
struct lel_vm_stats {
    atomic_ullong n[LEL_VMX_COUNT];
    atomic_ullong cpu_ns_ended; /* vCPU threads that ended: their CPU time, added as each ends */
    pthread_mutex_t lock;       /* the list and each listed VM's `readers` */
    pthread_cond_t cond;        /* a reader is done with a VM */
    struct lel_vm *live;        /* VMs whose vCPU thread runs (linked by lel__vm_start, unlinked by the thread's end) */
};
void lel_vm_stats_init(struct lel_vm_stats *st);
void lel_vm_stats_destroy(struct lel_vm_stats *st);
/** Host resources of an owner's VMs, as one scrape sees them. */
struct lel_vm_usage {
    uint64_t vms;           /* VMs whose vCPU thread runs */
    uint64_t cpu_ns;        /* host CPU time of every vCPU thread so far (guest run time and exit handling), ended ones included */
    uint64_t private_bytes; /* guest RAM backed by anonymous pages: a booted VM's touched memory, the pages a
                             * restored one copied on write; each VM's own */
    uint64_t shared_bytes;  /* guest RAM mapped from a memory file (page cache): shared with every VM over it,
                             * counted here once per VM that maps the page */
};
/** Sums the vCPU threads' CPU clocks (pthread_getcpuclockid) and reads each running VM's guest
 * RAM in /proc/self/pagemap (8 bytes per guest page, ~0.5 MB per GiB: a scrape's work, not a
 * hot path's). A VM whose thread ends meanwhile waits for its read. Returns 0, or -errno
 * (pagemap unreadable: the memory fields are 0, the CPU time still counts). */
int lel_vm_stats_usage(struct lel_vm_stats *st, struct lel_vm_usage *u);
/** The label of an exit kind ("io", "mmio", ...). */
const char *lel_vm_exit_name(int kind);

struct lel_vm_config {
    uint64_t mem_bytes; /* multiple of 2 MiB, >= 32 MiB */
    uint32_t tick_hz;   /* guest timer frequency; default 100 */
    const struct lel_vm_ops *ops;
    void *ctx;
    const char *memory_file; /* restore only: guest memory mapped copy-on-write from this raw file
                                (lel_image_unpack_memory of the same image); NULL: decompress */
    /* A read-only root filesystem image (src/image/lel_rofs_build.h) mapped into the VM as
     * read-only memory, shared with every VM on it through the page cache, the guest's root
     * below a writable layer in its memory. Boot: this file (the base cpio is then not used).
     * Restore: the image records the file's path and content hash and maps that file; a path
     * here is used instead, and must have the same hash. NULL at boot: none. */
    const char *rofs_path;
    uint64_t disk_bytes; /* boot: the writable layer's limit for file data (0: guest memory's) */
    /* Restore only: the image is transient (a pause image, deleted once resumed): later diff
     * saves of this VM are taken against its base, not against it. */
    int transient;
    int stopped; /* restore only: the vCPU waits, stopped, for lel_vm_cont (tests compare memory) */
    /* The vCPU thread runs under a seccomp filter (lel_vmm_jail.c: the allow-list and why) unless
     * this is set (vmm.seccomp: false); a forbidden call ends the VM (died: the call's name). */
    int unjailed;
    /* Tests only (vmm.test_seccomp_violation): at every command-ended doorbell the vCPU thread
     * makes a call the filter forbids (socket), as an exploited exit handler would. */
    int test_violation;
    struct lel_vm_stats *stats; /* where the vCPU counts its exits and time, and the VM is listed; NULL: nowhere. Outlives the VM */
};

/** The embedded base root filesystem (a cpio of busybox), for building rofs images beneath. */
void lel_vmm_base_rootfs(const void **data, size_t *len);

/** Creates the VM, loads the embedded guest kernel and starts the vCPU. Returns 0 or -errno. */
int lel_vm_boot(const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen);
/** Why the VM died ("" while it has not): its death reason stays until lel_vm_destroy. */
const char *lel_vm_why(lel_vm_t *vm);
/** Waits until the guest reported ready. Returns 0, -ETIMEDOUT or -EPIPE (the VM died). */
int lel_vm_wait_ready(lel_vm_t *vm, int timeout_ms);
/** One host-channel request (LEL_OP_*). Returns the guest's status (0 ok) or -errno. */
int lel_vm_call(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], uint64_t ret[4], int timeout_ms);
/** After a restore: sets the guest's wall clock to now and its TSC rate to this host's, and
 * mixes fresh host randomness into it (sandboxes from one image must not share random numbers). */
int lel_vm_set_clock(lel_vm_t *vm);
/** lel_vm_set_clock without waiting for the guest's answer: the request is in the channel and
 * the guest interrupted when it returns 0, so every later request reaches the guest after it
 * (each waits for the one before to be answered). A restore's first run (its shadow page
 * tables rebuilt, 1.5-8 ms here) then happens off the caller's path. A guest that dies on it is
 * seen as any death is; one that never answers, by the next request's timeout. */
int lel_vm_set_clock_post(lel_vm_t *vm);
/** Waits until the guest has answered every request posted (lel_vm_set_clock_post): 0,
 * -ETIMEDOUT or -EPIPE. An image is taken only of an idle channel. */
int lel_vm_idle(lel_vm_t *vm, int timeout_ms);
/** Stops the vCPU at a clean point (pending I/O completed). Idempotent. */
int lel_vm_stop(lel_vm_t *vm);
/** Lets a stopped vCPU run again. */
int lel_vm_cont(lel_vm_t *vm);
/** Destroys the VM and returns its memory. */
void lel_vm_destroy(lel_vm_t *vm);
/** Ends the VM from another thread (the net loop found it served this VM when its jail trapped
 * a call): the vCPU thread dies with `why` at its next exit, kicked out of KVM_RUN now; a
 * stopped VM dies when it is let run. Idempotent; the first reason stays. Callable from any
 * thread but the vCPU's, under a seccomp filter that allows futex and tgkill(SIGUSR1). */
void lel_vm_fail(lel_vm_t *vm, const char *why);

/** The hypervisor threads' jail (lel_vmm_jail.c). A thread that loads a seccomp filter whose
 * default action is SCMP_ACT_TRAP calls lel_jail_catch first: each trapped call then fails with
 * -EPERM and the first one's number + 1 is stored in *slot (atomically), for the thread's loop
 * to act on. */
void lel_jail_catch(int *slot);
/** Loads on the calling thread a seccomp filter whose default is to trap (lel_jail_catch(slot)
 * first): the calls every jailed thread of the daemon needs (futex; mmap and mprotect never
 * PROT_EXEC, munmap, mremap, madvise, brk for malloc; rt_sigreturn, rt_sigprocmask,
 * sigaltstack; clock_gettime, gettimeofday, sched_yield, exit; getpid, gettid and
 * tgkill(SIGABRT) for abort()), and what `add` adds to the filter it is given (a libseccomp
 * scmp_filter_ctx; 0 or -errno). 0, or -errno with err ("cannot load <who>'s seccomp filter"). */
int lel_jail_load(const char *who, int (*add)(void *f, void *ctx), void *ctx, int *slot, char *err, size_t errlen);
/** "<who> made a forbidden system call: <name> (<nr>); seccomp stopped it". */
void lel_jail_describe(const char *who, int nr, char *buf, size_t n);
/** Gives the VM new callbacks (a VM made ahead, handed to its user): from its return on, they
 * get every console line, event and death. Returns 0, or -EPIPE when the VM died already. */
int lel_vm_set_ops(lel_vm_t *vm, const struct lel_vm_ops *ops, void *ctx);

/** Destroys VMs off the caller's path, on a thread of its own: a destroy takes 0.2-20 ms (KVM
 * waits out grace periods; unmapping guest memory costs per VM in the process). */
typedef struct lel_vm_reaper lel_vm_reaper_t;
/** Starts its thread. NULL when it cannot. */
lel_vm_reaper_t *lel_vm_reaper_new(void);
/** Ends `vm`'s vCPU now (no callback runs once this returns), and hands the rest of the destroy
 * to the reaper; without one (NULL) it is destroyed here. */
void lel_vm_reap(lel_vm_reaper_t *r, lel_vm_t *vm);
/** Destroys what is still queued, ends the thread, frees. */
void lel_vm_reaper_free(lel_vm_reaper_t *r);

/** A request that carries bytes both ways through the mailbox's data area: `in` (at most
 * LEL_CHAN_DATA_MAX bytes) is placed before the call; afterwards ret[1] bytes (as the guest
 * claims, clamped to the area and to outcap) are copied to `out`. Returns like lel_vm_call. */
int lel_vm_call_data(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], const void *in, size_t inlen, uint64_t ret[4],
                     void *out, size_t outcap, size_t *outlen, int timeout_ms);
/** A request whose body is in the guest's bulk area: `in` (at most LEL_BULK_SIZE bytes) is
 * copied there first. Returns like lel_vm_call; the answer's bytes are read with lel_vm_bulk_read. */
int lel_vm_call_bulk(lel_vm_t *vm, uint32_t op, const uint64_t arg[4], const void *in, size_t inlen, uint64_t ret[4],
                     int timeout_ms);
/** The host's mapping of guest page `pfn` (GPA >> 12, as the guest listed it), for filling
 * pages the guest handed out (LEL_OP_FILE_UPLOAD_PAGES): NULL unless it is guest RAM above the
 * fixed areas (mailbox, bulk area, kernel, kernel stacks: below 8 MiB). What the guest does
 * with the page is its own affair; the pointer is valid until lel_vm_destroy. */
uint8_t *lel_vm_guest_page(lel_vm_t *vm, uint64_t pfn);
/** Copies up to `len` bytes at `off` of the bulk area (clamped to it: the guest's lengths are
 * never trusted). Returns the bytes copied. */
size_t lel_vm_bulk_read(lel_vm_t *vm, uint64_t off, void *buf, size_t len);
struct lel_run_result {
    int exit_status;       /* 0..255 as a shell sees it */
    uint64_t out_len, err_len; /* in the bulk area: stdout at 0, stderr at LEL_BULK_HALF (clamped) */
    int truncated, timed_out;
    int signaled;          /* a signal ended its first process (exit_status is 128 + it); 0 from older guests */
    int last;              /* no other ended command waits to be collected (0 from older guests: ask again) */
};

/** A command for the guest. */
struct lel_cmd {
    const char *const *argv; /* argv[0] a path in the guest */
    const char *const *env;  /* "K=V", NULL-terminated; NULL: the guest's defaults */
    const char *cwd;         /* NULL: "/" */
    const void *in;          /* stdin bytes */
    size_t inlen;
    uint64_t timeout_ms; /* the guest kills the command's processes then; 0: none */
    /* LEL_CMD_* (lel_guest_abi.h): BACKGROUND, nobody collects its result (it ends without an
     * event); STREAM, its output is read as it comes (lel_vm_cmd_read) and a writer waits while
     * the host has not read 1 MiB of a stream, instead of output past 1 MiB being dropped;
     * STDIN_PIPE, its stdin is a pipe written with lel_vm_cmd_stdin (`in` is ignored); and
     * LEL_VM_CMD_AS(id): its first process runs with that uid and gid (else root). PTY is
     * lel_vm_cmd_start_pty's. */
    unsigned flags;
};
#define LEL_VM_CMD_AS(id) (LEL_CMD_IDS | (unsigned)(id) << 16) /* ids below 65536 */

/** Starts a command; the guest runs it alongside others and rings an event when it ends.
 * Returns 0 with its id, a positive guest errno when it could not start (ENOENT: no such
 * program or cwd, EAGAIN: too many processes or commands), -E2BIG when the request does not
 * fit, or -ETIMEDOUT/-EPIPE when the guest did not answer. */
int lel_vm_cmd_start(lel_vm_t *vm, const struct lel_cmd *cmd, uint32_t *id);
/** The same on a pseudo-terminal of its own of cols x rows in the guest (LEL_CMD_PTY: its
 * controlling terminal, stdin, stdout and stderr): its output is read as stdout (STREAM is
 * implied), lel_vm_cmd_stdin types at it and lel_vm_cmd_resize resizes it; `in` is ignored.
 * A guest older than ptys runs it without one. */
int lel_vm_cmd_start_pty(lel_vm_t *vm, const struct lel_cmd *cmd, uint16_t cols, uint16_t rows, uint32_t *id);
/** Collects an ended command (`want` 0: any): fills `res` and `id`; its stdout and stderr are
 * in the bulk area (lel_vm_bulk_read) until the next request. Returns 0, -EAGAIN when it has
 * not ended (none has, for 0), -ENOENT for an unknown id, or -errno. */
int lel_vm_cmd_result(lel_vm_t *vm, uint32_t want, uint32_t *id, struct lel_run_result *res);
/** Kills the processes still in a command; its result then comes as usual. */
int lel_vm_cmd_kill(lel_vm_t *vm, uint32_t id);
/** Sends signal `sig` (1..63) to every process still in a command (9: kills them, as
 * lel_vm_cmd_kill); a guest older than signals kills them whatever `sig` is. Returns 0,
 * -ENOENT for an unknown id, or -errno. */
int lel_vm_cmd_signal(lel_vm_t *vm, uint32_t id, int sig);
/** What a streamed command (lel_cmd.stream) wrote since the last read: stdout at 0 of the
 * bulk area (*out_len bytes), stderr at LEL_BULK_HALF (*err_len), there until the next request
 * (lengths clamped to the halves); *ended once it ended (the rest comes with its result).
 * Returns 0, -ENOENT, -EINVAL (not streamed), -ENOSYS (a guest that does not stream), -errno. */
int lel_vm_cmd_read(lel_vm_t *vm, uint32_t id, uint64_t *out_len, uint64_t *err_len, int *ended);
/** Writes up to LEL_BULK_SIZE bytes of `p` into a command's stdin pipe (lel_cmd.stdin_pipe):
 * *taken of them fit (the rest waits for LEL_POLL_STDIN); `close` closes it once all of them
 * are in. Returns 0, -EPIPE (nobody reads it: dropped), -EINVAL (no pipe, or closed), -ENOENT,
 * -ENOSYS (an older guest), or -errno. */
int lel_vm_cmd_stdin(lel_vm_t *vm, uint32_t id, const void *p, size_t n, int close, size_t *taken);
/** A pty command's new window size (its foreground processes get SIGWINCH). Returns 0, -ENOENT,
 * -EINVAL (no pty, or it ended), -ENOSYS (an older guest), or -errno. */
int lel_vm_cmd_resize(lel_vm_t *vm, uint32_t id, uint16_t cols, uint16_t rows);
/** A command with something for the host: its id and LEL_POLL_* flags. */
struct lel_cmd_ready {
    uint32_t id, flags;
};
/** After an event: the commands with output, stdin room or an end, up to `cap` into `out`
 * (*n). Returns 0, -ENOSYS from a guest older than streaming, or -errno. */
int lel_vm_cmd_poll(lel_vm_t *vm, struct lel_cmd_ready *out, size_t cap, size_t *n);
/** Starts a command and waits for its end (other commands may run meanwhile, but their
 * results are left for others to collect). Returns like lel_vm_cmd_start, or -ETIMEDOUT when
 * the guest did not end it by its timeout plus 10 s (it is then killed). */
int lel_vm_run(lel_vm_t *vm, const char *const *argv, const char *const *env, const char *cwd, const void *in,
               size_t inlen, uint64_t timeout_ms, struct lel_run_result *res);
/** Resident guest memory in bytes (pages actually backed; walks every page: not for sampling). */
uint64_t lel_vm_resident(lel_vm_t *vm);
/** Memory the guest uses, in bytes, as it last reported going idle (free memory inside the
 * sandbox is what a user means); lel_vm_resident for a guest too old to report. Costs nothing. */
uint64_t lel_vm_mem_used(lel_vm_t *vm);
/** Bytes of file data in the guest's root file system, as it last reported going idle (0 from
 * a guest too old to report). Costs nothing. */
uint64_t lel_vm_disk_used(lel_vm_t *vm);
/** Free-page reporting: when the guest says it holds at least `min_pages` free pages the host
 * still backs (read without waking it), it lists them (setting them aside meanwhile) and the
 * host discards them (MADV_DONTNEED: anonymous memory reads zero again, a memory file's pages
 * go back to the shared file), so a sandbox that freed memory stops costing it. Returns bytes
 * discarded (0: not worth it, or a guest without the request), or -errno. Call it from the
 * sandbox's owner when the guest is idle; it blocks for the two requests. */
int64_t lel_vm_trim(lel_vm_t *vm, uint64_t min_pages);
/** The guest pages this VM has written since its restore (copied-on-write from its memory file
 * or base), ascending, from the private mapping's page table: a hint of what a sandbox writes,
 * read while the VM runs. *pages is malloc'd (the caller frees it). Returns 0 or -errno. */
int lel_vm_written_pages(lel_vm_t *vm, uint32_t **pages, uint64_t *npages);
/** Pre-faults the given guest pages for writing (MADV_POPULATE_WRITE, Linux >= 5.14): their
 * copy-on-write faults happen now, on the caller's thread, and not later when the guest touches
 * them (each host fault calls every VM's MMU notifier, so its cost grows with the VMs running).
 * Pages past guest memory are skipped. Returns 0, or -errno (-EINVAL on an older kernel). */
int lel_vm_prefault(lel_vm_t *vm, const uint32_t *pages, uint64_t npages);
/** The VM's rofs image: 1 with its size, content hash and whether KVM maps it read-only
 * (KVM_MEM_READONLY over a shared read-only mapping; else a private mapping of the file, whose
 * clean pages are still the page cache's); 0 without one. */
int lel_vm_rofs(lel_vm_t *vm, uint64_t *bytes, uint8_t hash[32], int *readonly);
/** vCPU time consumed so far, in nanoseconds. */
uint64_t lel_vm_cpu_ns(lel_vm_t *vm);

#define LEL_IMAGE_ID_LEN 16 /* an image's content id: a hash of its memory and vCPU state */

struct lel_snap_info {
    uint64_t mem_bytes;    /* guest memory size */
    uint64_t stored_bytes; /* image file size */
    uint64_t zero_chunks, chunks;
    int diff;              /* a diff image: only the pages that differ from its base */
    uint32_t depth;        /* 0 for a full image, else its base's depth + 1 */
    uint64_t diff_pages;   /* a diff's stored pages */
    uint8_t id[LEL_IMAGE_ID_LEN];
};

/** Writes a full snapshot image of a stopped VM to `path` (temp file, fsync, rename): memory in
 * 1 MiB zstd frames compressed on all cores. Returns 0 or -errno. */
int lel_vm_save(lel_vm_t *vm, const char *path, struct lel_snap_info *info, char *err, size_t errlen);
/** Writes a diff image of a stopped VM: only the pages that differ from the image the VM was
 * restored from (its base; the base's base for a transient image), found from the private
 * mapping's page table (/proc/self/pagemap: a page not copied-on-write is still the base's)
 * and, for pages a chain put there, their hashes. The image names its base by path (relative
 * to its own directory) and content id. A VM without a base (booted, or restored without a
 * memory file) gets a full image. Returns 0 or -errno; info->diff says which it wrote. */
int lel_vm_save_diff(lel_vm_t *vm, const char *path, struct lel_snap_info *info, char *err, size_t errlen);
/** Reads an image's header: its content id, depth, and for a diff its base's path (resolved
 * against the image's directory) and id. Returns 0, -ENOENT, -EBADMSG. */
int lel_image_info(const char *path, struct lel_snap_info *info, char *base_path, size_t n,
                   uint8_t base_id[LEL_IMAGE_ID_LEN], char *err, size_t errlen);
/** Writes the memory of an image (a diff: its whole chain) into a raw file (sparse; written to
 * a temp name, fsynced, renamed; a trailer after the memory names the image's id), so many VMs
 * can map it copy-on-write: see lel_vm_config.memory_file. Every chunk is checked. Returns 0,
 * -EBADMSG for a corrupt image, -ENOENT/-ESTALE for a missing or changed base, or -errno. */
int lel_image_unpack_memory(const char *image, const char *raw_path, char *err, size_t errlen);
/** Rewrites a diff image in place as a full image of the same content (same id, so images
 * over it stay valid): its chain loaded, every chunk hash checked against the diff's record,
 * written to a temp name and renamed. Returns 0 (also for an image that is already full), or
 * -errno with err filled; the image is unchanged on failure. */
int lel_image_flatten(const char *path, char *err, size_t errlen);
/** Builds a new VM from an image and starts it where it was. A diff image's chain is opened
 * and checked first (each base must be there and have the recorded content id); memory comes
 * from the nearest raw memory file in the chain (`<image>.raw` beside an image, or
 * cfg->memory_file for this one), mapped copy-on-write, with the diffs above it applied.
 * Corrupt or truncated images, or missing or changed bases, fail (-EBADMSG, -ENOENT, -ESTALE)
 * and are never loaded. */
int lel_vm_restore(const char *path, const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen);
/** The guest memory mapping, for tests and diagnostics (compare two VMs byte by byte). */
const uint8_t *lel_vm_memory(lel_vm_t *vm, uint64_t *bytes);

#endif
