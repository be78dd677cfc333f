/* Streamed commands on the real /dev/kvm, through the host channel as lelantosd uses it: output
 * read while the command runs (a doorbell event says when), flow control (a writer waits while
 * the host has not read, so nothing past 1 MiB is lost), a stdin pipe fed in pieces and closed,
 * and signals (a SIGTERM a shell traps, SIGKILL). Skipped (exit 77) without a usable /dev/kvm. */
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
    pthread_cond_t cond;
    unsigned events;
};

static void on_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (getenv("LEL_VM_VERBOSE"))
        fprintf(stderr, "console: %.*s\n", (int)len, line);
}

static void on_died(void *ctx, const char *why)
{
    (void)ctx;
    fprintf(stderr, "VM died: %s\n", why);
}

static void on_event(void *ctx)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->events++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static const struct lel_vm_ops ops = {on_line, on_died, on_event};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Waits up to `ms` for an event after `seen` (or 50 ms: a poll costs nothing when there is none). */
static unsigned wait_event(struct sink *s, unsigned seen, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&s->lock);
    while (s->events == seen && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    unsigned now = s->events;
    pthread_mutex_unlock(&s->lock);
    return now;
}

/* What a streamed command produced, read as a lelantosd would: on each event, the poll and
 * then the reads; the result at its end. */
struct collected {
    char *out, *err;
    size_t out_len, err_len;
    size_t reads;         /* reads that brought something */
    double first_ms;      /* when the first output came, since the start */
    struct lel_run_result res;
};

static void append(char **buf, size_t *len, lel_vm_t *vm, uint64_t off, uint64_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    lel_vm_bulk_read(vm, off, *buf + *len, n);
    *len += n;
    (*buf)[*len] = 0;
}

static int drain(lel_vm_t *vm, struct sink *s, uint32_t id, double t0, int limit_ms, struct collected *c)
{
    unsigned seen = 0;
    for (double end = now_ms() + limit_ms; now_ms() < end;) {
        seen = wait_event(s, seen, 50);
        struct lel_cmd_ready rd[16];
        size_t n = 0;
        if (lel_vm_cmd_poll(vm, rd, 16, &n) < 0)
            return -EIO;
        for (size_t i = 0; i < n; i++) {
            if (rd[i].id != id || !(rd[i].flags & LEL_POLL_OUTPUT))
                continue;
            uint64_t o, e;
            int ended;
            if (lel_vm_cmd_read(vm, id, &o, &e, &ended) < 0)
                return -EIO;
            if ((o || e) && !c->reads++)
                c->first_ms = now_ms() - t0;
            append(&c->out, &c->out_len, vm, 0, o);
            append(&c->err, &c->err_len, vm, LEL_BULK_HALF, e);
        }
        uint32_t got;
        int r = lel_vm_cmd_result(vm, id, &got, &c->res);
        if (r == 0) {
            append(&c->out, &c->out_len, vm, 0, c->res.out_len);
            append(&c->err, &c->err_len, vm, LEL_BULK_HALF, c->res.err_len);
            return 0;
        }
        if (r != -EAGAIN)
            return r;
    }
    return -ETIMEDOUT;
}

static int start(lel_vm_t *vm, const char *script, unsigned flags, uint32_t *id)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct lel_cmd c = {argv, NULL, NULL, NULL, 0, 60000, flags};
    return lel_vm_cmd_start(vm, &c, id);
}

