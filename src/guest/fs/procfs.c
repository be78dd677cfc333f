/* /proc, enough for free, df, ps, top and programs that read their own status: real directory
 * entries in the file system (one directory per process, made and removed with it), whose
 * files have no contents of their own: each open gets a fresh copy written from the kernel's
 * state (an anonymous file, so reads, seeks and fstat behave as for any file). /proc/self is a
 * symlink re-pointed at each process switch. /proc/<pid>/fd is brought up to date whenever it
 * is searched or listed: a symlink per descriptor, which readlink shows as Linux does and whose
 * open reaches the descriptor's file (so /dev/stdin, /dev/stdout, /dev/stderr and /dev/fd/N,
 * links into /proc/self/fd, work). */
#include "procfs.h"

#include "../arch/arch.h"
#include "file.h"
#include "fs.h"
#include "sysfs.h"
#include "../lel_guest_abi.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../mm/vm.h"
#include "../net/netif.h"
#include "../net/socket.h"
#include "../proc/proc.h"
#include "../proc/session.h"

static struct inode *proc_root, *proc_self; /* held: they outlive an `rm -rf /proc` */

static int proc_self_pid;

void put_s(struct sbuf *b, const char *s)
{
    for (; *s && b->n < b->cap; s++)
        b->p[b->n++] = *s;
}

void put_u(struct sbuf *b, uint64_t v)
{
    char d[21];
    put_s(b, kutoa(d, v));
}

/* "Name:   <value> kB\n", as meminfo aligns it */
static void put_kb(struct sbuf *b, const char *name, uint64_t kb)
{
    uint64_t start = b->n;
    char d[21];
    const char *v = kutoa(d, kb);
    put_s(b, name);
    put_s(b, ":");
    while (b->n - start + kstrlen(v) < 24 && b->n < b->cap)
        b->p[b->n++] = ' ';
    put_s(b, v);
    put_s(b, " kB\n");
}

void put_hex(struct sbuf *b, uint64_t v, int digits)
{
    while (digits-- > 0 && b->n < b->cap)
        b->p[b->n++] = "0123456789ABCDEF"[(v >> (4 * digits)) & 0xf];
}


static char state_letter(const struct proc *p)
{
    return p->state == P_ZOMBIE ? 'Z' : p->group->stopped ? 'T' : p->state == P_BLOCKED ? 'S' : 'R';
}

/* /proc/<pid>/mountinfo, as coreutils' df and findmnt read it: the same mounts as /proc/mounts,
 * with the device numbers stat reports (the root 0:1, /proc 0:4, /sys 0:21) */
static void gen_mountinfo(struct sbuf *b)
{
    put_s(b, fs_root()->lower ? "1 0 0:1 / / rw,relatime - overlay overlay rw,lowerdir=rofs\n"
                              : "1 0 0:1 / / rw,relatime - tmpfs none rw\n");
    put_s(b, "2 1 0:4 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
             "3 1 0:21 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n"
             "4 1 0:1 /dev/shm /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw\n");
}

