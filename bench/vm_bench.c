/* Benchmark (not a test): the hypervisor on this machine's /dev/kvm. For guests with 16, 64
 * and 256 MiB touched (256 MiB VMs): boot-to-ready, pause (stop + image + release), resume
 * (restore from the image), snapshot (stop + image + continue) and restore latency, p50/p99
 * over N runs; image size and compression ratio; and the guest's compute speed against the
 * same loop on the host, and the host CPU an idle guest costs. Full images against zstd -1 on
 * all cores over the same memory (and over only its non-zero chunks); diff images over a base. Usage: vm_bench [runs per size, default 100] */
#include "../src/guest/lel_guest_abi.h"
#include "../src/vmm/lel_vmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define MIB (1ULL << 20)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp);
    printf("  %-28s p50 %8.2f ms   p99 %8.2f ms   (n=%d)\n", what, v[n / 2], v[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100], n);
}

static int call(lel_vm_t *vm, uint32_t op, uint64_t a0, uint64_t a1, uint64_t *ret0)
{
    uint64_t arg[4] = {a0, a1, 0, 0}, ret[4] = {0};
    int r = lel_vm_call(vm, op, arg, ret, 60000);
    if (ret0)
        *ret0 = ret[0];
    return r;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "vm_bench: %s: %s\n", what, err);
    exit(1);
}

/* Host CPU time an idle guest costs per second (vCPU thread): with nothing to run it stops its
 * timer; a program asleep (a template's startCmd waiting, say) costs one interrupt per wake-up. */
static void idle_cost(lel_vm_t *vm)
{
    for (int sleeping = 0; sleeping < 2; sleeping++) {
        if (sleeping) {
            const char *argv[] = {"/bin/sh", "-c", "sleep 1000", NULL};
            struct lel_cmd c = {argv, NULL, NULL, NULL, 0, 0, LEL_CMD_BACKGROUND};
            uint32_t id;
            if (lel_vm_cmd_start(vm, &c, &id) != 0)
                die("idle", "cannot start sleep");
        }
        usleep(300000);
        uint64_t c0 = lel_vm_cpu_ns(vm);
        double t0 = now_ms();
        sleep(3);
        double us_per_s = (double)(lel_vm_cpu_ns(vm) - c0) / 1e3 / ((now_ms() - t0) / 1e3);
        printf("idle guest%s: %.0f us host CPU per second (%.3f%% of a core)\n", sleeping ? " with a program asleep" : "",
               us_per_s, us_per_s / 1e4);
    }
}

/* The anchor for full images: zstd level 1 on all cores (ZSTD_c_nbWorkers) over the same guest
 * memory, in memory, and zstd decompressing that back; MB/s of guest memory. */
static void zstd_anchor(lel_vm_t *vm, double *c_mbs, double *d_mbs)
{
    uint64_t n;
    const uint8_t *mem = lel_vm_memory(vm, &n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *dst = malloc(cap), *back = malloc(n);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    double t0 = now_ms();
    size_t z = ZSTD_compress2(c, dst, cap, mem, n);
    double t1 = now_ms();
    size_t d = ZSTD_isError(z) ? 0 : ZSTD_decompress(back, n, dst, z);
    double t2 = now_ms();
    *c_mbs = ZSTD_isError(z) ? 0 : n / 1e3 / (t1 - t0);
    *d_mbs = ZSTD_isError(d) || d != n ? 0 : n / 1e3 / (t2 - t1);
    ZSTD_freeCCtx(c);
    free(dst);
    free(back);
}

/* The stricter anchor: zstd -1 on all cores over only the chunks of the memory that are not
 * zero, gathered (outside the timing) into one buffer; MB/s of those bytes. *nz: their MiB. */
static double zstd_anchor_nonzero(lel_vm_t *vm, int *nz)
{
    uint64_t n, k = 0;
    const uint8_t *mem = lel_vm_memory(vm, &n);
    uint8_t *buf = malloc(n);
    for (uint64_t c = 0; c < n / MIB; c++) {
        const uint64_t *w = (const uint64_t *)(mem + c * MIB);
        size_t i = 0;
        while (i < MIB / 8 && !w[i])
            i++;
        if (i < MIB / 8)
            memcpy(buf + (k++) * MIB, mem + c * MIB, MIB);
    }
    *nz = (int)k;
    size_t cap = ZSTD_compressBound(k * MIB);
    uint8_t *dst = malloc(cap);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, (int)sysconf(_SC_NPROCESSORS_ONLN));
    double t0 = now_ms();
    size_t z = ZSTD_compress2(c, dst, cap, buf, k * MIB);
    double t1 = now_ms();
    ZSTD_freeCCtx(c);
    free(dst);
    free(buf);
    return ZSTD_isError(z) || !k ? 0 : k * MIB / 1e3 / (t1 - t0);
}

/* Diff images: a VM restored over a template-like base (a full image of a booted guest and its
 * raw memory file) touches `mib` MiB; its pause writes only the pages that differ, and its
 * resume maps the base's raw file and applies the diff. Against a restore of the base alone
 * over the same file: the difference is what applying the diff costs (what a lazy apply, by
 * userfaultfd or a mapped uncompressed diff, could at most save). */
