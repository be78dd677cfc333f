/* Snapshot images: the full vCPU and VM state plus guest memory in fixed-size chunks. All-zero
 * chunks are recorded, not stored; the rest are zstd frames compressed and decompressed in
 * parallel and located by an index; every chunk, the state and the index carry an XXH3
 * checksum, so a corrupt or truncated image is refused before anything is loaded. Written to
 * a temp name, fsynced, renamed.
 *
 * Layout: header | state records (tag, length, bytes)* | index (one entry per chunk) | frames */
#include "lel_vmm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define MAGIC "LELSNAP"
#define VERSION 1
#define CHUNK (1u << 20)
#define BATCH 64 /* chunks compressed in parallel before they are written */
#define MAX_STATE (1u << 20)
#define ZSTD_LEVEL 1

enum tag {
    T_CPUID = 1, T_REGS, T_SREGS, T_XSAVE, T_XCRS, T_MSRS, T_LAPIC, T_EVENTS, T_MPSTATE, T_DEBUGREGS,
    T_PIC0, T_PIC1, T_IOAPIC, T_CLOCK, T_COUNT,
    T_ROFS = 32 /* the rofs image the VM runs over (its hash, size and path; never its pages) */
};

struct header {
    char magic[8];
    uint32_t version, chunk_size;
    uint64_t mem_bytes;
    uint64_t nchunks;
    uint64_t state_off, state_len, state_xxh;
    uint64_t index_off, index_xxh;
    uint32_t backend, tick_hz;
    uint64_t header_xxh; /* of everything above */
};

enum { C_ZERO = 1 };

struct chunk_ent {
    uint64_t off;
    uint32_t clen, flags;
    uint64_t xxh;
};

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static int put(struct buf *b, uint32_t tag, const void *data, size_t len)
{
    size_t need = b->n + 8 + len;
    if (need > b->cap) {
        size_t cap = need * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    uint32_t hdr[2] = {tag, (uint32_t)len};
    memcpy(b->p + b->n, hdr, 8);
    memcpy(b->p + b->n + 8, data, len);
    b->n = need;
    return 0;
}

static size_t xsave_size(void)
{
    int n = ioctl(lel__kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return n > (int)sizeof(struct kvm_xsave) ? (size_t)n : sizeof(struct kvm_xsave);
}

/* Reads every MSR worth keeping; ones the kernel refuses to read are left out. */
static struct kvm_msrs *read_msrs(lel_vm_t *vm)
{
    size_t n = 0;
    uint32_t *list = lel__msr_list(&n);
    struct kvm_msrs *m = list ? calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry)) : NULL;
    if (!m) {
        free(list);
        return NULL;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n;) {
        struct kvm_msrs *q = calloc(1, sizeof(*q) + (n - i) * sizeof(struct kvm_msr_entry));
        if (!q)
            break;
        q->nmsrs = (uint32_t)(n - i);
        for (size_t j = i; j < n; j++)
            q->entries[j - i].index = list[j];
        int got = ioctl(vm->vcpu_fd, KVM_GET_MSRS, q);
        if (got < 0)
            got = 0;
        memcpy(&m->entries[kept], q->entries, (size_t)got * sizeof(struct kvm_msr_entry));
        kept += (size_t)got;
        i += (size_t)got + 1; /* skip the one that failed */
        free(q);
    }
    m->nmsrs = (uint32_t)kept;
    free(list);
    return m;
}

static int save_state(lel_vm_t *vm, struct buf *b, char *err, size_t errlen)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events ev;
    struct kvm_mp_state mp;
    struct kvm_debugregs dr;
    struct kvm_clock_data clock;
    struct kvm_irqchip chip[3];
    size_t xs = xsave_size();
    struct kvm_xsave *xsave = calloc(1, xs);
    struct kvm_cpuid2 *cpuid = lel__supported_cpuid();
    struct kvm_msrs *msrs = read_msrs(vm);
    const char *step = "out of memory";
    int r = -EIO;
    if (!xsave || !cpuid || !msrs)
        goto out;
