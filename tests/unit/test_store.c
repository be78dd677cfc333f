/* Store: records round-trip through msgpack, batches are atomic, scans respect prefixes,
 * everything survives close and reopen. */
#include "../../src/store/lel_store.h"
#include "../lel_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static int count_cb(void *ctx, const char *key, json_t *v)
{
    (void)key;
    (void)v;
    (*(int *)ctx)++;
    return 0;
}

/* Group commit: writers on several threads; each done callback comes exactly once, after the
 * write is readable; what was told durable is there after close and reopen. */
static atomic_int done_ok, done_bad;

static void on_done(void *arg, int r)
{
    atomic_int *once = arg;
    if (r == 0 && atomic_fetch_add(once, 1) == 0)
        atomic_fetch_add(&done_ok, 1);
    else
        atomic_fetch_add(&done_bad, 1);
}

struct writer {
    lel_store_t *st;
    int id;
    atomic_int once[20];
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    json_t *v = json_pack("{s:i}", "w", w->id);
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof(k), "g/%d/%02d", w->id, i);
        lel_batch_t *b = lel_batch_new(w->st);
        lel_batch_put(b, LEL_CF_EVENTS, k, v);
        lel_store_write_async(w->st, b, on_done, &w->once[i]);
    }
    json_decref(v);
    return NULL;
}

static void group_commit(const char *dir)
{
    lel_store_t *st;
    char err[256];
    static struct writer w[8];
    pthread_t th[8];
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    for (int i = 0; i < 8; i++) {
        w[i].st = st;
        w[i].id = i;
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 500 && atomic_load(&done_ok) + atomic_load(&done_bad) < 160; i++)
        usleep(10000);
    CHECK_INT(atomic_load(&done_ok), 160);
    CHECK_INT(atomic_load(&done_bad), 0);
    int n = 0;
    lel_store_scan(st, LEL_CF_EVENTS, "g/", NULL, count_cb, &n);
    CHECK_INT(n, 160);
    lel_batch_t *b = lel_batch_new(st); /* one more, then close at once: close waits for its sync */
    json_t *v = json_pack("{s:i}", "last", 1);
    lel_batch_put(b, LEL_CF_EVENTS, "g/last", v);
    json_decref(v);
    atomic_int once = 0;
    lel_store_write_async(st, b, on_done, &once);
    lel_store_close(st);
    CHECK_INT(atomic_load(&once), 1);
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    n = 0;
    lel_store_scan(st, LEL_CF_EVENTS, "g/", NULL, count_cb, &n);
    CHECK_INT(n, 161);
    lel_store_close(st);
}

int main(void)
{
    char dir[] = "/tmp/lel-store-XXXXXX", err[256], cmd[300];
    mkdtemp(dir);
    lel_store_t *st;
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    json_t *v = json_pack("{s:s, s:i}", "name", "x", "n", 5), *got;
    CHECK(lel_store_put(st, LEL_CF_TEAMS, "t1", v) == 0);
    CHECK(lel_store_get(st, LEL_CF_TEAMS, "t1", &got) == 0);
    CHECK(json_equal(v, got));
    json_decref(got);
    CHECK(lel_store_get(st, LEL_CF_TEAMS, "t2", &got) == -ENOENT);
    CHECK(lel_store_get(st, LEL_CF_KEYS, "t1", &got) == -ENOENT); /* column families are separate */

    lel_batch_t *b = lel_batch_new(st);
    for (int i = 0; i < 10; i++) {
        char k[32];
        snprintf(k, sizeof(k), "sb/%02d", i);
        lel_batch_put(b, LEL_CF_EVENTS, k, v);
    }
    lel_batch_put(b, LEL_CF_EVENTS, "sc/00", v);
    lel_batch_put(b, LEL_CF_EVENTS, "sa/00", v);
    CHECK(lel_store_write(st, b) == 0);
    int n = 0;
    CHECK(lel_store_scan(st, LEL_CF_EVENTS, "sb/", NULL, count_cb, &n) == 0);
    CHECK_INT(n, 10);
    n = 0;
    CHECK(lel_store_scan(st, LEL_CF_EVENTS, "sb/", "sb/04", count_cb, &n) == 0);
    CHECK_INT(n, 5);
    b = lel_batch_new(st);
    lel_batch_del_prefix(b, LEL_CF_EVENTS, "sb/");
    lel_batch_del(b, LEL_CF_TEAMS, "t1");
    CHECK(lel_store_write(st, b) == 0);
    n = 0;
    lel_store_scan(st, LEL_CF_EVENTS, "", NULL, count_cb, &n);
    CHECK_INT(n, 2);
    lel_store_put(st, LEL_CF_TEAMS, "t3", v);
    lel_store_close(st);

    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    CHECK(lel_store_get(st, LEL_CF_TEAMS, "t3", &got) == 0);
    CHECK(json_equal(v, got));
    json_decref(got);
    CHECK(lel_store_get(st, LEL_CF_TEAMS, "t1", &got) == -ENOENT);
    /* a second process (or opener) cannot open the same DB */
    lel_store_t *st2;
    CHECK(lel_store_open(dir, 1, &st2, err, sizeof(err)) < 0);
    lel_store_close(st);
    json_decref(v);
    group_commit(dir);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
