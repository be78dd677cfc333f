/* Internals of src/envd shared by its files: lel_envd.c (dispatch, credentials, users and
 * paths, the Connect protocol's framing, streamed answers), lel_envd_proc.c (process.Process),
 * lel_envd_fs.c (filesystem.Filesystem), lel_envd_watch.c (its watches) and lel_envd_files.c
 * (GET/POST /files). Everything
 * runs on the sandbox's actor. */
#ifndef LEL_ENVD_INT_H
#define LEL_ENVD_INT_H

#include "lel_envd.h"

#include "../guest/lel_guest_abi.h"

#include <stdarg.h>

#define ENVD_DEADLINE_TICK 0x80000000u /* LEL_MSG_ENVD_TICK's arg: a stream's deadline, not its keepalive */
#define ENVD_CHUNK (1u << 20) /* a guest file call moves at most this much (half the bulk area) */

/* A user as E2B's templates have them: processes run with its uid and gid (`user` 1000, `root`
 * 0), HOME, USER and working directory. */
struct envd_user {
    const char *name, *home;
    unsigned id;
};

struct envd_stream;
struct envd_input;
/** Makes the next piece of a stream whose queue is empty (a download's next chunk); NULL for
 * streams that wait for an event (a process's end). */
typedef void (*envd_more_fn)(lel_envd_t *e, const struct lel_envd_host *h, struct envd_stream *st);

/* A streamed answer: Connect server-streaming frames, or a download's chunks. */
struct envd_stream {
    uint32_t id;
    lel_call_t *c;         /* until its last piece is handed over */
    uint32_t pid;          /* the process it follows (0: none) */
    char *queue;           /* bytes made and not yet handed to the HTTP layer (malloc'd) */
    size_t qlen, qcap;
    int want;              /* the HTTP layer sent the last piece and waits for the next */
    int ended;             /* the queue holds the answer's end */
    int keepalive_ms;      /* a keepalive frame after this long without one (0: none) */
    int64_t last_ms;       /* monotonic: when a piece was last handed over */
    int watch;             /* a WatchDir's stream (lel_envd_watch.c): its keepalive is {"keepalive":{}} */
    int64_t deadline_ms;   /* monotonic: it ends with deadline_exceeded then (0: never) */
    envd_more_fn more;
    uint64_t off, total;   /* a download: where it is, how long it is */
    char *path;            /* a download's file */
    struct envd_stream *next;
};

/* A process started by process.Process/Start: a guest command whose output the guest streams
 * (LEL_CMD_STREAM). Its output goes to every stream following it as it comes; while one of them
 * holds ENVD_BACKLOG bytes its client has not taken, the output waits in the guest (whose
 * writers then wait), and is read when that stream drains. */
struct envd_proc {
    uint32_t pid;   /* the guest's command id */
    json_t *config; /* its ProcessConfig as the client sent it (List answers it) */
    char *tag;
    int killed;     /* SendSignal ended it: its end says "signal: killed" */
    int out_waiting; /* the guest holds output a stream was too far behind to take */
    int stdin_pipe;  /* started with stdin: its pipe in the guest is open */
    int pty;         /* started with a pty: its output is pty data, SendInput's `pty` bytes are typed at it */
    struct envd_input *in; /* input the guest has not taken yet (lel_envd_stdin.c) */
    struct envd_proc *next;
};

#define ENVD_BACKLOG (1u << 20) /* bytes a stream may hold before a process's output waits in the guest */

/* A unary call waiting for a helper command (a file-system script) in the guest. */
struct envd_op {
    uint32_t cmd;
    lel_call_t *c;
    int kind;
    char *path, *path2;
    struct envd_op *next;
};

struct envd_upload;
struct envd_ended;
struct envd_watch;

struct lel_envd {
    struct envd_proc *procs;
    int nprocs;
    struct envd_ended *ended; /* recently ended processes, for Connect (lel_envd_proc.c) */
    struct envd_op *ops;
    int nops;
    struct envd_stream *streams;
    struct envd_upload *uploads;
    struct envd_watch *watches; /* WatchDir streams and watchers (lel_envd_watch.c) */
    int watch_reset;   /* the VM's guest was told to forget the watches a restore left it */
    uint32_t seq;      /* ids of streams, uploads and watchers */
    int home_ready;    /* /home/user was made */
};

/* lel_envd.c: users, paths, the Connect protocol */
/** The user of a call: `name` from the query (REST) or Authorization: Basic (RPC), NULL for
 * the default (`user`). 0, or -EACCES with the error set (unauthenticated). */
int lel__envd_user(lel_call_t *c, const char *name, int rpc, struct envd_user *u);
/** Makes sure the user's home exists (/home/user is not in every root file system). */
void lel__envd_home(lel_envd_t *e, const struct lel_envd_host *h, const struct envd_user *u);
/** A path as envd resolves it: "" and "~" the home, "~/x" and relative ones under it, then
 * "." and ".." folded. malloc'd; NULL for a path with a NUL or too long (the caller says so). */
