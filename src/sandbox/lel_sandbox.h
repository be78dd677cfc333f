/* Sandboxes as others see them: creation, loading at start, the fast GET, the listings (run on
 * the team actor), and the graceful stop. One actor per sandbox owns everything else. */
#ifndef LEL_SANDBOX_H
#define LEL_SANDBOX_H

#include "../core/lel_core.h"

void lel_sandbox_create(lel_server_t *srv, lel_call_t *c);
int lel_sandbox_load_all(lel_server_t *srv, char *err, size_t errlen);
/** GET /sandboxes/{id} from the sandbox's published view, on the loop thread. Returns 1 when
 * answered, 0 when the actor must answer (unknown, another team's, or not stored yet). */
int lel_sandbox_fast_get(lel_server_t *srv, lel_call_t *c);
/** Builds the list for GET /sandboxes (team actor). */
void lel_sandbox_list(lel_server_t *srv, lel_call_t *c);
/** Cluster mode: the public view of another node's sandbox record (src/cluster's catalog), its
 * state "lost" when it was running on a node that is gone, "unavailable": true when paused
 * there. New reference. */
json_t *lel_sandbox_remote_view(lel_server_t *srv, const json_t *rec);
/** Builds the list for GET /snapshots: filters sandboxID and name, paged as GET /sandboxes (team actor). */
void lel_snapshot_list(lel_server_t *srv, lel_call_t *c);

/** The sandboxes the server holds, for the metrics: by state of their published view (killed ones
 * until their retention ends), and what the running ones were given. */
struct lel_sandbox_counts {
    long long by_state[3]; /* running, paused, killed */
    long long running_mem_bytes, running_vcpus;
};
/** Counts over every sandbox's published view (each under its view lock); any thread. */
void lel_sandbox_count(lel_server_t *srv, struct lel_sandbox_counts *out);

/** Graceful stop, first step: pauses every running sandbox (in parallel, on the workers) and
 * waits until all have or `grace_ms` has passed. From then on no sandbox starts. */
void lel_sandbox_pause_all(lel_server_t *srv, int grace_ms);
/** Asks every sandbox actor to release its VM (daemon shutdown); a sandbox still running then
 * is recorded killed. */
void lel_sandbox_shutdown_all(lel_server_t *srv);

#endif
