/* Commands from the host as sessions: each has its first process, its stdout and stderr
 * buffers and its deadline; the host starts, collects and kills them (see README.md). */
#include "session.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../fs/pipe.h"
#include "../fs/pty.h"
#include "../lel_guest_abi.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "exec.h"
#include "ktimer.h"
#include "proc.h"
#include "signal.h"

static int next_sess; /* the last session id handed out */

/* A command (session): its first process, its output, its deadline. It ends when that process
 * exits; the host then collects the result. Processes it started stay in it until then. */
#define MAX_SESS 16

static struct session sessions[MAX_SESS];

/* The page holding byte `pos` of b's ring, made on first use; NULL without memory. */
static uint8_t *outbuf_page(struct outbuf *b, uint64_t pos)
{
    uint8_t **pg = &b->pages[(pos % OUT_BYTES) / PAGE_SIZE];
    if (!*pg)
        *pg = kpage_alloc();
    return *pg;
}

/* Bytes b takes now: up to OUT_BYTES held that the host has not read (collected: rd stays 0). */
static uint64_t outbuf_room(const struct outbuf *b)
{
    uint64_t held = b->len - b->rd;
    return held < OUT_BYTES ? OUT_BYTES - held : 0;
}

int outbuf_writable(const struct outbuf *b)
{
    return !b || !b->stream || outbuf_room(b) > 0;
}

/* New output in a streamed session: the host hears of it once until it reads. */
static void outbuf_bell(struct outbuf *b)
{
    struct session *s = b->owner;
    if (b->stream && s && !s->rung) {
        s->rung = 1;
        kernel_event();
    }
}

long outbuf_write_user(struct file *f, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint64_t done = 0;
    while (done < n) {
        struct outbuf *b = f->ob;
        if (!b)
            return (long)n; /* the command ended: discarded */
        uint64_t room = outbuf_room(b), off = b->len % PAGE_SIZE, chunk = PAGE_SIZE - off;
        if (!room && b->stream) { /* the host is behind: wait for it as for a pipe's reader */
            if (f->flags & O_NONBLOCK_)
                return done ? (long)done : -EAGAIN;
            if (sig_ready(cur))
                return done ? (long)done : -ERESTART_;
            block(W_PIPE);
            continue;
        }
        uint8_t *pg = room ? outbuf_page(b, b->len) : 0;
        if (!pg) { /* collected and full, or no memory: the rest is dropped */
            b->truncated = 1;
            return (long)n;
        }
        if (chunk > room)
            chunk = room;
        if (chunk > n - done)
            chunk = n - done;
        if (copy_user(buf + done, pg + off, chunk, 0) < 0)
            return done ? (long)done : -EFAULT;
        b->len += chunk;
        done += chunk;
        outbuf_bell(b);
    }
    return (long)n;
}

/* Kernel bytes into b, as far as it has room (a pty's last output at the session's end). */
static void outbuf_put(struct outbuf *b, const uint8_t *src, uint64_t n)
{
    for (uint64_t done = 0; done < n;) {
        uint64_t room = outbuf_room(b), off = b->len % PAGE_SIZE, chunk = PAGE_SIZE - off;
        uint8_t *pg = room ? outbuf_page(b, b->len) : 0;
        if (!pg) {
            b->truncated = 1;
            return;
        }
        chunk = chunk < room ? chunk : room;
        chunk = chunk < n - done ? chunk : n - done;
        kmemcpy(pg + off, src + done, chunk);
        b->len += chunk;
        done += chunk;
    }
}

/* A pty session's terminal had output, or took input and has room again: the host hears of
 * it once until it reads (or writes). Called from the pty: it only takes note. */
static void session_pty_note(void *ctx)
{
    struct session *s = ctx;
    if (!s->pty)
        return;
    if (!s->rung && pty_output_pending(s->pty)) {
        s->rung = 1;
        kernel_event();
    }
    if (s->in_want == 1 && pty_input_room(s->pty)) {
        s->in_want = 2;
        kernel_event();
    }
}

/* Copies what b holds unread, up to cap, to dst and marks it read; returns its length. */
static uint64_t outbuf_take(struct outbuf *b, uint8_t *dst, uint64_t cap)
{
    uint64_t n = b->len - b->rd < cap ? b->len - b->rd : cap;
    for (uint64_t done = 0; done < n;) {
        uint64_t pos = b->rd + done, off = pos % PAGE_SIZE, chunk = PAGE_SIZE - off;
        const uint8_t *pg = b->pages[(pos % OUT_BYTES) / PAGE_SIZE];
        if (chunk > n - done)
            chunk = n - done;
        if (pg)
            kmemcpy(dst + done, pg + off, chunk);
        else
            kmemset(dst + done, 0, chunk);
        done += chunk;
    }
    b->rd += n;
    return n;
}

static void outbuf_free(struct outbuf *b)
{
    for (uint64_t i = 0; i < OUT_PAGES; i++) {
        if (b->pages[i])
            kpage_free(b->pages[i]);
        b->pages[i] = 0;
    }
}

