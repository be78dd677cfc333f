/* The read-only root filesystem image in real VMs (/dev/kvm): an image built from a Debian-like
 * tree (usr-merged: bin -> usr/bin, lib -> usr/lib) with a dynamically linked glibc program and
 * the build machine's loader and libc, the base busybox root beneath it. A VM boots on it: the
 * image's files and busybox's are there, the program runs (its loader and library mapped from
 * the image), its 64 MiB file reads back intact without costing the guest that memory, and the
 * writable layer works (copy-up, removal, renames and links across layers, owners, the disk
 * limit: ENOSPC and df). Two VMs share the mapping. A snapshot holds none of the image: it is
 * small, restores over the same file, and is refused with a clear error when the file is
 * missing or another image. Skipped (77) without /dev/kvm. */
#include "../../src/guest/lel_guest_abi.h"
#include "../../src/image/lel_rofs_build.h"
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ULL << 20)
#define BIG (64 * MIB)

extern const unsigned char lel_libc_dynamic_elf[];
extern const size_t lel_libc_dynamic_elf_size;

static char dir[40], tree[64], image[80];

static void on_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (getenv("LEL_VM_VERBOSE"))
        fprintf(stderr, "console: %.*s\n", (int)len, line);
}

static const struct lel_vm_ops ops = {on_line, NULL, NULL};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int put(const char *rel, const void *data, size_t n, int mode)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tree, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0 && write(fd, data, n) == (ssize_t)n;
    if (fd >= 0)
        close(fd);
    chmod(p, (mode_t)mode);
    return ok ? 0 : -1;
}

static int copy_in(const char *from, const char *rel)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        return -1;
    char *buf = malloc(16 * MIB);
    size_t n = buf ? fread(buf, 1, 16 * MIB, f) : 0;
    fclose(f);
    int r = n ? put(rel, buf, n, 0755) : -1;
    free(buf);
    return r;
}

static void md5_hex(const void *p, size_t n, char out[33])
{
    unsigned char d[16];
    unsigned len = 0;
    EVP_Digest(p, n, d, &len, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static char big_md5[33];

/* The tree an image was unpacked to, and the image built from it with the base beneath. */
static int build_image(const char *path, const char *flavour)
{
    char cmd[1200], err[512];
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s && mkdir -p %s/usr/bin %s/usr/lib/x86_64-linux-gnu %s/usr/lib64 %s/etc %s/data && "
             "ln -s usr/bin %s/bin && ln -s usr/lib %s/lib && ln -s usr/lib64 %s/lib64",
             tree, tree, tree, tree, tree, tree, tree, tree, tree);
    if (system(cmd) != 0)
        return -1;
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG / 8; i++) /* incompressible: a snapshot holding it would show */
        ((uint64_t *)big)[i] = (i * 0x9e3779b97f4a7c15ULL) ^ (i >> 7) * 0xbf58476d1ce4e5b9ULL;
    md5_hex(big, BIG, big_md5);
    int r = put("data/big", big, BIG, 0644) | put("etc/from-image", flavour, strlen(flavour), 0644) |
            put("usr/bin/libctest", lel_libc_dynamic_elf, lel_libc_dynamic_elf_size, 0755) |
            copy_in("/lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2") |
            copy_in("/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6") |
            put("data/owned", "mine\n", 5, 0640);
    free(big);
    char p[512], q[512];
    snprintf(p, sizeof(p), "%s/data/owned", tree);
    snprintf(q, sizeof(q), "%s/data/owned-too", tree);
    r |= link(p, q) | chown(p, 1000, 1000);
    if (r)
        return -1;
    const void *base;
    size_t blen;
    lel_vmm_base_rootfs(&base, &blen);
    struct lel_rofs_tree *t = lel_rofs_tree_new();
    struct lel_rofs_stats st;
    r = lel_rofs_add_dir(t, tree, NULL, err, sizeof(err));
    if (r == 0)
        r = lel_rofs_add_archive_under(t, base, blen, err, sizeof(err));
    if (r == 0)
        r = lel_rofs_write(t, path, &st, NULL, err, sizeof(err));
    lel_rofs_tree_free(t);
    if (r < 0)
        fprintf(stderr, "image: %s\n", err);
    else
        printf("image %s: %llu MiB, %llu inodes\n", path, (unsigned long long)(st.file_bytes >> 20),
               (unsigned long long)st.inodes);
    return r;
}

