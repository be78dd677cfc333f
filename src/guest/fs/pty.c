/* Pseudo-terminals (see pty.h). Each pty has an input ring that the master's writes fill through
 * the line discipline and the slave reads, and an output pipe that the slave's writes fill
 * (after output processing) and the master reads. In canonical mode the ring's [rd, canon) is
 * complete lines, each ending at a position marked in `eol` (an end-of-file marks its own
 * position in `eofm` too: the byte is not read, so ^D on an empty line reads as 0 bytes), and
 * [canon, wr) is the line being edited; otherwise canon is wr. As Linux's n_tty does. */
#include "pty.h"

#include "epoll.h"
#include "file.h"
#include "fs.h"
#include "pipe.h"
#include "../arch/arch.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define NPTY 64
#define TTY_RING 4096 /* input bytes held, as Linux's N_TTY_BUF_SIZE */

/* termios bits (Linux's values) */
#define IGNCR_ 0x80
#define ICRNL_ 0x100
#define INLCR_ 0x40
#define ISTRIP_ 0x20
#define IUCLC_ 0x200
#define IXON_ 0x400
#define IXANY_ 0x800
#define IUTF8_ 0x4000
#define OPOST_ 0x1
#define OLCUC_ 0x2
#define ONLCR_ 0x4
#define OCRNL_ 0x8
#define ISIG_ 0x1
#define ICANON_ 0x2
#define ECHO_ 0x8
#define ECHOE_ 0x10
#define ECHOK_ 0x20
#define ECHONL_ 0x40
#define NOFLSH_ 0x80
#define TOSTOP_ 0x100
#define ECHOCTL_ 0x200
#define ECHOKE_ 0x800
#define IEXTEN_ 0x8000
enum { VINTR_, VQUIT_, VERASE_, VKILL_, VEOF_, VTIME_, VMIN_, VSWTC_, VSTART_, VSTOP_, VSUSP_, VEOL_, VREPRINT_,
       VDISCARD_, VWERASE_, VLNEXT_, VEOL2_, NCCS_ = 19 };

#define O_NOCTTY_ 0400

/* struct termios as the kernel's ioctls carry it (TCGETS); termios2 adds the two speeds */
struct ktermios {
    uint32_t iflag, oflag, cflag, lflag;
    uint8_t line, cc[NCCS_];
    uint32_t ispeed, ospeed;
};
_Static_assert(__builtin_offsetof(struct ktermios, ispeed) == 36, "struct termios is 36 bytes");

struct pty {
    int index;
    int locked, excl;
    int masters;      /* open master files, the kernel's hold included */
    int slaves, slave_opened;
    int hung;         /* the master is gone: slaves read end-of-file, writes fail with EIO */
    int stopped;      /* ^S or TCOOFF: the slaves' output waits */
    int lnext;        /* the next input byte is taken literally (^V) */
    int sid, pgrp;    /* the session it is the controlling terminal of (0: none), its foreground group */
    struct ktermios t;
    uint16_t ws[4];   /* struct winsize: rows, cols, xpixel, ypixel */
    uint8_t *ring;
    uint64_t rd, canon, wr;
    uint64_t eol[TTY_RING / 64], eofm[TTY_RING / 64];
    struct pipe *out;
    uint64_t seq;
    struct inode *node; /* /dev/pts/N (held) */
    void (*hook)(void *ctx);
    void *hook_ctx;
};

static struct pty *ptys[NPTY];
static struct inode *ptmx_node, *pts_dir;

/* ---- the table, nodes and signals ---- */

void pty_make_nodes(struct inode *dev)
{
    struct inode *n;
    if (fs_create(dev, "tty", 3, S_IFCHR | 0666, &n) == 0)
        n->rdev = DEV_TTY;
    if (fs_create(dev, "ptmx", 4, S_IFCHR | 0666, &n) == 0) {
        n->rdev = DEV_PTMX;
        ptmx_node = n;
        fs_hold(n);
    }
    if (fs_create(dev, "pts", 3, S_IFDIR | 0755, &n) == 0) {
        pts_dir = n;
        fs_hold(n);
    }
}

int tty_is_dev(uint32_t rdev)
{
    return rdev == DEV_TTY || rdev == DEV_PTMX || (rdev >> 8) == TTY_MAJOR_PTS;
}

/* Readiness changed: pollers and sleepers look again, the host is told. */
static void tty_changed(struct pty *t)
{
    t->seq++;
    wake(W_PIPE, 0);
    if (t->hook)
        t->hook(t->hook_ctx);
}

/* `sig` to every process of group `pgrp`, as the kernel sends it (a blocked one stays pending). */
static void kill_pgrp(int pgrp, int sig)
{
    struct sigsrc src = {0, SI_KERNEL_, 0, 0, 0};
    for (int i = 0; pgrp > 0 && i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->group == p && (p->state == P_RUNNABLE || p->state == P_BLOCKED) && p->pgid == pgrp)
            sig_send_process(p, sig, &src);
    }
}

/* A session whose processes have all ended has no controlling terminal any more (on Linux its
 * leader's exit gives it up): `t` is free again. */
