/* Linux's errno values, as syscalls return them (negated). Names with a trailing _ stay clear of
 * what a hosted build's <errno.h> defines. */
#ifndef LEL_GUEST_LIB_ERRNO_H
#define LEL_GUEST_LIB_ERRNO_H

#include <stdint.h>

enum { E2BIG_ = 7, EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12,
       EFAULT = 14, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, EMFILE = 24, ENOTTY = 25, ESPIPE = 29,
       EPIPE = 32, ERANGE = 34, ENOSYS = 38, ENOEXEC = 8, EIO_ = 5, ENXIO_ = 6, EXDEV_ = 18, ELIBBAD = 80, ETIMEDOUT = 110 };

enum { ENOTSOCK_ = 88, EPROTONOSUPPORT_ = 93, EOPNOTSUPP_ = 95, EAFNOSUPPORT_ = 97, EADDRINUSE_ = 98,
       EADDRNOTAVAIL_ = 99, ENETUNREACH_ = 101, EISCONN_ = 106, ENOTCONN_ = 107, ECONNREFUSED_ = 111 };

enum { EDESTADDRREQ_ = 89, EMSGSIZE_ = 90, ENOPROTOOPT_ = 92, ENOBUFS_ = 105 };

enum { EACCES_ = 13, ENODEV_ = 19, ETXTBSY_ = 26, ENOSPC_ = 28, ECONNRESET_ = 104, EHOSTUNREACH_ = 113, EALREADY_ = 114,
       EINPROGRESS_ = 115, EDEADLK_ = 35 };

#endif