/* The session lets go of its stdin pipe's writing end: its reader sees the end of the input. */
static void session_close_stdin(struct session *s)
{
    if (s->inp)
        pipe_drop(s->inp, 0);
    s->inp = 0;
    s->in_want = 0;
}

/* The session lets go of its terminal's master, what the programs wrote last kept for the
 * host: the terminal hangs up (SIGHUP to what still runs in its foreground). */
static void session_close_pty(struct session *s)
{
    uint8_t tmp[512];
    struct pty *t = s->pty;
    if (!t)
        return;
    for (uint64_t n; (n = pty_take_output(t, tmp, sizeof(tmp))) > 0;)
        outbuf_put(&s->out, tmp, n);
    s->pty = 0;
    pty_kernel_close(t);
}

static void session_put_files(struct session *s)
{
    session_close_pty(s);
    file_put(s->fout);
    file_put(s->ferr);
    file_put(s->fin);
    s->fout = s->ferr = s->fin = 0;
    fs_anon_free(s->stdin_file);
    s->stdin_file = 0;
    session_close_stdin(s);
}

/* The session's root exited: its status is kept for the host. The processes it leaves behind
 * run on detached, their output discarded and their stdin empty; those of a command (not of a
 * background start) get SIGHUP at the command's timeout, which ends them unless they ignore it
 * (nohup) or left with setsid, so nothing a command starts outlives it unasked (a fork bomb,
 * a forgotten `&`). The host hears of the end unless nobody waits for it. */
static void session_finish(struct session *s)
{
    s->status = s->root->exit_status;
    s->signaled = s->root->exit_status >= 128 && s->root->killed;
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
    wake(W_PIPE, 0); /* writers that waited for the host discard now */
    if (s->background) {
        outbuf_free(&s->out);
        outbuf_free(&s->err);
        s->id = 0;
    } else {
        kernel_event();
    }
}

/* The CPU-time interval timers of process `g` (checked at every scheduler step, so within a
 * tick of the CPU time they name: a process that runs is preempted at each tick). */
static void cpu_timers_check(struct proc *g)
{
    uint64_t c = proc_cpu(g);
    for (int k = 0; k < 2; k++) {
        uint64_t at = g->cpu_itv_at[k], every = g->cpu_itv_every[k];
        if (!at || c < at)
            continue;
        g->cpu_itv_at[k] = !every ? 0 : at + every > c ? at + every : c + every;
        struct sigsrc src = {0, SI_KERNEL_, 0, 0, 0};
        sig_send_process(g, k ? 27 : 26, &src); /* SIGPROF, SIGVTALRM */
    }
}

