/* process.Process on the host: a process is a command in the guest (its pid is the guest's
 * command id). Start answers with the start event at once; the guest streams the command's
 * output: on its doorbell the sandbox asks what is ready (lel_vm_cmd_poll) and envd reads it
 * (lel_vm_cmd_read) into data frames for every stream following the process, unless one of
 * them is ENVD_BACKLOG behind its client: the output then waits in the guest, whose writers
 * wait too, until that stream drains (so a process printing 1 GB costs the daemon a few MiB,
 * and none of it is lost). A process nobody follows has its output read and dropped, as envd
 * does. The SDK runs every command as `/bin/bash -l -c <cmd>`: where the guest has no
 * /bin/bash, busybox's `/bin/sh -l -c <cmd>` runs it (a login shell too). stdin: see
 * lel_envd_stdin.c. SendSignal sends SIGTERM or SIGKILL to the command's processes; Connect to
 * a process that ended replays its end. A Start with `pty` runs the command on a pseudo-terminal
 * of that size in the guest (LEL_CMD_PTY: its controlling terminal, stdin, stdout and stderr):
 * what it writes comes as `pty` data frames, SendInput's `pty` bytes are typed at it and Update
 * resizes it (SIGWINCH). */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_FRAME 32768 /* bytes of output per data frame, as envd sends them */
#define PTY_FRAME 16384  /* ... and of a pty's */
#define ARG_MAX_BYTES (128u << 10)
#define HOME_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static void proc_free(struct envd_proc *p)
{
    json_decref(p->config);
    free(p->tag);
    free(p);
}

void lel__envd_proc_forget(lel_envd_t *e)
{
    while (e->procs) {
        struct envd_proc *p = e->procs;
        e->procs = p->next;
        lel__envd_stdin_fail(p, "unavailable", "the sandbox stopped");
        proc_free(p);
    }
    e->nprocs = 0;
}

/* A unary error set on c (code, message) as the end of a stream instead. */
static void as_stream_error(lel_call_t *c)
{
    char code[40], msg[512];
    snprintf(code, sizeof(code), "%s", json_string_value(json_object_get(c->resp, "code")) ?: "unknown");
    snprintf(msg, sizeof(msg), "%s", json_string_value(json_object_get(c->resp, "message")) ?: "");
    lel__envd_stream_fail(c, code, "%s", msg);
}

struct envd_proc *lel__envd_proc_select(lel_envd_t *e, json_t *sel)
{
    json_t *pid = json_object_get(sel, "pid"), *tag = json_object_get(sel, "tag");
    for (struct envd_proc *p = e->procs; p; p = p->next) {
        if (json_is_integer(pid) && json_integer_value(pid) == (json_int_t)p->pid)
            return p;
        if (json_is_string(pid) && strtoull(json_string_value(pid), NULL, 10) == p->pid)
            return p;
        if (json_is_string(tag) && p->tag && !strcmp(json_string_value(tag), p->tag))
            return p;
    }
    return NULL;
}

/* A JSON string that can be an argument: no NUL, within Linux's limit. */
static const char *arg_string(json_t *j)
{
    const char *s = json_string_value(j);
    return s && strlen(s) == json_string_length(j) && json_string_length(j) < ARG_MAX_BYTES ? s : NULL;
}

/* Does the guest have /bin/bash (it follows links)? */
static int has_bash(const struct lel_envd_host *h)
{
    static const char path[] = "/bin/bash";
    uint64_t arg[4] = {sizeof(path), 0, 0, 0}, ret[4] = {0};
    return lel_vm_call_bulk(h->vm, LEL_OP_FILE_READ, arg, path, sizeof(path), ret, 5000) == 0 && ret[0] == 1;
}

/* argv for the request's cmd and args; NULL with the stream error set. free() the array only. */
static const char **make_argv(lel_call_t *c, const struct lel_envd_host *h, json_t *proc)
{
    json_t *args = json_object_get(proc, "args"), *v;
    const char *cmd = arg_string(json_object_get(proc, "cmd"));
    size_t n = json_is_array(args) ? json_array_size(args) : 0, i;
    if (!cmd || !*cmd || (args && !json_is_null(args) && !json_is_array(args))) {
        lel__envd_stream_fail(c, "invalid_argument", "process.cmd must be a string (and args a list of strings)");
        return NULL;
    }
    const char **argv = calloc(n + 2, sizeof(char *));
    if (!argv) {
        lel__envd_stream_fail(c, "resource_exhausted", "out of memory");
        return NULL;
    }
    argv[0] = !strcmp(cmd, "/bin/bash") && !has_bash(h) ? "/bin/sh" : cmd;
    json_array_foreach(args, i, v)
    {
        if (!(argv[i + 1] = arg_string(v))) {
            free(argv);
            lel__envd_stream_fail(c, "invalid_argument", "process.args[%zu] must be a string without NUL", i);
            return NULL;
        }
    }
    return argv;
}

