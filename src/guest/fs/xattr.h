/* Extended attributes of the in-memory file system's nodes (fs.h), as tmpfs keeps them: name ->
 * value pairs held on the inode (struct inode.xattrs), whichever layer the node came from (the
 * read-only image has none, so a node of it starts with none and keeps what it is given). Which
 * names a node may have and who may set them is the callers' policy (sys/sys_file.c for the
 * syscalls, agent/files.c for the host's uploads); this module keeps them and their limits.
 * A value of up to XATTR_SMALL bytes lives in the heap, a larger one in pages counted as the
 * disk's (fs_data_page), so a full disk refuses it (-E_NOSPC). Names are not NUL-terminated
 * bytes (n of them); functions return 0 or a negative Linux errno. */
#ifndef LEL_GUEST_FS_XATTR_H
#define LEL_GUEST_FS_XATTR_H

#include <stdint.h>

#include "fs.h"

#define XATTR_NAME_MAX 255      /* Linux's: a longer name is ERANGE */
#define XATTR_SIZE_MAX 65536    /* Linux's: a larger value is E2BIG */
#define XATTR_LIST_MAX 65536    /* Linux's: a longer list of names is E2BIG */
#define XATTR_INODE_MAX (1 << 20) /* names and values one node may hold: more is ENOSPC */
#define XATTR_SMALL 2048        /* values up to this many bytes are in the heap */
#define XATTR_CREATE 1
#define XATTR_REPLACE 2

/** The attribute `name` of `i`; NULL when it has none. */
const struct xattr *xattr_find(const struct inode *i, const char *name, uint64_t n);
/** The attribute after `prev` (NULL: the first) in i's list; NULL past the last. */
const struct xattr *xattr_next(const struct inode *i, const struct xattr *prev);
/** Its name (not NUL-terminated; *n bytes), owned by the attribute. */
const char *xattr_name(const struct xattr *x, uint64_t *n);
uint64_t xattr_size(const struct xattr *x);
/** The value's bytes from `off` (< its size): *n of them lie together there (to a page's end). */
const void *xattr_bytes(const struct xattr *x, uint64_t off, uint64_t *n);

/** A new attribute, in no inode yet, with room for a `vlen`-byte value that the caller fills
 * through xattr_room before xattr_install. NULL when memory or the disk is short (or vlen is
 * past XATTR_SIZE_MAX, the name empty or past XATTR_NAME_MAX: callers check those first). */
struct xattr *xattr_new(const char *name, uint64_t n, uint64_t vlen);
/** Where the value's bytes from `off` go: *n of them lie together there. */
void *xattr_room(struct xattr *x, uint64_t off, uint64_t *n);
/** Frees an attribute never installed. */
void xattr_free(struct xattr *x);
/** Gives `x` to `i`, in place of its attribute of that name. XATTR_CREATE: -EEXIST when there is
 * one; XATTR_REPLACE: -ENODATA when there is none; -ENOSPC past XATTR_INODE_MAX. x is the
 * inode's on success and freed on failure. */
int xattr_install(struct inode *i, struct xattr *x, int flags);
/** xattr_new + xattr_room + xattr_install for a value in kernel memory. */
int xattr_set(struct inode *i, const char *name, uint64_t n, const void *val, uint64_t vlen, int flags);
/** Removes i's attribute `name`: -ENODATA when it has none. */
int xattr_remove(struct inode *i, const char *name, uint64_t n);
/** Removes every attribute of i whose name starts with `prefix` (NUL-terminated). */
void xattr_remove_prefix(struct inode *i, const char *prefix);
/** Gives `dst` a copy of each attribute of `src` that it has not and whose name does not start
 * with `skip` (NUL-terminated; NULL: none skipped). 0, or -E_NOMEM / -E_NOSPC (those copied stay). */
int xattr_copy(struct inode *dst, const struct inode *src, const char *skip);
/** Frees all of i's attributes (the inode is going). */
void xattr_drop(struct inode *i);

#endif
