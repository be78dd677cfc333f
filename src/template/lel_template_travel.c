/* Templates travel between nodes (lel_template_travel.h). */
#include "lel_template_travel.h"

#include "../cluster/lel_cluster.h"
#include "../cluster/lel_cluster_get.h"
#include "../core/lel_layer.h"
#include "../vmm/lel_vmm.h"
#include "lel_template_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DESC_MAX (4u << 20)   /* a description: a record and a build record with its logs */
#define FETCH_TIMEOUT_MS 600000L /* an image of a few hundred MB over a slow link */

struct job {
    lel_call_t *c;
    void (*then)(lel_server_t *, lel_call_t *);
    char ref[300]; /* the template as the create named it */
    struct job *next;
};

/* One thread and its queue. */
struct worker {
    lel_server_t *srv;
    void (*run)(lel_server_t *srv, struct job *j);
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    int stop, started;
    pthread_t thread;
};

struct lel_tpl_travel {
    struct worker fetch, serve;
};

/* ---- the queues ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct job *j = w->head;
        if (!j) {
            if (w->stop)
                break;
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        int stopping = w->stop;
        pthread_mutex_unlock(&w->lock);
        if (stopping) {
            lel_call_error(j->c, 503, "cluster: this node is stopping");
            lel_call_done(j->c);
        } else {
            w->run(w->srv, j);
        }
        free(j);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void push(struct worker *w, struct job *j)
{
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static int worker_start(struct worker *w, lel_server_t *srv, void (*run)(lel_server_t *, struct job *))
{
    w->srv = srv;
    w->run = run;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int r = -pthread_create(&w->thread, NULL, worker_main, w);
    w->started = r == 0;
    return r;
}

static void worker_stop(struct worker *w)
{
    if (!w->srv)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL); /* it answers what is queued (503) before it ends */
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

/* ---- the holder's side ---- */

static void ref_actor(void *a, void *ctx)
{
    lel_actor_ref(a);
    *(lel_actor_t **)ctx = a;
}

/* The template `ref` (an id, or a name of `team`'s) with a reference, or NULL. */
static lel_actor_t *find(lel_server_t *srv, const char *team, const char *ref)
{
    lel_actor_t *a = NULL;
    char key[LEL_ID_LEN + 16 + 300];
    size_t n = strlen(ref);
    if (n > 8 && !strcmp(ref + n - 8, ":default")) /* E2B's: no tag */
        n -= 8;
    snprintf(key, sizeof(key), "%.*s", (int)n, ref);
    lel_registry_get(srv->templates, key, ref_actor, &a);
    if (a && strcmp(((struct lel_template *)lel_actor_state(a))->team_id, team)) {
        lel_actor_unref(a);
        a = NULL;
    }
    snprintf(key, sizeof(key), "%s/%.*s", team, (int)n, ref);
    if (!a)
        lel_registry_get(srv->template_names, key, ref_actor, &a);
    return a;
}

/* The record of template `id` from the store (new reference), or NULL. */
static json_t *stored_record(lel_server_t *srv, const char *team, const char *id)
{
    char path[LEL_ID_LEN * 2 + 40];
    json_t *rec = NULL;
    lel__template_rec_path(team, id, path, sizeof(path));
    return lel_store_get(srv->store, LEL_CF_TEMPLATES, path, &rec) < 0 ? NULL : rec;
}

/* Whether the template's snapshot was taken over an image's root filesystem (fromImage here or
 * in a parent): that file is this node's, so it does not travel. */
static int from_image(lel_server_t *srv, json_t *top)
{
    json_t *rec = json_incref(top);
    int r = 0;
    for (int depth = 0; rec && depth < 32 && !r; depth++) {
        json_t *def = json_object_get(rec, "definition"), *next = NULL;
        const char *parent = json_string_value(json_object_get(def, "fromTemplate"));
        r = json_object_get(def, "fromImage") != NULL;
        lel_actor_t *p = NULL;
        if (!r && parent && strcmp(parent, "base"))
            lel_registry_get(srv->templates, parent, ref_actor, &p);
        if (p) { /* a parent that is gone took nothing with it: the image is a full one of its own */
            struct lel_template *pt = lel_actor_state(p);
            next = stored_record(srv, pt->team_id, pt->id);
            lel_actor_unref(p);
        }
        json_decref(rec);
        rec = next;
    }
    json_decref(rec);
    return r;
}

