/* Address spaces (struct mm): page tables, lazily populated ranges, the stack's growth, and
 * translation of user addresses; the user half's layout (stack, mappings). */
#ifndef LEL_GUEST_MM_VM_H
#define LEL_GUEST_MM_VM_H

#include "../lel_guest_abi.h"
#include <stdint.h>

struct inode;

#define KVA(gpa) ((void *)(LEL_KERNEL_BASE + (uint64_t)(gpa)))
#define DMAP(gpa) ((void *)(LEL_DMAP_BASE + (uint64_t)(gpa)))

#define PTE_P 1ULL

#define PTE_U 4ULL
#define PTE_ADDR 0x000ffffffffff000ULL
#define PTE_FILE (1ULL << 9) /* software bit: the page is a file's (a program's code), not this address space's */
#define PTE_SHARED (1ULL << 10) /* software bit, with PTE_FILE: a shared mapping's page (fs/fmap.c),
                                   which stays the file's when written */
#define PTE_COW (1ULL << 11) /* software bit: a page of the address space's own that a fork shares
                                read-only with another (mm/page.c counts its users): the first
                                write makes it this address space's again (cow_fault) */
#define PTE_W 2ULL
/* Accessed and dirty, set in every entry when it is made (nothing here reads them): the
 * hypervisor's shadow paging (PVM) fills in the neighbours of a faulting entry only when they
 * are marked accessed, and keeps a clean writable page read-only until its first write, so
 * entries without them cost one more exit each, several per page a new program touches. */
#define PTE_A 0x20ULL
#define PTE_D 0x40ULL
#define USER_TOP 0x0000800000000000ULL
#define STACK_TOP 0x00007ffffff00000ULL
#define STACK_PAGES 64                /* mapped at exec (arguments and environment live there) */
#define STACK_MAX (8ULL << 20)        /* what the stack may grow to, a page at a time, as on Linux */
#define MMAP_BASE 0x00007f0000000000ULL
#define MMAP_TOP (STACK_TOP - (1ULL << 30)) /* mappings stay clear of the stack */

/* An address space: shared by the threads of a process, and by a vfork child (clone with
 * CLONE_VM) until it execs or exits; freed with its last user. */
#define LAZY_MAX 120 /* about one per thread stack (glibc: 8 MiB, lazy); struct mm stays a kmalloc size */
#define MM_FILES 8   /* a dynamically linked program's loader and libraries */
#define LAZY_MIN (1ULL << 20) /* anonymous mappings from this size on get pages as touched */

struct mm {
    int refs, nlazy;
    uint64_t pml4, brk_start, brk, mmap_next;
    /* Ranges whose pages appear when first touched: anonymous mappings of LAZY_MIN or more (Go
     * maps a 32 MiB arena index and uses a few pages of it; a large malloc is often sparse),
     * and what was reserved PROT_NONE and then made accessible with mprotect (thread stacks,
     * malloc's per-thread arenas). Smaller mappings are populated when made: under PVM a fault
     * costs ~10 us where populating a page costs ~1 us, so a fault maps FAULT_AROUND pages. */
    struct {
        uint64_t start, end;
    } lazy[LAZY_MAX];
    /* Files whose pages this address space maps as they are (a program's interpreter, the
     * read-only mappings of shared libraries): held, and counted as running so that they
     * cannot change under it. When full, further mappings are copies. */
    struct inode *files[MM_FILES];
    /* Shared mappings of files (MAP_SHARED, fs/fmap.c): a page of records, made with the first */
    struct shmap *shared;
};

/* A shared mapping: [start, end) maps the pages of `ino` from page `pgoff` on (held). */
struct shmap {
    uint64_t start, end, pgoff;
    struct inode *ino; /* NULL: a free record */
    int ro;            /* the file was not open for writing: its pages are mapped read-only */
};
#define SHMAP_MAX (4096 / sizeof(struct shmap))

uint64_t *pte_of(uint64_t pml4, uint64_t va, int create);

int map_new(uint64_t pml4, uint64_t va);

void unmap(uint64_t pml4, uint64_t va);

/* The first page at or above `va` and below `end` that has a present entry; `end` when none.
 * Missing page tables are passed over whole (512 GiB, 1 GiB, 2 MiB at a time), so a walk over
 * a large reservation costs what is mapped in it, not its size. */
