/* picohttpparser's interface. libh2o is built with picohttpparser inside it and exports its
 * functions (Debian's libh2o-evloop.so.0.13 has phr_parse_request and phr_decode_chunked), but no
 * package ships its header; these declarations state that ABI: the parser h2o itself runs, so
 * the gate reads a request head exactly as h2o will. */
#ifndef LEL_PHR_H
#define LEL_PHR_H

#include <stddef.h>
#include <sys/types.h>

/** A header as parsed: pointers into the input; name NULL for a folded continuation line. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/** Parses a request head; returns its length, -2 when incomplete, -1 when malformed (or more
 * headers than *num_headers). */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path,
                      size_t *path_len, int *minor_version, struct phr_header *headers, size_t *num_headers,
                      size_t last_len);

/** Parses a response head; returns as phr_parse_request does. */
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);

/** State of a chunked-body decoder; zero it, then set consume_trailer, before the first call. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};

/** Decodes chunked data in place: *bufsz becomes the decoded length. Returns -2 while the body
 * goes on, -1 on malformed input, or the count of bytes after the body's end left undecoded
 * (they follow the decoded data in buf). */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
