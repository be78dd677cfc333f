/* What an upload is, found by its content: libarchive reads it whatever its compression
 * (none, gzip, zstd, xz, bzip2); an archive made only of the names an image archive has
 * (`docker save`: manifest.json, <id>.json, <id>/layer.tar; OCI layout: oci-layout,
 * index.json, blobs/<alg>/<hex>) is an image archive, anything else a plain root filesystem.
 *
 * A plain rootfs is unpacked as it is read. An image archive is read once: small files
 * (manifests, configs, small layers) are kept in memory, the rest written to files in the
 * staging directory, every blobs/sha256/<hex> checked against its name. Then the manifest is
 * chosen (OCI: index.json, following a nested index, for linux/amd64; else manifest.json),
 * media types checked (an unknown one is refused: it may be encrypted, or not a filesystem),
 * and the layers applied in order with their whiteouts. The image config's Env, WorkingDir,
 * User, Entrypoint and Cmd become the image's defaults. */
#include "lel_image_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOB_MEM_MAX (4u << 20)  /* a blob up to this size is kept in memory ... */
#define BLOBS_MEM_MAX (64u << 20) /* ... while all kept together stay below this */

struct blob {
    char *name;
    char *data; /* in memory, or */
    char *file; /* in the staging directory */
    uint64_t size;
};

struct outer {
    struct blob *b;
    size_t n, cap;
    uint64_t mem, bytes;
    int plain; /* a name no image archive has: a root filesystem */
};

static const char *const manifest_types[] = {"application/vnd.oci.image.manifest.v1+json",
                                             "application/vnd.docker.distribution.manifest.v2+json", NULL};
static const char *const index_types[] = {"application/vnd.oci.image.index.v1+json",
                                          "application/vnd.docker.distribution.manifest.list.v2+json", NULL};
static const char *const config_types[] = {"application/vnd.oci.image.config.v1+json",
                                           "application/vnd.docker.container.image.v1+json", NULL};
static const char *const layer_types[] = {
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    NULL};

static int in_list(const char *s, const char *const *l)
{
    for (; s && *l; l++)
        if (!strcmp(s, *l))
            return 1;
    return 0;
}

static int fail(struct lel_unpack *u, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct lel_unpack *u, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->err, sizeof(u->err), fmt, ap);
    va_end(ap);
    u->status = status;
    return -1;
}

static int is_hex(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n >= min && n <= max;
}

/* Whether `p` (leading "./" and trailing "/" removed) is a name image archives are made of. */
static int image_name(const char *p)
{
    char buf[300], *sl;
    if (strlen(p) >= sizeof(buf))
        return 0;
    snprintf(buf, sizeof(buf), "%s", p);
    if (!strcmp(buf, "manifest.json") || !strcmp(buf, "index.json") || !strcmp(buf, "oci-layout") ||
        !strcmp(buf, "repositories") || !strcmp(buf, "blobs"))
        return 1;
    if (!strncmp(buf, "blobs/", 6)) {
        char *alg = buf + 6, *hex = strchr(alg, '/');
        if (hex)
            *hex++ = 0;
        for (char *c = alg; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
                return 0;
        return *alg && (!hex || is_hex(hex, 32, 128));
    }
    size_t n = strlen(buf);
    if (n > 5 && !strcmp(buf + n - 5, ".json")) {
        buf[n - 5] = 0;
        return is_hex(buf, 64, 64);
    }
    if ((sl = strchr(buf, '/')))
        *sl++ = 0;
    return is_hex(buf, 64, 64) && (!sl || !strcmp(sl, "layer.tar") || !strcmp(sl, "VERSION") || !strcmp(sl, "json"));
}

static void norm(const char *in, char *out, size_t n)
{
    while (in[0] == '.' && in[1] == '/')
        in += 2;
    snprintf(out, n, "%s", in);
    size_t l = strlen(out);
    while (l && out[l - 1] == '/')
        out[--l] = 0;
}

static struct blob *find_blob(struct outer *o, const char *name)
{
    char n[300];
    norm(name, n, sizeof(n));
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->b[i].name, n))
            return &o->b[i];
    return NULL;
}

