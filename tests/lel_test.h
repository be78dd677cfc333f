/* A minimal check harness for the unit and end-to-end tests: CHECK records, never aborts, and
 * lel_test_finish() prints "N passed, N failed" and gives the exit status for ctest. */
#ifndef LEL_TEST_H
#define LEL_TEST_H

#include <stdio.h>
#include <string.h>

static int lel_test_passed, lel_test_failed;

/* Bounds on a process's memory mean nothing under AddressSanitizer (its quarantine keeps freed
 * memory, its shadow grows with what is touched, and the daemon under test is built the same
 * way): such checks run in the other builds, and say so here. */
#if defined(__SANITIZE_ADDRESS__)
#define LEL_TEST_ASAN 1
#else
#define LEL_TEST_ASAN 0
#endif
#define CHECK_MEM(cond)                                                                                                \
    do {                                                                                                               \
        if (LEL_TEST_ASAN)                                                                                             \
            printf("%s:%d: not checked under ASan: %s\n", __FILE__, __LINE__, #cond);                                 \
        else                                                                                                           \
            CHECK(cond);                                                                                               \
    } while (0)

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            lel_test_passed++;                                                                                         \
        } else {                                                                                                       \
            lel_test_failed++;                                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                  \
        }                                                                                                              \
    } while (0)

#define CHECK_INT(a, b)                                                                                                \
    do {                                                                                                               \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                                          \
        if (va_ == vb_) {                                                                                              \
            lel_test_passed++;                                                                                         \
        } else {                                                                                                       \
            lel_test_failed++;                                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, va_, vb_); \
        }                                                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *sa_ = (a), *sb_ = (b);                                                                             \
        if (sa_ && sb_ && !strcmp(sa_, sb_)) {                                                                         \
            lel_test_passed++;                                                                                         \
        } else {                                                                                                       \
            lel_test_failed++;                                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__, #a, #b,         \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                                       \
        }                                                                                                              \
    } while (0)

static inline int lel_test_finish(void)
{
    printf("%d passed, %d failed\n", lel_test_passed, lel_test_failed);
    return lel_test_failed || !lel_test_passed ? 1 : 0;
}

#endif
