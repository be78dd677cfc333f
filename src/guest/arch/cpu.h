/* x86 instructions the guest kernel uses, as inline functions. Under PVM the privileged ones
 * trap and are emulated (2-7 us each), so hot paths avoid them. */
#ifndef LEL_GUEST_CPU_H
#define LEL_GUEST_CPU_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}

#define CPU_MSR_FS_BASE 0xc0000100

/* What the kernel last wrote to FS_BASE and CR3 (cpu_fs_known: whether FS_BASE was written
 * yet; cpu_cr3 is read once at boot, arch.c). Under PVM every wrmsr, rdmsr and CR3 access is
 * a trap of several microseconds, and a process switch did four of them: the kernel is the
 * only writer of both (user code is not told of FSGSBASE: no AT_HWCAP2), so it remembers them
 * and skips a write of what is already there. Owned by arch.c; single CPU. */
extern uint64_t cpu_fs_base, cpu_cr3;
extern int cpu_fs_known;

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    if (msr == CPU_MSR_FS_BASE) { /* a constant at every call: folded away for the other MSRs */
        if (cpu_fs_known && cpu_fs_base == v)
            return;
        cpu_fs_base = v;
        cpu_fs_known = 1;
    }
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline uint64_t rdmsr(uint32_t msr)
{
    if (msr == CPU_MSR_FS_BASE && cpu_fs_known)
        return cpu_fs_base;
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t)hi << 32 | lo;
}

/* Loads the page tables at `v` unless they are the ones loaded: a switch of address space.
 * Entries changed in the loaded tables need invlpg or cr3_reload, as on hardware. */
static inline void write_cr3(uint64_t v)
{
    if (v == cpu_cr3)
        return;
    __asm__ volatile("mov %0, %%cr3" ::"r"(v) : "memory");
    cpu_cr3 = v;
}

/* Reloads the loaded page tables: flushes the TLB (under PVM, resynchronises the shadow page
 * tables) after many entries changed at once. */
static inline void cr3_reload(void)
{
    __asm__ volatile("mov %0, %%cr3" ::"r"(cpu_cr3) : "memory");
}

/* The faulting address of the last page fault. Under PVM the read traps and is emulated. */
static inline uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

#endif
