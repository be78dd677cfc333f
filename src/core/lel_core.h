/* The core every component of the service shares: the server object (all the service's state:
 * no component keeps global state of its own), the team and key records, the actors' message
 * types and the routes. Below the components (sandbox, template, team), above the request
 * object (src/call) and the infrastructure; nothing here calls up into a component. Not part
 * of the public embedding API. */
#ifndef LEL_CORE_H
#define LEL_CORE_H

#include "../actor/lel_actor.h"
#include "../call/lel_call.h"
#include "../common/lel_ratelimit.h"
#include "../common/lel_registry.h"
#include "../store/lel_store.h"
#include "../vmm/lel_vmm.h"

#include <lelantos/lelantos.h>
#include <pthread.h>
#include <stdatomic.h>

#define LEL_BUILTIN_TEAM "_builtin"
#define LEL_ENVD_VERSION "0.6.4" /* E2B's envd version whose features src/envd serves: the SDK gates on it (E2B-ENVD.md §6) */

struct lel_http;
struct lel_cluster;
struct lel_cluster_kv;
struct lel_cluster_fwd;
struct lel_tpl_travel;
/* The store's families every node of a cluster shares through etcd (src/cluster/lel_cluster_kv.h). */
#define LEL_SHARED_CFS (1u << LEL_CF_TEAMS | 1u << LEL_CF_KEYS | 1u << LEL_CF_MEMBERS)

typedef struct lel_server {
    lel_config_t cfg;
    lel_store_t *store;
    lel_pool_t *pool;
    lel_timers_t *timers;
    struct lel_http *http;     /* the frontend (src/http), started last */
    lel_ratelimit_t *rl;
    lel_registry_t *teams;     /* teamID -> lel_team_t (teams live until shutdown) */
    lel_registry_t *keys;      /* SHA-256 hex of a key -> struct lel_key */
    lel_registry_t *sandboxes; /* sandboxID -> lel_actor_t (state: struct lel_sandbox) */
    lel_registry_t *templates; /* templateID -> lel_actor_t (state: struct lel_template) */
    lel_registry_t *template_names; /* "<teamID>/<name or alias>" -> the same actor, no reference of
                                       its own (removed before the templates entry goes) */
    lel_actor_t *root;         /* serializes team creation */
    struct lel_images *images; /* the image store (src/image): its index, actor and imports */
    int use_vm;                /* sandboxes are microVMs (vmm.backend auto and /dev/kvm usable) */
    struct lel_net *net;       /* sandbox networking (src/net) with the VMs; NULL without */
    struct lel_vm_reaper *reaper; /* destroys VMs off the request path (src/vmm); NULL without VMs */
    struct lel_warm *warm;     /* the templates' warm pools (src/template); NULL when off */
    struct lel_cluster *cluster; /* cluster mode (src/cluster); NULL for a single node */
    struct lel_cluster_kv *shared; /* cluster mode: the families kept in etcd (LEL_SHARED_CFS) */
    struct lel_cluster_fwd *fwd;   /* cluster mode: requests sent on to the node that serves them */
    struct lel_tpl_travel *travel; /* cluster mode: templates fetched from other nodes (src/template) */
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
    pthread_mutex_t layer_lock; /* image reference counts (lel_layer.c): read-modify-write of their records */
    pthread_cond_t layer_cond;
    int layer_jobs;             /* background flattens running (under layer_lock) */
    /* for /metrics (src/api/lel_api_metrics.c renders them): */
    struct lel_vm_stats vm_stats;     /* every VM's exits by reason, vCPU time, and the running ones (src/vmm) */
    atomic_ullong builds_done[2];     /* template builds ended: [0] ready, [1] error (src/template) */
    struct lel_api_stats *api_stats;  /* requests by route and status, latencies, rate-limit refusals (src/api) */
    struct lel_docs *docs;            /* /docs: the interactive page's files, read at start (src/api) */
} lel_server_t;

typedef struct lel_team {
    char id[LEL_ID_LEN + 1];
    char *name;
    int64_t created_ms;
    /* the effective quotas: the team's own (its record's "limits", set by the admin API) or the
     * config's teams.*; 0 for memory and snapshots: no cap. Read by any actor, set by the team's. */
    atomic_int max_sandboxes, max_timeout_s, max_memory_mb, max_snapshots;
    pthread_mutex_t quota_lock; /* running and memory_mb move together under it */
    atomic_int running;   /* sandboxes holding a slot of max_sandboxes */
    atomic_int memory_mb; /* the memory those sandboxes were given, against max_memory_mb */
    atomic_int snapshots; /* stored snapshots (records), against max_snapshots */
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
    LEL_MSG_TIMEOUT = LEL_MSG_CALL + 1, LEL_MSG_REAP, LEL_MSG_KEY_TOUCH, LEL_MSG_SPAWNED,
    LEL_MSG_CONSOLE, LEL_MSG_VM_DIED, LEL_MSG_SAMPLE, LEL_MSG_SHUTDOWN, LEL_MSG_BUILD, LEL_MSG_BUILD_STEP,
    LEL_MSG_CMD_EVENT, LEL_MSG_CMD_CHECK, LEL_MSG_STOP_PAUSE, LEL_MSG_STOP_CMDS,
    LEL_MSG_XFER, /* a file transfer's body has more for it (upload) or its client wants the next piece */
    LEL_MSG_IMPORTED, /* an image import's thread ended (src/image) */
    LEL_MSG_ENVD_PIECE, /* src/envd: a streamed answer `arg` wants its next piece */
    LEL_MSG_ENVD_TICK,  /* src/envd: a stream's keepalive timer */
    LEL_MSG_ENVD_BODY,  /* src/envd: an upload `arg` has more body */
    LEL_MSG_CMD_PIECE,  /* a streamed command's answer `arg` wants its next piece */
    LEL_MSG_FORK,       /* a fork starts its VM (ptr: the fork job, arg: its place in it) */
};

