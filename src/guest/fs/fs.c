/* tmpfs over kmalloc'd inodes and page-sized data blocks; see fs.h. Over a read-only image
 * (overlay.c) a directory takes in the image's entries as overlay.h says, and a file's data
 * stays the image's until it is written. */
#include "fs.h"

#include "overlay.h"
#include "rofs.h"
#include "xattr.h"
#include "../lib/klib.h"
#include "../mm/page.h"

#define MAX_FILE (512ULL << 30) /* what the data's page table reaches (slot) */

static struct inode *root;
static uint64_t next_ino = 1;
static int64_t clock_now;
static uint32_t owner_uid, owner_gid; /* who creates files now: the calling process's file-system ids */
static uint64_t data_pages; /* pages of file data, all files: the disk in use */
static uint64_t disk_limit; /* pages data_pages may reach (0: as many as memory gives) */

struct inode *fs__inode_new(uint32_t mode)
{
    struct inode *i = kmalloc(sizeof(*i));
    if (i) {
        i->mode = mode;
        i->nlink = 1;
        i->ino = next_ino++;
        i->mtime = i->ctime = i->atime = clock_now;
        i->uid = owner_uid;
        i->gid = owner_gid;
    }
    return i;
}

int fs_init(int64_t now)
{
    clock_now = now;
    root = fs__inode_new(S_IFDIR | 0755);
    if (!root)
        return -E_NOMEM;
    root->parent = root;
    root->nlink = 2;
    return 0;
}

struct inode *fs_root(void)
{
    return root;
}

static struct inode *child_of(struct inode *dir, const char *name, uint64_t n)
{
    if (n == 1 && name[0] == '.')
        return dir;
    if (n == 2 && name[0] == '.' && name[1] == '.')
        return dir->parent;
    for (struct dent *d = dir->children; d; d = d->next)
        if (kstrlen(d->name) == n && !kmemcmp(d->name, name, n))
            return d->inode;
    return dir->lower_dir ? ovl_lookup(dir, name, n) : 0;
}

int fs__dent_add(struct inode *dir, const char *name, uint64_t n, struct inode *i)
{
    struct dent *d = kmalloc(sizeof(*d));
    char *nm = kstrndup(name, n);
    if (!d || !nm) {
        kfree(d, sizeof(*d));
        kfree(nm, n + 1);
        return -E_NOMEM;
    }
    d->name = nm;
    d->inode = i;
    d->next = dir->children;
    dir->children = d;
    return 0;
}

/* Resolves path; `depth` counts symlinks followed so far. */
static int walk(struct inode *cwd, const char *path, int follow, int depth, struct inode **out)
{
    struct inode *cur = path[0] == '/' ? root : cwd;
    const char *p = path;
    if (!*path)
        return -E_NOENT;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = p;
        while (*end && *end != '/')
            end++;
        uint64_t n = (uint64_t)(end - p);
        if (n > FS_NAME_MAX)
            return -E_NAMETOOLONG;
        if ((cur->mode & S_IFMT) != S_IFDIR)
            return -E_NOTDIR;
        if (cur->gen)
            fs_gen_dir_sync(cur);
        struct inode *next = child_of(cur, p, n);
        if (!next)
            return -E_NOENT;
        const char *rest = end;
        while (*rest == '/')
            rest++;
        int last = !*rest;
        if ((next->mode & S_IFMT) == S_IFLNK && next->gen && (!last || *end == '/')) {
            return -E_NOTDIR; /* a descriptor's link leads to no directory here */
        } else if ((next->mode & S_IFMT) == S_IFLNK && !next->gen && (!last || follow || *end == '/')) {
            if (++depth > 40)
                return -E_LOOP;
            int r = walk(cur, next->target, 1, depth, &next);
            if (r < 0)
                return r;
        }
        cur = next;
        p = end;
        if (last && *end == '/' && (cur->mode & S_IFMT) != S_IFDIR)
            return -E_NOTDIR;
    }
    *out = cur;
    return 0;
}

int fs_lookup(struct inode *cwd, const char *path, int follow, struct inode **out)
{
    if (kstrnlen(path, FS_PATH_MAX) >= FS_PATH_MAX)
        return -E_NAMETOOLONG;
    return walk(cwd, path, follow, 0, out);
}

