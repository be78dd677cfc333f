/* A template built from an image gets the image's tree into its build VM, and so into its
 * snapshot, which every sandbox from it restores copy-on-write (the interim of issue 18 §1-2:
 * the tree lives in guest memory; a shared read-only image mapped into every VM comes later).
 *
 * How: the tree under <data_dir>/images/<imageID>/rootfs is read with libarchive's disk reader
 * (symlinks not followed) and written as tar in parts of about PART_BYTES, each uploaded into
 * the guest (/.lelantos-image/part.tar, through the files channel, 1 MiB a request) and
 * unpacked there over the base root by a copy of busybox (/.lelantos-image/busybox: the image
 * may replace /bin/busybox with one that needs libraries a later part brings), then removed.
 * So the guest holds at most one part beside the tree. The guest's root keeps its /bin
 * directory: an image's `bin -> usr/bin` link is left out (the guest's /usr/bin already leads to
 * /bin, so both name one directory), and so are /proc, /dev and /sys, which the guest makes.
 *
 * Each call does a bounded amount (TURN_BYTES) so the template's actor answers between them. */
#include "lel_template_int.h"

#include "../guest/lel_guest_abi.h"
#include "../vmm/lel_vmm.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)
#define PART_BYTES (32u << 20)
#define TURN_BYTES (8u << 20)
#define GUEST_DIR "/.lelantos-image"
#define GUEST_PART GUEST_DIR "/part.tar"
#define GUEST_BB GUEST_DIR "/busybox"

enum push_state { PS_COPY_BB = 0, PS_WALK, PS_UNPACK, PS_CLEANUP, PS_DONE };

struct lel_img_push {
    enum push_state state;
    char root[4200];
    size_t rootlen;
    struct archive *disk, *out;
    struct archive_entry *entry;
    int in_data, walk_done;
    char *buf;     /* the part's bytes not uploaded yet (plen path bytes first, for the request) */
    size_t fill;   /* bytes of tar in buf after the path */
    uint64_t part_bytes, part_off, total;
    uint32_t tmp_id;
    int part_started, parts, err;
    char *data;    /* a file's data as it is read */
    void *inodes;  /* tsearch tree: hard-linked files seen, ino -> first path */
    char errmsg[256];
};

struct ino_path {
    uint64_t ino;
    char path[];
};

static int ino_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct ino_path *)a)->ino, y = ((const struct ino_path *)b)->ino;
    return x < y ? -1 : x > y;
}

static const size_t PLEN = sizeof(GUEST_PART);

/* Sends buf's first n tar bytes as the part's next chunk (last: it ends the part). */
static int send_chunk(struct lel_img_push *p, lel_vm_t *vm, size_t n, int last)
{
    uint64_t flags = (!p->part_started ? LEL_UP_FIRST : 0) | (last ? LEL_UP_LAST : 0), ret[4] = {0};
    uint64_t arg[4] = {PLEN, p->part_off, n, flags | (uint64_t)p->tmp_id << 32};
    int r = lel_vm_call_bulk(vm, LEL_OP_FILE_UPLOAD, arg, p->buf, PLEN + n, ret, 30000);
    if (r != 0) {
        snprintf(p->errmsg, sizeof(p->errmsg), "cannot write the image into the build VM: %s",
                 r == 28 ? "its memory is full (give the template a larger memoryMB)" : r > 0 ? strerror(r) : "no answer");
        return -1;
    }
    if (!p->part_started)
        p->tmp_id = (uint32_t)ret[0];
    p->part_started = 1;
    p->part_off += n;
    memmove(p->buf + PLEN, p->buf + PLEN + n, p->fill - n);
    p->fill -= n;
    return 0;
}

/* libarchive's output: appended to buf (the caller uploads full chunks between entries). */
static la_ssize_t out_write(struct archive *a, void *ud, const void *data, size_t n)
{
    (void)a;
    struct lel_img_push *p = ud;
    if (p->fill + n > 2 * CHUNK + PART_BYTES / 8) { /* never: the caller drains it at CHUNK */
        p->err = 1;
        return -1;
    }
    memcpy(p->buf + PLEN + p->fill, data, n);
    p->fill += n;
    p->part_bytes += n;
    return (la_ssize_t)n;
}

