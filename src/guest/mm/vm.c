/* Address spaces. Page tables: PML4 slots 0..255 are the process's own, 256..511 are copied
 * from the kernel's (U/S=1 everywhere, as PVM requires; guest user/kernel isolation is not the
 * security boundary — the VM is). Every user pointer a syscall receives is translated through
 * the address space's page table before it is touched (translate), so a bad pointer is
 * -EFAULT, never a kernel fault. Knows nothing of processes: callers pass the address space. */
#include "vm.h"

#include "../arch/cpu.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "page.h"


#define FAULT_AROUND 16       /* pages a fault in a lazy range maps (an aligned 64 KiB, clipped) */
_Static_assert(sizeof(struct mm) <= 2048, "struct mm comes from kmalloc");

uint64_t *pte_of(uint64_t pml4, uint64_t va, int create)
{
    uint64_t table = pml4;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t *e = (uint64_t *)DMAP(table) + ((va >> shift) & 511);
        if (!(*e & PTE_P)) {
            void *t;
            if (!create || !(t = kpage_alloc()))
                return 0;
            *e = kpage_gpa(t) | PTE_P | PTE_W | PTE_U | PTE_A;
        }
        table = *e & PTE_ADDR;
    }
    return (uint64_t *)DMAP(table) + ((va >> 12) & 511);
}

int map_new(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 1);
    void *p;
    if (!e)
        return -ENOMEM;
    if (*e & PTE_P)
        return 0;
    if (!(p = kpage_alloc_user()))
        return -ENOMEM;
    *e = kpage_gpa(p) | PTE_P | PTE_W | PTE_U | PTE_A | PTE_D;
    return 0;
}

/* A user page's entry goes: the page goes with it when it was the address space's own and no
 * other one shares it. */
static void page_drop(uint64_t e)
{
    if (!(e & PTE_FILE))
        kpage_put(DMAP(e & PTE_ADDR));
}

void unmap(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 0);
    if (e && (*e & PTE_P)) {
        page_drop(*e);
        *e = 0;
        __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); /* PVM resyncs shadow PTEs only here */
    }
}

uint64_t pte_next(uint64_t pml4, uint64_t va, uint64_t end)
{
    va &= ~(PAGE_SIZE - 1);
    while (va < end) {
        uint64_t table = pml4;
        int shift = 39;
        for (; shift >= 12; shift -= 9) {
            uint64_t e = ((uint64_t *)DMAP(table))[(va >> shift) & 511];
            if (!(e & PTE_P))
                break;
            if (shift == 12)
                return va;
            table = e & PTE_ADDR;
        }
        uint64_t next = (va & ~((1ULL << shift) - 1)) + (1ULL << shift); /* past what is missing */
        if (next <= va)
            break;
        va = next;
    }
    return end;
}

#define UNMAP_INVLPG_MAX 16 /* pages unmap_range invalidates one by one; past them, one reload */

void unmap_range(uint64_t pml4, uint64_t start, uint64_t end)
{
    uint64_t n = 0;
    for (uint64_t va = pte_next(pml4, start, end); va < end; va = pte_next(pml4, va + PAGE_SIZE, end)) {
        if (n++ < UNMAP_INVLPG_MAX) {
            unmap(pml4, va);
            continue;
        }
        uint64_t *e = pte_of(pml4, va, 0);
        page_drop(*e);
        *e = 0;
    }
    /* under PVM an invlpg is a trap (several microseconds): a large munmap (16 MiB: 4096 of
     * them) costs one CR3 reload instead, when this address space is the one loaded (another
     * one's entries are read afresh when it is loaded) */
    if (n > UNMAP_INVLPG_MAX && cpu_cr3 == pml4)
        cr3_reload();
}

int stack_grow(uint64_t pml4, uint64_t va)
{
    if (va >= STACK_TOP || va < STACK_TOP - STACK_MAX || map_new(pml4, va & ~(PAGE_SIZE - 1)) < 0)
        return 0;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    return 1;
}

