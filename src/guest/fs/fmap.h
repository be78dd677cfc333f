/* Shared mappings of files (mmap MAP_SHARED, and anonymous shared memory, which is an unnamed
 * file's): the address space maps the file's own pages, writable, so what a process writes
 * there is what read() of the file returns and what every other process mapping it sees, and a
 * write() shows in the mappings at once; msync has nothing to do. Each mapping is a record in
 * its address space (struct shmap, mm/vm.h) that holds the file: the pages stay while it is
 * mapped (a truncation zeroes what it cuts off; removing the file leaves it until the last
 * mapping goes). The file's pages are mapped at once; its holes too in a mapping under LAZY_MIN,
 * else as they are touched (a fault maps FMAP_AROUND pages, making the holes pages of the
 * file), as are pages past the file's end once it has grown over them (before, a touch is a
 * fault, as Linux's SIGBUS). */
#ifndef LEL_GUEST_FS_FMAP_H
#define LEL_GUEST_FS_FMAP_H

#include <stdint.h>

struct inode;
struct mm;

/* Maps [va, va + len) of `m` (page-aligned, nothing mapped there) to `ino`'s pages from byte
 * `off` (page-aligned), writable unless `ro`. -ENOMEM when out of records or memory (what was
 * mapped is then undone by the caller's munmap). */
long fmap_shared(struct mm *m, uint64_t va, uint64_t len, struct inode *ino, uint64_t off, int ro);

/* A fresh unnamed file of `len` bytes for MAP_SHARED | MAP_ANONYMOUS: held once (the caller
 * lets go once it is mapped); NULL when out of memory. */
struct inode *fmap_anon(uint64_t len);

/* [start, end) of `m` is being unmapped: the records are cut to what stays, and a file mapped
 * no more is let go. The pages themselves are the caller's to unmap (they are the file's: they
 * are not freed). */
void fmap_unmap(struct mm *m, uint64_t start, uint64_t end);

/* The record that maps `va`, or NULL. */
struct shmap *fmap_find(struct mm *m, uint64_t va);

/* A missing page at `va` within a shared mapping whose file now reaches it: mapped. 1 when it
 * was, 0 when `va` is not such a page. */
int fmap_fault(struct mm *m, uint64_t va);

/* mremap of the shared mapping `r`: its pages moved from r->start to `to` (to == r->start: in
 * place) and it grows to `new_len` bytes (more of the file mapped). -ENOMEM when that fails. */
long fmap_remap(struct mm *m, struct shmap *r, uint64_t to, uint64_t new_len);

/* fork: the child's address space `to` maps the same pages (mm_fork_pages shared the entries),
 * so it holds the same files. -ENOMEM when no records can be had. */
int fmap_fork(struct mm *to, const struct mm *from);

/* The address space goes: its files are let go. */
void fmap_free(struct mm *m);

#endif
