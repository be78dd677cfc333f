/* Streamed guest commands on the sandbox's actor. After the guest's doorbell, what its streamed
 * commands have for the host (output, stdin room) goes to their owner: E2B's data plane
 * (src/envd), or a REST command started with "stream": true, whose answer is a stream of
 * events (newline-delimited JSON, or server-sent events for Accept: text/event-stream):
 * start, stdout and stderr as they come (UTF-8 text, a character never split between two
 * events), end with the exit code. Its output is read from the guest only while the stream
 * holds less than STREAM_BACKLOG bytes its client has not taken; otherwise it waits in the
 * guest (whose writers wait too) until the client catches up. Runs on the sandbox's actor. */
#include "lel_sandbox_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BACKLOG (1u << 20)

/* A REST command's streamed answer. It lives until both its last piece went to the HTTP layer
 * (c NULL) and its command ended (cmd_done). */
struct rest_stream {
    uint32_t sid; /* LEL_MSG_CMD_PIECE's arg */
    uint32_t cmd; /* the guest command */
    lel_call_t *c;
    int sse, want, ended, cmd_done, out_waiting;
    char *queue; /* events made and not yet handed over (malloc'd) */
    size_t qlen, qcap;
    char tail[2][4]; /* the start of a UTF-8 character the last read of stdout / stderr ended in */
    size_t ntail[2];
    struct rest_stream *next;
};

static void stream_free(struct lel_sandbox *s, struct rest_stream *st)
{
    for (struct rest_stream **p = &s->rstreams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    free(st->queue);
    free(st);
}

void lel__sbx_streams_free(struct lel_sandbox *s)
{
    while (s->rstreams)
        stream_free(s, s->rstreams);
}

/* Room for n more bytes in the queue. */
static int queue_room(struct rest_stream *st, size_t n)
{
    if (st->qlen + n > st->qcap) {
        size_t want = (st->qlen + n) * 2;
        char *nb = realloc(st->queue, want);
        if (!nb)
            return -ENOMEM;
        st->queue = nb;
        st->qcap = want;
    }
    return 0;
}

static int queue_add(struct rest_stream *st, const char *p, size_t n)
{
    if (queue_room(st, n) < 0)
        return -ENOMEM;
    memcpy(st->queue + st->qlen, p, n);
    st->qlen += n;
    return 0;
}

/* Queues an output event of valid UTF-8 text, escaped in one pass (jansson's string and dump
 * copied it twice more): {"data":"...","type":"stdout"}, the same as push_event makes. */
static void push_text(struct rest_stream *st, const char *type, const char *text, size_t n)
{
    size_t tl = strlen(type);
    if (st->ended || queue_room(st, n * 6 + 2 * tl + 48) < 0)
        return;
    char *w = st->queue + st->qlen;
    if (st->sse) {
        w = mempcpy(w, "event: ", 7);
        w = mempcpy(w, type, tl);
        w = mempcpy(w, "\ndata: ", 7);
    }
    w = mempcpy(w, "{\"data\":\"", 9);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') {
            *w++ = (char)ch;
            continue;
        }
        static const char hex[] = "0123456789abcdef";
        const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n" : ch == '\r' ? "\\r"
                        : ch == '\t' ? "\\t" : ch == '\b' ? "\\b" : ch == '\f' ? "\\f" : NULL;
        if (esc) {
            w = mempcpy(w, esc, 2);
        } else {
            w = mempcpy(w, "\\u00", 4);
            *w++ = hex[ch >> 4];
            *w++ = hex[ch & 15];
        }
    }
    w = mempcpy(w, "\",\"type\":\"", 10);
    w = mempcpy(w, type, tl);
    w = mempcpy(w, st->sse ? "\"}\n\n" : "\"}\n", st->sse ? 4 : 3);
    st->qlen = (size_t)(w - st->queue);
}

/* Queues an event: `obj` (stolen) with "type" set, as a JSON line or a server-sent event. */
static void push_event(struct rest_stream *st, const char *type, json_t *obj)
{
    if (!obj || st->ended)
        goto out;
    json_object_set_new(obj, "type", json_string(type));
    char *j = json_dumps(obj, JSON_COMPACT);
    if (!j)
        goto out;
    if (st->sse) {
        queue_add(st, "event: ", 7);
        queue_add(st, type, strlen(type));
        queue_add(st, "\ndata: ", 7);
        queue_add(st, j, strlen(j));
        queue_add(st, "\n\n", 2);
    } else {
        queue_add(st, j, strlen(j));
        queue_add(st, "\n", 1);
    }
    free(j);
out:
    json_decref(obj);
}

