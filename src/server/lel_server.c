/* The server object: owns the config copy, store, worker pool, timers, registries and the HTTP
 * frontend, and orders their start and stop. */
#include "../api/lel_api.h"
#include "../cluster/lel_cluster.h"
#include "../cluster/lel_cluster_fwd.h"
#include "../cluster/lel_cluster_kv.h"
#include "../core/lel_layer.h"
#include "../http/lel_http.h"
#include "../image/lel_image.h"
#include "../net/lel_net.h"
#include "../sandbox/lel_sandbox.h"
#include "../team/lel_team.h"
#include "../template/lel_template.h"
#include "../template/lel_template_travel.h"

#include "../vmm/lel_vmm.h"
#include "lel_backup.h"
#include "lel_datadir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

const char *lel_version(void)
{
    return LEL_VERSION;
}

static void root_handle(lel_actor_t *self, void *state, lel_msg_t *m)
{
    (void)self;
    lel_call_t *c = m->ptr;
    if (!lel__abandoned(c) && c->route == R_ADMIN_BACKUP) /* on the root actor: one backup at a time */
        lel__backup_call(state, c);
    else if (!lel__abandoned(c))
        lel_team_admin_create(state, c);
    lel_call_done(c);
    lel_msg_free(m);
}

static int copy_config(lel_config_t *dst, const lel_config_t *src)
{
    *dst = *src;
    dst->listen = NULL;
    dst->nlisten = 0;
    dst->tls_cert = dst->tls_key = dst->data_dir = dst->admin_token = dst->vmm_backend = NULL;
    dst->net_domain = dst->net_host_gateway = dst->docs_ui_dir = dst->metrics_listen = NULL;
    dst->net_hosts = dst->net_allow_always = NULL;
    dst->nnet_hosts = dst->nnet_allow_always = 0;
    for (size_t i = 0; i < src->nnet_hosts; i++)
        if (lel_config_strv_add(&dst->net_hosts, &dst->nnet_hosts, src->net_hosts[i]) < 0)
            return -ENOMEM;
    for (size_t i = 0; i < src->nnet_allow_always; i++)
        if (lel_config_strv_add(&dst->net_allow_always, &dst->nnet_allow_always, src->net_allow_always[i]) < 0)
            return -ENOMEM;
    dst->cluster_etcd = NULL;
    dst->ncluster_etcd = 0;
    for (size_t i = 0; i < src->ncluster_etcd; i++)
        if (lel_config_strv_add(&dst->cluster_etcd, &dst->ncluster_etcd, src->cluster_etcd[i]) < 0)
            return -ENOMEM;
    char **cs[] = {&dst->cluster_node_name, &dst->cluster_advertise_url, &dst->cluster_secret, &dst->cluster_prefix,
                   &dst->cluster_etcd_cacert, &dst->cluster_etcd_cert, &dst->cluster_etcd_key, &dst->cluster_etcd_user,
                   &dst->cluster_etcd_password, &dst->cluster_placement};
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        const char *v = *(char **)((const char *)src + ((char *)cs[i] - (char *)dst)); /* the same field of src */
        *cs[i] = NULL;
        if (lel_config_set_string(cs[i], v) < 0)
            return -ENOMEM;
    }
    if (lel_config_set_string(&dst->net_domain, src->net_domain) < 0 ||
        lel_config_set_string(&dst->net_host_gateway, src->net_host_gateway) < 0 ||
        lel_config_set_string(&dst->docs_ui_dir, src->docs_ui_dir) < 0 ||
        lel_config_set_string(&dst->metrics_listen, src->metrics_listen) < 0)
        return -ENOMEM;
    if (lel_config_set_string(&dst->tls_cert, src->tls_cert) < 0 || lel_config_set_string(&dst->tls_key, src->tls_key) < 0 ||
        lel_config_set_string(&dst->data_dir, src->data_dir) < 0 ||
        lel_config_set_string(&dst->admin_token, src->admin_token) < 0 ||
        lel_config_set_string(&dst->vmm_backend, src->vmm_backend) < 0)
        return -ENOMEM;
    if (!(dst->listen = calloc(src->nlisten, sizeof(char *))))
        return -ENOMEM;
    for (; dst->nlisten < src->nlisten; dst->nlisten++)
        if (!(dst->listen[dst->nlisten] = strdup(src->listen[dst->nlisten])))
            return -ENOMEM;
    return 0;
}

