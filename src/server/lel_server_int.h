/* The server object and the internal interfaces between its components (API layer, team,
 * sandbox and template actors). Not part of the public embedding API. */
#ifndef LEL_SERVER_INT_H
#define LEL_SERVER_INT_H

#include "../actor/lel_actor.h"
#include "../api/lel_call.h"
#include "../api/lel_ratelimit.h"
#include "../common/lel_registry.h"
#include "../http/lel_http.h"
#include "../store/lel_store.h"

#include <lelantos/lelantos.h>
#include <pthread.h>
#include <stdatomic.h>

#define LEL_BUILTIN_TEAM "_builtin"
#define LEL_ENVD_VERSION "0.1.0"

typedef struct lel_server {
    lel_config_t cfg;
    lel_store_t *store;
    lel_pool_t *pool;
    lel_timers_t *timers;
    lel_http_t *http;
    lel_ratelimit_t *rl;
    lel_registry_t *teams;     /* teamID -> lel_team_t (teams live until shutdown) */
    lel_registry_t *keys;      /* SHA-256 hex of a key -> struct lel_key */
    lel_registry_t *sandboxes; /* sandboxID -> lel_actor_t (state: struct lel_sandbox) */
    lel_registry_t *templates; /* templateID -> lel_actor_t (state: struct lel_template) */
    lel_registry_t *template_names; /* "<teamID>/<name or alias>" -> the same actor, no reference of
                                       its own (removed before the templates entry goes) */
    lel_actor_t *root;         /* serializes team creation */
    int use_vm;                /* sandboxes are microVMs (vmm.backend auto and /dev/kvm usable) */
    atomic_int builds_running; /* template builds holding a slot of templates.max_parallel_builds */
    int vm_refused;            /* vmm.backend auto but /dev/kvm unusable: creating sandboxes fails */
    char vmm_why[256];         /* why /dev/kvm is unusable */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop_requested;
    atomic_int stopping;       /* a graceful stop is pausing the sandboxes: no new ones start */
    atomic_int stop_waiting;   /* sandboxes told to pause for the stop that have not settled yet */
    atomic_int stop_paused;    /* sandboxes the stop paused */
    int64_t stop_deadline_ms;  /* monotonic: pauses for the stop start no later */
} lel_server_t;

typedef struct lel_team {
    char id[LEL_ID_LEN + 1];
    char *name;
    int64_t created_ms;
    int max_sandboxes, max_timeout_s;
    atomic_int running;  /* sandboxes holding a slot of max_sandboxes */
    lel_actor_t *actor;  /* keys, members, lists, template creation and reads */
    lel_server_t *srv;
} lel_team_t;

/* An entry of the key index; lives while the key is valid. */
struct lel_key {
    char id[LEL_ID_LEN + 1];
    lel_team_t *team;
    atomic_llong last_used_ms, persisted_ms;
};

/* Message types shared by the actors. */
enum lel_msg_type {
    LEL_MSG_CALL = 1, LEL_MSG_TIMEOUT, LEL_MSG_REAP, LEL_MSG_KEY_TOUCH, LEL_MSG_SPAWNED,
    LEL_MSG_CONSOLE, LEL_MSG_VM_DIED, LEL_MSG_SAMPLE, LEL_MSG_SHUTDOWN, LEL_MSG_BUILD, LEL_MSG_BUILD_STEP,
    LEL_MSG_CMD_EVENT, LEL_MSG_CMD_CHECK, LEL_MSG_STOP_PAUSE, LEL_MSG_STOP_CMDS,
    LEL_MSG_XFER, /* a file transfer's body has more for it (upload) or its client wants the next piece */
};

/* Routes (lel_api.c maps paths and methods onto these). */
enum lel_route {
    R_NONE = 0,
    R_HEALTH,
    R_ADMIN_TEAMS,
    R_KEYS_CREATE, R_KEYS_LIST, R_KEY_DELETE,
    R_TEAM_GET, R_MEMBERS_CREATE, R_MEMBERS_LIST, R_MEMBER_DELETE,
    R_SBX_LIST, R_SBX_CREATE, R_SBX_GET, R_SBX_KILL, R_SBX_PAUSE, R_SBX_RESUME, R_SBX_CONNECT,
    R_SBX_TIMEOUT, R_SBX_REFRESH, R_SBX_LOGS, R_SBX_METRICS, R_SBX_SNAPSHOT, R_SBX_RESTORE,
    R_SBX_COMMANDS, R_SBX_FILES_PUT, R_SBX_FILES_GET, R_SBX_FILES_DELETE,
    R_SNAP_LIST, R_SNAP_DELETE,
    R_TPL_CREATE, R_TPL_LIST, R_TPL_GET, R_TPL_DELETE, R_TPL_BUILD,
};

/** True when an actor should drop a call unprocessed: its client is gone (h2 reset or closed
 * connection) and nothing has been applied yet, so queued work does not pile up. Creation is
 * never dropped: its actor already exists and must settle. */
static inline int lel__abandoned(lel_call_t *c)
{
    return atomic_load(&c->cancelled) && c->route != R_SBX_CREATE;
}

