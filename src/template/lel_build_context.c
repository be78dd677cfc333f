/* The build context of a template: a tar (any compression) that `copy` steps take files from,
 * uploaded with PUT /templates/{id}/context after POST /templates and before the build
 * needs it. A template with copy steps waits (`waiting`, and its log says so) until its context
 * came; the upload then starts the build. The body streams to
 * <data_dir>/templates/<id>.context.tmp, is checked to be a readable tar, and is renamed to
 * <id>.context; a second upload while the build waits replaces it, one after the build started
 * is refused (409).
 *
 * A copy step picks the context's entries at `src` (a file, or a directory and everything in
 * it), places them at `dest` as Docker's COPY does (a file to `dest`, or into `dest` when it ends
 * in '/'; a directory's contents into `dest`), writes them as one tar into the build VM and
 * unpacks it there with busybox. What one step copies is bounded by COPY_MAX. */
#include "lel_template_int.h"

#include "../guest/lel_guest_abi.h"
#include "../vmm/lel_vmm.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define COPY_MAX (256u << 20)
#define GUEST_COPY GUEST_COPY_TAR

struct membuf {
    char *p;
    size_t n, cap;
};

struct lel_ctx_upload {
    uint32_t id;
    int starts_build; /* the context: its end starts the waiting build */
    lel_call_t *c;
    int fd;
    char tmp[4300], path[4200];
    char *buf;
    struct lel_ctx_upload *next;
};

void lel__template_context_path(struct lel_template *t, char *buf, size_t n)
{
    snprintf(buf, n, "%s/templates/%s.context", t->srv->cfg.data_dir, t->id);
}

int lel__template_needs_context(json_t *def)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(def, "steps"), i, st)
        if (!strcmp(json_string_value(json_object_get(st, "type")) ?: "", "copy") && !json_object_get(st, "filesHash"))
            return 1; /* (E2B's copy steps bring their own files) */
    return 0;
}

static void upload_end(struct lel_template *t, struct lel_ctx_upload *u, int ok_status)
{
    struct lel_ctx_upload **pp = &t->ctx;
    while (*pp && *pp != u)
        pp = &(*pp)->next;
    if (*pp)
        *pp = u->next;
    if (u->fd >= 0)
        close(u->fd);
    if (ok_status != 204)
        unlink(u->tmp);
    lel_call_done(u->c);
    free(u->buf);
    free(u);
}

/* A readable tar: every header and all data read through. 0, or -1 with the reason. */
static int check_tar(const char *path, char *why, size_t n)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int r, entries = 0;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        snprintf(why, n, "%s", archive_error_string(a) ?: "unreadable");
        archive_read_free(a);
        return -1;
    }
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        entries++;
        if (archive_read_data_skip(a) != ARCHIVE_OK) {
            r = ARCHIVE_FATAL;
            break;
        }
    }
    if (r != ARCHIVE_EOF || !entries)
        snprintf(why, n, "%s", !entries && r == ARCHIVE_EOF ? "the archive is empty" : archive_error_string(a) ?: "corrupt");
    archive_read_free(a);
    return r == ARCHIVE_EOF && entries ? 0 : -1;
}

