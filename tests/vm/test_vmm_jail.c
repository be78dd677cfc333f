/* The vCPU thread's jail and guests that lie on the channel, on the real /dev/kvm:
 * - a jailed VM does its normal work (commands, stop, save, restore);
 * - a vCPU thread that makes a forbidden call (the test hook: socket at a command's end) loses
 *   its VM with the call's name as the reason, while another VM in the process goes on; the
 *   same hook without the jail changes nothing (so the filter is what stopped it);
 * - a guest that floods the doorbell with valid-looking bells, one that never answers, and one
 *   that answers with stale and future sequence numbers harm only themselves: their calls time
 *   out or get the true answer, a bystander VM answers meanwhile, destroy works.
 * Skipped (exit 77) with the reason when /dev/kvm is unusable. */
#include "../../src/guest/lel_guest_abi.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ULL << 20)

struct sink {
    pthread_mutex_t lock;
    int events;
    char died[200];
};

static void on_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (getenv("LEL_VM_VERBOSE"))
        fprintf(stderr, "console: %.*s\n", (int)len, line);
}

static void on_died(void *ctx, const char *why)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    snprintf(s->died, sizeof(s->died), "%s", why);
    pthread_mutex_unlock(&s->lock);
}

static void on_event(void *ctx)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->events++;
    pthread_mutex_unlock(&s->lock);
}

static const struct lel_vm_ops ops = {on_line, on_died, on_event};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static lel_vm_t *boot(struct sink *s, int unjailed, int violation)
{
    char err[256];
    struct lel_vm_config cfg = {64 * MIB, 100, &ops, s, NULL, NULL, 0, 0, 0, unjailed, violation, NULL};
    lel_vm_t *vm = NULL;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0) {
        fprintf(stderr, "boot: %s\n", err);
        return NULL;
    }
    if (lel_vm_wait_ready(vm, 10000) < 0) {
        fprintf(stderr, "not ready: %s\n", s->died);
        lel_vm_destroy(vm);
        return NULL;
    }
    return vm;
}

static int ping(lel_vm_t *vm, uint64_t v, int timeout_ms)
{
    uint64_t arg[4] = {v, 0, 0, 0}, ret[4] = {0};
    int r = lel_vm_call(vm, LEL_OP_PING, arg, ret, timeout_ms);
    return r == 0 && ret[0] == v + 1 ? 0 : r == 0 ? -EBADMSG : r;
}

static int run_true(lel_vm_t *vm, struct lel_run_result *res)
{
    const char *argv[] = {"/bin/sh", "-c", "echo jailed", NULL};
    return lel_vm_run(vm, argv, NULL, NULL, NULL, 0, 5000, res);
}

/* The allow-list is enough for what a VM does: commands (their end rings an event), output,
 * a stop, a save, a restore (a second jailed vCPU thread) and a continue. */
static void jailed_works(const char *dir)
{
    struct sink s = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    lel_vm_t *vm = boot(&s, 0, 0);
    CHECK(vm != NULL);
    if (!vm)
        return;
    struct lel_run_result res;
    for (int i = 0; i < 5; i++) {
        CHECK_INT(run_true(vm, &res), 0);
        CHECK_INT(res.exit_status, 0);
    }
    char img[300], err[256], out[64] = "";
    snprintf(img, sizeof(img), "%s/jail.img", dir);
    CHECK_INT(lel_vm_stop(vm), 0);
    CHECK_INT(lel_vm_save(vm, img, NULL, err, sizeof(err)), 0);
    CHECK_INT(lel_vm_cont(vm), 0);
    lel_vm_t *r = NULL;
    struct lel_vm_config cfg = {64 * MIB, 100, &ops, &s, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    CHECK_INT(lel_vm_restore(img, &cfg, &r, err, sizeof(err)), 0);
    if (r) {
        CHECK_INT(lel_vm_set_clock(r), 0);
        CHECK_INT(run_true(r, &res), 0);
        lel_vm_bulk_read(r, 0, out, res.out_len < sizeof(out) - 1 ? res.out_len : sizeof(out) - 1);
        CHECK(strncmp(out, "jailed", 6) == 0);
        lel_vm_destroy(r);
    }
    CHECK_INT(ping(vm, 7, 5000), 0);
    printf("jailed VM: commands, stop, save, restore, continue: '%s' died '%s'\n", out, s.died);
    CHECK_STR(s.died, "");
    lel_vm_destroy(vm);
}

static void forbidden_call(void)
{
    struct sink by = {PTHREAD_MUTEX_INITIALIZER, 0, ""}, bad = {PTHREAD_MUTEX_INITIALIZER, 0, ""},
                free_ = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    lel_vm_t *bystander = boot(&by, 0, 0), *vm = boot(&bad, 0, 1), *unjailed = boot(&free_, 1, 1);
    CHECK(bystander && vm && unjailed);
    if (!bystander || !vm || !unjailed) {
        lel_vm_destroy(bystander), lel_vm_destroy(vm), lel_vm_destroy(unjailed);
        return;
    }
    struct lel_run_result res;
    int r = run_true(vm, &res); /* its end's doorbell makes the vCPU thread call socket() */
    double t0 = now_ms();
    while (!*bad.died && now_ms() - t0 < 5000)
        usleep(1000);
    printf("forbidden call: run -> %d, died: '%s'\n", r, bad.died);
    CHECK(strstr(bad.died, "forbidden system call: socket") != NULL);
    CHECK_INT(ping(vm, 1, 1000), -EPIPE);
    CHECK(strstr(lel_vm_why(vm), "seccomp") != NULL);
    /* the process and the other VMs go on */
    CHECK_INT(ping(bystander, 41, 5000), 0);
    CHECK_INT(run_true(bystander, &res), 0);
    CHECK_STR(by.died, "");
    /* without the jail the same hook opens (and closes) a socket and the VM lives */
    CHECK_INT(run_true(unjailed, &res), 0);
    CHECK_INT(res.exit_status, 0);
    CHECK_INT(ping(unjailed, 3, 5000), 0);
    CHECK_STR(free_.died, "");
    lel_vm_destroy(vm);
    lel_vm_destroy(bystander);
    lel_vm_destroy(unjailed);
}

/* The bystander's worst ping while the other guest misbehaves. */
static double bystander_worst(lel_vm_t *by, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        if (ping(by, (uint64_t)i, 5000) != 0)
            return 1e9;
        double ms = now_ms() - t0;
        worst = ms > worst ? ms : worst;
    }
    return worst;
}

