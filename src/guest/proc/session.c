/* Commands from the host as sessions: each has its first process, its stdout and stderr
 * buffers and its deadline; the host starts, collects and kills them (see README.md). */
#include "session.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "exec.h"
#include "proc.h"
#include "signal.h"

static int next_sess; /* the last session id handed out */

/* A command (session): its first process, its output, its deadline. It ends when that process
 * exits; the host then collects the result. Processes it started stay in it until then. */
#define MAX_SESS 16

static struct session sessions[MAX_SESS];

void outbuf_write(struct outbuf *b, const uint8_t *src, uint64_t n)
{
    for (uint64_t i = 0; b && i < n;) {
        uint64_t pg = b->len / PAGE_SIZE, off = b->len % PAGE_SIZE, chunk = PAGE_SIZE - off;
        if (pg >= OUT_PAGES || (!b->pages[pg] && !(b->pages[pg] = kpage_alloc()))) {
            b->truncated = 1;
            return;
        }
        if (chunk > n - i)
            chunk = n - i;
        kmemcpy(b->pages[pg] + off, src + i, chunk);
        b->len += chunk;
        i += chunk;
    }
}

static void outbuf_free(struct outbuf *b)
{
    for (uint64_t i = 0; i < OUT_PAGES && b->pages[i]; i++) {
        kpage_free(b->pages[i]);
        b->pages[i] = 0;
    }
}

static void session_put_files(struct session *s)
{
    file_put(s->fout);
    file_put(s->ferr);
    file_put(s->fin);
    s->fout = s->ferr = s->fin = 0;
    fs_anon_free(s->stdin_file);
    s->stdin_file = 0;
}

/* The session's root exited: its status is kept for the host. The processes it leaves behind
 * run on detached, their output discarded and their stdin empty; those of a command (not of a
 * background start) get SIGHUP at the command's timeout, which ends them unless they ignore it
 * (nohup) or left with setsid, so nothing a command starts outlives it unasked (a fork bomb,
 * a forgotten `&`). The host hears of the end unless nobody waits for it. */
static void session_finish(struct session *s)
{
    s->status = s->root->exit_status;
    proc_free(s->root);
    s->root = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
        if (ptable.procs[i].sess == s) {
            ptable.procs[i].sess = 0;
            ptable.procs[i].hup_at = s->background ? 0 : s->deadline ? s->deadline : kernel_ticks();
        }
    }
    if (s->fout)
        s->fout->ob = 0;
    if (s->ferr)
        s->ferr->ob = 0;
    if (s->fin && s->fin->ino) { /* the stdin copy goes; whoever still holds it reads an empty stdin */
        s->fin->type = F_STDIN;
        fs_release(s->fin->ino);
        s->fin->ino = 0;
    }
    session_put_files(s);
    s->stdin_file = 0;
    s->done = 1;
    if (s->background) {
        outbuf_free(&s->out);
        outbuf_free(&s->err);
        s->id = 0;
    } else {
        kernel_event();
    }
}

void sessions_check(void)
{
    uint64_t now = kernel_ticks();
    for (int k = 0; k < MAX_SESS; k++) {
        struct session *s = &sessions[k];
        if (!s->id || s->done)
            continue;
        if (s->deadline && now >= s->deadline) { /* again each time: children forked meanwhile too */
            s->timed_out = 1;
            for (int i = 0; i < MAX_PROCS; i++)
                if (ptable.procs[i].sess == s)
                    kill_proc(&ptable.procs[i], 9, 0);
        }
        if (s->root->state == P_ZOMBIE && !s->root->nthreads)
            session_finish(s);
    }
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->state == P_ZOMBIE && !p->nthreads && p->ppid == 0 && !(p->sess && p->sess->root == p))
            proc_free(p);
        if (p->hup_at && now >= p->hup_at) {
            p->hup_at = 0;
            kill_proc(p, 1, 0);
        }
        if (p->alarm_at && now >= p->alarm_at) {
            p->alarm_at = p->alarm_every ? now + p->alarm_every : 0;
            kill_proc(p, 14, 0); /* SIGALRM */
        }
    }
}