#define GET(fd, req, p)                                                                                                \
    do {                                                                                                               \
        step = #req;                                                                                                   \
        if (ioctl(fd, req, p) < 0)                                                                                     \
            goto out;                                                                                                  \
    } while (0)
    GET(vm->vcpu_fd, KVM_GET_REGS, &regs);
    GET(vm->vcpu_fd, KVM_GET_SREGS, &sregs);
    GET(vm->vcpu_fd, xs > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave);
    GET(vm->vcpu_fd, KVM_GET_XCRS, &xcrs);
    GET(vm->vcpu_fd, KVM_GET_LAPIC, &lapic);
    GET(vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev);
    GET(vm->vcpu_fd, KVM_GET_MP_STATE, &mp);
    GET(vm->vcpu_fd, KVM_GET_DEBUGREGS, &dr);
    for (int i = 0; i < 3; i++) {
        memset(&chip[i], 0, sizeof(chip[i]));
        chip[i].chip_id = (uint32_t)i;
        GET(vm->vm_fd, KVM_GET_IRQCHIP, &chip[i]);
    }
    GET(vm->vm_fd, KVM_GET_CLOCK, &clock);
#undef GET
    size_t cpuid_len = sizeof(*cpuid) + cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    size_t msrs_len = sizeof(*msrs) + msrs->nmsrs * sizeof(struct kvm_msr_entry);
    step = "out of memory";
    if (put(b, T_CPUID, cpuid, cpuid_len) || put(b, T_REGS, &regs, sizeof(regs)) || put(b, T_SREGS, &sregs, sizeof(sregs)) ||
        put(b, T_XSAVE, xsave, xs) || put(b, T_XCRS, &xcrs, sizeof(xcrs)) || put(b, T_MSRS, msrs, msrs_len) ||
        put(b, T_LAPIC, &lapic, sizeof(lapic)) || put(b, T_EVENTS, &ev, sizeof(ev)) || put(b, T_MPSTATE, &mp, sizeof(mp)) ||
        put(b, T_DEBUGREGS, &dr, sizeof(dr)) || put(b, T_PIC0, &chip[0], sizeof(chip[0])) ||
        put(b, T_PIC1, &chip[1], sizeof(chip[1])) || put(b, T_IOAPIC, &chip[2], sizeof(chip[2])) ||
        put(b, T_CLOCK, &clock, sizeof(clock)))
        goto out;
    size_t rofs_len = 0;
    void *rofs = lel__rofs_record(vm, &rofs_len);
    int bad = vm->rofs && (!rofs || put(b, T_ROFS, rofs, rofs_len));
    free(rofs);
    if (bad)
        goto out;
    r = 0;
out:
    if (r < 0)
        snprintf(err, errlen, "saving vCPU state: %s: %s", step, strerror(errno ? errno : ENOMEM));
    free(xsave);
    free(cpuid);
    free(msrs);
    return r;
}

