/* XSAVE under PVM, FXSAVE on hardware KVM (see fpu.h). The standard (uncompacted) XSAVE
 * format: the legacy 512 bytes, the 64-byte header at 512, each component at the offset
 * CPUID leaf 0xD gives. */
#include "fpu.h"

#include "../lib/klib.h"

static int use_xsave;
static uint64_t mask = 3; /* x87 and SSE */
static uint32_t size = 512;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

void fpu_init(int pvm)
{
    uint32_t r[4];
    cpuid(1, 0, r);
    if (!pvm || !(r[2] & (1u << 26))) /* hardware KVM: no OSXSAVE, so no AVX in user mode; no XSAVE */
        return;
    /* under PVM the host's own CR4 and XCR0 are in force: save every component that is on and
     * whose place in the area is known and fits */
    uint64_t on = xgetbv0();
    mask = 3;
    size = 576;
    for (int i = 2; i < 63; i++) {
        if (!(on & (1ULL << i)))
            continue;
        cpuid(0xd, (uint32_t)i, r);
        if (r[0] && r[1] >= 576 && r[0] + r[1] <= FPU_AREA_MAX) {
            mask |= 1ULL << i;
            size = r[0] + r[1] > size ? r[0] + r[1] : size;
        }
    }
    size = (size + 63) & ~63u;
    use_xsave = 1;
}

uint32_t fpu_size(void)
{
    return size;
}

uint64_t fpu_features(void)
{
    return mask;
}

void fpu_save(void *area)
{
    if (!use_xsave) {
        __asm__ volatile("fxsave64 (%0)" ::"r"(area) : "memory");
        return;
    }
    kmemset((uint8_t *)area + 512, 0, 64); /* xsave writes only XSTATE_BV of the header */
    __asm__ volatile("xsave64 (%0)" ::"r"(area), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
}

void fpu_restore(const void *area)
{
    if (use_xsave)
        __asm__ volatile("xrstor64 (%0)" ::"r"(area), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
    else
        __asm__ volatile("fxrstor64 (%0)" ::"r"(area) : "memory");
}

void fpu_reset(void *area)
{
    kmemset(area, 0, size); /* XSTATE_BV 0: every component from its initial state */
    *(uint16_t *)area = 0x37f;
    *(uint32_t *)((uint8_t *)area + 24) = 0x1f80;
}

void fpu_sanitize(void *area)
{
    uint8_t *a = area;
    *(uint32_t *)(a + 24) &= 0xffff; /* MXCSR: reserved bits fault */
    if (use_xsave) {
        *(uint64_t *)(a + 512) &= mask; /* XSTATE_BV */
        kmemset(a + 520, 0, 56);        /* XCOMP_BV and the reserved bytes: must be zero */
    }
}
