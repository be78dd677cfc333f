/* The scheduler's step, called from the agent's request loop whenever no request waits. */
#ifndef LEL_GUEST_PROC_SCHED_H
#define LEL_GUEST_PROC_SCHED_H

#include <stdint.h>

/** One scheduling step on the kernel's stack: runs one runnable process until it blocks,
 * yields, exits or is preempted, and ends sessions whose first process exited or whose
 * deadline passed (calling kernel_event for each one that waits to be collected). Returns 1
 * when a process ran, 0 when none was runnable. */
int proc_step(void);

#endif
