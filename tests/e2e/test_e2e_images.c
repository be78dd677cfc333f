/* End to end, API-only: the image store. Archives are built here with libarchive (plain rootfs
 * tars in every compression, `docker save` archives, OCI layouts with gzip layers), uploaded to
 * the real daemon over HTTP/1.1 (with a length and chunked) and HTTP/2, and the unpacked tree
 * is checked on disk: modes, symlinks, hard links, mtimes, whiteouts and opaque directories
 * across layers, skipped device nodes. Bad archives (path traversal, absolute paths, symlinks
 * out of the image used as parents, truncated, not an archive, a compression bomb, unknown
 * media types, a corrupt blob, too large) get a 400 or 413 naming the problem and leave
 * nothing behind under data/images. Records survive a restart; teams see only their own. */
#include "../lel_test.h"
#include "harness.h"
#include "tarbuild.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static srv_t S;

/* ---- talking to the daemon ---- */

static long put_image(const char *name, const void *data, size_t len, enum proto p, int chunked, resp_t *r)
{
    char path[256], kh[128];
    snprintf(path, sizeof(path), "/images/%s", name);
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, "Content-Type: application/octet-stream", chunked ? "Transfer-Encoding: chunked" : NULL, NULL};
    if (http_req(&S, r, p, "PUT", path, data ? data : "", len, hdrs) < 0)
        return -1;
    return r->status;
}

/* PUT; returns the status, and checks the error message holds `want` when given. */
static long put_expect(const char *name, struct buf b, long status, const char *want)
{
    resp_t r;
    long st = put_image(name, b.p, b.n, H1, 0, &r);
    CHECK_INT(st, status);
    if (want && !(r.body && strstr(r.body, want)))
        fprintf(stderr, "  %s: wanted \"%s\" in: %.300s\n", name, want, r.body ? r.body : "(none)");
    if (want)
        CHECK(r.body && strstr(r.body, want));
    resp_free(&r);
    free(b.p);
    return st;
}

static long status_of(const char *method, const char *path)
{
    resp_t r;
    api(&S, &r, H1, method, path, NULL);
    long st = r.status;
    resp_free(&r);
    return st;
}

/* <data>/images/<imageID>/rootfs/<rel> */
static void tree_path(const char *image_id, const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s/data/images/%s/rootfs/%s", S.dir, image_id, rel);
}

/* Entries of data/images (what is kept: one directory per image). */
static int images_dir_entries(void)
{
    char d[300];
    int n = 0;
    snprintf(d, sizeof(d), "%s/data/images", S.dir);
    DIR *dir = opendir(d);
    for (struct dirent *e; dir && (e = readdir(dir));)
        n += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    return n;
}

/* ---- the tests ---- */

static const struct ent ROOTFS[] = {
    {'d', "./", NULL, 0755, 0},
    {'d', "./bin", NULL, 0755, 0},
    {'f', "./bin/hello", "#!/bin/sh\necho hello\n", 04755, 0},
    {'d', "./etc", NULL, 0755, 0},
    {'f', "./etc/os-release", "ID=test\n", 0644, 0},
    {'d', "./ro", NULL, 0555, 0},
    {'f', "./ro/inside", "x", 0444, 0},
    {'l', "./usr-bin", "bin", 0777, 0},
    {'l', "./abs", "/etc/os-release", 0777, 0},
    {'h', "./bin/hello-again", "./bin/hello", 0, 0},
    {'c', "./dev-null", NULL, 0666, 0},
    {'p', "./fifo", NULL, 0600, 0},
    {'f', "./deep/er/file", "implicit parents", 0600, 0},
    {0, NULL, NULL, 0, 0},
};

