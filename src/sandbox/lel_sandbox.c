/* The sandbox actor: one per sandbox, owner of its record, its microVM and its lifecycle state
 * machine (running <-> paused, -> killed, then reaped after the retention period).
 *
 * Every transition writes the record and a log event in one batch before the client hears of
 * it. Timeouts arrive as timer messages carrying a generation number; a message whose
 * generation is stale (the deadline moved since) is ignored. Pausing writes the VM to an image
 * and releases its memory; resuming rebuilds it from that image. The VM's vCPU thread only
 * sends the actor messages (console lines, death); it never touches the sandbox's state.
 * With `vmm.backend: none` there is no VM: the state machine runs alone (API-only mode). */
#include "lel_sandbox_int.h"
#include "../cluster/lel_cluster_kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Private record fields, stripped from the public view. */
const char *const lel__sbx_private_fields[] = {"teamID", "envVars", "autoPause", "timeoutS", "endAtMs", "killedAtMs",
                                               "snapshotID", "envdAccessToken", "autoResume", "trafficAccessToken",
                                               "baseImage", NULL};

static void sandbox_handle(lel_actor_t *self, void *state, lel_msg_t *m);

static void sandbox_free(void *p)
{
    struct lel_sandbox *s = p;
    lel_vm_destroy(s->vm); /* not reached with a VM: a VM holds a reference to its actor */
    lel__sbx_xfers_free(s);
    lel__sbx_streams_free(s);
    lel_envd_free(s->envd);
    free(s->fork_image);
    free(s->memory_file);
    free(s->samples);
    if (s->tpl)
        lel_actor_unref(s->tpl);
    json_decref(s->rec);
    json_decref(s->view);
    free(s->view_json);
    pthread_mutex_destroy(&s->view_lock);
    free(s);
}

/* Rebuilds the public view after the record changed and publishes it. Reads far outnumber
 * changes, so the view is built once per change and shared read-only: GET /sandboxes/{id} is
 * answered from it on the loop thread (lel_sandbox_fast_get) without a trip through the actor.
 * It is published before the change's reply is sent, so a client always reads its own writes. */
static void publish(struct lel_sandbox *s)
{
    json_t *v = json_deep_copy(s->rec), *old;
    char *enc = NULL, *old_enc;
    size_t len = 0;
    for (int i = 0; v && lel__sbx_private_fields[i]; i++)
        json_object_del(v, lel__sbx_private_fields[i]);
    if (v) { /* the data plane is the host's (src/envd), whatever the record was made with */
        json_object_set_new(v, "envdVersion", json_string(LEL_ENVD_VERSION));
        json_object_set_new(v, "lifecycle", json_pack("{s:s, s:b}", "onTimeout",
                                                      json_is_true(json_object_get(s->rec, "autoPause")) ? "pause" : "kill",
                                                      "autoResume", 0));
    }
    if (v && lel_codec_encode(v, LEL_FMT_JSON, &enc, &len) < 0)
        enc = NULL;
    pthread_mutex_lock(&s->view_lock);
    old = s->view;
    old_enc = s->view_json;
    s->view = v;
    s->view_json = enc;
    s->view_json_len = len;
    pthread_mutex_unlock(&s->view_lock);
    json_decref(old);
    free(old_enc);
}

json_t *lel__sbx_public_view(struct lel_sandbox *s)
{
    pthread_mutex_lock(&s->view_lock);
    json_t *v = json_incref(s->view);
    pthread_mutex_unlock(&s->view_lock);
    return v;
}

static void ref_actor(void *a, void *ctx)
{
    (void)ctx;
    lel_actor_ref(a);
}

int lel_sandbox_fast_get(lel_server_t *srv, lel_call_t *c)
{
    lel_actor_t *a = lel_registry_get(srv->sandboxes, c->id, ref_actor, NULL);
    if (!a)
        return 0; /* the actor path answers 404 */
    struct lel_sandbox *s = lel_actor_state(a);
    json_t *v = NULL;
    char *raw = NULL;
    size_t len = 0;
    if (s->team == c->team) {
        pthread_mutex_lock(&s->view_lock);
        if (c->out_fmt == LEL_FMT_JSON && s->view_json && (raw = malloc(s->view_json_len)))
            memcpy(raw, s->view_json, len = s->view_json_len);
        else
            v = json_incref(s->view);
        pthread_mutex_unlock(&s->view_lock);
    }
    lel_actor_unref(a);
    if (!v && !raw)
        return 0; /* another team's (the actor path answers 404) or not stored yet: ask the actor */
    if (raw) {
        c->raw = raw;
        c->raw_len = len;
        c->raw_type = "application/json";
        c->status = 200;
    } else {
        lel_call_reply(c, 200, v);
    }
    lel_call_done(c);
    return 1;
}

void lel__sbx_record_path(struct lel_sandbox *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", s->team->id, s->id);
}

int lel__sbx_rec_mb(const json_t *rec)
{
    json_int_t mb = json_integer_value(json_object_get(rec, "memoryMB"));
    return mb > 0 && mb < INT32_MAX ? (int)mb : 0;
}

/* Both counts move under the team's lock: a sandbox is admitted by both quotas or neither. */
int lel__sbx_slot_take(lel_team_t *t, int mb, char *why, size_t n)
{
    int ok = 0;
    pthread_mutex_lock(&t->quota_lock);
    int cur = atomic_load(&t->running), mem = atomic_load(&t->memory_mb);
    int max = atomic_load(&t->max_sandboxes), mem_max = atomic_load(&t->max_memory_mb);
    if (cur >= max) {
        snprintf(why, n, "you have reached the maximum number of concurrent sandboxes (%d). If you need more, ask "
                         "the operator to raise the team's limits", max);
    } else if (mem_max && (long long)mem + mb > mem_max) {
        snprintf(why, n, "you have reached the maximum memory of concurrent sandboxes (%d MiB): %d MiB are in use "
                         "and this sandbox needs %d MiB. If you need more, ask the operator to raise the team's "
                         "limits", mem_max, mem, mb);
    } else {
        atomic_store(&t->running, cur + 1);
        atomic_store(&t->memory_mb, mem + mb);
        ok = 1;
    }
    pthread_mutex_unlock(&t->quota_lock);
    return ok;
}

