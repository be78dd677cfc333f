#ifndef LEL_GUEST_SYS_SYS_SIGNAL_H
#define LEL_GUEST_SYS_SYS_SIGNAL_H

#include <stdint.h>

struct uregs;

/* sigaltstack(ss, old): the stack handlers with SA_ONSTACK run on (per thread; Go and Rust set
 * one for every thread). `sp`: the caller's stack pointer (SS_ONSTACK when it is on it). */
long sys_sigaltstack(uint64_t sp, uint64_t uss, uint64_t uold);

long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oldact, uint64_t setsize);

long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oldset, uint64_t setsize);

/* rt_sigsuspend (mask given) and pause (mask 0, none): sleeps until a handled signal comes;
 * the handler runs with the old mask saved in its frame. */
long sys_sigsuspend(uint64_t umask, int with_mask);

/* rt_sigreturn: back to where the handler interrupted, from the frame it was given (the
 * restorer runs with the stack just past pretcode). A context taken at a syscall returns
 * through sysret; one taken from a preempted program through iret, with every register. */
long sys_rt_sigreturn(struct uregs *r);

long sys_kill(int64_t pid64, uint64_t sig);

/* tgkill and tkill (tgid 0): a signal to one thread. */
long sys_tgkill(int64_t tgid, int64_t tid, uint64_t sig);

#endif