static void diff_bench(const char *dir, int runs)
{
    char err[256], base[300], raw[300], diff[300];
    snprintf(base, sizeof(base), "%s/base.img", dir);
    snprintf(raw, sizeof(raw), "%s/base.raw", dir);
    snprintf(diff, sizeof(diff), "%s/diff.img", dir);
    struct lel_vm_config cfg = {256 * MIB, 100, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    lel_vm_t *vm;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0 || lel_vm_stop(vm) < 0 ||
        lel_vm_save(vm, base, NULL, err, sizeof(err)) < 0 || lel_image_unpack_memory(base, raw, err, sizeof(err)) < 0)
        die("diff base", err);
    lel_vm_destroy(vm);
    double *t_write = calloc((size_t)runs, sizeof(double)), *t_restore = calloc((size_t)runs, sizeof(double)),
           *t_base = calloc((size_t)runs, sizeof(double));
    const int sizes[] = {16, 64, 256 - 20};
    printf("diff images over a base of a booted guest (its raw memory file mapped copy-on-write):\n");
    for (int si = 0; si < 3; si++) {
        struct lel_snap_info info = {0};
        for (int i = 0; i < runs; i++) {
            struct lel_vm_config c = cfg;
            c.memory_file = raw;
            double t0 = now_ms();
            if (lel_vm_restore(base, &c, &vm, err, sizeof(err)) < 0)
                die("diff restore base", err);
            t_base[i] = now_ms() - t0;
            uint64_t sum, sum2;
            if (call(vm, LEL_OP_TOUCH, (uint64_t)sizes[si], (uint64_t)i, &sum) != 0 || lel_vm_stop(vm) < 0)
                die("diff touch", "failed");
            t0 = now_ms();
            if (lel_vm_save_diff(vm, diff, &info, err, sizeof(err)) < 0 || !info.diff)
                die("diff save", info.diff ? err : "a full image was written");
            t_write[i] = now_ms() - t0;
            lel_vm_destroy(vm);
            c.memory_file = NULL; /* the restore finds the base's raw file itself */
            c.transient = 1;
            t0 = now_ms();
            if (lel_vm_restore(diff, &c, &vm, err, sizeof(err)) < 0)
                die("diff restore", err);
            t_restore[i] = now_ms() - t0;
            if (call(vm, LEL_OP_CHECKSUM, (uint64_t)sizes[si], 0, &sum2) != 0 || sum2 != sum)
                die("diff verify", "checksum differs after the diff's restore");
            lel_vm_destroy(vm);
        }
        printf("%d MiB touched: diff of %llu pages, %.1f MiB stored\n", sizes[si], (unsigned long long)info.diff_pages,
               info.stored_bytes / (double)MIB);
        report("diff write (pause image)", t_write, runs);
        report("diff restore (resume)", t_restore, runs);
        report("base-only restore", t_base, runs);
        printf("  applying the diff: %.2f ms of the resume's %.2f ms (p50s)\n", t_restore[runs / 2] - t_base[runs / 2],
               t_restore[runs / 2]);
    }
    free(t_write);
    free(t_restore);
    free(t_base);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 100;
    char why[256], err[256], dir[] = "/tmp/lel-vmbench-XXXXXX", img[300], snap[300];
    enum lel_vmm_backend b = lel_vmm_probe(why, sizeof(why));
    if (b == LEL_VMM_NONE) {
        printf("vm_bench: no usable /dev/kvm: %s\n", why);
        return 0;
    }
    if (!mkdtemp(dir))
        die("mkdtemp", "failed");
    snprintf(img, sizeof(img), "%s/pause.img", dir);
    snprintf(snap, sizeof(snap), "%s/snap.img", dir);
    printf("backend %s, %d runs per size, 256 MiB guests, 1 vCPU\n", lel_vmm_backend_name(b), runs);
    double *t_boot = calloc((size_t)runs, sizeof(double)), *t_pause = calloc((size_t)runs, sizeof(double)),
           *t_resume = calloc((size_t)runs, sizeof(double)), *t_snap = calloc((size_t)runs, sizeof(double)),
           *t_restore = calloc((size_t)runs, sizeof(double)), *t_write = calloc((size_t)runs, sizeof(double)),
           *a_c = calloc((size_t)runs, sizeof(double)), *a_d = calloc((size_t)runs, sizeof(double)),
           *a_nz = calloc((size_t)runs, sizeof(double));
    int nz = 0;
    struct lel_vm_config cfg = {256 * MIB, 100, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    const int sizes[] = {16, 64, 256 - 20};
    for (int si = 0; si < 3; si++) {
        int mib = sizes[si];
        struct lel_snap_info info = {0};
        for (int i = 0; i < runs; i++) {
            lel_vm_t *vm;
            double t0 = now_ms();
            if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0)
                die("boot", err);
            if (lel_vm_wait_ready(vm, 10000) < 0)
                die("boot", "not ready");
            t_boot[i] = now_ms() - t0;
            uint64_t sum, sum2;
            if (call(vm, LEL_OP_TOUCH, (uint64_t)mib, (uint64_t)i, &sum) != 0)
                die("touch", "failed");
            t0 = now_ms();
            if (lel_vm_stop(vm) < 0)
                die("pause", "stop");
            double tw = now_ms();
            if (lel_vm_save(vm, img, &info, err, sizeof(err)) < 0)
                die("pause", err);
            t_write[i] = now_ms() - tw;
            lel_vm_destroy(vm);
            t_pause[i] = now_ms() - t0;
            t0 = now_ms();
            if (lel_vm_restore(img, &cfg, &vm, err, sizeof(err)) < 0)
                die("resume", err);
            t_resume[i] = now_ms() - t0;
            t0 = now_ms();
            if (lel_vm_stop(vm) < 0 || lel_vm_save(vm, snap, NULL, err, sizeof(err)) < 0 || lel_vm_cont(vm) < 0)
                die("snapshot", err);
            t_snap[i] = now_ms() - t0;
            if (lel_vm_stop(vm) < 0)
                die("anchor", "stop");
            zstd_anchor(vm, &a_c[i], &a_d[i]);
            a_nz[i] = zstd_anchor_nonzero(vm, &nz);
            lel_vm_cont(vm);
            lel_vm_t *vm2;
            t0 = now_ms();
            if (lel_vm_restore(snap, &cfg, &vm2, err, sizeof(err)) < 0)
                die("restore", err);
            lel_vm_destroy(vm); /* restore = the new VM replaces the old one */
            t_restore[i] = now_ms() - t0;
            if (call(vm2, LEL_OP_CHECKSUM, (uint64_t)mib, 0, &sum2) != 0 || sum2 != sum)
                die("verify", "checksum differs after restore");
            lel_vm_destroy(vm2);
        }
        printf("%d MiB touched: image %.1f MiB of %d MiB guest memory (ratio %.2fx over touched, %llu/%llu chunks zero)\n",
               mib, info.stored_bytes / (double)MIB, 256, (double)mib * MIB / (double)info.stored_bytes,
               (unsigned long long)info.zero_chunks, (unsigned long long)info.chunks);
        report("boot to ready", t_boot, runs);
        report("pause (stop+image+release)", t_pause, runs);
        report("resume (restore image)", t_resume, runs);
        report("snapshot (stop+image+cont)", t_snap, runs);
        report("restore (new VM from image)", t_restore, runs);
        /* full images against zstd -1 on all cores over the same 256 MiB, medians */
        qsort(t_write, (size_t)runs, sizeof(double), cmp);
        qsort(t_resume, (size_t)runs, sizeof(double), cmp);
        qsort(a_c, (size_t)runs, sizeof(double), cmp);
        qsort(a_d, (size_t)runs, sizeof(double), cmp);
        double w = 256.0 * MIB / 1e3 / t_write[runs / 2], rd = 256.0 * MIB / 1e3 / t_resume[runs / 2];
        printf("  full image write %.0f MB/s vs zstd-1 x%ld threads in memory %.0f MB/s: %.2fx (goal >= 0.8x)\n", w,
               sysconf(_SC_NPROCESSORS_ONLN), a_c[runs / 2], a_c[runs / 2] > 0 ? w / a_c[runs / 2] : 0);
        qsort(a_nz, (size_t)runs, sizeof(double), cmp);
        double wnz = nz * (double)MIB / 1e3 / t_write[runs / 2];
        printf("  the same write over its %d non-zero MiB only: %.0f MB/s vs zstd-1 x%ld threads over just those %.0f MB/s: "
               "%.2fx\n", nz, wnz, sysconf(_SC_NPROCESSORS_ONLN), a_nz[runs / 2], a_nz[runs / 2] > 0 ? wnz / a_nz[runs / 2] : 0);
        printf("  full image read (resume) %.0f MB/s vs zstd decompress in memory %.0f MB/s: %.2fx (goal >= 0.8x)\n", rd,
               a_d[runs / 2], a_d[runs / 2] > 0 ? rd / a_d[runs / 2] : 0);
    }
    diff_bench(dir, runs);
    /* compute: the same loop in the guest and here */
    lel_vm_t *vm;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0)
        die("boot", err);
    uint64_t n = 2000000000ULL, gr, hr;
    double t0 = now_ms();
    call(vm, LEL_OP_SPIN, n, 0, &gr);
    double guest = now_ms() - t0;
    t0 = now_ms();
    volatile uint64_t nn = n;
    hr = lel_spin(nn);
    double host = now_ms() - t0;
    printf("compute: %llu xorshift steps: guest %.0f ms, host %.0f ms, guest/host speed %.2f (results %s)\n",
           (unsigned long long)n, guest, host, host / guest, gr == hr ? "equal" : "DIFFER");
    idle_cost(vm);
    lel_vm_destroy(vm);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