int fs_parent(struct inode *cwd, const char *path, struct inode **dir, const char **name, uint64_t *namelen)
{
    uint64_t len = kstrnlen(path, FS_PATH_MAX);
    char buf[FS_PATH_MAX];
    if (len >= FS_PATH_MAX)
        return -E_NAMETOOLONG;
    if (len == 0)
        return -E_NOENT;
    while (len > 1 && path[len - 1] == '/')
        len--;
    uint64_t slash = len;
    while (slash > 0 && path[slash - 1] != '/')
        slash--;
    *name = path + slash;
    *namelen = len - slash;
    if (*namelen == 0)
        return -E_EXIST; /* "/" itself */
    if (*namelen > FS_NAME_MAX)
        return -E_NAMETOOLONG;
    if (slash == 0) {
        *dir = cwd;
        return 0;
    }
    kmemcpy(buf, path, slash);
    buf[slash] = 0;
    int r = walk(cwd, buf, 1, 0, dir);
    if (r == 0 && ((*dir)->mode & S_IFMT) != S_IFDIR)
        return -E_NOTDIR;
    return r;
}

int fs_parent_follow(struct inode *cwd, const char *path, struct inode **dir, const char **name, uint64_t *namelen)
{
    for (int depth = 0;; depth++) {
        int r = fs_parent(cwd, path, dir, name, namelen);
        struct inode *c = r == 0 ? child_of(*dir, *name, *namelen) : 0;
        if (!c || (c->mode & S_IFMT) != S_IFLNK || c->gen)
            return r;
        if (depth == 40)
            return -E_LOOP;
        cwd = *dir; /* a relative target is read from the link's directory */
        path = c->target;
    }
}

struct inode *fs_child(struct inode *dir, const char *name, uint64_t namelen)
{
    return (dir->mode & S_IFMT) == S_IFDIR ? child_of(dir, name, namelen) : 0;
}

int fs_create(struct inode *dir, const char *name, uint64_t n, uint32_t mode, struct inode **out)
{
    if ((dir->mode & S_IFMT) != S_IFDIR)
        return -E_NOTDIR;
    if (dir->nlink == 0) /* removed */
        return -E_NOENT;
    if (child_of(dir, name, n))
        return -E_EXIST;
    struct dent *d = kmalloc(sizeof(*d));
    struct inode *i = fs__inode_new(mode);
    char *nm = kstrndup(name, n);
    if (!d || !i || !nm) {
        kfree(d, sizeof(*d));
        kfree(i, sizeof(*i));
        kfree(nm, n + 1);
        return -E_NOMEM;
    }
    if ((mode & S_IFMT) == S_IFDIR) {
        i->parent = dir;
        i->nlink = 2;
        dir->nlink++;
    }
    if (dir->mode & S_ISGID) { /* a set-group-ID directory: its group, and the bit for directories */
        i->gid = dir->gid;
        if ((mode & S_IFMT) == S_IFDIR)
            i->mode |= S_ISGID;
    }
    d->name = nm;
    d->inode = i;
    d->next = dir->children;
    dir->children = d;
    dir->mtime = clock_now;
    *out = i;
    fs_notify(dir, name, n, i, 0x100 /* IN_CREATE */, 0);
    return 0;
}

int fs_link(struct inode *dir, const char *name, uint64_t n, struct inode *target)
{
    if ((target->mode & S_IFMT) == S_IFDIR)
        return -E_PERM;
    if ((dir->mode & S_IFMT) != S_IFDIR)
        return -E_NOTDIR;
    if (dir->nlink == 0 || target->nlink == 0) /* a removed directory; a removed or anonymous file */
        return -E_NOENT;
    if (target->nlink >= 65000)
        return -E_MLINK;
    if (child_of(dir, name, n))
        return -E_EXIST;
    struct dent *d = kmalloc(sizeof(*d));
    char *nm = kstrndup(name, n);
    if (!d || !nm) {
        kfree(d, sizeof(*d));
        kfree(nm, n + 1);
        return -E_NOMEM;
    }
    d->name = nm;
    d->inode = target;
    d->next = dir->children;
    dir->children = d;
    target->nlink++;
    target->ctime = dir->mtime = clock_now;
    fs_notify(dir, name, n, target, 0x100 /* IN_CREATE */, 0);
    return 0;
}

/* File data: a three-level table of pages, as a page table is: pages[] is one page of 512
 * pointers to middle pages, each of 512 pointers to leaf pages, each of 512 pointers to data
 * pages. Every level is made as a write reaches it, so a file reaches 512 GiB without any
 * allocation larger than a page, and a sparse one (a write far past its end, as test_io's
 * large-file tests make) costs its data pages and a page or two of table. */
