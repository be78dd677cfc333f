/* Internals shared by the sandbox actor's files: lel_sandbox.c (the actor, its lifecycle and
 * creation), lel_sandbox_vm.c (its microVM: start, images, snapshots, console, metrics) and
 * lel_sandbox_list.c (GET /sandboxes, GET /snapshots). Everything here runs on the sandbox's
 * actor except the listings, which run on the team actor and read only the store. */
#ifndef LEL_SANDBOX_INT_H
#define LEL_SANDBOX_INT_H

#include "../core/lel_layer.h"
#include "../envd/lel_envd.h"
#include "../template/lel_template.h"
#include "lel_sandbox.h"
#include "../vmm/lel_vmm.h"

#define SAMPLES 720 /* metrics kept per sandbox (an hour at the default 5 s) */
#define TRIM_MIN_PAGES 2048 /* free memory (8 MiB) a guest must hold before the host takes it back */

struct sample {
    int64_t ts;
    double cpu_pct;
    uint64_t mem_used, mem_total, disk_used, disk_total;
    uint64_t net_in, net_out; /* bytes received from and sent to the network so far */
};

enum state { S_RUNNING = 0, S_PAUSED, S_KILLED };

struct rest_stream;

/* A command running in the guest; its call is answered when the guest says it ended, or
 * (streamed, "stream": true) its answer is the stream st. */
struct pending_cmd {
    uint32_t id;
    lel_call_t *c;              /* NULL when streamed */
    struct rest_stream *st;     /* lel_sandbox_stream.c */
    int64_t t0_ms, deadline_ms; /* monotonic */
    struct pending_cmd *next;
};
static const char *const state_names[] = {"running", "paused", "killed"};

/* A file transfer in progress: an upload whose body arrives in pieces, or a download sent in
 * pieces; one guest chunk at a time either way. */
struct xfer {
    uint32_t id;
    int upload, dead; /* dead: the VM went away; answered at the next message */
    int started, in_place; /* upload: its first chunk went; an older guest writes in place */
    uint32_t tmp_id;  /* upload: the guest's temporary, named by the first chunk's answer */
    lel_call_t *c;
    size_t plen;      /* the path's length with its NUL, at the front of buf */
    uint64_t off, total;
    char *buf;        /* path, NUL, then up to a chunk of data */
    size_t fill;
    /* upload into guest pages (LEL_OP_FILE_UPLOAD_PAGES): the pages the guest gave for
     * [off, off + len) of its temporary, by the VM that gave them; fill bytes in */
    int pages;        /* 1: this way; 0: through bulk (decided by the first chunk) */
    uint8_t **pg;
    size_t npg;
    uint64_t len;
    lel_vm_t *pvm;
    struct xfer *next;
};

