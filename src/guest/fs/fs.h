/* The guest's in-memory file system: directories, regular files (data in pages), symlinks,
 * with modes, owners, sizes and timestamps; unpacked at boot from a cpio (newc) archive, or
 * laid over a read-only image (fs/overlay.c: the image is the lower layer, memory the upper
 * one). Paths are resolved component by component, following symlinks (at most 40), relative
 * to a working directory. Functions return 0 or a negative Linux errno. */
#ifndef LEL_GUEST_FS_H
#define LEL_GUEST_FS_H

#include <stdint.h>

#ifndef S_IFMT /* the same values as the host's, when a hosted test has those */
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFLNK 0120000
#define S_IFCHR 0020000
#define S_IFIFO 0010000
#define S_IFSOCK 0140000
#define S_ISUID 04000
#define S_ISGID 02000
#endif

#define E_PERM 1
#define E_NOENT 2
#define E_IO 5
#define E_NOMEM 12
#define E_EXIST 17
#define E_NOTDIR 20
#define E_ISDIR 21
#define E_INVAL 22
#define E_BUSY 16
#define E_TXTBSY 26
#define E_FBIG 27
#define E_NOSPC 28
#define E_NAMETOOLONG 36
#define E_NOTEMPTY 39
#define E_MLINK 31
#define E_LOOP 40
#define E_2BIG 7
#define E_RANGE 34
#define E_NODATA 61
#define E_OPNOTSUPP 95

#define FS_NAME_MAX 255
#define FS_PATH_MAX 4096

struct dent;
struct lel_rofs_inode;
struct xattr;

struct inode {
    uint32_t mode; /* S_IF* | permission bits */
    uint32_t nlink;
    uint64_t ino;
    uint64_t size;
    int64_t mtime, ctime, atime; /* seconds */
    void **pages;                /* regular file: three-level page table of data, up to 512 GiB (holes read as zero) */
    struct dent *children;       /* directory */
    struct inode *parent;        /* directory: its parent (root: itself) */
    char *target;                /* symlink */
    uint32_t rdev;               /* character device: (major << 8) | minor, as in the old encoding */
    uint32_t refs;               /* open files, working directories, running programs (fs_hold) */
    uint32_t exec_users;         /* processes running it: their code is its pages, so it cannot change */
    uint8_t seals;               /* a memfd's F_SEAL_* bits (kept, not enforced) */
    uint16_t watches;            /* inotify watches on it (fs/inotify.c) */
    uint32_t map_users;          /* shared mappings of it (fs/fmap.c): its pages are mapped as they are,
                                    so a truncation zeroes what it cuts off instead of freeing it */
    uint16_t gen;                /* a /proc file: the kernel writes its contents afresh at each open; a
                                    directory listed afresh (fs_gen_dir_sync); a symlink that is a
                                    descriptor (/proc/<pid>/fd/N: never followed here, its opener
                                    reaches the file) */
    uint32_t gen_pid;            /* ... about this process */
    uint32_t uid, gid;
    /* From the read-only image (fs/overlay.c): the image's inode this one stands for; a
     * directory some of whose entries in the image are not in `children` yet (they join as they
     * are looked up, all of them before it is listed or changed); a regular file whose data is
     * still the image's (its first write or truncation gives it a page table, whose entries
     * lead to the image's pages until each is written) */
    const struct lel_rofs_inode *lower;
    uint8_t lower_dir, lower_data;
    struct xattr *xattrs; /* its extended attributes (fs/xattr.c), the newest first */
};

struct dent {
    char *name;
    struct inode *inode;
    struct dent *next;
};

int fs_init(int64_t now);
struct inode *fs_root(void);
/** Makes the read-only image at `base` the root's lower layer (fs_init first, nothing created
 * yet). 0, or -E_INVAL for an image that is not well-formed. */
int fs_mount_lower(const void *base, uint64_t bytes);
/** Limits the file data the upper layer holds (the sandbox's disk) to `pages` (0: memory is
 * the limit); writes past it fail with -E_NOSPC. */
void fs_set_disk_limit(uint64_t pages);
uint64_t fs_disk_limit(void);
/** Unpacks a newc archive into the tree (directories, files, symlinks). */
int fs_unpack_cpio(const uint8_t *img, uint64_t len);
/** Resolves `path` from `cwd`; `follow` decides whether a final symlink is followed. */
int fs_lookup(struct inode *cwd, const char *path, int follow, struct inode **out);
/** Finds the parent directory of `path` and its last component (points into `path`). */
int fs_parent(struct inode *cwd, const char *path, struct inode **dir, const char **name, uint64_t *namelen);
/** fs_parent for a path that is to be written: a last component that is a symlink is
 * followed (up to 40), to the directory and name it leads to, as open(O_CREAT) does. */