/* Output arrives while the command runs, and 10 MB arrive whole (the writer waits for the host). */
static void output(lel_vm_t *vm, struct sink *s)
{
    uint32_t id;
    struct collected c = {0};
    double t0 = now_ms();
    CHECK_INT(start(vm, "echo first; sleep 1; echo second >&2; echo third", LEL_CMD_STREAM, &id), 0);
    CHECK_INT(drain(vm, s, id, t0, 20000, &c), 0);
    double total = now_ms() - t0;
    printf("streamed: first output after %.0f ms, end after %.0f ms, %zu reads\n", c.first_ms, total, c.reads);
    /* "first" read a second before the end is the streaming; what follows may come with the end */
    CHECK(c.reads >= 1 && c.first_ms < 800 && total >= 1000);
    CHECK_STR(c.out, "first\nthird\n");
    CHECK_STR(c.err, "second\n");
    CHECK_INT(c.res.exit_status, 0);
    CHECK(!c.res.truncated && !c.res.signaled);
    free(c.out);
    free(c.err);

    /* seq 1 1500000 writes 10.9 MB: it must arrive whole and in order */
    memset(&c, 0, sizeof(c));
    t0 = now_ms();
    CHECK_INT(start(vm, "seq 1 1500000; echo done >&2", LEL_CMD_STREAM, &id), 0);
    CHECK_INT(drain(vm, s, id, t0, 60000, &c), 0);
    double ms = now_ms() - t0;
    size_t want = 0;
    char line[16];
    int ok = 1;
    for (unsigned i = 1; i <= 1500000 && ok; i++) {
        int n = snprintf(line, sizeof(line), "%u\n", i);
        ok = want + (size_t)n <= c.out_len && !memcmp(c.out + want, line, (size_t)n);
        want += (size_t)n;
    }
    printf("seq 1 1500000: %zu bytes in %.0f ms (%.1f MB/s), %zu reads\n", c.out_len, ms, c.out_len / ms / 1e3, c.reads);
    CHECK(ok && c.out_len == want);
    CHECK_STR(c.err, "done\n");
    CHECK(!c.res.truncated);
    free(c.out);
    free(c.err);

    /* a command run as another user: its ids, which its children inherit */
    memset(&c, 0, sizeof(c));
    CHECK_INT(start(vm, "id -u; id -g; sh -c 'id -u'", LEL_CMD_STREAM | LEL_VM_CMD_AS(1000), &id), 0);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK_STR(c.out, "1000\n1000\n1000\n");
    free(c.out);
    free(c.err);

    /* the old way stays for commands that are not streamed: the first 1 MiB, then truncated */
    memset(&c, 0, sizeof(c));
    CHECK_INT(start(vm, "seq 1 500000", 0, &id), 0);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK(c.out_len == MIB && c.res.truncated);
    free(c.out);
    free(c.err);
}

/* Feeds `n` bytes (a pattern) to the command's stdin as the pipe takes them, then closes it. */
static size_t feed(lel_vm_t *vm, struct sink *s, uint32_t id, size_t n, int *calls)
{
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + i % 26);
    size_t off = 0;
    unsigned seen = 0;
    *calls = 0;
    for (double end = now_ms() + 30000; now_ms() < end;) {
        size_t taken = 0;
        int r = lel_vm_cmd_stdin(vm, id, buf + off, n - off, 1, &taken);
        (*calls)++;
        off += taken;
        if (r < 0 || off == n)
            break;
        seen = wait_event(s, seen, 200); /* LEL_POLL_STDIN: room again */
    }
    free(buf);
    return off;
}

static void stdin_pipe(lel_vm_t *vm, struct sink *s)
{
    uint32_t id;
    struct collected c = {0};
    int calls;
    CHECK_INT(start(vm, "wc -c", LEL_CMD_STREAM | LEL_CMD_STDIN_PIPE, &id), 0);
    size_t fed = feed(vm, s, id, 3 * MIB, &calls);
    printf("stdin: %zu bytes in %d writes\n", fed, calls);
    CHECK(fed == 3 * MIB && calls > 1);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK(c.out && strtoul(c.out, NULL, 10) == 3 * MIB);
    free(c.out);
    free(c.err);

    /* a reader that answers line by line while its stdin stays open */
    memset(&c, 0, sizeof(c));
    CHECK_INT(start(vm, "while read l; do echo \"got $l\"; done; echo bye", LEL_CMD_STREAM | LEL_CMD_STDIN_PIPE, &id), 0);
    size_t taken;
    CHECK_INT(lel_vm_cmd_stdin(vm, id, "one\n", 4, 0, &taken), 0);
    unsigned seen = 0;
    for (int i = 0; i < 100 && !(c.out && strstr(c.out, "got one")); i++) {
        seen = wait_event(s, seen, 50);
        uint64_t o, e;
        int ended;
        if (lel_vm_cmd_read(vm, id, &o, &e, &ended) == 0)
            append(&c.out, &c.out_len, vm, 0, o);
    }
    CHECK(c.out && strstr(c.out, "got one\n"));
    CHECK_INT(lel_vm_cmd_stdin(vm, id, "two\n", 4, 1, &taken), 0);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK_STR(c.out, "got one\ngot two\nbye\n");
    CHECK_INT(lel_vm_cmd_stdin(vm, id, "x", 1, 0, &taken), -ENOENT); /* collected: gone */
    free(c.out);
    free(c.err);

    /* a command without a pipe refuses stdin writes */
    CHECK_INT(start(vm, "sleep 0.2", LEL_CMD_STREAM, &id), 0);
    CHECK_INT(lel_vm_cmd_stdin(vm, id, "x", 1, 0, &taken), -EINVAL);
    memset(&c, 0, sizeof(c));
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    free(c.out);
    free(c.err);
}