void lel__sbx_slot_force(lel_team_t *t, int mb)
{
    pthread_mutex_lock(&t->quota_lock);
    atomic_fetch_add(&t->running, 1);
    atomic_fetch_add(&t->memory_mb, mb);
    pthread_mutex_unlock(&t->quota_lock);
}

void lel__sbx_slot_put(lel_team_t *t, int mb)
{
    pthread_mutex_lock(&t->quota_lock);
    atomic_fetch_sub(&t->running, 1);
    atomic_fetch_sub(&t->memory_mb, mb);
    pthread_mutex_unlock(&t->quota_lock);
}

void lel__sbx_slot_release(struct lel_sandbox *s)
{
    if (s->holds_slot) {
        lel__sbx_slot_put(s->team, s->slot_mb);
        s->holds_slot = 0;
    }
}

/* Adds a log event to `b` (events/<sandboxID>/<ms hex><seq hex>). */
void lel__sbx_add_event(struct lel_sandbox *s, lel_batch_t *b, const char *level, const char *msg, json_t *fields)
{
    int64_t now = lel_now_ms();
    char key[80];
    if (now != s->last_event_ms) {
        s->last_event_ms = now;
        s->event_seq = 0;
    }
    snprintf(key, sizeof(key), "%s/%016llx%08x", s->id, (unsigned long long)now, s->event_seq++);
    json_t *ev = json_pack("{s:I, s:s, s:s, s:o}", "ms", (json_int_t)now, "level", level, "message", msg, "fields",
                           fields ? fields : json_object());
    lel_batch_put(b, LEL_CF_EVENTS, key, ev);
    json_decref(ev);
}

/* Writes `rec` as the new record plus one event; on success it becomes s->rec. */
int lel__sbx_commit(struct lel_sandbox *s, json_t *rec, const char *level, const char *msg, json_t *fields)
{
    return lel__sbx_commit_ops(s, rec, level, msg, fields, NULL, 0);
}

int lel__sbx_commit_ops(struct lel_sandbox *s, json_t *rec, const char *level, const char *msg, json_t *fields,
                        const struct lel_layer_op *ops, size_t nops)
{
    char path[64];
    lel__sbx_record_path(s, path, sizeof(path));
    lel_batch_t *b = lel_batch_new(s->srv->store);
    lel_batch_put(b, LEL_CF_SANDBOXES, path, rec);
    lel__sbx_add_event(s, b, level, msg, fields);
    int r = nops ? lel_layer_write(s->srv, b, ops, nops) : lel_store_write(s->srv->store, b);
    if (r < 0) {
        json_decref(rec);
        return r;
    }
    json_decref(s->rec);
    s->rec = rec;
    publish(s);
    return 0;
}

static void arm_timer(struct lel_sandbox *s, int type, int64_t at_wall_ms)
{
    int64_t delay = at_wall_ms - lel_now_ms();
    lel_msg_t *m = lel_msg_new(type, ++s->timer_gen, NULL);
    if (m && lel_timers_at(s->srv->timers, lel_mono_ms() + (delay > 0 ? delay : 0), s->actor, m) < 0)
        lel_msg_free(m);
}

/* New record with state and endAt changed. */
json_t *lel__sbx_with_state(struct lel_sandbox *s, enum state st, int64_t end_at)
{
    json_t *rec = json_deep_copy(s->rec);
    json_object_set_new(rec, "state", json_string(state_names[st]));
    json_object_set_new(rec, "endAtMs", json_integer(end_at));
    lel_json_set_time(rec, "endAt", end_at);
    return rec;
}

int lel__sbx_kill(struct lel_sandbox *s, const char *why)
{
    int64_t now = lel_now_ms();
    json_t *rec = lel__sbx_with_state(s, S_KILLED, s->end_at_ms < now ? s->end_at_ms : now);
    json_object_set_new(rec, "killedAtMs", json_integer(now));
    /* its image (a pause's diff) goes, and with it its need of the image it started from */
    struct lel_layer_op drop = {json_string_value(json_object_get(s->rec, "baseImage")), -1, 0, NULL, 0, 0};
    json_object_del(rec, "baseImage");
    int r = lel__sbx_commit_ops(s, rec, strncmp(why, "error", 5) ? "info" : "error", why, NULL, &drop, drop.key ? 1 : 0);
    if (r < 0)
        return r;
    char img[4200];
    lel__sbx_vm_release(s);
    lel__sbx_pause_image(s, img, sizeof(img));
    unlink(img);
    s->state = S_KILLED;
    lel__sbx_slot_release(s);
    if (s->holds_template) {
        lel_template_release(s->tpl);
        s->holds_template = 0;
    }
    arm_timer(s, LEL_MSG_REAP, now + (int64_t)s->srv->cfg.killed_retention_s * 1000);
    return 0;
}

/* Pause: image first, then the record, then the VM goes (its memory with it). If the image or
 * the record cannot be written the VM runs on and the error is reported. */
static int do_pause(struct lel_sandbox *s, const char *why, char *err, size_t errlen)
{
    char img[4200];
    struct lel_snap_info info = {0};
    lel__sbx_pause_image(s, img, sizeof(img));
    int r;
    if (s->vm && (r = lel__sbx_vm_save(s, img, &info, err, errlen)) < 0) {
        lel_vm_cont(s->vm);
        return r == -ENOSPC || r == -EDQUOT ? -ENOSPC : -EIO;
    }
    json_t *rec = lel__sbx_with_state(s, S_PAUSED, s->end_at_ms);
    if (lel__sbx_commit(s, rec, "info", why, s->vm ? json_pack("{s:I}", "imageBytes", (json_int_t)info.stored_bytes) : NULL) < 0) {
        snprintf(err, errlen, "storage error; nothing was changed");
        if (s->vm) {
            unlink(img);
            lel_vm_cont(s->vm);
        }
        return -EIO;
    }
    lel__sbx_vm_release(s);
    s->state = S_PAUSED;
    s->timer_gen++; /* a paused sandbox does not time out */
    lel__sbx_slot_release(s);
    return 0;
}

/* Sets a new deadline on a running sandbox (record + event + timer). */
static int set_end(struct lel_sandbox *s, int64_t end_at, const char *msg)
{
    json_t *rec = lel__sbx_with_state(s, s->state, end_at);
    if (lel__sbx_commit(s, rec, "info", msg, json_pack("{s:I}", "endAtMs", (json_int_t)end_at)) < 0)
        return -EIO;
    s->end_at_ms = end_at;
    arm_timer(s, LEL_MSG_TIMEOUT, end_at);
    return 0;
}

