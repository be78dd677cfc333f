/* The VM reaper: one thread that finishes destroying VMs whose vCPU already ended, so a DELETE,
 * a kill or a pause answers without waiting for KVM's teardown. FIFO; the queue is the
 * reaper's, each VM in it the reaper's alone. */
#include "lel_vmm_int.h"
#include "../common/lel_util.h"

#include <stdlib.h>

struct reap_item {
    lel_vm_t *vm;
    struct reap_item *next;
};

struct lel_vm_reaper {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct reap_item *head, *tail;
    int stop;
    pthread_t thread;
};

static void *reaper_main(void *arg)
{
    lel_thread_name("lel-reaper");
    lel_thread_background(); /* background work: below the loop threads' fast answers */
    lel_vm_reaper_t *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        struct reap_item *it = r->head;
        if (!it) {
            if (r->stop)
                break;
            pthread_cond_wait(&r->cond, &r->lock);
            continue;
        }
        r->head = it->next;
        if (!r->head)
            r->tail = NULL;
        pthread_mutex_unlock(&r->lock);
        lel__vm_release(it->vm);
        free(it);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

lel_vm_reaper_t *lel_vm_reaper_new(void)
{
    lel_vm_reaper_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return r;
}

void lel_vm_reap(lel_vm_reaper_t *r, lel_vm_t *vm)
{
    if (!vm)
        return;
    lel__vm_join(vm); /* from here no callback can reach the VM's owner */
    struct reap_item *it = r ? malloc(sizeof(*it)) : NULL;
    if (!it) {
        lel__vm_release(vm);
        return;
    }
    it->vm = vm;
    it->next = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void lel_vm_reaper_free(lel_vm_reaper_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL); /* it empties the queue before it ends */
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
