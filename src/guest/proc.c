/* Processes. Page tables: PML4 slots 0..255 are the process's own, 256..511 are copied from
 * the kernel's (U/S=1 everywhere, as PVM requires; guest user/kernel isolation is not the
 * security boundary — the VM is). Every user pointer a syscall receives is translated
 * through the process's page table before it is touched, so a bad pointer is -EFAULT, never
 * a kernel fault. */
#include "proc.h"

#define PAGE 4096ULL
#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_U 4ULL
#define PTE_ADDR 0x000ffffffffff000ULL
#define USER_TOP 0x0000800000000000ULL
#define STACK_TOP 0x00007ffffff00000ULL
#define STACK_PAGES 32
#define POOL_START (4ULL << 20) /* pages for processes: 4..16 MiB for now */
#define POOL_END LEL_GPA_WORK

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_SFMASK 0xc0000084

#define ENOSYS 38
#define EFAULT 14
#define EBADF 9
#define ENOMEM 12

extern void syscall_entry(void);
extern void enter_user(uint64_t rip, uint64_t rsp) __attribute__((noreturn));
extern int ctx_save(uint64_t ctx[8]) __attribute__((returns_twice));
extern void ctx_restore(uint64_t ctx[8], long v) __attribute__((noreturn));
extern const uint8_t user_test_elf[], user_test_elf_end[];

static uint64_t pool_next, free_list; /* free_list: GPA of a free page whose first word links the next */
static uint8_t syscall_stack[16384] __attribute__((aligned(16)));
uint64_t syscall_stack_top; /* read by syscall_entry */

static struct {
    int active;
    uint64_t pml4;
    uint64_t kctx[8];
    char *out;
    uint32_t cap, len;
} cur;

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void write_cr3(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory");
}

