/* /sys, as far as programs read it to learn the machine: the CPUs (one vCPU: glibc's
 * get_nprocs and sysconf, python's os.cpu_count, lscpu and libuv read
 * /sys/devices/system/cpu), its NUMA node, transparent huge pages (off: allocators ask), and the
 * network interfaces (/sys/class/net, links into /sys/devices/virtual/net, from net/netif.c).
 * Made once at boot the way /proc is: real directories whose files are written afresh at each
 * open (procfs.c's GEN_SYS), so nothing a process writes there sticks. No cgroup file system:
 * /sys/fs/cgroup is absent, as on a host without one, which runtimes read as "no limits". */
#include "sysfs.h"

#include "fs.h"
#include "procfs.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../net/netif.h"

#define SYS_NET 0x10000u /* gen_pid: SYS_NET | ifindex << 8 | attribute; else an index into files[] */

static struct inode *sys_root; /* held */

/* The fixed files: one CPU (cpu0) in one package and one node. */
static const struct {
    const char *path, *text;
} files[] = {
    {"devices/system/cpu/online", "0\n"},
    {"devices/system/cpu/possible", "0\n"},
    {"devices/system/cpu/present", "0\n"},
    {"devices/system/cpu/offline", "\n"},
    {"devices/system/cpu/isolated", "\n"},
    {"devices/system/cpu/kernel_max", "8191\n"},
    {"devices/system/cpu/cpu0/topology/core_id", "0\n"},
    {"devices/system/cpu/cpu0/topology/physical_package_id", "0\n"},
    {"devices/system/cpu/cpu0/topology/die_id", "0\n"},
    {"devices/system/cpu/cpu0/topology/core_cpus", "1\n"},
    {"devices/system/cpu/cpu0/topology/core_cpus_list", "0\n"},
    {"devices/system/cpu/cpu0/topology/thread_siblings", "1\n"},
    {"devices/system/cpu/cpu0/topology/thread_siblings_list", "0\n"},
    {"devices/system/cpu/cpu0/topology/core_siblings", "1\n"},
    {"devices/system/cpu/cpu0/topology/core_siblings_list", "0\n"},
    {"devices/system/cpu/cpu0/topology/package_cpus", "1\n"},
    {"devices/system/cpu/cpu0/topology/package_cpus_list", "0\n"},
    {"devices/system/cpu/cpu0/topology/die_cpus_list", "0\n"},
    {"devices/system/node/online", "0\n"},
    {"devices/system/node/possible", "0\n"},
    {"devices/system/node/has_cpu", "0\n"},
    {"devices/system/node/node0/cpumap", "1\n"},
    {"devices/system/node/node0/cpulist", "0\n"},
    {"kernel/mm/transparent_hugepage/enabled", "always madvise [never]\n"},
    {"kernel/mm/transparent_hugepage/defrag", "always defer defer+madvise madvise [never]\n"},
    {"kernel/mm/transparent_hugepage/hpage_pmd_size", "2097152\n"},
};

/* An interface's files (attribute n is names[n]). */
static const char *const net_names[] = {"address", "broadcast", "mtu", "operstate", "ifindex", "iflink", "type",
                                        "flags", "carrier", "tx_queue_len", "addr_len", "statistics/rx_bytes",
                                        "statistics/tx_bytes", "statistics/rx_packets", "statistics/tx_packets",
                                        "statistics/rx_errors", "statistics/tx_errors", "statistics/rx_dropped",
                                        "statistics/tx_dropped"};

/* The directory at `path` below /sys (its last component when `file`: the one before), made as
 * needed; NULL when out of memory. `*name` gets the last component. */
static struct inode *sys_dir(const char *path, int file, const char **name)
{
    struct inode *d = sys_root;
    const char *p = path;
    for (;;) {
        const char *e = p;
        while (*e && *e != '/')
            e++;
        if (!*e && file) {
            *name = p;
            return d;
        }
        struct inode *c = fs_child(d, p, (uint64_t)(e - p));
        if (!c && fs_create(d, p, (uint64_t)(e - p), S_IFDIR | 0755, &c) < 0)
            return 0;
        d = c;
        if (!*e)
            return d;
        p = e + 1;
    }
}

