/* Pipes and named pipes (FIFOs): a ring of 64 KiB (or F_SETPIPE_SZ's size) each, blocking readers and writers, EOF,
 * EPIPE/SIGPIPE, PIPE_BUF atomicity (see pipe.h). */
#include "pipe.h"

#include "file.h"
#include "fs.h"
#include "../lib/errno.h"
#include "../lib/klib.h"
#include "../mm/page.h"
#include "../proc/proc.h"
#include "../proc/signal.h"

#define PIPE_BUF_ 4096 /* writes up to this size are never split */

/* A pipe's readiness changed: for poll, select and epoll waiters. */
static void pipe_changed(struct pipe *p)
{
    p->seq++;
    wake(W_PIPE, 0);
    if (p->hook)
        p->hook(p->hook_ctx);
}

struct pipe *pipe_new(void)
{
    struct pipe *p = kmalloc(sizeof(*p));
    if (!p)
        return 0;
    p->npages = PIPE_PAGES;
    p->page = kmalloc(PIPE_PAGES * sizeof(*p->page));
    if (!p->page || !(p->page[0] = kpage_alloc())) { /* an empty pipe always takes data */
        if (p->page)
            kfree(p->page, PIPE_PAGES * sizeof(*p->page));
        kfree(p, sizeof(*p));
        return 0;
    }
    p->readers = p->writers = 1;
    p->id = anon_ino();
    return p;
}

static void pipe_free_pages(uint8_t **page, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (page[i])
            kpage_free(page[i]);
    kfree(page, n * sizeof(*page));
}

/* The data's pages move, in order, to the front of a new table of slots: the head keeps its
 * offset in its page. What would not fit so (a shrink to little more than what it holds, from
 * a head inside a page) is refused with EBUSY too: rare, and the caller may read first. */
long pipe_resize(struct pipe *p, uint64_t bytes)
{
    uint32_t n = 1;
    if (bytes > (uint64_t)PIPE_PAGES_MAX * PAGE_SIZE)
        return -EPERM;
    while ((uint64_t)n * PAGE_SIZE < bytes)
        n <<= 1;
    uint64_t off = p->head % PAGE_SIZE, used = (off + p->count + PAGE_SIZE - 1) / PAGE_SIZE;
    if (p->count > (uint64_t)n * PAGE_SIZE || used > n)
        return -E_BUSY;
    if (n == p->npages)
        return (long)pipe_cap(p);
    uint8_t **page = kmalloc(n * sizeof(*page));
    if (!page)
        return -ENOMEM;
    uint32_t first = (uint32_t)(p->head / PAGE_SIZE);
    for (uint32_t j = 0; j < used; j++) {
        uint32_t k = (first + j) % p->npages;
        page[j] = p->page[k];
        p->page[k] = 0;
    }
    if (!page[0]) { /* empty: keep a page, as pipe_new */
        page[0] = p->page[0];
        p->page[0] = 0;
    }
    pipe_free_pages(p->page, p->npages);
    p->page = page;
    p->npages = n;
    p->head = off;
    pipe_changed(p); /* a writer may have room now */
    return (long)pipe_cap(p);
}

/* Named pipes (mkfifo): the pipe of each FIFO node that is open, found by its node; as many as
 * memory holds. The pipe lives while either end is open; its data goes with it, as on Linux. */
static struct pipe *fifos;

static void fifo_forget(struct pipe *p)
{
    for (struct pipe **pp = &fifos; p->fifo && *pp; pp = &(*pp)->fifo_next)
        if (*pp == p) {
            *pp = p->fifo_next;
            break;
        }
    fs_release(p->fifo);
    p->fifo = 0;
}

void pipe_rights_free(struct pipe_rights *r)
{
    for (int i = 0; i < r->n; i++)
        file_put(r->f[i]);
    kfree(r, sizeof(*r) + (uint64_t)r->n * sizeof(r->f[0]));
}

void pipe_drop(struct pipe *p, int reader)
{
    if (reader)
        p->readers--;
    else
        p->writers--;
    pipe_changed(p);
    if (p->readers == 0 && p->writers == 0) {
        fifo_forget(p);
        while (p->rights) { /* descriptors nobody received */
            struct pipe_rights *r = p->rights;
            p->rights = r->next;
            pipe_rights_free(r);
        }
        pipe_free_pages(p->page, p->npages);
        kfree(p, sizeof(*p));
    }
}

long fifo_open(struct inode *ino, uint64_t flags)
{
    struct proc *cur = proc_cur();
    int acc = (int)(flags & O_ACCMODE);
    struct pipe *p = fifos;
    while (p && p->fifo != ino)
        p = p->fifo_next;
    if (!p) {
        if (!(p = pipe_new()))
            return -ENOMEM;
        p->readers = p->writers = 0;
        p->fifo = ino;
        fs_hold(ino);
        p->fifo_next = fifos;
        fifos = p;
    }
    uint32_t r0 = p->opens_r, w0 = p->opens_w;
    p->readers += acc != 1;
    p->writers += acc != 0;
    p->opens_r += acc != 1;
    p->opens_w += acc != 0;
    pipe_changed(p); /* the other end's opener may be waiting */
    long err = 0;
    for (;;) {
        int waits = acc == 0 ? !(flags & O_NONBLOCK_) && !p->writers && p->opens_w == w0
                  : acc == 1 ? !p->readers && p->opens_r == r0 : 0;
        if (!waits)
            break;
        if (acc == 1 && (flags & O_NONBLOCK_)) {
            err = -ENXIO_;
            break;
        }
        if (sig_ready(cur)) {
            err = -EINTR;
            break;
        }
        block(W_PIPE);
    }
    struct file *f = err ? 0 : file_new(acc == 1 ? F_PIPE_W : F_PIPE_R, 0, (int)(flags & (O_ACCMODE | O_NONBLOCK_)));
    if (f) {
        f->pipe = p;
        int fd = fd_install(f, 0, (flags & O_CLOEXEC_) != 0);
        if (fd < 0)
            file_put(f); /* drops its ends */
        return fd;
    }
    if (acc != 0)
        pipe_drop(p, 0);
    if (acc != 1)
        pipe_drop(p, 1);
    return err ? err : -ENOMEM;
}

