/* Fuzz target: image and archive import (src/image): an uploaded archive as POST /images gets
 * it (plain root filesystem tar, `docker save` archive, OCI layout: outer archive, manifests,
 * config, layers, whiteouts) unpacked into a staging tree on disk, as an import's thread does
 * (lel__image_unpack). Each input is written as the upload in a scratch directory (on /dev/shm
 * when there is one); afterwards nothing but the upload and the staging directory may be in it
 * (an entry that escaped the tree is a finding), and the staging directory is removed. */
#include "image/lel_image_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[256], upload[300], stage[300];

static void setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof(scratch), "%s/lel-fuzz-image.%ld", base, (long)getpid());
    (void)lel__image_rmtree(scratch);
    if (mkdir(scratch, 0700) != 0)
        abort();
    snprintf(upload, sizeof(upload), "%s/upload", scratch);
    snprintf(stage, sizeof(stage), "%s/stage", scratch);
}

static void cleanup(void)
{
    (void)lel__image_rmtree(scratch);
}

/* Only "upload" and "stage" may be in the scratch directory. */
static void check_nothing_escaped(void)
{
    DIR *d = opendir(scratch);
    if (!d)
        abort();
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "upload") &&
            strcmp(e->d_name, "stage")) {
            fprintf(stderr, "fuzz_image: %s/%s was created outside the staging directory\n", scratch, e->d_name);
            abort();
        }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch[0]) {
        setup();
        atexit(cleanup);
    }
    int fd = open(upload, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) != 0)
        abort();
    if (mkdir(stage, 0700) != 0)
        abort();
    atomic_int stop = 0;
    struct lel_unpack u;
    memset(&u, 0, sizeof(u));
    u.upload = upload;
    u.dir = stage;
    u.max_unpacked = 16u << 20;
    u.stop = &stop;
    int r = lel__image_unpack(&u);
    if (getenv("LEL_FUZZ_VERBOSE")) /* for checking what a seed reaches */
        fprintf(stderr, "fuzz_image: %s\n", r == 0 ? "imported" : u.err);
    json_decref(u.meta);
    json_decref(u.log);
    check_nothing_escaped();
    if (lel__image_rmtree(stage) != 0)
        abort();
    return 0;
}
