/* The template builder, on the template's actor: start a VM (boot for `base`, or restore the
 * parent template's image), apply the steps in order (`run` fails the build on a non-zero
 * exit, `file` writes a file with its mode), start `startCmd` in the background, poll
 * `readyCmd` until it exits 0, then snapshot the VM into the template's image and unpack its
 * memory for copy-on-write sandboxes. Every step,
 * its output and a failure's reason go to the build's logs.
 *
 * The actor never waits on the guest for long: a command (a `run` step, a file's mode,
 * readyCmd) is started and then polled from timer messages, and a boot is polled the same way,
 * so a DELETE is handled between two polls and cancels the build whatever runs in the guest
 * (lel__template_build_abandon destroys the VM), and no worker thread is held by a step. What
 * still blocks a turn is short: a restore, a file write, starting startCmd, the snapshot. Reads
 * do not come here at all (lel_template_read, on the team actor). Polling, not the VM's event
 * callback, so that nothing but the actor itself ever reaches the actor from the VM's thread. */
#include "lel_template_int.h"

#include "../guest/lel_guest_abi.h"
#include "../image/lel_image.h"
#include "../image/lel_rofs_build.h"
#include "../vmm/lel_vmm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OUTPUT_LOG_MAX 4096 /* bytes of a step's output kept in the build log (a guest that does not stream) */
#define LINE_MAX_BYTES 4096 /* a longer line of a streamed step's output is logged in pieces */
#define STREAM_LOG_MAX (256u << 10) /* bytes of each stream of a step logged; the rest is counted */
#define POLL_STREAM_MS 20   /* a streamed step's polls while it writes (each one stores the log) */
#define POLL_MIN_MS 1       /* a command's first poll; the interval doubles up to POLL_MAX_MS */
#define POLL_MAX_MS 100
#define READY_RETRY_MS 200  /* between readyCmd tries */
#define CMD_GRACE_MS 10000  /* past a command's timeout the guest has this long to end it (a fork
                               bomb's teardown under emulation takes seconds); then it is wedged */

struct build {
    struct lel_template *t;
    json_t *rec; /* the build record */
    char path[64];
    int64_t deadline_ms;
    lel_vm_t *vm;
};

static void save(struct build *b)
{
    lel_store_put(b->t->srv->store, LEL_CF_BUILDS, b->path, b->rec);
}

/* Appends one log line (len bytes of msg) to the record, not yet stored. */
static void log_add(struct build *b, const char *level, const char *msg, size_t len)
{
    char ts[32];
    size_t n;
    char *clean = lel_utf8_sanitize(msg, len, &n);
    lel_rfc3339(lel_now_ms(), ts);
    json_array_append_new(json_object_get(b->rec, "logs"), json_stringn(clean ? clean : "", clean ? n : 0));
    json_array_append_new(json_object_get(b->rec, "logEntries"),
                          json_pack("{s:s, s:s, s:s%}", "timestamp", ts, "level", level, "message", clean ? clean : "", clean ? n : 0));
    free(clean);
}

