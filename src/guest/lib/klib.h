/* The guest kernel's little libc: memory and string helpers. Built freestanding for the
 * guest, and for the host when the guest's portable parts are unit-tested (LEL_GUEST_HOSTED). */
#ifndef LEL_GUEST_KLIB_H
#define LEL_GUEST_KLIB_H

#include <stddef.h>
#include <stdint.h>

void *kmemset(void *d, int c, size_t n);
void *kmemcpy(void *d, const void *s, size_t n);
int kmemcmp(const void *a, const void *b, size_t n);
size_t kstrlen(const char *s);
int kstrcmp(const char *a, const char *b);
size_t kstrnlen(const char *s, size_t max);
/** `v` in decimal, written at the end of `buf`; returns where the digits start. */
const char *kutoa(char buf[21], uint64_t v);

#endif