/* A plain rootfs: every compression, the tree as it was, the record. */
static void plain_rootfs(void)
{
    const int filters[] = {0, 'g', 'z', 'x'};
    const char *names[] = {"plain", "plain-gz:v1", "plain-zst:v1", "plain-xz:v1"};
    for (int i = 0; i < 4; i++) {
        struct buf b = mk_tar(ROOTFS, filters[i]);
        resp_t r;
        CHECK_INT(put_image(names[i], b.p, b.n, i == 2 ? H2 : H1, i == 3, &r), 201);
        if (r.status != 201)
            fprintf(stderr, "  %s: %.300s\n", names[i], r.body ? r.body : "");
        CHECK_STR(jstr(&r, "format"), "rootfs");
        resp_free(&r);
        free(b.p);
    }
    resp_t r;
    CHECK(api(&S, &r, H1, "GET", "/images/plain", NULL) == 0 && r.status == 200);
    CHECK_STR(jstr(&r, "name"), "plain:latest");
    CHECK(!strncmp(jstr(&r, "digest"), "sha256:", 7) && strlen(jstr(&r, "digest")) == 71);
    CHECK_INT(json_integer_value(json_object_get(r.json, "sizeBytes")), 21 + 8 + 1 + 16);
    CHECK_STR(jstr(&r, "workdir"), "/");
    CHECK(json_is_object(json_object_get(r.json, "env")));
    CHECK(json_object_get(r.json, "teamID") == NULL);
    char id[64], p[512], link[256];
    snprintf(id, sizeof(id), "%s", jstr(&r, "imageID"));
    CHECK(r.body && strstr(r.body, "skipped device node 'dev-null'"));
    resp_free(&r);
    struct stat st, st2;
    tree_path(id, "bin/hello", p, sizeof(p));
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 04755 && st.st_size == 21 && st.st_mtime == 1600000000);
    tree_path(id, "bin/hello-again", p, sizeof(p));
    CHECK(stat(p, &st2) == 0 && st2.st_ino == st.st_ino && st2.st_nlink == 2);
    tree_path(id, "ro", p, sizeof(p));
    CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0555 && st.st_mtime == 1600000000);
    tree_path(id, "abs", p, sizeof(p));
    ssize_t n = readlink(p, link, sizeof(link) - 1);
    CHECK(n == 15 && !memcmp(link, "/etc/os-release", 15));
    tree_path(id, "dev-null", p, sizeof(p));
    CHECK(lstat(p, &st) < 0);
    tree_path(id, "fifo", p, sizeof(p));
    CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
    tree_path(id, "deep/er/file", p, sizeof(p));
    CHECK(stat(p, &st) == 0 && st.st_size == 16);
    /* tags are part of the name; no tag is :latest */
    CHECK_INT(status_of("GET", "/images/plain-gz"), 404);
    CHECK_INT(status_of("GET", "/images/plain-gz:v1"), 200);
    CHECK_INT(status_of("GET", "/images/plain%3Alatest"), 200);
    CHECK(api(&S, &r, H1, "GET", "/images", NULL) == 0 && r.status == 200 && json_array_size(r.json) == 4);
    resp_free(&r);
}

