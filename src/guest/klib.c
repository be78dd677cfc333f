/* Helpers, the page pool and the heap. The heap keeps one free list per power-of-two class;
 * objects never move between classes and the caller passes the size back to kfree. */
#include "klib.h"

#ifdef LEL_GUEST_HOSTED
#include <stdlib.h>
#else
#include "lel_guest_abi.h"
#endif

void *kmemset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

const char *kutoa(char buf[21], uint64_t v)
{
    int i = 20;
    buf[i] = 0;
    do
        buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) && i > 0);
    return buf + i;
}

void *kmemcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

int kmemcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p - *q;
    return 0;
}

size_t kstrlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

size_t kstrnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    return n;
}

int kstrcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (uint8_t)*a - (uint8_t)*b;
}

#ifdef LEL_GUEST_HOSTED
void *kpage_alloc(void)
{
    return calloc(1, PAGE_SIZE);
}

void kpage_free(void *p)
{
    free(p);
}

uint64_t kpage_gpa(void *p)
{
    (void)p;
    return 0;
}

void *kpage_alloc_user(void)
{
    return kpage_alloc();
}

uint64_t kpage_free_pages(void)
{
    return 0;
}
#else
/* Pages come from the pool the kernel registered with kpool_init (see kmain.c). */
static uint64_t pool_next, pool_end;
static void *free_pages; /* each free page's first word links the next */
static uint64_t nfree;    /* pages on that list */

void kpool_init(uint64_t start_gpa, uint64_t end_gpa);
void kpool_init(uint64_t start_gpa, uint64_t end_gpa)
{
    pool_next = start_gpa;
    pool_end = end_gpa;
    free_pages = 0;
    nfree = 0;
}

void *kpage_alloc(void)
{
    void *p;
    if (free_pages) {
        p = free_pages;
        free_pages = *(void **)p;
        nfree--;
    } else if (pool_next + PAGE_SIZE <= pool_end) {
        p = (void *)(LEL_DMAP_BASE + pool_next);
        pool_next += PAGE_SIZE;
    } else {
        return 0;
    }
    return kmemset(p, 0, PAGE_SIZE);
}

void kpage_free(void *p)
{
    *(void **)p = free_pages;
    free_pages = p;
    nfree++;
}

uint64_t kpage_gpa(void *p)
{
    return (uint64_t)p - LEL_DMAP_BASE;
}

void *kpage_alloc_user(void)
{
    return kpage_free_pages() > KPAGE_RESERVE ? kpage_alloc() : 0;
}

uint64_t kpage_free_pages(void)
{
    return nfree + (pool_end - pool_next) / PAGE_SIZE;
}
#endif

#define CLASSES 7 /* 32 .. 2048 */
static void *free_objs[CLASSES];

static int class_of(size_t n)
{
    int c = 0;
    size_t sz = 32;
    while (sz < n) {
        sz <<= 1;
        c++;
    }
    return c;
}

void *kmalloc(size_t n)
{
    if (n == 0 || n > 2048)
        return 0;
    int c = class_of(n);
    size_t sz = (size_t)32 << c;
    if (!free_objs[c]) {
        uint8_t *page = kpage_alloc();
        if (!page)
            return 0;
        for (size_t off = 0; off + sz <= PAGE_SIZE; off += sz) {
            *(void **)(page + off) = free_objs[c];
            free_objs[c] = page + off;
        }
    }
    void *p = free_objs[c];
    free_objs[c] = *(void **)p;
    return kmemset(p, 0, sz);
}

void kfree(void *p, size_t n)
{
    if (!p)
        return;
    int c = class_of(n);
    *(void **)p = free_objs[c];
    free_objs[c] = p;
}

char *kstrndup(const char *s, size_t n)
{
    char *d = kmalloc(n + 1);
    if (d) {
        kmemcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}
