/* envd on the host: the dispatch of data-plane calls (a sandbox that is not running answers
 * 502 as E2B's proxy does; the sandbox's access token is checked), E2B's users and paths, and
 * the Connect protocol's framing: unary JSON answers, and server-streaming answers made of
 * 5-byte envelopes handed to the HTTP layer one piece at a time (lel_call_stream), with
 * keepalive frames while a stream has nothing to say. */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEEPALIVE_DEFAULT_MS 90000 /* envd's when the client names none */

lel_envd_t *lel_envd_new(void)
{
    return calloc(1, sizeof(lel_envd_t));
}

static void stream_free(lel_envd_t *e, struct envd_stream *st)
{
    for (struct envd_stream **p = &e->streams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    free(st->queue);
    free(st->path);
    free(st);
}

void lel_envd_free(lel_envd_t *e)
{
    if (!e)
        return;
    lel__envd_proc_forget(e);
    lel__envd_ended_forget(e, 0);
    lel__envd_watch_forget(e);
    while (e->streams)
        stream_free(e, e->streams);
    free(e);
}

int lel_envd_running(const lel_envd_t *e)
{
    return e ? e->nprocs + e->nops : 0;
}

/* ---- users and paths ---- */

static int b64_val(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' || ch == '-' ? 62 : ch == '/' || ch == '_' ? 63 : -1;
}

long lel__envd_b64_decode(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64_val((unsigned char)*in);
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    return (long)n;
}

int lel__envd_user(lel_call_t *c, const char *name, int rpc, struct envd_user *u)
{
    char buf[80];
    if (rpc && c->bearer) { /* Authorization: Basic base64("<user>:") */
        const char *a = c->bearer;
        long n = strncasecmp(a, "Basic ", 6) ? -1 : lel__envd_b64_decode(a + 6, buf, sizeof(buf) - 1);
        char *colon = n >= 0 ? memchr(buf, ':', (size_t)n) : NULL;
        if (!colon) {
            lel__envd_error(c, "unauthenticated", "invalid Authorization: expected Basic with a user name");
            return -EACCES;
        }
        *colon = 0;
        name = buf;
    }
    if (!name || !*name || !strcmp(name, "user")) {
        u->name = "user";
        u->home = "/home/user";
        u->id = 1000;
    } else if (!strcmp(name, "root")) {
        u->name = "root";
        u->home = "/root";
        u->id = 0;
    } else {
        if (rpc)
            lel__envd_error(c, "unauthenticated", "invalid username: '%.64s'", name);
        else
            lel_call_error(c, 401, "invalid username: '%.64s'", name);
        return -EACCES;
    }
    return 0;
}

void lel__envd_home(lel_envd_t *e, const struct lel_envd_host *h, const struct envd_user *u)
{
    if (e->home_ready || strcmp(u->home, "/home/user") || !h->vm)
        return;
    /* the guest's upload makes missing parents with its temporary; aborting it leaves them */
    static const char probe[] = "/home/user/.lelantos-home";
    uint64_t arg[4] = {sizeof(probe), 0, 0, LEL_UP_FIRST | LEL_UP_OWNED | (uint64_t)u->id << 16}, ret[4] = {0};
    if (lel_vm_call_bulk(h->vm, LEL_OP_FILE_UPLOAD, arg, probe, sizeof(probe), ret, 5000) == 0) {
        uint64_t ab[4] = {sizeof(probe), 0, 0, LEL_UP_ABORT | ret[0] << 32};
        lel_vm_call_bulk(h->vm, LEL_OP_FILE_UPLOAD, ab, probe, sizeof(probe), ret, 5000);
    }
    e->home_ready = 1;
}

char *lel__envd_path(const char *p, size_t len, const char *home)
{
    if (!p || strlen(p) != len || len > 4095)
        return NULL;
    char *joined;
    if (!*p || !strcmp(p, "~"))
        joined = strdup(home);
    else if (p[0] == '/')
        joined = strdup(p);
    else if (asprintf(&joined, "%s/%s", home, p[0] == '~' && p[1] == '/' ? p + 2 : p) < 0)
        joined = NULL;
    if (!joined)
        return NULL;
    /* fold "//", "." and "..": the guest sees one absolute path */
    char *out = malloc(strlen(joined) + 2), *w = out;
    for (char *s = joined, *seg; out && *s;) {
        while (*s == '/')
            s++;
        seg = s;
        while (*s && *s != '/')
            s++;
        size_t n = (size_t)(s - seg);
        if (!n || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (w > out && *--w != '/')
                ;
            continue;
        }
        *w++ = '/';
        memcpy(w, seg, n);
        w += n;
    }
    if (out && w == out)
        *w++ = '/';
    if (out)
        *w = 0;
    free(joined);
    if (out && strlen(out) > 4095) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- the Connect protocol ---- */

int lel__envd_code_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } t[] = {{"canceled", 499}, {"unknown", 500}, {"invalid_argument", 400}, {"deadline_exceeded", 504},
             {"not_found", 404}, {"already_exists", 409}, {"permission_denied", 403}, {"resource_exhausted", 429},
             {"failed_precondition", 400}, {"aborted", 409}, {"out_of_range", 400}, {"unimplemented", 501},
             {"internal", 500}, {"unavailable", 503}, {"data_loss", 500}, {"unauthenticated", 401}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(code, t[i].code))
            return t[i].status;
    return 500;
}

