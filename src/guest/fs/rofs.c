/* Reading the read-only image in place; see rofs.h. */
#include "rofs.h"

#include "../lib/klib.h"

#define S_FMT 0170000
#define S_DIR 0040000
#define S_REG 0100000
#define S_LNK 0120000

static const uint8_t *img;
static uint64_t img_bytes;
static const struct lel_rofs_super *sb;

int rofs_mount(const void *base, uint64_t bytes)
{
    const struct lel_rofs_super *s = base;
    if (!base || bytes < LEL_ROFS_PAGE || !lel_rofs_super_ok(s, bytes))
        return -1;
    img = base;
    img_bytes = bytes;
    sb = s;
    const struct lel_rofs_inode *root = rofs_root();
    if (!root || (root->mode & S_FMT) != S_DIR) {
        img = 0;
        img_bytes = 0;
        sb = 0;
        return -1;
    }
    return 0;
}

/* Whether the inode's own fields lie inside the tables they point into. */
static int inode_ok(const struct lel_rofs_inode *i)
{
    switch (i->mode & S_FMT) {
    case S_DIR:
        return i->data <= sb->dirent_count && i->size <= sb->dirent_count - i->data;
    case S_REG:
        if (i->size == 0)
            return 1;
        return i->data % LEL_ROFS_PAGE == 0 && i->data >= sb->data_off && i->size <= img_bytes &&
               i->data <= img_bytes - ((i->size + LEL_ROFS_PAGE - 1) & ~(LEL_ROFS_PAGE - 1));
    case S_LNK:
        return i->size > 0 && i->size < 4096 && i->data < sb->names_bytes && i->size < sb->names_bytes - i->data &&
               img[sb->names_off + i->data + i->size] == 0;
    default:
        return 1; /* fifos and the like carry nothing */
    }
}

static const struct lel_rofs_inode *inode_at(uint64_t idx)
{
    if (!sb || idx >= sb->inode_count)
        return 0;
    const struct lel_rofs_inode *i = (const struct lel_rofs_inode *)(img + sb->inode_off) + idx;
    return inode_ok(i) ? i : 0;
}

const struct lel_rofs_inode *rofs_root(void)
{
    return inode_at(0);
}

uint64_t rofs_index(const struct lel_rofs_inode *i)
{
    return (uint64_t)(i - (const struct lel_rofs_inode *)(img + sb->inode_off));
}

uint64_t rofs_bytes(void)
{
    return img_bytes;
}

int rofs_contains(const void *p)
{
    return img && (const uint8_t *)p >= img && (const uint8_t *)p < img + img_bytes;
}

/* The entry's name when it is one a directory may hold (1..255 bytes, no '/' or NUL, not
 * "." or ".."); NULL otherwise. */
static const char *entry_name(const struct lel_rofs_dirent *d)
{
    if (d->name_len == 0 || d->name_len > LEL_ROFS_NAME_MAX || d->name >= sb->names_bytes ||
        d->name_len > sb->names_bytes - d->name)
        return 0;
    const char *n = (const char *)img + sb->names_off + d->name;
    for (uint16_t k = 0; k < d->name_len; k++)
        if (n[k] == '/' || n[k] == 0)
            return 0;
    if (n[0] == '.' && (d->name_len == 1 || (d->name_len == 2 && n[1] == '.')))
        return 0;
    return n;
}

int rofs_entry(const struct lel_rofs_inode *dir, uint64_t i, const char **name, uint64_t *len,
               const struct lel_rofs_inode **ino)
{
    if (i >= dir->size)
        return 1;
    const struct lel_rofs_dirent *d = (const struct lel_rofs_dirent *)(img + sb->dirent_off) + dir->data + i;
    const char *n = entry_name(d);
    const struct lel_rofs_inode *in = n ? inode_at(d->ino) : 0;
    if (!in)
        return -1;
    *name = n;
    *len = d->name_len;
    *ino = in;
    return 0;
}

static int name_cmp(const char *a, uint64_t alen, const char *b, uint64_t blen)
{
    int c = kmemcmp(a, b, alen < blen ? alen : blen);
    return c ? c : alen < blen ? -1 : alen > blen;
}

const struct lel_rofs_inode *rofs_find(const struct lel_rofs_inode *dir, const char *name, uint64_t n)
{
    const struct lel_rofs_dirent *ents = (const struct lel_rofs_dirent *)(img + sb->dirent_off) + dir->data;
    uint64_t lo = 0, hi = dir->size;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const char *m = entry_name(&ents[mid]);
        if (!m)
            return 0; /* a malformed table: nothing is found in it */
        int c = name_cmp(name, n, m, ents[mid].name_len);
        if (c == 0)
            return inode_at(ents[mid].ino);
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

const uint8_t *rofs_data(const struct lel_rofs_inode *f)
{
    return f->size ? img + f->data : 0;
}

const char *rofs_target(const struct lel_rofs_inode *l)
{
    return (const char *)img + sb->names_off + l->data;
}
