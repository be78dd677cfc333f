/* Internals of the rofs builder shared by its files: lel_rofs_tree.c (gathering the tree) and
 * lel_rofs_build.c (writing it). */
#ifndef LEL_ROFS_INT_H
#define LEL_ROFS_INT_H

#include "lel_rofs_build.h"

#include <stdint.h>

#define ROFS_MAX_NODES 4000000 /* files, directories and links in one image */
#define ROFS_MAX_DEPTH 128     /* directories an entry may nest in */

struct rent;

/* An inode of the tree: every name of a hard-linked file leads to one. */
struct rnode {
    uint32_t mode, uid, gid, rdev;
    uint32_t nlink; /* names in the tree (directories: 2 + subdirectories, set at write) */
    int64_t mtime, ctime;
    uint32_t mtime_ns, ctime_ns;
    uint64_t size;
    char *target;         /* symlink */
    char *src;            /* regular file: the host path its data is read from ... */
    uint8_t *mem;         /* ... or its data in memory */
    struct rnode *parent; /* directory: the one it is in (the root: itself) */
    struct rent *kids;    /* directory: its entries */
    size_t nkids, cap;
    /* lel_rofs_write's */
    uint32_t index, indexed; /* indexed: the write (lel_rofs_tree.writes) that numbered it */
    uint64_t first_dirent;
};

struct rent {
    char *name;
    uint16_t len;
    struct rnode *node;
};

struct lel_rofs_tree {
    struct rnode *root;
    uint64_t nodes; /* allocated, for the limit */
    uint32_t writes; /* lel_rofs_write calls so far */
    void *links;    /* tsearch tree: (device, inode) of disk files seen -> node (lel_rofs_add_dir) */
};

/** Releases one name's use of a node (and, with the last, what is under it). */
void lel__rofs_node_put(struct lel_rofs_tree *t, struct rnode *n);
/** Name comparison of the format: bytes as unsigned, a prefix first. */
int lel__rofs_name_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif
