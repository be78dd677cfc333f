/* The host's file requests (LEL_OP_FILE_*): paths and data come in the
 * bulk area, answers go back in it. */
#include "files.h"

#include "../arch/arch.h"
#include "../fs/fs.h"
#include "../fs/hwatch.h"
#include "../fs/inotify.h"
#include "../fs/procfs.h"
#include "../fs/xattr.h"
#include "../lel_guest_abi.h"
#include "../lib/klib.h"
#include "../mm/page.h"

/* Creates the directories above `path` that are missing; a symlink on the way that leads
 * nowhere is not replaced (ENOENT, as mkdir -p fails there). */
static int make_parents(const char *path, uint32_t owner)
{
    char buf[FS_PATH_MAX];
    uint64_t n = kstrnlen(path, FS_PATH_MAX);
    for (uint64_t i = 1; i < n; i++) {
        if (path[i] != '/')
            continue;
        kmemcpy(buf, path, i);
        buf[i] = 0;
        struct inode *d, *dir;
        const char *name;
        uint64_t nl;
        int r = fs_lookup(fs_root(), buf, 1, &d);
        if (r == 0 || (r == -E_NOENT && fs_lookup(fs_root(), buf, 0, &d) == 0))
            continue; /* there (a file among them fails later, ENOTDIR), or a symlink to nowhere */
        if (r < 0 && r != -E_NOENT)
            return r;
        if ((r = fs_parent(fs_root(), buf, &dir, &name, &nl)) < 0 ||
            (r = fs_create(dir, name, nl, S_IFDIR | 0755, &d)) < 0)
            return r;
        d->uid = d->gid = owner;
    }
    return 0;
}

/* The request's path (bulk, arg[0] bytes with its NUL): absolute and whole. */
static int bulk_path(void)
{
    uint64_t plen = chan->arg[0];
    return plen >= 2 && plen <= FS_PATH_MAX && bulk[0] == '/' && kstrnlen(bulk, plen) == plen - 1 ? 0 : -E_INVAL;
}

void agent_file_write(void)
{
    uint64_t plen = chan->arg[0], off = chan->arg[1], n = chan->arg[2];
    struct inode *f, *dir;
    const char *name;
    uint64_t nl;
    if (bulk_path() < 0 || n > LEL_BULK_SIZE - plen) {
        chan->status = LEL_ST_EINVAL;
        return;
    }
    int r = fs_lookup(fs_root(), bulk, 1, &f);
    if (r == -E_NOENT && chan->arg[3] && (r = make_parents(bulk, 0)) == 0 &&
        (r = fs_parent_follow(fs_root(), bulk, &dir, &name, &nl)) == 0)
        r = fs_create(dir, name, nl, S_IFREG | 0644, &f);
    if (r == 0 && (f->mode & S_IFMT) != S_IFREG)
        r = -E_ISDIR;
    if (r == 0 && chan->arg[3])
        r = fs_truncate(f, 0);
    int64_t w = r == 0 ? fs_write(f, off, bulk + plen, n) : r;
    if (w < 0 || (uint64_t)w != n)
        chan->status = w < 0 ? (uint32_t)-w : E_NOSPC;
}

/* An upload's temporary, ".lelantos-upload-<id>" beside the file it becomes. */
static uint64_t upload_name(char buf[40], uint32_t id)
{
    static const char prefix[] = ".lelantos-upload-";
    char num[21];
    const char *d = kutoa(num, id);
    uint64_t pl = sizeof(prefix) - 1, dl = kstrlen(d);
    kmemcpy(buf, prefix, pl);
    kmemcpy(buf + pl, d, dl + 1);
    return pl + dl;
}

/* Why an existing node cannot be replaced by a file: a directory, or no regular file (a
 * device, pipe, socket or descriptor link keeps its place). */
static int replaceable(const struct inode *old)
{
    if (!old || (old->mode & S_IFMT) == S_IFREG)
        return 0;
    return (old->mode & S_IFMT) == S_IFDIR ? -E_ISDIR : -E_PERM;
}

/* Temporaries whose pages the host is filling (LEL_OP_FILE_UPLOAD_PAGES): held and marked in
 * use, so that no program writes, truncates or frees those pages under the host's writes,
 * until the next request for the upload. */
