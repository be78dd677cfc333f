/* Internals shared by the template actor's files: lel_template.c (records, API) and
 * lel_build.c (the builder). Everything here runs on the template's actor. */
#ifndef LEL_TEMPLATE_INT_H
#define LEL_TEMPLATE_INT_H

#include "../server/lel_server_int.h"

struct lel_template {
    lel_server_t *srv;
    char team_id[LEL_ID_LEN + 16];
    char id[LEL_ID_LEN + 1];
    int cpu, mem_mb, disk_mb;
    atomic_int in_use;      /* sandboxes (not killed) started from it */
    atomic_int image_ready; /* a built image exists: sandboxes restore from it */
    json_t *rec;            /* actor-owned */
};

/** <data_dir>/templates/<id>.img (raw = 0) or .raw (its unpacked memory). */
void lel__template_image(struct lel_template *t, char *buf, size_t n, int raw);
/** Runs build `build_id` of template t to ready or error (lel_build.c). */
void lel__template_build(struct lel_template *t, const char *build_id);

#endif
