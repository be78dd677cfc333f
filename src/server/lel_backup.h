/* Online backups: POST /admin/backup {"dir"} copies the data dir as of one moment while the
 * daemon runs (README "Backups"). Runs on the root actor, so one at a time. */
#ifndef LEL_BACKUP_H
#define LEL_BACKUP_H

#include "../call/lel_call.h"
#include "../core/lel_core.h"

/** Answers the call: 201 {"dir","files","linked","copied","bytes","durationMs"}, or 400 (bad
 * dir), 409 (it exists), 500 (a step failed; the partial backup is removed). */
void lel__backup_call(lel_server_t *srv, lel_call_t *c);

#endif
