/* filesystem.Filesystem's watches on the host: WatchDir (a stream: {"start":{}}, then an event
 * frame for each change, {"keepalive":{}} after Keepalive-Ping-Interval seconds of silence, and
 * the end at Connect-Timeout-Ms) and the watchers polled with CreateWatcher, GetWatcherEvents
 * and RemoveWatcher. Each is a watch in the guest (LEL_OP_WATCH_*, fs/hwatch.c: recursive when
 * asked, directories made later included), whose events ring the doorbell; the sandbox's poll
 * hands them here (LEL_POLL_WATCH) and they are read at once, into the stream's frames or the
 * watcher's list. A stream whose client is ENVD_BACKLOG behind leaves them in the guest until
 * it drains; events the guest could not keep (HWATCH_QMAX) end a stream with resource_exhausted,
 * and make a watcher's next GetWatcherEvents say so. With includeEntry, create, write and chmod
 * events carry the entry as Stat gives it. allowNetworkMounts is accepted: the guest has no
 * network mounts. A restored guest may still hold watches its host forgot: the first watch on
 * a VM removes them all. */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCHER_EVENTS_MAX 4096 /* a watcher's events kept between two GetWatcherEvents */

struct envd_watch {
    uint32_t gid;          /* the guest's watch */
    char *path;            /* the watched directory as the client named it (resolved) */
    uint32_t sid;          /* WatchDir: its stream's id (0: a watcher) */
    char wid[24];          /* a watcher's id */
    json_t *events;        /* a watcher's events not taken yet */
    int lost;              /* a watcher lost events since the last GetWatcherEvents */
    int include_entry;
    struct envd_watch *next;
};

static void watch_free(lel_envd_t *e, const struct lel_envd_host *h, struct envd_watch *w)
{
    for (struct envd_watch **p = &e->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    if (h && h->vm) {
        uint64_t arg[4] = {w->gid, 0, 0, 0}, ret[4];
        lel_vm_call(h->vm, LEL_OP_WATCH_REMOVE, arg, ret, 5000);
    }
    json_decref(w->events);
    free(w->path);
    free(w);
}

void lel__envd_watch_forget(lel_envd_t *e)
{
    while (e->watches)
        watch_free(e, NULL, e->watches);
    e->watch_reset = 0;
}

int lel_envd_watching(const lel_envd_t *e)
{
    return e && e->watches != NULL;
}

static const char *const type_names[] = {[LEL_WEV_CREATE] = "EVENT_TYPE_CREATE", [LEL_WEV_WRITE] = "EVENT_TYPE_WRITE",
                                         [LEL_WEV_REMOVE] = "EVENT_TYPE_REMOVE", [LEL_WEV_RENAME] = "EVENT_TYPE_RENAME",
                                         [LEL_WEV_CHMOD] = "EVENT_TYPE_CHMOD"};

/* A FilesystemEvent; NULL for a type this does not know. */
static json_t *event(const struct lel_envd_host *h, const struct envd_watch *w, uint32_t type, const char *name, size_t n)
{
    if (type < LEL_WEV_CREATE || type > LEL_WEV_CHMOD)
        return NULL;
    json_t *ev = json_pack("{s:o, s:s}", "name", lel__envd_text(name, n), "type", type_names[type]);
    if (ev && w->include_entry && (type == LEL_WEV_CREATE || type == LEL_WEV_WRITE || type == LEL_WEV_CHMOD)) {
        size_t pl = strlen(w->path);
        char *full = malloc(pl + 1 + n + 1);
        if (full) {
            memcpy(full, w->path, pl);
            size_t at = pl > 1 ? pl + 1 : pl;
            full[pl] = '/';
            memcpy(full + at, name, n);
            full[at + n] = 0;
            int err = 0;
            json_t *en = lel__envd_entry(h, full, &err); /* (gone again meanwhile: no entry) */
            if (en)
                json_object_set_new(ev, "entry", en);
            free(full);
        }
    }
    return ev;
}

static struct envd_stream *stream_of(lel_envd_t *e, const struct envd_watch *w)
{
    for (struct envd_stream *st = e->streams; st && w->sid; st = st->next)
        if (st->id == w->sid)
            return st;
    return NULL;
}

/* Reads the guest's events for w: into its stream (while the client keeps up) or its list.
 * Returns 1 when the watch ended (w is freed). */
static int drain(lel_envd_t *e, const struct lel_envd_host *h, struct envd_watch *w)
{
    struct envd_stream *st = stream_of(e, w);
    if (w->sid && !st) { /* its stream went (its client left) */
        watch_free(e, h, w);
        return 1;
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        if (st && st->qlen >= ENVD_BACKLOG)
            return 0; /* the rest waits in the guest until the client takes what it has */
        uint64_t arg[4] = {w->gid, 0, 0, 0}, ret[4] = {0};
        if (!h->vm || lel_vm_call_bulk(h->vm, LEL_OP_WATCH_READ, arg, "", 0, ret, 5000))
            return 0;
        size_t len = ret[1] < LEL_BULK_SIZE ? ret[1] : LEL_BULK_SIZE, off = 0;
        char *buf = malloc(len ? len : 1);
        len = buf ? lel_vm_bulk_read(h->vm, 0, buf, len) : 0;
        uint32_t flags = (uint32_t)ret[2];
        struct lel_watch_rec r;
        while (off + sizeof(r) <= len) {
            memcpy(&r, buf + off, sizeof(r));
            if (off + sizeof(r) + r.len > len)
                break;
            json_t *ev = event(h, w, r.type, buf + off + sizeof(r), r.len);
            off += (sizeof(r) + r.len + 7) & ~(size_t)7;
            if (ev && st)
                lel__envd_stream_push(st, json_pack("{s:o}", "filesystem", ev));
            else if (ev && json_array_size(w->events) < WATCHER_EVENTS_MAX)
                json_array_append_new(w->events, ev);
            else if (ev)
                json_decref(ev), w->lost = 1;
        }
        free(buf);
        if ((flags & LEL_WATCH_LOST) && !st)
            w->lost = 1;
        if (st && (flags & (LEL_WATCH_LOST | LEL_WATCH_GONE))) {
            if (flags & LEL_WATCH_LOST)
                lel__envd_stream_end(e, st, "resource_exhausted",
                                     "more file system events came than could be kept; some were lost");
            else
                lel__envd_stream_end(e, st, NULL, NULL); /* the directory was removed: nothing more comes */
            watch_free(e, h, w);
            return 1;
        }
        if (st)
            lel__envd_stream_flush(e, st);
        if (!(flags & LEL_WATCH_MORE))
            return 0;
    }
    return 0;
}

static struct envd_watch *by_gid(lel_envd_t *e, uint32_t gid)
{
    for (struct envd_watch *w = e->watches; w; w = w->next)
        if (w->gid == gid)
            return w;
    return NULL;
}

int lel__envd_watch_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t gid)
{
    struct envd_watch *w = by_gid(e, gid);
    if (w)
        drain(e, h, w);
    return w != NULL;
}