/* docker save: two layers, the second deleting a file and making a directory opaque. */
static void docker_archive(void)
{
    const struct ent l1[] = {{'d', "etc", NULL, 0755, 0}, {'f', "etc/keep", "k", 0644, 0}, {'f', "etc/gone", "g", 0644, 0},
                             {'d', "opq", NULL, 0755, 0}, {'f', "opq/lower", "l", 0644, 0}, {'d', "opq/sub", NULL, 0755, 0},
                             {'f', "opq/sub/lower2", "l", 0644, 0}, {'f', "app/old", "o", 0644, 0}, {0, NULL, NULL, 0, 0}};
    const struct ent l2[] = {{'f', "etc/.wh.gone", "", 0644, 0}, {'f', "opq/sub/upper", "u", 0644, 0},
                             {'f', "opq/.wh..wh..opq", "", 0644, 0}, {'f', "opq/upper", "u", 0644, 0},
                             {'f', ".wh.app", "", 0644, 0}, {'f', "etc/.wh..wh.plnk", "", 0644, 0}, {0, NULL, NULL, 0, 0}};
    struct buf t1 = mk_tar(l1, 0), t2 = mk_tar(l2, 'g');
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/bin:/bin\",\"LANG=C.UTF-8\"],"
                      "\"WorkingDir\":\"/app\",\"User\":\"1000:1000\",\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"]},"
                      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    char cfgname[80], man[600], hex[65];
    sha256_hex(cfg, strlen(cfg), hex);
    snprintf(cfgname, sizeof(cfgname), "%s.json", hex);
    const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
    char n1[100], n2[100];
    snprintf(n1, sizeof(n1), "%s/layer.tar", h1);
    snprintf(n2, sizeof(n2), "%s/layer.tar", h2);
    snprintf(man, sizeof(man), "[{\"Config\":\"%s\",\"RepoTags\":[\"x:latest\"],\"Layers\":[\"%s\",\"%s\"]}]", cfgname, n1, n2);
    const struct blob bs[] = {{n1, t1.p, t1.n}, {n2, t2.p, t2.n}, {cfgname, cfg, strlen(cfg)}, {"manifest.json", man, strlen(man)}};
    struct buf outer = mk_outer(bs, 4);
    free(t1.p);
    free(t2.p);
    resp_t r;
    CHECK_INT(put_image("docker", outer.p, outer.n, H1, 0, &r), 201);
    if (r.status != 201)
        fprintf(stderr, "  docker: %.300s\n", r.body ? r.body : "");
    free(outer.p);
    char digest[80];
    snprintf(digest, sizeof(digest), "sha256:%s", hex);
    CHECK_STR(jstr(&r, "format"), "docker");
    CHECK_STR(jstr(&r, "digest"), digest);
    CHECK_STR(jstr(&r, "workdir"), "/app");
    CHECK_STR(jstr(&r, "user"), "1000:1000");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "env"), "LANG")), "C.UTF-8");
    CHECK_STR(json_string_value(json_array_get(json_object_get(r.json, "cmd"), 0)), "echo hi");
    CHECK_STR(json_string_value(json_array_get(json_object_get(r.json, "entrypoint"), 1)), "-c");
    CHECK_INT(json_integer_value(json_object_get(r.json, "layers")), 2);
    char id[64], p[512];
    struct stat st;
    snprintf(id, sizeof(id), "%s", jstr(&r, "imageID"));
    resp_free(&r);
    const char *there[] = {"etc/keep", "opq/upper", "opq/sub/upper", NULL};
    const char *gone[] = {"etc/gone", "etc/.wh.gone", "opq/lower", "opq/sub/lower2", "opq/.wh..wh..opq", "app", "etc/.wh..wh.plnk", NULL};
    for (int i = 0; there[i]; i++) {
        tree_path(id, there[i], p, sizeof(p));
        CHECK(lstat(p, &st) == 0);
    }
    for (int i = 0; gone[i]; i++) {
        tree_path(id, gone[i], p, sizeof(p));
        if (lstat(p, &st) == 0)
            fprintf(stderr, "  still there: %s\n", gone[i]);
        CHECK(lstat(p, &st) < 0);
    }
}

