/* Internals shared by the VMM's files (lel_vmm.c: VM and vCPU; lel_snapshot.c: images). */
#ifndef LEL_VMM_INT_H
#define LEL_VMM_INT_H

#include "../guest/lel_guest_abi.h"
#include "../guest/lel_rofs_abi.h"
#include "lel_vmm.h"

#include <linux/kvm.h>
#include <pthread.h>

#define LEL_LOW_MEM_MAX (3ULL << 30) /* guest RAM below the 32-bit MMIO hole; the rest goes above 4 GiB */
#define LEL_MSR_PVM_VIF 0x4b564d10
#define LEL_MSR_PVM_SIG 0x4b564d11
#define LEL_PVM_SIGNATURE 0x4d5650ULL
#define LEL_SLOT_ROFS 2 /* memslots 0 and 1 are RAM below and above the 32-bit hole */

enum vm_state { VM_RUNNING = 0, VM_STOPPED, VM_DEAD };

struct lel_vm {
    int vm_fd, vcpu_fd;
    struct lel_vm_stats *stats; /* the owner's counters and list of running VMs, or NULL */
    struct lel_vm *live_prev, *live_next; /* in stats->live while the vCPU thread runs (under stats->lock) */
    int readers;                /* lel_vm_stats_usage calls reading this VM (under stats->lock) */
    struct kvm_run *run;
    size_t run_size;
    uint8_t *mem;
    uint64_t mem_bytes;
    int mem_anon; /* anonymous memory (a boot, or a restore without a memory file): a page never
                   * touched reads as zero, and /proc/self/pagemap says which were */
    enum lel_vmm_backend backend;
    uint32_t tick_hz;
    uint32_t tsc_khz; /* KVM_GET_TSC_KHZ: the guest keeps time across a stopped timer with it */
    struct lel_vm_ops ops;
    void *ctx;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop_req, exit_req;
    enum vm_state state;
    int dying; /* die() has begun: its callback runs before the state says VM_DEAD */
    int ready;
    uint64_t responses;
    uint64_t events; /* LEL_BELL_EVENTs so far: commands that ended */
    int net_efd;  /* the net doorbell's eventfd while lel_vsock is attached, else -1 (atomic: the vCPU thread reads it) */
    int bell_efd; /* the net doorbell's eventfd, made with the VM (lel_vsock uses it), or -1 */
    int bell_ioeventfd; /* KVM writes bell_efd itself on the guest's doorbell (KVM_IOEVENTFD took it) */
    uint32_t seq; /* last host-channel request number (host side, never read back from the guest) */
    char why[160];
    int jailed;         /* the vCPU thread runs under the seccomp filter (lel_vmm_jail.c) */
    int jail_syscall;   /* a forbidden call's number + 1, set by the SIGSYS handler (atomic) */
    int fail_req;       /* lel_vm_fail: die with fail_why at the next exit (under lock) */
    char fail_why[160];
    int test_violation; /* lel_vm_config.test_violation */

    uint8_t *rofs;        /* the rofs image's mapping (lel_vmm_rofs.c), or NULL */
    uint64_t rofs_bytes;
    uint8_t rofs_hash[32];
    char *rofs_path;
    int rofs_readonly;    /* KVM_MEM_READONLY over a shared read-only mapping */

    /* The image later diff saves are taken against (lel_snapshot.c): set at a restore whose
     * memory is a private mapping of a raw file at or below it, else absent (base_path NULL).
     * overlay: the pages a chain copied over that file, sorted, with what each must hold to
     * equal the base (or OV_ALWAYS: it differs from the base whatever it holds). */
    char *base_path;
    uint8_t base_id[16];
    uint32_t base_depth;
    uint64_t *base_map; /* the base's per-chunk content hashes */
    struct lel_overlay *overlay;
    size_t noverlay;

    char line[1024]; /* console line being assembled (vCPU thread only) */
    size_t linelen;
    int64_t line_window_ms;
    unsigned lines_in_window, lines_dropped;
};

/* lel_snapshot.c */
#define LEL_OV_ALWAYS 1u
struct lel_overlay {
    uint32_t page, flags;
    uint64_t hash; /* XXH3-64 of the base's page */
};
void lel__vm_base_free(lel_vm_t *vm);

/* lel_vmimage.c: the image format (layout and checks there) */
#define LEL_IMG_CHUNK (1u << 20)
#define LEL_IMG_PAGE 4096u
#define LEL_IMG_MAX_CHAIN 256
struct lel__frame {
    uint64_t off;
    uint32_t clen, flags;
    uint64_t xxh;
};
/** An image opened and checked: header, base path, state, page list, chunk map and frame index
 * verified (frames are checked as they are read). Owns its fd and buffers. */