static void logf_(struct build *b, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(struct build *b, const char *level, const char *fmt, ...)
{
    char msg[OUTPUT_LOG_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_add(b, level, msg, strlen(msg));
    save(b);
}

static void set_status(struct build *b, const char *status, const char *reason)
{
    json_object_set_new(b->rec, "status", json_string(status));
    if (reason)
        json_object_set_new(b->rec, "reason", json_string(reason));
    /* the template first, then the build: a client that sees the build ready must be able to
     * create a sandbox from the template at once (it was seen answering 409 "not ready") */
    json_t *rec = json_deep_copy(b->t->rec);
    json_object_set_new(rec, "buildStatus", json_string(status));
    json_object_set(rec, "buildID", json_object_get(b->rec, "buildID"));
    if (!strcmp(status, "ready"))
        json_object_set(rec, "imageBuildID", json_object_get(b->rec, "buildID"));
    lel_json_set_time(rec, "updatedAt", lel_now_ms());
    char path[64];
    snprintf(path, sizeof(path), "%s/%s", b->t->team_id, b->t->id);
    if (lel_store_put(b->t->srv->store, LEL_CF_TEMPLATES, path, rec) == 0) {
        json_decref(b->t->rec);
        b->t->rec = rec;
        atomic_store(&b->t->status, lel__template_status(status));
    } else {
        json_decref(rec);
    }
    save(b);
}

static int64_t left_ms(struct build *b)
{
    int64_t l = b->deadline_ms - lel_mono_ms();
    return l > 0 ? l : 0;
}

/* startCmd runs in the background for good: nobody collects it, it gets no hangup, and it is
 * part of the snapshot, so every sandbox from the template has it running from the start.
 * Its output is discarded (redirect it to a file in the command to keep it). */
static int start_cmd(struct build *b, const char *cmd, const char *const *env, const char *cwd)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct lel_cmd c = {argv, env, cwd, NULL, 0, 0, 1};
    uint32_t id;
    logf_(b, "info", "startCmd: %s", cmd);
    int r = lel_vm_cmd_start(b->vm, &c, &id);
    if (r != 0)
        logf_(b, "error", "startCmd: %s", r > 0 ? "could not start in the guest" : "the guest did not answer");
    return r == 0 ? 0 : -1;
}

static void ref_actor(void *a, void *ctx)
{
    (void)ctx;
    lel_actor_ref(a);
}

/* The first VM: booted for `base` (the caller waits for the guest to be ready), on the image's
 * rofs for fromImage, else the parent template's image (copy-on-write). */
static int start_vm(struct build *b, const char *from, const char *rofs, char *err, size_t errlen)
{
    struct lel_vm_config cfg = {(uint64_t)b->t->mem_mb << 20, 100, NULL, NULL, NULL, rofs, (uint64_t)b->t->disk_mb << 20, 0, 0,
                                !b->t->srv->cfg.vmm_seccomp, 0, &b->t->srv->vm_stats};
    if (!strcmp(from, "base"))
        return lel_vm_boot(&cfg, &b->vm, err, errlen);
    lel_actor_t *p = lel_registry_get(b->t->srv->templates, from, ref_actor, NULL);
    char img[4200], raw[4200];
    int have = p && lel_template_image(p, img, raw, sizeof(img));
    if (p)
        lel_actor_unref(p);
    if (!have) {
        snprintf(err, errlen, "template %s has no built image to start from", from);
        return -ENOENT;
    }
    cfg.memory_file = raw;
    int r = lel_vm_restore(img, &cfg, &b->vm, err, errlen);
    if (r == 0 && (r = lel_vm_set_clock(b->vm)) < 0)
        snprintf(err, errlen, "the restored guest did not take its clock and random seed: %s%s%s", strerror(-r),
                 r == -EPIPE ? ": it died: " : "", r == -EPIPE ? lel_vm_why(b->vm) : "");
    return r;
}

/* Stop, image, unpack the memory for copy-on-write, then mark the template ready. */
static int snapshot(struct build *b, char *err, size_t errlen)
{
    char img[4200], raw[4200], dir[4200];
    struct lel_snap_info info;
    snprintf(dir, sizeof(dir), "%s/templates", b->t->srv->cfg.data_dir);
    mkdir(dir, 0700);
    const char *bid = json_string_value(json_object_get(b->rec, "buildID"));
    lel__template_build_image(b->t, bid, img, sizeof(img), 0); /* its own files: diffs over the last build's stay valid */
    lel__template_build_image(b->t, bid, raw, sizeof(raw), 1);
    atomic_store(&b->t->image_ready, 0); /* new sandboxes boot meanwhile; running ones keep their mapping */
    lel_vm_trim(b->vm, 1); /* memory the build freed is not worth keeping in the image */
    if (lel_vm_stop(b->vm) < 0) {
        snprintf(err, errlen, "the VM died before the snapshot");
        return -EPIPE;
    }
    int r = lel_vm_save(b->vm, img, &info, err, errlen);
    if (r == 0)
        r = lel_image_unpack_memory(img, raw, err, errlen);
    if (r == 0 && (r = lel__template_image_switch(b->t, bid)) < 0)
        snprintf(err, errlen, "storage error recording the image");
    if (r == 0)
        logf_(b, "info", "snapshot: %llu bytes of image for %llu MiB of memory", (unsigned long long)info.stored_bytes,
              (unsigned long long)(info.mem_bytes >> 20));
    return r;
}

/* The build as a state machine on the template's actor: one phase (or one step) per message;
 * while a command runs in the guest each message is one poll of it. */
enum phase { PH_VM = 0, PH_BOOT, PH_IMAGE, PH_STEPS, PH_READY, PH_SNAPSHOT };

struct lel_build_state {
    struct build b;
    json_t *def;
    enum phase phase;
    size_t step;
    int tries;
    int64_t boot_deadline_ms; /* monotonic */
    /* the command in flight (cmd_running): its id, what the logs call it, when it is wedged */
    int cmd_running, cmd_quiet;
    int streamed; /* its output is read while it runs and logged line by line (not quiet, a guest that streams) */
    struct out_line {
        char buf[LINE_MAX_BYTES];
        size_t n;
        uint64_t logged, dropped;
    } out[2]; /* stdout, stderr: the line being read */
    uint32_t cmd_id;
    int64_t cmd_deadline_ms; /* monotonic */
    int poll_ms;
    char what[192];
    struct lel_img_rofs *rofs; /* fromImage: its rofs being built or found (PH_IMAGE) */
    char rofs_path[4300];      /* ... and where it is, for the build VM */
    int64_t rofs_t0;           /* when its build began (monotonic ms) */
    json_t *env;               /* the env commands get so far (the start point's, then env steps) */
    char cwd[4096];            /* and their working directory (workdir steps) */
    char user[72];             /* and their user (user steps; "" root), a name or uid of the guest's /etc/passwd */
};

/* Who a step runs as: its own `user` field, else the last user step's; NULL for root. */
static const char *step_user(const struct lel_build_state *bs, json_t *st)
{
    const char *u = json_string_value(json_object_get(st, "user"));
    if (!u || !*u)
        u = bs->user;
    return *u && strcmp(u, "root") && strcmp(u, "0") ? u : NULL;
}

/* A step's command as `user`, as Docker and E2B's builder run steps after USER: the guest's
 * /etc/passwd names the user (a uid is looked up too; a ":group" part is ignored), busybox su
 * takes its uid, gid, groups and HOME (the environment stays, so do the cwd and the arguments). */
#define AS_USER "n=$(/bin/busybox id -un \"${1%%:*}\" 2>/dev/null) || { echo \"unknown user '$1' (not in /etc/passwd)\" >&2; exit 1; }; " \
                "shift; exec /bin/busybox su -s /bin/sh \"$n\" -c 'exec \"$@\"' sh \"$@\""


/* bs->env as "K=V" strings, PATH and HOME defaulted as for sandboxes' commands; free_env. */
static char **make_env(struct lel_build_state *bs)
{
    json_t *m = json_deep_copy(bs->env), *v;
    const char *k;
    size_t n = 0;
    if (!json_object_get(m, "PATH"))
        json_object_set_new(m, "PATH", json_string("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (!json_object_get(m, "HOME"))
        json_object_set_new(m, "HOME", json_string("/root"));
    char **env = calloc(json_object_size(m) + 1, sizeof(char *));
    json_object_foreach(m, k, v)
    {
        if (env && asprintf(&env[n], "%s=%s", k, json_string_value(v)) >= 0)
            n++;
    }
    json_decref(m);
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

static void next(struct lel_template *t, int64_t delay_ms)
{
    lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD_STEP, 0, NULL);
    if (!m)
        return;
    if (delay_ms > 0 ? lel_timers_at(t->srv->timers, lel_mono_ms() + delay_ms, t->actor, m) < 0 : lel_actor_send(t->actor, m) < 0)
        lel_msg_free(m);
}

/* Starts argv in the build VM as the command in flight and arms its first poll. Returns 1, or
 * -1 with the error logged. `quiet`: its output is not logged (readyCmd, tried many times). */
static int cmd_start(struct lel_build_state *bs, const char *const *argv, int quiet)
{
    struct build *b = &bs->b;
    int64_t left = left_ms(b);
    if (left == 0) {
        logf_(b, "error", "%s: the build ran out of time", bs->what);
        return -1;
    }
    char **env = make_env(bs);
    struct lel_cmd c = {argv, (const char *const *)env, bs->cwd, NULL, 0, (uint64_t)left, quiet ? 0 : LEL_CMD_STREAM};
    int r = env ? lel_vm_cmd_start(b->vm, &c, &bs->cmd_id) : -ENOMEM;
    free_env(env);
    if (r != 0) {
        logf_(b, "error", "%s: %s", bs->what, r > 0 ? "could not start in the guest" : "the guest did not answer");
        return -1;
    }
    bs->cmd_running = 1;
    bs->cmd_quiet = quiet;
    bs->streamed = !quiet;
    memset(bs->out, 0, sizeof(bs->out));
    bs->cmd_deadline_ms = lel_mono_ms() + left + CMD_GRACE_MS;
    bs->poll_ms = POLL_MIN_MS;
    next(b->t, bs->poll_ms);
    return 1;
}

static void log_output(struct build *b, const struct lel_run_result *res)
{
    char out[OUTPUT_LOG_MAX + 1];
    size_t n = lel_vm_bulk_read(b->vm, 0, out, res->out_len < OUTPUT_LOG_MAX ? res->out_len : OUTPUT_LOG_MAX);
    out[n] = 0;
    if (n)
        logf_(b, "info", "%s", out);
    n = lel_vm_bulk_read(b->vm, LEL_BULK_HALF, out, res->err_len < OUTPUT_LOG_MAX ? res->err_len : OUTPUT_LOG_MAX);
    out[n] = 0;
    if (n)
        logf_(b, "warn", "%s", out);
}

/* Ends stream k's line being read: logged (within STREAM_LOG_MAX), or counted. */
static void line_end(struct lel_build_state *bs, int k)
{
    struct out_line *o = &bs->out[k];
    if (o->logged + o->n <= STREAM_LOG_MAX) {
        log_add(&bs->b, k ? "warn" : "info", o->buf, o->n);
        o->logged += o->n;
    } else {
        o->dropped += o->n;
    }
    o->n = 0;
}

/* Output of a streamed step: split into lines, each a log entry as it completes (issue 18:
 * a step's output while it runs). */
static void feed(struct lel_build_state *bs, int k, const char *p, size_t n)
{
    struct out_line *o = &bs->out[k];
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || o->n == sizeof(o->buf)) {
            line_end(bs, k);
            if (p[i] == '\n')
                continue;
        }
        o->buf[o->n++] = p[i];
    }
}

/* What the streamed step wrote into the bulk area (out bytes at 0, err at LEL_BULK_HALF). */
static void feed_bulk(struct lel_build_state *bs, uint64_t out_len, uint64_t err_len)
{
    char chunk[1 << 14];
    uint64_t len[2] = {out_len, err_len};
    for (int k = 0; k < 2; k++)
        for (uint64_t off = 0; off < len[k];) {
            size_t want = len[k] - off < sizeof(chunk) ? (size_t)(len[k] - off) : sizeof(chunk);
            size_t got = lel_vm_bulk_read(bs->b.vm, (k ? LEL_BULK_HALF : 0) + off, chunk, want);
            if (!got)
                break;
            feed(bs, k, chunk, got);
            off += got;
        }
}

/* The streamed step ended: the lines not ended yet, and what was not logged. */
static void feed_end(struct lel_build_state *bs)
{
    for (int k = 0; k < 2; k++) {
        if (bs->out[k].n)
            line_end(bs, k);
        if (bs->out[k].dropped)
            logf_(&bs->b, "warn", "(%llu more bytes of its %s not logged)", (unsigned long long)bs->out[k].dropped,
                  k ? "stderr" : "stdout");
    }
    save(&bs->b);
}

/* A poll of a streamed step that still runs: its new output is logged. 1 when there was some. */
static int stream_poll(struct lel_build_state *bs)
{
    uint64_t out_len, err_len;
    int ended;
    int r = lel_vm_cmd_read(bs->b.vm, bs->cmd_id, &out_len, &err_len, &ended);
    if (r == -ENOSYS || r == -EINVAL) { /* a guest older than streaming: the output comes with the end */
        bs->streamed = 0;
        return 0;
    }
    if (r < 0 || (!out_len && !err_len))
        return 0;
    feed_bulk(bs, out_len, err_len);
    save(&bs->b);
    return 1;
}

/* One poll of the command in flight: 1 while it runs (the next poll is armed), 0 when it ended
 * (*code its exit status, its output logged), -1 when it failed (logged). */
static int cmd_poll(struct lel_build_state *bs, int *code)
{
    struct build *b = &bs->b;
    struct lel_run_result res;
    uint32_t got;
    int r = lel_vm_cmd_result(b->vm, bs->cmd_id, &got, &res);
    if (r == -EAGAIN && lel_mono_ms() < bs->cmd_deadline_ms) {
        if (bs->streamed && stream_poll(bs))
            bs->poll_ms = POLL_STREAM_MS; /* it writes: soon again */
        else
            bs->poll_ms = bs->poll_ms * 2 < POLL_MAX_MS ? bs->poll_ms * 2 : POLL_MAX_MS;
        next(b->t, bs->poll_ms);
        return 1;
    }
    bs->cmd_running = 0;
    if (r == -EAGAIN)
        lel_vm_cmd_kill(b->vm, bs->cmd_id);
    if (r != 0) {
        logf_(b, "error", "%s: %s", bs->what,
              r == -EAGAIN ? "the guest did not end it by its timeout" : r == -EPIPE ? "the build VM died" : "the guest did not answer");
        return -1;
    }
    if (bs->streamed) { /* the rest of its output came with its result */
        feed_bulk(bs, res.out_len, res.err_len);
        feed_end(bs);
    } else if (!bs->cmd_quiet) {
        log_output(b, &res);
    }
    if (res.timed_out) {
        logf_(b, "error", "%s: the build ran out of time", bs->what);
        return -1;
    }
    *code = res.exit_status;
    return 0;
}

/* A `run` step: its command is started; 1, or -1 (logged). */
static int run_step(struct lel_build_state *bs, size_t i, json_t *st)
{
    struct build *b = &bs->b;
    json_t *args = json_object_get(st, "args");
    size_t n = json_array_size(args);
    const char *argv[68];
    snprintf(bs->what, sizeof(bs->what), "step %zu (run)", i + 1);
    if (n == 1) { /* one string: a shell command line */
        argv[0] = "/bin/sh";
        argv[1] = "-c";
        argv[2] = json_string_value(json_array_get(args, 0));
        argv[3] = NULL;
    } else {
        if (n > 63) {
            logf_(b, "error", "%s: too many arguments", bs->what);
            return -1;
        }
        /* the arguments as they are; a bare program name is looked up in PATH, as by exec*p */
        const char *const pre[] = {"/bin/sh", "-c", "exec \"$@\"", "sh"};
        size_t k0 = strchr(json_string_value(json_array_get(args, 0)), '/') ? 0 : 4;
        for (size_t k = 0; k < k0; k++)
            argv[k] = pre[k];
        for (size_t k = 0; k < n; k++)
            argv[k0 + k] = json_string_value(json_array_get(args, k));
        argv[k0 + n] = NULL;
    }
    const char *user = step_user(bs, st);
    logf_(b, "info", "%s%s%s: %s", bs->what, user ? " as " : "", user ? user : "",
          n == 1 ? argv[2] : json_string_value(json_array_get(args, 0)));
    if (!user)
        return cmd_start(bs, argv, 0);
    const char *wrapped[74] = {"/bin/busybox", "sh", "-c", AS_USER, "sh", user};
    size_t k = 0;
    while (argv[k]) {
        wrapped[6 + k] = argv[k];
        k++;
    }
    wrapped[6 + k] = NULL;
    return cmd_start(bs, wrapped, 0);
}

/* A `file` step: the file is written; with a mode, chmod is started (1). 0 done, -1 (logged). */
static int file_step(struct lel_build_state *bs, size_t i, json_t *st)
{
    struct build *b = &bs->b;
    const char *path = json_string_value(json_object_get(st, "path"));
    const char *content = json_string_value(json_object_get(st, "content"));
    size_t plen = strlen(path) + 1, clen = json_string_length(json_object_get(st, "content"));
    logf_(b, "info", "step %zu (file): %s", i + 1, path);
    if (plen + clen > LEL_BULK_SIZE) {
        logf_(b, "error", "step %zu (file): content too large", i + 1);
        return -1;
    }
    char *buf = malloc(plen + clen);
    if (!buf)
        return -1;
    memcpy(buf, path, plen);
    memcpy(buf + plen, content, clen);
    uint64_t arg[4] = {plen, 0, clen, 1}, ret[4];
    int r = lel_vm_call_bulk(b->vm, LEL_OP_FILE_WRITE, arg, buf, plen + clen, ret, 30000);
    free(buf);
    if (r != 0) {
        logf_(b, "error", "step %zu (file): cannot write %s (%d)", i + 1, path, r);
        return -1;
    }
    int mode;
    if (lel__template_mode(json_object_get(st, "mode"), &mode) < 0)
        return 0; /* none given (checked at creation) */
    char m[16];
    snprintf(m, sizeof(m), "%o", (unsigned)mode);
    snprintf(bs->what, sizeof(bs->what), "step %zu (file): chmod %s %.128s", i + 1, m, path);
    const char *argv[] = {"/bin/chmod", m, path, NULL};
    return cmd_start(bs, argv, 0);
}

static void finish(struct lel_template *t, const char *reason);

/* PH_IMAGE, one turn: the image's rofs built (on its own thread) or found; then the build VM
 * boots on it (PH_VM). */
static void image_phase(struct lel_template *t)
{
    struct lel_build_state *bs = t->build;
    struct build *b = &bs->b;
    json_t *img = json_object_get(bs->def, "fromImage");
    const char *id = json_string_value(json_object_get(img, "imageID"));
    char root[4200], err[600], reason[700];
    struct lel_rofs_stats st;
    int reused = 0;
    if (!bs->rofs) {
        lel_image_rootfs(t->srv, id, root, sizeof(root));
        lel__img_rofs_path(t->srv, id, bs->rofs_path, sizeof(bs->rofs_path));
        bs->rofs_t0 = lel_mono_ms();
        if (!(bs->rofs = lel__img_rofs_start(root, bs->rofs_path))) {
            finish(t, "image: cannot start building its root filesystem image");
            return;
        }
    }
    int r = lel__img_rofs_poll(bs->rofs, &st, &reused, err, sizeof(err));
    if (r == 1) {
        if (!bs->tries++)
            logf_(b, "info", "image %s (%s): building its root filesystem image", json_string_value(json_object_get(img, "name")),
                  json_string_value(json_object_get(img, "digest")));
        next(t, 50);
        return;
    }
    lel__img_rofs_free(bs->rofs);
    bs->rofs = NULL;
    bs->tries = 0;
    if (r < 0) {
        snprintf(reason, sizeof(reason), "image: its root filesystem image could not be built: %s", err);
        finish(t, reason);
        return;
    }
    logf_(b, "info", "image %s: root filesystem image %s in %.1f s (%llu MiB, %llu files, directories and links), mapped "
          "read-only into the VM", json_string_value(json_object_get(img, "name")), reused ? "reused" : "built",
          (double)(lel_mono_ms() - bs->rofs_t0) / 1000, (unsigned long long)(st.file_bytes >> 20), (unsigned long long)st.inodes);
    bs->phase = PH_VM;
    next(t, 0);
}

/* env, workdir, user: the build's defaults change (workdir also makes the directory). */
static int defaults_step(struct lel_build_state *bs, size_t i, json_t *st, const char *type)
{
    struct build *b = &bs->b;
    if (!strcmp(type, "env")) {
        json_object_update(bs->env, json_object_get(st, "envs"));
        logf_(b, "info", "step %zu (env): %zu variables set", i + 1, json_object_size(json_object_get(st, "envs")));
        return 0;
    }
    if (!strcmp(type, "user")) {
        snprintf(bs->user, sizeof(bs->user), "%s", json_string_value(json_object_get(st, "user")));
        logf_(b, "info", "step %zu (user): the steps after it run as %s", i + 1, bs->user);
        return 0;
    }
    const char *path = json_string_value(json_object_get(st, "path"));
    snprintf(bs->cwd, sizeof(bs->cwd), "/");
    snprintf(bs->what, sizeof(bs->what), "step %zu (workdir): %.150s", i + 1, path);
    logf_(b, "info", "%s", bs->what);
    const char *argv[] = {"/bin/mkdir", "-p", path, NULL};
    int r = cmd_start(bs, argv, 0);
    snprintf(bs->cwd, sizeof(bs->cwd), "%s", path); /* for the steps after it */
    return r;
}

/* One step: 1 its command runs, 0 done, -1 failed (logged). */
static int do_step(struct lel_build_state *bs, size_t i, json_t *st, const char *type)
{
    if (!strcmp(type, "run"))
        return run_step(bs, i, st);
    if (!strcmp(type, "file"))
        return file_step(bs, i, st);
    if (!strcmp(type, "copy")) {
        char err[300];
        /* unpacked as root, then what it holds is the step's user's (its uid and gid from the
         * guest's /etc/passwd; a uid not there keeps gid 0, as Docker's --chown does) */
        static const char script[] =
            "t=" GUEST_COPY_TAR "; bb=/bin/busybox; $bb tar -tf $t > $t.list && $bb tar -xf $t -C /; r=$?; "
            "if [ $r = 0 ] && [ -n \"$1\" ]; then "
            "u=${1%%:*}; if ids=$($bb id -u \"$u\" 2>/dev/null):$($bb id -g \"$u\" 2>/dev/null); then :; "
            "else case \"$u\" in *[!0-9]*) echo \"unknown user '$u' (not in /etc/passwd)\" >&2; r=1;; *) ids=\"$u:0\";; esac; fi; "
            "[ $r = 0 ] && while IFS= read -r f; do $bb chown -h \"$ids\" \"/$f\" || r=1; done < $t.list; fi; "
            "$bb rm -f $t $t.list; exit $r";
        const char *user = step_user(bs, st);
        const char *const unpack[] = {"/bin/busybox", "sh", "-c", script, "sh", user ? user : "", NULL};
        if (lel__template_copy_step(bs->b.t, bs->b.vm, i, st, bs->what, sizeof(bs->what), err, sizeof(err)) < 0) {
            logf_(&bs->b, "error", "%s: %s", bs->what, err);
            return -1;
        }
        logf_(&bs->b, "info", "%s%s%s", bs->what, user ? ", owned by " : "", user ? user : "");
        return cmd_start(bs, unpack, 0);
    }
    return defaults_step(bs, i, st, type);
}

static void finish(struct lel_template *t, const char *reason)
{
    struct lel_build_state *bs = t->build;
    lel_vm_destroy(bs->b.vm);
    lel__img_rofs_free(bs->rofs);
    if (reason) {
        /* where it failed, as E2B's SDK points at the builder call: the base, a step's number
         * (1-based, as the logs count), or what comes after the steps */
        char step[24];
        if (bs->phase == PH_STEPS && bs->step < json_array_size(json_object_get(bs->def, "steps")))
            snprintf(step, sizeof(step), "%zu", bs->step + 1);
        else
            snprintf(step, sizeof(step), "%s", bs->phase == PH_STEPS || bs->phase >= PH_READY ? "finalize" : "base");
        json_object_set_new(bs->b.rec, "reasonStep", json_string(step));
        logf_(&bs->b, "error", "%s", reason);
        /* counted before the status shows: whoever sees it ended finds it in the metrics */
        atomic_fetch_add_explicit(&t->srv->builds_done[1], 1, memory_order_relaxed);
        atomic_fetch_sub(&t->srv->builds_running, 1);
        set_status(&bs->b, "error", reason);
    } else {
        atomic_store(&t->image_ready, 1);
        lel__template_pool_want(t, !strcmp(t->team_id, LEL_BUILTIN_TEAM)); /* its pool refills from the new image */
        logf_(&bs->b, "info", "build ready");
        atomic_fetch_add_explicit(&t->srv->builds_done[0], 1, memory_order_relaxed);
        atomic_fetch_sub(&t->srv->builds_running, 1);
        set_status(&bs->b, "ready", NULL);
    }
    json_decref(bs->b.rec);
    json_decref(bs->def);
    json_decref(bs->env);
    free(bs);
    t->build = NULL;
}

static int is_builtin_rec(json_t *rec)
{
    return !strcmp(json_string_value(json_object_get(rec, "teamID")) ?: "", LEL_BUILTIN_TEAM);
}

void lel__template_build(struct lel_template *t, const char *build_id)
{
    char ctx[4200];
    if (t->build || t->deleted || t->ctx) /* one build at a time per template */
        return;
    if (json_is_null(json_object_get(t->rec, "definition")) && !is_builtin_rec(t->rec))
        return; /* E2B's: it waits for its steps (POST /v2/templates/{id}/builds/{buildID}) */
    lel__template_context_path(t, ctx, sizeof(ctx));
    if (lel__template_needs_context(json_object_get(t->rec, "definition")) && access(ctx, R_OK) < 0)
        return; /* it waits for PUT /templates/{id}/context, which starts it */
    if (atomic_fetch_add(&t->srv->builds_running, 1) >= t->srv->cfg.max_parallel_builds) {
        /* all build slots taken: it stays "waiting" and asks again shortly */
        atomic_fetch_sub(&t->srv->builds_running, 1);
        lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(build_id));
        if (m && (!m->ptr || lel_timers_at(t->srv->timers, lel_mono_ms() + 250, t->actor, m) < 0)) {
            free(m->ptr);
            lel_msg_free(m);
        }
        return;
    }
    struct lel_build_state *bs = calloc(1, sizeof(*bs));
    if (!bs) {
        atomic_fetch_sub(&t->srv->builds_running, 1);
        return;
    }
    bs->b.t = t;
    bs->b.deadline_ms = lel_mono_ms() + (int64_t)t->srv->cfg.build_timeout_s * 1000;
    snprintf(bs->b.path, sizeof(bs->b.path), "%s/%s", t->id, build_id);
    if (lel_store_get(t->srv->store, LEL_CF_BUILDS, bs->b.path, &bs->b.rec) < 0) {
        free(bs);
        atomic_fetch_sub(&t->srv->builds_running, 1);
        return;
    }
    bs->def = json_incref(json_object_get(t->rec, "definition")); /* t->rec is replaced as statuses change */
    json_t *base = json_object_get(bs->def, "base");
    bs->env = json_is_object(json_object_get(base, "env")) ? json_deep_copy(json_object_get(base, "env")) : json_object();
    snprintf(bs->cwd, sizeof(bs->cwd), "%s", json_string_value(json_object_get(base, "workdir")) ?: "/");
    t->build = bs;
    bs->phase = json_object_get(bs->def, "fromImage") ? PH_IMAGE : PH_VM; /* the image's rofs first */
    const char *from = json_string_value(json_object_get(bs->def, "fromTemplate"));
    set_status(&bs->b, "building", NULL);
    logf_(&bs->b, "info", "build %s of template %s started from %s", build_id, t->id, from ? from : "base");
    next(t, 0);
}

