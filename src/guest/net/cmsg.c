/* Ancillary data; see cmsg.h. */
#include "cmsg.h"

#include "../fs/file.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../proc/proc.h"

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~7ULL;
}

long cmsg_next(uint64_t *p, uint64_t end, struct cmsg_in *c)
{
    uint64_t len;
    int32_t lt[2];
    if (*p > end || end - *p < CMSG_HDR)
        return 0;
    if (copy_user(*p, &len, 8, 0) < 0 || copy_user(*p + 8, lt, 8, 0) < 0)
        return -EFAULT;
    if (len < CMSG_HDR || len > end - *p)
        return -EINVAL;
    c->level = lt[0];
    c->type = lt[1];
    c->data = *p + CMSG_HDR;
    c->len = len - CMSG_HDR;
    *p += align8(len) < end - *p ? align8(len) : end - *p;
    return 1;
}

void cmsg_out_init(struct cmsg_out *o, uint64_t p, uint64_t len)
{
    o->p = p;
    o->left = p ? len : 0;
    o->used = 0;
    o->flags = 0;
}

/* The header and the first `data_len` bytes of `data`, then the buffer moves on by the item's
 * aligned space (at most what is left). */
static long put_item(struct cmsg_out *o, int level, int type, uint64_t cmlen, const void *data, uint64_t data_len,
                     uint64_t space)
{
    struct {
        uint64_t len;
        int32_t level, type;
    } h = {cmlen, level, type};
    if (copy_user(o->p, &h, CMSG_HDR, 1) < 0 || (data_len && copy_user(o->p + CMSG_HDR, (void *)(uintptr_t)data, data_len, 1) < 0))
        return -EFAULT;
    space = space < o->left ? space : o->left;
    o->p += space;
    o->left -= space;
    o->used += space;
    return 0;
}

long cmsg_put(struct cmsg_out *o, int level, int type, const void *data, uint32_t len)
{
    uint64_t cmlen = CMSG_HDR + (uint64_t)len;
    if (o->left < CMSG_HDR) {
        o->flags |= MSG_CTRUNC_;
        return 0;
    }
    if (o->left < cmlen) {
        o->flags |= MSG_CTRUNC_;
        cmlen = o->left;
    }
    return put_item(o, level, type, cmlen, data, cmlen - CMSG_HDR, align8(CMSG_HDR + (uint64_t)len));
}

long cmsg_put_files(struct cmsg_out *o, struct file **f, int n, int cloexec)
{
    int max = o->left > CMSG_HDR ? (int)((o->left - CMSG_HDR) / 4) : 0, i = 0;
    int32_t fds[256];
    max = max < n ? max : n;
    max = max < 256 ? max : 256;
    for (; i < max; i++) {
        int fd = fd_install(f[i], 0, cloexec);
        if (fd < 0)
            break;
        fds[i] = fd; /* the descriptor holds the reference now */
    }
    long r = 0;
    if (i > 0)
        r = put_item(o, SOL_SOCKET_, SCM_RIGHTS_, CMSG_HDR + (uint64_t)i * 4, fds, (uint64_t)i * 4,
                     align8(CMSG_HDR + (uint64_t)i * 4));
    if (i < n)
        o->flags |= MSG_CTRUNC_;
    for (int k = i; k < n; k++)
        file_put(f[k]);
    return r;
}
