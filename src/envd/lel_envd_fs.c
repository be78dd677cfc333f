/* filesystem.Filesystem on the host: each call runs a small busybox script in the guest (the
 * guest's file calls read and write files; these need lstat, mkdir -p, mv, rm -r and a walk)
 * and answers from its output when it ends. A script prints one line per entry:
 *   E <mode hex> <size> <uid> <gid> <owner> <group> <mtime s> <path>   (lstat)
 *   S <mode hex, 0 when it leads nowhere> <path>                        (a symlink's target)
 *   L <target>                                                          (after S: the resolved target)
 * and exits 10 (no such path), 11 (not a directory), 12 (a directory already) or 13 (something
 * else is there). Names with a newline in them are not listed correctly (a gap of this form).
 * Entries are EntryInfo as envd fills them: a symlink has its target's type and permissions and
 * symlinkTarget resolved; one that leads nowhere has no type (files.list drops it). */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FS_TIMEOUT_MS 30000

enum { FS_STAT = 1, FS_LIST, FS_MKDIR, FS_MOVE, FS_REMOVE };

#define ENTRY "stat -c 'E %f %s %u %g %U %G %Y %n' -- "
#define LINK_FN                                                                                                        \
    "s() { if t=$(readlink -f -- \"$1\") && [ -e \"$1\" ]; then printf 'S %s %s\\nL %s\\n' \"$(stat -L -c %f -- "      \
    "\"$1\")\" \"$1\" \"$t\"; else printf 'S 0 %s\\n' \"$1\"; fi; }\n"

static const char *const scripts[] = {
    [FS_STAT] = LINK_FN "[ -e \"$1\" ] || [ -L \"$1\" ] || exit 10\n" ENTRY "\"$1\" || exit 1\n"
                        "if [ -L \"$1\" ]; then s \"$1\"; fi\n",
    [FS_LIST] = LINK_FN "[ -e \"$1\" ] || exit 10\n[ -d \"$1\" ] || exit 11\ncd -- \"$1\" || exit 1\n"
                        "find . -mindepth 1 -maxdepth \"$2\" -exec " ENTRY "{} + || exit 1\n"
                        "find . -mindepth 1 -maxdepth \"$2\" -type l | while IFS= read -r f; do s \"$f\"; done\n",
    [FS_MKDIR] = "[ -d \"$1\" ] && exit 12\n{ [ -e \"$1\" ] || [ -L \"$1\" ]; } && exit 13\n"
                 "mkdir -p -- \"$1\" || exit 1\n" ENTRY "\"$1\"\n",
    [FS_MOVE] = LINK_FN "[ -e \"$1\" ] || [ -L \"$1\" ] || exit 10\nmkdir -p -- \"$(dirname -- \"$2\")\" || exit 1\n"
                        "mv -fT -- \"$1\" \"$2\" || exit 1\n" ENTRY "\"$2\" || exit 1\n"
                        "if [ -L \"$2\" ]; then s \"$2\"; fi\n",
    [FS_REMOVE] = "rm -rf -- \"$1\"\n",
};

static void op_free(struct envd_op *op)
{
    free(op->path);
    free(op->path2);
    free(op);
}

/* The permissions as Go's FileMode.String() writes them ("-rw-r--r--", "drwxr-xr-x", "L..."). */
static void perm_string(unsigned mode, int is_link, char out[11])
{
    unsigned fmt = mode & 0170000;
    out[0] = is_link ? 'L' : fmt == 0040000 ? 'd' : fmt == 0010000 ? 'p' : fmt == 0140000 ? 'S'
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

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : s && s == p ? "/" : s ? s : p;
}

/* An EntryInfo from an E line (its fields; the path as the client names it). */
static json_t *entry(char *line, const char *path)
{
    unsigned mode = 0;
    unsigned long long size = 0;
    long long mtime = 0;
    char owner[64], group[64];
    if (sscanf(line, "%x %llu %*u %*u %63s %63s %lld", &mode, &size, owner, group, &mtime) != 5)
        return NULL;
    char perms[11], sz[24], ts[32];
    perm_string(mode, (mode & 0170000) == 0120000, perms);
    snprintf(sz, sizeof(sz), "%llu", size);
    time_t t = (time_t)mtime;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *e = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "name", base_name(path), "path", path, "size", sz,
                          "mode", (int)(mode & 07777), "permissions", perms, "owner", owner, "group", group,
                          "modifiedTime", ts);
    const char *type = file_type(mode);
    if (e && type)
        json_object_set_new(e, "type", json_string(type));
    return e;
}

/* The client's name for a path the script printed: a listing's "./x" under `root`, or `single`. */
static char *full_path(const char *root, const char *single, const char *p)
{
    char *full = NULL;
    if (single)
        return strdup(single);
    if (asprintf(&full, "%s%s%s", root, strcmp(root, "/") ? "/" : "", p[0] == '.' && p[1] == '/' ? p + 2 : p) < 0)
        return NULL;
    return full;
}

/* A symlink's S line (and the L line after it, taken here) amends the entry of its path. */
static char *amend_link(json_t *list, char *rest, char *nl, const char *root, const char *single)
{
    char *sp = strchr(rest, ' '), *full = sp ? full_path(root, single, sp + 1) : NULL;
    unsigned tmode = (unsigned)strtoul(rest, NULL, 16);
    json_t *en = NULL;
    for (size_t i = 0; full && i < json_array_size(list); i++) {
        const char *ep = json_string_value(json_object_get(json_array_get(list, i), "path"));
        if (ep && !strcmp(ep, full))
            en = json_array_get(list, i);
    }
    free(full);
    if (en) { /* the target's type (none when it leads nowhere) and mode; `permissions` stay the link's */
        json_object_del(en, "type");
        if (tmode && file_type(tmode))
            json_object_set_new(en, "type", json_string(file_type(tmode)));
        if (tmode)
            json_object_set_new(en, "mode", json_integer(tmode & 07777));
    }
    if (!nl || nl[1] != 'L' || nl[2] != ' ')
        return nl;
    char *line = nl + 1, *next = strchr(line, '\n');
    if (next)
        *next = 0;
    if (en)
        json_object_set_new(en, "symlinkTarget", json_string(line + 2));
    return next;
}

