/* The sandbox's microVM: starting (boot or restore), images for pause and snapshots,
 * restoring a snapshot into a running sandbox, console lines as logs, and metrics samples.
 * Runs on the sandbox's actor; the VM's own thread only sends it messages. */
#include "lel_sandbox_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void send_text(struct lel_sandbox *s, int type, const char *text, size_t len)
{
    char *copy = strndup(text, len);
    lel_msg_t *m = copy ? lel_msg_new(type, 0, copy) : NULL;
    if (!m || lel_actor_send(s->actor, m) < 0) {
        free(copy);
        lel_msg_free(m);
    }
}

/* vCPU thread: hand off, nothing else */
static void on_console(void *ctx, const char *line, size_t len)
{
    send_text(ctx, LEL_MSG_CONSOLE, line, len);
}

static void on_died(void *ctx, const char *why)
{
    send_text(ctx, LEL_MSG_VM_DIED, why, strlen(why));
}

/* One event message at a time: the actor asks the guest what happened, which covers every bell
 * rung meanwhile, so a guest that floods the doorbell fills no mailbox */
static void on_event(void *ctx)
{
    struct lel_sandbox *s = ctx;
    if (__atomic_exchange_n(&s->event_posted, 1, __ATOMIC_ACQ_REL))
        return;
    lel_msg_t *m = lel_msg_new(LEL_MSG_CMD_EVENT, 0, NULL);
    if (!m || lel_actor_send(s->actor, m) < 0) {
        lel_msg_free(m);
        __atomic_store_n(&s->event_posted, 0, __ATOMIC_RELEASE);
    }
}

static const struct lel_vm_ops vm_ops = {on_console, on_died, on_event};

/* A snapshot that starts a second VM pays for sharing: its memory is unpacked once into a sparse
 * file beside the image, and every VM started from it maps that file copy-on-write (nothing to
 * decompress, the unchanged pages shared), as templates do. Made by the first start (concurrent
 * first starts each write their own temporary file; the renames agree). Returns raw, or NULL
 * when it cannot be made: the start then decompresses the image as a pause image does. */
static const char *snapshot_memory(struct lel_sandbox *s, const char *id, char *raw, size_t n)
{
    char img[4200], err[600];
    struct lel_snap_info info;
    lel_core_raw_path(s->srv, id, raw, n);
    if (access(raw, R_OK) == 0)
        return raw;
    lel_core_image_path(s->srv, id, img, sizeof(img));
    /* a diff: the restore maps the nearest memory file below it and applies the diffs */
    if (lel_image_info(img, &info, NULL, 0, NULL, err, sizeof(err)) < 0 || info.diff)
        return NULL;
    if (lel_image_unpack_memory(img, raw, err, sizeof(err)) == 0)
        return raw;
    fprintf(stderr, "lelantosd: snapshot %s: no shared memory file, each start copies the image: %s\n", id, err);
    return NULL;
}

const char *lel__sbx_fork_memory(struct lel_sandbox *s, char *raw, size_t n)
{
    const char *snap = json_string_value(json_object_get(s->rec, "snapshotID"));
    if (s->memory_file || !s->fork_image || !snap)
        return s->memory_file;
    return snapshot_memory(s, snap, raw, n);
}

void lel__sbx_pause_image(struct lel_sandbox *s, char *buf, size_t n)
{
    char name[64];
    snprintf(name, sizeof(name), "%s.paused", s->id);
    lel_core_image_path(s->srv, name, buf, n);
}

void lel__sbx_vm_release(struct lel_sandbox *s)
{
    lel__sbx_cmds_fail(s, 409, "the sandbox stopped while the command ran");
    lel__sbx_xfers_fail(s, 409, "the sandbox stopped while the file was transferred");
    lel_envd_vm_gone(s->envd, "the sandbox stopped");
    lel__sbx_net_detach(s); /* its connections end before the VM goes */
    if (s->vm) {
        lel_vm_reap(s->srv->reaper, s->vm); /* its vCPU ends now, the rest off this path */
        s->vm = NULL;
        lel_actor_unref(s->actor); /* the reference the VM's callbacks needed */
    }
}

/* Boots a fresh VM (image NULL) or restores one, over memory_file (that image's memory
 * unpacked) when given; the VM holds a reference to the actor so its callbacks never reach a
 * freed actor. */
