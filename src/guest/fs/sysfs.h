/* /sys: the few files programs read to learn the machine (see sysfs.c). */
#ifndef LEL_GUEST_FS_SYSFS_H
#define LEL_GUEST_FS_SYSFS_H

#include <stdint.h>

struct inode;
struct sbuf;

/* Makes /sys (after procfs_init: its files are written as /proc's are, procfs.c's GEN_SYS). */
void sysfs_init(void);

/* The contents of /sys file `what` (its inode's gen_pid) as of now. */
void gen_sys(struct sbuf *b, uint32_t what);

/* Whether a node is part of /sys (its own device number and statfs type). */
int in_sysfs(const struct inode *ino);

#endif