/* The net loop with the operator's settings (network.*). */
static int start_net(lel_server_t *srv, char *err, size_t errlen)
{
    const lel_config_t *c = &srv->cfg;
    struct lel_net_host *hosts = calloc(c->nnet_hosts + 1, sizeof(*hosts));
    struct lel_cidr *always = calloc(c->nnet_allow_always + 1, sizeof(*always));
    struct lel_net_opts o = {.hosts = hosts, .allow_always = always, .max_conns = c->net_max_connections,
                             .bandwidth_bps = c->net_bandwidth, .static_dns = !c->net_dns_upstream,
                             .unjailed = !c->vmm_seccomp, .test_violation = c->net_test_seccomp_violation};
    int r = hosts && always ? 0 : -ENOMEM;
    struct lel_cidr gw;
    if (r == 0 && *c->net_host_gateway) {
        if (lel_cidr_parse(c->net_host_gateway, &gw) < 0 || gw.family != 4 || gw.bits != 32) {
            snprintf(err, errlen, "config key 'network.host_gateway': '%s' is not an IPv4 address", c->net_host_gateway);
            r = -EINVAL;
        }
        o.host_gateway = 1;
        memcpy(o.gateway_v4, gw.addr, 4);
    }
    for (size_t i = 0; r == 0 && i < c->nnet_hosts; i++) {
        const char *eq = strchr(c->net_hosts[i], '=');
        if (!eq || eq == c->net_hosts[i] || lel_cidr_parse(eq + 1, &hosts[i].addr) < 0) {
            snprintf(err, errlen, "config key 'network.hosts': '%s' is not name: address", c->net_hosts[i]);
            r = -EINVAL;
        } else if (!(hosts[i].name = strndup(c->net_hosts[i], (size_t)(eq - c->net_hosts[i])))) {
            r = -ENOMEM;
        } else {
            o.nhosts++;
        }
    }
    for (size_t i = 0; r == 0 && i < c->nnet_allow_always; i++, o.nallow_always++)
        if (lel_cidr_parse(c->net_allow_always[i], &always[i]) < 0) {
            snprintf(err, errlen, "config key 'network.allow_always': '%s' is not a CIDR", c->net_allow_always[i]);
            r = -EINVAL;
        }
    if (r == 0)
        r = lel_net_start(&o, &srv->net, err, errlen);
    for (size_t i = 0; i < o.nhosts; i++)
        free(hosts[i].name);
    free(hosts);
    free(always);
    return r;
}

static void drop_actor(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    lel_actor_unref(value);
}

static void drop_team(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    lel_team_free(value);
}

static void drop_key(void *ctx, const char *id, void *value)
{
    (void)ctx;
    (void)id;
    free(value);
}