/* The environment: PATH, HOME, USER and LOGNAME, then the template's env (its image's), the
 * sandbox's envVars, the request's envs (later ones win). NULL-terminated "K=V"; NULL with the
 * stream error set. */
static char **make_env(lel_call_t *c, const struct lel_envd_host *h, json_t *envs, const struct envd_user *u)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "PATH", HOME_PATH, "HOME", u->home, "USER", u->name, "LOGNAME", u->name);
    const char *k;
    json_t *v;
    if (h->tpl_env)
        json_object_update(m, h->tpl_env);
    if (h->env_vars)
        json_object_update(m, h->env_vars);
    if (envs && !json_is_null(envs) && !json_is_object(envs)) {
        json_decref(m);
        lel__envd_stream_fail(c, "invalid_argument", "process.envs must be a map of strings");
        return NULL;
    }
    json_object_foreach(envs, k, v)
    {
        if (!arg_string(v) || !*k || strchr(k, '=')) {
            json_decref(m);
            lel__envd_stream_fail(c, "invalid_argument", "process.envs['%.64s'] must be a string without NUL", k);
            return NULL;
        }
        json_object_set(m, k, v);
    }
    char **env = calloc(json_object_size(m) + 1, sizeof(char *));
    size_t n = 0;
    json_object_foreach(m, k, v)
    {
        if (env && asprintf(&env[n], "%s=%s", k, json_string_value(v)) >= 0)
            n++;
    }
    json_decref(m);
    if (!env)
        lel__envd_stream_fail(c, "resource_exhausted", "out of memory");
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Why a command did not start, as the stream's error. */
static void start_failed(lel_call_t *c, int r, const char *cwd, const char *cmd)
{
    if (r == LEL_ST_ENOENT)
        lel__envd_stream_fail(c, "invalid_argument", "error starting process: cwd '%s' or '%s' does not exist", cwd, cmd);
    else if (r == LEL_ST_EAGAIN)
        lel__envd_stream_fail(c, "resource_exhausted", "too many processes running in the sandbox");
    else if (r == 12)
        lel__envd_stream_fail(c, "resource_exhausted", "the sandbox is out of memory");
    else if (r == 7 || r == -E2BIG)
        lel__envd_stream_fail(c, "invalid_argument", "the command and its environment are too large");
    else if (r > 0)
        lel__envd_stream_fail(c, "invalid_argument", "error starting process (guest error %d)", r);
    else
        lel__envd_stream_fail(c, "unavailable", "the sandbox's guest did not answer");
}

/* A PTY message's size ({"size": {"cols", "rows"}}, both 1..65535): 0, or -1 with the
 * stream's error set. */
static int pty_size(lel_call_t *c, json_t *pty, uint16_t *cols, uint16_t *rows)
{
    json_t *size = json_object_get(pty, "size"), *jc = json_object_get(size, "cols"), *jr = json_object_get(size, "rows");
    json_int_t vc = json_is_integer(jc) ? json_integer_value(jc) : -1, vr = json_is_integer(jr) ? json_integer_value(jr) : -1;
    if (!json_is_object(pty) || vc < 1 || vc > 65535 || vr < 1 || vr > 65535) {
        lel__envd_stream_fail(c, "invalid_argument", "pty.size must have cols and rows from 1 to 65535");
        return -1;
    }
    *cols = (uint16_t)vc;
    *rows = (uint16_t)vr;
    return 0;
}