/* An OCI layout: index -> nested index -> manifest (linux/amd64) -> config and gzip layers. */
static struct buf oci_archive(const char *layer_type, int corrupt)
{
    const struct ent l1[] = {{'f', "hello.txt", "from oci\n", 0644, 0}, {'l', "lib", "usr/lib", 0777, 0},
                             {'f', "usr/lib/libx.so", "elf", 0755, 0}, {0, NULL, NULL, 0, 0}};
    static char names[5][100], docs[3][800];
    static struct buf layer;
    char hl[65], hc[65], hm[65], hi[65];
    free(layer.p);
    layer = mk_tar(l1, 'g');
    sha256_hex(layer.p, layer.n, hl);
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"],\"Cmd\":[\"/bin/sh\"]}}";
    sha256_hex(cfg, strlen(cfg), hc);
    snprintf(docs[0], sizeof(docs[0]),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
             "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
             "\"%s\",\"digest\":\"sha256:%s\",\"size\":%zu}]}",
             hc, strlen(cfg), layer_type, hl, layer.n);
    sha256_hex(docs[0], strlen(docs[0]), hm);
    snprintf(docs[1], sizeof(docs[1]),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":1,"
             "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
             "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%zu,"
             "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}",
             "3333333333333333333333333333333333333333333333333333333333333333", hm, strlen(docs[0]));
    sha256_hex(docs[1], strlen(docs[1]), hi);
    snprintf(docs[2], sizeof(docs[2]),
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"digest\":\"sha256:%s\",\"size\":%zu}]}", hi, strlen(docs[1]));
    snprintf(names[0], sizeof(names[0]), "blobs/sha256/%s", hl);
    snprintf(names[1], sizeof(names[1]), "blobs/sha256/%s", hc);
    snprintf(names[2], sizeof(names[2]), "blobs/sha256/%s", hm);
    snprintf(names[3], sizeof(names[3]), "blobs/sha256/%s", hi);
    if (corrupt)
        layer.p[layer.n / 2] ^= 0x55;
    const struct blob bs[] = {{"oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30}, {names[0], layer.p, layer.n},
                              {names[1], cfg, strlen(cfg)}, {names[2], docs[0], strlen(docs[0])},
                              {names[3], docs[1], strlen(docs[1])}, {"index.json", docs[2], strlen(docs[2])}};
    return mk_outer(bs, 6);
}

static void oci(void)
{
    struct buf b = oci_archive("application/vnd.oci.image.layer.v1.tar+gzip", 0);
    resp_t r;
    CHECK_INT(put_image("oci:1.0", b.p, b.n, H2, 0, &r), 201);
    if (r.status != 201)
        fprintf(stderr, "  oci: %.300s\n", r.body ? r.body : "");
    free(b.p);
    CHECK_STR(jstr(&r, "format"), "oci");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r.json, "env"), "A")), "1");
    char id[64], p[512];
    struct stat st;
    snprintf(id, sizeof(id), "%s", jstr(&r, "imageID"));
    resp_free(&r);
    tree_path(id, "lib/libx.so", p, sizeof(p)); /* through the image's own relative symlink */
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0755);
    put_expect("oci-bad", oci_archive("application/vnd.oci.image.layer.v1.tar+encrypted", 0), 400, "unknown layer media type");
    put_expect("oci-corrupt", oci_archive("application/vnd.oci.image.layer.v1.tar+gzip", 1), 400, "is corrupt");
}

/* Every bad archive: 400 (413 when too large) naming the problem, nothing kept, nothing
 * written outside the image's own directory. */
