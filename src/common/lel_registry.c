/* lel_registry.h over POSIX tsearch/tdelete; glibc's twalk_r gives ordered iteration. */
#include "lel_registry.h"

#include <errno.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

struct node {
    char *id;
    void *value;
};

struct lel_registry {
    pthread_rwlock_t lock;
    void *root;
    size_t count;
};

static int cmp(const void *a, const void *b)
{
    return strcmp(((const struct node *)a)->id, ((const struct node *)b)->id);
}

lel_registry_t *lel_registry_new(void)
{
    lel_registry_t *r = calloc(1, sizeof(*r));
    if (r)
        pthread_rwlock_init(&r->lock, NULL);
    return r;
}

static void free_node(void *n)
{
    free(((struct node *)n)->id);
    free(n);
}

void lel_registry_free(lel_registry_t *r)
{
    if (!r)
        return;
    tdestroy(r->root, free_node);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

int lel_registry_put(lel_registry_t *r, const char *id, void *value)
{
    struct node *n = malloc(sizeof(*n));
    if (!n || !(n->id = strdup(id))) {
        free(n);
        return -ENOMEM;
    }
    n->value = value;
    pthread_rwlock_wrlock(&r->lock);
    struct node **found = tsearch(n, &r->root, cmp);
    int ret = 0;
    if (!found)
        ret = -ENOMEM;
    else if (*found != n)
        ret = -EEXIST;
    else
        r->count++;
    pthread_rwlock_unlock(&r->lock);
    if (ret < 0)
        free_node(n);
    return ret;
}

void *lel_registry_get(lel_registry_t *r, const char *id, void (*fn)(void *, void *), void *ctx)
{
    struct node key = {(char *)id, NULL};
    void *v = NULL;
    pthread_rwlock_rdlock(&r->lock);
    struct node **found = tfind(&key, &r->root, cmp);
    if (found) {
        v = (*found)->value;
        if (fn)
            fn(v, ctx);
    }
    pthread_rwlock_unlock(&r->lock);
    return v;
}

void *lel_registry_del(lel_registry_t *r, const char *id)
{
    struct node key = {(char *)id, NULL};
    void *v = NULL;
    pthread_rwlock_wrlock(&r->lock);
    struct node **found = tfind(&key, &r->root, cmp);
    if (found) {
        struct node *n = *found;
        v = n->value;
        tdelete(&key, &r->root, cmp);
        r->count--;
        free_node(n);
    }
    pthread_rwlock_unlock(&r->lock);
    return v;
}

struct walk_ctx {
    void (*fn)(void *, const char *, void *);
    void *ctx;
};

static void walker(const void *nodep, VISIT which, void *closure)
{
    if (which != postorder && which != leaf)
        return;
    const struct node *n = *(const struct node *const *)nodep;
    struct walk_ctx *w = closure;
    w->fn(w->ctx, n->id, n->value);
}

void lel_registry_foreach(lel_registry_t *r, void (*fn)(void *, const char *, void *), void *ctx)
{
    struct walk_ctx w = {fn, ctx};
    pthread_rwlock_rdlock(&r->lock);
    twalk_r(r->root, walker, &w);
    pthread_rwlock_unlock(&r->lock);
}

size_t lel_registry_count(lel_registry_t *r)
{
    pthread_rwlock_rdlock(&r->lock);
    size_t n = r->count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}
