/* The guest's file system, built for the host: unpack the real default root filesystem
 * (busybox), resolve paths and symlinks, read, write, truncate, list, unlink, find a file's
 * path, generated directories and descriptor links. */
#include "../../src/guest/fs/fs.h"
#include "../../src/guest/lib/klib.h"
#include "../../src/guest/mm/page.h"
#include "../lel_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *slurp(const char *path, uint64_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* The process code's part (fs/procfs.c, /proc/<pid>/fd): here a generated directory always
 * lists one descriptor link, "0". */
static int syncs;
void fs_gen_dir_sync(struct inode *dir)
{
    struct inode *l;
    syncs++;
    if (fs_create(dir, "0", 1, S_IFLNK | 0700, &l) == 0) {
        l->gen = 1;
        l->target = kstrndup("pipe:[1]", 8);
    }
}

void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie)
{
    (void)dir, (void)name, (void)n, (void)node, (void)mask, (void)cookie; /* no inotify here */
}

/* One newc entry: header, name, data, each padded to 4 bytes. */
static size_t cpio_entry(uint8_t *out, const char *name, uint32_t mode, const char *data, size_t dlen)
{
    size_t nlen = strlen(name) + 1;
    size_t n = (size_t)sprintf((char *)out, "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", 1u, mode, 0u,
                               0u, 1u, 0u, dlen, 0u, 0u, 0u, 0u, nlen, 0u);
    memcpy(out + n, name, nlen);
    n = (n + nlen + 3) & ~(size_t)3;
    memcpy(out + n, data, dlen);
    return (n + dlen + 3) & ~(size_t)3;
}

/* A symlink without a target, or with a NUL in it, is refused before its node exists: no link
 * that leads nowhere is left in the tree (found by tests/fuzz/fuzz_guest_cpio). */
static void cpio_bad_symlink(void)
{
    uint8_t a[1024];
    struct inode *n;
    size_t len = cpio_entry(a, "badlink", 0120777, "", 0);
    len += cpio_entry(a + len, "TRAILER!!!", 0, "", 0);
    CHECK(fs_unpack_cpio(a, len) < 0);
    CHECK(fs_lookup(fs_root(), "/badlink", 0, &n) < 0);
    len = cpio_entry(a, "nullink", 0120777, "ab\0c", 4);
    len += cpio_entry(a + len, "TRAILER!!!", 0, "", 0);
    CHECK(fs_unpack_cpio(a, len) < 0);
    CHECK(fs_lookup(fs_root(), "/nullink", 0, &n) < 0);
    len = cpio_entry(a, "goodlink", 0120777, "/etc", 4);
    len += cpio_entry(a + len, "TRAILER!!!", 0, "", 0);
    CHECK_INT(fs_unpack_cpio(a, len), 0);
    CHECK_INT(fs_lookup(fs_root(), "/goodlink", 0, &n), 0);
    CHECK_STR(n->target, "/etc");
}

