/* The image store: root filesystems a team imports (`PUT /images/{name}`: an OCI or docker image
 * archive, or a plain rootfs tar, any compression), kept unpacked under
 * <data_dir>/images/<imageID>/rootfs and described by a record in the store (column family
 * `images`, key "<teamID>/<name>:<tag>"). Templates are built from them (`fromImage`) and hold
 * a use of the image while they exist, so it cannot be deleted or replaced under them.
 *
 * Threads: the calls run on the store's own actor; an upload's body is written to a file
 * there as it arrives, and the unpacking runs on a thread of its own (an image of hundreds of
 * MB takes seconds), whose end comes back to the actor as a message. The use counts are under
 * a mutex: any thread. */
#ifndef LEL_IMAGE_H
#define LEL_IMAGE_H

#include "../core/lel_core.h"

/** Loads the records, removes what a crash left under <data_dir>/images, starts the actor.
 * Returns 0 or -errno with err filled. */
int lel_image_start(lel_server_t *srv, char *err, size_t errlen);
/** Imports in progress give up (answered 503) and their threads end; nothing new starts. Call
 * while the worker pool still runs (before lel_http_stop); idempotent. */
void lel_image_stop(lel_server_t *srv);
/** Frees the store's state (after the worker pool drained). */
void lel_image_free(lel_server_t *srv);
/** The routes R_IMG_LIST, R_IMG_GET, R_IMG_PUT (a streamed body), R_IMG_DELETE. Any thread. */
void lel_image_call(lel_server_t *srv, lel_call_t *c);

/** Takes a use of `team`'s image `name` ("name" or "name:tag"): *rec gets a copy of its record
 * (imageID, name, digest, env, workdir, user, cmd, entrypoint, ...; the caller owns it).
 * Returns 0, -EINVAL (not a valid image name) or -ENOENT. */
int lel_image_acquire(lel_server_t *srv, const char *team, const char *name, json_t **rec);
/** Takes a use of the image with this imageID (a template loaded at start). Returns 0 or -ENOENT. */
int lel_image_acquire_id(lel_server_t *srv, const char *image_id);
/** Gives a use back. */
void lel_image_release(lel_server_t *srv, const char *image_id);
/** <data_dir>/images/<imageID>/rootfs */
void lel_image_rootfs(lel_server_t *srv, const char *image_id, char *buf, size_t n);
/** Canonical "name:tag" of a valid image name (":latest" added when it has none) into out.
 * Returns 0 or -EINVAL. */
int lel_image_canonical(const char *name, char *out, size_t n);

#endif
