/* Snapshot images are checked before anything is loaded: truncated, random, forged or
 * inconsistent files are refused with -EBADMSG, without a VM being created (so this runs
 * without /dev/kvm too). Includes the .c under test for its private header layout. */
#include "../../src/vmm/lel_snapshot.c"
#include "../lel_test.h"

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>

static char dir[] = "/tmp/lel-snapfmt-XXXXXX";
static char last_err[256];

static int restore_file(const void *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/img", dir);
    FILE *f = fopen(path, "wb");
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
    struct lel_vm_config cfg = {64ULL << 20, 100, NULL, NULL, NULL, NULL, 0};
    lel_vm_t *vm = NULL;
    last_err[0] = 0;
    int r = lel_vm_restore(path, &cfg, &vm, last_err, sizeof(last_err));
    CHECK(vm == NULL);
    return r;
}

static void seal(struct header *h)
{
    h->header_xxh = XXH3_64bits(h, offsetof(struct header, header_xxh));
}

struct unpack_arg {
    const char *img, *raw;
    int r;
};

static void *unpack_thread(void *p)
{
    struct unpack_arg *a = p;
    char err[256];
    a->r = lel_image_unpack_memory(a->img, a->raw, err, sizeof(err));
    return NULL;
}

/* Two threads unpack one image into one memory file at once: both succeed (each writes its own
 * temporary file), the file holds the memory, and no temporary file is left. */
