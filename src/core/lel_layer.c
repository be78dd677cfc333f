/* Reference counts of the snapshot images others depend on (lel_layer.h), and the background
 * flattening of deep diff chains. */
#include "lel_layer.h"

#include "../vmm/lel_vmm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TOUCHED 64 /* records one write may change: its ops and the bases they free */

void lel_layer_key(lel_server_t *srv, const char *path, char *key, size_t n)
{
    size_t d = strlen(srv->cfg.data_dir);
    if (!strncmp(path, srv->cfg.data_dir, d) && path[d] == '/')
        snprintf(key, n, "%s", path + d + 1);
    else if (n)
        key[0] = 0;
}

void lel_layer_path(lel_server_t *srv, const char *key, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", srv->cfg.data_dir, key);
}

/* The records this write changes, as they will be (NULL: deleted). */
struct touched {
    char *key[MAX_TOUCHED];
    json_t *rec[MAX_TOUCHED];
    int n;
};

static json_t **find(lel_server_t *srv, struct touched *t, const char *key, int *missing)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->key[i], key))
            return &t->rec[i];
    if (t->n == MAX_TOUCHED)
        return NULL;
    json_t *rec = NULL;
    *missing = lel_store_get(srv->store, LEL_CF_LAYERS, key, &rec) < 0;
    t->key[t->n] = strdup(key);
    t->rec[t->n] = *missing ? NULL : rec;
    return t->key[t->n] ? &t->rec[t->n++] : NULL;
}

static int image_exists(lel_server_t *srv, const char *key)
{
    char path[4200];
    lel_layer_path(srv, key, path, sizeof(path));
    return access(path, F_OK) == 0;
}

/* One change; a count that reaches zero drops its base's reference in turn. */
static int apply(lel_server_t *srv, struct touched *t, const char *key0, int delta, int create, const char *base, int depth)
{
    char key[4096];
    int missing = 0;
    snprintf(key, sizeof(key), "%s", key0);
    if (create) {
        json_t **rec = find(srv, t, key, &missing);
        if (!rec)
            return -E2BIG;
        json_decref(*rec);
        *rec = json_pack("{s:i, s:i}", "refs", delta, "depth", depth);
        if (base)
            json_object_set_new(*rec, "base", json_string(base));
        if (!base)
            return 0;
        snprintf(key, sizeof(key), "%s", base); /* the new image holds its base */
        delta = 1;
    }
    for (int hops = 0; hops < MAX_TOUCHED; hops++) {
        missing = 0;
        json_t **rec = find(srv, t, key, &missing);
        if (!rec)
            return -E2BIG;
        if (!*rec && !missing)
            return 0; /* deleted earlier in this write */
        if (!*rec && delta > 0 && !image_exists(srv, key))
            return -ENOENT; /* it went meanwhile (deleted as this one started from it) */
        if (!*rec) /* an image from before records: it has its owner's reference */
            *rec = json_pack("{s:i, s:i}", "refs", 1, "depth", 0);
        json_int_t refs = json_integer_value(json_object_get(*rec, "refs")) + delta;
        if (refs > 0) {
            json_object_set_new(*rec, "refs", json_integer(refs));
            return 0;
        }
        const char *b = json_string_value(json_object_get(*rec, "base"));
        char next[4096];
        snprintf(next, sizeof(next), "%s", b ? b : "");
        json_decref(*rec);
        *rec = NULL; /* deleted: its files go after the write */
        if (!next[0])
            return 0;
        snprintf(key, sizeof(key), "%s", next);
        delta = -1;
    }
    return -E2BIG;
}

/* A flattened image no longer needs its base. */
static int unbase(lel_server_t *srv, struct touched *t, const char *key)
{
    int missing = 0;
    json_t **rec = find(srv, t, key, &missing);
    const char *b = rec && *rec ? json_string_value(json_object_get(*rec, "base")) : NULL;
    if (!b)
        return rec ? 0 : -E2BIG;
    char base[4096];
    snprintf(base, sizeof(base), "%s", b);
    json_object_del(*rec, "base");
    json_object_set_new(*rec, "depth", json_integer(0));
    return apply(srv, t, base, -1, 0, NULL, 0);
}

static void unlink_image(lel_server_t *srv, const char *key)
{
    char path[4200];
    size_t n;
    lel_layer_path(srv, key, path, sizeof(path));
    unlink(path);
    n = strlen(path);
    if (n > 4 && !strcmp(path + n - 4, ".img")) {
        strcpy(path + n - 4, ".raw");
        unlink(path); /* VMs still mapping it keep their pages */
    }
}

/* One writer's wait for its batch's group commit (lel_store_write_async): the layer lock is not
 * held across the fsync, so concurrent creates, pauses and deletes share one. */
struct durable {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, r;
};