static int open_part(struct lel_img_push *p)
{
    p->out = archive_write_new();
    if (!p->out || archive_write_set_format_pax_restricted(p->out) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(p->out, 1) != ARCHIVE_OK ||
        archive_write_open(p->out, p, NULL, out_write, NULL) != ARCHIVE_OK) {
        snprintf(p->errmsg, sizeof(p->errmsg), "cannot write tar: %s", p->out ? archive_error_string(p->out) : "out of memory");
        return -1;
    }
    p->part_bytes = p->part_off = 0;
    p->part_started = 0;
    return 0;
}

struct lel_img_push *lel__img_push_new(const char *rootfs)
{
    struct lel_img_push *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    snprintf(p->root, sizeof(p->root), "%s", rootfs);
    p->rootlen = strlen(p->root);
    p->buf = malloc(PLEN + 2 * CHUNK + PART_BYTES / 8);
    p->data = malloc(CHUNK);
    p->disk = archive_read_disk_new();
    p->entry = archive_entry_new();
    if (!p->buf || !p->data || !p->disk || !p->entry ||
        archive_read_disk_set_behavior(p->disk, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                                    ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS) != ARCHIVE_OK ||
        archive_read_disk_set_symlink_physical(p->disk) != ARCHIVE_OK || archive_read_disk_open(p->disk, rootfs) != ARCHIVE_OK) {
        lel__img_push_free(p);
        return NULL;
    }
    memcpy(p->buf, GUEST_PART, PLEN);
    return p;
}

void lel__img_push_free(struct lel_img_push *p)
{
    if (!p)
        return;
    if (p->out)
        archive_write_free(p->out);
    if (p->disk)
        archive_read_free(p->disk);
    archive_entry_free(p->entry);
    tdestroy(p->inodes, free);
    free(p->buf);
    free(p->data);
    free(p);
}

/* Whether the entry at `rel` stays out of the guest (and, for a directory, what is under it). */
static int left_out(struct archive_entry *e, const char *rel)
{
    static const char *const guest_made[] = {"proc", "dev", "sys", NULL};
    for (int i = 0; guest_made[i]; i++) {
        size_t n = strlen(guest_made[i]);
        if (!strncmp(rel, guest_made[i], n) && (!rel[n] || rel[n] == '/'))
            return 1;
    }
    /* the guest's /bin is a directory (and /usr/bin leads to it): a link over it cannot be made */
    return archive_entry_filetype(e) == AE_IFLNK && !strcmp(rel, "bin");
}

/* Hard links: the first name of a file goes as the file, the others as links to it. */
static void link_or_remember(struct lel_img_push *p, struct archive_entry *e, const char *rel)
{
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_nlink(e) < 2)
        return;
    struct ino_path *k = malloc(sizeof(*k) + strlen(rel) + 1);
    if (!k)
        return;
    k->ino = (uint64_t)archive_entry_ino64(e);
    strcpy(k->path, rel);
    struct ino_path **found = tsearch(k, &p->inodes, ino_cmp);
    if (found && *found != k) {
        archive_entry_set_hardlink(e, (*found)->path);
        archive_entry_set_size(e, 0);
        free(k);
    } else if (!found) {
        free(k);
    }
}

/* The next entry's header into the part; 1 written, 0 the walk ended, -1 error. */
static int next_entry(struct lel_img_push *p)
{
    for (;;) {
        int r = archive_read_next_header2(p->disk, p->entry);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            snprintf(p->errmsg, sizeof(p->errmsg), "cannot read the image's tree: %s", archive_error_string(p->disk));
            return -1;
        }
        const char *path = archive_entry_pathname(p->entry);
        const char *rel = path && strlen(path) > p->rootlen ? path + p->rootlen + 1 : "";
        char relbuf[4200];
        snprintf(relbuf, sizeof(relbuf), "%s", rel);
        if (!*relbuf) { /* the root itself */
            archive_read_disk_descend(p->disk);
            continue;
        }
        if (left_out(p->entry, relbuf))
            continue; /* not descended into */
        archive_read_disk_descend(p->disk);
        archive_entry_set_pathname(p->entry, relbuf);
        archive_entry_set_uname(p->entry, NULL);
        archive_entry_set_gname(p->entry, NULL);
        link_or_remember(p, p->entry, relbuf);
        if (archive_write_header(p->out, p->entry) < ARCHIVE_WARN) {
            snprintf(p->errmsg, sizeof(p->errmsg), "cannot write tar for '%.200s': %s", relbuf, archive_error_string(p->out));
            return -1;
        }
        p->in_data = archive_entry_filetype(p->entry) == AE_IFREG && !archive_entry_hardlink(p->entry) &&
                     archive_entry_size(p->entry) > 0;
        p->total++;
        return 1;
    }
}

