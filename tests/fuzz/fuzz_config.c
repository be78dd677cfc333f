/* Fuzz target: the YAML config (lel_config_load_yaml) over the documented defaults. The loader
 * takes a path, so each input goes through one memfd named by /proc/self/fd. */
#include <lelantos/lelantos.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    lel_config_t cfg;
    if (lel_config_init(&cfg) != 0)
        abort();
    char err[256];
    (void)lel_config_load_yaml(&cfg, path, err, sizeof(err));
    lel_config_free(&cfg);
    return 0;
}
