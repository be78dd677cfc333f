/* POST /sandboxes/{id}/fork {timeout?, count?} (E2B's fork): the source's VM is stopped
 * briefly and written to an image, which runs on; its memory is unpacked once into a raw file
 * that every fork maps copy-on-write, as sandboxes from a snapshot do. Each fork is a new
 * sandbox with the source's settings (template, metadata, envVars, network, autoPause) and its
 * own id, tokens and timeout, started on its own actor (in parallel on the workers). The answer,
 * 201 with one entry per fork ({"sandbox": Sandbox} or {"error": {code, message}}: each fork
 * succeeds or fails alone), goes once the last has started; then the image and the raw file are
 * removed (running forks keep their mapping; their pause images are their own). The image is
 * no snapshot: it is never listed. */
#include "lel_sandbox_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORK_MAX 20 /* forks one call may ask for */

/* Shared by the source's actor (which made it) and the forks' actors; the last to finish
 * answers the call and frees it. */
struct lel_fork_job {
    lel_call_t *c;
    pthread_mutex_t lock;
    int left;        /* forks still starting, plus one while the source dispatches */
    json_t *results; /* one entry per fork */
    char src[LEL_ID_LEN + 1];
    char img[4200], raw[4200];
    int has_raw;
};

/* Settles one entry (or the dispatcher's hold when i is the count); the last answers. */
static void job_done(struct lel_fork_job *job, size_t i, json_t *result)
{
    pthread_mutex_lock(&job->lock);
    if (result)
        json_array_set_new(job->results, i, result);
    int last = --job->left == 0;
    pthread_mutex_unlock(&job->lock);
    if (!last)
        return;
    unlink(job->img);
    if (job->has_raw)
        unlink(job->raw);
    lel_call_reply(job->c, 201, job->results);
    lel_call_done(job->c);
    pthread_mutex_destroy(&job->lock);
    free(job);
}

static json_t *fork_error(int code, const char *msg)
{
    return json_pack("{s:{s:i, s:s}}", "error", "code", code, "message", msg);
}

/* A fresh random hex token (the size of the create's). */
static json_t *token(void)
{
    unsigned char raw[24];
    char hex[2 * sizeof(raw) + 1];
    if (lel_random_bytes(raw, sizeof(raw)) < 0)
        return NULL;
    lel_hex(raw, sizeof(raw), hex);
    return json_string(hex);
}

