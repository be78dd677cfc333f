/* POST /admin/backup while the daemon runs: the backup is the data dir as of that moment (a
 * RocksDB checkpoint of the store, the image files linked), a daemon started on it has what the
 * live one had then (records, keys, and with VMs a snapshot that starts a sandbox with its
 * files), not what changed after; bad dirs are refused and nothing is left of a refused one. */
#include "../../src/vmm/lel_vmm.h"
#include "../lel_test.h"
#include "harness.h"
#include "tarbuild.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static srv_t S, B;

static long backup(srv_t *s, const char *dir_json, resp_t *r, int with_token)
{
    static const char *const hdrs[] = {"X-Admin-Token: test-admin-token", "Content-Type: application/json", NULL};
    static const char *const bare[] = {"Content-Type: application/json", NULL};
    if (http_req(s, r, H1, "POST", "/admin/backup", dir_json, strlen(dir_json), with_token ? hdrs : bare) < 0)
        return -1;
    return r->status;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[256];
    int vms = lel_vmm_probe(why, sizeof(why)) != LEL_VMM_NONE;
    if (!vms)
        printf("SKIP the snapshot part: VMs need /dev/kvm: %s\n", why);
    if (srv_start(&S, vms ? "vmm:\n  backend: auto\nrate_limits:\n  auth_per_s: 1000\n" : "rate_limits:\n  auth_per_s: 1000\n") < 0) {
        fprintf(stderr, "cannot start lelantosd\n");
        return 1;
    }
    resp_t r;
    char sid[64] = "", snap[64] = "", key_id[64] = "", path[256], body[512];
    CHECK(api(&S, &r, H1, "POST", "/sandboxes", "{\"metadata\":{\"backed\":\"up\"},\"timeout\":600}") == 0);
    CHECK_INT(r.status, 201);
    snprintf(sid, sizeof(sid), "%s", jstr(&r, "sandboxID"));
    resp_free(&r);
    CHECK(api(&S, &r, H1, "POST", "/api-keys", "{\"name\":\"before-backup\"}") == 0);
    snprintf(key_id, sizeof(key_id), "%s", jstr(&r, "id"));
    resp_free(&r);
    if (vms) {
        snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/state", sid);
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "X-API-Key: %s", S.key);
        CHECK(http_req(&S, &r, H1, "PUT", path, "as backed up", 12, (const char *const[]){hdr, NULL}) == 0);
        CHECK_INT(r.status, 204);
        resp_free(&r);
        snprintf(path, sizeof(path), "/sandboxes/%s/snapshot", sid);
        CHECK(api(&S, &r, H1, "POST", path, "{\"name\":\"kept\"}") == 0);
        CHECK_INT(r.status, 201);
        snprintf(snap, sizeof(snap), "%s", jstr(&r, "snapshotID"));
        resp_free(&r);
    }

    /* an image: a tree with a symlink and a read-only directory, linked into the backup */
    static const struct ent img[] = {{'d', "etc", NULL, 0755, 0},
                                     {'f', "etc/hostname", "backed-up-image\n", 0644, 0},
                                     {'l', "etc/alias", "hostname", 0777, 0},
                                     {'d', "ro", NULL, 0555, 0},
                                     {'f', "ro/file", "read only\n", 0444, 0},
                                     {0, NULL, NULL, 0, 0}};
    struct buf tar = mk_tar(img, 0);
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "X-API-Key: %s", S.key);
    CHECK(http_req(&S, &r, H1, "PUT", "/images/mini", tar.p, tar.n, (const char *const[]){hdr, NULL}) == 0);
    CHECK_INT(r.status, 201);
    char image_id[64];
    snprintf(image_id, sizeof(image_id), "%s", jstr(&r, "imageID"));
    resp_free(&r);
    free(tar.p);

    /* refusals first: no token, a relative path, inside the data dir, a missing parent */
    CHECK_INT(backup(&S, "{\"dir\":\"/tmp/x\"}", &r, 0), 401);
    resp_free(&r);
    CHECK_INT(backup(&S, "{\"dir\":\"relative/dir\"}", &r, 1), 400);
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"dir\":\"%s/data/inside\"}", S.dir);
    CHECK_INT(backup(&S, body, &r, 1), 400);
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"dir\":\"%s/no/such/parent\"}", S.dir);
    CHECK_INT(backup(&S, body, &r, 1), 400);
    resp_free(&r);

    char bdir[300];
    snprintf(bdir, sizeof(bdir), "%s/backup", S.dir);
    snprintf(body, sizeof(body), "{\"dir\":\"%s\"}", bdir);
    CHECK_INT(backup(&S, body, &r, 1), 201);
    if (vms)
        CHECK(json_integer_value(json_object_get(r.json, "files")) > 0); /* the snapshot's image at least */
    printf("backup: %s\n", r.body ? r.body : "");
    resp_free(&r);
    CHECK_INT(backup(&S, body, &r, 1), 409); /* never into an existing dir */
    resp_free(&r);
    char f[600], link[64] = "";
    snprintf(f, sizeof(f), "%s/images/%s/rootfs/etc/alias", bdir, image_id);
    ssize_t ln = readlink(f, link, sizeof(link) - 1);
    CHECK(ln == 8 && !strncmp(link, "hostname", 8)); /* the symlink as a symlink */
    snprintf(f, sizeof(f), "%s/images/%s/rootfs/ro", bdir, image_id);
    struct stat sb;
    CHECK(stat(f, &sb) == 0 && (sb.st_mode & 07777) == 0555); /* the read-only dir, filled, then its mode */
    snprintf(f, sizeof(f), "%s/images/%s/rootfs/ro/file", bdir, image_id);
    CHECK(access(f, F_OK) == 0);

    /* onto another file system (/dev/shm, where it is one): copied, holes kept */
    struct stat tmp_st, shm_st;
    char shm[128];
    snprintf(shm, sizeof(shm), "/dev/shm/lel-backup-%d", (int)getpid());
    if (stat("/dev/shm", &shm_st) == 0 && stat(S.dir, &tmp_st) == 0 && shm_st.st_dev != tmp_st.st_dev) {
        snprintf(body, sizeof(body), "{\"dir\":\"%s\"}", shm);
        CHECK_INT(backup(&S, body, &r, 1), 201);
        CHECK_INT(json_integer_value(json_object_get(r.json, "linked")), 0);
        CHECK(json_integer_value(json_object_get(r.json, "copied")) >= 5);
        printf("backup to /dev/shm: %s\n", r.body ? r.body : "");
        resp_free(&r);
        char cmd2[2048];
        snprintf(cmd2, sizeof(cmd2), "cmp %s/images/%s/rootfs/ro/file %s/images/%s/rootfs/ro/file && "
                 "[ $(du -sk %s | cut -f1) -lt $(du -sk --apparent-size %s | cut -f1) ]",
                 bdir, image_id, shm, image_id, shm, shm);
        CHECK_INT(system(cmd2), 0); /* the same bytes, in less space than they span (holes kept) */
        snprintf(cmd2, sizeof(cmd2), "rm -rf %s", shm);
        CHECK_INT(system(cmd2), 0);
    } else
        printf("SKIP the copy to another file system: /dev/shm is not one here\n");

    /* after the backup: the key revoked, the image and the snapshot deleted, a new sandbox */
    CHECK(api(&S, &r, H1, "DELETE", "/images/mini", NULL) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    snprintf(path, sizeof(path), "/api-keys/%s", key_id);
    CHECK(api(&S, &r, H1, "DELETE", path, NULL) == 0);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    if (snap[0]) {
        snprintf(path, sizeof(path), "/snapshots/%s", snap);
        CHECK(api(&S, &r, H1, "DELETE", path, NULL) == 0);
        CHECK_INT(r.status, 204);
        resp_free(&r);
    }
    CHECK(api(&S, &r, H1, "POST", "/sandboxes", "{\"metadata\":{\"after\":\"backup\"}}") == 0);
    resp_free(&r);

    /* a second daemon on the backup */
    CHECK(srv_start(&B, vms ? "vmm:\n  backend: auto\n" : NULL) == 0);
    CHECK_INT(srv_stop(&B), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/data && mv %s %s/data", B.dir, bdir, B.dir);
    CHECK_INT(system(cmd), 0);
    CHECK_INT(srv_restart(&B), 0);
    CHECK_STR(B.key, S.key); /* the same team, its key from the backup */
    snprintf(path, sizeof(path), "/sandboxes/%s", sid);
    CHECK(api(&B, &r, H1, "GET", path, NULL) == 0);
    CHECK_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"backed\":\"up\""));
    resp_free(&r);
    CHECK(api(&B, &r, H1, "GET", "/images/mini", NULL) == 0);
    CHECK_INT(r.status, 200); /* the backup's image, deleted from the live daemon after it */
    resp_free(&r);
    CHECK(api(&B, &r, H1, "GET", "/api-keys", NULL) == 0);
    CHECK(r.body && strstr(r.body, "before-backup")); /* revoked only after */
    resp_free(&r);
    CHECK(api(&B, &r, H1, "GET", "/sandboxes?metadata=after%3Dbackup", NULL) == 0);
    CHECK_STR(r.body, "[]");
    resp_free(&r);
    if (snap[0]) { /* the snapshot deleted after the backup starts a sandbox from the backup */
        snprintf(body, sizeof(body), "{\"snapshotID\":\"%s\"}", snap);
        CHECK(api(&B, &r, H1, "POST", "/sandboxes", body) == 0);
        CHECK_INT(r.status, 201);
        char fork[64];
        snprintf(fork, sizeof(fork), "%s", jstr(&r, "sandboxID"));
        resp_free(&r);
        snprintf(path, sizeof(path), "/sandboxes/%s/commands", fork);
        CHECK(api(&B, &r, H1, "POST", path, "{\"cmd\":\"cat /tmp/state\"}") == 0);
        CHECK_STR(jstr(&r, "stdout"), "as backed up");
        resp_free(&r);
    }
    if (lel_test_failed) {
        srv_log_tail(&S);
        srv_log_tail(&B);
    }
    CHECK_INT(srv_stop(&B), 0);
    srv_cleanup(&B);
    CHECK_INT(srv_stop(&S), 0);
    srv_cleanup(&S);
    return lel_test_finish();
}
