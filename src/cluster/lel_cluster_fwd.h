/* Forwarding in cluster mode: a request this node cannot serve (a sandbox another node owns, a
 * create placed elsewhere) is sent on to the node that can, with the client's credentials and
 * the cluster secret (X-Lelantos-Node), and its answer is passed back as it came. The owner
 * authenticates the client's credentials itself (keys are shared) and never forwards a
 * forwarded request again.
 *
 * To an http:// node the request streams: a non-blocking connection of its own is handed to
 * the HTTP layer's proxy (lel_call_proxy_node, src/http/lel_proxy.c), which sends the request
 * as it came (HTTP/1.1) and the answer back as it comes, bodies in pieces both ways under
 * backpressure, upgrades (WebSocket) as tunnels. To an https:// node, libcurl on the
 * forwarder's own threads carries whole bodies (streamed uploads answer 502 there), so the
 * loop threads never wait. README "Cluster mode" says why not h2o's proxy or HTTP/2. */
#ifndef LEL_CLUSTER_FWD_H
#define LEL_CLUSTER_FWD_H

#include "lel_cluster.h"

struct lel_cluster_fwd;

/** Starts `threads` forwarding threads. 0 or -errno. */
int lel_cluster_fwd_start(const char *secret, int threads, struct lel_cluster_fwd **out);
/** Ends the threads; queued calls are answered 503 first. NULL is fine. */
void lel_cluster_fwd_stop(struct lel_cluster_fwd *f);
/** Sends c on to the node at `url` ("http://host:port" or https) named `node`; the answer (or
 * a 502 naming the node) goes to the client and the call is done. Takes the call. Any thread
 * (a node URL that is a name, not an address, is looked up on it). */
void lel_cluster_forward(struct lel_cluster_fwd *f, lel_call_t *c, const char *node, const char *url);
/** 1 when `secret` (X-Lelantos-Node of a request) is the cluster's. */
int lel_cluster_fwd_trusted(struct lel_cluster_fwd *f, const char *secret);

#endif
