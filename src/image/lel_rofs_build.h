/* Builds read-only root filesystem images (src/guest/lel_rofs_abi.h) on the host: a tree is
 * gathered in memory from an unpacked image on disk and, beneath it, from an archive in memory
 * (the guest's base root, which fills in what the image lacks), then written in one pass to a
 * temporary file, fsynced and renamed into place. The output depends only on the input (names
 * sorted, no build time), so two builds of one image give the same file and content hash.
 *
 * Threads: a tree belongs to its caller; nothing is shared. Functions return 0 or -errno with
 * `err` filled. */
#ifndef LEL_ROFS_BUILD_H
#define LEL_ROFS_BUILD_H

#include "../guest/lel_rofs_abi.h"

#include <stddef.h>
#include <stdint.h>

struct lel_rofs_tree;

struct lel_rofs_tree *lel_rofs_tree_new(void);
void lel_rofs_tree_free(struct lel_rofs_tree *t);

/** Adds the tree under `dir` (its root's owner, mode and time become the root's). Nothing is
 * followed through a symlink; device nodes and sockets are left out, and so are the top-level
 * names in `skip` (NULL-terminated, may be NULL) with all beneath them. Files sharing a device
 * and inode stay hard links. A name already in the tree is replaced, but directories merge.
 * Data is read at lel_rofs_write: the files must not change until then. */
int lel_rofs_add_dir(struct lel_rofs_tree *t, const char *dir, const char *const *skip, char *err, size_t errlen);

/** Adds the entries of an archive in memory (any format libarchive reads: the guest's cpio)
 * beneath what the tree holds: an entry goes in only where nothing is at its path, the path
 * resolved through the tree's symlinks as the guest would resolve it (so an image's
 * `bin -> usr/bin` takes the archive's bin/ entries into usr/). Data is copied. */
int lel_rofs_add_archive_under(struct lel_rofs_tree *t, const void *buf, size_t len, char *err, size_t errlen);

struct lel_rofs_stats {
    uint64_t file_bytes, inodes, dirents, data_bytes;
};

/** Writes the image to `path` (via `path`.<tid>.tmp, fsynced, renamed); `hash` (may be NULL)
 * gets its content hash. */
int lel_rofs_write(struct lel_rofs_tree *t, const char *path, struct lel_rofs_stats *st, uint8_t hash[32], char *err,
                   size_t errlen);

/** Reads and checks the superblock of the image at `path` (magic, version, the tables within
 * the file's actual size). -ENOENT when missing, -EBADMSG when it is not a well-formed image. */
int lel_rofs_header(const char *path, struct lel_rofs_super *s, char *err, size_t errlen);

/** Recomputes the content hash of the whole file: 0 when it matches the superblock's,
 * -EBADMSG when the file was changed or damaged. Reads every byte. */
int lel_rofs_verify(const char *path, char *err, size_t errlen);

/** The content hash as 64 hex digits and a NUL. */
void lel_rofs_hash_hex(const uint8_t hash[32], char out[65]);

#endif
