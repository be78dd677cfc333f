/* The snapshot image format: a VM's state records plus its memory, either whole (a full image)
 * or as the pages that differ from another image (a diff, which names that base by path and
 * content id). Memory travels in frames of 1 MiB: a full image's chunks of memory, a diff's
 * groups of 256 pages; all-zero frames are recorded, not stored; the rest are zstd frames
 * compressed and decompressed on all cores and located by an index. Every frame, the state,
 * the page list, the chunk map and the index carry an XXH3 checksum, so a corrupt or truncated
 * image is refused before anything is loaded. Written to a temp name, fsynced, renamed: a
 * crash mid-write leaves the previous file.
 *
 * An image's content id is XXH3-128 over its memory size, its state's hash and the hash of every
 * 1 MiB chunk of the memory it stands for (the "map"); a full image's map is its index's frame
 * hashes, a diff records its own. Flattening a diff into a full image keeps its id.
 *
 * Layout (version 2): header | base path | state | pages (u32) | map (u64) | index | frames.
 * Version 1 images (full, no id, no map) are still read. */
#include "lel_vmm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define MAGIC "LELSNAP"
#define VERSION 2
#define CHUNK LEL_IMG_CHUNK
#define PAGE LEL_IMG_PAGE
#define PPF (CHUNK / PAGE) /* pages per frame of a diff */
#define MAX_STATE (1u << 20)
#define MAX_BASE_PATH 4096
#define ZSTD_LEVEL 1
#define RAW_MAGIC "LELRAW1"

struct header_v1 {
    char magic[8];
    uint32_t version, chunk_size;
    uint64_t mem_bytes;
    uint64_t nchunks;
    uint64_t state_off, state_len, state_xxh;
    uint64_t index_off, index_xxh;
    uint32_t backend, tick_hz;
    uint64_t header_xxh; /* of everything above */
};

struct header {
    char magic[8];
    uint32_t version, chunk_size;
    uint64_t mem_bytes;
    uint64_t nframes;
    uint64_t state_off, state_len, state_xxh;
    uint64_t index_off, index_xxh;
    uint32_t backend, tick_hz;
    uint32_t kind, depth; /* K_FULL or K_DIFF; 0, or the base's depth + 1 */
    uint64_t npages, pages_off, pages_xxh;
    uint64_t map_off, map_xxh; /* a diff's map (a full image's is its index's hashes) */
    uint64_t base_off, base_len;
    uint8_t id[16], base_id[16];
    uint64_t header_xxh; /* of everything above */
};

enum { K_FULL = 0, K_DIFF = 1 };
enum { C_ZERO = 1 };

/* A raw memory file is the memory, then this page: which image it holds. */
struct raw_trailer {
    char magic[8];
    uint8_t id[16];
    uint64_t mem_bytes, xxh;
};

int lel__img_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

void lel__img_id(uint64_t mem_bytes, uint64_t state_xxh, const uint64_t *map, uint64_t nmap, uint8_t id[16])
{
    XXH3_state_t *st = XXH3_createState();
    uint64_t head[2] = {mem_bytes, state_xxh};
    XXH128_canonical_t c;
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, head, sizeof(head));
    XXH3_128bits_update(st, map, nmap * sizeof(*map));
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    XXH3_freeState(st);
    memcpy(id, c.digest, 16);
}

