/* /dev: the character devices (null, zero, random, urandom; the terminals are pty.c's) and the
 * links into /proc/self/fd. */
#include "dev.h"

#include "fs.h"
#include "pty.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../lib/rng.h"

void make_devices(void)
{
    static const struct {
        const char *name;
        uint32_t rdev;
    } devs[] = {{"null", 0x103}, {"zero", 0x105}, {"random", 0x108}, {"urandom", 0x109}};
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"}};
    struct inode *dev, *node;
    if (fs_lookup(fs_root(), "/dev", 1, &dev) < 0 && fs_create(fs_root(), "dev", 3, S_IFDIR | 0755, &dev) < 0)
        return;
    fs_create(dev, "shm", 3, S_IFDIR | 01777, &node); /* POSIX shared memory and semaphores (shm_open, sem_open) */
    pty_make_nodes(dev);
    for (unsigned i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if (fs_create(dev, devs[i].name, kstrlen(devs[i].name), S_IFCHR | 0666, &node) == 0)
            node->rdev = devs[i].rdev;
    for (unsigned i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        uint64_t n = kstrlen(links[i][0]), tl = kstrlen(links[i][1]);
        if (fs_create(dev, links[i][0], n, S_IFLNK | 0777, &node) < 0)
            continue;
        node->size = tl;
        if (!(node->target = kstrndup(links[i][1], tl)))
            fs_unlink(dev, links[i][0], n, 0); /* never a link without a target */
    }
}

#define DEV_NULL 0x103
#define DEV_ZERO 0x105

/* Random bytes into user memory (getrandom, /dev/random and /dev/urandom): at most 32 MiB at a
 * time, as Linux gives. */
long dev_random_read(uint64_t buf, uint64_t n)
{
    uint8_t tmp[256];
    if (n > (32ULL << 20) - 1)
        n = (32ULL << 20) - 1;
    for (uint64_t done = 0; done < n;) {
        uint64_t c = n - done < sizeof(tmp) ? n - done : sizeof(tmp);
        krng_bytes(tmp, c);
        if (copy_user(buf + done, tmp, c, 1) < 0)
            return done ? (long)done : -EFAULT;
        done += c;
    }
    kmemset(tmp, 0, sizeof(tmp));
    return (long)n;
}

long dev_read(struct inode *ino, uint64_t buf, uint64_t n)
{
    static const uint8_t zeros[512];
    if (ino->rdev == DEV_NULL)
        return 0;
    if (ino->rdev != DEV_ZERO)
        return dev_random_read(buf, n);
    if (n > (32ULL << 20))
        n = 32ULL << 20; /* a read of zeros is all that was asked (dd bs=1M), within reason */
    for (uint64_t done = 0; done < n;) {
        uint64_t c = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
        if (copy_user(buf + done, (void *)zeros, c, 1) < 0)
            return done ? (long)done : -EFAULT;
        done += c;
    }
    return (long)n;
}