#define PINS 16
static struct {
    uint32_t id;
    struct inode *ino;
} pins[PINS];

static void unpin(uint32_t id)
{
    for (int i = 0; i < PINS; i++)
        if (pins[i].ino && pins[i].id == id) {
            pins[i].ino->exec_users--;
            fs_release(pins[i].ino);
            pins[i].ino = 0;
        }
}

/* Pages for the host to fill: [off, off + n) of the temporary, listed at LEL_BULK_HALF. */
static int host_pages(struct inode *tmp, uint32_t id, uint64_t off, uint64_t n)
{
    int slot = -1;
    for (int i = 0; i < PINS && slot < 0; i++)
        slot = pins[i].ino ? -1 : i;
    if (off % PAGE_SIZE || n > LEL_UP_PAGES_MAX || slot < 0)
        return -E_INVAL;
    uint64_t np = (n + PAGE_SIZE - 1) / PAGE_SIZE;
    int r = fs_host_pages(tmp, off / PAGE_SIZE, np, off + n, (uint32_t *)(bulk + LEL_BULK_HALF));
    if (r < 0)
        return r;
    chan->ret[1] = (uint64_t)r; /* fewer when the disk is short: the host asks again for the rest */
    fs_hold(tmp);
    tmp->exec_users++;
    pins[slot].id = id;
    pins[slot].ino = tmp;
    return 0;
}

void agent_file_upload(int pages)
{
    static uint32_t last_id;
    uint64_t plen = chan->arg[0], off = chan->arg[1], n = chan->arg[2], flags = chan->arg[3] & 0xffffffffULL, tl = 0;
    uint32_t id = (uint32_t)(chan->arg[3] >> 32);
    struct inode *dir = 0, *tmp = 0;
    const char *name;
    uint64_t nl;
    char tname[40];
    int r = bulk_path() < 0 || (!pages && n > LEL_BULK_SIZE - plen) || (pages && (flags & LEL_UP_LAST) && n) ? -E_INVAL : 0;
    if (pages && !(flags & LEL_UP_FIRST))
        unpin(id); /* the host is done with the pages it was given */
    if (r == 0 && (flags & LEL_UP_FIRST) && bulk[plen - 2] == '/')
        r = -E_ISDIR; /* "dir/": no file goes there */
    uint32_t owner = flags & LEL_UP_OWNED ? (uint32_t)(flags >> 16) & 0xffff : 0;
    if (r == 0 && (flags & LEL_UP_FIRST))
        r = make_parents(bulk, owner);
    if (r == 0)
        r = fs_parent_follow(fs_root(), bulk, &dir, &name, &nl);
    if (r == 0 && (flags & LEL_UP_FIRST))
        r = replaceable(fs_child(dir, name, nl));
    for (int tries = 0; r == 0 && (flags & LEL_UP_FIRST) && !tmp; tries++) {
        id = ++last_id ? last_id : ++last_id;
        tl = upload_name(tname, id);
        r = fs_create(dir, tname, tl, S_IFREG | (pages ? 0600 : 0644), &tmp); /* its pages hold anything until filled */
        if (r == 0)
            tmp->uid = tmp->gid = owner;
        if (r == -E_EXIST && tries < 8)
            r = 0; /* a name someone else took: the next one */
    }
    if (r == 0 && !tmp) {
        tl = upload_name(tname, id);
        tmp = fs_child(dir, tname, tl);
        r = tmp && (tmp->mode & S_IFMT) == S_IFREG ? 0 : -E_NOENT; /* removed meanwhile */
    }
    if (pages && r == 0 && (flags & LEL_UP_LAST))
        r = fs_truncate(tmp, off); /* the final size: what was given beyond it goes */
    else if (pages && r == 0 && !(flags & LEL_UP_ABORT))
        r = host_pages(tmp, id, off, n);
    int64_t w = !pages && r == 0 && n ? fs_write(tmp, off, bulk + plen, n) : 0;
    if (r == 0 && (w < 0 || (!pages && (uint64_t)w != n)))
        r = w < 0 ? (int)w : -E_NOSPC;
    if (r < 0)
        unpin(id);
    if (r == 0 && (flags & LEL_UP_LAST)) { /* it takes the place, and the mode, of what was there */
        struct inode *old = fs_child(dir, name, nl);
        if ((r = replaceable(old)) == 0)
            tmp->mode = S_IFREG | (old ? old->mode & 07777 : 0644);
        if (r == 0 && old && (flags & LEL_UP_XATTRS)) /* and its attributes, as a write in place keeps them */
            r = xattr_copy(tmp, old, flags & LEL_UP_XATTRS_NO_META ? LEL_META_PREFIX : 0);
        hwatch_upload(dir, name, nl); /* watches see the file written, not the temporary's move */
        if (r == 0)
            r = fs_rename(dir, tname, tl, dir, name, nl);
        hwatch_upload(0, 0, 0);
    }
    if (tmp && (r < 0 || (flags & LEL_UP_ABORT)))
        fs_unlink(dir, tname, tl, 0);
    chan->status = r < 0 ? (uint32_t)-r : 0;
    chan->ret[0] = id;
}