static int all_zero(const uint8_t *p, size_t n)
{
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EBADMSG;
        p = (uint8_t *)p + r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* ---- frames, on all cores ---- */

struct job {
    uint8_t *mem;            /* save: the memory read; apply: the memory written */
    const uint32_t *pages;   /* a diff's pages (frame i: pages[i*PPF ...]), NULL: full */
    uint64_t npages;
    int fd, fresh;
    uint64_t file_size;
    struct lel__frame *index;
    uint64_t *page_hash;     /* apply: each stored page's hash, or NULL */
    uint64_t next_off;       /* save: where the next frame goes (frames land in any order) */
    size_t count, next;
    pthread_mutex_t lock;
    int error;
};

static size_t take(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    size_t i = j->next < j->count && !j->error ? j->next++ : SIZE_MAX;
    pthread_mutex_unlock(&j->lock);
    return i;
}

static void fail(struct job *j, int e)
{
    pthread_mutex_lock(&j->lock);
    if (!j->error)
        j->error = e;
    pthread_mutex_unlock(&j->lock);
}

/* Frame i's pages of a diff: first and count. */
static uint64_t frame_pages(const struct job *j, size_t i, uint64_t *first)
{
    *first = (uint64_t)i * PPF;
    return j->npages - *first < PPF ? j->npages - *first : PPF;
}

static void *compress_worker(void *arg)
{
    struct job *j = arg;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t bound = ZSTD_compressBound(CHUNK);
    uint8_t *dst = malloc(bound), *gather = j->pages ? malloc(CHUNK) : NULL;
    if (!cctx || !dst || (j->pages && !gather))
        fail(j, ENOMEM);
    for (size_t i; (i = take(j)) != SIZE_MAX;) {
        const uint8_t *src = j->mem + (uint64_t)i * CHUNK;
        size_t len = CHUNK;
        if (j->pages) { /* a diff's frame: its pages gathered */
            uint64_t first, n = frame_pages(j, i, &first);
            for (uint64_t k = 0; k < n; k++)
                memcpy(gather + k * PAGE, j->mem + (uint64_t)j->pages[first + k] * PAGE, PAGE);
            src = gather;
            len = n * PAGE;
        }
        struct lel__frame *e = &j->index[i];
        e->xxh = XXH3_64bits(src, len);
        if (all_zero(src, len)) {
            e->flags = C_ZERO;
            continue;
        }
        size_t n = ZSTD_compressCCtx(cctx, dst, bound, src, len, ZSTD_LEVEL);
        if (ZSTD_isError(n) || n == 0) {
            fail(j, ENOMEM);
            break;
        }
        pthread_mutex_lock(&j->lock);
        e->off = j->next_off;
        j->next_off += n;
        pthread_mutex_unlock(&j->lock);
        e->clen = (uint32_t)n;
        int r = write_all(j->fd, dst, n, e->off);
        if (r < 0) {
            fail(j, -r);
            break;
        }
    }
    free(dst);
    free(gather);
    ZSTD_freeCCtx(cctx);
    return NULL;
}

static void *decompress_worker(void *arg)
{
    struct job *j = arg;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t bound = ZSTD_compressBound(CHUNK);
    uint8_t *src = malloc(bound), *buf = j->pages ? malloc(CHUNK) : NULL;
    if (!dctx || !src || (j->pages && !buf))
        fail(j, ENOMEM);
    for (size_t i; (i = take(j)) != SIZE_MAX;) {
        struct lel__frame *e = &j->index[i];
        uint64_t first = 0, n = j->pages ? frame_pages(j, i, &first) : 0;
        size_t len = j->pages ? n * PAGE : CHUNK;
        uint8_t *dst = j->pages ? buf : j->mem + (uint64_t)i * CHUNK;
        if (e->flags & C_ZERO) {
            if (!j->pages && j->fresh)
                continue; /* fresh memory is zero; touching it would only fault pages in */
            memset(dst, 0, len);
            if (e->xxh != XXH3_64bits(dst, len)) {
                fail(j, EBADMSG);
                break;
            }
        } else if (e->clen == 0 || e->clen > bound || e->off > j->file_size || e->clen > j->file_size - e->off ||
                   read_all(j->fd, src, e->clen, e->off) < 0) {
            fail(j, EBADMSG);
            break;
        } else {
            size_t got = ZSTD_decompressDCtx(dctx, dst, len, src, e->clen);
            if (ZSTD_isError(got) || got != len || XXH3_64bits(dst, len) != e->xxh) {
                fail(j, EBADMSG);
                break;
            }
        }
        for (uint64_t k = 0; k < n; k++) { /* a diff's pages go to their places */
            memcpy(j->mem + (uint64_t)j->pages[first + k] * PAGE, buf + k * PAGE, PAGE);
            if (j->page_hash)
                j->page_hash[first + k] = XXH3_64bits(buf + k * PAGE, PAGE);
        }
    }
    free(src);
    free(buf);
    ZSTD_freeDCtx(dctx);
    return NULL;
}

/* Runs fn over frames [0, count) on lel__img_threads() threads (the caller one of them). */
static int parallel(struct job *j, void *(*fn)(void *), size_t count)
{
    pthread_t th[64];
    int n = lel__img_threads(), started = 0;
    if ((size_t)n > count)
        n = count ? (int)count : 1;
    j->next = 0;
    j->count = count;
    for (; started < n - 1; started++)
        if (pthread_create(&th[started], NULL, fn, j) != 0)
            break;
    fn(j);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return j->error ? -j->error : 0;
}

/* ---- writing ---- */

static int write_tail(int fd, const struct header *h, const struct lel__wspec *w, const struct lel__frame *index)
{
    int r;
    if ((r = write_all(fd, h, sizeof(*h), 0)) < 0 || (r = write_all(fd, w->base ? w->base : "", h->base_len, h->base_off)) < 0 ||
        (r = write_all(fd, w->state, w->state_len, h->state_off)) < 0 ||
        (r = write_all(fd, w->pages, h->npages * sizeof(uint32_t), h->pages_off)) < 0 ||
        (r = write_all(fd, w->map, h->kind == K_DIFF ? (w->mem_bytes / CHUNK) * sizeof(uint64_t) : 0, h->map_off)) < 0 ||
        (r = write_all(fd, index, h->nframes * sizeof(*index), h->index_off)) < 0)
        return r;
    return fsync(fd) < 0 ? -errno : 0;
}

/* The header of what w describes, with every offset; frames start at *data_off. */
static void layout(struct header *h, const struct lel__wspec *w, uint64_t *data_off)
{
    uint64_t nmap = w->mem_bytes / CHUNK;
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, MAGIC, sizeof(MAGIC));
    h->version = VERSION;
    h->chunk_size = CHUNK;
    h->mem_bytes = w->mem_bytes;
    h->kind = w->pages ? K_DIFF : K_FULL;
    h->depth = w->pages ? w->depth : 0;
    h->npages = w->pages ? w->npages : 0;
    h->nframes = w->pages ? (h->npages + PPF - 1) / PPF : nmap;
    h->backend = w->backend;
    h->tick_hz = w->tick_hz;
    h->base_off = sizeof(*h);
    h->base_len = w->pages && w->base ? strlen(w->base) : 0;
    h->state_off = h->base_off + h->base_len;
    h->state_len = w->state_len;
    h->state_xxh = XXH3_64bits(w->state, w->state_len);
    h->pages_off = h->state_off + h->state_len;
    h->pages_xxh = XXH3_64bits(w->pages, h->npages * sizeof(uint32_t));
    h->map_off = h->pages_off + h->npages * sizeof(uint32_t);
    h->map_xxh = h->kind == K_DIFF ? XXH3_64bits(w->map, nmap * sizeof(uint64_t)) : 0;
    h->index_off = h->map_off + (h->kind == K_DIFF ? nmap * sizeof(uint64_t) : 0);
    if (w->pages && w->base_id)
        memcpy(h->base_id, w->base_id, 16);
    *data_off = h->index_off + h->nframes * sizeof(struct lel__frame);
}

