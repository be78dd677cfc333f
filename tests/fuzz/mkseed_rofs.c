/* Writes the seed of fuzz_rofs: a rofs image made by the host's builder from a cpio archive.
 * Usage: mkseed_rofs ARCHIVE OUT */
#include "image/lel_rofs_build.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f)
        fclose(f);
    char err[256];
    struct lel_rofs_tree *t = lel_rofs_tree_new();
    if (!t || lel_rofs_add_archive_under(t, buf, n, err, sizeof(err)) < 0 ||
        lel_rofs_write(t, argv[2], NULL, NULL, err, sizeof(err)) < 0)
        return fprintf(stderr, "mkseed_rofs: %s\n", err), 1;
    lel_rofs_tree_free(t);
    return 0;
}
