/* Internals shared by the template actor's files: lel_template.c (records, API) and
 * lel_build.c (the builder). Everything here runs on the template's actor unless it says so. */
#ifndef LEL_TEMPLATE_INT_H
#define LEL_TEMPLATE_INT_H

#include <sys/stat.h>
#include "lel_template.h"

/* A template's build status, as its record's buildStatus says it. */
enum lel_tpl_status { TPL_WAITING = 0, TPL_BUILDING, TPL_READY, TPL_ERROR };

struct lel_template {
    lel_server_t *srv;
    char team_id[LEL_ID_LEN + 16];
    char id[LEL_ID_LEN + 1];
    char name[132];
    int cpu, mem_mb, disk_mb;
    atomic_int in_use;      /* sandboxes (not killed) started from it */
    atomic_int image_ready; /* a built image exists: sandboxes restore from it */
    atomic_int status;      /* enum lel_tpl_status, mirrored from t->rec for the loop threads */
    int deleted;            /* actor-owned: DELETE went through; later messages change nothing */
    json_t *rec;            /* actor-owned */
    lel_actor_t *actor;     /* self (the registry holds the reference) */
    struct lel_build_state *build; /* the build in progress, or NULL */
    json_t *defaults;       /* {env, workdir, user} commands inherit; read-only after creation (any thread) */
    char image_id[LEL_ID_LEN + 1]; /* the image it holds a use of (fromImage, or its parent's), else "" */
    struct lel_ctx_upload *ctx;    /* actor-owned: uploads in progress (the context, E2B's files) */
    uint32_t ctx_seq;              /* actor-owned: the next upload's id */
    json_t *retired;               /* defaults replaced by a rebuild, freed with the template (a
                                      reader on another thread may still hold one) */
    /* the built image's file stem under templates/: "<id>.<buildID>" (each build its own files,
     * so diffs over an older build's image keep their base), or "<id>" for an image built before
     * that; written by the build while image_ready is 0, read under image_lock */
    pthread_mutex_t image_lock;
    char image_stem[2 * LEL_ID_LEN + 8];
    /* its warm pool (lel_template_pool.c), under pool_lock: VMs restored ahead from its image */
    pthread_mutex_t pool_lock;
    struct lel_warm_vm *warm;
    int nwarm;
    int warm_on;     /* a sandbox started from it since the daemon started (base: always) */
    int warm_queued; /* on the filler's queue */
    int warm_closed; /* deleted, or the daemon stops: never filled again */
    /* what a sandbox of it writes first (the pages its first command's VM had written, learnt
     * once per image): the filler pre-faults them in each pooled VM; malloc'd, ascending */
    uint32_t *write_set;
    uint64_t nwrite_set;
    int write_learnt;
    struct stat write_image; /* the image file it was learnt over (a rebuild learns again) */
};

/* lel_template.c, for its other files */
lel_actor_t *lel__template_new(lel_server_t *srv, json_t *rec);
void lel__template_rec_path(const char *team, const char *id, char *buf, size_t n);
json_t *lel__template_public_view(lel_server_t *srv, json_t *rec, const char *team);
/** Indexes (removes) its name, aliases and E2B tags ("name:tag") in srv->template_names. */
void lel__template_names_put(struct lel_template *t);
void lel__template_names_del(struct lel_template *t);
int lel__template_name_taken(lel_server_t *srv, const char *team, const char *name);

/* lel_template_e2b.c: E2B's template builder calls, on the template's actor (1: the call is
 * kept, an upload streams in) */
int lel__template_e2b_call(struct lel_template *t, lel_call_t *c);
/** <data_dir>/templates/<id>.files/<hash>: a COPY step's files, uploaded by E2B's SDK. */
void lel__template_files_path(struct lel_template *t, const char *hash, char *buf, size_t n);
/** Removes the template's uploaded files (DELETE). */
void lel__template_files_remove(struct lel_template *t);

/* lel_template_rebuild.c: a new build of an existing template, on its actor */
/** POST /templates/{id}: the body of POST /templates, checked before anything changes. */
void lel__template_rebuild(struct lel_template *t, lel_call_t *c);
/** 1 with the 409 set when a rebuild cannot replace the image now (sandboxes use it, uploads run). */
int lel__template_rebuild_refused(struct lel_template *t, lel_call_t *c);
/** Puts `rec` (stored already; its reference is taken) in place of the template's record: the
 * running build is abandoned, the old image dropped and its image use given back, the names
 * indexed again, cpu and memory taken from it. */
void lel__template_swap_build(struct lel_template *t, json_t *rec);

/* lel_template_def.c: the definition of POST /templates (on the team actor). */
/** Parses and checks the body into a definition; NULL with the error set on c. A fromImage
 * definition holds a use of the image (the template made from it gives it back when freed). */
json_t *lel__template_parse_definition(lel_server_t *srv, lel_call_t *c, long long *cpu, long long *mem);
/** The image a definition holds a use of (fromImage's, or the parent template's: its
 * imageUse), or NULL. */