void lel__template_context_step(struct lel_template *t, uint32_t id)
{
    struct lel_ctx_upload *u = t->ctx;
    char why[300];
    while (u && u->id != id)
        u = u->next;
    while (u) {
        ssize_t r = lel_call_body_read(u->c, u->buf, CHUNK);
        if (r == -EAGAIN)
            return;
        if (r < 0) {
            if (r == -E2BIG)
                lel_call_error(u->c, 413, "build context larger than images.max_bytes (%zu bytes)", t->srv->cfg.image_max_bytes);
            else
                lel_call_error(u->c, 400, "the upload ended before its body was complete");
            upload_end(t, u, 400);
            return;
        }
        if (r == 0)
            break;
        if (write(u->fd, u->buf, (size_t)r) != r) {
            lel_call_error(u->c, errno == ENOSPC ? 507 : 500, "cannot store the build context: %s", strerror(errno));
            upload_end(t, u, 500);
            return;
        }
    }
    if (!u)
        return;
    close(u->fd);
    u->fd = -1;
    if (check_tar(u->tmp, why, sizeof(why)) < 0) {
        lel_call_error(u->c, 400, "the build context is not a readable tar archive: %s", why);
        upload_end(t, u, 400);
        return;
    }
    if (rename(u->tmp, u->path) < 0) {
        lel_call_error(u->c, 500, "cannot store the build context: %s", strerror(errno));
        upload_end(t, u, 500);
        return;
    }
    lel_call_reply(u->c, 204, NULL);
    int starts = u->starts_build;
    upload_end(t, u, 204);
    if (!starts || !t->srv->use_vm) /* E2B's files wait for their steps; API-only: nothing is built */
        return;
    lel_msg_t *m = lel_msg_new(LEL_MSG_BUILD, 0, strdup(json_string_value(json_object_get(t->rec, "buildID")) ?: ""));
    if (m && (!m->ptr || lel_actor_send(t->actor, m) < 0)) {
        free(m->ptr);
        lel_msg_free(m);
    }
}

void lel__template_context_abandon(struct lel_template *t)
{
    while (t->ctx) {
        lel_call_error(t->ctx->c, 503, "the template is gone");
        upload_end(t, t->ctx, 503);
    }
}

/* An upload of a tar to `path` (through path.tmp), on the template's actor; 1 when the call
 * is kept (streaming), 0 when answered. */