static int start(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *rq)
{
    json_t *proc = json_object_get(rq, "process"), *pty = json_object_get(rq, "pty"), *tag = json_object_get(rq, "tag");
    int piped = json_is_true(json_object_get(rq, "stdin"));
    struct envd_user u;
    if (!json_is_object(proc)) {
        lel__envd_stream_fail(c, "invalid_argument", "process is required");
        return 0;
    }
    uint16_t cols = 0, rows = 0;
    int on_pty = pty && !json_is_null(pty);
    if (on_pty && pty_size(c, pty, &cols, &rows) < 0)
        return 0;
    if (on_pty)
        piped = 0; /* its input is the terminal's */
    if (lel__envd_user(c, NULL, 1, &u) < 0) {
        as_stream_error(c);
        return 0;
    }
    json_t *jcwd = json_object_get(proc, "cwd");
    const char *cwd_in = json_is_string(jcwd) ? json_string_value(jcwd) : "";
    size_t cwd_len = json_is_string(jcwd) ? json_string_length(jcwd) : 0;
    if (!cwd_len && h->workdir) { /* no cwd: the template's WORKDIR, as E2B's envd starts there */
        cwd_in = h->workdir;
        cwd_len = strlen(cwd_in);
    }
    char *cwd = lel__envd_path(cwd_in, cwd_len, u.home);
    const char **argv = cwd ? make_argv(c, h, proc) : NULL;
    char **env = argv ? make_env(c, h, json_object_get(proc, "envs"), &u) : NULL;
    if (!cwd)
        lel__envd_stream_fail(c, "invalid_argument", "invalid cwd");
    long long timeout = c->connect_timeout ? strtoll(c->connect_timeout, NULL, 10) : 0; /* the process's lifetime */
    uint32_t id = 0;
    int r = -ENOMEM;
    struct envd_proc *p = env ? calloc(1, sizeof(*p)) : NULL;
    if (p) {
        lel__envd_home(e, h, &u);
        struct lel_cmd spec = {argv, (const char *const *)env, cwd, NULL, 0, timeout > 0 ? (uint64_t)timeout : 0,
                               LEL_CMD_STREAM | (piped ? LEL_CMD_STDIN_PIPE : 0) | (u.id ? LEL_VM_CMD_AS(u.id) : 0)};
        r = on_pty ? lel_vm_cmd_start_pty(h->vm, &spec, cols, rows, &id) : lel_vm_cmd_start(h->vm, &spec, &id);
        if (r)
            start_failed(c, r, cwd, argv[0]);
    } else if (env) {
        lel__envd_stream_fail(c, "resource_exhausted", "out of memory");
    }
    free(argv);
    free_env(env);
    free(cwd);
    if (r) {
        free(p);
        return 0;
    }
    p->pid = id;
    p->stdin_pipe = piped;
    p->pty = on_pty;
    p->config = json_deep_copy(proc);
    p->tag = json_is_string(tag) ? strdup(json_string_value(tag)) : NULL;
    p->next = e->procs;
    e->procs = p;
    e->nprocs++;
    struct envd_stream *st = lel__envd_stream_open(e, h, c, json_pack("{s:{s:{s:I}}}", "event", "start", "pid",
                                                                        (json_int_t)id), "application/connect+json",
                                                  UINT64_MAX);
    if (st)
        st->pid = id;
    return 0;
}

/* Ended processes Connect replays (their end event; not their output), newest first: at most
 * ENDED_KEPT of them, each for ENDED_MS. */
#define ENDED_KEPT 32
#define ENDED_MS (10 * 60 * 1000)

struct envd_ended {
    uint32_t pid;
    char *tag;
    json_t *end; /* the EndEvent */
    int64_t at_ms;
    struct envd_ended *next;
};

void lel__envd_ended_forget(lel_envd_t *e, size_t keep)
{
    size_t n = 0;
    int64_t now = lel_mono_ms();
    for (struct envd_ended **pp = &e->ended; *pp;) {
        struct envd_ended *x = *pp;
        if (n++ < keep && now - x->at_ms < ENDED_MS) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        free(x->tag);
        json_decref(x->end);
        free(x);
    }
}

static void ended_keep(lel_envd_t *e, const struct envd_proc *p, json_t *end)
{
    struct envd_ended *x = calloc(1, sizeof(*x));
    if (!x)
        return;
    x->pid = p->pid;
    x->tag = p->tag ? strdup(p->tag) : NULL;
    x->end = json_incref(end);
    x->at_ms = lel_mono_ms();
    x->next = e->ended;
    e->ended = x;
    lel__envd_ended_forget(e, ENDED_KEPT);
}

static struct envd_ended *ended_select(lel_envd_t *e, json_t *sel)
{
    json_t *pid = json_object_get(sel, "pid"), *tag = json_object_get(sel, "tag");
    lel__envd_ended_forget(e, ENDED_KEPT);
    for (struct envd_ended *x = e->ended; x; x = x->next)
        if ((json_is_integer(pid) && json_integer_value(pid) == (json_int_t)x->pid) ||
            (json_is_string(pid) && strtoull(json_string_value(pid), NULL, 10) == x->pid) ||
            (json_is_string(tag) && x->tag && !strcmp(json_string_value(tag), x->tag)))
            return x;
    return NULL;
}

