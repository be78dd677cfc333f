/* Identity: user and group ids (real, effective, saved and file-system; everyone starts as root
 * and root may become anyone, as on Linux; new files are owned by the file-system ids, though no
 * file access is checked against them), supplementary groups, capabilities (root's: all of
 * them), and prctl's per-process settings. */
#include "syscall.h"

#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define NO_ID 0xffffffffu /* -1: leave it as it is */

/* setresuid and setresgid (`ids`: the process's uid or gid ids): root sets any; anyone else
 * only to ids it already has (EPERM), as on Linux. The file-system id follows the effective one. */
static long set_ids(uint32_t ids[4], uint32_t r, uint32_t e, uint32_t s)
{
    const uint32_t want[3] = {r, e, s};
    int root = proc_cur()->group->uid[1] == 0;
    for (int i = 0; i < 3 && !root; i++)
        if (want[i] != NO_ID && want[i] != ids[0] && want[i] != ids[1] && want[i] != ids[2])
            return -EPERM;
    for (int i = 0; i < 3; i++)
        if (want[i] != NO_ID)
            ids[i] = want[i];
    ids[3] = ids[1];
    return 0;
}

/* setfsuid and setfsgid: root (or an id the process has as real, effective, saved or file-system
 * one) sets it; either way the old one is returned, as Linux's callers expect (no error). */
static long set_fs(uint32_t ids[4], uint32_t id)
{
    uint32_t old = ids[3];
    if (id != NO_ID && (proc_cur()->group->uid[1] == 0 || id == ids[0] || id == ids[1] || id == ids[2] || id == ids[3]))
        ids[3] = id;
    return old;
}

/* setreuid and setregid: the saved id follows the effective one when the real one is set or
 * the effective one becomes other than the real one. */
static long set_re(uint32_t ids[4], uint32_t r, uint32_t e)
{
    uint32_t old_real = ids[0], s = NO_ID;
    if (r != NO_ID || (e != NO_ID && e != old_real))
        s = e != NO_ID ? e : ids[1];
    return set_ids(ids, r, e, s);
}

/* setuid and setgid: root sets all three, anyone else only the effective one (to its real or
 * saved id). */
static long set_one(uint32_t ids[4], uint32_t id)
{
    return proc_cur()->group->uid[1] == 0 ? set_ids(ids, id, id, id) : set_ids(ids, NO_ID, id, NO_ID);
}

static long get_res(const uint32_t ids[4], uint64_t ur, uint64_t ue, uint64_t us)
{
    const uint64_t at[3] = {ur, ue, us};
    for (int i = 0; i < 3; i++)
        if (copy_user(at[i], (void *)&ids[i], 4, 1) < 0)
            return -EFAULT;
    return 0;
}

/* capget and capset: header {version, pid}, then (versions 2 and 3) two {effective, permitted,
 * inheritable} words. Root has every capability (up to CAP_CHECKPOINT_RESTORE, 40), anyone
 * else none; capset is taken and changes nothing. An unknown version is told the one there is. */
static long sys_capget(uint64_t uhdr, uint64_t udata, int set)
{
    uint32_t hdr[2];
    if (copy_user(uhdr, hdr, sizeof(hdr), 0) < 0)
        return -EFAULT;
    int words = hdr[0] == 0x19980330 ? 1 : hdr[0] == 0x20071026 || hdr[0] == 0x20080522 ? 2 : 0;
    if (!words) {
        hdr[0] = 0x20080522;
        if (copy_user(uhdr, hdr, 4, 1) < 0)
            return -EFAULT;
        return udata ? -EINVAL : 0;
    }
    if (set || !udata)
        return 0;
    int root = proc_cur()->group->uid[1] == 0;
    uint32_t d[6] = {root ? ~0u : 0, root ? ~0u : 0, 0, root ? 0x1ffu : 0, root ? 0x1ffu : 0, 0};
    return copy_user(udata, d, (uint64_t)words * 12, 1);
}

/* prctl: the name (PR_SET_NAME, PR_GET_NAME), the parent-death signal, and flags that are kept
 * and read back (dumpable, no_new_privs, child subreaper, the timer slack); seccomp is off,
 * the capability bounding set full. Other options are EINVAL. */