static void fill_info(struct lel_snap_info *info, const struct header *h, const struct lel__frame *index, uint64_t size)
{
    if (!info)
        return;
    memset(info, 0, sizeof(*info));
    info->mem_bytes = h->mem_bytes;
    info->stored_bytes = size;
    info->chunks = h->nframes;
    for (uint64_t i = 0; i < h->nframes; i++)
        info->zero_chunks += index[i].flags & C_ZERO;
    info->diff = h->kind == K_DIFF;
    info->depth = h->depth;
    info->diff_pages = h->npages;
    memcpy(info->id, h->id, 16);
}

int lel__img_write(const struct lel__wspec *w, struct lel_snap_info *info, char *err, size_t errlen)
{
    struct header h;
    struct job j;
    char tmp[4200];
    uint64_t data_off, nmap = w->mem_bytes / CHUNK;
    int fd = -1, r;
    if (w->mem_bytes % CHUNK || !nmap || w->state_len > MAX_STATE || (w->pages && (!w->map || !w->npages))) {
        snprintf(err, errlen, "memory size is not a multiple of the chunk size, or the state is too large");
        return -EINVAL;
    }
    layout(&h, w, &data_off);
    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.lock, NULL);
    j.mem = (uint8_t *)w->mem;
    j.pages = w->pages;
    j.npages = h.npages;
    j.next_off = data_off;
    uint64_t *full_map = w->pages ? NULL : malloc(nmap * sizeof(uint64_t));
    j.index = calloc(h.nframes ? h.nframes : 1, sizeof(struct lel__frame));
    if (!j.index || (!w->pages && !full_map)) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", w->path);
    if ((fd = j.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((r = parallel(&j, compress_worker, h.nframes)) < 0) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(-r));
        goto out;
    }
    for (uint64_t i = 0; !w->pages && i < nmap; i++)
        full_map[i] = j.index[i].xxh;
    lel__img_id(h.mem_bytes, h.state_xxh, w->pages ? w->map : full_map, nmap, h.id);
    h.index_xxh = XXH3_64bits(j.index, h.nframes * sizeof(struct lel__frame));
    h.header_xxh = XXH3_64bits(&h, offsetof(struct header, header_xxh));
    r = write_tail(fd, &h, w, j.index);
    int c = close(fd);
    fd = -1;
    if (r < 0 || (c < 0 && (r = -errno))) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(-r));
        goto out;
    }
    if (rename(tmp, w->path) < 0) {
        r = -errno;
        snprintf(err, errlen, "rename to %s: %s", w->path, strerror(errno));
        goto out;
    }
    fill_info(info, &h, j.index, j.next_off);
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    if (r < 0)
        unlink(tmp);
    free(j.index);
    free(full_map);
    pthread_mutex_destroy(&j.lock);
    return r;
}

