/* Snapshot images are checked before anything is loaded: truncated, random, forged or
 * inconsistent files are refused with -EBADMSG, without a VM being created (so this runs
 * without /dev/kvm too). Diff chains written from memory come back byte for byte at every
 * link, flatten to the same id, and refuse corrupt diffs and missing or changed bases; a writer
 * killed mid-image leaves the previous image. Includes the .c under test for its private header
 * layout. */
#include "../../src/vmm/lel_vmimage.c"
#include "../lel_test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdlib.h>

static char dir[] = "/tmp/lel-snapfmt-XXXXXX";
static char last_err[512];

static int restore_file(const void *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/img", dir);
    FILE *f = fopen(path, "wb");
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
    struct lel_vm_config cfg = {64ULL << 20, 100, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
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
    struct lel__wspec w = {img, mem, n, "state", 5, LEL_VMM_PVM, 100, NULL, 0, NULL, NULL, NULL, 0, NULL};
    CHECK_INT(lel__img_write(&w, &info, err, sizeof(err)), 0);
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

/* A full image of anonymous memory skips the chunks the page map says were never touched: the
 * same image (content id, frames) as reading every chunk, a chunk touched and zeroed again is
 * read (and found zero), and a chunk with one touched page is stored. */
static void untouched_chunks(void)
{
    size_t n = 16ULL << 20;
    uint8_t *mem = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    for (size_t c = 0; c < 16; c += 4) /* chunks 0, 4, 8, 12: data; 2: touched, left zero; 6: one page */
        for (size_t i = 0; i < CHUNK; i++)
            mem[c * CHUNK + i] = (uint8_t)(i * 2654435761u >> 11);
    memset(mem + 2 * CHUNK, 0, CHUNK);
    mem[6 * CHUNK + 5 * 4096 + 7] = 1;
    uint8_t *zero = lel__img_untouched(mem, n);
    CHECK(zero != NULL);
    int untouched = 0;
    for (size_t c = 0; zero && c < 16; c++)
        untouched += zero[c];
    CHECK_INT(untouched, 10);
    CHECK(zero && !zero[0] && !zero[2] && !zero[6] && zero[1] && zero[15]);
    char a[128], b[128], err[256];
    struct lel_snap_info ia, ib;
    snprintf(a, sizeof(a), "%s/skip.img", dir);
    snprintf(b, sizeof(b), "%s/read.img", dir);
    struct lel__wspec w = {a, mem, n, "state", 5, LEL_VMM_PVM, 100, NULL, 0, NULL, NULL, NULL, 0, zero};
    CHECK_INT(lel__img_write(&w, &ia, err, sizeof(err)), 0);
    w.path = b;
    w.zero = NULL;
    CHECK_INT(lel__img_write(&w, &ib, err, sizeof(err)), 0);
    CHECK(memcmp(ia.id, ib.id, 16) == 0);
    CHECK_INT(ia.zero_chunks, 11);
    CHECK_INT(ib.zero_chunks, 11);
    char raw[128];
    snprintf(raw, sizeof(raw), "%s/skip.raw", dir);
    CHECK_INT(lel_image_unpack_memory(a, raw, err, sizeof(err)), 0);
    FILE *f = fopen(raw, "rb");
    uint8_t *back = malloc(n);
    CHECK(f && fread(back, 1, n, f) == n);
    if (f)
        fclose(f);
    CHECK(memcmp(mem, back, n) == 0);
    free(back);
    free(zero);
    munmap(mem, n);
}

/* ---- diff chains ---- */

static void write_image(const char *name, const uint8_t *mem, size_t n, const uint32_t *pages, uint64_t np,
                        const char *base, const uint8_t *base_id, uint32_t depth, struct lel_snap_info *info)
{
    char path[128], err[256];
    uint64_t *map = malloc(n / CHUNK * sizeof(uint64_t));
    for (size_t i = 0; i < n / CHUNK; i++)
        map[i] = XXH3_64bits(mem + i * CHUNK, CHUNK);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct lel__wspec w = {path, mem, n, name, strlen(name), LEL_VMM_PVM, 100, pages, np, pages ? map : NULL, base, base_id, depth, NULL};
    CHECK_INT(lel__img_write(&w, info, err, sizeof(err)), 0);
    free(map);
}

/* Unpacks image `name` (its whole chain) and compares it with mem. Returns the unpack's result. */
static int unpack_cmp(const char *name, const uint8_t *mem, size_t n, int *same)
{
    char img[128], raw[128], err[512];
    snprintf(img, sizeof(img), "%s/%s", dir, name);
    snprintf(raw, sizeof(raw), "%s/cmp.raw", dir);
    int r = lel_image_unpack_memory(img, raw, err, sizeof(err));
    snprintf(last_err, sizeof(last_err), "%s", r < 0 ? err : "");
    *same = 0;
    if (r == 0) {
        uint8_t *back = malloc(n);
        FILE *f = fopen(raw, "rb");
        *same = f && back && fread(back, 1, n, f) == n && memcmp(mem, back, n) == 0;
        if (f)
            fclose(f);
        free(back);
    }
    unlink(raw);
    return r;
}

static void scribble(uint8_t *mem, const uint32_t *pages, size_t np, uint32_t seed)
{
    for (size_t i = 0; i < np; i++)
        for (size_t k = 0; k < PAGE; k++)
            mem[(size_t)pages[i] * PAGE + k] = (uint8_t)((k + seed) * 2654435761u >> 11);
}

static void flip_last_frame_byte(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR);
    struct stat st;
    uint8_t b;
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &b, 1, st.st_size - 10) == 1);
    b ^= 0x10;
    CHECK(pwrite(fd, &b, 1, st.st_size - 10) == 1);
    close(fd);
}

