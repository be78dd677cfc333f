/* The start-up check of the image reference counts (lel_layer.h): what a crash can leave. Every
 * count and its record change in one batch with what they count, but files are written before
 * their records (an image renamed in place, then the snapshot's batch) and unlinked after them
 * (a record deleted, then the files), and a flatten holds a reference of its own while it runs:
 * a kill -9 between the two leaves an image nobody names, a record that still names its base
 * after the image was flattened, or a count one too high. So at start the counts are computed
 * again from what holds images, the records rewritten where they differ, and the files nobody
 * needs removed.
 *
 * Who holds an image: its owner (a snapshot record; a template whose record names the build as
 * its current or latest one), each sandbox that is not killed and names it as baseImage, each
 * image alive over it (its base, as its header says). Where in doubt the check holds: a
 * template build running meanwhile writes its image before its record names it, so a build the
 * template's record names is never removed. */
#include "lel_layer.h"

#include "../vmm/lel_vmm.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the check knows of each image, by key: "need" (owner and sandbox references), "rec"
 * (its stored record), "file" (its image exists), "base" and "depth" (from its header, else the
 * record), "alive". `keep`: keys never removed (a paused sandbox's image, a template's builds). */
struct census {
    lel_server_t *srv;
    json_t *img;
    json_t *keep;
    char data_real[PATH_MAX];
};

static json_t *entry(struct census *c, const char *key)
{
    json_t *e = json_object_get(c->img, key);
    if (!e) {
        e = json_pack("{s:i}", "need", 0);
        json_object_set_new(c->img, key, e);
    }
    return e;
}

static void need(struct census *c, const char *key, int only_if_there)
{
    char path[4200];
    lel_layer_path(c->srv, key, path, sizeof(path));
    if (only_if_there && !json_object_get(c->img, key) && access(path, F_OK) != 0)
        return;
    json_t *e = entry(c, key);
    json_object_set_new(e, "need", json_integer(json_integer_value(json_object_get(e, "need")) + 1));
}

/* The keys of `o`, as an array (so `o` may grow while they are visited). */
static json_t *keys_of(json_t *o)
{
    json_t *a = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
        json_array_append_new(a, json_string(key));
    return a;
}

static int scan_layer(void *ctx, const char *key, json_t *rec)
{
    json_object_set(entry(ctx, key), "rec", rec);
    return 0;
}

static int scan_snapshot(void *ctx, const char *key, json_t *rec)
{
    struct census *c = ctx;
    const char *id = json_string_value(json_object_get(rec, "snapshotID"));
    char img[4200], k[4200];
    (void)key;
    if (!id)
        return 0;
    lel_core_image_path(c->srv, id, img, sizeof(img));
    lel_layer_key(c->srv, img, k, sizeof(k));
    if (k[0])
        need(c, k, 1);
    return 0;
}

static int scan_template(void *ctx, const char *key, json_t *rec)
{
    struct census *c = ctx;
    const char *tid = json_string_value(json_object_get(rec, "templateID"));
    const char *bids[2] = {json_string_value(json_object_get(rec, "imageBuildID")),
                           json_string_value(json_object_get(rec, "buildID"))};
    char k[4200];
    (void)key;
    if (!tid)
        return 0;
    for (int i = 0; i < 2; i++) {
        if (!bids[i] || (i == 1 && bids[0] && !strcmp(bids[0], bids[1])))
            continue;
        snprintf(k, sizeof(k), "templates/%s.%s.img", tid, bids[i]);
        json_object_set_new(c->keep, k, json_true());
        need(c, k, 1);
    }
    snprintf(k, sizeof(k), "templates/%s.img", tid); /* its one image from before builds had their own */
    json_object_set_new(c->keep, k, json_true());
    need(c, k, 1);
    return 0;
}

static int scan_sandbox(void *ctx, const char *key, json_t *rec)
{
    struct census *c = ctx;
    const char *st = json_string_value(json_object_get(rec, "state"));
    const char *base = json_string_value(json_object_get(rec, "baseImage"));
    const char *id = json_string_value(json_object_get(rec, "sandboxID"));
    char k[300];
    (void)key;
    if (!st || !strcmp(st, "killed"))
        return 0;
    if (base)
        need(c, base, 0);
    if (id && !strcmp(st, "paused")) {
        snprintf(k, sizeof(k), "snapshots/%s.paused.img", id);
        json_object_set_new(c->keep, k, json_true());
    }
    return 0;
}