static void server_free(lel_server_t *srv)
{
    lel_cluster_leave(srv->cluster); /* the node's record goes first: no node sends it more work */
    lel_api_free(srv); /* the frontends are stopped */
    lel_template_travel_stop(srv); /* a fetch in progress ends first (its create may start a sandbox) */
    lel_template_pool_stop(srv); /* the filler ends, pooled VMs go (to the reaper) */
    if (srv->timers)
        lel_timers_stop(srv->timers); /* no more timeouts; actors that still run may ask for one */
    if (srv->sandboxes && srv->pool)
        lel_sandbox_shutdown_all(srv); /* VMs hold references to their actors: release them first */
    lel_image_stop(srv); /* import threads end (their answers are in the images actor's mailbox) */
    if (srv->pool)
        lel_pool_free(srv->pool); /* drains every mailbox */
    lel_cluster_fwd_stop(srv->fwd);
    srv->fwd = NULL;
    lel_cluster_kv_stop(srv->shared); /* every writer through its mirror is gone */
    srv->shared = NULL;
    lel_cluster_stop(srv->cluster);
    srv->cluster = NULL;
    lel_net_stop(srv->net);       /* every sandbox let go of its endpoint by now */
    lel_template_pool_free(srv);
    lel_vm_reaper_free(srv->reaper); /* every VM handed to it is destroyed */
    srv->reaper = NULL;
    if (srv->timers)
        lel_timers_free(srv->timers); /* pending ones release their actors */
    if (srv->sandboxes) {
        lel_registry_foreach(srv->sandboxes, drop_actor, NULL);
        lel_registry_free(srv->sandboxes);
    }
    if (srv->template_names)
        lel_registry_free(srv->template_names); /* its values are the templates registry's */
    if (srv->templates) {
        lel_registry_foreach(srv->templates, drop_actor, NULL);
        lel_registry_free(srv->templates);
    }
    if (srv->keys) {
        lel_registry_foreach(srv->keys, drop_key, NULL);
        lel_registry_free(srv->keys);
    }
    if (srv->teams) {
        lel_registry_foreach(srv->teams, drop_team, NULL);
        lel_registry_free(srv->teams);
    }
    if (srv->root)
        lel_actor_unref(srv->root);
    lel_image_free(srv);
    lel_ratelimit_free(srv->rl);
    if (srv->store)
        lel_layer_drain(srv); /* background flattens write the store */
    lel_store_close(srv->store);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->layer_cond);
    pthread_mutex_destroy(&srv->layer_lock);
    lel_vm_stats_destroy(&srv->vm_stats); /* the reaper destroyed the last VM before */
    lel_config_free(&srv->cfg);
    free(srv);
}

/* Images and memory files are written under a temporary name ending in ".tmp" and renamed when
 * complete; what a crash left half-written is removed at start. */