/* LEL_OP_FILE_XATTRS' records at bulk + off (len bytes) into `into` (its attributes outside the
 * prefix already there): 0, or -E_INVAL for a malformed one, -E_NOSPC, -E_NOMEM. */
static int xattr_records(struct inode *into, uint64_t off, uint64_t len, const char *prefix, uint64_t pl)
{
    for (uint64_t at = 0; at < len;) {
        struct lel_xattr_rec xr;
        if (len - at < sizeof(xr))
            return -E_INVAL;
        kmemcpy(&xr, bulk + off + at, sizeof(xr));
        uint64_t size = (sizeof(xr) + xr.name_len + xr.value_len + 7) & ~7ULL;
        const char *nm = bulk + off + at + sizeof(xr);
        if (xr.name_len == 0 || xr.name_len > XATTR_NAME_MAX || xr.value_len > XATTR_SIZE_MAX || size > len - at ||
            xr.name_len < pl || kmemcmp(nm, prefix, pl))
            return -E_INVAL;
        int r = xattr_set(into, nm, xr.name_len, nm + xr.name_len, xr.value_len, 0);
        if (r < 0)
            return r;
        at += size;
    }
    return 0;
}

void agent_file_xattrs(void)
{
    uint64_t plen = chan->arg[0], pl = chan->arg[2], len = chan->arg[3], off = (plen + pl + 7) & ~7ULL;
    uint32_t id = (uint32_t)chan->arg[1];
    struct inode *node = 0, *old = 0, *dir, scratch;
    const char *name;
    uint64_t nl;
    char prefix[XATTR_NAME_MAX + 1], tname[40];
    int r = bulk_path() < 0 || pl == 0 || pl > XATTR_NAME_MAX || chan->arg[1] > 0xffffffffULL || off > LEL_BULK_SIZE ||
                    len > LEL_BULK_SIZE - off
                ? -E_INVAL
                : 0;
    if (r == 0 && !id)
        r = fs_lookup(fs_root(), bulk, 1, &node);
    else if (r == 0 && (r = fs_parent_follow(fs_root(), bulk, &dir, &name, &nl)) == 0) {
        node = fs_child(dir, tname, upload_name(tname, id));
        old = fs_child(dir, name, nl);
        r = node && (node->mode & S_IFMT) == S_IFREG ? 0 : -E_NOENT; /* no such upload (any more) */
    }
    if (r == 0 && (node->mode & S_IFMT) != S_IFREG && (node->mode & S_IFMT) != S_IFDIR)
        r = -E_PERM; /* as user.* is refused there */
    if (r < 0) {
        chan->status = (uint32_t)-r;
        return;
    }
    kmemcpy(prefix, bulk + plen, pl);
    prefix[pl] = 0;
    /* the new set is made aside, so a failure leaves the node's as they were */
    kmemset(&scratch, 0, sizeof(scratch));
    r = xattr_copy(&scratch, node, prefix);
    if (r == 0 && old && old != node)
        r = xattr_copy(&scratch, old, prefix);
    if (r == 0)
        r = xattr_records(&scratch, off, len, prefix, pl);
    if (r < 0) {
        xattr_drop(&scratch);
        chan->status = (uint32_t)-r;
        return;
    }
    xattr_drop(node);
    node->xattrs = scratch.xattrs;
    if (!id)
        fs_notify(0, 0, 0, node, IN_ATTRIB_, 0);
}

