/* Debian images for the end-to-end tests; see debimage.h. */
#include "debimage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double deb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void deb_image_build(const char *srcdir, const char *extra, char *path, size_t n)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "bash %s/tools/build-image.sh%s%s%s 2>&1", srcdir, extra[0] ? " -a '" : "", extra,
             extra[0] ? "'" : "");
    FILE *p = popen(cmd, "r");
    char line[1024];
    path[0] = 0;
    while (p && fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '/')
            snprintf(path, n, "%s", line);
        else
            fprintf(stderr, "%s\n", line);
    }
    if (!p || pclose(p) != 0)
        path[0] = 0;
}

/* The whole tar in memory (the harness sends a buffer); NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    if (f && fstat(fileno(f), &st) == 0 && (data = malloc((size_t)st.st_size + 1)) &&
        fread(data, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        *len = (size_t)st.st_size;
    } else {
        free(data);
        data = NULL;
    }
    if (f)
        fclose(f);
    return data;
}

static int wait_build(srv_t *s, const char *tid, const char *bid)
{
    char path[200], status[32] = "";
    resp_t r;
    snprintf(path, sizeof(path), "/templates/%s/builds/%s", tid, bid);
    for (int i = 0; i < 9000; i++) {
        api(s, &r, H1, "GET", path, NULL);
        snprintf(status, sizeof(status), "%s", jstr(&r, "status"));
        if (!strcmp(status, "error"))
            fprintf(stderr, "build: %s\n", r.body);
        resp_free(&r);
        if (!strcmp(status, "ready") || !strcmp(status, "error"))
            break;
        usleep(100000);
    }
    return strcmp(status, "ready") ? -1 : 0;
}

int deb_template(srv_t *s, const char *tar, const char *image, const char *tmpl_json, double *import_s, double *ready_s)
{
    size_t len = 0;
    char *data = slurp(tar, &len);
    char kh[128], path[200], tid[64], bid[64];
    resp_t r;
    if (!data) {
        fprintf(stderr, "cannot read %s\n", tar);
        return -1;
    }
    snprintf(kh, sizeof(kh), "X-API-Key: %s", s->key);
    snprintf(path, sizeof(path), "/images/%s", image);
    const char *hdrs[] = {kh, NULL};
    double t0 = deb_now();
    int ok = http_req(s, &r, H1, "PUT", path, data, len, hdrs) == 0 && r.status == 201;
    free(data);
    if (!ok)
        fprintf(stderr, "import of %s: %ld %s\n", tar, r.status, r.body ? r.body : "");
    resp_free(&r);
    if (import_s)
        *import_s = deb_now() - t0;
    if (!ok)
        return -1;
    api(s, &r, H1, "POST", "/templates", tmpl_json);
    ok = r.status == 202;
    snprintf(tid, sizeof(tid), "%s", jstr(&r, "templateID"));
    snprintf(bid, sizeof(bid), "%s", jstr(&r, "buildID"));
    if (!ok)
        fprintf(stderr, "template: %ld %s\n", r.status, r.body ? r.body : "");
    resp_free(&r);
    ok = ok && wait_build(s, tid, bid) == 0;
    if (ready_s)
        *ready_s = deb_now() - t0;
    return ok ? 0 : -1;
}

long deb_run(srv_t *s, const char *sid, const char *cmd, long timeout_ms, char *out, size_t n)
{
    char path[96];
    json_t *b = json_pack("{s:s, s:I}", "cmd", cmd, "timeoutMs", (json_int_t)timeout_ms);
    char *body = json_dumps(b, 0);
    json_decref(b);
    resp_t r;
    snprintf(path, sizeof(path), "/sandboxes/%s/commands", sid);
    api(s, &r, H1, "POST", path, body);
    free(body);
    long code = r.status == 200 ? (long)json_integer_value(json_object_get(r.json, "exitCode")) : -r.status;
    snprintf(out, n, "%s", r.status == 200 ? jstr(&r, "stdout") : "");
    if (code)
        fprintf(stderr, "  %.300s -> %ld:\n%.2000s\n%.2000s\n", cmd, code, out,
                r.status == 200 ? jstr(&r, "stderr") : r.body ? r.body : "");
    resp_free(&r);
    return code;
}