#define PER 512ULL
#define PER_FILE (PER * PER * PER) /* pages a file may have */

static void **slot(struct inode *f, uint64_t idx, int create)
{
    if (idx >= PER_FILE)
        return 0;
    if (!f->pages && (!create || !(f->pages = kpage_alloc())))
        return 0;
    void ***mid = (void ***)&f->pages[idx / (PER * PER)];
    if (!*mid && (!create || !(*mid = kpage_alloc())))
        return 0;
    void **leaf = (*mid)[(idx / PER) % PER];
    if (!leaf && (!create || !(leaf = (*mid)[(idx / PER) % PER] = kpage_alloc())))
        return 0;
    return &leaf[idx % PER];
}

uint64_t fs_data_pages(void)
{
    return data_pages;
}

void fs_set_disk_limit(uint64_t pages)
{
    disk_limit = pages;
}

uint64_t fs_disk_limit(void)
{
    return disk_limit;
}

/* A page of file data: NULL when the disk is full (its limit reached, or the memory short). */
static void *data_page_new(void)
{
    void *p = disk_limit && data_pages >= disk_limit ? 0 : kpage_alloc_data();
    if (p)
        data_pages++;
    return p;
}

void *fs_data_page(void)
{
    return data_page_new();
}

void fs_data_page_free(void *p)
{
    kpage_free(p);
    data_pages--;
}

void *fs_page(struct inode *f, uint64_t index)
{
    if ((f->mode & S_IFMT) != S_IFREG)
        return 0;
    if (f->lower_data)
        return index < (f->lower->size + PAGE_SIZE - 1) / PAGE_SIZE ? (void *)(rofs_data(f->lower) + index * PAGE_SIZE) : 0;
    void **sl = slot(f, index, 0);
    return sl ? *sl : 0;
}

void *fs_page_lower(struct inode *f, uint64_t index)
{
    void *p = fs_page(f, index);
    return p && rofs_contains(p) ? p : 0;
}

/* Frees a leaf's data pages from `from_page` on (`base`: the leaf's first page). */
static void drop_leaf(void **leaf, uint64_t base, uint64_t from_page)
{
    for (uint64_t k = 0; k < PER; k++) {
        if (base + k >= from_page && leaf[k]) {
            if (!rofs_contains(leaf[k])) { /* the image's pages are not the file's to free */
                kpage_free(leaf[k]);
                data_pages--;
            }
            leaf[k] = 0;
        }
    }
}

/* Frees the data from page `from_page` on, and the table pages that held only that. */
static void drop_data(struct inode *f, uint64_t from_page)
{
    if (!f->pages)
        return;
    for (uint64_t i = 0; i < PER; i++) {
        void ***mid = (void ***)f->pages[i];
        if (!mid || (i + 1) * PER * PER <= from_page)
            continue;
        for (uint64_t j = 0; j < PER; j++) {
            uint64_t base = (i * PER + j) * PER;
            if (!mid[j] || base + PER <= from_page)
                continue;
            drop_leaf(mid[j], base, from_page);
            if (base >= from_page) {
                kpage_free(mid[j]);
                mid[j] = 0;
            }
        }
        if (i * PER * PER >= from_page) {
            kpage_free(mid);
            f->pages[i] = 0;
        }
    }
}

/* A file whose data is the image's gets a page table of its own, its entries leading to the
 * image's pages (of its first `keep` bytes): a write then copies only the pages it touches. */
static int copy_up(struct inode *f, uint64_t keep)
{
    if (!f->lower_data)
        return 0;
    uint64_t size = keep < f->lower->size ? keep : f->lower->size, n = (size + PAGE_SIZE - 1) / PAGE_SIZE;
    if (n > PER_FILE)
        return -E_FBIG;
    for (uint64_t i = 0; i < n; i++) {
        void **sl = slot(f, i, 1);
        if (!sl) {
            drop_data(f, 0);
            return -E_NOSPC;
        }
        *sl = (void *)(rofs_data(f->lower) + i * PAGE_SIZE);
    }
    f->lower_data = 0;
    return 0;
}