/* The key of an image file's path as its header names it (maybe with ".." in it). */
static void key_of(struct census *c, const char *path, char *key, size_t n)
{
    char real[PATH_MAX];
    size_t d = strlen(c->data_real);
    key[0] = 0;
    if (realpath(path, real) && !strncmp(real, c->data_real, d) && real[d] == '/')
        snprintf(key, n, "%s", real + d + 1);
}

/* One image's file, base and depth: its header says (a record may still name the base of an
 * image flattened since); without a readable header, its record. A base not known yet goes
 * into `found`. */
static void read_header(struct census *c, const char *key, json_t *e, json_t *found)
{
    char path[4200], base[4200], bkey[4200], err[600];
    struct lel_snap_info info;
    json_t *rec = json_object_get(e, "rec");
    lel_layer_path(c->srv, key, path, sizeof(path));
    json_object_set_new(e, "file", json_boolean(access(path, F_OK) == 0));
    if (lel_image_info(path, &info, base, sizeof(base), NULL, err, sizeof(err)) == 0) {
        key_of(c, base, bkey, sizeof(bkey));
        if (info.diff && !bkey[0]) /* a base outside the data directory: none to count */
            fprintf(stderr, "lelantosd: image %s: its base %s is not in the data directory\n", key, base);
        if (info.diff && bkey[0])
            json_object_set_new(e, "base", json_string(bkey));
        json_object_set_new(e, "depth", json_integer(info.diff ? info.depth : 0));
    } else if (rec) {
        json_object_set(e, "depth", json_object_get(rec, "depth"));
        if (json_object_get(rec, "base"))
            json_object_set(e, "base", json_object_get(rec, "base"));
    }
    const char *b = json_string_value(json_object_get(e, "base"));
    if (b && !json_object_get(c->img, b))
        json_object_set_new(found, b, json_true());
}

/* Every image's header, and then its bases' down each chain. */
static void read_headers(struct census *c)
{
    json_t *todo = keys_of(c->img);
    while (json_array_size(todo)) {
        json_t *found = json_object();
        size_t i;
        json_t *k;
        json_array_foreach(todo, i, k)
            read_header(c, json_string_value(k), json_object_get(c->img, json_string_value(k)), found);
        json_decref(todo);
        todo = json_array();
        const char *key;
        json_t *v;
        json_object_foreach(found, key, v)
        {
            entry(c, key);
            json_array_append_new(todo, json_string(key));
        }
        json_decref(found);
    }
    json_decref(todo);
}

/* Alive: something needs it, and it is there. Computed down from "all alive" until nothing
 * changes (chains are acyclic: each base is shallower). Sets "refs" on the alive ones. */
static void settle(struct census *c)
{
    const char *key;
    json_t *e;
    json_object_foreach(c->img, key, e)
    {
        int there = json_is_true(json_object_get(e, "file")) || json_object_get(e, "rec");
        json_object_set_new(e, "alive", json_boolean(there));
    }
    for (int changed = 1; changed;) {
        changed = 0;
        json_object_foreach(c->img, key, e)
            json_object_set(e, "refs", json_object_get(e, "need"));
        json_object_foreach(c->img, key, e)
        {
            json_t *b = json_object_get(c->img, json_string_value(json_object_get(e, "base")) ?: "");
            if (b && json_is_true(json_object_get(e, "alive")))
                json_object_set_new(b, "refs", json_integer(json_integer_value(json_object_get(b, "refs")) + 1));
        }
        json_object_foreach(c->img, key, e)
        {
            if (json_is_true(json_object_get(e, "alive")) && json_integer_value(json_object_get(e, "refs")) <= 0) {
                json_object_set_new(e, "alive", json_false());
                changed = 1;
            }
        }
    }
}

