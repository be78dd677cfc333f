/* GET and POST /files as envd answers them, over the guest's file calls. A download is sent a
 * guest read (up to 2 MiB) at a time as the client takes it. An upload is multipart (each
 * part named by its full destination path, or the `path` query) or application/octet-stream
 * (optionally gzip); each file goes to the guest in 1 MiB chunks as the body arrives, written
 * under a temporary name and renamed over the path at its end, so a file is replaced whole or
 * not at all. Parents are made. X-Metadata-<key> headers become the file's user.e2b.<key>
 * attributes (every upload replaces those, with none when no header came; set on the temporary
 * before the rename, so the file never appears without them); the file's other attributes are
 * kept, as envd's write in place keeps them. Errors answer as envd's: {"code": <status>, "message"}. */
#include "lel_envd_int.h"

#include "../guest/lel_guest_abi.h"
#include "lel_multipart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define READ_PIECE (64u << 10) /* body bytes taken at a time */
#define PATH_CAP 4096

struct envd_upload {
    uint32_t id;
    lel_call_t *c;
    struct envd_user u;
    char *qpath;          /* the `path` query, resolved; NULL when absent */
    int octet;            /* application/octet-stream: one file, qpath */
    int gzip;
    z_stream z;
    int in_part, skip;    /* a part is open; it is not a "file" part (ignored) */
    char *buf;            /* path, NUL, then up to ENVD_CHUNK bytes of data */
    size_t plen, fill;
    uint64_t off;
    int started;
    uint32_t tmp_id;
    json_t *results;
    char *tmp;            /* READ_PIECE + inflate output */
    json_t *md;           /* the X-Metadata-* headers, checked, for the answer; NULL: none came */
    char *meta;           /* ...as struct lel_xattr_rec records named ENVD_META_PREFIX<key> */
    size_t meta_len;
    struct lel_mp mp;
    const struct lel_envd_host *h; /* during a step only */
    struct envd_upload *next;
};

/* The guest's errno for a file call as envd's status and message. */
static void file_error(lel_call_t *c, int r, const char *path)
{
    if (r == 2 || r == 20)
        lel_call_error(c, r == 2 && c->route == R_ENVD_FILES_GET ? 404 : 400, "path '%s' does not exist", path);
    else if (r == LEL_ST_EISDIR)
        lel_call_error(c, 400, "path '%s' is a directory", path);
    else if (r == 12 || r == 28)
        lel_call_error(c, 507, "not enough space in the sandbox to write '%s'", path);
    else if (r == 36 || r == LEL_ST_EINVAL)
        lel_call_error(c, 400, "invalid path '%s'", path);
    else if (r < 0)
        lel_call_error(c, 502, "the sandbox's guest did not answer");
    else
        lel_call_error(c, 500, "cannot access '%s' in the guest (errno %d)", path, r);
}

static char *query_path(lel_call_t *c, const struct envd_user *u, int required)
{
    size_t len = 0;
    char *q = lel_call_query_len(c, "path", &len), *p = NULL;
    if (!q && required)
        lel_call_error(c, 400, "the path query is required");
    else if (q && !(p = lel__envd_path(q, len, u->home)))
        lel_call_error(c, 400, "invalid path: a path without NUL, at most 4095 bytes");
    free(q);
    return p;
}

static int query_user(lel_call_t *c, struct envd_user *u)
{
    char *name = lel_call_query(c, "username");
    int r = lel__envd_user(c, name, 0, u);
    free(name);
    return r;
}

/* ---- download ---- */

/* Reads the chunk of `path` at `off`: its bytes (malloc'd) and length, or -1 with the error set
 * (kind 2: a directory). */
