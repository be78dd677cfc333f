/* Fuzz target: the guest's ELF loader checks (src/guest/proc/elf.c, built for the host as
 * test_guest_fs is). An input is an executable image; it is checked as a program (placed at
 * the PIE base, its interpreter path taken) and as an interpreter (placed where mappings start,
 * a PT_INTERP refused), from memory and from a file in the guest's file system (the path exec
 * takes). What is accepted must keep elf.h's promises, checked here independently of the
 * loader: each loaded segment's file bytes are read (into a buffer of exactly their size, so
 * ASan sees an overread), its addresses lie in user space, the interpreter path ends in its
 * only NUL. A broken promise aborts. */
#include "guest/fs/fs.h"
#include "guest/lib/klib.h"
#include "guest/mm/vm.h"
#include "guest/proc/elf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fs_gen_dir_sync(struct inode *dir)
{
    (void)dir;
}

void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie)
{
    (void)dir, (void)name, (void)n, (void)node, (void)mask, (void)cookie;
}

static void promises(const struct image *im, const struct elf_info *E, const char *interp)
{
    if (E->entry + E->bias >= USER_TOP || E->phnum == 0 || E->phnum > ELF_PHMAX)
        abort();
    if (interp && interp[0] && memchr(interp, 0, INTERP_MAX) == NULL)
        abort();
    for (int i = 0; i < E->phnum; i++) {
        const struct elf_phdr *p = &E->ph[i];
        if (p->type != ELF_PT_LOAD)
            continue;
        uint64_t va = p->vaddr + E->bias;
        if (p->filesz > p->memsz || va < p->vaddr || va >= USER_TOP || p->memsz > USER_TOP - va ||
            p->offset + p->filesz < p->offset || p->offset + p->filesz > im->len)
            abort();
        uint8_t *seg = malloc(p->filesz ? p->filesz : 1);
        if (elf_read(im, p->offset, seg, p->filesz) != 0)
            abort(); /* accepted, yet its bytes cannot be read */
        free(seg);
    }
}

static void check(const struct image *im)
{
    struct elf_info E;
    char interp[INTERP_MAX];
    memset(interp, 'x', sizeof(interp)); /* what elf_check leaves must be its own */
    if (elf_check(im, 0x555555554000ULL, &E, interp) == 0)
        promises(im, &E, interp);
    if (elf_check(im, MMAP_BASE, &E, NULL) == 0)
        promises(im, &E, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (fs_init(1700000000) != 0)
            abort();
        ready = 1;
    }
    /* from memory: a copy of exactly its size, so ASan sees reads past it */
    uint8_t *mem = malloc(size ? size : 1);
    memcpy(mem, data, size);
    struct image im = {NULL, mem, size};
    check(&im);
    free(mem);
    /* from a file, as exec reads one */
    struct inode *f;
    if (fs_create(fs_root(), "prog", 4, S_IFREG | 0755, &f) == 0) {
        if (fs_write(f, 0, data, size) == (int64_t)size) {
            struct image fim = {f, NULL, size};
            check(&fim);
        }
        if (fs_unlink(fs_root(), "prog", 4, 0) != 0)
            abort();
    }
    return 0;
}
