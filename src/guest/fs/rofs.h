/* The read-only image the root file system's lower layer comes from (format:
 * ../lel_rofs_abi.h), read in place: in the guest it is the VMM's read-only region, seen
 * through the direct map; in the hosted tests, a buffer. The image comes from the host but is
 * checked all the same: an entry or inode that points outside its table reads as absent. */
#ifndef LEL_GUEST_FS_ROFS_H
#define LEL_GUEST_FS_ROFS_H

#include "../lel_rofs_abi.h"

#include <stdint.h>

/** Takes the image at `base` (`bytes` long). 0, or -1 when it is not a well-formed image. */
int rofs_mount(const void *base, uint64_t bytes);
/** The root directory's inode; NULL when no image is mounted. */
const struct lel_rofs_inode *rofs_root(void);
/** An inode's number in the table. */
uint64_t rofs_index(const struct lel_rofs_inode *i);
/** The entry `name` (n bytes) of directory `dir`: its inode, or NULL. */
const struct lel_rofs_inode *rofs_find(const struct lel_rofs_inode *dir, const char *name, uint64_t n);
/** The `i`-th entry of `dir`: 0 with its name (not NUL-terminated) and inode, 1 past the end,
 * -1 for an entry that is malformed (to be skipped). */
int rofs_entry(const struct lel_rofs_inode *dir, uint64_t i, const char **name, uint64_t *len,
               const struct lel_rofs_inode **ino);
/** A regular file's data, its size bytes followed by zeros to the end of the page (NULL when empty). */
const uint8_t *rofs_data(const struct lel_rofs_inode *f);
/** A symlink's target, NUL-terminated. */
const char *rofs_target(const struct lel_rofs_inode *l);
/** Whether `p` points into the image (a page of it is never freed nor written). */
int rofs_contains(const void *p);
/** The image's size in bytes (0: none). */
uint64_t rofs_bytes(void);

#endif