static void signals(lel_vm_t *vm, struct sink *s)
{
    uint32_t id;
    struct collected c = {0};
    CHECK_INT(start(vm, "trap 'echo terminated; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
                    LEL_CMD_STREAM, &id), 0);
    unsigned seen = 0;
    for (int i = 0; i < 100 && !(c.out && strstr(c.out, "ready")); i++) {
        seen = wait_event(s, seen, 50);
        uint64_t o, e;
        int ended;
        if (lel_vm_cmd_read(vm, id, &o, &e, &ended) == 0)
            append(&c.out, &c.out_len, vm, 0, o);
    }
    CHECK_INT(lel_vm_cmd_signal(vm, id, 15), 0);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK_STR(c.out, "ready\nterminated\n");
    CHECK_INT(c.res.exit_status, 3); /* the trap ran: not a death by signal */
    CHECK(!c.res.signaled);
    free(c.out);
    free(c.err);

    memset(&c, 0, sizeof(c));
    CHECK_INT(start(vm, "sleep 30", LEL_CMD_STREAM, &id), 0);
    CHECK_INT(lel_vm_cmd_signal(vm, id, 15), 0); /* untrapped: SIGTERM ends it */
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK_INT(c.res.exit_status, 128 + 15);
    CHECK(c.res.signaled);
    free(c.out);
    free(c.err);

    memset(&c, 0, sizeof(c));
    CHECK_INT(start(vm, "trap '' TERM; sleep 30", LEL_CMD_STREAM, &id), 0);
    usleep(100000);
    CHECK_INT(lel_vm_cmd_signal(vm, id, 9), 0);
    CHECK_INT(drain(vm, s, id, now_ms(), 20000, &c), 0);
    CHECK_INT(c.res.exit_status, 128 + 9);
    CHECK(c.res.signaled);
    CHECK_INT(lel_vm_cmd_signal(vm, id, 15), -ENOENT);
    free(c.out);
    free(c.err);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256], err[256];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    struct sink s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct lel_vm_config cfg = {.mem_bytes = 256 * MIB, .tick_hz = 100, .ops = &ops, .ctx = &s};
    lel_vm_t *vm = NULL;
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0) {
        fprintf(stderr, "boot: %s\n", err);
        CHECK(0);
        if (vm)
            lel_vm_destroy(vm);
        return lel_test_finish();
    }
    if (getenv("LEL_STREAM_SH")) { /* a measuring aid: stream one command, report its rate */
        uint32_t id;
        struct collected c = {0};
        double t0 = now_ms();
        int r = start(vm, getenv("LEL_STREAM_SH"), LEL_CMD_STREAM, &id);
        r = r ? r : drain(vm, &s, id, t0, 120000, &c);
        double ms = now_ms() - t0;
        printf("%d: %zu bytes out, %zu err in %.0f ms (%.1f MB/s), %zu reads\n", r, c.out_len, c.err_len, ms,
               (c.out_len + c.err_len) / ms / 1e3, c.reads);
        lel_vm_destroy(vm);
        return r ? 1 : 0;
    }
    output(vm, &s);
    stdin_pipe(vm, &s);
    signals(vm, &s);
    lel_vm_destroy(vm);
    return lel_test_finish();
}