static void remove_tmp_files(const char *data_dir, const char *sub)
{
    char dir[4096], path[4400];
    snprintf(dir, sizeof(dir), "%s/%s", data_dir, sub);
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

int lel_server_start(const lel_config_t *cfg, lel_server_t **out, char *err, size_t errlen)
{
    lel_server_t *srv = calloc(1, sizeof(*srv));
    char path[4096];
    int r = -ENOMEM;
    if (!srv)
        return -ENOMEM;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    pthread_mutex_init(&srv->layer_lock, NULL);
    pthread_cond_init(&srv->layer_cond, NULL);
    lel_vm_stats_init(&srv->vm_stats);
    if (copy_config(&srv->cfg, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (mkdir(srv->cfg.data_dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create data dir %s: %s", srv->cfg.data_dir, strerror(errno));
        goto fail;
    }
    /* before anything under it is touched: a newer daemon's data dir is refused as it is */
    if ((r = lel__datadir_check(srv->cfg.data_dir, err, errlen)) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/snapshots", srv->cfg.data_dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!strcmp(srv->cfg.vmm_backend, "auto")) {
        enum lel_vmm_backend b = lel_vmm_probe(srv->vmm_why, sizeof(srv->vmm_why));
        srv->use_vm = b != LEL_VMM_NONE;
        srv->vm_refused = !srv->use_vm;
        if (srv->use_vm)
            fprintf(stderr, "lelantosd: sandboxes run as microVMs on /dev/kvm (%s)\n", lel_vmm_backend_name(b));
        else
            fprintf(stderr, "lelantosd: %s; creating sandboxes will fail (vmm.backend: none runs the API without VMs)\n",
                    srv->vmm_why);
    } else {
        fprintf(stderr, "lelantosd: vmm.backend none: API-only mode, sandboxes have no VM\n");
    }
    snprintf(path, sizeof(path), "%s/db", srv->cfg.data_dir);
    if ((r = lel_store_open(path, srv->cfg.store_sync, &srv->store, err, errlen)) < 0)
        goto fail;
    remove_tmp_files(srv->cfg.data_dir, "snapshots"); /* only now: the store's lock says no other daemon writes them */
    remove_tmp_files(srv->cfg.data_dir, "templates");
    r = -ENOMEM;
    if (!(srv->pool = lel_pool_new(srv->cfg.workers)) || !(srv->timers = lel_timers_new()) ||
        !(srv->rl = lel_ratelimit_new()) || !(srv->teams = lel_registry_new()) || !(srv->keys = lel_registry_new()) ||
        !(srv->sandboxes = lel_registry_new()) || !(srv->templates = lel_registry_new()) ||
        !(srv->template_names = lel_registry_new()) ||
        !(srv->root = lel_actor_new(srv->pool, root_handle, srv, NULL))) {
        snprintf(err, errlen, "out of memory or threads");
        goto fail;
    }
    if (srv->cfg.ncluster_etcd && ((r = lel_cluster_start(srv, &srv->cluster, err, errlen)) < 0 ||
                                   (r = lel_cluster_kv_start(srv->cluster, srv->store, LEL_SHARED_CFS, &srv->shared,
                                                             err, errlen)) < 0))
        goto fail;
    if (srv->use_vm && (r = start_net(srv, err, errlen)) < 0)
        goto fail;
    if (srv->use_vm && !(srv->reaper = lel_vm_reaper_new())) {
        r = -EAGAIN;
        snprintf(err, errlen, "cannot start the VM reaper thread");
        goto fail;
    }
    if ((r = lel_team_load_all(srv, err, errlen)) < 0 || (r = lel_team_bootstrap(srv, err, errlen)) < 0 ||
        (r = lel_image_start(srv, err, errlen)) < 0 || (r = lel_template_load_all(srv, err, errlen)) < 0 || (r = lel_sandbox_load_all(srv, err, errlen)) < 0)
        goto fail;
    if (srv->shared && ((r = lel_cluster_kv_catalog(srv->shared, 1u << LEL_CF_SANDBOXES)) < 0 ||
                        (r = lel_cluster_fwd_start(srv->cfg.cluster_secret, 4, &srv->fwd)) < 0 ||
                        (r = lel_template_travel_start(srv)) < 0 ||
                        (r = lel_cluster_kv_watch(srv->shared, lel_team_shared_changed, srv)) < 0)) {
        snprintf(err, errlen, "cannot start the cluster's threads");
        goto fail;
    }
    if ((r = lel_layer_check(srv)) < 0) {
        snprintf(err, errlen, "cannot check the image records in the store");
        goto fail;
    }
    if ((r = lel_template_pool_start(srv)) < 0) {
        snprintf(err, errlen, "cannot start the warm pool's thread: %s", strerror(-r));
        goto fail;
    }
    if ((r = lel_api_init(srv)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    static const lel_http_handlers_t hd = {lel_api_admit, lel_api_dispatch, lel_api_finished};
    if ((r = lel_http_start(&srv->cfg, &hd, srv, &srv->http, err, errlen)) < 0)
        goto fail;
    if ((r = lel_api_metrics_listen(srv, err, errlen)) < 0) {
        lel_http_stop(srv->http);
        srv->http = NULL;
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    server_free(srv);
    return r;
}

void lel_server_stop(lel_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->stop_requested = 1;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

int lel_server_wait(lel_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    while (!srv->stop_requested)
        pthread_cond_wait(&srv->cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    /* pause the running sandboxes while requests are still answered (a command's caller hears
     * its end), then stop accepting and drain requests, then the actors they fed, then the store */
    if (srv->use_vm && srv->cfg.shutdown_pause_grace_ms > 0)
        lel_sandbox_pause_all(srv, srv->cfg.shutdown_pause_grace_ms);
    lel_image_stop(srv); /* an import in progress gives up and is answered 503 */
    lel_api_metrics_stop(srv); /* it reads the main frontend's counters */
    lel_http_stop(srv->http);
    srv->http = NULL;
    server_free(srv);
    return 0;
}