static void durable_done(void *arg, int r)
{
    struct durable *d = arg;
    pthread_mutex_lock(&d->lock);
    d->r = r;
    d->done = 1;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static int durable_wait(struct durable *d)
{
    pthread_mutex_lock(&d->lock);
    while (!d->done)
        pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    return d->r;
}

int lel_layer_write(lel_server_t *srv, lel_batch_t *b, const struct lel_layer_op *ops, size_t n)
{
    struct touched t = {{0}, {0}, 0};
    int r = 0;
    pthread_mutex_lock(&srv->layer_lock);
    for (size_t i = 0; i < n && r == 0; i++)
        if (ops[i].key && ops[i].key[0])
            r = ops[i].unbase ? unbase(srv, &t, ops[i].key)
                              : apply(srv, &t, ops[i].key, ops[i].delta, ops[i].create, ops[i].base, ops[i].depth);
    for (int i = 0; r == 0 && i < t.n; i++) {
        if (t.rec[i])
            lel_batch_put(b, LEL_CF_LAYERS, t.key[i], t.rec[i]);
        else
            lel_batch_del(b, LEL_CF_LAYERS, t.key[i]);
    }
    struct durable d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    if (r < 0) {
        lel_batch_free(b);
        d.r = -EIO;
        d.done = 1;
    } else { /* applied now (the next write's counts start from it), durable once the shared sync ran */
        lel_store_write_async(srv->store, b, durable_done, &d);
    }
    pthread_mutex_unlock(&srv->layer_lock);
    r = durable_wait(&d);
    for (int i = 0; i < t.n; i++) {
        if (r == 0 && !t.rec[i])
            unlink_image(srv, t.key[i]);
        free(t.key[i]);
        json_decref(t.rec[i]);
    }
    return r;
}

int lel_layer_refs(lel_server_t *srv, const char *key)
{
    json_t *rec;
    if (lel_store_get(srv->store, LEL_CF_LAYERS, key, &rec) < 0)
        return 0;
    int refs = (int)json_integer_value(json_object_get(rec, "refs"));
    json_decref(rec);
    return refs;
}

/* ---- flattening ---- */

struct flatten_job {
    lel_server_t *srv;
    char key[4096];
};

static void *flatten_main(void *arg)
{
    struct flatten_job *j = arg;
    lel_server_t *srv = j->srv;
    char path[4200], err[600];
    lel_layer_path(srv, j->key, path, sizeof(path));
    int r = lel_image_flatten(path, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "lelantosd: flattening %s: %s\n", j->key, err);
    /* the job's own reference goes, and on success the base's */
    struct lel_layer_op ops[2] = {{j->key, 0, 0, NULL, 0, 1}, {j->key, -1, 0, NULL, 0, 0}};
    if (lel_layer_write(srv, lel_batch_new(srv->store), r == 0 ? ops : ops + 1, r == 0 ? 2 : 1) < 0)
        fprintf(stderr, "lelantosd: flattening %s: its record could not be updated\n", j->key);
    pthread_mutex_lock(&srv->layer_lock);
    srv->layer_jobs--;
    pthread_cond_broadcast(&srv->layer_cond);
    pthread_mutex_unlock(&srv->layer_lock);
    free(j);
    return NULL;
}

void lel_layer_maybe_flatten(lel_server_t *srv, const char *key, int depth)
{
    if (depth <= srv->cfg.snapshot_max_chain_depth)
        return;
    struct flatten_job *j = calloc(1, sizeof(*j));
    struct lel_layer_op hold = {key, 1, 0, NULL, 0, 0}; /* the image stays while it is rewritten */
    pthread_t th;
    pthread_attr_t attr;
    if (!j)
        return;
    j->srv = srv;
    snprintf(j->key, sizeof(j->key), "%s", key);
    if (lel_layer_write(srv, lel_batch_new(srv->store), &hold, 1) < 0) {
        free(j);
        return;
    }
    pthread_mutex_lock(&srv->layer_lock);
    srv->layer_jobs++;
    pthread_mutex_unlock(&srv->layer_lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, flatten_main, j) != 0) {
        pthread_mutex_lock(&srv->layer_lock);
        srv->layer_jobs--;
        pthread_mutex_unlock(&srv->layer_lock);
        struct lel_layer_op drop = {key, -1, 0, NULL, 0, 0};
        lel_layer_write(srv, lel_batch_new(srv->store), &drop, 1);
        free(j);
    }
    pthread_attr_destroy(&attr);
}

void lel_layer_drain(lel_server_t *srv)
{
    pthread_mutex_lock(&srv->layer_lock);
    while (srv->layer_jobs > 0)
        pthread_cond_wait(&srv->layer_cond, &srv->layer_lock);
    pthread_mutex_unlock(&srv->layer_lock);
}
