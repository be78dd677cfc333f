/* The host's watches of a directory tree; see hwatch.h.
 *
 * The index: every entry of the watched tree (one per name: a file with two links in it has
 * two) as (node, directory, name), hashed by node. It changes with the tree, inside fs_notify:
 * an entry created or moved in joins it (with its subtree, for a directory), one removed or
 * moved out leaves it. No pointer in it is ever followed but a directory's on the way up from
 * a change to the watched directory, and a directory leaves the index before it can go (it is
 * removed empty, by fs_unlink, which reports it first). Directories are listed through
 * fs_readdir once before their entries are taken, so the read-only image's entries are all in
 * memory (children) by then and none joins later unreported. */
#include "hwatch.h"

#include "fs.h"
#include "inotify.h"
#include "../arch/arch.h"
#include "../lel_guest_abi.h"
#include "../lib/klib.h"
#include "../mm/page.h"

#define BUCKETS (PAGE_SIZE / sizeof(void *))
#define EV_INLINE 2048 /* kmalloc's largest; a longer event takes a page */
#define PATH_CAP (PAGE_SIZE - sizeof(struct hw_ev))

struct hw_ent {
    struct hw_ent *next; /* in its bucket */
    struct inode *node, *dir;
    uint32_t n;
    char name[];
};

struct hw_ev {
    struct hw_ev *next;
    uint32_t type, len;
    char path[];
};

struct hwatch {
    int id;
    int recursive;
    int rung;   /* the host was told of unread events (once until it reads) */
    uint32_t lost; /* LEL_WATCH_LOST, LEL_WATCH_GONE as the next read says them */
    struct inode *root; /* held */
    struct hw_ent **bucket; /* a page */
    uint32_t nent, nq;
    struct hw_ev *head, *tail;
};

static struct hwatch *watches[HWATCH_MAX];
static int nwatches, last_id;
/* The agent's upload renaming its temporary over `name` in `dir` (hwatch_upload) */
static struct {
    const struct inode *dir;
    const char *name;
    uint64_t n;
    int replaced; /* a file was there: its removal is no event, the move is its write */
} up;

static const char upload_prefix[] = ".lelantos-upload-";

static uint64_t hash(const struct inode *node)
{
    return ((uint64_t)(uintptr_t)node >> 4) * 0x9e3779b97f4a7c15ULL >> 55; /* 9 bits: 512 buckets */
}

static int is_dir(const struct inode *i)
{
    return (i->mode & S_IFMT) == S_IFDIR;
}

static int ent_add(struct hwatch *w, struct inode *node, struct inode *dir, const char *name, uint64_t n)
{
    if (w->nent >= HWATCH_ENTRIES)
        return -E_NOSPC;
    struct hw_ent *e = kmalloc(sizeof(*e) + n + 1);
    if (!e)
        return -E_NOMEM;
    e->node = node;
    e->dir = dir;
    e->n = (uint32_t)n;
    kmemcpy(e->name, name, n);
    struct hw_ent **b = &w->bucket[hash(node)];
    e->next = *b;
    *b = e;
    w->nent++;
    return 0;
}

static void ent_del(struct hwatch *w, const struct inode *node, const struct inode *dir, const char *name, uint64_t n)
{
    for (struct hw_ent **pp = &w->bucket[hash(node)]; *pp; pp = &(*pp)->next) {
        struct hw_ent *e = *pp;
        if (e->node == node && e->dir == dir && e->n == n && !kmemcmp(e->name, name, n)) {
            *pp = e->next;
            kfree(e, sizeof(*e) + e->n + 1);
            w->nent--;
            return;
        }
    }
}

/* A directory's one entry in the tree; NULL when it is not in it. */
static const struct hw_ent *dir_ent(const struct hwatch *w, const struct inode *d)
{
    for (const struct hw_ent *e = w->bucket[hash(d)]; e; e = e->next)
        if (e->node == d)
            return e;
    return 0;
}

/* Whether a change in directory `dir` is the watch's. */
static int in_tree(const struct hwatch *w, const struct inode *dir)
{
    return dir == w->root || (w->recursive && dir_ent(w, dir));
}

/* Takes `d`'s entries into the index (sign > 0) or out of it, and with a recursive watch
 * those of the directories below it, walking down children lists and back up through the
 * parent pointers (no recursion: a kernel stack is small and trees are deep). */
static int walk_tree(struct hwatch *w, struct inode *top, int sign)
{
    struct inode *d = top;
    struct dent *e;
    const char *nm;
    struct inode *c;
    if (fs_readdir(d, 2, &nm, &c) < 0) /* (the image's entries join children) */
        return -E_NOMEM;
    e = d->children;
    for (;;) {
        if (!e) { /* d is done: on with its next sibling, up to the top */
            if (d == top)
                return 0;
            e = fs_dent_after(d);
            d = d->parent;
            continue;
        }
        uint64_t n = kstrlen(e->name);
        if (sign > 0) {
            int r = ent_add(w, e->inode, d, e->name, n);
            if (r < 0)
                return r;
        } else {
            ent_del(w, e->inode, d, e->name, n);
        }
        if (w->recursive && is_dir(e->inode) && e->inode->nlink && fs_readdir(e->inode, 2, &nm, &c) >= 0) {
            d = e->inode;
            e = d->children;
            continue;
        }
        e = e->next;
    }
}

static void ev_free(struct hw_ev *ev)
{
    uint64_t size = sizeof(*ev) + ev->len;
    if (size > EV_INLINE)
        kpage_free(ev);
    else
        kfree(ev, size);
}

/* The directory above `d` in the tree, or NULL (a change outside it). */
static const struct hw_ent *up_ent(const struct hwatch *w, const struct inode *d)
{
    return d == w->root ? 0 : dir_ent(w, d);
}

/* Queues an event about `name` in directory `dir` (n 0: `dir` itself); the path is made from
 * the end, up the directories' entries to the watched one. */
static void queue(struct hwatch *w, uint32_t type, const struct inode *dir, const char *name, uint64_t n)
{
    uint64_t len = n, depth = 0;
    for (const struct inode *d = dir; d != w->root; depth++) {
        const struct hw_ent *de = up_ent(w, d);
        if (!de || depth > FS_PATH_MAX / 2) /* (cannot be: a change outside the tree) */
            return;
        len += de->n + (len ? 1 : 0);
        d = de->dir;
    }
    if (!len)
        len = 1; /* "." */
    if (w->nq >= HWATCH_QMAX || len > PATH_CAP) {
        w->lost |= LEL_WATCH_LOST;
        return;
    }
    uint64_t size = sizeof(struct hw_ev) + len;
    struct hw_ev *ev = size > EV_INLINE ? kpage_alloc() : kmalloc(size);
    if (!ev) {
        w->lost |= LEL_WATCH_LOST;
        return;
    }
    ev->type = type;
    ev->len = (uint32_t)len;
    uint64_t at = len;
    if (n) {
        at -= n;
        kmemcpy(ev->path + at, name, n);
    }
    for (const struct inode *d = dir; d != w->root;) {
        const struct hw_ent *de = up_ent(w, d);
        if (at != len)
            ev->path[--at] = '/';
        at -= de->n;
        kmemcpy(ev->path + at, de->name, de->n);
        d = de->dir;
    }
    if (len == 1 && !n && dir == w->root)
        ev->path[0] = '.';
    struct hw_ev *t = w->tail;
    if (t && t->type == type && t->len == ev->len && !kmemcmp(t->path, ev->path, len)) {
        ev_free(ev); /* the same as the last one, unread: once */
        return;
    }
    ev->next = 0;
    if (t)
        t->next = ev;
    else
        w->head = ev;
    w->tail = ev;
    w->nq++;
    if (!w->rung) {
        w->rung = 1;
        kernel_event();
    }
}

static int is_upload_tmp(const char *name, uint64_t n)
{
    uint64_t pl = sizeof(upload_prefix) - 1;
    return n > pl && !kmemcmp(name, upload_prefix, pl);
}

static int is_upload_target(const struct inode *dir, const char *name, uint64_t n)
{
    return up.dir == dir && up.n == n && !kmemcmp(up.name, name, n);
}

/* A change in directory `dir` of the tree: the index follows it, and the event is queued. */
static void dir_change(struct hwatch *w, struct inode *dir, const char *name, uint64_t n, struct inode *node,
                       uint32_t mask)
{
    int sub = w->recursive && node && is_dir(node), quiet = is_upload_tmp(name, n);
    if (mask & (IN_CREATE_ | IN_MOVED_TO_)) {
        if (node && (ent_add(w, node, dir, name, n) < 0 || (sub && walk_tree(w, node, 1) < 0)))
            w->lost |= LEL_WATCH_LOST; /* the index is short of what it should hold */
        int upload = (mask & IN_MOVED_TO_) && is_upload_target(dir, name, n);
        if (!quiet && !(upload && up.replaced))
            queue(w, LEL_WEV_CREATE, dir, name, n);
        if (upload)
            queue(w, LEL_WEV_WRITE, dir, name, n); /* an upload's file, written whole */
    } else if (mask & (IN_DELETE_ | IN_MOVED_FROM_)) {
        if (!quiet && !((mask & IN_DELETE_) && is_upload_target(dir, name, n)))
            queue(w, mask & IN_DELETE_ ? LEL_WEV_REMOVE : LEL_WEV_RENAME, dir, name, n);
        if (sub)
            walk_tree(w, node, -1);
        if (node)
            ent_del(w, node, dir, name, n);
    } else if ((mask & (IN_MODIFY_ | IN_ATTRIB_)) && !quiet) {
        queue(w, mask & IN_MODIFY_ ? LEL_WEV_WRITE : LEL_WEV_CHMOD, dir, name, n);
    }
}

