/* Diff images on the real /dev/kvm: a VM restored over a raw memory file saves only the pages it
 * changed; every link of a chain (a diff, a diff of a diff, ...) and a pause-style diff (against
 * the base of a transient image) restores byte for byte to the memory a full image of the same
 * moment restores to, and runs on; a corrupt diff and a missing base are refused without a VM.
 * Skipped (exit 77) with the reason when /dev/kvm is unusable. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1ULL << 20)

static char dir[] = "/tmp/lel-vmdiff-XXXXXX";

static void on_line(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    if (getenv("LEL_VM_VERBOSE"))
        fprintf(stderr, "console: %.*s\n", (int)len, line);
}

static void on_died(void *ctx, const char *why)
{
    (void)ctx;
    fprintf(stderr, "VM died: %s\n", why);
}

static const struct lel_vm_ops ops = {on_line, on_died, NULL};

static const char *path(const char *name)
{
    static char buf[8][160];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 160, "%s/%s", dir, name);
    return p;
}

static int sh(lel_vm_t *vm, const char *script)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct lel_run_result res;
    int r = lel_vm_run(vm, argv, NULL, NULL, NULL, 0, 20000, &res);
    return r < 0 ? r : r > 0 ? -r : res.exit_status;
}

static lel_vm_t *restore(const char *img, const char *memory_file, int transient, int stopped)
{
    struct lel_vm_config cfg = {0, 100, &ops, NULL, memory_file, NULL, 0, transient, stopped, 0, 0, NULL};
    lel_vm_t *vm = NULL;
    char err[600];
    int r = lel_vm_restore(img, &cfg, &vm, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "restore %s: %s\n", img, err);
    CHECK_INT(r, 0);
    if (r == 0 && !stopped)
        CHECK_INT(lel_vm_set_clock(vm), 0);
    return r == 0 ? vm : NULL;
}

/* Stops vm and writes both a full image and a diff of the same moment; then it runs on. */
static void save_pair(lel_vm_t *vm, const char *full, const char *diff, uint32_t want_depth, struct lel_snap_info *d)
{
    char err[600];
    struct lel_snap_info f;
    CHECK_INT(lel_vm_stop(vm), 0);
    CHECK_INT(lel_vm_save(vm, path(full), &f, err, sizeof(err)), 0);
    int r = lel_vm_save_diff(vm, path(diff), d, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "save_diff: %s\n", err);
    CHECK_INT(r, 0);
    CHECK(d->diff);
    CHECK_INT(d->depth, want_depth);
    CHECK(memcmp(f.id, d->id, LEL_IMAGE_ID_LEN)); /* the state differs (its clock): so does the id */
    printf("%s: %llu pages, %llu bytes stored; full image %llu bytes\n", diff, (unsigned long long)d->diff_pages,
           (unsigned long long)d->stored_bytes, (unsigned long long)f.stored_bytes);
    CHECK(d->stored_bytes < f.stored_bytes);
    CHECK_INT(lel_vm_cont(vm), 0);
}

/* The diff and the full image restore to identical memory, and the diff's VM runs and still
 * has the file the guest wrote before the save. */
static void same_as_full(const char *full, const char *diff, const char *check)
{
    lel_vm_t *a = restore(path(full), NULL, 0, 1), *b = restore(path(diff), NULL, 0, 1);
    if (!a || !b) {
        lel_vm_destroy(a);
        lel_vm_destroy(b);
        return;
    }
    uint64_t na, nb;
    const uint8_t *ma = lel_vm_memory(a, &na), *mb = lel_vm_memory(b, &nb);
    uint64_t bad = 0;
    for (uint64_t off = 0; na == nb && off < na; off += 4096)
        bad += memcmp(ma + off, mb + off, 4096) != 0;
    printf("%s vs %s: %llu differing pages\n", diff, full, (unsigned long long)bad);
    CHECK(na == nb && bad == 0);
    lel_vm_destroy(a);
    CHECK_INT(lel_vm_cont(b), 0);
    CHECK_INT(lel_vm_set_clock(b), 0);
    CHECK_INT(sh(b, check), 0);
    lel_vm_destroy(b);
}