static lel_vm_t *boot(uint64_t disk)
{
    char err[512];
    struct lel_vm_config cfg = {128 * MIB, 100, &ops, NULL, NULL, image, disk, 0, 0, 0, 0, NULL};
    lel_vm_t *vm = NULL;
    double t0 = now_ms();
    if (lel_vm_boot(&cfg, &vm, err, sizeof(err)) < 0 || lel_vm_wait_ready(vm, 10000) < 0) {
        fprintf(stderr, "boot: %s %s\n", err, vm ? lel_vm_why(vm) : "");
        lel_vm_destroy(vm);
        return NULL;
    }
    printf("boot on the image to ready: %.1f ms\n", now_ms() - t0);
    return vm;
}

/* `sh -c script` in the guest: its exit status, stdout+stderr in out. */
static int sh(lel_vm_t *vm, const char *script, char *out, size_t cap)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct lel_run_result res;
    out[0] = 0;
    int r = lel_vm_run(vm, argv, NULL, "/", NULL, 0, 30000, &res);
    if (r != 0) {
        printf("sh %s: %d\n", script, r);
        return r < 0 ? r : -r;
    }
    size_t n = lel_vm_bulk_read(vm, 0, out, res.out_len < cap - 1 ? res.out_len : cap - 1);
    out[n] = 0;
    if (res.err_len && n < cap - 1)
        out[n + lel_vm_bulk_read(vm, LEL_BULK_HALF, out + n, res.err_len < cap - 1 - n ? res.err_len : cap - 1 - n)] = 0;
    printf("sh %s -> %d: %s%s", script, res.exit_status, out, strchr(out, '\n') ? "" : "\n");
    return res.exit_status;
}

static void reads(lel_vm_t *vm)
{
    char out[8192], want[64];
    CHECK_INT(sh(vm, "cat /etc/from-image; test -L /bin && readlink /bin", out, sizeof(out)), 0);
    CHECK_STR(out, "first\nusr/bin\n");
    CHECK_INT(sh(vm, "ls -l /usr/bin/busybox /bin/ls | wc -l; grep -c localhost /etc/hosts; cat /proc/mounts | head -1", out,
                 sizeof(out)), 0);
    CHECK_STR(out, "2\n2\noverlay / overlay rw,lowerdir=rofs 0 0\n");
    double t0 = now_ms();
    CHECK_INT(sh(vm, "md5sum /data/big | cut -d' ' -f1", out, sizeof(out)), 0);
    printf("md5sum of a 64 MiB image file in the guest: %.1f ms\n", now_ms() - t0);
    snprintf(want, sizeof(want), "%s\n", big_md5);
    CHECK_STR(out, want);
    CHECK_INT(sh(vm, "GREETING=hi /usr/bin/libctest x 2>&1 | head -1", out, sizeof(out)), 0);
    CHECK_STR(out, "argc=2 argv1=x env=hi\n"); /* its loader and libc mapped from the image */
    CHECK_INT(sh(vm, "stat -c '%u %g %a %h' /data/owned; [ $(stat -c %i /data/owned) = $(stat -c %i /data/owned-too) ] && echo same",
                 out, sizeof(out)), 0);
    CHECK_STR(out, "1000 1000 640 2\nsame\n");
    CHECK(lel_vm_mem_used(vm) < 48 * MIB); /* the 64 MiB file was read in place, not copied in */
    printf("guest memory used after reading it: %llu KiB\n", (unsigned long long)(lel_vm_mem_used(vm) >> 10));
}

static void writes(lel_vm_t *vm)
{
    char out[8192];
    CHECK_INT(sh(vm, "echo more >> /etc/from-image && cat /etc/from-image && rm /data/owned-too && ls /data | tr '\\n' ' '", out,
                 sizeof(out)), 0);
    CHECK_STR(out, "first\nmore\nbig owned ");
    CHECK_INT(sh(vm, "mv /data/owned /etc/moved && ln /etc/moved /tmp/link && stat -c %h /tmp/link && ls /etc | grep -c moved",
                 out, sizeof(out)), 0);
    CHECK_STR(out, "2\n1\n");
    CHECK_INT(sh(vm, "printf x | dd of=/data/big bs=1 seek=1000 conv=notrunc 2>/dev/null; md5sum /data/big | cut -c1-8; "
                     "rm /usr/bin/libctest; ls /usr/bin/libctest 2>&1 | grep -c 'No such'",
                 out, sizeof(out)), 0);
    CHECK(strncmp(out, big_md5, 8) != 0 && strstr(out, "\n1\n"));
    /* the disk: the writable layer's data only, 4 MiB here (one page of the big file is in it) */
    CHECK_INT(sh(vm, "df -k / | tail -1 | awk '{print $2}'; dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>&1 | grep -c 'No space'", out,
                 sizeof(out)), 0);
    CHECK_STR(out, "4096\n1\n");
    CHECK_INT(sh(vm, "rm /tmp/fill && echo ok > /tmp/after && cat /tmp/after", out, sizeof(out)), 0);
    CHECK_STR(out, "ok\n");
    /* the guest reports its disk use when it next goes idle, which may come after its answer */
    for (double t = now_ms(); lel_vm_disk_used(vm) >= 1 * MIB && now_ms() - t < 2000;)
        usleep(1000);
    CHECK(lel_vm_disk_used(vm) < 1 * MIB);
}

