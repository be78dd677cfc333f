/* Store: records round-trip through msgpack, batches are atomic, scans respect prefixes,
 * everything survives close and reopen. */
#include "../../src/store/lel_store.h"
#include "../lel_test.h"

#include <errno.h>
#include <stdlib.h>

static int count_cb(void *ctx, const char *key, json_t *v)
{
    (void)key;
    (void)v;
    (*(int *)ctx)++;
    return 0;
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
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
