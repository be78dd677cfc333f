/* The read-only root filesystem image: built on the host from a tree on disk with the real
 * base root (busybox cpio) beneath it, read back and checked (hash, determinism, damage), then
 * read by the guest's own reader and overlay (built hosted) exactly as the guest does: with
 * the image mapped read-only, so a write into it would crash the test. Lookups, data, links,
 * owners and times; then the writable layer: copy-up, page-level copies, truncation, removal
 * (for good), renames and hard links across layers, listing merged, the disk limit; and images
 * with broken tables read as absent entries, never out of bounds. */
#include "../../src/image/lel_rofs_build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "../../src/guest/fs/fs.h"
#include "../../src/guest/fs/rofs.h"
#include "../lel_test.h"

static char root[256];

/* The process code's part of the file system: no generated directories here. */
void fs_gen_dir_sync(struct inode *dir)
{
    (void)dir;
}

void fs_notify(struct inode *dir, const char *name, uint64_t n, struct inode *node, uint32_t mask, uint32_t cookie)
{
    (void)dir, (void)name, (void)n, (void)node, (void)mask, (void)cookie; /* no inotify here */
}

static void put(const char *rel, const char *data, size_t n, int mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    CHECK(fd >= 0 && write(fd, data, n) == (ssize_t)n);
    close(fd);
    chmod(p, (mode_t)mode);
}

static void mk(const char *rel, int mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    CHECK(mkdir(p, (mode_t)mode) == 0);
}

static void sym(const char *target, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    CHECK(symlink(target, p) == 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static char *pattern(size_t n, int seed)
{
    char *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)('a' + (i * 7 + (size_t)seed) % 26);
    return b;
}

/* The tree the image is built from: an image's layout (bin -> usr/bin as Debian has it). */
static void make_tree(void)
{
    snprintf(root, sizeof(root), "/tmp/lel-rofs-test.%d", (int)getpid());
    CHECK(mkdir(root, 0755) == 0);
    mk("usr", 0755);
    mk("usr/bin", 0755);
    mk("etc", 0755);
    mk("proc", 0555);
    mk("data", 0750);
    mk("data/sub", 0700);
    mk("empty", 0755);
    sym("usr/bin", "bin");
    put("usr/bin/sh", "#!image-sh\n", 11, 0755);
    put("etc/passwd", "root:x:0:0:image:/root:/bin/sh\n", 32, 0644);
    put("proc/hidden", "x", 1, 0644);
    put("data/empty", "", 0, 0600);
    put("data/one", "1", 1, 04755);
    char *big = pattern(100000, 3), *page = pattern(4096, 5), *page1 = pattern(4097, 9);
    put("data/big", big, 100000, 0644);
    put("data/page", page, 4096, 0644);
    put("data/page1", page1, 4097, 0644);
    free(big);
    free(page);
    free(page1);
    put("data/sub/deep", "deep", 4, 0644);
    char p[512], q[512];
    snprintf(p, sizeof(p), "%s/data/one", root);
    snprintf(q, sizeof(q), "%s/data/one-link", root);
    CHECK(link(p, q) == 0);
    sym("../usr/bin/sh", "data/rel");
    sym("/etc/passwd", "data/abs");
    snprintf(p, sizeof(p), "%s/data/fifo", root);
    CHECK(mkfifo(p, 0640) == 0);
    snprintf(p, sizeof(p), "%s/data/page", root);
    struct timespec ts[2] = {{1600000000, 123}, {1600000000, 456789}};
    CHECK(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0);
    if (geteuid() == 0)
        CHECK(chown(p, 1000, 1001) == 0);
}

static int build(const char *out, uint8_t hash[32], struct lel_rofs_stats *st)
{
    static const char *const skip[] = {"proc", "dev", "sys", NULL};
    char err[512] = "";
    size_t cl = 0;
    uint8_t *cpio = slurp(LEL_ROOTFS_CPIO, &cl);
    struct lel_rofs_tree *t = lel_rofs_tree_new();
    int r = t && cpio ? lel_rofs_add_dir(t, root, skip, err, sizeof(err)) : -ENOMEM;
    if (r == 0)
        r = lel_rofs_add_archive_under(t, cpio, cl, err, sizeof(err));
    if (r == 0)
        r = lel_rofs_write(t, out, st, hash, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "build: %s\n", err);
    lel_rofs_tree_free(t);
    free(cpio);
    return r;
}

/* The host side: hash, determinism, damage refused. */
static void check_host(const char *img, const uint8_t hash[32])
{
    char img2[400], err[512];
    uint8_t hash2[32];
    struct lel_rofs_super s;
    struct lel_rofs_stats st2;
    CHECK_INT(lel_rofs_header(img, &s, err, sizeof(err)), 0);
    CHECK(memcmp(s.content_hash, hash, 32) == 0);
    CHECK_INT(lel_rofs_verify(img, err, sizeof(err)), 0);
    snprintf(img2, sizeof(img2), "%s.again", img);
    CHECK_INT(build(img2, hash2, &st2), 0);
    CHECK(memcmp(hash, hash2, 32) == 0); /* same input, same image */
    size_t a = 0, b = 0;
    uint8_t *x = slurp(img, &a), *y = slurp(img2, &b);
    CHECK(a == b && x && y && memcmp(x, y, a) == 0);
    free(x);
    free(y);
    int fd = open(img2, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "Z", 1, (off_t)s.data_off + 10) == 1); /* one byte of data */
    close(fd);
    CHECK_INT(lel_rofs_verify(img2, err, sizeof(err)), -EBADMSG);
    CHECK(strstr(err, "content hash") != NULL);
    CHECK_INT(truncate(img2, (off_t)(s.file_bytes - 4096)), 0);
    CHECK_INT(lel_rofs_header(img2, &s, err, sizeof(err)), -EBADMSG);
    unlink(img2);
    CHECK_INT(lel_rofs_header(img2, &s, err, sizeof(err)), -ENOENT);
    char hex[65];
    lel_rofs_hash_hex(hash, hex);
    CHECK_INT(strlen(hex), 64);
}

