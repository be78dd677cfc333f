/* lelctl: the command-line client of the REST API (../shared/docs/API.md). Not part of
 * liblelantos: it talks to a daemon over HTTP only (libcurl), reads JSON with jansson and its
 * config file with libyaml. One struct lel_cli per run, owned by main(); every command gets it.
 *
 * Exit codes (the contract scripts rely on; README "lelctl"): LEL_EXIT_*. `sandbox exec` exits
 * with the command's own code instead, and with LEL_EXIT_EXEC for a failure of lelctl's. */
#ifndef LEL_CLI_H
#define LEL_CLI_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

enum {
    LEL_EXIT_OK = 0,
    LEL_EXIT_ERROR = 1,     /* the server refused the request (400, 500, ...) or a local file failed */
    LEL_EXIT_USAGE = 2,     /* bad command line or config file */
    LEL_EXIT_CONNECT = 3,   /* the daemon could not be reached, or answered something that is not the API */
    LEL_EXIT_NOTFOUND = 4,  /* 404 */
    LEL_EXIT_AUTH = 5,      /* 401, 403 */
    LEL_EXIT_CONFLICT = 6,  /* 409: the wrong state for the request */
    LEL_EXIT_BUSY = 7,      /* 429 rate limited, 503 out of capacity: worth retrying later */
    LEL_EXIT_BUILD = 8,     /* a template build ended in error */
    LEL_EXIT_EXEC = 125,    /* `sandbox exec`: lelctl could not run the command (as docker run's 125) */
};

struct lel_cli {
    char *url;          /* base URL, no trailing slash (owned) */
    char *key;          /* API key (owned) or NULL */
    int json;           /* --json: print the server's JSON instead of tables */
    int quiet;          /* -q: lists print ids only */
    long timeout_s;     /* per request (--request-timeout); 0: none */
    const char *config_path; /* --config, or NULL */
    const char *admin_token; /* `backup`, `nodes`: sent as X-Admin-Token instead of the API key */
    CURL *curl;         /* one handle, so requests reuse the connection; made by lel_cli_ready */
};

/* The options every command takes (getopt_long entries; lel_cli_opt handles them). */
enum { LEL_OPT_JSON = 1000, LEL_OPT_URL, LEL_OPT_KEY, LEL_OPT_CONFIG, LEL_OPT_RTIMEOUT };
#define LEL_CLI_OPTS                                                                                                   \
    {"json", 0, 0, LEL_OPT_JSON}, {"quiet", 0, 0, 'q'}, {"url", 1, 0, LEL_OPT_URL}, {"api-key", 1, 0, LEL_OPT_KEY},    \
        {"config", 1, 0, LEL_OPT_CONFIG}, {"request-timeout", 1, 0, LEL_OPT_RTIMEOUT}
/** Handles one of LEL_CLI_OPTS: 1 when it was one, 0 when not, -1 for a bad value (printed). */
int lel_cli_opt(struct lel_cli *cli, int c, const char *arg);
/** Loads the configuration and makes the curl handle: call after the options, before the first
 * request. Returns 0 or an exit code. */
int lel_cli_ready(struct lel_cli *cli);
/** Parses a non-negative integer option; -1 (printed) when it is not one. */
long long lel_cli_num(const char *opt, const char *arg);

/* One answer. body is NUL-terminated; json is the parsed body when it is JSON (owned). */
struct lel_cli_resp {
    long status;
    char *body;
    size_t len;
    json_t *json;
    char next_token[256]; /* X-Next-Token, "" when absent */
    char ctype[128];      /* Content-Type */
};

/* ---- lel_cli_config.c ---- */
/** Fills url and key: flags (already in cli, may be NULL) win over LELANTOS_URL /
 * LELANTOS_API_KEY, which win over the config file (`path`, else $LELANTOS_CONFIG, else
 * $XDG_CONFIG_HOME or ~/.config/lelantos/config.yaml; a missing default file is fine).
 * Returns 0 or LEL_EXIT_USAGE after printing why. */
int lel_cli_config_load(struct lel_cli *cli, const char *path);

/* ---- lel_cli_http.c ---- */
/** One request; `body` (borrowed, may be NULL) is sent as JSON. Returns 0 with r filled (any
 * status), or LEL_EXIT_CONNECT after printing why. Free r with lel_cli_resp_free. */
int lel_cli_request(struct lel_cli *cli, const char *method, const char *path, json_t *body, struct lel_cli_resp *r);
/** Exit code for r: 0 when its status is `ok` (or 2xx when ok is 0), else the code for the
 * status after printing the server's error message. */
int lel_cli_status(const struct lel_cli_resp *r, long ok);
/** lel_cli_request then lel_cli_status: 0 with r filled, or the exit code (r freed). */
int lel_cli_call(struct lel_cli *cli, const char *method, const char *path, json_t *body, long ok, struct lel_cli_resp *r);
/** The second half of lel_cli_call, for a response from lel_cli_request that the caller looked
 * at first: 0, or the exit code (r freed). */
int lel_cli_call_done(struct lel_cli_resp *r, long ok, const char *method, const char *path);
void lel_cli_resp_free(struct lel_cli_resp *r);
/** Maps an HTTP status to an exit code. */
int lel_cli_exit_for(long status);
/** Percent-encodes s for a path segment or query value; free() it. */
char *lel_cli_escape(const char *s);
/** Sets up cli->curl for `method` on `path` with the key and timeout; the caller adds the
 * rest (streams). Returns the header list to free after the transfer. */
struct curl_slist *lel_cli_prepare(struct lel_cli *cli, const char *method, const char *path, const char *ctype);

/* ---- lel_cli_out.c ---- */
/** Prints j as indented JSON on stdout. */
void lel_cli_print_json(json_t *j);
/** A table: `cols` names (NULL-terminated), rows an array of arrays of strings. Column widths
 * fit the widest cell; the last column is not padded. */
void lel_cli_print_table(const char *const *cols, json_t *rows);
/** Prints an object's fields as "name: value" lines (nested values as JSON). */
void lel_cli_print_fields(json_t *obj);
/** A field of o as text for a table cell ("" when absent; numbers and booleans as JSON). The
 * string is owned by o or by a small rotating buffer: use it before the next 8 calls. */
const char *lel_cli_cell(json_t *o, const char *field);

/* ---- the command groups: each takes argc/argv from its verb on (argv[0] is the verb) ---- */
int lel_cli_sandbox(struct lel_cli *cli, int argc, char **argv);
int lel_cli_template(struct lel_cli *cli, int argc, char **argv);
int lel_cli_snapshot(struct lel_cli *cli, int argc, char **argv);
int lel_cli_key(struct lel_cli *cli, int argc, char **argv);
/** `backup DIR`: POST /admin/backup with --admin-token or LELANTOS_ADMIN_TOKEN. */
int lel_cli_backup(struct lel_cli *cli, int argc, char **argv);
/** `nodes`: GET /cluster/nodes (cluster mode) with --admin-token or LELANTOS_ADMIN_TOKEN, as a
 * table (the node answering marked SELF), names with -q, the JSON with --json. */
int lel_cli_nodes(struct lel_cli *cli, int argc, char **argv);
/** `completion bash`: prints the script. */
int lel_cli_completion(int argc, char **argv);

/** Usage error: prints "lelctl: <msg>" and a hint, returns LEL_EXIT_USAGE. */
int lel_cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Prints "lelctl: <msg>" on stderr. */
void lel_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
