/* Address space: reservations larger than 4 GiB (V8 reserves ~10 GiB of PROT_NONE space for a
 * WebAssembly memory, more for its heap cage), which cost nothing until touched, made
 * accessible in parts, and given back quickly. */
#include "guest_linux.h"

#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
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

/* /proc/self/stat's minflt (its 10th field), -1 when unreadable. */
static long stat_minflt(void)
{
    char b[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(b, 1, sizeof(b) - 1, f) : 0;
    if (f)
        fclose(f);
    b[n] = 0;
    char *p = strrchr(b, ')'); /* after the name, which may hold spaces */
    long v[8] = {0};
    return p && sscanf(p + 2, "%*c %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7 ? v[6] : -1;
}

/* Page faults are counted as minor faults: a child touching 4 MiB of lazy memory shows them in
 * its parent's RUSAGE_CHILDREN, and a process's own in RUSAGE_SELF and /proc/self/stat. */
static void fault_counts(void)
{
    struct rusage a, b, self;
    getrusage(RUSAGE_CHILDREN, &a);
    pid_t c = fork();
    if (c == 0) {
        char *m = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (size_t i = 0; m != MAP_FAILED && i < (4 << 20); i += 4096)
            m[i] = 1;
        _exit(m == MAP_FAILED);
    }
    int st = -1;
    waitpid(c, &st, 0);
    getrusage(RUSAGE_CHILDREN, &b);
    say("a child's page faults in RUSAGE_CHILDREN's ru_minflt", st == 0 && b.ru_minflt - a.ru_minflt >= 2, b.ru_minflt - a.ru_minflt);
    char *m = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; m != MAP_FAILED && i < (4 << 20); i += 4096)
        m[i] = 1;
    getrusage(RUSAGE_SELF, &self);
    long in_stat = stat_minflt();
    if (m != MAP_FAILED)
        munmap(m, 4 << 20);
    say("RUSAGE_SELF's ru_minflt, /proc/self/stat's minflt", self.ru_minflt > 0 && in_stat >= self.ru_minflt, in_stat);
}

void mem_checks(void)
{
    fault_counts();
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