/* Broken tables: entries and inodes pointing outside read as absent. */
static void check_malformed(const uint8_t *good, size_t len)
{
    uint8_t *bad = malloc(len);
    memcpy(bad, good, len);
    struct lel_rofs_super *s = (struct lel_rofs_super *)bad;
    CHECK_INT(rofs_mount(bad, len - 4096), -1); /* not the size it says */
    CHECK_INT(rofs_mount(bad, len), 0);
    const struct lel_rofs_inode *r = rofs_root();
    CHECK(r != NULL && rofs_find(r, "data", 4) != NULL);
    struct lel_rofs_dirent *d = (struct lel_rofs_dirent *)(bad + s->dirent_off);
    for (uint64_t i = r->data; i < r->data + r->size; i++)
        d[i].ino = 0xfffffff0u; /* every root entry leads nowhere */
    CHECK(rofs_find(r, "data", 4) == NULL);
    const char *nm;
    uint64_t nl;
    const struct lel_rofs_inode *in;
    CHECK_INT(rofs_entry(r, 0, &nm, &nl, &in), -1);
    CHECK_INT(rofs_entry(r, r->size, &nm, &nl, &in), 1);
    struct lel_rofs_inode *ri = (struct lel_rofs_inode *)(bad + s->inode_off);
    ri->size = 1ULL << 40; /* the root's entries past the table */
    CHECK(rofs_root() == NULL);
    memcpy(bad, good, len);
    s->names_bytes = len; /* the names past the data */
    CHECK_INT(rofs_mount(bad, len), -1);
    memcpy(bad, "XXXX", 4);
    CHECK_INT(rofs_mount(bad, len), -1);
    free(bad);
}

static struct inode *look(const char *path)
{
    struct inode *i = NULL;
    return fs_lookup(fs_root(), path, 1, &i) == 0 ? i : NULL;
}

static int readall(struct inode *f, char *buf, size_t cap)
{
    int64_t n = fs_read(f, 0, buf, cap);
    return (int)n;
}

/* Entries of `dir` counted, with `want` among them. */
static int listed(struct inode *dir, const char *want, int *found)
{
    const char *name;
    struct inode *c;
    int n = 0;
    *found = 0;
    for (uint64_t i = 0; fs_readdir(dir, i, &name, &c) == 0; i++, n++)
        *found |= !strcmp(name, want);
    return n;
}

