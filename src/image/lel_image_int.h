/* Internals of the image store shared by its files: lel_image.c (the actor: uploads, records,
 * the index), lel_image_import.c (what an upload is: OCI/docker image archive or plain rootfs
 * tar, its manifest and config) and lel_image_tree.c (applying a layer onto the tree on disk,
 * safely). The import and tree code run on an import's own thread and touch nothing shared. */
#ifndef LEL_IMAGE_INT_H
#define LEL_IMAGE_INT_H

#include "lel_image.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

struct archive;

#define LEL_IMAGE_MAX_ENTRIES 2000000 /* files, directories and links of one image, all layers */
#define LEL_IMAGE_MAX_DEPTH 128       /* directories an entry may nest in */
#define LEL_IMAGE_LOG_MAX 200         /* lines an import keeps in its log */

/* One unpacking, from the uploaded file to the tree: its input, then its result. */
struct lel_unpack {
    const char *upload;    /* the uploaded archive */
    const char *dir;       /* the import's staging directory: blobs go there, the tree to dir/rootfs */
    uint64_t max_unpacked; /* images.max_unpacked_bytes */
    const atomic_int *stop; /* set when lelantosd stops: the import gives up between entries */
    /* out */
    json_t *meta; /* on success: format, digest, layers, sizeBytes, files, env, workdir, user, cmd, entrypoint */
    json_t *log;  /* lines for the import log (always set) */
    int status;   /* on failure: 400 bad input, 503 out of disk or stopping, 500 host error */
    char err[512];
};

/** Reads the upload, finds what it is, and builds the tree (lel_image_import.c). Returns 0 or -1
 * with u->status and u->err set. Runs on the import's thread. */
int lel__image_unpack(struct lel_unpack *u);

/* A root filesystem being built from layers, in a directory no other code touches. Every path
 * is walked from the root one component at a time without following a symlink out of it. */
struct lel_tree;

/** Opens (creating) the tree in `dir`. `log` receives notes (borrowed). NULL on failure. */
struct lel_tree *lel__tree_open(const char *dir, uint64_t max_bytes, const atomic_int *stop, json_t *log);
/** Applies every entry of the archive `a` in order. `whiteouts`: an OCI layer (`.wh.` entries
 * delete, `.wh..wh..opq` hides the lower layers' content of its directory). `what` names the
 * layer in errors. Returns 0, or -EINVAL (bad entry: 400), -EFBIG (past max_bytes or the entry
 * limit: 400), -ENOSPC, -ECANCELED (stopping) or -EIO, with err filled. */
int lel__tree_apply(struct lel_tree *t, struct archive *a, int whiteouts, const char *what, char *err, size_t errlen);
/** Sets the directories' deferred modes and times, then counts the tree. Returns 0 or -errno. */
int lel__tree_finish(struct lel_tree *t, uint64_t *size_bytes, uint64_t *files);
void lel__tree_close(struct lel_tree *t);

/** Appends a line to an import log (dropped past LEL_IMAGE_LOG_MAX). */
void lel__image_log(json_t *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Removes `path` and everything under it, never following a symlink. Returns 0 or -errno. */
int lel__image_rmtree(const char *path);

#endif
