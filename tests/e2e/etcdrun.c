/* A real etcd cluster for tests; see etcdrun.h. */
#include "etcdrun.h"
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>

const char *etcd_binary(void)
{
    const char *b = getenv("LEL_ETCD") ? getenv("LEL_ETCD") : "/usr/bin/etcd";
    return access(b, X_OK) == 0 ? b : NULL;
}

static void initial_cluster(struct etcd_cluster *c, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, c->m[i].peer_port);
}

static int spawn_member(struct etcd_cluster *c, int i, const char *state)
{
    char name[16], data[200], log[200], curl[64], purl[64], ic[512];
    struct etcd_member *m = &c->m[i];
    snprintf(name, sizeof(name), "m%d", i);
    snprintf(data, sizeof(data), "%s/m%d", c->dir, i);
    snprintf(log, sizeof(log), "%s/m%d.log", c->dir, i);
    snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", m->client_port);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", m->peer_port);
    initial_cluster(c, ic, sizeof(ic));
    fflush(NULL);
    m->pid = fork();
    if (m->pid < 0)
        return -1;
    if (m->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(etcd_binary(), "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", curl,
              "--advertise-client-urls", curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
              "--initial-cluster-token", c->dir, "--initial-cluster", ic, "--initial-cluster-state", state,
              "--logger=zap", "--log-outputs=stderr", "--log-level=warn", (char *)NULL);
        _exit(127);
    }
    return 0;
}

/* A linearizable range answers only with a leader and quorum. */
static int healthy(const char *url)
{
    CURL *h = curl_easy_init();
    char u[128];
    snprintf(u, sizeof(u), "%s/v3/kv/range", url);
    curl_easy_setopt(h, CURLOPT_URL, u);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"key\":\"AA==\"}");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    FILE *null = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_WRITEDATA, null);
    long code = 0;
    int ok = curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
             code == 200;
    fclose(null);
    curl_easy_cleanup(h);
    return ok;
}

int etcd_cluster_start(struct etcd_cluster *c, int n)
{
    memset(c, 0, sizeof(*c));
    if (!etcd_binary() || n > ETCD_MAX)
        return -1;
    curl_global_init(CURL_GLOBAL_ALL);
    signal(SIGPIPE, SIG_IGN);
    snprintf(c->dir, sizeof(c->dir), "/tmp/lel-etcd-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    c->n = n;
    size_t off = (size_t)snprintf(c->endpoints_yaml, sizeof(c->endpoints_yaml), "[");
    for (int i = 0; i < n; i++) {
        c->m[i].client_port = srv_free_port();
        c->m[i].peer_port = srv_free_port();
        snprintf(c->m[i].url, sizeof(c->m[i].url), "http://127.0.0.1:%d", c->m[i].client_port);
        off += (size_t)snprintf(c->endpoints_yaml + off, sizeof(c->endpoints_yaml) - off, "%s%s", i ? ", " : "",
                                c->m[i].url);
    }
    snprintf(c->endpoints_yaml + off, sizeof(c->endpoints_yaml) - off, "]");
    for (int i = 0; i < n; i++)
        if (spawn_member(c, i, "new") < 0)
            return -1;
    for (int t = 0; t < 200; t++) {
        if (healthy(c->m[0].url))
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "etcd cluster in %s did not become healthy\n", c->dir);
    return -1;
}

void etcd_member_stop(struct etcd_cluster *c, int i)
{
    int st;
    if (c->m[i].pid > 0) {
        kill(c->m[i].pid, SIGTERM);
        waitpid(c->m[i].pid, &st, 0);
        c->m[i].pid = 0;
    }
}

int etcd_member_start(struct etcd_cluster *c, int i)
{
    if (spawn_member(c, i, "existing") < 0)
        return -1;
    for (int t = 0; t < 200; t++) {
        if (healthy(c->m[i].url))
            return 0;
        usleep(100000);
    }
    return -1;
}

void etcd_cluster_stop_all(struct etcd_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        etcd_member_stop(c, i);
}

int etcd_cluster_restart(struct etcd_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (spawn_member(c, i, "existing") < 0)
            return -1;
    for (int t = 0; t < 200; t++) {
        if (healthy(c->m[0].url))
            return 0;
        usleep(100000);
    }
    return -1;
}

void etcd_cluster_free(struct etcd_cluster *c)
{
    char cmd[200];
    for (int i = 0; i < c->n; i++)
        etcd_member_stop(c, i);
    if (!c->dir[0] || getenv("LEL_KEEP_TMP"))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", c->dir);
}
