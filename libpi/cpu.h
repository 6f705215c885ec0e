/*
 * cpu: what the processor we run on can execute.
 *
 * Detection runs once per process (cpuid and xgetbv on x86; everything false
 * elsewhere).  A feature counts only if the CPU reports it *and* the OS saves
 * the register state it needs, because an instruction set the OS does not
 * context-switch corrupts registers of other threads.
 *
 * The environment variable PI_ISA caps what is reported, so that the SIMD
 * kernels can be switched off for testing and bug reports:
 *   PI_ISA=scalar   report no SIMD beyond the x86-64 baseline;
 *   PI_ISA=avx2     report AVX2/FMA/F16C but nothing newer (no AVX-512,
 *                   VNNI or AMX);
 *   PI_ISA=avx512   report up to AVX-512 (with VNNI) but no AMX.
 * It is read once, at the first call; other values are ignored and flagged.
 * The accessor returns a pointer to a process-wide constant; callers never
 * free it.
 */
#ifndef PI_CPU_H
#define PI_CPU_H

#include <stdbool.h>

typedef struct pi_cpu {
    char vendor[13]; /* "GenuineIntel", "AuthenticAMD", "" if unknown */
    char brand[49];  /* processor brand string, "" if unavailable */

    /* Usable instruction set extensions (CPU support, OS support, PI_ISA). */
    bool avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512_vnni;
    bool avx_vnni;                   /* VEX-encoded VNNI (Alder Lake, Zen 5) */
    bool amx_tile, amx_int8, amx_bf16;

    /* What the OS saves across context switches (XCR0). */
    bool os_ymm; /* SSE + AVX state */
    bool os_zmm; /* opmask + upper ZMM state */
    bool os_amx; /* tile config + tile data; Linux additionally requires a
                    per-process arch_prctl(ARCH_REQ_XCOMP_PERM) before use */

    /* PI_ISA as found in the environment ("" if unset), and whether it was
     * a value we understood; an unknown value caps nothing. */
    char isa_env[16];
    bool isa_env_valid;
} pi_cpu;

/* Features of this CPU, detected on first use (thread-safe). */
const pi_cpu *pi_cpu_features(void);

#endif