static long sys_prctl(uint64_t opt, uint64_t a2)
{
    struct proc *cur = proc_cur(), *g = cur->group;
    char name[16];
    long n;
    int v;
    switch (opt) {
    case 15: /* PR_SET_NAME: cut to 15 bytes, as on Linux */
        n = copy_str(a2, name, sizeof(name));
        if (n == -36)
            name[15] = 0;
        else if (n < 0)
            return n;
        kmemcpy(cur->comm, name, 16);
        return 0;
    case 16: return copy_user(a2, cur->comm, 16, 1);                  /* PR_GET_NAME */
    case 1: /* PR_SET_PDEATHSIG */
        if (a2 > 64)
            return -EINVAL;
        g->pdeathsig = (int)a2;
        return 0;
    case 2: v = g->pdeathsig; return copy_user(a2, &v, 4, 1);           /* PR_GET_PDEATHSIG */
    case 3: return !g->dumpable_off;                                    /* PR_GET_DUMPABLE */
    case 4: if (a2 > 1) return -EINVAL; g->dumpable_off = !a2; return 0; /* PR_SET_DUMPABLE */
    case 21: return 0;                                                  /* PR_GET_SECCOMP: none */
    case 23: return a2 <= 40 ? 1 : -EINVAL;                             /* PR_CAPBSET_READ */
    case 29: return 0;                                                  /* PR_SET_TIMERSLACK */
    case 30: return 50000;                                              /* PR_GET_TIMERSLACK: Linux's default */
    case 36: g->subreaper = a2 != 0; return 0;                          /* PR_SET_CHILD_SUBREAPER */
    case 37: v = g->subreaper; return copy_user(a2, &v, 4, 1);          /* PR_GET_CHILD_SUBREAPER */
    case 38: if (a2 != 1) return -EINVAL; g->no_new_privs = 1; return 0; /* PR_SET_NO_NEW_PRIVS */
    case 39: return g->no_new_privs;                                    /* PR_GET_NO_NEW_PRIVS */
    default: return -EINVAL;
    }
}

/* ---- the syscall table's entries (syscall.c) ---- */

long sc_getuid(const struct sysargs *s)
{
    return proc_cur()->group->uid[s->nr == 107]; /* getuid (102), geteuid (107) */
}

long sc_getgid(const struct sysargs *s)
{
    return proc_cur()->group->gid[s->nr == 108]; /* getgid (104), getegid (108) */
}

long sc_setuid(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    return s->nr == 105 ? set_one(g->uid, (uint32_t)s->a) : set_one(g->gid, (uint32_t)s->a); /* setuid, setgid */
}

long sc_setreuid(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    return set_re(s->nr == 113 ? g->uid : g->gid, (uint32_t)s->a, (uint32_t)s->b); /* setreuid, setregid */
}

long sc_setresuid(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    return set_ids(s->nr == 117 ? g->uid : g->gid, (uint32_t)s->a, (uint32_t)s->b, (uint32_t)s->c); /* setresuid, setresgid */
}

long sc_getresuid(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    return get_res(s->nr == 118 ? g->uid : g->gid, s->a, s->b, s->c); /* getresuid, getresgid */
}

long sc_setfsuid(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    return set_fs(s->nr == 122 ? g->uid : g->gid, (uint32_t)s->a); /* setfsuid, setfsgid */
}

/* getgroups: the count alone for size 0, EINVAL for a list too small */
long sc_getgroups(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    int size = (int)s->a;
    if (size == 0)
        return g->ngroups;
    if (size < 0 || size < g->ngroups)
        return -EINVAL;
    return copy_user(s->b, g->groups, (uint64_t)g->ngroups * 4, 1) < 0 ? -EFAULT : g->ngroups;
}

/* setgroups: root only (EPERM), up to NGROUPS_ of them (EINVAL) */
long sc_setgroups(const struct sysargs *s)
{
    struct proc *g = proc_cur()->group;
    uint32_t list[NGROUPS_];
    if (g->uid[1] != 0)
        return -EPERM;
    if (s->a > NGROUPS_)
        return -EINVAL;
    if (s->a && copy_user(s->b, list, s->a * 4, 0) < 0)
        return -EFAULT;
    for (uint64_t i = 1; i < s->a; i++) /* kept sorted, as Linux keeps them (getgroups lists them so) */
        for (uint64_t j = i; j > 0 && list[j - 1] > list[j]; j--) {
            uint32_t t = list[j];
            list[j] = list[j - 1];
            list[j - 1] = t;
        }
    kmemcpy(g->groups, list, s->a * 4);
    g->ngroups = (int)s->a;
    return 0;
}

long sc_capget(const struct sysargs *s)
{
    return sys_capget(s->a, s->b, s->nr == 126);
}

long sc_prctl(const struct sysargs *s)
{
    return sys_prctl(s->a, s->b);
}
