/* Durability: a graceful restart keeps everything; a kill -9 in the middle of a write load
 * loses nothing that a client was told about (every 201 is there after restart). */
#include "../../src/store/lel_store.h"
#include "../lel_test.h"
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define WRITERS 4
#define MAXACK 20000

static srv_t S;
static char acked[WRITERS][MAXACK][24];
static int nacked[WRITERS];
static volatile int stop_load;

static void *writer(void *arg)
{
    long w = (long)arg;
    char body[128];
    for (int i = 0; !stop_load && nacked[w] < MAXACK; i++) {
        resp_t r;
        snprintf(body, sizeof(body), "{\"metadata\":{\"writer\":\"%ld\",\"n\":\"%d\"}}", w, i);
        int rc = api(&S, &r, w % 2 ? H2 : H1, "POST", "/sandboxes", body);
        if (rc == 0 && r.status == 201)
            snprintf(acked[w][nacked[w]++], 24, "%s", jstr(&r, "sandboxID"));
        resp_free(&r);
        if (rc < 0)
            break; /* the server is gone */
    }
    return NULL;
}

/* Rewrites the sandbox's and the template's records with diskSizeMB 512, as versions before it
 * said what is real wrote them (the daemon is stopped). */
static void as_older_versions_wrote(const char *team, const char *sid, const char *tid)
{
    char dir[300], key[128], err[256];
    lel_store_t *st;
    snprintf(dir, sizeof(dir), "%s/data/db", S.dir);
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    enum lel_cf cfs[] = {LEL_CF_SANDBOXES, LEL_CF_TEMPLATES};
    const char *ids[] = {sid, tid};
    for (int i = 0; i < 2; i++) {
        json_t *rec = NULL;
        snprintf(key, sizeof(key), "%s/%s", team, ids[i]);
        CHECK(lel_store_get(st, cfs[i], key, &rec) == 0);
        if (!rec)
            continue;
        json_object_set_new(rec, "diskSizeMB", json_integer(512));
        CHECK(lel_store_put(st, cfs[i], key, rec) == 0);
        json_decref(rec);
    }
    lel_store_close(st);
}

static void graceful_restart(void)
{
    resp_t r;
    char path[128];
    api(&S, &r, H1, "POST", "/sandboxes", "{\"metadata\":{\"keep\":\"me\"},\"timeout\":3600}");
    char *sid = strdup(jstr(&r, "sandboxID"));
    resp_free(&r);
    snprintf(path, sizeof(path), "/sandboxes/%s/pause", sid);
    api(&S, &r, H1, "POST", path, NULL);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    api(&S, &r, H1, "POST", "/templates", "{\"name\":\"persisted\"}");
    char *tid = strdup(jstr(&r, "templateID"));
    resp_free(&r);
    api(&S, &r, H1, "POST", "/api-keys", "{\"name\":\"second\"}");
    char *key2 = strdup(jstr(&r, "key"));
    resp_free(&r);
    api(&S, &r, H1, "POST", "/teams/members", "{\"email\":\"keep@example.com\"}");
    CHECK_INT(r.status, 201);
    resp_free(&r);

    api(&S, &r, H1, "GET", "/teams", NULL);
    char *team = strdup(jstr(&r, "teamID"));
    resp_free(&r);

    CHECK_INT(srv_stop(&S), 0);
    as_older_versions_wrote(team, sid, tid);
    CHECK(srv_restart(&S) == 0);

    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    api(&S, &r, H2, "GET", path, NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "state"), "paused");
    CHECK(json_integer_value(json_object_get(r.json, "diskSizeMB")) == 256);
    resp_free(&r);
    api(&S, &r, H1, "GET", "/sandboxes?state=paused", NULL); /* read from the store: corrected there too */
    CHECK(json_integer_value(json_object_get(json_array_get(r.json, 0), "diskSizeMB")) == 256);
    resp_free(&r);
    api(&S, &r, H1, "GET", "/templates", NULL);
    for (size_t i = 0; i < json_array_size(r.json); i++)
        CHECK(json_integer_value(json_object_get(json_array_get(r.json, i), "diskSizeMB")) == 256);
    resp_free(&r);
    free(team);
    snprintf(path, sizeof(path), "/sandboxes/%s/resume", sid);
    api(&S, &r, H2, "POST", path, NULL);
    CHECK_INT(r.status, 201);
    resp_free(&r);
    snprintf(path, sizeof(path), "/templates/%s", tid);
    api_key(&S, &r, H2, key2, "GET", path, NULL);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "name"), "persisted");
    resp_free(&r);
    api(&S, &r, H2, "GET", "/teams/members", NULL);
    CHECK(r.body && strstr(r.body, "keep@example.com"));
    resp_free(&r);
    api(&S, &r, H1, "GET", "/templates/base", NULL);
    CHECK_INT(r.status, 200);
    CHECK(json_integer_value(json_object_get(r.json, "spawnCount")) >= 1);
    resp_free(&r);
    free(sid);
    free(tid);
    free(key2);
}

/* The store as a crash may leave it (the daemon is gone): a snapshot record naming keepme.img,
 * whose layer record counts two references too many (a flatten's hold and a sandbox's the crash
 * took); leak.img's record, which nothing holds any more; base.img, the base keepme's record
 * names, with no record of its own. */