struct lel_sandbox {
    lel_server_t *srv;
    int event_posted;      /* a LEL_MSG_CMD_EVENT is queued (atomic: set by the vCPU thread, cleared here) */
    lel_team_t *team;
    lel_actor_t *actor;    /* self; the registry holds the reference */
    lel_actor_t *tpl;      /* template actor, referenced while the sandbox exists */
    char id[LEL_ID_LEN + 1];
    json_t *rec;           /* the stored record: the public Sandbox plus private fields */
    json_t *view;          /* the public view of the stored record; immutable, shared read-only with
                              replies and published to the loop threads under view_lock */
    pthread_mutex_t view_lock;
    char *view_json;       /* the view encoded as JSON once per change (most GETs want exactly this) */
    size_t view_json_len;
    enum state state;
    int64_t end_at_ms;     /* wall clock */
    int64_t timer_gen;
    int64_t last_event_ms;
    uint32_t event_seq;
    int holds_slot;        /* counts against team->max_sandboxes (and slot_mb against max_memory_mb) */
    int slot_mb;           /* the memory its slot holds */
    int holds_template;    /* counts as a user of its template */
    int learn_writes;      /* a pooled VM whose first command teaches its template what it writes */
    lel_vm_t *vm;          /* the microVM while running (NULL when paused, killed, or API-only) */
    char *fork_image;      /* create only: the image it starts from (a snapshot, or its template's) */
    char *memory_file;     /* create only: the template's raw memory, mapped copy-on-write */
    int fork_transient;    /* create only: fork_image is a fork's temporary image (it goes once the forks
                              started): later diffs are against its base, which the sandbox holds */
    int64_t sample_gen;    /* metrics timer generation */
    uint64_t cpu_prev_ns;
    int64_t cpu_prev_ms;
    struct sample *samples; /* ring of SAMPLES */
    size_t nsamples, sample_next;
    struct pending_cmd *cmds; /* commands running in the guest */
    int ncmds;
    struct rest_stream *rstreams; /* streamed answers of REST commands (lel_sandbox_stream.c) */
    uint32_t rstream_seq;
    struct xfer *xfers;       /* file transfers in progress */
    int nxfers;
    uint32_t xfer_seq;
    lel_call_t *kept;      /* set by a handler that answers its call later (a command) */
    lel_envd_t *envd;      /* E2B's data plane (src/envd), made at its first call */
    struct lel_net_ep *ep; /* its network endpoint (src/net) while the VM runs */
    uint64_t net_in, net_out; /* bytes of endpoints gone (pause, restore), for the metrics */
    int stopping;          /* the daemon is stopping: calls that would change it answer 503 */
    int stop_pending;      /* ...and it still has to pause (or give up) and tell the server */
    int64_t stop_deadline; /* monotonic ms: a pause for the stop starts no later */
};

/** Record fields that never leave the server. */
extern const char *const lel__sbx_private_fields[];
/** The same for snapshot records. */
extern const char *const lel__snap_private_fields[];

/* lel_sandbox.c */
json_t *lel__sbx_public_view(struct lel_sandbox *s);
/** The public view plus the sandbox's envdAccessToken: the answer to create, resume and
 * connect (E2B's Sandbox), which its data plane (src/envd) requires as X-Access-Token. */
json_t *lel__sbx_access_view(struct lel_sandbox *s);
/** Puts a fresh random envdAccessToken into `rec`. 0 or -errno. */
int lel__sbx_new_token(json_t *rec);
void lel__sbx_record_path(struct lel_sandbox *s, char *buf, size_t n);
/** The memoryMB of a sandbox record (0 when absent). */
int lel__sbx_rec_mb(const json_t *rec);
/** Takes a slot of the team's concurrency and memory quotas for a sandbox of `mb` MiB: 1, or 0
 * with the reason (E2B's wording, for the 429) in `why`. */
int lel__sbx_slot_take(lel_team_t *t, int mb, char *why, size_t n);
/** Takes a slot past the quotas (a sandbox admitted before a restart). */
void lel__sbx_slot_force(lel_team_t *t, int mb);
/** Gives back a slot taken by either. */
void lel__sbx_slot_put(lel_team_t *t, int mb);
void lel__sbx_slot_release(struct lel_sandbox *s);
/** Adds a log event to `b`. */
void lel__sbx_add_event(struct lel_sandbox *s, lel_batch_t *b, const char *level, const char *msg, json_t *fields);
/** Writes `rec` as the new record plus one event; on success it becomes s->rec. */
int lel__sbx_commit(struct lel_sandbox *s, json_t *rec, const char *level, const char *msg, json_t *fields);
/** lel__sbx_commit with image reference changes in the same batch (lel_layer_write). */
int lel__sbx_commit_ops(struct lel_sandbox *s, json_t *rec, const char *level, const char *msg, json_t *fields,
                        const struct lel_layer_op *ops, size_t nops);
json_t *lel__sbx_with_state(struct lel_sandbox *s, enum state st, int64_t end_at);

/** Starts the paused sandbox's VM again for `t` seconds (record, event, timer); 0, or -errno with
 * the error set on c. */
