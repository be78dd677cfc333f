/* The image store's actor: PUT streams the body to <data_dir>/images/<imageID>.staging/upload
 * (never into memory), an import thread unpacks it there (lel_image_import.c), and the actor
 * makes it visible: the staging directory renamed to <imageID>, then the record written. A
 * failed import removes its staging directory, so it leaves nothing; what a crash left (a
 * staging directory, a directory no record names) is removed at the next start.
 *
 * PUT over an existing name replaces that image (200; 201 for a new one) unless templates use
 * it (409, as for DELETE). One upload per name at a time (409), MAX_IMPORTS at once (503). */
#include "lel_image_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IMPORTS 4
#define CHUNK (1u << 20)

/* A name in the index, with the templates that use it. Under im->lock. */
struct img {
    struct img *next;
    char key[LEL_ID_LEN + 16 + 264]; /* "<teamID>/<name>:<tag>" */
    char id[LEL_ID_LEN + 1];
    int uses;
};

/* One upload, from its first byte to its record (actor-owned; the thread has it meanwhile). */
struct import {
    struct import *next;
    lel_call_t *c;
    uint32_t id;
    char key[LEL_ID_LEN + 16 + 264], name[264], image_id[LEL_ID_LEN + 1];
    char staging[4300], upload[4400];
    int fd, running, replaces;
    uint64_t received;
    EVP_MD_CTX *sha;
    char digest[80];
    char *buf;
    pthread_t thread;
    struct lel_unpack u;
    struct lel_images *im;
};

struct lel_images {
    lel_server_t *srv;
    lel_actor_t *actor;
    char dir[4200];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct img *list; /* under lock */
    int threads;      /* import threads running, under lock */
    atomic_int stop;
    struct import *imports; /* actor-owned */
    uint32_t seq;
};

