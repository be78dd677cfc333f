/* Cluster mode: this node's membership in a cluster of lelantosd nodes coordinated by etcd
 * (README "Cluster mode"). Off (srv->cluster NULL) without cluster.etcd.
 *
 * A thread owned by the cluster object keeps this node registered: it holds a lease of
 * cluster.lease_ttl_s, renews it every third of the TTL (each renewal its own POST: ETCD.md
 * B5), rewrites the node's record under <prefix>nodes/<name> (attached to the lease: the record
 * vanishes when the node stops renewing) and re-reads every node's record. When a renewal or a
 * write fails the node counts as having lost etcd: creates are refused (503 with the reason)
 * until a write succeeds again, while running sandboxes keep being served. A lease found gone
 * (a pause longer than the TTL) is replaced by a new one, never reused.
 *
 * Below the components (sandbox, team, api, server); uses only core, store and common. */
#ifndef LEL_CLUSTER_H
#define LEL_CLUSTER_H

#include "../core/lel_core.h"
#include "lel_etcd.h"

struct lel_cluster;

/** Checks the config, connects to etcd and registers this node (waiting up to the lease TTL
 * for etcd to answer). Returns 0 with *out set, or -errno with err filled. */
int lel_cluster_start(lel_server_t *srv, struct lel_cluster **out, char *err, size_t errlen);
/** Ends the thread and revokes the lease (the record goes at once); the etcd client stays for
 * the other cluster parts until lel_cluster_stop. NULL is fine. */
void lel_cluster_leave(struct lel_cluster *cl);
/** Leaves (if not done yet) and frees. NULL is fine. */
void lel_cluster_stop(struct lel_cluster *cl);

/** 1 when the last exchange with etcd succeeded; 0 with the reason in `why`. Any thread. */
int lel_cluster_writable(struct lel_cluster *cl, char *why, size_t n);
/** The live nodes as last read (records in name order, this one marked "self": true). New
 * reference. Any thread. */
json_t *lel_cluster_nodes(struct lel_cluster *cl);
/** How many nodes were live at the last read (at least 1). Any thread. */
int lel_cluster_live(struct lel_cluster *cl);
/** 1 with its URL when the node `name` is live (as last read), else 0. Any thread. */
int lel_cluster_node_url(struct lel_cluster *cl, const char *name, char *url, size_t n);
/** Where a create of template `tpl` (id or name) for `team` goes (cluster.placement): the live
 * node with the most free memory among those that have the template, ties within 64 MiB to the
 * one with fewer sandboxes; "local", or no node has it: this node. Fills name and url; returns
 * 1 when that is this node. Any thread. */
int lel_cluster_place(struct lel_cluster *cl, const char *team, const char *tpl, char *name, size_t nn, char *url,
                      size_t un);
/** Another live node (not this one) whose record lists template `tpl` (id or name) of `team`,
 * the one with the most free memory: 1 with its name and URL, else 0. Where a node that lacks
 * a template fetches it from (src/template's travel). Any thread. */
int lel_cluster_holder(struct lel_cluster *cl, const char *team, const char *tpl, char *name, size_t nn, char *url,
                       size_t un);
/** The etcd client (thread-safe) and the key prefix, for the other cluster files. */
lel_etcd_t *lel_cluster_etcd(struct lel_cluster *cl);
const char *lel_cluster_prefix(struct lel_cluster *cl);
const char *lel_cluster_name(struct lel_cluster *cl);

#endif
