/* filesystem.Filesystem on the host. Stat and ListDir ask the guest (LEL_OP_FILE_STAT: lstat
 * records of an entry or of a tree to a depth, names of any bytes, symlinks resolved as readlink
 * -f does); MakeDir, Move and Remove run a small busybox script as the call's user (mkdir -p, mv
 * with the destination's parents made, rm -rf; the paths travel as arguments) and MakeDir and
 * Move answer with the entry the guest reports afterwards. A script exits 10 (no such path),
 * 12 (a directory already) or 13 (something else is there). Entries are EntryInfo as envd fills
 * them: owner and group named from the guest's /etc/passwd and /etc/group (the number when
 * neither names it), `mode` the permission bits, `permissions` as Go's FileMode.String(); a
 * symlink has its target's type and permission bits and symlinkTarget resolved, and one that
 * leads nowhere has no type (files.list drops it). A name that is not UTF-8 is answered with
 * U+FFFD for its bad bytes (JSON carries only UTF-8). WatchDir and the watchers: lel_envd_watch.c. */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS_TIMEOUT_MS 30000
#define DEPTH_MAX 255
#define NAMES_MAX (256u << 10) /* bytes of /etc/passwd or /etc/group read */

enum { FS_STAT = 1, FS_LIST, FS_MKDIR, FS_MOVE, FS_REMOVE };

static const char *const scripts[] = {
    [FS_MKDIR] = "[ -d \"$1\" ] && exit 12\n{ [ -e \"$1\" ] || [ -L \"$1\" ]; } && exit 13\n"
                 "mkdir -p -- \"$1\" || exit 1\n",
    [FS_MOVE] = "[ -e \"$1\" ] || [ -L \"$1\" ] || exit 10\nmkdir -p -- \"$(dirname -- \"$2\")\" || exit 1\n"
                "mv -fT -- \"$1\" \"$2\"\n",
    [FS_REMOVE] = "rm -rf -- \"$1\"\n",
};

static void op_free(struct envd_op *op)
{
    free(op->path);
    free(op->path2);
    free(op);
}

/* A JSON string of n bytes that may not be UTF-8: bad bytes become U+FFFD. */
json_t *lel__envd_text(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    char *out = malloc(n * 3 + 1), *w = out;
    for (size_t i = 0; out && i < n;) {
        unsigned char ch = (unsigned char)p[i];
        size_t len = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
        json_t *one = len && i + len <= n ? json_stringn(p + i, len) : NULL;
        if (one) { /* a whole character (jansson judges overlongs and surrogates) */
            memcpy(w, p + i, len);
            w += len;
            i += len;
            json_decref(one);
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        }
    }
    j = out ? json_stringn(out, (size_t)(w - out)) : NULL;
    free(out);
    return j;
}

/* The guest's /etc/passwd and /etc/group, read once per call that names owners. */
struct names {
    char *passwd, *group;
    int loaded;
};

static char *guest_text(const struct lel_envd_host *h, const char *path)
{
    size_t plen = strlen(path) + 1;
    uint64_t arg[4] = {plen, 0, NAMES_MAX, 0}, ret[4] = {0};
    if (lel_vm_call_bulk(h->vm, LEL_OP_FILE_READ, arg, path, plen, ret, FS_TIMEOUT_MS) || ret[0] != 1)
        return NULL;
    size_t n = ret[1] < NAMES_MAX ? ret[1] : NAMES_MAX;
    char *buf = malloc(n + 1);
    if (buf)
        buf[lel_vm_bulk_read(h->vm, 0, buf, n)] = 0;
    return buf;
}

/* The name the database's lines ("name:x:id:...") give id, or the number. */
static void id_name(const char *db, unsigned id, char *out, size_t cap)
{
    for (const char *line = db; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *c1 = strchr(line, ':'), *nl = strchr(line, '\n');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || (nl && c2 > nl) || c1 == line)
            continue;
        char *end;
        unsigned long v = strtoul(c2 + 1, &end, 10);
        if (end != c2 + 1 && *end == ':' && v == id && (size_t)(c1 - line) < cap) {
            memcpy(out, line, (size_t)(c1 - line));
            out[c1 - line] = 0;
            return;
        }
    }
    snprintf(out, cap, "%u", id);
}

