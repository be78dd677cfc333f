/* A thread-safe map from string ids to objects (libc tsearch under a rwlock). Used for the
 * server's sandbox, team, template and key indexes. Values are not owned by the registry. */
#ifndef LEL_REGISTRY_H
#define LEL_REGISTRY_H

#include <stddef.h>

typedef struct lel_registry lel_registry_t;

lel_registry_t *lel_registry_new(void);
/** Frees the map (not the values). */
void lel_registry_free(lel_registry_t *r);
/** Inserts; returns 0, -EEXIST or -ENOMEM. */
int lel_registry_put(lel_registry_t *r, const char *id, void *value);
/** Looks up `id`; when found and `fn` is given, calls fn(value, ctx) under the lock, so the
 * caller can take a reference or copy fields without racing with removal. Returns the value or
 * NULL (without `fn` the value may only be used if it is never removed, e.g. teams). */
void *lel_registry_get(lel_registry_t *r, const char *id, void (*fn)(void *value, void *ctx), void *ctx);
/** Removes `id` and returns its value (NULL when absent). */
void *lel_registry_del(lel_registry_t *r, const char *id);
/** Calls fn for every entry in id order, under the read lock (fn must not touch the registry). */
void lel_registry_foreach(lel_registry_t *r, void (*fn)(void *ctx, const char *id, void *value), void *ctx);
size_t lel_registry_count(lel_registry_t *r);

#endif