struct lel__img {
    int fd;
    uint64_t size, mem_bytes;
    uint32_t backend, tick_hz, diff, depth;
    uint8_t id[16], base_id[16];
    uint8_t *state;
    size_t state_len;
    uint64_t *map;     /* content hash of every chunk of the memory it stands for */
    uint64_t nmap;
    uint32_t *pages;   /* a diff: its pages, ascending */
    uint64_t npages;
    struct lel__frame *index;
    uint64_t nframes;
    char *path, *base; /* as opened; a diff's base path, resolved against this one's directory */
};
/** What lel__img_write writes: a full image of mem (pages NULL), or a diff of those pages. */
struct lel__wspec {
    const char *path;
    const uint8_t *mem;
    uint64_t mem_bytes;
    const void *state;
    size_t state_len;
    uint32_t backend, tick_hz;
    const uint32_t *pages; /* a diff: ascending */
    uint64_t npages;
    const uint64_t *map;   /* a diff: the chunk hashes of the whole memory */
    const char *base;      /* a diff: its base's path as it will be recorded */
    const uint8_t *base_id;
    uint32_t depth;
    const uint8_t *zero;   /* a full image: chunks known to be zero without reading them (or NULL) */
};
int lel__img_open(const char *path, struct lel__img *o, char *err, size_t errlen);
void lel__img_close(struct lel__img *o);
/** Opens an image and every base below it (links[0] the image, links[n-1] a full one), each
 * base checked to be there with the id its dependant recorded. Returns 0 with a malloc'd array
 * (lel__chain_close), or -errno with err filled. */
int lel__chain_open(const char *path, struct lel__img **links, int *n, char *err, size_t errlen);
void lel__chain_close(struct lel__img *links, int n);
/** Puts an image's memory into `mem`: a full one's chunks (`fresh`: mem is zero, zero chunks
 * are skipped), a diff's pages (with each page's XXH3-64 into page_hash[i] when given).
 * Returns 0 or -EBADMSG. */
int lel__img_apply(struct lel__img *o, uint8_t *mem, int fresh, uint64_t *page_hash, char *err, size_t errlen);
int lel__img_write(const struct lel__wspec *w, struct lel_snap_info *info, char *err, size_t errlen);
/** The raw memory file beside an image (`x.img` -> `x.raw`) when it is there and its trailer
 * names this image's id: buf, else NULL. */
const char *lel__img_raw(const struct lel__img *o, char *buf, size_t n);
/** The content id of a memory with these chunk hashes and this state. */
void lel__img_id(uint64_t mem_bytes, uint64_t state_xxh, const uint64_t *map, uint64_t nmap, uint8_t id[16]);
/** Per 1 MiB chunk of anonymous private memory, 1 where no page of it was ever touched (none
 * present or swapped in /proc/self/pagemap: it reads as zero); malloc'd, NULL when the page map
 * cannot be read (then every chunk is read). */
uint8_t *lel__img_untouched(const uint8_t *mem, uint64_t bytes);
/** Worker threads for the frames: the host's online CPUs, 1..64. */
int lel__img_threads(void);

/* lel_vmm_rofs.c */
/** Maps the rofs image at `path` into the VM at LEL_GPA_ROFS (memslot LEL_SLOT_ROFS). With
 * `want` (a restore) the file's content hash must be it. Returns 0 or -errno with err filled:
 * -ENOENT missing, -EBADMSG not an image, -ESTALE another image than `want`. */
int lel__rofs_map(lel_vm_t *vm, const char *path, const uint8_t *want, char *err, size_t errlen);
void lel__rofs_unmap(lel_vm_t *vm);
/** The snapshot record of the VM's rofs image (hash, size, path), malloc'd; NULL without one. */
void *lel__rofs_record(lel_vm_t *vm, size_t *len);
/** Reads a snapshot's rofs record: 0 with its hash and path (NUL-terminated, in rec), or -EBADMSG. */
int lel__rofs_record_parse(const void *rec, size_t len, const uint8_t **hash, const char **path);

/* lel_vmm_jail.c */
/** Installs the SIGSYS handler (process-wide, once). */
void lel__jail_init(void);
/** On the vCPU thread, before its first KVM_RUN: loads the filter on this thread. Returns 0 or
 * -errno with err filled. */
int lel__jail_enter(lel_vm_t *vm, char *err, size_t errlen);
/** The death reason for forbidden call `nr`. */
void lel__jail_reason(int nr, char *buf, size_t n);
/** Makes a call the filter forbids (the test hook, lel_vm_config.test_violation). */
void lel__jail_test_violation(void);

/* lel_vm_stats.c */
/** Starts the vCPU thread (pthread_create of `fn`) and lists the VM in its stats, both under the
 * stats lock so the thread cannot end before it is listed. Returns 0 or a positive error. */
int lel__vm_stats_start(lel_vm_t *vm, void *(*fn)(void *));
/** On the vCPU thread, last: unlists the VM (once no reader holds it) and adds the thread's CPU time. */
void lel__vm_stats_leave(lel_vm_t *vm);

/* lel_vmm.c */
int lel__vm_new(const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen);
int lel__vm_start(lel_vm_t *vm, char *err, size_t errlen);
/** Ends the vCPU thread (its callbacks have all returned then); quick. */
void lel__vm_join(lel_vm_t *vm);
/** The rest of a destroy after lel__vm_join: descriptors, memory, the struct (the slow part:
 * KVM's teardown waits out SRCU grace periods, each unmap costs per VM in the process). */
void lel__vm_release(lel_vm_t *vm);
int lel__kvm_fd(void);
struct kvm_cpuid2 *lel__supported_cpuid(void);
/** The MSRs worth saving: KVM's index list plus the PVM VIF MSR. Caller frees. */
uint32_t *lel__msr_list(size_t *n);

#endif
