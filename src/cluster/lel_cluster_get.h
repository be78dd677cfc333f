/* Node-to-node reads in cluster mode: one GET to another node with the cluster secret
 * (X-Lelantos-Node), its body kept in memory or written to a file and hashed on the way. For
 * the parts that fetch what another node has (templates' images: src/template's travel). */
#ifndef LEL_CLUSTER_GET_H
#define LEL_CLUSTER_GET_H

#include <stddef.h>
#include <stdint.h>

struct lel_cluster_got {
    char *body;   /* fd < 0: the body, NUL-terminated, malloc'd (the caller frees); else NULL */
    size_t len;   /* its bytes (written to fd, or kept) */
    char sha256[65]; /* fd >= 0: SHA-256 of what was written, hex */
};

/** GET `url` with the cluster secret, at most `max` bytes of body (more: -E2BIG), within
 * `timeout_ms`. With fd >= 0 the body goes to fd. Returns the HTTP status, or -errno with err
 * filled (no answer, or a write failed). Any thread; blocks it. */
int lel_cluster_get(const char *url, const char *secret, int fd, uint64_t max, long timeout_ms,
                    struct lel_cluster_got *out, char *err, size_t errlen);

#endif