static void names_free(struct names *nm)
{
    free(nm->passwd);
    free(nm->group);
}

/* The permissions as Go's FileMode.String() writes them ("-rw-r--r--", "drwxr-xr-x", "L..."). */
static void perm_string(unsigned mode, char out[11])
{
    unsigned fmt = mode & 0170000;
    out[0] = fmt == 0120000 ? 'L' : fmt == 0040000 ? 'd' : fmt == 0010000 ? 'p' : fmt == 0140000 ? 'S'
           : fmt == 0020000 || fmt == 0060000 ? 'D' : '-';
    for (int i = 0; i < 9; i++)
        out[1 + i] = mode & (0400u >> i) ? "rwxrwxrwx"[i] : '-';
    out[10] = 0;
}

static const char *file_type(unsigned mode)
{
    unsigned fmt = mode & 0170000;
    return fmt == 0040000 ? "FILE_TYPE_DIRECTORY" : fmt == 0100000 ? "FILE_TYPE_FILE" : NULL;
}

/* EntryInfo.metadata from a record's attributes (each named ENVD_META_PREFIX...): the names
 * without the prefix; as envd, an entry whose name or value is no UTF-8 is left out (a proto
 * map<string, string> cannot carry it). NULL when there are none. */
static json_t *entry_metadata(const char *x, size_t len)
{
    json_t *md = NULL;
    size_t pl = strlen(ENVD_META_PREFIX);
    for (size_t at = 0; at + sizeof(struct lel_xattr_rec) <= len;) {
        struct lel_xattr_rec xr;
        memcpy(&xr, x + at, sizeof(xr));
        size_t size = (sizeof(xr) + xr.name_len + (size_t)xr.value_len + 7) & ~(size_t)7;
        if (size > len - at)
            break; /* the guest's lengths are not trusted */
        const char *nm = x + at + sizeof(xr);
        at += size;
        if (xr.name_len <= pl || memcmp(nm, ENVD_META_PREFIX, pl))
            continue;
        char key[256];
        memcpy(key, nm + pl, xr.name_len - pl);
        key[xr.name_len - pl] = 0;
        json_t *k = strlen(key) == xr.name_len - pl ? json_string(key) : NULL; /* (UTF-8, no NUL) */
        json_t *v = k ? json_stringn(nm + xr.name_len, xr.value_len) : NULL;
        json_decref(k);
        if (v && (md || (md = json_object())))
            json_object_set_new(md, key, v);
        else
            json_decref(v);
    }
    return md;
}

/* An EntryInfo from a guest record; `path`: the entry's path as the client names it (len bytes). */
static json_t *entry(const struct lel_envd_host *h, const struct lel_stat_rec *r, const char *path,
                     size_t len, const char *target, const char *xattrs, struct names *nm)
{
    if (!nm->loaded) {
        nm->passwd = guest_text(h, "/etc/passwd");
        nm->group = guest_text(h, "/etc/group");
        nm->loaded = 1;
    }
    int link = (r->mode & 0170000) == 0120000;
    unsigned shown = link && r->tmode ? r->tmode : r->mode;
    char perms[11], sz[24], ts[32], owner[64], group[64];
    perm_string(r->mode, perms);
    snprintf(sz, sizeof(sz), "%llu", (unsigned long long)r->size);
    id_name(nm->passwd, r->uid, owner, sizeof(owner));
    id_name(nm->group, r->gid, group, sizeof(group));
    time_t t = (time_t)r->mtime;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof(tm));
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *slash = NULL;
    for (size_t i = len; i > 0 && !slash; i--)
        if (path[i - 1] == '/' && i < len)
            slash = path + i - 1;
    json_t *name = len == 1 && path[0] == '/' ? json_string("/") : slash ? lel__envd_text(slash + 1, len - (size_t)(slash + 1 - path))
                                                                          : lel__envd_text(path, len);
    json_t *en = json_pack("{s:o, s:o, s:s, s:i, s:s, s:s, s:s, s:s}", "name", name, "path", lel__envd_text(path, len), "size", sz,
                           "mode", (int)(shown & 0777), "permissions", perms, "owner", owner, "group", group,
                           "modifiedTime", ts);
    const char *type = file_type(shown);
    if (en && type && (!link || r->tmode))
        json_object_set_new(en, "type", json_string(type));
    if (en && link && r->target_len)
        json_object_set_new(en, "symlinkTarget", lel__envd_text(target, r->target_len));
    json_t *md = en && r->xattr_len ? entry_metadata(xattrs, r->xattr_len) : NULL;
    if (md)
        json_object_set_new(en, "metadata", md);
    return en;
}

