/* Fuzz target: the guest's cpio (newc) unpacker and path resolution, built for the host as
 * test_guest_fs is. An input is an archive, optionally followed by "\n#paths\n" and one path a
 * line: the archive is unpacked into an empty tree and each path resolved (followed and not),
 * as a program's open/stat would; then the tree is removed again. */
#include "guest/fs/fs.h"
#include "guest/lib/klib.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process code's part (fs/procfs.c): no generated directories, no inotify here. */
void fs_gen_dir_sync(struct inode *dir)
{
    (void)dir;
}

void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie)
{
    (void)dir, (void)name, (void)n, (void)node, (void)mask, (void)cookie;
}

/* Removes everything below dir (depth first), as unlink and rmdir would. */
static void empty(struct inode *dir, int depth)
{
    while (dir->children) {
        struct dent *d = dir->children;
        int is_dir = (d->inode->mode & S_IFMT) == S_IFDIR;
        if (is_dir && depth < 256)
            empty(d->inode, depth + 1);
        if (fs_unlink(dir, d->name, strlen(d->name), is_dir) != 0)
            abort(); /* an unpacked tree that cannot be removed again */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (fs_init(1700000000) != 0)
            abort();
        ready = 1;
    }
    static const char sep[] = "\n#paths\n";
    const uint8_t *paths = memmem(data, size, sep, sizeof(sep) - 1);
    size_t alen = paths ? (size_t)(paths - data) : size;
    /* the unpacker reads the archive in place; a copy of exactly its size lets ASan see overreads */
    uint8_t *img = malloc(alen ? alen : 1);
    memcpy(img, data, alen);
    (void)fs_unpack_cpio(img, alen);
    free(img);
    if (paths) {
        const char *p = (const char *)paths + sizeof(sep) - 1, *end = (const char *)data + size;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *path = strndup(p, n);
            struct inode *out, *dir;
            const char *name;
            uint64_t namelen;
            (void)fs_lookup(fs_root(), path, 1, &out);
            (void)fs_lookup(fs_root(), path, 0, &out);
            (void)fs_parent(fs_root(), path, &dir, &name, &namelen);
            (void)fs_parent_follow(fs_root(), path, &dir, &name, &namelen);
            free(path);
            p += n + 1;
        }
    }
    empty(fs_root(), 0);
    return 0;
}