/* The slot's page becomes the file's own when it is the image's (`fill`: with its contents). */
static int own_page(void **sl, int fill)
{
    if (!rofs_contains(*sl))
        return 0;
    void *p = data_page_new();
    if (!p)
        return -E_NOSPC;
    if (fill)
        kmemcpy(p, *sl, PAGE_SIZE);
    *sl = p;
    return 0;
}

void fs__inode_free(struct inode *i)
{
    ovl_forget(i);
    xattr_drop(i);
    if ((i->mode & S_IFMT) == S_IFREG && i->pages) {
        drop_data(i, 0);
        kpage_free(i->pages);
    }
    if (i->target)
        kfree(i->target, kstrlen(i->target) + 1);
    kfree(i, sizeof(*i));
}

int fs_unlink(struct inode *dir, const char *name, uint64_t n, int want_dir)
{
    if (ovl_merge(dir) < 0)
        return -E_NOMEM;
    for (struct dent **pp = &dir->children; *pp; pp = &(*pp)->next) {
        struct dent *d = *pp;
        if (kstrlen(d->name) != n || kmemcmp(d->name, name, n))
            continue;
        int is_dir = (d->inode->mode & S_IFMT) == S_IFDIR;
        if (want_dir && !is_dir)
            return -E_NOTDIR;
        if (!want_dir && is_dir)
            return -E_ISDIR;
        if (is_dir && (d->inode->children || d->inode->lower_dir))
            return -E_NOTEMPTY; /* (an image directory with entries: some are not in memory yet) */
        *pp = d->next;
        struct inode *gone = d->inode;
        if (is_dir) {
            dir->nlink--;
            gone->nlink = 0;
            gone->parent = gone; /* its parent may go before it does */
        } else {
            gone->nlink--;
        }
        int free_now = gone->nlink == 0 && gone->refs == 0; /* (a watched inode is held) */
        fs_notify(dir, name, n, gone, 0x200 /* IN_DELETE */, 0); /* may let the last watch's hold go */
        if (free_now)
            fs__inode_free(gone);
        kfree(d->name, n + 1);
        kfree(d, sizeof(*d));
        dir->mtime = clock_now;
        return 0;
    }
    return -E_NOENT;
}

static struct dent **dent_of(struct inode *dir, const char *name, uint64_t n)
{
    for (struct dent **pp = &dir->children; *pp; pp = &(*pp)->next)
        if (kstrlen((*pp)->name) == n && !kmemcmp((*pp)->name, name, n))
            return pp;
    return 0;
}

int fs_rename(struct inode *odir, const char *oname, uint64_t olen, struct inode *ndir, const char *nname, uint64_t nlen)
{
    if ((olen == 1 && oname[0] == '.') || (olen == 2 && oname[0] == '.' && oname[1] == '.') ||
        (nlen == 1 && nname[0] == '.') || (nlen == 2 && nname[0] == '.' && nname[1] == '.'))
        return -E_INVAL;
    if (ovl_merge(odir) < 0 || ovl_merge(ndir) < 0)
        return -E_NOMEM;
    struct dent **op = dent_of(odir, oname, olen);
    if (!op || ndir->nlink == 0)
        return -E_NOENT;
    struct inode *moving = (*op)->inode;
    int is_dir = (moving->mode & S_IFMT) == S_IFDIR;
    for (struct inode *d = ndir; is_dir; d = d->parent) { /* not into its own subtree */
        if (d == moving)
            return -E_INVAL;
        if (d == root)
            break;
    }
    struct dent **np = dent_of(ndir, nname, nlen);
    if (np && (*np)->inode == moving)
        return 0;
    if (np) {
        int target_dir = ((*np)->inode->mode & S_IFMT) == S_IFDIR;
        if (is_dir && !target_dir)
            return -E_NOTDIR;
        if (!is_dir && target_dir)
            return -E_ISDIR;
        int r = fs_unlink(ndir, nname, nlen, target_dir);
        if (r < 0)
            return r;
        op = dent_of(odir, oname, olen); /* the list may have changed */
    }
    char *nm = kstrndup(nname, nlen);
    if (!nm)
        return -E_NOMEM;
    struct dent *d = *op;
    *op = d->next;
    kfree(d->name, olen + 1);
    d->name = nm;
    d->next = ndir->children;
    ndir->children = d;
    if (is_dir && odir != ndir) {
        moving->parent = ndir;
        odir->nlink--;
        ndir->nlink++;
    }
    odir->mtime = ndir->mtime = clock_now;
    static uint32_t cookie;
    cookie++;
    fs_notify(odir, oname, olen, moving, 0x40 /* IN_MOVED_FROM */, cookie);
    fs_notify(ndir, nname, nlen, moving, 0x80 /* IN_MOVED_TO */, cookie);
    return 0;
}

