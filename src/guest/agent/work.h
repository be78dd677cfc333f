#ifndef LEL_GUEST_AGENT_WORK_H
#define LEL_GUEST_AGENT_WORK_H

#include <stdint.h>

/* Words of the work area get a pattern derived from their address and the seed; the checksum
 * mixes every word, so any lost or stale page changes it. */
uint64_t mix(uint64_t h, uint64_t w);

extern uint64_t work_pages;

uint64_t *work_page(uint64_t i);

/* Builds the new area completely before the old one goes, so a request that does not fit
 * leaves the previous area (and its checksum) intact. */
int work_alloc(uint64_t mib);

/* Deliberate misbehaviour, so the host's defences can be tested. */
void misbehave(uint64_t how);

extern char *const bulk;

#endif