/* A write or an attribute change knows only its inode: each of its names in the tree. */
static void node_change(struct hwatch *w, const struct inode *node, uint32_t mask)
{
    uint32_t type = mask & IN_MODIFY_ ? LEL_WEV_WRITE : mask & IN_ATTRIB_ ? LEL_WEV_CHMOD : 0;
    if (!type)
        return;
    for (const struct hw_ent *e = w->bucket[hash(node)]; e; e = e->next)
        if (e->node == node && !is_upload_tmp(e->name, e->n))
            queue(w, type, e->dir, e->name, e->n);
}

void hwatch_upload(const struct inode *dir, const char *name, uint64_t n)
{
    up.dir = dir;
    up.name = name;
    up.n = dir ? n : 0;
    up.replaced = 0;
}

void hwatch_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask)
{
    if (dir && (mask & IN_DELETE_) && is_upload_target(dir, name, n))
        up.replaced = 1;
    for (int k = 0; nwatches && k < HWATCH_MAX; k++) {
        struct hwatch *w = watches[k];
        if (!w || (w->lost & LEL_WATCH_GONE))
            continue;
        if (node == w->root && (mask & IN_DELETE_) && node->nlink == 0) {
            queue(w, LEL_WEV_REMOVE, w->root, 0, 0);
            w->lost |= LEL_WATCH_GONE;
            continue;
        }
        if (dir && in_tree(w, dir))
            dir_change(w, dir, name, n, node, mask);
        else if (!dir && node)
            node_change(w, node, mask);
    }
}

static void watch_free(struct hwatch *w)
{
    for (uint64_t b = 0; b < BUCKETS; b++)
        for (struct hw_ent *e = w->bucket[b], *next; e; e = next) {
            next = e->next;
            kfree(e, sizeof(*e) + e->n + 1);
        }
    for (struct hw_ev *ev = w->head, *next; ev; ev = next) {
        next = ev->next;
        ev_free(ev);
    }
    kpage_free(w->bucket);
    fs_release(w->root);
    kfree(w, sizeof(*w));
}

int hwatch_add(struct inode *dir, int recursive)
{
    if (!is_dir(dir))
        return -E_NOTDIR;
    int slot = 0;
    while (slot < HWATCH_MAX && watches[slot])
        slot++;
    if (slot == HWATCH_MAX)
        return -E_NOSPC;
    struct hwatch *w = kmalloc(sizeof(*w));
    if (!w || !(w->bucket = kpage_alloc())) {
        kfree(w, sizeof(*w));
        return -E_NOMEM;
    }
    w->root = dir;
    w->recursive = recursive;
    fs_hold(dir);
    int r = walk_tree(w, dir, 1);
    if (r < 0) {
        watch_free(w);
        return r;
    }
    w->id = ++last_id > 0 ? last_id : (last_id = 1);
    watches[slot] = w;
    nwatches++;
    return w->id;
}

int hwatch_remove(int id)
{
    int found = 0;
    for (int k = 0; k < HWATCH_MAX; k++) {
        struct hwatch *w = watches[k];
        if (!w || (id && w->id != id))
            continue;
        watches[k] = 0;
        nwatches--;
        watch_free(w);
        found = 1;
    }
    return found || !id ? 0 : -E_NOENT;
}

static struct hwatch *find(int id)
{
    for (int k = 0; k < HWATCH_MAX; k++)
        if (watches[k] && watches[k]->id == id)
            return watches[k];
    return 0;
}

int64_t hwatch_read(int id, char *buf, uint64_t cap, uint32_t *n, uint32_t *flags)
{
    struct hwatch *w = id > 0 ? find(id) : 0;
    if (!w)
        return -E_NOENT;
    uint64_t used = 0;
    *n = 0;
    while (w->head) {
        struct hw_ev *ev = w->head;
        uint64_t rec = (sizeof(struct lel_watch_rec) + ev->len + 7) & ~7ULL;
        if (used + rec > cap)
            break;
        struct lel_watch_rec r = {ev->type, ev->len};
        kmemcpy(buf + used, &r, sizeof(r));
        kmemcpy(buf + used + sizeof(r), ev->path, ev->len);
        used += rec;
        (*n)++;
        w->head = ev->next;
        if (!w->head)
            w->tail = 0;
        w->nq--;
        ev_free(ev);
    }
    *flags = (w->lost & (LEL_WATCH_LOST | LEL_WATCH_GONE)) | (w->head ? LEL_WATCH_MORE : 0);
    w->lost &= ~(uint32_t)LEL_WATCH_LOST;
    w->rung = 0;
    return (int64_t)used;
}

uint32_t hwatch_poll(uint32_t *pairs, uint32_t max)
{
    uint32_t k = 0;
    for (int i = 0; i < HWATCH_MAX && k < max; i++) {
        struct hwatch *w = watches[i];
        if (w && (w->head || (w->lost & LEL_WATCH_LOST))) {
            pairs[2 * k] = (uint32_t)w->id;
            pairs[2 * k + 1] = LEL_POLL_WATCH;
            k++;
        }
    }
    return k;
}