int lel__sbx_vm_start(struct lel_sandbox *s, const char *image, const char *memory_file, int transient, char *err,
                      size_t errlen)
{
    struct lel_vm_config cfg = {(uint64_t)json_integer_value(json_object_get(s->rec, "memoryMB")) << 20, 100, &vm_ops, s,
                                memory_file, NULL, (uint64_t)json_integer_value(json_object_get(s->rec, "diskSizeMB")) << 20,
                                transient, 0, !s->srv->cfg.vmm_seccomp, s->srv->cfg.vmm_test_seccomp_violation,
                                &s->srv->vm_stats};
    lel_vm_t *vm = NULL;
    lel_actor_ref(s->actor);
    int r = image ? lel_vm_restore(image, &cfg, &vm, err, errlen) : lel_vm_boot(&cfg, &vm, err, errlen);
    if (r == 0 && !image && (r = lel_vm_wait_ready(vm, s->srv->cfg.boot_timeout_ms)) < 0)
        snprintf(err, errlen, "the guest did not become ready within %d ms (%s%s)", s->srv->cfg.boot_timeout_ms,
                 r == -EPIPE ? "it died: " : "timeout", r == -EPIPE ? lel_vm_why(vm) : "");
    /* a restored guest's clock stopped at its snapshot, and its random state is the image's:
     * it gets now and fresh randomness before anyone can use it (posted: every later request
     * reaches the guest after it, and the caller's answer does not wait for the guest's first
     * run, which rebuilds its shadow page tables: 1.5-8 ms here) */
    if (r == 0 && image && (r = lel_vm_set_clock_post(vm)) < 0)
        snprintf(err, errlen, "the restored guest did not take its clock and random seed: %s%s%s", strerror(-r),
                 r == -EPIPE ? ": it died: " : "", r == -EPIPE ? lel_vm_why(vm) : "");
    if (r < 0) {
        lel_vm_destroy(vm);
        lel_actor_unref(s->actor);
        return r;
    }
    s->vm = vm;
    lel__sbx_net_attach(s);
    s->cpu_prev_ns = lel_vm_cpu_ns(vm);
    s->cpu_prev_ms = lel_mono_ms();
    return 0;
}

int lel__sbx_vm_adopt(struct lel_sandbox *s)
{
    lel_actor_ref(s->actor); /* before its callbacks can reach the sandbox */
    lel_vm_t *vm = s->tpl ? lel_template_take_vm(s->tpl, &vm_ops, s) : NULL;
    if (!vm) {
        lel_actor_unref(s->actor);
        return -ENOENT;
    }
    s->vm = vm;
    s->learn_writes = lel_template_wants_writes(s->tpl);
    lel__sbx_net_attach(s);
    s->cpu_prev_ns = lel_vm_cpu_ns(vm);
    s->cpu_prev_ms = lel_mono_ms();
    return 0;
}

/* Stops the VM and writes it to `path`; the VM stays stopped. */
int lel__sbx_vm_save(struct lel_sandbox *s, const char *path, struct lel_snap_info *info, char *err, size_t errlen)
{
    /* a posted request (the clock, at a restore) answered first; a guest that does not answer
     * is saved as it is, as before there were posted requests */
    lel_vm_idle(s->vm, 2000);
    lel_vm_trim(s->vm, TRIM_MIN_PAGES / 8); /* freed memory need not be in the image */
    if (lel_vm_stop(s->vm) < 0) {
        snprintf(err, errlen, "the VM died");
        return -EPIPE;
    }
    /* only what differs from the image it started from (a full image when it has none) */
    return lel_vm_save_diff(s->vm, path, info, err, errlen);
}

void lel__sbx_sample(struct lel_sandbox *s)
{
    if (!s->vm)
        return;
    if (!s->samples && !(s->samples = calloc(SAMPLES, sizeof(struct sample))))
        return;
    uint64_t ns = lel_vm_cpu_ns(s->vm);
    int64_t ms = lel_mono_ms();
    struct sample *x = &s->samples[s->sample_next];
    x->ts = lel_now_ms() / 1000;
    x->cpu_pct = ms > s->cpu_prev_ms ? (double)(ns - s->cpu_prev_ns) / 1e4 / (double)(ms - s->cpu_prev_ms) : 0;
    x->mem_used = lel_vm_mem_used(s->vm);
    x->mem_total = (uint64_t)json_integer_value(json_object_get(s->rec, "memoryMB")) << 20;
    x->disk_used = lel_vm_disk_used(s->vm);
    x->disk_total = (uint64_t)json_integer_value(json_object_get(s->rec, "diskSizeMB")) << 20;
    lel__sbx_net_bytes(s, &x->net_in, &x->net_out);
    s->cpu_prev_ns = ns;
    s->cpu_prev_ms = ms;
    s->sample_next = (s->sample_next + 1) % SAMPLES;
    if (s->nsamples < SAMPLES)
        s->nsamples++;
    /* memory a finished workload freed inside the guest goes back to the host (free-page
     * reporting), checked at each sample while no command runs: it costs nothing unless the
     * guest holds TRIM_MIN_PAGES of it */
    if (!lel__sbx_ncmds(s))
        lel_vm_trim(s->vm, TRIM_MIN_PAGES);
}

