/* lelantosd: a thin main over liblelantos. Signals are taken synchronously with sigwait so no
 * async-signal-unsafe work happens in a handler. */
#include <lelantos/lelantos.h>

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: lelantosd [--config FILE] [--listen ADDR:PORT] [--data-dir DIR] [--help] [--version]\n"
               "  --config FILE      YAML config (see configs/lelantosd.yaml); defaults apply without it\n"
               "  --listen ADDR:PORT listen address, overriding the config\n"
               "  --data-dir DIR     data directory, overriding the config\n"
               "  env LELANTOS_ADMIN_TOKEN overrides admin_token, LELANTOS_CLUSTER_SECRET cluster.secret\n");
}

#define WANT_SANDBOXES 16384 /* fewer than this allowed by a host limit is worth a warning */

/* Every sandbox holds three descriptors (its KVM VM, its vCPU and its network ring's doorbell
 * eventfd) besides the connections the service serves, so the usual soft limit of 1024 would
 * stop a host at ~300 sandboxes whatever its memory; and it runs two threads (its vCPU's, and the
 * NX huge page recovery task KVM starts in the creator's thread group on this kernel), which
 * RLIMIT_NPROC counts for the whole user. Ask for what WANT_SANDBOXES need, the hard limit
 * included (a privileged service may raise it); failing that take the hard limit, as other
 * servers do, and say what it allows. */
#define LIMIT_SPARE 4096 /* descriptors and threads beyond the sandboxes': connections, pools */

static void raise_limits(void)
{
    static const struct {
        int res;
        const char *what, *how;
        unsigned long long per_sandbox;
    } lim[] = {{RLIMIT_NOFILE, "open files", "ulimit -n", 3}, {RLIMIT_NPROC, "processes and threads", "ulimit -u", 2}};
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        struct rlimit rl;
        rlim_t want = (rlim_t)(lim[i].per_sandbox * WANT_SANDBOXES + LIMIT_SPARE);
        if (getrlimit(lim[i].res, &rl) < 0)
            continue;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
            struct rlimit up = {want, rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? rl.rlim_max : want};
            if (setrlimit(lim[i].res, &up) == 0) /* past fs.nr_open or unprivileged: EPERM */
                rl = up;
            else if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(lim[i].res, &rl) < 0 && getrlimit(lim[i].res, &rl) < 0)
                    continue;
            }
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < lim[i].per_sandbox * WANT_SANDBOXES)
            fprintf(stderr, "lelantosd: %s limited to %llu (%s): about %llu sandboxes at most\n", lim[i].what,
                    (unsigned long long)rl.rlim_cur, lim[i].how, (unsigned long long)(rl.rlim_cur / lim[i].per_sandbox));
    }
}

/* The kernel settings that cap sandboxes before memory does: each sandbox maps about four
 * areas (its memory, its vCPU's run page, its vCPU thread's stack and that stack's guard) and
 * runs two threads. Past the cap a create fails with 503; better to say so at start. */
static void warn_host_limits(void)
{
    static const struct {
        const char *file, *name;
        unsigned long long per_sandbox;
    } lim[] = {{"/proc/sys/vm/max_map_count", "vm.max_map_count", 4},
               {"/proc/sys/kernel/pid_max", "kernel.pid_max", 2},
               {"/proc/sys/kernel/threads-max", "kernel.threads-max", 2}};
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        unsigned long long v = 0;
        FILE *f = fopen(lim[i].file, "r");
        if (!f)
            continue;
        int ok = fscanf(f, "%llu", &v) == 1;
        fclose(f);
        if (ok && v / lim[i].per_sandbox < WANT_SANDBOXES)
            fprintf(stderr, "lelantosd: %s is %llu: about %llu sandboxes at most (sysctl -w %s=%llu raises it)\n",
                    lim[i].name, v, v / lim[i].per_sandbox, lim[i].name, 4 * lim[i].per_sandbox * WANT_SANDBOXES);
    }
}

/* Every change to the daemon's page tables (munmap, madvise, a fault) calls the MMU notifier of
 * every KVM VM in it, so its cost grows with the sandboxes running: keep malloc from giving
 * memory back in small steps (trims of the heap top and arenas, munmaps of mid-sized blocks).
 * Freed memory stays for reuse; what a sandbox's guest frees goes back through lel_vm_trim. */
static void tune_malloc(void)
{
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20); /* fixed: no dynamic threshold, the 1 MiB image frames come from the heap */
    mallopt(M_TOP_PAD, 16 << 20);
    /* one arena: the main one grows by moving the break (M_TOP_PAD at a time), which no notifier
     * sees, where glibc's other arenas grow page by page with an mprotect each (half of the
     * daemon's notifier time at 1500 sandboxes); the workers' tcaches keep its lock cold */
    mallopt(M_ARENA_MAX, 1);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
                                         {"data-dir", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'v'},        {NULL, 0, NULL, 0}};
    const char *config = NULL, *listen = NULL, *data_dir = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:l:d:hv", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'v': printf("lelantosd %s\n", lel_version()); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    lel_config_t cfg;
    char err[512];
    const char *env_token = getenv("LELANTOS_ADMIN_TOKEN"), *env_secret = getenv("LELANTOS_CLUSTER_SECRET");
    if (lel_config_init(&cfg) < 0) {
        fprintf(stderr, "lelantosd: out of memory\n");
        return 1;
    }
    if ((config && lel_config_load_yaml(&cfg, config, err, sizeof(err)) < 0) ||
        (listen && lel_config_set_listen(&cfg, listen) < 0 && snprintf(err, sizeof(err), "--listen: bad address '%s'", listen)) ||
        (data_dir && lel_config_set_string(&cfg.data_dir, data_dir) < 0 && snprintf(err, sizeof(err), "out of memory")) ||
        (env_token && lel_config_set_string(&cfg.admin_token, env_token) < 0 && snprintf(err, sizeof(err), "out of memory")) ||
        (env_secret && lel_config_set_string(&cfg.cluster_secret, env_secret) < 0 && snprintf(err, sizeof(err), "out of memory"))) {
        fprintf(stderr, "lelantosd: %s\n", err);
        lel_config_free(&cfg);
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started below inherits the mask */
    signal(SIGPIPE, SIG_IGN);
    raise_limits();
    tune_malloc();
    if (strcmp(cfg.vmm_backend, "none"))
        warn_host_limits();
    lel_server_t *srv;
    if (lel_server_start(&cfg, &srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "lelantosd: %s\n", err);
        lel_config_free(&cfg);
        return 1;
    }
    printf("lelantosd %s listening on", lel_version());
    for (size_t i = 0; i < cfg.nlisten; i++)
        printf(" %s%s", cfg.listen[i], *cfg.tls_cert ? " (TLS)" : "");
    printf(", data in %s\n", cfg.data_dir);
    fflush(stdout);
    lel_config_free(&cfg);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "lelantosd: %s, shutting down\n", strsignal(sig));
    lel_server_stop(srv);
    int r = lel_server_wait(srv);
    fprintf(stderr, "lelantosd: stopped\n");
    return r == 0 ? 0 : 1;
}
