/* The warm pool: per template, up to templates.warm_pool VMs restored ahead from its image, their
 * clock and random seed set, waiting to become a sandbox. A create takes one (no restore, no guest
 * round trip on its path) and the filler thread restores the next in the background. A pooled VM
 * is a fresh restore of the template's image that nobody used: nothing of another sandbox is in
 * it, and what is the sandbox's own (envVars, metadata, timeout) lives on the host and is applied
 * per call, as for a VM restored at the create.
 *
 * A template's pool fills once a sandbox was started from it since the daemon started (the
 * built-in `base` at once), so templates nobody uses cost nothing. The image's file identity is
 * kept with each VM: after a rebuild the old ones are never handed out. DELETE drains the pool;
 * so does the stop, before the templates go.
 *
 * Threads: takes come from sandbox actors, the filler is its own thread, drains come from the
 * template's actor and the stop; a template's list is under its pool_lock, the queue under the
 * pool's lock. Pooled VMs have no callbacks (a death is seen when one is taken). */
#include "lel_template_int.h"
#include "../common/lel_util.h"

#include "../vmm/lel_vmm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct lel_warm_vm {
    lel_vm_t *vm;
    dev_t dev; /* the image file it was restored from */
    ino_t ino;
    struct timespec mtime;
    struct lel_warm_vm *next;
};

struct want {
    lel_actor_t *tpl; /* a reference */
    struct want *next;
};

struct lel_warm {
    lel_server_t *srv;
    int per_template;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct want *head, *tail; /* templates whose pool is short, each at most once */
    int stop;
    pthread_t thread;
};

static int same_file(const struct lel_warm_vm *w, const struct stat *st)
{
    return w->dev == st->st_dev && w->ino == st->st_ino && w->mtime.tv_sec == st->st_mtim.tv_sec &&
           w->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void free_list(lel_server_t *srv, struct lel_warm_vm *w)
{
    for (struct lel_warm_vm *n; w; w = n) {
        n = w->next;
        lel_vm_reap(srv->reaper, w->vm);
        free(w);
    }
}

/* Queues t for the filler when its pool is on and short; pool_lock held. */
static void want_locked(struct lel_template *t)
{
    struct lel_warm *p = t->srv->warm;
    if (!p || t->warm_closed || !t->warm_on || t->warm_queued || t->nwarm >= p->per_template)
        return;
    struct want *w = malloc(sizeof(*w));
    if (!w)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->stop) { /* the filler is gone: nothing is queued any more */
        pthread_mutex_unlock(&p->lock);
        free(w);
        return;
    }
    lel_actor_ref(t->actor);
    w->tpl = t->actor;
    w->next = NULL;
    t->warm_queued = 1;
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void lel__template_pool_want(struct lel_template *t, int turn_on)
{
    pthread_mutex_lock(&t->pool_lock);
    if (turn_on)
        t->warm_on = 1;
    want_locked(t);
    pthread_mutex_unlock(&t->pool_lock);
}

lel_vm_t *lel_template_take_vm(lel_actor_t *a, const struct lel_vm_ops *ops, void *ctx)
{
    struct lel_template *t = lel_actor_state(a);
    struct lel_warm_vm *stale = NULL, *got = NULL;
    char img[4200];
    struct stat st;
    if (!t->srv->warm || !atomic_load(&t->image_ready))
        return NULL;
    lel__template_image(t, img, sizeof(img), 0);
    int have_file = stat(img, &st) == 0;
    pthread_mutex_lock(&t->pool_lock);
    t->warm_on = 1;
    while (t->warm && !got) {
        struct lel_warm_vm *w = t->warm;
        t->warm = w->next;
        t->nwarm--;
        if (have_file && same_file(w, &st)) {
            got = w;
        } else { /* restored from an image a rebuild replaced since */
            w->next = stale;
            stale = w;
        }
    }
    want_locked(t);
    pthread_mutex_unlock(&t->pool_lock);
    free_list(t->srv, stale);
    lel_vm_t *vm = got ? got->vm : NULL;
    free(got);
    if (vm && lel_vm_set_ops(vm, ops, ctx) < 0) { /* it died in the pool */
        fprintf(stderr, "lelantosd: template %s: a pooled VM had died (%s); the create restores one\n", t->id, lel_vm_why(vm));
        lel_vm_reap(t->srv->reaper, vm);
        vm = NULL;
    }
    return vm;
}

void lel__template_pool_drain(struct lel_template *t, int close)
{
    pthread_mutex_lock(&t->pool_lock);
    struct lel_warm_vm *w = t->warm;
    t->warm = NULL;
    t->nwarm = 0;
    if (close)
        t->warm_closed = 1;
    pthread_mutex_unlock(&t->pool_lock);
    free_list(t->srv, w);
}

/* Its faults taken here, off every request's path: the pages t's sandboxes write first (a copy
 * of the set, so the lock is not held across the faults). A set learnt over another image
 * is dropped and learnt again. */
static void prefault(struct lel_template *t, lel_vm_t *vm, const struct stat *st)
{
    uint32_t *pages = NULL;
    uint64_t n = 0;
    pthread_mutex_lock(&t->pool_lock);
    if (t->write_learnt && !same_stat(&t->write_image, st)) {
        free(t->write_set);
        t->write_set = NULL;
        t->nwrite_set = 0;
        t->write_learnt = 0;
    }
    if (t->nwrite_set && (pages = malloc(t->nwrite_set * sizeof(*pages)))) {
        memcpy(pages, t->write_set, t->nwrite_set * sizeof(*pages));
        n = t->nwrite_set;
    }
    pthread_mutex_unlock(&t->pool_lock);
    int r = n ? lel_vm_prefault(vm, pages, n) : 0;
    if (r < 0 && r != -EINVAL) /* EINVAL: a kernel before 5.14; the guest faults them itself */
        fprintf(stderr, "lelantosd: template %s: warm pool: pre-faulting %llu pages: %s\n", t->id, (unsigned long long)n,
                strerror(-r));
    free(pages);
}

int lel_template_wants_writes(lel_actor_t *a)
{
    struct lel_template *t = lel_actor_state(a);
    pthread_mutex_lock(&t->pool_lock);
    int want = t->srv->warm && t->srv->cfg.template_prefault_writes && !t->write_learnt;
    pthread_mutex_unlock(&t->pool_lock);
    return want;
}

void lel_template_learn_writes(lel_actor_t *a, lel_vm_t *vm)
{
    struct lel_template *t = lel_actor_state(a);
    char img[4200];
    struct stat st;
    uint32_t *pages = NULL;
    uint64_t n = 0;
    lel__template_image(t, img, sizeof(img), 0);
    if (stat(img, &st) < 0 || lel_vm_written_pages(vm, &pages, &n) < 0)
        return;
    if (n > LEL_WRITE_SET_MAX) /* the lowest pages: the guest kernel's own first */
        n = LEL_WRITE_SET_MAX;
    pthread_mutex_lock(&t->pool_lock);
    if (!t->write_learnt) {
        free(t->write_set);
        t->write_set = pages;
        t->nwrite_set = n;
        t->write_learnt = 1;
        t->write_image = st;
        pages = NULL;
        fprintf(stderr, "lelantosd: template %s: its pooled VMs pre-fault %llu pages a sandbox writes first\n", t->id,
                (unsigned long long)n);
    }
    pthread_mutex_unlock(&t->pool_lock);
    free(pages);
}

/* One VM for t's pool: restored and clocked outside every lock, then added if the pool still
 * wants it (not deleted, not full, the image unchanged). Returns 0, or -errno when the restore
 * failed (the filler then leaves the template until its next take). */
static int fill_one(struct lel_warm *p, struct lel_template *t)
{
    char img[4200], raw[4200], err[256];
    struct stat st;
    lel__template_image(t, img, sizeof(img), 0);
    lel__template_image(t, raw, sizeof(raw), 1);
    if (!atomic_load(&t->image_ready) || stat(img, &st) < 0)
        return -ENOENT;
    struct lel_vm_config cfg = {(uint64_t)t->mem_mb << 20, 100, NULL, NULL, raw, NULL, 0, 0, 0, !t->srv->cfg.vmm_seccomp,
                                t->srv->cfg.vmm_test_seccomp_violation, &t->srv->vm_stats}; /* as a create restores */
    lel_vm_t *vm = NULL;
    int r = lel_vm_restore(img, &cfg, &vm, err, sizeof(err));
    if (r == 0 && (r = lel_vm_set_clock(vm)) < 0)
        snprintf(err, sizeof(err), "the restored guest did not take its clock: %s", strerror(-r));
    if (r == 0)
        prefault(t, vm, &st);
    struct lel_warm_vm *w = r == 0 ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        if (r == 0)
            r = -ENOMEM;
        else
            fprintf(stderr, "lelantosd: template %s: warm pool: %s\n", t->id, err);
        lel_vm_reap(p->srv->reaper, vm);
        return r;
    }
    w->vm = vm;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    w->mtime = st.st_mtim;
    pthread_mutex_lock(&t->pool_lock);
    int keep = !t->warm_closed && t->warm_on && t->nwarm < p->per_template;
    if (keep) {
        w->next = t->warm;
        t->warm = w;
        t->nwarm++;
    }
    pthread_mutex_unlock(&t->pool_lock);
    if (!keep)
        free_list(p->srv, w);
    return 0;
}