/* Routes (lel_api.c maps paths and methods onto these). */
enum lel_route {
    R_NONE = 0,
    R_HEALTH,
    R_ADMIN_TEAMS,
    R_ADMIN_TEAM_LIMITS, /* PUT /admin/teams/{teamID}/limits */
    R_ADMIN_BACKUP,
    R_KEYS_CREATE, R_KEYS_LIST, R_KEY_DELETE,
    R_TEAM_GET, R_MEMBERS_CREATE, R_MEMBERS_LIST, R_MEMBER_DELETE,
    R_SBX_LIST, R_SBX_CREATE, R_SBX_GET, R_SBX_KILL, R_SBX_PAUSE, R_SBX_RESUME, R_SBX_CONNECT,
    R_SBX_TIMEOUT, R_SBX_REFRESH, R_SBX_LOGS, R_SBX_METRICS, R_SBX_SNAPSHOT, R_SBX_RESTORE,
    R_SBX_COMMANDS, R_SBX_FILES_PUT, R_SBX_FILES_GET, R_SBX_FILES_DELETE,
    R_SNAP_LIST, R_SNAP_DELETE,
    R_TPL_CREATE, R_TPL_LIST, R_TPL_GET, R_TPL_DELETE, R_TPL_BUILD, R_TPL_CONTEXT,
    R_IMG_LIST, R_IMG_GET, R_IMG_PUT, R_IMG_DELETE,
    R_SBX_NETWORK, /* PUT /sandboxes/{id}/network */
    R_OPENAPI, R_DOCS, R_DOCS_ASSET, /* GET /openapi.json, /docs, /docs/{file}: public, like R_HEALTH */
    R_METRICS, /* GET /metrics: the admin token (X-Admin-Token or Authorization: Bearer) */
    /* E2B's shapes (src/api/lel_api_e2b.c): POST /sandboxes/{id}/snapshots, POST /sandboxes/{id}/fork */
    R_SBX_SNAPSHOTS, R_SBX_FORK,
    R_CLUSTER_NODES, /* GET /cluster/nodes (admin; src/cluster) */
    /* E2B's template builder: POST /v3/templates, GET and PUT /templates/{id}/files/{hash} (c->id2),
     * POST /v2/templates/{id}/builds/{buildID}, GET /templates/{id}/builds/{buildID}/status,
     * GET /templates/aliases/{alias}, POST and DELETE /templates/tags, GET /templates/{id}/tags */
    R_TPL_E2B_CREATE, R_TPL_FILES, R_TPL_FILES_PUT, R_TPL_E2B_BUILD, R_TPL_BUILD_STATUS, R_TPL_ALIAS,
    R_TPL_TAGS_ADD, R_TPL_TAGS_DEL, R_TPL_TAGS_GET,
    R_TPL_REBUILD, /* POST /templates/{id}: a new build from a POST /templates body (src/template/lel_template_rebuild.c) */
    /* a request for a server in the sandbox (c->id, c->proxy_port, c->proxy_path): by the path form
     * with the API key (R_SBX_PORT), by Host or E2B's headers (R_PORT_PUBLIC, no key) */
    R_SBX_PORT, R_PORT_PUBLIC,
    /* E2B's data plane (src/envd), routed by E2b-Sandbox-Id: c->id the sandbox, c->id2 the RPC
     * ("process.Process/Start") for R_ENVD_RPC */
    R_ENVD_HEALTH, R_ENVD_FILES_GET, R_ENVD_FILES_POST, R_ENVD_RPC,
};
#define LEL_ROUTE_IS_ENVD(r) ((r) >= R_ENVD_HEALTH)

/** True when an actor should drop a call unprocessed: its client is gone (h2 reset or closed
 * connection) and nothing has been applied yet, so queued work does not pile up. Creation is
 * never dropped: its actor already exists and must settle. */
static inline int lel__abandoned(lel_call_t *c)
{
    return atomic_load(&c->cancelled) && c->route != R_SBX_CREATE;
}

/* lel_core.c: where the data dir keeps things, and records from older versions */

/** <data_dir>/snapshots/<name>.img */
void lel_core_image_path(lel_server_t *srv, const char *name, char *buf, size_t n);
/** <data_dir>/snapshots/<id>.raw: a snapshot's memory unpacked for copy-on-write mapping. */
void lel_core_raw_path(lel_server_t *srv, const char *id, char *buf, size_t n);
/** The root file system lives in the guest's memory, so a record's diskSizeMB is its
 * memoryMB; an older record (which said 512) is corrected in place and in `cf` at `key`. */
void lel_core_fix_disk(lel_server_t *srv, enum lel_cf cf, const char *key, json_t *rec);

#endif
