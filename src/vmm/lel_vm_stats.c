/* The host resources an owner's VMs use, for its metrics: every VM whose vCPU thread runs is
 * on its stats' list, so a scrape can read each thread's CPU clock and each guest RAM mapping's
 * page table without asking the sandboxes' actors (which would make a scrape wait behind their
 * work). A VM leaves the list on its vCPU thread's last step, before anyone joins the thread
 * or unmaps its memory; while a scrape reads a VM's page map that step waits (one VM at a
 * time, so VM starts and ends elsewhere are not held up by a scrape over many VMs). */
#include "lel_vmm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define PM_STEP 16384 /* pagemap entries read per call (128 KiB) */

void lel_vm_stats_init(struct lel_vm_stats *st)
{
    for (int i = 0; i < LEL_VMX_COUNT; i++)
        atomic_init(&st->n[i], 0);
    atomic_init(&st->cpu_ns_ended, 0);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    st->live = NULL;
}

void lel_vm_stats_destroy(struct lel_vm_stats *st)
{
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
}

int lel__vm_stats_start(lel_vm_t *vm, void *(*fn)(void *))
{
    struct lel_vm_stats *st = vm->stats;
    if (!st)
        return pthread_create(&vm->thread, NULL, fn, vm);
    pthread_mutex_lock(&st->lock);
    int r = pthread_create(&vm->thread, NULL, fn, vm);
    if (r == 0) {
        vm->live_prev = NULL;
        vm->live_next = st->live;
        if (st->live)
            st->live->live_prev = vm;
        st->live = vm;
    }
    pthread_mutex_unlock(&st->lock);
    return r;
}

static uint64_t ts_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

void lel__vm_stats_leave(lel_vm_t *vm)
{
    struct lel_vm_stats *st = vm->stats;
    if (!st)
        return;
    pthread_mutex_lock(&st->lock);
    while (vm->readers)
        pthread_cond_wait(&st->cond, &st->lock);
    if (vm->live_prev)
        vm->live_prev->live_next = vm->live_next;
    else
        st->live = vm->live_next;
    if (vm->live_next)
        vm->live_next->live_prev = vm->live_prev;
    vm->live_prev = vm->live_next = NULL;
    /* read under the lock: a scrape that read this clock a moment ago saw no more than this, so
     * the total never goes back */
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        atomic_fetch_add_explicit(&st->cpu_ns_ended, ts_ns(&ts), memory_order_relaxed);
    pthread_mutex_unlock(&st->lock);
}

/* A listed VM's vCPU time (its thread runs until it unlists itself: the clock id is valid). */
static uint64_t thread_ns(lel_vm_t *vm)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(vm->thread, &cid) != 0 || clock_gettime(cid, &ts) < 0)
        return 0;
    return ts_ns(&ts);
}

/* Adds the VM's guest RAM pages present in this process: anonymous ones to *priv, a memory
 * file's (bit 61, "file page or shared anonymous") to *shared. */
static int count_pages(int fd, uint64_t *pm, lel_vm_t *vm, uint64_t *priv, uint64_t *shared)
{
    uint64_t npages = vm->mem_bytes / PAGE, first = (uint64_t)(uintptr_t)vm->mem / PAGE;
    for (uint64_t at = 0; at < npages; at += PM_STEP) {
        uint64_t cnt = npages - at < PM_STEP ? npages - at : PM_STEP;
        ssize_t got = pread(fd, pm, cnt * sizeof(uint64_t), (off_t)((first + at) * sizeof(uint64_t)));
        if (got != (ssize_t)(cnt * sizeof(uint64_t)))
            return got < 0 ? -errno : -EIO;
        for (uint64_t i = 0; i < cnt; i++)
            if (pm[i] >> 63)
                *((pm[i] >> 61) & 1 ? shared : priv) += PAGE;
    }
    return 0;
}

int lel_vm_stats_usage(struct lel_vm_stats *st, struct lel_vm_usage *u)
{
    u->vms = u->cpu_ns = u->private_bytes = u->shared_bytes = 0;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = fd < 0 ? -errno : 0;
    uint64_t *pm = fd >= 0 ? malloc(PM_STEP * sizeof(uint64_t)) : NULL;
    if (fd >= 0 && !pm)
        r = -ENOMEM;
    pthread_mutex_lock(&st->lock);
    u->cpu_ns = atomic_load_explicit(&st->cpu_ns_ended, memory_order_relaxed);
    for (lel_vm_t *vm = st->live; vm; vm = vm->live_next) {
        u->vms++;
        u->cpu_ns += thread_ns(vm);
        if (r < 0)
            continue;
        /* read without the lock; the VM stays listed (and mapped) until we let go of it */
        vm->readers++;
        pthread_mutex_unlock(&st->lock);
        r = count_pages(fd, pm, vm, &u->private_bytes, &u->shared_bytes);
        pthread_mutex_lock(&st->lock);
        if (--vm->readers == 0)
            pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
    if (r < 0)
        u->private_bytes = u->shared_bytes = 0;
    free(pm);
    if (fd >= 0)
        close(fd);
    return r;
}
