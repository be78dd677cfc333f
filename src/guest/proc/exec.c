/* Loading programs: static and dynamically linked ELF64 executables (their read-only segments
 * mapped from the file's own pages), "#!" scripts, and the new program's stack of arguments,
 * environment and auxiliary vector, as Linux lays it out. */
#include "exec.h"
#include "elf.h"

#include "../arch/cpu.h"
#include "../arch/fpu.h"
#include "../fs/fs.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../lib/rng.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "proc.h"
#include "../fs/file.h"

struct loaded {
    uint64_t entry, phdr, phnum, end, bias;
};

/* A read-only segment maps the program file's own pages (read-only, shared by every process
 * running it) instead of copying them: exec and fork copy only the writable data. Only for a
 * file whose offsets line up with its addresses page by page and that has no holes there;
 * otherwise (-1) the segment is copied. */
static int map_file(const struct image *im, const struct elf_phdr *p)
{
    struct proc *cur = proc_cur();
    uint64_t first = p->vaddr & ~(PAGE_SIZE - 1), lead = p->vaddr - first;
    if (!im->ino || p->memsz != p->filesz || (p->offset & (PAGE_SIZE - 1)) != lead)
        return -1;
    uint64_t page0 = (p->offset - lead) / PAGE_SIZE, n = (lead + p->memsz + PAGE_SIZE - 1) / PAGE_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *e = pte_of(cur->mm->pml4, first + i * PAGE_SIZE, 0);
        if (!fs_page(im->ino, page0 + i) || (e && (*e & PTE_P)))
            return -1; /* a hole, or a page another segment has */
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t *e = pte_of(cur->mm->pml4, first + i * PAGE_SIZE, 1);
        if (!e)
            return -ENOMEM;
        *e = kpage_gpa(fs_page(im->ino, page0 + i)) | PTE_P | PTE_U | PTE_A | PTE_FILE;
    }
    return 0;
}

/* Where a position-independent executable (ET_DYN: static-pie, as Rust's musl target and gcc
 * -static-pie build, or a dynamically linked PIE) is loaded; Linux's base for PIE executables.
 * A dynamically linked program's interpreter (its loader, ld.so) goes where mappings start. */
#define PIE_BASE 0x555555554000ULL

/* Loads an ELF64 x86-64 executable (fixed-address, or ET_DYN at `base`) that elf_check
 * accepted: every offset and size is checked against the file before anything is mapped. A
 * dynamically linked one's interpreter path goes to `interp` (elf_check's). */
static int elf_load(const struct image *im, uint64_t base, struct loaded *L, char *interp)
{
    struct proc *cur = proc_cur();
    struct elf_info E;
    int r = elf_check(im, base, &E, interp);
    if (r < 0)
        return r;
    L->phdr = 0;
    L->end = 0;
    L->bias = E.bias;
    for (int i = 0; i < E.phnum; i++) {
        if (E.ph[i].type != ELF_PT_LOAD)
            continue;
        struct elf_phdr q = E.ph[i], *p = &q;
        q.vaddr += E.bias;
        if (!(p->flags & ELF_PF_W) && map_file(im, p) == 0)
            goto mapped;
        for (uint64_t va = p->vaddr & ~(PAGE_SIZE - 1); va < p->vaddr + p->memsz; va += PAGE_SIZE)
            if (map_new(cur->mm->pml4, va) < 0 || make_private(cur->mm->pml4, va) < 0)
                return -ENOMEM;
        /* file bytes, page by page straight into the process's memory */
        for (uint64_t done = 0; done < p->filesz;) {
            uint64_t va = p->vaddr + done, chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
            if (chunk > p->filesz - done)
                chunk = p->filesz - done;
            if (elf_read(im, p->offset + done, DMAP(translate(cur->mm, va, 1)), chunk) < 0)
                return -ENOEXEC;
            done += chunk;
        }
    mapped:
        if (E.phoff >= p->offset && E.phoff < p->offset + p->filesz)
            L->phdr = p->vaddr + (E.phoff - p->offset);
        if (p->vaddr + p->memsz > L->end)
            L->end = p->vaddr + p->memsz;
    }
    L->entry = E.entry + E.bias;
    L->phnum = E.phnum;
    return 0;
}

/* A new program's arguments and environment, gathered straight into the top of its stack
 * (as Linux does) while the old program, where they come from, still exists: the strings of
 * argv, then those of envp, end at STACK_TOP; argv[0]'s is the lowest, at `bottom`. Linux's
 * limits: a string of at most MAX_ARG_STRLEN bytes with its NUL, and all of them with a
 * pointer each at most ARG_MAX (a quarter of the 8 MiB stack limit); E2BIG past either. */
#define MAX_ARG_STRLEN (128ULL << 10)
#define ARG_MAX (2ULL << 20)

