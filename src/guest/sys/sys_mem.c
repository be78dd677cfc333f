/* Syscalls on memory: brk, mmap (anonymous, private file copies, and shared read-only file
 * pages), mprotect, munmap, mremap, madvise. */
#include "syscall.h"

#include "../fs/file.h"
#include "../fs/fmap.h"
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

#define MAP_SHARED_ 0x01
#define MAP_TYPE_ 0x0f
#define MAP_FIXED_ 0x10
#define MAP_ANON_ 0x20

/* Unmaps [va, va + len) of the current address space, whatever is there (pages, lazy ranges,
 * shared mappings). */
static void unmap_span(uint64_t va, uint64_t len)
{
    struct mm *m = proc_cur()->mm;
    lazy_remove(m, va, va + len);
    fmap_unmap(m, va, va + len);
    unmap_range(m->pml4, va, va + len);
}

/* MAP_SHARED of file `f` (NULL: anonymous shared memory, an unnamed file's) at `va`: the
 * file's own pages (fs/fmap.c). As on Linux the file must be open for reading, and for writing
 * when the mapping may write; a running program's file is not mapped writable (ETXTBSY). */
static long mmap_shared(struct file *f, uint64_t va, uint64_t len, uint64_t prot, uint64_t off)
{
    int acc = f ? f->flags & O_ACCMODE : 2, ro = acc != 2;
    if (acc == 1 || (ro && (prot & 2)))
        return -EACCES_;
    if (f && !ro && f->ino->exec_users)
        return -ETXTBSY_;
    struct inode *ino = f ? f->ino : fmap_anon(len);
    if (!ino)
        return -ENOMEM;
    long r = fmap_shared(proc_cur()->mm, va, len, ino, f ? off : 0, ro);
    if (!f)
        fs_anon_free(ino); /* the mapping holds it */
    if (r < 0)
        unmap_span(va, len);
    return r;
}

/* MAP_PRIVATE at `va`: anonymous memory (populated, lazy when large, or only reserved when
 * PROT_NONE), or a file's contents copied, but for what file_page_shared maps as it is (code
 * and read-only data: one copy for every process). */
static long mmap_private(struct file *f, uint64_t va, uint64_t len, uint64_t prot, uint64_t flags, uint64_t off)
{
    struct mm *m = proc_cur()->mm;
    int reserve = !f && (prot & 7) == 0, big = !f && !reserve && len >= LAZY_MIN;
    if (big && !(flags & 0x4000) && !commit_ok(len)) /* MAP_NORESERVE: not counted, as on Linux */
        return -ENOMEM;
    if (big)
        reserve = lazy_add(m, va, va + len) == 0;
    for (uint64_t p = va; !(reserve && !f) && p < va + len; p += PAGE_SIZE) { /* reserved: nothing to map */
        void *shared = file_page_shared(f, prot, flags, off + (p - va));
        uint64_t *e;
        if (shared && !(e = pte_of(m->pml4, p, 1)))
            return -ENOMEM;
        if (shared) /* a library's code and constants: one copy for every process */
            *e = kpage_gpa(shared) | PTE_P | PTE_U | PTE_A | PTE_FILE;
        else if (!reserve && map_new(m->pml4, p) < 0)
            return -ENOMEM;
    }
    for (uint64_t p = va; f && p < va + len; p += PAGE_SIZE) { /* the copies; past the file's end stays zero */
        uint64_t gpa = translate(m, p, 1);
        if (gpa && fs_read(f->ino, off + (p - va), DMAP(gpa), PAGE_SIZE) < 0)
            return -EIO_;
    }
    return 0;
}