static void session_check(struct pty *t)
{
    for (int i = 0; t->sid && i < MAX_PROCS; i++) {
        const struct proc *q = &ptable.procs[i];
        if (q->state != P_FREE && q->state != P_ZOMBIE && q->group->sid == t->sid)
            return;
    }
    t->sid = t->pgrp = 0;
}

/* The terminal `sid` has as its controlling terminal; NULL when none. */
static struct pty *tty_of_session(int sid)
{
    for (int i = 0; sid > 0 && i < NPTY; i++) {
        if (ptys[i])
            session_check(ptys[i]);
        if (ptys[i] && ptys[i]->sid == sid && !ptys[i]->hung)
            return ptys[i];
    }
    return 0;
}

/* Job control's check for a process of the terminal's session outside its foreground group:
 * 0 to go on; else it reads EIO (the signal ignored or blocked when reading, or its group
 * orphaned), or its group gets `sig` (SIGTTIN, SIGTTOU) and the call is restarted once it is
 * continued. `quiet_ok`: an ignored or blocked SIGTTOU lets a write or tcsetattr through. */
static long job_check(struct pty *t, int sig, int quiet_ok)
{
    struct proc *g = proc_cur()->group;
    if (!t->sid || g->sid != t->sid || !t->pgrp || g->pgid == t->pgrp)
        return 0;
    uint64_t bit = 1ULL << sig;
    if ((g->sig_ign & bit) || (proc_cur()->sig_blocked & bit))
        return quiet_ok ? 0 : -EIO_;
    if (pgrp_orphaned(g->pgid))
        return -EIO_;
    kill_pgrp(g->pgid, sig);
    return -ERESTART_;
}

/* ---- output: slave to master ---- */

/* One byte through output processing (OPOST): at most two bytes into out[]; returns how many. */
static int opost(const struct pty *t, uint8_t c, uint8_t *out)
{
    uint32_t o = t->t.oflag;
    if (!(o & OPOST_))
        return out[0] = c, 1;
    if (c == '\n' && (o & ONLCR_))
        return out[0] = '\r', out[1] = '\n', 2;
    if (c == '\r' && (o & OCRNL_))
        c = '\n';
    if ((o & OLCUC_) && c >= 'a' && c <= 'z')
        c = (uint8_t)(c - 'a' + 'A');
    return out[0] = c, 1;
}

/* Echo and other kernel output: as far as the output has room (the rest is lost, as Linux's
 * echo is when the master does not read). */
static void out_kernel(struct pty *t, const uint8_t *s, uint64_t n)
{
    uint8_t tmp[2];
    for (uint64_t i = 0; i < n; i++) {
        int m = opost(t, s[i], tmp);
        if (pipe_room(t->out) < (uint64_t)m)
            break;
        pipe_put(t->out, tmp, (uint64_t)m);
    }
}

/* A control character echoes as ^X (ECHOCTL); tab and newline as themselves. */
static void echo_char(struct pty *t, uint8_t c)
{
    uint32_t l = t->t.lflag;
    if (!(l & ECHO_)) {
        if (c == '\n' && (l & ECHONL_))
            out_kernel(t, &c, 1);
        return;
    }
    if ((l & ECHOCTL_) && (c < 0x20 || c == 0x7f) && c != '\t' && c != '\n') {
        uint8_t two[2] = {'^', (uint8_t)(c ^ 0x40)};
        out_kernel(t, two, 2);
        return;
    }
    out_kernel(t, &c, 1);
}

/* ---- input: master to slave, through the line discipline ---- */

static int bit_get(const uint64_t *m, uint64_t pos)
{
    pos %= TTY_RING;
    return (int)((m[pos / 64] >> (pos % 64)) & 1);
}

static void bit_put(uint64_t *m, uint64_t pos, int on)
{
    pos %= TTY_RING;
    m[pos / 64] = on ? m[pos / 64] | 1ULL << (pos % 64) : m[pos / 64] & ~(1ULL << (pos % 64));
}

static void flush_input(struct pty *t)
{
    t->rd = t->canon = t->wr = 0;
    kmemset(t->eol, 0, sizeof(t->eol));
    kmemset(t->eofm, 0, sizeof(t->eofm));
    t->lnext = 0;
}

static void flush_output(struct pty *t)
{
    uint8_t tmp[256];
    while (t->out->count)
        pipe_take(t->out, tmp, sizeof(tmp));
}

static int canonical(const struct pty *t)
{
    return (t->t.lflag & ICANON_) != 0;
}

/* Appends a byte to the ring (0 when it is full); a line end commits the line. */
static int store(struct pty *t, uint8_t c, int line_end, int eof)
{
    if (t->wr - t->rd >= TTY_RING)
        return 0;
    t->ring[t->wr % TTY_RING] = c;
    bit_put(t->eol, t->wr, line_end);
    bit_put(t->eofm, t->wr, eof);
    t->wr++;
    if (line_end || !canonical(t))
        t->canon = t->wr;
    return 1;
}

/* ERASE, WERASE and KILL on the line being edited (a UTF-8 character is erased whole under
 * IUTF8), echoed as Linux's eraser() does. */
