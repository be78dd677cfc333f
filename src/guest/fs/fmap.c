/* Shared mappings of files; see fmap.h. */
#include "fmap.h"

#include "fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"

static struct shmap *rec_new(struct mm *m)
{
    if (!m->shared && !(m->shared = kpage_alloc()))
        return 0;
    for (uint64_t i = 0; i < SHMAP_MAX; i++)
        if (!m->shared[i].ino)
            return &m->shared[i];
    return 0;
}

static void rec_hold(struct shmap *r)
{
    fs_hold(r->ino);
    r->ino->map_users++;
}

static void rec_drop(struct shmap *r)
{
    struct inode *ino = r->ino;
    r->ino = 0;
    fs_unmapped(ino);
    fs_release(ino);
}

#define FMAP_AROUND 16 /* pages a fault maps: the aligned 64 KiB around it, as lazy_fault does */

/* Maps page `va` of mapping `r` to its file's page. A hole gets a page when `make` (else it is
 * left to be mapped when touched: MAPPED_NOT). MAPPED, MAPPED_NOT, PAST_END (the file does not
 * reach it), or -ENOMEM. */
enum { MAPPED = 1, MAPPED_NOT = 0, PAST_END = 2 };

static int map_page(struct mm *m, const struct shmap *r, uint64_t va, int make)
{
    uint64_t idx = r->pgoff + (va - r->start) / PAGE_SIZE;
    if (idx * PAGE_SIZE >= r->ino->size)
        return PAST_END;
    if (!make && !fs_page(r->ino, idx))
        return MAPPED_NOT;
    uint64_t *e = pte_of(m->pml4, va, 1);
    if (e && (*e & PTE_P))
        return MAPPED;
    void *pg = e ? fs_page_shared(r->ino, idx) : 0;
    if (!pg)
        return -ENOMEM;
    *e = kpage_gpa(pg) | PTE_P | PTE_U | PTE_A | PTE_FILE | PTE_SHARED | (r->ro ? 0 : PTE_W | PTE_D);
    return MAPPED;
}

/* Maps [from, to) of `r`: the file's pages there, and its holes too when `make`. */
static long map_range(struct mm *m, const struct shmap *r, uint64_t from, uint64_t to, int make)
{
    for (uint64_t p = from; p < to; p += PAGE_SIZE) {
        int k = map_page(m, r, p, make);
        if (k < 0)
            return k;
        if (k == PAST_END)
            break; /* the rest is mapped as it is touched, once the file has grown */
    }
    return 0;
}

long fmap_shared(struct mm *m, uint64_t va, uint64_t len, struct inode *ino, uint64_t off, int ro)
{
    struct shmap *r = rec_new(m);
    if (!r)
        return -ENOMEM;
    *r = (struct shmap){va, va + len, off / PAGE_SIZE, ino, ro};
    rec_hold(r);
    return map_range(m, r, va, va + len, len < LAZY_MIN); /* a large one's holes: as touched */
}

struct inode *fmap_anon(uint64_t len)
{
    struct inode *ino = fs_anon_file();
    if (ino && fs_truncate(ino, len) < 0) {
        fs_anon_free(ino);
        return 0;
    }
    return ino;
}

void fmap_unmap(struct mm *m, uint64_t start, uint64_t end)
{
    for (uint64_t i = 0; m->shared && i < SHMAP_MAX; i++) {
        struct shmap *r = &m->shared[i], *q;
        if (!r->ino || end <= r->start || start >= r->end)
            continue;
        if (start <= r->start && end >= r->end) {
            rec_drop(r);
        } else if (start <= r->start) { /* its head goes */
            r->pgoff += (end - r->start) / PAGE_SIZE;
            r->start = end;
        } else if (end >= r->end) { /* its tail */
            r->end = start;
        } else if ((q = rec_new(m))) { /* its middle: two records (without one, it stays whole) */
            *q = *r;
            q->start = end;
            q->pgoff = r->pgoff + (end - r->start) / PAGE_SIZE;
            rec_hold(q);
            r->end = start;
        }
    }
}

struct shmap *fmap_find(struct mm *m, uint64_t va)
{
    for (uint64_t i = 0; m->shared && i < SHMAP_MAX; i++)
        if (m->shared[i].ino && va >= m->shared[i].start && va < m->shared[i].end)
            return &m->shared[i];
    return 0;
}

int fmap_fault(struct mm *m, uint64_t va)
{
    struct shmap *r = fmap_find(m, va);
    uint64_t page = va & ~(PAGE_SIZE - 1), lo = va & ~(FMAP_AROUND * PAGE_SIZE - 1), hi = lo + FMAP_AROUND * PAGE_SIZE;
    if (!r || map_page(m, r, page, 1) != MAPPED)
        return 0;
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
    map_range(m, r, lo > r->start ? lo : r->start, hi < r->end ? hi : r->end, 1); /* not touched yet: no invlpg */
    return 1;
}

long fmap_remap(struct mm *m, struct shmap *r, uint64_t to, uint64_t new_len)
{
    uint64_t old_len = r->end - r->start;
    r->start = to;
    r->end = to + new_len;
    return map_range(m, r, to + old_len, to + new_len, new_len - old_len < LAZY_MIN);
}

int fmap_fork(struct mm *to, const struct mm *from)
{
    if (!from->shared)
        return 0;
    if (!(to->shared = kpage_alloc()))
        return -ENOMEM;
    kmemcpy(to->shared, from->shared, PAGE_SIZE);
    for (uint64_t i = 0; i < SHMAP_MAX; i++)
        if (to->shared[i].ino)
            rec_hold(&to->shared[i]);
    return 0;
}

void fmap_free(struct mm *m)
{
    for (uint64_t i = 0; m->shared && i < SHMAP_MAX; i++)
        if (m->shared[i].ino)
            rec_drop(&m->shared[i]);
    if (m->shared)
        kpage_free(m->shared);
    m->shared = 0;
}
