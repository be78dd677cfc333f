/* lelctl sandbox exec (a streamed command: its output as it comes, its exit code as ours) and
 * sandbox cp (files streamed both ways; a download lands whole or not at all). */
#include "lel_cli_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The argv as one /bin/sh line: a single argument is the line itself (`exec ID 'ls | wc'`),
 * several are quoted word by word (`exec ID ls -la /`). */
static char *shell_line(int argc, char **argv)
{
    if (argc == 1)
        return strdup(argv[0]);
    size_t cap = 1;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) * 4 + 3;
    char *s = malloc(cap), *p = s;
    for (int i = 0; i < argc; i++) {
        if (i)
            *p++ = ' ';
        *p++ = '\'';
        for (const char *q = argv[i]; *q; q++)
            if (*q == '\'')
                p = stpcpy(p, "'\\''");
            else
                *p++ = *q;
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

/* All of stdin as a JSON string (the API's `stdin` is text); NULL (printed) if it is not UTF-8. */
static json_t *read_stdin(void)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(0, buf + len, cap - len)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && (len += (size_t)n) == cap)
            buf = realloc(buf, cap *= 2);
    json_t *s = n < 0 ? NULL : json_stringn(buf, len);
    if (!s)
        lel_cli_err(n < 0 ? "cannot read stdin: %s" : "stdin is not UTF-8 text (the API takes text)", strerror(errno));
    free(buf);
    return s;
}

