/* An ordinary C program, linked statically against the build machine's glibc (gcc -static),
 * that test_vmm copies into a guest and runs: what users upload is built this way, and glibc's
 * start-up and stdio, malloc (brk and mmap), qsort, time and errno paths use syscalls busybox
 * (musl-like, and older) does not. Prints what it saw; test_vmm compares the lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int main(int argc, char **argv)
{
    const char *g = getenv("GREETING");
    printf("argc=%d argv1=%s env=%s\n", argc, argc > 1 ? argv[1] : "-", g ? g : "-");
    int n = 100000, *v = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        v[i] = (int)((i * 7919L) % 100003);
    qsort(v, (size_t)n, sizeof(int), cmp);
    printf("sorted %d %d\n", v[0], v[n - 1]);
    free(v);
    char *big = malloc(64 << 20); /* beyond glibc's mmap threshold: an anonymous mapping */
    memset(big, 1, 64 << 20);
    printf("big %d\n", big[(64 << 20) - 1]);
    free(big);
    FILE *f = fopen("/tmp/libc.txt", "w");
    fprintf(f, "%.3f %s\n", 3.14159, "pi");
    fclose(f);
    char buf[64] = {0};
    f = fopen("/tmp/libc.txt", "r");
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = 0;
    fclose(f);
    printf("file: %s", buf);
    struct stat st;
    int r = stat("/tmp/libc.txt", &st);
    printf("stat %d size %lld\n", r, (long long)st.st_size);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("year >= 2024: %d\n", tm.tm_year + 1900 >= 2024);
    f = fopen("/nonexistent", "r");
    int e = errno;
    printf("missing: %d %s\n", f == NULL, strerror(e));
    struct rlimit rl;
    r = getrlimit(RLIMIT_STACK, &rl);
    printf("stack limit %d %d\n", r, rl.rlim_cur >= (1 << 20) && rl.rlim_cur <= rl.rlim_max);
    printf("pages %d\n", sysconf(_SC_PHYS_PAGES) > 1000);
    fflush(stdout);
    fprintf(stderr, "to stderr\n");
    return 3;
}