uint64_t next_deadline(void)
{
    uint64_t t = UINT64_MAX;
    for (int i = 0; i < MAX_PROCS; i++) {
        const struct proc *p = &ptable.procs[i];
        if (p->state != P_BLOCKED)
            continue;
        if ((p->why == W_SLEEP || p->wake_tick) && p->wake_tick < t)
            t = p->wake_tick;
        if (p->hup_at && p->hup_at < t)
            t = p->hup_at;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (ptable.procs[i].alarm_at && ptable.procs[i].alarm_at < t)
            t = ptable.procs[i].alarm_at;
    for (int k = 0; k < MAX_SESS; k++)
        if (sessions[k].id && !sessions[k].done && sessions[k].deadline && sessions[k].deadline < t)
            t = sessions[k].deadline;
    return t ? t : 1;
}

static struct session *session_new(void)
{
    for (int k = 0; k < MAX_SESS; k++) {
        struct session *s = &sessions[k];
        if (!s->id) {
            kmemset(s, 0, sizeof(*s));
            next_sess = next_sess >= 0x7ffffff0 ? 1 : next_sess + 1;
            s->id = next_sess;
            return s;
        }
    }
    return 0;
}

/* Undoes a session that could not start (its one process never ran). */
static void session_abort(struct session *s)
{
    struct proc *p = s->root;
    files_put(p);
    write_cr3(LEL_GPA_PML4);
    mm_put(p->mm);
    p->mm = 0;
    exe_set(p, 0);
    proc_free(p);
    session_put_files(s);
    outbuf_free(&s->out);
    outbuf_free(&s->err);
    s->id = 0;
}

/* Opens the session's stdin (the given bytes, or empty), stdout and stderr as fds 0-2 of its
 * first process; the session keeps a reference of its own to each. */
static int session_files(struct session *s, struct proc *p, const struct proc_spec *spec)
{
    s->fout = file_new(F_OUT, 0, 1);
    s->ferr = spec->merge_err ? 0 : file_new(F_OUT, 0, 1);
    if (spec->stdin_len) {
        if ((s->stdin_file = fs_anon_file()) &&
            fs_write(s->stdin_file, 0, spec->stdin_data, spec->stdin_len) == (int64_t)spec->stdin_len)
            s->fin = file_new(F_INODE, s->stdin_file, 0);
    } else {
        s->fin = file_new(F_STDIN, 0, 0);
    }
    if (!s->fout || (!spec->merge_err && !s->ferr) || !s->fin)
        return -ENOMEM;
    s->fout->ob = &s->out;
    if (s->ferr)
        s->ferr->ob = &s->err;
    struct file *e = s->ferr ? s->ferr : s->fout;
    p->files->fd[0] = s->fin;
    p->files->fd[1] = s->fout;
    p->files->fd[2] = e;
    s->fin->refs++;
    s->fout->refs += 1 + (e == s->fout);
    if (s->ferr)
        s->ferr->refs++;
    return 0;
}

/* A command's argv and env (without one: PATH, HOME and TERM) into a new address space. */
static int args_of_spec(struct args *a, const struct proc_spec *spec)
{
    static const char defenv[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0HOME=/root\0TERM=dumb";
    int r = spec->argc ? args_init(a) : -E2BIG_;
    if (r == 0)
        r = args_put_list(a, spec->env ? spec->env : defenv, spec->env ? spec->envc : 3);
    if (r == 0)
        r = args_put_list(a, spec->argv, spec->argc);
    a->argc = spec->argc;
    a->envc = spec->env ? spec->envc : 3;
    return r;
}

int start(const struct image *im, const struct proc_spec *spec)
{
    uint64_t entry, sp;
    struct inode *cwd = fs_root();
    if (spec->cwd && (fs_lookup(fs_root(), spec->cwd, 1, &cwd) < 0 || (cwd->mode & S_IFMT) != S_IFDIR))
        return -ENOENT;
    struct session *s = session_new();
    struct proc *p = s ? proc_alloc() : 0;
    if (!p) {
        if (s)
            s->id = 0;
        return -EAGAIN;
    }
    s->root = p;
    s->background = spec->background;
    p->sess = s;
    p->state = P_BLOCKED; /* not runnable until it is complete */
    ptable.cur = p; /* the loader and the file helpers work on the current process */
    struct args a = {0};
    int r = (p->files = files_new(cwd, 0)) ? 0 : -ENOMEM;
    if (r == 0)
        r = args_of_spec(&a, spec);
    if (r == 0)
        r = load_program(im, &a, &entry, &sp);
    mm_put(a.mm); /* what load_program did not take */
    if (r == 0 && im->ino)
        set_exe_path(p, fs_root(), spec->argv);
    if (r == 0)
        r = session_files(s, p, spec);
    ptable.cur = 0;
    write_cr3(LEL_GPA_PML4);
    if (r < 0) {
        session_abort(s);
        return r;
    }
    struct uregs u;
    kmemset(&u, 0, sizeof(u));
    u.rcx = entry;
    u.r11 = 0x202;
    u.rsp = sp;
    first_frame(p, &u);
    s->deadline = spec->timeout_ticks ? kernel_ticks() + spec->timeout_ticks : 0;
    p->state = P_RUNNABLE;
    return s->id;
}

int proc_start(const struct proc_spec *spec)
{
    struct image im;
    int r = image_of(fs_root(), spec->argv, &im);
    return r < 0 ? r : start(&im, spec);
}

int proc_start_test(void)
{
    struct image im = {0, user_test_elf, (uint64_t)(user_test_elf_end - user_test_elf)};
    struct proc_spec spec = {.argv = "test", .argc = 1, .merge_err = 1};
    return start(&im, &spec);
}

static struct session *session_find(int id)
{
    for (int k = 0; k < MAX_SESS; k++)
        if (sessions[k].id && (sessions[k].id == id || (id == 0 && sessions[k].done && !sessions[k].background)))
            return &sessions[k];
    return 0;
}

int proc_done(int id)
{
    struct session *s = session_find(id);
    return !s || s->done;
}

static uint64_t outbuf_copy(const struct outbuf *b, uint8_t *dst, uint64_t cap)
{
    uint64_t n = b->len < cap ? b->len : cap;
    for (uint64_t off = 0; off < n; off += PAGE_SIZE)
        kmemcpy(dst + off, b->pages[off / PAGE_SIZE], n - off < PAGE_SIZE ? n - off : PAGE_SIZE);
    return n;
}

int proc_collect(int id, void *out, uint64_t out_cap, void *err, uint64_t err_cap, struct proc_result *res)
{
    struct session *s = session_find(id);
    if (!s && id == 0)
        return 0; /* none has ended */
    if (!s || s->background) /* a background command's result is never kept */
        return -ENOENT;
    if (!s->done)
        return 0;
    kmemset(res, 0, sizeof(*res));
    res->status = s->status;
    res->timed_out = s->timed_out;
    res->out_len = outbuf_copy(&s->out, out, out_cap);
    res->err_len = err ? outbuf_copy(&s->err, err, err_cap) : 0;
    res->out_truncated = s->out.truncated || res->out_len < s->out.len;
    res->err_truncated = s->err.truncated || res->err_len < s->err.len;
    outbuf_free(&s->out);
    outbuf_free(&s->err);
    id = s->id;
    s->id = 0;
    return id;
}

int proc_kill_session(int id)
{
    struct session *s = session_find(id);
    if (!s || !id)
        return -ENOENT;
    for (int i = 0; i < MAX_PROCS; i++)
        if (ptable.procs[i].sess == s)
            kill_proc(&ptable.procs[i], 9, 0);
    return 0;
}
