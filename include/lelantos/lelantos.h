/* Lelantos embedding API: configure, start, stop and wait for the sandbox service.
 *
 * A host program fills a lel_config_t (lel_config_init() gives the documented defaults,
 * lel_config_load_yaml() overlays a YAML file), calls lel_server_start(), and later
 * lel_server_stop() + lel_server_wait(). `lelantosd` is a thin main over exactly this. */
#ifndef LELANTOS_H
#define LELANTOS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEL_VERSION "0.1.0"

/** Everything tunable. Strings are malloc'd and owned by the config (lel_config_free). */
typedef struct lel_config {
    char **listen;             /**< "ADDR:PORT" entries ("[::1]:3000" for IPv6); default 127.0.0.1:3000 */
    size_t nlisten;
    char *tls_cert;            /**< PEM certificate; TLS (ALPN h2, http/1.1) when set with tls_key */
    char *tls_key;
    int http_threads;          /**< event-loop threads; default 2 */
    int workers;               /**< actor worker threads; default 4 */
    size_t max_body_bytes;     /**< request body cap (413 above); default 1 MiB */
    size_t max_file_bytes;     /**< file upload cap; default 100 MiB */
    size_t max_header_bytes;   /**< request line + headers cap (431 above); default 64 KiB */
    size_t max_inflight_body_bytes; /**< request body bytes all requests together may hold (503 above); default 256 MiB */
    int h2_max_streams;        /**< concurrent HTTP/2 requests per connection; default 100 */
    int idle_timeout_ms;       /**< idle connection timeout; default 30000 */
    char *data_dir;            /**< RocksDB, snapshots and the initial key live here; default ./data */
    char *admin_token;         /**< operator token; empty disables admin access; env LELANTOS_ADMIN_TOKEN wins */
    double rate_general;       /**< requests/s per API key; default 200 */
    double rate_auth;          /**< requests/s per key on auth endpoints and failed auths per address; default 3 */
    int store_sync;            /**< fsync the WAL before answering; default 1 */
    int default_timeout_s;     /**< sandbox timeout when a request gives none; default 300 */
    int killed_retention_s;    /**< killed sandboxes stay visible by id this long; default 60 */
    int team_max_sandboxes;    /**< per-team running sandboxes; default 20 */
    int team_max_timeout_s;    /**< per-team cap on a sandbox timeout; default 86400 */
    int team_max_memory_mb;    /**< per-team memory of the running sandboxes together (MiB); 0: no cap (default) */
    int team_max_snapshots;    /**< per-team stored snapshots; 0: no cap; default 1000 */
    int shutdown_grace_ms;     /**< how long shutdown waits for in-flight requests; default 10000 */
    int shutdown_pause_grace_ms; /**< how long a graceful stop has to pause the running sandboxes (before
                                      it drains requests); those not paused by then are killed; 0: none
                                      is paused; default 30000 */
    char *vmm_backend;         /**< "auto": microVMs on /dev/kvm (sandboxes refused without it); "none": API-only records, no VM */
    int boot_timeout_ms;       /**< how long a new VM may take to report ready; default 10000 */
    int vmm_seccomp;           /**< vmm.seccomp: vCPU threads and the net loop run under seccomp filters; default 1 */
    int vmm_test_seccomp_violation; /**< vmm.test_seccomp_violation: tests only; a sandbox's vCPU thread makes a
                                         forbidden call when a command ends (its VM must die); default 0 */
    int metrics_interval_s;    /**< how often running sandboxes are sampled; default 5 */
    int build_timeout_s;       /**< a template build's time limit (steps and readyCmd); default 600 */
    int snapshot_max_chain_depth; /**< snapshots.max_chain_depth: a snapshot that is a diff of a diff ... deeper than
                                       this is rewritten as a full image in the background; default 8 */
    int max_parallel_builds;   /**< template builds running at once (more wait, "waiting"); default 2 */
    int template_warm_pool;    /**< templates.warm_pool: VMs restored ahead per template in use; 0: none; default 4 */
    int template_prefault_writes; /**< templates.prefault_writes: pooled VMs pre-fault what a first command writes; default 0 */
    size_t image_max_bytes;    /**< PUT /images/{name} body cap (streamed to disk); default 4 GiB */
    size_t image_max_unpacked_bytes; /**< an image's unpacked files, all layers together (compression bombs); default 16 GiB */
    size_t storage_min_free_bytes; /**< storage.min_free_bytes: below this free in the data dir, requests that store
                                        something answer 507 (the store keeps room for its own records); default 128 MiB */
    /* sandbox networking (src/net, README "Networking") */
    char *net_domain;          /**< network.domain: hosts <port>-<sandboxID>.<domain> reach a sandbox's port; default lelantos.localhost */
    char *net_host_gateway;    /**< network.host_gateway: a guest IPv4 address that reaches the host's loopback (also
                                    host.lelantos.internal); "" (default): none */
    char **net_hosts;          /**< network.hosts: "name=address" the sandboxes' resolver answers; default none */
    size_t nnet_hosts;
    char **net_allow_always;   /**< network.allow_always: CIDRs the built-in denials (link-local, loopback, the
                                    host's own addresses) let through; default none */
    size_t nnet_allow_always;
    int net_allow_internet;    /**< network.allow_internet_access: a sandbox's default (E2B's allow_internet_access); default true */
    int net_max_connections;   /**< network.max_connections: connections and datagram sockets per sandbox; default 1024 */
    int net_test_seccomp_violation; /**< network.test_seccomp_violation: tests only; the net loop makes a forbidden
                                         call at each guest connect (that sandbox must die); default 0 */
    size_t net_bandwidth;      /**< network.bandwidth_bytes_per_s: per sandbox, each way; 0 (default): unlimited */
    char *docs_ui_dir;         /**< docs.ui_dir: the Swagger UI files /docs serves (swagger-ui-dist); "" none */
    char *metrics_listen;      /**< metrics.listen: "ADDR:PORT" serving /metrics without credentials; "" none */
    int net_dns_upstream;      /**< network.dns_upstream: names not in network.hosts go to the host's resolver; default true */
    /* cluster mode (src/cluster, README "Cluster mode"): without cluster.etcd the daemon is a single node */
    char **cluster_etcd;       /**< cluster.etcd: etcd client URLs ("http://10.0.0.1:2379"); default none (single node) */
    size_t ncluster_etcd;
    char *cluster_node_name;   /**< cluster.node_name: this node's name, unique in the cluster; default the host name */
    char *cluster_advertise_url; /**< cluster.advertise_url: how the other nodes reach this one ("http://10.0.0.1:3000");
                                      default http://<first listen address> */
    char *cluster_secret;      /**< cluster.secret: shared by the nodes, authenticates node-to-node requests;
                                    required in cluster mode; env LELANTOS_CLUSTER_SECRET wins */
    char *cluster_prefix;      /**< cluster.prefix: every key this cluster writes in etcd starts with it; default /lelantos/ */
    int cluster_lease_ttl_s;   /**< cluster.lease_ttl_s: a node is gone this long after its last renewal; default 10 */
    char *cluster_etcd_cacert; /**< cluster.etcd_tls.ca: PEM CA for https etcd URLs; default the system's */
    char *cluster_etcd_cert;   /**< cluster.etcd_tls.cert / .key: client certificate for etcd; default none */
    char *cluster_etcd_key;
    char *cluster_etcd_user;   /**< cluster.etcd_auth.user / .password: etcd's v3 auth; default none */
    char *cluster_etcd_password;
    char *cluster_placement;   /**< cluster.placement: where creates go: "most_free_memory" (default) or "local" */
} lel_config_t;

