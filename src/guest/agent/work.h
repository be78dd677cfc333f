/* The agent's test area, for the host's tests of snapshot fidelity: `mib` MiB of memory filled
 * with a pattern and checksummed (any lost or stale page changes the sum), and deliberate
 * misbehaviour, so the host's defences can be tested. */
#ifndef LEL_GUEST_AGENT_WORK_H
#define LEL_GUEST_AGENT_WORK_H

#include <stdint.h>

/** Replaces the area with `mib` MiB filled from `seed` and gives the checksum in *sum; -1 (and
 * the old area kept) when it does not fit. */
int work_touch(uint64_t mib, uint64_t seed, uint64_t *sum);
/** The checksum of the area as it is now; -1 unless it is `mib` MiB. */
int work_checksum(uint64_t mib, uint64_t *sum);
/** Misbehaves as `how` says (LEL_MISBEHAVE_*). Returns 0 when the request must go unanswered. */
int misbehave(uint64_t how);

#endif
