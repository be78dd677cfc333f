/* The physical page pool and the small-object heap. The heap keeps one free list per
 * power-of-two class; objects never move between classes and the caller passes the size back
 * to kfree. Built for the host too (LEL_GUEST_HOSTED: pages from calloc) for the unit tests. */
#include "page.h"

#include "../lib/klib.h"

#ifdef LEL_GUEST_HOSTED
#include <stdlib.h>
#else
#include "../lel_guest_abi.h"
#endif

#ifdef LEL_GUEST_HOSTED
void *kpage_alloc(void)
{
    return calloc(1, PAGE_SIZE);
}

void kpage_free(void *p)
{
    free(p);
}

uint64_t kpage_gpa(void *p)
{
    (void)p;
    return 0;
}

void *kpage_alloc_user(void)
{
    return kpage_alloc();
}

void *kpage_alloc_data(void)
{
    return kpage_alloc();
}

void *kpage_alloc_data_raw(void)
{
    return kpage_alloc();
}

uint64_t kpage_free_pages(void)
{
    return 0;
}

int kpage_share(void *p)
{
    (void)p;
    return -1; /* (no count table on the host: forks copy) */
}

uint32_t kpage_sharers(void *p)
{
    (void)p;
    return 0;
}

void kpage_put(void *p)
{
    kpage_free(p);
}
#else
/* Pages come from the pool the kernel registered with kpool_init (agent.c, at boot): first the
 * never-used part (pool_next..pool_end), then freed pages. Freed pages are listed by number
 * in index pages (struct fidx), so the listed pages themselves hold nothing the kernel needs:
 * the host may discard them (kpage_trim), and kpage_alloc zeroes every page it hands out.
 * Two chains: `dirty`, pages freed since they were last reported (still backed by the host),
 * and `clean`, pages the host discarded. Allocation takes dirty ones first (no host fault). */
#define FIDX_CAP ((PAGE_SIZE - 16) / 4)
#define FIDX_KEEP 64 /* free pages a trim leaves backed */
struct fidx {
    struct fidx *next;
    uint32_t n, pad;
    uint32_t pfn[FIDX_CAP];
};
static uint64_t pool_next, pool_end;
static struct fidx *dirty, *clean, *quarantine; /* quarantine: reported, until kpage_trim_done */
static uint64_t nfree, ndirty; /* pages on the chains (index pages included); on `dirty` */
/* Users beyond the first of each page of the pool's range (copy-on-write sharing), indexed
 * from refs_pfn0: 2 bytes a page, taken off the front of the range at boot. Pages outside it
 * (a cpio archive's, which join the pool later) are never shared. */
static uint16_t *refs;
static uint64_t refs_pfn0, refs_n;

