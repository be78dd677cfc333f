/* Fuzz target: the guest's reader of the read-only root image (src/guest/fs/rofs.c, built for
 * the host): mount, then every directory walked, each entry looked up by name, every file's data
 * and every symlink's target read, as the overlay does. The input is padded to whole pages in a
 * page-aligned buffer (the guest sees the image so) and, when it has the magic, its recorded size
 * is set to that, so mutations reach past the size check. */
#include "guest/fs/rofs.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_FMT 0170000u
#define S_DIR 0040000u
#define S_REG 0100000u
#define S_LNK 0120000u

static volatile uint8_t sink;

static void walk(const struct lel_rofs_inode *dir, int depth, uint64_t *budget)
{
    for (uint64_t i = 0; depth < 64 && *budget; i++) {
        (*budget)--; /* (counted here: a subdirectory may have spent it all) */
        const char *name;
        uint64_t len;
        const struct lel_rofs_inode *ino;
        int r = rofs_entry(dir, i, &name, &len, &ino);
        if (r == 1)
            return;
        if (r < 0)
            continue;
        (void)rofs_find(dir, name, len); /* (a table out of order finds nothing: that is allowed) */
        (void)rofs_index(ino);
        if ((ino->mode & S_FMT) == S_DIR && !(len == 1 && name[0] == '.') && !(len == 2 && !memcmp(name, "..", 2)))
            walk(ino, depth + 1, budget);
        else if ((ino->mode & S_FMT) == S_REG) {
            const uint8_t *d = rofs_data(ino);
            if (d && ino->size)
                sink ^= d[0] ^ d[ino->size - 1];
        } else if ((ino->mode & S_FMT) == S_LNK) {
            const char *t = rofs_target(ino);
            if (t)
                sink ^= (uint8_t)strlen(t);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t bytes = (size + LEL_ROFS_PAGE - 1) / LEL_ROFS_PAGE * LEL_ROFS_PAGE;
    if (!bytes)
        bytes = LEL_ROFS_PAGE;
    uint8_t *img = aligned_alloc(LEL_ROFS_PAGE, bytes);
    if (!img)
        return 0;
    memset(img, 0, bytes);
    memcpy(img, data, size);
    if (size >= sizeof(struct lel_rofs_super) && !memcmp(img, LEL_ROFS_MAGIC, 8)) {
        uint64_t fb = bytes;
        memcpy(img + offsetof(struct lel_rofs_super, file_bytes), &fb, sizeof(fb));
    }
    if (rofs_mount(img, bytes) == 0) {
        uint64_t budget = 20000; /* entries visited: a cyclic tree ends */
        walk(rofs_root(), 0, &budget);
        (void)rofs_contains(img + bytes - 1);
    }
    rofs_mount(NULL, 0); /* nothing keeps pointing at the freed buffer */
    free(img);
    return 0;
}