int fs_parent_follow(struct inode *cwd, const char *path, struct inode **dir, const char **name, uint64_t *namelen);
/** The node `name` (namelen bytes, not followed) names in directory `dir`; NULL when none. */
struct inode *fs_child(struct inode *dir, const char *name, uint64_t namelen);
/** Creates a node named `name` in `dir`. */
int fs_create(struct inode *dir, const char *name, uint64_t namelen, uint32_t mode, struct inode **out);
int fs_unlink(struct inode *dir, const char *name, uint64_t namelen, int want_dir);
/** Gives `target` (not a directory) another name, `name` in `dir`: a hard link. */
int fs_link(struct inode *dir, const char *name, uint64_t namelen, struct inode *target);
/** Moves `oname` in `odir` to `nname` in `ndir`, replacing a file there (or an empty directory
 * with a directory). A directory cannot move into itself. */
int fs_rename(struct inode *odir, const char *oname, uint64_t olen, struct inode *ndir, const char *nname, uint64_t nlen);
/** Changes the clock the file system stamps with (seconds). */
/* The owner of what is created from now on (a new inode's uid and gid; in a set-group-ID
 * directory, its group): the syscall's process's file-system ids, root's for the host's requests. */
void fs_set_owner(uint32_t uid, uint32_t gid);
void fs_set_clock(int64_t now);
int64_t fs_read(struct inode *f, uint64_t off, void *buf, uint64_t n);
/** Writes and truncation fail with -E_TXTBSY while the file is a running program. */
int64_t fs_write(struct inode *f, uint64_t off, const void *buf, uint64_t n);
int fs_truncate(struct inode *f, uint64_t size);
/** For the host's uploads: pages [idx, idx + n) of a regular file made its own (new ones not
 * cleared: the host writes every byte of them before anyone may read them), their page numbers
 * (GPA >> 12) into pfn, the size raised to `size` (as far as pages were had). Returns how many
 * pages it had: fewer than n when the disk or memory runs short, -E_NOSPC when none (n > 0),
 * or -E_FBIG, -E_TXTBSY. */
int fs_host_pages(struct inode *f, uint64_t idx, uint64_t n, uint64_t size, uint32_t *pfn);
/** The page holding bytes [index * 4096, +4096) of a regular file; NULL for a hole. It may be
 * a page of the read-only image (never written: a write gives the file its own copy). */
void *fs_page(struct inode *f, uint64_t index);
/** fs_page when that page is the read-only image's (NULL otherwise): it never changes, so any
 * number of read-only mappings may share it without holding the file. */
void *fs_page_lower(struct inode *f, uint64_t index);
/** The file's own page at `index` for a shared mapping to map as it is: made when it is a hole,
 * copied from the image when it is the image's; NULL when the disk is full. While the file
 * has shared mappings (map_users) its pages stay where they are. */
void *fs_page_shared(struct inode *f, uint64_t index);
/** A shared mapping of `f` went: with the last one, the pages past its end go. */
void fs_unmapped(struct inode *f);
/** A page for other file data than a file's own (large extended attribute values): counted
 * as the disk's as file pages are; NULL when the disk is full. fs_data_page_free gives it back. */
void *fs_data_page(void);
void fs_data_page_free(void *p);
/** Pages of file data held by all files in memory (what the sandbox's disk holds; the
 * read-only image's pages are not counted). */
uint64_t fs_data_pages(void);
/** Keeps an inode alive while it is in use: a file removed from its directory goes when its
 * last user lets go, as on Linux (a removed directory stays, empty and dead: nothing can be
 * created in it and it has no path). */
void fs_hold(struct inode *i);
void fs_release(struct inode *i);
/** A regular file in no directory (command stdin), held once; fs_anon_free releases it. */
struct inode *fs_anon_file(void);
void fs_anon_free(struct inode *f);
/** The `index`-th entry of a directory, counting "." and ".." first; 1 when past the end. */
int fs_readdir(struct inode *dir, uint64_t index, const char **name, struct inode **child);
/* The entry after directory `d`'s own in its parent's list (0: it was the last): how a walk of
 * a tree goes on with d's next sibling once d is done. */
struct dent *fs_dent_after(const struct inode *d);
/** Writes the absolute path of directory `d` into buf. */
int fs_path_of(struct inode *d, char *buf, uint64_t cap);
/** Writes a path that leads to `f` (any kind of node), searching from the root and leaving out
 * the directory `skip`; -E_NOENT when none does (removed, or an anonymous file). */
int fs_find_path(struct inode *f, struct inode *skip, char *buf, uint64_t cap);
/** What changed, for inotify (provided by fs/inotify.c; the hosted build has a stub): `mask`
 * as a watch on the directory `dir` sees it (IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO
 * with `cookie`, IN_MODIFY, IN_ATTRIB, IN_OPEN, IN_CLOSE_*) about its entry `name`, which is
 * `node`; a watch on `node` itself sees the kind that is its own (IN_MODIFY, IN_ATTRIB...,
 * IN_DELETE_SELF when it is gone for good, IN_MOVE_SELF). `dir` NULL: the watched directories
 * holding `node` stand for it (a write knows only its inode); `node` NULL: it is gone. */
void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie);
/** Brings a generated directory (one with `gen` set: /proc/<pid>/fd) up to date; called before
 * it is searched or listed. Provided by the process code, which knows what it lists. */
void fs_gen_dir_sync(struct inode *dir);

#endif