static ssize_t read_chunk(const struct lel_envd_host *h, lel_call_t *c, const char *path, uint64_t off, char **out,
                          uint64_t *total)
{
    size_t plen = strlen(path) + 1;
    uint64_t arg[4] = {plen, off, LEL_BULK_SIZE, 0}, ret[4] = {0};
    int r = lel_vm_call_bulk(h->vm, LEL_OP_FILE_READ, arg, path, plen, ret, 30000);
    if (r || ret[0] != 1) {
        if (c)
            file_error(c, r ? r : LEL_ST_EISDIR, path);
        return -1;
    }
    uint64_t n = ret[1] < LEL_BULK_SIZE ? ret[1] : LEL_BULK_SIZE;
    *total = ret[2];
    if (!(*out = malloc(n ? n : 1))) {
        if (c)
            lel_call_error(c, 503, "out of memory");
        return -1;
    }
    return (ssize_t)lel_vm_bulk_read(h->vm, 0, *out, n);
}

static void download_more(lel_envd_t *e, const struct lel_envd_host *h, struct envd_stream *st)
{
    char *data = NULL;
    uint64_t total = 0;
    ssize_t n = h->vm && !atomic_load(&st->c->cancelled) ? read_chunk(h, NULL, st->path, st->off, &data, &total) : -1;
    if (n > 0 && (uint64_t)n > st->total - st->off)
        n = (ssize_t)(st->total - st->off); /* it grew: the length promised is what is sent */
    if (n > 0 && lel__envd_stream_raw(st, data, (size_t)n) == 0)
        st->off += (uint64_t)n;
    else
        st->off = 0; /* gone, shrunk or changed: cut short (a broken answer, never a wrong one) */
    free(data);
    st->ended = st->off == 0 || st->off >= st->total;
    if (st->off == 0)
        free(st->queue), st->queue = NULL, st->qlen = st->qcap = 0;
    lel__envd_stream_flush(e, st);
}

int lel__envd_files_get(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c)
{
    struct envd_user u;
    char *path = query_user(c, &u) == 0 ? query_path(c, &u, 0) : NULL, *data = NULL;
    if (!path && !c->status)
        path = strdup(u.home);
    if (!path)
        return 0;
    uint64_t total = 0;
    ssize_t n = read_chunk(h, c, path, 0, &data, &total);
    if (n < 0) {
        free(path);
        return 0;
    }
    c->raw = data;
    c->raw_len = (size_t)n;
    c->raw_type = "application/octet-stream";
    c->status = 200;
    if ((uint64_t)n >= total) {
        c->raw_len = (size_t)total;
        free(path);
        return 0;
    }
    struct envd_stream *st = lel__envd_stream_open(e, h, c, NULL, "application/octet-stream", total);
    if (st) {
        st->path = path;
        st->off = (uint64_t)n;
        st->more = download_more;
    } else {
        free(path);
    }
    return 0;
}

/* ---- upload ---- */

static void upload_free(lel_envd_t *e, struct envd_upload *up)
{
    for (struct envd_upload **p = &e->uploads; *p; p = &(*p)->next)
        if (*p == up) {
            *p = up->next;
            break;
        }
    if (up->gzip)
        inflateEnd(&up->z);
    json_decref(up->results);
    json_decref(up->md);
    free(up->meta);
    free(up->qpath);
    free(up->buf);
    free(up->tmp);
    free(up);
}

/* Sends the gathered chunk; 0, the guest's errno (it removed the temporary), or -errno. */
static int piece(struct envd_upload *up, int last)
{
    uint64_t flags = (!up->started ? LEL_UP_FIRST : 0) | (last ? LEL_UP_LAST | LEL_UP_XATTRS | LEL_UP_XATTRS_NO_META : 0),
             ret[4] = {0};
    if (!up->started && up->u.id) /* the file and the parents it makes are the user's, as on envd */
        flags |= LEL_UP_OWNED | (uint64_t)(up->u.id & 0xffff) << 16;
    uint64_t arg[4] = {up->plen, up->off, up->fill, flags | (uint64_t)up->tmp_id << 32};
    int r = lel_vm_call_bulk(up->h->vm, LEL_OP_FILE_UPLOAD, arg, up->buf, up->plen + up->fill, ret, 30000);
    if (r == 0 && !up->started)
        up->tmp_id = (uint32_t)ret[0];
    up->started |= r == 0;
    up->off += r == 0 ? up->fill : 0;
    up->fill = 0;
    return r;
}

