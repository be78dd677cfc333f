/* process.Process stdin on the host: SendInput, StreamInput and CloseStdin of a process started
 * with `stdin: true`, whose stdin in the guest is a pipe (LEL_CMD_STDIN_PIPE), and the `pty`
 * input of one started on a pty, typed at its terminal (the same guest request). Input goes to the
 * guest in order, as much as its pipe takes; the rest waits here until the guest says the pipe
 * has room (LEL_POLL_STDIN). Each call is answered once all of its bytes are in the pipe, as
 * envd answers once they are written, so a client that sends faster than the process reads
 * is held back; at most STDIN_QUEUED bytes wait per process. StreamInput (client streaming) is
 * taken whole: its messages are the request body's envelopes, its answer one message and the
 * end of the stream. Runs on the sandbox's actor. */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STDIN_QUEUED (8u << 20)

/* Input waiting for the guest: bytes, or a close (len 0, close set), and the call it answers. */
struct envd_input {
    char *data;
    size_t len, off;
    int close;
    int streamed; /* StreamInput: answered as a stream */
    lel_call_t *c;
    struct envd_input *next;
};

static size_t queued(const struct envd_proc *p)
{
    size_t n = 0;
    for (const struct envd_input *in = p->in; in; in = in->next)
        n += in->len - in->off;
    return n;
}

/* Sets c's answer: done (code NULL) or the error. */
static void set_answer(lel_call_t *c, int streamed, const char *code, const char *msg)
{
    if (streamed && code)
        lel__envd_stream_fail(c, code, "%s", msg);
    else if (streamed)
        lel__envd_stream_reply(c, json_object());
    else if (code)
        lel__envd_error(c, code, "%s", msg);
    else
        lel__envd_reply(c, NULL);
}

/* Answers a kept call and frees its input. */
static void answer(struct envd_input *in, const char *code, const char *msg)
{
    set_answer(in->c, in->streamed, code, msg);
    lel_call_done(in->c);
    free(in->data);
    free(in);
}

void lel__envd_stdin_fail(struct envd_proc *p, const char *code, const char *msg)
{
    while (p->in) {
        struct envd_input *in = p->in;
        p->in = in->next;
        answer(in, code, msg);
    }
}

/* One write of data[*off..len) into p's pipe (closing it after the last byte when `close`):
 * 0 when all of it is in, 1 when the pipe is full (the rest waits), -1 with the error's code
 * and message when the pipe is gone (p's stdin is then closed for good). */
static int write_some(const struct lel_envd_host *h, struct envd_proc *p, const char *data, size_t len, int close,
                      size_t *off, const char **code, const char **why)
{
    size_t taken = 0;
    int r = h->vm ? lel_vm_cmd_stdin(h->vm, p->pid, data ? data + *off : NULL, len - *off, close, &taken) : -EPIPE;
    *off += taken;
    if (r == 0 && *off < len)
        return 1; /* LEL_POLL_STDIN says when to go on */
    if (r == 0) {
        if (close)
            p->stdin_pipe = 0;
        return 0;
    }
    p->stdin_pipe = 0;
    *code = r == -EPIPE || r == -EINVAL || r == -ENOENT ? "failed_precondition" : r == -ENOSYS ? "unimplemented" : "unavailable";
    *why = r == -EPIPE                  ? "error writing to stdin: the process closed it"
         : r == -EINVAL || r == -ENOENT ? "stdin not enabled or closed"
         : r == -ENOSYS                 ? "this sandbox's guest has no stdin pipes (start it from a newer template)"
                                        : "the sandbox's guest did not answer";
    return -1;
}

void lel__envd_stdin_pump(const struct lel_envd_host *h, struct envd_proc *p)
{
    while (p->in) {
        struct envd_input *in = p->in;
        const char *code = NULL, *why = NULL;
        int r = write_some(h, p, in->data, in->len, in->close, &in->off, &code, &why);
        if (r < 0) {
            lel__envd_stdin_fail(p, code, why);
            return;
        }
        if (r > 0)
            return;
        p->in = in->next;
        answer(in, NULL, NULL);
    }
}

/* Sends input for p (after what waits already), answering c now when the guest takes it at
 * once (or refuses it): returns 0 then (the caller finishes c), and 1 when c is kept until
 * the rest is in. */
static int enqueue(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p, char *data, size_t len,
                   int close, int streamed)
{
    size_t off = 0;
    const char *code = NULL, *why = NULL;
    int r = 1;
    if (queued(p) + len > STDIN_QUEUED) {
        r = -1;
        code = "resource_exhausted";
        why = "too much input waits for the process to read it";
    } else if (!p->in) { /* nothing before it: straight to the guest */
        r = write_some(h, p, data, len, close, &off, &code, &why);
    }
    struct envd_input *in = r > 0 ? calloc(1, sizeof(*in)) : NULL, **tail = &p->in;
    if (r > 0 && !in) {
        r = -1;
        code = "resource_exhausted";
        why = "out of memory";
    }
    if (r <= 0) {
        set_answer(c, streamed, code, why);
        free(data);
        return 0;
    }
    in->data = data;
    in->len = len;
    in->off = off;
    in->close = close;
    in->streamed = streamed;
    in->c = c;
    while (*tail)
        tail = &(*tail)->next;
    *tail = in;
    return 1;
}

