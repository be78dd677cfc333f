/* Build glue for libh2o-dev: h2o/http2_internal.h includes "khash.h", the hash table h2o's
 * own source tree carries but Debian's package does not ship. Lelantos reads that header only
 * for the layouts of h2o's HTTP/2 connection and stream structs (src/http/lel_gate.c) and never
 * touches the stream table, so this stand-in declares the table as an opaque type. The one
 * inline that would read it, h2o_http2_conn_get_stream(), must not be used: its lookup here
 * refers to a function that does not exist, so a call fails the build at link time. */
#ifndef LEL_H2O_KHASH_SHIM_H
#define LEL_H2O_KHASH_SHIM_H

#include <stdint.h>

typedef unsigned int khint_t;
typedef khint_t khiter_t;
#define khash_t(name) struct lel_h2o_khash_##name
#define KHASH_MAP_INIT_INT64(name, type) khash_t(name);
khiter_t lel_h2o_khash_lookup_is_not_available(const void *table, uint64_t key);
#define kh_get(name, h, k) lel_h2o_khash_lookup_is_not_available((h), (k))
#define kh_end(h) ((khiter_t)0)
#define kh_val(h, i) ((void)(h), (void)(i), (void *)0)

#endif