/** Fills `cfg` with the defaults documented in configs/lelantosd.yaml. Returns 0 or -ENOMEM. */
int lel_config_init(lel_config_t *cfg);
/** Overlays the YAML file `path`. Unknown keys and bad values fail with -EINVAL and a message naming the key. */
int lel_config_load_yaml(lel_config_t *cfg, const char *path, char *err, size_t errlen);
/** Replaces the listen list with one address. Returns 0, -EINVAL (bad address) or -ENOMEM. */
int lel_config_set_listen(lel_config_t *cfg, const char *addr);
/** Replaces a string field (e.g. &cfg->data_dir) with a copy of `value`. Returns 0 or -ENOMEM. */
int lel_config_set_string(char **field, const char *value);
/** A list of strings in the config (network.hosts, network.allow_always): adds a copy of `s`. 0 or -ENOMEM. */
int lel_config_strv_add(char ***v, size_t *n, const char *s);
void lel_config_strv_free(char ***v, size_t *n);
/** Frees everything the config owns. */
void lel_config_free(lel_config_t *cfg);

typedef struct lel_server lel_server_t;

/** Opens the store, starts workers and listeners. The config is copied. Returns 0 or -errno with err filled. */
int lel_server_start(const lel_config_t *cfg, lel_server_t **out, char *err, size_t errlen);
/** Asks the server to stop: pause the running sandboxes (shutdown_pause_grace_ms), stop accepting,
 * drain in-flight requests, flush the store. Thread-safe, returns at once. */
void lel_server_stop(lel_server_t *srv);
/** Blocks until the server has stopped, then frees it. Returns 0 on a clean stop. */
int lel_server_wait(lel_server_t *srv);
/** The service version ("0.1.0"). */
const char *lel_version(void);

#ifdef __cplusplus
}
#endif
#endif
