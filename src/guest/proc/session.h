/* Commands (sessions) the host starts, collects and kills, and their output buffers. */
#ifndef LEL_GUEST_PROC_SESSION_H
#define LEL_GUEST_PROC_SESSION_H

#include "../lel_guest_abi.h"
#include "../mm/page.h"
#include <stdint.h>

struct file;
struct inode;
struct image;
struct pipe;
struct pty;
struct proc;
struct session;

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
    int stream;             /* the host reads the output as it comes (LEL_CMD_STREAM) */
    int stdin_pipe;         /* stdin is a pipe the host writes (LEL_CMD_STDIN_PIPE), not stdin_data */
    uint32_t id;            /* the first process's uid and gid (0: root) */
    int pty;                /* LEL_CMD_PTY: stdin, stdout and stderr are a pty's slave, whose master the
                               session holds (output streamed, input through the line discipline) */
    uint16_t cols, rows;    /* ... its window size */
};

struct proc_result {
    int status; /* as a shell sees it: 0..255, 128+signal when killed */
    uint64_t out_len, err_len;
    int out_truncated, err_truncated, timed_out;
    int signaled; /* a signal ended the first process */
    int ended;    /* proc_read_output: the command has ended */
};

#define OUT_PAGES (LEL_BULK_HALF / PAGE_SIZE) /* stdout and stderr are kept up to what the host reads */
#define OUT_BYTES (OUT_PAGES * PAGE_SIZE)

/* A command's stdout or stderr. Collected at the end: the first OUT_BYTES, the rest counted as
 * truncated. Streamed: a ring of OUT_BYTES from which the host reads (rd) behind the writers
 * (len), who wait while it is full. */
struct outbuf {
    uint8_t *pages[OUT_PAGES];
    uint64_t len, rd; /* bytes written and read in all */
    int truncated, stream;
    struct session *owner;
};

struct session {
    int id; /* 0: a free slot */
    int done, background, timed_out, status, signaled;
    int rung;    /* streamed: the host was told of output it has not read yet */
    int in_want; /* a stdin write did not fit: 1 until there is room, 2 once the host was told */
    uint64_t deadline; /* kernel ticks; 0: none */
    struct proc *root;
    struct file *fout, *ferr, *fin; /* the session's own references */
    struct inode *stdin_file;
    struct pipe *inp; /* LEL_CMD_STDIN_PIPE: the stdin pipe, whose writer the session is (NULL once closed) */
    struct pty *pty;  /* LEL_CMD_PTY: the terminal whose master the session holds (NULL once it ended) */
    struct outbuf out, err;
};

/* write(2) to a command's stdout/stderr (f->ob; NULL once the command ended: discarded). A
 * streamed one waits for the host while it is full (O_NONBLOCK: EAGAIN). */
long outbuf_write_user(struct file *f, uint64_t buf, uint64_t n);

/* Whether a write to `b` (NULL: discarded) would take bytes without waiting (poll, epoll). */
int outbuf_writable(const struct outbuf *b);

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

/** Sends `sig` to every process still in session `id` (9: kills them). */
int proc_signal_session(int id, int sig);

/** A streamed session's output since the last read: stdout to out, stderr to err (cap bytes
 * each, at least OUT_BYTES: all of it), lengths and `ended` in *res. Its writers go on.
 * Returns 0, -ENOENT (no such session), -EINVAL (not streamed). */
int proc_read_output(int id, void *out, void *err, uint64_t cap, struct proc_result *res);

/** Writes n bytes into session `id`'s stdin pipe, as many as fit (*taken); `close` closes it
 * once all of them are in. Returns 0, -ENOENT, -EINVAL (not a pipe, or closed), -EPIPE (no
 * reader: the bytes are dropped). A pty session's bytes are typed at its terminal (`close` is
 * not for a terminal: -EINVAL). */
int proc_write_stdin(int id, const uint8_t *src, uint64_t n, int close, uint64_t *taken);

/** A pty session's new window size (its foreground group gets SIGWINCH). Returns 0, -ENOENT,
 * -EINVAL (not a pty session, or it ended). */
int proc_resize(int id, uint16_t cols, uint16_t rows);

/** The sessions with something for the host: up to `max` pairs (id, LEL_POLL_*) in `pairs`.
 * Returns the number of pairs. */
uint32_t proc_poll(uint32_t *pairs, uint32_t max);

#endif