static long long timeout_s(struct lel_sandbox *s)
{
    return json_integer_value(json_object_get(s->rec, "timeoutS"));
}

/* Reads "timeout" (or `field`) clamped to the team limit; returns 0 absent, 1 set, <0 error set. */
static int timeout_field(struct lel_sandbox *s, lel_call_t *c, const char *field, long long *out)
{
    long long v;
    int r = lel_call_int_field(c, field, 0, 10LL * 365 * 86400, &v);
    if (r == 1)
        *out = v > s->team->max_timeout_s ? s->team->max_timeout_s : v;
    return r;
}

int lel__sbx_resume(struct lel_sandbox *s, long long t, lel_call_t *c, const char *why)
{
    char img[4200], err[256];
    int mb = lel__sbx_rec_mb(s->rec);
    if (!lel__sbx_slot_take(s->team, mb, err, sizeof(err))) {
        c->retry_after = 1;
        lel_call_error(c, 429, "%s", err);
        return -EAGAIN;
    }
    lel__sbx_pause_image(s, img, sizeof(img));
    if (s->srv->use_vm && lel__sbx_vm_start(s, img, NULL, 1, err, sizeof(err)) < 0) {
        lel__sbx_slot_put(s->team, mb);
        lel_call_error(c, 500, "cannot resume the VM: %s", err);
        return -EIO;
    }
    int64_t end = lel_now_ms() + t * 1000;
    json_t *rec = lel__sbx_with_state(s, S_RUNNING, end);
    lel_json_set_time(rec, "startedAt", lel_now_ms());
    int r = lel__sbx_commit(s, rec, "info", why, NULL);
    if (r < 0) {
        lel__sbx_slot_put(s->team, mb);
        lel__sbx_vm_release(s);
        lel_call_store_failed(c, r);
        return r;
    }
    if (s->vm) {
        unlink(img);
        lel__sbx_arm_sampler(s);
    }
    s->holds_slot = 1;
    s->slot_mb = mb;
    s->state = S_RUNNING;
    s->end_at_ms = end;
    arm_timer(s, LEL_MSG_TIMEOUT, end);
    return 0;
}

static void do_resume(struct lel_sandbox *s, lel_call_t *c, int status)
{
    long long t = timeout_s(s);
    if (timeout_field(s, c, "timeout", &t) < 0)
        return;
    if (lel__sbx_resume(s, t, c, "sandbox resumed") == 0)
        lel_call_reply(c, status, lel__sbx_access_view(s));
}

static int collect_event(void *ctx, const char *key, json_t *ev)
{
    (void)key;
    json_t **acc = ctx; /* [start, limit, logs, entries] */
    json_int_t ms = json_integer_value(json_object_get(ev, "ms"));
    if (ms < json_integer_value(acc[0]))
        return 0;
    char ts[32];
    lel_rfc3339(ms, ts);
    const char *msg = json_string_value(json_object_get(ev, "message"));
    json_array_append_new(acc[2], json_pack("{s:s, s:s}", "timestamp", ts, "line", msg));
    json_array_append_new(acc[3], json_pack("{s:s, s:O, s:s, s:O}", "timestamp", ts, "level", json_object_get(ev, "level"),
                                            "message", msg, "fields", json_object_get(ev, "fields")));
    return (json_int_t)json_array_size(acc[2]) >= json_integer_value(acc[1]);
}

static void get_logs(struct lel_sandbox *s, lel_call_t *c)
{
    char *start = lel_call_query(c, "start"), *limit = lel_call_query(c, "limit"), *end = NULL, prefix[32];
    long long st = start ? strtoll(start, &end, 10) : 0, lim = 1000;
    int bad = start && (!*start || *end || st < 0);
    if (limit) {
        lim = strtoll(limit, &end, 10);
        bad |= !*limit || *end || lim < 1 || lim > 1000;
    }
    free(start);
    free(limit);
    if (bad) {
        lel_call_error(c, 400, "invalid query: 'start' must be ms since the epoch and 'limit' 1..1000");
        return;
    }
    json_t *acc[4] = {json_integer(st), json_integer(lim), json_array(), json_array()};
    snprintf(prefix, sizeof(prefix), "%s/", s->id);
    if (lel_store_scan(s->srv->store, LEL_CF_EVENTS, prefix, NULL, collect_event, acc) < 0) {
        lel_call_store_failed(c, -EIO);
    } else {
        lel_call_reply(c, 200, json_pack("{s:O, s:O}", "logs", acc[2], "logEntries", acc[3]));
    }
    for (int i = 0; i < 4; i++)
        json_decref(acc[i]);
}

/* POST /sandboxes (and a fork), its second half: the record was built before; the VM and the
 * stored record come here. 0, or -1 with the status and the reason to answer. */
int lel__sbx_start(struct lel_sandbox *s, const char *why, json_t *fields, int *status, char *msg, size_t n)
{
    char err[256], raw[4200];
    if (atomic_load(&s->srv->stopping)) { /* it would miss the stop's pause (lel_sandbox_pause_all) */
        lel__sbx_slot_release(s);
        json_decref(fields);
        *status = 503;
        snprintf(msg, n, "lelantosd is stopping: no sandbox starts now");
        return -1;
    }
    int pooled = s->srv->use_vm && s->memory_file && !json_object_get(s->rec, "snapshotID") && !s->fork_transient &&
                 lel__sbx_vm_adopt(s) == 0;
    if (s->srv->use_vm && !pooled &&
        lel__sbx_vm_start(s, s->fork_image, lel__sbx_fork_memory(s, raw, sizeof(raw)), s->fork_transient, err, sizeof(err)) < 0) {
        lel__sbx_slot_release(s);
        json_decref(fields);
        *status = 503;
        snprintf(msg, n, "cannot start the sandbox's microVM: %s", err);
        return -1;
    }
    json_object_set(fields, "templateID", json_object_get(s->rec, "templateID"));
    /* the image it starts from stays while it lives: its pauses and snapshots are diffs over it */
    struct lel_layer_op hold = {json_string_value(json_object_get(s->rec, "baseImage")), 1, 0, NULL, 0, 0};
    if (lel__sbx_commit_ops(s, json_incref(s->rec), "info", why, fields, &hold, hold.key ? 1 : 0) < 0) {
        lel__sbx_vm_release(s);
        lel__sbx_slot_release(s);
        *status = 500;
        snprintf(msg, n, "storage error; nothing was changed");
        return -1;
    }
    if (s->vm)
        lel__sbx_arm_sampler(s);
    s->holds_template = 1;
    lel_template_acquire(s->tpl, s->team);
    arm_timer(s, LEL_MSG_TIMEOUT, s->end_at_ms);
    return 0;
}

