/* Snapshots of a VM: its vCPU and VM state as tagged records, saved with its memory into an
 * image (lel_vmimage.c: the format), whole or as a diff against the image the VM was restored
 * from; and restores, which open an image's chain of bases, map the nearest raw memory file
 * copy-on-write and apply the diffs above it. */
#include "lel_vmm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define MAX_STATE (1u << 20)

enum tag {
    T_CPUID = 1, T_REGS, T_SREGS, T_XSAVE, T_XCRS, T_MSRS, T_LAPIC, T_EVENTS, T_MPSTATE, T_DEBUGREGS,
    T_PIC0, T_PIC1, T_IOAPIC, T_CLOCK, T_COUNT,
    T_ROFS = 32 /* the rofs image the VM runs over (its hash, size and path; never its pages) */
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

/* ---- restore ---- */

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

/* The rofs image the snapshot was taken over, mapped again: the recorded file (or `use`), with
 * the recorded content hash. A snapshot without one needs none. */
static int restore_rofs(lel_vm_t *vm, struct lel__img *o, const char *use, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    const void *rec = record(o->state, o->state_len, T_ROFS, 0, 1, &len);
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


/* ---- saving ---- */

void lel__vm_base_free(lel_vm_t *vm)
{
    free(vm->base_path);
    free(vm->base_map);
    free(vm->overlay);
    vm->base_path = NULL;
    vm->base_map = NULL;
    vm->overlay = NULL;
    vm->noverlay = 0;
}

const uint8_t *lel_vm_memory(lel_vm_t *vm, uint64_t *bytes)
{
    *bytes = vm->mem_bytes;
    return vm->mem;
}

int lel_vm_save(lel_vm_t *vm, const char *path, struct lel_snap_info *info, char *err, size_t errlen)
{
    struct buf state = {0};
    int r = save_state(vm, &state, err, errlen);
    /* anonymous memory: the chunks the guest never touched are zero, and need not be read */
    uint8_t *zero = r == 0 && vm->mem_anon ? lel__img_untouched(vm->mem, vm->mem_bytes) : NULL;
    struct lel__wspec w = {path, vm->mem, vm->mem_bytes, state.p, state.n, vm->backend, vm->tick_hz, NULL, 0, NULL, NULL, NULL, 0, zero};
    if (r == 0)
        r = lel__img_write(&w, info, err, errlen);
    free(zero);
    free(state.p);
    return r;
}

/* Whether page p differs from the base: a page the chain put there is compared with the
 * base's hash of it; any other page differs once it was copied-on-write (it is anonymous, or
 * swapped out; a page still the file's is the base's). */
static int page_differs(lel_vm_t *vm, uint64_t p, uint64_t pm, const struct lel_overlay *ov)
{
    if (ov)
        return (ov->flags & LEL_OV_ALWAYS) || XXH3_64bits(vm->mem + p * LEL_IMG_PAGE, LEL_IMG_PAGE) != ov->hash;
    int present = (pm >> 63) & 1, swapped = (pm >> 62) & 1, file = (pm >> 61) & 1;
    return swapped || (present && !file);
}

/* The pages that differ from the VM's base, ascending, from /proc/self/pagemap. */
static int dirty_pages(lel_vm_t *vm, uint32_t **out, uint64_t *nout)
{
    enum { STEP = 16384 };
    uint64_t npages = vm->mem_bytes / LEL_IMG_PAGE, n = 0, first = (uint64_t)(uintptr_t)vm->mem / LEL_IMG_PAGE;
    uint64_t *pm = malloc(STEP * sizeof(uint64_t));
    uint32_t *pages = malloc(npages * sizeof(uint32_t));
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;
    size_t ov = 0;
    if (fd < 0 || !pm || !pages) {
        r = fd < 0 ? -errno : -ENOMEM;
        goto out;
    }
    for (uint64_t at = 0; at < npages; at += STEP) {
        uint64_t cnt = npages - at < STEP ? npages - at : STEP;
        ssize_t got = pread(fd, pm, cnt * sizeof(uint64_t), (off_t)((first + at) * sizeof(uint64_t)));
        if (got != (ssize_t)(cnt * sizeof(uint64_t))) {
            r = got < 0 ? -errno : -EIO;
            goto out;
        }
        for (uint64_t i = 0; i < cnt; i++) {
            uint64_t p = at + i;
            while (ov < vm->noverlay && vm->overlay[ov].page < p)
                ov++;
            const struct lel_overlay *o = ov < vm->noverlay && vm->overlay[ov].page == p ? &vm->overlay[ov] : NULL;
            if (page_differs(vm, p, pm[i], o))
                pages[n++] = (uint32_t)p;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(pm);
    if (r < 0) {
        free(pages);
        return r;
    }
    *out = pages;
    *nout = n;
    return 0;
}

int lel_vm_written_pages(lel_vm_t *vm, uint32_t **pages, uint64_t *npages)
{
    return dirty_pages(vm, pages, npages);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int lel_vm_prefault(lel_vm_t *vm, const uint32_t *pages, uint64_t npages)
{
    uint64_t limit = vm->mem_bytes / LEL_IMG_PAGE;
    for (uint64_t i = 0, j; i < npages; i = j) { /* one madvise per run of consecutive pages */
        for (j = i + 1; j < npages && pages[j] == pages[j - 1] + 1; j++)
            ;
        if (pages[i] >= limit || pages[j - 1] >= limit)
            continue;
        uint64_t at = (uint64_t)pages[i] * LEL_IMG_PAGE, len = (uint64_t)(pages[j - 1] - pages[i] + 1) * LEL_IMG_PAGE;
        if (madvise(vm->mem + at, len, MADV_POPULATE_WRITE) < 0)
            return -errno;
    }
    return 0;
}

/* `target` relative to the directory of `from` (both absolute, canonical). */
static char *relative_to(const char *from, const char *target)
{
    size_t common = 0, up = 0;
    for (size_t i = 0; from[i] && from[i] == target[i]; i++)
        if (from[i] == '/')
            common = i + 1;
    for (const char *p = from + common; *p; p++)
        up += *p == '/';
    size_t len = up * 3 + strlen(target + common) + 1;
    char *out = malloc(len);
    if (!out)
        return NULL;
    out[0] = 0;
    for (size_t i = 0; i < up; i++)
        strcat(out, "../");
    strcat(out, target + common);
    return out;
}

/* The canonical path of a file about to be written at `path` (its directory exists). */
static char *canonical_new(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], *out;
    if (!slash)
        return realpath(".", dir) && asprintf(&out, "%s/%s", dir, path) >= 0 ? out : NULL;
    char *d = strndup(path, (size_t)(slash - path) + (slash == path));
    int ok = d && realpath(d, dir);
    free(d);
    return ok && asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", slash + 1) >= 0 ? out : NULL;
}

int lel_vm_save_diff(lel_vm_t *vm, const char *path, struct lel_snap_info *info, char *err, size_t errlen)
{
    if (!vm->base_path)
        return lel_vm_save(vm, path, info, err, errlen);
    uint32_t *pages = NULL;
    uint64_t npages = 0, nmap = vm->mem_bytes / LEL_IMG_CHUNK;
    uint64_t *map = malloc(nmap * sizeof(uint64_t));
    char *self = canonical_new(path), *rel = self ? relative_to(self, vm->base_path) : NULL;
    struct buf state = {0};
    int r = !map || !rel ? -ENOMEM : dirty_pages(vm, &pages, &npages);
    if (r < 0 || npages == 0) { /* no page map to read (or nothing changed): a full image is always right */
        free(map);
        free(self);
        free(rel);
        free(pages);
        return lel_vm_save(vm, path, info, err, errlen);
    }
    /* the memory's chunk hashes: the base's, with the chunks that hold changed pages hashed again */
    memcpy(map, vm->base_map, nmap * sizeof(uint64_t));
    for (uint64_t i = 0, last = UINT64_MAX; i < npages; i++) {
        uint64_t c = pages[i] / (LEL_IMG_CHUNK / LEL_IMG_PAGE);
        if (c != last)
            map[c] = XXH3_64bits(vm->mem + c * LEL_IMG_CHUNK, LEL_IMG_CHUNK);
        last = c;
    }
    if ((r = save_state(vm, &state, err, errlen)) == 0) {
        struct lel__wspec w = {path, vm->mem, vm->mem_bytes, state.p, state.n, vm->backend, vm->tick_hz, pages, npages, map, rel,
                               vm->base_id, vm->base_depth + 1, NULL};
        r = lel__img_write(&w, info, err, errlen);
    }
    free(state.p);
    free(map);
    free(self);
    free(rel);
    free(pages);
    return r;
}

/* ---- restoring ---- */

/* Where the memory comes from: the nearest raw file at or below the save base (links[sb]);
 * for a chain without one, the full image at its root is unpacked beside it. Returns the link
 * whose raw is in `raw`, or -1 (decompress everything). */
static int pick_raw(struct lel__img *l, int n, int sb, const struct lel_vm_config *cfg, char *raw, size_t rawlen)
{
    char err[600];
    if (n == 1 && !l[0].diff) {
        if (!cfg->memory_file)
            return -1;
        snprintf(raw, rawlen, "%s", cfg->memory_file);
        return 0;
    }
    for (int k = sb; k < n; k++) {
        if (k == 0 && cfg->memory_file) {
            snprintf(raw, rawlen, "%s", cfg->memory_file);
            return 0;
        }
        if (lel__img_raw(&l[k], raw, rawlen))
            return k;
    }
    size_t len = strlen(l[n - 1].path);
    if (len < 4 || strcmp(l[n - 1].path + len - 4, ".img"))
        return -1;
    snprintf(raw, rawlen, "%.*s.raw", (int)(len - 4), l[n - 1].path);
    if (lel_image_unpack_memory(l[n - 1].path, raw, err, sizeof(err)) < 0) {
        fprintf(stderr, "lelantosd: %s: no raw memory file, the restore decompresses it: %s\n", l[n - 1].path, err);
        return -1;
    }
    return n - 1;
}

struct ov_ent {
    struct lel_overlay o;
    size_t seq; /* order applied: the later (upper) link's entry wins */
};

static int cmp_ov_ent(const void *a, const void *b)
{
    const struct ov_ent *x = a, *y = b;
    if (x->o.page != y->o.page)
        return x->o.page < y->o.page ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Applies the diffs above the mapped raw (links[j-1] .. links[0]) and records the overlay: what
 * each page they put there must hold to equal the save base (links[sb]). */
static int apply_overlay(lel_vm_t *vm, struct lel__img *l, int j, int sb, char *err, size_t errlen)
{
    size_t cap = 0, n = 0;
    for (int k = 0; k < j; k++)
        cap += l[k].npages;
    struct ov_ent *e = cap ? malloc(cap * sizeof(*e)) : NULL;
    uint64_t *hash = NULL;
    int r = 0;
    if (cap && !e)
        return -ENOMEM;
    for (int k = j - 1; k >= 0 && r == 0; k--) {
        free(hash);
        if (!(hash = malloc(l[k].npages * sizeof(uint64_t)))) {
            r = -ENOMEM;
            break;
        }
        if ((r = lel__img_apply(&l[k], vm->mem, 0, hash, err, errlen)) < 0)
            break;
        for (uint64_t i = 0; i < l[k].npages; i++, n++)
            e[n] = (struct ov_ent){{l[k].pages[i], k < sb ? LEL_OV_ALWAYS : 0, hash[i]}, n};
    }
    free(hash);
    struct lel_overlay *ov = r == 0 && n ? malloc(n * sizeof(*ov)) : NULL;
    if (r < 0 || (n && !ov)) {
        free(e);
        return r < 0 ? r : -ENOMEM;
    }
    qsort(e, n, sizeof(*e), cmp_ov_ent);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && ov[m - 1].page == e[i].o.page)
            m--;
        ov[m++] = e[i].o;
    }
    free(e);
    vm->overlay = ov;
    vm->noverlay = m;
    return 0;
}

/* The VM's save base: links[sb], whose memory the mapped file plus the overlay reproduce. */
static int set_base(lel_vm_t *vm, const struct lel__img *b)
{
    vm->base_path = realpath(b->path, NULL);
    vm->base_map = malloc(b->nmap * sizeof(uint64_t));
    if (!vm->base_path || !vm->base_map) {
        lel__vm_base_free(vm);
        return -ENOMEM;
    }
    memcpy(vm->base_map, b->map, b->nmap * sizeof(uint64_t));
    memcpy(vm->base_id, b->id, 16);
    vm->base_depth = b->depth;
    return 0;
}

/* Guest memory from the chain: over the raw file of links[j] (j < 0: none, everything is
 * decompressed into fresh memory, and the VM gets no base). */
static int chain_into(lel_vm_t *vm, struct lel__img *l, int n, int j, int sb, char *err, size_t errlen)
{
    int r = 0;
    if (j < 0) {
        for (int k = n - 1; k >= 0 && r == 0; k--)
            r = lel__img_apply(&l[k], vm->mem, k == n - 1, NULL, err, errlen);
        return r;
    }
    if (j > 0 && (r = apply_overlay(vm, l, j, sb, err, errlen)) < 0)
        return r;
    if (sb < n && set_base(vm, &l[sb]) < 0)
        lel__vm_base_free(vm); /* no base: later saves are full images */
    return 0;
}

int lel_vm_restore(const char *path, const struct lel_vm_config *cfg, lel_vm_t **out, char *err, size_t errlen)
{
    struct lel__img *l = NULL;
    lel_vm_t *vm = NULL;
    char raw[4200];
    int n = 0, r = lel__chain_open(path, &l, &n, err, errlen);
    if (r < 0)
        goto out;
    struct lel__img *top = &l[0];
    /* later diffs are against this image, or for a transient one its base (a transient full
     * image has none) */
    int sb = cfg->transient ? (top->diff ? 1 : n) : 0;
    int j = pick_raw(l, n, sb < n ? sb : 0, cfg, raw, sizeof(raw));
    struct lel_vm_config c = *cfg;
    c.mem_bytes = top->mem_bytes;
    c.tick_hz = top->tick_hz;
    c.memory_file = j >= 0 ? raw : NULL;
    if ((r = lel__vm_new(&c, &vm, err, errlen)) < 0)
        goto out;
    if (vm->backend != (enum lel_vmm_backend)top->backend) {
        r = -EINVAL;
        snprintf(err, errlen, "snapshot %s was taken on %s, this host runs %s", path,
                 lel_vmm_backend_name((enum lel_vmm_backend)top->backend), lel_vmm_backend_name(vm->backend));
        goto out;
    }
    if ((r = restore_rofs(vm, top, cfg->rofs_path, path, err, errlen)) < 0 ||
        (r = chain_into(vm, l, n, j, sb, err, errlen)) < 0)
        goto out;
    vm->ready = 1; /* the guest said so before the snapshot */
    vm->seq = ((const struct lel_chan *)(vm->mem + LEL_GPA_CHAN))->req_seq; /* continue the numbering */
    if (cfg->stopped) {
        vm->stop_req = 1;
        vm->state = VM_STOPPED;
    }
    if ((r = restore_state(vm, top->state, top->state_len, err, errlen)) < 0 || (r = lel__vm_start(vm, err, errlen)) < 0)
        goto out;
    *out = vm;
    vm = NULL;
    r = 0;
out:
    if (vm)
        lel_vm_destroy(vm);
    lel__chain_close(l, n);
    return r;
}