/* Gives up the open file (the client went, the body was broken): its temporary goes. */
static void abort_part(struct envd_upload *up)
{
    if (!up->in_part || !up->started || !up->h->vm)
        return;
    uint64_t arg[4] = {up->plen, 0, 0, LEL_UP_ABORT | (uint64_t)up->tmp_id << 32}, ret[4];
    lel_vm_call_bulk(up->h->vm, LEL_OP_FILE_UPLOAD, arg, up->buf, up->plen, ret, 5000);
}

/* ---- metadata: user.e2b.<key> attributes, given to the temporary before it takes the file's
 * place, so the file appears with them (LEL_OP_FILE_XATTRS) ---- */

static int printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return 0;
    return 1;
}

/* Checks the headers as envd does (printable ASCII keys and values, a key of at most 255 bytes
 * with its prefix, ENVD_META_MAX bytes in all) and turns them into records: 0, or -1 answered. */
static int metadata_take(struct envd_upload *up, lel_call_t *c)
{
    const char *key;
    json_t *v;
    size_t pl = strlen(ENVD_META_PREFIX), total = 0, len = 0;
    json_object_foreach(c->xmetadata, key, v)
    {
        size_t kl = strlen(key), vl = json_string_length(v);
        if (kl + pl > 255 || !printable(key, kl) || !printable(json_string_value(v), vl)) {
            lel_call_error(c, 400, "invalid metadata: key '%.64s' or its value is not printable ASCII, or the key is longer than %zu bytes",
                           key, 255 - pl);
            return -1;
        }
        total += pl + kl + vl;
        len += (sizeof(struct lel_xattr_rec) + pl + kl + vl + 7) & ~(size_t)7;
    }
    if (total > ENVD_META_MAX) {
        lel_call_error(c, 400, "invalid metadata: %zu bytes in all, more than %d", total, ENVD_META_MAX);
        return -1;
    }
    if (!total)
        return 0;
    if (!(up->meta = calloc(1, len))) {
        lel_call_error(c, 503, "out of memory");
        return -1;
    }
    json_object_foreach(c->xmetadata, key, v)
    {
        size_t kl = strlen(key), vl = json_string_length(v);
        struct lel_xattr_rec xr = {(uint16_t)(pl + kl), 0, (uint32_t)vl};
        char *p = up->meta + up->meta_len;
        memcpy(p, &xr, sizeof(xr));
        memcpy(p + sizeof(xr), ENVD_META_PREFIX, pl);
        memcpy(p + sizeof(xr) + pl, key, kl);
        memcpy(p + sizeof(xr) + pl + kl, json_string_value(v), vl);
        up->meta_len += (sizeof(xr) + pl + kl + vl + 7) & ~(size_t)7;
    }
    up->md = json_incref(c->xmetadata);
    return 0;
}

/* The records onto the upload's temporary; 0 or the guest's errno (answered). */
static int metadata_put(struct envd_upload *up)
{
    size_t pl = strlen(ENVD_META_PREFIX), at = (up->plen + pl + 7) & ~(size_t)7;
    char *req = calloc(1, at + up->meta_len);
    if (!req) {
        lel_call_error(up->c, 503, "out of memory");
        return ENOMEM;
    }
    memcpy(req, up->buf, up->plen);
    memcpy(req + up->plen, ENVD_META_PREFIX, pl);
    memcpy(req + at, up->meta, up->meta_len);
    uint64_t arg[4] = {up->plen, up->tmp_id, pl, up->meta_len}, ret[4] = {0};
    int r = lel_vm_call_bulk(up->h->vm, LEL_OP_FILE_XATTRS, arg, req, at + up->meta_len, ret, 30000);
    free(req);
    if (r == LEL_ST_ENOSYS)
        lel_call_error(up->c, 400, "file metadata needs a newer guest than this sandbox's (start it again from its template)");
    else if (r == 12 || r == 28)
        lel_call_error(up->c, 507, "not enough space for the metadata of '%s'", up->buf);
    else if (r)
        file_error(up->c, r, up->buf);
    return r;
}