/* A full image and two diffs over it (one diff of a diff): every link unpacks byte-exact to the
 * memory it was taken from; flattening keeps the id and the bytes; a corrupt diff, a missing base
 * and a base with other content are refused with clear errors. */
static void chains(void)
{
    size_t n = 8ULL << 20;
    uint8_t *m0 = calloc(1, n), *m1 = malloc(n), *m2 = malloc(n);
    for (size_t i = 0; i < n; i++)
        if ((i >> 20) % 2 == 0)
            m0[i] = (uint8_t)(i * 40503u >> 7);
    struct lel_snap_info f, d1, d2, x;
    write_image("f.img", m0, n, NULL, 0, NULL, NULL, 0, &f);
    CHECK(!f.diff && f.depth == 0);
    static const uint32_t p1[] = {3, 300, 301, 1000, 1500, 2047}, p2[] = {5, 300, 2000};
    memcpy(m1, m0, n);
    scribble(m1, p1, 6, 1);
    memset(m1 + 1500 * PAGE, 0, PAGE); /* a page that became zero is a change too */
    write_image("d1.img", m1, n, p1, 6, "f.img", f.id, 1, &d1);
    memcpy(m2, m1, n);
    scribble(m2, p2, 3, 2);
    write_image("d2.img", m2, n, p2, 3, "d1.img", d1.id, 2, &d2);
    CHECK(d1.diff && d1.depth == 1 && d1.diff_pages == 6 && d2.depth == 2);
    CHECK(d1.stored_bytes < 64 * 1024 && memcmp(d1.id, d2.id, 16) && memcmp(f.id, d1.id, 16));
    int same;
    CHECK_INT(unpack_cmp("f.img", m0, n, &same), 0);
    CHECK(same);
    CHECK_INT(unpack_cmp("d1.img", m1, n, &same), 0);
    CHECK(same);
    CHECK_INT(unpack_cmp("d2.img", m2, n, &same), 0);
    CHECK(same);
    char path[128], err[512], base[256];
    uint8_t bid[16];
    snprintf(path, sizeof(path), "%s/d2.img", dir);
    CHECK_INT(lel_image_info(path, &x, base, sizeof(base), bid, err, sizeof(err)), 0);
    CHECK(x.diff && x.depth == 2 && !memcmp(bid, d1.id, 16) && strstr(base, "/d1.img"));
    /* flattened: a full image of the same content and id, with no base */
    CHECK_INT(lel_image_flatten(path, err, sizeof(err)), 0);
    CHECK_INT(lel_image_info(path, &x, base, sizeof(base), bid, err, sizeof(err)), 0);
    CHECK(!x.diff && x.depth == 0 && !memcmp(x.id, d2.id, 16));
    CHECK_INT(unpack_cmp("d2.img", m2, n, &same), 0);
    CHECK(same);
    /* a damaged frame of a diff: refused */
    write_image("bad.img", m2, n, p2, 3, "d1.img", d1.id, 2, &x);
    flip_last_frame_byte("bad.img");
    CHECK_INT(unpack_cmp("bad.img", m2, n, &same), -EBADMSG);
    /* a diff whose base is gone, and one whose base has other content */
    write_image("orphan.img", m2, n, p2, 3, "gone.img", d1.id, 2, &x);
    CHECK_INT(unpack_cmp("orphan.img", m2, n, &same), -ENOENT);
    CHECK(strstr(last_err, "base image") && strstr(last_err, "missing"));
    write_image("wrong.img", m2, n, p2, 3, "f.img", d1.id, 2, &x);
    CHECK_INT(unpack_cmp("wrong.img", m2, n, &same), -ESTALE);
    CHECK(strstr(last_err, "not the one it was taken over"));
    /* a damaged base: the dependant is refused too */
    flip_last_frame_byte("f.img");
    CHECK_INT(unpack_cmp("d1.img", m1, n, &same), -EBADMSG);
    free(m0);
    free(m1);
    free(m2);
}