static void gen_pid(struct sbuf *b, int kind, const struct proc *p)
{
    if (kind == GEN_PID_MOUNTINFO) {
        gen_mountinfo(b);
    } else if (kind == GEN_PID_CMDLINE) {
        for (uint32_t i = 0; i < p->cmdline_len && b->n < b->cap; i++)
            b->p[b->n++] = p->cmdline[i];
    } else if (kind == GEN_PID_COMM) {
        put_s(b, p->comm);
        put_s(b, "\n");
    } else if (kind == GEN_PID_STATUS) {
        char st[2] = {state_letter(p), 0};
        put_s(b, "Name:\t");
        put_s(b, p->comm);
        put_s(b, "\nState:\t");
        put_s(b, st);
        put_s(b, "\nTgid:\t");
        put_u(b, (uint64_t)p->pid);
        put_s(b, "\nPid:\t");
        put_u(b, (uint64_t)p->pid);
        put_s(b, "\nPPid:\t");
        put_u(b, (uint64_t)(p->ppid ? p->ppid : 1));
        for (int k = 0; k < 2; k++) { /* real, effective, saved, file system */
            const uint32_t *id = k ? p->gid : p->uid;
            put_s(b, k ? "\nGid:" : "\nUid:");
            for (int j = 0; j < 4; j++) {
                put_s(b, "\t");
                put_u(b, id[j]);
            }
        }
        put_s(b, "\nGroups:\t");
        for (int j = 0; j < p->ngroups; j++) {
            put_u(b, p->groups[j]);
            put_s(b, " ");
        }
        put_s(b, "\nThreads:\t");
        put_u(b, (uint64_t)p->nthreads);
        put_s(b, "\n");
    } else { /* GEN_PID_STAT: the fields ps and top read; no CPU time is kept per process */
        put_u(b, (uint64_t)p->pid);
        put_s(b, " (");
        put_s(b, p->comm);
        char st[4] = {')', ' ', state_letter(p), 0};
        put_s(b, st);
        put_s(b, " ");
        put_u(b, (uint64_t)(p->ppid ? p->ppid : 1));
        put_s(b, " ");
        put_u(b, (uint64_t)p->pgid);
        put_s(b, " ");
        put_u(b, (uint64_t)p->sid);
        put_s(b, " 0 -1 4194304 "); /* tty, tpgid, flags */
        put_u(b, p->proc_minflt);
        put_s(b, " ");
        put_u(b, p->children_minflt);
        put_s(b, " 0 0 "); /* minflt, cminflt, majflt, cmajflt */
        put_u(b, proc_cpu(p) / 10000000ULL); /* utime, in 1/100 s (system time is not split off) */
        put_s(b, " 0 ");
        put_u(b, p->children_cpu_ns / 10000000ULL);
        put_s(b, " 0 ");      /* cstime */
        put_u(b, (uint64_t)(20 + p->nice)); /* priority */
        put_s(b, " ");
        put_s(b, p->nice < 0 ? "-" : "");
        put_u(b, (uint64_t)(p->nice < 0 ? -p->nice : p->nice));
        put_s(b, " ");
        put_u(b, (uint64_t)p->nthreads);
        put_s(b, " 0 0 "); /* itrealvalue, starttime */
        put_u(b, p->mm && p->mm->brk > p->mm->brk_start ? p->mm->brk - p->mm->brk_start : 0); /* zombies have none */
        put_s(b, " 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n");
    }
}

static void gen_cpuinfo(struct sbuf *b)
{
    uint32_t r[12], v[4];
    __asm__ volatile("cpuid" : "=a"(v[3]), "=b"(v[0]), "=c"(v[2]), "=d"(v[1]) : "a"(0), "c"(0));
    char vendor[13];
    kmemcpy(vendor, v, 12);
    vendor[12] = 0;
    for (uint32_t i = 0; i < 3; i++)
        __asm__ volatile("cpuid" : "=a"(r[4 * i]), "=b"(r[4 * i + 1]), "=c"(r[4 * i + 2]), "=d"(r[4 * i + 3])
                         : "a"(0x80000002 + i), "c"(0));
    char model[49];
    kmemcpy(model, r, 48);
    model[48] = 0;
    if (!model[0]) /* a hypervisor may leave the brand string empty */
        kmemcpy(model, "virtual CPU", 12);
    const struct lel_boot_info *bi = KVA(LEL_GPA_BOOT);
    put_s(b, "processor\t: 0\nvendor_id\t: ");
    put_s(b, vendor);
    put_s(b, "\nmodel name\t: ");
    put_s(b, model);
    put_s(b, "\ncpu MHz\t\t: ");
    put_u(b, bi->tsc_khz / 1000);
    put_s(b, "\ncpu cores\t: 1\nsiblings\t: 1\n\n");
}

