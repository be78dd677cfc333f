/* dnotify; see dnotify.h. */
#include "dnotify.h"

#include "file.h"
#include "fs.h"
#include "inotify.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define DN_ACCESS 0x1
#define DN_MODIFY 0x2
#define DN_CREATE 0x4
#define DN_DELETE 0x8
#define DN_RENAME 0x10
#define DN_ATTRIB 0x20
#define DN_MULTISHOT 0x80000000u
#define SIGIO_ 29
#define POLL_MSG_ 3 /* si_code of a dnotify signal */

struct dmark {
    struct dmark *next;
    struct file *f;     /* not held: the mark goes with the file */
    struct inode *dir;  /* the file's own inode */
    uint32_t mask;
};

static struct dmark *marks; /* every mark: few, looked through on each event in a directory */

static struct dmark **find(const struct file *f)
{
    struct dmark **pp = &marks;
    while (*pp && (*pp)->f != f)
        pp = &(*pp)->next;
    return pp;
}

static void unmark(struct dmark **pp)
{
    struct dmark *m = *pp;
    *pp = m->next;
    kfree(m, sizeof(*m));
}

long dnotify_set(struct file *f, uint64_t mask)
{
    if (f->type != F_INODE || (f->ino->mode & S_IFMT) != S_IFDIR)
        return -ENOTDIR;
    struct dmark **pp = find(f);
    if (!(mask & ~(uint64_t)DN_MULTISHOT)) {
        if (*pp)
            unmark(pp);
        return 0;
    }
    if (!*pp) {
        struct dmark *m = kmalloc(sizeof(*m));
        if (!m)
            return -ENOMEM;
        m->f = f;
        m->dir = f->ino;
        m->next = marks;
        marks = m;
        pp = &marks;
    }
    (*pp)->mask |= (uint32_t)mask; /* as Linux: a mark's events add up until a mask of 0 */
    if (!f->owner) /* as Linux: the asker owns the file, unless F_SETOWN named another */
        f->owner = proc_cur()->group->pid;
    return 0;
}

static uint32_t dn_of(uint32_t in)
{
    return (in & IN_ACCESS_ ? DN_ACCESS : 0) | (in & IN_MODIFY_ ? DN_MODIFY : 0) | (in & IN_CREATE_ ? DN_CREATE : 0) |
           (in & IN_DELETE_ ? DN_DELETE : 0) | (in & (IN_MOVED_FROM_ | IN_MOVED_TO_) ? DN_RENAME : 0) |
           (in & IN_ATTRIB_ ? DN_ATTRIB : 0);
}

void dnotify_event(struct inode *dir, uint32_t in_mask)
{
    uint32_t dn = dn_of(in_mask);
    for (struct dmark **pp = &marks; dn && *pp;) {
        struct dmark *m = *pp;
        if (m->dir != dir || !(m->mask & dn)) {
            pp = &m->next;
            continue;
        }
        struct proc *p = m->f->owner > 0 ? proc_by_pid(m->f->owner) : 0;
        struct sigsrc src = {0, POLL_MSG_, 0, 0, 0};
        if (p)
            sig_send_process(p, m->f->sig ? m->f->sig : SIGIO_, &src);
        if (!(m->mask & DN_MULTISHOT))
            unmark(pp);
        else
            pp = &m->next;
    }
}

void dnotify_forget(struct file *f)
{
    struct dmark **pp = find(f);
    if (*pp)
        unmark(pp);
}