static void finish_create(struct lel_sandbox *s, lel_call_t *c)
{
    char msg[320];
    int status;
    json_t *fields = json_object();
    if (json_object_get(s->rec, "snapshotID"))
        json_object_set(fields, "snapshotID", json_object_get(s->rec, "snapshotID"));
    if (lel__sbx_start(s, s->fork_image ? "sandbox created from a snapshot" : "sandbox created", fields, &status, msg,
                       sizeof(msg)) < 0)
        lel_call_error(c, status, "%s", msg);
    else
        lel_call_reply(c, 201, lel__sbx_access_view(s));
}

/* The lifecycle calls: pause, resume, connect; and the images (snapshot, restore). */
static void lifecycle_call(struct lel_sandbox *s, lel_call_t *c)
{
    char err[256];
    int r;
    long long t = 0;
    int64_t now = lel_now_ms();
    switch (c->route) {
    case R_SBX_PAUSE:
        if (s->state != S_RUNNING)
            lel_call_error(c, 409, "sandbox is %s, not running", state_names[s->state]);
        else if (lel__sbx_ncmds(s))
            lel_call_error(c, 409, "%d command(s) still running; pause when they have ended", lel__sbx_ncmds(s));
        else if ((r = do_pause(s, "sandbox paused by request", err, sizeof(err))) < 0)
            lel_call_error(c, r == -ENOSPC ? 507 : 500, "cannot pause: %s%s", err,
                           r == -ENOSPC ? " (the data directory is full; the sandbox runs on)" : "");
        else
            lel_call_reply(c, 204, NULL);
        return;
    case R_SBX_RESUME:
        if (s->state != S_PAUSED)
            lel_call_error(c, 409, "sandbox is %s, not paused", state_names[s->state]);
        else
            do_resume(s, c, 201);
        return;
    case R_SBX_CONNECT:
        if (s->state == S_PAUSED) {
            do_resume(s, c, 201);
            return;
        }
        if (timeout_field(s, c, "timeout", &t) < 0)
            return;
        int r = now + t * 1000 > s->end_at_ms ? set_end(s, now + t * 1000, "timeout extended by connect") : 0;
        if (r < 0)
            lel_call_store_failed(c, r);
        else
            lel_call_reply(c, 200, lel__sbx_access_view(s));
        return;
    default: /* R_SBX_SNAPSHOT(S), R_SBX_RESTORE, R_SBX_FORK */
        /* an image taken mid-command would hold a command nobody can collect */
        if (lel__sbx_ncmds(s))
            lel_call_error(c, 409, "%d command(s) still running; %s when they have ended", lel__sbx_ncmds(s),
                           c->route == R_SBX_RESTORE ? "restore" : c->route == R_SBX_FORK ? "fork" : "snapshot");
        else if (c->route == R_SBX_FORK)
            lel__sbx_fork(s, c);
        else if (c->route != R_SBX_RESTORE)
            lel__sbx_take_snapshot(s, c);
        else
            lel__sbx_restore_snapshot(s, c);
        return;
    }
}

/* POST /sandboxes/{id}/timeout (sets endAt, may shorten) and /refresh (extends only). */
static void timeout_call(struct lel_sandbox *s, lel_call_t *c)
{
    int refresh = c->route == R_SBX_REFRESH;
    long long t = refresh ? timeout_s(s) : 0;
    int64_t now = lel_now_ms();
    int r = timeout_field(s, c, refresh ? "duration" : "timeout", &t);
    if (r < 0)
        return;
    if (r == 0 && !refresh) {
        lel_call_error(c, 400, "invalid field 'timeout': required");
        return;
    }
    if (s->state != S_RUNNING) {
        lel_call_error(c, 409, "sandbox is %s, not running", state_names[s->state]);
        return;
    }
    r = !refresh || now + t * 1000 > s->end_at_ms
            ? set_end(s, now + t * 1000, refresh ? "timeout extended" : "timeout set")
            : 0;
    if (r < 0)
        lel_call_store_failed(c, r);
    else
        lel_call_reply(c, 204, NULL);
}

static void sandbox_call(struct lel_sandbox *s, lel_call_t *c)
{
    if (LEL_ROUTE_IS_ENVD(c->route)) { /* its credential is the sandbox's access token, not a team's key */
        lel__sbx_envd_call(s, c);
        return;
    }
    if (c->route == R_SBX_PORT || c->route == R_PORT_PUBLIC) { /* a server in it (lel_sandbox_net.c) */
        lel__sbx_port_call(s, c);
        return;
    }
    if (c->team != s->team || (s->state == S_KILLED && c->route != R_SBX_GET && c->route != R_SBX_LOGS)) {
        lel_call_error(c, 404, "sandbox not found");
        return;
    }
    if (s->stopping && c->route != R_SBX_GET && c->route != R_SBX_LOGS && c->route != R_SBX_METRICS &&
        c->route != R_SBX_KILL) {
        lel_call_error(c, 503, "lelantosd is stopping: its sandboxes are being paused");
        return;
    }
    switch (c->route) {
    case R_SBX_CREATE: finish_create(s, c); return;
    case R_SBX_GET: lel_call_reply(c, 200, lel__sbx_public_view(s)); return;
    case R_SBX_KILL: {
        int r = lel__sbx_kill(s, "sandbox killed by request");
        if (r < 0)
            lel_call_store_failed(c, r);
        else
            lel_call_reply(c, 204, NULL);
        return;
    }
    case R_SBX_PAUSE: case R_SBX_RESUME: case R_SBX_CONNECT: case R_SBX_SNAPSHOT: case R_SBX_SNAPSHOTS:
    case R_SBX_RESTORE: case R_SBX_FORK:
        lifecycle_call(s, c);
        return;
    case R_SBX_TIMEOUT: case R_SBX_REFRESH: timeout_call(s, c); return;
    case R_SBX_LOGS: get_logs(s, c); return;
    case R_SBX_METRICS: lel__sbx_get_metrics(s, c); return;
    case R_SBX_COMMANDS: lel__sbx_command(s, c); return;
    case R_SBX_FILES_PUT: lel__sbx_file_put(s, c); return;
    case R_SBX_FILES_GET: lel__sbx_file_get(s, c); return;
    case R_SBX_FILES_DELETE: lel__sbx_file_delete(s, c); return;
    case R_SBX_NETWORK: lel__sbx_network_call(s, c); return;
    default: lel_call_error(c, 500, "unrouted call"); return;
    }
}

