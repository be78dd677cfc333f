/* The syscall table's entries: each unpacks a syscall's saved registers into its call. The
 * table (syscall.c) is the one list of the syscalls there are; the entries live with their
 * family (sys_file.c: paths and metadata, sys_stat.c: stat and statfs, sys_io.c: descriptors
 * and I/O, sys_mem.c: memory, sys_proc.c: processes, sys_ident.c: ids, capabilities and
 * prctl, sys_signal.c: signals, sys_time.c: time, sleeping and futexes, sys_poll.c: poll,
 * select, epoll, eventfd, sys_socket.c: sockets, sys_xfer.c: sendfile, splice, copy_file_range,
 * sys_timer.c: timerfds and POSIX timers, sys_inotify.c: inotify). */
#ifndef LEL_GUEST_SYS_SYSCALL_H
#define LEL_GUEST_SYS_SYSCALL_H

#include <stdint.h>

struct uregs;

/* A syscall's arguments as syscall_entry saved them (rdi, rsi, rdx, r10, r8, r9), its number,
 * and the saved registers themselves (execve, clone and rt_sigreturn rewrite them). */
struct sysargs {
    uint64_t a, b, c, d, e, f, nr;
    struct uregs *r;
};

/* sys_file.c */
long sc_open(const struct sysargs *s);
long sc_close(const struct sysargs *s);
long sc_stat(const struct sysargs *s);
long sc_statx(const struct sysargs *s);
long sc_setxattr(const struct sysargs *s);
long sc_fsetxattr(const struct sysargs *s);
long sc_listxattr(const struct sysargs *s);
long sc_flistxattr(const struct sysargs *s);
long sc_fadvise64(const struct sysargs *s);
long sc_fstat(const struct sysargs *s);
long sc_lstat(const struct sysargs *s);
long sc_access(const struct sysargs *s);
long sc_statfs(const struct sysargs *s);
long sc_fstatfs(const struct sysargs *s);
long sc_getcwd(const struct sysargs *s);
long sc_chdir(const struct sysargs *s);
long sc_readlink(const struct sysargs *s);
long sc_getdents64(const struct sysargs *s);
long sc_openat(const struct sysargs *s);
long sc_newfstatat(const struct sysargs *s);
long sc_readlinkat(const struct sysargs *s);
long sc_faccessat(const struct sysargs *s);
long sc_fsync(const struct sysargs *s);
long sc_truncate(const struct sysargs *s);
long sc_ftruncate(const struct sysargs *s);
long sc_rename(const struct sysargs *s);
long sc_renameat(const struct sysargs *s);
long sc_renameat2(const struct sysargs *s);
long sc_mkdir(const struct sysargs *s);
long sc_mknod(const struct sysargs *s);
long sc_mknodat(const struct sysargs *s);
long sc_mkdirat(const struct sysargs *s);
long sc_rmdir(const struct sysargs *s);
long sc_unlink(const struct sysargs *s);
long sc_unlinkat(const struct sysargs *s);
long sc_link(const struct sysargs *s);
long sc_linkat(const struct sysargs *s);
long sc_symlink(const struct sysargs *s);
long sc_symlinkat(const struct sysargs *s);
long sc_chown(const struct sysargs *s);
long sc_fchown(const struct sysargs *s);
long sc_lchown(const struct sysargs *s);
long sc_fchownat(const struct sysargs *s);
long sc_chmod(const struct sysargs *s);
long sc_fchmod(const struct sysargs *s);
long sc_fchmodat(const struct sysargs *s);
long sc_creat(const struct sysargs *s);
long sc_sethostname(const struct sysargs *s);
long sc_utimensat(const struct sysargs *s);
long sc_fchdir(const struct sysargs *s);
long sc_flock(const struct sysargs *s);

/* sys_io.c */
long sc_read(const struct sysargs *s);
long sc_write(const struct sysargs *s);
long sc_lseek(const struct sysargs *s);
long sc_ioctl(const struct sysargs *s);
long sc_dup(const struct sysargs *s);
long sc_dup2(const struct sysargs *s);
long sc_dup3(const struct sysargs *s);
long sc_pipe(const struct sysargs *s);
long sc_pipe2(const struct sysargs *s);
long sc_fcntl(const struct sysargs *s);
long sc_pread64(const struct sysargs *s);
long sc_pwrite64(const struct sysargs *s);
long sc_preadv(const struct sysargs *s);
long sc_pwritev(const struct sysargs *s);
long sc_preadv2(const struct sysargs *s);
long sc_pwritev2(const struct sysargs *s);
long sc_readv(const struct sysargs *s);
long sc_writev(const struct sysargs *s);
long sc_close_range(const struct sysargs *s);

