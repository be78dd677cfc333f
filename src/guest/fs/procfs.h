/* /proc: its nodes, and the contents its files get at each open (see procfs.c). */
#ifndef LEL_GUEST_FS_PROCFS_H
#define LEL_GUEST_FS_PROCFS_H

#include <stdint.h>

struct file;
struct inode;
struct proc;

enum { GEN_NONE, GEN_MEMINFO, GEN_CPUINFO, GEN_UPTIME, GEN_LOADAVG, GEN_MOUNTS, GEN_STAT, GEN_VERSION,
       GEN_NET_TCP, GEN_NET_TCP6, GEN_NET_UNIX, GEN_NET_UDP, GEN_NET_UDP6, /* net/socket.c writes them */
       GEN_NET_DEV, GEN_NET_IF_INET6, GEN_NET_ROUTE,                      /* ... and net/netif.c these */
       GEN_SYS,                                                           /* a /sys file (fs/sysfs.c) */
       GEN_PID_STAT, GEN_PID_STATUS, GEN_PID_CMDLINE, GEN_PID_COMM, GEN_PID_MOUNTINFO,
       GEN_PID_FD, GEN_FD_LINK }; /* /proc/<pid>/fd and its links: no contents to write */

struct sbuf {
    char *p;
    uint64_t n, cap;
};

void put_s(struct sbuf *b, const char *s);

void put_u(struct sbuf *b, uint64_t v);

/* `v` as `digits` upper-case hex digits, as /proc/net prints addresses */
void put_hex(struct sbuf *b, uint64_t v, int digits);

/* The contents of a /proc file as of now, as a new anonymous file (held once: the caller
 * releases it); NULL when out of memory. */
struct inode *procfs_render(const struct inode *node);

/** For a /proc file, its contents as of now in a new anonymous file (release it with
 * fs_anon_free); NULL for any other file, or when out of memory. */
struct inode *proc_file_render(struct inode *f);

void procfs_init(void);

/* /proc/self names the process about to run (only processes resolve paths). */
void procfs_self(int pid);

void procfs_add(const struct proc *p);

/* The process a /proc/<pid> directory is about (Linux takes its descriptor as a pidfd), or 0. */
int procfs_dir_pid(const struct inode *ino);

void fs_gen_dir_sync(struct inode *dir);

/* The file a /proc/<pid>/fd link stands for; NULL for any other node, or once it closed. */
struct file *fd_link_file(const struct inode *l);

/* /proc/<pid>/exe, a symlink to the program (made or re-pointed at exec and fork) */
void procfs_exe(const struct proc *p);

void procfs_remove(const struct proc *p);

/* Whether a node is part of /proc (its own device number: df and find -xdev tell the two file
 * systems apart by it). Only directories know their parent. */
int in_procfs(const struct inode *ino);

#endif
