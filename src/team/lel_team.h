/* Teams: their records, API keys and members, and each team's actor, which serves the
 * team-scoped calls (keys, members, the team, lists of sandboxes, snapshots and templates,
 * template creation and reads). Also the key index that authenticates requests. */
#ifndef LEL_TEAM_H
#define LEL_TEAM_H

#include "../core/lel_core.h"

lel_team_t *lel_team_new(lel_server_t *srv, const char *id, const char *name, int64_t created_ms);
void lel_team_free(lel_team_t *t);
/** Puts the team's quotas in force: those `limits` (its record's, borrowed; NULL: none) gives,
 * the config's for the rest. */
void lel_team_set_limits(lel_team_t *t, const json_t *limits);
/** PUT /admin/teams/{teamID}/limits (root actor): hands the call to that team's actor. */
void lel_team_admin_limits(lel_server_t *srv, lel_call_t *c);
int lel_team_load_all(lel_server_t *srv, char *err, size_t errlen);
int lel_team_bootstrap(lel_server_t *srv, char *err, size_t errlen);
/** Creates a team and its first key (root actor). */
void lel_team_admin_create(lel_server_t *srv, lel_call_t *c);
/** Cluster mode: another node changed a shared record (src/cluster/lel_cluster_kv.h): teams
 * and keys it made are indexed here, keys it deleted stop authenticating. `ctx` is the server.
 * Any thread. */
void lel_team_shared_changed(void *ctx, enum lel_cf cf, const char *key, json_t *rec, json_t *old);
/** Resolves credentials; returns 0, or -EACCES with c->status 401 set. */
int lel_auth_resolve(lel_server_t *srv, lel_call_t *c);

#endif
