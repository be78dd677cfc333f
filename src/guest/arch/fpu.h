/* The user programs' x87/SSE/AVX registers, kept across context switches and signal handlers.
 * Under PVM user code runs natively and sees the host CPU: cpuid says AVX and OSXSAVE, xgetbv
 * the host's XCR0, whatever the guest set, so glibc uses AVX and the kernel must save it with
 * XSAVE (FXSAVE alone lost the upper halves of YMM registers at every preemption). On hardware
 * KVM the guest leaves CR4.OSXSAVE off, so programs see no AVX and FXSAVE is all there is to
 * do. (Turning AVX on there is for a run on real hardware: QEMU's emulated SVM, where the
 * hardware path is tested, corrupted memory with it.) */
#ifndef LEL_GUEST_FPU_H
#define LEL_GUEST_FPU_H

#include <stdint.h>

#define FPU_AREA_MAX 4096 /* the largest save area the kernel keeps (AVX-512 and PKRU fit) */

/** Chooses XSAVE (under PVM, where the CPU has it) or FXSAVE and sizes the area. */
void fpu_init(int pvm);
/** Bytes a save area takes (512 with FXSAVE only). */
uint32_t fpu_size(void);
/** The components saved (XCR0 bits; 3 with FXSAVE only), for a signal frame's description. */
uint64_t fpu_features(void);
/** Saves the live registers into `area` (64-byte aligned, fpu_size() bytes). */
void fpu_save(void *area);
/** Loads the live registers from an area fpu_save or fpu_reset wrote, or fpu_sanitize passed. */
void fpu_restore(const void *area);
/** A new program's state in `area`: everything zero, FCW 0x37f, MXCSR 0x1f80. */
void fpu_reset(void *area);
/** Makes an area a user gave back (rt_sigreturn) safe to load: reserved MXCSR and header
 * bits cleared, only the components in use. */
void fpu_sanitize(void *area);

#endif