static void *memset_(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

static void *memcpy_(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

void proc_init(void)
{
    pool_next = POOL_START;
    free_list = 0;
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

static uint64_t page_alloc(void)
{
    uint64_t p;
    if (free_list) {
        p = free_list;
        free_list = *(uint64_t *)DMAP(p);
    } else if (pool_next < POOL_END) {
        p = pool_next;
        pool_next += PAGE;
    } else {
        return 0;
    }
    memset_(DMAP(p), 0, PAGE);
    return p;
}

static void page_free(uint64_t p)
{
    *(uint64_t *)DMAP(p) = free_list;
    free_list = p;
}

/* Returns the entry for `va` at the last level, creating tables on the way when `create`. */
static uint64_t *pte_of(uint64_t pml4, uint64_t va, int create)
{
    uint64_t table = pml4;
    for (int shift = 39; shift > 12; shift -= 9) {
        uint64_t *e = (uint64_t *)DMAP(table) + ((va >> shift) & 511);
        if (!(*e & PTE_P)) {
            uint64_t t;
            if (!create || !(t = page_alloc()))
                return 0;
            *e = t | PTE_P | PTE_W | PTE_U;
        }
        table = *e & PTE_ADDR;
    }
    return (uint64_t *)DMAP(table) + ((va >> 12) & 511);
}

static int map_new(uint64_t pml4, uint64_t va)
{
    uint64_t *e = pte_of(pml4, va, 1), p;
    if (!e)
        return -ENOMEM;
    if (*e & PTE_P)
        return 0;
    if (!(p = page_alloc()))
        return -ENOMEM;
    *e = p | PTE_P | PTE_W | PTE_U;
    return 0;
}

static uint64_t translate(uint64_t pml4, uint64_t va)
{
    if (va >= USER_TOP)
        return 0;
    uint64_t *e = pte_of(pml4, va, 0);
    return e && (*e & PTE_P) ? (*e & PTE_ADDR) | (va & (PAGE - 1)) : 0;
}

/* Copies between user memory and the kernel through the page table; -EFAULT on any hole. */
static long copy_user(uint64_t pml4, uint64_t va, void *buf, uint64_t n, int to_user)
{
    uint8_t *b = buf;
    if (va + n < va)
        return -EFAULT;
    while (n) {
        uint64_t gpa = translate(pml4, va), chunk = PAGE - (va & (PAGE - 1));
        if (!gpa)
            return -EFAULT;
        if (chunk > n)
            chunk = n;
        if (to_user)
            memcpy_(DMAP(gpa), b, chunk);
        else
            memcpy_(b, DMAP(gpa), chunk);
        va += chunk;
        b += chunk;
        n -= chunk;
    }
    return 0;
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
            page_free(e[i] & PTE_ADDR);
    }
    page_free(table);
}

static uint64_t pt_new(void)
{
    uint64_t p = page_alloc();
    if (p) {
        uint64_t *dst = DMAP(p), *src = KVA(LEL_GPA_PML4);
        for (int i = 256; i < 512; i++)
            dst[i] = src[i];
    }
    return p;
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

/* Loads a static ELF64 x86-64 executable. Every offset and size is checked against the image. */
static int elf_load(uint64_t pml4, const uint8_t *img, uint64_t len, uint64_t *entry, uint64_t *phdr_va, uint64_t *phnum)
{
    const struct ehdr *h = (const struct ehdr *)img;
    if (len < sizeof(*h) || h->ident[0] != 0x7f || h->ident[1] != 'E' || h->ident[2] != 'L' || h->ident[3] != 'F' ||
        h->ident[4] != 2 || h->type != 2 || h->machine != 62 || h->phentsize != sizeof(struct phdr) ||
        h->phoff > len || (uint64_t)h->phnum * sizeof(struct phdr) > len - h->phoff)
        return -8; /* ENOEXEC */
    *phdr_va = 0;
    for (int i = 0; i < h->phnum; i++) {
        const struct phdr *p = (const struct phdr *)(img + h->phoff) + i;
        if (p->type != 1) /* PT_LOAD */
            continue;
        if (p->filesz > p->memsz || p->offset > len || p->filesz > len - p->offset || p->vaddr >= USER_TOP ||
            p->memsz > USER_TOP - p->vaddr)
            return -8;
        for (uint64_t va = p->vaddr & ~(PAGE - 1); va < p->vaddr + p->memsz; va += PAGE)
            if (map_new(pml4, va) < 0)
                return -ENOMEM;
        if (copy_user(pml4, p->vaddr, (void *)(img + p->offset), p->filesz, 1) < 0)
            return -EFAULT;
        if (h->phoff >= p->offset && h->phoff < p->offset + p->filesz)
            *phdr_va = p->vaddr + (h->phoff - p->offset);
    }
    *entry = h->entry;
    *phnum = h->phnum;
    return 0;
}

/* The initial stack: argc, argv, envp, auxv (what a static libc's startup reads). */
static int build_stack(uint64_t pml4, uint64_t entry, uint64_t phdr, uint64_t phnum, uint64_t *sp_out)
{
    for (int i = 1; i <= STACK_PAGES; i++)
        if (map_new(pml4, STACK_TOP - (uint64_t)i * PAGE) < 0)
            return -ENOMEM;
    uint64_t sp = STACK_TOP;
    static const char name[] = "test";
    sp -= 16;
    uint64_t random = sp; /* AT_RANDOM: 16 bytes (not secret in this test) */
    uint64_t rnd[2] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};
    copy_user(pml4, random, rnd, 16, 1);
    sp -= sizeof(name);
    uint64_t argv0 = sp;
    copy_user(pml4, argv0, (void *)name, sizeof(name), 1);
    sp &= ~15ULL;
    uint64_t v[] = {1, argv0, 0, 0, /* argc, argv[0], NULL, envp NULL */
                    6, PAGE, 9, entry, 3, phdr, 4, sizeof(struct phdr), 5, phnum, 25, random, 23, 0, 0, 0};
    sp -= sizeof(v);
    sp &= ~15ULL;
    if (copy_user(pml4, sp, v, sizeof(v), 1) < 0)
        return -EFAULT;
    *sp_out = sp;
    return 0;
}

/* ---- syscalls ---- */

static long sys_write(uint64_t fd, uint64_t buf, uint64_t n)
{
    char tmp[256];
    if (fd != 1 && fd != 2)
        return -EBADF;
    uint64_t done = 0;
    while (done < n) {
        uint64_t chunk = n - done > sizeof(tmp) ? sizeof(tmp) : n - done;
        if (copy_user(cur.pml4, buf + done, tmp, chunk, 0) < 0)
            return done ? (long)done : -EFAULT;
        for (uint64_t i = 0; i < chunk && cur.len < cur.cap; i++)
            cur.out[cur.len++] = tmp[i];
        done += chunk;
    }
    return (long)n;
}

static void proc_exit(long status) __attribute__((noreturn));
static void proc_exit(long status)
{
    ctx_restore(cur.kctx, 0x100 | (status & 0xff)); /* back to proc_run_test, on the kernel stack */
}

uint64_t syscall_dispatch(struct uregs *r)
{
    long ret;
    switch (r->rax) {
    case 1: /* write */
        ret = sys_write(r->rdi, r->rsi, r->rdx);
        break;
    case 39: /* getpid */
        ret = 1;
        break;
    case 60:  /* exit */
    case 231: /* exit_group */
        proc_exit((long)r->rdi);
    default:
        ret = -ENOSYS;
    }
    r->rax = (uint64_t)ret;
    return (uint64_t)ret;
}

void proc_fault(uint64_t vector)
{
    long sig = vector == 14 || vector == 13 ? 11 : vector == 0 ? 8 : vector == 6 ? 4 : 11;
    proc_exit(128 + sig);
}

int proc_run_test(char *out, uint32_t cap, uint32_t *outlen)
{
    uint64_t entry, phdr, phnum, sp;
    int r;
    cur.out = out;
    cur.cap = cap;
    cur.len = 0;
    if (!(cur.pml4 = pt_new()))
        return -ENOMEM;
    if ((r = elf_load(cur.pml4, user_test_elf, (uint64_t)(user_test_elf_end - user_test_elf), &entry, &phdr, &phnum)) < 0 ||
        (r = build_stack(cur.pml4, entry, phdr, phnum, &sp)) < 0) {
        free_level(cur.pml4, 4);
        return r;
    }
    long v = ctx_save(cur.kctx);
    if (v == 0) {
        cur.active = 1;
        write_cr3(cur.pml4);
        enter_user(entry, sp);
    }
    cur.active = 0;
    write_cr3(LEL_GPA_PML4);
    free_level(cur.pml4, 4);
    *outlen = cur.len;
    return (int)(v & 0xff);
}