/* The guest's records of `path` to `depth` (0: the entry itself): malloc'd, *len bytes; NULL
 * with *err the guest's errno (or a negative one). */
static char *guest_stat(const struct lel_envd_host *h, const char *path, unsigned depth, size_t *len, int *full, int *err)
{
    size_t plen = strlen(path) + 1, ml = strlen(ENVD_META_PREFIX);
    char *req = malloc(plen + ml);
    if (!req) {
        *err = -ENOMEM;
        return NULL;
    }
    memcpy(req, path, plen);
    memcpy(req + plen, ENVD_META_PREFIX, ml); /* each record carries its node's metadata */
    uint64_t arg[4] = {plen, depth, ml, 0}, ret[4] = {0};
    int r = lel_vm_call_bulk(h->vm, LEL_OP_FILE_STAT, arg, req, plen + ml, ret, FS_TIMEOUT_MS);
    free(req);
    if (r) {
        *err = r;
        return NULL;
    }
    size_t n = ret[1] < LEL_BULK_SIZE ? ret[1] : LEL_BULK_SIZE;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        *err = -ENOMEM;
        return NULL;
    }
    *len = lel_vm_bulk_read(h->vm, 0, buf, n);
    *full = ret[2] != 0;
    return buf;
}

/* The next record at *off of the answer (name, target and attributes after it); 0 at the end or
 * on a record that does not fit (the guest's lengths are not trusted). */
static int next_rec(const char *buf, size_t len, size_t *off, struct lel_stat_rec *r, const char **name,
                    const char **target, const char **xattrs)
{
    if (*off + sizeof(*r) > len)
        return 0;
    memcpy(r, buf + *off, sizeof(*r));
    size_t body = (sizeof(*r) + r->name_len + r->target_len + 7) & ~(size_t)7;
    if (*off + body > len || r->xattr_len > len - *off - body)
        return 0;
    *name = buf + *off + sizeof(*r);
    *target = *name + r->name_len;
    *xattrs = buf + *off + body;
    *off += body + r->xattr_len;
    return 1;
}

/* Answers the guest's errno for `path` as envd does. */
static void stat_error(lel_call_t *c, int err, const char *path)
{
    if (err == 2)
        lel__envd_error(c, "not_found", "file not found: '%s' does not exist", path);
    else if (err == 20)
        lel__envd_error(c, "invalid_argument", "path '%s' is not a directory", path);
    else if (err == LEL_ST_ENOSYS)
        lel__envd_error(c, "unimplemented", "the sandbox's guest is older than this call (restart it from its template)");
    else if (err == 36)
        lel__envd_error(c, "invalid_argument", "path '%s' is too long", path);
    else if (err < 0)
        lel__envd_error(c, "unavailable", "the sandbox's guest did not answer");
    else
        lel__envd_error(c, "internal", "cannot stat '%s' in the guest (errno %d)", path, err);
}

json_t *lel__envd_entry(const struct lel_envd_host *h, const char *path, int *err)
{
    size_t len = 0, off = 0;
    int full = 0;
    char *buf = guest_stat(h, path, 0, &len, &full, err);
    struct lel_stat_rec r;
    const char *nm, *target, *xattrs;
    struct names names = {0};
    json_t *en = buf && next_rec(buf, len, &off, &r, &nm, &target, &xattrs)
                     ? entry(h, &r, path, strlen(path), target, xattrs, &names)
                     : NULL;
    if (buf && !en)
        *err = -EIO;
    free(buf);
    names_free(&names);
    return en;
}