void lel__envd_error(lel_call_t *c, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lel_call_reply(c, lel__envd_code_status(code), json_pack("{s:s, s:s}", "code", code, "message", msg));
}

void lel__envd_reply(lel_call_t *c, json_t *msg)
{
    lel_call_reply(c, 200, msg ? msg : json_object());
    c->out_fmt = LEL_FMT_JSON; /* Connect's JSON codec, whatever the Accept header says */
}

/* Appends an envelope (flags, 4-byte big-endian length, payload) to a growing buffer. */
static int frame_append(char **buf, size_t *len, size_t *cap, int flags, const char *payload, size_t n)
{
    if (*len + 5 + n > *cap) {
        size_t want = (*len + 5 + n) * 2;
        char *nb = realloc(*buf, want);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = want;
    }
    char *p = *buf + *len;
    p[0] = (char)flags;
    p[1] = (char)(n >> 24);
    p[2] = (char)(n >> 16);
    p[3] = (char)(n >> 8);
    p[4] = (char)n;
    memcpy(p + 5, payload, n);
    *len += 5 + n;
    return 0;
}

static int frame_json(char **buf, size_t *len, size_t *cap, int flags, json_t *msg)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    int r = s ? frame_append(buf, len, cap, flags, s, strlen(s)) : -ENOMEM;
    free(s);
    json_decref(msg);
    return r;
}

static json_t *end_message(const char *code, const char *msg)
{
    return code ? json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg) : json_object();
}

void lel__envd_stream_reply(lel_call_t *c, json_t *msg)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    json_decref(c->resp);
    c->resp = NULL;
    if (frame_json(&buf, &len, &cap, 0, msg) < 0 || frame_json(&buf, &len, &cap, 2, json_object()) < 0) {
        free(buf);
        lel_call_error(c, 503, "out of memory");
        return;
    }
    free(c->raw);
    c->raw = buf;
    c->raw_len = len;
    c->raw_type = "application/connect+json";
    c->status = 200;
}

void lel__envd_stream_fail(lel_call_t *c, const char *code, const char *fmt, ...)
{
    char msg[512], *buf = NULL;
    size_t len = 0, cap = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(c->resp);
    c->resp = NULL;
    if (frame_json(&buf, &len, &cap, 2, end_message(code, msg)) < 0) {
        lel_call_error(c, 503, "out of memory");
        return;
    }
    free(c->raw);
    c->raw = buf;
    c->raw_len = len;
    c->raw_type = "application/connect+json";
    c->status = 200;
}

static int type_is(const char *have, const char *want)
{
    size_t n = strlen(want);
    return have && !strncasecmp(have, want, n) && (!have[n] || have[n] == ';' || have[n] == ' ');
}