static int connect_to(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *rq)
{
    struct envd_proc *p = lel__envd_proc_select(e, json_object_get(rq, "process"));
    struct envd_ended *x = p ? NULL : ended_select(e, json_object_get(rq, "process"));
    if (x) { /* it ended: its start and its end again */
        struct envd_stream *st = lel__envd_stream_open(e, h, c, json_pack("{s:{s:{s:I}}}", "event", "start", "pid",
                                                                            (json_int_t)x->pid),
                                                      "application/connect+json", UINT64_MAX);
        if (st) {
            lel__envd_stream_push(st, json_pack("{s:{s:O}}", "event", "end", x->end));
            lel__envd_stream_end(e, st, NULL, NULL);
        }
        return 0;
    }
    if (!p) {
        lel__envd_stream_fail(c, "not_found", "process not found");
        return 0;
    }
    struct envd_stream *st = lel__envd_stream_open(e, h, c, json_pack("{s:{s:{s:I}}}", "event", "start", "pid",
                                                                        (json_int_t)p->pid), "application/connect+json",
                                                  UINT64_MAX);
    if (st)
        st->pid = p->pid;
    return 0;
}

static void list(lel_envd_t *e, lel_call_t *c)
{
    json_t *out = json_array();
    for (struct envd_proc *p = e->procs; p; p = p->next) {
        json_t *info = json_pack("{s:O, s:I}", "config", p->config, "pid", (json_int_t)p->pid);
        if (p->tag)
            json_object_set_new(info, "tag", json_string(p->tag));
        json_array_append_new(out, info);
    }
    lel__envd_reply(c, json_pack("{s:o}", "processes", out));
}

static void signal_proc(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *rq)
{
    struct envd_proc *p = lel__envd_proc_select(e, json_object_get(rq, "process"));
    json_t *sig = json_object_get(rq, "signal");
    const char *name = json_string_value(sig);
    int n = json_is_integer(sig) ? (int)json_integer_value(sig) : name && !strcmp(name, "SIGNAL_SIGKILL") ? 9
          : name && !strcmp(name, "SIGNAL_SIGTERM")                                                   ? 15 : 0;
    if (!p) {
        lel__envd_error(c, "not_found", "process not found");
        return;
    }
    if (n != 9 && n != 15) {
        lel__envd_error(c, "unimplemented", "only SIGKILL and SIGTERM can be sent");
        return;
    }
    int r = lel_vm_cmd_signal(h->vm, p->pid, n); /* to each process of the command: a trap runs */
    if (r < 0 && r != -ENOENT) {
        lel__envd_error(c, "unavailable", "the sandbox's guest did not answer");
        return;
    }
    if (n == 9)
        p->killed = 1; /* its end says so even from a guest that does not report signals */
    lel__envd_reply(c, NULL);
}

/* Update: a pty's new size (TIOCSWINSZ in the guest, SIGWINCH to its foreground group). */
static void resize(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p, json_t *rq)
{
    json_t *pty = json_object_get(rq, "pty"), *size = json_object_get(pty, "size");
    json_t *jc = json_object_get(size, "cols"), *jr = json_object_get(size, "rows");
    json_int_t vc = json_is_integer(jc) ? json_integer_value(jc) : -1, vr = json_is_integer(jr) ? json_integer_value(jr) : -1;
    if (!pty || json_is_null(pty)) {
        lel__envd_reply(c, NULL); /* nothing to change */
        return;
    }
    if (!p->pty) {
        lel__envd_error(c, "failed_precondition", "the process has no pty");
        return;
    }
    if (vc < 1 || vc > 65535 || vr < 1 || vr > 65535) {
        lel__envd_error(c, "invalid_argument", "pty.size must have cols and rows from 1 to 65535");
        return;
    }
    int r = lel_vm_cmd_resize(h->vm, p->pid, (uint16_t)vc, (uint16_t)vr);
    if (r == -ENOENT || r == -EINVAL)
        lel__envd_error(c, "not_found", "process not found");
    else if (r == -ENOSYS)
        lel__envd_error(c, "unimplemented", "this sandbox's guest has no ptys (start it from a newer template)");
    else if (r < 0)
        lel__envd_error(c, "unavailable", "the sandbox's guest did not answer");
    else
        lel__envd_reply(c, NULL);
}