static int part_begin(struct envd_upload *up, const char *filename)
{
    char *path = up->qpath ? strdup(up->qpath) : lel__envd_path(filename, strlen(filename), up->u.home);
    if (!path || (!*filename && !up->qpath)) {
        lel_call_error(up->c, 400, "a file part without a path (its filename, or the path query)");
        free(path);
        return -EINVAL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(up->results, i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "path")), path)) {
            lel_call_error(up->c, 400, "two parts write '%s'", path);
            free(path);
            return -EINVAL;
        }
    }
    up->plen = strlen(path) + 1;
    memcpy(up->buf, path, up->plen);
    free(path);
    up->fill = up->off = 0;
    up->started = 0;
    up->in_part = 1;
    return 0;
}

static int part_data(struct envd_upload *up, const char *p, size_t n)
{
    while (n) {
        size_t k = ENVD_CHUNK - up->fill < n ? ENVD_CHUNK - up->fill : n;
        memcpy(up->buf + up->plen + up->fill, p, k);
        up->fill += k;
        p += k;
        n -= k;
        int r = up->fill == ENVD_CHUNK ? piece(up, 0) : 0;
        if (r) {
            up->in_part = 0;
            file_error(up->c, r, up->buf);
            return r;
        }
    }
    return 0;
}

static int part_end(struct envd_upload *up)
{
    int r = up->meta && !up->started ? piece(up, 0) : 0; /* a temporary to give the metadata to first */
    if (r == 0 && up->meta && (r = metadata_put(up)) != 0) {
        abort_part(up); /* its temporary goes: the file stays as it was */
        up->in_part = 0;
        return r;
    }
    if (r == 0)
        r = piece(up, 1);
    up->in_part = 0;
    if (r) {
        file_error(up->c, r, up->buf);
        return r;
    }
    const char *slash = strrchr(up->buf, '/');
    json_t *en = json_pack("{s:s, s:s, s:s}", "path", up->buf, "name", slash ? slash + 1 : up->buf, "type", "file");
    if (en && up->md)
        json_object_set_new(en, "metadata", json_deep_copy(up->md));
    json_array_append_new(up->results, en);
    return 0;
}

static int on_part(void *ctx, enum lel_mp_event ev, const char *data, size_t n)
{
    struct envd_upload *up = ctx;
    if (ev == LEL_MP_PART) {
        up->skip = strcmp(up->mp.name, "file") != 0; /* envd takes the parts named "file" */
        return up->skip ? 0 : part_begin(up, up->mp.filename);
    }
    if (up->skip)
        return 0;
    return ev == LEL_MP_DATA ? part_data(up, data, n) : part_end(up);
}

/* Bytes of the body (decoded) to where they go. */
static int sink(struct envd_upload *up, const char *p, size_t n)
{
    if (!up->octet) {
        int r = lel_mp_feed(&up->mp, p, n, on_part, up);
        if (r == -EINVAL && !up->c->status)
            lel_call_error(up->c, 400, "malformed multipart body");
        return r;
    }
    return part_data(up, p, n);
}

static int take(struct envd_upload *up, const char *p, size_t n)
{
    if (!up->gzip)
        return sink(up, p, n);
    up->z.next_in = (unsigned char *)p;
    up->z.avail_in = (unsigned)n;
    do {
        char *out = up->tmp + READ_PIECE;
        up->z.next_out = (unsigned char *)out;
        up->z.avail_out = READ_PIECE;
        int zr = inflate(&up->z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && !up->z.avail_in)) {
            lel_call_error(up->c, 400, "invalid gzip body");
            return -EINVAL;
        }
        int r = sink(up, out, READ_PIECE - up->z.avail_out);
        if (r)
            return r;
    } while (up->z.avail_out == 0);
    return 0;
}

/* The body is complete: the last file ends and the call is answered with what was written. */
static int finish(struct envd_upload *up)
{
    if (up->octet) {
        if (part_end(up))
            return -1;
    } else if (lel_mp_finish(&up->mp) < 0) {
        lel_call_error(up->c, 400, "the multipart body ended before its closing boundary");
        return -1;
    }
    if (!json_array_size(up->results)) {
        lel_call_error(up->c, 400, "no file part in the body");
        return -1;
    }
    lel_call_reply(up->c, 200, json_incref(up->results));
    return 0;
}

