/* Data moved in the kernel: sendfile (python's shutil.copyfile, socket.sendfile),
 * copy_file_range (coreutils' cp), splice, tee and vmsplice; sendmmsg and recvmmsg. */
#include "guest_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define BIG (1 << 20)

static char *pattern(void)
{
    char *b = malloc(BIG);
    for (int i = 0; b && i < BIG; i++)
        b[i] = (char)(i * 7 + i / 4096);
    return b;
}

static int file_with(const char *path, const char *data, long n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0 && write(fd, data, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

static int same_file(const char *path, const char *data, long n)
{
    char *b = malloc((size_t)n + 1);
    int fd = open(path, O_RDONLY);
    long got = b && fd >= 0 ? read(fd, b, (size_t)n + 1) : -1;
    int ok = got == n && !memcmp(b, data, (size_t)n);
    close(fd);
    free(b);
    return ok;
}

static void sendfiles(const char *data)
{
    int in = file_with("/tmp/xfer.in", data, BIG), out = open("/tmp/xfer.out", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    off_t off = 0;
    long total = 0, r;
    while ((r = sendfile(out, in, &off, BIG - total)) > 0) /* as shutil.copyfile copies */
        total += r;
    say("sendfile copies a file", total == BIG && off == BIG && lseek(in, 0, SEEK_CUR) == BIG && same_file("/tmp/xfer.out", data, BIG),
        total);
    int s[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, s);
    lseek(in, 100, SEEK_SET);
    r = sendfile(s[0], in, NULL, 5000);
    char buf[5000];
    long got = 0;
    while (got < 5000 && (total = read(s[1], buf + got, sizeof(buf) - (size_t)got)) > 0)
        got += total;
    say("sendfile to a socket, from the file's offset", r == 5000 && got == 5000 && !memcmp(buf, data + 100, 5000) &&
        lseek(in, 0, SEEK_CUR) == 5100, r);
    int p[2];
    say("sendfile from a pipe EINVAL", pipe(p) == 0 && sendfile(out, p[0], NULL, 10) == -1 && errno == EINVAL, errno);
    close(p[0]), close(p[1]), close(s[0]), close(s[1]), close(in), close(out);
}

static void copy_ranges(const char *data)
{
    int in = file_with("/tmp/xfer.in", data, BIG), out = open("/tmp/xfer.out", O_RDWR | O_CREAT | O_TRUNC, 0600);
    lseek(in, 0, SEEK_SET);
    long total = 0, r;
    while ((r = copy_file_range(in, NULL, out, NULL, (size_t)(BIG - total), 0)) > 0)
        total += r;
    say("copy_file_range", total == BIG && same_file("/tmp/xfer.out", data, BIG), total);
    off_t io = 10, oo = 0;
    r = copy_file_range(in, &io, out, &oo, 100, 0);
    char buf[100];
    say("copy_file_range at offsets", r == 100 && io == 110 && oo == 100 && pread(out, buf, 100, 0) == 100 &&
        !memcmp(buf, data + 10, 100) && lseek(out, 0, SEEK_CUR) == BIG, r);
    io = 0, oo = 50;
    say("copy_file_range over itself EINVAL", copy_file_range(in, &io, in, &oo, 100, 0) == -1 && errno == EINVAL, errno);
    close(in), close(out);
}

static void splices(void)
{
    int p[2], q[2], fd = open("/tmp/xfer.sp", O_RDWR | O_CREAT | O_TRUNC, 0600);
    char buf[16] = {0};
    if (pipe(p) < 0 || pipe(q) < 0 || write(p[1], "hello", 5) != 5)
        return;
    loff_t off = 3;
    long r = splice(p[0], NULL, fd, &off, 5, 0);
    say("splice from a pipe into a file", r == 5 && off == 8 && pread(fd, buf, 5, 3) == 5 && !memcmp(buf, "hello", 5), r);
    off = 3;
    r = splice(fd, &off, p[1], NULL, 5, 0);
    long t = write(p[1], "!", 1);
    r = r == 5 && t == 1 ? splice(p[0], NULL, q[1], NULL, 16, SPLICE_F_NONBLOCK) : -1;
    memset(buf, 0, sizeof(buf));
    say("splice from a file into a pipe, and pipe to pipe", r == 6 && read(q[0], buf, 16) == 6 && !strcmp(buf, "hello!"), r);
    say("splice with a pipe's offset ESPIPE", splice(p[0], &off, fd, NULL, 1, 0) == -1 && errno == ESPIPE, errno);
    int other = open("/tmp/xfer.in", O_RDONLY);
    say("splice between two files EINVAL", splice(other, NULL, fd, NULL, 1, 0) == -1 && errno == EINVAL, errno);
    r = write(p[1], "tee", 3) == 3 ? tee(p[0], q[1], 3, 0) : -1;
    memset(buf, 0, sizeof(buf));
    int both = r == 3 && read(q[0], buf, 16) == 3 && !strcmp(buf, "tee");
    memset(buf, 0, sizeof(buf));
    say("tee copies and leaves the bytes", both && read(p[0], buf, 16) == 3 && !strcmp(buf, "tee"), r);
    close(other), close(fd), close(p[0]), close(p[1]), close(q[0]), close(q[1]);
}

static void mmsgs(void)
{
    int s[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, s);
    struct iovec iov[3] = {{"one", 3}, {"two!", 4}, {"three", 5}};
    struct mmsghdr m[3];
    memset(m, 0, sizeof(m));
    for (int i = 0; i < 3; i++) {
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(s[0], m, 3, 0);
    char in[3][8];
    struct iovec riov[3] = {{in[0], 8}, {in[1], 8}, {in[2], 8}};
    struct mmsghdr r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++) {
        r[i].msg_hdr.msg_iov = &riov[i];
        r[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(s[1], r, 3, MSG_WAITFORONE, NULL);
    say("sendmmsg and recvmmsg", sent == 3 && m[2].msg_len == 5 && got == 3 && r[1].msg_len == 4 && !memcmp(in[2], "three", 5),
        sent * 10 + got);
    close(s[0]), close(s[1]);
}

/* vmsplice: user memory into a pipe (two segments, one datagram of bytes) and back out */
static void vmsplices(void)
{
    int p[2];
    char a[] = "hello ", b[] = "world", out[16] = {0};
    struct iovec in[2] = {{a, 6}, {b, 5}}, back = {out, sizeof(out)};
    if (pipe(p) < 0)
        return;
    long w = vmsplice(p[1], in, 2, 0);
    long r = vmsplice(p[0], &back, 1, 0);
    say("vmsplice into a pipe and out of it", w == 11 && r == 11 && !memcmp(out, "hello world", 11), w * 100 + r);
    say("vmsplice of an empty pipe with SPLICE_F_NONBLOCK: EAGAIN", vmsplice(p[0], &back, 1, SPLICE_F_NONBLOCK) == -1 && errno == EAGAIN, errno);
    int fd = open("/tmp/xfer.vm", O_RDWR | O_CREAT | O_TRUNC, 0600);
    say("vmsplice of a file: EBADF", vmsplice(fd, in, 1, 0) == -1 && errno == EBADF, errno);
    close(fd);
    close(p[0]);
    close(p[1]);
}

void xfer_checks(void)
{
    char *data = pattern();
    if (!data)
        return;
    sendfiles(data);
    copy_ranges(data);
    splices();
    mmsgs();
    vmsplices();
    free(data);
}