/* Bytes at the end of p[0..n) that begin a UTF-8 character not complete yet (0..3). */
static size_t utf8_cut(const char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char ch = (unsigned char)p[n - back];
        if ((ch & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

/* Output of stream k (0 stdout, 1 stderr) from the bulk area as an event; `last`: nothing
 * follows, so no character is held back. */
static void push_output(struct lel_sandbox *s, struct rest_stream *st, int k, uint64_t len, int last)
{
    if (!len && !(last && st->ntail[k]))
        return;
    size_t have = st->ntail[k];
    char *raw = malloc(have + len + 1);
    if (!raw)
        return;
    memcpy(raw, st->tail[k], have);
    size_t n = have + lel_vm_bulk_read(s->vm, k ? LEL_BULK_HALF : 0, raw + have, len);
    size_t cut = last ? 0 : utf8_cut(raw, n);
    memcpy(st->tail[k], raw + n - cut, cut);
    st->ntail[k] = cut;
    size_t clen = 0;
    char *clean = n > cut ? lel_utf8_sanitize(raw, n - cut, &clen) : NULL;
    if (clean)
        push_text(st, k ? "stderr" : "stdout", clean, clen);
    free(clean);
    free(raw);
}

/* Hands the queue over when the HTTP layer waits for it; frees the stream once it is done. */
static void flush(struct lel_sandbox *s, struct rest_stream *st)
{
    if (st->c && st->want && (st->qlen || st->ended)) {
        lel_call_t *c = st->c;
        c->raw = st->queue;
        c->raw_len = st->qlen;
        st->queue = NULL;
        st->qlen = st->qcap = 0;
        st->want = 0;
        if (st->ended)
            st->c = NULL;
        lel_call_piece(c, st->ended ? 0 : 1);
    }
    if (!st->c && st->cmd_done)
        stream_free(s, st);
}

/* Reads the command's output into the stream, unless its client is too far behind. */
static void read_output(struct lel_sandbox *s, struct rest_stream *st)
{
    uint64_t out, err;
    int ended;
    if (st->c && st->qlen >= STREAM_BACKLOG) {
        st->out_waiting = 1;
        return;
    }
    st->out_waiting = 0;
    if (lel_vm_cmd_read(s->vm, st->cmd, &out, &err, &ended) < 0 || !st->c)
        return; /* its client went away: what it would have read is dropped */
    push_output(s, st, 0, out, 0);
    push_output(s, st, 1, err, 0);
    flush(s, st);
}

static struct rest_stream *stream_of_cmd(struct lel_sandbox *s, uint32_t cmd)
{
    for (struct rest_stream *st = s->rstreams; st; st = st->next)
        if (st->cmd == cmd && !st->cmd_done)
            return st;
    return NULL;
}

void lel__sbx_streams_poll(struct lel_sandbox *s)
{
    struct lel_cmd_ready rd[32];
    size_t n = 0;
    if (!s->vm || (!s->rstreams && !lel_envd_running(s->envd) && !lel_envd_watching(s->envd)))
        return;
    if (lel_vm_cmd_poll(s->vm, rd, 32, &n) < 0)
        return; /* a guest older than streaming, or one that did not answer (the result loop says so) */
    for (size_t i = 0; i < n && s->vm; i++) {
        if (!(rd[i].flags & (LEL_POLL_OUTPUT | LEL_POLL_STDIN | LEL_POLL_WATCH)))
            continue; /* an end: the result loop collects it */
        struct rest_stream *st = rd[i].flags & LEL_POLL_WATCH ? NULL : stream_of_cmd(s, rd[i].id); /* (a watch's id is no command's) */
        if (st) {
            if (rd[i].flags & LEL_POLL_OUTPUT)
                read_output(s, st);
            continue;
        }
        struct lel_envd_host h;
        lel__sbx_envd_host(s, &h);
        lel_envd_cmd_ready(s->envd, &h, rd[i].id, rd[i].flags);
    }
}

int lel__sbx_stream_open(struct lel_sandbox *s, lel_call_t *c, struct pending_cmd *pc)
{
    struct rest_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->sid = ++s->rstream_seq;
    st->cmd = pc->id;
    st->c = c;
    st->sse = c->accept_sse;
    push_event(st, "start", json_pack("{s:I}", "pid", (json_int_t)pc->id));
    c->status = 200;
    c->raw = st->queue;
    c->raw_len = st->qlen;
    c->raw_type = st->sse ? "text/event-stream" : "application/x-ndjson";
    st->queue = NULL;
    st->qlen = st->qcap = 0;
    lel_call_stream(c, UINT64_MAX, s->actor, LEL_MSG_CMD_PIECE, st->sid);
    st->next = s->rstreams;
    s->rstreams = st;
    pc->st = st;
    pc->c = NULL; /* the HTTP layer's now, piece by piece */
    return 0;
}

void lel__sbx_stream_end(struct lel_sandbox *s, struct pending_cmd *pc, const struct lel_run_result *res)
{
    struct rest_stream *st = pc->st;
    if (st->c) {
        push_output(s, st, 0, res->out_len, 1);
        push_output(s, st, 1, res->err_len, 1);
    }
    push_event(st, "end", json_pack("{s:I, s:I, s:b, s:b}", "exitCode", (json_int_t)res->exit_status, "durationMs",
                                    (json_int_t)(lel_mono_ms() - pc->t0_ms), "truncated", res->truncated, "timedOut",
                                    res->timed_out));
    st->ended = st->cmd_done = 1;
    pc->st = NULL;
    flush(s, st);
}

void lel__sbx_stream_fail(struct lel_sandbox *s, struct pending_cmd *pc, int status, const char *msg)
{
    struct rest_stream *st = pc->st;
    push_event(st, "error", json_pack("{s:i, s:s}", "code", status, "message", msg));
    st->ended = st->cmd_done = 1;
    pc->st = NULL;
    flush(s, st);
}

void lel__sbx_stream_piece(struct lel_sandbox *s, uint32_t sid)
{
    struct rest_stream *st = s->rstreams;
    while (st && st->sid != sid)
        st = st->next;
    if (!st || !st->c)
        return;
    st->want = 1;
    if (atomic_load(&st->c->cancelled)) { /* the client left: its command runs on, its output dropped */
        lel_call_t *c = st->c;
        st->c = NULL;
        st->qlen = 0;
        lel_call_piece(c, -1);
    }
    flush(s, st); /* may free st */
    for (st = s->rstreams; st && st->sid != sid; st = st->next)
        ;
    if (st && st->out_waiting && s->vm)
        read_output(s, st);
}
