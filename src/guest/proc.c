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

enum { E2BIG_ = 7, EPERM = 1, ENOENT = 2, EBADF = 9, ENOMEM = 12, EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21,
       EINVAL = 22, EMFILE = 24, ENOTTY = 25, ESPIPE = 29, ERANGE = 34, ENOSYS = 38, ENOEXEC = 8 };

extern void syscall_entry(void);
extern void enter_user(uint64_t rip, uint64_t rsp) __attribute__((noreturn));
extern int ctx_save(uint64_t ctx[8]) __attribute__((returns_twice));
extern void ctx_restore(uint64_t ctx[8], long v) __attribute__((noreturn));
extern const uint8_t user_test_elf[], user_test_elf_end[];

static uint8_t syscall_stack[16384] __attribute__((aligned(16)));
uint64_t syscall_stack_top; /* read by syscall_entry */

enum ftype { F_NONE = 0, F_INODE, F_STDIN, F_OUT, F_ERR };

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
    const struct proc_spec *spec;
    struct proc_result *res;
    uint64_t deadline;       /* kernel ticks; 0: none */
    struct inode *stdin_file;
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

/* The initial stack as a static libc's startup reads it: argc, argv, envp, auxv. `argv` and
 * `env` are NUL-separated lists in kernel memory. */
#define MAX_ARGS 256

static int build_stack(const struct loaded *L, const char *argv, uint32_t argc, const char *env, uint32_t envc,
                       uint64_t *sp_out)
{
    static const char defenv[] = "PATH=/bin\0HOME=/root\0TERM=dumb";
    uint64_t *ptrs = kpage_alloc(), sp = STACK_TOP, n = 0; /* 512 slots: pointers, then auxv */
    int r = -E2BIG_;
    if (!env) {
        env = defenv;
        envc = 3;
    }
    if (!ptrs)
        return -ENOMEM;
    if (argc == 0 || argc + envc > MAX_ARGS)
        goto out;
    r = -ENOMEM;
    for (int i = 1; i <= STACK_PAGES; i++)
        if (map_new(cur.pml4, STACK_TOP - (uint64_t)i * PAGE_SIZE) < 0)
            goto out;
    r = -E2BIG_;
    const char *lists[2] = {argv, env};
    uint32_t counts[2] = {argc, envc};
    ptrs[n++] = argc;
    for (int l = 0; l < 2; l++) {
        const char *a = lists[l];
        for (uint32_t i = 0; i < counts[l]; i++) {
            uint64_t len = kstrnlen(a, 65536) + 1;
            if (len > 65536 || STACK_TOP - sp + len > (STACK_PAGES - 4) * PAGE_SIZE)
                goto out;
            sp -= len;
            copy_user(sp, (void *)a, len, 1);
            ptrs[n++] = sp;
            a += len;
        }
        ptrs[n++] = 0;
    }
    sp -= 16;
    uint64_t random = sp, rnd[2] = {rdtsc() * 0x9e3779b97f4a7c15ULL, rdtsc() ^ 0x13198a2e03707344ULL};
    copy_user(random, rnd, 16, 1);
    uint64_t aux[] = {6, PAGE_SIZE, 3, L->phdr, 4, sizeof(struct phdr), 5, L->phnum, 9, L->entry, 11, 0, 12, 0, 13, 0,
                      14, 0, 23, 0, 25, random, 0, 0};
    for (uint64_t i = 0; i < sizeof(aux) / sizeof(aux[0]); i++)
        ptrs[n++] = aux[i];
    sp = (sp - n * 8) & ~15ULL;
    r = copy_user(sp, ptrs, n * 8, 1) < 0 ? -EFAULT : 0;
    *sp_out = sp;
out:
    kpage_free(ptrs);
    return r;
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
static long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp);

#include "syscalls.inc"

/* ---- running ---- */

static void proc_exit(long status)
{
    ctx_restore(cur.kctx, 0x100 | (status & 0xff)); /* back to proc_spawn, on the kernel stack */
}

void proc_fault(uint64_t vector, uint64_t rip)
{
    long sig = vector == 14 || vector == 13 ? 11 : vector == 0 ? 8 : vector == 6 ? 4 : 11;
    (void)rip;
    proc_exit(128 + sig);
}

void proc_tick(void)
{
    if (cur.active && cur.deadline && kernel_ticks() >= cur.deadline) {
        cur.res->timed_out = 1;
        proc_exit(128 + 9); /* SIGKILL */
    }
}

/* Loads `im` into a fresh address space with the given argv/env; on success the process runs
 * on it (the old one, if any, is freed) and entry and sp say where to start. */