json_t *lel__envd_request(lel_call_t *c, int stream)
{
    const char *body = c->body ? c->body : "";
    size_t len = c->body_len;
    if (!type_is(c->content_type, stream ? "application/connect+json" : "application/json")) {
        if (stream)
            lel__envd_stream_fail(c, "invalid_argument", "content type must be application/connect+json");
        else
            lel__envd_error(c, "invalid_argument", "content type must be application/json");
        return NULL;
    }
    if (stream) { /* exactly one envelope, uncompressed */
        size_t n = len >= 5 ? (size_t)(unsigned char)body[1] << 24 | (size_t)(unsigned char)body[2] << 16 |
                                  (size_t)(unsigned char)body[3] << 8 | (unsigned char)body[4]
                            : 0;
        if (len < 5 || body[0] != 0 || n != len - 5) {
            lel__envd_stream_fail(c, "invalid_argument", "the request must be one uncompressed envelope");
            return NULL;
        }
        body += 5;
        len = n;
    }
    json_error_t err;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        if (stream)
            lel__envd_stream_fail(c, "invalid_argument", "invalid request message: %s", j ? "not an object" : err.text);
        else
            lel__envd_error(c, "invalid_argument", "invalid request message: %s", j ? "not an object" : err.text);
        return NULL;
    }
    return j;
}

static void arm_tick(const struct lel_envd_host *h, struct envd_stream *st)
{
    if (!st->keepalive_ms)
        return;
    lel_msg_t *m = lel_msg_new(LEL_MSG_ENVD_TICK, st->id, NULL);
    if (m && lel_timers_at(h->srv->timers, lel_mono_ms() + st->keepalive_ms, h->actor, m) < 0)
        lel_msg_free(m);
}

struct envd_stream *lel__envd_stream_open(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *first,
                                          const char *type, uint64_t total)
{
    struct envd_stream *st = calloc(1, sizeof(*st));
    if (!st || (first && frame_json(&st->queue, &st->qlen, &st->qcap, 0, first) < 0)) {
        if (!st)
            json_decref(first);
        free(st ? st->queue : NULL);
        free(st);
        lel_call_error(c, 503, "out of memory");
        return NULL;
    }
    st->id = ++e->seq;
    st->c = c;
    st->last_ms = lel_mono_ms();
    if (first) { /* a Connect stream: keepalives as the client asks (seconds) */
        long ka = c->keepalive ? strtol(c->keepalive, NULL, 10) : 0;
        st->keepalive_ms = ka > 0 && ka <= 3600 ? (int)ka * 1000 : KEEPALIVE_DEFAULT_MS;
    }
    if (first) { /* else the first piece is in c->raw already (a download's first chunk) */
        free(c->raw);
        c->raw = st->queue;
        c->raw_len = st->qlen;
        st->queue = NULL;
        st->qlen = st->qcap = 0;
    }
    c->raw_type = type;
    c->status = 200;
    st->total = total;
    lel_call_stream(c, total, h->actor, LEL_MSG_ENVD_PIECE, st->id);
    st->next = e->streams;
    e->streams = st;
    arm_tick(h, st);
    return st;
}

void lel__envd_stream_push(struct envd_stream *st, json_t *msg)
{
    frame_json(&st->queue, &st->qlen, &st->qcap, 0, msg);
}

void lel__envd_stream_frame(struct envd_stream *st, const char *json, size_t n)
{
    frame_append(&st->queue, &st->qlen, &st->qcap, 0, json, n);
}

int lel__envd_stream_raw(struct envd_stream *st, const void *p, size_t n)
{
    if (st->qlen + n > st->qcap) {
        char *nb = realloc(st->queue, st->qlen + n);
        if (!nb)
            return -ENOMEM;
        st->queue = nb;
        st->qcap = st->qlen + n;
    }
    memcpy(st->queue + st->qlen, p, n);
    st->qlen += n;
    return 0;
}