/* Samples fall on a shared grid of SAMPLE_SLOT_MS: the timer thread then wakes once per slot
 * for all the sandboxes due in it, and the workers take them in a row, instead of one wake
 * each per sandbox (on this host a wake costs more than the sample). */
#define SAMPLE_SLOT_MS 200

void lel__sbx_arm_sampler(struct lel_sandbox *s)
{
    lel_msg_t *m = lel_msg_new(LEL_MSG_SAMPLE, ++s->sample_gen, NULL);
    int64_t at = lel_mono_ms() + (int64_t)s->srv->cfg.metrics_interval_s * 1000;
    at = (at + SAMPLE_SLOT_MS - 1) / SAMPLE_SLOT_MS * SAMPLE_SLOT_MS;
    if (m && lel_timers_at(s->srv->timers, at, s->actor, m) < 0)
        lel_msg_free(m);
}

void lel__sbx_get_metrics(struct lel_sandbox *s, lel_call_t *c)
{
    char *qs = lel_call_query(c, "start"), *qe = lel_call_query(c, "end"), *e1 = NULL, *e2 = NULL;
    long long start = qs ? strtoll(qs, &e1, 10) : 0, end = qe ? strtoll(qe, &e2, 10) : (long long)1 << 62;
    int bad = (qs && (!*qs || *e1)) || (qe && (!*qe || *e2));
    free(qs);
    free(qe);
    if (bad) {
        lel_call_error(c, 400, "invalid query: 'start' and 'end' must be unix seconds");
        return;
    }
    json_t *out = json_array();
    int cpus = (int)json_integer_value(json_object_get(s->rec, "cpuCount"));
    for (size_t i = 0; i < s->nsamples; i++) {
        const struct sample *x = &s->samples[(s->sample_next + SAMPLES - s->nsamples + i) % SAMPLES];
        if (x->ts < start || x->ts > end)
            continue;
        char ts[32];
        lel_rfc3339((int64_t)x->ts * 1000, ts);
        /* `timestamp` and `memCache` (no page cache: files are memory) as E2B's SandboxMetric has them */
        json_array_append_new(out, json_pack("{s:I, s:s, s:i, s:f, s:I, s:I, s:i, s:I, s:I, s:I, s:I}", "timestampUnix",
                                             (json_int_t)x->ts, "timestamp", ts, "cpuCount", cpus, "cpuUsedPct",
                                             x->cpu_pct, "memUsed", (json_int_t)x->mem_used, "memTotal",
                                             (json_int_t)x->mem_total, "memCache", 0, "diskUsed",
                                             (json_int_t)x->disk_used, "diskTotal", (json_int_t)x->disk_total,
                                             "networkRxBytes", (json_int_t)x->net_in, "networkTxBytes",
                                             (json_int_t)x->net_out));
    }
    lel_call_reply(c, 200, out);
}

/* A snapshot record keeps what a fork and a restore need to know of the sandbox it came from. */
const char *const lel__snap_private_fields[] = {"teamID", "templateID", "memoryMB", NULL};

/* The team's snapshots named `name` lose it, in batch `b`: E2B maps a name to one template, and
 * a second snapshot with the name becomes what the name starts (E2B gives it to the template the
 * name already has; our snapshot ids name immutable images, so the new one keeps its own id and
 * the older ones stay startable by id only). */
struct name_move {
    const char *name;
    lel_batch_t *b;
    int failed;
};

static int drop_name(void *ctx, const char *key, json_t *rec)
{
    struct name_move *m = ctx;
    const char *n = json_string_value(json_object_get(rec, "name"));
    if (!n || strcmp(n, m->name))
        return 0;
    json_t *copy = json_copy(rec);
    if (!copy || json_object_set_new(copy, "name", json_string("")) < 0 ||
        lel_batch_put(m->b, LEL_CF_SNAPSHOTS, key, copy) < 0)
        m->failed = 1;
    json_decref(copy);
    return m->failed;
}

