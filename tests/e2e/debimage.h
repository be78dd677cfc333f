/* Debian images for the end-to-end tests: builds one with tools/build-image.sh (cached by its
 * package list), imports it into a running lelantosd, builds a template from it and runs commands
 * in a sandbox of it. Shared by the tests of what runs in such a sandbox (test_e2e_vm_debian:
 * the programs; test_e2e_vm_suites: CPython's and node's own checks). */
#ifndef LEL_E2E_DEBIMAGE_H
#define LEL_E2E_DEBIMAGE_H

#include "harness.h"

#include <stddef.h>

/** Builds (or finds cached) the Debian image with the default packages plus `extra` (space
 * separated, "" for none) and writes the tar's path into `path`; "" when it cannot be built here
 * (no mmdebstrap, no apt mirror). The script's messages go to stderr. */
void deb_image_build(const char *srcdir, const char *extra, char *path, size_t n);

/** Uploads the tar at `tar` as image `image`, posts the template `tmpl_json` (which names it in
 * fromImage) and waits for its build (up to 15 minutes). Returns 0 when it is ready, -1 else
 * (the reason on stderr). `*import_s` and `*ready_s`, when given: seconds to the upload's answer
 * and to the ready template. */
int deb_template(srv_t *s, const char *tar, const char *image, const char *tmpl_json, double *import_s, double *ready_s);

/** Runs `cmd` in sandbox `sid` with a limit of `timeout_ms` and copies its stdout into `out`
 * (`n` bytes, cut). Returns the exit code, or -(HTTP status) when the call failed; a non-zero
 * result prints the command, its output and its stderr (the first 2000 bytes each). */
long deb_run(srv_t *s, const char *sid, const char *cmd, long timeout_ms, char *out, size_t n);

/** Seconds on the monotonic clock. */
double deb_now(void);

#endif
