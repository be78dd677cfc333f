/* tests/vm/guest_linux: an ordinary glibc program (linked statically) that test_vmm copies into
 * a guest and runs, checking the Linux behaviours Debian's python3, node and bash rely on that
 * busybox never reached (issue 18's list). Each check prints "<name> ok" or "<name> FAIL
 * <value>"; the program exits 0 when every check passed. Run on Linux as root (on a CPU
 * without protection keys), all pass. */
#ifndef LEL_TESTS_GUEST_LINUX_H
#define LEL_TESTS_GUEST_LINUX_H

/* One check's line; a failed one makes the program's exit status 1. */
void say(const char *name, int ok, long value);

/* Milliseconds on CLOCK_MONOTONIC. */
long mono_ms(void);

/* The sections, each in its file (guest_linux_*.c). */
void time_checks(void);
void file_checks(void);
void pgrp_checks(void);
void shm_checks(void);
void mem_checks(void);
void sig_checks(void);
void ident_checks(void);
void xfer_checks(void);
void watch_checks(void);
void pty_checks(void);
void net_checks(void);
void bind_checks(void);
void futex_checks(void);
void fork_checks(void);
void sched_checks(void);
void regr_checks(void);
void xattr_checks(void);
void suite_checks(void);
/* Not a check: microseconds per syscall, pipe round trip, fork and exec (only when named). */
void bench_run(void);

#endif