/* sys_mem.c */
long sc_mmap(const struct sysargs *s);
long sc_mprotect(const struct sysargs *s);
long sc_munmap(const struct sysargs *s);
long sc_brk(const struct sysargs *s);
long sc_madvise(const struct sysargs *s);
long sc_mremap(const struct sysargs *s);
long sc_msync(const struct sysargs *s);
long sc_pkey_alloc(const struct sysargs *s);
long sc_pkey_free(const struct sysargs *s);
long sc_pkey_mprotect(const struct sysargs *s);
long sc_memfd_create(const struct sysargs *s);

/* sys_poll.c */
long sc_epoll_create(const struct sysargs *s);
long sc_epoll_create1(const struct sysargs *s);
long sc_epoll_ctl(const struct sysargs *s);
long sc_epoll_wait(const struct sysargs *s);
long sc_epoll_pwait2(const struct sysargs *s);
long sc_eventfd(const struct sysargs *s);
long sc_eventfd2(const struct sysargs *s);
long sc_poll(const struct sysargs *s);
long sc_ppoll(const struct sysargs *s);
long sc_select(const struct sysargs *s);
long sc_pselect6(const struct sysargs *s);

/* sys_proc.c */
long sc_getpid(const struct sysargs *s);
long sc_gettid(const struct sysargs *s);
long sc_getppid(const struct sysargs *s);
long sc_clone(const struct sysargs *s);
long sc_fork(const struct sysargs *s);
long sc_vfork(const struct sysargs *s);
long sc_clone3(const struct sysargs *s);
long sc_wait4(const struct sysargs *s);
long sc_waitid(const struct sysargs *s);
long sc_pidfd_open(const struct sysargs *s);
long sc_pidfd_send_signal(const struct sysargs *s);
long sc_getrusage(const struct sysargs *s);
long sc_setpgid(const struct sysargs *s);
long sc_setsid(const struct sysargs *s);
long sc_getpgrp(const struct sysargs *s);
long sc_getpgid(const struct sysargs *s);
long sc_getsid(const struct sysargs *s);
long sc_uname(const struct sysargs *s);
long sc_getrlimit(const struct sysargs *s);
long sc_setrlimit(const struct sysargs *s);
long sc_prlimit64(const struct sysargs *s);
long sc_sysinfo(const struct sysargs *s);
long sc_sched_setaffinity(const struct sysargs *s);
long sc_sched_getaffinity(const struct sysargs *s);
long sc_arch_prctl(const struct sysargs *s);
long sc_set_tid_address(const struct sysargs *s);
long sc_set_robust_list(const struct sysargs *s);
long sc_execve(const struct sysargs *s);
long sc_execveat(const struct sysargs *s);
long sc_getpriority(const struct sysargs *s);
long sc_setpriority(const struct sysargs *s);
long sc_ioprio_set(const struct sysargs *s);
long sc_ioprio_get(const struct sysargs *s);
long sc_umask(const struct sysargs *s);
long sc_sched_yield(const struct sysargs *s);
long sc_exit(const struct sysargs *s);
long sc_exit_group(const struct sysargs *s);

/* sys_ident.c */
long sc_getuid(const struct sysargs *s);
long sc_getgid(const struct sysargs *s);
long sc_setuid(const struct sysargs *s);
long sc_setreuid(const struct sysargs *s);
long sc_setresuid(const struct sysargs *s);
long sc_getresuid(const struct sysargs *s);
long sc_setfsuid(const struct sysargs *s);
long sc_getgroups(const struct sysargs *s);
long sc_setgroups(const struct sysargs *s);
long sc_capget(const struct sysargs *s);
long sc_prctl(const struct sysargs *s);