void kpool_init(uint64_t start_gpa, uint64_t end_gpa)
{
    uint64_t table = ((end_gpa - start_gpa) / PAGE_SIZE * sizeof(uint16_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    refs = kmemset((void *)(LEL_DMAP_BASE + start_gpa), 0, table);
    start_gpa += table;
    refs_pfn0 = start_gpa / PAGE_SIZE;
    refs_n = (end_gpa - start_gpa) / PAGE_SIZE;
    pool_next = start_gpa;
    pool_end = end_gpa;
    dirty = clean = quarantine = 0;
    nfree = ndirty = 0;
}

/* A page off chain `*c`: its last listed page, or the index page itself once it lists none. */
static void *chain_take(struct fidx **c)
{
    struct fidx *x = *c;
    if (x->n)
        return (void *)(LEL_DMAP_BASE + ((uint64_t)x->pfn[--x->n] << 12));
    *c = x->next;
    return x;
}

/* Zeroes a page with plain stores, not `rep stosb`: a freed page may have been a page table
 * that the hypervisor's shadow paging (PVM) still write-protects, and there a string
 * instruction is emulated one byte at a time, thousands of exits' worth, where plain stores
 * trap only until the hypervisor sees the page is no page table any more (a few writes). */
static void *page_zero(void *p)
{
    for (volatile uint64_t *w = p, *end = w + PAGE_SIZE / 8; w < end; w += 8) {
        w[0] = 0, w[1] = 0, w[2] = 0, w[3] = 0;
        w[4] = 0, w[5] = 0, w[6] = 0, w[7] = 0;
    }
    return p;
}

/* A page off the pool, its contents as they were. */
static void *take_page(void)
{
    void *p;
    if (dirty) {
        p = chain_take(&dirty);
        ndirty--;
        nfree--;
    } else if (clean) {
        p = chain_take(&clean);
        nfree--;
    } else if (pool_next + PAGE_SIZE <= pool_end) {
        p = (void *)(LEL_DMAP_BASE + pool_next);
        pool_next += PAGE_SIZE;
    } else {
        return 0;
    }
    return p;
}

void *kpage_alloc(void)
{
    void *p = take_page();
    return p ? page_zero(p) : 0;
}

void kpage_free(void *p)
{
    if (dirty && dirty->n < FIDX_CAP) {
        dirty->pfn[dirty->n++] = (uint32_t)(((uint64_t)p - LEL_DMAP_BASE) >> 12);
    } else { /* the page becomes the next index page */
        struct fidx *x = p;
        x->next = dirty;
        x->n = 0;
        dirty = x;
    }
    nfree++;
    ndirty++;
}

static uint16_t *ref_of(void *p)
{
    uint64_t pfn = ((uint64_t)p - LEL_DMAP_BASE) / PAGE_SIZE;
    return pfn >= refs_pfn0 && pfn - refs_pfn0 < refs_n ? &refs[pfn - refs_pfn0] : 0;
}

int kpage_share(void *p)
{
    uint16_t *r = ref_of(p);
    if (!r || *r == 0xffff)
        return -1;
    ++*r;
    return 0;
}

uint32_t kpage_sharers(void *p)
{
    uint16_t *r = ref_of(p);
    return r ? *r : 0;
}

void kpage_put(void *p)
{
    uint16_t *r = ref_of(p);
    if (r && *r)
        --*r;
    else
        kpage_free(p);
}

void kpage_trim_done(void);

uint64_t kpage_dirty_pages(void)
{
    return ndirty;
}

uint64_t kpage_trim(uint32_t *out, uint64_t cap)
{
    uint64_t n = 0;
    /* the host asks one VM one thing at a time: an earlier report not released was abandoned
     * (its request timed out before the host read the list), and is released now */
    kpage_trim_done();
    if (!dirty)
        return 0;
    /* every index page but the newest, whole */
    struct fidx **tail = &quarantine;
    while (dirty->next && n + dirty->next->n <= cap) {
        struct fidx *x = dirty->next;
        dirty->next = x->next;
        for (uint32_t i = 0; i < x->n; i++)
            out[n++] = x->pfn[i];
        ndirty -= x->n + 1;
        nfree -= x->n + 1;
        x->next = 0;
        *tail = x;
        tail = &x->next;
    }
    /* and the newest one's list but FIDX_KEEP pages (which, with the discarded pages and the
     * never-used ones, keep allocations going while the host works), under an index page
     * taken from that list */
    if (dirty->n > FIDX_KEEP + 1 && n + dirty->n - FIDX_KEEP - 1 <= cap) {
        struct fidx *q = (struct fidx *)(LEL_DMAP_BASE + ((uint64_t)dirty->pfn[--dirty->n] << 12));
        q->next = 0;
        q->n = 0;
        while (dirty->n > FIDX_KEEP)
            out[n++] = q->pfn[q->n++] = dirty->pfn[--dirty->n];
        ndirty -= q->n + 1;
        nfree -= q->n + 1;
        *tail = q;
    }
    return n;
}

void kpage_trim_done(void)
{
    while (quarantine) {
        struct fidx *x = quarantine;
        quarantine = x->next;
        x->next = clean;
        clean = x;
        nfree += x->n + 1;
    }
}

uint64_t kpage_gpa(void *p)
{
    return (uint64_t)p - LEL_DMAP_BASE;
}

void *kpage_alloc_user(void)
{
    return kpage_free_pages() > KPAGE_RESERVE ? kpage_alloc() : 0;
}

void *kpage_alloc_data(void)
{
    return kpage_free_pages() > KPAGE_DATA_RESERVE ? kpage_alloc() : 0;
}

void *kpage_alloc_data_raw(void)
{
    return kpage_free_pages() > KPAGE_DATA_RESERVE ? take_page() : 0;
}

uint64_t kpage_free_pages(void)
{
    return nfree + (pool_end - pool_next) / PAGE_SIZE;
}
#endif

#define CLASSES 7 /* 32 .. 2048 */
static void *free_objs[CLASSES];

static int class_of(size_t n)
{
    int c = 0;
    size_t sz = 32;
    while (sz < n) {
        sz <<= 1;
        c++;
    }
    return c;
}

void *kmalloc(size_t n)
{
    if (n == 0 || n > 2048)
        return 0;
    int c = class_of(n);
    size_t sz = (size_t)32 << c;
    if (!free_objs[c]) {
        uint8_t *page = kpage_alloc();
        if (!page)
            return 0;
        for (size_t off = 0; off + sz <= PAGE_SIZE; off += sz) {
            *(void **)(page + off) = free_objs[c];
            free_objs[c] = page + off;
        }
    }
    void *p = free_objs[c];
    free_objs[c] = *(void **)p;
    return kmemset(p, 0, sz);
}

void kfree(void *p, size_t n)
{
    if (!p)
        return;
    int c = class_of(n);
    *(void **)p = free_objs[c];
    free_objs[c] = p;
}

char *kstrndup(const char *s, size_t n)
{
    char *d = kmalloc(n + 1);
    if (d) {
        kmemcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}
