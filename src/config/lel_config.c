/* Config defaults and the YAML loader. Keys are described once, in `keys[]`; the loader walks
 * the YAML tree with dotted paths and refuses anything not in the table. */
#include <lelantos/lelantos.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum key_type { K_INT = 0, K_SIZE, K_DOUBLE, K_BOOL, K_STRING, K_LISTEN, K_LIST, K_MAP };

struct key {
    const char *path;
    enum key_type type;
    size_t offset;
    double min, max;
};

#define OFF(f) offsetof(lel_config_t, f)
static const struct key keys[] = {
    {"listen", K_LISTEN, OFF(listen), 0, 0},
    {"tls.cert", K_STRING, OFF(tls_cert), 0, 0},
    {"tls.key", K_STRING, OFF(tls_key), 0, 0},
    {"http.threads", K_INT, OFF(http_threads), 1, 64},
    {"http.max_body_bytes", K_SIZE, OFF(max_body_bytes), 1024, 1073741824.0},
    {"http.max_file_bytes", K_SIZE, OFF(max_file_bytes), 1024, 17179869184.0},
    {"http.max_header_bytes", K_SIZE, OFF(max_header_bytes), 1024, 1048576},
    {"http.max_inflight_body_bytes", K_SIZE, OFF(max_inflight_body_bytes), 1048576, 1099511627776.0},
    {"http.h2_max_concurrent_streams", K_INT, OFF(h2_max_streams), 1, 256},
    {"http.idle_timeout_ms", K_INT, OFF(idle_timeout_ms), 100, 3600000},
    {"workers", K_INT, OFF(workers), 1, 256},
    {"data_dir", K_STRING, OFF(data_dir), 0, 0},
    {"admin_token", K_STRING, OFF(admin_token), 0, 0},
    {"rate_limits.general_per_s", K_DOUBLE, OFF(rate_general), 0.001, 1e9},
    {"rate_limits.auth_per_s", K_DOUBLE, OFF(rate_auth), 0.001, 1e9},
    {"store.sync", K_BOOL, OFF(store_sync), 0, 1},
    {"sandboxes.default_timeout_s", K_INT, OFF(default_timeout_s), 1, 31536000},
    {"sandboxes.killed_retention_s", K_INT, OFF(killed_retention_s), 0, 31536000},
    {"teams.max_sandboxes", K_INT, OFF(team_max_sandboxes), 1, 1000000},
    {"teams.max_timeout_s", K_INT, OFF(team_max_timeout_s), 1, 31536000},
    {"teams.max_memory_mb", K_INT, OFF(team_max_memory_mb), 0, 1000000000},
    {"teams.max_snapshots", K_INT, OFF(team_max_snapshots), 0, 100000000},
    {"shutdown_grace_ms", K_INT, OFF(shutdown_grace_ms), 0, 600000},
    {"shutdown_pause_grace_ms", K_INT, OFF(shutdown_pause_grace_ms), 0, 3600000},
    {"vmm.backend", K_STRING, OFF(vmm_backend), 0, 0},
    {"vmm.boot_timeout_ms", K_INT, OFF(boot_timeout_ms), 100, 600000},
    {"vmm.seccomp", K_BOOL, OFF(vmm_seccomp), 0, 1},
    {"vmm.test_seccomp_violation", K_BOOL, OFF(vmm_test_seccomp_violation), 0, 1},
    {"vmm.metrics_interval_s", K_INT, OFF(metrics_interval_s), 1, 3600},
    {"snapshots.max_chain_depth", K_INT, OFF(snapshot_max_chain_depth), 1, 200},
    {"templates.build_timeout_s", K_INT, OFF(build_timeout_s), 1, 86400},
    {"templates.max_parallel_builds", K_INT, OFF(max_parallel_builds), 1, 64},
    {"templates.warm_pool", K_INT, OFF(template_warm_pool), 0, 1024},
    {"templates.prefault_writes", K_BOOL, OFF(template_prefault_writes), 0, 1},
    {"images.max_bytes", K_SIZE, OFF(image_max_bytes), 1024, 1099511627776.0},
    {"images.max_unpacked_bytes", K_SIZE, OFF(image_max_unpacked_bytes), 1024, 1099511627776.0},
    {"storage.min_free_bytes", K_SIZE, OFF(storage_min_free_bytes), 0, 1099511627776.0},
    {"network.domain", K_STRING, OFF(net_domain), 0, 0},
    {"network.host_gateway", K_STRING, OFF(net_host_gateway), 0, 0},
    {"network.hosts", K_MAP, OFF(net_hosts), 0, 0},
    {"network.allow_always", K_LIST, OFF(net_allow_always), 0, 0},
    {"network.allow_internet_access", K_BOOL, OFF(net_allow_internet), 0, 1},
    {"network.max_connections", K_INT, OFF(net_max_connections), 1, 1000000},
    {"network.test_seccomp_violation", K_BOOL, OFF(net_test_seccomp_violation), 0, 1},
    {"network.bandwidth_bytes_per_s", K_SIZE, OFF(net_bandwidth), 0, 1e15},
    {"network.dns_upstream", K_BOOL, OFF(net_dns_upstream), 0, 1},
    {"cluster.etcd", K_LIST, OFF(cluster_etcd), 0, 0},
    {"cluster.node_name", K_STRING, OFF(cluster_node_name), 0, 0},
    {"cluster.advertise_url", K_STRING, OFF(cluster_advertise_url), 0, 0},
    {"cluster.secret", K_STRING, OFF(cluster_secret), 0, 0},
    {"cluster.prefix", K_STRING, OFF(cluster_prefix), 0, 0},
    {"cluster.lease_ttl_s", K_INT, OFF(cluster_lease_ttl_s), 2, 3600},
    {"cluster.etcd_tls.ca", K_STRING, OFF(cluster_etcd_cacert), 0, 0},
    {"cluster.etcd_tls.cert", K_STRING, OFF(cluster_etcd_cert), 0, 0},
    {"cluster.etcd_tls.key", K_STRING, OFF(cluster_etcd_key), 0, 0},
    {"cluster.etcd_auth.user", K_STRING, OFF(cluster_etcd_user), 0, 0},
    {"cluster.etcd_auth.password", K_STRING, OFF(cluster_etcd_password), 0, 0},
    {"cluster.placement", K_STRING, OFF(cluster_placement), 0, 0},
    {"docs.ui_dir", K_STRING, OFF(docs_ui_dir), 0, 0},
    {"metrics.listen", K_STRING, OFF(metrics_listen), 0, 0},
};