void fs_set_clock(int64_t now)
{
    clock_now = now;
}

void fs_set_owner(uint32_t uid, uint32_t gid)
{
    owner_uid = uid;
    owner_gid = gid;
}

int64_t fs_read(struct inode *f, uint64_t off, void *buf, uint64_t n)
{
    if ((f->mode & S_IFMT) == S_IFDIR)
        return -E_ISDIR;
    if (off >= f->size)
        return 0;
    if (n > f->size - off)
        n = f->size - off;
    uint8_t *b = buf;
    for (uint64_t done = 0; done < n;) {
        uint64_t idx = (off + done) / PAGE_SIZE, in = (off + done) % PAGE_SIZE, chunk = PAGE_SIZE - in;
        if (chunk > n - done)
            chunk = n - done;
        const uint8_t *pg = fs_page(f, idx);
        if (pg)
            kmemcpy(b + done, pg + in, chunk);
        else
            kmemset(b + done, 0, chunk);
        done += chunk;
    }
    f->atime = clock_now;
    return (int64_t)n;
}

int64_t fs_write(struct inode *f, uint64_t off, const void *buf, uint64_t n)
{
    const uint8_t *b = buf;
    if ((f->mode & S_IFMT) != S_IFREG)
        return -E_INVAL;
    if (f->exec_users)
        return -E_TXTBSY;
    if (off + n < off || off + n > MAX_FILE)
        return -E_FBIG;
    int r = copy_up(f, f->size);
    if (r < 0)
        return r;
    uint64_t done = 0;
    while (done < n) {
        uint64_t idx = (off + done) / PAGE_SIZE, in = (off + done) % PAGE_SIZE, chunk = PAGE_SIZE - in;
        if (chunk > n - done)
            chunk = n - done;
        void **sl = slot(f, idx, 1);
        if (sl && !*sl)
            *sl = data_page_new();
        else if (sl && own_page(sl, in != 0 || chunk != PAGE_SIZE) < 0)
            sl = 0;
        if (!sl || !*sl) {
            if (done)
                break;
            return idx >= PER_FILE ? -E_FBIG : -E_NOSPC; /* as tmpfs: the memory is the disk */
        }
        kmemcpy((uint8_t *)*sl + in, b + done, chunk);
        done += chunk;
    }
    if (off + done > f->size)
        f->size = off + done;
    f->mtime = clock_now;
    fs_notify(0, 0, 0, f, 0x2 /* IN_MODIFY */, 0);
    return (int64_t)done;
}

int fs_host_pages(struct inode *f, uint64_t idx, uint64_t n, uint64_t size, uint32_t *pfn)
{
    if ((f->mode & S_IFMT) != S_IFREG || f->lower_data)
        return -E_INVAL;
    if (f->exec_users)
        return -E_TXTBSY;
    if (idx + n < idx || idx + n > PER_FILE || size > MAX_FILE)
        return -E_FBIG;
    uint64_t got = 0;
    for (; got < n; got++) {
        void **sl = slot(f, idx + got, 1);
        if (sl && !*sl && !(disk_limit && data_pages >= disk_limit) && (*sl = kpage_alloc_data_raw()))
            data_pages++;
        if (!sl || !*sl || rofs_contains(*sl))
            break;
        pfn[got] = (uint32_t)(kpage_gpa(*sl) >> 12);
    }
    if (n && !got)
        return -E_NOSPC;
    uint64_t end = (idx + got) * PAGE_SIZE;
    if ((size < end ? size : end) > f->size)
        f->size = size < end ? size : end;
    f->mtime = clock_now;
    fs_notify(0, 0, 0, f, 0x2 /* IN_MODIFY */, 0);
    return (int)got;
}

void *fs_page_shared(struct inode *f, uint64_t index)
{
    if ((f->mode & S_IFMT) != S_IFREG || copy_up(f, f->size) < 0)
        return 0;
    void **sl = slot(f, index, 1);
    if (sl && !*sl)
        *sl = data_page_new();
    else if (sl && own_page(sl, 1) < 0)
        return 0;
    return sl ? *sl : 0;
}

