/* Test helper: a real etcd cluster (Debian's /usr/bin/etcd) on loopback, members on free
 * ports with temp data dirs, stopped and removed by etcd_cluster_free. */
#ifndef LEL_E2E_ETCDRUN_H
#define LEL_E2E_ETCDRUN_H

#include <sys/types.h>

#define ETCD_MAX 5

struct etcd_member {
    pid_t pid;
    int client_port, peer_port;
    char url[64]; /* http://127.0.0.1:<client_port> */
};

struct etcd_cluster {
    int n;
    char dir[128]; /* member data dirs and logs under it */
    struct etcd_member m[ETCD_MAX];
    char endpoints_yaml[512]; /* "[http://127.0.0.1:a, ...]" for cluster.etcd */
};

/** The etcd binary (env LEL_ETCD or /usr/bin/etcd), or NULL when it is not installed. */
const char *etcd_binary(void);
/** Starts n members and waits until the cluster has a leader (up to 20 s). 0 or -1. */
int etcd_cluster_start(struct etcd_cluster *c, int n);
/** Stops member i with SIGTERM (it can be started again with etcd_member_start). */
void etcd_member_stop(struct etcd_cluster *c, int i);
/** Starts member i again on its data dir (joins the existing cluster). 0 or -1. */
int etcd_member_start(struct etcd_cluster *c, int i);
/** Stops every member (the data stays). */
void etcd_cluster_stop_all(struct etcd_cluster *c);
/** Starts every member again on its data dir and waits for a leader. 0 or -1. */
int etcd_cluster_restart(struct etcd_cluster *c);
/** Stops every member and removes the data. */
void etcd_cluster_free(struct etcd_cluster *c);

#endif
