/* The host's file requests (LEL_OP_FILE_*): paths and data in the bulk area. */
#ifndef LEL_GUEST_AGENT_FILES_H
#define LEL_GUEST_AGENT_FILES_H

#include <stdint.h>

void agent_file_write(void);

/* LEL_OP_FILE_UPLOAD: chunks of a file written under a temporary name that the last one
 * renames over the path (see lel_guest_abi.h). Whatever fails, the temporary goes, so a full
 * disk is given back whole. Nothing is kept between chunks but the temporary itself: a host
 * that never finishes leaves a file the user can see and remove, and ids only grow, so it
 * never meets a later upload. */
/* pages: LEL_OP_FILE_UPLOAD_PAGES (the host writes the data into the temporary's pages). */
void agent_file_upload(int pages);

/* LEL_OP_FILE_DELETE: as rm and rmdir do, a symlink itself, never what it names. */
void agent_file_delete(void);

void agent_file_read(void);

/* LEL_OP_FILE_XATTRS: a node's attributes of one prefix replaced by the request's, whole or not
 * at all (an upload's temporary first takes those of the file it replaces outside the prefix). */
void agent_file_xattrs(void);

/* LEL_OP_FILE_STAT: an entry, or a directory's tree to a depth, as struct lel_stat_rec records:
 * lstat's fields, a symlink's final target (resolved as readlink -f) and that target's mode. */
void agent_file_stat(void);

/* LEL_OP_WATCH_ADD, _READ, _REMOVE: the host's watches of a directory (fs/hwatch.c). */
void agent_watch_add(void);
void agent_watch_read(void);
void agent_watch_remove(void);

#endif
