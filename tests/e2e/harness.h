/* End-to-end harness: starts the real lelantosd on a free loopback port with a temp data dir,
 * and talks to it with libcurl over HTTP/1.1, h2c (prior knowledge) or TLS. */
#ifndef LEL_E2E_HARNESS_H
#define LEL_E2E_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct srv {
    pid_t pid;
    int port;
    char dir[128];     /* temp dir: data/, config.yaml, log */
    char key[64];      /* the default team's initial key */
    char yaml[2048];   /* extra config lines */
    int tls;
    long http_timeout_s; /* a request's limit; 0: 90 s */
    long recv_bps;       /* a slow reader: libcurl takes at most this many bytes a second; 0: no limit */
} srv_t;

enum proto { H1 = 0, H2 = 1, H2_UPGRADE = 2 }; /* H2: prior knowledge; H2_UPGRADE: Upgrade: h2c */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char *headers; /* raw header block, lowercase names */
    json_t *json;  /* parsed body when it is JSON */
    long version;  /* 11 or 20 */
} resp_t;

/** A TCP port on 127.0.0.1 that nothing listens on now. */
int srv_free_port(void);
/** Starts a fresh server (new temp dir) with extra YAML config lines. Returns 0 or -1. */
int srv_start(srv_t *s, const char *extra_yaml);
/** Starts the server again on the same data dir and port. */
int srv_restart(srv_t *s);
/** SIGTERM and wait; returns the exit status (or -1). */
int srv_stop(srv_t *s);
/** Prints the end of the daemon's log to stderr: for a stop that did not go well, or a test that
 * failed (the log goes with the data folder). */
void srv_log_tail(const srv_t *s);
/** SIGKILL and wait. */
void srv_kill9(srv_t *s);
/** Removes the temp dir (after stop). */
void srv_cleanup(srv_t *s);

/** One request. `hdrs` is a NULL-terminated list of "Name: value" or NULL. Returns 0 or -1 (transport error). */
int http_req(srv_t *s, resp_t *r, enum proto p, const char *method, const char *path, const char *body, size_t len,
             const char *const *hdrs);
/** Authenticated JSON request with the server's default key. */
int api(srv_t *s, resp_t *r, enum proto p, const char *method, const char *path, const char *json_body);
/** Same with a given key. */
int api_key(srv_t *s, resp_t *r, enum proto p, const char *key, const char *method, const char *path, const char *json_body);
/** Value of a response header (static buffer) or NULL. */
const char *resp_header(resp_t *r, const char *name);
void resp_free(resp_t *r);
/** Field of the JSON body as a string, or "". */
const char *jstr(resp_t *r, const char *field);

#endif