static void concurrent_unpack(const char *img, const char *raw, const uint8_t *mem, size_t n)
{
    struct unpack_arg a[2] = {{img, raw, -1}, {img, raw, -1}};
    pthread_t th[2];
    unlink(raw);
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, unpack_thread, &a[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(a[0].r, 0);
    CHECK_INT(a[1].r, 0);
    uint8_t *back = malloc(n);
    FILE *f = fopen(raw, "rb");
    CHECK(f && back && fread(back, 1, n, f) == n && memcmp(mem, back, n) == 0);
    if (f)
        fclose(f);
    free(back);
    DIR *d = opendir(dir);
    int tmps = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        tmps += strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    CHECK_INT(tmps, 0);
}

/* Images written from memory and unpacked to a raw memory file come back byte for byte; zero
 * chunks cost nothing in the image and stay holes in the file; a damaged chunk is refused. */
static void roundtrip(void)
{
    size_t n = 16ULL << 20;
    uint8_t *mem = calloc(1, n);
    for (size_t i = 0; i < n; i++)
        if ((i >> 20) % 3 == 0) /* chunks 0, 3, 6, ... hold data; the rest are zero */
            mem[i] = (uint8_t)(i * 2654435761u >> 13);
    char img[128], raw[128], err[256];
    struct lel_snap_info info;
    snprintf(img, sizeof(img), "%s/mem.img", dir);
    snprintf(raw, sizeof(raw), "%s/mem.raw", dir);
    CHECK_INT(lel__image_write(img, mem, n, "state", 5, LEL_VMM_PVM, 100, &info, err, sizeof(err)), 0);
    CHECK_INT(info.chunks, 16);
    CHECK_INT(info.zero_chunks, 10);
    CHECK(info.stored_bytes < n);
    CHECK_INT(lel_image_unpack_memory(img, raw, err, sizeof(err)), 0);
    FILE *f = fopen(raw, "rb");
    uint8_t *back = malloc(n);
    CHECK(f && fread(back, 1, n, f) == n);
    if (f)
        fclose(f);
    CHECK(memcmp(mem, back, n) == 0);
    struct stat st;
    CHECK(stat(raw, &st) == 0 && (uint64_t)st.st_blocks * 512 < n); /* sparse: only the data chunks */
    for (int round = 0; round < 5; round++) /* first starts from one snapshot may unpack it at once */
        concurrent_unpack(img, raw, mem, n);
    /* damage one byte inside a stored frame: unpacking refuses, and leaves no file behind */
    unlink(raw);
    int fd = open(img, O_RDWR);
    struct stat is;
    fstat(fd, &is);
    uint8_t b;
    CHECK(pread(fd, &b, 1, is.st_size - 100) == 1);
    b ^= 0x40;
    CHECK(pwrite(fd, &b, 1, is.st_size - 100) == 1);
    close(fd);
    CHECK_INT(lel_image_unpack_memory(img, raw, err, sizeof(err)), -EBADMSG);
    CHECK(access(raw, F_OK) != 0);
    free(mem);
    free(back);
}

int main(void)
{
    char err[256];
    lel_vm_t *vm = NULL;
    struct lel_vm_config cfg = {64ULL << 20, 100, NULL, NULL, NULL, NULL, 0};
    mkdtemp(dir);
    CHECK_INT(lel_vm_restore("/nonexistent/img", &cfg, &vm, err, sizeof(err)), -ENOENT);
    CHECK_INT(restore_file("", 0), -EBADMSG);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7919 + 13);
    CHECK_INT(restore_file(junk, sizeof(junk)), -EBADMSG);

    /* a well-formed header for a 64 MiB guest, then each field broken in turn */
    struct header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, MAGIC, sizeof(MAGIC));
    h.version = VERSION;
    h.chunk_size = CHUNK;
    h.mem_bytes = 64ULL << 20;
    h.nchunks = 64;
    h.state_off = sizeof(h);
    h.state_len = 16;
    h.index_off = h.state_off + h.state_len;
    uint8_t state[16] = {1, 2, 3};
    struct chunk_ent index[64];
    memset(index, 0, sizeof(index));
    for (int i = 0; i < 64; i++)
        index[i].flags = C_ZERO;
    h.state_xxh = XXH3_64bits(state, sizeof(state));
    h.index_xxh = XXH3_64bits(index, sizeof(index));
    seal(&h);
    size_t total = sizeof(h) + sizeof(state) + sizeof(index);
    uint8_t *img = malloc(total);
    memcpy(img, &h, sizeof(h));
    memcpy(img + sizeof(h), state, sizeof(state));
    memcpy(img + sizeof(h) + sizeof(state), index, sizeof(index));

    /* truncated anywhere: refused */
    CHECK_INT(restore_file(img, sizeof(h) - 1), -EBADMSG);
    CHECK_INT(restore_file(img, total - 1), -EBADMSG);
    /* a flipped bit in the header, the state or the index: refused by its checksum */
    img[20] ^= 1;
    CHECK_INT(restore_file(img, total), -EBADMSG);
    img[20] ^= 1;
    img[sizeof(h) + 3] ^= 1;
    CHECK_INT(restore_file(img, total), -EBADMSG);
    img[sizeof(h) + 3] ^= 1;
    img[sizeof(h) + sizeof(state) + 40] ^= 1;
    CHECK_INT(restore_file(img, total), -EBADMSG);
    img[sizeof(h) + sizeof(state) + 40] ^= 1;
    /* forged headers with valid checksums but impossible sizes: refused before allocating */
    struct header f = h;
    f.nchunks = 1ULL << 40;
    seal(&f);
    memcpy(img, &f, sizeof(f));
    CHECK_INT(restore_file(img, total), -EBADMSG);
    f = h;
    f.state_len = 1ULL << 40;
    seal(&f);
    memcpy(img, &f, sizeof(f));
    CHECK_INT(restore_file(img, total), -EBADMSG);
    f = h;
    f.version = VERSION + 1;
    seal(&f);
    memcpy(img, &f, sizeof(f));
    CHECK_INT(restore_file(img, total), -EBADMSG);
    /* the intact image passes every format check; it fails later, for lack of /dev/kvm or
     * because its state records are dummies, never as "corrupt or truncated" */
    memcpy(img, &h, sizeof(h));
    int r = restore_file(img, total);
    CHECK(r < 0);
    CHECK(strstr(last_err, "corrupt or truncated") == NULL);
    memcpy(img, &f, sizeof(f)); /* and the same check does see the corrupt one */
    restore_file(img, total);
    CHECK(strstr(last_err, "corrupt or truncated") != NULL);
    free(img);
    roundtrip();
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