static int upload_start(struct lel_template *t, lel_call_t *c, const char *path, int starts_build)
{
    const char *status = json_string_value(json_object_get(t->rec, "buildStatus"));
    for (struct lel_ctx_upload *o = t->ctx; o; o = o->next)
        if (!strcmp(o->path, path)) {
            lel_call_error(c, 409, "an upload of the same %s is in progress", starts_build ? "build context" : "files");
            return 0;
        }
    if (t->build || !status || strcmp(status, "waiting")) {
        lel_call_error(c, 409, "the template's build has started (status %s): its files must come before", status ?: "?");
        return 0;
    }
    struct lel_ctx_upload *u = calloc(1, sizeof(*u));
    if (!u || !(u->buf = malloc(CHUNK))) {
        free(u);
        lel_call_error(c, 503, "out of memory");
        return 0;
    }
    snprintf(u->path, sizeof(u->path), "%s", path);
    snprintf(u->tmp, sizeof(u->tmp), "%s.tmp", u->path);
    u->c = c;
    u->starts_build = starts_build;
    u->id = ++t->ctx_seq;
    if ((u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        lel_call_error(c, 500, "cannot store the upload: %s", strerror(errno));
        free(u->buf);
        free(u);
        return 0;
    }
    u->next = t->ctx;
    t->ctx = u;
    if (c->body_in)
        lel_call_body_notify(c, t->actor, LEL_MSG_XFER, u->id);
    else
        lel__template_context_step(t, u->id);
    return 1;
}

/* PUT /templates/{id}/context, on the template's actor; 1 when the call is kept (streaming). */
int lel__template_context_put(struct lel_template *t, lel_call_t *c)
{
    char dir[4200], path[4200];
    snprintf(dir, sizeof(dir), "%s/templates", t->srv->cfg.data_dir);
    mkdir(dir, 0700);
    lel__template_context_path(t, path, sizeof(path));
    return upload_start(t, c, path, 1);
}

int lel__template_files_put(struct lel_template *t, lel_call_t *c, const char *path)
{
    return upload_start(t, c, path, 0);
}

/* ---- the copy step ---- */

static la_ssize_t mem_write(struct archive *a, void *ud, const void *data, size_t n)
{
    struct membuf *b = ud;
    if (b->n + n > b->cap) {
        archive_set_error(a, EFBIG, "more than %u MiB", COPY_MAX >> 20);
        return -1;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return (la_ssize_t)n;
}

static void clean(const char *in, char *out, size_t n)
{
    while (in[0] == '.' && in[1] == '/')
        in += 2;
    while (in[0] == '/')
        in++;
    snprintf(out, n, "%s", in);
    size_t l = strlen(out);
    while (l && out[l - 1] == '/')
        out[--l] = 0;
}

/* Where the context's entry `name` goes for src -> dest (Docker's COPY), relative to the root,
 * into out; 0 when the entry is not under src. */
static int place(const char *name, const char *src, const char *dest, int src_is_dir, char *out, size_t n)
{
    size_t sl = strlen(src);
    char d[4200];
    if (sl && (strncmp(name, src, sl) || (name[sl] && name[sl] != '/')))
        return 0;
    const char *rest = sl ? name + sl + (name[sl] == '/') : name;
    int into = dest[strlen(dest) - 1] == '/';
    clean(dest, d, sizeof(d));
    if (*rest)
        snprintf(out, n, "%s%s%s", d, *d ? "/" : "", rest);
    else if (src_is_dir || !sl)
        snprintf(out, n, "%s", d);
    else if (into) {
        const char *base = strrchr(src, '/');
        snprintf(out, n, "%s%s%s", d, *d ? "/" : "", base ? base + 1 : src);
    } else
        snprintf(out, n, "%s", d);
    return out[0] != 0;
}

/* A glob source (E2B's copy takes them, as Docker's COPY does): the entry `name` is placed when
 * its first components match the pattern, as a matched file into `dest` or a matched
 * directory's contents into it. 0 when it is not matched. */
static int place_glob(const char *name, const char *pat, const char *dest, int is_dir, char *out, size_t n)
{
    size_t k = 1, l = 0;
    char head[4200], d[4200];
    for (const char *p = pat; *p; p++)
        k += *p == '/';
    while (name[l] && k) /* the entry's first k components */
        if (name[l++] == '/' && !--k)
            l--;
    snprintf(head, sizeof(head), "%.*s", (int)l, name);
    if (k > 1 || fnmatch(pat, head, FNM_PATHNAME | FNM_PERIOD) != 0)
        return 0;
    clean(dest, d, sizeof(d));
    const char *rest = name[l] ? name + l + 1 : NULL, *base = strrchr(head, '/');
    if (!rest && is_dir) /* a matched directory: its contents go into dest, not itself */
        return 0;
    if (rest)
        snprintf(out, n, "%s%s%s", d, *d ? "/" : "", rest);
    else
        snprintf(out, n, "%s%s%s", d, *d ? "/" : "", base ? base + 1 : head);
    return out[0] != 0;
}

/* Builds the step's tar in b; the number of entries, or -1 (err). mode >= 0: every file and
 * directory copied gets it. */
static int select_entries(const char *ctx, const char *src, const char *dest, int mode, void *b, char *err, size_t errlen)
{
    struct archive *in = archive_read_new(), *out = archive_write_new();
    struct archive_entry *e;
    char name[4200], to[8400], srcc[4200];
    int r, n = 0, src_is_dir = 0, failed = 0;
    clean(src, srcc, sizeof(srcc));
    if (!strcmp(srcc, "."))
        srcc[0] = 0; /* the whole context */
    int glob = strpbrk(srcc, "*?[") != NULL;
    archive_read_support_filter_all(in);
    archive_read_support_format_tar(in);
    archive_read_support_format_gnutar(in);
    archive_write_set_format_pax_restricted(out);
    archive_write_set_bytes_in_last_block(out, 1);
    archive_write_open(out, b, NULL, mem_write, NULL);
    if (archive_read_open_filename(in, ctx, 1 << 16) != ARCHIVE_OK) {
        snprintf(err, errlen, "the build context cannot be read");
        failed = 1;
    }
    while (!failed && ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
        clean(archive_entry_pathname(e) ?: "", name, sizeof(name));
        if (!strcmp(name, srcc) && archive_entry_filetype(e) == AE_IFDIR)
            src_is_dir = 1;
        to[0] = 0;
        if (strstr(name, "..") ||
            !(glob ? place_glob(name, srcc, dest, archive_entry_filetype(e) == AE_IFDIR, to, sizeof(to))
                   : place(name, srcc, dest, src_is_dir, to, sizeof(to))) ||
            !to[0])
            continue;
        if (mode >= 0 && archive_entry_filetype(e) != AE_IFLNK)
            archive_entry_set_perm(e, (mode_t)mode);
        archive_entry_set_pathname(e, to);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_uname(e, NULL);
        archive_entry_set_gname(e, NULL);
        if (archive_entry_hardlink(e)) /* a link inside the copied tree would need its target moved too */
            archive_entry_set_hardlink(e, NULL);
        if (archive_write_header(out, e) < ARCHIVE_WARN) {
            snprintf(err, errlen, "copy: %s", archive_error_string(out) ?: "cannot write");
            failed = 1;
            break;
        }
        char buf[1 << 16];
        for (la_ssize_t k; (k = archive_read_data(in, buf, sizeof(buf))) > 0;)
            if (archive_write_data(out, buf, (size_t)k) != k) {
                snprintf(err, errlen, "copy: what '%s' holds is larger than %u MiB", src, COPY_MAX >> 20);
                failed = 1;
                break;
            }
        n++;
    }
    if (!failed && archive_write_close(out) != ARCHIVE_OK) {
        snprintf(err, errlen, "copy: what '%s' holds is larger than %u MiB", src, COPY_MAX >> 20);
        failed = 1;
    }
    archive_write_free(out);
    archive_read_free(in);
    if (!failed && !n)
        snprintf(err, errlen, "copy: '%s' is not in the build context", src);
    return failed || !n ? -1 : n;
}

int lel__template_copy_step(struct lel_template *t, struct lel_vm *vm, size_t i, json_t *st, char *what, size_t whatlen,
                            char *err, size_t errlen)
{
    const char *src = json_string_value(json_object_get(st, "src")), *dest = json_string_value(json_object_get(st, "dest"));
    const char *hash = json_string_value(json_object_get(st, "filesHash"));
    char ctx[4200];
    int mode = -1;
    struct membuf b = {NULL, sizeof(GUEST_COPY), sizeof(GUEST_COPY) + COPY_MAX};
    snprintf(what, whatlen, "step %zu (copy): %.80s -> %.80s", i + 1, src, dest);
    if (hash)
        lel__template_files_path(t, hash, ctx, sizeof(ctx));
    else
        lel__template_context_path(t, ctx, sizeof(ctx));
    if (json_object_get(st, "mode") && lel__template_mode(json_object_get(st, "mode"), &mode) < 0)
        mode = -1;
    if (!(b.p = malloc(b.cap))) {
        snprintf(err, errlen, "copy: out of memory");
        return -1;
    }
    memcpy(b.p, GUEST_COPY, sizeof(GUEST_COPY));
    if (select_entries(ctx, src, dest, mode, &b, err, errlen) < 0) {
        free(b.p);
        return -1;
    }
    /* the tar into the guest, a chunk a request (the first and the last flagged) */
    uint64_t tmp = 0, ret[4];
    size_t len = b.n - sizeof(GUEST_COPY), plen = sizeof(GUEST_COPY);
    char *chunk = malloc(plen + CHUNK);
    int r = chunk ? 0 : -ENOMEM;
    if (chunk)
        memcpy(chunk, GUEST_COPY, plen);
    for (size_t done = 0; r == 0 && done < len;) {
        size_t k = len - done < CHUNK ? len - done : CHUNK;
        uint64_t flags = (done == 0 ? LEL_UP_FIRST : 0) | (done + k == len ? LEL_UP_LAST : 0);
        uint64_t arg[4] = {plen, done, k, flags | tmp << 32};
        memcpy(chunk + plen, b.p + plen + done, k);
        r = lel_vm_call_bulk(vm, LEL_OP_FILE_UPLOAD, arg, chunk, plen + k, ret, 30000);
        if (r == 0 && done == 0)
            tmp = ret[0];
        done += k;
    }
    free(chunk);
    free(b.p);
    if (r != 0) {
        snprintf(err, errlen, "copy: cannot write into the build VM (%d)", r);
        return -1;
    }
    return 0;
}
