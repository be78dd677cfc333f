/* tests/vm/guest_linux: see guest_linux.h. With arguments, only the sections named run. */
#include "guest_linux.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int failed;

void say(const char *name, int ok, long value)
{
    if (ok)
        printf("%s ok\n", name);
    else
        printf("%s FAIL %ld\n", name, value);
    fflush(stdout);
    failed |= !ok;
}

long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct {
    const char *name;
    void (*run)(void);
} sections[] = {
    {"time", time_checks},
    {"files", file_checks},
    {"pgrp", pgrp_checks},
    {"shm", shm_checks},
    {"mem", mem_checks},
    {"sig", sig_checks},
    {"ident", ident_checks},
    {"xfer", xfer_checks},
    {"watch", watch_checks},
    {"pty", pty_checks},
    {"net", net_checks},
    {"bind", bind_checks},
    {"futex", futex_checks},
    {"fork", fork_checks},
    {"sched", sched_checks},
    {"regr", regr_checks},
    {"xattr", xattr_checks},
    {"suite", suite_checks},
    {"bench", bench_run}, /* only when named: a measurement (guest_linux_bench.c) */
};

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
        int wanted = argc < 2 && sections[i].run != bench_run;
        for (int a = 1; a < argc; a++)
            wanted |= !strcmp(argv[a], sections[i].name);
        if (wanted)
            sections[i].run();
    }
    return failed;
}