static void check_reads(void)
{
    char buf[200000];
    struct inode *sh = look("/bin/sh"), *bb = look("/bin/busybox"), *pw = look("/etc/passwd"), *hosts = look("/etc/hosts");
    CHECK(sh && readall(sh, buf, sizeof(buf)) == 11 && !memcmp(buf, "#!image-sh\n", 11)); /* the image's wins */
    CHECK(bb && bb->size > 100000);                                                     /* the base's fills in, in usr/bin */
    CHECK(look("/usr/bin/busybox") == bb && look("/usr/bin/ls") != NULL);
    CHECK(pw && readall(pw, buf, sizeof(buf)) == 32 && strstr(buf, "image") != NULL);
    CHECK(hosts && readall(hosts, buf, sizeof(buf)) > 0 && strstr(buf, "localhost") != NULL);
    CHECK(look("/proc") == NULL && look("/proc/hidden") == NULL); /* skipped */
    struct inode *big = look("/data/big"), *page = look("/data/page"), *p1 = look("/data/page1");
    char *want = pattern(100000, 3);
    CHECK(big && big->size == 100000 && readall(big, buf, sizeof(buf)) == 100000 && !memcmp(buf, want, 100000));
    CHECK(big && rofs_contains(fs_page(big, 0)) && rofs_contains(fs_page(big, 24)) && fs_page(big, 25) == NULL);
    CHECK(big && fs_page_lower(big, 24) && !memcmp((char *)fs_page(big, 24) + 100000 % 4096, "\0\0\0\0", 4)); /* zero-padded */
    free(want);
    CHECK(page && page->size == 4096 && page->mtime == 1600000000 && (page->mode & 07777) == 0644);
    if (geteuid() == 0)
        CHECK(page && page->uid == 1000 && page->gid == 1001);
    CHECK(p1 && p1->size == 4097 && fs_page(p1, 1) != NULL && fs_page(p1, 2) == NULL);
    struct inode *one = look("/data/one"), *ol = look("/data/one-link");
    CHECK(one && one == ol && one->nlink == 2 && (one->mode & 07777) == 04755 && one->ino > (1ULL << 32));
    struct inode *rel = NULL, *abs = NULL, *fifo = look("/data/fifo"), *e = look("/data/empty");
    CHECK(fs_lookup(fs_root(), "/data/rel", 0, &rel) == 0 && (rel->mode & S_IFMT) == S_IFLNK &&
          !strcmp(rel->target, "../usr/bin/sh") && rel->size == 13);
    CHECK(look("/data/rel") == sh && look("/data/abs") == pw);
    CHECK(fs_lookup(fs_root(), "/data/abs", 0, &abs) == 0 && !strcmp(abs->target, "/etc/passwd"));
    CHECK(fifo && (fifo->mode & S_IFMT) == S_IFIFO && e && e->size == 0 && fs_page(e, 0) == NULL);
    CHECK(look("/data/sub/deep") && look("/data/sub/../sub/deep") && look("/data/nothing") == NULL);
    struct inode *data = look("/data"), *empty = look("/empty");
    int found;
    CHECK(data && (data->mode & 07777) == 0750 && data->nlink == 3);
    CHECK(data && listed(data, "big", &found) == 2 + 10 && found);
    CHECK(empty && listed(empty, "x", &found) == 2);
}

