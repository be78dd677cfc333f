/* Processes. Page tables: PML4 slots 0..255 are the process's own, 256..511 are copied from
 * the kernel's (U/S=1 everywhere, as PVM requires; guest user/kernel isolation is not the
 * security boundary — the VM is). Every user pointer a syscall receives is translated through
 * the process's page table before it is touched, so a bad pointer is -EFAULT, never a kernel
 * fault. */
#include "proc.h"

#include "fs.h"
#include "klib.h"

#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_U 4ULL
#define PTE_ADDR 0x000ffffffffff000ULL
#define USER_TOP 0x0000800000000000ULL
#define STACK_TOP 0x00007ffffff00000ULL
#define STACK_PAGES 64
#define MMAP_BASE 0x00007f0000000000ULL
#define NFD 64

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084
#define MSR_FS_BASE 0xc0000100

enum { EPERM = 1, ENOENT = 2, EBADF = 9, ENOMEM = 12, EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21,
       EINVAL = 22, EMFILE = 24, ENOTTY = 25, ESPIPE = 29, ERANGE = 34, ENOSYS = 38, ENOEXEC = 8 };

extern void syscall_entry(void);
extern void enter_user(uint64_t rip, uint64_t rsp) __attribute__((noreturn));
extern int ctx_save(uint64_t ctx[8]) __attribute__((returns_twice));
extern void ctx_restore(uint64_t ctx[8], long v) __attribute__((noreturn));
extern const uint8_t user_test_elf[], user_test_elf_end[];

static uint8_t syscall_stack[16384] __attribute__((aligned(16)));
uint64_t syscall_stack_top; /* read by syscall_entry */

enum ftype { F_NONE = 0, F_INODE, F_STDIN, F_OUT };

struct file {
    enum ftype type;
    struct inode *ino;
    uint64_t off;
    int flags;
    int refs;
};

static struct {
    int active;
    uint64_t pml4;
    uint64_t kctx[8];
    char *out;
    uint32_t cap, len;
    struct file *fd[NFD];
    struct inode *cwd;
    uint64_t brk_start, brk, mmap_next;
    uint64_t rng;
} cur;

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t)hi << 32 | lo;
}

static inline void write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

void proc_init(void)
{
    syscall_stack_top = (uint64_t)(syscall_stack + sizeof(syscall_stack));
    /* interrupts from user mode land on the syscall stack, never on the kernel's live one */
    *(uint64_t *)((uint8_t *)KVA(LEL_GPA_TSS) + 4) = syscall_stack_top;
    wrmsr(MSR_STAR, 0x0023001000000000ULL);
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_SFMASK, 0x47700); /* TF, IF, DF, IOPL, NT, AC */
}

int proc_active(void)
{
    return cur.active;
}

int64_t proc_now_ns(void)
{
    const struct lel_boot_info *b = KVA(LEL_GPA_BOOT);
    uint32_t hz = b->tick_hz ? b->tick_hz : 100;
    return (int64_t)b->epoch_ms * 1000000 + (int64_t)(kernel_ticks() * (1000000000ULL / hz));
}

/* ---- address spaces ---- */

static uint64_t *pte_of(uint64_t pml4, uint64_t va, int create)
{
    uint64_t table = pml4;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t *e = (uint64_t *)DMAP(table) + ((va >> shift) & 511);
        if (!(*e & PTE_P)) {
            void *t;
            if (!create || !(t = kpage_alloc()))
                return 0;
            *e = kpage_gpa(t) | PTE_P | PTE_W | PTE_U;
        }
        table = *e & PTE_ADDR;
    }
    return (uint64_t *)DMAP(table) + ((va >> 12) & 511);
}

static int map_new(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 1);
    void *p;
    if (!e)
        return -ENOMEM;
    if (*e & PTE_P)
        return 0;
    if (!(p = kpage_alloc()))
        return -ENOMEM;
    *e = kpage_gpa(p) | PTE_P | PTE_W | PTE_U;
    return 0;
}

static void unmap(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 0);
    if (e && (*e & PTE_P)) {
        kpage_free(DMAP(*e & PTE_ADDR));
        *e = 0;
        __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory"); /* PVM resyncs shadow PTEs only here */
    }
}

static uint64_t translate(uint64_t pml4, uint64_t va)
{
    if (va >= USER_TOP)
        return 0;
    uint64_t *e = pte_of(pml4, va, 0);
    return e && (*e & PTE_P) ? (*e & PTE_ADDR) | (va & (PAGE_SIZE - 1)) : 0;
}

/* Copies between user memory and the kernel through the page table; -EFAULT on any hole. */
static long copy_user(uint64_t va, void *buf, uint64_t n, int to_user)
{
    uint8_t *b = buf;
    if (va + n < va)
        return -EFAULT;
    while (n) {
        uint64_t gpa = translate(cur.pml4, va), chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
        if (!gpa)
            return -EFAULT;
        if (chunk > n)
            chunk = n;
        if (to_user)
            kmemcpy(DMAP(gpa), b, chunk);
        else
            kmemcpy(b, DMAP(gpa), chunk);
        va += chunk;
        b += chunk;
        n -= chunk;
    }
    return 0;
}