int lel__envd_proc_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method)
{
    int stream = !strcmp(method, "Start") || !strcmp(method, "Connect");
    static const char *const known[] = {"Start", "Connect", "List", "SendSignal", "SendInput", "CloseStdin",
                                        "Update", "StreamInput", NULL};
    int ok = 0;
    for (int i = 0; known[i]; i++)
        ok |= !strcmp(method, known[i]);
    if (!ok) {
        lel__envd_error(c, "unimplemented", "process.Process/%.32s is not a method", method);
        return 0;
    }
    if (!strcmp(method, "StreamInput")) /* client streaming: its envelopes are the whole body */
        return lel__envd_stdin_stream(e, h, c);
    json_t *rq = lel__envd_request(c, stream);
    if (!rq)
        return 0;
    struct envd_proc *p = NULL;
    int kept = 0;
    if (!strcmp(method, "Start"))
        start(e, h, c, rq);
    else if (!strcmp(method, "Connect"))
        connect_to(e, h, c, rq);
    else if (!strcmp(method, "List"))
        list(e, c);
    else if (!strcmp(method, "SendSignal"))
        signal_proc(e, h, c, rq);
    else if (!(p = lel__envd_proc_select(e, json_object_get(rq, "process"))))
        lel__envd_error(c, "not_found", "process not found");
    else if (!strcmp(method, "CloseStdin"))
        kept = lel__envd_stdin_close(h, c, p);
    else if (!strcmp(method, "SendInput"))
        kept = lel__envd_stdin_send(h, c, p, rq);
    else /* Update */
        resize(h, c, p, rq);
    json_decref(rq);
    return kept;
}

/* The streams following process `pid` (at most cap). */
static size_t followers(lel_envd_t *e, uint32_t pid, struct envd_stream **sts, size_t cap)
{
    size_t n = 0;
    for (struct envd_stream *st = e->streams; st && n < cap; st = st->next)
        if (st->pid == pid && !st->ended)
            sts[n++] = st;
    return n;
}

/* Data frames of `len` bytes of one of the bulk halves (k 0: stdout, 1: stderr; 2: stdout as a
 * pty's), made by hand: {"event":{"data":{"stdout":"<base64>"}}}, DATA_FRAME bytes of output
 * each (PTY_FRAME for a pty, as envd sends them). */
static void data_frames(const struct lel_envd_host *h, int k, uint64_t len, struct envd_stream **sts, size_t nst)
{
    static const char *const pre[3] = {"{\"event\":{\"data\":{\"stdout\":\"", "{\"event\":{\"data\":{\"stderr\":\"",
                                       "{\"event\":{\"data\":{\"pty\":\""};
    size_t plen = strlen(pre[k]), frame = k == 2 ? PTY_FRAME : DATA_FRAME;
    char *buf = nst && len ? malloc(DATA_FRAME) : NULL, *msg = buf ? malloc(plen + DATA_FRAME / 3 * 4 + 16) : NULL;
    for (uint64_t off = 0; msg && off < len; off += frame) {
        size_t n = len - off < frame ? (size_t)(len - off) : frame;
        n = lel_vm_bulk_read(h->vm, (k == 1 ? LEL_BULK_HALF : 0) + off, buf, n);
        memcpy(msg, pre[k], plen);
        size_t m = plen + lel__envd_b64_into(msg + plen, buf, n);
        memcpy(msg + m, "\"}}}", 4);
        for (size_t i = 0; i < nst; i++)
            lel__envd_stream_frame(sts[i], msg, m + 4);
    }
    free(msg);
    free(buf);
}

/* Reads what the guest holds of process p's output into its streams, unless one of them is too
 * far behind (the output then waits in the guest until it drains). */
static void read_output(lel_envd_t *e, const struct lel_envd_host *h, struct envd_proc *p)
{
    struct envd_stream *sts[64];
    size_t nst = followers(e, p->pid, sts, 64);
    for (size_t i = 0; i < nst; i++)
        if (sts[i]->qlen >= ENVD_BACKLOG) {
            p->out_waiting = 1;
            return;
        }
    uint64_t out, err;
    int ended;
    p->out_waiting = 0;
    if (lel_vm_cmd_read(h->vm, p->pid, &out, &err, &ended) < 0)
        return; /* ended and collected meanwhile, or a guest that does not stream */
    data_frames(h, p->pty ? 2 : 0, out, sts, nst);
    data_frames(h, 1, err, sts, nst);
    for (size_t i = 0; i < nst; i++)
        lel__envd_stream_flush(e, sts[i]);
}