/* The command in flight ended (code: its exit status, or -1 when it failed, logged). */
static void cmd_ended(struct lel_template *t, int code)
{
    struct lel_build_state *bs = t->build;
    struct build *b = &bs->b;
    if (bs->phase == PH_STEPS) {
        if (code != 0) {
            if (code > 0)
                logf_(b, "error", "%s exited with %d", bs->what, code);
            finish(t, "a step failed; see the logs");
            return;
        }
        bs->step++;
        next(t, 0);
        return;
    }
    /* readyCmd */
    bs->tries++;
    if (code == 0) {
        logf_(b, "info", "readyCmd succeeded after %d tries", bs->tries);
        bs->phase = PH_SNAPSHOT;
        next(t, 0);
    } else if (code < 0 || left_ms(b) == 0) {
        finish(t, "readyCmd did not succeed before the build's deadline");
    } else {
        next(t, READY_RETRY_MS);
    }
}

/* The phases that start no command, or start one (then cmd_ended goes on). */
static void advance(struct lel_template *t)
{
    struct lel_build_state *bs = t->build;
    struct build *b = &bs->b;
    char err[512], reason[600];
    json_t *steps_j = json_object_get(bs->def, "steps");
    const char *from = json_string_value(json_object_get(bs->def, "fromTemplate"));
    const char *start = json_string_value(json_object_get(bs->def, "startCmd"));
    const char *ready_cmd = json_string_value(json_object_get(bs->def, "readyCmd"));
    switch (bs->phase) {
    case PH_VM:
        if (start_vm(b, from ? from : "base", bs->rofs_path[0] ? bs->rofs_path : NULL, err, sizeof(err)) < 0) {
            snprintf(reason, sizeof(reason), "cannot start the build VM: %s", err);
            finish(t, reason);
            return;
        }
        bs->boot_deadline_ms = lel_mono_ms() + t->srv->cfg.boot_timeout_ms;
        bs->phase = !from || !strcmp(from, "base") ? PH_BOOT : PH_STEPS;
        break;
    case PH_BOOT: {
        int r = lel_vm_wait_ready(b->vm, 0);
        if (r == -ETIMEDOUT && lel_mono_ms() < bs->boot_deadline_ms) {
            next(t, 10);
            return;
        }
        if (r < 0) {
            finish(t, "cannot start the build VM: the guest did not become ready");
            return;
        }
        bs->phase = PH_STEPS;
        break;
    }
    case PH_IMAGE:
        image_phase(t);
        return;
    case PH_STEPS:
        if (bs->step < json_array_size(steps_j)) {
            json_t *st = json_array_get(steps_j, bs->step);
            const char *type = json_string_value(json_object_get(st, "type"));
            int r = do_step(bs, bs->step, st, type);
            if (r < 0) {
                finish(t, "a step failed; see the logs");
                return;
            }
            if (r == 1)
                return; /* its command runs; cmd_ended goes on */
            bs->step++;
            break;
        }
        char **env = make_env(bs);
        int sr = start && *start ? start_cmd(b, start, (const char *const *)env, bs->cwd) : 0;
        free_env(env);
        if (sr < 0 && json_object_get(bs->def, "startCmdFrom")) {
            logf_(b, "warn", "the image's Entrypoint/Cmd did not start; the template has no startCmd");
        } else if (sr < 0) {
            finish(t, "startCmd could not start; see the logs");
            return;
        }
        bs->phase = PH_READY;
        if (ready_cmd)
            logf_(b, "info", "readyCmd: %s", ready_cmd);
        break;
    case PH_READY:
        if (ready_cmd) {
            const char *argv[] = {"/bin/sh", "-c", ready_cmd, NULL};
            snprintf(bs->what, sizeof(bs->what), "readyCmd");
            if (cmd_start(bs, argv, 1) < 0)
                finish(t, "readyCmd did not succeed before the build's deadline");
            return;
        }
        bs->phase = PH_SNAPSHOT;
        break;
    case PH_SNAPSHOT:
        if (snapshot(b, err, sizeof(err)) < 0) {
            snprintf(reason, sizeof(reason), "snapshot failed: %s", err);
            finish(t, reason);
        } else {
            finish(t, NULL);
        }
        return;
    }
    next(t, 0);
}

void lel__template_build_step(struct lel_template *t)
{
    struct lel_build_state *bs = t->build;
    int code = -1;
    if (!bs)
        return; /* a poll of a build cancelled since */
    if (!bs->cmd_running) {
        advance(t);
        return;
    }
    int r = cmd_poll(bs, &code);
    if (r != 1)
        cmd_ended(t, r < 0 ? -1 : code);
}

void lel__template_build_abandon(struct lel_template *t)
{
    struct lel_build_state *bs = t->build;
    if (!bs)
        return;
    lel_vm_destroy(bs->b.vm);
    json_decref(bs->b.rec);
    json_decref(bs->def);
    json_decref(bs->env);
    lel__img_rofs_free(bs->rofs);
    free(bs);
    t->build = NULL;
    atomic_fetch_sub(&t->srv->builds_running, 1); /* its slot, or the builds after it wait forever */
}
