/* Commands (sessions) the host starts, collects and kills, and their output buffers. */
#ifndef LEL_GUEST_PROC_SESSION_H
#define LEL_GUEST_PROC_SESSION_H

#include "../lel_guest_abi.h"
#include "../mm/page.h"
#include <stdint.h>

struct file;
struct inode;
struct image;
struct proc;

/** What to run: argv[0] is a path in the root filesystem. Strings are NUL-separated lists;
 * everything is copied before proc_start returns. */
struct proc_spec {
    const char *argv;
    uint32_t argc;
    const char *env; /* NULL: PATH, HOME, TERM defaults */
    uint32_t envc;
    const char *cwd; /* NULL: "/" */
    const uint8_t *stdin_data;
    uint64_t stdin_len;
    uint64_t timeout_ticks; /* 0: none */
    int merge_err;          /* stderr goes to stdout */
    int background;         /* nobody collects the result: the session frees itself when it ends */
};

struct proc_result {
    int status; /* as a shell sees it: 0..255, 128+signal when killed */
    uint64_t out_len, err_len;
    int out_truncated, err_truncated, timed_out;
};

#define OUT_PAGES (LEL_BULK_HALF / PAGE_SIZE) /* stdout and stderr are kept up to what the host reads */

struct outbuf {
    uint8_t *pages[OUT_PAGES];
    uint64_t len;
    int truncated;
};

struct session {
    int id; /* 0: a free slot */
    int done, background, timed_out, status;
    uint64_t deadline; /* kernel ticks; 0: none */
    struct proc *root;
    struct file *fout, *ferr, *fin; /* the session's own references */
    struct inode *stdin_file;
    struct outbuf out, err;
};

/* A command's stdout/stderr: kept up to OUT_PAGES pages, the rest counted as truncated; NULL
 * (the command has ended) discards. */
void outbuf_write(struct outbuf *b, const uint8_t *src, uint64_t n);

/* Deadlines, finished sessions, and zombies nobody will wait for (their parent is gone). */
void sessions_check(void);

/* With no process runnable: the first tick anything waits for (a sleep or a poll's limit, a
 * hangup to come, an alarm, a command's deadline); UINT64_MAX when nothing does. */
uint64_t next_deadline(void);

int start(const struct image *im, const struct proc_spec *spec);

/** Starts a command (a session): its first process is loaded and runnable when this returns.
 * Returns the session id (> 0) or a negative errno when it could not start. Processes run
 * from proc_step. */
int proc_start(const struct proc_spec *spec);

/** The same with the built-in static test executable (stdout and stderr merged). */
int proc_start_test(void);

/** Whether session `id` has ended (or does not exist). */
int proc_done(int id);

/** Takes the result of ended session `id` (0: any ended one): stdout and stderr are copied to
 * out/err (err NULL: not wanted) up to the caps, and the session is freed. Returns its id, 0
 * when it has not ended, -ENOENT when there is no such session. */
int proc_collect(int id, void *out, uint64_t out_cap, void *err, uint64_t err_cap, struct proc_result *res);

/** Kills every process still in session `id`. */
int proc_kill_session(int id);

#endif