/* The entry of `path` (the client's name for it), or NULL with the error answered. */
static json_t *stat_entry(const struct lel_envd_host *h, lel_call_t *c, const char *path)
{
    int err = 0;
    json_t *en = lel__envd_entry(h, path, &err);
    if (!en && err == -EIO)
        lel__envd_error(c, "internal", "the guest said nothing of '%s'", path);
    else if (!en)
        stat_error(c, err, path);
    return en;
}

/* Paths in walk order: each directory's entries by name, a directory's own before those under it. */
static int by_path(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "path"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "path"));
    x = x ? x : "";
    y = y ? y : "";
    while (*x && *x == *y)
        x++, y++;
    int cx = *x == '/' ? 1 : (unsigned char)*x + 1, cy = *y == '/' ? 1 : (unsigned char)*y + 1;
    return (!*x ? 0 : cx) - (!*y ? 0 : cy);
}

static void list_dir(const struct lel_envd_host *h, lel_call_t *c, const char *path, unsigned depth)
{
    size_t len = 0, off = 0, plen = strlen(path);
    int full = 0, err = 0;
    char *buf = guest_stat(h, path, depth, &len, &full, &err);
    if (!buf) {
        stat_error(c, err, path);
        return;
    }
    if (full) {
        free(buf);
        lel__envd_error(c, "out_of_range", "the listing is larger than 2 MiB; list with a smaller depth");
        return;
    }
    json_t *list = json_array();
    struct lel_stat_rec r;
    const char *nm, *target, *xattrs;
    struct names names = {0};
    char *full_path = malloc(plen + 1 + 65536 + 1);
    while (list && full_path && next_rec(buf, len, &off, &r, &nm, &target, &xattrs)) {
        size_t at = plen;
        memcpy(full_path, path, plen);
        if (plen > 1)
            full_path[at++] = '/';
        memcpy(full_path + at, nm, r.name_len);
        json_t *en = entry(h, &r, full_path, at + r.name_len, target, xattrs, &names);
        if (en)
            json_array_append_new(list, en);
    }
    free(full_path);
    free(buf);
    names_free(&names);
    size_t n = json_array_size(list);
    json_t **v = malloc((n ? n : 1) * sizeof(*v)), *sorted = json_array();
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(list, i);
    if (v)
        qsort(v, n, sizeof(*v), by_path);
    for (size_t i = 0; v && sorted && i < n; i++)
        json_array_append(sorted, v[i]);
    free(v);
    json_decref(list);
    lel__envd_reply(c, json_pack("{s:o}", "entries", sorted ? sorted : json_array()));
}

static void answer(const struct lel_envd_host *h, struct envd_op *op, int status, const char *err)
{
    lel_call_t *c = op->c;
    const char *p = op->path;
    if (status == 10)
        lel__envd_error(c, "not_found", "path '%s' does not exist", p);
    else if (status == 12)
        lel__envd_error(c, "already_exists", "directory '%s' already exists", p);
    else if (status == 13)
        lel__envd_error(c, "invalid_argument", "path '%s' already exists and is not a directory", p);
    else if (status)
        lel__envd_error(c, "internal", "%s failed: %.300s", op->kind == FS_MOVE ? "move" : "file operation", err);
    if (status)
        return;
    if (op->kind == FS_REMOVE) {
        lel__envd_reply(c, NULL);
        return;
    }
    json_t *en = stat_entry(h, c, op->kind == FS_MOVE ? op->path2 : p);
    if (en)
        lel__envd_reply(c, json_pack("{s:o}", "entry", en));
}

