#ifndef LEL_GUEST_SYS_SYS_MEM_H
#define LEL_GUEST_SYS_SYS_MEM_H

#include <stdint.h>

long sys_brk(uint64_t want);

long sys_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, int64_t fd, uint64_t off);

/* mprotect: pages keep their access (every page of the process's own stays readable and
 * writable), but a range made accessible becomes lazy: what mmap reserved PROT_NONE gets pages
 * as it is touched; and a file's page mapped as it is becomes a copy when made writable. */
long sys_mprotect(uint64_t addr, uint64_t len, uint64_t prot);

long sys_munmap(uint64_t addr, uint64_t len);

/* mremap: shrinking drops the tail; growing extends in place when the mapping is the newest
 * one, or else (MREMAP_MAYMOVE) moves its page-table entries to fresh addresses, so a growing
 * buffer (realloc) is never copied. A lazy mapping stays lazy, its growth included.
 * MREMAP_FIXED and MREMAP_DONTUNMAP are not supported. */
long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, uint64_t flags);

/* MADV_DONTNEED: the private pages read back as zeros afterwards, as on Linux (allocators count
 * on it). Other advice is a hint and changes nothing. */
/* MADV_DONTNEED (4) and MADV_FREE (8): a lazy range's pages go back to the pool (a touch maps
 * a zeroed one again: Go's scavenger returns memory this way); elsewhere MADV_DONTNEED zeroes
 * them in place and MADV_FREE, which lets contents stay, does nothing. Other advice is taken
 * and changes nothing. */
long sys_madvise(uint64_t addr, uint64_t len, uint64_t advice);

#endif
