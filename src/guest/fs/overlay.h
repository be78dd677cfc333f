/* Between fs.c and overlay.c only: the read-only image as the lower layer of the file system.
 * The tree in memory is the upper layer and what every other module sees. An image directory
 * is merged into it entry by entry: a lookup that finds no entry in memory asks the image and
 * keeps what it finds, and before a directory is listed or has an entry removed or renamed
 * (fs_readdir, fs_unlink, fs_rename) all its image entries join it. From then on the memory's
 * entries are the directory's: a removed one is gone for good, as an overlayfs whiteout makes
 * it, and a renamed one moves, whichever layer it came from. */
#ifndef LEL_GUEST_FS_OVERLAY_H
#define LEL_GUEST_FS_OVERLAY_H

#include "fs.h"

/* fs.c's side */
struct inode *fs__inode_new(uint32_t mode);
void fs__inode_free(struct inode *i);
/** Adds the entry `name` -> `i` to `dir` (no check for one of that name). */
int fs__dent_add(struct inode *dir, const char *name, uint64_t n, struct inode *i);

/* overlay.c's side */
/** The image's entry `name` of `dir` (a directory with lower_dir), now also in memory; NULL
 * when the image has none (or memory ran out). */
struct inode *ovl_lookup(struct inode *dir, const char *name, uint64_t n);
/** Every image entry of `dir` into memory (nothing to do without lower_dir). 0 or -E_NOMEM. */
int ovl_merge(struct inode *dir);
/** An inode about to be freed: an image inode with several names is forgotten. */
void ovl_forget(struct inode *i);

#endif