int lel__sbx_resume(struct lel_sandbox *s, long long t, lel_call_t *c, const char *why);
/** Kills the sandbox (record, event, VM, files); `why` starting with "error" logs at error level. */
int lel__sbx_kill(struct lel_sandbox *s, const char *why);

/** A new sandbox object and its actor for `rec` (taken); NULL when out of memory. */
struct lel_sandbox *lel__sbx_new(lel_server_t *srv, lel_team_t *team, const char *id, json_t *rec);
/** Starts a created sandbox (its VM from s->fork_image, or a boot), stores it with the event
 * `why` (`fields` taken) and arms its timers. 0, or -1 with *status and msg for the answer
 * (its team slot is given back; the caller reaps it). */
int lel__sbx_start(struct lel_sandbox *s, const char *why, json_t *fields, int *status, char *msg, size_t n);
/** Removes a killed (or never started) sandbox's records and its registry entry. */
void lel__sbx_reap(struct lel_sandbox *s);

/* lel_sandbox_fork.c: POST /sandboxes/{id}/fork (E2B's) */
struct lel_fork_job;
/** On the source's actor: its VM is imaged (a brief stop), then `count` new sandboxes start from
 * that image on their own actors; the call (kept) is answered once all have. */
void lel__sbx_fork(struct lel_sandbox *s, lel_call_t *c);
/** LEL_MSG_FORK, on a new fork's actor: its VM starts; its place `i` in the job is filled. */
void lel__sbx_fork_start(struct lel_sandbox *s, struct lel_fork_job *job, size_t i);

/* lel_sandbox_vm.c */
void lel__sbx_pause_image(struct lel_sandbox *s, char *buf, size_t n);
/** Boots (image NULL) or restores the VM; `transient`: image is its pause image (later diffs are
 * against that image's base). */
int lel__sbx_vm_start(struct lel_sandbox *s, const char *image, const char *memory_file, int transient, char *err,
                      size_t errlen);
/** A create from a template: its VM from the template's warm pool (ready, nothing to restore).
 * 0, or -ENOENT when the pool has none (then lel__sbx_vm_start restores one). */
int lel__sbx_vm_adopt(struct lel_sandbox *s);
/** The memory file for a start from s->fork_image: a template's, or the snapshot's (made now). */
const char *lel__sbx_fork_memory(struct lel_sandbox *s, char *raw, size_t n);
int lel__sbx_vm_save(struct lel_sandbox *s, const char *path, struct lel_snap_info *info, char *err, size_t errlen);
void lel__sbx_vm_release(struct lel_sandbox *s);
void lel__sbx_sample(struct lel_sandbox *s);
void lel__sbx_arm_sampler(struct lel_sandbox *s);
void lel__sbx_get_metrics(struct lel_sandbox *s, lel_call_t *c);
void lel__sbx_take_snapshot(struct lel_sandbox *s, lel_call_t *c);
void lel__sbx_restore_snapshot(struct lel_sandbox *s, lel_call_t *c);
void lel__sbx_console_line(struct lel_sandbox *s, const char *line);

/* lel_sandbox_data.c */
/** Starts a command in the guest; the call is kept (s->kept) and answered when it ends. */
void lel__sbx_command(struct lel_sandbox *s, lel_call_t *c);
/** The guest said commands ended: answers their calls. */
void lel__sbx_cmd_event(struct lel_sandbox *s);
/** Command `id`'s deadline (its timeout plus grace) passed: a guest that has not ended it is wedged. */
void lel__sbx_cmd_check(struct lel_sandbox *s, uint32_t id);
/** Kills the processes of every running command; their results come as usual (exit 137). */
void lel__sbx_cmds_kill(struct lel_sandbox *s);
/** Answers every running command's call with an error (the VM is going away). */
void lel__sbx_cmds_fail(struct lel_sandbox *s, int status, const char *msg);
/** PUT /files: the body goes to the guest a chunk at a time as it arrives; the call is kept. */
void lel__sbx_file_put(struct lel_sandbox *s, lel_call_t *c);
/** GET /files: a file larger than a chunk is answered in pieces, one guest read each. */
void lel__sbx_file_get(struct lel_sandbox *s, lel_call_t *c);
/** LEL_MSG_XFER: the transfer `id` can go on. */
void lel__sbx_xfer_step(struct lel_sandbox *s, uint32_t id);
/** The VM is going away: uploads are answered with the error, downloads cut at their next piece. */
void lel__sbx_xfers_fail(struct lel_sandbox *s, int status, const char *msg);
/** Frees what is left of the transfers (the actor's end). */
void lel__sbx_xfers_free(struct lel_sandbox *s);
/** DELETE /files: a file, a symlink or an empty directory. */
void lel__sbx_file_delete(struct lel_sandbox *s, lel_call_t *c);