static void sys_file(const char *path, uint32_t what)
{
    const char *name;
    struct inode *d = sys_dir(path, 1, &name), *f;
    if (d && fs_create(d, name, kstrlen(name), S_IFREG | 0444, &f) == 0) {
        f->gen = GEN_SYS;
        f->gen_pid = what;
    }
}

static void sys_link(const char *path, const char *target)
{
    const char *name;
    struct inode *d = sys_dir(path, 1, &name), *l;
    if (d && fs_create(d, name, kstrlen(name), S_IFLNK | 0777, &l) == 0 && (l->target = kstrndup(target, kstrlen(target))))
        l->size = kstrlen(target);
}

/* "a/b/c" into buf */
static const char *join(char *buf, uint64_t cap, const char *a, const char *b, const char *c)
{
    struct sbuf s = {buf, 0, cap - 1};
    put_s(&s, a);
    put_s(&s, b);
    put_s(&s, c);
    buf[s.n] = 0;
    return buf;
}

void sysfs_init(void)
{
    char p[128], t[64];
    if (fs_lookup(fs_root(), "/sys", 1, &sys_root) < 0 && fs_create(fs_root(), "sys", 3, S_IFDIR | 0555, &sys_root) < 0)
        return;
    fs_hold(sys_root);
    for (uint32_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        sys_file(files[i].path, i);
    for (int i = 0; netif_at(i); i++) {
        const struct netif *n = netif_at(i);
        join(t, sizeof(t), "devices/virtual/net/", n->name, "/");
        for (uint32_t a = 0; a < sizeof(net_names) / sizeof(net_names[0]); a++)
            sys_file(join(p, sizeof(p), t, net_names[a], ""), SYS_NET | (uint32_t)n->index << 8 | a);
        sys_link(join(p, sizeof(p), "class/net/", n->name, ""), join(t, sizeof(t), "../../devices/virtual/net/", n->name, ""));
    }
    sys_dir("fs", 0, 0);
    sys_dir("kernel/security", 0, 0);
}

static void put_mac(struct sbuf *b, const uint8_t *m)
{
    for (int i = 0; i < 6; i++) {
        char d[4] = {"0123456789abcdef"[m[i] >> 4], "0123456789abcdef"[m[i] & 0xf], i < 5 ? ':' : '\n', 0};
        put_s(b, d);
    }
}

static void gen_net_attr(struct sbuf *b, const struct netif *n, uint32_t a)
{
    const struct netif_stats *st = netif_stats(n->index);
    const uint64_t counts[4] = {st->rx_bytes, st->tx_bytes, st->rx_packets, st->tx_packets};
    switch (a) {
    case 0: put_mac(b, n->mac); return;
    case 1: put_mac(b, n->brd_mac); return;
    case 2: put_u(b, n->mtu); break;
    case 3: put_s(b, n->oper == 6 ? "up" : "unknown"); break;
    case 4: case 5: put_u(b, (uint64_t)n->index); break;
    case 6: put_u(b, n->type); break;
    case 7: /* the device's own flags: without IFF_RUNNING, which is the link's state */
        put_s(b, "0x");
        put_hex(b, n->flags & 0xffbf, (n->flags & 0xffbf) >= 0x1000 ? 4 : (n->flags & 0xffbf) >= 0x100 ? 3 : (n->flags & 0xffbf) >= 0x10 ? 2 : 1);
        break;
    case 8: put_s(b, "1"); break;
    case 9: put_u(b, 1000); break;
    case 10: put_u(b, 6); break;
    default: put_u(b, a - 11 < 4 ? counts[a - 11] : 0); break; /* errors and drops: none */
    }
    put_s(b, "\n");
}

void gen_sys(struct sbuf *b, uint32_t what)
{
    if (what & SYS_NET) {
        const struct netif *n = netif_by_index((int)((what >> 8) & 0xff));
        if (n)
            gen_net_attr(b, n, what & 0xff);
    } else if (what < sizeof(files) / sizeof(files[0])) {
        put_s(b, files[what].text);
    }
}

int in_sysfs(const struct inode *ino)
{
    if (ino->gen == GEN_SYS)
        return 1;
    for (const struct inode *i = ino; sys_root && i && (i->mode & S_IFMT) == S_IFDIR; i = i->parent == i ? 0 : i->parent)
        if (i == sys_root)
            return 1;
    return 0;
}