/* The bytes of a ProcessInput for p ({"stdin": base64}, or {"pty": base64} for a process on a
 * pty); NULL with the error's code and message set. */
static char *input_bytes(const struct envd_proc *p, json_t *input, size_t *len, const char **code, const char **why)
{
    json_t *v = json_object_get(input, p && p->pty ? "pty" : "stdin");
    if (!v && json_object_get(input, p && p->pty ? "stdin" : "pty")) {
        *code = "failed_precondition";
        *why = p && p->pty ? "the process runs on a pty: send its input as pty" : "the process has no pty";
        return NULL;
    }
    const char *b64 = json_string_value(v);
    size_t n = b64 ? strlen(b64) : 0;
    char *out = b64 ? malloc(n / 4 * 3 + 3) : NULL;
    long got = out ? lel__envd_b64_decode(b64, out, n / 4 * 3 + 3) : -1;
    if (got < 0) {
        free(out);
        *code = "invalid_argument";
        *why = p && p->pty ? "input.pty must be base64 bytes" : "input.stdin must be base64 bytes";
        return NULL;
    }
    *len = (size_t)got;
    return out;
}

int lel__envd_stdin_send(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p, json_t *rq)
{
    size_t len = 0;
    const char *code, *why;
    char *data = input_bytes(p, json_object_get(rq, "input"), &len, &code, &why);
    if (!data) {
        lel__envd_error(c, code, "%s", why);
        return 0;
    }
    if (!p->stdin_pipe && !p->pty) {
        free(data);
        lel__envd_error(c, "failed_precondition", "stdin not enabled or closed");
        return 0;
    }
    return enqueue(h, c, p, data, len, 0, 0);
}

int lel__envd_stdin_close(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p)
{
    if (p->pty) {
        lel__envd_error(c, "failed_precondition", "a pty has no stdin to close (send ^D as pty input)");
        return 0;
    }
    if (!p->stdin_pipe) { /* started without stdin (it reads an empty one), or closed already */
        lel__envd_reply(c, NULL);
        return 0;
    }
    return enqueue(h, c, p, NULL, 0, 1, 0);
}

/* The next envelope of a client stream, from *off: 1 with its message in *msg, 0 at the end of
 * the body (or the client's end-of-stream envelope), -1 for a malformed one (or compressed). */
static int next_message(lel_call_t *c, size_t *off, json_t **msg)
{
    const unsigned char *b = (const unsigned char *)c->body + *off;
    size_t left = c->body_len - *off;
    *msg = NULL;
    if (!left)
        return 0;
    size_t n = left >= 5 ? (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4] : 0;
    if (left < 5 || n > left - 5 || (b[0] & ~2u))
        return -1;
    *off += 5 + n;
    if (b[0] & 2)
        return 0;
    *msg = json_loadb((const char *)b + 5, n, 0, NULL);
    if (json_is_object(*msg))
        return 1;
    json_decref(*msg);
    *msg = NULL;
    return -1;
}

int lel__envd_stdin_stream(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c)
{
    size_t off = 0, len = 0;
    int r;
    char *all = NULL;
    struct envd_proc *p = NULL;
    json_t *m;
    if (!c->body || strncmp(c->content_type ? c->content_type : "", "application/connect+json", 24)) {
        lel__envd_stream_fail(c, "invalid_argument", "content type must be application/connect+json");
        return 0;
    }
    while ((r = next_message(c, &off, &m)) == 1) {
        json_t *start = json_object_get(m, "start"), *data = json_object_get(m, "data");
        const char *code = NULL, *why = NULL;
        if (start && !p && !(p = lel__envd_proc_select(e, json_object_get(start, "process"))))
            code = "not_found", why = "process not found";
        else if (data && !p)
            code = "failed_precondition", why = "the first message must be start";
        size_t n = 0;
        char *bytes = data && !why ? input_bytes(p, json_object_get(data, "input"), &n, &code, &why) : NULL;
        char *grown = bytes ? realloc(all, len + n + 1) : NULL;
        if (grown) {
            memcpy(grown + len, bytes, n);
            all = grown;
            len += n;
        }
        free(bytes);
        json_decref(m);
        if (why) {
            free(all);
            lel__envd_stream_fail(c, code, "%s", why);
            return 0;
        }
    }
    if (r < 0 || !p || (!p->stdin_pipe && !p->pty)) {
        free(all);
        if (r < 0 || !p)
            lel__envd_stream_fail(c, "invalid_argument", r < 0 ? "malformed message envelope" : "no start message");
        else
            lel__envd_stream_fail(c, "failed_precondition", "stdin not enabled or closed");
        return 0;
    }
    return enqueue(h, c, p, all, len, 0, 1);
}
