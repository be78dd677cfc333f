/* The etcd client (src/cluster/lel_etcd.c) against a real 3-member etcd on loopback: KV, txn
 * comparisons, leases (renewal, revoke, expiry), watches (events, stop, compaction), fail-over
 * and quorum loss. Skipped (77) where Debian's etcd-server is not installed. */
#include "../lel_test.h"
#include "../e2e/etcdrun.h"
#include "../../src/cluster/lel_etcd.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static struct etcd_cluster C;
static char err[512];

static lel_etcd_t *client(int first, int n, long timeout_ms)
{
    char *eps[ETCD_MAX + 1];
    int k = 0;
    for (int i = first; i < first + n; i++)
        eps[k++] = C.m[i % C.n].url;
    struct lel_etcd_opts o = {.endpoints = eps, .nendpoints = (size_t)k, .timeout_ms = timeout_ms};
    lel_etcd_t *e = NULL;
    CHECK(lel_etcd_new(&o, &e) == 0);
    return e;
}

static void kv(lel_etcd_t *e)
{
    int64_t rev = 0, rev2 = 0, del = 0;
    static const char bin[] = {'a', 0, 'b', (char)0xff};
    CHECK_INT(lel_etcd_put(e, "/t/a", "one", 3, 0, &rev, err, sizeof(err)), 0);
    CHECK(rev > 0);
    CHECK_INT(lel_etcd_put(e, "/t/b", bin, sizeof(bin), 0, &rev2, err, sizeof(err)), 0);
    CHECK(rev2 == rev + 1);
    CHECK_INT(lel_etcd_put(e, "/u", "x", 1, 0, NULL, err, sizeof(err)), 0);
    struct lel_etcd_range r;
    CHECK_INT(lel_etcd_range(e, "/t/a", 0, 0, 0, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 1);
    CHECK(r.n == 1 && r.kvs[0].len == 3 && !strcmp(r.kvs[0].value, "one") && r.kvs[0].mod_rev == rev);
    CHECK(r.revision >= rev2);
    lel_etcd_range_free(&r);
    CHECK_INT(lel_etcd_range(e, "/t/", 1, 0, 0, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 2);
    CHECK(r.n == 2 && !strcmp(r.kvs[1].key, "/t/b") && r.kvs[1].len == sizeof(bin) && !memcmp(r.kvs[1].value, bin, 4));
    lel_etcd_range_free(&r);
    CHECK_INT(lel_etcd_range(e, "/t/", 1, 1, 1, &r, err, sizeof(err)), 0); /* limit, serializable */
    CHECK(r.n == 1 && r.more);
    lel_etcd_range_free(&r);
    CHECK_INT(lel_etcd_range(e, "/nothing", 0, 0, 0, &r, err, sizeof(err)), 0); /* only a header comes back */
    CHECK(r.n == 0 && r.kvs == NULL && r.revision > 0);
    lel_etcd_range_free(&r);
    CHECK_INT(lel_etcd_delete(e, "/t/", 1, &del, err, sizeof(err)), 0);
    CHECK_INT(del, 2);
    CHECK_INT(lel_etcd_range(e, "/", 1, 0, 0, &r, err, sizeof(err)), 0);
    CHECK(r.n == 1 && !strcmp(r.kvs[0].key, "/u"));
    lel_etcd_range_free(&r);
    char end[8];
    size_t elen;
    lel_etcd_prefix_end("a\xff", end, &elen);
    CHECK(elen == 1 && end[0] == 'b');
}

static void txn(lel_etcd_t *e)
{
    int64_t rev = 0, rev2 = 0;
    struct lel_etcd_cmp absent = {.key = "/x/k", .create = 1, .rev = 0};
    struct lel_etcd_op put = {.type = LEL_ETCD_PUT, .key = "/x/k", .val = "v1", .len = 2};
    struct lel_etcd_op put2 = {.type = LEL_ETCD_PUT, .key = "/x/j", .val = "j", .len = 1};
    struct lel_etcd_op both[] = {put, put2};
    CHECK_INT(lel_etcd_txn(e, &absent, 1, both, 2, &rev, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_txn(e, &absent, 1, &put, 1, NULL, err, sizeof(err)), -ECANCELED); /* exists now */
    struct lel_etcd_cmp cas = {.key = "/x/k", .rev = rev};
    struct lel_etcd_op upd = {.type = LEL_ETCD_PUT, .key = "/x/k", .val = "v2", .len = 2};
    CHECK_INT(lel_etcd_txn(e, &cas, 1, &upd, 1, &rev2, err, sizeof(err)), 0);
    CHECK(rev2 > rev);
    CHECK_INT(lel_etcd_txn(e, &cas, 1, &upd, 1, NULL, err, sizeof(err)), -ECANCELED); /* stale revision */
    struct lel_etcd_range r;
    CHECK_INT(lel_etcd_range(e, "/x/k", 0, 0, 0, &r, err, sizeof(err)), 0);
    CHECK(r.n == 1 && !strcmp(r.kvs[0].value, "v2") && r.kvs[0].mod_rev == rev2 && r.kvs[0].version == 2);
    lel_etcd_range_free(&r);
    struct lel_etcd_op dup[] = {put, put}; /* one key twice: etcd refuses */
    CHECK_INT(lel_etcd_txn(e, NULL, 0, dup, 2, NULL, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "duplicate") != NULL);
    struct lel_etcd_op delp = {.type = LEL_ETCD_DEL_PREFIX, .key = "/x/"};
    CHECK_INT(lel_etcd_txn(e, &cas, 0, &delp, 1, NULL, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_range(e, "/x/", 1, 0, 0, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 0);
    lel_etcd_range_free(&r);
}

static void leases(lel_etcd_t *e)
{
    int64_t id = 0;
    int granted = 0, ttl = 0;
    CHECK_INT(lel_etcd_lease_grant(e, 1, &id, &granted, err, sizeof(err)), 0);
    CHECK(id != 0 && granted >= 1);
    CHECK_INT(lel_etcd_put(e, "/l/a", "1", 1, id, NULL, err, sizeof(err)), 0);
    struct lel_etcd_range r;
    CHECK_INT(lel_etcd_range(e, "/l/a", 0, 0, 0, &r, err, sizeof(err)), 0);
    CHECK(r.n == 1 && r.kvs[0].lease == id);
    lel_etcd_range_free(&r);
    for (int i = 0; i < 4; i++) { /* renewed: outlives its TTL */
        usleep(600000);
        CHECK_INT(lel_etcd_lease_keepalive(e, id, &ttl, err, sizeof(err)), 0);
        CHECK(ttl >= 1);
    }
    CHECK_INT(lel_etcd_range(e, "/l/a", 0, 0, 0, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 1);
    lel_etcd_range_free(&r);
    CHECK_INT(lel_etcd_lease_revoke(e, id, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_lease_keepalive(e, id, &ttl, err, sizeof(err)), -ENOENT); /* 200 without TTL */
    CHECK_INT(lel_etcd_lease_revoke(e, id, err, sizeof(err)), -ENOENT);         /* 404 code 5 */
    CHECK_INT(lel_etcd_range(e, "/l/a", 0, 0, 0, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 0);
    lel_etcd_range_free(&r);
    /* left alone, a lease expires and takes its keys */
    CHECK_INT(lel_etcd_lease_grant(e, 2, &id, &granted, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_put(e, "/l/b", "1", 1, id, NULL, err, sizeof(err)), 0);
    int gone = 0;
    for (int i = 0; i < 80 && !gone; i++) {
        usleep(100000);
        CHECK_INT(lel_etcd_range(e, "/l/b", 0, 0, 0, &r, err, sizeof(err)), 0);
        gone = r.n == 0;
        lel_etcd_range_free(&r);
    }
    CHECK(gone);
    CHECK_INT(lel_etcd_lease_keepalive(e, id, &ttl, err, sizeof(err)), -ENOENT);
}

struct seen {
    lel_etcd_t *e;
    int64_t start;
    int n, deletes, want, r;
    char keys[8][32];
    volatile int stop;
};

static int on_events(void *ctx, const struct lel_etcd_event *ev, size_t n, int64_t rev)
{
    struct seen *s = ctx;
    (void)rev;
    for (size_t i = 0; i < n && s->n < 8; i++) {
        snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s%s", ev[i].deleted ? "-" : "", ev[i].kv.key);
        s->deletes += ev[i].deleted;
    }
    return s->n >= s->want;
}

static void *watch_thread(void *arg)
{
    struct seen *s = arg;
    char e2[256];
    s->r = lel_etcd_watch(s->e, "/w/", s->start, on_events, s, &s->stop, e2, sizeof(e2));
    return NULL;
}

static void watch(lel_etcd_t *e)
{
    int64_t rev = 0;
    CHECK_INT(lel_etcd_put(e, "/w/before", "0", 1, 0, &rev, err, sizeof(err)), 0);
    struct seen s = {.e = e, .start = rev, .want = 3};
    pthread_t t;
    pthread_create(&t, NULL, watch_thread, &s);
    usleep(200000);
    CHECK_INT(lel_etcd_put(e, "/w/a", "1", 1, 0, NULL, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_put(e, "/outside", "1", 1, 0, NULL, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_delete(e, "/w/before", 0, NULL, err, sizeof(err)), 0);
    pthread_join(t, NULL);
    CHECK_INT(s.r, 0);
    CHECK_INT(s.n, 3); /* from `rev` inclusive: the put before the watch, then a, then the delete */
    CHECK_STR(s.keys[0], "/w/before");
    CHECK_STR(s.keys[1], "/w/a");
    CHECK_STR(s.keys[2], "-/w/before");
    CHECK_INT(s.deletes, 1);
    /* a watch with nothing to say ends when told to */
    struct seen q = {.e = e, .want = 1};
    pthread_create(&t, NULL, watch_thread, &q);
    usleep(300000);
    q.stop = 1;
    pthread_join(t, NULL);
    CHECK_INT(q.r, -EINTR);
    CHECK_INT(q.n, 0);
    /* from a compacted revision: -ESTALE, so the caller re-reads */
    int64_t now = 0;
    CHECK_INT(lel_etcd_put(e, "/w/c", "1", 1, 0, &now, err, sizeof(err)), 0);
    CHECK_INT(lel_etcd_compact(e, now, err, sizeof(err)), 0);
    struct seen c = {.e = e, .start = rev, .want = 1};
    watch_thread(&c);
    CHECK_INT(c.r, -ESTALE);
    struct lel_etcd_range r;
    CHECK_INT(lel_etcd_range(e, "/w/", 1, 0, 0, &r, err, sizeof(err)), 0);
    CHECK(r.n == 2 && r.revision >= now);
    lel_etcd_range_free(&r);
}

static void failover(void)
{
    /* a dead endpoint first in the list: the next one answers */
    char *eps[] = {"http://127.0.0.1:1", C.m[1].url};
    struct lel_etcd_opts o = {.endpoints = eps, .nendpoints = 2, .timeout_ms = 2000};
    lel_etcd_t *e = NULL;
    CHECK(lel_etcd_new(&o, &e) == 0);
    CHECK_INT(lel_etcd_put(e, "/f/a", "1", 1, 0, NULL, err, sizeof(err)), 0);
    lel_etcd_free(e);
    e = client(0, 3, 1500);
    etcd_member_stop(&C, 0); /* one of three gone: nothing changes */
    CHECK_INT(lel_etcd_put(e, "/f/b", "1", 1, 0, NULL, err, sizeof(err)), 0);
    int64_t id;
    CHECK_INT(lel_etcd_lease_grant(e, 5, &id, NULL, err, sizeof(err)), 0);
    etcd_member_stop(&C, 1); /* quorum lost: writes fail, serializable reads still answer */
    CHECK_INT(lel_etcd_put(e, "/f/c", "1", 1, 0, NULL, err, sizeof(err)), -EAGAIN);
    printf("without quorum: %s\n", err);
    struct lel_etcd_range r;
    CHECK_INT(lel_etcd_range(e, "/f/", 1, 0, 1, &r, err, sizeof(err)), 0);
    CHECK_INT(r.n, 2);
    lel_etcd_range_free(&r);
    CHECK_INT(etcd_member_start(&C, 1), 0); /* quorum back */
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        ok = lel_etcd_put(e, "/f/c", "1", 1, 0, NULL, err, sizeof(err)) == 0;
        if (!ok)
            usleep(200000);
    }
    CHECK(ok);
    lel_etcd_free(e);
}

int main(void)
{
    if (!etcd_binary()) {
        printf("SKIPPED: no etcd binary (tools/setup.sh installs Debian's etcd-server)\n");
        return 77;
    }
    if (etcd_cluster_start(&C, 3) < 0) {
        CHECK(!"etcd cluster started");
        etcd_cluster_free(&C);
        return lel_test_finish();
    }
    lel_etcd_t *e = client(0, 3, 3000);
    kv(e);
    txn(e);
    leases(e);
    watch(e);
    lel_etcd_free(e);
    failover();
    etcd_cluster_free(&C);
    return lel_test_finish();
}