/* Parses a script's output into entries. `root`: the client's path that a listing's "./"
 * stands for; `single`: the one entry's path (stat, mkdir, move). */
static json_t *entries(char *out, const char *root, const char *single)
{
    json_t *list = json_array();
    for (char *line = out, *nl; list && *line; line = nl ? nl + 1 : line + strlen(line)) {
        if ((nl = strchr(line, '\n')))
            *nl = 0;
        char *rest = line + 2;
        if (line[0] == 'E') { /* the path is the 8th field */
            char *p = rest;
            for (int i = 0; i < 7 && p; i++)
                p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
            if (!p)
                continue;
            p[-1] = 0;
            char *full = full_path(root, single, p);
            json_t *en = full ? entry(rest, full) : NULL;
            free(full);
            if (en)
                json_array_append_new(list, en);
        } else if (line[0] == 'S') {
            nl = amend_link(list, rest, nl, root, single);
        }
    }
    return list;
}

static int by_path(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "path"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "path"));
    return strcmp(x ? x : "", y ? y : "");
}

static void answer(struct envd_op *op, char *out, int status, const char *err)
{
    lel_call_t *c = op->c;
    const char *p = op->path;
    if (status == 10)
        lel__envd_error(c, "not_found", "path '%s' does not exist", p);
    else if (status == 11)
        lel__envd_error(c, "invalid_argument", "path '%s' is not a directory", p);
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
    json_t *list = entries(out, p, op->kind == FS_LIST ? NULL : op->kind == FS_MOVE ? op->path2 : p);
    if (op->kind == FS_LIST) {
        size_t n = json_array_size(list), k = 0;
        json_t **v = malloc((n ? n : 1) * sizeof(*v)), *sorted = json_array();
        for (size_t i = 0; v && i < n; i++)
            v[k++] = json_array_get(list, i);
        if (v)
            qsort(v, k, sizeof(*v), by_path);
        for (size_t i = 0; v && i < k; i++)
            json_array_append(sorted, v[i]);
        free(v);
        lel__envd_reply(c, json_pack("{s:o}", "entries", sorted));
    } else if (json_array_size(list)) {
        lel__envd_reply(c, json_pack("{s:O}", "entry", json_array_get(list, 0)));
    } else {
        lel__envd_error(c, "internal", "the file operation said nothing of '%s'", p);
    }
    json_decref(list);
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
    uint64_t ol = res->out_len < LEL_BULK_HALF ? res->out_len : LEL_BULK_HALF;
    uint64_t el = res->err_len < 512 ? res->err_len : 512;
    char *out = malloc(ol + 1), err[513];
    size_t got = out ? lel_vm_bulk_read(h->vm, 0, out, ol) : 0;
    err[lel_vm_bulk_read(h->vm, LEL_BULK_HALF, err, el)] = 0;
    if (out)
        out[got] = 0;
    if (!out)
        lel__envd_error(op->c, "resource_exhausted", "out of memory");
    else if (res->truncated && op->kind == FS_LIST)
        lel__envd_error(op->c, "out_of_range", "the listing is larger than 1 MiB; list with a smaller depth");
    else if (res->timed_out)
        lel__envd_error(op->c, "deadline_exceeded", "the file operation did not end within %d s", FS_TIMEOUT_MS / 1000);
    else
        answer(op, out, res->exit_status, err);
    free(out);
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

int lel__envd_fs_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method)
{
    static const char *const names[] = {[FS_STAT] = "Stat", [FS_LIST] = "ListDir", [FS_MKDIR] = "MakeDir",
                                        [FS_MOVE] = "Move", [FS_REMOVE] = "Remove"};
    int kind = 0;
    for (int i = FS_STAT; i <= FS_REMOVE; i++)
        if (!strcmp(method, names[i]))
            kind = i;
    if (!kind) {
        lel__envd_error(c, "unimplemented", "filesystem.Filesystem/%.32s is not supported yet", method);
        return 0;
    }
    struct envd_user u;
    json_t *rq = lel__envd_request(c, 0);
    if (!rq || lel__envd_user(c, NULL, 1, &u) < 0) {
        json_decref(rq);
        return 0;
    }
    struct envd_op *op = calloc(1, sizeof(*op));
    char depth[16];
    json_t *jd = json_object_get(rq, "depth");
    long long d = json_is_integer(jd) ? json_integer_value(jd) : 1;
    snprintf(depth, sizeof(depth), "%lld", d < 1 ? 1 : d > 64 ? 64 : d);
    int r = -1;
    if (op && (op->path = path_field(c, rq, kind == FS_MOVE ? "source" : "path", &u)) &&
        (kind != FS_MOVE || (op->path2 = path_field(c, rq, "destination", &u)))) {
        const char *argv[] = {"/bin/sh", "-c", scripts[kind], "sh", op->path, kind == FS_LIST ? depth : op->path2, NULL};
        if (kind != FS_LIST && kind != FS_MOVE)
            argv[5] = NULL;
        lel__envd_home(e, h, &u);
        static const char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        r = lel__envd_cmd(h, argv, env, "/", FS_TIMEOUT_MS, 0, &op->cmd);
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