static int move_name(struct lel_sandbox *s, lel_batch_t *b, const char *name)
{
    char prefix[80];
    struct name_move m = {name, b, 0};
    snprintf(prefix, sizeof(prefix), "%s/", s->team->id);
    if (!*name)
        return 0;
    return lel_store_scan(s->srv->store, LEL_CF_SNAPSHOTS, prefix, NULL, drop_name, &m) < 0 || m.failed ? -EIO : 0;
}

/* Reserves one of the team's stored snapshots: 0, or -EAGAIN with the 429 (E2B's wording) set. */
static int snap_quota_take(lel_team_t *t, lel_call_t *c)
{
    int cur = atomic_load(&t->snapshots);
    do {
        int max = atomic_load(&t->max_snapshots);
        if (max && cur >= max) {
            lel_call_error(c, 429, "you have reached the maximum number of stored snapshots (%d). Delete one "
                                   "(DELETE /snapshots/{id}) or ask the operator to raise the team's limits", max);
            return -EAGAIN;
        }
    } while (!atomic_compare_exchange_weak(&t->snapshots, &cur, cur + 1));
    return 0;
}

/* The snapshot itself: image, record, layer reference, the answer. 0, or <0 with the error set. */
static int snapshot_write(struct lel_sandbox *s, lel_call_t *c, const char *name)
{
    char id[LEL_ID_LEN + 1], img[4200], err[256], path[64];
    struct lel_snap_info info;
    lel_random_id(id);
    lel_core_image_path(s->srv, id, img, sizeof(img));
    int r = lel__sbx_vm_save(s, img, &info, err, sizeof(err));
    lel_vm_cont(s->vm);
    if (r < 0) {
        lel_call_error(c, r == -ENOSPC || r == -EDQUOT ? 507 : 500, "snapshot failed: %s%s", err,
                       r == -ENOSPC || r == -EDQUOT ? " (the data directory is full; nothing was stored)" : "");
        return -EIO;
    }
    json_t *snap = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:O, s:O}", "snapshotID", id, "sandboxID", s->id, "name", name,
                             "sizeBytes", (json_int_t)info.mem_bytes, "storedBytes", (json_int_t)info.stored_bytes, "teamID",
                             s->team->id, "templateID", json_object_get(s->rec, "templateID"), "memoryMB",
                             json_object_get(s->rec, "memoryMB"));
    lel_json_set_time(snap, "createdAt", lel_now_ms());
    snprintf(path, sizeof(path), "%s/%s", s->team->id, id);
    lel_batch_t *b = lel_batch_new(s->srv->store);
    if (move_name(s, b, name) < 0) {
        unlink(img);
        json_decref(snap);
        lel_batch_free(b);
        lel_call_store_failed(c, -EIO);
        return -EIO;
    }
    lel_batch_put(b, LEL_CF_SNAPSHOTS, path, snap);
    lel__sbx_add_event(s, b, "info", "snapshot taken", json_pack("{s:s, s:I, s:b, s:i}", "snapshotID", id, "storedBytes",
                                                                 (json_int_t)info.stored_bytes, "diff", info.diff, "depth",
                                                                 (int)info.depth));
    /* the image's record (its owner: the snapshot record) holds its base in the same batch */
    char key[4200];
    lel_layer_key(s->srv, img, key, sizeof(key));
    struct lel_layer_op op = {key, 1, 1, info.diff ? json_string_value(json_object_get(s->rec, "baseImage")) : NULL,
                              (int)info.depth, 0};
    if (info.diff && !op.base) { /* cannot happen: a VM with a base started from the sandbox's base image */
        unlink(img);
        json_decref(snap);
        lel_batch_free(b);
        lel_call_error(c, 500, "snapshot failed: the sandbox's base image is unknown");
        return -EIO;
    }
    if ((r = lel_layer_write(s->srv, b, &op, 1)) < 0) {
        unlink(img);
        json_decref(snap);
        lel_call_store_failed(c, r);
        return r;
    }
    lel_layer_maybe_flatten(s->srv, key, (int)info.depth);
    if (c->route == R_SBX_SNAPSHOTS) { /* E2B's SnapshotInfo: the names it can be started by */
        lel_call_reply(c, 201, json_pack("{s:s, s:[]}", "snapshotID", id, "names"));
        if (*name)
            json_array_append_new(json_object_get(c->resp, "names"), json_string(name));
        json_decref(snap);
        return 0;
    }
    for (int i = 0; lel__snap_private_fields[i]; i++)
        json_object_del(snap, lel__snap_private_fields[i]);
    lel_call_reply(c, 201, snap);
    return 0;
}