/* lel_sandbox_stream.c */
/** After the guest's doorbell: streamed commands' output and stdin room go to their owners. */
void lel__sbx_streams_poll(struct lel_sandbox *s);
/** Makes c's answer a stream of the command pc's events (its start event first); pc->st is set
 * and pc->c cleared. 0, or -ENOMEM (c untouched). */
int lel__sbx_stream_open(struct lel_sandbox *s, lel_call_t *c, struct pending_cmd *pc);
/** pc ended (its output's rest in the bulk area): the last output and the end event. */
void lel__sbx_stream_end(struct lel_sandbox *s, struct pending_cmd *pc, const struct lel_run_result *res);
/** pc's stream ends with an error event instead. */
void lel__sbx_stream_fail(struct lel_sandbox *s, struct pending_cmd *pc, int status, const char *msg);
/** LEL_MSG_CMD_PIECE: stream `sid` may send its next piece. */
void lel__sbx_stream_piece(struct lel_sandbox *s, uint32_t sid);
/** Frees what is left of the streams (the actor's end). */
void lel__sbx_streams_free(struct lel_sandbox *s);
/* lel_sandbox_net.c: its network (src/net) */
/** The VM runs (booted, restored): its endpoint, with the record's policy. */
void lel__sbx_net_attach(struct lel_sandbox *s);
/** The VM goes: its connections end (before lel_vm_destroy). */
void lel__sbx_net_detach(struct lel_sandbox *s);
/** A request for a server in the sandbox (R_SBX_PORT, R_PORT_PUBLIC): forwarded, or refused. */
void lel__sbx_port_call(struct lel_sandbox *s, lel_call_t *c);
/** GET and PUT /sandboxes/{id}/network. */
void lel__sbx_network_call(struct lel_sandbox *s, lel_call_t *c);
/** Create: the body's allow_internet_access, network and autoResume into the record, with a
 * trafficAccessToken when public traffic is not allowed, and the domain. 0 or -ENOMEM. */
int lel__sbx_net_record(lel_server_t *srv, lel_call_t *c, json_t *rec);
/** Bytes in and out so far (all its endpoints). */
void lel__sbx_net_bytes(struct lel_sandbox *s, uint64_t *in, uint64_t *out);

/* lel_sandbox_envd.c: E2B's data plane (src/envd) */
/** What the sandbox lends envd for one call or message. */
void lel__sbx_envd_host(struct lel_sandbox *s, struct lel_envd_host *h);
/** A data-plane call (R_ENVD_*); kept (s->kept) when envd answers it later. */
void lel__sbx_envd_call(struct lel_sandbox *s, lel_call_t *c);
/** LEL_MSG_ENVD_* */
void lel__sbx_envd_msg(struct lel_sandbox *s, int type, uint32_t arg);
/** A guest command that is not the REST API's ended: envd's if it returns 1. */
int lel__sbx_envd_ended(struct lel_sandbox *s, uint32_t id, const struct lel_run_result *res);
/** The daemon is stopping: envd's processes are killed too. */
void lel__sbx_envd_kill_all(struct lel_sandbox *s);
/** Guest commands running: the REST API's and envd's (a pause, snapshot or restore waits for them). */
int lel__sbx_ncmds(struct lel_sandbox *s);

#endif
