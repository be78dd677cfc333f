/* The agent's test area (LEL_OP_TOUCH, LEL_OP_CHECKSUM) and its deliberate misbehaviour
 * (LEL_OP_MISBEHAVE), for the host's tests; see work.h. */
#include "work.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../lel_guest_abi.h"
#include "../mm/page.h"

static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

/* The work area for touch/checksum: pages from the pool, listed in index pages of 512 entries.
 * Touching again replaces it. */
static void **work_index; /* one page of pointers to index pages */

static uint64_t work_pages;

static void work_free(void)
{
    for (uint64_t i = 0; work_index && i < 512; i++) {
        void **ix = work_index[i];
        if (!ix)
            continue;
        for (uint64_t j = 0; j < 512; j++)
            if (ix[j])
                kpage_free(ix[j]);
        kpage_free(ix);
    }
    if (work_index)
        kpage_free(work_index);
    work_index = 0;
    work_pages = 0;
}

static uint64_t *work_page(uint64_t i)
{
    return work_index[i / 512] ? ((void **)work_index[i / 512])[i % 512] : 0;
}

static int work_alloc(uint64_t mib)
{
    uint64_t n = (mib << 20) / PAGE_SIZE;
    if (mib == 0 || (mib << 20) > boot->mem_bytes || n > 512 * 512)
        return -1;
    void **old_index = work_index;
    uint64_t old_pages = work_pages;
    work_index = kpage_alloc();
    work_pages = 0;
    for (uint64_t i = 0; work_index && i < n; i++) {
        void **ix = work_index[i / 512];
        if ((!ix && !(ix = work_index[i / 512] = kpage_alloc())) || !(ix[i % 512] = kpage_alloc())) {
            work_free();
            break;
        }
        work_pages++;
    }
    if (!work_index) {
        work_index = old_index;
        work_pages = old_pages;
        return -1;
    }
    void **new_index = work_index;
    uint64_t new_pages = work_pages;
    work_index = old_index;
    work_pages = old_pages;
    work_free();
    work_index = new_index;
    work_pages = new_pages;
    return 0;
}

static void pause_a_little(void)
{
    for (volatile uint64_t i = 0; i < 20000000; i++) {
    }
}

int misbehave(uint64_t how)
{
    switch (how) {
    case LEL_BAD_SPIN:
        for (;;)
            __asm__ volatile("" ::: "memory");
    case LEL_BAD_TRIPLE_FAULT: {
        struct __attribute__((packed)) {
            uint16_t limit;
            uint64_t base;
        } none = {0, 0};
        __asm__ volatile("lidt %0; int3" ::"m"(none));
        break;
    }
    case LEL_BAD_CONSOLE_SPAM:
        for (;;)
            console_write("spam spam spam spam spam spam spam spam\n");
    case LEL_BAD_DOORBELL_SPAM:
        for (;;)
            outl(LEL_PORT_DOORBELL, 0x12345678);
    case LEL_BAD_WILD_WRITE:
        for (uint64_t a = boot->mem_bytes; a < boot->mem_bytes + (64ULL << 20); a += 4096)
            *(volatile uint64_t *)(LEL_DMAP_BASE + a) = a;
        break;
    case LEL_BAD_BELL_FLOOD: /* valid bell values, none of them true */
        for (uint32_t i = 0;; i++)
            outl(LEL_PORT_DOORBELL, i & 1 ? LEL_BELL_EVENT : LEL_BELL_RESPONSE);
    case LEL_BAD_SILENT:
        return 0;
    case LEL_BAD_OUT_OF_ORDER: { /* a stale answer, then one to a request not made yet, then the true one */
        uint32_t req = chan->req_seq;
        chan->status = LEL_ST_EINVAL;
        chan->ret[0] = 0xbad;
        chan->resp_seq = req - 1;
        __asm__ volatile("" ::: "memory");
        outl(LEL_PORT_DOORBELL, LEL_BELL_RESPONSE);
        pause_a_little();
        chan->resp_seq = req + 1;
        __asm__ volatile("" ::: "memory");
        outl(LEL_PORT_DOORBELL, LEL_BELL_RESPONSE);
        pause_a_little();
        chan->ret[0] = 0x600d;
        chan->status = LEL_ST_OK;
        return 1;
    }
    }
    chan->status = LEL_ST_EINVAL;
    return 1;
}


int work_touch(uint64_t mib, uint64_t seed, uint64_t *sum)
{
    uint64_t h = 0;
    if (work_alloc(mib) < 0)
        return -1;
    for (uint64_t pg = 0; pg < work_pages; pg++) {
        uint64_t *p = work_page(pg);
        for (uint64_t w = 0; w < PAGE_SIZE / 8; w++) {
            uint64_t i = pg * (PAGE_SIZE / 8) + w;
            p[w] = (i * 0x100000001b3ULL) ^ seed;
            h = mix(h, p[w]);
        }
    }
    *sum = h;
    return 0;
}

int work_checksum(uint64_t mib, uint64_t *sum)
{
    uint64_t h = 0;
    if (mib == 0 || (mib << 20) / PAGE_SIZE != work_pages)
        return -1;
    for (uint64_t pg = 0; pg < work_pages; pg++) {
        uint64_t *p = work_page(pg);
        for (uint64_t w = 0; w < PAGE_SIZE / 8; w++)
            h = mix(h, p[w]);
    }
    *sum = h;
    return 0;
}