int lazy_add(struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++) {
        if (start <= m->lazy[i].end && end >= m->lazy[i].start) {
            uint64_t s = start < m->lazy[i].start ? start : m->lazy[i].start;
            uint64_t e = end > m->lazy[i].end ? end : m->lazy[i].end;
            m->lazy[i] = m->lazy[--m->nlazy]; /* merged ranges may now touch others */
            return lazy_add(m, s, e);
        }
    }
    if (m->nlazy == LAZY_MAX)
        return -ENOMEM;
    m->lazy[m->nlazy].start = start;
    m->lazy[m->nlazy++].end = end;
    return 0;
}

void lazy_remove(struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++) {
        uint64_t s = m->lazy[i].start, e = m->lazy[i].end;
        if (end <= s || start >= e)
            continue;
        if (start > s && end < e && m->nlazy == LAZY_MAX)
            continue;
        if (start > s && end < e) {
            m->lazy[i].end = start;
            m->lazy[m->nlazy].start = end;
            m->lazy[m->nlazy++].end = e;
        } else if (start > s) {
            m->lazy[i].end = start;
        } else if (end < e) {
            m->lazy[i].start = end;
        } else {
            m->lazy[i--] = m->lazy[--m->nlazy];
        }
    }
}

int lazy_overlaps(const struct mm *m, uint64_t start, uint64_t end)
{
    for (int i = 0; i < m->nlazy; i++)
        if (start < m->lazy[i].end && end > m->lazy[i].start)
            return 1;
    return 0;
}

int commit_ok(uint64_t len)
{
    uint64_t free = kpage_free_pages();
    return free > KPAGE_RESERVE && len / PAGE_SIZE <= free - KPAGE_RESERVE;
}

int lazy_fault(struct mm *m, uint64_t va)
{
    uint64_t pml4 = m->pml4;
    for (int i = 0; i < m->nlazy; i++) {
        if (va < m->lazy[i].start || va >= m->lazy[i].end)
            continue;
        uint64_t page = va & ~(PAGE_SIZE - 1), lo = va & ~(FAULT_AROUND * PAGE_SIZE - 1), hi = lo + FAULT_AROUND * PAGE_SIZE;
        if (map_new(pml4, page) < 0)
            return -1;
        __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
        lo = lo > m->lazy[i].start ? lo : m->lazy[i].start;
        hi = hi < m->lazy[i].end ? hi : m->lazy[i].end;
        for (uint64_t p = lo; p < hi; p += PAGE_SIZE)
            if (p != page && map_new(pml4, p) < 0)
                break; /* memory is short: the rest waits for its own fault */
        return 1;
    }
    return 0;
}

/* A page shared copy-on-write at entry `e` (of `va`) becomes the address space's own: a copy,
 * or the page itself once no other address space maps it. 0 or -ENOMEM (unchanged). */
static int cow_break(uint64_t *e, uint64_t va)
{
    void *old = DMAP(*e & PTE_ADDR);
    if (kpage_sharers(old)) {
        void *copy = kpage_alloc_user();
        if (!copy)
            return -ENOMEM;
        kmemcpy(copy, old, PAGE_SIZE);
        kpage_put(old);
        *e = kpage_gpa(copy) | (*e & ~PTE_ADDR);
    }
    *e = (*e | PTE_W) & ~PTE_COW;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); /* (a no-op when `e` is not the running space's) */
    return 0;
}

uint64_t translate(struct mm *m, uint64_t va, int write)
{
    if (va >= USER_TOP)
        return 0;
    uint64_t *e = pte_of(m->pml4, va, 0);
    if ((!e || !(*e & PTE_P)) && (stack_grow(m->pml4, va) || lazy_fault(m, va) > 0))
        e = pte_of(m->pml4, va, 0); /* the kernel reached the page first (a read into a stack buffer) */
    if (e && write && (*e & (PTE_P | PTE_COW)) == (PTE_P | PTE_COW) && cow_break(e, va) < 0)
        return 0;
    return e && (*e & PTE_P) && (!write || (*e & PTE_W)) ? (*e & PTE_ADDR) | (va & (PAGE_SIZE - 1)) : 0;
}