int args_init(struct args *a)
{
    a->mm = mm_new();
    a->bottom = STACK_TOP;
    a->argc = a->envc = 0;
    a->room = ARG_MAX;
    return a->mm ? 0 : -ENOMEM;
}

/* Puts `n` bytes (`count` strings) below the others: from the kernel, or from the current
 * (old) address space when `user`. The new stack's pages appear as they are written. */
static int args_put(struct args *a, const void *src, uint64_t n, uint32_t count, int user)
{
    if (n + count * 8ULL > a->room)
        return -E2BIG_;
    a->room -= n + count * 8ULL;
    a->bottom -= n;
    for (uint64_t done = 0; done < n;) {
        uint64_t va = a->bottom + done, chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1)), gpa = translate(a->mm, va, 1);
        chunk = chunk < n - done ? chunk : n - done;
        if (!gpa)
            return -ENOMEM;
        if (!user)
            kmemcpy(DMAP(gpa), (const char *)src + done, chunk);
        else if (copy_user((uint64_t)src + done, DMAP(gpa), chunk, 0) < 0)
            return -EFAULT;
        done += chunk;
    }
    return 0;
}

int args_put_list(struct args *a, const char *list, uint32_t count)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t len = kstrnlen(list + n, MAX_ARG_STRLEN) + 1;
        if (len > MAX_ARG_STRLEN)
            return -E2BIG_;
        n += len;
    }
    return args_put(a, list, n, count, 0);
}

int args_put_user(struct args *a, uint64_t uvec, uint32_t *count)
{
    struct proc *cur = proc_cur();
    uint64_t n = 0, p;
    for (; uvec; n++) {
        if (copy_user(uvec + n * 8, &p, 8, 0) < 0)
            return -EFAULT;
        if (!p)
            break;
        if ((n + 1) * 8 > a->room)
            return -E2BIG_;
    }
    for (uint64_t i = n; i-- > 0;) {
        long len = copy_user(uvec + i * 8, &p, 8, 0) < 0 ? -EFAULT : str_len(cur->mm, p, MAX_ARG_STRLEN);
        int r = len < 0 ? (int)len : args_put(a, (const void *)p, (uint64_t)len + 1, 1, 1);
        if (r < 0)
            return r;
    }
    *count = (uint32_t)n;
    return 0;
}

/* A script's interpreter takes argv[0]'s place: its string goes. */
static void args_drop_first(struct args *a)
{
    long len = str_len(a->mm, a->bottom, MAX_ARG_STRLEN);
    if (len >= 0 && a->argc) {
        a->bottom += (uint64_t)len + 1;
        a->room += (uint64_t)len + 1 + 8;
        a->argc--;
    }
}

/* The initial stack as a C library's startup reads it, below the strings: argc, argv, envp,
 * auxv, the pointers into the strings `a` put there. */
static int build_stack(const struct loaded *L, uint64_t interp_base, const struct args *a, uint64_t *sp_out)
{
    struct proc *cur = proc_cur();
    uint64_t pml4 = cur->mm->pml4, rnd[2]; /* the new address space, which load_program took from `a` */
    for (int i = 1; i <= STACK_PAGES; i++) /* mapped now: a fault costs more than a page (PVM) */
        if (map_new(pml4, STACK_TOP - (uint64_t)i * PAGE_SIZE) < 0)
            return -ENOMEM;
    uint64_t random = (a->bottom - 16) & ~15ULL;
    krng_bytes(rnd, sizeof(rnd)); /* AT_RANDOM: the C library's stack guard and pointer mangling */
    if (copy_user(random, rnd, 16, 1) < 0)
        return -ENOMEM;
    uint64_t aux[] = {6, PAGE_SIZE, 3, L->phdr, 4, sizeof(struct elf_phdr), 5, L->phnum, 7, interp_base, 9, L->entry,
                      11, 0, 12, 0, 13, 0, 14, 0, 17, 100, 23, 0, 25, random, 0, 0};
    uint64_t naux = sizeof(aux) / sizeof(aux[0]), n = 1 + a->argc + 1 + a->envc + 1 + naux;
    uint64_t sp = (random - n * 8) & ~15ULL, at = sp, str = a->bottom, word;
    for (uint64_t i = 0; i < n; i++, at += 8) {
        if (i == 0) {
            word = a->argc;
        } else if (i == 1 + a->argc || i == 2 + a->argc + a->envc) {
            word = 0; /* the end of argv, of envp */
        } else if (i < 3 + a->argc + a->envc) {
            long len = str_len(cur->mm, str, MAX_ARG_STRLEN);
            if (len < 0)
                return -EFAULT;
            word = str;
            str += (uint64_t)len + 1;
        } else {
            word = aux[i - (3 + a->argc + a->envc)];
        }
        if (copy_user(at, &word, 8, 1) < 0) /* the stack grows here as needed */
            return -ENOMEM;
    }
    *sp_out = sp;
    return 0;
}