static void check_writes(void)
{
    char buf[200000];
    uint64_t before = fs_data_pages();
    struct inode *big = look("/data/big"), *x;
    CHECK(big && fs_write(big, 5000, "HELLO", 5) == 5); /* one page becomes the file's own */
    CHECK_INT(fs_data_pages(), before + 1);
    CHECK(big && rofs_contains(fs_page(big, 0)) && !rofs_contains(fs_page(big, 1)) && fs_page_lower(big, 1) == NULL);
    char *want = pattern(100000, 3);
    memcpy(want + 5000, "HELLO", 5);
    CHECK(big && readall(big, buf, sizeof(buf)) == 100000 && !memcmp(buf, want, 100000));
    CHECK(big && fs_truncate(big, 10) == 0 && readall(big, buf, sizeof(buf)) == 10 && !memcmp(buf, want, 10));
    CHECK(big && fs_write(big, 8000, "Z", 1) == 1 && readall(big, buf, sizeof(buf)) == 8001 && buf[20] == 0 && buf[4000] == 0);
    free(want);
    struct inode *p1 = look("/data/page1"), *data = look("/data");
    CHECK(p1 && fs_truncate(p1, 0) == 0 && p1->size == 0 && fs_page(p1, 0) == NULL);
    /* removal is for good, across layers */
    CHECK_INT(fs_unlink(data, "page", 4, 0), 0);
    CHECK(look("/data/page") == NULL);
    int found;
    CHECK(listed(data, "page", &found) == 11 && !found);
    /* hard links: one name goes, the other stays; a new name for an image file */
    CHECK_INT(fs_unlink(data, "one", 3, 0), 0);
    struct inode *ol = look("/data/one-link");
    CHECK(ol && ol->nlink == 1 && readall(ol, buf, sizeof(buf)) == 1 && buf[0] == '1');
    CHECK_INT(fs_link(fs_root(), "one-again", 9, ol), 0);
    CHECK(look("/one-again") == ol && ol->nlink == 2);
    /* renames across directories, over an image file in a directory not yet merged */
    struct inode *usrbin = look("/usr/bin"), *etc = look("/etc"), *sh = look("/bin/sh");
    CHECK(etc && usrbin && fs_rename(etc, "passwd", 6, usrbin, "sh", 2) == 0);
    CHECK(look("/etc/passwd") == NULL && look("/bin/sh") != sh && look("/bin/sh")->size == 32);
    CHECK(fs_rename(data, "sub", 3, fs_root(), "moved", 5) == 0 && look("/moved/deep") && !look("/data/sub"));
    CHECK(look("/moved")->parent == fs_root());
    /* new files beside image ones; a directory that still has image entries is not empty */
    CHECK(data && fs_create(data, "new", 3, S_IFREG | 0644, &x) == 0 && fs_write(x, 0, "n", 1) == 1);
    CHECK(data && fs_create(data, "big", 3, S_IFREG | 0644, &x) == -E_EXIST);
    CHECK(listed(data, "new", &found) == 10 && found);
    CHECK_INT(fs_unlink(fs_root(), "moved", 5, 1), -E_NOTEMPTY);
    struct inode *moved = look("/moved");
    CHECK(moved && fs_unlink(moved, "deep", 4, 0) == 0 && fs_unlink(fs_root(), "moved", 5, 1) == 0);
    CHECK_INT(fs_unlink(fs_root(), "empty", 5, 1), 0);
    /* the disk limit covers the writable layer's data only */
    fs_set_disk_limit(fs_data_pages() + 2);
    char *three = pattern(3 * 4096, 1);
    CHECK(x && fs_write(x, 0, three, 3 * 4096) == 3 * 4096); /* its first page it had */
    CHECK(x && fs_write(x, 3 * 4096, "y", 1) == -E_NOSPC);
    struct inode *bb = look("/bin/busybox");
    CHECK(bb && fs_write(bb, 5000, "q", 1) == -E_NOSPC); /* a copy of an image page needs room too */
    CHECK(bb && fs_page_lower(bb, 1) != NULL);
    fs_set_disk_limit(0);
    free(three);
}

int main(void)
{
    char img[300];
    uint8_t hash[32];
    struct lel_rofs_stats st;
    make_tree();
    snprintf(img, sizeof(img), "%s.img", root);
    CHECK_INT(build(img, hash, &st), 0);
    CHECK(st.file_bytes % 4096 == 0 && st.inodes > 200 && st.dirents == st.inodes);
    printf("image: %llu bytes, %llu inodes, %llu entries, %llu bytes of data\n", (unsigned long long)st.file_bytes,
           (unsigned long long)st.inodes, (unsigned long long)st.dirents, (unsigned long long)st.data_bytes);
    check_host(img, hash);
    size_t len = 0;
    uint8_t *copy = slurp(img, &len);
    CHECK(copy && len == st.file_bytes);
    if (copy)
        check_malformed(copy, len);
    free(copy);
    /* mapped as the guest sees it: read-only */
    int fd = open(img, O_RDONLY);
    void *m = fd < 0 ? MAP_FAILED : mmap(NULL, st.file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(m != MAP_FAILED);
    if (fd >= 0)
        close(fd);
    CHECK_INT(fs_init(1700000000), 0);
    CHECK_INT(fs_mount_lower(m, st.file_bytes), 0);
    CHECK(fs_root()->nlink >= 3 && (fs_root()->mode & 07777) == 0755);
    check_reads();
    check_writes();
    char err[512];
    CHECK_INT(lel_rofs_verify(img, err, sizeof(err)), 0); /* the image itself never changed */
    unlink(img);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