static int name_ok(const char *s, size_t n, int tag)
{
    if (!n || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (tag && ((c >= 'A' && c <= 'Z') || c == '_'));
        if (!ok && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

int lel_image_canonical(const char *name, char *out, size_t n)
{
    const char *colon = name ? strchr(name, ':') : NULL;
    size_t nl = colon ? (size_t)(colon - name) : name ? strlen(name) : 0;
    if (!name || !name_ok(name, nl, 0) || (colon && !name_ok(colon + 1, strlen(colon + 1), 1)))
        return -EINVAL;
    snprintf(out, n, "%.*s:%s", (int)nl, name, colon ? colon + 1 : "latest");
    return 0;
}

void lel_image_rootfs(lel_server_t *srv, const char *image_id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s/rootfs", srv->images->dir, image_id);
}

/* Under im->lock. */
static struct img *find(struct lel_images *im, const char *key)
{
    for (struct img *i = im->list; i; i = i->next)
        if (!strcmp(i->key, key))
            return i;
    return NULL;
}

static struct img *find_id(struct lel_images *im, const char *id)
{
    for (struct img *i = im->list; i; i = i->next)
        if (!strcmp(i->id, id))
            return i;
    return NULL;
}

static void unlink_img(struct lel_images *im, struct img *x)
{
    for (struct img **p = &im->list; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            return;
        }
}

int lel_image_acquire(lel_server_t *srv, const char *team, const char *name, json_t **rec)
{
    struct lel_images *im = srv->images;
    char canon[264], key[sizeof(((struct img *)0)->key)];
    if (lel_image_canonical(name, canon, sizeof(canon)) < 0)
        return -EINVAL;
    snprintf(key, sizeof(key), "%s/%s", team, canon);
    pthread_mutex_lock(&im->lock);
    struct img *i = find(im, key);
    int r = i ? lel_store_get(srv->store, LEL_CF_IMAGES, key, rec) : -ENOENT;
    if (r == 0)
        i->uses++;
    pthread_mutex_unlock(&im->lock);
    return r < 0 ? -ENOENT : 0;
}

int lel_image_acquire_id(lel_server_t *srv, const char *image_id)
{
    struct lel_images *im = srv->images;
    pthread_mutex_lock(&im->lock);
    struct img *i = find_id(im, image_id);
    if (i)
        i->uses++;
    pthread_mutex_unlock(&im->lock);
    return i ? 0 : -ENOENT;
}

void lel_image_release(lel_server_t *srv, const char *image_id)
{
    struct lel_images *im = srv->images;
    pthread_mutex_lock(&im->lock);
    struct img *i = find_id(im, image_id);
    if (i && i->uses > 0)
        i->uses--;
    pthread_mutex_unlock(&im->lock);
}

/* The record as its team sees it. */
static json_t *view(json_t *rec)
{
    json_t *v = json_deep_copy(rec);
    json_object_del(v, "teamID");
    return v;
}

/* ---- the import's thread ---- */

static void *import_thread(void *arg)
{
    struct import *x = arg;
    struct lel_images *im = x->im;
    lel__image_unpack(&x->u);
    unlink(x->upload); /* applied or refused: its space goes back before the answer */
    lel_msg_t *m = lel_msg_new(LEL_MSG_IMPORTED, 0, x);
    if (m && lel_actor_send(im->actor, m) < 0) /* the actor takes mail until it is freed */
        lel_msg_free(m);
    pthread_mutex_lock(&im->lock);
    im->threads--;
    pthread_cond_broadcast(&im->cond);
    pthread_mutex_unlock(&im->lock);
    return NULL;
}

/* ---- the actor ---- */

static void import_free(struct lel_images *im, struct import *x)
{
    for (struct import **p = &im->imports; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    if (x->fd >= 0)
        close(x->fd);
    if (x->staging[0])
        lel__image_rmtree(x->staging);
    EVP_MD_CTX_free(x->sha);
    json_decref(x->u.meta);
    json_decref(x->u.log);
    free(x->buf);
    free(x);
}

/* Drops the import (its staging directory first: the client hears of it only after), then
 * answers its call with the error. */
static void import_fail(struct lel_images *im, struct import *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void import_fail(struct lel_images *im, struct import *x, int status, const char *fmt, ...)
{
    lel_call_t *c = x->c;
    char msg[700];
    size_t n;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *clean = lel_utf8_sanitize(msg, strlen(msg), &n); /* archive names need not be UTF-8 */
    lel_call_error(c, status, "%s", clean ? clean : "the import failed");
    free(clean);
    import_free(im, x);
    lel_call_done(c);
}

static void start_thread(struct lel_images *im, struct import *x)
{
    unsigned char md[32];
    char hex[65];
    close(x->fd);
    x->fd = -1;
    EVP_DigestFinal_ex(x->sha, md, NULL);
    lel_hex(md, 32, hex);
    snprintf(x->digest, sizeof(x->digest), "sha256:%s", hex);
    x->u.upload = x->upload;
    x->u.dir = x->staging;
    x->u.max_unpacked = im->srv->cfg.image_max_unpacked_bytes;
    x->u.stop = &im->stop;
    x->u.log = json_array();
    pthread_mutex_lock(&im->lock);
    int r = pthread_create(&x->thread, NULL, import_thread, x);
    im->threads += r == 0;
    pthread_mutex_unlock(&im->lock);
    if (r != 0) {
        import_fail(im, x, 503, "%s", "cannot start the import: out of threads");
        return;
    }
    x->running = 1;
}

/* Takes what has arrived of the body into the upload file; at its end the thread starts. */
static void upload_step(struct lel_images *im, struct import *x)
{
    for (;;) {
        if (atomic_load(&im->stop)) {
            import_fail(im, x, 503, "%s", "lelantosd is stopping");
            return;
        }
        ssize_t r = lel_call_body_read(x->c, x->buf, CHUNK);
        if (r == -EAGAIN)
            return; /* a LEL_MSG_XFER comes when there is more */
        if (r == -E2BIG) {
            char lim[64];
            snprintf(lim, sizeof(lim), "%zu", im->srv->cfg.image_max_bytes);
            import_fail(im, x, 413, "image archive larger than images.max_bytes (%s bytes)", lim);
            return;
        }
        if (r < 0) {
            import_fail(im, x, 400, "%s", "the upload ended before its body was complete");
            return;
        }
        if (r == 0) {
            start_thread(im, x);
            return;
        }
        for (ssize_t w = 0; w < r;) {
            ssize_t n = write(x->fd, x->buf + w, (size_t)(r - w));
            if (n < 0) {
                import_fail(im, x, errno == ENOSPC ? 507 : 500, "cannot store the upload: %s", strerror(errno));
                return;
            }
            w += n;
        }
        EVP_DigestUpdate(x->sha, x->buf, (size_t)r);
        x->received += (uint64_t)r;
    }
}

static void put_image(struct lel_images *im, lel_call_t *c, const char *canon, const char *key)
{
    pthread_mutex_lock(&im->lock);
    struct img *old = find(im, key);
    int uses = old ? old->uses : 0;
    pthread_mutex_unlock(&im->lock);
    int n = 0;
    for (struct import *i = im->imports; i; i = i->next, n++)
        if (!strcmp(i->key, key)) {
            lel_call_error(c, 409, "an upload of image '%s' is in progress", canon);
            lel_call_done(c);
            return;
        }
    if (uses) {
        lel_call_error(c, 409, "image '%s' is used by %d template%s; delete them first", canon, uses, uses > 1 ? "s" : "");
    } else if (n >= MAX_IMPORTS) {
        lel_call_error(c, 503, "%d image imports are running; retry shortly", n);
        c->retry_after = 5;
    } else {
        struct import *x = calloc(1, sizeof(*x));
        if (!x || !(x->buf = malloc(CHUNK)) || !(x->sha = EVP_MD_CTX_new())) {
            if (x)
                free(x->buf);
            free(x);
            lel_call_error(c, 503, "out of memory");
            lel_call_done(c);
            return;
        }
        EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
        x->im = im;
        x->c = c;
        x->id = ++im->seq;
        x->fd = -1;
        x->replaces = old != NULL;
        snprintf(x->key, sizeof(x->key), "%s", key);
        snprintf(x->name, sizeof(x->name), "%s", canon);
        lel_random_id(x->image_id);
        x->next = im->imports;
        im->imports = x;
        snprintf(x->staging, sizeof(x->staging), "%s/%s.staging", im->dir, x->image_id);
        snprintf(x->upload, sizeof(x->upload), "%s/upload", x->staging);
        if (mkdir(x->staging, 0700) < 0 || (x->fd = open(x->upload, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
            import_fail(im, x, 500, "cannot store the upload: %s", strerror(errno));
            return;
        }
        if (c->body_in)
            lel_call_body_notify(c, im->actor, LEL_MSG_XFER, x->id); /* tells at once if some is there */
        else
            upload_step(im, x); /* the body came whole */
        return;
    }
    lel_call_done(c);
}

static json_t *new_record(struct import *x, const char *team)
{
    json_t *rec = json_deep_copy(x->u.meta);
    json_object_set_new(rec, "imageID", json_string(x->image_id));
    json_object_set_new(rec, "teamID", json_string(team));
    json_object_set_new(rec, "name", json_string(x->name));
    json_object_set_new(rec, "uploadBytes", json_integer((json_int_t)x->received));
    if (!json_object_get(rec, "digest"))
        json_object_set_new(rec, "digest", json_string(x->digest));
    json_object_set(rec, "log", x->u.log);
    lel_json_set_time(rec, "createdAt", lel_now_ms());
    return rec;
}

/* The thread ended: the image becomes visible (directory renamed, then the record) or the
 * error is answered. */
static void imported(struct lel_images *im, struct import *x)
{
    char final[4500], gone[4600], old_id[LEL_ID_LEN + 1] = "";
    pthread_join(x->thread, NULL);
    x->running = 0;
    if (x->u.status) {
        import_fail(im, x, x->u.status, "%s", x->u.err);
        return;
    }
    snprintf(final, sizeof(final), "%s/%s", im->dir, x->image_id);
    if (rename(x->staging, final) < 0) {
        import_fail(im, x, 500, "cannot keep the image: %s", strerror(errno));
        return;
    }
    x->staging[0] = 0;
    const char *team = x->c->team->id;
    json_t *rec = new_record(x, team);
    pthread_mutex_lock(&im->lock);
    struct img *old = find(im, x->key), *neu = old ? old : calloc(1, sizeof(*neu));
    int uses = old ? old->uses : 0, r = -ENOMEM;
    if (!uses && neu && (r = lel_store_put(im->srv->store, LEL_CF_IMAGES, x->key, rec)) == 0) {
        if (old)
            snprintf(old_id, sizeof(old_id), "%s", old->id);
        snprintf(neu->key, sizeof(neu->key), "%s", x->key);
        snprintf(neu->id, sizeof(neu->id), "%s", x->image_id);
        if (!old) {
            neu->next = im->list;
            im->list = neu;
        }
    } else if (!old) {
        free(neu);
    }
    pthread_mutex_unlock(&im->lock);
    if (uses || r < 0) {
        lel__image_rmtree(final);
        json_decref(rec);
        if (uses)
            import_fail(im, x, 409, "image '%s' came to be used by a template during the upload", x->name);
        else
            import_fail(im, x, 500, "%s", "storage error; nothing was changed");
        return;
    }
    if (old_id[0]) { /* the image it replaced: renamed first, so a crash leaves only a leftover */
        snprintf(final, sizeof(final), "%s/%s", im->dir, old_id);
        snprintf(gone, sizeof(gone), "%s/%s.deleting", im->dir, old_id);
        if (rename(final, gone) == 0)
            lel__image_rmtree(gone);
    }
    lel_call_t *c = x->c;
    lel_call_reply(c, x->replaces ? 200 : 201, view(rec));
    json_decref(rec);
    import_free(im, x);
    lel_call_done(c);
}

static void delete_image(struct lel_images *im, lel_call_t *c, const char *canon, const char *key)
{
    char dir[4300], gone[4400], id[LEL_ID_LEN + 1];
    pthread_mutex_lock(&im->lock);
    struct img *i = find(im, key);
    int uses = i ? i->uses : 0, r = 0;
    if (i && !uses) {
        lel_batch_t *b = lel_batch_new(im->srv->store);
        lel_batch_del(b, LEL_CF_IMAGES, key);
        if ((r = lel_store_write(im->srv->store, b)) == 0) {
            unlink_img(im, i);
            snprintf(id, sizeof(id), "%s", i->id);
            free(i);
        }
    }
    pthread_mutex_unlock(&im->lock);
    if (!i) {
        lel_call_error(c, 404, "image not found");
    } else if (uses) {
        lel_call_error(c, 409, "image '%s' is used by %d template%s; delete them first", canon, uses, uses > 1 ? "s" : "");
    } else if (r < 0) {
        lel_call_store_failed(c, r);
    } else {
        snprintf(dir, sizeof(dir), "%s/%s", im->dir, id);
        snprintf(gone, sizeof(gone), "%s/%s.deleting", im->dir, id);
        if (rename(dir, gone) == 0)
            lel__image_rmtree(gone);
        lel_call_reply(c, 204, NULL);
    }
}

static int collect(void *ctx, const char *key, json_t *rec)
{
    (void)key;
    json_array_append_new(ctx, view(rec));
    return 0;
}

static void image_call(struct lel_images *im, lel_call_t *c)
{
    char canon[264], key[sizeof(((struct img *)0)->key)], prefix[LEL_ID_LEN + 2];
    json_t *rec;
    if (c->route == R_IMG_LIST) {
        json_t *out = json_array();
        snprintf(prefix, sizeof(prefix), "%s/", c->team->id);
        if (lel_store_scan(im->srv->store, LEL_CF_IMAGES, prefix, NULL, collect, out) < 0) {
            json_decref(out);
            lel_call_store_failed(c, -EIO);
        } else {
            lel_call_reply(c, 200, out);
        }
        lel_call_done(c);
        return;
    }
    if (lel_image_canonical(c->id, canon, sizeof(canon)) < 0) {
        if (c->route == R_IMG_PUT)
            lel_call_error(c, 400, "invalid image name '%.140s': want [a-z0-9][a-z0-9._-]* (at most 128), "
                                   "optionally ':' and a tag [A-Za-z0-9_][A-Za-z0-9_.-]*", c->id);
        else
            lel_call_error(c, 404, "image not found");
        lel_call_done(c);
        return;
    }
    snprintf(key, sizeof(key), "%s/%s", c->team->id, canon);
    if (c->route == R_IMG_PUT) {
        put_image(im, c, canon, key); /* answers when the import ends */
        return;
    }
    if (c->route == R_IMG_DELETE) {
        delete_image(im, c, canon, key);
    } else {
        int r = lel_store_get(im->srv->store, LEL_CF_IMAGES, key, &rec);
        if (r == -ENOENT)
            lel_call_error(c, 404, "image not found");
        else if (r < 0)
            lel_call_store_failed(c, -EIO);
        else
            lel_call_reply(c, 200, view(rec));
        if (r == 0)
            json_decref(rec);
    }
    lel_call_done(c);
}

static void images_handle(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    struct lel_images *im = state;
    if (m->type == LEL_MSG_CALL) {
        lel_call_t *c = m->ptr;
        if (lel__abandoned(c))
            lel_call_done(c);
        else
            image_call(im, c);
    } else if (m->type == LEL_MSG_XFER) {
        for (struct import *x = im->imports; x; x = x->next)
            if (x->id == (uint32_t)m->arg && !x->running && x->fd >= 0) {
                upload_step(im, x);
                break;
            }
    } else if (m->type == LEL_MSG_IMPORTED) {
        imported(im, m->ptr);
    }
    lel_msg_free(m);
}

/* The actor's state goes with the pool: an upload still waiting for its body is answered. */
static void images_state_free(void *p)
{
    struct lel_images *im = p;
    while (im->imports) {
        struct import *x = im->imports;
        if (x->running)
            pthread_join(x->thread, NULL);
        import_fail(im, x, 503, "%s", "lelantosd is stopping");
    }
}

void lel_image_call(lel_server_t *srv, lel_call_t *c)
{
    lel_call_send(srv->images->actor, c);
}

/* ---- start and stop ---- */

static int load_one(void *ctx, const char *key, json_t *rec)
{
    struct lel_images *im = ctx;
    const char *id = json_string_value(json_object_get(rec, "imageID"));
    struct img *i = calloc(1, sizeof(*i));
    if (!i || !id) {
        free(i);
        return 0;
    }
    snprintf(i->key, sizeof(i->key), "%s", key);
    snprintf(i->id, sizeof(i->id), "%s", id);
    i->next = im->list;
    im->list = i;
    return 0;
}

/* Whatever under images/ no record names: staging and half-deleted directories of a crash. */
static void remove_leftovers(struct lel_images *im)
{
    DIR *d = opendir(im->dir);
    char path[4500];
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || find_id(im, e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", im->dir, e->d_name);
        fprintf(stderr, "lelantosd: removing %s (an image import or delete that did not finish)\n", path);
        lel__image_rmtree(path);
    }
    closedir(d);
}

int lel_image_start(lel_server_t *srv, char *err, size_t errlen)
{
    struct lel_images *im = calloc(1, sizeof(*im));
    if (!im) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    im->srv = srv;
    pthread_mutex_init(&im->lock, NULL);
    pthread_cond_init(&im->cond, NULL);
    srv->images = im;
    snprintf(im->dir, sizeof(im->dir), "%s/images", srv->cfg.data_dir);
    if (mkdir(im->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", im->dir, strerror(errno));
        return -errno;
    }
    if (lel_store_scan(srv->store, LEL_CF_IMAGES, "", NULL, load_one, im) < 0) {
        snprintf(err, errlen, "cannot load images from the store");
        return -EIO;
    }
    remove_leftovers(im);
    if (!(im->actor = lel_actor_new(srv->pool, images_handle, im, images_state_free))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

void lel_image_stop(lel_server_t *srv)
{
    struct lel_images *im = srv->images;
    if (!im)
        return;
    atomic_store(&im->stop, 1);
    pthread_mutex_lock(&im->lock);
    while (im->threads > 0)
        pthread_cond_wait(&im->cond, &im->lock);
    pthread_mutex_unlock(&im->lock);
}

void lel_image_free(lel_server_t *srv)
{
    struct lel_images *im = srv->images;
    if (!im)
        return;
    if (im->actor)
        lel_actor_unref(im->actor); /* its state (the imports) goes with it */
    while (im->list) {
        struct img *i = im->list;
        im->list = i->next;
        free(i);
    }
    pthread_cond_destroy(&im->cond);
    pthread_mutex_destroy(&im->lock);
    free(im);
    srv->images = NULL;
}