char *lel__envd_path(const char *p, size_t len, const char *home);
/** Connect's HTTP status for an error code. */
int lel__envd_code_status(const char *code);
/** A unary error answer: {"code","message"} with the code's status. */
void lel__envd_error(lel_call_t *c, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** A unary answer: 200 application/json (steals msg). */
void lel__envd_reply(lel_call_t *c, json_t *msg);
/** The request message of an RPC (unary JSON, or the one envelope of a server-streaming
 * call); NULL with the error set (as a unary error, or as the end of a stream when `stream`). */
json_t *lel__envd_request(lel_call_t *c, int stream);
/** A server-streaming call that fails before its first message: 200 with only the end of the
 * stream carrying the error, as connect-go answers. */
void lel__envd_stream_fail(lel_call_t *c, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Starts a streamed answer on c with `first` (a message, stolen; NULL: the first piece is
 * c->raw already): the caller then returns 0 from lel_envd_call. NULL without memory (c answered). */
struct envd_stream *lel__envd_stream_open(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, json_t *first,
                                          const char *type, uint64_t total);
/** Queues a message frame (stolen) on the stream. */
void lel__envd_stream_push(struct envd_stream *st, json_t *msg);
/** Queues a message frame already encoded (n bytes of JSON). */
void lel__envd_stream_frame(struct envd_stream *st, const char *json, size_t n);
/** Queues raw bytes (a download's chunk). */
int lel__envd_stream_raw(struct envd_stream *st, const void *p, size_t n);
/** Queues the end of the stream ({} or the error) and hands over what is queued if it can. */
void lel__envd_stream_end(lel_envd_t *e, struct envd_stream *st, const char *code, const char *msg);
/** Hands the queue over if the HTTP layer waits for it; frees the stream after its end. */
void lel__envd_stream_flush(lel_envd_t *e, struct envd_stream *st);
/** A complete server-streaming answer: one message (stolen) and the end of the stream. */
void lel__envd_stream_reply(lel_call_t *c, json_t *msg);
/** Decodes base64 (either alphabet, padding optional) into out (cap bytes); its length or -1. */
long lel__envd_b64_decode(const char *in, char *out, size_t cap);
/** Standard base64 with padding of n bytes into out ((n + 2) / 3 * 4 + 1 bytes, NUL-terminated);
 * its length. */
size_t lel__envd_b64_into(char *out, const void *p, size_t n);
/** Standard base64 with padding of n bytes, malloc'd. */
char *lel__envd_b64(const void *p, size_t n);
/** Starts a guest command for envd (its end comes to lel_envd_cmd_ended); `flags` LEL_CMD_*.
 * Returns as lel_vm_cmd_start. */
int lel__envd_cmd(const struct lel_envd_host *h, const char *const *argv, const char *const *env, const char *cwd,
                  uint64_t timeout_ms, unsigned flags, uint32_t *id);

/* lel_envd_proc.c */
int lel__envd_proc_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method);
int lel__envd_proc_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res);
/** The guest says process `id` has something (LEL_POLL_*): 1 when it is envd's. */
int lel__envd_proc_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, unsigned flags);
/** A stream following process `pid` drained: output that waited in the guest is read now. */
void lel__envd_proc_drained(lel_envd_t *e, const struct lel_envd_host *h, uint32_t pid);
void lel__envd_proc_forget(lel_envd_t *e);
/** Forgets ended processes past the newest `keep` (and those kept too long); 0: all of them. */
void lel__envd_ended_forget(lel_envd_t *e, size_t keep);
/** The process a selector names ({"pid": N} or {"tag": "..."}), or NULL. */
struct envd_proc *lel__envd_proc_select(lel_envd_t *e, json_t *sel);

/* lel_envd_stdin.c: the calls return 1 when they keep c (answered once the guest took the input) */
int lel__envd_stdin_send(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p, json_t *rq);
int lel__envd_stdin_close(const struct lel_envd_host *h, lel_call_t *c, struct envd_proc *p);
int lel__envd_stdin_stream(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c);
/** Writes p's waiting input into its pipe as far as the guest takes it. */
void lel__envd_stdin_pump(const struct lel_envd_host *h, struct envd_proc *p);
/** Answers every input still waiting for p with the error (it ended, or its VM went). */
void lel__envd_stdin_fail(struct envd_proc *p, const char *code, const char *msg);

/* lel_envd_fs.c */
int lel__envd_fs_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method);
int lel__envd_fs_ended(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id, const struct lel_run_result *res);
void lel__envd_fs_fail(lel_envd_t *e, const char *why);

/* E2B's file metadata: extended attributes of this prefix, the key lowercased after it */
#define ENVD_META_PREFIX LEL_META_PREFIX /* lel_guest_abi.h: the guest keeps them apart on uploads */
#define ENVD_META_MAX 4096 /* envd's cap: the prefixed names and the values of one file together */

/** A JSON string of n bytes that may not be UTF-8 (bad bytes become U+FFFD). */
json_t *lel__envd_text(const char *p, size_t n);
/** The EntryInfo of `path` as Stat answers it, or NULL with *err the guest's errno (negative:
 * the guest did not answer, or said nothing). */
json_t *lel__envd_entry(const struct lel_envd_host *h, const char *path, int *err);

/* lel_envd_watch.c */
int lel__envd_watch_call(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c, const char *method);
/** The guest's watch `gid` has events: 1 when it is envd's. */
int lel__envd_watch_ready(lel_envd_t *e, const struct lel_envd_host *h, uint32_t gid);
/** A WatchDir stream drained (gone 0: its events are read again) or went (1: its watch goes). */
void lel__envd_watch_stream(lel_envd_t *e, const struct lel_envd_host *h, uint32_t sid, int gone);
/** Forgets every watch without asking the guest (its VM went). */
void lel__envd_watch_forget(lel_envd_t *e);

/* lel_envd_files.c */
int lel__envd_files_get(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c);
int lel__envd_files_post(lel_envd_t *e, const struct lel_envd_host *h, lel_call_t *c);
void lel__envd_upload_step(lel_envd_t *e, const struct lel_envd_host *h, uint32_t id);
void lel__envd_uploads_fail(lel_envd_t *e, const char *why);

#endif