/* A NUL-terminated user string into buf (cap bytes); -ENAMETOOLONG when it does not fit. */
static long copy_str(uint64_t va, char *buf, uint64_t cap)
{
    for (uint64_t i = 0; i < cap; i++) {
        if (copy_user(va + i, buf + i, 1, 0) < 0)
            return -EFAULT;
        if (!buf[i])
            return (long)i;
    }
    return -36;
}

static void free_level(uint64_t table, int level)
{
    uint64_t *e = DMAP(table);
    for (int i = 0; i < (level == 4 ? 256 : 512); i++) {
        if (!(e[i] & PTE_P))
            continue;
        if (level > 1)
            free_level(e[i] & PTE_ADDR, level - 1);
        else
            kpage_free(DMAP(e[i] & PTE_ADDR));
    }
    kpage_free(DMAP(table));
}

static uint64_t pt_new(void)
{
    void *p = kpage_alloc();
    if (!p)
        return 0;
    uint64_t *dst = p, *src = KVA(LEL_GPA_PML4);
    for (int i = 256; i < 512; i++)
        dst[i] = src[i];
    return kpage_gpa(p);
}

/* ---- ELF ---- */

struct ehdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

/* Reads an executable's bytes from a file or the built-in image. */
struct image {
    struct inode *ino;
    const uint8_t *mem;
    uint64_t len;
};

static int img_read(const struct image *im, uint64_t off, void *buf, uint64_t n)
{
    if (off > im->len || n > im->len - off)
        return -ENOEXEC;
    if (im->mem) {
        kmemcpy(buf, im->mem + off, n);
        return 0;
    }
    return fs_read(im->ino, off, buf, n) == (int64_t)n ? 0 : -ENOEXEC;
}

struct loaded {
    uint64_t entry, phdr, phnum, end;
};

/* Loads a static ELF64 x86-64 executable; every offset and size is checked against the file. */
static int elf_load(const struct image *im, struct loaded *L)
{
    struct ehdr h;
    struct phdr ph[32];
    if (img_read(im, 0, &h, sizeof(h)) < 0 || h.ident[0] != 0x7f || h.ident[1] != 'E' || h.ident[2] != 'L' ||
        h.ident[3] != 'F' || h.ident[4] != 2 || h.type != 2 || h.machine != 62 || h.phentsize != sizeof(struct phdr) ||
        h.phnum == 0 || h.phnum > 32 || img_read(im, h.phoff, ph, (uint64_t)h.phnum * sizeof(struct phdr)) < 0)
        return -ENOEXEC;
    L->phdr = 0;
    L->end = 0;
    for (int i = 0; i < h.phnum; i++) {
        const struct phdr *p = &ph[i];
        if (p->type == 3) /* PT_INTERP: dynamically linked */
            return -ENOEXEC;
        if (p->type != 1)
            continue;
        if (p->filesz > p->memsz || p->vaddr >= USER_TOP || p->memsz > USER_TOP - p->vaddr || p->offset > im->len ||
            p->filesz > im->len - p->offset)
            return -ENOEXEC;
        for (uint64_t va = p->vaddr & ~(PAGE_SIZE - 1); va < p->vaddr + p->memsz; va += PAGE_SIZE)
            if (map_new(cur.pml4, va) < 0)
                return -ENOMEM;
        /* file bytes, page by page straight into the process's memory */
        for (uint64_t done = 0; done < p->filesz;) {
            uint64_t va = p->vaddr + done, chunk = PAGE_SIZE - (va & (PAGE_SIZE - 1));
            if (chunk > p->filesz - done)
                chunk = p->filesz - done;
            if (img_read(im, p->offset + done, DMAP(translate(cur.pml4, va)), chunk) < 0)
                return -ENOEXEC;
            done += chunk;
        }
        if (h.phoff >= p->offset && h.phoff < p->offset + p->filesz)
            L->phdr = p->vaddr + (h.phoff - p->offset);
        if (p->vaddr + p->memsz > L->end)
            L->end = p->vaddr + p->memsz;
    }
    L->entry = h.entry;
    L->phnum = h.phnum;
    return 0;
}