void lel__sbx_reap(struct lel_sandbox *s)
{
    char path[64], prefix[32];
    lel__sbx_record_path(s, path, sizeof(path));
    snprintf(prefix, sizeof(prefix), "%s/", s->id);
    lel_batch_t *b = lel_batch_new(s->srv->store);
    lel_batch_del(b, LEL_CF_SANDBOXES, path);
    lel_batch_del_prefix(b, LEL_CF_EVENTS, prefix);
    if (lel_store_write(s->srv->store, b) < 0) {
        arm_timer(s, LEL_MSG_REAP, lel_now_ms() + 60000); /* try again later */
        return;
    }
    lel_actor_close(s->actor);
    if (lel_registry_del(s->srv->sandboxes, s->id))
        lel_actor_unref(s->actor); /* the registry's reference; we may be freed after this turn */
}

/* Writes the record as killed now with an error event, without the timers a kill at run time
 * sees to (the daemon is starting or stopping). Its need of the image it started from goes in
 * the same batch (else that image's files would stay for good), and a pause image it left. */
static int mark_killed(struct lel_sandbox *s, const char *why)
{
    int64_t now = lel_now_ms();
    json_t *rec = lel__sbx_with_state(s, S_KILLED, now);
    json_object_set_new(rec, "killedAtMs", json_integer(now));
    struct lel_layer_op drop = {json_string_value(json_object_get(s->rec, "baseImage")), -1, 0, NULL, 0, 0};
    json_object_del(rec, "baseImage");
    int r = lel__sbx_commit_ops(s, rec, "error", why, NULL, &drop, drop.key ? 1 : 0);
    if (r == 0) {
        char img[4200];
        lel__sbx_pause_image(s, img, sizeof(img));
        unlink(img);
    }
    return r;
}

/* ---- graceful stop (lel_sandbox_pause_all): every running sandbox is paused, so a restart
 * loses nothing. Running commands get half the grace to end, then their processes are
 * killed (their callers get that result); the pause follows. ---- */

static void stop_begin(struct lel_sandbox *s, int64_t deadline)
{
    s->stopping = 1;
    s->stop_pending = 1;
    s->stop_deadline = deadline;
    int64_t now = lel_mono_ms();
    lel_msg_t *m = lel__sbx_ncmds(s) ? lel_msg_new(LEL_MSG_STOP_CMDS, 0, NULL) : NULL;
    if (m && lel_timers_at(s->srv->timers, now + (deadline - now) / 2, s->actor, m) < 0)
        lel_msg_free(m);
}

/* After each message while the stop waits for this sandbox: pause once no command runs, or
 * give up at the deadline (the final shutdown then kills it); either way the server hears. */
static void stop_progress(struct lel_sandbox *s)
{
    if (s->state == S_RUNNING && s->vm && lel_mono_ms() < s->stop_deadline) {
        char err[256];
        if (lel__sbx_ncmds(s))
            return;
        if (do_pause(s, "sandbox paused: lelantosd is stopping", err, sizeof(err)) == 0)
            atomic_fetch_add(&s->srv->stop_paused, 1);
        else
            fprintf(stderr, "lelantosd: sandbox %s: cannot pause it for the stop: %s\n", s->id, err);
    }
    s->stop_pending = 0;
    atomic_fetch_sub(&s->srv->stop_waiting, 1);
    pthread_mutex_lock(&s->srv->lock);
    pthread_cond_broadcast(&s->srv->cond);
    pthread_mutex_unlock(&s->srv->lock);
}

/* The daemon is going: the VM goes, and one still running (not paused in time, or the pause is
 * off) is recorded killed, and said so in the daemon's log. */
static void stop_end(struct lel_sandbox *s)
{
    if (s->vm && s->state == S_RUNNING) {
        fprintf(stderr, "lelantosd: sandbox %s was not paused within shutdown_pause_grace_ms (%d ms); killed\n", s->id,
                s->srv->cfg.shutdown_pause_grace_ms);
        if (mark_killed(s, "error: lelantosd stopped and could not pause the sandbox in time; its VM is gone") == 0)
            s->state = S_KILLED;
    }
    s->stop_pending = 0; /* the server no longer waits */
    lel__sbx_vm_release(s);
}