int lel_config_set_string(char **field, const char *value)
{
    char *copy = strdup(value ? value : "");
    if (!copy)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* Accepts "host:port" and "[v6]:port" with a numeric port in 0..65535. */
static int valid_addr(const char *a)
{
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || !colon[1] || strlen(colon + 1) > 5)
        return 0;
    if (a[0] == '[' && colon[-1] != ']')
        return 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port >= 0 && port <= 65535;
}

static void free_listen(lel_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nlisten; i++)
        free(cfg->listen[i]);
    free(cfg->listen);
    cfg->listen = NULL;
    cfg->nlisten = 0;
}

static int add_listen(lel_config_t *cfg, const char *addr)
{
    if (!valid_addr(addr))
        return -EINVAL;
    char **n = realloc(cfg->listen, (cfg->nlisten + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    cfg->listen = n;
    if (!(n[cfg->nlisten] = strdup(addr)))
        return -ENOMEM;
    cfg->nlisten++;
    return 0;
}

int lel_config_set_listen(lel_config_t *cfg, const char *addr)
{
    if (!valid_addr(addr))
        return -EINVAL;
    free_listen(cfg);
    return add_listen(cfg, addr);
}

int lel_config_init(lel_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->http_threads = 2;
    cfg->workers = 4;
    cfg->max_body_bytes = 1 << 20;
    cfg->max_file_bytes = 100 << 20;
    cfg->max_header_bytes = 64 << 10;
    cfg->max_inflight_body_bytes = (size_t)256 << 20;
    cfg->h2_max_streams = 100;
    cfg->idle_timeout_ms = 30000;
    cfg->rate_general = 200;
    cfg->rate_auth = 3;
    cfg->store_sync = 1;
    cfg->default_timeout_s = 300;
    cfg->killed_retention_s = 60;
    cfg->team_max_sandboxes = 20;
    cfg->team_max_timeout_s = 86400;
    cfg->team_max_memory_mb = 0;
    cfg->team_max_snapshots = 1000;
    cfg->shutdown_grace_ms = 10000;
    cfg->shutdown_pause_grace_ms = 30000;
    cfg->boot_timeout_ms = 10000;
    cfg->vmm_seccomp = 1;
    cfg->metrics_interval_s = 5;
    cfg->build_timeout_s = 600;
    cfg->max_parallel_builds = 2;
    cfg->template_warm_pool = 4;
    cfg->template_prefault_writes = 0;
    cfg->snapshot_max_chain_depth = 8;
    cfg->image_max_bytes = (size_t)4 << 30;
    cfg->image_max_unpacked_bytes = (size_t)16 << 30;
    cfg->storage_min_free_bytes = (size_t)128 << 20;
    cfg->net_allow_internet = 1;
    cfg->net_max_connections = 1024;
    cfg->net_dns_upstream = 1;
    cfg->cluster_lease_ttl_s = 10;
    if (add_listen(cfg, "127.0.0.1:3000") < 0 || lel_config_set_string(&cfg->tls_cert, "") < 0 ||
        lel_config_set_string(&cfg->tls_key, "") < 0 || lel_config_set_string(&cfg->data_dir, "./data") < 0 ||
        lel_config_set_string(&cfg->admin_token, "") < 0 || lel_config_set_string(&cfg->vmm_backend, "auto") < 0 ||
        lel_config_set_string(&cfg->net_domain, "lelantos.localhost") < 0 ||
        lel_config_set_string(&cfg->net_host_gateway, "") < 0 || lel_config_set_string(&cfg->docs_ui_dir, "") < 0 ||
        lel_config_set_string(&cfg->metrics_listen, "") < 0 || lel_config_set_string(&cfg->cluster_node_name, "") < 0 ||
        lel_config_set_string(&cfg->cluster_advertise_url, "") < 0 || lel_config_set_string(&cfg->cluster_secret, "") < 0 ||
        lel_config_set_string(&cfg->cluster_prefix, "/lelantos/") < 0 ||
        lel_config_set_string(&cfg->cluster_etcd_cacert, "") < 0 || lel_config_set_string(&cfg->cluster_etcd_cert, "") < 0 ||
        lel_config_set_string(&cfg->cluster_etcd_key, "") < 0 || lel_config_set_string(&cfg->cluster_etcd_user, "") < 0 ||
        lel_config_set_string(&cfg->cluster_etcd_password, "") < 0 ||
        lel_config_set_string(&cfg->cluster_placement, "most_free_memory") < 0) {
        lel_config_free(cfg);
        return -ENOMEM;
    }
    return 0;
}

void lel_config_free(lel_config_t *cfg)
{
    free_listen(cfg);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->data_dir);
    free(cfg->admin_token);
    free(cfg->vmm_backend);
    free(cfg->net_domain);
    free(cfg->net_host_gateway);
    free(cfg->docs_ui_dir);
    free(cfg->metrics_listen);
    lel_config_strv_free(&cfg->net_hosts, &cfg->nnet_hosts);
    lel_config_strv_free(&cfg->net_allow_always, &cfg->nnet_allow_always);
    lel_config_strv_free(&cfg->cluster_etcd, &cfg->ncluster_etcd);
    free(cfg->cluster_node_name);
    free(cfg->cluster_advertise_url);
    free(cfg->cluster_secret);
    free(cfg->cluster_prefix);
    free(cfg->cluster_etcd_cacert);
    free(cfg->cluster_etcd_cert);
    free(cfg->cluster_etcd_key);
    free(cfg->cluster_etcd_user);
    free(cfg->cluster_etcd_password);
    free(cfg->cluster_placement);
    memset(cfg, 0, sizeof(*cfg));
}

void lel_config_strv_free(char ***v, size_t *n)
{
    for (size_t i = 0; *v && i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

int lel_config_strv_add(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(char *));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* A sequence of strings (K_LIST) or a mapping of string to string (K_MAP, kept as "key=value"). */
static int set_strv(const struct key *k, char *base, yaml_document_t *doc, yaml_node_t *val, char *err, size_t errlen)
{
    char ***v = (char ***)(base + k->offset);
    size_t *n = (size_t *)(base + k->offset + sizeof(char **));
    lel_config_strv_free(v, n);
    if (k->type == K_LIST && val->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (!item || item->type != YAML_SCALAR_NODE)
                goto bad;
            if (lel_config_strv_add(v, n, (const char *)item->data.scalar.value) < 0)
                return -ENOMEM;
        }
        return 0;
    }
    if (k->type == K_MAP && val->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = val->data.mapping.pairs.start; p < val->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
            char kv[1024];
            if (!kn || !vn || kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE ||
                snprintf(kv, sizeof(kv), "%s=%s", kn->data.scalar.value, vn->data.scalar.value) >= (int)sizeof(kv))
                goto bad;
            if (lel_config_strv_add(v, n, kv) < 0)
                return -ENOMEM;
        }
        return 0;
    }
    if (val->type == YAML_SCALAR_NODE && val->data.scalar.length == 0)
        return 0; /* empty: none */
bad:
    snprintf(err, errlen, "config key '%s': expected %s", k->path,
             k->type == K_LIST ? "a list of strings" : "a mapping of names to strings");
    return -EINVAL;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    if (!*s)
        return -EINVAL;
    *out = strtod(s, &end);
    return *end == '\0' ? 0 : -EINVAL;
}

static int set_scalar(lel_config_t *cfg, const struct key *k, const char *v, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    double d;
    switch (k->type) {
    case K_STRING:
        if (k->offset == OFF(metrics_listen) && *v && !valid_addr(v)) {
            snprintf(err, errlen, "config key '%s': '%s' is not ADDR:PORT", k->path, v);
            return -EINVAL;
        }
        if (k->offset == OFF(vmm_backend) && strcmp(v, "auto") && strcmp(v, "none")) {
            snprintf(err, errlen, "config key '%s': '%s' is not 'auto' or 'none'", k->path, v);
            return -EINVAL;
        }
        if (k->offset == OFF(cluster_placement) && strcmp(v, "most_free_memory") && strcmp(v, "local")) {
            snprintf(err, errlen, "config key '%s': '%s' is not 'most_free_memory' or 'local'", k->path, v);
            return -EINVAL;
        }
        if (k->offset == OFF(cluster_prefix) && (v[0] != '/' || v[strlen(v) - 1] != '/')) {
            snprintf(err, errlen, "config key '%s': '%s' must start and end with '/'", k->path, v);
            return -EINVAL;
        }
        return lel_config_set_string((char **)(base + k->offset), v);
    case K_LISTEN:
        free_listen(cfg);
        if (add_listen(cfg, v) < 0)
            goto bad;
        return 0;
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(int *)(base + k->offset) = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
            *(int *)(base + k->offset) = 0;
        else
            goto bad;
        return 0;
    default:
        if (parse_number(v, &d) < 0 || d < k->min || d > k->max)
            goto bad;
        if (k->type != K_DOUBLE && d != (double)(long long)d)
            goto bad;
        if (k->type == K_INT)
            *(int *)(base + k->offset) = (int)d;
        else if (k->type == K_SIZE)
            *(size_t *)(base + k->offset) = (size_t)d;
        else
            *(double *)(base + k->offset) = d;
        return 0;
    }
bad:
    if (k->type == K_LISTEN)
        snprintf(err, errlen, "config key '%s': bad address '%s' (want ADDR:PORT)", k->path, v);
    else if (k->type == K_BOOL)
        snprintf(err, errlen, "config key '%s': '%s' is not a boolean", k->path, v);
    else
        snprintf(err, errlen, "config key '%s': '%s' is not a number in %g..%g%s", k->path, v, k->min, k->max,
                 k->type == K_DOUBLE ? "" : " (integer)");
    return -EINVAL;
}

static int walk(lel_config_t *cfg, yaml_document_t *doc, yaml_node_t *node, const char *prefix, char *err, size_t errlen);

static const struct key *find_key(const char *path)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(keys[i].path, path))
            return &keys[i];
    return NULL;
}