uint64_t pte_next(uint64_t pml4, uint64_t va, uint64_t end);

/* unmap of every page in [start, end) (the TLB invalidated page by page for a few, else at once). */
void unmap_range(uint64_t pml4, uint64_t start, uint64_t end);

/* The stack grows on demand below what exec mapped, up to STACK_MAX: `va` there gets a zeroed
 * page. 1 when it did. Only for pages nothing maps (MAP_FIXED may have put something there). */
int stack_grow(uint64_t pml4, uint64_t va);

/* Makes [start, end) lazy (merged with what it touches); -ENOMEM when the table is full. */
int lazy_add(struct mm *m, uint64_t start, uint64_t end);

/* [start, end) is no longer lazy (unmapped, or PROT_NONE again). A range cut in two whose
 * second half finds no slot keeps the whole: touching the hole then maps a page there. */
void lazy_remove(struct mm *m, uint64_t start, uint64_t end);

/* Whether any of [start, end) is lazy. */
int lazy_overlaps(const struct mm *m, uint64_t start, uint64_t end);

/* Whether `len` bytes may be promised without pages behind them: not more than is free for
 * programs now (Linux's heuristic overcommit refuses what obviously cannot be had, too). */
int commit_ok(uint64_t len);

/* A missing page of the current address space at `va`: when it lies in a lazy range, it and
 * the missing pages around it (FAULT_AROUND, within the range) are mapped. 1 when it was,
 * 0 when `va` is not lazy, -1 when it is but memory ran out. Only the faulting page needs the
 * invlpg: the others were not present and have not been touched since (munmap and madvise
 * invalidate as they unmap). */
int lazy_fault(struct mm *m, uint64_t va);

/* The guest-physical address behind user address `va`; 0 when unmapped, or read-only and
 * `write` is asked (the kernel writes through the direct map, past the page's protection). A
 * write to a page shared copy-on-write makes it the address space's own first. */
uint64_t translate(struct mm *m, uint64_t va, int write);

/* Whether user address `va` is in a page of a shared mapping (PTE_SHARED: a file's own page,
 * the same page in every address space that maps it). */
int vm_shared_page(struct mm *m, uint64_t va);

/* A write fault of user mode at `va` on a present page: a page shared copy-on-write becomes
 * the address space's own (copied unless no other address space still maps it). 1 when the
 * write may be retried, 0 when the page is read-only for good (the fault stands), -1 when
 * memory ran out. */
int cow_fault(struct mm *m, uint64_t va);

void free_level(uint64_t table, int level);

/* Adds guest-physical [gpa, gpa + bytes) (the read-only root filesystem image, above RAM) to
 * the kernel's direct map, read-only, with 2 MiB pages (its page directories from the pool);
 * every address space shares them. 0 or -ENOMEM. */
int map_readonly_region(uint64_t gpa, uint64_t bytes);

/* A new, empty address space (its kernel half only). */
struct mm *mm_new(void);

/* A page this address space maps from a file becomes its own copy (a writable segment that
 * shares a page with a read-only one). */
int make_private(uint64_t pml4, uint64_t va);

/* Length of the string at `va` in `pml4` without its NUL; -E2BIG when it runs past `max`. */
long str_len(struct mm *m, uint64_t va, uint64_t max);

/* Writes a 32-bit value into `m` (not necessarily the current address space); -EFAULT when
 * the address is not mapped writable. */
int put_user_u32(struct mm *m, uint64_t va, uint32_t v);

/* A fork's copy of the user pages of `from` (the address space the CPU runs on) into the new
 * address space `to`. A program's code pages (the file's) are mapped as they are. The pages of
 * its own are copied when there are at most FORK_COPY_MAX of them, and else shared
 * copy-on-write, but for those within FORK_KEEP bytes of `sp` (the stack both sides write at
 * once). Under PVM a write fault costs several traps (tens of microseconds) where a copy costs
 * about one, so a small program is cheaper copied; a large one (python, node) forks without
 * copying its heap, and without needing the memory for a second copy. 0 or -ENOMEM (what was
 * done then is undone by freeing `to`). */
#define FORK_COPY_MAX 1024
#define FORK_KEEP (16ULL << 10)
int mm_fork_pages(struct mm *from, struct mm *to, uint64_t sp);

/* Pages of its own an address space maps (a fork's measure). */
uint64_t mm_own_pages(uint64_t pml4);

#endif