static void gen_global(struct sbuf *b, int kind)
{
    const struct lel_boot_info *bi = KVA(LEL_GPA_BOOT);
    uint64_t up_cs = kernel_ns() / 10000000ULL, nprocs = 0, running = 0, free_kb = kpage_free_pages() * 4;
    for (int i = 0; i < MAX_PROCS; i++) {
        nprocs += ptable.procs[i].state != P_FREE;
        running += ptable.procs[i].state == P_RUNNABLE;
    }
    switch (kind) {
    case GEN_MEMINFO: /* files live in memory, as on tmpfs: counted as cached and shared */
        put_kb(b, "MemTotal", bi->mem_bytes >> 10);
        put_kb(b, "MemFree", free_kb);
        put_kb(b, "MemAvailable", free_kb);
        put_kb(b, "Buffers", 0);
        put_kb(b, "Cached", fs_data_pages() * 4);
        put_kb(b, "SwapCached", 0);
        put_kb(b, "Shmem", fs_data_pages() * 4);
        put_kb(b, "SwapTotal", 0);
        put_kb(b, "SwapFree", 0);
        break;
    case GEN_CPUINFO:
        gen_cpuinfo(b);
        break;
    case GEN_UPTIME: /* seconds up, seconds idle (not kept) */
        put_u(b, up_cs / 100);
        put_s(b, ".");
        put_s(b, up_cs % 100 < 10 ? "0" : "");
        put_u(b, up_cs % 100);
        put_s(b, " 0.00\n");
        break;
    case GEN_LOADAVG:
        put_s(b, "0.00 0.00 0.00 ");
        put_u(b, running);
        put_s(b, "/");
        put_u(b, nprocs);
        put_s(b, " ");
        put_u(b, (uint64_t)ptable.next_pid);
        put_s(b, "\n");
        break;
    case GEN_MOUNTS:
        put_s(b, fs_root()->lower ? "overlay / overlay rw,lowerdir=rofs 0 0\nproc /proc proc rw 0 0\n"
                                  : "none / tmpfs rw 0 0\nproc /proc proc rw 0 0\n");
        put_s(b, "tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0\n"); /* a directory of the same file system */
        put_s(b, "sysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\n");
        put_s(b, "devpts /dev/pts devpts rw,nosuid,noexec,gid=5,mode=620,ptmxmode=000 0 0\n"); /* fs/pty.c */
        break;
    case GEN_STAT: /* processes' time as user time (system time is not split off), the rest idle */
        for (int cpu = 0; cpu < 2; cpu++) {
            uint64_t busy = ptable.cpu_busy_ns / 10000000ULL;
            put_s(b, cpu ? "cpu0 " : "cpu  ");
            put_u(b, busy);
            put_s(b, " 0 0 ");
            put_u(b, up_cs > busy ? up_cs - busy : 0);
            put_s(b, " 0 0 0 0 0 0\n");
        }
        put_s(b, "intr 0\nctxt 0\nbtime ");
        put_u(b, bi->epoch_ms / 1000 > up_cs / 100 ? bi->epoch_ms / 1000 - up_cs / 100 : 0);
        put_s(b, "\nprocesses ");
        put_u(b, (uint64_t)ptable.next_pid);
        put_s(b, "\nprocs_running ");
        put_u(b, running);
        put_s(b, "\nprocs_blocked 0\n");
        break;
    case GEN_VERSION:
        put_s(b, "Linux version 6.1.0-lelantos (lelantos guest) #1\n");
        break;
    case GEN_NET_TCP:
    case GEN_NET_TCP6:
    case GEN_NET_UNIX:
    case GEN_NET_UDP:
    case GEN_NET_UDP6:
        gen_net(b, kind);
        break;
    case GEN_NET_DEV: gen_net_dev(b); break;
    case GEN_NET_IF_INET6: gen_net_if_inet6(b); break;
    case GEN_NET_ROUTE: gen_net_route(b); break;
    case GEN_SYS: break; /* procfs_render: gen_sys */
    }
}

