/* The read-only root filesystem image in a VM: the file mapped as read-only guest-physical
 * memory at LEL_GPA_ROFS, and its record in snapshots (which never hold its pages: they save
 * RAM only). KVM_MEM_READONLY over a MAP_SHARED, PROT_READ mapping of the file, so every VM on
 * it reads the same page-cache pages and a guest write can only exit (as MMIO, ignored); PVM
 * has KVM_CAP_READONLY_MEM as hardware KVM does. Where a /dev/kvm lacks it, the file is mapped
 * MAP_PRIVATE and writable (a stray guest write then changes its own copy of one page, never
 * the file), whose clean pages are the page cache's all the same. */
#include "lel_vmm_int.h"

#include "../guest/lel_rofs_abi.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern const unsigned char lel_rootfs_image[], lel_rootfs_image_end[];

void lel_vmm_base_rootfs(const void **data, size_t *len)
{
    *data = lel_rootfs_image;
    *len = (size_t)(lel_rootfs_image_end - lel_rootfs_image);
}

static void hex(const uint8_t *h, char out[17])
{
    for (int i = 0; i < 8; i++) /* the first 8 bytes name it well enough in a message */
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Opens the image and checks its superblock; fd, or -errno with err filled. */
static int open_image(const char *path, struct lel_rofs_super *s, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "the root filesystem image %.300s is missing: %s", path, strerror(e));
        return e == ENOENT ? -ENOENT : -e;
    }
    if (fstat(fd, &st) < 0 || pread(fd, s, sizeof(*s), 0) != (ssize_t)sizeof(*s) || !lel_rofs_super_ok(s, (uint64_t)st.st_size)) {
        close(fd);
        snprintf(err, errlen, "%.300s is not a well-formed root filesystem image", path);
        return -EBADMSG;
    }
    return fd;
}

int lel__rofs_map(lel_vm_t *vm, const char *path, const uint8_t *want, char *err, size_t errlen)
{
    struct lel_rofs_super s;
    int fd = open_image(path, &s, err, errlen);
    if (fd < 0)
        return fd;
    if (want && memcmp(s.content_hash, want, 32)) {
        char a[17], b[17];
        hex(want, a);
        hex(s.content_hash, b);
        snprintf(err, errlen, "the root filesystem image %.300s is not the one the snapshot was taken over (hash %s..., the file has %s...)",
                 path, a, b);
        close(fd);
        return -ESTALE;
    }
    int ro = ioctl(lel__kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
    void *m = mmap(NULL, s.file_bytes, ro ? PROT_READ : PROT_READ | PROT_WRITE, ro ? MAP_SHARED : MAP_PRIVATE | MAP_NORESERVE,
                   fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %.300s: %s", path, strerror(e));
        return -e;
    }
    struct kvm_userspace_memory_region r = {LEL_SLOT_ROFS, ro ? KVM_MEM_READONLY : 0, LEL_GPA_ROFS, s.file_bytes,
                                            (uint64_t)(uintptr_t)m};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 || !(vm->rofs_path = strdup(path))) {
        e = errno ? errno : ENOMEM;
        munmap(m, s.file_bytes);
        snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (root filesystem image): %s", strerror(e));
        return -e;
    }
    vm->rofs = m;
    vm->rofs_bytes = s.file_bytes;
    vm->rofs_readonly = ro;
    memcpy(vm->rofs_hash, s.content_hash, 32);
    return 0;
}

void lel__rofs_unmap(lel_vm_t *vm)
{
    if (vm->rofs)
        munmap(vm->rofs, vm->rofs_bytes);
    free(vm->rofs_path);
    vm->rofs = NULL;
    vm->rofs_path = NULL;
}

int lel_vm_rofs(lel_vm_t *vm, uint64_t *bytes, uint8_t hash[32], int *readonly)
{
    if (!vm->rofs)
        return 0;
    if (bytes)
        *bytes = vm->rofs_bytes;
    if (hash)
        memcpy(hash, vm->rofs_hash, 32);
    if (readonly)
        *readonly = vm->rofs_readonly;
    return 1;
}

/* The snapshot record: the hash, the size, the GPA, then the path with its NUL. */
struct rofs_rec {
    uint8_t hash[32];
    uint64_t bytes, gpa;
    char path[];
};

void *lel__rofs_record(lel_vm_t *vm, size_t *len)
{
    if (!vm->rofs)
        return NULL;
    size_t pl = strlen(vm->rofs_path) + 1;
    struct rofs_rec *r = malloc(sizeof(*r) + pl);
    if (!r)
        return NULL;
    memcpy(r->hash, vm->rofs_hash, 32);
    r->bytes = vm->rofs_bytes;
    r->gpa = LEL_GPA_ROFS;
    memcpy(r->path, vm->rofs_path, pl);
    *len = sizeof(*r) + pl;
    return r;
}

int lel__rofs_record_parse(const void *rec, size_t len, const uint8_t **hash, const char **path)
{
    const uint8_t *b = rec; /* read byte-wise: a record need not be aligned in the state */
    uint64_t gpa;
    size_t hdr = offsetof(struct rofs_rec, path);
    if (len < hdr + 2 || b[len - 1] != 0 || strlen((const char *)b + hdr) != len - hdr - 1)
        return -EBADMSG;
    memcpy(&gpa, b + offsetof(struct rofs_rec, gpa), sizeof(gpa));
    if (gpa != LEL_GPA_ROFS)
        return -EBADMSG;
    *hash = b + offsetof(struct rofs_rec, hash);
    *path = (const char *)b + hdr;
    return 0;
}