static void *filler_main(void *arg)
{
    lel_thread_name("lel-warm");
    lel_thread_background(); /* background work: below the loop threads' fast answers */
    struct lel_warm *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->stop)
            break;
        struct want *w = p->head;
        if (!w) {
            pthread_cond_wait(&p->cond, &p->lock);
            continue;
        }
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        struct lel_template *t = lel_actor_state(w->tpl);
        int r = atomic_load(&p->srv->stopping) ? -ECANCELED : fill_one(p, t);
        pthread_mutex_lock(&t->pool_lock);
        t->warm_queued = 0;
        if (r == 0)
            want_locked(t); /* still short: back in the queue, after the others */
        pthread_mutex_unlock(&t->pool_lock);
        lel_actor_unref(w->tpl);
        free(w);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int lel_template_pool_start(lel_server_t *srv)
{
    if (!srv->use_vm || srv->cfg.template_warm_pool <= 0)
        return 0;
    struct lel_warm *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->srv = srv;
    p->per_template = srv->cfg.template_warm_pool;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (pthread_create(&p->thread, NULL, filler_main, p) != 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -EAGAIN;
    }
    srv->warm = p;
    lel_actor_t *base = lel_registry_get(srv->templates, "base", NULL, NULL);
    if (base) /* the built-in is wanted at once; its first build wants it again when ready */
        lel__template_pool_want(lel_actor_state(base), 1);
    return 0;
}

static void drain_one(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    lel__template_pool_drain(lel_actor_state(value), 1);
}

void lel_template_pool_stop(lel_server_t *srv)
{
    struct lel_warm *p = srv->warm;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->stop) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->stop = 1;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (struct want *w = p->head, *n; w; w = n) {
        n = w->next;
        lel_actor_unref(w->tpl);
        free(w);
    }
    p->head = p->tail = NULL;
    lel_registry_foreach(srv->templates, drain_one, NULL);
}

void lel_template_pool_free(lel_server_t *srv)
{
    struct lel_warm *p = srv->warm;
    if (!p)
        return;
    srv->warm = NULL;
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