static void erase(struct pty *t, int kind)
{
    uint32_t l = t->t.lflag;
    if (t->wr == t->canon)
        return;
    if (kind == VKILL_ && (!(l & ECHO_) || !(l & ECHOK_) || !(l & ECHOKE_) || !(l & ECHOE_))) {
        t->wr = t->canon;
        if (l & ECHO_) {
            echo_char(t, t->t.cc[VKILL_]);
            if (l & ECHOK_)
                out_kernel(t, (const uint8_t *)"\n", 1);
        }
        return;
    }
    int seen_word = 0;
    while (t->wr > t->canon) {
        uint8_t c = t->ring[(t->wr - 1) % TTY_RING];
        int word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
        if (kind == VWERASE_ && !word && seen_word)
            break;
        seen_word |= word;
        t->wr--;
        while ((t->t.iflag & IUTF8_) && (c & 0xc0) == 0x80 && t->wr > t->canon) /* a continuation byte */
            c = t->ring[--t->wr % TTY_RING];
        if (l & ECHO_) {
            int cols = (l & ECHOCTL_) && (c < 0x20 || c == 0x7f) && c != '\t' ? 2 : 1;
            if (!(l & ECHOE_))
                echo_char(t, t->t.cc[VERASE_]);
            else
                for (int i = 0; i < cols; i++)
                    out_kernel(t, (const uint8_t *)"\b \b", 3);
        }
        if (kind == VERASE_)
            break;
    }
}

static int cc_is(const struct pty *t, int v, uint8_t c)
{
    return t->t.cc[v] != 0 && t->t.cc[v] == c; /* 0 is _POSIX_VDISABLE */
}

/* A keyboard signal: input and output flushed (unless NOFLSH), the character echoed, the
 * signal sent to the foreground group. */
static void isig(struct pty *t, uint8_t c, int sig)
{
    if (!(t->t.lflag & NOFLSH_)) {
        flush_input(t);
        flush_output(t);
    }
    t->stopped = 0;
    echo_char(t, c);
    kill_pgrp(t->pgrp, sig);
}

/* A canonical-mode special character: 1 when `c` was one (and is handled), 0 when it is data. */
static int canon_special(struct pty *t, uint8_t c)
{
    uint32_t l = t->t.lflag;
    if (cc_is(t, VERASE_, c) || cc_is(t, VKILL_, c) || ((l & IEXTEN_) && cc_is(t, VWERASE_, c))) {
        erase(t, cc_is(t, VERASE_, c) ? VERASE_ : cc_is(t, VKILL_, c) ? VKILL_ : VWERASE_);
        return 1;
    }
    if ((l & IEXTEN_) && cc_is(t, VLNEXT_, c)) {
        t->lnext = 1;
        if ((l & ECHO_) && (l & ECHOCTL_))
            out_kernel(t, (const uint8_t *)"^\b", 2);
        return 1;
    }
    if ((l & IEXTEN_) && (l & ECHO_) && cc_is(t, VREPRINT_, c)) {
        echo_char(t, c);
        out_kernel(t, (const uint8_t *)"\n", 1);
        for (uint64_t p = t->canon; p < t->wr; p++)
            echo_char(t, t->ring[p % TTY_RING]);
        return 1;
    }
    if (cc_is(t, VEOF_, c)) { /* the line as it is, without the ^D (an empty one: end of file) */
        if (t->wr - t->rd < TTY_RING)
            store(t, c, 1, 1);
        return 1;
    }
    if (c == '\n' || cc_is(t, VEOL_, c) || ((l & IEXTEN_) && cc_is(t, VEOL2_, c))) {
        if (t->wr - t->rd < TTY_RING) { /* the ring's last byte is kept for a line's end */
            echo_char(t, c);
            store(t, c, 1, 0);
        }
        return 1;
    }
    return 0;
}

/* One byte typed at the terminal: 1 when taken, 0 when there is no room for it (the writer
 * waits). A canonical line that fills the ring drops further bytes but its end, as Linux. */
static int receive(struct pty *t, uint8_t c)
{
    uint32_t i = t->t.iflag, l = t->t.lflag;
    if (canonical(t) && t->canon - t->rd >= TTY_RING - 1)
        return 0; /* complete lines fill it: the reader must take some first */
    if (!canonical(t) && t->wr - t->rd >= TTY_RING)
        return 0;
    if (t->lnext) {
        t->lnext = 0;
        if (canonical(t) && (l & ECHO_) && (l & ECHOCTL_))
            out_kernel(t, (const uint8_t *)"\b", 1);
        echo_char(t, c);
        if (t->wr - t->rd < TTY_RING - 1 || !canonical(t))
            store(t, c, 0, 0);
        return 1;
    }
    if (i & ISTRIP_)
        c &= 0x7f;
    if ((i & IUCLC_) && (l & IEXTEN_) && c >= 'A' && c <= 'Z')
        c = (uint8_t)(c - 'A' + 'a');
    if (c == '\r' && (i & IGNCR_))
        return 1;
    if (c == '\r' && (i & ICRNL_))
        c = '\n';
    else if (c == '\n' && (i & INLCR_))
        c = '\r';
    if (i & IXON_) {
        if (cc_is(t, VSTOP_, c) || cc_is(t, VSTART_, c)) {
            t->stopped = cc_is(t, VSTOP_, c);
            return 1;
        }
        if (t->stopped && (i & IXANY_))
            t->stopped = 0;
    }
    if (l & ISIG_) {
        int sig = cc_is(t, VINTR_, c) ? 2 : cc_is(t, VQUIT_, c) ? 3 : cc_is(t, VSUSP_, c) ? 20 : 0;
        if (sig) {
            isig(t, c, sig);
            return 1;
        }
    }
    if (canonical(t) && canon_special(t, c))
        return 1;
    if (canonical(t) && t->wr - t->rd >= TTY_RING - 1)
        return 1; /* the line is as long as it can be: dropped */
    echo_char(t, c);
    store(t, c, 0, 0);
    return 1;
}