void lel__envd_watch_stream(lel_envd_t *e, const struct lel_envd_host *h, uint32_t sid, int gone)
{
    for (struct envd_watch *w = e->watches; w; w = w->next)
        if (w->sid == sid) {
            if (gone)
                watch_free(e, h, w);
            else
                drain(e, h, w);
            return;
        }
}

/* A watch in the guest for the request's path; 0, or the error answered (as a stream's end
 * when `stream`). */
static int guest_watch(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *rq, int stream,
                       struct envd_watch **out)
{
    struct envd_user u;
    json_t *jp = json_object_get(rq, "path");
    char *path = lel__envd_user(c, NULL, 1, &u) < 0 ? NULL
                 : json_is_string(jp) || !jp ? lel__envd_path(jp ? json_string_value(jp) : "",
                                                               jp ? json_string_length(jp) : 0, u.home)
                                             : NULL;
    const char *code = NULL, *msg = NULL;
    if (!path && c->status) { /* the user was refused */
        char cd[40], m[512];
        snprintf(cd, sizeof(cd), "%s", json_string_value(json_object_get(c->resp, "code")) ?: "unauthenticated");
        snprintf(m, sizeof(m), "%s", json_string_value(json_object_get(c->resp, "message")) ?: "");
        if (stream)
            lel__envd_stream_fail(c, cd, "%s", m);
        return -EACCES;
    }
    if (!path)
        code = "invalid_argument", msg = "invalid 'path': a path without NUL, at most 4095 bytes";
    if (path && !e->watch_reset) { /* what a restored guest still watches is no one's now */
        uint64_t arg[4] = {0}, ret[4];
        if (lel_vm_call(h->vm, LEL_OP_WATCH_REMOVE, arg, ret, 5000) == 0)
            e->watch_reset = 1;
    }
    uint64_t ret[4] = {0};
    if (path) {
        uint64_t arg[4] = {strlen(path) + 1, json_is_true(json_object_get(rq, "recursive")), 0, 0};
        int r = lel_vm_call_bulk(h->vm, LEL_OP_WATCH_ADD, arg, path, strlen(path) + 1, ret, 30000);
        code = r == 0 ? NULL : r == 2 ? "not_found" : r == 20 ? "invalid_argument" : r == 28 ? "resource_exhausted"
             : r == LEL_ST_ENOSYS ? "unimplemented" : r < 0 ? "unavailable" : "internal";
        msg = r == 2 ? "path does not exist" : r == 20 ? "path is not a directory"
            : r == 28 ? "too many watches, or a tree too large to watch (65536 entries)"
            : r == LEL_ST_ENOSYS ? "the sandbox's guest is older than file watching (restart it from its template)"
            : "the guest could not watch the path";
    }
    struct envd_watch *w = code ? NULL : calloc(1, sizeof(*w));
    if (!code && !w) {
        uint64_t arg[4] = {ret[0], 0, 0, 0}, r2[4];
        lel_vm_call(h->vm, LEL_OP_WATCH_REMOVE, arg, r2, 5000);
        code = "resource_exhausted", msg = "out of memory";
    }
    if (code) {
        if (stream)
            lel__envd_stream_fail(c, code, "%s: '%s'", msg, path ? path : "");
        else
            lel__envd_error(c, code, "%s: '%s'", msg, path ? path : "");
        free(path);
        return -EINVAL;
    }
    w->gid = (uint32_t)ret[0];
    w->path = path;
    w->include_entry = json_is_true(json_object_get(rq, "includeEntry")) ||
                       json_is_true(json_object_get(rq, "include_entry"));
    w->next = e->watches;
    e->watches = w;
    *out = w;
    return 0;
}

