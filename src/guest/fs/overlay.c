/* The read-only image as the file system's lower layer; see overlay.h. An image inode in
 * memory gets the number LOWER_INO + its index, so every name of a hard-linked file (and every
 * sandbox on the image) reports one inode number; such inodes are kept in a small hash so that
 * a second name finds the first one's inode. */
#include "overlay.h"

#include "rofs.h"
#include "../lib/klib.h"
#include "../mm/page.h"

#define LOWER_INO (1ULL << 32)
#define BUCKETS 256

struct link {
    uint64_t idx;
    struct inode *ino;
    struct link *next;
};
static struct link **links; /* BUCKETS chains of the hard-linked image inodes in memory */

int fs_mount_lower(const void *base, uint64_t bytes)
{
    struct inode *root = fs_root();
    if (!root || rofs_mount(base, bytes) < 0)
        return -E_INVAL;
    if (!links && !(links = kmalloc(BUCKETS * sizeof(*links))))
        return -E_NOMEM;
    const struct lel_rofs_inode *r = rofs_root();
    root->lower = r;
    root->lower_dir = r->size > 0;
    root->mode = r->mode;
    root->uid = r->uid;
    root->gid = r->gid;
    root->nlink = r->nlink;
    root->mtime = root->atime = r->mtime;
    root->ctime = r->ctime;
    return 0;
}

static struct link **bucket(uint64_t idx)
{
    return &links[idx % BUCKETS];
}

/* The memory inode for image inode `rec`, found in `dir`: the one a hard link already has,
 * or a new one (*fresh set). NULL when memory ran out. */
static struct inode *inode_of(const struct lel_rofs_inode *rec, struct inode *dir, int *fresh)
{
    uint64_t idx = rofs_index(rec);
    uint32_t type = rec->mode & S_IFMT;
    int linked = type != S_IFDIR && rec->nlink > 1;
    *fresh = 0;
    for (struct link *l = linked ? *bucket(idx) : 0; l; l = l->next)
        if (l->idx == idx)
            return l->ino;
    struct inode *i = fs__inode_new(rec->mode);
    if (!i)
        return 0;
    i->ino = LOWER_INO + idx;
    i->nlink = rec->nlink ? rec->nlink : 1;
    i->uid = rec->uid;
    i->gid = rec->gid;
    i->rdev = rec->rdev;
    i->mtime = i->atime = rec->mtime;
    i->ctime = rec->ctime;
    i->lower = rec;
    if (type == S_IFDIR) {
        i->parent = dir;
        i->lower_dir = rec->size > 0;
    } else if (type == S_IFREG) {
        i->size = rec->size;
        i->lower_data = rec->size > 0;
    } else if (type == S_IFLNK) {
        i->size = rec->size;
        i->target = kstrndup(rofs_target(rec), rec->size);
    }
    struct link *l = linked ? kmalloc(sizeof(*l)) : 0;
    if ((type == S_IFLNK && !i->target) || (linked && !l)) {
        kfree(l, sizeof(*l));
        fs__inode_free(i);
        return 0;
    }
    if (l) {
        l->idx = idx;
        l->ino = i;
        l->next = *bucket(idx);
        *bucket(idx) = l;
    }
    *fresh = 1;
    return i;
}

/* A memory inode no name leads to yet is freed again. */
static void drop_new(struct inode *i, int fresh)
{
    if (fresh) {
        ovl_forget(i);
        fs__inode_free(i);
    }
}

struct inode *ovl_lookup(struct inode *dir, const char *name, uint64_t n)
{
    const struct lel_rofs_inode *rec = rofs_find(dir->lower, name, n);
    int fresh;
    struct inode *i = rec ? inode_of(rec, dir, &fresh) : 0;
    if (i && fs__dent_add(dir, name, n, i) < 0) {
        drop_new(i, fresh);
        return 0;
    }
    return i;
}

int ovl_merge(struct inode *dir)
{
    if (!dir->lower_dir)
        return 0;
    /* only the entries in memory before the merge can share a name with an image entry (the
     * image's names in one directory are unique), and the new ones go in front of them */
    struct dent *before = dir->children;
    for (uint64_t k = 0;; k++) {
        const struct lel_rofs_inode *rec;
        const char *name;
        uint64_t len;
        int r = rofs_entry(dir->lower, k, &name, &len, &rec);
        if (r > 0)
            break;
        if (r < 0)
            continue;
        struct dent *d = before;
        while (d && (kstrlen(d->name) != len || kmemcmp(d->name, name, len)))
            d = d->next;
        if (d)
            continue; /* looked up already, or something else took its name */
        int fresh;
        struct inode *i = inode_of(rec, dir, &fresh);
        if (!i)
            return -E_NOMEM;
        if (fs__dent_add(dir, name, len, i) < 0) {
            drop_new(i, fresh);
            return -E_NOMEM;
        }
    }
    dir->lower_dir = 0;
    return 0;
}

void ovl_forget(struct inode *i)
{
    if (!i->lower || !links)
        return;
    for (struct link **pp = bucket(rofs_index(i->lower)); *pp; pp = &(*pp)->next) {
        if ((*pp)->ino == i) {
            struct link *l = *pp;
            *pp = l->next;
            kfree(l, sizeof(*l));
            return;
        }
    }
}
