#ifndef LEL_GUEST_SYS_SYS_PROC_H
#define LEL_GUEST_SYS_SYS_PROC_H

#include <stdint.h>

struct uregs;

long sys_uname(uint64_t buf);

/* Resource limits as the guest has them: 64 descriptors and 128 processes (threads included),
 * a stack of STACK_MAX, nothing else limited. Lowering one is accepted (and not enforced);
 * raising a real one past what the guest has is EPERM. */
long sys_prlimit(uint64_t pid, uint64_t res, uint64_t unew, uint64_t uold);

/* struct sysinfo: uptime, memory (in bytes: mem_unit 1), process count. */
long sys_sysinfo(uint64_t ubuf);

/* sched_getaffinity: one CPU. Returns the bytes of mask written, as the raw syscall does. */
long sys_getaffinity(uint64_t len, uint64_t umask);

/* execve: gathers argv/envp into the new program's stack, then replaces the old one; on
 * success the syscall "returns" into the new program through the saved user registers. A
 * script's interpreter may itself be a script, four levels deep as on Linux. */
long sys_execve(struct uregs *regs, uint64_t upath, uint64_t uargv, uint64_t uenvp);

/* fork, vfork and clone (flags, stack, parent_tid, child_tid, tls): a new process or thread
 * that returns 0 from the call, on `stack` when one is given. */
long sys_clone(struct uregs *regs, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls);

/* clone3: clone's flags and arguments in a struct clone_args (the stack given by its base and size). */
long sys_clone3(struct uregs *regs, uint64_t uargs, uint64_t size);

/* struct rusage as wait4 and getrusage give it: user time only (system time is not split off) */
long put_rusage(uint64_t uru, uint64_t ns);

long sys_wait4(int64_t pid64, uint64_t ustatus, uint64_t options, uint64_t urusage);

#endif