static void bad_archives(void)
{
    int before = images_dir_entries();
    const struct ent trav[] = {{'f', "ok", "x", 0644, 0}, {'f', "a/../../escape", "x", 0644, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("trav", mk_tar(trav, 0), 400, "has '..' in its path");
    const struct ent bin[] = {{'f', "caf\xe9/../../x", "x", 0644, 0}, {0, NULL, NULL, 0, 0}}; /* not UTF-8 */
    put_expect("binary", mk_tar(bin, 0), 400, "has '..' in its path");
    const struct ent absol[] = {{'f', "/etc/passwd-evil", "x", 0644, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("abs", mk_tar(absol, 'g'), 400, "has an absolute path");
    char out[400];
    const struct ent esc[] = {{'l', "evil", "/tmp", 0777, 0}, {'f', "evil/lel-image-escape", "x", 0644, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("esc", mk_tar(esc, 0), 400, "points outside the image");
    CHECK(access("/tmp/lel-image-escape", F_OK) < 0);
    const struct ent esc2[] = {{'d', "d", NULL, 0755, 0}, {'l', "d/up", "../..", 0777, 0}, {'f', "d/up/lel-escape2", "x", 0644, 0},
                               {0, NULL, NULL, 0, 0}};
    put_expect("esc2", mk_tar(esc2, 0), 400, "points outside the image");
    snprintf(out, sizeof(out), "%s/data/images/lel-escape2", S.dir);
    CHECK(access(out, F_OK) < 0);
    const struct ent esc3[] = {{'l', "l1", "l2", 0777, 0}, {'l', "l2", "l1", 0777, 0}, {'f', "l1/x", "x", 0644, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("loop", mk_tar(esc3, 0), 400, "too many symlinks");
    const struct ent notdir[] = {{'f', "a", "x", 0644, 0}, {'f', "a/b", "x", 0644, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("notdir", mk_tar(notdir, 0), 400, "not a directory");
    const struct ent hard[] = {{'h', "h", "../../etc/passwd", 0, 0}, {0, NULL, NULL, 0, 0}};
    put_expect("hard", mk_tar(hard, 0), 400, "hard link");
    /* truncated: half of a gzip'd tar; and the tar's own end cut off */
    struct buf t = mk_tar(ROOTFS, 'g');
    t.n /= 2;
    put_expect("trunc-gz", t, 400, "truncated");
    const struct ent big[] = {{'f', "big", NULL, 0644, 100000}, {0, NULL, NULL, 0, 0}};
    t = mk_tar(big, 0);
    t.n = 50000;
    put_expect("trunc-tar", t, 400, "runcated");
    struct buf junk = {malloc(4096), 4096};
    for (int i = 0; i < 4096; i++)
        junk.p[i] = (char)(i * 7 + 3);
    put_expect("junk", junk, 400, "not a tar archive");
    put_expect("empty", (struct buf){NULL, 0}, 400, "empty");
    /* a bomb: 48 MiB of zeros in a ~50 KiB gzip, past this server's 32 MiB */
    const struct ent bomb[] = {{'f', "zeros", NULL, 0644, 48u << 20}, {0, NULL, NULL, 0, 0}};
    t = mk_tar(bomb, 'g');
    CHECK(t.n < (1u << 20));
    put_expect("bomb", t, 400, "images.max_unpacked_bytes");
    /* past images.max_bytes (8 MiB): with a length (refused at the head), and chunked (as it passes) */
    struct buf huge = {calloc(1, 9u << 20), 9u << 20};
    resp_t r;
    CHECK_INT(put_image("huge", huge.p, huge.n, H1, 0, &r), 413);
    CHECK(r.body && strstr(r.body, "images.max_bytes"));
    resp_free(&r);
    CHECK_INT(put_image("huge", huge.p, huge.n, H1, 1, &r), 413);
    resp_free(&r);
    CHECK_INT(put_image("huge", huge.p, huge.n, H2, 0, &r), 413);
    resp_free(&r);
    free(huge.p);
    put_expect("Bad-Name", mk_tar(ROOTFS, 0), 400, "invalid image name");
    put_expect("x:bad/tag", mk_tar(ROOTFS, 0), 404, NULL);
    usleep(100000);
    CHECK_INT(images_dir_entries(), before); /* nothing of them stayed */
    CHECK_INT(status_of("GET", "/images/trav"), 404);
    CHECK_INT(status_of("GET", "/images/bomb"), 404);
}

static long post_template(const char *body, char *tid, size_t n)
{
    resp_t r;
    api(&S, &r, H1, "POST", "/templates", body);
    long st = r.status;
    if (tid)
        snprintf(tid, n, "%s", jstr(&r, "templateID"));
    if (st != 202 && st != 400 && st != 409)
        fprintf(stderr, "  POST /templates %s -> %ld %.200s\n", body, st, r.body ? r.body : "");
    if (st == 400)
        printf("  400: %s\n", jstr(&r, "error"));
    resp_free(&r);
    return st;
}

/* Templates from images: the definition is checked; the template holds the image. */
static void templates_from_images(char *tid, size_t n)
{
    CHECK_INT(post_template("{\"name\":\"t0\",\"fromImage\":\"nope\"}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"fromImage\":\"Bad!\"}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"fromImage\":\"oci:1.0\",\"fromTemplate\":\"base\"}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"fromImage\":\"oci:1.0\",\"steps\":[{\"type\":\"file\",\"path\":\"/a\","
                            "\"content\":\"\",\"mode\":\"0999\"}]}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"steps\":[{\"type\":\"file\",\"path\":\"/a\",\"content\":\"\",\"mode\":\"rw\"}]}",
                            NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"steps\":[{\"type\":\"env\",\"envs\":{\"A=B\":\"x\"}}]}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"steps\":[{\"type\":\"workdir\",\"path\":\"rel\"}]}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"steps\":[{\"type\":\"copy\",\"src\":\"../x\",\"dest\":\"/x\"}]}", NULL, 0), 400);
    CHECK_INT(post_template("{\"name\":\"t0\",\"steps\":[{\"type\":\"frobnicate\"}]}", NULL, 0), 400);
    CHECK_INT(status_of("DELETE", "/images/plain-xz:v1"), 204);
    /* Dockerfiles: the subset, and a 400 naming the line of anything else */
    const char *bad_df[][2] = {{"FROM oci:1.0\nRUN true\nEXPOSE 80\n", "line 3: 'EXPOSE' is not supported"},
                               {"FROM oci:1.0\nFROM base\n", "line 2: a second FROM"},
                               {"# just a comment\nRUN true\n", "line 2: 'RUN' before FROM"},
                               {"\n\n", "no FROM"},
                               {"FROM base\nADD https://example.com/x /x\n", "ADD of a URL"},
                               {"FROM base\nCOPY --from=build /a /b\n", "COPY --from"},
                               {"FROM nope-such\n", "template 'nope-such' not found"},
                               {"FROM base\nRUN true \\\n  && false\nHEALTHCHECK CMD true\n", "line 4: 'HEALTHCHECK'"}};
    for (size_t i = 0; i < sizeof(bad_df) / sizeof(bad_df[0]); i++) {
        json_t *b = json_pack("{s:s, s:s}", "name", "df", "dockerfile", bad_df[i][0]);
        char *body = json_dumps(b, 0);
        resp_t r;
        api(&S, &r, H1, "POST", "/templates", body);
        CHECK_INT(r.status, 400);
        if (!r.body || !strstr(r.body, bad_df[i][1]))
            fprintf(stderr, "  dockerfile %zu: wanted \"%s\" in %.300s\n", i, bad_df[i][1], r.body ? r.body : "");
        CHECK(r.body && strstr(r.body, bad_df[i][1]));
        resp_free(&r);
        free(body);
        json_decref(b);
    }
    CHECK_INT(post_template("{\"name\":\"df\",\"dockerfile\":\"FROM base\",\"steps\":[]}", NULL, 0), 400);
    char dtid[64];
    CHECK_INT(post_template("{\"name\":\"df-ok\",\"dockerfile\":\"# syntax=docker/dockerfile:1\\nFROM oci:1.0 AS app\\n"
                            "ARG V=1\\nENV A=$V B=\\\"two words\\\"\\nWORKDIR app\\nRUN echo hi && \\\\\\n  echo there\\n"
                            "COPY --chown=1:1 a.txt b/ ./\\nUSER app\\nCMD [\\\"python3\\\", \\\"-m\\\", \\\"http.server\\\"]\\n\"}",
                            dtid, sizeof(dtid)), 202);
    char dpath[96];
    snprintf(dpath, sizeof(dpath), "/templates/%s", dtid);
    CHECK_INT(status_of("DELETE", dpath), 204); /* and its hold on oci:1.0 went with it */
    CHECK_INT(post_template("{\"name\":\"t1\",\"fromImage\":\"oci:1.0\",\"steps\":[{\"type\":\"file\",\"path\":\"/a\","
                            "\"content\":\"\",\"mode\":\"0644\"},{\"type\":\"env\",\"envs\":{\"B\":\"2\"}},"
                            "{\"type\":\"workdir\",\"path\":\"/srv\"},{\"type\":\"user\",\"user\":\"app\"}]}", tid, n),
              202);
    /* a creation refused after it took its use gives it back (checked by the DELETE at the end) */
    CHECK_INT(post_template("{\"name\":\"t1\",\"fromImage\":\"oci:1.0\"}", NULL, 0), 409);
    CHECK_INT(status_of("DELETE", "/images/oci:1.0"), 409);
    resp_t r;
    struct buf b = mk_tar(ROOTFS, 0);
    /* a build context: only a readable tar, only while the build waits, never for base */
    char cpath[128], kh[128];
    snprintf(cpath, sizeof(cpath), "/templates/%s/context", tid);
    snprintf(kh, sizeof(kh), "X-API-Key: %s", S.key);
    const char *hdrs[] = {kh, NULL};
    CHECK(http_req(&S, &r, H1, "PUT", cpath, "not a tar at all", 16, hdrs) == 0 && r.status == 400);
    CHECK(r.body && strstr(r.body, "not a readable tar"));
    resp_free(&r);
    CHECK(http_req(&S, &r, H2, "PUT", cpath, b.p, b.n, hdrs) == 0 && r.status == 204);
    resp_free(&r);
    CHECK(http_req(&S, &r, H1, "PUT", "/templates/base/context", b.p, b.n, hdrs) == 0 && r.status == 403);
    resp_free(&r);
    CHECK(http_req(&S, &r, H1, "PUT", "/templates/nope/context", b.p, b.n, hdrs) == 0 && r.status == 404);
    resp_free(&r);
    char ctxfile[400];
    snprintf(ctxfile, sizeof(ctxfile), "%s/data/templates/%s.context", S.dir, tid);
    CHECK(access(ctxfile, F_OK) == 0);
    CHECK_INT(put_image("oci:1.0", b.p, b.n, H1, 0, &r), 409); /* nor replaced */
    CHECK(r.body && strstr(r.body, "used by 1 template"));
    resp_free(&r);
    free(b.p);
}

/* Replace, delete, teams, restart. */
static void lifecycle(void)
{
    resp_t r;
    struct buf b = mk_tar(ROOTFS, 'z');
    CHECK(api(&S, &r, H1, "GET", "/images/plain", NULL) == 0);
    char old[64];
    snprintf(old, sizeof(old), "%s", jstr(&r, "imageID"));
    resp_free(&r);
    CHECK_INT(put_image("plain", b.p, b.n, H1, 0, &r), 200); /* replaced */
    CHECK(strcmp(jstr(&r, "imageID"), old) != 0);
    resp_free(&r);
    char p[512];
    snprintf(p, sizeof(p), "%s/data/images/%s", S.dir, old);
    CHECK(access(p, F_OK) < 0);
    /* another team sees none of them */
    const char *tok[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    CHECK(http_req(&S, &r, H1, "POST", "/admin/teams", "{\"name\":\"other\"}", 16, tok) == 0 && r.status == 201);
    char key[64];
    snprintf(key, sizeof(key), "%s", jstr(&r, "apiKey"));
    resp_free(&r);
    CHECK(api_key(&S, &r, H1, key, "GET", "/images", NULL) == 0 && r.status == 200 && json_array_size(r.json) == 0);
    resp_free(&r);
    CHECK(api_key(&S, &r, H1, key, "GET", "/images/plain", NULL) == 0 && r.status == 404);
    resp_free(&r);
    CHECK(api_key(&S, &r, H1, key, "DELETE", "/images/plain", NULL) == 0 && r.status == 404);
    resp_free(&r);
    char tid[64], tpath[96];
    templates_from_images(tid, sizeof(tid));
    /* a restart keeps them, and the template's hold on its image */
    CHECK(srv_stop(&S) == 0);
    CHECK(srv_restart(&S) == 0);
    CHECK_INT(status_of("DELETE", "/images/oci:1.0"), 409);
    snprintf(tpath, sizeof(tpath), "/templates/%s", tid);
    CHECK_INT(status_of("DELETE", tpath), 204);
    CHECK(api(&S, &r, H1, "GET", "/images", NULL) == 0 && r.status == 200);
    size_t n = json_array_size(r.json);
    CHECK(n == 5);
    resp_free(&r);
    CHECK(api(&S, &r, H1, "GET", "/images/docker", NULL) == 0 && r.status == 200);
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(&r, "imageID"));
    resp_free(&r);
    CHECK_INT(status_of("DELETE", "/images/docker"), 204);
    CHECK_INT(status_of("DELETE", "/images/docker"), 404);
    CHECK_INT(status_of("GET", "/images/docker"), 404);
    snprintf(p, sizeof(p), "%s/data/images/%s", S.dir, id);
    CHECK(access(p, F_OK) < 0);
    CHECK_INT(images_dir_entries(), (int)n - 1);
    CHECK_INT(status_of("DELETE", "/images/oci:1.0"), 204); /* its template is gone */
    free(b.p);
}

int main(void)
{
    if (srv_start(&S, "images:\n  max_bytes: 8388608\n  max_unpacked_bytes: 33554432\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    plain_rootfs();
    docker_archive();
    oci();
    bad_archives();
    lifecycle();
    if (lel_test_failed)
        srv_log_tail(&S);
    CHECK(srv_stop(&S) == 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