static void sandbox_handle(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    struct lel_sandbox *s = state;
    if (m->type == LEL_MSG_CALL) {
        lel_call_t *c = m->ptr;
        if (!lel__abandoned(c))
            sandbox_call(s, c);
        if (s->kept == c) { /* answered later (a running command, envd input): c may be gone already */
            s->kept = NULL;
        } else {
            if (c->route == R_SBX_CREATE && c->status != 201)
                lel__sbx_reap(s);
            lel_call_done(c);
        }
    } else if (m->type == LEL_MSG_TIMEOUT && m->arg == s->timer_gen && s->state == S_RUNNING) {
        char err[256], why[320];
        if (!json_is_true(json_object_get(s->rec, "autoPause")))
            lel__sbx_kill(s, "sandbox killed at its timeout");
        else if (lel__sbx_ncmds(s)) /* a pause waits for running commands: they end by their own timeouts */
            arm_timer(s, LEL_MSG_TIMEOUT, lel_now_ms() + 250);
        else if (do_pause(s, "sandbox paused at its timeout (autoPause)", err, sizeof(err)) < 0) {
            snprintf(why, sizeof(why), "error: autoPause failed (%s); sandbox killed", err);
            lel__sbx_kill(s, why);
        }
    } else if (m->type == LEL_MSG_REAP && m->arg == s->timer_gen && s->state == S_KILLED) {
        lel__sbx_reap(s);
    } else if (m->type == LEL_MSG_CONSOLE && s->state != S_KILLED) {
        lel__sbx_console_line(s, m->ptr);
    } else if (m->type == LEL_MSG_VM_DIED && s->vm) {
        char why[320];
        snprintf(why, sizeof(why), "error: the sandbox's VM died: %s", (const char *)m->ptr);
        lel__sbx_kill(s, why);
    } else if (m->type == LEL_MSG_SAMPLE && m->arg == s->sample_gen && s->vm) {
        lel__sbx_sample(s);
        lel__sbx_arm_sampler(s);
    } else if (m->type == LEL_MSG_CMD_EVENT) {
        __atomic_store_n(&s->event_posted, 0, __ATOMIC_RELEASE); /* a bell from here on posts again */
        if (s->vm)
            lel__sbx_cmd_event(s);
    } else if (m->type == LEL_MSG_XFER) {
        lel__sbx_xfer_step(s, (uint32_t)m->arg);
    } else if (m->type == LEL_MSG_CMD_CHECK && s->vm) {
        lel__sbx_cmd_check(s, (uint32_t)m->arg);
    } else if (m->type == LEL_MSG_STOP_PAUSE) {
        stop_begin(s, m->arg);
    } else if (m->type == LEL_MSG_STOP_CMDS && s->vm) {
        lel__sbx_cmds_kill(s);
        lel__sbx_envd_kill_all(s);
    } else if (m->type == LEL_MSG_CMD_PIECE) {
        lel__sbx_stream_piece(s, (uint32_t)m->arg);
    } else if (m->type == LEL_MSG_ENVD_PIECE || m->type == LEL_MSG_ENVD_TICK || m->type == LEL_MSG_ENVD_BODY) {
        lel__sbx_envd_msg(s, m->type, (uint32_t)m->arg);
    } else if (m->type == LEL_MSG_FORK) {
        lel__sbx_fork_start(s, m->ptr, (size_t)m->arg);
    } else if (m->type == LEL_MSG_SHUTDOWN) {
        stop_end(s);
    }
    if (s->stop_pending)
        stop_progress(s);
    if (m->type == LEL_MSG_CONSOLE || m->type == LEL_MSG_VM_DIED)
        free(m->ptr);
    lel_msg_free(m);
}

struct lel_sandbox *lel__sbx_new(lel_server_t *srv, lel_team_t *team, const char *id, json_t *rec)
{
    struct lel_sandbox *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->srv = srv;
    s->team = team;
    s->rec = rec;
    snprintf(s->id, sizeof(s->id), "%s", id);
    pthread_mutex_init(&s->view_lock, NULL);
    if (!(s->actor = lel_actor_new(srv->pool, sandbox_handle, s, sandbox_free))) {
        free(s);
        return NULL;
    }
    return s;
}

/* Validates "metadata"/"envVars": an object of strings. */
static int string_map(lel_call_t *c, const char *name, json_t **out)
{
    json_t *v = c->json ? json_object_get(c->json, name) : NULL;
    const char *k;
    json_t *item;
    if (!v || json_is_null(v)) {
        *out = json_object();
        return 0;
    }
    if (!json_is_object(v) || json_object_size(v) > 256) {
        lel_call_error(c, 400, "invalid field '%s': must be an object of at most 256 strings", name);
        return -EINVAL;
    }
    json_object_foreach(v, k, item)
    {
        if (!json_is_string(item) || strlen(k) > 256 || json_string_length(item) > 8192) {
            lel_call_error(c, 400, "invalid field '%s': value of '%.64s' must be a string (keys ≤ 256, values ≤ 8192 bytes)",
                           name, k);
            return -EINVAL;
        }
    }
    *out = json_deep_copy(v);
    return 0;
}

/* What a create request asks for, validated. */
struct create_req {
    const char *tpl_id, *snap_id;
    char snap_buf[LEL_ID_LEN + 1]; /* snap_id when templateID named a snapshot */
    long long timeout;
    json_t *meta, *env, *snap; /* owned */
    int auto_pause;
};

static void create_req_free(struct create_req *q)
{
    json_decref(q->meta);
    json_decref(q->env);
    json_decref(q->snap);
}

static int snap_start_point(lel_server_t *srv, lel_call_t *c, struct create_req *q);

/* Validates the body (and a fork's snapshot); 0, or <0 with the error set on c. */
static int create_parse(lel_server_t *srv, lel_call_t *c, struct create_req *q)
{
    json_t *ap = c->json ? json_object_get(c->json, "autoPause") : NULL;
    q->tpl_id = "base";
    q->timeout = srv->cfg.default_timeout_s;
    if (lel_call_str_field(c, "templateID", 128, &q->tpl_id) < 0 || lel_call_str_field(c, "snapshotID", 128, &q->snap_id) < 0 ||
        lel_call_int_field(c, "timeout", 0, 10LL * 365 * 86400, &q->timeout) < 0 || string_map(c, "metadata", &q->meta) < 0 ||
        string_map(c, "envVars", &q->env) < 0)
        return -EINVAL;
    if (ap && !json_is_boolean(ap) && !json_is_null(ap)) {
        lel_call_error(c, 400, "invalid field 'autoPause': must be a boolean");
        return -EINVAL;
    }
    q->auto_pause = json_is_true(ap);
    if (q->timeout > c->team->max_timeout_s)
        q->timeout = c->team->max_timeout_s;
    if (!q->snap_id)
        return 0;
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", c->team->id, q->snap_id);
    if (lel_store_get(srv->store, LEL_CF_SNAPSHOTS, path, &q->snap) < 0) {
        lel_call_error(c, 404, "snapshot not found");
        return -ENOENT;
    }
    return snap_start_point(srv, c, q);
}

/* The newest of the team's snapshots named `name` (E2B's names start sandboxes). */
struct named_snap {
    const char *name;
    json_t *found;
};

static int find_named(void *ctx, const char *key, json_t *rec)
{
    struct named_snap *f = ctx;
    const char *n = json_string_value(json_object_get(rec, "name")), *t = json_string_value(json_object_get(rec, "createdAt"));
    (void)key;
    if (!n || strcmp(n, f->name))
        return 0;
    const char *ft = f->found ? json_string_value(json_object_get(f->found, "createdAt")) : NULL;
    if (!ft || (t && strcmp(t, ft) >= 0)) { /* RFC 3339 UTC times order as strings */
        json_decref(f->found);
        f->found = json_incref(rec);
    }
    return 0;
}