void fs_unmapped(struct inode *f)
{
    if (f->map_users && --f->map_users == 0)
        drop_data(f, (f->size + PAGE_SIZE - 1) / PAGE_SIZE);
}

/* A truncation of a file with shared mappings: the pages past `size` stay (mapped, zeroed). */
static void zero_tail(struct inode *f, uint64_t size)
{
    for (uint64_t i = size / PAGE_SIZE; i < (f->size + PAGE_SIZE - 1) / PAGE_SIZE; i++) {
        void **sl = slot(f, i, 0);
        uint64_t from = i == size / PAGE_SIZE ? size % PAGE_SIZE : 0;
        if (sl && *sl && rofs_contains(*sl) && !from)
            *sl = 0; /* the image's page: not mapped, and not the file's any more */
        else if (sl && *sl && own_page(sl, 1) == 0)
            kmemset((uint8_t *)*sl + from, 0, PAGE_SIZE - from);
    }
}

int fs_truncate(struct inode *f, uint64_t size)
{
    if ((f->mode & S_IFMT) != S_IFREG)
        return -E_INVAL;
    if (f->exec_users)
        return -E_TXTBSY;
    if (size > MAX_FILE)
        return -E_FBIG;
    int r = copy_up(f, size);
    if (r < 0)
        return r;
    if (size < f->size && f->pages && f->map_users) {
        zero_tail(f, size);
    } else if (size < f->size && f->pages) {
        uint64_t keep = (size + PAGE_SIZE - 1) / PAGE_SIZE;
        void **sl = size % PAGE_SIZE ? slot(f, keep - 1, 0) : 0;
        if (sl && *sl && own_page(sl, 1) < 0)
            return -E_NOSPC;
        drop_data(f, keep);
        if (sl && *sl)
            kmemset((uint8_t *)*sl + size % PAGE_SIZE, 0, PAGE_SIZE - size % PAGE_SIZE);
    }
    f->size = size;
    f->mtime = clock_now;
    fs_notify(0, 0, 0, f, 0x2 /* IN_MODIFY */, 0);
    return 0;
}

void fs_hold(struct inode *i)
{
    if (i)
        i->refs++;
}

void fs_release(struct inode *i)
{
    if (i && --i->refs == 0 && i->nlink == 0)
        fs__inode_free(i);
}

struct inode *fs_anon_file(void)
{
    struct inode *i = fs__inode_new(S_IFREG | 0600);
    if (i) {
        i->nlink = 0;
        i->refs = 1;
    }
    return i;
}

void fs_anon_free(struct inode *f)
{
    fs_release(f);
}

int fs_readdir(struct inode *dir, uint64_t index, const char **name, struct inode **child)
{
    if ((dir->mode & S_IFMT) != S_IFDIR)
        return -E_NOTDIR;
    if (dir->nlink == 0) /* removed: empty, without even "." and "..", as on Linux */
        return 1;
    if (dir->lower_dir && ovl_merge(dir) < 0)
        return -E_NOMEM;
    if (index == 0) {
        *name = ".";
        *child = dir;
        return 0;
    }
    if (index == 1) {
        *name = "..";
        *child = dir->parent;
        return 0;
    }
    struct dent *d = dir->children;
    for (uint64_t i = 2; d && i < index; i++)
        d = d->next;
    if (!d)
        return 1;
    *name = d->name;
    *child = d->inode;
    return 0;
}

int fs_path_of(struct inode *d, char *buf, uint64_t cap)
{
    char tmp[FS_PATH_MAX];
    uint64_t pos = sizeof(tmp);
    tmp[--pos] = 0;
    while (d != root) {
        if (d->nlink == 0) /* removed: no path leads here */
            return -E_NOENT;
        struct inode *p = d->parent;
        struct dent *e = p->children;
        while (e && e->inode != d)
            e = e->next;
        if (!e)
            return -E_NOENT;
        uint64_t n = kstrlen(e->name);
        if (n + 1 > pos)
            return -E_NAMETOOLONG;
        pos -= n;
        kmemcpy(tmp + pos, e->name, n);
        tmp[--pos] = '/';
        d = p;
    }
    if (pos == sizeof(tmp) - 1)
        tmp[--pos] = '/';
    uint64_t len = sizeof(tmp) - pos;
    if (len > cap)
        return -E_NAMETOOLONG;
    kmemcpy(buf, tmp + pos, len);
    return (int)len;
}

/* ---- cpio newc ---- */