static int all_zero(const uint8_t *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

struct job {
    uint8_t *mem;
    int fd;                 /* restore: image */
    uint64_t file_size;
    struct chunk_ent *index;
    uint8_t **out;          /* save: compressed frame per chunk of the batch */
    size_t first, count, next;
    pthread_mutex_t lock;
    int error;
};

static size_t take(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    size_t i = j->next < j->first + j->count && !j->error ? j->next++ : SIZE_MAX;
    pthread_mutex_unlock(&j->lock);
    return i;
}

static void fail(struct job *j, int e)
{
    pthread_mutex_lock(&j->lock);
    if (!j->error)
        j->error = e;
    pthread_mutex_unlock(&j->lock);
}

static void *compress_worker(void *arg)
{
    struct job *j = arg;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t bound = ZSTD_compressBound(CHUNK);
    for (size_t i; (i = take(j)) != SIZE_MAX;) {
        const uint8_t *src = j->mem + i * CHUNK;
        struct chunk_ent *e = &j->index[i];
        e->xxh = XXH3_64bits(src, CHUNK);
        if (all_zero(src, CHUNK)) {
            e->flags = C_ZERO;
            continue;
        }
        uint8_t *dst = malloc(bound);
        size_t n = dst && cctx ? ZSTD_compressCCtx(cctx, dst, bound, src, CHUNK, ZSTD_LEVEL) : 0;
        if (!dst || ZSTD_isError(n) || n == 0) {
            free(dst);
            fail(j, ENOMEM);
            break;
        }
        e->clen = (uint32_t)n;
        j->out[i - j->first] = dst;
    }
    ZSTD_freeCCtx(cctx);
    return NULL;
}

static int nthreads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

/* Runs fn over chunks [first, first+count) on up to nthreads() threads. */
static int parallel(struct job *j, void *(*fn)(void *), size_t first, size_t count)
{
    pthread_t th[8];
    int n = nthreads(), started = 0;
    j->first = j->next = first;
    j->count = count;
    for (; started < n - 1; started++)
        if (pthread_create(&th[started], NULL, fn, j) != 0)
            break;
    fn(j); /* the caller works too */
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return j->error ? -j->error : 0;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int lel__image_write(const char *path, uint8_t *mem, uint64_t mem_bytes, const void *state_p, size_t state_n,
                     uint32_t backend, uint32_t tick_hz, struct lel_snap_info *info, char *err, size_t errlen)
{
    struct header h;
    struct job j;
    char tmp[4200];
    int fd = -1, r;
    uint64_t nchunks = mem_bytes / CHUNK;
    memset(&h, 0, sizeof(h));
    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.lock, NULL);
    j.mem = mem;
    j.index = calloc(nchunks ? nchunks : 1, sizeof(struct chunk_ent));
    j.out = calloc(BATCH, sizeof(uint8_t *));
    if (!j.index || !j.out || mem_bytes % CHUNK) {
        r = mem_bytes % CHUNK ? -EINVAL : -ENOMEM;
        snprintf(err, errlen, mem_bytes % CHUNK ? "memory size is not a multiple of the chunk size" : "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    memcpy(h.magic, MAGIC, sizeof(MAGIC));
    h.version = VERSION;
    h.chunk_size = CHUNK;
    h.mem_bytes = mem_bytes;
    h.nchunks = nchunks;
    h.state_off = sizeof(h);
    h.state_len = state_n;
    h.state_xxh = XXH3_64bits(state_p, state_n);
    h.index_off = h.state_off + h.state_len;
    h.backend = backend;
    h.tick_hz = tick_hz;
    uint64_t off = h.index_off + nchunks * sizeof(struct chunk_ent);
    for (uint64_t first = 0; first < nchunks; first += BATCH) {
        size_t count = nchunks - first < BATCH ? nchunks - first : BATCH;
        memset(j.out, 0, BATCH * sizeof(uint8_t *));
        r = parallel(&j, compress_worker, first, count);
        for (size_t i = 0; i < count; i++) {
            struct chunk_ent *e = &j.index[first + i];
            if (r == 0 && !(e->flags & C_ZERO)) {
                e->off = off;
                r = write_all(fd, j.out[i], e->clen, off);
                off += e->clen;
            }
            free(j.out[i]);
        }
        if (r < 0) {
            snprintf(err, errlen, "writing %s: %s", tmp, strerror(-r));
            goto out;
        }
    }
    h.index_xxh = XXH3_64bits(j.index, nchunks * sizeof(struct chunk_ent));
    h.header_xxh = XXH3_64bits(&h, offsetof(struct header, header_xxh));
    if ((r = write_all(fd, &h, sizeof(h), 0)) < 0 || (r = write_all(fd, state_p, state_n, h.state_off)) < 0 ||
        (r = write_all(fd, j.index, nchunks * sizeof(struct chunk_ent), h.index_off)) < 0 ||
        (fsync(fd) < 0 && (r = -errno)) || (close(fd) < 0 && (r = -errno))) {
        fd = -1;
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(-r));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        r = -errno;
        snprintf(err, errlen, "rename to %s: %s", path, strerror(errno));
        goto out;
    }
    if (info) {
        memset(info, 0, sizeof(*info));
        info->mem_bytes = mem_bytes;
        info->stored_bytes = off;
        info->chunks = nchunks;
        for (uint64_t i = 0; i < nchunks; i++)
            info->zero_chunks += j.index[i].flags & C_ZERO;
    }
    r = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    } else if (r < 0) {
        unlink(tmp);
    }
    free(j.index);
    free(j.out);
    pthread_mutex_destroy(&j.lock);
    return r;
}

int lel_vm_save(lel_vm_t *vm, const char *path, struct lel_snap_info *info, char *err, size_t errlen)
{
    struct buf state = {0};
    int r = save_state(vm, &state, err, errlen);
    if (r == 0)
        r = lel__image_write(path, vm->mem, vm->mem_bytes, state.p, state.n, vm->backend, vm->tick_hz, info, err, errlen);
    free(state.p);
    return r;
}

/* ---- restore ---- */

static int read_all(int fd, void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EBADMSG;
        p = (uint8_t *)p + r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static void *decompress_worker(void *arg)
{
    struct job *j = arg;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *src = malloc(ZSTD_compressBound(CHUNK));
    for (size_t i; (i = take(j)) != SIZE_MAX;) {
        struct chunk_ent *e = &j->index[i];
        uint8_t *dst = j->mem + i * CHUNK;
        if (e->flags & C_ZERO)
            continue; /* fresh memory is zero; reading it would only fault pages in */
        if (!src || !dctx) {
            fail(j, ENOMEM);
            break;
        }
        if (e->clen == 0 || e->clen > ZSTD_compressBound(CHUNK) || e->off > j->file_size || e->clen > j->file_size - e->off ||
            read_all(j->fd, src, e->clen, e->off) < 0) {
            fail(j, EBADMSG);
            break;
        }
        size_t n = ZSTD_decompressDCtx(dctx, dst, CHUNK, src, e->clen);
        if (ZSTD_isError(n) || n != CHUNK || XXH3_64bits(dst, CHUNK) != e->xxh) {
            fail(j, EBADMSG);
            break;
        }
    }
    free(src);
    ZSTD_freeDCtx(dctx);
    return NULL;
}

/* Finds record `tag` of exactly `len` bytes (or at least `len` when len_min) in the state. */
static const void *record(const uint8_t *s, size_t n, uint32_t tag, size_t len, int len_min, size_t *got)
{
    for (size_t off = 0; off + 8 <= n;) {
        uint32_t hdr[2];
        memcpy(hdr, s + off, 8);
        if (hdr[1] > n - off - 8)
            return NULL;
        if (hdr[0] == tag && (hdr[1] == len || (len_min && hdr[1] >= len))) {
            if (got)
                *got = hdr[1];
            return s + off + 8;
        }
        off += 8 + hdr[1];
    }
    return NULL;
}

/* A batched KVM_SET_MSRS stops at the first MSR it refuses, silently leaving the rest unset
 * (PVM.md §4.2). Refused MSRs are skipped, except the PVM VIF MSR: without it the guest kernel
 * would crawl in the emulator. */
static int set_msrs(lel_vm_t *vm, const struct kvm_msrs *msrs)
{
    size_t n = msrs->nmsrs;
    struct kvm_msrs *q = calloc(1, sizeof(*q) + n * sizeof(struct kvm_msr_entry));
    if (!q)
        return -ENOMEM;
    for (size_t i = 0; i < n;) {
        q->nmsrs = (uint32_t)(n - i);
        memcpy(q->entries, &msrs->entries[i], (n - i) * sizeof(struct kvm_msr_entry));
        int done = ioctl(vm->vcpu_fd, KVM_SET_MSRS, q);
        if (done < 0)
            done = 0;
        i += (size_t)done;
        if (i < n && msrs->entries[i].index == LEL_MSR_PVM_VIF) {
            free(q);
            errno = EINVAL;
            return -EINVAL;
        }
        i++; /* skip the refused one */
    }
    free(q);
    return 0;
}

static int restore_state(lel_vm_t *vm, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    size_t len = 0, msrs_len = 0;
    const char *step = "missing record";
    const struct kvm_cpuid2 *cpuid = record(s, n, T_CPUID, sizeof(struct kvm_cpuid2), 1, &len);
    const struct kvm_msrs *msrs = record(s, n, T_MSRS, sizeof(struct kvm_msrs), 1, &msrs_len);
    const void *xsave = record(s, n, T_XSAVE, sizeof(struct kvm_xsave), 1, NULL);
    const void *regs = record(s, n, T_REGS, sizeof(struct kvm_regs), 0, NULL),
               *sregs = record(s, n, T_SREGS, sizeof(struct kvm_sregs), 0, NULL),
               *xcrs = record(s, n, T_XCRS, sizeof(struct kvm_xcrs), 0, NULL),
               *lapic = record(s, n, T_LAPIC, sizeof(struct kvm_lapic_state), 0, NULL),
               *ev = record(s, n, T_EVENTS, sizeof(struct kvm_vcpu_events), 0, NULL),
               *mp = record(s, n, T_MPSTATE, sizeof(struct kvm_mp_state), 0, NULL),
               *dr = record(s, n, T_DEBUGREGS, sizeof(struct kvm_debugregs), 0, NULL),
               *clock = record(s, n, T_CLOCK, sizeof(struct kvm_clock_data), 0, NULL);
    const void *chip[3] = {record(s, n, T_PIC0, sizeof(struct kvm_irqchip), 0, NULL),
                           record(s, n, T_PIC1, sizeof(struct kvm_irqchip), 0, NULL),
                           record(s, n, T_IOAPIC, sizeof(struct kvm_irqchip), 0, NULL)};
    if (!cpuid || !msrs || !xsave || !regs || !sregs || !xcrs || !lapic || !ev || !mp || !dr || !clock || !chip[0] ||
        !chip[1] || !chip[2] || len != sizeof(*cpuid) + cpuid->nent * sizeof(struct kvm_cpuid_entry2))
        goto bad;
    if (msrs_len != sizeof(*msrs) + msrs->nmsrs * sizeof(struct kvm_msr_entry))
        goto bad;
    /* order per PVM.md §4.3: CPUID (before the LAPIC), REGS, XSAVE, XCRS, SREGS, MSRS, LAPIC,
     * EVENTS, MP_STATE, DEBUGREGS, then the irqchip and the clock */
#define SET(fd, req, p)                                                                                                \
    do {                                                                                                               \
        step = #req;                                                                                                   \
        if (ioctl(fd, req, p) < 0)                                                                                     \
            goto fail;                                                                                                 \
    } while (0)
    SET(vm->vcpu_fd, KVM_SET_CPUID2, cpuid);
    SET(vm->vcpu_fd, KVM_SET_REGS, regs);
    SET(vm->vcpu_fd, KVM_SET_XSAVE, xsave);
    SET(vm->vcpu_fd, KVM_SET_XCRS, xcrs);
    SET(vm->vcpu_fd, KVM_SET_SREGS, sregs);
    step = "KVM_SET_MSRS";
    if (set_msrs(vm, msrs) < 0)
        goto fail;
    SET(vm->vcpu_fd, KVM_SET_LAPIC, lapic);
    SET(vm->vcpu_fd, KVM_SET_VCPU_EVENTS, ev);
    SET(vm->vcpu_fd, KVM_SET_MP_STATE, mp);
    SET(vm->vcpu_fd, KVM_SET_DEBUGREGS, dr);
    for (int i = 0; i < 3; i++)
        SET(vm->vm_fd, KVM_SET_IRQCHIP, chip[i]);
    struct kvm_clock_data c;
    memcpy(&c, clock, sizeof(c));
    c.flags = 0;
    SET(vm->vm_fd, KVM_SET_CLOCK, &c);
#undef SET
    return 0;
bad:
    snprintf(err, errlen, "snapshot state is incomplete or malformed");
    return -EBADMSG;
fail:
    snprintf(err, errlen, "restoring vCPU state: %s: %s", step, strerror(errno ? errno : EIO));
    return -EIO;
}

/* An image opened and checked: header, state and index verified; chunks are checked as they
 * are decompressed. */
struct opened {
    struct header h;
    int fd;
    uint64_t size;
    uint8_t *state;
    struct chunk_ent *index;
};

static void image_close(struct opened *o)
{
    if (o->fd >= 0)
        close(o->fd);
    free(o->state);
    free(o->index);
}

static int image_open(const char *path, struct opened *o, char *err, size_t errlen)
{
    struct stat st;
    struct header *h = &o->h;
    memset(o, 0, sizeof(*o));
    if ((o->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open snapshot %s: %s", path, strerror(e));
        return -e;
    }
    snprintf(err, errlen, "snapshot %s is corrupt or truncated", path);
    if (fstat(o->fd, &st) < 0 || read_all(o->fd, h, sizeof(*h), 0) < 0 || memcmp(h->magic, MAGIC, sizeof(MAGIC)) ||
        h->header_xxh != XXH3_64bits(h, offsetof(struct header, header_xxh)) || h->version != VERSION ||
        h->chunk_size != CHUNK || h->mem_bytes % CHUNK || h->nchunks != h->mem_bytes / CHUNK || h->state_len > MAX_STATE ||
        h->state_off != sizeof(*h) || h->index_off != h->state_off + h->state_len ||
        h->index_off + h->nchunks * sizeof(struct chunk_ent) > (uint64_t)st.st_size)
        return -EBADMSG;
    o->size = (uint64_t)st.st_size;
    o->state = malloc(h->state_len ? h->state_len : 1);
    o->index = malloc(h->nchunks ? h->nchunks * sizeof(struct chunk_ent) : 1);
    if (!o->state || !o->index)
        return -ENOMEM;
    if (read_all(o->fd, o->state, h->state_len, h->state_off) < 0 || XXH3_64bits(o->state, h->state_len) != h->state_xxh ||
        read_all(o->fd, o->index, h->nchunks * sizeof(struct chunk_ent), h->index_off) < 0 ||
        XXH3_64bits(o->index, h->nchunks * sizeof(struct chunk_ent)) != h->index_xxh)
        return -EBADMSG;
    return 0;
}

/* Decompresses every stored chunk into `mem` (zero chunks are left alone: mem must be zero). */
static int image_memory(struct opened *o, uint8_t *mem, const char *path, char *err, size_t errlen)
{
    struct job j;
    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.lock, NULL);
    j.mem = mem;
    j.fd = o->fd;
    j.file_size = o->size;
    j.index = o->index;
    int r = parallel(&j, decompress_worker, 0, o->h.nchunks);
    pthread_mutex_destroy(&j.lock);
    if (r < 0)
        snprintf(err, errlen, "snapshot %s: a memory chunk fails its checksum or cannot be read", path);
    return r;
}

int lel_image_unpack_memory(const char *image, const char *raw_path, char *err, size_t errlen)
{
    struct opened o;
    char tmp[4200];
    int r = image_open(image, &o, err, errlen), fd = -1;
    uint8_t *map = MAP_FAILED;
    if (r < 0)
        goto out;
    /* the thread's own temporary file: two first starts from one snapshot may unpack at once */
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", raw_path, (long)syscall(SYS_gettid));
    if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || ftruncate(fd, (off_t)o.h.mem_bytes) < 0 ||
        (o.h.mem_bytes && (map = mmap(NULL, o.h.mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* zero chunks stay holes in the sparse file */
    if ((r = image_memory(&o, map, image, err, errlen)) < 0)
        goto out;
    if (msync(map, o.h.mem_bytes, MS_SYNC) < 0 || fsync(fd) < 0 || rename(tmp, raw_path) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot write %s: %s", raw_path, strerror(errno));
        goto out;
    }
    r = 0;
out:
    if (map != MAP_FAILED)
        munmap(map, o.h.mem_bytes);
    if (fd >= 0) {
        close(fd);
        if (r < 0)
            unlink(tmp);
    }
    image_close(&o);
    return r;
}

/* The rofs image the snapshot was taken over, mapped again: the recorded file (or `use`), with
 * the recorded content hash. A snapshot without one needs none. */
static int restore_rofs(lel_vm_t *vm, struct opened *o, const char *use, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    const void *rec = record(o->state, o->h.state_len, T_ROFS, 0, 1, &len);
    const uint8_t *hash;
    const char *recorded;
    if (!rec)
        return 0;
    if (lel__rofs_record_parse(rec, len, &hash, &recorded) < 0) {
        snprintf(err, errlen, "snapshot %s: its root filesystem image record is malformed", path);
        return -EBADMSG;
    }
    char why[600];
    int r = lel__rofs_map(vm, use ? use : recorded, hash, why, sizeof(why));
    if (r < 0)
        snprintf(err, errlen, "snapshot %.300s cannot be restored: %s", path, why);
    return r;
}

int lel_vm_restore(const char *path, const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen)
{
    struct opened o;
    lel_vm_t *vm = NULL;
    int r = image_open(path, &o, err, errlen);
    if (r < 0)
        goto out;
    struct lel_vm_config c = *cfg;
    c.mem_bytes = o.h.mem_bytes;
    c.tick_hz = o.h.tick_hz;
    if ((r = lel__vm_new(&c, &vm, err, errlen)) < 0)
        goto out;
    if (vm->backend != (enum lel_vmm_backend)o.h.backend) {
        r = -EINVAL;
        snprintf(err, errlen, "snapshot %s was taken on %s, this host runs %s", path,
                 lel_vmm_backend_name((enum lel_vmm_backend)o.h.backend), lel_vmm_backend_name(vm->backend));
        goto out;
    }
    if ((r = restore_rofs(vm, &o, cfg->rofs_path, path, err, errlen)) < 0)
        goto out;
    /* with a memory file (lel_image_unpack_memory of this image) the memory is already there,
     * mapped copy-on-write: nothing to decompress */
    if (!cfg->memory_file && (r = image_memory(&o, vm->mem, path, err, errlen)) < 0)
        goto out;
    vm->ready = 1; /* the guest said so before the snapshot */
    vm->seq = ((const struct lel_chan *)(vm->mem + LEL_GPA_CHAN))->req_seq; /* continue the numbering */
    if ((r = restore_state(vm, o.state, o.h.state_len, err, errlen)) < 0 || (r = lel__vm_start(vm, err, errlen)) < 0)
        goto out;
    *out = vm;
    vm = NULL;
    r = 0;
out:
    if (vm)
        lel_vm_destroy(vm);
    image_close(&o);
    return r;
}
