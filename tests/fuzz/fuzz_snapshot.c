/* Fuzz target: the snapshot/pause image loader (src/vmm/lel_vmimage.c) as lel_vm_restore and
 * lel_image_unpack_memory use it: open and check an image, then put its memory in place.
 *
 * Every section carries an XXH3 checksum, which random bytes never match; so that the checks
 * behind them are reached, the harness rewrites the checksums of the header it is given (the
 * layout below is the format's version 2 header, read from the file as written). With the first
 * input byte odd the input is loaded as it came, checksums and all. */
#include "vmm/lel_vmm_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct hdr { /* the version 2 header, as the file stores it */
    char magic[8];
    uint32_t version, chunk_size;
    uint64_t mem_bytes, nframes, state_off, state_len, state_xxh, index_off, index_xxh;
    uint32_t backend, tick_hz, kind, depth;
    uint64_t npages, pages_off, pages_xxh, map_off, map_xxh, base_off, base_len;
    uint8_t id[16], base_id[16];
    uint64_t header_xxh;
};

/* XXH3 of [off, off+len) of the file when it lies inside, else 0 (the loader refuses it anyway). */
static uint64_t section_xxh(const uint8_t *f, size_t n, uint64_t off, uint64_t len)
{
    return off <= n && len <= n - off ? XXH3_64bits(f + off, len) : 0;
}

static void fix_checksums(uint8_t *f, size_t n)
{
    struct hdr h;
    if (n < sizeof(h) || memcmp(f, "LELSNAP", 8))
        return;
    memcpy(&h, f, sizeof(h));
    if (h.version != 2)
        return;
    h.state_xxh = section_xxh(f, n, h.state_off, h.state_len);
    h.index_xxh = section_xxh(f, n, h.index_off, h.nframes * sizeof(struct lel__frame));
    h.pages_xxh = section_xxh(f, n, h.pages_off, h.npages * sizeof(uint32_t));
    uint64_t nmap = h.mem_bytes / LEL_IMG_CHUNK;
    h.map_xxh = section_xxh(f, n, h.map_off, nmap * sizeof(uint64_t));
    /* the content id over the map: a diff's own, a full image's index hashes */
    uint64_t *map = nmap && nmap < (1u << 16) ? calloc(nmap, sizeof(*map)) : NULL;
    if (map) {
        for (uint64_t i = 0; i < nmap; i++) {
            uint64_t off = h.kind ? h.map_off + i * 8 : h.index_off + i * sizeof(struct lel__frame) + 16;
            if (off <= n && n - off >= 8)
                memcpy(&map[i], f + off, 8);
        }
        lel__img_id(h.mem_bytes, h.state_xxh, map, nmap, h.id);
        free(map);
    }
    h.header_xxh = XXH3_64bits(&h, offsetof(struct hdr, header_xxh));
    memcpy(f, &h, sizeof(h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (size < 1)
        return 0;
    if (fd < 0) {
        if ((fd = memfd_create("fuzz_snapshot", 0)) < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    uint8_t *f = malloc(size);
    if (!f)
        return 0;
    memcpy(f, data + 1, size - 1);
    if (!(data[0] & 1))
        fix_checksums(f, size - 1);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, f, size - 1, 0) != (ssize_t)(size - 1))
        abort();
    free(f);
    struct lel__img o;
    char err[512];
    if (lel__img_open(path, &o, err, sizeof(err)) == 0 && o.mem_bytes <= (64u << 20)) {
        /* what a restore does next: the memory put in place (a diff over zero memory) */
        uint8_t *mem = calloc(1, o.mem_bytes);
        uint64_t *page_hash = o.diff ? calloc(o.npages ? o.npages : 1, sizeof(uint64_t)) : NULL;
        if (mem)
            (void)lel__img_apply(&o, mem, !o.diff, page_hash, err, sizeof(err));
        free(page_hash);
        free(mem);
    }
    lel__img_close(&o);
    return 0;
}