static void step(lel_envd_t *e, struct envd_upload *up)
{
    for (;;) {
        ssize_t r = up->h->vm ? lel_call_body_read(up->c, up->tmp, READ_PIECE) : -EPIPE;
        if (r == -EAGAIN)
            return; /* a LEL_MSG_ENVD_BODY comes when there is more */
        int bad = r < 0;
        if (r == -E2BIG)
            lel_call_error(up->c, 413, "file larger than %zu bytes", up->h->srv->cfg.max_file_bytes);
        else if (r == -EPIPE)
            lel_call_error(up->c, 502, "the sandbox stopped while the file was uploaded");
        else if (r < 0)
            lel_call_error(up->c, 400, "the upload ended before its body was complete");
        if (!bad && r > 0)
            bad = take(up, up->tmp, (size_t)r) != 0;
        else if (!bad)
            bad = finish(up) != 0;
        if (bad)
            abort_part(up);
        if (bad || r == 0) {
            lel_call_done(up->c);
            upload_free(e, up);
            return;
        }
    }
}

int lel__envd_files_post(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c)
{
    struct envd_upload *up = calloc(1, sizeof(*up));
    if (!up || !(up->buf = malloc(PATH_CAP + ENVD_CHUNK)) || !(up->tmp = malloc(2 * READ_PIECE)) ||
        !(up->results = json_array())) {
        lel_call_error(c, 503, "out of memory");
        goto refuse;
    }
    up->c = c;
    up->octet = c->content_type && !strncasecmp(c->content_type, "application/octet-stream", 24);
    const char *enc = c->content_encoding;
    if (query_user(c, &up->u) < 0)
        goto refuse;
    up->qpath = query_path(c, &up->u, up->octet);
    if (c->status)
        goto refuse;
    if (!up->octet && lel_mp_init(&up->mp, c->content_type) < 0) {
        lel_call_error(c, 400, "the body must be multipart/form-data (with a boundary) or application/octet-stream");
        goto refuse;
    }
    if (c->xmetadata && metadata_take(up, c) < 0)
        goto refuse;
    if (enc && strcasecmp(enc, "identity") && strcasecmp(enc, "gzip")) {
        lel_call_error(c, 400, "unsupported Content-Encoding '%.32s' (identity or gzip)", enc);
        goto refuse;
    }
    if (enc && !strcasecmp(enc, "gzip")) {
        if (inflateInit2(&up->z, 16 + MAX_WBITS) != Z_OK) {
            lel_call_error(c, 503, "out of memory");
            goto refuse;
        }
        up->gzip = 1;
    }
    lel__envd_home(e, h, &up->u);
    if (up->octet && part_begin(up, "") < 0)
        goto refuse;
    up->id = ++e->seq;
    up->next = e->uploads;
    e->uploads = up;
    up->h = h;
    if (c->body_in)
        lel_call_body_notify(c, h->actor, LEL_MSG_ENVD_BODY, up->id); /* tells at once if some is there */
    else
        step(e, up); /* the body came whole */
    return 1;
refuse: /* not linked yet */
    if (up) {
        if (up->gzip)
            inflateEnd(&up->z);
        json_decref(up->results);
        json_decref(up->md);
        free(up->meta);
        free(up->qpath);
        free(up->buf);
        free(up->tmp);
        free(up);
    }
    return 0;
}

void lel__envd_upload_step(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id)
{
    for (struct envd_upload *up = e->uploads; up; up = up->next)
        if (up->id == id) {
            up->h = h;
            step(e, up);
            return;
        }
}

void lel__envd_uploads_fail(lel_envd_t *e, const char *why)
{
    while (e->uploads) {
        struct envd_upload *up = e->uploads;
        lel_call_error(up->c, 502, "%s", why);
        lel_call_done(up->c);
        upload_free(e, up);
    }
}