/* sys_signal.c */
long sc_rt_sigaction(const struct sysargs *s);
long sc_rt_sigprocmask(const struct sysargs *s);
long sc_rt_sigreturn(const struct sysargs *s);
long sc_pause(const struct sysargs *s);
long sc_rt_sigsuspend(const struct sysargs *s);
long sc_sigaltstack(const struct sysargs *s);
long sc_tkill(const struct sysargs *s);
long sc_tgkill(const struct sysargs *s);
long sc_kill(const struct sysargs *s);
long sc_rt_sigpending(const struct sysargs *s);
long sc_rt_sigtimedwait(const struct sysargs *s);
long sc_rt_sigqueueinfo(const struct sysargs *s);
long sc_rt_tgsigqueueinfo(const struct sysargs *s);
long sc_signalfd(const struct sysargs *s);
long sc_signalfd4(const struct sysargs *s);

/* sys_socket.c */
long sc_socket(const struct sysargs *s);
long sc_connect(const struct sysargs *s);
long sc_accept(const struct sysargs *s);
long sc_accept4(const struct sysargs *s);
long sc_sendto(const struct sysargs *s);
long sc_recvfrom(const struct sysargs *s);
long sc_sendmsg(const struct sysargs *s);
long sc_recvmsg(const struct sysargs *s);
long sc_sendmmsg(const struct sysargs *s);
long sc_recvmmsg(const struct sysargs *s);
long sc_shutdown(const struct sysargs *s);
long sc_bind(const struct sysargs *s);
long sc_listen(const struct sysargs *s);
long sc_getsockname(const struct sysargs *s);
long sc_getpeername(const struct sysargs *s);
long sc_socketpair(const struct sysargs *s);
long sc_setsockopt(const struct sysargs *s);
long sc_getsockopt(const struct sysargs *s);

/* sys_inotify.c */
long sc_inotify_init(const struct sysargs *s);
long sc_inotify_init1(const struct sysargs *s);
long sc_inotify_add_watch(const struct sysargs *s);
long sc_inotify_rm_watch(const struct sysargs *s);

/* sys_timer.c */
long sc_timerfd_create(const struct sysargs *s);
long sc_timerfd_settime(const struct sysargs *s);
long sc_timerfd_gettime(const struct sysargs *s);
long sc_timer_create(const struct sysargs *s);
long sc_timer_settime(const struct sysargs *s);
long sc_timer_gettime(const struct sysargs *s);
long sc_timer_getoverrun(const struct sysargs *s);
long sc_timer_delete(const struct sysargs *s);

/* sys_xfer.c */
long sc_sendfile(const struct sysargs *s);
long sc_copy_file_range(const struct sysargs *s);
long sc_splice(const struct sysargs *s);
long sc_tee(const struct sysargs *s);
long sc_vmsplice(const struct sysargs *s);

/* sys_time.c */
long sc_futex(const struct sysargs *s);
long sc_nanosleep(const struct sysargs *s);
long sc_clock_nanosleep(const struct sysargs *s);
long sc_times(const struct sysargs *s);
long sc_alarm(const struct sysargs *s);
long sc_setitimer(const struct sysargs *s);
long sc_getitimer(const struct sysargs *s);
long sc_clock_getres(const struct sysargs *s);
long sc_clock_settime(const struct sysargs *s);
long sc_gettimeofday(const struct sysargs *s);
long sc_time(const struct sysargs *s);
long sc_clock_gettime(const struct sysargs *s);
long sc_getrandom(const struct sysargs *s);

/** Serves the syscall whose number and arguments syscall_entry saved in `r` (the result goes
 * to r->rax), then delivers a pending signal; returns r->rax. Called from entry.S. */
uint64_t syscall_dispatch(struct uregs *r);

/* sys_mem.c, sys_file.c, sys_space.c, sys_sched.c: later additions */
long sc_mincore(const struct sysargs *s);
long sc_membarrier(const struct sysargs *s);
long sc_mlock(const struct sysargs *s);
long sc_faccessat2(const struct sysargs *s);
long sc_fallocate(const struct sysargs *s);
long sc_sync_file_range(const struct sysargs *s);
long sc_syncfs(const struct sysargs *s);
long sc_sched_setparam(const struct sysargs *s);
long sc_sched_getparam(const struct sysargs *s);
long sc_sched_setscheduler(const struct sysargs *s);
long sc_sched_getscheduler(const struct sysargs *s);
long sc_sched_get_priority_max(const struct sysargs *s);
long sc_sched_get_priority_min(const struct sysargs *s);
long sc_sched_rr_get_interval(const struct sysargs *s);
long sc_getcpu(const struct sysargs *s);

#endif
