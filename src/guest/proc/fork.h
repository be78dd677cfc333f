/* New processes and threads: the halves of clone below the syscall. */
#ifndef LEL_GUEST_PROC_FORK_H
#define LEL_GUEST_PROC_FORK_H

#include <stdint.h>

struct proc;

/* A new thread of the current process (clone with CLONE_THREAD; glibc, musl and Go all pass
 * CLONE_VM, CLONE_FS, CLONE_FILES and CLONE_SIGHAND with it, and nothing less is supported). */
struct proc *thread_new(void);

/* A new process: a copy of this one's memory (fork), or sharing it until it execs or ends
 * (CLONE_VM without CLONE_THREAD: vfork, posix_spawn, Go's exec); its own descriptor table, a
 * copy of this one's. */
struct proc *process_new(uint64_t flags, long *err);

#endif