/* POST /sandboxes/{id}/snapshot: a brief stop, an image, the VM runs on. */
void lel__sbx_take_snapshot(struct lel_sandbox *s, lel_call_t *c)
{
    const char *name = "";
    if (lel_call_str_field(c, "name", 256, &name) < 0)
        return;
    if (s->state != S_RUNNING) {
        lel_call_error(c, 409, "sandbox is %s, not running", state_names[s->state]);
        return;
    }
    if (!s->vm) {
        lel_call_error(c, 501, "API-only mode (vmm.backend: none) has no VM memory to snapshot");
        return;
    }
    if (snap_quota_take(s->team, c) < 0)
        return;
    if (snapshot_write(s, c, name) < 0)
        atomic_fetch_sub(&s->team->snapshots, 1);
}

/* POST /sandboxes/{id}/restore {"snapshotID"}: the same sandbox, back at that state. */
void lel__sbx_restore_snapshot(struct lel_sandbox *s, lel_call_t *c)
{
    const char *sid = NULL;
    char path[300], img[4200], raw[4200], err[256];
    json_t *snap;
    if (lel_call_str_field(c, "snapshotID", 64, &sid) < 0)
        return;
    if (!sid) {
        lel_call_error(c, 400, "invalid field 'snapshotID': required");
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", s->team->id, sid);
    if (lel_store_get(s->srv->store, LEL_CF_SNAPSHOTS, path, &snap) < 0) {
        lel_call_error(c, 404, "snapshot not found");
        return;
    }
    json_int_t snap_mb = json_integer_value(json_object_get(snap, "memoryMB"));
    json_int_t mb = json_integer_value(json_object_get(s->rec, "memoryMB"));
    json_decref(snap);
    if (s->state != S_RUNNING) {
        lel_call_error(c, 409, "sandbox is %s, not running", state_names[s->state]);
        return;
    }
    if (!s->vm) {
        lel_call_error(c, 501, "API-only mode (vmm.backend: none) has no VM to restore");
        return;
    }
    /* the image brings its own memory size: restored into another shape, the record would lie */
    if (snap_mb != mb) {
        lel_call_error(c, 409,
                       "snapshot %s was taken from a sandbox with %lld MB of memory and this sandbox has %lld MB: restore "
                       "it into a sandbox of the same shape, or start a new sandbox from it (POST /sandboxes with "
                       "snapshotID)", sid, (long long)snap_mb, (long long)mb);
        return;
    }
    lel_core_image_path(s->srv, sid, img, sizeof(img));
    lel_vm_t *old = s->vm;
    struct lel_net_ep *old_ep = s->ep;
    s->vm = NULL;
    s->ep = NULL;
    if (lel__sbx_vm_start(s, img, snapshot_memory(s, sid, raw, sizeof(raw)), 0, err, sizeof(err)) < 0) {
        s->vm = old;
        s->ep = old_ep;
        lel_call_error(c, 500, "cannot restore: %s", err);
        return;
    }
    lel_vm_t *fresh = s->vm;
    struct lel_net_ep *fresh_ep = s->ep;
    s->vm = old;
    s->ep = old_ep;
    lel__sbx_vm_release(s); /* the old VM and its reference, its connections */
    s->vm = fresh;
    s->ep = fresh_ep;
    /* its base is the snapshot now: held, and the old one let go, with the record */
    char key[4200];
    lel_layer_key(s->srv, img, key, sizeof(key));
    json_t *rec = json_deep_copy(s->rec);
    struct lel_layer_op ops[2] = {{key, 1, 0, NULL, 0, 0},
                                  {json_string_value(json_object_get(s->rec, "baseImage")), -1, 0, NULL, 0, 0}};
    json_object_set_new(rec, "baseImage", json_string(key));
    int r = lel__sbx_commit_ops(s, rec, "info", "sandbox restored from a snapshot", json_pack("{s:s}", "snapshotID", sid),
                                ops, ops[1].key ? 2 : 1);
    if (r < 0) {
        lel_call_store_failed(c, r);
        return;
    }
    lel_call_reply(c, 200, lel__sbx_public_view(s));
}

/* Console lines are logs: written without waiting for fsync (the WAL still has them). */
void lel__sbx_console_line(struct lel_sandbox *s, const char *line)
{
    lel_batch_t *b = lel_batch_new(s->srv->store);
    lel__sbx_add_event(s, b, "info", line, json_pack("{s:s}", "source", "console"));
    lel_store_write_relaxed(s->srv->store, b);
}