void agent_file_delete(void)
{
    struct inode *dir, *node = 0;
    const char *name;
    uint64_t nl;
    int r = bulk_path() < 0 ? -E_INVAL : fs_parent(fs_root(), bulk, &dir, &name, &nl);
    if (r == -E_EXIST)
        r = -E_BUSY; /* "/" */
    else if (r == 0 && ((nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.')))
        r = -E_INVAL;
    else if (r == 0 && !(node = fs_child(dir, name, nl)))
        r = -E_NOENT;
    int is_dir = node && (node->mode & S_IFMT) == S_IFDIR;
    if (r == 0 && !is_dir && bulk[chan->arg[0] - 2] == '/')
        r = -E_NOTDIR; /* "file/" */
    if (r == 0)
        r = fs_unlink(dir, name, nl, is_dir);
    chan->status = r < 0 ? (uint32_t)-r : 0;
}

void agent_file_read(void)
{
    struct inode *f;
    uint64_t off = chan->arg[1], max = chan->arg[2] < LEL_BULK_SIZE ? chan->arg[2] : LEL_BULK_SIZE;
    bulk[FS_PATH_MAX - 1] = 0;
    int r = bulk[0] == '/' ? fs_lookup(fs_root(), bulk, 1, &f) : -E_INVAL;
    if (r == 0 && (f->mode & S_IFMT) == S_IFLNK)
        r = -E_NOENT; /* a descriptor's link (/dev/stdin): the agent has no descriptors */
    if (r < 0) {
        chan->status = (uint32_t)-r;
        return;
    }
    if ((f->mode & S_IFMT) == S_IFDIR) {
        uint64_t used = 0;
        if (f->gen)
            fs_gen_dir_sync(f);
        const char *name;
        struct inode *c;
        for (uint64_t i = 2; fs_readdir(f, i, &name, &c) == 0; i++) {
            char line[FS_NAME_MAX + 40], num[21];
            const char *size = kutoa(num, (c->mode & S_IFMT) == S_IFREG ? c->size : 0);
            uint64_t len = 0, nl = kstrlen(name), sl = kstrlen(size);
            line[len++] = (c->mode & S_IFMT) == S_IFDIR ? 'd' : (c->mode & S_IFMT) == S_IFLNK ? 'l' : 'f';
            line[len++] = ' ';
            kmemcpy(line + len, size, sl);
            len += sl;
            line[len++] = ' ';
            kmemcpy(line + len, name, nl);
            len += nl;
            line[len++] = '\n';
            if (used + len > max)
                break;
            kmemcpy(bulk + used, line, len);
            used += len;
        }
        chan->ret[0] = 2;
        chan->ret[1] = used;
        return;
    }
    struct inode *fresh = proc_file_render(f); /* a /proc file: its contents as of now */
    if (fresh)
        f = fresh;
    int64_t got = fs_read(f, off, bulk, max);
    chan->ret[0] = 1;
    chan->ret[1] = got > 0 ? (uint64_t)got : 0;
    chan->ret[2] = f->size;
    if (fresh)
        fs_anon_free(fresh);
}

/* ---- stat and listings (LEL_OP_FILE_STAT) ---- */

#define LIST_DEPTH_MAX 255

static int node_is_dir(const struct inode *i)
{
    return (i->mode & S_IFMT) == S_IFDIR;
}

/* Where symlink `link` in directory `dir` finally leads, as an absolute path in `out` (as
 * readlink -f): its length, with *fin the node; -1 when it leads nowhere. */
static int link_target(struct inode *dir, struct inode *link, char *out, uint64_t cap, struct inode **fin)
{
    for (int hops = 0; hops < 40; hops++) {
        struct inode *whole, *pd, *c;
        const char *nm;
        uint64_t nl;
        if (link->gen || fs_lookup(dir, link->target, 1, &whole) < 0)
            return -1; /* (a descriptor's link: the agent has no descriptors) */
        if (node_is_dir(whole)) {
            int n = fs_path_of(whole, out, cap);
            *fin = whole;
            return n > 0 ? n - 1 : -1;
        }
        if (fs_parent(dir, link->target, &pd, &nm, &nl) < 0 || !(c = fs_child(pd, nm, nl)))
            return -1;
        if ((c->mode & S_IFMT) == S_IFLNK) { /* the next link of a chain, read from its own directory */
            dir = pd;
            link = c;
            continue;
        }
        int pl = fs_path_of(pd, out, cap);
        if (pl <= 0 || (uint64_t)pl + nl + 1 > cap)
            return -1;
        pl--;
        if (pl > 1)
            out[pl++] = '/';
        kmemcpy(out + pl, nm, nl);
        out[pl + nl] = 0;
        *fin = c;
        return pl + (int)nl;
    }
    return -1;
}

/* Appends the record of `node` (in directory `dir`, `rel` its path in the listing) to the
 * answer at *used; -1 when it does not fit. */
/* The prefix of the attribute names the request's records carry (none: stat_prefix_len 0). */
static char stat_prefix[XATTR_NAME_MAX + 1];
static uint64_t stat_prefix_len;

#define STAT_XATTR_MAX (64u << 10) /* attribute bytes one record carries at most (the rest are left out) */

/* Appends node's attributes of stat_prefix at bulk + at as struct lel_xattr_rec records: their
 * bytes, or -1 when they do not fit below `end`. */
static int64_t stat_xattrs(const struct inode *node, uint64_t at, uint64_t end)
{
    uint64_t used = 0, nl;
    for (const struct xattr *x = stat_prefix_len ? xattr_next(node, 0) : 0; x; x = xattr_next(node, x)) {
        const char *nm = xattr_name(x, &nl);
        uint64_t vl = xattr_size(x), size = (sizeof(struct lel_xattr_rec) + nl + vl + 7) & ~7ULL, k = 0;
        if (nl < stat_prefix_len || kmemcmp(nm, stat_prefix, stat_prefix_len) || used + size > STAT_XATTR_MAX)
            continue;
        if (at + used + size > end)
            return -1;
        struct lel_xattr_rec xr = {(uint16_t)nl, 0, (uint32_t)vl};
        char *p = bulk + at + used;
        kmemcpy(p, &xr, sizeof(xr));
        kmemcpy(p + sizeof(xr), nm, nl);
        for (uint64_t off = 0; off < vl; off += k) {
            const void *from = xattr_bytes(x, off, &k);
            kmemcpy(p + sizeof(xr) + nl + off, from, k);
        }
        kmemset(p + sizeof(xr) + nl + vl, 0, size - sizeof(xr) - nl - vl);
        used += size;
    }
    return (int64_t)used;
}

static int stat_rec(uint64_t *used, struct inode *dir, struct inode *node, const char *rel, uint64_t rl)
{
    static char target[FS_PATH_MAX];
    struct lel_stat_rec r = {node->mode, 0, node->uid, node->gid, node->size, node->mtime, (uint16_t)rl, 0, 0};
    struct inode *fin;
    int tl = (node->mode & S_IFMT) == S_IFLNK ? link_target(dir, node, target, sizeof(target), &fin) : -1;
    if (tl >= 0) {
        r.tmode = fin->mode;
        r.target_len = (uint16_t)tl;
    }
    if ((node->mode & S_IFMT) == S_IFLNK && node->target)
        r.size = kstrlen(node->target);
    else if ((node->mode & S_IFMT) != S_IFREG)
        r.size = node_is_dir(node) ? 4096 : 0;
    uint64_t size = (sizeof(r) + rl + r.target_len + 7) & ~7ULL;
    if (*used + size > LEL_BULK_SIZE)
        return -1;
    /* (E2B reads a symlink's metadata through it, as getxattr(2) does) */
    int64_t xl = stat_xattrs(tl >= 0 ? fin : node, *used + size, LEL_BULK_SIZE);
    if (xl < 0)
        return -1;
    r.xattr_len = (uint32_t)xl;
    char *p = bulk + *used;
    kmemcpy(p, &r, sizeof(r));
    kmemcpy(p + sizeof(r), rel, rl);
    kmemcpy(p + sizeof(r) + rl, target, r.target_len);
    *used += size + (uint64_t)xl;
    return 0;
}

/* The entries of `top` down to `depth` levels, walking down children lists and back up
 * through the parent pointers (a deep tree needs no deep stack). 0, or -1 when the answer is
 * full. */
static int list_tree(struct inode *top, uint64_t depth, uint64_t *used, uint64_t *count)
{
    static char rel[FS_PATH_MAX];
    uint64_t at[LIST_DEPTH_MAX + 1], level = 0; /* where each level's names start in rel */
    struct inode *d = top, *c;
    const char *nm;
    if (d->gen)
        fs_gen_dir_sync(d);
    if (fs_readdir(d, 2, &nm, &c) < 0) /* (the image's entries join children) */
        return 0;
    struct dent *e = d->children;
    at[0] = 0;
    for (;;) {
        if (!e) {
            if (d == top)
                return 0;
            e = fs_dent_after(d);
            d = d->parent;
            level--;
            continue;
        }
        uint64_t n = kstrlen(e->name), rl = at[level] + n;
        if (rl >= FS_PATH_MAX) {
            e = e->next;
            continue;
        }
        kmemcpy(rel + at[level], e->name, n);
        if (stat_rec(used, d, e->inode, rel, rl) < 0)
            return -1;
        (*count)++;
        struct inode *sub = e->inode;
        if (level + 1 < depth && node_is_dir(sub) && sub->nlink && rl + 1 < FS_PATH_MAX && !sub->gen &&
            fs_readdir(sub, 2, &nm, &c) >= 0) {
            rel[rl] = '/';
            at[++level] = rl + 1;
            d = sub;
            e = d->children;
            continue;
        }
        e = e->next;
    }
}

void agent_file_stat(void)
{
    struct inode *node, *dir = fs_root();
    const char *name;
    uint64_t nl, used = 0, count = 0, depth = chan->arg[1] > LIST_DEPTH_MAX ? LIST_DEPTH_MAX : chan->arg[1];
    uint64_t pl = chan->arg[2];
    int r = bulk_path() < 0 || pl > XATTR_NAME_MAX || chan->arg[0] + pl > LEL_BULK_SIZE ? -E_INVAL : 0;
    if (r == 0) { /* the bulk area is the answer's: the prefix is kept aside */
        kmemcpy(stat_prefix, bulk + chan->arg[0], pl);
        stat_prefix_len = pl;
        r = fs_lookup(fs_root(), bulk, depth > 0, &node);
    }
    if (r == 0 && depth && !node_is_dir(node))
        r = -E_NOTDIR;
    if (r < 0) {
        chan->status = (uint32_t)-r;
        return;
    }
    int full;
    if (depth) {
        full = list_tree(node, depth, &used, &count) < 0;
    } else {
        if (fs_parent(fs_root(), bulk, &dir, &name, &nl) < 0)
            dir = fs_root(); /* "/" */
        full = stat_rec(&used, dir, node, "", 0) < 0;
        count = !full;
    }
    chan->ret[0] = count;
    chan->ret[1] = used;
    chan->ret[2] = (uint64_t)full;
}

/* ---- the host's watches (LEL_OP_WATCH_*) ---- */

void agent_watch_add(void)
{
    struct inode *d;
    int r = bulk_path() < 0 ? -E_INVAL : fs_lookup(fs_root(), bulk, 1, &d);
    if (r == 0)
        r = hwatch_add(d, chan->arg[1] == 1);
    if (r < 0)
        chan->status = (uint32_t)-r;
    else
        chan->ret[0] = (uint64_t)r;
}

void agent_watch_read(void)
{
    uint32_t n = 0, flags = 0;
    int64_t used = chan->arg[0] <= 0x7fffffff ? hwatch_read((int)chan->arg[0], bulk, LEL_BULK_SIZE, &n, &flags)
                                              : -E_NOENT;
    if (used < 0) {
        chan->status = (uint32_t)-used;
        return;
    }
    chan->ret[0] = n;
    chan->ret[1] = (uint64_t)used;
    chan->ret[2] = flags;
}

void agent_watch_remove(void)
{
    int r = chan->arg[0] <= 0x7fffffff ? hwatch_remove((int)chan->arg[0]) : -E_NOENT;
    if (r < 0)
        chan->status = (uint32_t)-r;
}
