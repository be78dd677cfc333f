/* Config: defaults, YAML overlay, and refusal of unknown keys / bad values naming the key. */
#include "../lel_test.h"

#include <lelantos/lelantos.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int load(const char *yaml, lel_config_t *cfg, char *err, size_t n)
{
    char path[] = "/tmp/lel-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    lel_config_init(cfg);
    int r = lel_config_load_yaml(cfg, path, err, n);
    unlink(path);
    return r;
}

int main(void)
{
    lel_config_t cfg;
    char err[256];
    CHECK(lel_config_init(&cfg) == 0);
    CHECK_INT(cfg.nlisten, 1);
    CHECK_STR(cfg.listen[0], "127.0.0.1:3000");
    CHECK_INT(cfg.max_body_bytes, 1 << 20);
    CHECK(cfg.rate_general == 200 && cfg.rate_auth == 3);
    lel_config_free(&cfg);

    CHECK(load("listen: [\"127.0.0.1:1\", \"[::1]:2\"]\nhttp:\n  threads: 3\nrate_limits:\n  general_per_s: 5.5\n"
               "store:\n  sync: false\ndata_dir: /tmp/x\nteams:\n  max_sandboxes: 7\n",
               &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.nlisten, 2);
    CHECK_STR(cfg.listen[1], "[::1]:2");
    CHECK_INT(cfg.http_threads, 3);
    CHECK(cfg.rate_general == 5.5);
    CHECK_INT(cfg.store_sync, 0);
    CHECK_STR(cfg.data_dir, "/tmp/x");
    CHECK_INT(cfg.team_max_sandboxes, 7);
    lel_config_free(&cfg);

    CHECK(load("http:\n  threadz: 3\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "http.threadz") != NULL);
    lel_config_free(&cfg);
    CHECK(load("http:\n  threads: 0\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "http.threads") != NULL);
    lel_config_free(&cfg);
    CHECK(load("workers: many\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "workers") != NULL);
    lel_config_free(&cfg);
    CHECK(load("listen: nowhere\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "listen") != NULL);
    lel_config_free(&cfg);
    CHECK(load("store:\n  sync: maybe\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "store.sync") != NULL);
    lel_config_free(&cfg);
    CHECK(load("http: [1, 2\n", &cfg, err, sizeof(err)) < 0);
    lel_config_free(&cfg);
    CHECK(load("", &cfg, err, sizeof(err)) == 0);
    lel_config_free(&cfg);
    /* pre-faulting pooled VMs' first writes: off unless turned on */
    CHECK(load("", &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.template_prefault_writes, 0);
    lel_config_free(&cfg);
    CHECK(load("templates:\n  prefault_writes: true\n", &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.template_prefault_writes, 1);
    lel_config_free(&cfg);
    CHECK(load("templates:\n  prefault_writes: maybe\n", &cfg, err, sizeof(err)) < 0);
    lel_config_free(&cfg);
    /* cluster mode: off by default; its keys load, bad values name the key */
    CHECK(load("", &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.ncluster_etcd, 0);
    CHECK_INT(cfg.cluster_lease_ttl_s, 10);
    CHECK_STR(cfg.cluster_prefix, "/lelantos/");
    CHECK_STR(cfg.cluster_placement, "most_free_memory");
    lel_config_free(&cfg);
    CHECK(load("cluster:\n  etcd: [http://127.0.0.1:2379, http://127.0.0.1:22379]\n  node_name: a\n  secret: s\n"
               "  lease_ttl_s: 3\n  placement: local\n  etcd_tls:\n    ca: /x.pem\n  etcd_auth:\n    user: u\n",
               &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.ncluster_etcd, 2);
    CHECK(cfg.ncluster_etcd == 2 && !strcmp(cfg.cluster_etcd[1], "http://127.0.0.1:22379"));
    CHECK_STR(cfg.cluster_node_name, "a");
    CHECK_INT(cfg.cluster_lease_ttl_s, 3);
    CHECK_STR(cfg.cluster_placement, "local");
    CHECK_STR(cfg.cluster_etcd_cacert, "/x.pem");
    CHECK_STR(cfg.cluster_etcd_user, "u");
    lel_config_free(&cfg);
    CHECK(load("cluster:\n  lease_ttl_s: 1\n", &cfg, err, sizeof(err)) < 0); /* under etcd's 2 s floor */
    CHECK(strstr(err, "cluster.lease_ttl_s") != NULL);
    lel_config_free(&cfg);
    CHECK(load("cluster:\n  placement: random\n", &cfg, err, sizeof(err)) < 0);
    CHECK(strstr(err, "cluster.placement") != NULL);
    lel_config_free(&cfg);
    CHECK(load("cluster:\n  prefix: nope\n", &cfg, err, sizeof(err)) < 0);
    lel_config_free(&cfg);
    /* the vCPU jail is on unless turned off; the disk reserve defaults to 128 MiB */
    CHECK(load("", &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.vmm_seccomp, 1);
    CHECK_INT(cfg.vmm_test_seccomp_violation, 0);
    CHECK(cfg.storage_min_free_bytes == (size_t)128 << 20);
    lel_config_free(&cfg);
    CHECK(load("vmm:\n  seccomp: false\nstorage:\n  min_free_bytes: 0\n", &cfg, err, sizeof(err)) == 0);
    CHECK_INT(cfg.vmm_seccomp, 0);
    CHECK(cfg.storage_min_free_bytes == 0);
    lel_config_free(&cfg);
    /* the shipped config loads as it is */
    lel_config_init(&cfg);
    CHECK(lel_config_load_yaml(&cfg, LEL_SOURCE_DIR "/configs/lelantosd.yaml", err, sizeof(err)) == 0);
    CHECK_INT(cfg.vmm_seccomp, 1);
    CHECK(cfg.storage_min_free_bytes == (size_t)128 << 20);
    lel_config_free(&cfg);
    return lel_test_finish();
}