static struct envd_proc *proc_by_pid(lel_envd_t *e, uint32_t pid)
{
    for (struct envd_proc *p = e->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

int lel__envd_proc_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, unsigned flags)
{
    struct envd_proc *p = proc_by_pid(e, id);
    if (!p)
        return 0;
    if (flags & LEL_POLL_OUTPUT)
        read_output(e, h, p);
    if (flags & LEL_POLL_STDIN)
        lel__envd_stdin_pump(h, p);
    return 1;
}

void lel__envd_proc_drained(lel_envd_t *e, const struct lel_envd_host *h, uint32_t pid)
{
    struct envd_proc *p = proc_by_pid(e, pid);
    if (p && p->out_waiting && h->vm)
        read_output(e, h, p);
}

/* The frames of a process's end: the last of its output, then the end event. */
static void end_frames(const struct lel_envd_host *h, const struct envd_proc *p, json_t *end,
                       const struct lel_run_result *res, struct envd_stream **sts, size_t nst)
{
    data_frames(h, p->pty ? 2 : 0, res->out_len < LEL_BULK_HALF ? res->out_len : LEL_BULK_HALF, sts, nst);
    data_frames(h, 1, res->err_len < LEL_BULK_HALF ? res->err_len : LEL_BULK_HALF, sts, nst);
    if (res->truncated) {
        char *note = lel__envd_b64("\n[lelantos: output past 1 MiB was dropped]\n", 43);
        for (size_t i = 0; note && i < nst; i++)
            lel__envd_stream_push(sts[i], json_pack("{s:{s:{s:s}}}", "event", "data", "stderr", note));
        free(note);
    }
    for (size_t i = 0; i < nst; i++)
        lel__envd_stream_push(sts[i], json_pack("{s:{s:O}}", "event", "end", end));
}

/* The EndEvent of a process, as Go's os.ProcessState says it: a death by signal has exit code
 * -1, exited false and the signal's name. */
static json_t *end_event(const struct envd_proc *p, const struct lel_run_result *res)
{
    static const char *const names[] = {[1] = "hangup", [2] = "interrupt", [3] = "quit", [4] = "illegal instruction",
                                        [5] = "trace/breakpoint trap", [6] = "aborted", [7] = "bus error",
                                        [8] = "floating point exception", [9] = "killed", [10] = "user defined signal 1",
                                        [11] = "segmentation fault", [12] = "user defined signal 2",
                                        [13] = "broken pipe", [14] = "alarm clock", [15] = "terminated"};
    int signo = res->timed_out || (p->killed && !res->signaled) ? 9
              : res->signaled && res->exit_status > 128     ? res->exit_status - 128
                                                            : 0;
    char status[64];
    if (signo)
        snprintf(status, sizeof(status), "signal: %s", signo < 16 && names[signo] ? names[signo] : "unknown signal");
    else
        snprintf(status, sizeof(status), "exit status %d", res->exit_status);
    json_t *end = json_pack("{s:i, s:b, s:s}", "exitCode", signo ? -1 : res->exit_status, "exited", !signo, "status",
                            status);
    if (signo || res->exit_status)
        json_object_set_new(end, "error", json_string(status));
    return end;
}

int lel__envd_proc_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res)
{
    struct envd_proc *p = NULL;
    for (struct envd_proc **pp = &e->procs; *pp; pp = &(*pp)->next)
        if ((*pp)->pid == id) {
            p = *pp;
            *pp = p->next;
            e->nprocs--;
            break;
        }
    if (!p)
        return 0;
    struct envd_stream *sts[64];
    size_t nst = followers(e, id, sts, 64);
    json_t *end = end_event(p, res);
    end_frames(h, p, end, res, sts, nst);
    ended_keep(e, p, end);
    json_decref(end);
    for (size_t i = 0; i < nst; i++)
        lel__envd_stream_end(e, sts[i], NULL, NULL);
    lel__envd_stdin_fail(p, "failed_precondition", "the process ended before it read its input");
    proc_free(p);
    return 1;
}

void lel_envd_kill_all(lel_envd_t *e, const struct lel_envd_host *h)
{
    for (struct envd_proc *p = e ? e->procs : NULL; p && h->vm; p = p->next)
        if (lel_vm_cmd_kill(h->vm, p->pid) == 0)
            p->killed = 1;
}