int lel__envd_fs_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res)
{
    struct envd_op *op = NULL;
    for (struct envd_op **pp = &e->ops; *pp; pp = &(*pp)->next)
        if ((*pp)->cmd == id) {
            op = *pp;
            *pp = op->next;
            e->nops--;
            break;
        }
    if (!op)
        return 0;
    uint64_t el = res->err_len < 512 ? res->err_len : 512;
    char err[513];
    err[lel_vm_bulk_read(h->vm, LEL_BULK_HALF, err, el)] = 0;
    if (res->timed_out)
        lel__envd_error(op->c, "deadline_exceeded", "the file operation did not end within %d s", FS_TIMEOUT_MS / 1000);
    else
        answer(h, op, res->exit_status, err);
    lel_call_done(op->c);
    op_free(op);
    return 1;
}

void lel__envd_fs_fail(lel_envd_t *e, const char *why)
{
    while (e->ops) {
        struct envd_op *op = e->ops;
        e->ops = op->next;
        lel__envd_error(op->c, "unavailable", "%s", why);
        lel_call_done(op->c);
        op_free(op);
    }
    e->nops = 0;
}

/* A path field of the request resolved for the user; NULL with the error set. */
static char *path_field(lel_call_t *c, json_t *rq, const char *name, const struct envd_user *u)
{
    json_t *j = json_object_get(rq, name);
    char *p = json_is_string(j) || !j ? lel__envd_path(j ? json_string_value(j) : "", j ? json_string_length(j) : 0, u->home)
                                      : NULL;
    if (!p)
        lel__envd_error(c, "invalid_argument", "invalid '%s': a path without NUL, at most 4095 bytes", name);
    return p;
}

/* Stat and ListDir, answered now. */
static void stat_call(const struct lel_envd_host *h, lel_call_t *c, int kind, json_t *rq,
                      const struct envd_user *u)
{
    char *path = path_field(c, rq, "path", u);
    json_t *jd = json_object_get(rq, "depth");
    long long d = json_is_integer(jd) ? json_integer_value(jd) : 1;
    if (path && kind == FS_LIST) {
        list_dir(h, c, path, d < 1 ? 1 : d > DEPTH_MAX ? DEPTH_MAX : (unsigned)d);
    } else if (path) {
        json_t *en = stat_entry(h, c, path);
        if (en)
            lel__envd_reply(c, json_pack("{s:o}", "entry", en));
    }
    free(path);
}

int lel__envd_fs_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method)
{
    static const char *const names[] = {[FS_STAT] = "Stat", [FS_LIST] = "ListDir", [FS_MKDIR] = "MakeDir",
                                        [FS_MOVE] = "Move", [FS_REMOVE] = "Remove"};
    int kind = 0;
    for (int i = FS_STAT; i <= FS_REMOVE; i++)
        if (!strcmp(method, names[i]))
            kind = i;
    if (!kind)
        return lel__envd_watch_call(e, h, c, method);
    struct envd_user u;
    json_t *rq = lel__envd_request(c, 0);
    if (!rq || lel__envd_user(c, NULL, 1, &u) < 0) {
        json_decref(rq);
        return 0;
    }
    lel__envd_home(e, h, &u);
    if (kind == FS_STAT || kind == FS_LIST) {
        stat_call(h, c, kind, rq, &u);
        json_decref(rq);
        return 0;
    }
    struct envd_op *op = calloc(1, sizeof(*op));
    int r = -1;
    if (op && (op->path = path_field(c, rq, kind == FS_MOVE ? "source" : "path", &u)) &&
        (kind != FS_MOVE || (op->path2 = path_field(c, rq, "destination", &u)))) {
        const char *argv[] = {"/bin/sh", "-c", scripts[kind], "sh", op->path, op->path2, NULL};
        static const char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        r = lel__envd_cmd(h, argv, env, "/", FS_TIMEOUT_MS, u.id ? LEL_VM_CMD_AS(u.id) : 0, &op->cmd);
        if (r)
            lel__envd_error(c, r == 11 ? "resource_exhausted" : "unavailable", "the file operation could not start (%d)", r);
    } else if (!op) {
        lel__envd_error(c, "resource_exhausted", "out of memory");
    }
    json_decref(rq);
    if (r) {
        if (op)
            op_free(op);
        return 0;
    }
    op->kind = kind;
    op->c = c;
    op->next = e->ops;
    e->ops = op;
    e->nops++;
    return 1;
}