/* Bytes from kernel memory into the line discipline: how many it took. */
static uint64_t input(struct pty *t, const uint8_t *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n && receive(t, s[i]))
        i++;
    if (i)
        tty_changed(t);
    return i;
}

/* ---- the life of a pty ---- */

static void node_name(int index, char name[24], uint64_t *len)
{
    char num[21];
    const char *s = kutoa(num, (uint64_t)index);
    *len = kstrlen(s);
    kmemcpy(name, s, *len + 1);
}

static struct pty *pty_alloc(void)
{
    int idx = 0;
    while (idx < NPTY && ptys[idx])
        idx++;
    struct pty *t = idx < NPTY && pts_dir ? kmalloc(sizeof(*t)) : 0;
    if (!t)
        return 0;
    _Static_assert(sizeof(struct pty) <= 2048, "struct pty comes from kmalloc");
    char name[24];
    uint64_t nl;
    node_name(idx, name, &nl);
    if (!(t->ring = kpage_alloc()) || !(t->out = pipe_new()) || fs_create(pts_dir, name, nl, S_IFCHR | 0620, &t->node) < 0) {
        if (t->ring)
            kpage_free(t->ring);
        if (t->out)
            pipe_drop(t->out, 1), pipe_drop(t->out, 0);
        kfree(t, sizeof(*t));
        return 0;
    }
    fs_hold(t->node);
    t->node->rdev = (uint32_t)(TTY_MAJOR_PTS << 8 | idx);
    t->node->uid = proc_cur() ? proc_cur()->group->uid[0] : 0;
    t->node->gid = 5; /* tty */
    t->index = idx;
    t->locked = 1;
    /* Linux's defaults for a new pty (tty_std_termios): cooked, echoing, ^C ^\ ^Z signals */
    t->t.iflag = ICRNL_ | IXON_ | IUTF8_;
    t->t.oflag = OPOST_ | ONLCR_;
    t->t.cflag = 0xbf | 0x400; /* B38400 | CS8 | CREAD | HUPCL */
    t->t.lflag = ISIG_ | ICANON_ | ECHO_ | ECHOE_ | ECHOK_ | ECHOCTL_ | ECHOKE_ | IEXTEN_;
    static const uint8_t cc[NCCS_] = {3, 034, 0177, 025, 4, 0, 1, 0, 021, 023, 032, 0, 022, 017, 027, 026, 0};
    kmemcpy(t->t.cc, cc, sizeof(cc));
    t->t.ispeed = t->t.ospeed = 38400;
    ptys[idx] = t;
    return t;
}

static void pty_free(struct pty *t)
{
    char name[24];
    uint64_t nl;
    node_name(t->index, name, &nl);
    if (fs_child(pts_dir, name, nl) == t->node)
        fs_unlink(pts_dir, name, nl, 0);
    fs_release(t->node);
    kpage_free(t->ring);
    pipe_drop(t->out, 1);
    pipe_drop(t->out, 0);
    ptys[t->index] = 0;
    kfree(t, sizeof(*t));
}

/* The master is gone: the session's leader gets SIGHUP and SIGCONT, the foreground group
 * SIGHUP, and the terminal is no one's controlling terminal any more. */
static void hangup(struct pty *t)
{
    t->hung = 1;
    struct proc *leader = t->sid ? proc_by_pid(t->sid) : 0;
    if (leader && leader->state != P_ZOMBIE && leader->sid == t->sid) {
        kill_process(leader, 1, 0);
        kill_process(leader, 18, 0);
    }
    if (t->pgrp && (!leader || t->pgrp != leader->pgid))
        kill_pgrp(t->pgrp, 1);
    t->sid = t->pgrp = 0;
    tty_changed(t);
}

static void pty_unref(struct pty *t)
{
    if (!t->masters && !t->slaves)
        pty_free(t);
}

void pty_close(struct file *f)
{
    struct pty *t = f->pty;
    if (f->type == F_PTM) {
        if (--t->masters == 0)
            hangup(t);
    } else {
        t->slaves--;
        tty_changed(t); /* the master's reader sees EIO once the last one is gone */
    }
    pty_unref(t);
}

/* An open file on `t`: F_PTM or F_PTS, referring to ino (held). NULL when out of memory. */
static struct file *pty_file(struct pty *t, enum ftype type, struct inode *ino, uint64_t flags)
{
    struct file *f = file_new(type, ino, (int)(flags & (O_ACCMODE | O_NONBLOCK_ | O_APPEND)));
    if (!f)
        return 0;
    f->pty = t;
    if (type == F_PTM) {
        t->masters++;
    } else {
        t->slaves++;
        t->slave_opened = 1;
    }
    return f;
}