int main(void)
{
    char why[256], err[600];
    if (lel_vmm_probe(why, sizeof(why)) == LEL_VMM_NONE) {
        printf("skipped: %s\n", why);
        return 77;
    }
    CHECK(mkdtemp(dir) != NULL);
    struct lel_vm_config cfg = {64 * MIB, 100, &ops, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    lel_vm_t *vm = NULL;
    CHECK_INT(lel_vm_boot(&cfg, &vm, err, sizeof(err)), 0);
    CHECK_INT(lel_vm_wait_ready(vm, 20000), 0);
    /* the base: a full image and its raw memory file beside it */
    struct lel_snap_info f, d;
    CHECK_INT(lel_vm_stop(vm), 0);
    CHECK_INT(lel_vm_save_diff(vm, path("base.img"), &f, err, sizeof(err)), 0); /* a booted VM has no base */
    CHECK(!f.diff && f.depth == 0);
    lel_vm_destroy(vm);
    CHECK_INT(lel_image_unpack_memory(path("base.img"), path("base.raw"), err, sizeof(err)), 0);

    /* link 1: over the base's memory file */
    vm = restore(path("base.img"), path("base.raw"), 0, 0);
    CHECK_INT(sh(vm, "dd if=/dev/urandom of=/tmp/a bs=4096 count=256 2>/dev/null && md5sum /tmp/a > /tmp/a.md5"), 0);
    save_pair(vm, "r1.img", "d1.img", 1, &d);
    /* the same VM later: still a diff against the base, now with both files */
    CHECK_INT(sh(vm, "echo more > /tmp/b"), 0);
    save_pair(vm, "r1b.img", "d1b.img", 1, &d);
    lel_vm_destroy(vm);
    same_as_full("r1.img", "d1.img", "md5sum -c /tmp/a.md5 && ! test -e /tmp/b");
    same_as_full("r1b.img", "d1b.img", "md5sum -c /tmp/a.md5 && test -e /tmp/b");

    /* link 2 and 3: diffs of diffs (restored from the diff, saved against it) */
    vm = restore(path("d1.img"), NULL, 0, 0);
    CHECK_INT(sh(vm, "rm /tmp/a && dd if=/dev/urandom of=/tmp/c bs=4096 count=64 2>/dev/null && md5sum /tmp/c > /tmp/c.md5"), 0);
    save_pair(vm, "r2.img", "d2.img", 2, &d);
    lel_vm_destroy(vm);
    vm = restore(path("d2.img"), NULL, 0, 0);
    CHECK_INT(sh(vm, "echo three > /tmp/three"), 0);
    save_pair(vm, "r3.img", "d3.img", 3, &d);
    lel_vm_destroy(vm);
    same_as_full("r2.img", "d2.img", "md5sum -c /tmp/c.md5 && ! test -e /tmp/a");
    same_as_full("r3.img", "d3.img", "md5sum -c /tmp/c.md5 && test -e /tmp/three");

    /* a transient image (a pause): the next diff is against its base again, not against it */
    vm = restore(path("d2.img"), NULL, 1, 0);
    CHECK_INT(sh(vm, "echo paused-once > /tmp/p"), 0);
    save_pair(vm, "rp.img", "p.img", 2, &d); /* over d1, as d2 was */
    lel_vm_destroy(vm);
    same_as_full("rp.img", "p.img", "md5sum -c /tmp/c.md5 && test -e /tmp/p");

    /* flattened: a full image of the same id, still restoring to the same memory, and its
     * dependant (d3) still restores over it */
    CHECK_INT(lel_image_flatten(path("d2.img"), err, sizeof(err)), 0);
    char base[256];
    uint8_t bid[LEL_IMAGE_ID_LEN];
    CHECK_INT(lel_image_info(path("d2.img"), &d, base, sizeof(base), bid, err, sizeof(err)), 0);
    CHECK(!d.diff);
    same_as_full("r2.img", "d2.img", "md5sum -c /tmp/c.md5");
    same_as_full("r3.img", "d3.img", "test -e /tmp/three");

    /* refused: a missing base, and a corrupt diff, with no VM made */
    lel_vm_t *none = NULL;
    struct lel_vm_config rc = {0, 100, &ops, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
    CHECK(rename(path("d1b.img"), path("d1b.moved")) == 0);
    CHECK(rename(path("base.img"), path("base.moved")) == 0);
    CHECK_INT(lel_vm_restore(path("d1.img"), &rc, &none, err, sizeof(err)), -ENOENT);
    printf("missing base: %s\n", err);
    CHECK(none == NULL && strstr(err, "missing"));
    CHECK(rename(path("base.moved"), path("base.img")) == 0);
    int fd = open(path("d1.img"), O_RDWR);
    struct stat st;
    uint8_t b = 0;
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &b, 1, st.st_size - 64) == 1);
    b ^= 0x20;
    CHECK(pwrite(fd, &b, 1, st.st_size - 64) == 1);
    close(fd);
    CHECK_INT(lel_vm_restore(path("d1.img"), &rc, &none, err, sizeof(err)), -EBADMSG);
    printf("corrupt diff: %s\n", err);
    CHECK(none == NULL);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