/* The fork's record: the source's, with its own id, tokens, times and timeout. */
static json_t *fork_record(struct lel_sandbox *s, const char *id, long long timeout, int64_t now)
{
    json_t *rec = json_deep_copy(s->rec);
    int64_t end = now + timeout * 1000;
    if (!rec)
        return NULL;
    json_object_set_new(rec, "sandboxID", json_string(id));
    json_object_set_new(rec, "state", json_string("running"));
    json_object_set_new(rec, "timeoutS", json_integer(timeout));
    json_object_set_new(rec, "endAtMs", json_integer(end));
    json_object_del(rec, "killedAtMs");
    json_object_del(rec, "snapshotID");
    lel_json_set_time(rec, "startedAt", now);
    lel_json_set_time(rec, "endAt", end);
    if (lel__sbx_new_token(rec) < 0 ||
        (json_object_get(rec, "trafficAccessToken") && json_object_set_new(rec, "trafficAccessToken", token()) < 0)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

/* Makes fork i's sandbox and sends it LEL_MSG_FORK; NULL, or the entry of a fork that failed. */
static json_t *dispatch(struct lel_sandbox *s, struct lel_fork_job *job, size_t i, long long timeout)
{
    char id[LEL_ID_LEN + 1];
    char msg[256];
    int mb = lel__sbx_rec_mb(s->rec); /* a fork has its parent's shape */
    if (!lel__sbx_slot_take(s->team, mb, msg, sizeof(msg)))
        return fork_error(429, msg);
    lel_random_id(id);
    json_t *rec = fork_record(s, id, timeout, lel_now_ms());
    struct lel_sandbox *f = rec ? lel__sbx_new(s->srv, s->team, id, rec) : NULL;
    if (!f) {
        json_decref(rec);
        lel__sbx_slot_put(s->team, mb);
        return fork_error(503, "out of memory");
    }
    f->holds_slot = 1;
    f->slot_mb = mb;
    f->end_at_ms = json_integer_value(json_object_get(rec, "endAtMs"));
    f->tpl = s->tpl ? (lel_actor_ref(s->tpl), s->tpl) : lel_template_lookup(s->srv, s->team, "base");
    f->fork_image = strdup(job->img);
    f->fork_transient = 1; /* the image goes once the forks started: their base is its base */
    f->memory_file = job->has_raw ? strdup(job->raw) : NULL;
    lel_msg_t *m = lel_msg_new(LEL_MSG_FORK, (int64_t)i, job);
    if (!f->tpl || !f->fork_image || (job->has_raw && !f->memory_file) || !m ||
        lel_registry_put(s->srv->sandboxes, id, f->actor) < 0) {
        lel_msg_free(m);
        lel__sbx_slot_release(f);
        lel_actor_unref(f->actor);
        return fork_error(503, "out of memory");
    }
    /* registered before it is stored, as a create's: a call for this id queues behind its start */
    if (lel_actor_send(f->actor, m) < 0) {
        lel_msg_free(m);
        lel__sbx_slot_release(f);
        if (lel_registry_del(s->srv->sandboxes, id))
            lel_actor_unref(f->actor);
        return fork_error(503, "the fork's actor refused its start");
    }
    return NULL;
}

/* Reads count (1..FORK_MAX, default 1) and timeout (seconds, default the config's, capped by the
 * team's limit); 0, or -EINVAL with the 400 set. */
static int fork_fields(struct lel_sandbox *s, lel_call_t *c, long long *count, long long *timeout)
{
    *count = 1;
    *timeout = s->srv->cfg.default_timeout_s;
    if (lel_call_int_field(c, "count", 1, FORK_MAX, count) < 0 ||
        lel_call_int_field(c, "timeout", 0, 10LL * 365 * 86400, timeout) < 0)
        return -EINVAL;
    if (*timeout > s->team->max_timeout_s)
        *timeout = s->team->max_timeout_s;
    return 0;
}

void lel__sbx_fork(struct lel_sandbox *s, lel_call_t *c)
{
    long long count, timeout;
    char name[64], rid[LEL_ID_LEN + 1], err[256];
    struct lel_snap_info info;
    if (fork_fields(s, c, &count, &timeout) < 0)
        return;
    if (s->state != S_RUNNING) {
        lel_call_error(c, 409, "sandbox is %s, not running", s->state == S_PAUSED ? "paused" : "killed");
        return;
    }
    if (!s->vm) {
        lel_call_error(c, 501, "API-only mode (vmm.backend: none) has no VM to fork");
        return;
    }
    struct lel_fork_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->results = json_array())) {
        free(job);
        lel_call_error(c, 503, "out of memory");
        return;
    }
    lel_random_id(rid);
    snprintf(name, sizeof(name), "fork-%s", rid);
    lel_core_image_path(s->srv, name, job->img, sizeof(job->img));
    int r = lel__sbx_vm_save(s, job->img, &info, err, sizeof(err));
    lel_vm_cont(s->vm);
    if (r < 0) {
        unlink(job->img);
        json_decref(job->results);
        free(job);
        lel_call_error(c, 500, "fork failed: %s", err);
        return;
    }
    lel_core_raw_path(s->srv, name, job->raw, sizeof(job->raw));
    job->has_raw = lel_image_unpack_memory(job->img, job->raw, err, sizeof(err)) == 0; /* else each decompresses */
    job->c = c;
    job->left = (int)count + 1;
    snprintf(job->src, sizeof(job->src), "%s", s->id);
    pthread_mutex_init(&job->lock, NULL);
    for (long long i = 0; i < count; i++)
        json_array_append_new(job->results, json_null());
    lel__sbx_commit(s, json_incref(s->rec), "info", "sandbox forked",
                    json_pack("{s:I, s:I}", "count", (json_int_t)count, "imageBytes", (json_int_t)info.stored_bytes));
    s->kept = c; /* answered by the last fork to start (maybe below) */
    for (size_t i = 0; i < (size_t)count; i++) {
        json_t *failed = dispatch(s, job, i, timeout);
        if (failed)
            job_done(job, i, failed);
    }
    job_done(job, (size_t)count, NULL); /* the dispatcher's hold */
}

void lel__sbx_fork_start(struct lel_sandbox *s, struct lel_fork_job *job, size_t i)
{
    char msg[320];
    int status;
    json_t *result;
    if (lel__sbx_start(s, "sandbox created by a fork", json_pack("{s:s}", "forkOf", job->src), &status, msg,
                       sizeof(msg)) < 0) {
        lel__sbx_reap(s);
        result = fork_error(status, msg);
    } else {
        result = json_pack("{s:o}", "sandbox", lel__sbx_access_view(s));
    }
    job_done(job, i, result);
}