void sessions_check(void)
{
    ktimer_check();
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
        if (s->in_want == 1 && s->inp && (!s->inp->readers || s->inp->count <= pipe_cap(s->inp) / 2)) {
            s->in_want = 2; /* room for more of the host's stdin (or nobody to read it) */
            kernel_event();
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
            struct sigsrc alrm = {0, SI_KERNEL_, 0, 0, 0}; /* waits while blocked, as any timer's */
            sig_send_process(p->group, 14, &alrm); /* SIGALRM */
        }
        if (p->state != P_FREE && p->group == p && (p->cpu_itv_at[0] || p->cpu_itv_at[1]))
            cpu_timers_check(p);
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
    uint64_t k = ktimer_next(); /* timerfds and POSIX timers */
    t = k < t ? k : t;
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

/* A pty session: fds 0-2 of its first process are the slave of a new terminal (its
 * controlling terminal: it leads the session and the foreground group), the session holds
 * the master. Its output is always streamed. */
static int session_pty_files(struct session *s, struct proc *p, const struct proc_spec *spec)
{
    struct file *sl;
    s->out.stream = s->err.stream = 1;
    s->out.owner = s->err.owner = s;
    if (!(s->pty = pty_kernel_open(spec->cols, spec->rows, session_pty_note, s, &sl)))
        return -ENOMEM;
    if (files_set(p->files, 0, sl) < 0) {
        file_put(sl);
        return -ENOMEM;
    }
    files_set(p->files, 1, sl);
    files_set(p->files, 2, sl);
    sl->refs += 2;
    pty_set_session(s->pty, p->sid, p->pgid);
    return 0;
}

/* Opens the session's stdin (the given bytes, or empty), stdout and stderr as fds 0-2 of its
 * first process; the session keeps a reference of its own to each. */
static int session_files(struct session *s, struct proc *p, const struct proc_spec *spec)
{
    if (spec->pty)
        return session_pty_files(s, p, spec);
    s->fout = file_new(F_OUT, 0, 1);
    s->ferr = spec->merge_err ? 0 : file_new(F_OUT, 0, 1);
    s->out.stream = s->err.stream = spec->stream;
    s->out.owner = s->err.owner = s;
    if (spec->stdin_pipe) { /* the file holds the pipe's reader, the session its writer */
        if ((s->inp = pipe_new()) && (s->fin = file_new(F_PIPE_R, 0, 0)))
            s->fin->pipe = s->inp;
        else if (s->inp) {
            pipe_drop(s->inp, 1);
            session_close_stdin(s);
        }
    } else if (spec->stdin_len) {
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
    if (files_set(p->files, 0, s->fin) < 0) /* the first page of the table; 1 and 2 are on it */
        return -ENOMEM;
    files_set(p->files, 1, s->fout);
    files_set(p->files, 2, e);
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
    rlim_init(p);
    p->pgid = p->sid = p->pid; /* it leads a session and a process group of its own */
    for (int i = 0; i < 4; i++) /* real, effective, saved and file-system: as after su */
        p->uid[i] = p->gid[i] = spec->id;
    p->groups[0] = spec->id; /* its group, as initgroups gives a user without others */
    p->ngroups = 1;
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
    ptable.cur = 0; /* its page tables stay loaded (sched.c), for its first run */
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
    res->signaled = s->signaled;
    uint64_t out_held = s->out.len - s->out.rd, err_held = s->err.len - s->err.rd;
    res->out_len = outbuf_take(&s->out, out, out_cap);
    res->err_len = err ? outbuf_take(&s->err, err, err_cap) : 0;
    res->out_truncated = s->out.truncated || res->out_len < out_held;
    res->err_truncated = s->err.truncated || res->err_len < err_held;
    outbuf_free(&s->out);
    outbuf_free(&s->err);
    id = s->id;
    s->id = 0;
    return id;
}

int proc_signal_session(int id, int sig)
{
    struct session *s = session_find(id);
    if (!s || !id)
        return -ENOENT;
    for (int i = 0; i < MAX_PROCS; i++) {
        struct proc *p = &ptable.procs[i];
        if (p->sess != s)
            continue;
        if (sig == 9)
            kill_proc(p, 9, 0);
        else if (p->group == p) /* a process, as kill(2) from pid 1 (the agent) would */
            kill_process(p, sig, 1);
    }
    return 0;
}

int proc_read_output(int id, void *out, void *err, uint64_t cap, struct proc_result *res)
{
    struct session *s = session_find(id);
    if (!s || !id)
        return -ENOENT;
    if (!s->out.stream)
        return -EINVAL;
    kmemset(res, 0, sizeof(*res));
    res->out_len = outbuf_take(&s->out, out, cap);
    if (s->pty) /* a terminal's output comes as stdout */
        res->out_len += pty_take_output(s->pty, (uint8_t *)out + res->out_len, cap - res->out_len);
    res->err_len = outbuf_take(&s->err, err, cap);
    res->ended = s->done;
    s->rung = 0;
    wake(W_PIPE, 0); /* its writers have room again */
    return 0;
}

int proc_write_stdin(int id, const uint8_t *src, uint64_t n, int close, uint64_t *taken)
{
    struct session *s = session_find(id);
    struct pipe *p = s && id ? s->inp : 0;
    *taken = 0;
    if (!s || !id)
        return -ENOENT;
    if (s->pty && !close) { /* typed at its terminal */
        *taken = pty_put_input(s->pty, src, n);
        s->in_want = *taken < n;
        return 0;
    }
    if (!p)
        return -EINVAL;
    if (!p->readers) { /* the program closed its stdin (or ended) */
        *taken = n;
        if (close)
            session_close_stdin(s);
        s->in_want = 0;
        return -EPIPE;
    }
    *taken += pipe_put(p, src + *taken, n - *taken); /* readers and pollers wake */
    s->in_want = *taken < n;
    if (close && *taken == n)
        session_close_stdin(s);
    return 0;
}

int proc_resize(int id, uint16_t cols, uint16_t rows)
{
    struct session *s = session_find(id);
    if (!s || !id)
        return -ENOENT;
    if (!s->pty)
        return -EINVAL;
    pty_resize(s->pty, cols, rows);
    return 0;
}

uint32_t proc_poll(uint32_t *pairs, uint32_t max)
{
    uint32_t n = 0;
    for (int k = 0; k < MAX_SESS && n < max; k++) {
        const struct session *s = &sessions[k];
        if (!s->id || s->background)
            continue;
        int pty_out = s->pty && pty_output_pending(s->pty), pty_room = s->pty && pty_input_room(s->pty);
        uint32_t fl = (s->out.stream && (s->out.len > s->out.rd || s->err.len > s->err.rd || pty_out) ? LEL_POLL_OUTPUT : 0) |
                      (s->in_want && ((s->inp && (!s->inp->readers || s->inp->count < pipe_cap(s->inp))) || pty_room) ? LEL_POLL_STDIN : 0) |
                      (s->done ? LEL_POLL_ENDED : 0);
        if (fl) {
            pairs[2 * n] = (uint32_t)s->id;
            pairs[2 * n + 1] = fl;
            n++;
        }
    }
    return n;
}