static void snapshots(lel_vm_t *vm)
{
    char snap[200], out[8192], err[600], moved[200];
    struct lel_snap_info info;
    snprintf(snap, sizeof(snap), "%s/snap.img", dir);
    CHECK_INT(lel_vm_stop(vm), 0);
    CHECK_INT(lel_vm_save(vm, snap, &info, err, sizeof(err)), 0);
    printf("snapshot over the image: %llu bytes stored for %llu MiB of memory\n", (unsigned long long)info.stored_bytes,
           (unsigned long long)(info.mem_bytes >> 20));
    CHECK(info.stored_bytes < 32 * MIB); /* the 64 MiB of image data are not in it */
    lel_vm_destroy(vm);
    struct lel_vm_config cfg = {0, 100, &ops, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    lel_vm_t *r = NULL;
    CHECK_INT(lel_vm_restore(snap, &cfg, &r, err, sizeof(err)), 0);
    if (r) {
        CHECK_INT(lel_vm_set_clock(r), 0);
        CHECK_INT(sh(r, "cat /etc/from-image /tmp/after; ls /data; md5sum /usr/lib/x86_64-linux-gnu/libc.so.6 | wc -l", out,
                     sizeof(out)), 0);
        CHECK_STR(out, "first\nmore\nok\nbig\n1\n");
        lel_vm_destroy(r);
    }
    snprintf(moved, sizeof(moved), "%s.moved", image);
    CHECK_INT(rename(image, moved), 0);
    r = NULL;
    CHECK_INT(lel_vm_restore(snap, &cfg, &r, err, sizeof(err)), -ENOENT);
    printf("restore without the image: %s\n", err);
    CHECK(strstr(err, "missing") != NULL && strstr(err, image) != NULL && r == NULL);
    cfg.rofs_path = moved; /* the same file elsewhere: taken */
    CHECK_INT(lel_vm_restore(snap, &cfg, &r, err, sizeof(err)), 0);
    lel_vm_destroy(r);
    cfg.rofs_path = NULL;
    CHECK_INT(build_image(image, "second\n"), 0); /* another image at the recorded path */
    r = NULL;
    CHECK_INT(lel_vm_restore(snap, &cfg, &r, err, sizeof(err)), -ESTALE);
    printf("restore over another image: %s\n", err);
    CHECK(strstr(err, "not the one") != NULL && r == NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256], out[4096];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    snprintf(dir, sizeof(dir), "/tmp/lel-rofs-vm-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(tree, sizeof(tree), "%s/tree", dir);
    snprintf(image, sizeof(image), "%s/rootfs.lrofs", dir);
    CHECK_INT(build_image(image, "first\n"), 0);
    lel_vm_t *vm = boot(4 * MIB), *vm2 = boot(0);
    CHECK(vm != NULL && vm2 != NULL);
    if (vm && vm2) {
        int ro = 0;
        CHECK(lel_vm_rofs(vm, NULL, NULL, &ro) == 1);
        printf("the image is mapped %s\n", ro ? "read-only (KVM_MEM_READONLY, shared)" : "privately (no read-only memslots)");
        reads(vm);
        writes(vm);
        CHECK_INT(sh(vm2, "cat /etc/from-image; ls /data | wc -l", out, sizeof(out)), 0); /* its own upper layer */
        CHECK_STR(out, "first\n3\n");
        lel_vm_destroy(vm2);
        snapshots(vm);
    } else {
        lel_vm_destroy(vm);
        lel_vm_destroy(vm2);
    }
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
