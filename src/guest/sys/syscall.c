/* The Linux x86-64 syscalls served so far: one table by number (below), whose entries live
 * with their family (syscall.h). Unknown numbers return -ENOSYS and are logged once each. */
#include "syscall.h"

#include "../arch/arch.h"
#include "../arch/cpu.h"
#include "../fs/file.h"
#include "../fs/fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/vm.h"
#include "../proc/proc.h"
#include "../proc/session.h"
#include "../proc/signal.h"
#include "sys_io.h"
struct syscall {
    const char *name;
    long (*call)(const struct sysargs *s);
};

static void log_unknown(uint64_t nr)
{
    static uint8_t seen[512];
    if (nr < sizeof(seen) && !seen[nr]) {
        seen[nr] = 1;
        console_write("guest: unknown syscall ");
        console_hex(nr);
        console_write("\n");
    }
}

/* rseq (glibc does without) */
static long sc_enosys(const struct sysargs *s)
{
    (void)s;
    return -ENOSYS;
}

/* The syscalls there are, by number: each entry unpacks the saved registers into its call.
 * A number with no entry returns -ENOSYS (logged once). */
static const struct syscall syscalls[] = {
    [0] = {"read", sc_read},
    [1] = {"write", sc_write},
    [2] = {"open", sc_open},
    [3] = {"close", sc_close},
    [4] = {"stat", sc_stat},
    [5] = {"fstat", sc_fstat},
    [6] = {"lstat", sc_lstat},
    [7] = {"poll", sc_poll},
    [8] = {"lseek", sc_lseek},
    [9] = {"mmap", sc_mmap},
    [10] = {"mprotect", sc_mprotect},
    [11] = {"munmap", sc_munmap},
    [12] = {"brk", sc_brk},
    [13] = {"rt_sigaction", sc_rt_sigaction},
    [14] = {"rt_sigprocmask", sc_rt_sigprocmask},
    [15] = {"rt_sigreturn", sc_rt_sigreturn},
    [16] = {"ioctl", sc_ioctl},
    [17] = {"pread64", sc_pread64},
    [18] = {"pwrite64", sc_pwrite64},
    [19] = {"readv", sc_readv},
    [20] = {"writev", sc_writev},
    [21] = {"access", sc_access},
    [22] = {"pipe", sc_pipe},
    [23] = {"select", sc_select},
    [24] = {"sched_yield", sc_sched_yield},
    [25] = {"mremap", sc_mremap},
    [26] = {"msync", sc_msync},
    [27] = {"mincore", sc_mincore},
    [28] = {"madvise", sc_madvise},
    [32] = {"dup", sc_dup},
    [33] = {"dup2", sc_dup2},
    [34] = {"pause", sc_pause},
    [35] = {"nanosleep", sc_nanosleep},
    [36] = {"getitimer", sc_getitimer},
    [37] = {"alarm", sc_alarm},
    [38] = {"setitimer", sc_setitimer},
    [39] = {"getpid", sc_getpid},
    [40] = {"sendfile", sc_sendfile},
    [41] = {"socket", sc_socket},
    [42] = {"connect", sc_connect},
    [43] = {"accept", sc_accept},
    [44] = {"sendto", sc_sendto},
    [45] = {"recvfrom", sc_recvfrom},
    [46] = {"sendmsg", sc_sendmsg},
    [47] = {"recvmsg", sc_recvmsg},
    [48] = {"shutdown", sc_shutdown},
    [49] = {"bind", sc_bind},
    [50] = {"listen", sc_listen},
    [51] = {"getsockname", sc_getsockname},
    [52] = {"getpeername", sc_getpeername},
    [53] = {"socketpair", sc_socketpair},
    [54] = {"setsockopt", sc_setsockopt},
    [55] = {"getsockopt", sc_getsockopt},
    [56] = {"clone", sc_clone},
    [57] = {"fork", sc_fork},
    [58] = {"vfork", sc_vfork},
    [59] = {"execve", sc_execve},
    [60] = {"exit", sc_exit},
    [61] = {"wait4", sc_wait4},
    [62] = {"kill", sc_kill},
    [63] = {"uname", sc_uname},
    [72] = {"fcntl", sc_fcntl},
    [73] = {"flock", sc_flock},
    [74] = {"fsync", sc_fsync},
    [75] = {"fdatasync", sc_fsync},
    [76] = {"truncate", sc_truncate},
    [77] = {"ftruncate", sc_ftruncate},
    [79] = {"getcwd", sc_getcwd},
    [80] = {"chdir", sc_chdir},
    [81] = {"fchdir", sc_fchdir},
    [82] = {"rename", sc_rename},
    [83] = {"mkdir", sc_mkdir},
    [84] = {"rmdir", sc_rmdir},
    [85] = {"creat", sc_creat},
    [86] = {"link", sc_link},
    [87] = {"unlink", sc_unlink},
    [88] = {"symlink", sc_symlink},
    [89] = {"readlink", sc_readlink},
    [90] = {"chmod", sc_chmod},
    [91] = {"fchmod", sc_fchmod},
    [92] = {"chown", sc_chown},
    [93] = {"fchown", sc_fchown},
    [94] = {"lchown", sc_lchown},
    [95] = {"umask", sc_umask},
    [96] = {"gettimeofday", sc_gettimeofday},
    [97] = {"getrlimit", sc_getrlimit},
    [98] = {"getrusage", sc_getrusage},
    [99] = {"sysinfo", sc_sysinfo},
    [100] = {"times", sc_times},
    [102] = {"getuid", sc_getuid},
    [104] = {"getgid", sc_getgid},
    [105] = {"setuid", sc_setuid},
    [106] = {"setgid", sc_setuid},
    [107] = {"geteuid", sc_getuid},
    [108] = {"getegid", sc_getgid},
    [109] = {"setpgid", sc_setpgid},
    [110] = {"getppid", sc_getppid},
    [111] = {"getpgrp", sc_getpgrp},
    [112] = {"setsid", sc_setsid},
    [113] = {"setreuid", sc_setreuid},
    [114] = {"setregid", sc_setreuid},
    [115] = {"getgroups", sc_getgroups},
    [116] = {"setgroups", sc_setgroups},
    [117] = {"setresuid", sc_setresuid},
    [118] = {"getresuid", sc_getresuid},
    [119] = {"setresgid", sc_setresuid},
    [120] = {"getresgid", sc_getresuid},
    [121] = {"getpgid", sc_getpgid},
    [122] = {"setfsuid", sc_setfsuid},
    [123] = {"setfsgid", sc_setfsuid},
    [124] = {"getsid", sc_getsid},
    [125] = {"capget", sc_capget},
    [126] = {"capset", sc_capget},
    [127] = {"rt_sigpending", sc_rt_sigpending},
    [128] = {"rt_sigtimedwait", sc_rt_sigtimedwait},
    [129] = {"rt_sigqueueinfo", sc_rt_sigqueueinfo},
    [130] = {"rt_sigsuspend", sc_rt_sigsuspend},
    [131] = {"sigaltstack", sc_sigaltstack},
    [133] = {"mknod", sc_mknod},
    [137] = {"statfs", sc_statfs},
    [138] = {"fstatfs", sc_fstatfs},
    [140] = {"getpriority", sc_getpriority},
    [141] = {"setpriority", sc_setpriority},
    [142] = {"sched_setparam", sc_sched_setparam},
    [143] = {"sched_getparam", sc_sched_getparam},
    [144] = {"sched_setscheduler", sc_sched_setscheduler},
    [145] = {"sched_getscheduler", sc_sched_getscheduler},
    [146] = {"sched_get_priority_max", sc_sched_get_priority_max},
    [147] = {"sched_get_priority_min", sc_sched_get_priority_min},
    [148] = {"sched_rr_get_interval", sc_sched_rr_get_interval},
    [149] = {"mlock", sc_mlock},
    [150] = {"munlock", sc_mlock},
    [151] = {"mlockall", sc_mlock},
    [152] = {"munlockall", sc_mlock},
    [157] = {"prctl", sc_prctl},
    [158] = {"arch_prctl", sc_arch_prctl},
    [160] = {"setrlimit", sc_setrlimit},
    [162] = {"sync", sc_fsync},
    [170] = {"sethostname", sc_sethostname},
    [171] = {"setdomainname", sc_sethostname},
    [186] = {"gettid", sc_gettid},
    [188] = {"setxattr", sc_setxattr},
    [189] = {"lsetxattr", sc_setxattr},
    [190] = {"fsetxattr", sc_fsetxattr},
    [191] = {"getxattr", sc_setxattr},
    [192] = {"lgetxattr", sc_setxattr},
    [193] = {"fgetxattr", sc_fsetxattr},
    [194] = {"listxattr", sc_listxattr},
    [195] = {"llistxattr", sc_listxattr},
    [196] = {"flistxattr", sc_flistxattr},
    [197] = {"removexattr", sc_setxattr},
    [198] = {"lremovexattr", sc_setxattr},
    [199] = {"fremovexattr", sc_fsetxattr},
    [200] = {"tkill", sc_tkill},
    [201] = {"time", sc_time},
    [202] = {"futex", sc_futex},
    [203] = {"sched_setaffinity", sc_sched_setaffinity},
    [204] = {"sched_getaffinity", sc_sched_getaffinity},
    [213] = {"epoll_create", sc_epoll_create},
    [217] = {"getdents64", sc_getdents64},
    [218] = {"set_tid_address", sc_set_tid_address},
    [221] = {"fadvise64", sc_fadvise64},
    [222] = {"timer_create", sc_timer_create},
    [223] = {"timer_settime", sc_timer_settime},
    [224] = {"timer_gettime", sc_timer_gettime},
    [225] = {"timer_getoverrun", sc_timer_getoverrun},
    [226] = {"timer_delete", sc_timer_delete},
    [227] = {"clock_settime", sc_clock_settime},
    [228] = {"clock_gettime", sc_clock_gettime},
    [229] = {"clock_getres", sc_clock_getres},
    [230] = {"clock_nanosleep", sc_clock_nanosleep},
    [231] = {"exit_group", sc_exit_group},
    [232] = {"epoll_wait", sc_epoll_wait},
    [233] = {"epoll_ctl", sc_epoll_ctl},
    [234] = {"tgkill", sc_tgkill},
    [247] = {"waitid", sc_waitid},
    [251] = {"ioprio_set", sc_ioprio_set},
    [252] = {"ioprio_get", sc_ioprio_get},
    [253] = {"inotify_init", sc_inotify_init},
    [254] = {"inotify_add_watch", sc_inotify_add_watch},
    [255] = {"inotify_rm_watch", sc_inotify_rm_watch},
    [257] = {"openat", sc_openat},
    [258] = {"mkdirat", sc_mkdirat},
    [259] = {"mknodat", sc_mknodat},
    [260] = {"fchownat", sc_fchownat},
    [262] = {"newfstatat", sc_newfstatat},
    [263] = {"unlinkat", sc_unlinkat},
    [264] = {"renameat", sc_renameat},
    [265] = {"linkat", sc_linkat},
    [266] = {"symlinkat", sc_symlinkat},
    [267] = {"readlinkat", sc_readlinkat},
    [268] = {"fchmodat", sc_fchmodat},
    [269] = {"faccessat", sc_faccessat},
    [270] = {"pselect6", sc_pselect6},
    [271] = {"ppoll", sc_ppoll},
    [273] = {"set_robust_list", sc_set_robust_list},
    [275] = {"splice", sc_splice},
    [276] = {"tee", sc_tee},
    [277] = {"sync_file_range", sc_sync_file_range},
    [278] = {"vmsplice", sc_vmsplice},
    [280] = {"utimensat", sc_utimensat},
    [281] = {"epoll_pwait", sc_epoll_wait},
    [282] = {"signalfd", sc_signalfd},
    [283] = {"timerfd_create", sc_timerfd_create},
    [284] = {"eventfd", sc_eventfd},
    [285] = {"fallocate", sc_fallocate},
    [286] = {"timerfd_settime", sc_timerfd_settime},
    [287] = {"timerfd_gettime", sc_timerfd_gettime},
    [288] = {"accept4", sc_accept4},
    [289] = {"signalfd4", sc_signalfd4},
    [290] = {"eventfd2", sc_eventfd2},
    [291] = {"epoll_create1", sc_epoll_create1},
    [292] = {"dup3", sc_dup3},
    [293] = {"pipe2", sc_pipe2},
    [297] = {"rt_tgsigqueueinfo", sc_rt_tgsigqueueinfo},
    [299] = {"recvmmsg", sc_recvmmsg},
    [294] = {"inotify_init1", sc_inotify_init1},
    [302] = {"prlimit64", sc_prlimit64},
    [306] = {"syncfs", sc_syncfs},
    [316] = {"renameat2", sc_renameat2},
    [307] = {"sendmmsg", sc_sendmmsg},
    [309] = {"getcpu", sc_getcpu},
    [318] = {"getrandom", sc_getrandom},
    [319] = {"memfd_create", sc_memfd_create},
    [324] = {"membarrier", sc_membarrier},
    [325] = {"mlock2", sc_mlock},
    [326] = {"copy_file_range", sc_copy_file_range},
    [329] = {"pkey_mprotect", sc_pkey_mprotect},
    [330] = {"pkey_alloc", sc_pkey_alloc},
    [331] = {"pkey_free", sc_pkey_free},
    [295] = {"preadv", sc_preadv},
    [296] = {"pwritev", sc_pwritev},
    [322] = {"execveat", sc_execveat},
    [327] = {"preadv2", sc_preadv2},
    [328] = {"pwritev2", sc_pwritev2},
    [332] = {"statx", sc_statx},
    [334] = {"rseq", sc_enosys},
    [424] = {"pidfd_send_signal", sc_pidfd_send_signal},
    [434] = {"pidfd_open", sc_pidfd_open},
    [435] = {"clone3", sc_clone3},
    [436] = {"close_range", sc_close_range},
    [439] = {"faccessat2", sc_faccessat2},
    [441] = {"epoll_pwait2", sc_epoll_pwait2},
};

uint64_t syscall_dispatch(struct uregs *r)
{
    const struct sysargs s = {r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9, r->rax, r};
    /* interrupts stay open in syscalls, so ticks are counted during long ones (a fork's copy);
     * an interrupt in kernel mode only counts, it never switches processes */
    kernel_irq_on();
    fs_set_clock(proc_now_ns() / 1000000000); /* files get stamped with the current time */
    fs_set_owner(proc_cur()->group->uid[3], proc_cur()->group->gid[3]); /* ... and owned by the caller */
    long ret;
    if (s.nr < sizeof(syscalls) / sizeof(syscalls[0]) && syscalls[s.nr].call) {
        ret = syscalls[s.nr].call(&s);
    } else {
        log_unknown(s.nr);
        ret = -ENOSYS;
    }
    r->rax = (uint64_t)ret;
    sig_deliver(r, s.nr);
    kernel_sysret_prep();
    return r->rax;
}