/* ---- opening ---- */

void lel__img_close(struct lel__img *o)
{
    if (o->fd >= 0)
        close(o->fd);
    free(o->state);
    free(o->map);
    free(o->pages);
    free(o->index);
    free(o->path);
    free(o->base);
    memset(o, 0, sizeof(*o));
    o->fd = -1;
}

/* A version 1 header, as a version 2 one of a full image. */
static int from_v1(const uint8_t *buf, struct header *h)
{
    struct header_v1 v;
    memcpy(&v, buf, sizeof(v));
    if (v.header_xxh != XXH3_64bits(&v, offsetof(struct header_v1, header_xxh)))
        return -EBADMSG;
    memset(h, 0, sizeof(*h));
    memcpy(h->magic, v.magic, 8);
    h->version = 1;
    h->chunk_size = v.chunk_size;
    h->mem_bytes = v.mem_bytes;
    h->nframes = v.nchunks;
    h->state_off = v.state_off;
    h->state_len = v.state_len;
    h->state_xxh = v.state_xxh;
    h->index_off = v.index_off;
    h->index_xxh = v.index_xxh;
    h->backend = v.backend;
    h->tick_hz = v.tick_hz;
    h->base_off = h->pages_off = h->map_off = v.state_off; /* empty sections */
    return 0;
}

/* The header's sections fit together and in the file. */
static int header_ok(const struct header *h, uint64_t size)
{
    uint64_t nmap = h->mem_bytes / CHUNK, mem_pages = h->mem_bytes / PAGE;
    int diff = h->kind == K_DIFF;
    if (h->chunk_size != CHUNK || h->mem_bytes % CHUNK || !nmap || h->state_len > MAX_STATE || h->kind > K_DIFF)
        return 0;
    if (h->version == 1)
        return h->nframes == nmap && h->state_off == sizeof(struct header_v1) && h->index_off == h->state_off + h->state_len &&
               h->index_off + h->nframes * sizeof(struct lel__frame) <= size;
    if (diff ? (!h->npages || h->npages > mem_pages || h->nframes != (h->npages + PPF - 1) / PPF || !h->depth ||
                !h->base_len || h->base_len > MAX_BASE_PATH)
             : (h->npages || h->nframes != nmap || h->depth || h->base_len))
        return 0;
    return h->base_off == sizeof(*h) && h->state_off == h->base_off + h->base_len &&
           h->pages_off == h->state_off + h->state_len && h->map_off == h->pages_off + h->npages * sizeof(uint32_t) &&
           h->index_off == h->map_off + (diff ? nmap * sizeof(uint64_t) : 0) &&
           h->index_off + h->nframes * sizeof(struct lel__frame) <= size;
}