/* Moves the walk on by about TURN_BYTES: 1 more to do, 2 the part is complete (unpack it), -1 error. */
static int walk(struct lel_img_push *p, lel_vm_t *vm)
{
    uint64_t sent = 0;
    if (!p->out && open_part(p) < 0)
        return -1;
    while (sent < TURN_BYTES) {
        if (p->in_data) {
            la_ssize_t n = archive_read_data(p->disk, p->data, CHUNK);
            if (n < 0) {
                snprintf(p->errmsg, sizeof(p->errmsg), "cannot read the image's tree: %s", archive_error_string(p->disk));
                return -1;
            }
            if (n == 0)
                p->in_data = 0;
            else if (archive_write_data(p->out, p->data, (size_t)n) != n) {
                snprintf(p->errmsg, sizeof(p->errmsg), "cannot write tar: %s", archive_error_string(p->out));
                return -1;
            }
        } else if (p->part_bytes >= PART_BYTES || p->walk_done) {
            break;
        } else {
            int r = next_entry(p);
            if (r < 0)
                return -1;
            p->walk_done = r == 0;
        }
        while (p->fill >= CHUNK) {
            if (send_chunk(p, vm, CHUNK, 0) < 0)
                return -1;
            sent += CHUNK;
        }
    }
    if (p->in_data || (p->part_bytes < PART_BYTES && !p->walk_done))
        return 1;
    /* the part ends: its trailer, then the rest of it as the last chunk */
    if (archive_write_close(p->out) != ARCHIVE_OK || p->err) {
        snprintf(p->errmsg, sizeof(p->errmsg), "cannot write tar: %s", archive_error_string(p->out));
        return -1;
    }
    archive_write_free(p->out);
    p->out = NULL;
    while (p->fill > CHUNK)
        if (send_chunk(p, vm, CHUNK, 0) < 0)
            return -1;
    if (send_chunk(p, vm, p->fill, 1) < 0)
        return -1;
    p->parts++;
    return 2;
}

static void delete_in_guest(lel_vm_t *vm, const char *path)
{
    uint64_t arg[4] = {strlen(path) + 1, 0, 0, 0}, ret[4];
    lel_vm_call_bulk(vm, LEL_OP_FILE_DELETE, arg, path, strlen(path) + 1, ret, 30000);
}

int lel__img_push_step(struct lel_img_push *p, lel_vm_t *vm, const char *const **argv, char *err, size_t errlen)
{
    static const char *const copy_bb[] = {"/bin/busybox", "sh", "-c",
                                          "mkdir -p " GUEST_DIR " && cp /bin/busybox " GUEST_BB, NULL};
    static const char *const unpack[] = {GUEST_BB, "tar", "-xf", GUEST_PART, "-C", "/", NULL};
    int r;
    switch (p->state) {
    case PS_COPY_BB:
        p->state = PS_WALK;
        *argv = copy_bb;
        return 2;
    case PS_WALK:
        r = walk(p, vm);
        if (r < 0) {
            snprintf(err, errlen, "%s", p->errmsg);
            return -1;
        }
        if (r == 2) {
            p->state = PS_UNPACK;
            *argv = unpack;
        }
        return r;
    case PS_UNPACK: /* the part was unpacked */
        delete_in_guest(vm, GUEST_PART);
        p->state = p->walk_done ? PS_CLEANUP : PS_WALK;
        return 1;
    case PS_CLEANUP:
        delete_in_guest(vm, GUEST_BB);
        delete_in_guest(vm, GUEST_DIR);
        p->state = PS_DONE;
        return 0;
    case PS_DONE:
        return 0;
    }
    return 0;
}

void lel__img_push_stats(const struct lel_img_push *p, uint64_t *entries, int *parts)
{
    *entries = p->total;
    *parts = p->parts;
}