int main(void)
{
    uint64_t len = 0;
    uint8_t *img = slurp(LEL_ROOTFS_CPIO, &len);
    CHECK(img != NULL);
    if (!img)
        return lel_test_finish();
    CHECK(fs_init(1700000000) == 0);
    CHECK_INT(fs_unpack_cpio(img, len), 0);
    CHECK(fs_unpack_cpio(img, len / 2) < 0); /* truncated: refused (duplicates or missing trailer) */
    struct inode *bb, *sh, *tmp, *etc, *pw;
    CHECK_INT(fs_lookup(fs_root(), "/bin/busybox", 1, &bb), 0);
    uint64_t bblen = 0;
    uint8_t *host_bb = slurp("/bin/busybox", &bblen);
    CHECK_INT(bb->size, bblen);
    uint8_t *copy = malloc(bblen);
    CHECK_INT(fs_read(bb, 0, copy, bblen), bblen);
    CHECK(memcmp(copy, host_bb, bblen) == 0);
    CHECK_INT(fs_lookup(fs_root(), "/bin/sh", 0, &sh), 0);
    CHECK_INT(sh->mode & S_IFMT, S_IFLNK);
    CHECK_INT(fs_lookup(fs_root(), "/bin/sh", 1, &sh), 0);
    CHECK(sh == bb); /* symlink followed */
    CHECK_INT(fs_lookup(fs_root(), "/tmp", 1, &tmp), 0);
    CHECK_INT(tmp->mode & 07777, 01777);
    struct inode *home, *ubin;
    CHECK_INT(fs_lookup(fs_root(), "/home/user", 1, &home), 0); /* from the second archive, with its owner */
    CHECK_INT(home->uid, 1000);
    CHECK_INT(home->gid, 1000);
    CHECK_INT(fs_lookup(fs_root(), "/usr/bin", 1, &ubin), 0);
    CHECK_INT(ubin->uid, 0);
    CHECK_INT(fs_lookup(fs_root(), "bin/../etc/./passwd", 1, &pw), -E_NOENT); /* bin -> usr/bin: .. is /usr */
    CHECK_INT(fs_lookup(fs_root(), "bin/../../etc/./passwd", 1, &pw), 0);
    char buf[64] = {0};
    CHECK(fs_read(pw, 0, buf, sizeof(buf) - 1) > 0);
    CHECK(strncmp(buf, "root:x:0:0:", 11) == 0);
    CHECK_INT(fs_lookup(fs_root(), "/etc/passwd/x", 1, &etc), -E_NOTDIR);
    CHECK_INT(fs_lookup(fs_root(), "/nope", 1, &etc), -E_NOENT);

    /* write, sparse growth, truncate, list, unlink */
    struct inode *dir, *f;
    const char *name;
    uint64_t nlen;
    CHECK_INT(fs_parent(tmp, "/tmp/a.bin", &dir, &name, &nlen), 0);
    CHECK(dir == tmp && nlen == 5);
    CHECK_INT(fs_create(dir, name, nlen, S_IFREG | 0644, &f), 0);
    CHECK_INT(fs_create(dir, name, nlen, S_IFREG | 0644, &f), -E_EXIST);
    size_t big = 3 << 20;
    uint8_t *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    CHECK_INT(fs_write(f, 0, data, big), big);
    CHECK_INT(fs_write(f, big + 10000, "x", 1), 1);
    CHECK_INT(f->size, big + 10001);
    CHECK_INT(fs_read(f, 0, back, big), big);
    CHECK(memcmp(data, back, big) == 0);
    CHECK_INT(fs_read(f, big + 5000, back, 10), 10);
    CHECK(back[0] == 0 && back[9] == 0); /* the hole reads as zeros */
    CHECK_INT(fs_truncate(f, 100), 0);
    CHECK_INT(fs_read(f, 0, back, 1000), 100);
    /* sparse and large, as tmpfs: a write past 2 GiB and one at 300 GiB cost their pages only */
    uint64_t before = fs_data_pages(), g3 = 3ULL << 30, g300 = 300ULL << 30;
    CHECK_INT(fs_write(f, g3 + 5, "large", 5), 5);
    CHECK_INT(fs_write(f, g300, "far", 3), 3);
    CHECK_INT(f->size, g300 + 3);
    CHECK_INT(fs_data_pages(), before + 2);
    CHECK_INT(fs_read(f, g3, back, 10), 10);
    CHECK(!memcmp(back, "\0\0\0\0\0large", 10));
    CHECK_INT(fs_read(f, g300 - 2, back, 10), 5);
    CHECK(!memcmp(back, "\0\0far", 5));
    CHECK_INT(fs_read(f, (2ULL << 30) + 4096 * 7, back, 4), 4);
    CHECK(!back[0] && !back[3]); /* a hole far past 1 GiB */
    CHECK_INT(fs_write(f, (512ULL << 30) - 1, "xy", 2), -E_FBIG); /* the table's end: 512 GiB */
    CHECK_INT(fs_truncate(f, (512ULL << 30) + 1), -E_FBIG);
    CHECK_INT(fs_truncate(f, g3 + 6), 0); /* the far page goes, the one in the file stays cut */
    CHECK_INT(fs_data_pages(), before + 1);
    CHECK_INT(fs_read(f, g3 + 5, back, 10), 1);
    CHECK(back[0] == 'l');
    CHECK_INT(fs_truncate(f, 100), 0);
    CHECK_INT(fs_data_pages(), before);
    int n = 0, found = 0;
    struct inode *child;
    for (uint64_t i = 0; fs_readdir(tmp, i, &name, &child) == 0; i++, n++)
        found |= !strcmp(name, "a.bin") && child == f;
    CHECK(found && n == 3);
    char path[64];
    struct inode *bin;
    fs_lookup(fs_root(), "/bin", 1, &bin);
    CHECK_INT(fs_path_of(bin, path, sizeof(path)), 9);
    CHECK_STR(path, "/usr/bin"); /* merged /usr: /bin leads there */
    CHECK_INT(fs_unlink(tmp, "a.bin", 5, 0), 0);
    CHECK_INT(fs_unlink(tmp, "a.bin", 5, 0), -E_NOENT);
    CHECK_INT(fs_unlink(fs_root(), "usr", 3, 1), -E_NOTEMPTY);
    /* rename: a file across directories, replacing; a directory; never into itself */
    struct inode *d1, *d2, *x, *y, *got;
    CHECK_INT(fs_create(tmp, "d1", 2, S_IFDIR | 0755, &d1), 0);
    CHECK_INT(fs_create(tmp, "d2", 2, S_IFDIR | 0755, &d2), 0);
    CHECK_INT(fs_create(d1, "x", 1, S_IFREG | 0644, &x), 0);
    CHECK_INT(fs_create(d2, "y", 1, S_IFREG | 0644, &y), 0);
    CHECK_INT(fs_write(x, 0, "xx", 2), 2);
    CHECK_INT(fs_rename(d1, "x", 1, d2, "y", 1), 0);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/d2/y", 1, &got), 0);
    CHECK(got == x);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/d1/x", 1, &got), -E_NOENT);
    CHECK_INT(fs_rename(tmp, "d2", 2, d1, "moved", 5), 0);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/d1/moved/y", 1, &got), 0);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/d1/moved/..", 1, &got), 0);
    CHECK(got == d1);
    CHECK_INT(fs_rename(tmp, "d1", 2, d2, "loop", 4), -E_INVAL); /* d2 is inside d1 now */
    CHECK_INT(fs_rename(tmp, "nope", 4, tmp, "x", 1), -E_NOENT);
    CHECK_INT(fs_unlink(tmp, "d1", 2, 1), -E_NOTEMPTY);
    /* a removed file lives while held (open, running); a running program cannot be written */
    struct inode *held, *dead;
    CHECK_INT(fs_create(tmp, "held", 4, S_IFREG | 0755, &held), 0);
    CHECK_INT(fs_write(held, 0, "abc", 3), 3);
    CHECK(fs_page(held, 0) != NULL && fs_page(held, 1) == NULL);
    fs_hold(held);
    held->exec_users = 1;
    CHECK_INT(fs_write(held, 0, "x", 1), -E_TXTBSY);
    CHECK_INT(fs_truncate(held, 0), -E_TXTBSY);
    held->exec_users = 0;
    CHECK_INT(fs_unlink(tmp, "held", 4, 0), 0);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/held", 1, &got), -E_NOENT);
    memset(buf, 0, sizeof(buf));
    CHECK_INT(fs_read(held, 0, buf, 3), 3); /* still there for its holder */
    CHECK_STR(buf, "abc");
    fs_release(held); /* gone now (ASan would see a leak or a double free) */
    /* pages for the host to fill (uploads): as many as the disk allows, the size with them */
    struct inode *up;
    uint32_t pfn[8];
    CHECK_INT(fs_create(tmp, "up", 2, S_IFREG | 0600, &up), 0);
    fs_set_disk_limit(fs_data_pages() + 3);
    CHECK_INT(fs_host_pages(up, 0, 5, 5 * 4096 - 100, pfn), 3);
    CHECK_INT(up->size, 3 * 4096);
    CHECK(fs_page(up, 2) != NULL && fs_page(up, 3) == NULL);
    CHECK_INT(fs_host_pages(up, 3, 2, 5 * 4096, pfn), -E_NOSPC);
    CHECK_INT(fs_host_pages(up, 1, 2, 2 * 4096, pfn), 2); /* its own pages again; the size stays */
    CHECK_INT(up->size, 3 * 4096);
    fs_set_disk_limit(0);
    CHECK_INT(fs_host_pages(up, 3, 2, 4 * 4096 + 7, pfn), 2);
    CHECK_INT(up->size, 4 * 4096 + 7);
    up->exec_users = 1;
    CHECK_INT(fs_host_pages(up, 0, 1, 4096, pfn), -E_TXTBSY);
    up->exec_users = 0;
    CHECK_INT(fs_truncate(up, 4097), 0);
    CHECK(fs_page(up, 1) != NULL && fs_page(up, 2) == NULL);
    CHECK_INT(fs_unlink(tmp, "up", 2, 0), 0);
    /* a removed directory someone stands in is dead: empty, no path, nothing new in it */
    CHECK_INT(fs_create(tmp, "gone", 4, S_IFDIR | 0755, &dead), 0);
    fs_hold(dead);
    CHECK_INT(fs_unlink(tmp, "gone", 4, 1), 0);
    CHECK_INT(fs_create(dead, "f", 1, S_IFREG | 0644, &got), -E_NOENT);
    CHECK_INT(fs_path_of(dead, path, sizeof(path)), -E_NOENT);
    CHECK_INT(fs_readdir(dead, 0, &name, &child), 1);
    CHECK_INT(fs_lookup(dead, "..", 1, &got), 0);
    CHECK(got == dead);
    CHECK_INT(fs_rename(tmp, "l9", 2, dead, "x", 1), -E_NOENT);
    fs_release(dead);
    /* symlink loops end */
    struct inode *l1, *l2, *out;
    fs_create(tmp, "l1", 2, S_IFLNK | 0777, &l1);
    l1->target = kstrndup("/tmp/l2", 7);
    fs_create(tmp, "l2", 2, S_IFLNK | 0777, &l2);
    l2->target = kstrndup("/tmp/l1", 7);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/l1", 1, &out), -E_LOOP);
    CHECK_INT(fs_parent_follow(fs_root(), "/tmp/l1", &dir, &name, &nlen), -E_LOOP);
    /* where a write through symlinks lands: the last one's directory and name (a relative
     * target read from its link's directory); a link into a missing directory is ENOENT */
    struct inode *w1, *w2;
    fs_create(tmp, "w1", 2, S_IFLNK | 0777, &w1);
    w1->target = kstrndup("d1/w2", 5);
    fs_create(d1, "w2", 2, S_IFLNK | 0777, &w2);
    w2->target = kstrndup("/tmp/d1/new.txt", 15);
    CHECK_INT(fs_parent_follow(fs_root(), "/tmp/w1", &dir, &name, &nlen), 0);
    CHECK(dir == d1 && nlen == 7 && !memcmp(name, "new.txt", 7));
    CHECK_INT(fs_parent_follow(fs_root(), "/tmp/h9", &dir, &name, &nlen), 0); /* no link: as fs_parent */
    CHECK(dir == tmp && nlen == 2 && fs_child(tmp, name, nlen) == NULL);
    CHECK(fs_child(tmp, "w1", 2) == w1 && fs_child(tmp, "..", 2) == fs_root());
    kfree(w2->target, 16);
    w2->target = kstrndup("/nowhere/x", 10);
    CHECK_INT(fs_parent_follow(fs_root(), "/tmp/w1", &dir, &name, &nlen), -E_NOENT);
    /* hard links: one inode, two names; it goes with its last name (ASan sees a leak or a
     * double free otherwise) */
    struct inode *h, *hl;
    CHECK_INT(fs_create(tmp, "h1", 2, S_IFREG | 0644, &h), 0);
    CHECK_INT(fs_write(h, 0, "hard", 4), 4);
    CHECK_INT(fs_link(tmp, "h2", 2, h), 0);
    CHECK_INT(fs_link(tmp, "h2", 2, h), -E_EXIST);
    CHECK_INT(fs_link(tmp, "dl", 2, d1), -E_PERM);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/h2", 1, &hl), 0);
    CHECK(hl == h && h->nlink == 2);
    CHECK_INT(fs_unlink(tmp, "h1", 2, 0), 0);
    CHECK_INT(fs_find_path(h, NULL, path, sizeof(path)), 0);
    CHECK_STR(path, "/tmp/h2");
    CHECK_INT(fs_unlink(tmp, "h2", 2, 0), 0);
    /* a file's path is found from the root (not in a left-out directory, not once removed) */
    CHECK_INT(fs_find_path(x, NULL, path, sizeof(path)), 0);
    CHECK_STR(path, "/tmp/d1/moved/y");
    CHECK_INT(fs_find_path(bb, NULL, path, sizeof(path)), 0);
    CHECK_STR(path, "/usr/bin/busybox");
    CHECK_INT(fs_find_path(x, d1, path, sizeof(path)), -E_NOENT);
    CHECK_INT(fs_create(tmp, "rm", 2, S_IFREG | 0644, &held), 0);
    fs_hold(held);
    CHECK_INT(fs_find_path(held, NULL, path, sizeof(path)), 0);
    CHECK_INT(fs_unlink(tmp, "rm", 2, 0), 0);
    CHECK_INT(fs_find_path(held, NULL, path, sizeof(path)), -E_NOENT);
    fs_release(held);
    CHECK_INT(fs_find_path(bin, NULL, path, sizeof(path)), 0);
    CHECK_STR(path, "/usr/bin");
    /* a generated directory is brought up to date when searched; a descriptor link in it is
     * never followed (its opener reaches the file), also at the end of another link */
    struct inode *gd, *dl;
    CHECK_INT(fs_create(tmp, "gd", 2, S_IFDIR | 0500, &gd), 0);
    gd->gen = 1;
    CHECK_INT(fs_lookup(fs_root(), "/tmp/gd", 1, &out), 0);
    CHECK_INT(syncs, 0); /* reaching it is not searching it */
    CHECK_INT(fs_lookup(fs_root(), "/tmp/gd/0", 1, &out), 0);
    CHECK(syncs == 1 && (out->mode & S_IFMT) == S_IFLNK && out->gen);
    fs_create(tmp, "stdin", 5, S_IFLNK | 0777, &dl);
    dl->target = kstrndup("/tmp/gd/0", 9);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/stdin", 1, &got), 0);
    CHECK(got == out && syncs == 2);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/gd/0/x", 1, &got), -E_NOTDIR);
    CHECK_INT(fs_lookup(fs_root(), "/tmp/stdin/", 1, &got), -E_NOTDIR);
    free(img);
    free(host_bb);
    free(copy);
    free(data);
    free(back);
    cpio_bad_symlink();
    return lel_test_finish();
}