static int hex8(const uint8_t *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -E_INVAL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int fs_unpack_cpio(const uint8_t *img, uint64_t len)
{
    uint64_t off = 0;
    while (off + 110 <= len) {
        const uint8_t *h = img + off;
        uint64_t mode, uid, gid, mtime, filesize, namesize;
        if (kmemcmp(h, "070701", 6) || hex8(h + 14, &mode) || hex8(h + 22, &uid) || hex8(h + 30, &gid) ||
            hex8(h + 46, &mtime) || hex8(h + 54, &filesize) || hex8(h + 94, &namesize) || namesize == 0 ||
            namesize > FS_PATH_MAX || uid > 0xffffffffULL || gid > 0xffffffffULL)
            return -E_INVAL;
        uint64_t name_off = off + 110, data_off = (name_off + namesize + 3) & ~3ULL;
        if (name_off + namesize > len || data_off > len || filesize > len - data_off)
            return -E_INVAL;
        const char *name = (const char *)img + name_off;
        if (name[namesize - 1] != 0)
            return -E_INVAL;
        off = (data_off + filesize + 3) & ~3ULL;
        if (!kstrcmp(name, "TRAILER!!!")) {
            /* archives may follow one another, each padded with zeros, as Linux's initramfs
             * takes them (mkrootfs.sh adds one for the entries owned by another user) */
            while (off < len && img[off] == 0)
                off++;
            if (off == len)
                return 0;
            continue;
        }
        if (!kstrcmp(name, "."))
            continue;
        struct inode *dir, *node;
        const char *base;
        uint64_t blen;
        int r = fs_parent(root, name, &dir, &base, &blen);
        if (r < 0)
            return r;
        uint32_t type = (uint32_t)mode & S_IFMT;
        if (type != S_IFDIR && type != S_IFREG && type != S_IFLNK)
            continue; /* devices and fifos are not part of our root filesystems */
        /* a symlink's target is checked before its node exists: a refused archive must leave
         * no link without a target behind, which a lookup would follow (found by
         * tests/fuzz/fuzz_guest_cpio). A target holds no NUL, as on Linux. */
        char *target = NULL;
        if (type == S_IFLNK) {
            if (filesize == 0 || filesize >= FS_PATH_MAX || kstrnlen((const char *)img + data_off, filesize) != filesize)
                return -E_INVAL;
            if (!(target = kstrndup((const char *)img + data_off, filesize)))
                return -E_NOMEM;
        }
        if ((r = fs_create(dir, base, blen, (uint32_t)mode, &node)) < 0) {
            kfree(target, filesize + 1);
            return r;
        }
        node->mtime = node->ctime = (int64_t)mtime;
        node->uid = (uint32_t)uid; /* the archive's owners (E2B's `user` owns its home) */
        node->gid = (uint32_t)gid;
        if (type == S_IFREG && filesize && fs_write(node, 0, img + data_off, filesize) != (int64_t)filesize)
            return -E_NOMEM;
        if (target) {
            node->target = target;
            node->size = filesize;
        }
    }
    return -E_INVAL; /* no trailer: truncated */
}

int fs_find_path(struct inode *f, struct inode *skip, char *buf, uint64_t cap)
{
    struct inode *dir = root;
    struct dent *d = root->children;
    for (;;) {
        if (!d) { /* this directory is done: on with its next sibling */
            if (dir == root)
                return -E_NOENT;
            struct dent *e = dir->parent->children;
            while (e && e->inode != dir)
                e = e->next;
            if (!e)
                return -E_NOENT;
            dir = dir->parent;
            d = e->next;
        } else if (d->inode == f) {
            int r = fs_path_of(dir, buf, cap);
            uint64_t at = r < 0 ? 0 : kstrlen(buf), n = kstrlen(d->name);
            if (r < 0 || at + n + 2 > cap)
                return r < 0 ? r : -E_NAMETOOLONG;
            if (dir != root)
                buf[at++] = '/';
            kmemcpy(buf + at, d->name, n + 1);
            return 0;
        } else if ((d->inode->mode & S_IFMT) == S_IFDIR && d->inode != skip && d->inode->children) {
            dir = d->inode;
            d = dir->children;
        } else {
            d = d->next;
        }
    }
}

struct dent *fs_dent_after(const struct inode *d)
{
    struct dent *s = d->parent->children;
    while (s && s->inode != d)
        s = s->next;
    return s ? s->next : 0;
}