/* SHA-256 (hex) and size of the file at `path`. 0 or -errno. */
static int hash_file(const char *path, char sha[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char buf[1 << 16];
    ssize_t n;
    *size = 0;
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        close(fd);
        return -ENOMEM;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) {
            EVP_DigestUpdate(md, buf, (size_t)n);
            *size += (uint64_t)n;
        }
    int r = n < 0 ? -errno : 0;
    unsigned char out[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md, out, &len);
    lel_hex(out, sizeof(out), sha);
    EVP_MD_CTX_free(md);
    close(fd);
    return r;
}

/* An image on its way to another node: answered in pieces of SEND_CHUNK read as the client
 * takes them (an image of hundreds of MB is never held whole), by an actor of its own. */
#define SEND_CHUNK (1u << 20)

struct send {
    int fd;
    lel_call_t *c;
    uint64_t off, total;
};

static void send_free(void *state)
{
    struct send *x = state;
    close(x->fd);
    free(x);
}

/* The next piece into c->raw: its length, or -errno. */
static ssize_t send_chunk(struct send *x)
{
    uint64_t want = x->total - x->off < SEND_CHUNK ? x->total - x->off : SEND_CHUNK;
    char *p = malloc(want ? want : 1);
    size_t got = 0;
    while (p && got < want) {
        ssize_t n = pread(x->fd, p + got, want - got, (off_t)(x->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (!p || got != want) { /* shrank under us, or unreadable: the length promised cannot be kept */
        free(p);
        return p ? -EIO : -ENOMEM;
    }
    x->c->raw = p;
    x->c->raw_len = got;
    x->off += got;
    return (ssize_t)got;
}

/* The client took a piece and wants the next (or went away). */
static void send_step(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    struct send *x = state;
    lel_msg_free(m);
    if (!x->c)
        return; /* ended already */
    lel_call_t *c = x->c;
    int more = !atomic_load(&c->cancelled) && send_chunk(x) >= 0 ? x->off < x->total : -1;
    if (more != 1)
        x->c = NULL; /* the last piece (or a cut): the call is gone after it */
    lel_call_piece(c, more);
}

/* The image file as the answer: its first piece now, the rest as the client takes them. 0 (the
 * call is answered, lel_call_done still to be called) or -errno (nothing set). */
static int send_file(lel_server_t *srv, const char *path, lel_call_t *c)
{
    struct send *x = calloc(1, sizeof(*x));
    struct stat st;
    if (!x)
        return -ENOMEM;
    x->c = c;
    if ((x->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(x->fd, &st) < 0) {
        int e = errno;
        if (x->fd >= 0)
            close(x->fd);
        free(x);
        return -e;
    }
    x->total = (uint64_t)st.st_size;
    lel_actor_t *a = NULL;
    ssize_t r = send_chunk(x);
    if (r >= 0 && x->off < x->total && !(a = lel_actor_new(srv->pool, send_step, x, send_free))) {
        free(c->raw);
        c->raw = NULL;
        c->raw_len = 0;
        r = -ENOMEM;
    }
    if (r < 0) {
        send_free(x);
        return (int)r;
    }
    c->raw_type = "application/octet-stream";
    c->status = 200;
    if (!a) { /* it fitted in one piece */
        send_free(x);
        return 0;
    }
    lel_call_stream(c, x->total, a, LEL_MSG_XFER, 0);
    lel_actor_unref(a); /* the stream holds it from here; the last reference frees x */
    return 0;
}

/* GET /cluster/internal/templates/{ref}[/image]?team=: the description, or the image file. */
static void serve_one(lel_server_t *srv, lel_call_t *c, const char *ref, int image)
{
    char *team = lel_call_query(c, "team");
    lel_actor_t *a = team ? find(srv, team, ref) : NULL;
    struct lel_template *t = a ? lel_actor_state(a) : NULL;
    char img[4200], raw[4200], sha[65];
    uint64_t size = 0;
    json_t *rec = t ? stored_record(srv, t->team_id, t->id) : NULL;
    const char *bid = json_string_value(json_object_get(rec, "imageBuildID"));
    if (!team)
        lel_call_error(c, 400, "the query parameter 'team' is required");
    else if (!rec)
        lel_call_error(c, 404, "template '%s' not found on this node", ref);
    else if (!bid || !lel_template_image(a, img, raw, sizeof(img)) || atomic_load(&t->status) != TPL_READY)
        lel_call_error(c, 409, "template '%s' has no built image on this node", ref);
    else if (from_image(srv, rec))
        lel_call_error(c, 409, "template '%s' was made from an image (its snapshot needs that image's root "
                               "filesystem file, which stays on the node that built it)", ref);
    else if (image) {
        int r = send_file(srv, img, c);
        if (r < 0)
            lel_call_error(c, r == -ENOENT ? 409 : 500, "template '%s': its image cannot be read: %s", ref, strerror(-r));
    } else if (hash_file(img, sha, &size) < 0) {
        lel_call_error(c, 409, "template '%s': its image cannot be read", ref);
    } else {
        char key[LEL_ID_LEN * 2 + 8];
        json_t *build = NULL;
        lel__template_rec_path(t->id, bid, key, sizeof(key));
        if (lel_store_get(srv->store, LEL_CF_BUILDS, key, &build) < 0)
            build = json_null();
        lel_call_reply(c, 200, json_pack("{s:O, s:o, s:{s:I, s:s}}", "template", rec, "build", build, "image", "size",
                                         (json_int_t)size, "sha256", sha));
    }
    json_decref(rec);
    if (a)
        lel_actor_unref(a);
    free(team);
    lel_call_done(c);
}

#define SERVE_PREFIX "/cluster/internal/templates/"

static void serve_run(lel_server_t *srv, struct job *j)
{
    char ref[300];
    snprintf(ref, sizeof(ref), "%s", j->c->path + strlen(SERVE_PREFIX));
    char *slash = strchr(ref, '/');
    int image = slash && !strcmp(slash, "/image");
    if (slash)
        *slash = '\0';
    if ((slash && !image) || !*ref || lel_url_decode(ref) < 0 || strchr(ref, '/')) {
        lel_call_error(j->c, 404, "no such endpoint: %s", j->c->path);
        lel_call_done(j->c);
        return;
    }
    serve_one(srv, j->c, ref, image);
}

void lel_template_serve(lel_server_t *srv, lel_call_t *c)
{
    struct job *j = srv->travel && !strncmp(c->path, SERVE_PREFIX, strlen(SERVE_PREFIX)) ? calloc(1, sizeof(*j)) : NULL;
    if (!j) {
        lel_call_error(c, srv->travel ? 404 : 503, srv->travel ? "no such endpoint: %s" : "cluster mode is off (%s)",
                       c->path);
        lel_call_done(c);
        return;
    }
    j->c = c;
    push(&srv->travel->serve, j);
}

/* ---- the fetching side ---- */

/* `s` percent-encoded (all but unreserved characters) into out. */
static void url_escape(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static int plain_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > LEL_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

struct fetch {
    lel_server_t *srv;
    const char *team, *ref;
    char node[128], url[256];
    char img[4200], raw[4200], tmp[4300];
    json_t *desc; /* what the holder described */
    int64_t t0;
};

/* The holder's description of the template: 0, or an HTTP status for the client with err. */
static int describe(struct fetch *f, char *err, size_t errlen)
{
    char ref[900], team[200], url[1400], why[600];
    struct lel_cluster_got got;
    url_escape(f->ref, ref, sizeof(ref));
    url_escape(f->team, team, sizeof(team));
    snprintf(url, sizeof(url), "%s" SERVE_PREFIX "%s?team=%s", f->url, ref, team);
    int st = lel_cluster_get(url, f->srv->cfg.cluster_secret, -1, DESC_MAX, 10000, &got, why, sizeof(why));
    if (st < 0) {
        snprintf(err, errlen, "cluster: template '%s' is on node '%s', which did not answer: %s", f->ref, f->node, why);
        return 502;
    }
    json_error_t je;
    f->desc = json_loadb(got.body, got.len, 0, &je);
    if (st != 200) {
        const char *m = json_string_value(json_object_get(f->desc, "message"));
        snprintf(err, errlen, "cluster: template '%s' cannot be fetched from node '%s': %s", f->ref, f->node,
                 m ? m : "no reason given");
        free(got.body);
        return st == 404 ? 404 : st == 409 ? 409 : 502;
    }
    free(got.body);
    json_t *rec = json_object_get(f->desc, "template");
    if (!json_is_object(rec) || !plain_id(json_string_value(json_object_get(rec, "templateID"))) ||
        !plain_id(json_string_value(json_object_get(rec, "imageBuildID"))) ||
        strcmp(json_string_value(json_object_get(rec, "teamID")) ?: "", f->team) ||
        !json_is_string(json_object_get(rec, "name")) ||
        strlen(json_string_value(json_object_get(json_object_get(f->desc, "image"), "sha256")) ?: "") != 64 ||
        json_integer_value(json_object_get(json_object_get(f->desc, "image"), "size")) <= 0) {
        snprintf(err, errlen, "cluster: node '%s' described template '%s' in a way this node cannot use", f->node,
                 f->ref);
        return 502;
    }
    return 0;
}

/* The image into its place, checked: 0, or an HTTP status with err. */
static int download(struct fetch *f, const char *id, const char *bid, char *err, size_t errlen)
{
    char url[1400], team[200], why[600], dir[4096];
    struct lel_cluster_got got;
    const char *sha = json_string_value(json_object_get(json_object_get(f->desc, "image"), "sha256"));
    uint64_t size = (uint64_t)json_integer_value(json_object_get(json_object_get(f->desc, "image"), "size"));
    snprintf(dir, sizeof(dir), "%s/templates", f->srv->cfg.data_dir);
    mkdir(dir, 0700);
    snprintf(f->img, sizeof(f->img), "%s/%s.%s.img", dir, id, bid);
    snprintf(f->raw, sizeof(f->raw), "%s/%s.%s.raw", dir, id, bid);
    snprintf(f->tmp, sizeof(f->tmp), "%s.fetch.tmp", f->img); /* a crash leaves it to the start's clean-up */
    url_escape(f->team, team, sizeof(team));
    snprintf(url, sizeof(url), "%s" SERVE_PREFIX "%s/image?team=%s", f->url, id, team);
    int fd = open(f->tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cluster: cannot store template '%s' here: %s", f->ref, strerror(errno));
        return 507;
    }
    int st = lel_cluster_get(url, f->srv->cfg.cluster_secret, fd, size, FETCH_TIMEOUT_MS, &got, why, sizeof(why));
    int synced = st == 200 && fsync(fd) == 0;
    close(fd);
    if (st != 200 || !synced || got.len != size || strcmp(got.sha256, sha)) {
        if (st < 0 || st != 200)
            snprintf(err, errlen, "cluster: template '%s': its image did not come from node '%s': %s", f->ref,
                     f->node, st < 0 ? why : "it answered an error");
        else if (!synced)
            snprintf(err, errlen, "cluster: template '%s': its image cannot be stored here: %s", f->ref, strerror(errno));
        else
            snprintf(err, errlen, "cluster: template '%s': the image from node '%s' does not match its description "
                                  "(%zu bytes, sha256 %.16s..., expected %llu bytes, %.16s...)", f->ref, f->node,
                     got.len, got.sha256, (unsigned long long)size, sha);
        unlink(f->tmp);
        return 502;
    }
    if (rename(f->tmp, f->img) < 0) {
        snprintf(err, errlen, "cluster: template '%s': its image cannot be stored here: %s", f->ref, strerror(errno));
        unlink(f->tmp);
        return 507;
    }
    if (lel_image_unpack_memory(f->img, f->raw, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "cluster: template '%s': the image from node '%s' cannot be unpacked: %s", f->ref,
                 f->node, why);
        unlink(f->img);
        return 502;
    }
    return 0;
}

/* The fetched template made this node's: its records and its image's layer record in one
 * write, then its actor and names. 0, or an HTTP status with err. */
static int install(struct fetch *f, json_t *rec, const char *id, const char *bid, char *err, size_t errlen)
{
    char path[LEL_ID_LEN * 2 + 40], key[4200];
    lel_batch_t *b = lel_batch_new(f->srv->store);
    json_t *build = json_object_get(f->desc, "build");
    lel__template_rec_path(f->team, id, path, sizeof(path));
    if (b)
        lel_batch_put(b, LEL_CF_TEMPLATES, path, rec);
    lel__template_rec_path(id, bid, path, sizeof(path));
    if (b && json_is_object(build))
        lel_batch_put(b, LEL_CF_BUILDS, path, build);
    lel_layer_key(f->srv, f->img, key, sizeof(key));
    struct lel_layer_op op = {key, 1, 1, NULL, 0, 0}; /* the template's own reference */
    if (!b || lel_layer_write(f->srv, b, &op, 1) < 0) {
        snprintf(err, errlen, "cluster: template '%s': storage error recording it here", f->ref);
        return 500;
    }
    lel_actor_t *a = lel__template_new(f->srv, json_incref(rec));
    if (!a || lel_registry_put(f->srv->templates, id, a) < 0) {
        if (a)
            lel_actor_unref(a);
        else
            json_decref(rec);
        snprintf(err, errlen, "cluster: template '%s': out of memory", f->ref);
        return 503;
    }
    lel__template_names_put(lel_actor_state(a));
    return 0;
}

/* 0 when the template is here now (or was never anywhere: the create says so), else an HTTP
 * status with err. */
static int fetch_one(lel_server_t *srv, lel_call_t *c, const char *ref, char *err, size_t errlen)
{
    struct fetch f = {.srv = srv, .team = c->team->id, .ref = ref, .t0 = lel_mono_ms()};
    lel_actor_t *a = lel_template_lookup(srv, c->team, ref);
    if (a) { /* an earlier fetch brought it */
        lel_actor_unref(a);
        return 0;
    }
    if (!lel_cluster_holder(srv->cluster, f.team, ref, f.node, sizeof(f.node), f.url, sizeof(f.url)))
        return 0;
    int st = describe(&f, err, errlen);
    json_t *rec = json_deep_copy(json_object_get(f.desc, "template"));
    const char *id = json_string_value(json_object_get(rec, "templateID"));
    const char *bid = json_string_value(json_object_get(rec, "imageBuildID"));
    const char *name = json_string_value(json_object_get(rec, "name"));
    if (st == 0 && (a = lel_registry_get(srv->templates, id, NULL, NULL)) != NULL) {
        st = 0; /* made here meanwhile under another name: the create finds it or says why not */
    } else if (st == 0 && lel__template_name_taken(srv, f.team, name)) {
        snprintf(err, errlen, "cluster: template '%s' on node '%s' has the name of another template of this team "
                              "on this node", ref, f.node);
        st = 409;
    } else if (st == 0 && (st = download(&f, id, bid, err, errlen)) == 0 &&
               (st = install(&f, rec, id, bid, err, errlen)) != 0) {
        unlink(f.img);
        unlink(f.raw);
    }
    if (st == 0 && !a)
        fprintf(stderr, "lelantosd: cluster: template %s (%s) fetched from node '%s' in %lld ms (%lld bytes of image)\n",
                id, name, f.node, (long long)(lel_mono_ms() - f.t0),
                (long long)json_integer_value(json_object_get(json_object_get(f.desc, "image"), "size")));
    json_decref(rec);
    json_decref(f.desc);
    return st;
}

static void fetch_run(lel_server_t *srv, struct job *j)
{
    char err[1600];
    int st = fetch_one(srv, j->c, j->ref, err, sizeof(err));
    if (st == 0) {
        j->then(srv, j->c);
        return;
    }
    lel_call_error(j->c, st, "%s", err);
    lel_call_done(j->c);
}

int lel_template_fetch(lel_server_t *srv, lel_call_t *c, void (*then)(lel_server_t *, lel_call_t *))
{
    const char *ref = json_string_value(json_object_get(c->json, "templateID"));
    char node[128], url[256];
    if (!srv->travel || !c->team || !ref || strlen(ref) >= sizeof(((struct job *)0)->ref))
        return 0;
    lel_actor_t *a = lel_template_lookup(srv, c->team, ref);
    if (a) {
        lel_actor_unref(a);
        return 0;
    }
    struct job *j = lel_cluster_holder(srv->cluster, c->team->id, ref, node, sizeof(node), url, sizeof(url))
                        ? calloc(1, sizeof(*j))
                        : NULL;
    if (!j)
        return 0;
    j->c = c;
    j->then = then;
    snprintf(j->ref, sizeof(j->ref), "%s", ref);
    push(&srv->travel->fetch, j);
    return 1;
}

int lel_template_travel_start(lel_server_t *srv)
{
    struct lel_tpl_travel *tr = calloc(1, sizeof(*tr));
    if (!tr)
        return -ENOMEM;
    int r = worker_start(&tr->fetch, srv, fetch_run);
    if (r == 0)
        r = worker_start(&tr->serve, srv, serve_run);
    srv->travel = tr;
    if (r < 0)
        lel_template_travel_stop(srv);
    return r;
}

void lel_template_travel_stop(lel_server_t *srv)
{
    if (!srv->travel)
        return;
    worker_stop(&srv->travel->fetch);
    worker_stop(&srv->travel->serve);
    free(srv->travel);
    srv->travel = NULL;
}