int vm_shared_page(struct mm *m, uint64_t va)
{
    uint64_t *e = va < USER_TOP ? pte_of(m->pml4, va, 0) : 0;
    return e && (*e & (PTE_P | PTE_FILE | PTE_SHARED)) == (PTE_P | PTE_FILE | PTE_SHARED);
}

int cow_fault(struct mm *m, uint64_t va)
{
    uint64_t *e = va < USER_TOP ? pte_of(m->pml4, va, 0) : 0;
    if (!e || !(*e & PTE_P))
        return 0;
    if (*e & PTE_COW)
        return cow_break(e, va) < 0 ? -1 : 1;
    if (!(*e & PTE_W))
        return 0;
    /* writable already: the kernel broke the sharing while this address space was not the
     * running one (the invlpg then was another's), and the CPU still has the old entry */
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    return 1;
}

void free_level(uint64_t table, int level)
{
    uint64_t *e = DMAP(table);
    for (int i = 0; i < (level == 4 ? 256 : 512); i++) {
        if (!(e[i] & PTE_P))
            continue;
        if (level > 1)
            free_level(e[i] & PTE_ADDR, level - 1);
        else
            page_drop(e[i]);
    }
    kpage_free(DMAP(table));
}

int map_readonly_region(uint64_t gpa, uint64_t bytes)
{
    uint64_t *pdpt = DMAP(LEL_GPA_PDPT), gib = 1ULL << 30, big = 2ULL << 20; /* slot 273's, which every PML4 shares */
    for (uint64_t g = gpa & ~(gib - 1); g < gpa + bytes; g += gib) {
        uint64_t *pd;
        if (pdpt[g / gib] & PTE_P) {
            pd = DMAP(pdpt[g / gib] & PTE_ADDR);
        } else {
            void *p = kpage_alloc();
            if (!p)
                return -ENOMEM;
            pd = p;
            pdpt[g / gib] = kpage_gpa(p) | PTE_P | PTE_W | PTE_U | PTE_A;
        }
        for (uint64_t i = 0; i < 512; i++) {
            uint64_t at = g + i * big;
            if (at + big > gpa && at < gpa + bytes)
                pd[i] = at | PTE_P | PTE_U | PTE_A | 0x80; /* a 2 MiB page, not writable */
        }
    }
    cr3_reload(); /* whichever tables are loaded share the slot: PVM resyncs its shadow */
    return 0;
}

static uint64_t pt_new(void)
{
    void *p = kpage_alloc();
    if (!p)
        return 0;
    uint64_t *dst = p, *src = KVA(LEL_GPA_PML4);
    for (int i = 256; i < 512; i++)
        dst[i] = src[i];
    return kpage_gpa(p);
}

struct mm *mm_new(void)
{
    struct mm *m = kmalloc(sizeof(*m));
    if (m && !(m->pml4 = pt_new())) {
        kfree(m, sizeof(*m));
        return 0;
    }
    if (m)
        m->refs = 1;
    return m;
}

int make_private(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 0);
    if (!e || !(*e & PTE_FILE) || (*e & PTE_SHARED))
        return 0;
    void *page = kpage_alloc_user();
    if (!page)
        return -ENOMEM;
    kmemcpy(page, DMAP(*e & PTE_ADDR), PAGE_SIZE);
    *e = kpage_gpa(page) | PTE_P | PTE_W | PTE_U | PTE_A | PTE_D;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    return 0;
}

