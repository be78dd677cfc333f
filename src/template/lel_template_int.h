/* Internals shared by the template actor's files: lel_template.c (records, API) and
 * lel_build.c (the builder). Everything here runs on the template's actor unless it says so. */
#ifndef LEL_TEMPLATE_INT_H
#define LEL_TEMPLATE_INT_H

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
};

/** Its status from a buildStatus string (unknown: waiting). */
enum lel_tpl_status lel__template_status(const char *s);
/** <data_dir>/templates/<id>.img (raw = 0) or .raw (its unpacked memory). */
void lel__template_image(struct lel_template *t, char *buf, size_t n, int raw);
/** Starts build `build_id` of template t; it proceeds one phase per LEL_MSG_BUILD_STEP
 * (lel_build.c). A command in the guest (a `run` step, readyCmd) is started and then polled,
 * so the actor answers calls, a DELETE among them, while it runs. */
void lel__template_build(struct lel_template *t, const char *build_id);
void lel__template_build_step(struct lel_template *t);
/** Drops a build in progress without touching its records: its VM is destroyed (a command
 * running in it ends with it) and its build slot released. For shutdown, and for a DELETE that
 * cancels the build (which removes the records itself). */
void lel__template_build_abandon(struct lel_template *t);

#endif