/* A session leader without a terminal opening one makes it its controlling terminal. */
static void maybe_acquire(struct pty *t, uint64_t flags)
{
    struct proc *g = proc_cur()->group;
    session_check(t);
    if (!(flags & O_NOCTTY_) && g->pid == g->sid && !t->sid && !tty_of_session(g->sid)) {
        t->sid = g->sid;
        t->pgrp = g->pgid;
    }
}

static long install(struct file *f, uint64_t flags)
{
    if (!f)
        return -ENOMEM;
    int fd = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
    if (fd < 0)
        file_put(f);
    return fd;
}

static long open_slave(struct pty *t, uint64_t flags)
{
    if (t->locked || t->hung || !t->masters)
        return -EIO_;
    long fd = install(pty_file(t, F_PTS, t->node, flags), flags);
    if (fd >= 0)
        maybe_acquire(t, flags);
    return fd;
}

long tty_open(struct inode *ino, uint64_t flags)
{
    if (ino->rdev == DEV_PTMX) {
        struct pty *t = pty_alloc();
        if (!t)
            return -ENOSPC_;
        long fd = install(pty_file(t, F_PTM, ptmx_node ? ptmx_node : ino, flags), flags);
        if (fd < 0)
            pty_unref(t);
        return fd;
    }
    if (ino->rdev == DEV_TTY) {
        struct pty *t = tty_of_session(proc_cur()->group->sid);
        return t ? install(pty_file(t, F_PTS, t->node, flags), flags) : -ENXIO_;
    }
    uint32_t idx = ino->rdev & 0xff;
    struct pty *t = idx < NPTY ? ptys[idx] : 0;
    if (!t || t->node != ino)
        return -EIO_; /* a node left from a pty that is gone */
    return open_slave(t, flags);
}

/* ---- reading and writing ---- */