static int load_program(const struct image *im, const char *argv, uint32_t argc, const char *env, uint32_t envc,
                        uint64_t *entry, uint64_t *sp)
{
    struct loaded L;
    uint64_t old = cur.pml4, pml4 = pt_new();
    int r;
    if (!pml4)
        return -ENOMEM;
    cur.pml4 = pml4;
    write_cr3(pml4); /* the loader writes through the new mappings */
    if ((r = elf_load(im, &L)) < 0 || (r = build_stack(&L, argv, argc, env, envc, sp)) < 0) {
        cur.pml4 = old;
        write_cr3(old ? old : LEL_GPA_PML4);
        free_level(pml4, 4);
        return r;
    }
    if (old)
        free_level(old, 4);
    cur.brk_start = cur.brk = (L.end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    cur.mmap_next = MMAP_BASE;
    *entry = L.entry;
    return 0;
}

static int image_of(const char *path, struct image *im)
{
    struct inode *ino;
    int r = fs_lookup(cur.cwd, path, 1, &ino);
    if (r < 0)
        return r;
    if ((ino->mode & S_IFMT) == S_IFDIR)
        return -EISDIR;
    if ((ino->mode & S_IFMT) != S_IFREG || !(ino->mode & 0111))
        return -EPERM - 12; /* EACCES */
    im->ino = ino;
    im->mem = 0;
    im->len = ino->size;
    return 0;
}

/* execve: copies argv/envp out of the old image, then replaces it; on success the syscall
 * "returns" into the new program through the saved user registers. */
static long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp)
{
    char path[FS_PATH_MAX];
    long r = copy_str(upath, path, sizeof(path));
    if (r < 0)
        return r;
    char *buf = kpage_alloc(), *buf2 = kpage_alloc(); /* 8 KiB of strings */
    uint32_t counts[2] = {0, 0};
    uint64_t used = 0, lists[2] = {uargv, uenvp};
    if (!buf || !buf2) {
        r = -ENOMEM;
        goto out;
    }
    for (int l = 0; l < 2; l++) {
        for (uint64_t i = 0; lists[l]; i++) {
            uint64_t p;
            if (copy_user(lists[l] + i * 8, &p, 8, 0) < 0) {
                r = -EFAULT;
                goto out;
            }
            if (!p)
                break;
            char *dst = (used < PAGE_SIZE ? buf + used : buf2 + used - PAGE_SIZE);
            uint64_t room = used < PAGE_SIZE ? PAGE_SIZE - used : 2 * PAGE_SIZE - used;
            long n = copy_str(p, dst, room);
            if (n < 0 || counts[0] + counts[1] >= MAX_ARGS) {
                r = n == -EFAULT ? -EFAULT : -E2BIG_;
                goto out;
            }
            used += (uint64_t)n + 1;
            counts[l]++;
            if (l == 0 && i == 0 && used >= PAGE_SIZE) {
                r = -E2BIG_;
                goto out;
            }
        }
        if (l == 0) { /* the environment starts on the second page */
            if (used > PAGE_SIZE) {
                r = -E2BIG_;
                goto out;
            }
            used = PAGE_SIZE;
        }
    }
    struct image im;
    uint64_t entry, sp;
    if (counts[0] == 0) {
        r = -EFAULT;
        goto out;
    }
    if ((r = image_of(path, &im)) < 0 || (r = load_program(&im, buf, counts[0], buf2, counts[1], &entry, &sp)) < 0)
        goto out;
    kmemset(regs, 0, sizeof(*regs));
    regs->rcx = entry; /* sysret's RIP */
    regs->r11 = 0x202;
    regs->rsp = sp;
    wrmsr(MSR_FS_BASE, 0);
    r = 0;
out:
    if (buf)
        kpage_free(buf);
    if (buf2)
        kpage_free(buf2);
    return r;
}

static int run(const struct image *im, const struct proc_spec *spec, struct proc_result *res)
{
    uint64_t entry, sp;
    int r;
    kmemset(res, 0, sizeof(*res));
    struct inode *cwd = fs_root();
    if (spec->cwd && (fs_lookup(fs_root(), spec->cwd, 1, &cwd) < 0 || (cwd->mode & S_IFMT) != S_IFDIR))
        return -ENOENT;
    kmemset(&cur, 0, sizeof(cur));
    cur.spec = spec;
    cur.res = res;
    cur.cwd = cwd;
    cur.rng = rdtsc() | 1;
    if ((r = load_program(im, spec->argv, spec->argc, spec->env, spec->envc, &entry, &sp)) < 0)
        goto out;
    r = -ENOMEM;
    struct file *in = 0, *o = file_new(F_OUT, 0, 1), *e = spec->err ? file_new(F_ERR, 0, 1) : o;
    if (spec->stdin_len) {
        if ((cur.stdin_file = fs_anon_file()) &&
            fs_write(cur.stdin_file, 0, spec->stdin_data, spec->stdin_len) == (int64_t)spec->stdin_len)
            in = file_new(F_INODE, cur.stdin_file, 0);
    } else {
        in = file_new(F_STDIN, 0, 0);
    }
    if (!in || !o || !e) {
        file_put(in);
        file_put(o);
        if (e != o)
            file_put(e);
        goto out;
    }
    if (e == o)
        o->refs++;
    cur.fd[0] = in;
    cur.fd[1] = o;
    cur.fd[2] = e;
    cur.deadline = spec->timeout_ticks ? kernel_ticks() + spec->timeout_ticks : 0;
    long v = ctx_save(cur.kctx);
    if (v == 0) {
        cur.active = 1;
        wrmsr(MSR_FS_BASE, 0);
        kernel_irq_on(); /* the timer must reach user mode: it ends overrunning programs */
        enter_user(entry, sp);
    }
    res->status = (int)(v & 0xff);
    r = 0;
out:
    cur.active = 0;
    fds_close_all();
    fs_anon_free(cur.stdin_file);
    write_cr3(LEL_GPA_PML4);
    if (cur.pml4)
        free_level(cur.pml4, 4);
    return r;
}

int proc_spawn(const struct proc_spec *spec, struct proc_result *res)
{
    struct image im;
    cur.cwd = fs_root();
    int r = image_of(spec->argv, &im);
    return r < 0 ? r : run(&im, spec, res);
}

int proc_run_test(char *out, uint32_t cap, uint32_t *outlen)
{
    struct image im = {0, user_test_elf, (uint64_t)(user_test_elf_end - user_test_elf)};
    struct proc_spec spec = {.argv = "test", .argc = 1, .out = out, .out_cap = cap};
    struct proc_result res;
    int r = run(&im, &spec, &res);
    *outlen = (uint32_t)res.out_len;
    return r < 0 ? r : res.status;
}