void lel__envd_stream_end(lel_envd_t *e, struct envd_stream *st, const char *code, const char *msg)
{
    if (st->ended)
        return;
    frame_json(&st->queue, &st->qlen, &st->qcap, 2, end_message(code, msg));
    st->ended = 1;
    st->pid = 0;
    lel__envd_stream_flush(e, st);
}

void lel__envd_stream_flush(lel_envd_t *e, struct envd_stream *st)
{
    if (!st->want || (!st->qlen && !st->ended))
        return;
    lel_call_t *c = st->c;
    /* a download cut short (its VM went) ends broken: never a wrong answer of the promised length */
    int more = st->ended ? (st->total != UINT64_MAX && st->off < st->total ? -1 : 0) : 1;
    c->raw = st->queue;
    c->raw_len = st->qlen;
    st->queue = NULL;
    st->qlen = st->qcap = 0;
    st->want = 0;
    st->last_ms = lel_mono_ms();
    if (more <= 0) {
        st->c = NULL;
        stream_free(e, st);
    }
    lel_call_piece(c, more);
}

static struct envd_stream *stream_find(lel_envd_t *e, uint32_t id)
{
    for (struct envd_stream *st = e->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

/* The client went away while the stream waited for the next piece: the response is cut (the
 * process it followed runs on, as on envd). */
static int stream_gone(lel_envd_t *e, struct envd_stream *st)
{
    if (!st->want || !atomic_load(&st->c->cancelled))
        return 0;
    lel_call_t *c = st->c;
    stream_free(e, st);
    lel_call_piece(c, -1);
    return 1;
}

/* What follows a stream once it drained (gone 0) or went (1): its process's output, or its watch. */
static void stream_after(lel_envd_t *e, const struct lel_envd_host *h, uint32_t pid, uint32_t watch_sid, int gone)
{
    if (pid) /* its process's output waits for its other streams, or for none */
        lel__envd_proc_drained(e, h, pid);
    if (watch_sid)
        lel__envd_watch_stream(e, h, watch_sid, gone || !stream_find(e, watch_sid));
}

/* A stream's deadline (Connect-Timeout-Ms) came: it ends as connect-go ends it. */
static void deadline(lel_envd_t *e, const struct lel_envd_host *h, struct envd_stream *st)
{
    uint32_t sid = st->watch ? st->id : 0;
    if (!st->deadline_ms || lel_mono_ms() < st->deadline_ms || st->ended)
        return;
    lel__envd_stream_end(e, st, "deadline_exceeded", "the call's deadline (Connect-Timeout-Ms) passed");
    stream_after(e, h, 0, sid, 1);
}

void lel_envd_msg(lel_envd_t *e, const struct lel_envd_host *h, int type, uint32_t arg)
{
    if (type == LEL_MSG_ENVD_BODY) {
        lel__envd_upload_step(e, h, arg);
        return;
    }
    struct envd_stream *st = stream_find(e, arg & ~ENVD_DEADLINE_TICK);
    if (!st)
        return;
    uint32_t pid = st->pid, watch_sid = st->watch ? st->id : 0;
    if (type == LEL_MSG_ENVD_PIECE) {
        st->want = 1;
        if (stream_gone(e, st)) {
            stream_after(e, h, pid, watch_sid, 1);
            return;
        }
        if (!st->qlen && !st->ended && st->more)
            st->more(e, h, st);
        else
            lel__envd_stream_flush(e, st);
        stream_after(e, h, pid, watch_sid, 0); /* its process's output, or its watch's events, may wait for it */
        return;
    }
    /* LEL_MSG_ENVD_TICK */
    if (stream_gone(e, st)) {
        stream_after(e, h, pid, watch_sid, 1);
        return;
    }
    if (arg & ENVD_DEADLINE_TICK) {
        deadline(e, h, st);
        return;
    }
    if (st->want && !st->qlen && !st->ended && lel_mono_ms() - st->last_ms >= st->keepalive_ms - 100) {
        lel__envd_stream_push(st, st->watch ? json_pack("{s:{}}", "keepalive")
                                            : json_pack("{s:{s:{}}}", "event", "keepalive"));
        lel__envd_stream_flush(e, st);
    }
    arm_tick(h, st);
}

void lel_envd_vm_gone(lel_envd_t *e, const char *why)
{
    if (!e)
        return;
    lel__envd_fs_fail(e, why);
    lel__envd_uploads_fail(e, why);
    lel__envd_watch_forget(e); /* (their streams end below) */
    lel__envd_proc_forget(e);
    lel__envd_ended_forget(e, 0); /* the next VM's command ids may meet theirs */
    e->home_ready = 0; /* the next VM may come from an image without it (a restore) */
    for (struct envd_stream *st = e->streams, *next; st; st = next) {
        next = st->next; /* a flush may free st */
        if (st->total != UINT64_MAX) { /* a download: cut */
            free(st->queue);
            st->queue = NULL;
            st->qlen = 0;
            st->ended = 1;
            lel__envd_stream_flush(e, st);
        } else {
            lel__envd_stream_end(e, st, "unavailable", why);
        }
    }
}

size_t lel__envd_b64_into(char *out, const void *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    char *w = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) { /* whole groups: no bounds to check */
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        w[0] = a[v >> 18 & 63];
        w[1] = a[v >> 12 & 63];
        w[2] = a[v >> 6 & 63];
        w[3] = a[v & 63];
        w += 4;
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *w++ = a[v >> 18 & 63];
        *w++ = a[v >> 12 & 63];
        *w++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *w++ = '=';
    }
    *w = 0;
    return (size_t)(w - out);
}

char *lel__envd_b64(const void *p, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (out)
        lel__envd_b64_into(out, p, n);
    return out;
}

int lel__envd_cmd(const struct lel_envd_host *h, const char *const *argv, const char *const *env, const char *cwd,
                  uint64_t timeout_ms, unsigned flags, uint32_t *id)
{
    struct lel_cmd spec = {argv, env, cwd, NULL, 0, timeout_ms, flags};
    return lel_vm_cmd_start(h->vm, &spec, id);
}

/* ---- dispatch ---- */

static void not_reachable(lel_call_t *c, const struct lel_envd_host *h, const char *why)
{
    lel_call_reply(c, 502, json_pack("{s:s, s:s, s:i}", "sandboxId", h->sandbox_id, "message", why, "code", 502));
}

int lel_envd_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c)
{
    if (h->not_running || !h->vm) {
        not_reachable(c, h, h->not_running ? h->not_running : "API-only mode (vmm.backend: none) has no guest");
        return 0;
    }
    if (c->route == R_ENVD_HEALTH) {
        lel_call_reply(c, 204, NULL);
        return 0;
    }
    const char *tok = c->access_token;
    if (h->token && (!tok || !lel_ct_equal(tok, strlen(tok), h->token, strlen(h->token)))) {
        if (c->route == R_ENVD_RPC)
            lel__envd_error(c, "unauthenticated", "unauthorized access: a valid X-Access-Token is required");
        else
            lel_call_error(c, 401, "unauthorized access: a valid X-Access-Token is required");
        return 0;
    }
    if (c->route == R_ENVD_FILES_GET)
        return lel__envd_files_get(e, h, c);
    if (c->route == R_ENVD_FILES_POST)
        return lel__envd_files_post(e, h, c);
    const char *m = c->id2 ? c->id2 : "";
    if (!strncmp(m, "process.Process/", 16))
        return lel__envd_proc_call(e, h, c, m + 16);
    return lel__envd_fs_call(e, h, c, !strncmp(m, "filesystem.Filesystem/", 22) ? m + 22 : m);
}

int lel_envd_cmd_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, unsigned flags)
{
    if (e && (flags & LEL_POLL_WATCH))
        return lel__envd_watch_ready(e, h, id);
    return e && lel__envd_proc_ready(e, h, id, flags);
}

int lel_envd_cmd_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res)
{
    return lel__envd_proc_ended(e, h, id, res) || lel__envd_fs_ended(e, h, id, res);
}