struct inode *procfs_render(const struct inode *node)
{
    struct sbuf b = {kpage_alloc(), 0, PAGE_SIZE};
    struct inode *f = b.p ? fs_anon_file() : 0;
    if (!f) {
        if (b.p)
            kpage_free(b.p);
        return 0;
    }
    if (node->gen >= GEN_PID_STAT) {
        const struct proc *p = proc_by_pid((int)node->gen_pid);
        if (p)
            gen_pid(&b, node->gen, p);
    } else if (node->gen == GEN_SYS) {
        gen_sys(&b, node->gen_pid);
    } else {
        gen_global(&b, node->gen);
    }
    int64_t w = b.n ? fs_write(f, 0, b.p, b.n) : 0;
    kpage_free(b.p);
    if (w < 0) {
        fs_anon_free(f);
        return 0;
    }
    return f;
}

struct inode *proc_file_render(struct inode *f)
{
    return f->gen && (f->mode & S_IFMT) == S_IFREG ? procfs_render(f) : 0;
}

static void proc_node(struct inode *dir, const char *name, int gen, int pid)
{
    struct inode *n;
    if (fs_create(dir, name, kstrlen(name), S_IFREG | 0444, &n) == 0) {
        n->gen = (uint16_t)gen;
        n->gen_pid = (uint32_t)pid;
    }
}

static int pid_name(int pid, char *d)
{
    char t[21];
    const char *v = kutoa(t, (uint64_t)pid);
    int n = (int)kstrlen(v);
    kmemcpy(d, v, (size_t)n + 1);
    return n;
}

