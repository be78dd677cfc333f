/* The guest's memory: the physical page pool (every page the kernel and programs use) and a
 * small-object heap on it. Built for the host too (LEL_GUEST_HOSTED) for the unit tests. */
#ifndef LEL_GUEST_MM_PAGE_H
#define LEL_GUEST_MM_PAGE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE 4096ULL

/** Hands the pool the guest-physical range [start_gpa, end_gpa) (boot: what lies above the
 * kernel's fixed areas, below the root filesystem archive). */
void kpool_init(uint64_t start_gpa, uint64_t end_gpa);
/** One zeroed page, as a kernel pointer; NULL when memory is exhausted. */
void *kpage_alloc(void);
/** The same for memory a program asks for (its pages, its files' data): NULL once only the
 * kernel's reserve (KPAGE_RESERVE pages) is left, so that a program that fills the memory
 * still gets its error messages out, its pipes and page tables work, and the agent answers. */
void *kpage_alloc_user(void);
#define KPAGE_RESERVE 256
/** The same for file data (the sandbox's disk, as tmpfs is memory): NULL once
 * KPAGE_DATA_RESERVE pages are left, so that a full disk still leaves processes the memory
 * to run the command that frees it (sh and rm need well under a MiB). */
void *kpage_alloc_data(void);
#define KPAGE_DATA_RESERVE (KPAGE_RESERVE + 1024)
/** kpage_alloc_data without the zeroing, for pages the host fills whole (uploads): the guest
 * never touches them, so under shadow paging they cost no fault until a program reads them. */
void *kpage_alloc_data_raw(void);
void kpage_free(void *p);
/** Pages shared copy-on-write by address spaces (a fork's): a page has one user, the one that
 * allocated it, until kpage_share adds another; kpage_put drops one, freeing the page with the
 * last. kpage_share returns 0, or -1 when this page cannot be shared (it lies outside the
 * pool's count table, or has 65535 users): the caller copies it instead. */
int kpage_share(void *p);
/** Users of the page besides one (0: the caller's is its only mapping). */
uint32_t kpage_sharers(void *p);
void kpage_put(void *p);
/** Guest-physical address of a page from kpage_alloc (0 on the host). */
uint64_t kpage_gpa(void *p);
/** Pages kpage_alloc can still hand out (0 on the host). */
uint64_t kpage_free_pages(void);
/** Free pages the host still backs: freed since they were last reported. */
uint64_t kpage_dirty_pages(void);
/** Free-page reporting: moves free pages the host still backs (all but a few) aside,
 * unallocatable, and lists their page numbers in `out` (at most `cap`); returns how many.
 * Until kpage_trim_done their contents may vanish (the host discards them). An earlier
 * report not yet done is released first (the host abandoned it). */
uint64_t kpage_trim(uint32_t *out, uint64_t cap);
/** The host has discarded what kpage_trim reported: those pages can be handed out again. */
void kpage_trim_done(void);
/** Small objects (up to 2048 bytes), zeroed. */
void *kmalloc(size_t n);
void kfree(void *p, size_t n);
/** A copy of a string in the heap (n bytes + NUL), NULL when too long or out of memory. */
char *kstrndup(const char *s, size_t n);

#endif