static void liars(void)
{
    struct sink by = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    lel_vm_t *bystander = boot(&by, 0, 0);
    CHECK(bystander != NULL);
    if (!bystander)
        return;
    /* floods the doorbell: RESPONSE and EVENT bells, none of them an answer */
    struct sink s = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
    lel_vm_t *vm = boot(&s, 0, 0);
    CHECK(vm != NULL);
    if (vm) {
        uint64_t arg[4] = {LEL_BAD_BELL_FLOOD, 0, 0, 0}, ret[4] = {0};
        double t0 = now_ms();
        int r = lel_vm_call(vm, LEL_OP_MISBEHAVE, arg, ret, 1000);
        double took = now_ms() - t0, worst = bystander_worst(bystander, 50);
        pthread_mutex_lock(&s.lock);
        int events = s.events;
        pthread_mutex_unlock(&s.lock);
        printf("doorbell flood: call -> %d after %.0f ms, %d event bells, bystander's worst ping %.2f ms\n", r, took,
               events, worst);
        CHECK_INT(r, -ETIMEDOUT);
        CHECK(took < 3000);
        CHECK(worst < 1000);
        CHECK_INT(ping(vm, 1, 300), -ETIMEDOUT); /* the flooder never took the next request */
        t0 = now_ms();
        lel_vm_destroy(vm);
        printf("  destroyed in %.1f ms\n", now_ms() - t0);
    }
    /* never answers, but goes on running */
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.lock, NULL);
    vm = boot(&s, 0, 0);
    CHECK(vm != NULL);
    if (vm) {
        uint64_t arg[4] = {LEL_BAD_SILENT, 0, 0, 0};
        double t0 = now_ms();
        CHECK_INT(lel_vm_call(vm, LEL_OP_MISBEHAVE, arg, NULL, 500), -ETIMEDOUT);
        double took = now_ms() - t0;
        /* the unanswered request may still be in its hands: nothing is written over it */
        CHECK_INT(ping(vm, 1, 300), -ETIMEDOUT);
        double worst = bystander_worst(bystander, 20);
        printf("silent guest: call timed out after %.0f ms, bystander's worst ping %.2f ms\n", took, worst);
        CHECK(took >= 450 && took < 2000);
        CHECK(worst < 1000);
        CHECK_STR(s.died, "");
        lel_vm_destroy(vm);
    }
    /* answers out of order: a stale sequence number, a future one, then the true answer */
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.lock, NULL);
    vm = boot(&s, 0, 0);
    CHECK(vm != NULL);
    if (vm) {
        uint64_t arg[4] = {LEL_BAD_OUT_OF_ORDER, 0, 0, 0}, ret[4] = {0};
        int r = lel_vm_call(vm, LEL_OP_MISBEHAVE, arg, ret, 10000);
        printf("out-of-order answers: call -> %d, ret[0] 0x%llx\n", r, (unsigned long long)ret[0]);
        CHECK_INT(r, 0);
        CHECK(ret[0] == 0x600d); /* never the stale or the future answer's 0xbad */
        CHECK_INT(ping(vm, 9, 5000), 0);
        CHECK_STR(s.died, "");
        lel_vm_destroy(vm);
    }
    CHECK_INT(ping(bystander, 5, 5000), 0);
    CHECK_STR(by.died, "");
    lel_vm_destroy(bystander);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256], dir[] = "/tmp/lel-jail-XXXXXX";
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (!mkdtemp(dir))
        return 1;
    jailed_works(dir);
    forbidden_call();
    liars();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return lel_test_finish();
}