void procfs_init(void)
{
    static const struct {
        const char *name;
        int gen;
    } files[] = {{"meminfo", GEN_MEMINFO}, {"cpuinfo", GEN_CPUINFO}, {"uptime", GEN_UPTIME}, {"loadavg", GEN_LOADAVG},
                 {"mounts", GEN_MOUNTS},   {"stat", GEN_STAT},       {"version", GEN_VERSION}};
    if (fs_lookup(fs_root(), "/proc", 1, &proc_root) < 0 && fs_create(fs_root(), "proc", 4, S_IFDIR | 0555, &proc_root) < 0)
        return;
    fs_hold(proc_root);
    for (unsigned i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        proc_node(proc_root, files[i].name, files[i].gen, 0);
    struct inode *net; /* the sockets (netstat), the interfaces and routes (ifconfig, route) */
    if (fs_create(proc_root, "net", 3, S_IFDIR | 0555, &net) == 0) {
        proc_node(net, "tcp", GEN_NET_TCP, 0);
        proc_node(net, "tcp6", GEN_NET_TCP6, 0);
        proc_node(net, "unix", GEN_NET_UNIX, 0);
        proc_node(net, "udp", GEN_NET_UDP, 0);
        proc_node(net, "udp6", GEN_NET_UDP6, 0);
        proc_node(net, "dev", GEN_NET_DEV, 0);
        proc_node(net, "if_inet6", GEN_NET_IF_INET6, 0);
        proc_node(net, "route", GEN_NET_ROUTE, 0);
    }
    if (fs_create(proc_root, "self", 4, S_IFLNK | 0777, &proc_self) == 0 && (proc_self->target = kstrndup("1", 1)))
        fs_hold(proc_self);
    else
        proc_self = 0;
}

void procfs_self(int pid)
{
    char d[12];
    int n = pid_name(pid, d);
    char *t = proc_self && pid != proc_self_pid ? kstrndup(d, (uint64_t)n) : 0;
    if (!t)
        return;
    kfree(proc_self->target, kstrlen(proc_self->target) + 1);
    proc_self->target = t;
    proc_self->size = (uint64_t)n;
    proc_self_pid = pid;
}

int procfs_dir_pid(const struct inode *ino)
{
    return ino && !ino->gen && (ino->mode & S_IFMT) == S_IFDIR && ino->parent == proc_root ? (int)ino->gen_pid : 0;
}

void procfs_add(const struct proc *p)
{
    char d[12];
    struct inode *dir, *fd;
    int n = pid_name(p->pid, d);
    if (!proc_root || fs_create(proc_root, d, (uint64_t)n, S_IFDIR | 0555, &dir) < 0)
        return;
    dir->gen_pid = (uint32_t)p->pid; /* gen 0: an ordinary directory, that knows its process */
    proc_node(dir, "stat", GEN_PID_STAT, p->pid);
    proc_node(dir, "status", GEN_PID_STATUS, p->pid);
    proc_node(dir, "cmdline", GEN_PID_CMDLINE, p->pid);
    proc_node(dir, "comm", GEN_PID_COMM, p->pid);
    proc_node(dir, "mountinfo", GEN_PID_MOUNTINFO, p->pid);
    if (fs_create(dir, "fd", 2, S_IFDIR | 0500, &fd) == 0) {
        fd->gen = GEN_PID_FD;
        fd->gen_pid = (uint32_t)p->pid;
    }
}

/* What readlink shows for a descriptor, as Linux words it: a path, or the kind of object with
 * a number that is the same for both ends of one pipe or socket. */
static void fd_describe(const struct file *f, char *t, uint64_t cap)
{
    const char *kind = f->type == F_EVENT ? "anon_inode:[eventfd]" : f->type == F_EPOLL ? "anon_inode:[eventpoll]"
                     : f->type == F_SIGNALFD ? "anon_inode:[signalfd]" : f->type == F_PIDFD ? "anon_inode:[pidfd]"
                     : f->type == F_TIMERFD ? "anon_inode:[timerfd]"
                     : f->type == F_INOTIFY ? "anon_inode:inotify" : 0;
    int dir = f->type == F_INODE && (f->ino->mode & S_IFMT) == S_IFDIR; /* directories know their path */
    if ((f->type == F_PTM || f->type == F_PTS) && fs_find_path(f->ino, proc_root, t, cap) >= 0)
        return; /* /dev/ptmx, /dev/pts/N: what ttyname() looks for */
    if (f->type == F_INODE && (dir ? fs_path_of(f->ino, t, cap) : fs_find_path(f->ino, proc_root, t, cap)) >= 0)
        return;
    if (f->type == F_INODE && (f->ino->mode & S_IFMT) == S_IFREG && f->ino->target) { /* a memfd */
        uint64_t n = kstrlen(f->ino->target);
        if (n + 12 <= cap) {
            t[0] = '/';
            kmemcpy(t + 1, f->ino->target, n);
            kmemcpy(t + 1 + n, " (deleted)", 11);
            return;
        }
    }
    if (f->type == F_INODE || f->type == F_STDIN)
        kind = f->type == F_STDIN ? "/dev/null" : "anon_inode:[file]"; /* a command's stdin, a removed file */
    if (kind) {
        kmemcpy(t, kind, kstrlen(kind) + 1);
        return;
    }
    char num[21];
    const char *v = kutoa(num, file_ino(f)), *pre = f->type == F_SOCK ? "socket:[" : "pipe:[";
    uint64_t at = kstrlen(pre), vl = kstrlen(v);
    kmemcpy(t, pre, at);
    kmemcpy(t + at, v, vl);
    kmemcpy(t + at + vl, "]", 2);
}

static void fd_link_set(struct inode *l, const struct file *f)
{
    char t[FS_PATH_MAX];
    int acc = f->type == F_PIPE_R || f->type == F_STDIN ? 0
              : f->type == F_PIPE_W || f->type == F_OUT  ? 1
                                                         : f->flags & O_ACCMODE;
    l->mode = S_IFLNK | (acc == 0 ? 0500 : acc == 1 ? 0300 : 0700); /* lr-x, l-wx, lrwx: how it is open */
    fd_describe(f, t, sizeof(t));
    uint64_t n = kstrlen(t);
    if (l->target && !kstrcmp(l->target, t))
        return;
    char *copy = kstrndup(t, n);
    if (!copy)
        return; /* the old words stay */
    if (l->target)
        kfree(l->target, kstrlen(l->target) + 1);
    l->target = copy;
    l->size = n;
}

void fs_gen_dir_sync(struct inode *dir)
{
    const struct proc *p = proc_by_pid((int)dir->gen_pid);
    const struct files *fl = p && p->state != P_ZOMBIE ? p->files : 0;
    uint64_t have[NFD_MAX / 64]; /* the descriptors that have their link */
    kmemset(have, 0, sizeof(have));
    for (struct dent *d = dir->children, *next; d; d = next) {
        next = d->next;
        uint32_t fd = d->inode->rdev;
        struct file *f = d->inode->gen == GEN_FD_LINK && fl ? files_fd(fl, fd) : 0;
        if (f && !(have[fd / 64] & (1ULL << (fd % 64)))) {
            have[fd / 64] |= 1ULL << (fd % 64);
            fd_link_set(d->inode, f);
        } else {
            fs_unlink(dir, d->name, kstrlen(d->name), (d->inode->mode & S_IFMT) == S_IFDIR);
        }
    }
    for (int fd = fl ? files_next(fl, 0) : -1; fd >= 0; fd = files_next(fl, fd + 1)) {
        char name[12];
        struct inode *l;
        if ((have[fd / 64] & (1ULL << (fd % 64))) || fs_create(dir, name, (uint64_t)pid_name(fd, name), S_IFLNK | 0700, &l) < 0)
            continue;
        l->gen = GEN_FD_LINK;
        l->gen_pid = dir->gen_pid;
        l->rdev = (uint32_t)fd;
        fd_link_set(l, files_fd(fl, (uint64_t)fd));
    }
}

struct file *fd_link_file(const struct inode *l)
{
    const struct proc *p = l->gen == GEN_FD_LINK ? proc_by_pid((int)l->gen_pid) : 0;
    const struct files *fl = p && p->state != P_ZOMBIE ? p->files : 0;
    return fl ? files_fd(fl, l->rdev) : 0;
}

void procfs_exe(const struct proc *p)
{
    char d[12];
    struct inode *dir, *l;
    uint64_t n = kstrlen(p->exe_path);
    char *t = n ? kstrndup(p->exe_path, n) : 0; /* first: a symlink is never left without a target */
    pid_name(p->pid, d);
    if (!t || !proc_root || fs_lookup(proc_root, d, 0, &dir) < 0 || (dir->mode & S_IFMT) != S_IFDIR ||
        (fs_lookup(dir, "exe", 0, &l) < 0 && fs_create(dir, "exe", 3, S_IFLNK | 0777, &l) < 0) ||
        (l->mode & S_IFMT) != S_IFLNK) {
        if (t)
            kfree(t, n + 1);
        return;
    }
    if (l->target)
        kfree(l->target, kstrlen(l->target) + 1);
    l->target = t;
    l->size = n;
}

void procfs_remove(const struct proc *p)
{
    static const char *const names[] = {"stat", "status", "cmdline", "comm", "mountinfo", "exe"};
    char d[12];
    struct inode *dir, *fd;
    int n = pid_name(p->pid, d);
    if (!proc_root || fs_lookup(proc_root, d, 0, &dir) < 0 || (dir->mode & S_IFMT) != S_IFDIR)
        return;
    if (fs_lookup(dir, "fd", 0, &fd) == 0 && fd->gen == GEN_PID_FD) {
        fd->gen_pid = 0; /* nobody's: the sync empties it */
        fs_gen_dir_sync(fd);
        fs_unlink(dir, "fd", 2, 1);
    }
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        fs_unlink(dir, names[i], kstrlen(names[i]), 0);
    fs_unlink(proc_root, d, (uint64_t)n, 1);
}

int in_procfs(const struct inode *ino)
{
    if ((ino->gen && ino->gen != GEN_SYS) || (proc_self && ino == proc_self))
        return 1;
    for (const struct inode *i = ino; proc_root && i && (i->mode & S_IFMT) == S_IFDIR; i = i->parent == i ? 0 : i->parent)
        if (i == proc_root)
            return 1;
    return 0;
}