static long sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off)
{
    struct proc *cur = proc_cur();
    struct file *f = 0;
    int type = (int)(flags & MAP_TYPE_), shared = type == 1 || type == 3; /* MAP_SHARED(_VALIDATE) */
    if (type < 1 || type > 3)
        return -EINVAL;
    if (!(flags & MAP_ANON_)) {
        f = fd_get((uint64_t)(int)fd);
        if (!f)
            return -EBADF;
        if (f->type == F_INODE && (f->ino->mode & S_IFMT) == S_IFCHR && f->ino->rdev == 0x105)
            f = 0; /* /dev/zero: anonymous memory, as on Linux */
        else if (f->type != F_INODE || (f->ino->mode & S_IFMT) != S_IFREG)
            return -ENODEV_;
        if (off & (PAGE_SIZE - 1))
            return -EINVAL;
    }
    if (len == 0 || len > MMAP_TOP - MMAP_BASE)
        return -EINVAL;
    len = (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    uint64_t va = (flags & MAP_FIXED_) ? addr : cur->mm->mmap_next;
    if (va & (PAGE_SIZE - 1) || va >= USER_TOP || len > USER_TOP - va)
        return -EINVAL;
    if (!(flags & MAP_FIXED_) && (va >= MMAP_TOP || len + PAGE_SIZE > MMAP_TOP - va))
        return -ENOMEM; /* the address space for mappings is used up (a TiB, less what munmap gave back) */
    if (flags & MAP_FIXED_)
        unmap_span(va, len);
    long r = shared ? mmap_shared(f, va, len, prot, off) : mmap_private(f, va, len, prot, flags, off);
    if (r < 0)
        return r;
    if (!(flags & MAP_FIXED_))
        cur->mm->mmap_next += len + PAGE_SIZE; /* a guard page between mappings */
    return (long)va;
}

/* msync: a shared mapping's pages are the file's, so there is nothing to write back. */
static long sys_msync(uint64_t addr, uint64_t len, uint64_t flags)
{
    if ((addr & (PAGE_SIZE - 1)) || (flags & ~7ULL) || (flags & 5) == 5 || addr >= USER_TOP || len > USER_TOP - addr)
        return -EINVAL; /* MS_ASYNC (1) and MS_SYNC (4) together, or flags it does not know */
    return 0;
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
    for (uint64_t p = pte_next(cur->mm->pml4, addr, end); (prot & 2) && p < end; p = pte_next(cur->mm->pml4, p + PAGE_SIZE, end))
        if (make_private(cur->mm->pml4, p) < 0)
            return -ENOMEM;
    if ((prot & 7) == 0) {
        lazy_remove(cur->mm, addr, end);
        return 0;
    }
    if (fmap_find(cur->mm, addr))
        return 0; /* a shared mapping: its pages are the file's, mapped as they are touched */
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
    unmap_span(addr, (len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1));
    /* mappings are placed upwards: the newest one going gives its addresses back (malloc's
     * large blocks come and go like this), so a long-running program does not run out */
    uint64_t end = addr + ((len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1));
    if (addr >= MMAP_BASE && end + PAGE_SIZE == cur->mm->mmap_next)
        cur->mm->mmap_next = addr;
    return 0;
}

/* Moves the page-table entries of [old, old + len) to `to` (nothing mapped there): the
 * entries to move into are made first, so an ENOMEM leaves the mapping as it was. */
static long move_ptes(struct mm *m, uint64_t old, uint64_t to, uint64_t len)
{
    uint64_t end = old + len;
    for (uint64_t p = pte_next(m->pml4, old, end); p < end; p = pte_next(m->pml4, p + PAGE_SIZE, end))
        if (!pte_of(m->pml4, to + (p - old), 1))
            return -ENOMEM;
    for (uint64_t p = pte_next(m->pml4, old, end); p < end; p = pte_next(m->pml4, p + PAGE_SIZE, end)) {
        uint64_t *from = pte_of(m->pml4, p, 0);
        *pte_of(m->pml4, to + (p - old), 0) = *from;
        *from = 0;
        __asm__ volatile("invlpg (%0)" ::"r"(p) : "memory");
    }
    return 0;
}

/* mremap: shrinking drops the tail; growing extends in place when the mapping is the newest
 * one, or else (MREMAP_MAYMOVE) moves its page-table entries to fresh addresses, so a growing
 * buffer (realloc) is never copied. A lazy mapping stays lazy, its growth included; a shared
 * mapping (a whole one) maps more of its file. MREMAP_FIXED and MREMAP_DONTUNMAP are not
 * supported. */
static long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags)
{
    struct proc *cur = proc_cur();
    old_len = (old_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    new_len = (new_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    if ((old & (PAGE_SIZE - 1)) || (flags & ~1ULL) || !new_len || !old_len || old < MMAP_BASE || old >= MMAP_TOP ||
        old_len > MMAP_TOP - old || new_len > MMAP_TOP - MMAP_BASE)
        return -EINVAL;
    struct shmap *sh = fmap_find(cur->mm, old);
    if (sh && (sh->start != old || sh->end < old + old_len))
        return -EINVAL; /* only a shared mapping's whole, from its start, is remapped */
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
    if (sh) {
        if (moving && move_ptes(cur->mm, old, va, old_len) < 0)
            return -ENOMEM;
        cur->mm->mmap_next = va + new_len + PAGE_SIZE;
        long r = fmap_remap(cur->mm, sh, va, new_len);
        return r < 0 ? r : (long)va;
    }
    /* first all that can fail (the new pages or lazy range, the entries to move into): an
     * ENOMEM leaves the old mapping as it was */
    int lazy = lazy_overlaps(cur->mm, old, old + old_len);
    uint64_t lazy_from = moving ? va : old + old_len; /* in place, the range grows */
    if (lazy && (!commit_ok(new_len - old_len) || lazy_add(cur->mm, lazy_from, va + new_len) < 0))
        return -ENOMEM; /* (a full table included: glibc's realloc then copies instead) */
    for (p = va + old_len; !lazy && p < va + new_len; p += PAGE_SIZE)
        if (map_new(cur->mm->pml4, p) < 0)
            goto undo;
    if (moving && move_ptes(cur->mm, old, va, old_len) < 0)
        goto undo;
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
    uint64_t end = addr + len, pml4 = cur->mm->pml4;
    for (uint64_t p = pte_next(pml4, addr, end); (advice == 4 || advice == 8) && p < end; p = pte_next(pml4, p + PAGE_SIZE, end)) {
        uint64_t *e = pte_of(pml4, p, 0);
        if (*e & PTE_FILE) /* a file's own pages are the file already */
            continue;
        if (lazy_overlaps(cur->mm, p, p + PAGE_SIZE))
            unmap(cur->mm->pml4, p);
        else if (advice == 4 && (*e & PTE_COW) && !translate(cur->mm, p, 1))
            return -ENOMEM; /* a page a fork shares is zeroed as this process's own copy */
        else if (advice == 4)
            kmemset(DMAP(*e & PTE_ADDR), 0, PAGE_SIZE);
    }
    return 0;
}

/* mincore: a byte per page, 1 where a page is there; a lazy range's or a shared file
 * mapping's untouched pages are 0; an address that is none of these is ENOMEM. */
static long sys_mincore(uint64_t addr, uint64_t len, uint64_t uvec)
{
    struct proc *cur = proc_cur();
    uint8_t v[256];
    if (addr & (PAGE_SIZE - 1))
        return -EINVAL;
    if (addr >= USER_TOP || len > USER_TOP - addr)
        return -ENOMEM;
    uint64_t pages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
    for (uint64_t i = 0; i < pages; i += sizeof(v)) {
        uint64_t n = pages - i < sizeof(v) ? pages - i : sizeof(v);
        for (uint64_t k = 0; k < n; k++) {
            uint64_t va = addr + (i + k) * PAGE_SIZE, *e = pte_of(cur->mm->pml4, va, 0);
            v[k] = e && (*e & PTE_P);
            if (!v[k] && !lazy_overlaps(cur->mm, va, va + PAGE_SIZE) && !fmap_find(cur->mm, va))
                return -ENOMEM;
        }
        if (copy_user(uvec + i, v, n, 1) < 0)
            return -EFAULT;
    }
    return 0;
}

/* membarrier: on one vCPU every thread has passed a barrier by the time another runs, so the
 * global and private expedited barriers (and their registrations) have nothing to wait for. */
static long sys_membarrier(uint64_t cmd, uint64_t flags)
{
    const uint64_t known = 1 | 8 | 16 | 32 | 64; /* GLOBAL, PRIVATE_EXPEDITED (+ REGISTER), ..._SYNC_CORE (+ REGISTER) */
    if (flags)
        return -EINVAL;
    if (cmd == 0) /* MEMBARRIER_CMD_QUERY */
        return (long)known;
    return (cmd & known) && !(cmd & (cmd - 1)) ? 0 : -EINVAL;
}

/* memfd_create(name, flags): an unnamed regular file, open for reading and writing, its pages
 * memory as every file's are; readlink of its descriptor says "/memfd:<name> (deleted)", as
 * Linux does. MFD_CLOEXEC, MFD_ALLOW_SEALING (else the file is sealed against more seals);
 * huge pages are refused. */
static long sys_memfd_create(uint64_t uname, uint64_t flags)
{
    char name[256] = "memfd:";
    long n = copy_str(uname, name + 6, 250);
    if (n < 0)
        return n == -36 ? -EINVAL : n;
    if (flags & ~3ULL)
        return -EINVAL;
    struct inode *ino = fs_anon_file();
    if (!ino || !(ino->target = kstrndup(name, (uint64_t)n + 6))) {
        if (ino)
            fs_anon_free(ino);
        return -ENOMEM;
    }
    ino->mode = S_IFREG | 0777;
    ino->seals = flags & 2 ? 0 : 1; /* F_SEAL_SEAL */
    struct file *f = file_new(F_INODE, ino, 2 | 0100000); /* O_RDWR | O_LARGEFILE */
    fs_anon_free(ino); /* the file holds it */
    return anon_install(f, flags & 1 ? O_CLOEXEC_ : 0);
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_memfd_create(const struct sysargs *s)
{
    return sys_memfd_create(s->a, s->b);
}

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

long sc_mincore(const struct sysargs *s)
{
    return sys_mincore(s->a, s->b, s->c);
}

long sc_membarrier(const struct sysargs *s)
{
    return sys_membarrier(s->a, s->b);
}

/* mlock, munlock, mlock2, mlockall, munlockall: there is no swap, so every page that is there
 * stays; the range must be a user one. */
long sc_mlock(const struct sysargs *s)
{
    if (s->nr == 151) /* mlockall: MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT */
        return !s->a || (s->a & ~7ULL) || s->a == 4 ? -EINVAL : 0;
    if (s->nr == 152) /* munlockall */
        return 0;
    if (s->nr == 325 && (s->c & ~1ULL)) /* mlock2: MLOCK_ONFAULT */
        return -EINVAL;
    return s->a >= USER_TOP || s->b > USER_TOP - s->a ? -ENOMEM : 0;
}

long sc_madvise(const struct sysargs *s)
{
    return sys_madvise(s->a, s->b, s->c);
}

long sc_pkey_alloc(const struct sysargs *s)
{
    (void)s;
    return -ENOSPC_; /* no protection keys: as a CPU without them (node and V8 go on without) */
}

long sc_pkey_free(const struct sysargs *s)
{
    (void)s;
    return -EINVAL;
}

long sc_pkey_mprotect(const struct sysargs *s)
{
    return (int)s->d == -1 ? sys_mprotect(s->a, s->b, s->c) : -EINVAL; /* key -1: plain mprotect */
}

long sc_msync(const struct sysargs *s)
{
    return sys_msync(s->a, s->b, s->c);
}

long sc_mremap(const struct sysargs *s)
{
    return sys_mremap(s->a, s->b, s->c, s->d);
}
