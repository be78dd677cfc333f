/* Address space: reservations larger than 4 GiB (V8 reserves ~10 GiB of PROT_NONE space for a
 * WebAssembly memory, more for its heap cage), which cost nothing until touched, made
 * accessible in parts, and given back quickly. */
#include "guest_linux.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define GIB (1UL << 30)

static long free_mib(void)
{
    struct sysinfo si;
    sysinfo(&si);
    return (long)(si.freeram * si.mem_unit >> 20);
}

/* Not a speed target (bench/ has those): a bound that only a walk over every page of the range
 * (16 million for 64 GiB) would pass, loose enough for a loaded machine. */
#define QUICK_MS 2000

void mem_checks(void)
{
    long before = free_mib(), t0 = mono_ms();
    char *r = mmap(NULL, 64 * GIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    long took = mono_ms() - t0;
    say("a 64 GiB PROT_NONE reservation", r != MAP_FAILED && took < QUICK_MS, r == MAP_FAILED ? errno : took);
    if (r == MAP_FAILED)
        return;
    char *part = r + 10 * GIB + 12345 * 4096UL;
    int ok = mprotect(part, 1 << 20, PROT_READ | PROT_WRITE) == 0;
    if (ok) {
        memset(part, 7, 1 << 20);
        ok = part[(1 << 20) - 1] == 7 && part[0] == 7;
    }
    say("a part of it made accessible", ok, errno);
    say("the reservation costs no memory", before - free_mib() < 16, before - free_mib());
    t0 = mono_ms();
    int u = munmap(r, 64 * GIB);
    took = mono_ms() - t0;
    say("and goes quickly", u == 0 && took < QUICK_MS, u ? errno : took);
    t0 = mono_ms();
    char *w = mmap(NULL, 16 * GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (w != MAP_FAILED) {
        w[15 * GIB] = 1;
        w[3] = 2;
    }
    say("16 GiB MAP_NORESERVE, touched in two places", w != MAP_FAILED && w[15 * GIB] == 1 && before - free_mib() < 16,
        w == MAP_FAILED ? errno : before - free_mib());
    if (w != MAP_FAILED)
        munmap(w, 16 * GIB);
    took = mono_ms() - t0;
    say("in no time", took < 200, took);
    struct sysinfo si;
    sysinfo(&si);
    unsigned long more = 2 * (si.totalram + si.totalswap) * si.mem_unit;
    void *huge = mmap(NULL, more, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    say("twice the memory, counted, ENOMEM", huge == MAP_FAILED && errno == ENOMEM, errno);
}