/* The initial stack as a static libc's startup reads it: argc, argv, envp, auxv. */
static int build_stack(const struct loaded *L, const char *args, uint32_t argc, uint64_t *sp_out)
{
    static const char *const envp[] = {"PATH=/bin", "HOME=/root", "TERM=dumb", 0};
    uint64_t argv_va[64], envp_va[4], sp = STACK_TOP;
    if (argc == 0 || argc > 63)
        return -EINVAL;
    for (int i = 1; i <= STACK_PAGES; i++)
        if (map_new(cur.pml4, STACK_TOP - (uint64_t)i * PAGE_SIZE) < 0)
            return -ENOMEM;
    const char *a = args;
    for (uint32_t i = 0; i < argc; i++) {
        uint64_t n = kstrlen(a) + 1;
        if (n > 4096)
            return -EINVAL;
        sp -= n;
        copy_user(sp, (void *)a, n, 1);
        argv_va[i] = sp;
        a += n;
    }
    for (int i = 0; envp[i]; i++) {
        uint64_t n = kstrlen(envp[i]) + 1;
        sp -= n;
        copy_user(sp, (void *)envp[i], n, 1);
        envp_va[i] = sp;
    }
    sp -= 16;
    uint64_t random = sp, rnd[2] = {rdtsc() * 0x9e3779b97f4a7c15ULL, rdtsc() ^ 0x13198a2e03707344ULL};
    copy_user(random, rnd, 16, 1);
    uint64_t v[64 + 4 + 2 + 32], n = 0;
    v[n++] = argc;
    for (uint32_t i = 0; i < argc; i++)
        v[n++] = argv_va[i];
    v[n++] = 0;
    for (int i = 0; envp[i]; i++)
        v[n++] = envp_va[i];
    v[n++] = 0;
    uint64_t aux[] = {6, PAGE_SIZE, 3, L->phdr, 4, sizeof(struct phdr), 5, L->phnum, 9, L->entry, 11, 0, 12, 0, 13, 0,
                      14, 0, 23, 0, 25, random, 0, 0};
    for (uint64_t i = 0; i < sizeof(aux) / sizeof(aux[0]); i++)
        v[n++] = aux[i];
    sp = (sp - n * 8) & ~15ULL;
    if (copy_user(sp, v, n * 8, 1) < 0)
        return -EFAULT;
    *sp_out = sp;
    return 0;
}

/* ---- file descriptors ---- */

static struct file *file_new(enum ftype t, struct inode *ino, int flags)
{
    struct file *f = kmalloc(sizeof(*f));
    if (f) {
        f->type = t;
        f->ino = ino;
        f->flags = flags;
        f->refs = 1;
    }
    return f;
}

static void file_put(struct file *f)
{
    if (f && --f->refs == 0)
        kfree(f, sizeof(*f));
}

static int fd_install(struct file *f, int from)
{
    for (int i = from; i < NFD; i++) {
        if (!cur.fd[i]) {
            cur.fd[i] = f;
            return i;
        }
    }
    return -EMFILE;
}

static struct file *fd_get(uint64_t fd)
{
    return fd < NFD ? cur.fd[fd] : 0;
}

static void fds_close_all(void)
{
    for (int i = 0; i < NFD; i++) {
        file_put(cur.fd[i]);
        cur.fd[i] = 0;
    }
}

static void proc_exit(long status) __attribute__((noreturn));

#include "syscalls.inc"

/* ---- running ---- */

static void proc_exit(long status)
{
    ctx_restore(cur.kctx, 0x100 | (status & 0xff)); /* back to run_image, on the kernel stack */
}

void proc_fault(uint64_t vector, uint64_t rip)
{
    long sig = vector == 14 || vector == 13 ? 11 : vector == 0 ? 8 : vector == 6 ? 4 : 11;
    (void)rip;
    proc_exit(128 + sig);
}

static int run_image(const struct image *im, const char *args, uint32_t argc, char *out, uint32_t cap, uint32_t *outlen)
{
    struct loaded L;
    uint64_t sp;
    int r;
    kmemset(&cur, 0, sizeof(cur));
    cur.out = out;
    cur.cap = cap;
    cur.cwd = fs_root();
    cur.rng = rdtsc() | 1;
    if (!(cur.pml4 = pt_new()))
        return -ENOMEM;
    write_cr3(cur.pml4); /* the loader writes through the process's own mappings */
    if ((r = elf_load(im, &L)) < 0 || (r = build_stack(&L, args, argc, &sp)) < 0)
        goto out;
    cur.brk_start = cur.brk = (L.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    cur.mmap_next = MMAP_BASE;
    struct file *in = file_new(F_STDIN, 0, 0), *o = file_new(F_OUT, 0, 1);
    if (!in || !o) {
        file_put(in);
        file_put(o);
        r = -ENOMEM;
        goto out;
    }
    cur.fd[0] = in;
    cur.fd[1] = o;
    o->refs = 2;
    cur.fd[2] = o;
    long v = ctx_save(cur.kctx);
    if (v == 0) {
        cur.active = 1;
        wrmsr(MSR_FS_BASE, 0);
        enter_user(L.entry, sp);
    }
    r = (int)(v & 0xff);
out:
    cur.active = 0;
    fds_close_all();
    write_cr3(LEL_GPA_PML4);
    free_level(cur.pml4, 4);
    *outlen = cur.len;
    return r;
}

int proc_run(const char *args, uint32_t argc, char *out, uint32_t cap, uint32_t *outlen)
{
    struct inode *ino;
    *outlen = 0;
    int r = fs_lookup(fs_root(), args, 1, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) != S_IFREG)
        return -EPERM;
    struct image im = {ino, 0, ino->size};
    return run_image(&im, args, argc, out, cap, outlen);
}

int proc_run_test(char *out, uint32_t cap, uint32_t *outlen)
{
    struct image im = {0, user_test_elf, (uint64_t)(user_test_elf_end - user_test_elf)};
    return run_image(&im, "test", 1, out, cap, outlen);
}