static void outer_free(struct outer *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->b[i].name);
        free(o->b[i].data);
        if (o->b[i].file)
            unlink(o->b[i].file);
        free(o->b[i].file);
    }
    free(o->b);
    memset(o, 0, sizeof(*o));
}

static struct archive *open_reader(void)
{
    struct archive *a = archive_read_new();
    if (a) {
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        archive_read_support_format_empty(a);
    }
    return a;
}

/* Reads the entry's data into the blob (memory or a staging file), hashing it. */
static int keep_blob(struct lel_unpack *u, struct outer *o, struct archive *a, struct blob *b, unsigned char md[32])
{
    int fd = -1, r = 0;
    if (b->size <= BLOB_MEM_MAX && o->mem + b->size <= BLOBS_MEM_MAX) {
        if (!(b->data = malloc(b->size ? b->size : 1)))
            return fail(u, 500, "out of memory");
        o->mem += b->size;
    } else {
        char path[4200];
        snprintf(path, sizeof(path), "%s/blob-%zu", u->dir, o->n);
        if (!(b->file = strdup(path)) || (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
            return fail(u, 500, "cannot write %s: %s", path, strerror(errno));
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[1 << 16];
    uint64_t got = 0;
    for (la_ssize_t n; (n = archive_read_data(a, buf, sizeof(buf))) != 0;) {
        if (n < 0 || got + (uint64_t)n > b->size) {
            r = fail(u, 400, "truncated or corrupt archive at '%s': %s", b->name,
                     n < 0 ? archive_error_string(a) : "more data than its size");
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        if (b->data)
            memcpy(b->data + got, buf, (size_t)n);
        else if (write(fd, buf, (size_t)n) != n) {
            r = fail(u, errno == ENOSPC ? 507 : 500, "cannot write the image's blobs: %s", strerror(errno));
            break;
        }
        got += (uint64_t)n;
        if (atomic_load(u->stop)) {
            r = fail(u, 503, "lelantosd is stopping");
            break;
        }
    }
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    if (!r && got != b->size)
        r = fail(u, 400, "truncated archive at '%s'", b->name);
    return r;
}

/* The first read of the upload: an image archive's files kept, or o->plain set at the first
 * name that is not one of them. */
static int read_outer(struct lel_unpack *u, struct outer *o)
{
    struct archive *a = open_reader();
    struct archive_entry *e;
    int ar = ARCHIVE_EOF, r = 0, entries = 0;
    if (!a || archive_read_open_filename(a, u->upload, 1 << 16) != ARCHIVE_OK) {
        r = fail(u, 400, "not a tar archive (uncompressed, gzip, zstd or xz) nor an image archive: %s",
                 a ? archive_error_string(a) : "out of memory");
        archive_read_free(a);
        return r;
    }
    while (!r && !o->plain && ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN)) {
        char name[300];
        const char *pn = archive_entry_pathname(e);
        entries++;
        if (!pn || strlen(pn) >= sizeof(name) || (norm(pn, name, sizeof(name)), !image_name(name))) {
            o->plain = 1;
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
            continue;
        if (o->n == o->cap) {
            size_t nc = o->cap ? o->cap * 2 : 32;
            struct blob *nb = realloc(o->b, nc * sizeof(*nb));
            if (!nb) {
                r = fail(u, 500, "out of memory");
                break;
            }
            o->b = nb;
            o->cap = nc;
        }
        struct blob *b = &o->b[o->n];
        memset(b, 0, sizeof(*b));
        b->size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
        if (b->size > u->max_unpacked - o->bytes) {
            r = fail(u, 400, "the archive expands past images.max_unpacked_bytes (%llu bytes) at '%s'",
                     (unsigned long long)u->max_unpacked, name);
            break;
        }
        o->bytes += b->size;
        unsigned char md[32];
        char hex[65];
        if (!(b->name = strdup(name)) || (r = keep_blob(u, o, a, b, md)) < 0) {
            if (!b->name)
                r = fail(u, 500, "out of memory");
            free(b->name);
            free(b->data);
            if (b->file)
                unlink(b->file);
            free(b->file);
            break;
        }
        o->n++;
        lel_hex(md, 32, hex);
        if (!strncmp(name, "blobs/sha256/", 13) && strcmp(name + 13, hex))
            r = fail(u, 400, "blob %s is corrupt: its content hashes to sha256:%s", name, hex);
    }
    if (!r && !o->plain && ar != ARCHIVE_EOF && entries == 0)
        r = fail(u, 400, "not a tar archive (uncompressed, gzip, zstd or xz) nor an image archive: %s",
                 archive_error_string(a) ? archive_error_string(a) : "unreadable");
    else if (!r && !o->plain && ar != ARCHIVE_EOF)
        r = fail(u, 400, "truncated or corrupt archive: %s", archive_error_string(a) ? archive_error_string(a) : "read error");
    if (!r && !o->plain && entries == 0)
        r = fail(u, 400, "the archive is empty");
    archive_read_free(a);
    return r;
}

static json_t *blob_json(struct lel_unpack *u, struct outer *o, const char *name, const char *what)
{
    struct blob *b = find_blob(o, name);
    json_error_t je;
    if (!b || !b->data) {
        fail(u, 400, "the image archive has no %s '%.200s'%s", what, name, b ? " small enough to read" : "");
        return NULL;
    }
    json_t *j = json_loadb(b->data, b->size, 0, &je);
    if (!j || (!json_is_object(j) && !json_is_array(j))) {
        json_decref(j);
        fail(u, 400, "%s '%.200s' is not valid JSON: %s", what, name, je.text);
        return NULL;
    }
    return j;
}

/* "sha256:<hex>" -> "blobs/sha256/<hex>"; 0 or -1 (refused: u->err). */
static int digest_path(struct lel_unpack *u, const char *digest, char *out, size_t n)
{
    const char *colon = digest ? strchr(digest, ':') : NULL;
    if (!colon || colon == digest || colon - digest > 32 || !is_hex(colon + 1, 32, 128))
        return fail(u, 400, "bad digest '%.100s' in the manifest", digest ? digest : "(none)");
    snprintf(out, n, "blobs/%.*s/%s", (int)(colon - digest), digest, colon + 1);
    return 0;
}

/* OCI: the manifest for linux/amd64 from an index (depth: nested indexes followed). */
static json_t *oci_manifest(struct lel_unpack *u, struct outer *o, json_t *index, int depth)
{
    json_t *m;
    size_t i;
    char path[300];
    json_array_foreach(json_object_get(index, "manifests"), i, m)
    {
        const char *mt = json_string_value(json_object_get(m, "mediaType"));
        json_t *pf = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(pf, "os")), *arch = json_string_value(json_object_get(pf, "architecture"));
        if (pf && (!os || strcmp(os, "linux") || !arch || strcmp(arch, "amd64")))
            continue;
        if (!in_list(mt, manifest_types) && !in_list(mt, index_types)) {
            fail(u, 400, "unknown manifest media type '%.100s'", mt ? mt : "(none)");
            return NULL;
        }
        if (digest_path(u, json_string_value(json_object_get(m, "digest")), path, sizeof(path)) < 0)
            return NULL;
        json_t *j = blob_json(u, o, path, "manifest");
        if (!j || !in_list(mt, index_types))
            return j;
        if (depth >= 2) {
            json_decref(j);
            fail(u, 400, "image indexes nest too deep");
            return NULL;
        }
        json_t *r = oci_manifest(u, o, j, depth + 1);
        json_decref(j);
        return r;
    }
    fail(u, 400, "the image archive has no manifest for linux/amd64");
    return NULL;
}

/* The layers' blob names (array of strings) and the config from an OCI manifest. */
static int oci_layers(struct lel_unpack *u, struct outer *o, json_t *man, json_t *layers, json_t **config, char *cfgname,
                      size_t n)
{
    const char *mt = json_string_value(json_object_get(man, "mediaType"));
    json_t *cfg = json_object_get(man, "config"), *l;
    size_t i;
    char path[300];
    if (mt && !in_list(mt, manifest_types))
        return fail(u, 400, "unknown manifest media type '%.100s'", mt);
    mt = json_string_value(json_object_get(cfg, "mediaType"));
    if (!in_list(mt, config_types))
        return fail(u, 400, "unknown config media type '%.100s' (not a container image?)", mt ? mt : "(none)");
    if (digest_path(u, json_string_value(json_object_get(cfg, "digest")), cfgname, n) < 0 ||
        !(*config = blob_json(u, o, cfgname, "config")))
        return -1;
    json_array_foreach(json_object_get(man, "layers"), i, l)
    {
        mt = json_string_value(json_object_get(l, "mediaType"));
        if (!in_list(mt, layer_types))
            return fail(u, 400, "unknown layer media type '%.100s' (layer %zu)", mt ? mt : "(none)", i + 1);
        if (digest_path(u, json_string_value(json_object_get(l, "digest")), path, sizeof(path)) < 0)
            return -1;
        json_array_append_new(layers, json_string(path));
    }
    return 0;
}

/* docker save's manifest.json: its first image. */
static int docker_layers(struct lel_unpack *u, struct outer *o, json_t *layers, json_t **config, char *cfgname, size_t n)
{
    json_t *man = blob_json(u, o, "manifest.json", "manifest"), *l;
    size_t i;
    if (!man)
        return -1;
    json_t *img = json_array_get(man, 0);
    const char *cfg = json_string_value(json_object_get(img, "Config"));
    if (!cfg || !json_is_array(json_object_get(img, "Layers"))) {
        json_decref(man);
        return fail(u, 400, "manifest.json names no Config and Layers");
    }
    if (json_array_size(man) > 1)
        lel__image_log(u->log, "manifest.json holds %zu images: the first is imported", json_array_size(man));
    norm(cfg, cfgname, n);
    json_array_foreach(json_object_get(img, "Layers"), i, l)
        json_array_append_new(layers, json_string(json_string_value(l) ? json_string_value(l) : ""));
    *config = blob_json(u, o, cfgname, "config");
    json_decref(man);
    return *config ? 0 : -1;
}

static int apply_blob(struct lel_unpack *u, struct lel_tree *t, struct outer *o, const char *name, size_t i)
{
    struct blob *b = find_blob(o, name);
    char what[64], err[512];
    if (!b)
        return fail(u, 400, "the image archive lacks layer %zu ('%.200s')", i + 1, name);
    struct archive *a = open_reader();
    int ok = a && (b->data ? archive_read_open_memory(a, b->data, b->size) : archive_read_open_filename(a, b->file, 1 << 16)) ==
                      ARCHIVE_OK;
    snprintf(what, sizeof(what), "layer %zu", i + 1);
    int r = ok ? lel__tree_apply(t, a, 1, what, err, sizeof(err)) : -EINVAL;
    if (!ok)
        snprintf(err, sizeof(err), "layer %zu is not a tar archive: %s", i + 1, a ? archive_error_string(a) : "out of memory");
    archive_read_free(a);
    if (b->file) { /* applied: its space goes back now */
        unlink(b->file);
        free(b->file);
        b->file = NULL;
    }
    if (r < 0)
        return fail(u, r == -ENOSPC ? 507 : r == -ECANCELED ? 503 : r == -EIO || r == -ENOMEM ? 500 : 400, "%s", err);
    return 0;
}

/* The config's defaults into meta. */
static void take_config(json_t *meta, json_t *cfgdoc)
{
    json_t *c = json_object_get(cfgdoc, "config"), *env = json_object(), *v;
    size_t i;
    json_array_foreach(json_object_get(c, "Env"), i, v)
    {
        const char *s = json_string_value(v), *eq = s ? strchr(s, '=') : NULL;
        if (eq && eq != s) {
            char k[256];
            snprintf(k, sizeof(k), "%.*s", (int)(eq - s) < 255 ? (int)(eq - s) : 255, s);
            json_object_set_new(env, k, json_string(eq + 1));
        }
    }
    json_object_set_new(meta, "env", env);
    const char *wd = json_string_value(json_object_get(c, "WorkingDir"));
    const char *user = json_string_value(json_object_get(c, "User"));
    json_object_set_new(meta, "workdir", json_string(wd && *wd ? wd : "/"));
    json_object_set_new(meta, "user", json_string(user ? user : ""));
    json_t *cmd = json_object_get(c, "Cmd"), *ep = json_object_get(c, "Entrypoint");
    json_object_set_new(meta, "cmd", json_is_array(cmd) ? json_deep_copy(cmd) : json_array());
    json_object_set_new(meta, "entrypoint", json_is_array(ep) ? json_deep_copy(ep) : json_array());
}

static int image_archive(struct lel_unpack *u, struct lel_tree *t, struct outer *o)
{
    json_t *layers = json_array(), *cfgdoc = NULL;
    char cfgname[300];
    int r, oci = find_blob(o, "index.json") && find_blob(o, "oci-layout");
    if (oci) {
        json_t *index = blob_json(u, o, "index.json", "index");
        json_t *man = index ? oci_manifest(u, o, index, 0) : NULL;
        r = man ? oci_layers(u, o, man, layers, &cfgdoc, cfgname, sizeof(cfgname)) : -1;
        json_decref(index);
        json_decref(man);
    } else if (find_blob(o, "manifest.json")) {
        r = docker_layers(u, o, layers, &cfgdoc, cfgname, sizeof(cfgname));
    } else {
        r = fail(u, 400, "an image archive needs index.json (OCI) or manifest.json (docker save)");
    }
    for (size_t i = 0; !r && i < json_array_size(layers); i++)
        r = apply_blob(u, t, o, json_string_value(json_array_get(layers, i)), i);
    if (!r) {
        struct blob *cb = find_blob(o, cfgname);
        unsigned char md[32];
        char hex[65], digest[80];
        EVP_Digest(cb->data, cb->size, md, NULL, EVP_sha256(), NULL);
        lel_hex(md, 32, hex);
        snprintf(digest, sizeof(digest), "sha256:%s", hex);
        json_object_set_new(u->meta, "format", json_string(oci ? "oci" : "docker"));
        json_object_set_new(u->meta, "digest", json_string(digest));
        json_object_set_new(u->meta, "layers", json_integer((json_int_t)json_array_size(layers)));
        take_config(u->meta, cfgdoc);
        lel__image_log(u->log, "%s image archive: %zu layers", oci ? "OCI" : "docker", json_array_size(layers));
    }
    json_decref(layers);
    json_decref(cfgdoc);
    return r;
}

static int plain_rootfs(struct lel_unpack *u, struct lel_tree *t)
{
    struct archive *a = open_reader();
    char err[512];
    if (!a || archive_read_open_filename(a, u->upload, 1 << 16) != ARCHIVE_OK) {
        archive_read_free(a);
        return fail(u, 400, "cannot read the upload again");
    }
    int r = lel__tree_apply(t, a, 0, "rootfs", err, sizeof(err));
    archive_read_free(a);
    if (r < 0)
        return fail(u, r == -ENOSPC ? 507 : r == -ECANCELED ? 503 : r == -EIO || r == -ENOMEM ? 500 : 400, "%s", err);
    json_object_set_new(u->meta, "format", json_string("rootfs"));
    json_object_set_new(u->meta, "layers", json_integer(1));
    json_t *empty = json_pack("{s:{}}", "config");
    take_config(u->meta, empty);
    json_decref(empty);
    json_object_set_new(u->meta, "env", json_pack("{s:s}", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    lel__image_log(u->log, "plain root filesystem archive");
    return 0;
}

int lel__image_unpack(struct lel_unpack *u)
{
    struct outer o = {0};
    char root[4200];
    u->meta = json_object();
    if (!u->log)
        u->log = json_array();
    snprintf(root, sizeof(root), "%s/rootfs", u->dir);
    struct lel_tree *t = lel__tree_open(root, u->max_unpacked, u->stop, u->log);
    if (!t)
        return fail(u, 500, "cannot create %s: %s", root, strerror(errno));
    int r = read_outer(u, &o);
    if (!r)
        r = o.plain ? plain_rootfs(u, t) : image_archive(u, t, &o);
    outer_free(&o);
    uint64_t bytes = 0, files = 0;
    if (!r && lel__tree_finish(t, &bytes, &files) < 0)
        r = fail(u, 500, "cannot read the unpacked tree back");
    lel__tree_close(t);
    if (!r) {
        json_object_set_new(u->meta, "sizeBytes", json_integer((json_int_t)bytes));
        json_object_set_new(u->meta, "files", json_integer((json_int_t)files));
    }
    return r;
}