static int read_section(int fd, void **p, uint64_t len, uint64_t off, uint64_t xxh, int check)
{
    *p = malloc(len ? len : 1);
    if (!*p)
        return -ENOMEM;
    if (read_all(fd, *p, len, off) < 0 || (check && XXH3_64bits(*p, len) != xxh))
        return -EBADMSG;
    return 0;
}

/* The base's path as recorded, made absolute against the directory of `path`. */
static char *resolve_base(const char *path, const char *rec, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t dir = rec[0] == '/' ? 0 : slash ? (size_t)(slash - path) + 1 : 0;
    char *out = malloc(dir + len + 1);
    if (out) {
        memcpy(out, path, dir);
        memcpy(out + dir, rec, len);
        out[dir + len] = 0;
    }
    return out;
}

static int sections(struct lel__img *o, const struct header *h)
{
    uint64_t nmap = h->mem_bytes / CHUNK;
    int r;
    char *base = NULL;
    if ((r = read_section(o->fd, (void **)&o->state, h->state_len, h->state_off, h->state_xxh, 1)) < 0 ||
        (r = read_section(o->fd, (void **)&o->index, h->nframes * sizeof(struct lel__frame), h->index_off, h->index_xxh, 1)) < 0 ||
        (r = read_section(o->fd, (void **)&o->pages, h->npages * sizeof(uint32_t), h->pages_off, h->pages_xxh, 1)) < 0)
        return r;
    if (h->kind == K_DIFF) {
        if ((r = read_section(o->fd, (void **)&o->map, nmap * sizeof(uint64_t), h->map_off, h->map_xxh, 1)) < 0 ||
            (r = read_section(o->fd, (void **)&base, h->base_len, h->base_off, 0, 0)) < 0) {
            free(base);
            return r;
        }
        int bad = memchr(base, 0, h->base_len) != NULL;
        o->base = bad ? NULL : resolve_base(o->path, base, h->base_len);
        free(base);
        if (bad || !o->base)
            return bad ? -EBADMSG : -ENOMEM;
        for (uint64_t i = 0; i < h->npages; i++) /* ascending, within the memory */
            if (o->pages[i] >= h->mem_bytes / PAGE || (i && o->pages[i] <= o->pages[i - 1]))
                return -EBADMSG;
    } else {
        if (!(o->map = malloc(nmap * sizeof(uint64_t))))
            return -ENOMEM;
        for (uint64_t i = 0; i < nmap; i++)
            o->map[i] = o->index[i].xxh;
    }
    o->nmap = nmap;
    return 0;
}

