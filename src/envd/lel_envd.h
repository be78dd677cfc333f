/* E2B's in-sandbox agent protocol ("envd"), served by lelantosd on the host over our own
 * guest agent, so the unmodified E2B SDK's sandbox.commands.* and sandbox.files.* work.
 * Facts about the protocol: ../shared/docs/E2B-ENVD.md (the SDK's behaviour wins).
 *
 * What it serves: GET /health; GET and POST /files; the Connect RPCs process.Process/{Start,
 * Connect, List, SendSignal, SendInput, StreamInput, CloseStdin, Update} and filesystem.Filesystem/{Stat,
 * MakeDir, Move, ListDir, Remove, WatchDir, CreateWatcher, GetWatcherEvents, RemoveWatcher}.
 * Commands run through the guest's command path, streamed (the start event at once, data as
 * the guest hands it over, the end); Stat and ListDir ask the guest's file calls, MakeDir, Move
 * and Remove run small busybox scripts as commands, watches are the guest's (fs/hwatch.c);
 * files move through the guest's file calls.
 *
 * Threads and ownership: one lel_envd_t per sandbox, owned by the sandbox actor and used only
 * on it. The actor lends what envd needs for each call in a struct lel_envd_host (borrowed for
 * that call only). Calls envd keeps (a unary call waiting for a guest command, an upload) and
 * streamed answers are envd's until it finishes them; lel_envd_vm_gone finishes all of them.
 * Below src/sandbox, above src/core and src/vmm. */
#ifndef LEL_ENVD_H
#define LEL_ENVD_H

#include "../core/lel_core.h"
#include "../vmm/lel_vmm.h"

typedef struct lel_envd lel_envd_t;

/** What the sandbox lends envd for one call or message. */
struct lel_envd_host {
    lel_server_t *srv;
    lel_actor_t *actor;     /* the sandbox's: envd's messages (LEL_MSG_ENVD_*) go to it */
    lel_vm_t *vm;           /* the running VM, or NULL (paused, killed, API-only) */
    const char *sandbox_id;
    const char *token;      /* the sandbox's envdAccessToken (NULL: none is required) */
    json_t *tpl_env;        /* its template's env (the image config's, env steps; borrowed, may be NULL) */
    json_t *env_vars;       /* the sandbox's envVars (borrowed), the commands' base environment */
    const char *workdir;    /* its template's WORKDIR (image config, workdir steps; borrowed), or NULL
                             * when it has none or it is "/": then the user's home is the default */
    const char *not_running; /* why the data plane cannot answer (paused, killed...), or NULL */
};

lel_envd_t *lel_envd_new(void);
/** Frees the state; everything it held must have been finished (lel_envd_vm_gone). */
void lel_envd_free(lel_envd_t *e);
/** Handles a data-plane call (c->route R_ENVD_*). Returns 1 when envd keeps the call (it
 * answers later with lel_call_done), 0 when the caller finishes it (answered now, or made a
 * streamed answer whose pieces envd hands over afterwards). */
int lel_envd_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c);
/** LEL_MSG_ENVD_PIECE, LEL_MSG_ENVD_TICK and LEL_MSG_ENVD_BODY with their arg. */
void lel_envd_msg(lel_envd_t *e, const struct lel_envd_host *h, int type, uint32_t arg);
/** A guest command ended that is not the REST API's: envd's if it returns 1 (its output is
 * read from the bulk area now). */
int lel_envd_cmd_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res);
/** The guest said command `id` has output or stdin room (LEL_POLL_* flags from lel_vm_cmd_poll):
 * envd's if it returns 1. */
int lel_envd_cmd_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, unsigned flags);
/** Guest commands envd has running (processes and file-system helpers): a pause waits for them. */
int lel_envd_running(const lel_envd_t *e);
/** It watches directories in the guest: the sandbox asks the guest what is ready on its doorbell. */
int lel_envd_watching(const lel_envd_t *e);
/** Kills every process it started (the daemon is stopping); their ends come as usual. */
void lel_envd_kill_all(lel_envd_t *e, const struct lel_envd_host *h);
/** The VM is going away: kept calls are answered, streams end with an error, processes are forgotten. */
void lel_envd_vm_gone(lel_envd_t *e, const char *why);

#endif
