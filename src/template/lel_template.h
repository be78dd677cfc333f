/* Templates as others see them: loading, creation, lists and reads (on the team actor), and
 * what a sandbox needs of its template (lookup, readiness, shape, image, use counts). */
#ifndef LEL_TEMPLATE_H
#define LEL_TEMPLATE_H

#include "../core/lel_core.h"

int lel_template_load_all(lel_server_t *srv, char *err, size_t errlen);
/** POST /templates, run on the team actor (names are unique per team). */
void lel_template_create(lel_server_t *srv, lel_call_t *c);
void lel_template_list(lel_server_t *srv, lel_call_t *c);
/** E2B's POST /v3/templates, on the team actor: a template that waits for its steps (POST
 * /v2/templates/{id}/builds/{buildID}). 1 when the call went on to the actor of the template of
 * that name (a rebuild), else 0 (answered). */
int lel_template_e2b_create(lel_server_t *srv, lel_call_t *c);
/** E2B's GET /templates/aliases/{alias}, on the team actor. */
void lel_template_alias(lel_server_t *srv, lel_call_t *c);
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
/** The env (object, borrowed) and working directory commands in its sandboxes inherit
 * (the image's config and the template's env/workdir steps; read-only after creation). */
void lel_template_defaults(lel_actor_t *tpl, json_t **env, const char **workdir);
/** Resources of a template (read-only after creation). */
void lel_template_shape(lel_actor_t *tpl, const char **id, int *cpu, int *mem_mb, int *disk_mb);
/** Counts a sandbox using the template (in_use) and, with `spawned_by`, records a spawn by that
 * team (a built-in's spawns are counted per team); lel_template_release undoes in_use. */
void lel_template_acquire(lel_actor_t *tpl, lel_team_t *spawned_by);
void lel_template_release(lel_actor_t *tpl);
/** When the template has a built image, its paths (image and raw memory, n bytes each); 1 then, else 0. */
int lel_template_image(lel_actor_t *tpl, char *img, char *raw, size_t n);

struct lel_vm;
struct lel_vm_ops;
/** A VM of the template's warm pool (templates.warm_pool): restored from its current image with
 * its clock and random seed set, nobody's before; from now on `ops`/`ctx` are its callbacks.
 * NULL when none is ready (then the caller restores one). The template's pool is kept filled
 * from the first take on. Any thread. */
struct lel_vm *lel_template_take_vm(lel_actor_t *tpl, const struct lel_vm_ops *ops, void *ctx);
/** 1 when the template's pool has not learnt yet what a sandbox writes first: the caller, holding
 * a pooled VM, then calls lel_template_learn_writes after the sandbox's first command. Any thread. */
int lel_template_wants_writes(lel_actor_t *tpl);
/** Learns the pages `vm` (a pooled VM of the template, after its first command) has written, at
 * most LEL_WRITE_SET_MAX of them: from now on the filler pre-faults them in the VMs it restores,
 * so a fresh sandbox's first command does not take those copy-on-write faults. Any thread. */
void lel_template_learn_writes(lel_actor_t *tpl, struct lel_vm *vm);
#define LEL_WRITE_SET_MAX 1024 /* pages (4 MiB): a bigger first write set is a workload's, not the guest's */
/** Starts the pool's filler thread (with VMs and templates.warm_pool > 0); the built-in
 * template's pool fills at once. 0 or -errno. */
int lel_template_pool_start(lel_server_t *srv);
/** Ends the filler and destroys every pooled VM (the stop, before the templates go); a take
 * after it finds none. */
void lel_template_pool_stop(lel_server_t *srv);
/** Frees what is left of the pool, once no actor can take any more (after the worker pool). */
void lel_template_pool_free(lel_server_t *srv);

#endif