/* The records as they should be, in one batch; *fixed: how many differ from the stored ones. */
static int write_records(struct census *c, int *fixed)
{
    lel_batch_t *b = lel_batch_new(c->srv->store);
    const char *key;
    json_t *e;
    *fixed = 0;
    json_object_foreach(c->img, key, e)
    {
        json_t *old = json_object_get(e, "rec");
        if (!json_is_true(json_object_get(e, "alive"))) {
            if (old) {
                lel_batch_del(b, LEL_CF_LAYERS, key);
                ++*fixed;
            }
            continue;
        }
        json_t *rec = json_pack("{s:O, s:I}", "refs", json_object_get(e, "refs"), "depth",
                                json_integer_value(json_object_get(e, "depth")));
        if (json_object_get(e, "base"))
            json_object_set(rec, "base", json_object_get(e, "base"));
        json_t *cmp = old ? json_deep_copy(old) : NULL;
        if (cmp)
            json_object_del(cmp, "_v"); /* the store's version field */
        if (!cmp || !json_equal(cmp, rec)) {
            if (old)
                fprintf(stderr, "lelantosd: image %s: references %lld -> %lld%s\n", key,
                        (long long)json_integer_value(json_object_get(old, "refs")),
                        (long long)json_integer_value(json_object_get(rec, "refs")),
                        json_object_get(old, "base") && !json_object_get(rec, "base") ? " (flattened)" : "");
            lel_batch_put(b, LEL_CF_LAYERS, key, rec);
            ++*fixed;
        }
        json_decref(cmp);
        json_decref(rec);
    }
    return lel_store_write(c->srv->store, b);
}

/* Removes the images of `sub` nobody needs (and raw memory files without their image). */
static int sweep(struct census *c, const char *sub)
{
    char dir[4200], path[4600], key[4600];
    int removed = 0;
    snprintf(dir, sizeof(dir), "%s/%s", c->srv->cfg.data_dir, sub);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        int raw = n > 4 && !strcmp(de->d_name + n - 4, ".raw");
        if (n <= 4 || (!raw && strcmp(de->d_name + n - 4, ".img")))
            continue;
        snprintf(key, sizeof(key), "%s/%.*s.img", sub, (int)(n - 4), de->d_name);
        json_t *e = json_object_get(c->img, key);
        if (json_object_get(c->keep, key)) /* a build may write its raw file before its image */
            continue;
        lel_layer_path(c->srv, key, path, sizeof(path));
        if (e && json_is_true(json_object_get(e, "alive")) && (!raw || access(path, F_OK) == 0))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) == 0) {
            fprintf(stderr, "lelantosd: removed %s/%s: no record or sandbox needs it\n", sub, de->d_name);
            removed++;
        }
    }
    closedir(d);
    return removed;
}

int lel_layer_check(lel_server_t *srv)
{
    struct census c = {srv, json_object(), json_object(), {0}};
    int r = -EIO, fixed = 0, removed = 0;
    if (!realpath(srv->cfg.data_dir, c.data_real))
        snprintf(c.data_real, sizeof(c.data_real), "%s", srv->cfg.data_dir);
    pthread_mutex_lock(&srv->layer_lock);
    if (lel_store_scan(srv->store, LEL_CF_LAYERS, "", NULL, scan_layer, &c) < 0 ||
        lel_store_scan(srv->store, LEL_CF_SNAPSHOTS, "", NULL, scan_snapshot, &c) < 0 ||
        lel_store_scan(srv->store, LEL_CF_TEMPLATES, "", NULL, scan_template, &c) < 0 ||
        lel_store_scan(srv->store, LEL_CF_SANDBOXES, "", NULL, scan_sandbox, &c) < 0)
        goto out;
    read_headers(&c);
    settle(&c);
    if ((r = write_records(&c, &fixed)) < 0)
        goto out;
    removed = sweep(&c, "snapshots") + sweep(&c, "templates");
out:
    pthread_mutex_unlock(&srv->layer_lock);
    if (fixed || removed)
        fprintf(stderr, "lelantosd: image check: %d record(s) corrected, %d file(s) removed\n", fixed, removed);
    /* flattens a crash interrupted start again */
    const char *key;
    json_t *e;
    json_object_foreach(c.img, key, e)
    {
        if (r == 0 && json_is_true(json_object_get(e, "alive")) && json_object_get(e, "base"))
            lel_layer_maybe_flatten(srv, key, (int)json_integer_value(json_object_get(e, "depth")));
    }
    json_decref(c.img);
    json_decref(c.keep);
    return r;
}
