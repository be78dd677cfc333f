/* The data dir's format version: `<data_dir>/FORMAT` says which layout and record encoding the
 * files under it have, so a daemon never reads (or damages) a data dir written by a newer one.
 * Read and written only at start, by lel_server_start, before anything else touches the dir. */
#ifndef LEL_DATADIR_H
#define LEL_DATADIR_H

#include <stddef.h>

/** The format this build reads and writes. Raise it (and add the migration from the one
 * before to lel_datadir.c) when a change makes older daemons misread the data dir. */
#define LEL_DATA_FORMAT 1
#define LEL_DATA_FORMAT_FILE "FORMAT"

/** Checks `dir`'s format before it is used: a dir without FORMAT (new, or from before formats
 * were recorded) gets this build's; a newer format is refused (-EPROTONOSUPPORT), as is a FORMAT
 * that cannot be read (-EINVAL), each with a message for the operator in err. Returns 0 (the
 * format recorded, durably) or -errno. */
int lel__datadir_check(const char *dir, char *err, size_t errlen);

/** Reads the format recorded in dir: > 0, 0 when there is no FORMAT, or -errno. */
int lel__datadir_format(const char *dir);

#endif
