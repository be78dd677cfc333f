/* ELF64 x86-64 executables: an image's file header and program headers checked against the
 * image itself before anything is mapped; exec.c maps what this accepts. It touches no process
 * or address space, so it is also built for the host (lel_guest_hosted: the fuzz target
 * tests/fuzz/fuzz_guest_elf.c). */
#ifndef LEL_GUEST_PROC_ELF_H
#define LEL_GUEST_PROC_ELF_H

#include "exec.h"

#include <stdint.h>

#define ELF_PHMAX 32
#define ELF_PT_LOAD 1
#define ELF_PT_INTERP 3
#define ELF_PF_W 2

struct elf_phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

/* What elf_check found. Every PT_LOAD in ph[] has filesz <= memsz, its file bytes inside the
 * image and [vaddr + bias, vaddr + bias + memsz) inside user space; entry + bias is too. */
struct elf_info {
    uint64_t entry, phoff, bias;
    uint16_t phnum;
    struct elf_phdr ph[ELF_PHMAX];
};

/* Reads n bytes at off of the image (its memory or its file): 0, or -ENOEXEC past its end. */
int elf_read(const struct image *im, uint64_t off, void *buf, uint64_t n);

/* Checks `im` as an executable (fixed-address, or ET_DYN placed at `base`). A dynamically
 * linked one's interpreter path (PT_INTERP) goes to `interp` (INTERP_MAX bytes, NUL-terminated;
 * "" for a static program); with `interp` NULL (checking an interpreter) one is -ELIBBAD, as on
 * Linux. 0, -ENOEXEC or -ELIBBAD. */
int elf_check(const struct image *im, uint64_t base, struct elf_info *E, char *interp);

#endif
