/* Extended attributes kept on inodes; see xattr.h. Each attribute is one heap object (its name
 * inline) in a singly linked list on the inode: nodes carry few of them, so a list is as fast as
 * anything and costs nothing for the many that carry none. */
#include "xattr.h"

#include "../lib/klib.h"
#include "../mm/page.h"

struct xattr {
    struct xattr *next;
    uint32_t size;  /* the value's bytes */
    uint16_t nlen;
    void *val;      /* size <= XATTR_SMALL: the bytes (heap; none for 0); else an array of pages */
    char name[];
};

static uint64_t pages_of(uint64_t size)
{
    return (size + PAGE_SIZE - 1) / PAGE_SIZE;
}

static uint64_t obj_size(uint64_t nlen)
{
    return sizeof(struct xattr) + nlen;
}

/* What an attribute counts against XATTR_INODE_MAX. */
static uint64_t cost(const struct xattr *x)
{
    return (uint64_t)x->nlen + x->size;
}

const struct xattr *xattr_find(const struct inode *i, const char *name, uint64_t n)
{
    for (const struct xattr *x = i->xattrs; x; x = x->next)
        if (x->nlen == n && kmemcmp(x->name, name, n) == 0)
            return x;
    return 0;
}

const struct xattr *xattr_next(const struct inode *i, const struct xattr *prev)
{
    return prev ? prev->next : i->xattrs;
}

const char *xattr_name(const struct xattr *x, uint64_t *n)
{
    *n = x->nlen;
    return x->name;
}

uint64_t xattr_size(const struct xattr *x)
{
    return x->size;
}

const void *xattr_bytes(const struct xattr *x, uint64_t off, uint64_t *n)
{
    return xattr_room((struct xattr *)x, off, n);
}

void *xattr_room(struct xattr *x, uint64_t off, uint64_t *n)
{
    if (x->size <= XATTR_SMALL) {
        *n = x->size - off;
        return (char *)x->val + off;
    }
    uint64_t in = off % PAGE_SIZE, left = x->size - off;
    *n = PAGE_SIZE - in < left ? PAGE_SIZE - in : left;
    return (char *)((void **)x->val)[off / PAGE_SIZE] + in;
}

void xattr_free(struct xattr *x)
{
    if (!x)
        return;
    if (x->size > XATTR_SMALL) {
        void **pages = x->val;
        for (uint64_t k = 0; k < pages_of(x->size); k++)
            if (pages[k])
                fs_data_page_free(pages[k]);
        kfree(pages, pages_of(x->size) * sizeof(void *));
    } else if (x->size) {
        kfree(x->val, x->size);
    }
    kfree(x, obj_size(x->nlen));
}

struct xattr *xattr_new(const char *name, uint64_t n, uint64_t vlen)
{
    if (n == 0 || n > XATTR_NAME_MAX || vlen > XATTR_SIZE_MAX)
        return 0;
    struct xattr *x = kmalloc(obj_size(n));
    if (!x)
        return 0;
    kmemcpy(x->name, name, n);
    x->nlen = (uint16_t)n;
    x->size = (uint32_t)vlen;
    if (vlen == 0)
        return x;
    if (vlen <= XATTR_SMALL) {
        if (!(x->val = kmalloc(vlen))) {
            kfree(x, obj_size(n));
            return 0;
        }
        return x;
    }
    void **pages = x->val = kmalloc(pages_of(vlen) * sizeof(void *));
    if (!pages) {
        kfree(x, obj_size(n));
        return 0;
    }
    for (uint64_t k = 0; k < pages_of(vlen); k++)
        if (!(pages[k] = fs_data_page())) {
            xattr_free(x);
            return 0;
        }
    return x;
}

/* The link that points at i's attribute `name` (or the list's end when it has none). */
static struct xattr **link_of(struct inode *i, const char *name, uint64_t n)
{
    struct xattr **l = &i->xattrs;
    while (*l && !((*l)->nlen == n && kmemcmp((*l)->name, name, n) == 0))
        l = &(*l)->next;
    return l;
}

int xattr_install(struct inode *i, struct xattr *x, int flags)
{
    struct xattr **l = link_of(i, x->name, x->nlen), *old = *l;
    int r = 0;
    if (old && (flags & XATTR_CREATE))
        r = -E_EXIST;
    else if (!old && (flags & XATTR_REPLACE))
        r = -E_NODATA;
    uint64_t held = 0;
    for (const struct xattr *y = i->xattrs; y && r == 0; y = y->next)
        held += y == old ? 0 : cost(y);
    if (r == 0 && held + cost(x) > XATTR_INODE_MAX)
        r = -E_NOSPC;
    if (r < 0) {
        xattr_free(x);
        return r;
    }
    if (old) { /* in its place: a listing keeps its order */
        x->next = old->next;
        *l = x;
        xattr_free(old);
    } else {
        x->next = i->xattrs;
        i->xattrs = x;
    }
    return 0;
}

int xattr_set(struct inode *i, const char *name, uint64_t n, const void *val, uint64_t vlen, int flags)
{
    struct xattr *x = xattr_new(name, n, vlen);
    if (!x)
        return vlen > XATTR_SMALL ? -E_NOSPC : -E_NOMEM;
    for (uint64_t off = 0, k = 0; off < vlen; off += k) {
        void *to = xattr_room(x, off, &k); /* (k is set before it is used) */
        kmemcpy(to, (const char *)val + off, k);
    }
    return xattr_install(i, x, flags);
}

int xattr_remove(struct inode *i, const char *name, uint64_t n)
{
    struct xattr **l = link_of(i, name, n), *x = *l;
    if (!x)
        return -E_NODATA;
    *l = x->next;
    xattr_free(x);
    return 0;
}

void xattr_remove_prefix(struct inode *i, const char *prefix)
{
    uint64_t pl = kstrlen(prefix);
    for (struct xattr **l = &i->xattrs; *l;) {
        struct xattr *x = *l;
        if (x->nlen >= pl && kmemcmp(x->name, prefix, pl) == 0) {
            *l = x->next;
            xattr_free(x);
        } else {
            l = &x->next;
        }
    }
}

int xattr_copy(struct inode *dst, const struct inode *src, const char *skip)
{
    uint64_t sl = skip ? kstrlen(skip) : 0;
    for (const struct xattr *x = src->xattrs; x; x = x->next) {
        if ((sl && x->nlen >= sl && kmemcmp(x->name, skip, sl) == 0) || xattr_find(dst, x->name, x->nlen))
            continue;
        struct xattr *c = xattr_new(x->name, x->nlen, x->size);
        if (!c)
            return x->size > XATTR_SMALL ? -E_NOSPC : -E_NOMEM;
        for (uint64_t off = 0, k = 0; off < x->size; off += k) {
            const void *from = xattr_bytes(x, off, &k); /* the same layout: k is the same for both */
            void *to = xattr_room(c, off, &k);
            kmemcpy(to, from, k);
        }
        int r = xattr_install(dst, c, XATTR_CREATE);
        if (r < 0)
            return r;
    }
    return 0;
}

void xattr_drop(struct inode *i)
{
    while (i->xattrs) {
        struct xattr *x = i->xattrs;
        i->xattrs = x->next;
        xattr_free(x);
    }
}