int lel__img_open(const char *path, struct lel__img *o, char *err, size_t errlen)
{
    struct stat st;
    struct header h;
    uint8_t buf[sizeof(struct header)] = {0};
    memset(o, 0, sizeof(*o));
    if ((o->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open snapshot %s: %s", path, strerror(e));
        return -e;
    }
    if (!(o->path = strdup(path)))
        return -ENOMEM;
    snprintf(err, errlen, "snapshot %s is corrupt or truncated", path);
    if (fstat(o->fd, &st) < 0 || (uint64_t)st.st_size < sizeof(struct header_v1))
        return -EBADMSG;
    o->size = (uint64_t)st.st_size;
    if (read_all(o->fd, buf, o->size < sizeof(buf) ? o->size : sizeof(buf), 0) < 0 || memcmp(buf, MAGIC, sizeof(MAGIC)))
        return -EBADMSG;
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    if (version == 1) {
        if (from_v1(buf, &h) < 0)
            return -EBADMSG;
    } else {
        memcpy(&h, buf, sizeof(h));
        if (version != VERSION || o->size < sizeof(h) || h.header_xxh != XXH3_64bits(&h, offsetof(struct header, header_xxh)))
            return -EBADMSG;
    }
    if (!header_ok(&h, o->size))
        return -EBADMSG;
    int r = sections(o, &h);
    if (r < 0)
        return r;
    uint8_t id[16];
    lel__img_id(h.mem_bytes, h.state_xxh, o->map, o->nmap, id);
    if (version != 1 && memcmp(id, h.id, 16))
        return -EBADMSG;
    memcpy(o->id, id, 16);
    memcpy(o->base_id, h.base_id, 16);
    o->mem_bytes = h.mem_bytes;
    o->backend = h.backend;
    o->tick_hz = h.tick_hz;
    o->diff = h.kind == K_DIFF;
    o->depth = h.depth;
    o->npages = h.npages;
    o->nframes = h.nframes;
    o->state_len = h.state_len;
    return 0;
}

void lel__chain_close(struct lel__img *links, int n)
{
    for (int i = 0; links && i < n; i++)
        lel__img_close(&links[i]);
    free(links);
}

int lel__chain_open(const char *path, struct lel__img **out, int *nout, char *err, size_t errlen)
{
    struct lel__img *l = calloc(LEL_IMG_MAX_CHAIN, sizeof(*l));
    int n = 0, r;
    *out = NULL;
    *nout = 0;
    if (!l)
        return -ENOMEM;
    if ((r = lel__img_open(path, &l[n++], err, errlen)) < 0)
        goto fail;
    while (l[n - 1].diff) {
        struct lel__img *top = &l[n - 1], *b = &l[n];
        char why[600];
        if (n == LEL_IMG_MAX_CHAIN) {
            r = -ELOOP;
            snprintf(err, errlen, "snapshot %.300s: its chain of base images is longer than %d", path, LEL_IMG_MAX_CHAIN);
            goto fail;
        }
        r = lel__img_open(top->base, b, why, sizeof(why));
        n++;
        if (r == -ENOENT) {
            snprintf(err, errlen, "snapshot %.300s cannot be restored: its base image %.300s is missing", path, top->base);
            goto fail;
        }
        if (r < 0) {
            snprintf(err, errlen, "snapshot %.300s cannot be restored: its base image: %.400s", path, why);
            goto fail;
        }
        if (memcmp(b->id, top->base_id, 16) || b->mem_bytes != top->mem_bytes || b->depth >= top->depth) {
            r = -ESTALE;
            snprintf(err, errlen,
                     "snapshot %.300s cannot be restored: its base image %.300s is not the one it was taken over (its "
                     "content differs)", path, top->base);
            goto fail;
        }
    }
    *out = l;
    *nout = n;
    return 0;
fail:
    lel__chain_close(l, n);
    return r;
}

int lel__img_apply(struct lel__img *o, uint8_t *mem, int fresh, uint64_t *page_hash, char *err, size_t errlen)
{
    struct job j;
    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.lock, NULL);
    j.mem = mem;
    j.fd = o->fd;
    j.fresh = fresh;
    j.file_size = o->size;
    j.index = o->index;
    j.pages = o->diff ? o->pages : NULL;
    j.npages = o->npages;
    j.page_hash = page_hash;
    int r = parallel(&j, decompress_worker, o->nframes);
    pthread_mutex_destroy(&j.lock);
    if (r < 0)
        snprintf(err, errlen, "snapshot %.300s: a memory frame fails its checksum or cannot be read", o->path);
    return r;
}

/* ---- raw memory files ---- */