long pipe_read(struct pipe *p, int flags, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    while (p->count == 0) {
        if (p->writers == 0)
            return 0;
        if (flags & O_NONBLOCK_)
            return -EAGAIN;
        if (sig_ready(cur))
            return -ERESTART_;
        block(W_PIPE);
    }
    uint64_t done = 0, head = p->head;
    long err = 0;
    while (done < n && done < p->count) {
        uint64_t off = head % PAGE_SIZE, chunk = PAGE_SIZE - off;
        if (chunk > p->count - done)
            chunk = p->count - done;
        if (chunk > n - done)
            chunk = n - done;
        if (copy_user(buf + done, p->page[head / PAGE_SIZE] + off, chunk, 1) < 0) {
            err = -EFAULT;
            break;
        }
        head = (head + chunk) % pipe_cap(p);
        done += chunk;
    }
    if (done && !(flags & PIPE_PEEK)) {
        p->taken += done;
        p->count -= done;
        p->head = p->count ? head : 0;
        pipe_changed(p);
    }
    return done ? (long)done : err;
}

uint64_t pipe_room(struct pipe *p)
{
    uint64_t room = 0;
    while (p->count + room < pipe_cap(p)) {
        uint64_t pos = (p->head + p->count + room) % pipe_cap(p);
        uint8_t **pg = &p->page[pos / PAGE_SIZE];
        if (!*pg && !(*pg = kpage_alloc()))
            break;
        room += PAGE_SIZE - pos % PAGE_SIZE;
    }
    return room < pipe_cap(p) - p->count ? room : pipe_cap(p) - p->count;
}

long pipe_write(struct pipe *p, int flags, uint64_t buf, uint64_t n)
{
    struct proc *cur = proc_cur();
    uint64_t done = 0;
    while (done < n) {
        if (p->readers == 0) {
            if (done)
                return (long)done;
            if (flags & PIPE_NOSIG)
                return -EPIPE;
            kill_proc(cur, 13, cur->pid); /* SIGPIPE: ends it unless ignored or handled */
            if (cur->killed)
                proc_exit(128 + cur->killed);
            return -EPIPE;
        }
        uint64_t room = pipe_room(p);
        /* POSIX: a write of at most PIPE_BUF bytes goes in whole or waits */
        if (room == 0 || (n <= PIPE_BUF_ && room < n)) {
            pipe_changed(p);
            if (flags & O_NONBLOCK_)
                return done ? (long)done : -EAGAIN;
            if (sig_ready(cur))
                return done ? (long)done : -ERESTART_;
            block(W_PIPE);
            continue;
        }
        while (done < n && room) {
            uint64_t tail = (p->head + p->count) % pipe_cap(p), off = tail % PAGE_SIZE, chunk = PAGE_SIZE - off;
            if (chunk > room)
                chunk = room;
            if (chunk > n - done)
                chunk = n - done;
            if (copy_user(buf + done, p->page[tail / PAGE_SIZE] + off, chunk, 0) < 0)
                return done ? (long)done : -EFAULT;
            p->count += chunk;
            room -= chunk;
            done += chunk;
        }
    }
    pipe_changed(p);
    return (long)done;
}

/* Pages come as the bytes reach them (not all of pipe_room's at once): a connection's receive
 * pipe is large and mostly empty. */
uint64_t pipe_put(struct pipe *p, const void *src, uint64_t n)
{
    uint64_t done = 0;
    while (done < n && p->count < pipe_cap(p)) {
        uint64_t tail = (p->head + p->count) % pipe_cap(p), off = tail % PAGE_SIZE, chunk = PAGE_SIZE - off;
        uint8_t **pg = &p->page[tail / PAGE_SIZE];
        if (!*pg && !(*pg = kpage_alloc()))
            break;
        chunk = chunk < pipe_cap(p) - p->count ? chunk : pipe_cap(p) - p->count;
        chunk = chunk < n - done ? chunk : n - done;
        kmemcpy(p->page[tail / PAGE_SIZE] + off, (const uint8_t *)src + done, chunk);
        p->count += chunk;
        done += chunk;
    }
    if (done)
        pipe_changed(p);
    return done;
}

uint64_t pipe_take(struct pipe *p, void *dst, uint64_t n)
{
    uint64_t done = 0;
    while (done < n && p->count) {
        uint64_t off = p->head % PAGE_SIZE, chunk = PAGE_SIZE - off;
        chunk = chunk < p->count ? chunk : p->count;
        chunk = chunk < n - done ? chunk : n - done;
        kmemcpy((uint8_t *)dst + done, p->page[p->head / PAGE_SIZE] + off, chunk);
        p->head = (p->head + chunk) % pipe_cap(p);
        p->count -= chunk;
        done += chunk;
    }
    p->taken += done;
    if (!p->count)
        p->head = 0;
    if (done)
        pipe_changed(p);
    return done;
}