/* templateID names none of the team's templates: E2B starts sandboxes from a snapshot by its
 * id or name there. 1 when it is one (q->snap filled), 0 when not, <0 with the error set. */
static int snap_as_template(lel_server_t *srv, lel_call_t *c, struct create_req *q)
{
    char path[300], prefix[40];
    struct named_snap f = {q->tpl_id, NULL};
    snprintf(path, sizeof(path), "%s/%s", c->team->id, q->tpl_id);
    snprintf(prefix, sizeof(prefix), "%s/", c->team->id);
    if (strlen(q->tpl_id) != LEL_ID_LEN || lel_store_get(srv->store, LEL_CF_SNAPSHOTS, path, &f.found) < 0) {
        f.found = NULL;
        if (lel_store_scan(srv->store, LEL_CF_SNAPSHOTS, prefix, NULL, find_named, &f) < 0) {
            json_decref(f.found);
            lel_call_store_failed(c, -EIO);
            return -EIO;
        }
    }
    if (!f.found)
        return 0;
    q->snap = f.found;
    snprintf(q->snap_buf, sizeof(q->snap_buf), "%s", json_string_value(json_object_get(f.found, "snapshotID")) ?: "");
    q->snap_id = q->snap_buf;
    return snap_start_point(srv, c, q) < 0 ? -EINVAL : 1;
}

/* A start from a snapshot (q->snap): it decides the template and the memory. */
static int snap_start_point(lel_server_t *srv, lel_call_t *c, struct create_req *q)
{
    if (!srv->use_vm) {
        lel_call_error(c, 501, "API-only mode (vmm.backend: none) cannot start from a snapshot");
        return -ENOTSUP;
    }
    q->tpl_id = json_string_value(json_object_get(q->snap, "templateID"));
    if (!lel_registry_get(srv->templates, q->tpl_id ? q->tpl_id : "", NULL, NULL))
        q->tpl_id = "base"; /* its template was deleted since: count the fork under base */
    return 0;
}

/* The new sandbox's record (public fields and private ones). */
static json_t *create_record(lel_call_t *c, const struct create_req *q, lel_actor_t *tpl, const char *id, int64_t now)
{
    const char *tid;
    int cpu, mem, disk;
    int64_t end = now + q->timeout * 1000;
    lel_template_shape(tpl, &tid, &cpu, &mem, &disk);
    if (q->snap)
        mem = (int)json_integer_value(json_object_get(q->snap, "memoryMB"));
    disk = mem; /* the root file system lives in the guest's memory: it holds at most that, shared with processes */
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:O, s:s, s:s, s:O, s:b, s:I, s:I}", "sandboxID", id,
                            "templateID", tid, "clientID", "lelantos", "state", "running", "cpuCount", cpu, "memoryMB",
                            mem, "diskSizeMB", disk, "metadata", q->meta, "envdVersion", LEL_ENVD_VERSION, "teamID",
                            c->team->id, "envVars", q->env, "autoPause", q->auto_pause, "timeoutS", (json_int_t)q->timeout,
                            "endAtMs", (json_int_t)end);
    lel_json_set_time(rec, "startedAt", now);
    lel_json_set_time(rec, "endAt", end);
    if (lel__sbx_new_token(rec) < 0) {
        json_decref(rec);
        return NULL;
    }
    if (q->snap_id)
        json_object_set_new(rec, "snapshotID", json_string(q->snap_id));
    if (lel__sbx_net_record(c->team->srv, c, rec) < 0) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

/* POST /sandboxes on the loop thread (or, in cluster mode, the template fetch thread once the
 * template came from another node): validate, build the actor, let it boot and answer. */
void lel_sandbox_create(lel_server_t *srv, lel_call_t *c)
{
    struct create_req q = {0};
    lel_actor_t *tpl = NULL;
    char id[LEL_ID_LEN + 1];
    if (srv->vm_refused) {
        lel_call_error(c, 503, "cannot start sandboxes on this host: %s", srv->vmm_why);
        goto done;
    }
    if (create_parse(srv, c, &q) < 0)
        goto done;
    tpl = lel_template_lookup(srv, c->team, q.tpl_id);
    if (!tpl && !q.snap_id) {
        int r = snap_as_template(srv, c, &q);
        if (r < 0)
            goto done;
        if (r == 1) /* q.tpl_id is the snapshot's template now */
            tpl = lel_template_lookup(srv, c->team, q.tpl_id);
    }
    if (!tpl) {
        lel_call_error(c, 404, "template '%s' not found", q.tpl_id);
        goto done;
    }
    const char *tst;
    if (!lel_template_ready(tpl, &tst)) { /* it would start without the template's steps and startCmd */
        lel_call_error(c, 409, "template is not ready (status %s)", tst);
        goto done;
    }
    int64_t now = lel_now_ms();
    lel_random_id(id);
    json_t *rec = create_record(c, &q, tpl, id, now);
    if (!rec) {
        lel_call_error(c, 503, "out of memory");
        goto done;
    }
    char why[256];
    int mb = lel__sbx_rec_mb(rec);
    if (!lel__sbx_slot_take(c->team, mb, why, sizeof(why))) {
        json_decref(rec);
        c->retry_after = 1;
        lel_call_error(c, 429, "%s", why);
        goto done;
    }
    struct lel_sandbox *s = lel__sbx_new(srv, c->team, id, rec);
    if (!s) {
        json_decref(rec);
        lel__sbx_slot_put(c->team, mb);
        lel_call_error(c, 503, "out of memory");
        goto done;
    }
    s->holds_slot = 1;
    s->slot_mb = mb;
    s->end_at_ms = json_integer_value(json_object_get(rec, "endAtMs"));
    s->tpl = tpl;
    tpl = NULL;
    char img[4200], raw[4200], key[4200];
    if (q.snap) {
        lel_core_image_path(srv, q.snap_id, img, sizeof(img));
        s->fork_image = strdup(img);
    } else if (srv->use_vm && lel_template_image(s->tpl, img, raw, sizeof(img))) {
        /* a built template: restore its image over its shared memory, not a boot */
        s->fork_image = strdup(img);
        s->memory_file = strdup(raw);
    }
    /* the image it starts from stays while it lives: its pauses and snapshots are diffs over it */
    if (s->fork_image && srv->use_vm) {
        lel_layer_key(srv, s->fork_image, key, sizeof(key));
        if (key[0])
            json_object_set_new(rec, "baseImage", json_string(key));
    }
    if (lel_registry_put(srv->sandboxes, id, s->actor) < 0) {
        lel__sbx_slot_release(s);
        lel_actor_unref(s->actor);
        lel_call_error(c, 503, "out of memory");
        goto done;
    }
    /* registered before it is stored: any later call for this id queues behind the create */
    lel_call_send(s->actor, c);
    create_req_free(&q);
    return;
done:
    if (tpl)
        lel_actor_unref(tpl);
    create_req_free(&q);
    lel_call_done(c);
}

