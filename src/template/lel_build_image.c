/* A template built from an image boots on the image's root filesystem image (rofs: see
 * src/guest/README.md), built once per image and kept beside its tree as
 * <data_dir>/images/<imageID>/rootfs-<base>.lrofs, where <base> names the guest's base root
 * that fills in beneath the image (busybox, for the agent's commands): a lelantosd with another
 * base builds its own. Every template and sandbox on the image maps that one file.
 *
 * The build reads the whole tree (hundreds of MB for a Debian with python and node), so it runs
 * on a thread of its own while the template's actor polls it; the thread owns a copy of what it
 * needs, and a build that is abandoned (the template deleted) runs to its end and leaves its
 * file, which the next template from the image takes. Two builds of one image at once write
 * the same bytes (the format is deterministic) and the last rename wins. */
#include "lel_template_int.h"

#include "../image/lel_image.h"
#include "../image/lel_rofs_build.h"
#include "../vmm/lel_vmm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct lel_img_rofs {
    atomic_int refs;    /* the thread's and the build's */
    atomic_int done;    /* the thread finished: result and stats are set */
    int result;         /* 0, or -errno with err */
    int reused;         /* the file was there already */
    char rootfs[4200], out[4200];
    char err[600];
    struct lel_rofs_stats st;
};

void lel__img_rofs_path(lel_server_t *srv, const char *image_id, char *buf, size_t n)
{
    const void *base;
    size_t blen;
    char root[4200];
    lel_vmm_base_rootfs(&base, &blen);
    lel_image_rootfs(srv, image_id, root, sizeof(root));
    snprintf(buf, n, "%s-%016llx.lrofs", root, (unsigned long long)XXH3_64bits(base, blen));
}

static void put_ref(struct lel_img_rofs *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

static void *build_main(void *arg)
{
    static const char *const skip[] = {"proc", "dev", "sys", NULL}; /* the guest makes its own */
    struct lel_img_rofs *b = arg;
    const void *base;
    size_t blen;
    lel_vmm_base_rootfs(&base, &blen);
    struct lel_rofs_tree *t = lel_rofs_tree_new();
    int r = t ? lel_rofs_add_dir(t, b->rootfs, skip, b->err, sizeof(b->err)) : -ENOMEM;
    if (r == 0)
        r = lel_rofs_add_archive_under(t, base, blen, b->err, sizeof(b->err));
    if (r == 0)
        r = lel_rofs_write(t, b->out, &b->st, NULL, b->err, sizeof(b->err));
    if (!t)
        snprintf(b->err, sizeof(b->err), "out of memory");
    lel_rofs_tree_free(t);
    b->result = r;
    atomic_store(&b->done, 1);
    put_ref(b);
    return NULL;
}

struct lel_img_rofs *lel__img_rofs_start(const char *rootfs, const char *out)
{
    struct lel_img_rofs *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    snprintf(b->rootfs, sizeof(b->rootfs), "%s", rootfs);
    snprintf(b->out, sizeof(b->out), "%s", out);
    struct lel_rofs_super s;
    char err[600];
    if (lel_rofs_header(out, &s, err, sizeof(err)) == 0) { /* built by an earlier template */
        b->reused = 1;
        b->st = (struct lel_rofs_stats){s.file_bytes, s.inode_count, s.dirent_count, s.data_bytes};
        atomic_store(&b->done, 1);
        atomic_store(&b->refs, 1);
        return b;
    }
    atomic_store(&b->refs, 2);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&th, &at, build_main, b);
    pthread_attr_destroy(&at);
    if (r != 0) {
        free(b);
        return NULL;
    }
    return b;
}

int lel__img_rofs_poll(struct lel_img_rofs *b, struct lel_rofs_stats *st, int *reused, char *err, size_t errlen)
{
    if (!atomic_load(&b->done))
        return 1;
    if (b->result < 0) {
        snprintf(err, errlen, "%s", b->err);
        return -1;
    }
    *st = b->st;
    *reused = b->reused;
    return 0;
}

void lel__img_rofs_free(struct lel_img_rofs *b)
{
    if (b)
        put_ref(b);
}
