/* The data plane of a sandbox: commands and files, carried to the guest agent through the
 * VM's bulk area. Runs on the sandbox's actor. A command is started and its call kept; the
 * guest runs several at once and rings an event when one ends, and the actor then answers
 * it, so a long command holds no worker. Pause, snapshot and restore answer 409 while
 * commands run (an image must not hold a command nobody can collect). Everything the guest
 * returns is bounds-checked by the VMM and sanitized here. */
#include "lel_sandbox_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_TIMEOUT_DEFAULT_MS 60000
#define CMD_TIMEOUT_MAX_MS 3600000
#define FILE_CHUNK (1u << 20)
#define CMD_GRACE_MS 10000 /* the guest ends a command at its timeout; this long after, it is wedged */

#define PATH_MAX_BYTES 4095 /* Linux's PATH_MAX, its NUL aside */
#define NAME_MAX_BYTES 255

/* The `path` query: absolute, no NUL, no ".." component, within Linux's lengths. The path
 * (malloc'd) or NULL with a 400 set on c. */
static char *query_path(lel_call_t *c)
{
    size_t len = 0;
    char *path = lel_call_query_len(c, "path", &len);
    const char *why = !path ? "an absolute path is required" : strlen(path) != len ? "must not contain a NUL byte (%00)"
                      : path[0] != '/'                         ? "an absolute path is required"
                      : len > PATH_MAX_BYTES                   ? "path too long (at most 4095 bytes)"
                                                               : NULL;
    for (const char *p = path, *e; !why && *p; p = *e ? e + 1 : e) {
        e = strchrnul(p, '/');
        if (e - p > NAME_MAX_BYTES)
            why = "name too long (at most 255 bytes a component)";
        else if (e - p == 2 && p[0] == '.' && p[1] == '.')
            why = "'..' is not allowed";
    }
    if (why) {
        lel_call_error(c, 400, "invalid query 'path': %s", why);
        free(path);
        return NULL;
    }
    return path;
}

static int running_vm(struct lel_sandbox *s, lel_call_t *c)
{
    if (s->state != S_RUNNING) {
        lel_call_error(c, 409, "sandbox is %s, not running", state_names[s->state]);
        return -EAGAIN;
    }
    if (!s->vm) {
        lel_call_error(c, 501, "API-only mode (vmm.backend: none) has no guest to run commands in");
        return -ENODEV;
    }
    return 0;
}

/* A guest that neither answers nor ends a command by its timeout cannot be trusted with the
 * next one: the sandbox is killed rather than left wedged. */
static void guest_wedged(struct lel_sandbox *s, int r)
{
    char why[320];
    snprintf(why, sizeof(why), "error: the sandbox's VM died during a command: %s", s->vm ? lel_vm_why(s->vm) : "");
    lel__sbx_kill(s, r == -EPIPE ? why : "error: the guest did not end a command at its timeout; sandbox killed");
}

static json_t *text(lel_vm_t *vm, uint64_t off, uint64_t n)
{
    char *raw = malloc(n ? n : 1);
    size_t got = raw ? lel_vm_bulk_read(vm, off, raw, n) : 0, len = 0;
    char *clean = raw ? lel_utf8_sanitize(raw, got, &len) : NULL;
    json_t *j = clean ? json_stringn(clean, len) : json_string("");
    free(raw);
    free(clean);
    return j;
}

/* Env for the command as "K=V" strings: the sandbox's envVars, then the request's envs (which
 * win), with PATH and HOME defaulted. NULL-terminated; free with free_env. */
