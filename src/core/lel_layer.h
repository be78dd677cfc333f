/* Snapshot images that others depend on: a diff image needs its base, and a sandbox needs the
 * image it started from (its pauses and snapshots are diffs over it). Each such image has a
 * record in the store's "layers" family, keyed by its path under the data directory
 * ("snapshots/<id>.img", "templates/<id>.<build>.img"), with a reference count: one for its
 * owner (the snapshot record, the template), one per sandbox started from it, one per diff
 * image over it. Counts change only in the same write batch as what they count, under one
 * lock; an image whose count reaches zero loses its record, then its files (image and raw
 * memory), and gives its own base one reference back, in that batch. Deleting an image that
 * others depend on (DELETE /snapshots/{id}, a template's rebuild or deletion) only drops the
 * owner's reference: the files stay until the last dependant goes.
 *
 * Diffs deeper than snapshots.max_chain_depth are flattened in the background (a thread per
 * image; lel_layer_drain waits for them at stop). */
#ifndef LEL_LAYER_H
#define LEL_LAYER_H

#include "lel_core.h"

struct lel_layer_op {
    const char *key; /* the image's path under the data directory */
    int delta;       /* references added (negative: dropped) */
    int create;      /* a new image: its record is made with `delta` references, holding one on base */
    const char *base; /* create: the image it is a diff over, or NULL (a full image) */
    int depth;        /* create: its chain depth (0: full) */
    int unbase;       /* the image was flattened: its record drops its base (and that reference) */
};

/** Applies `ops` to the layer records within batch `b` and writes it (b is consumed). An op on
 * an image without a record (made before records existed) first gives it one reference, its
 * owner's. Files of images that reach zero are unlinked after a successful write. The batch is
 * applied under the layer lock and made durable by the store's group commit after it (durable
 * before the return; concurrent writers share one fsync). Returns 0, -ENOSPC or -EIO (nothing changed,
 * or, when the fsync itself failed, changed in memory only: the store refuses writes then). */
int lel_layer_write(lel_server_t *srv, lel_batch_t *b, const struct lel_layer_op *ops, size_t n);
/** The key of an image at `path` (under the data directory), or "" when it is not under it. */
void lel_layer_key(lel_server_t *srv, const char *path, char *key, size_t n);
/** The path of the image with key `key`. */
void lel_layer_path(lel_server_t *srv, const char *key, char *buf, size_t n);
/** The references an image holds now (0: no record). */
int lel_layer_refs(lel_server_t *srv, const char *key);
/** Starts flattening image `key` into a full image on its own thread, when its depth exceeds
 * snapshots.max_chain_depth; afterwards its record no longer holds its base. */
void lel_layer_maybe_flatten(lel_server_t *srv, const char *key, int depth);
/** The start-up check (lel_layer_check.c), after the sandboxes were loaded and before the API
 * answers: every image's reference count computed again from what holds it (snapshot records,
 * templates, sandboxes not killed, the diffs over it), records rewritten where they differ
 * (what a crash between an image's file and its record left), images nobody holds removed
 * with their raw memory files, interrupted flattens started again. Returns 0 or -EIO. */
int lel_layer_check(lel_server_t *srv);
/** Waits until no flatten runs (the server's stop). */
void lel_layer_drain(lel_server_t *srv);

#endif