/* ---- restart ---- */

struct load_ctx {
    lel_server_t *srv;
    json_t *away; /* cluster mode: sandbox id -> catalog record of ours another node killed meanwhile */
};

static int load_sandbox(void *ctx, const char *key, json_t *rec)
{
    struct load_ctx *lc = ctx;
    lel_server_t *srv = lc->srv;
    lel_team_t *team = lel_registry_get(srv->teams, json_string_value(json_object_get(rec, "teamID")), NULL, NULL);
    const char *id = json_string_value(json_object_get(rec, "sandboxID"));
    const char *st = json_string_value(json_object_get(rec, "state"));
    if (!team || !id || !st)
        return 0;
    lel_core_fix_disk(srv, LEL_CF_SANDBOXES, key, rec);
    if (!json_object_get(rec, "envdAccessToken") && lel__sbx_new_token(rec) == 0) /* a record from before tokens */
        lel_store_put(srv->store, LEL_CF_SANDBOXES, key, rec);
    struct lel_sandbox *s = lel__sbx_new(srv, team, id, json_incref(rec));
    if (!s) {
        json_decref(rec);
        return 0;
    }
    s->state = !strcmp(st, "running") ? S_RUNNING : !strcmp(st, "paused") ? S_PAUSED : S_KILLED;
    s->end_at_ms = json_integer_value(json_object_get(rec, "endAtMs"));
    const char *by = json_string_value(json_object_get(json_object_get(lc->away, id), "killedBy"));
    char why_away[256];
    snprintf(why_away, sizeof(why_away), "sandbox killed through node '%.64s' while this node was gone", by ?: "");
    if (by && s->state != S_KILLED && mark_killed(s, why_away) == 0) /* reconciled: its pause image goes too */
        s->state = S_KILLED;
    if (srv->use_vm || srv->vm_refused) {
        /* a running VM did not survive the daemon; a paused one lives on in its image */
        char img[4200];
        struct stat st_img;
        lel__sbx_pause_image(s, img, sizeof(img));
        const char *why = s->state == S_RUNNING ? "error: lelantosd stopped while the sandbox was running; its VM is gone"
                        : s->state == S_PAUSED && stat(img, &st_img) < 0 ? "error: the paused sandbox's image is missing"
                                                                        : NULL;
        if (why && mark_killed(s, why) == 0)
            s->state = S_KILLED;
    }
    s->tpl = lel_template_lookup(srv, team, json_string_value(json_object_get(rec, "templateID")));
    if (s->state != S_KILLED && s->tpl) {
        s->holds_template = 1;
        lel_template_acquire(s->tpl, NULL);
    }
    if (s->state == S_RUNNING) {
        s->slot_mb = lel__sbx_rec_mb(s->rec);
        lel__sbx_slot_force(team, s->slot_mb); /* it was admitted before; keep it even past a lowered limit */
        s->holds_slot = 1;
        arm_timer(s, LEL_MSG_TIMEOUT, s->end_at_ms);
    } else if (s->state == S_KILLED) {
        arm_timer(s, LEL_MSG_REAP,
                  json_integer_value(json_object_get(s->rec, "killedAtMs")) + (int64_t)srv->cfg.killed_retention_s * 1000);
    }
    publish(s);
    if (lel_registry_put(srv->sandboxes, id, s->actor) < 0)
        lel_actor_unref(s->actor);
    return 0;
}

static void send_shutdown(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    lel_msg_t *m = lel_msg_new(LEL_MSG_SHUTDOWN, 0, NULL);
    if (m && lel_actor_send(value, m) < 0)
        lel_msg_free(m);
}

void lel_sandbox_shutdown_all(lel_server_t *srv)
{
    lel_registry_foreach(srv->sandboxes, send_shutdown, NULL);
}

static void send_stop(void *ctx, const char *id, void *value)
{
    lel_server_t *srv = ctx;
    (void)id;
    lel_msg_t *m = lel_msg_new(LEL_MSG_STOP_PAUSE, srv->stop_deadline_ms, NULL);
    atomic_fetch_add(&srv->stop_waiting, 1); /* before the actor can settle it */
    if (!m || lel_actor_send(value, m) < 0) {
        atomic_fetch_sub(&srv->stop_waiting, 1);
        lel_msg_free(m);
    }
}

void lel_sandbox_pause_all(lel_server_t *srv, int grace_ms)
{
    int64_t t0 = lel_mono_ms();
    srv->stop_deadline_ms = t0 + grace_ms;
    /* set before the sandboxes are visited: a create either sees it or is visited (its actor
     * was registered before it looked) */
    atomic_store(&srv->stopping, 1);
    lel_registry_foreach(srv->sandboxes, send_stop, srv);
    pthread_mutex_lock(&srv->lock);
    while (atomic_load(&srv->stop_waiting) > 0 && lel_mono_ms() < srv->stop_deadline_ms) {
        struct timespec ts; /* short waits: the deadline is monotonic, the condition's clock is not */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
    }
    pthread_mutex_unlock(&srv->lock);
    fprintf(stderr, "lelantosd: stopping: %d sandbox(es) paused in %lld ms\n", atomic_load(&srv->stop_paused),
            (long long)(lel_mono_ms() - t0));
}

int lel_sandbox_load_all(lel_server_t *srv, char *err, size_t errlen)
{
    struct load_ctx lc = {srv, srv->shared ? lel_cluster_kv_killed_away(srv->shared) : NULL};
    int r = lel_store_scan(srv->store, LEL_CF_SANDBOXES, "", NULL, load_sandbox, &lc);
    json_decref(lc.away);
    if (r < 0) {
        snprintf(err, errlen, "cannot load sandboxes from the store");
        return -EIO;
    }
    return 0;
}