/* kill -9 while a diff is being written over an existing one: the image at the path is always
 * a whole one (the old or the new), never a torn one. */
static void killed_writer(void)
{
    size_t n = 64ULL << 20, np = 8192;
    uint8_t *a = calloc(1, n), *b = malloc(n);
    uint32_t *pages = malloc(np * sizeof(uint32_t));
    for (size_t i = 0; i < np; i++)
        pages[i] = (uint32_t)(i * 2);
    struct lel_snap_info f, x;
    write_image("kbase.img", a, n, NULL, 0, NULL, NULL, 0, &f);
    memcpy(b, a, n);
    scribble(a, pages, np, 7);
    write_image("k.img", a, n, pages, np, "kbase.img", f.id, 1, &x);
    for (int round = 0; round < 3; round++) {
        scribble(b, pages, np, 100 + (uint32_t)round);
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                write_image("k.img", b, n, pages, np, "kbase.img", f.id, 1, &x);
        }
        struct timespec ts = {0, (10 + round * 15) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        int same_a, same_b;
        CHECK_INT(unpack_cmp("k.img", a, n, &same_a), 0);
        unpack_cmp("k.img", b, n, &same_b);
        CHECK(same_a || same_b);
        char path[128], err[256];
        snprintf(path, sizeof(path), "%s/k.img", dir);
        if (same_b) /* the next round's "old" is what is there now */
            memcpy(a, b, n);
        CHECK_INT(lel_image_info(path, &x, NULL, 0, NULL, err, sizeof(err)), 0);
    }
    free(a);
    free(b);
    free(pages);
}

int main(void)
{
    char err[256];
    lel_vm_t *vm = NULL;
    struct lel_vm_config cfg = {64ULL << 20, 100, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL};
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
    h.nframes = 64;
    h.base_off = h.state_off = sizeof(h);
    h.state_len = 16;
    h.pages_off = h.map_off = h.index_off = h.state_off + h.state_len;
    uint8_t state[16] = {1, 2, 3};
    struct lel__frame index[64];
    memset(index, 0, sizeof(index));
    for (int i = 0; i < 64; i++)
        index[i].flags = C_ZERO;
    h.state_xxh = XXH3_64bits(state, sizeof(state));
    h.index_xxh = XXH3_64bits(index, sizeof(index));
    h.pages_xxh = XXH3_64bits(NULL, 0);
    uint64_t zmap[64] = {0};
    lel__img_id(h.mem_bytes, h.state_xxh, zmap, 64, h.id);
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
    f.nframes = 1ULL << 40;
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
    untouched_chunks();
    chains();
    killed_writer();
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return lel_test_finish();
}