static char **make_env(json_t *base, json_t *over)
{
    const char *k;
    json_t *v, *merged = json_deep_copy(base ? base : json_object());
    if (over)
        json_object_update(merged, over);
    if (!json_object_get(merged, "PATH")) /* Linux's usual one: programs users add go in /usr/local/bin */
        json_object_set_new(merged, "PATH", json_string("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (!json_object_get(merged, "HOME"))
        json_object_set_new(merged, "HOME", json_string("/root"));
    char **env = calloc(json_object_size(merged) + 1, sizeof(char *));
    size_t n = 0;
    json_object_foreach(merged, k, v)
    {
        if (env && asprintf(&env[n], "%s=%s", k, json_string_value(v)) >= 0)
            n++;
    }
    json_decref(merged);
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* Linux's limits on what execve carries, which the guest keeps too: one string (an argument,
 * or "NAME=value") of at most ARG_STRLEN_MAX bytes with its NUL, and all of them with a
 * pointer each at most ARG_TOTAL_MAX (a quarter of an 8 MiB stack). */
#define ARG_STRLEN_MAX (128u << 10)
#define ARG_TOTAL_MAX (2u << 20)

/* A string field that must not hide a NUL (MessagePack strings may hold one). */
static int no_nul(lel_call_t *c, const char *name, const char *v)
{
    json_t *j = json_object_get(c->json, name);
    if (j && v && strlen(v) != json_string_length(j)) {
        lel_call_error(c, 400, "invalid field '%s': must not contain a NUL character", name);
        return -EINVAL;
    }
    return 0;
}

/* The request's fields; 0, or -EINVAL with a 400 set on c. */
static int command_fields(lel_call_t *c, const char **cmd, const char **cwd, const char **in, long long *timeout,
                          json_t **envs, int *stream)
{
    const char *k;
    json_t *v, *js = c->json ? json_object_get(c->json, "stream") : NULL;
    *envs = c->json ? json_object_get(c->json, "envs") : NULL;
    if (js && !json_is_boolean(js) && !json_is_null(js)) {
        lel_call_error(c, 400, "invalid field 'stream': must be a boolean");
        return -EINVAL;
    }
    *stream = json_is_true(js);
    if (lel_call_str_field(c, "cmd", ARG_STRLEN_MAX - 1, cmd) < 0 || lel_call_str_field(c, "cwd", 4095, cwd) < 0 ||
        lel_call_str_field(c, "stdin", 1 << 20, in) < 0 ||
        lel_call_int_field(c, "timeoutMs", 1, CMD_TIMEOUT_MAX_MS, timeout) < 0 || no_nul(c, "cmd", *cmd) < 0 ||
        no_nul(c, "cwd", *cwd) < 0)
        return -EINVAL;
    if (!*cmd) {
        lel_call_error(c, 400, "invalid field 'cmd': required");
        return -EINVAL;
    }
    if ((*cwd)[0] != '/') {
        lel_call_error(c, 400, "invalid field 'cwd': an absolute path is required");
        return -EINVAL;
    }
    if (!*envs || json_is_null(*envs)) {
        *envs = NULL;
        return 0;
    }
    if (!json_is_object(*envs)) {
        lel_call_error(c, 400, "invalid field 'envs': must be an object of strings");
        return -EINVAL;
    }
    json_object_foreach(*envs, k, v)
    {
        if (!json_is_string(v) || !*k || strchr(k, '=') || strlen(json_string_value(v)) != json_string_length(v)) {
            lel_call_error(c, 400, "invalid field 'envs': '%.64s' must map a name without '=' to a string without NUL",
                           k);
            return -EINVAL;
        }
        if (strlen(k) + 1 + json_string_length(v) + 1 > ARG_STRLEN_MAX) {
            lel_call_error(c, 400, "invalid field 'envs': '%.64s' is longer than 131071 bytes as NAME=value (Linux's limit)",
                           k);
            return -EINVAL;
        }
    }
    return 0;
}

/* The optional "pty": {"cols", "rows"} (1..65535 each): the command runs on a pseudo-terminal of
 * that size, its terminal's bytes streamed as stdout. It needs "stream": true (nothing would read
 * the terminal meanwhile) and takes no "stdin" (it reads its terminal). 1 with the size, 0 when
 * absent, -EINVAL with a 400 set on c. */
static int pty_field(lel_call_t *c, int stream, const char *in, uint16_t *cols, uint16_t *rows)
{
    json_t *pty = c->json ? json_object_get(c->json, "pty") : NULL;
    if (!pty || json_is_null(pty))
        return 0;
    json_t *jc = json_object_get(pty, "cols"), *jr = json_object_get(pty, "rows");
    json_int_t vc = json_is_integer(jc) ? json_integer_value(jc) : 0, vr = json_is_integer(jr) ? json_integer_value(jr) : 0;
    if (!json_is_object(pty) || vc < 1 || vc > 65535 || vr < 1 || vr > 65535) {
        lel_call_error(c, 400, "invalid field 'pty': must be {\"cols\": 1..65535, \"rows\": 1..65535}");
        return -EINVAL;
    }
    if (!stream) {
        lel_call_error(c, 400, "invalid field 'pty': a command on a pty must be streamed (\"stream\": true)");
        return -EINVAL;
    }
    if (*in) {
        lel_call_error(c, 400, "invalid field 'stdin': a command on a pty reads its terminal, not 'stdin'");
        return -EINVAL;
    }
    *cols = (uint16_t)vc;
    *rows = (uint16_t)vr;
    return 1;
}

/* The arguments and the whole environment (the sandbox's envVars too) within Linux's limits;
 * 0, or -E2BIG with a 400 set on c. */
static int args_fit(lel_call_t *c, const char *const *argv, char **env)
{
    size_t total = 0;
    for (size_t i = 0; argv[i]; i++)
        total += strlen(argv[i]) + 1 + sizeof(char *);
    for (size_t i = 0; env[i]; i++) {
        size_t n = strlen(env[i]) + 1;
        if (n > ARG_STRLEN_MAX) { /* the request's were checked: one of the sandbox's envVars */
            lel_call_error(c, 400, "invalid field 'envs': the sandbox's variable '%.64s' is longer than Linux allows",
                           env[i]);
            return -E2BIG;
        }
        total += n + sizeof(char *);
    }
    if (total > ARG_TOTAL_MAX) {
        lel_call_error(c, 400,
                       "invalid field 'envs': the command and its environment take %zu bytes with their pointers, "
                       "more than Linux's %u",
                       total, ARG_TOTAL_MAX);
        return -E2BIG;
    }
    return 0;
}

/* A command that did not start: why, as the caller's answer. */
static void start_failed(struct lel_sandbox *s, lel_call_t *c, int r)
{
    if (r == -E2BIG)
        lel_call_error(c, 413, "'cmd', 'envs' and 'stdin' together are larger than the %llu bytes a command carries",
                       (unsigned long long)LEL_BULK_SIZE);
    else if (r == -ENOMEM)
        lel_call_error(c, 503, "out of memory");
    else if (r == LEL_ST_EAGAIN)
        lel_call_error(c, 429, "too many commands or processes running in the sandbox");
    else if (r == 7) /* E2BIG: the guest's own limits (an older guest's are lower) */
        lel_call_error(c, 400, "invalid field 'envs': the guest refused the command and its environment as too large");
    else if (r == 12)
        lel_call_error(c, 503, "the sandbox is out of memory: the command could not start (files can still be deleted "
                               "with DELETE /sandboxes/{id}/files)");
    else if (r == LEL_ST_ENOENT)
        lel_call_error(c, 400, "the command could not start in the guest (no such working directory)");
    else if (r > 0)
        lel_call_error(c, 500, "the command could not start in the guest (guest error %d)", r);
    else {
        guest_wedged(s, r);
        lel_call_error(c, 500, "the guest did not answer the command (%s); the sandbox was killed",
                       r == -EPIPE ? "its VM died" : "no answer in time");
    }
}

void lel__sbx_command(struct lel_sandbox *s, lel_call_t *c)
{
    const char *cmd = NULL, *cwd = "/", *in = "";
    long long timeout = CMD_TIMEOUT_DEFAULT_MS;
    json_t *envs, *tenv = NULL;
    int stream = 0, pty;
    uint16_t cols = 0, rows = 0;
    if (s->tpl) /* the template's image config and env/workdir steps: the sandbox's envVars win */
        lel_template_defaults(s->tpl, &tenv, &cwd);
    if (command_fields(c, &cmd, &cwd, &in, &timeout, &envs, &stream) < 0 ||
        (pty = pty_field(c, stream, in, &cols, &rows)) < 0 || running_vm(s, c) < 0)
        return;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    json_t *base = tenv ? json_deep_copy(tenv) : json_object();
    json_object_update(base, json_object_get(s->rec, "envVars"));
    char **env = make_env(base, envs);
    json_decref(base);
    if (env && args_fit(c, argv, env) < 0) {
        free_env(env);
        return;
    }
    struct pending_cmd *pc = calloc(1, sizeof(*pc));
    struct lel_cmd spec = {argv, (const char *const *)env, cwd, in, json_string_length(json_object_get(c->json, "stdin")),
                           (uint64_t)timeout, stream ? LEL_CMD_STREAM : 0};
    int r = !env || !pc ? -ENOMEM
          : pty      ? lel_vm_cmd_start_pty(s->vm, &spec, cols, rows, &pc->id)
                     : lel_vm_cmd_start(s->vm, &spec, &pc->id);
    free_env(env);
    if (r != 0) {
        free(pc);
        start_failed(s, c, r);
        return;
    }
    pc->c = c;
    pc->t0_ms = lel_mono_ms();
    pc->deadline_ms = pc->t0_ms + timeout + CMD_GRACE_MS;
    if (stream && lel__sbx_stream_open(s, c, pc) < 0) { /* it runs on, answered at its end */
        stream = 0;
        pc->c = c;
    }
    pc->next = s->cmds;
    s->cmds = pc;
    s->ncmds++;
    if (!stream)
        s->kept = c;
    lel_msg_t *m = lel_msg_new(LEL_MSG_CMD_CHECK, pc->id, NULL);
    if (m && lel_timers_at(s->srv->timers, pc->deadline_ms, s->actor, m) < 0)
        lel_msg_free(m);
}

static struct pending_cmd *take_cmd(struct lel_sandbox *s, uint32_t id)
{
    for (struct pending_cmd **p = &s->cmds; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct pending_cmd *pc = *p;
            *p = pc->next;
            s->ncmds--;
            return pc;
        }
    }
    return NULL;
}

void lel__sbx_cmd_event(struct lel_sandbox *s)
{
    struct lel_run_result res;
    uint32_t id;
    int r = 0, more = 1, ended = 0;
    lel__sbx_streams_poll(s);
    while (more && s->vm && (r = lel_vm_cmd_result(s->vm, 0, &id, &res)) == 0) {
        struct pending_cmd *pc = take_cmd(s, id);
        ended = 1;
        more = !res.last; /* the guest says whether to ask again */
        if (!pc) {
            lel__sbx_envd_ended(s, id, &res); /* E2B's data plane's, or nobody's (a misbehaving guest) */
            continue;
        }
        if (pc->st) {
            lel__sbx_stream_end(s, pc, &res);
            free(pc);
            continue;
        }
        json_t *resp = json_pack("{s:I, s:o, s:o, s:I, s:b, s:b}", "exitCode", (json_int_t)res.exit_status, "stdout",
                                 text(s->vm, 0, res.out_len), "stderr", text(s->vm, LEL_BULK_HALF, res.err_len),
                                 "durationMs", (json_int_t)(lel_mono_ms() - pc->t0_ms), "truncated", res.truncated,
                                 "timedOut", res.timed_out);
        lel_call_reply(pc->c, 200, resp);
        lel_call_done(pc->c);
        free(pc);
    }
    if (ended && s->learn_writes && s->vm) { /* after the answers: the learning is off their path */
        s->learn_writes = 0;
        lel_template_learn_writes(s->tpl, s->vm);
    }
    if (s->vm && (r == -EPIPE || r == -ETIMEDOUT)) /* the guest stopped answering */
        guest_wedged(s, r);
}

/* Answers pc's call (or ends its stream) with an error, and frees it. */
static void cmd_fail(struct lel_sandbox *s, struct pending_cmd *pc, int status, const char *msg)
{
    if (pc->st) {
        lel__sbx_stream_fail(s, pc, status, msg);
    } else {
        lel_call_error(pc->c, status, "%s", msg);
        lel_call_done(pc->c);
    }
    free(pc);
}

void lel__sbx_cmd_check(struct lel_sandbox *s, uint32_t id)
{
    for (struct pending_cmd *pc = s->cmds; pc; pc = pc->next)
        if (pc->id == id && lel_mono_ms() >= pc->deadline_ms) {
            lel__sbx_cmd_event(s); /* an event may be queued behind this message */
            if (s->vm && take_cmd(s, id) == pc) {
                cmd_fail(s, pc, 500, "the guest did not end the command at its timeout; the sandbox was killed");
                guest_wedged(s, -ETIMEDOUT);
            }
            return;
        }
}

void lel__sbx_cmds_kill(struct lel_sandbox *s)
{
    for (struct pending_cmd *pc = s->cmds; pc && s->vm; pc = pc->next)
        lel_vm_cmd_kill(s->vm, pc->id);
}

void lel__sbx_cmds_fail(struct lel_sandbox *s, int status, const char *msg)
{
    while (s->cmds) {
        struct pending_cmd *pc = s->cmds;
        s->cmds = pc->next;
        cmd_fail(s, pc, status, msg);
    }
    s->ncmds = 0;
}

/* A guest's errno for a file request on `path` as the answer the caller gets: what comes of
 * the caller's own input (the path, what lies on it) is a 4xx naming the path. */
static void file_error(lel_call_t *c, int r, const char *verb, const char *path)
{
    switch (r) {
    case 2: /* ENOENT: a write meets it only through a symlink to nowhere (parents are made) */
        if (c->route == R_SBX_FILES_PUT)
            lel_call_error(c, 409,
                           "cannot write %s: a symbolic link on its way leads nowhere, or its directory went away", path);
        else
            lel_call_error(c, 404, "no such file or directory: %s", path);
        return;
    case 20: /* ENOTDIR */
        if (c->route == R_SBX_FILES_GET)
            lel_call_error(c, 404, "no such file or directory: %s", path);
        else
            lel_call_error(c, 409, "cannot %s %s: a component of it is not a directory", verb, path);
        return;
    case LEL_ST_EISDIR: lel_call_error(c, 409, "%s is a directory", path); return;
    case 39: lel_call_error(c, 409, "%s is a directory that is not empty", path); return;
    case 16: lel_call_error(c, 409, "%s is the root directory", path); return; /* EBUSY */
    case 1: lel_call_error(c, 409, "%s is not a regular file", path); return; /* EPERM: a device, pipe, socket */
    case 26: lel_call_error(c, 409, "%s is a program that is running", path); return; /* ETXTBSY (older guests) */
    case 40: lel_call_error(c, 409, "cannot %s %s: too many levels of symbolic links", verb, path); return;
    case 17: lel_call_error(c, 409, "cannot %s %s: something is in the way", verb, path); return;
    case 36: lel_call_error(c, 400, "invalid query 'path': name too long"); return; /* ENAMETOOLONG */
    case LEL_ST_EINVAL: lel_call_error(c, 400, "invalid query 'path': cannot %s %s", verb, path); return;
    case 27: lel_call_error(c, 413, "%s: larger than a file in the guest can be", path); return; /* EFBIG */
    case 12: case 28: /* ENOMEM, ENOSPC: the guest's memory (its disk) is full */
        lel_call_error(c, 503, "the sandbox is out of memory writing %s", path);
        return;
    default:
        if (r < 0)
            lel_call_error(c, 500, "the guest did not answer (%s)", r == -EPIPE ? "its VM died" : "no answer in time");
        else
            lel_call_error(c, 500, "cannot %s %s in the guest (errno %d)", verb, path, r);
    }
}

/* ---- file transfers ---- */

static struct xfer *xfer_new(struct lel_sandbox *s, lel_call_t *c, const char *path, int upload);

/* The transfer a files call asks for, after its path and the sandbox's state are checked; NULL
 * with the error set on the call. */
static struct xfer *xfer_open(struct lel_sandbox *s, lel_call_t *c, int upload)
{
    char *path = query_path(c);
    struct xfer *x = path && running_vm(s, c) == 0 ? xfer_new(s, c, path, upload) : NULL;
    if (path && !x && !c->status)
        lel_call_error(c, 503, "out of memory");
    free(path);
    return x;
}

static struct xfer *xfer_new(struct lel_sandbox *s, lel_call_t *c, const char *path, int upload)
{
    struct xfer *x = calloc(1, sizeof(*x));
    size_t plen = strlen(path) + 1;
    /* an upload gathers a chunk behind the path; a download needs only the path */
    if (!x || !(x->buf = malloc(plen + (upload ? FILE_CHUNK : 0)))) {
        free(x);
        return NULL;
    }
    memcpy(x->buf, path, plen);
    x->plen = plen;
    x->c = c;
    x->upload = upload;
    x->id = ++s->xfer_seq;
    x->next = s->xfers;
    s->xfers = x;
    s->nxfers++;
    return x;
}

static void xfer_free(struct lel_sandbox *s, struct xfer *x)
{
    for (struct xfer **p = &s->xfers; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            s->nxfers--;
            break;
        }
    free(x->buf);
    free(x->pg);
    free(x);
}

/* An upload is answered: the call goes back (the HTTP layer drops what is left of its body). */
static void upload_end(struct lel_sandbox *s, struct xfer *x)
{
    lel_call_done(x->c);
    xfer_free(s, x);
}

/* An upload goes to the guest as chunks of one file's bytes in order; the guest writes them
 * under a temporary name beside the file and renames it over the file with the last chunk, so
 * the file is replaced whole or not at all; it keeps the mode and extended attributes of the file
 * it replaces, as a write in place would. Sends the x->fill bytes gathered in x->buf;
 * returns 0, the guest's errno (it removed the temporary), or -errno (it did not answer). */
static int upload_piece(struct lel_sandbox *s, struct xfer *x, int last)
{
    size_t n = x->fill;
    uint64_t flags = (!x->started ? LEL_UP_FIRST : 0) | (last ? LEL_UP_LAST | LEL_UP_XATTRS : 0), ret[4] = {0};
    uint64_t arg[4] = {x->plen, x->off, n, flags | (uint64_t)x->tmp_id << 32};
    int r = x->in_place ? LEL_ST_ENOSYS : lel_vm_call_bulk(s->vm, LEL_OP_FILE_UPLOAD, arg, x->buf, x->plen + n, ret, 30000);
    if (r == LEL_ST_ENOSYS && (x->in_place || !x->started)) { /* an image from before the op: as it wrote then */
        x->in_place = 1;
        uint64_t old[4] = {x->plen, x->off, n, !x->started}; /* the first chunk creates or truncates */
        r = lel_vm_call_bulk(s->vm, LEL_OP_FILE_WRITE, old, x->buf, x->plen + n, ret, 30000);
    } else if (r == 0 && !x->started) {
        x->tmp_id = (uint32_t)ret[0];
    }
    x->started |= r == 0;
    x->off += r == 0 ? n : 0;
    x->fill = 0;
    return r;
}

/* Gives up an upload the guest did not fail itself (a client gone, a body too large, a guest
 * that did not answer): its temporary goes. */
static void upload_abort(struct lel_sandbox *s, struct xfer *x)
{
    if (!x->started || x->in_place || !s->vm)
        return;
    uint64_t arg[4] = {x->plen, 0, 0, LEL_UP_ABORT | (uint64_t)x->tmp_id << 32}, ret[4];
    lel_vm_call_bulk(s->vm, x->pages ? LEL_OP_FILE_UPLOAD_PAGES : LEL_OP_FILE_UPLOAD, arg, x->buf, x->plen, ret, 5000);
}

/* Takes what has arrived of the body; a full chunk goes to the guest, the end goes as the last. */
static void upload_step(struct lel_sandbox *s, struct xfer *x)
{
    lel_call_t *c = x->c;
    for (;;) {
        if (x->dead || !s->vm) {
            lel_call_error(c, 409, "the sandbox stopped while the file was uploaded");
            upload_end(s, x);
            return;
        }
        ssize_t r = lel_call_body_read(c, x->buf + x->plen + x->fill, FILE_CHUNK - x->fill);
        if (r == -EAGAIN)
            return; /* a LEL_MSG_XFER comes when there is more */
        if (r < 0) {
            upload_abort(s, x);
            if (r == -E2BIG)
                lel_call_error(c, 413, "file larger than %zu bytes", s->srv->cfg.max_file_bytes);
            else
                lel_call_error(c, 400, "the upload ended before its body was complete");
            upload_end(s, x);
            return;
        }
        x->fill += (size_t)r;
        if (x->fill == FILE_CHUNK || r == 0) {
            int e = upload_piece(s, x, r == 0);
            if (e < 0)
                upload_abort(s, x);
            if (e) {
                file_error(c, e, "write", x->buf);
                upload_end(s, x);
                return;
            }
        }
        if (r == 0) {
            lel_call_reply(c, 204, NULL);
            upload_end(s, x);
            return;
        }
    }
}

/* ---- uploads straight into guest memory ----
 * A guest that has LEL_OP_FILE_UPLOAD_PAGES hands out pages of the temporary, and the body is
 * read from the HTTP layer's queue into them: no copy in between, and the guest never touches
 * them (under shadow paging each page a guest first writes costs an exit; here none does). */
#define UP_PAGES (8u << 20) /* asked for at a time: the declared rest, or this for a chunked body */

/* Gets pages for the bytes at x->off on: x->pg, x->npg, x->len. 0, the guest's errno (it
 * removed the temporary), -ENOSYS (a guest without the op; nothing done), or -errno. */
static int pages_get(struct lel_sandbox *s, struct xfer *x)
{
    uint64_t dl = x->c->declared_len, want = UP_PAGES;
    if (dl != UINT64_MAX)
        want = dl > x->off ? ((dl - x->off + 4095) & ~4095ULL) : 0;
    want = want < UP_PAGES ? want : UP_PAGES;
    uint64_t arg[4] = {x->plen, x->off, want, (!x->started ? LEL_UP_FIRST : 0) | (uint64_t)x->tmp_id << 32}, ret[4] = {0};
    int r = lel_vm_call_bulk(s->vm, LEL_OP_FILE_UPLOAD_PAGES, arg, x->buf, x->plen, ret, 30000);
    if (r == LEL_ST_ENOSYS && !x->started)
        return -ENOSYS;
    if (r != 0)
        return r;
    if (!x->started)
        x->tmp_id = (uint32_t)ret[0];
    x->started = 1;
    size_t n = ret[1] < want / 4096 ? (size_t)ret[1] : (size_t)(want / 4096); /* the guest's count, clamped */
    uint32_t pfn[256];
    for (size_t i = 0; i < n; i += 256) { /* the list is the guest's: every page is checked */
        size_t k = n - i < 256 ? n - i : 256;
        lel_vm_bulk_read(s->vm, LEL_BULK_HALF + i * 4, pfn, k * 4);
        for (size_t j = 0; j < k; j++)
            if (!(x->pg[i + j] = lel_vm_guest_page(s->vm, pfn[j])))
                return -EFAULT;
    }
    x->npg = n;
    x->len = (uint64_t)n * 4096;
    x->fill = 0;
    return 0;
}

/* The body's next bytes into the pages: as many as arrived, up to the end of a run of pages
 * that lie one after another in the host's mapping. */
static ssize_t pages_fill(struct xfer *x)
{
    size_t i = x->fill / 4096, j = i + 1;
    while (j < x->npg && x->pg[j] == x->pg[j - 1] + 4096)
        j++;
    uint64_t end = (uint64_t)j * 4096 < x->len ? (uint64_t)j * 4096 : x->len;
    return lel_call_body_read(x->c, x->pg[i] + x->fill % 4096, (size_t)(end - x->fill));
}

/* The body has ended: the last page's rest is cleared and the temporary takes the path. */
static int pages_done(struct lel_sandbox *s, struct xfer *x)
{
    if (x->fill % 4096)
        memset(x->pg[x->fill / 4096] + x->fill % 4096, 0, 4096 - x->fill % 4096);
    uint64_t arg[4] = {x->plen, x->off + x->fill, 0, LEL_UP_LAST | LEL_UP_XATTRS | (uint64_t)x->tmp_id << 32}, ret[4];
    return lel_vm_call_bulk(s->vm, LEL_OP_FILE_UPLOAD_PAGES, arg, x->buf, x->plen, ret, 30000);
}

static void upload_step(struct lel_sandbox *s, struct xfer *x);

static void upload_pages_step(struct lel_sandbox *s, struct xfer *x)
{
    lel_call_t *c = x->c;
    for (;;) {
        if (x->dead || !s->vm || s->vm != x->pvm) {
            lel_call_error(c, 409, "the sandbox stopped while the file was uploaded");
            upload_end(s, x);
            return;
        }
        int e = 0;
        if (x->fill == x->len) { /* these pages are full (or none yet): the next ones */
            x->off += x->len;
            x->len = x->fill = x->npg = 0;
            if (!x->started || c->declared_len == UINT64_MAX || x->off < c->declared_len)
                e = pages_get(s, x);
        }
        if (e == -ENOSYS) { /* an older guest: through the bulk area */
            x->pages = 0;
            upload_step(s, x);
            return;
        }
        char probe;
        ssize_t r = e ? 0 : x->len ? pages_fill(x) : lel_call_body_read(c, &probe, 1);
        if (r == -EAGAIN)
            return; /* a LEL_MSG_XFER comes when there is more */
        if (!e && r > 0 && !x->len)
            r = c->declared_len == UINT64_MAX ? -ENOSPC : -EPROTO; /* no pages; or past its Content-Length */
        if (!e && r < 0) {
            upload_abort(s, x);
            if (r == -E2BIG)
                lel_call_error(c, 413, "file larger than %zu bytes", s->srv->cfg.max_file_bytes);
            else if (r == -ENOSPC)
                lel_call_error(c, 503, "the sandbox is out of memory writing %s", x->buf);
            else
                lel_call_error(c, 400, "the upload ended before its body was complete");
            upload_end(s, x);
            return;
        }
        if (!e && r == 0)
            e = pages_done(s, x);
        if (e) {
            if (e < 0)
                upload_abort(s, x);
            if (e == -EFAULT)
                lel_call_error(c, 500, "the guest gave pages outside its memory for %s", x->buf);
            else
                file_error(c, e, "write", x->buf);
            upload_end(s, x);
            return;
        }
        if (r == 0) {
            lel_call_reply(c, 204, NULL);
            upload_end(s, x);
            return;
        }
        x->fill += (size_t)r;
    }
}

void lel__sbx_file_put(struct lel_sandbox *s, lel_call_t *c)
{
    struct xfer *x = xfer_open(s, c, 1);
    if (!x)
        return;
    s->kept = c;
    if ((x->pg = malloc(UP_PAGES / 4096 * sizeof(*x->pg)))) { /* else the old way: bulk */
        x->pages = 1;
        x->pvm = s->vm;
    }
    if (c->body_in)
        lel_call_body_notify(c, s->actor, LEL_MSG_XFER, x->id); /* tells at once if some is there */
    else
        (x->pages ? upload_pages_step : upload_step)(s, x); /* the body came whole */
}

void lel__sbx_file_delete(struct lel_sandbox *s, lel_call_t *c)
{
    char *path = query_path(c);
    if (!path || running_vm(s, c) < 0) {
        free(path);
        return;
    }
    uint64_t arg[4] = {strlen(path) + 1, 0, 0, 0}, ret[4];
    int r = lel_vm_call_bulk(s->vm, LEL_OP_FILE_DELETE, arg, path, strlen(path) + 1, ret, 30000);
    if (r == LEL_ST_ENOSYS)
        lel_call_error(c, 501, "this sandbox's guest predates deleting files; run `rm` as a command");
    else if (r != 0)
        file_error(c, r, "delete", path);
    else
        lel_call_reply(c, 204, NULL);
    free(path);
}

/* The guest lists a directory as lines "<f|d|l> <size> <name>"; names are sanitized to UTF-8. */
static json_t *listing(lel_vm_t *vm, uint64_t n)
{
    char *list = malloc(n + 1);
    size_t got = list ? lel_vm_bulk_read(vm, 0, list, n) : 0;
    json_t *out = json_array();
    for (char *line = list, *nl; list && line < list + got && (nl = memchr(line, '\n', (size_t)(list + got - line)));
         line = nl + 1) {
        *nl = 0;
        char type = line[0], *sp = line[1] == ' ' ? strchr(line + 2, ' ') : NULL, *clean;
        size_t cl;
        if (!sp)
            break;
        *sp = 0;
        if (!(clean = lel_utf8_sanitize(sp + 1, strlen(sp + 1), &cl)))
            break;
        json_array_append_new(out, json_pack("{s:s%, s:s, s:I}", "name", clean, cl, "type",
                                             type == 'd' ? "dir" : type == 'l' ? "symlink" : "file", "size",
                                             (json_int_t)strtoull(line + 2, NULL, 10)));
        free(clean);
    }
    free(list);
    return out;
}

/* Reads the chunk at x->off into a new buffer; its length, or -1 with the error set on the call.
 * *total gets the file's size, *kind 1 for a file, 2 for a directory. */
static ssize_t read_chunk(struct lel_sandbox *s, struct xfer *x, char **out, uint64_t *total, uint64_t *kind)
{
    /* pieces of FILE_CHUNK, not the whole bulk area: each slow reader holds one piece (the first
     * read may be a directory's listing, which may fill the bulk area) */
    uint64_t arg[4] = {x->plen, x->off, x->off ? FILE_CHUNK : LEL_BULK_SIZE, 0}, ret[4] = {0};
    int r = lel_vm_call_bulk(s->vm, LEL_OP_FILE_READ, arg, x->buf, x->plen, ret, 30000);
    if (r != 0) {
        file_error(x->c, r, "read", x->buf);
        return -1;
    }
    uint64_t n = ret[1] < LEL_BULK_SIZE ? ret[1] : LEL_BULK_SIZE;
    if (ret[0] == 1 && n > FILE_CHUNK)
        n = FILE_CHUNK;
    *kind = ret[0];
    *total = ret[2];
    if (ret[0] == 2 || (x->off == 0 && ret[0] != 1)) { /* a directory: its listing */
        *kind = 2;
        *out = NULL;
        return (ssize_t)n;
    }
    if (!(*out = malloc(n ? n : 1))) {
        lel_call_error(x->c, 503, "out of memory");
        return -1;
    }
    return (ssize_t)lel_vm_bulk_read(s->vm, 0, *out, n);
}

void lel__sbx_file_get(struct lel_sandbox *s, lel_call_t *c)
{
    struct xfer *x = xfer_open(s, c, 0);
    if (!x)
        return;
    char *data = NULL;
    uint64_t total = 0, kind = 0;
    ssize_t n = read_chunk(s, x, &data, &total, &kind);
    if (n >= 0 && kind == 2)
        lel_call_reply(c, 200, listing(s->vm, (uint64_t)n));
    else if (n >= 0 && total > s->srv->cfg.max_file_bytes)
        lel_call_error(c, 413, "file larger than %zu bytes", s->srv->cfg.max_file_bytes);
    if (n < 0 || kind == 2 || total > s->srv->cfg.max_file_bytes) {
        free(data);
        xfer_free(s, x);
        return;
    }
    /* answered in pieces of one guest read each: a slow client holds one chunk, not the file */
    c->raw = data;
    c->raw_len = (size_t)n;
    c->status = 200;
    x->off = (uint64_t)n;
    x->total = total;
    if (x->off >= total) {
        xfer_free(s, x);
        return;
    }
    lel_call_stream(c, total, s->actor, LEL_MSG_XFER, x->id);
}

/* The client has taken the last piece and wants the next. */
static void download_step(struct lel_sandbox *s, struct xfer *x)
{
    lel_call_t *c = x->c;
    char *data = NULL;
    uint64_t total = 0, kind = 0;
    ssize_t n = -1;
    if (!atomic_load(&c->cancelled) && !x->dead && s->vm)
        n = read_chunk(s, x, &data, &total, &kind);
    if (n <= 0 || kind != 1) { /* gone, failed, or the file shrank or changed kind: cut short */
        free(data);
        lel_call_piece(c, -1);
        xfer_free(s, x);
        return;
    }
    if ((uint64_t)n > x->total - x->off)
        n = (ssize_t)(x->total - x->off); /* it grew: the length promised is what is sent */
    c->raw = data;
    c->raw_len = (size_t)n;
    x->off += (uint64_t)n;
    int more = x->off < x->total;
    if (!more)
        xfer_free(s, x);
    lel_call_piece(c, more);
}

void lel__sbx_xfer_step(struct lel_sandbox *s, uint32_t id)
{
    for (struct xfer *x = s->xfers; x; x = x->next)
        if (x->id == id) {
            if (x->upload && x->pages)
                upload_pages_step(s, x);
            else if (x->upload)
                upload_step(s, x);
            else
                download_step(s, x);
            return;
        }
}

void lel__sbx_xfers_fail(struct lel_sandbox *s, int status, const char *msg)
{
    for (struct xfer *x = s->xfers, *next; x; x = next) {
        next = x->next;
        x->dead = 1;
        if (x->upload) { /* the actor holds its call: answered now */
            lel_call_error(x->c, status, "%s", msg);
            upload_end(s, x);
        }
    }
}

void lel__sbx_xfers_free(struct lel_sandbox *s)
{
    while (s->xfers)
        xfer_free(s, s->xfers);
}
