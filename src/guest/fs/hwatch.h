/* The host's watches of a directory (E2B's WatchDir, LEL_OP_WATCH_*): the changes under it,
 * recursive when asked, queued as events (create, write, remove, rename, chmod with a path
 * relative to the watched directory) the host reads. One watch covers a whole tree, the
 * directories made in it later included, with no gap: it sees each change as the file system
 * reports it (fs_notify), inside the call that makes it, and keeps an index of the tree's
 * entries (node -> the directory and name it has there), so a write, which knows only its
 * inode, finds its names at once and a directory's path is found up its parents. An upload's
 * temporary (".lelantos-upload-<n>", agent/files.c) is not reported (see hwatch_upload). A watch holds its directory; the directory's
 * removal is its last event (REMOVE "."). Queues hold HWATCH_QMAX events; past that the
 * read says events were lost. */
#ifndef LEL_GUEST_FS_HWATCH_H
#define LEL_GUEST_FS_HWATCH_H

#include <stdint.h>

struct inode;

#define HWATCH_MAX 32          /* watches at a time */
#define HWATCH_QMAX 4096       /* events queued per watch */
#define HWATCH_ENTRIES 65536   /* entries a watch's index holds: a larger tree is refused */

/** Watches directory `dir` (recursive: its whole tree). The watch's id (> 0), -E_NOTDIR,
 * -E_NOSPC (too many watches, or a tree over HWATCH_ENTRIES entries), -E_NOMEM. */
int hwatch_add(struct inode *dir, int recursive);
/** Ends watch `id` (0: every watch, as after a restore the host knows none). 0 or -E_NOENT. */
int hwatch_remove(int id);
/** Takes the queued events that fit in `cap` bytes into `buf` as struct lel_watch_rec records;
 * *n: how many, *flags: LEL_WATCH_*. Bytes used, or -E_NOENT. */
int64_t hwatch_read(int id, char *buf, uint64_t cap, uint32_t *n, uint32_t *flags);
/** Watches with something unread: up to `max` pairs (id, LEL_POLL_WATCH) in `pairs`. */
uint32_t hwatch_poll(uint32_t *pairs, uint32_t max);
/** What the file system changed (fs_notify's arguments, IN_* masks). */
void hwatch_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask);
/** The agent's upload is about to rename its temporary over `name` in `dir` (NULL: done): the
 * file's removal, when one was there, is no event, and the move is the file's write (and its
 * create when it is new), as a write in place would be. */
void hwatch_upload(const struct inode *dir, const char *name, uint64_t n);

#endif
