/* ELF64 x86-64 headers checked against the image (see elf.h). */
#include "elf.h"

#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/vm.h"

struct ehdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

int elf_read(const struct image *im, uint64_t off, void *buf, uint64_t n)
{
    if (off > im->len || n > im->len - off)
        return -ENOEXEC;
    if (im->mem) {
        kmemcpy(buf, im->mem + off, n);
        return 0;
    }
    return fs_read(im->ino, off, buf, n) == (int64_t)n ? 0 : -ENOEXEC;
}

static int header_ok(const struct ehdr *h, uint64_t base)
{
    return h->ident[0] == 0x7f && h->ident[1] == 'E' && h->ident[2] == 'L' && h->ident[3] == 'F' && h->ident[4] == 2 &&
           (h->type == 2 || h->type == 3) && h->machine == 62 && h->phentsize == sizeof(struct elf_phdr) &&
           h->phnum != 0 && h->phnum <= ELF_PHMAX && base < USER_TOP && h->entry < USER_TOP - base;
}

/* PT_INTERP: a NUL-terminated path of INTERP_MAX bytes at most, with no NUL before its end. */
static int read_interp(const struct image *im, const struct elf_phdr *p, char *interp)
{
    if (p->filesz < 2 || p->filesz > INTERP_MAX || elf_read(im, p->offset, interp, p->filesz) < 0 ||
        interp[p->filesz - 1] || kstrlen(interp) != p->filesz - 1)
        return -ENOEXEC;
    return 0;
}

int elf_check(const struct image *im, uint64_t base, struct elf_info *E, char *interp)
{
    struct ehdr h;
    if (elf_read(im, 0, &h, sizeof(h)) < 0 || !header_ok(&h, base) ||
        elf_read(im, h.phoff, E->ph, (uint64_t)h.phnum * sizeof(struct elf_phdr)) < 0)
        return -ENOEXEC;
    E->bias = h.type == 3 ? base : 0;
    E->entry = h.entry;
    E->phoff = h.phoff;
    E->phnum = h.phnum;
    if (interp)
        interp[0] = 0;
    for (int i = 0; interp && i < h.phnum; i++) /* first, so a missing loader costs no loading */
        if (E->ph[i].type == ELF_PT_INTERP && read_interp(im, &E->ph[i], interp) < 0)
            return -ENOEXEC;
    for (int i = 0; i < h.phnum; i++) {
        const struct elf_phdr *p = &E->ph[i];
        if (p->type == ELF_PT_INTERP && !interp)
            return -ELIBBAD; /* an interpreter that wants one */
        if (p->type != ELF_PT_LOAD)
            continue;
        if (p->filesz > p->memsz || p->vaddr >= USER_TOP - E->bias || p->memsz > USER_TOP - E->bias - p->vaddr ||
            p->offset > im->len || p->filesz > im->len - p->offset)
            return -ENOEXEC;
    }
    return 0;
}
