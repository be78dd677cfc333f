/* The core's few functions: paths in the data dir, records from older versions. */
#include "lel_core.h"

#include <stdio.h>

void lel_core_image_path(lel_server_t *srv, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/snapshots/%s.img", srv->cfg.data_dir, name);
}

void lel_core_raw_path(lel_server_t *srv, const char *id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/snapshots/%s.raw", srv->cfg.data_dir, id);
}

void lel_core_fix_disk(lel_server_t *srv, enum lel_cf cf, const char *key, json_t *rec)
{
    json_t *mem = json_object_get(rec, "memoryMB");
    if (mem && !json_equal(json_object_get(rec, "diskSizeMB"), mem) && json_object_set(rec, "diskSizeMB", mem) == 0)
        lel_store_put(srv->store, cf, key, rec);
}