const char *lel__template_image_id(json_t *def);
/** A template name: 1..128 of a-z 0-9 - _ . */
int lel__template_valid_name(const char *n);
/** Checks steps; 0, or -EINVAL with a 400 naming the field. */
int lel__template_check_steps(lel_call_t *c, json_t *steps);
/** A file step's mode: an integer 0..07777 or an octal string ("0644"). 0 or -EINVAL. */
int lel__template_mode(json_t *mode, int *out);
/** What an env, workdir or user step changes in defaults {env, workdir, user}. */
void lel__template_apply_defaults(json_t *defaults, json_t *step);
/** The definition's final defaults (a new reference; base's for records without them). */
json_t *lel__template_defaults_of(json_t *def);

/** Its status from a buildStatus string (unknown: waiting). */
enum lel_tpl_status lel__template_status(const char *s);
/** <data_dir>/templates/<id>.img (raw = 0) or .raw (its unpacked memory). */
void lel__template_image(struct lel_template *t, char *buf, size_t n, int raw);
/** The files of build `build_id`'s image (its raw memory with raw). */
void lel__template_build_image(struct lel_template *t, const char *build_id, char *buf, size_t n, int raw);
/** Makes build `build_id`'s image the template's: its layer record (owner: the template) made,
 * the previous image's owner reference dropped (its files go when no sandbox or diff needs them). */
int lel__template_image_switch(struct lel_template *t, const char *build_id);
/** The template lets its current image go (deleted or rebuilt from scratch): its owner
 * reference is dropped; the files stay while sandboxes or diffs need them. */
void lel__template_image_drop(struct lel_template *t);
/** Starts build `build_id` of template t; it proceeds one phase per LEL_MSG_BUILD_STEP
 * (lel_build.c). A command in the guest (a `run` step, readyCmd) is started and then polled,
 * so the actor answers calls, a DELETE among them, while it runs. */
void lel__template_build(struct lel_template *t, const char *build_id);
void lel__template_build_step(struct lel_template *t);
/** Drops a build in progress without touching its records: its VM is destroyed (a command
 * running in it ends with it) and its build slot released. For shutdown, and for a DELETE that
 * cancels the build (which removes the records itself). */
void lel__template_build_abandon(struct lel_template *t);

/* lel_template_pool.c: the warm pool */
/** Has the filler top up t's pool (`turn_on`: from now on, else only when it is on). Any thread. */
void lel__template_pool_want(struct lel_template *t, int turn_on);
/** Destroys t's pooled VMs; `close`: and never fills it again (DELETE, the stop). Any thread. */
void lel__template_pool_drain(struct lel_template *t, int close);

/* lel_build_image.c: the image's root filesystem image (rofs), built once per image. */
struct lel_img_rofs;
struct lel_rofs_stats;
/** Where the rofs of image `image_id` is (or goes): beside its tree, named after the base. */
void lel__img_rofs_path(lel_server_t *srv, const char *image_id, char *buf, size_t n);
/** Starts building the rofs at `out` from the tree at `rootfs` on a thread of its own, or
 * takes the file already there. NULL when no thread could start. */
struct lel_img_rofs *lel__img_rofs_start(const char *rootfs, const char *out);
/** 1 still building; 0 done (its stats, and whether the file was there already); -1 failed
 * (err filled). Never blocks. */
int lel__img_rofs_poll(struct lel_img_rofs *b, struct lel_rofs_stats *st, int *reused, char *err, size_t errlen);
/** The build's use of it ends (a build still running goes on to its end and leaves its file). */
void lel__img_rofs_free(struct lel_img_rofs *b);
struct lel_vm;
/* lel_template_dockerfile.c */
/** Turns a Dockerfile into *from_image or *from_template (a name), *steps and *start (the
 * startCmd line, malloc'd, "" when none). 0, or -EINVAL with a 400 naming the line. */
int lel__template_dockerfile(lel_call_t *c, const char *text, json_t **from_image, json_t **from_template, json_t **steps,
                             char **start);
/** ENTRYPOINT and CMD (arrays: exec form, strings: shell form, NULL: none) as one /bin/sh line,
 * combined as Docker does: malloc'd, "" when both are empty, NULL without memory. */
char *lel__template_start_line(json_t *entrypoint, json_t *cmd);

/* lel_build_context.c: the build context (PUT /templates/{id}/context) and copy steps. */
/** <data_dir>/templates/<id>.context */
void lel__template_context_path(struct lel_template *t, char *buf, size_t n);
/** Whether the definition has copy steps (its build waits for the context). */
int lel__template_needs_context(json_t *def);
/** PUT /templates/{id}/context: 1 when the call is kept (its body streams in), else answered. */
int lel__template_context_put(struct lel_template *t, lel_call_t *c);
/** E2B's upload of a COPY step's files (a tar, any compression) to `path`; same returns. */
int lel__template_files_put(struct lel_template *t, lel_call_t *c, const char *path);
/** More of upload `id`'s body arrived (LEL_MSG_XFER); at the end of the context the build is started. */
void lel__template_context_step(struct lel_template *t, uint32_t id);
/** Uploads in progress are answered 503 and dropped (the template goes). */
void lel__template_context_abandon(struct lel_template *t);
/** A copy step's files (from the context, or with filesHash from E2B's upload of them) into the
 * build VM as GUEST_COPY_TAR, which the caller unpacks. 0, or -1
 * with err filled. `what` gets the step's name for the logs. */
int lel__template_copy_step(struct lel_template *t, struct lel_vm *vm, size_t i, json_t *st, char *what, size_t whatlen,
                            char *err, size_t errlen);
#define GUEST_COPY_TAR "/.lelantos-copy.tar"

#endif