struct stream {
    struct lel_cli *cli;
    long status;
    char *buf; /* an unfinished line, or the error body */
    size_t len;
    int exit_code;
    int ended; /* the end event came */
    int timed_out;
    char error[512];
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One event line: output to our stdout/stderr, the end's exit code, an error's message. */
static void event(struct stream *st, const char *line, size_t n)
{
    json_t *j = json_loadb(line, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *data = json_object_get(j, "data");
    if (!type) {
    } else if ((!strcmp(type, "stdout") || !strcmp(type, "stderr")) && json_is_string(data))
        write_all(!strcmp(type, "stdout") ? 1 : 2, json_string_value(data), json_string_length(data));
    else if (!strcmp(type, "end")) {
        st->exit_code = (int)json_integer_value(json_object_get(j, "exitCode"));
        st->ended = 1;
        st->timed_out = json_is_true(json_object_get(j, "timedOut"));
    } else if (!strcmp(type, "error"))
        snprintf(st->error, sizeof(st->error), "%s", lel_cli_cell(j, "message"));
    json_decref(j);
}

static size_t on_stream(char *p, size_t sz, size_t n, void *ctx)
{
    struct stream *st = ctx;
    size_t len = sz * n;
    if (!st->status)
        curl_easy_getinfo(st->cli->curl, CURLINFO_RESPONSE_CODE, &st->status);
    st->buf = realloc(st->buf, st->len + len + 1);
    memcpy(st->buf + st->len, p, len);
    st->len += len;
    st->buf[st->len] = 0;
    if (st->status != 200)
        return len; /* an error body: kept whole for the message */
    char *start = st->buf, *nl;
    while ((nl = memchr(start, '\n', st->len - (size_t)(start - st->buf)))) {
        event(st, start, (size_t)(nl - start));
        start = nl + 1;
    }
    st->len -= (size_t)(start - st->buf);
    memmove(st->buf, start, st->len);
    return len;
}

/* The exit code of a finished stream: the command's, or LEL_EXIT_EXEC when it never ended. */
static int stream_result(struct stream *st, CURLcode cc)
{
    if (cc != CURLE_OK && !st->ended) {
        lel_cli_err("exec: %s", curl_easy_strerror(cc));
        return LEL_EXIT_EXEC;
    }
    if (st->status != 200) {
        struct lel_cli_resp r = {.status = st->status, .body = st->buf, .len = st->len};
        r.json = st->len ? json_loadb(st->buf, st->len, 0, NULL) : NULL;
        lel_cli_status(&r, 200);
        json_decref(r.json);
        return LEL_EXIT_EXEC;
    }
    if (st->error[0] || !st->ended) {
        lel_cli_err("exec: %s", st->error[0] ? st->error : "the stream ended before the command did");
        return LEL_EXIT_EXEC;
    }
    if (st->timed_out)
        return 124; /* as timeout(1) */
    return st->exit_code < 0 || st->exit_code > 255 ? 255 : st->exit_code; /* -1: killed by a signal */
}

/* --json: the whole result at the end, as the API answers without streaming. */
static int exec_json(struct lel_cli *cli, const char *path, json_t *body)
{
    struct lel_cli_resp r;
    int rc = lel_cli_call(cli, "POST", path, body, 200, &r);
    if (rc)
        return LEL_EXIT_EXEC;
    lel_cli_print_json(r.json);
    json_int_t code = json_integer_value(json_object_get(r.json, "exitCode"));
    rc = json_is_true(json_object_get(r.json, "timedOut")) ? 124 : code < 0 || code > 255 ? 255 : (int)code;
    lel_cli_resp_free(&r);
    return rc;
}

static int exec_stream(struct lel_cli *cli, const char *path, json_t *body)
{
    json_object_set_new(body, "stream", json_true());
    char *text = json_dumps(body, JSON_COMPACT);
    struct curl_slist *h = lel_cli_prepare(cli, "POST", path, "application/json");
    h = curl_slist_append(h, "Accept: application/x-ndjson");
    curl_easy_setopt(cli->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(cli->curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(cli->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    struct stream st = {.cli = cli};
    curl_easy_setopt(cli->curl, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(cli->curl, CURLOPT_WRITEDATA, &st);
    CURLcode cc = curl_easy_perform(cli->curl);
    if (!st.status)
        curl_easy_getinfo(cli->curl, CURLINFO_RESPONSE_CODE, &st.status);
    int rc = stream_result(&st, cc);
    curl_slist_free_all(h);
    free(text);
    free(st.buf);
    return rc;
}

int lel__cli_exec(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {"cwd", 1, 0, 'w'}, {"env", 1, 0, 'e'}, {"stdin", 0, 0, 'i'},
                                      {"timeout", 1, 0, 'T'}, {0, 0, 0, 0}};
    json_t *body = json_pack("{s:{}}", "envs");
    int c, r, rc = 0, want_stdin = 0;
    long long t;
    /* '+': options end at the sandbox id, so the command's own options stay its own */
    while (!rc && (c = getopt_long(argc, argv, "+qe:w:i", o, NULL)) != -1) {
        if ((r = lel_cli_opt(cli, c, optarg)))
            rc = r < 0 ? LEL_EXIT_USAGE : 0;
        else if (c == 'w')
            json_object_set_new(body, "cwd", json_string(optarg));
        else if (c == 'e')
            rc = lel__cli_kv(json_object_get(body, "envs"), "env", optarg) < 0 ? LEL_EXIT_USAGE : 0;
        else if (c == 'i')
            want_stdin = 1;
        else if (c == 'T')
            rc = (t = lel_cli_num("timeout", optarg)) < 0
                     ? LEL_EXIT_USAGE
                     : json_object_set_new(body, "timeoutMs", json_integer((json_int_t)t * 1000));
        else
            rc = LEL_EXIT_USAGE;
    }
    if (!rc && argc - optind < 2)
        rc = lel_cli_usage("sandbox exec needs a sandbox id and a command");
    if (!rc && optind + 1 < argc && !strcmp(argv[optind + 1], "--") && argc - optind < 3)
        rc = lel_cli_usage("sandbox exec needs a command after --");
    if (rc) {
        json_decref(body);
        return rc == LEL_EXIT_USAGE ? rc : LEL_EXIT_EXEC;
    }
    const char *id = argv[optind];
    int first = optind + 1 + (strcmp(argv[optind + 1], "--") == 0);
    char *cmd = shell_line(argc - first, argv + first), path[1024];
    json_object_set_new(body, "cmd", json_string(cmd));
    free(cmd);
    json_t *in = want_stdin ? read_stdin() : NULL;
    if (want_stdin && !in) {
        json_decref(body);
        return LEL_EXIT_EXEC;
    }
    if (in)
        json_object_set_new(body, "stdin", in);
    lel__cli_sbx_path(path, sizeof(path), id, "/commands");
    if (lel_cli_ready(cli))
        rc = LEL_EXIT_EXEC;
    else
        rc = cli->json ? exec_json(cli, path, body) : exec_stream(cli, path, body);
    json_decref(body);
    return rc;
}

/* "ID:/path" splits into id and path; a local path has no ':' before its first '/'. */
static int remote(const char *arg, char *id, size_t cap, const char **path)
{
    const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');
    if (!colon || colon == arg || (slash && slash < colon) || (size_t)(colon - arg) >= cap)
        return 0;
    snprintf(id, cap, "%.*s", (int)(colon - arg), arg);
    *path = colon + 1;
    return 1;
}

static size_t on_read(char *p, size_t sz, size_t n, void *ctx)
{
    size_t got = fread(p, 1, sz * n, ctx);
    return got == 0 && ferror((FILE *)ctx) ? CURL_READFUNC_ABORT : got;
}

static int upload(struct lel_cli *cli, const char *local, const char *id, const char *rpath)
{
    FILE *f = strcmp(local, "-") ? fopen(local, "rb") : stdin;
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) < 0 || S_ISDIR(sb.st_mode)) {
        lel_cli_err("%s: %s", local, f ? "is a directory (cp copies files)" : strerror(errno));
        if (f && f != stdin)
            fclose(f);
        return LEL_EXIT_ERROR;
    }
    char full[4096], path[8192];
    size_t rl = strlen(rpath);
    char *lcopy = strdup(local);
    /* into a directory named with a trailing '/': the local file's name there */
    snprintf(full, sizeof(full), "%s%s", rpath, rl && rpath[rl - 1] == '/' && f != stdin ? basename(lcopy) : "");
    free(lcopy);
    char *e = lel_cli_escape(full), rest[8300];
    snprintf(rest, sizeof(rest), "/files?path=%s", e);
    free(e);
    lel__cli_sbx_path(path, sizeof(path), id, rest);
    struct curl_slist *h = lel_cli_prepare(cli, "PUT", path, "application/octet-stream");
    struct lel_cli_resp r = {0};
    curl_easy_setopt(cli->curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(cli->curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(cli->curl, CURLOPT_READDATA, f);
    if (S_ISREG(sb.st_mode))
        curl_easy_setopt(cli->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
    struct stream st = {.cli = cli, .status = -1}; /* status -1: keep the body whole */
    curl_easy_setopt(cli->curl, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(cli->curl, CURLOPT_WRITEDATA, &st);
    CURLcode cc = curl_easy_perform(cli->curl);
    curl_slist_free_all(h);
    if (f != stdin)
        fclose(f);
    int rc = 0;
    if (cc != CURLE_OK) {
        lel_cli_err("upload to %s:%s: %s", id, full, curl_easy_strerror(cc));
        rc = LEL_EXIT_CONNECT;
    } else {
        curl_easy_getinfo(cli->curl, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = st.buf;
        r.len = st.len;
        r.json = st.len ? json_loadb(st.buf, st.len, 0, NULL) : NULL;
        rc = lel_cli_status(&r, 204);
        json_decref(r.json);
    }
    free(st.buf);
    return rc;
}

struct sink {
    struct lel_cli *cli;
    long status;
    int fd;
    char *err; /* the body of an error answer */
    size_t len;
    int failed; /* a local write failed: errno in saved */
    int saved;
    char ctype[128];
};

static size_t on_file(char *p, size_t sz, size_t n, void *ctx)
{
    struct sink *s = ctx;
    size_t len = sz * n;
    if (!s->status) {
        curl_easy_getinfo(s->cli->curl, CURLINFO_RESPONSE_CODE, &s->status);
        char *ct = NULL;
        curl_easy_getinfo(s->cli->curl, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(s->ctype, sizeof(s->ctype), "%s", ct ? ct : "");
    }
    if (s->status != 200 || !strncmp(s->ctype, "application/json", 16)) { /* an error, or a directory's listing */
        s->err = realloc(s->err, s->len + len + 1);
        memcpy(s->err + s->len, p, len);
        s->err[s->len += len] = 0;
        return len;
    }
    if (write_all(s->fd, p, len) < 0) {
        s->failed = 1;
        s->saved = errno;
        return 0;
    }
    return len;
}

/* The local file a download goes to: `local` itself, or local/<name> for a directory. */
static void target_of(const char *local, const char *rpath, char *out, size_t cap)
{
    struct stat sb;
    if (stat(local, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        const char *name = strrchr(rpath, '/');
        snprintf(out, cap, "%s/%s", local, name ? name + 1 : rpath);
    } else
        snprintf(out, cap, "%s", local);
}

static int download(struct lel_cli *cli, const char *id, const char *rpath, const char *local)
{
    char target[4096], tmp[4200], path[8192], rest[8300];
    int to_stdout = !strcmp(local, "-");
    target_of(local, rpath, target, sizeof(target));
    snprintf(tmp, sizeof(tmp), "%s.lelctl-XXXXXX", target);
    struct sink s = {.cli = cli, .fd = to_stdout ? 1 : mkstemp(tmp)};
    if (s.fd < 0) {
        lel_cli_err("cannot write %s: %s", target, strerror(errno));
        return LEL_EXIT_ERROR;
    }
    char *e = lel_cli_escape(rpath);
    snprintf(rest, sizeof(rest), "/files?path=%s", e);
    free(e);
    lel__cli_sbx_path(path, sizeof(path), id, rest);
    struct curl_slist *h = lel_cli_prepare(cli, "GET", path, NULL);
    curl_easy_setopt(cli->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(cli->curl, CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(cli->curl, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(cli->curl);
    curl_slist_free_all(h);
    int rc = 0;
    if (s.failed) {
        lel_cli_err("cannot write %s: %s", to_stdout ? "stdout" : target, strerror(s.saved));
        rc = LEL_EXIT_ERROR;
    } else if (cc != CURLE_OK) {
        lel_cli_err("download of %s:%s: %s", id, rpath, curl_easy_strerror(cc));
        rc = LEL_EXIT_CONNECT;
    } else if (s.status == 200 && s.err) {
        lel_cli_err("%s:%s is a directory (cp copies files)", id, rpath);
        rc = LEL_EXIT_ERROR;
    } else if (s.status != 200) {
        struct lel_cli_resp r = {.status = s.status, .body = s.err, .len = s.len};
        r.json = s.len ? json_loadb(s.err, s.len, 0, NULL) : NULL;
        rc = lel_cli_status(&r, 200);
        json_decref(r.json);
    }
    free(s.err);
    if (!to_stdout) {
        /* whole or not at all: the temporary becomes the file only after the last byte */
        if (!rc && (fsync(s.fd) < 0 || rename(tmp, target) < 0)) {
            lel_cli_err("cannot write %s: %s", target, strerror(errno));
            rc = LEL_EXIT_ERROR;
        }
        close(s.fd);
        if (rc)
            unlink(tmp);
    }
    return rc;
}

int lel__cli_cp(struct lel_cli *cli, int argc, char **argv)
{
    static const struct option o[] = {LEL_CLI_OPTS, {0, 0, 0, 0}};
    int c, r;
    while ((c = getopt_long(argc, argv, "q", o, NULL)) != -1)
        if ((r = lel_cli_opt(cli, c, optarg)) <= 0)
            return LEL_EXIT_USAGE;
    if (argc - optind != 2)
        return lel_cli_usage("sandbox cp takes SRC DST (one of them ID:/abs/path)");
    char sid[256], did[256];
    const char *sp, *dp;
    int sr = remote(argv[optind], sid, sizeof(sid), &sp), dr = remote(argv[optind + 1], did, sizeof(did), &dp);
    if (sr == dr)
        return lel_cli_usage("sandbox cp copies between a sandbox and here: exactly one of SRC and DST is ID:/path");
    int rc = lel_cli_ready(cli);
    if (rc)
        return rc;
    return dr ? upload(cli, argv[optind], did, dp) : download(cli, sid, sp, argv[optind + 1]);
}
