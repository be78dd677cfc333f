/* The read-only root filesystem image ("rofs"): the on-disk format the host writes
 * (src/image/lel_rofs_build.c), the VMM maps into a VM as read-only guest-physical memory and
 * the guest kernel reads in place (src/guest/fs/rofs.c). Every file's data starts on a page
 * boundary and is zero-padded to a whole page, so a file's pages can be mapped straight into
 * a process (exec, mmap) from the region, with no copy. Fixed-width little-endian fields only:
 * this header builds freestanding too.
 *
 * Layout (every offset is from the start of the file; the file is a whole number of pages):
 *
 *   page 0           struct lel_rofs_super
 *   inode_off        inode_count x struct lel_rofs_inode  (index 0 is the root directory)
 *   dirent_off       dirent_count x struct lel_rofs_dirent (each directory's entries together,
 *                    sorted by name: bytes compared as unsigned, a prefix first)
 *   names_off        names_bytes of names and symlink targets (a target ends with a NUL)
 *   data_off         the files' data, each at a page boundary, zero-padded to its last page
 *
 * A hard link is a second entry naming the same inode. "." and ".." are not stored: the
 * reader knows a directory's parent from the path it came by (the root's is itself).
 * content_hash is the SHA-256 of the whole file with that field zeroed: the host's identity of
 * the image (a snapshot taken over it records it; a restore refuses another file). */
#ifndef LEL_ROFS_ABI_H
#define LEL_ROFS_ABI_H

#include <stdint.h>

#define LEL_ROFS_MAGIC "LELROFS" /* 8 bytes with the NUL */
#define LEL_ROFS_VERSION 1
#define LEL_ROFS_PAGE 4096ULL
#define LEL_ROFS_NAME_MAX 255
#define LEL_ROFS_MAX_BYTES (64ULL << 30) /* the guest-physical window reserved for it */

/* Where the VMM places the region in guest-physical memory: above any RAM (which ends below
 * 16 GiB, LEL_MAX_PD) and 1 GiB aligned, so the guest maps it with 2 MiB pages. */
#define LEL_GPA_ROFS (64ULL << 30)

struct lel_rofs_super {
    char magic[8];
    uint32_t version, page_size;
    uint64_t file_bytes; /* the whole file */
    uint64_t inode_off, inode_count;
    uint64_t dirent_off, dirent_count;
    uint64_t names_off, names_bytes;
    uint64_t data_off, data_bytes;
    uint64_t reserved[6];
    uint8_t content_hash[32];
};

struct lel_rofs_inode {
    uint32_t mode; /* S_IF* | permission bits, as Linux encodes them */
    uint32_t uid, gid;
    uint32_t nlink;
    uint64_t size; /* regular file: bytes; symlink: target bytes (without the NUL); directory: entries */
    uint64_t data; /* regular file: offset of its data (0 when empty); symlink: offset of its target in
                      the names; directory: index of its first entry */
    int64_t mtime;
    uint32_t mtime_nsec, rdev;
    int64_t ctime;
    uint32_t ctime_nsec, flags; /* flags: 0 */
};

struct lel_rofs_dirent {
    uint32_t name; /* offset in the names (not NUL-terminated: name_len bytes) */
    uint32_t ino;  /* index in the inode table */
    uint16_t name_len;
    uint8_t type; /* the inode's mode >> 12, as readdir's d_type wants */
    uint8_t pad;
    uint32_t reserved;
};

_Static_assert(sizeof(struct lel_rofs_super) <= LEL_ROFS_PAGE, "the superblock fits its page");
_Static_assert(sizeof(struct lel_rofs_inode) == 64, "inode records are 64 bytes");
_Static_assert(sizeof(struct lel_rofs_dirent) == 16, "directory entries are 16 bytes");

/* Whether a superblock describes a well-formed file of `bytes` bytes: its tables lie inside
 * the file, in order, without overflow. (Each entry is checked again where it is used.) */
static inline int lel_rofs_super_ok(const struct lel_rofs_super *s, uint64_t bytes)
{
    const char *m = LEL_ROFS_MAGIC;
    for (int i = 0; i < 8; i++)
        if (s->magic[i] != m[i])
            return 0;
    if (s->version != LEL_ROFS_VERSION || s->page_size != LEL_ROFS_PAGE || s->file_bytes != bytes ||
        bytes % LEL_ROFS_PAGE || bytes > LEL_ROFS_MAX_BYTES || s->inode_count == 0 ||
        s->inode_count > (1ULL << 32) || s->dirent_count > (1ULL << 32) || s->names_bytes > (1ULL << 32))
        return 0;
    uint64_t inodes_end = s->inode_off + s->inode_count * sizeof(struct lel_rofs_inode);
    uint64_t dirents_end = s->dirent_off + s->dirent_count * sizeof(struct lel_rofs_dirent);
    /* the tables are read in place as arrays of 8-byte-aligned records; the offsets are the
     * image's, so none may be past it (nor wrap the sums above) */
    if (s->inode_off % 8 || s->dirent_off % 8 || s->inode_off > bytes || s->dirent_off > bytes || s->names_off > bytes)
        return 0;
    return s->inode_off >= LEL_ROFS_PAGE && s->dirent_off >= inodes_end && s->names_off >= dirents_end &&
           s->data_off >= s->names_off + s->names_bytes && s->data_off % LEL_ROFS_PAGE == 0 &&
           s->data_bytes <= bytes && s->data_off <= bytes - s->data_bytes;
}

#endif
