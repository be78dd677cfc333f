/* Syscalls on memory: brk, mmap (anonymous, private file copies, and shared read-only file
 * pages), mprotect, munmap, mremap, madvise. */
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../proc/proc.h"

static long sys_brk(uint64_t want)
{
    struct proc *cur = proc_cur();
    if (want < cur->mm->brk_start || want > cur->mm->brk_start + (1ULL << 30))
        return (long)cur->mm->brk;
    uint64_t top = (want + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    for (uint64_t va = cur->mm->brk; va < top; va += PAGE_SIZE)
        if (map_new(cur->mm->pml4, va) < 0)
            return (long)cur->mm->brk;
    for (uint64_t va = top; va < cur->mm->brk; va += PAGE_SIZE)
        unmap(cur->mm->pml4, va);
    cur->mm->brk = top;
    return (long)want;
}

static long sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off)
{
    struct proc *cur = proc_cur();
    struct file *f = 0;
    if (!(flags & 0x20)) { /* a file: MAP_PRIVATE only (writes never reach the file) */
        f = fd_get((uint64_t)(int)fd);
        if (!f || f->type != F_INODE || (f->ino->mode & S_IFMT) != S_IFREG)
            return -EBADF;
        if (flags & 0x01) /* MAP_SHARED */
            return -ENOSYS;
        if (off & (PAGE_SIZE - 1))
            return -EINVAL;
    }
    if (len == 0 || len > (1ULL << 32))
        return -EINVAL;
    len = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    uint64_t va = (flags & 0x10) ? addr : cur->mm->mmap_next; /* MAP_FIXED */
    if (va & (PAGE_SIZE - 1) || va >= USER_TOP || len > USER_TOP - va)
        return -EINVAL;
    if (!(flags & 0x10) && (va >= MMAP_TOP || len + PAGE_SIZE > MMAP_TOP - va))
        return -ENOMEM; /* the address space for mappings is used up (a TiB, less what munmap gave back) */
    /* anonymous PROT_NONE: addresses reserved, no pages (a later mprotect makes them lazy);
     * a large accessible one: lazy (pages as touched) while the table has room */
    int reserve = !f && (prot & 7) == 0, big = !f && !reserve && len >= LAZY_MIN;
    if (big && !commit_ok(len))
        return -ENOMEM;
    if (flags & 0x10)
        lazy_remove(cur->mm, va, va + len);
    if (big)
        reserve = lazy_add(cur->mm, va, va + len) == 0;
    for (uint64_t p = va; p < va + len; p += PAGE_SIZE) {
        void *shared = file_page_shared(f, prot, flags, off + (p - va));
        uint64_t *e;
        if (flags & 0x10)
            unmap(cur->mm->pml4, p);
        if (shared && !(e = pte_of(cur->mm->pml4, p, 1)))
            return -ENOMEM;
        if (shared) /* a library's code and constants: one copy for every process */
            *e = kpage_gpa(shared) | PTE_P | PTE_U | PTE_FILE;
        else if (!reserve && map_new(cur->mm->pml4, p) < 0)
            return -ENOMEM;
    }
    if (!(flags & 0x10))
        cur->mm->mmap_next += len + PAGE_SIZE; /* a guard page between mappings */
    for (uint64_t p = va; f && p < va + len; p += PAGE_SIZE) { /* the copies; past the file's end stays zero */
        uint64_t gpa = translate(cur->mm, p, 1);
        if (gpa && fs_read(f->ino, off + (p - va), DMAP(gpa), PAGE_SIZE) < 0)
            return -EIO_;
    }
    return (long)va;
}

/* mprotect: pages keep their access (every page of the process's own stays readable and
 * writable), but a range made accessible becomes lazy: what mmap reserved PROT_NONE gets pages
 * as it is touched; and a file's page mapped as it is becomes a copy when made writable. */
static long sys_mprotect(uint64_t addr, uint64_t len, uint64_t prot)
{
    struct proc *cur = proc_cur();
    if (addr & (PAGE_SIZE - 1) || addr >= USER_TOP || len > USER_TOP - addr)
        return -EINVAL;
    uint64_t end = addr + ((len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1));
    for (uint64_t p = addr; (prot & 2) && p < end; p += PAGE_SIZE)
        if (make_private(cur->mm->pml4, p) < 0)
            return -ENOMEM;
    if ((prot & 7) == 0) {
        lazy_remove(cur->mm, addr, end);
        return 0;
    }
    if (lazy_add(cur->mm, addr, end) == 0)
        return 0;
    for (uint64_t p = addr; p < end; p += PAGE_SIZE) /* no room to remember the range: populate it */
        if (map_new(cur->mm->pml4, p) < 0)
            return -ENOMEM;
    return 0;
}

static long sys_munmap(uint64_t addr, uint64_t len)
{
    struct proc *cur = proc_cur();
    if (addr & (PAGE_SIZE - 1) || addr >= USER_TOP || len > USER_TOP - addr)
        return -EINVAL;
    lazy_remove(cur->mm, addr, addr + ((len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)));
    for (uint64_t p = addr; p < addr + len; p += PAGE_SIZE)
        unmap(cur->mm->pml4, p);
    /* mappings are placed upwards: the newest one going gives its addresses back (malloc's
     * large blocks come and go like this), so a long-running program does not run out */
    uint64_t end = addr + ((len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1));
    if (addr >= MMAP_BASE && end + PAGE_SIZE == cur->mm->mmap_next)
        cur->mm->mmap_next = addr;
    return 0;
}

/* mremap: shrinking drops the tail; growing extends in place when the mapping is the newest
 * one, or else (MREMAP_MAYMOVE) moves its page-table entries to fresh addresses, so a growing
 * buffer (realloc) is never copied. A lazy mapping stays lazy, its growth included.
 * MREMAP_FIXED and MREMAP_DONTUNMAP are not supported. */
static long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags)
{
    struct proc *cur = proc_cur();
    old_len = (old_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    new_len = (new_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    if ((old & (PAGE_SIZE - 1)) || (flags & ~1ULL) || !new_len || !old_len || old < MMAP_BASE || old >= MMAP_TOP ||
        old_len > MMAP_TOP - old || new_len > (1ULL << 32))
        return -EINVAL;
    if (new_len <= old_len) {
        sys_munmap(old + new_len, old_len - new_len);
        return (long)old;
    }
    int moving = old + old_len + PAGE_SIZE != cur->mm->mmap_next; /* not the newest mapping: it has to move */
    uint64_t va = moving ? cur->mm->mmap_next : old, p;
    if (moving && !(flags & 1))
        return -ENOMEM;
    if (va >= MMAP_TOP || new_len + PAGE_SIZE > MMAP_TOP - va)
        return -ENOMEM;
    /* first all that can fail (the new pages or lazy range, the entries to move into): an
     * ENOMEM leaves the old mapping as it was */
    int lazy = lazy_overlaps(cur->mm, old, old + old_len);
    uint64_t lazy_from = moving ? va : old + old_len; /* in place, the range grows */
    if (lazy && (!commit_ok(new_len - old_len) || lazy_add(cur->mm, lazy_from, va + new_len) < 0))
        return -ENOMEM; /* (a full table included: glibc's realloc then copies instead) */
    for (p = va + old_len; !lazy && p < va + new_len; p += PAGE_SIZE)
        if (map_new(cur->mm->pml4, p) < 0)
            goto undo;
    for (p = va; moving && p < va + old_len; p += PAGE_SIZE)
        if (!pte_of(cur->mm->pml4, p, 1))
            goto undo;
    for (uint64_t off = 0; moving && off < old_len; off += PAGE_SIZE) {
        uint64_t *from = pte_of(cur->mm->pml4, old + off, 0);
        if (from && (*from & PTE_P)) {
            *pte_of(cur->mm->pml4, va + off, 0) = *from;
            *from = 0;
            __asm__ volatile("invlpg (%0)" ::"r"(old + off) : "memory");
        }
    }
    if (lazy && moving)
        lazy_remove(cur->mm, old, old + old_len);
    cur->mm->mmap_next = va + new_len + PAGE_SIZE;
    return (long)va;
undo:
    for (p = va + old_len; p < va + new_len; p += PAGE_SIZE)
        unmap(cur->mm->pml4, p);
    if (lazy)
        lazy_remove(cur->mm, moving ? va : old + old_len, va + new_len);
    return -ENOMEM;
}

/* MADV_DONTNEED (4) and MADV_FREE (8): a lazy range's pages go back to the pool (a touch maps
 * a zeroed one again: Go's scavenger returns memory this way); elsewhere MADV_DONTNEED zeroes
 * them in place and MADV_FREE, which lets contents stay, does nothing. Other advice is taken
 * and changes nothing. */
static long sys_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{
    struct proc *cur = proc_cur();
    if (addr & (PAGE_SIZE - 1) || addr >= USER_TOP || len > USER_TOP - addr)
        return -EINVAL;
    for (uint64_t p = addr; (advice == 4 || advice == 8) && p < addr + len; p += PAGE_SIZE) {
        uint64_t *e = pte_of(cur->mm->pml4, p, 0);
        if (!e || !(*e & PTE_P) || (*e & PTE_FILE)) /* a program file's own pages are the file already */
            continue;
        if (lazy_overlaps(cur->mm, p, p + PAGE_SIZE))
            unmap(cur->mm->pml4, p);
        else if (advice == 4)
            kmemset(DMAP(*e & PTE_ADDR), 0, PAGE_SIZE);
    }
    return 0;
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_mmap(const struct sysargs *s)
{
    return sys_mmap(s->a, s->b, s->c, s->d, (int64_t)s->e, s->f);
}

long sc_mprotect(const struct sysargs *s)
{
    return sys_mprotect(s->a, s->b, s->c);
}

long sc_munmap(const struct sysargs *s)
{
    return sys_munmap(s->a, s->b);
}

long sc_brk(const struct sysargs *s)
{
    return sys_brk(s->a);
}

long sc_madvise(const struct sysargs *s)
{
    return sys_madvise(s->a, s->b, s->c);
}

long sc_mremap(const struct sysargs *s)
{
    return sys_mremap(s->a, s->b, s->c, s->d);
}