long str_len(struct mm *m, uint64_t va, uint64_t max)
{
    for (uint64_t n = 0; n < max;) {
        uint64_t gpa = translate(m, va + n, 0), in = PAGE_SIZE - ((va + n) & (PAGE_SIZE - 1));
        if (!gpa)
            return -EFAULT;
        in = in < max - n ? in : max - n;
        uint64_t l = kstrnlen(DMAP(gpa), in);
        n += l;
        if (l < in)
            return (long)n;
    }
    return -E2BIG_;
}

int put_user_u32(struct mm *m, uint64_t va, uint32_t v)
{
    uint64_t *e = va & 3 ? 0 : pte_of(m->pml4, va, 0);
    if (e && (*e & (PTE_P | PTE_COW)) == (PTE_P | PTE_COW) && cow_break(e, va) < 0)
        return -EFAULT;
    if (!e || !(*e & PTE_P) || !(*e & PTE_W))
        return -EFAULT;
    *(uint32_t *)DMAP((*e & PTE_ADDR) | (va & (PAGE_SIZE - 1))) = v;
    return 0;
}

uint64_t mm_own_pages(uint64_t pml4)
{
    uint64_t n = 0;
    for (uint64_t va = pte_next(pml4, 0, USER_TOP); va < USER_TOP; va = pte_next(pml4, va + PAGE_SIZE, USER_TOP))
        n += !(*pte_of(pml4, va, 0) & PTE_FILE);
    return n;
}

/* How a fork treats the pages of the parent's own: shared copy-on-write (`share`) but for the
 * stack around [keep_lo, keep_hi), or else copied. */
struct fork_plan {
    int share;
    uint64_t keep_lo, keep_hi;
    uint64_t shared; /* parent entries made read-only */
};

/* One level of the page tables of [va, va + 512^level pages): entry by entry into `to`. */
static int fork_level(uint64_t from, uint64_t to, int level, uint64_t va, struct fork_plan *fp)
{
    uint64_t *s = DMAP(from), *d = DMAP(to), span = PAGE_SIZE << (9 * (level - 1));
    for (int i = 0; i < (level == 4 ? 256 : 512); i++) {
        uint64_t at = va + (uint64_t)i * span;
        if (!(s[i] & PTE_P))
            continue;
        if (level == 1 && (s[i] & PTE_FILE)) {
            d[i] = s[i];
            continue;
        }
        if (level == 1 && fp->share && (at < fp->keep_lo || at >= fp->keep_hi) &&
            kpage_share(DMAP(s[i] & PTE_ADDR)) == 0) {
            fp->shared += !(s[i] & PTE_COW);
            s[i] = (s[i] & ~PTE_W) | PTE_COW;
            d[i] = s[i];
            continue;
        }
        void *page = kpage_alloc_user(); /* a fork's copy: the program's memory */
        if (!page)
            return -ENOMEM;
        if (level > 1) {
            d[i] = kpage_gpa(page) | (s[i] & ~PTE_ADDR);
            if (fork_level(s[i] & PTE_ADDR, kpage_gpa(page), level - 1, at, fp) < 0)
                return -ENOMEM;
        } else {
            kmemcpy(page, DMAP(s[i] & PTE_ADDR), PAGE_SIZE);
            d[i] = kpage_gpa(page) | ((s[i] & ~PTE_ADDR & ~PTE_COW) | PTE_W);
        }
    }
    return 0;
}

int mm_fork_pages(struct mm *from, struct mm *to, uint64_t sp)
{
    uint64_t page = sp & ~(PAGE_SIZE - 1);
    struct fork_plan fp = {mm_own_pages(from->pml4) > FORK_COPY_MAX, page > FORK_KEEP ? page - FORK_KEEP : 0,
                           page + FORK_KEEP, 0};
    int r = fork_level(from->pml4, to->pml4, 4, 0, &fp);
    if (fp.shared && cpu_cr3 == from->pml4) /* the parent's entries lost their write access: the CPU (PVM's shadow) must see it */
        cr3_reload();
    return r;
}
