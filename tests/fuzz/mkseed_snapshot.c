/* Writes the seed corpus of fuzz_snapshot: a small full image and a diff over it, each made by
 * the real writer (lel__img_write) and prefixed with the harness's mode byte (0: checksums
 * rewritten by the harness). Usage: mkseed_snapshot DIR */
#include "vmm/lel_vmm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static int copy_seed(const char *img, const char *out)
{
    FILE *in = fopen(img, "rb"), *o = fopen(out, "wb");
    int c, ok = in && o && fputc(0, o) == 0;
    while (ok && (c = fgetc(in)) != EOF)
        ok = fputc(c, o) != EOF;
    if (in)
        fclose(in);
    if (o && fclose(o) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    size_t n = 2u << 20;
    uint8_t *mem = calloc(1, n);
    for (size_t i = 0; i < 8192; i++)
        mem[i] = (uint8_t)(i * 31);
    char img[4200], seed[4200], err[256];
    struct lel_snap_info info;
    snprintf(img, sizeof(img), "%s/full.img", argv[1]);
    struct lel__wspec w = {img, mem, n, "state", 5, LEL_VMM_PVM, 100, NULL, 0, NULL, NULL, NULL, 0, NULL};
    if (lel__img_write(&w, &info, err, sizeof(err)) < 0 || (snprintf(seed, sizeof(seed), "%s/full", argv[1]), copy_seed(img, seed)))
        return fprintf(stderr, "full: %s\n", err), 1;
    uint32_t pages[2] = {1, 300};
    uint64_t map[2] = {XXH3_64bits(mem, 1u << 20), XXH3_64bits(mem + (1u << 20), 1u << 20)};
    mem[4096] ^= 0xff;
    mem[300 * 4096] = 7;
    map[0] = XXH3_64bits(mem, 1u << 20);
    map[1] = XXH3_64bits(mem + (1u << 20), 1u << 20);
    char diff[4200];
    snprintf(diff, sizeof(diff), "%s/diff.img", argv[1]);
    struct lel__wspec d = {diff, mem, n, "state2", 6, LEL_VMM_PVM, 100, pages, 2, map, "full.img", info.id, 1, NULL};
    if (lel__img_write(&d, &info, err, sizeof(err)) < 0 || (snprintf(seed, sizeof(seed), "%s/diff", argv[1]), copy_seed(diff, seed)))
        return fprintf(stderr, "diff: %s\n", err), 1;
    remove(img);
    remove(diff);
    free(mem);
    return 0;
}