void fx_reset(struct proc *p)
{
    fpu_reset(fpu_of(p));
    fpu_restore(fpu_of(p));
}

/* What /proc shows of a program: its arguments (`argc` strings at `argv` in its memory: the
 * first cmdline bytes of them) and the last part of the first one as its name. */
static void set_cmdline(struct proc *p, uint64_t argv, uint32_t argc)
{
    uint64_t n = STACK_TOP - argv < sizeof(p->cmdline) ? STACK_TOP - argv : sizeof(p->cmdline), i = 0;
    if (copy_user(argv, p->cmdline, n, 0) < 0)
        n = 0;
    for (uint32_t seen = 0; i < n && seen < argc; i++)
        seen += !p->cmdline[i];
    p->cmdline_len = (uint32_t)i;
    const char *base = p->cmdline;
    for (uint32_t k = 0; k + 1 < i && p->cmdline[k]; k++)
        if (p->cmdline[k] == '/')
            base = p->cmdline + k + 1;
    uint64_t bl = kstrnlen(base, sizeof(p->comm) - 1);
    kmemcpy(p->comm, base, bl);
    p->comm[bl] = 0;
}

/* A dynamically linked program's interpreter (glibc's or musl's ld.so) into the current,
 * new address space where mappings start; it then maps the program's libraries itself. Its
 * pages are the file's, held by the address space. */
static int load_interp(const char *path, struct loaded *I)
{
    struct proc *cur = proc_cur();
    struct image im;
    int r = image_of(fs_root(), path, &im);
    if (r < 0)
        return r;
    if ((r = mm_pin(cur->mm, im.ino)) < 0)
        return r;
    return elf_load(&im, MMAP_BASE, I, 0);
}

int load_program(const struct image *im, struct args *a, uint64_t *entry, uint64_t *sp)
{
    struct proc *cur = proc_cur();
    struct loaded L, I = {0};
    struct mm *old = cur->mm, *m = a->mm;
    char interp[INTERP_MAX];
    int r;
    a->mm = 0;
    cur->mm = m;
    write_cr3(m->pml4); /* the loader writes through the new mappings */
    if ((r = elf_load(im, PIE_BASE, &L, interp)) < 0 || (interp[0] && (r = load_interp(interp, &I)) < 0) ||
        (r = build_stack(&L, I.bias, a, sp)) < 0) {
        cur->mm = old;
        write_cr3(old ? old->pml4 : LEL_GPA_PML4);
        mm_put(m);
        return r;
    }
    mm_put(old); /* the last user frees it; a vfork child leaves its parent's */
    exe_set(cur, im->ino);
    set_cmdline(cur, a->bottom, a->argc);
    cur->mm->brk_start = cur->mm->brk = (L.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    cur->mm->mmap_next = I.end > MMAP_BASE ? ((I.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) + PAGE_SIZE : MMAP_BASE;
    fx_reset(cur);
    *entry = interp[0] ? I.entry : L.entry;
    return 0;
}

int image_of(struct inode *cwd, const char *path, struct image *im)
{
    struct inode *ino;
    int r = fs_lookup(cwd, path, 1, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) == S_IFDIR)
        return -EISDIR;
    if ((ino->mode & S_IFMT) != S_IFREG || !(ino->mode & 0111))
        return -13; /* EACCES */
    im->ino = ino;
    im->mem = 0;
    im->len = ino->size;
    return 0;
}

int shebang(struct image *im, const char *path, struct args *a, char *exe)
{
    struct proc *cur = proc_cur();
    char line[INTERP_MAX];
    uint64_t n = im->len < sizeof(line) - 1 ? im->len : sizeof(line) - 1, i = 2, j;
    if (n < 2 || fs_read(im->ino, 0, line, n) != (int64_t)n || line[0] != '#' || line[1] != '!')
        return 0;
    line[n] = 0;
    while (line[i] == ' ' || line[i] == '\t')
        i++;
    for (j = i; line[j] && line[j] != '\n' && line[j] != ' ' && line[j] != '\t'; j++)
        ;
    if (j == i || (!line[j] && n == sizeof(line) - 1))
        return -ENOEXEC; /* no interpreter, or a first line longer than Linux takes */
    uint64_t s = j, e;
    while (line[s] == ' ' || line[s] == '\t')
        s++;
    for (e = s; line[e] && line[e] != '\n'; e++)
        ;
    while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    line[j] = line[e] = 0;
    args_drop_first(a);
    long r = args_put(a, path, kstrlen(path) + 1, 1, 0);
    if (r == 0 && e > s && (r = args_put(a, line + s, e - s + 1, 1, 0)) == 0)
        a->argc++;
    if (r == 0 && (r = args_put(a, line + i, j - i + 1, 1, 0)) == 0) {
        a->argc += 2;
        kmemcpy(exe, line + i, j - i + 1);
        r = image_of(cur->files->cwd, exe, im);
    }
    return r < 0 ? (int)r : 1;
}
