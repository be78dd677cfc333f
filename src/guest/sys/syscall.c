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
#include "sys_file.h"
#include "sys_io.h"
#include "sys_mem.h"
#include "sys_poll.h"
#include "sys_proc.h"
#include "sys_signal.h"
#include "sys_socket.h"
#include "sys_time.h"

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

uint64_t syscall_dispatch(struct uregs *r)
{
    long ret;
    uint64_t a = r->rdi, b = r->rsi, c = r->rdx, d = r->r10, e = r->r8, f = r->r9, nr = r->rax;
    /* interrupts stay open in syscalls, so ticks are counted during long ones (a fork's copy);
     * an interrupt in kernel mode only counts, it never switches processes */
    kernel_irq_on();
    fs_set_clock(proc_now_ns() / 1000000000); /* files get stamped with the current time */
    switch (r->rax) {
    case 0: ret = sys_rw(a, b, c, 0); break;
    case 1: ret = sys_rw(a, b, c, 1); break;
    case 2: ret = sys_openat(AT_FDCWD, a, b, c); break;
    case 3:
        ret = fd_get(a) ? 0 : -EBADF;
        if (ret == 0)
            fd_close(cur, (int)a);
        break;
    case 4: ret = sys_newfstatat(AT_FDCWD, a, b, 0); break;
    case 332: ret = sys_statx((int64_t)a, b, c, e); break;
    case 188: case 189: case 191: case 192: case 197: case 198: ret = sys_xattr(a, 0, nr != 189 && nr != 192 && nr != 198, nr < 191); break;
    case 190: case 193: case 199: ret = sys_xattr(0, (int64_t)a, 1, nr == 190); break;
    case 194: case 195: ret = sys_xattr(a, 0, nr == 194, 0); ret = ret == -61 ? 0 : ret; break; /* listxattr: none */
    case 196: ret = fd_get(a) ? 0 : -EBADF; break;
    case 221: ret = fd_get(a) ? 0 : -EBADF; break; /* fadvise64: advice taken */
    case 5: {
        struct file *fl = fd_get(a);
        ret = fl ? fill_stat(fl->ino, fl->type, b) : -EBADF;
        break;
    }
    case 6: ret = sys_newfstatat(AT_FDCWD, a, b, AT_SYMLINK_NOFOLLOW); break;
    case 8: ret = sys_lseek(a, (int64_t)b, c); break;
    case 9: ret = sys_mmap(a, b, c, d, (int64_t)e, f); break;
    case 10: ret = sys_mprotect(a, b, c); break;
    case 11: ret = sys_munmap(a, b); break;
    case 12: ret = sys_brk(a); break;
    case 13: ret = sys_rt_sigaction(a, b, c, d); break;
    case 14: ret = sys_rt_sigprocmask(a, b, c, d); break;
    case 15: ret = sys_rt_sigreturn(r); break;
    case 34: ret = sys_sigsuspend(0, 0); break;         /* pause */
    case 130: ret = sys_sigsuspend(a, 1); break;
    case 131: ret = sys_sigaltstack(r->rsp, a, b); break;
    case 200: ret = sys_tgkill(0, (int64_t)a, b); break; /* tkill */
    case 234: ret = sys_tgkill((int64_t)a, (int64_t)b, c); break;
    case 202: ret = sys_futex(a, b, c, d, e, f); break;
    case 16: ret = sys_ioctl(a, b, c); break;
    case 21: ret = sys_access(AT_FDCWD, a); break;
    case 32: ret = sys_dup3(a, 0, 0, 0); break;
    case 33: ret = sys_dup3(a, b, 1, 0); break;
    case 292: ret = a == b ? -EINVAL : sys_dup3(a, b, 1, c); break;
    case 39: ret = cur->group->pid; break;
    case 186: ret = cur->pid; break;                                /* gettid */
    case 110: ret = cur->group->ppid ? cur->group->ppid : 1; break; /* getppid: 1, the agent, for a command or orphan */
    case 22: ret = sys_pipe(a, 0); break;
    case 41: ret = sys_socket(a, b, c); break;
    case 42: ret = sys_connect(a, b, c); break;
    case 43: ret = sys_accept(a, b, c, 0); break;
    case 288: ret = sys_accept(a, b, c, d); break;
    case 44: ret = sys_sendrecv(a, b, c, d, e, f, 1); break; /* sendto */
    case 45: ret = sys_sendrecv(a, b, c, d, e, f, 0); break; /* recvfrom */
    case 46: ret = sys_msg(a, b, c, 1); break;           /* sendmsg */
    case 47: ret = sys_msg(a, b, c, 0); break;           /* recvmsg */
    case 48: ret = sys_shutdown(a, b); break;
    case 49: ret = sys_bind(a, b, c); break;
    case 50: ret = sys_listen(a, (int)b); break;
    case 51: ret = sys_sockname(a, b, c, 0); break;
    case 52: ret = sys_sockname(a, b, c, 1); break;
    case 53: ret = sys_socketpair(a, b, c, d); break;
    case 54: ret = sys_setsockopt(a, b, c, d, e); break;
    case 55: ret = sys_getsockopt(a, b, c, d, e); break;
    case 213: ret = (int)a <= 0 ? -EINVAL : sys_epoll_create(0); break;
    case 291: ret = sys_epoll_create(a); break;
    case 233: ret = sys_epoll_ctl(a, b, c, d); break;
    case 232: case 281: ret = sys_epoll_timed(a, b, (int)c, (int)d, 0); break; /* epoll_wait, epoll_pwait */
    case 441: ret = d ? sys_epoll_timed(a, b, (int)c, 0, d) : sys_epoll_timed(a, b, (int)c, -1, 0); break; /* epoll_pwait2 */
    case 284: ret = sys_eventfd(a, 0); break;
    case 290: ret = sys_eventfd(a, b); break;
    case 293: ret = sys_pipe(a, b); break;
    case 56: ret = sys_clone(r, a, b, c, d, e); break; /* clone(flags, stack, ptid, ctid, tls) */
    case 57: ret = sys_clone(r, 17, 0, 0, 0, 0); break; /* fork: SIGCHLD */
    case 58: ret = sys_clone(r, CLONE_VM_ | CLONE_VFORK_ | 17, 0, 0, 0, 0); break; /* vfork */
    case 435: ret = sys_clone3(r, a, b); break;
    case 61: ret = sys_wait4((int64_t)a, b, c, d); break;
    case 98: /* getrusage: RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD */
        ret = (int64_t)a == 0    ? put_rusage(b, proc_cpu(cur->group))
              : (int64_t)a == -1 ? put_rusage(b, cur->group->children_cpu_ns)
              : (int64_t)a == 1  ? put_rusage(b, cpu_time(cur))
                                 : -EINVAL;
        break;
    case 62: ret = sys_kill((int64_t)a, b); break;
    case 35: ret = sys_nanosleep(a); break;
    case 230: ret = sys_nanosleep(c); break;           /* clock_nanosleep, relative */
    case 109: ret = 0; break; /* setpgid: process groups are the command */
    case 112: /* setsid: leaves the command, so its end and its timeout no longer reach it */
        if (cur->sess && cur->sess->root != cur)
            cur->sess = 0;
        cur->hup_at = 0;
        ret = cur->pid;
        break;
    case 111: case 121: ret = cur->pid; break;         /* getpgrp, getpgid */
    case 102: case 104: case 107: case 108: ret = 0; break; /* uid/gid: root */
    case 63: ret = sys_uname(a); break;
    case 97: ret = sys_prlimit(0, a, 0, b); break;  /* getrlimit */
    case 160: ret = sys_prlimit(0, a, b, 0); break; /* setrlimit */
    case 302: ret = sys_prlimit(a, b, c, d); break;
    case 99: ret = sys_sysinfo(a); break;
    case 115: { /* getgroups: root's own group only */
        uint32_t g = 0;
        ret = (int)a == 0 ? 1 : (int)a < 0 ? -EINVAL : copy_user(b, &g, 4, 1) < 0 ? -EFAULT : 1;
        break;
    }
    case 116: ret = 0; break; /* setgroups */
    case 157: /* prctl: the name (PR_SET_NAME, PR_GET_NAME) */
        if (a == 15 || a == 16) {
            char name[16];
            if (a == 15) {
                long n = copy_str(b, name, sizeof(name));
                if (n == -36) { /* ENAMETOOLONG: longer names are cut to 15 bytes, as on Linux */
                    name[15] = 0;
                    n = 0;
                }
                ret = n < 0 ? n : 0;
                if (ret == 0)
                    kmemcpy(cur->comm, name, 16);
            } else {
                ret = copy_user(b, cur->comm, 16, 1);
            }
        } else {
            ret = -EINVAL;
        }
        break;
    case 40:  /* sendfile: callers fall back to read and write */
    case 334: /* rseq: glibc does without */
        ret = -ENOSYS;
        break;
    case 137: { /* statfs */
        char path[FS_PATH_MAX];
        struct inode *ino;
        long n = copy_str(a, path, sizeof(path));
        ret = n < 0 ? n : fs_lookup(cur->files->cwd, path, 1, &ino);
        if (ret == 0)
            ret = statfs_of(ino, b);
        break;
    }
    case 138: { /* fstatfs */
        struct file *fl = fd_get(a);
        ret = !fl ? -EBADF : statfs_of(fl->type == F_INODE ? fl->ino : fs_root(), b);
        break;
    }
    case 28: ret = sys_madvise(a, b, c); break;
    case 25: ret = sys_mremap(a, b, c, d); break;
    case 203: ret = 0; break; /* sched_setaffinity: there is one CPU */
    case 204: ret = sys_getaffinity(b, c); break;
    case 100: ret = sys_times(a); break;
    case 37: ret = sys_alarm(a); break;
    case 38: ret = sys_setitimer(a, b, c); break;
    case 36: ret = a == 0 ? sys_setitimer(0, 0, b) : -EINVAL; break; /* getitimer */
    case 229: { /* clock_getres: the clocks count nanoseconds */
        int64_t res[2] = {0, 1};
        ret = b ? copy_user(b, res, sizeof(res), 1) : 0;
        break;
    }
    case 72: ret = sys_fcntl(a, b, c); break;
    case 79: ret = sys_getcwd(a, b); break;
    case 80: ret = sys_chdir(a); break;
    case 89: ret = sys_readlinkat(AT_FDCWD, a, b, c); break;
    case 96: {
        int64_t ns = proc_now_ns(), tv[2] = {ns / 1000000000, (ns % 1000000000) / 1000};
        ret = a ? copy_user(a, tv, sizeof(tv), 1) : 0;
        break;
    }
    case 158: /* arch_prctl */
        if (a == 0x1002 && b < USER_TOP) {
            wrmsr(MSR_FS_BASE, b);
            ret = 0;
        } else if (a == 0x1003) {
            uint64_t fs = rdmsr(MSR_FS_BASE);
            ret = copy_user(b, &fs, 8, 1);
        } else {
            ret = -EINVAL;
        }
        break;
    case 201: { /* time(tloc): also stored through tloc when given */
        int64_t t = proc_now_ns() / 1000000000;
        ret = a && copy_user(a, &t, 8, 1) < 0 ? -EFAULT : t;
        break;
    }
    case 217: ret = sys_getdents64(a, b, c); break;
    case 218: /* set_tid_address */
        cur->clear_tid = a;
        ret = cur->pid;
        break;
    case 228: ret = sys_clock_gettime(a, b); break;
    case 257: ret = sys_openat((int64_t)a, b, c, d); break;
    case 262: ret = sys_newfstatat((int64_t)a, b, c, d); break;
    case 267: ret = sys_readlinkat((int64_t)a, b, c, d); break;
    case 269: ret = sys_access((int64_t)a, b); break;
    case 273: ret = 0; break; /* set_robust_list */
    case 318: ret = sys_getrandom(a, b); break;
    case 59: ret = sys_execve(r, a, b, c); break;
    case 17: ret = sys_prw(a, b, c, (int64_t)d, 0); break;
    case 18: ret = sys_prw(a, b, c, (int64_t)d, 1); break;
    case 19: ret = sys_rwv(a, b, c, 0); break;
    case 20: ret = sys_rwv(a, b, c, 1); break;
    case 74: case 75: case 162: ret = 0; break;         /* fsync, fdatasync, sync: memory is the disk */
    case 76: ret = sys_truncate(AT_FDCWD, a, (int64_t)b); break;
    case 77: ret = sys_truncate((int64_t)a, 0, (int64_t)b); break;
    case 82: ret = sys_renameat(AT_FDCWD, a, AT_FDCWD, b, 0); break;
    case 264: ret = sys_renameat((int64_t)a, b, (int64_t)c, d, 0); break;
    case 316: ret = sys_renameat((int64_t)a, b, (int64_t)c, d, e); break; /* renameat2 */
    case 83: ret = sys_mkdirat(AT_FDCWD, a, b); break;
    case 133: ret = sys_mknodat(AT_FDCWD, a, b); break;
    case 259: ret = sys_mknodat((int64_t)a, b, c); break;
    case 436: ret = sys_close_range(a, b, c); break;
    case 140: ret = 20 - cur->group->nice; break; /* getpriority: any target reads as this process */
    case 141: /* setpriority: kept and shown, not used (one CPU, every process gets its turn) */
        cur->group->nice = (int)c < -20 ? -20 : (int)c > 19 ? 19 : (int)c;
        ret = 0;
        break;
    case 251: ret = 0; break;                  /* ioprio_set: memory is the disk, there is no I/O queue */
    case 252: ret = 2 << 13 | 4; break;        /* ioprio_get: best effort, level 4 (the default) */
    case 258: ret = sys_mkdirat((int64_t)a, b, c); break;
    case 84: ret = sys_unlinkat(AT_FDCWD, a, 0x200); break;
    case 87: ret = sys_unlinkat(AT_FDCWD, a, 0); break;
    case 263: ret = sys_unlinkat((int64_t)a, b, c); break;
    case 86: ret = sys_linkat(AT_FDCWD, a, AT_FDCWD, b, 0); break;
    case 265: ret = sys_linkat((int64_t)a, b, (int64_t)c, d, e); break;
    case 88: ret = sys_symlinkat(a, AT_FDCWD, b); break;
    case 266: ret = sys_symlinkat(a, (int64_t)b, c); break;
    case 90: ret = sys_chmod(AT_FDCWD, a, b); break;
    case 91: ret = sys_chmod((int64_t)a, 0, b); break;
    case 268: ret = sys_chmod((int64_t)a, b, c); break;
    case 280: ret = sys_utimensat((int64_t)a, b, c, d); break;
    case 95: ret = 022; break;                          /* umask */
    case 7: ret = sys_poll(a, b, (int64_t)(int)c, 0); break;
    case 271: ret = sys_poll(a, b, -1, c); break;         /* ppoll */
    case 23: ret = sys_select(a, b, c, d, e, 0); break;
    case 270: ret = sys_select(a, b, c, d, e, 1); break;  /* pselect6 */
    case 81: { /* fchdir */
        struct file *fl = fd_get(a);
        ret = !fl || fl->type != F_INODE ? -EBADF : (fl->ino->mode & S_IFMT) != S_IFDIR ? -ENOTDIR : 0;
        if (ret == 0) {
            fs_hold(fl->ino);
            fs_release(cur->files->cwd);
            cur->files->cwd = fl->ino;
        }
        break;
    }
    case 92: case 93: case 94: case 260: ret = 0; break; /* chown family: everything is root's */
    case 73: ret = fd_get(a) ? 0 : -EBADF; break;        /* flock: one program's files, nobody to exclude */
    case 24: /* sched_yield */
        yield();
        ret = 0;
        break;
    case 60: /* exit: this thread */
        proc_exit((long)a);
    case 231: /* exit_group: every thread */
        if (!cur->group->group_exit) {
            cur->group->group_exit = 1;
            cur->group->group_status = (int)(a & 0xff);
        }
        group_kill(cur->group, cur);
        proc_exit((long)a);
    default:
        log_unknown(r->rax);
        ret = -ENOSYS;
    }
    r->rax = (uint64_t)ret;
    sig_deliver(r, nr);
    kernel_sysret_prep();
    return r->rax;
}