const char *lel__img_raw(const struct lel__img *o, char *buf, size_t n)
{
    size_t len = strlen(o->path);
    struct raw_trailer t;
    struct stat st;
    if (len < 4 || strcmp(o->path + len - 4, ".img") || len >= n)
        return NULL;
    snprintf(buf, n, "%.*s.raw", (int)(len - 4), o->path);
    int fd = open(buf, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    int ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == o->mem_bytes + PAGE &&
             read_all(fd, &t, sizeof(t), o->mem_bytes) == 0 && !memcmp(t.magic, RAW_MAGIC, 8) && !memcmp(t.id, o->id, 16) &&
             t.mem_bytes == o->mem_bytes && t.xxh == XXH3_64bits(&t, offsetof(struct raw_trailer, xxh));
    close(fd);
    return ok ? buf : NULL;
}

/* The memory of a chain (links[n-1] full, the rest diffs over it) into `mem` (zero). */
static int chain_memory(struct lel__img *l, int n, uint8_t *mem, char *err, size_t errlen)
{
    int r = 0;
    for (int k = n - 1; k >= 0 && r == 0; k--)
        r = lel__img_apply(&l[k], mem, k == n - 1, NULL, err, errlen);
    return r;
}

int lel_image_unpack_memory(const char *image, const char *raw_path, char *err, size_t errlen)
{
    struct lel__img *l = NULL;
    char tmp[4200];
    int n = 0, fd = -1, r = lel__chain_open(image, &l, &n, err, errlen);
    uint8_t *map = MAP_FAILED;
    uint64_t bytes = r == 0 ? l[0].mem_bytes : 0;
    if (r < 0)
        goto out;
    /* the thread's own temporary file: two first starts from one snapshot may unpack at once */
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", raw_path, (long)gettid());
    if ((fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || ftruncate(fd, (off_t)(bytes + PAGE)) < 0 ||
        (map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* zero chunks stay holes in the sparse file */
    if ((r = chain_memory(l, n, map, err, errlen)) < 0)
        goto out;
    struct raw_trailer t;
    memset(&t, 0, sizeof(t));
    memcpy(t.magic, RAW_MAGIC, 8);
    memcpy(t.id, l[0].id, 16);
    t.mem_bytes = bytes;
    t.xxh = XXH3_64bits(&t, offsetof(struct raw_trailer, xxh));
    if ((r = write_all(fd, &t, sizeof(t), bytes)) < 0 || msync(map, bytes, MS_SYNC) < 0 || fsync(fd) < 0 ||
        rename(tmp, raw_path) < 0) {
        r = r < 0 ? r : -errno;
        snprintf(err, errlen, "cannot write %s: %s", raw_path, strerror(-r));
        goto out;
    }
    r = 0;
out:
    if (map != MAP_FAILED)
        munmap(map, bytes);
    if (fd >= 0) {
        close(fd);
        if (r < 0)
            unlink(tmp);
    }
    lel__chain_close(l, n);
    return r;
}

int lel_image_info(const char *path, struct lel_snap_info *info, char *base_path, size_t n, uint8_t base_id[16], char *err,
                   size_t errlen)
{
    struct lel__img o;
    int r = lel__img_open(path, &o, err, errlen);
    if (r == 0) {
        memset(info, 0, sizeof(*info));
        info->mem_bytes = o.mem_bytes;
        info->stored_bytes = o.size;
        info->chunks = o.nframes;
        info->diff = (int)o.diff;
        info->depth = o.depth;
        info->diff_pages = o.npages;
        memcpy(info->id, o.id, 16);
        if (base_path && n)
            snprintf(base_path, n, "%s", o.diff ? o.base : "");
        if (base_id)
            memcpy(base_id, o.base_id, 16);
    }
    lel__img_close(&o);
    return r;
}

int lel_image_flatten(const char *path, char *err, size_t errlen)
{
    struct lel__img *l = NULL;
    int n = 0, r = lel__chain_open(path, &l, &n, err, errlen);
    uint8_t *mem = MAP_FAILED;
    uint64_t *map = NULL;
    if (r < 0 || !l[0].diff)
        goto out;
    uint64_t bytes = l[0].mem_bytes;
    if ((mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) == MAP_FAILED ||
        !(map = malloc(l[0].nmap * sizeof(uint64_t)))) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((r = chain_memory(l, n, mem, err, errlen)) < 0)
        goto out;
    /* the chain must add up to what the diff says its memory is */
    for (uint64_t i = 0; i < l[0].nmap; i++)
        if ((map[i] = XXH3_64bits(mem + i * CHUNK, CHUNK)) != l[0].map[i]) {
            r = -EBADMSG;
            snprintf(err, errlen, "snapshot %.300s: its chain does not add up to its recorded memory (chunk %llu)", path,
                     (unsigned long long)i);
            goto out;
        }
    struct lel__wspec w = {path, mem, bytes, l[0].state, l[0].state_len, l[0].backend, l[0].tick_hz, NULL, 0, NULL, NULL, NULL, 0};
    struct lel_snap_info info;
    if ((r = lel__img_write(&w, &info, err, errlen)) == 0 && memcmp(info.id, l[0].id, 16)) {
        r = -EIO; /* cannot happen: the map matched */
        snprintf(err, errlen, "snapshot %.300s: the flattened image has another id", path);
    }
out:
    if (mem != MAP_FAILED)
        munmap(mem, l ? l[0].mem_bytes : 0);
    free(map);
    lel__chain_close(l, n);
    return r;
}
