/* The data dir's FORMAT file (see lel_datadir.h). Its first line is the contract,
 * "lelantos-data-format N"; the second says which daemon wrote it, for the operator. */
#include "lel_datadir.h"

#include <lelantos/lelantos.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "lelantos-data-format "

static void path_of(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

int lel__datadir_format(const char *dir)
{
    char path[4096], line[128] = "";
    path_of(dir, LEL_DATA_FORMAT_FILE, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    int ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    char *end;
    long v = ok && !strncmp(line, MAGIC, strlen(MAGIC)) ? strtol(line + strlen(MAGIC), &end, 10) : 0;
    if (v <= 0 || v > 1000000 || (*end != '\n' && *end != 0))
        return -EINVAL;
    return (int)v;
}

/* FORMAT written whole or not at all: a temporary, fsynced, renamed over, the dir fsynced. */
static int write_format(const char *dir, char *err, size_t errlen)
{
    char path[4096], tmp[4200], text[128];
    path_of(dir, LEL_DATA_FORMAT_FILE, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int n = snprintf(text, sizeof(text), MAGIC "%d\nwritten by lelantosd %s\n", LEL_DATA_FORMAT, LEL_VERSION);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r = 0;
    if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) < 0)
        r = -errno ? -errno : -EIO;
    if (fd >= 0 && close(fd) < 0 && !r)
        r = -errno;
    if (!r && rename(tmp, path) < 0)
        r = -errno;
    if (r) {
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
        return r;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int lel__datadir_check(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int v = lel__datadir_format(dir);
    path_of(dir, LEL_DATA_FORMAT_FILE, path, sizeof(path));
    if (v == -EINVAL) {
        snprintf(err, errlen,
                 "%s does not say a format this daemon knows (its first line should be '" MAGIC
                 "N'): is %s a lelantos data dir? Nothing was changed",
                 path, dir);
        return -EINVAL;
    }
    if (v < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-v));
        return v;
    }
    if (v > LEL_DATA_FORMAT) {
        snprintf(err, errlen,
                 "data dir %s has format %d, written by a newer lelantosd; this lelantosd (%s) reads format %d. "
                 "Run the newer lelantosd, or restore the backup taken before the upgrade (README: Upgrades). "
                 "Nothing was changed",
                 dir, v, LEL_VERSION, LEL_DATA_FORMAT);
        return -EPROTONOSUPPORT;
    }
    if (v == LEL_DATA_FORMAT)
        return 0;
    /* v == 0: a new dir, or one from before FORMAT existed (format 1, this one). The migrations
     * from an older format to this one go here, each before the new FORMAT is written. */
    return write_format(dir, err, errlen);
}