static void image_records(void)
{
    char dir[300], err[256];
    lel_store_t *st;
    snprintf(dir, sizeof(dir), "%s/data/db", S.dir);
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    json_t *snap = json_pack("{s:s, s:s, s:s}", "snapshotID", "keepme", "sandboxID", "gone", "teamID", "t");
    json_t *keep = json_pack("{s:i, s:i, s:s}", "refs", 3, "depth", 1, "base", "snapshots/base.img");
    json_t *leak = json_pack("{s:i, s:i}", "refs", 2, "depth", 0);
    CHECK(lel_store_put(st, LEL_CF_SNAPSHOTS, "t/keepme", snap) == 0);
    CHECK(lel_store_put(st, LEL_CF_LAYERS, "snapshots/keepme.img", keep) == 0);
    CHECK(lel_store_put(st, LEL_CF_LAYERS, "snapshots/leak.img", leak) == 0);
    json_decref(snap);
    json_decref(keep);
    json_decref(leak);
    lel_store_close(st);
}

/* After the restart's check (the daemon stopped): keepme holds one reference (its owner's) and
 * still its base; base.img has a record now, held by keepme; leak's record is gone. */
static void image_records_checked(void)
{
    char dir[300], err[256];
    lel_store_t *st;
    json_t *rec = NULL;
    snprintf(dir, sizeof(dir), "%s/data/db", S.dir);
    CHECK(lel_store_open(dir, 1, &st, err, sizeof(err)) == 0);
    CHECK(lel_store_get(st, LEL_CF_LAYERS, "snapshots/keepme.img", &rec) == 0);
    CHECK(json_integer_value(json_object_get(rec, "refs")) == 1);
    CHECK_STR(json_string_value(json_object_get(rec, "base")), "snapshots/base.img");
    json_decref(rec);
    rec = NULL;
    CHECK(lel_store_get(st, LEL_CF_LAYERS, "snapshots/base.img", &rec) == 0);
    CHECK(json_integer_value(json_object_get(rec, "refs")) == 1);
    json_decref(rec);
    rec = NULL;
    CHECK(lel_store_get(st, LEL_CF_LAYERS, "snapshots/leak.img", &rec) == -ENOENT);
    json_decref(rec);
    lel_store_close(st);
}

static void kill9_under_load(void)
{
    pthread_t th[WRITERS];
    for (long w = 0; w < WRITERS; w++)
        pthread_create(&th[w], NULL, writer, (void *)w);
    usleep(1500000);
    srv_kill9(&S); /* mid-load: some requests are in flight */
    stop_load = 1;
    for (int w = 0; w < WRITERS; w++)
        pthread_join(th[w], NULL);
    int total = 0;
    for (int w = 0; w < WRITERS; w++)
        total += nacked[w];
    printf("acknowledged creates before kill -9: %d\n", total);
    CHECK(total > 20);
    /* what a crash leaves of an image being written goes at restart, and so does an image no
     * record names (written, then the crash came before its snapshot's record); one a
     * snapshot record names stays, and the counts of images others depend on are computed again
     * (image_check) */
    const char *files[] = {"abc.raw.123.tmp", "abc.img", "abc.raw", "fork-x.img", "fork-x.raw", "fork-y.img.tmp",
                           "fork-y.raw.77.tmp", "raw-alone.raw", "leak.img", "keepme.img", "keepme.raw", "base.img",
                           NULL};
    const int stays[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    char path[300];
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof(path), "%s/data/snapshots/%s", S.dir, files[i]);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f)
            fclose(f);
    }
    image_records();
    CHECK(srv_restart(&S) == 0);
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof(path), "%s/data/snapshots/%s", S.dir, files[i]);
        CHECK(access(path, F_OK) == (stays[i] ? 0 : -1));
        if ((access(path, F_OK) == 0) != stays[i])
            fprintf(stderr, "%s: %s after the restart\n", files[i], stays[i] ? "gone" : "still there");
    }
    int missing = 0;
    for (int w = 0; w < WRITERS; w++) {
        for (int i = 0; i < nacked[w]; i++) {
            resp_t r;
            char path[64];
            snprintf(path, sizeof(path), "/sandboxes/%s", acked[w][i]);
            api(&S, &r, H2, "GET", path, NULL);
            if (r.status != 200 || strcmp(jstr(&r, "state"), "running")) {
                missing++;
                fprintf(stderr, "lost acknowledged sandbox %s (status %ld)\n", acked[w][i], r.status);
            }
            resp_free(&r);
        }
    }
    CHECK_INT(missing, 0);
    /* the service keeps working after recovery */
    resp_t r;
    api(&S, &r, H1, "POST", "/sandboxes", "{}");
    CHECK_INT(r.status, 201);
    resp_free(&r);
}

int main(void)
{
    if (srv_start(&S, "rate_limits:\n  general_per_s: 1000000\n  auth_per_s: 100000\nteams:\n  max_sandboxes: 1000000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    graceful_restart();
    kill9_under_load();
    CHECK_INT(srv_stop(&S), 0);
    image_records_checked();
    srv_cleanup(&S);
    return lel_test_finish();
}