static long master_read(struct file *f, struct pty *t, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint8_t tmp[512];
    while (!t->out->count) {
        if (t->slave_opened && !t->slaves)
            return -EIO_; /* every slave closed: what python's pty.spawn and script(1) take as the end */
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    uint64_t done = 0;
    while (done < n && t->out->count) {
        uint64_t c = pipe_take(t->out, tmp, n - done < sizeof(tmp) ? n - done : sizeof(tmp));
        if (copy_user(buf + done, tmp, c, 1) < 0)
            return done ? (long)done : -EFAULT; /* (those bytes are lost, as a fault loses them on Linux) */
        done += c;
    }
    tty_changed(t); /* writers waiting for room go on */
    return (long)done;
}

static long master_write(struct file *f, struct pty *t, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint8_t tmp[256];
    uint64_t done = 0;
    while (done < n) {
        uint64_t c = n - done < sizeof(tmp) ? n - done : sizeof(tmp);
        if (copy_user(buf + done, tmp, c, 0) < 0)
            return done ? (long)done : -EFAULT;
        uint64_t took = input(t, tmp, c);
        done += took;
        if (took == c)
            continue;
        if (f->flags & O_NONBLOCK_)
            return done ? (long)done : -EAGAIN;
        if (sig_ready(cur))
            return done ? (long)done : -ERESTART_;
        block(W_PIPE);
    }
    return (long)done;
}

/* The first line end in [rd, canon): its position, or UINT64_MAX when no line is complete. */
static uint64_t line_end(const struct pty *t)
{
    for (uint64_t p = t->rd; p < t->canon; p++)
        if (bit_get(t->eol, p))
            return p;
    return UINT64_MAX;
}

/* Copies ring bytes [rd, rd + n) to user memory and takes them; -EFAULT leaves them. */
static long ring_copy(struct pty *t, uint64_t buf, uint64_t n)
{
    for (uint64_t done = 0; done < n;) {
        uint64_t off = (t->rd + done) % TTY_RING, c = TTY_RING - off < n - done ? TTY_RING - off : n - done;
        if (copy_user(buf + done, t->ring + off, c, 1) < 0)
            return -EFAULT;
        done += c;
    }
    t->rd += n;
    return (long)n;
}

/* Canonical read: one line at most (its end-of-file byte not included); -EAGAIN when no line
 * is complete yet. */
static long read_line(struct pty *t, uint64_t buf, uint64_t n)
{
    uint64_t end = line_end(t);
    if (end == UINT64_MAX)
        return -EAGAIN;
    int eof = bit_get(t->eofm, end);
    uint64_t len = end + 1 - t->rd - (uint64_t)eof, c = len < n ? len : n;
    long r = ring_copy(t, buf, c);
    if (r >= 0 && c == len && eof)
        t->rd++; /* the ^D goes with the line it ended */
    return r;
}

/* Non-canonical read, as VMIN and VTIME say (Linux's n_tty semantics): MIN bytes (or n), with
 * TIME tenths of a second as an overall limit (MIN 0) or between bytes (MIN > 0). */
static long read_raw(struct file *f, struct pty *t, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint64_t vmin = t->t.cc[VMIN_], vtime = t->t.cc[VTIME_], got = 0;
    uint64_t want = vmin < n ? vmin : n, deadline = vtime ? tick_after_ns(vtime * 100000000ULL) : 0;
    for (;;) {
        uint64_t avail = t->canon - t->rd, c = avail < n - got ? avail : n - got;
        if (c) {
            if (ring_copy(t, buf + got, c) < 0)
                return got ? (long)got : -EFAULT;
            got += c;
            tty_changed(t);
            if (vtime && vmin) /* the timer runs between bytes */
                deadline = tick_after_ns(vtime * 100000000ULL);
        }
        if (got >= n || t->hung || (vmin == 0 && (got || !vtime)) || (vmin && got >= want))
            return (long)got;
        if (vtime && (vmin == 0 || got) && kernel_ticks() >= deadline)
            return (long)got;
        if (f->flags & O_NONBLOCK_)
            return got ? (long)got : -EAGAIN;
        if (sig_ready(cur))
            return got ? (long)got : -ERESTART_;
        cur->wake_tick = vtime && (vmin == 0 || got) ? deadline : 0;
        block(W_PIPE);
    }
}

static long slave_read(struct file *f, struct pty *t, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    long r;
    if ((r = job_check(t, 21, 0))) /* SIGTTIN */
        return r;
    if (!canonical(t))
        return read_raw(f, t, buf, n);
    while ((r = read_line(t, buf, n)) == -EAGAIN) {
        if ((r = job_check(t, 21, 0))) /* it may have been sent to the background meanwhile */
            return r;
        if (t->hung)
            return 0;
        if (f->flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    tty_changed(t); /* room for the master's writer */
    return r;
}

static long slave_write(struct file *f, struct pty *t, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint8_t in[256], out[512];
    long r = (t->t.lflag & TOSTOP_) ? job_check(t, 22, 1) : 0; /* SIGTTOU */
    if (r)
        return r;
    uint64_t done = 0;
    while (done < n) {
        if (t->hung)
            return done ? (long)done : -EIO_;
        uint64_t room = pipe_room(t->out);
        if (t->stopped || room < 2) {
            if (f->flags & O_NONBLOCK_)
                return done ? (long)done : -EAGAIN;
            if (sig_ready(cur))
                return done ? (long)done : -ERESTART_;
            block(W_PIPE);
            continue;
        }
        uint64_t c = n - done < sizeof(in) ? n - done : sizeof(in);
        c = c < room / 2 ? c : room / 2; /* each byte becomes two at most */
        if (copy_user(buf + done, in, c, 0) < 0)
            return done ? (long)done : -EFAULT;
        uint64_t m = 0;
        for (uint64_t i = 0; i < c; i++)
            m += (uint64_t)opost(t, in[i], out + m);
        pipe_put(t->out, out, m);
        done += c;
        tty_changed(t);
    }
    return (long)done;
}

long pty_read(struct file *f, uint64_t buf, uint64_t n)
{
    if (!n)
        return 0;
    return f->type == F_PTM ? master_read(f, f->pty, buf, n) : slave_read(f, f->pty, buf, n);
}

long pty_write(struct file *f, uint64_t buf, uint64_t n)
{
    if (!n)
        return 0;
    if (f->type == F_PTM)
        return f->pty->hung ? -EIO_ : master_write(f, f->pty, buf, n);
    return slave_write(f, f->pty, buf, n);
}

/* ---- readiness ---- */

uint32_t pty_events(const struct file *f)
{
    const struct pty *t = f->pty;
    if (f->type == F_PTM) {
        uint32_t ev = t->out->count ? POLLIN_ : 0;
        if (t->slave_opened && !t->slaves)
            ev |= POLLHUP_;
        return ev | (pty_input_room(t) ? POLLOUT_ : 0);
    }
    if (t->hung)
        return POLLIN_ | POLLOUT_ | POLLERR_ | POLLHUP_;
    int readable = canonical(t) ? line_end(t) != UINT64_MAX
                                : t->canon - t->rd >= (t->t.cc[VTIME_] || !t->t.cc[VMIN_] ? 1u : t->t.cc[VMIN_]);
    return (readable ? POLLIN_ : 0) | (!t->stopped && pipe_room(t->out) >= 2 ? POLLOUT_ : 0);
}

uint64_t pty_seq(const struct file *f)
{
    return f->pty->seq + f->pty->out->seq;
}

/* ---- ioctls ---- */

static long get_termios(const struct pty *t, uint64_t arg, uint64_t len)
{
    return copy_user(arg, (void *)&t->t, len, 1);
}

/* TCSETS and its forms: TCSETSF flushes the input first; leaving canonical mode makes the
 * line being edited readable, entering it keeps what is unread as one line. */
static long set_termios(struct pty *t, uint64_t arg, uint64_t len, int flush)
{
    struct ktermios n = t->t;
    if (copy_user(arg, &n, len, 0) < 0)
        return -EFAULT;
    if (len < sizeof(n))
        n.ispeed = n.ospeed = t->t.ospeed;
    if (flush)
        flush_input(t);
    int was = canonical(t);
    t->t = n;
    if (was && !canonical(t))
        t->canon = t->wr;
    else if (!was && canonical(t) && t->wr != t->rd) {
        bit_put(t->eol, t->wr - 1, 1); /* what is there reads as a line */
        t->canon = t->wr;
    }
    if (!(t->t.iflag & IXON_))
        t->stopped = 0;
    tty_changed(t);
    return 0;
}

static void set_winsize(struct pty *t, const uint16_t ws[4])
{
    int changed = kmemcmp(ws, t->ws, sizeof(t->ws)) != 0;
    kmemcpy(t->ws, ws, sizeof(t->ws));
    if (changed)
        kill_pgrp(t->pgrp, 28); /* SIGWINCH */
}

/* Whether `t` is the caller's controlling terminal. */
static int is_ctty(const struct pty *t)
{
    return t->sid && t->sid == proc_cur()->group->sid;
}

static long set_pgrp(struct file *f, struct pty *t, uint64_t arg)
{
    int32_t pg;
    if (f->type == F_PTS && !is_ctty(t))
        return -ENOTTY;
    long r = job_check(t, 22, 1);
    if (r)
        return r;
    if (copy_user(arg, &pg, 4, 0) < 0)
        return -EFAULT;
    if (pg < 0)
        return -EINVAL;
    int found = 0;
    for (int i = 0; i < MAX_PROCS && !found; i++) {
        struct proc *q = &ptable.procs[i];
        found = q->state != P_FREE && q->state != P_ZOMBIE && q->group == q && q->pgid == pg;
        if (found && q->sid != t->sid)
            return -EPERM;
    }
    if (!found)
        return -ESRCH;
    t->pgrp = pg;
    return 0;
}

/* TIOCSCTTY: a session leader without a terminal takes this one (from another session only
 * when `steal` and root). */
static long set_ctty(struct pty *t, uint64_t steal)
{
    struct proc *g = proc_cur()->group;
    session_check(t);
    if (t->sid == g->sid && t->sid)
        return 0;
    if (g->pid != g->sid || tty_of_session(g->sid))
        return -EPERM;
    if (t->sid && !(steal == 1 && g->uid[1] == 0))
        return -EPERM;
    t->sid = g->sid;
    t->pgrp = g->pgid;
    return 0;
}

/* TIOCNOTTY: the session leader gives its terminal up (its foreground group gets SIGHUP and
 * SIGCONT); for any other member of the session it is a no-op here. */
static long drop_ctty(struct pty *t)
{
    struct proc *g = proc_cur()->group;
    if (!is_ctty(t))
        return -ENOTTY;
    if (g->pid == g->sid) {
        kill_pgrp(t->pgrp, 1);
        kill_pgrp(t->pgrp, 18);
        t->sid = t->pgrp = 0;
    }
    return 0;
}

static long put_int(uint64_t arg, int v)
{
    return copy_user(arg, &v, sizeof(v), 1);
}

/* The requests that read or set state, split from pty_ioctl to keep each short. */
static long ioctl_state(struct file *f, struct pty *t, uint64_t req, uint64_t arg)
{
    int32_t v;
    uint16_t ws[4];
    switch (req) {
    case 0x5413: /* TIOCGWINSZ */
        return copy_user(arg, t->ws, sizeof(ws), 1);
    case 0x5414: /* TIOCSWINSZ */
        if (copy_user(arg, ws, sizeof(ws), 0) < 0)
            return -EFAULT;
        set_winsize(t, ws);
        return 0;
    case 0x540f: /* TIOCGPGRP */
        return f->type == F_PTS && !is_ctty(t) ? -ENOTTY : put_int(arg, t->pgrp);
    case 0x5410: /* TIOCSPGRP */
        return set_pgrp(f, t, arg);
    case 0x5429: /* TIOCGSID */
        return !t->sid || (f->type == F_PTS && !is_ctty(t)) ? -ENOTTY : put_int(arg, t->sid);
    case 0x540e: /* TIOCSCTTY */
        return set_ctty(t, arg);
    case 0x5422: /* TIOCNOTTY */
        return drop_ctty(t);
    case 0x541b: /* FIONREAD (TIOCINQ): what a read would find */
        return put_int(arg, (int)(f->type == F_PTM ? t->out->count : t->canon - t->rd));
    case 0x5411: /* TIOCOUTQ */
        return put_int(arg, (int)(f->type == F_PTM ? 0 : t->out->count));
    case 0x80045430: /* TIOCGPTN */
        return f->type == F_PTM ? put_int(arg, t->index) : -ENOTTY;
    case 0x40045431: /* TIOCSPTLCK */
        if (f->type != F_PTM)
            return -ENOTTY;
        if (copy_user(arg, &v, 4, 0) < 0)
            return -EFAULT;
        t->locked = v != 0;
        return 0;
    case 0x80045439: /* TIOCGPTLCK */
        return f->type == F_PTM ? put_int(arg, t->locked) : -ENOTTY;
    case 0x80045438: /* TIOCGPKT: packet mode is never on */
        return f->type == F_PTM ? put_int(arg, 0) : -ENOTTY;
    case 0x80045440: /* TIOCGEXCL */
        return put_int(arg, t->excl);
    case 0x5424: /* TIOCGETD: the line discipline, N_TTY */
        return put_int(arg, 0);
    }
    return -ENOTTY;
}

static long flush(struct file *f, struct pty *t, uint64_t how)
{
    if (how > 2)
        return -EINVAL;
    int in = how != 1, out = how != 0;
    if (f->type == F_PTM) { /* the master's input is the slave's output */
        int x = in;
        in = out;
        out = x;
    }
    if (in)
        flush_input(t);
    if (out)
        flush_output(t);
    tty_changed(t);
    return 0;
}

static long ioctl_control(struct file *f, uint64_t fd, struct pty *t, uint64_t req, uint64_t arg)
{
    int32_t v;
    uint8_t c;
    switch (req) {
    case 0x540b: /* TCFLSH */
        return flush(f, t, arg);
    case 0x540a: /* TCXONC: TCOOFF, TCOON, TCIOFF, TCION */
        if (arg > 3)
            return -EINVAL;
        if (arg < 2)
            t->stopped = arg == 0;
        tty_changed(t);
        return 0;
    case 0x5409: case 0x5425: case 0x5427: case 0x5428: /* TCSBRK (tcdrain), TCSBRKP, TIOCSBRK, TIOCCBRK */
        return 0; /* output is in the master's hands at once */
    case 0x540c: case 0x540d: /* TIOCEXCL, TIOCNXCL */
        t->excl = req == 0x540c;
        return 0;
    case 0x5423: /* TIOCSETD */
        if (copy_user(arg, &v, 4, 0) < 0)
            return -EFAULT;
        return v == 0 ? 0 : -EINVAL;
    case 0x5420: /* TIOCPKT: off only */
        if (f->type != F_PTM)
            return -ENOTTY;
        if (copy_user(arg, &v, 4, 0) < 0)
            return -EFAULT;
        return v == 0 ? 0 : -EINVAL;
    case 0x40045436: /* TIOCSIG: the master signals the foreground group */
        if (f->type != F_PTM || arg < 1 || arg > 63)
            return -EINVAL;
        kill_pgrp(t->pgrp, (int)arg);
        return 0;
    case 0x5412: /* TIOCSTI: a byte as if typed */
        if (copy_user(arg, &c, 1, 0) < 0)
            return -EFAULT;
        input(t, &c, 1);
        return 0;
    case 0x5441: /* TIOCGPTPEER: the slave opened from its master (glibc's openpty) */
        (void)fd;
        if (f->type != F_PTM)
            return -ENOTTY;
        return open_slave(t, arg);
    }
    return -ENOTTY;
}

long pty_ioctl(struct file *f, uint64_t fd, uint64_t req, uint64_t arg)
{
    struct pty *t = f->pty;
    long r;
    switch (req) {
    case 0x5401: /* TCGETS */
        return get_termios(t, arg, 36);
    case 0x802c542a: /* TCGETS2 */
        return get_termios(t, arg, 44);
    case 0x5402: case 0x5403: case 0x5404: /* TCSETS, TCSETSW, TCSETSF */
    case 0x402c542b: case 0x402c542c: case 0x402c542d: /* their termios2 forms */
        if (f->type == F_PTS && (r = job_check(t, 22, 1)))
            return r;
        return set_termios(t, arg, req >> 16 ? 44 : 36, req == 0x5404 || req == 0x402c542d);
    }
    r = ioctl_state(f, t, req, arg);
    return r == -ENOTTY ? ioctl_control(f, fd, t, req, arg) : r;
}

/* ---- the kernel's master ---- */

struct pty *pty_kernel_open(uint16_t cols, uint16_t rows, void (*hook)(void *), void *ctx, struct file **slave)
{
    struct pty *t = pty_alloc();
    if (!t)
        return 0;
    t->masters = 1;
    t->locked = 0;
    t->ws[0] = rows;
    t->ws[1] = cols;
    if (!(*slave = pty_file(t, F_PTS, t->node, 2))) {
        t->masters = 0;
        pty_unref(t);
        return 0;
    }
    t->hook = hook;
    t->hook_ctx = ctx;
    return t;
}

void pty_set_session(struct pty *t, int sid, int pgrp)
{
    t->sid = sid;
    t->pgrp = pgrp;
}

uint64_t pty_take_output(struct pty *t, void *dst, uint64_t n)
{
    uint64_t got = pipe_take(t->out, dst, n);
    if (got)
        tty_changed(t);
    return got;
}

uint64_t pty_output_pending(const struct pty *t)
{
    return t->out->count;
}

uint64_t pty_put_input(struct pty *t, const uint8_t *src, uint64_t n)
{
    return t->hung ? n : input(t, src, n);
}

uint64_t pty_input_room(const struct pty *t)
{
    if (canonical(t))
        return t->canon - t->rd < TTY_RING - 1 ? TTY_RING - (t->canon - t->rd) : 0;
    return TTY_RING - (t->wr - t->rd);
}

void pty_resize(struct pty *t, uint16_t cols, uint16_t rows)
{
    uint16_t ws[4] = {rows, cols, 0, 0};
    set_winsize(t, ws);
}

void pty_kernel_close(struct pty *t)
{
    t->hook = 0;
    if (--t->masters == 0)
        hangup(t);
    pty_unref(t);
}