/* lel_api.c */
void lel_api_dispatch(void *srv, lel_call_t *c);
/** Judges a request with a body from its head (lel_http_handlers_t.admit). */
int lel_api_admit(void *srv, lel_call_t *c);
/** Sends a call to an actor; answers 503 itself when the actor refuses mail. */
void lel__send_call(lel_actor_t *a, lel_call_t *c);
/** Reads an optional integer field: 0 (absent: *out untouched), 1 (set), or -EINVAL with a 400 set on c. */
int lel__int_field(lel_call_t *c, const char *name, long long min, long long max, long long *out);
/** Optional string field (borrowed pointer) with a length cap; same returns as lel__int_field. */
int lel__str_field(lel_call_t *c, const char *name, size_t maxlen, const char **out);
/** Answers 500 for a failed store write. */
void lel__store_failed(lel_call_t *c);
/** Stores a string like "2026-01-02T03:04:05.678Z" for ms into obj[key]. */
void lel__set_time(json_t *obj, const char *key, int64_t ms);

/* lel_team.c */
lel_team_t *lel_team_new(lel_server_t *srv, const char *id, const char *name, int64_t created_ms);
void lel_team_free(lel_team_t *t);
int lel_team_load_all(lel_server_t *srv, char *err, size_t errlen);
int lel_team_bootstrap(lel_server_t *srv, char *err, size_t errlen);
/** Creates a team and its first key (root actor). */
void lel_team_admin_create(lel_server_t *srv, lel_call_t *c);
/** Resolves credentials; returns 0, or -EACCES with c->status 401 set. */
int lel_auth_resolve(lel_server_t *srv, lel_call_t *c);

/* lel_sandbox.c */
void lel_sandbox_create(lel_server_t *srv, lel_call_t *c);
int lel_sandbox_load_all(lel_server_t *srv, char *err, size_t errlen);
/** GET /sandboxes/{id} from the sandbox's published view, on the loop thread. Returns 1 when
 * answered, 0 when the actor must answer (unknown, another team's, or not stored yet). */
int lel_sandbox_fast_get(lel_server_t *srv, lel_call_t *c);
/** Builds the list for GET /sandboxes (team actor). */
void lel_sandbox_list(lel_server_t *srv, lel_call_t *c);
/** Builds the list for GET /snapshots: filters sandboxID and name, paged as GET /sandboxes (team actor). */
void lel_snapshot_list(lel_server_t *srv, lel_call_t *c);

/** <data_dir>/snapshots/<name>.img */
void lel__image_path(lel_server_t *srv, const char *name, char *buf, size_t n);
/** <data_dir>/snapshots/<id>.raw: a snapshot's memory unpacked for copy-on-write mapping. */
void lel__snapshot_raw_path(lel_server_t *srv, const char *id, char *buf, size_t n);
/** Graceful stop, first step: pauses every running sandbox (in parallel, on the workers) and
 * waits until all have or `grace_ms` has passed. From then on no sandbox starts. */
void lel_sandbox_pause_all(lel_server_t *srv, int grace_ms);
/** Asks every sandbox actor to release its VM (daemon shutdown); a sandbox still running then
 * is recorded killed. */
void lel_sandbox_shutdown_all(lel_server_t *srv);
/** The root file system lives in the guest's memory, so a record's diskSizeMB is its
 * memoryMB; an older record (which said 512) is corrected in place and in `cf` at `key`. */
void lel_record_fix_disk(lel_server_t *srv, enum lel_cf cf, const char *key, json_t *rec);

/* lel_template.c */
int lel_template_load_all(lel_server_t *srv, char *err, size_t errlen);
/** POST /templates, run on the team actor (names are unique per team). */
void lel_template_create(lel_server_t *srv, lel_call_t *c);
void lel_template_list(lel_server_t *srv, lel_call_t *c);
/** GET /templates/{id} and GET /templates/{id}/builds/{buildID}, run on the team actor from the
 * store, so a build on the template's actor never delays them. */
void lel_template_read(lel_server_t *srv, lel_call_t *c);
/** Finds a template visible to `team` by templateID (its own or a built-in), else by name or
 * alias among the team's own, else among the built-ins. Returns its actor with a reference, or NULL. */
lel_actor_t *lel_template_lookup(lel_server_t *srv, lel_team_t *team, const char *id);
/** Whether sandboxes may start from it: a built-in always (until its image is built they boot),
 * another only once its build is `ready`. Else 0 with *status its build status ("waiting",
 * "building", "error"). Any thread. */
int lel_template_ready(lel_actor_t *tpl, const char **status);
/** Resources of a template (read-only after creation). */
void lel_template_shape(lel_actor_t *tpl, const char **id, int *cpu, int *mem_mb, int *disk_mb);
/** Counts a sandbox using the template (in_use) and, with `spawned_by`, records a spawn by that
 * team (a built-in's spawns are counted per team); lel_template_release undoes in_use. */
void lel_template_acquire(lel_actor_t *tpl, lel_team_t *spawned_by);
void lel_template_release(lel_actor_t *tpl);
/** When the template has a built image, its paths (image and raw memory, n bytes each); 1 then, else 0. */
int lel_template_image(lel_actor_t *tpl, char *img, char *raw, size_t n);

#endif