static void watch_dir(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c)
{
    json_t *rq = lel__envd_request(c, 1);
    struct envd_watch *w = NULL;
    if (!rq || guest_watch(e, h, c, rq, 1, &w) < 0) {
        json_decref(rq);
        return;
    }
    json_decref(rq);
    struct envd_stream *st = lel__envd_stream_open(e, h, c, json_pack("{s:{}}", "start"), "application/connect+json",
                                                  UINT64_MAX);
    if (!st) {
        watch_free(e, h, w);
        return;
    }
    st->watch = 1;
    w->sid = st->id;
    long long ms = c->connect_timeout ? strtoll(c->connect_timeout, NULL, 10) : 0;
    if (ms > 0) { /* as connect-go: the call ends with deadline_exceeded when its time is up */
        st->deadline_ms = lel_mono_ms() + ms;
        lel_msg_t *m = lel_msg_new(LEL_MSG_ENVD_TICK, st->id | ENVD_DEADLINE_TICK, NULL);
        if (m && lel_timers_at(h->srv->timers, st->deadline_ms, h->actor, m) < 0)
            lel_msg_free(m);
    }
    drain(e, h, w); /* (what changed since the watch began) */
}

static struct envd_watch *by_wid(lel_envd_t *e, json_t *rq)
{
    const char *id = json_string_value(json_object_get(rq, "watcherId"));
    if (!id)
        id = json_string_value(json_object_get(rq, "watcher_id"));
    for (struct envd_watch *w = e->watches; w && id; w = w->next)
        if (!w->sid && !strcmp(w->wid, id))
            return w;
    return NULL;
}

int lel__envd_watch_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method)
{
    if (!strcmp(method, "WatchDir")) {
        watch_dir(e, h, c);
        return 0;
    }
    int create = !strcmp(method, "CreateWatcher"), get = !strcmp(method, "GetWatcherEvents");
    if (!create && !get && strcmp(method, "RemoveWatcher")) {
        lel__envd_error(c, "unimplemented", "filesystem.Filesystem/%.32s does not exist", method);
        return 0;
    }
    json_t *rq = lel__envd_request(c, 0);
    struct envd_watch *w = NULL;
    if (rq && create && guest_watch(e, h, c, rq, 0, &w) == 0) {
        snprintf(w->wid, sizeof(w->wid), "w%u-%u", ++e->seq, w->gid);
        w->events = json_array();
        lel__envd_reply(c, json_pack("{s:s}", "watcherId", w->wid));
    } else if (rq && !create && !(w = by_wid(e, rq))) {
        lel__envd_error(c, "not_found", "watcher not found");
    } else if (rq && get) {
        if (!drain(e, h, w) && w->lost) {
            w->lost = 0;
            json_array_clear(w->events);
            lel__envd_error(c, "resource_exhausted", "more file system events came than could be kept; some were lost");
        } else {
            json_t *taken = w->events; /* the answer's now; the watcher gathers anew */
            w->events = json_array();
            lel__envd_reply(c, json_pack("{s:o}", "events", taken));
        }
    } else if (rq && !create) {
        watch_free(e, h, w);
        lel__envd_reply(c, NULL);
    }
    json_decref(rq);
    return 0;
}
