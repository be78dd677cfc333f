/* Templates travel between the nodes of a cluster (README "Cluster mode"): a node asked to start
 * a sandbox from a template it does not have, which another live node's record lists, fetches
 * it from that node first: its record and build record as JSON, then its image file over HTTP,
 * both node-to-node with the cluster secret (X-Lelantos-Node), the image checked against the
 * SHA-256 and size the holder sent. The copy is then this node's like one built here (stored,
 * listed in its node record, kept across restarts): fetched once, started many times.
 *
 * The holder's side answers the internal routes GET /cluster/internal/templates/{ref}?team=
 * (the description) and GET /cluster/internal/templates/{id}/image?build= (the file).
 *
 * Threads: one fetches (one template at a time, so two creates of one template fetch it once),
 * one serves the holder's side (reads and hashes files); neither is a loop thread. Templates
 * made from an image (fromImage, or a parent that was) do not travel: their snapshots name the
 * image's root filesystem file on the node that built them. */
#ifndef LEL_TEMPLATE_TRAVEL_H
#define LEL_TEMPLATE_TRAVEL_H

#include "../core/lel_core.h"

struct lel_tpl_travel;

/** Starts the two threads (cluster mode only). 0 or -errno. */
int lel_template_travel_start(lel_server_t *srv);
/** Ends them; calls still queued are answered 503. NULL srv->travel is fine. */
void lel_template_travel_stop(lel_server_t *srv);

/** A create (c->json's templateID) for a template this node lacks and another live node lists:
 * the call is taken (returns 1), the template fetched, and then `then(srv, c)` called on the
 * fetch thread (it finds the template now), or the call answered with why the fetch failed.
 * 0 when there is nothing to fetch (the caller goes on). Any thread. */
int lel_template_fetch(lel_server_t *srv, lel_call_t *c, void (*then)(lel_server_t *, lel_call_t *));

/** The holder's side: a call whose path starts with /cluster/internal/templates/ (already
 * checked to come from a node). Takes the call. Any thread. */
void lel_template_serve(lel_server_t *srv, lel_call_t *c);

#endif
