/* Benchmark (not a test): where a command's round trip goes below the sandbox actor, on this
 * machine's /dev/kvm. Boots a 256 MiB guest and times, p50/p99 over N runs: a bare host-channel
 * request (PING: an interrupt in, a doorbell out, the caller woken); a command (default
 * `/bin/sh -c true`) split into its start request, start -> the guest's end event, and the
 * result request; the same whole as lel_vm_run does it; and posix_spawn+wait of the same
 * argv on the host (the anchor). Prints the vCPU thread's CPU time per PING and per command:
 * on a loaded machine the wall times swell, the CPU times much less.
 * Usage: chan_bench [runs, default 500] [argv...] */
#include "../src/guest/lel_guest_abi.h"
#include "../src/vmm/lel_vmm.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp);
    printf("  %-30s p50 %8.1f us   p99 %8.1f us   (n=%d)\n", what, v[n / 2], v[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100], n);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned events;

static void on_event(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&lock);
    events++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "chan_bench: %s: %s\n", what, err);
    exit(1);
}

static void *xcalloc(int n)
{
    void *p = calloc((size_t)n, sizeof(double));
    if (!p)
        die("calloc", "out of memory");
    return p;
}

/* One command started, waited for by its event, collected: the three parts into s, e, r. */
static void one_cmd(lel_vm_t *vm, const char *const *argv, double *s, double *e, double *r)
{
    struct lel_cmd c = {argv, NULL, NULL, NULL, 0, 60000, 0};
    struct lel_run_result res;
    uint32_t id, got;
    pthread_mutex_lock(&lock);
    unsigned seen = events;
    pthread_mutex_unlock(&lock);
    double t0 = now_us();
    if (lel_vm_cmd_start(vm, &c, &id) != 0)
        die("cmd", "start failed");
    double t1 = now_us();
    pthread_mutex_lock(&lock);
    while (events == seen)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    double t2 = now_us();
    if (lel_vm_cmd_result(vm, id, &got, &res) != 0 || got != id)
        die("cmd", "result failed");
    *s = t1 - t0;
    *e = t2 - t1;
    *r = now_us() - t2;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 500;
    char why[256], err[256];
    if (runs < 1)
        runs = 1;
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("chan_bench: no usable /dev/kvm: %s\n", why);
        return 0;
    }
    static const struct lel_vm_ops ops = {NULL, NULL, on_event};
    struct lel_vm_config cfg = {256ULL << 20, 100, &ops, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    lel_vm_t *vm;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0)
        die("boot", err);
    static const char *const shd[] = {"/bin/sh", "-c", "true", NULL};
    const char *const *cmd = argc > 2 ? (const char *const *)argv + 2 : shd;
    double *ping = xcalloc(runs), *start = xcalloc(runs), *ended = xcalloc(runs), *result = xcalloc(runs),
           *whole = xcalloc(runs), *host = xcalloc(runs), *run = xcalloc(runs);
    uint64_t c0 = lel_vm_cpu_ns(vm);
    for (int i = 0; i < runs; i++) {
        uint64_t arg[4] = {(uint64_t)i, 0, 0, 0}, ret[4];
        double t0 = now_us();
        if (lel_vm_call(vm, LEL_OP_PING, arg, ret, 5000) != 0 || ret[0] != (uint64_t)i + 1)
            die("ping", "no answer");
        ping[i] = now_us() - t0;
    }
    double ping_cpu = (double)(lel_vm_cpu_ns(vm) - c0) / 1e3 / runs;
    c0 = lel_vm_cpu_ns(vm);
    for (int i = 0; i < runs; i++) {
        one_cmd(vm, cmd, &start[i], &ended[i], &result[i]);
        whole[i] = start[i] + ended[i] + result[i];
    }
    double cmd_cpu = (double)(lel_vm_cpu_ns(vm) - c0) / 1e3 / runs;
    for (int i = 0; i < runs; i++) {
        struct lel_run_result res;
        double t0 = now_us();
        if (lel_vm_run(vm, cmd, NULL, NULL, NULL, 0, 60000, &res) != 0)
            die("run", "failed");
        run[i] = now_us() - t0;
    }
    for (int i = 0; i < runs; i++) {
        pid_t pid;
        int st;
        double t0 = now_us();
        if (posix_spawn(&pid, cmd[0], NULL, NULL, (char *const *)cmd, environ) != 0 || waitpid(pid, &st, 0) < 0)
            die("host", "spawn failed");
        host[i] = now_us() - t0;
    }
    printf("host channel and commands (%s ...), 256 MiB guest, %d runs\n", cmd[0], runs);
    report("PING request", ping, runs);
    report("cmd: start request", start, runs);
    report("cmd: start -> end event", ended, runs);
    report("cmd: result request", result, runs);
    report("cmd: whole", whole, runs);
    report("lel_vm_run", run, runs);
    report("host: posix_spawn+wait", host, runs);
    printf("  vCPU thread CPU: %.1f us per PING, %.1f us per command\n", ping_cpu, cmd_cpu);
    lel_vm_destroy(vm);
    return 0;
}