static int is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strncmp(keys[i].path, path, n) && keys[i].path[n] == '.')
            return 1;
    return 0;
}

static int walk_value(lel_config_t *cfg, yaml_document_t *doc, yaml_node_t *val, const char *path, char *err,
                      size_t errlen)
{
    const struct key *k = find_key(path);
    if (val->type == YAML_MAPPING_NODE && !k && is_section(path))
        return walk(cfg, doc, val, path, err, errlen);
    if (!k) {
        snprintf(err, errlen, "unknown config key '%s'", path);
        return -EINVAL;
    }
    if (k->type == K_LIST || k->type == K_MAP)
        return set_strv(k, (char *)cfg, doc, val, err, errlen);
    if (val->type == YAML_SCALAR_NODE)
        return set_scalar(cfg, k, (const char *)val->data.scalar.value, err, errlen);
    if (val->type == YAML_SEQUENCE_NODE && k->type == K_LISTEN) {
        free_listen(cfg);
        for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(doc, *it);
            if (!item || item->type != YAML_SCALAR_NODE || add_listen(cfg, (const char *)item->data.scalar.value) < 0) {
                snprintf(err, errlen, "config key '%s': every entry must be ADDR:PORT", path);
                return -EINVAL;
            }
        }
        if (cfg->nlisten == 0) {
            snprintf(err, errlen, "config key '%s': at least one address is needed", path);
            return -EINVAL;
        }
        return 0;
    }
    snprintf(err, errlen, "config key '%s': wrong type", path);
    return -EINVAL;
}

static int walk(lel_config_t *cfg, yaml_document_t *doc, yaml_node_t *node, const char *prefix, char *err, size_t errlen)
{
    if (node->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "config%s%s: expected a mapping", *prefix ? " key " : "", prefix);
        return -EINVAL;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        if (!kn || !vn || kn->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "config: keys must be plain strings");
            return -EINVAL;
        }
        char path[256];
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", (const char *)kn->data.scalar.value) >=
            (int)sizeof(path)) {
            snprintf(err, errlen, "config: key path too long");
            return -EINVAL;
        }
        int r = walk_value(cfg, doc, vn, path, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

int lel_config_load_yaml(lel_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot open config %s: %s", path, strerror(e));
        return -e;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int r = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "config %s: YAML error at line %zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        fclose(f);
        return -EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        r = walk(cfg, &doc, root, "", err, errlen);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return r;
}
