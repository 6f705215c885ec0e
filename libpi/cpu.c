/*
 * cpu: run-time CPU feature detection (see cpu.h).
 *
 * Bit positions are from the Intel SDM, vol. 2A, "CPUID" (tables 3-8 and
 * 3-10, leaf 07H) and vol. 1, 13.3 "Enabling the XSAVE feature set"; AMD uses
 * the same bits for the features both vendors have.
 */
#include "cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PI_CPU_X86 1
#else
#define PI_CPU_X86 0
#endif

/* Written once under pthread_once, read-only afterwards. */
static pi_cpu g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

#if PI_CPU_X86
typedef struct { uint32_t a, b, c, d; } cpuid_regs;

static cpuid_regs cpuid(uint32_t leaf, uint32_t sub)
{
    cpuid_regs r = {0, 0, 0, 0};
    __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
    return r;
}

static bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

/* XCR0; only valid when CPUID says the OS has enabled XSAVE (OSXSAVE). */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void read_strings(pi_cpu *c)
{
    cpuid_regs r = cpuid(0, 0);
    memcpy(c->vendor + 0, &r.b, 4);
    memcpy(c->vendor + 4, &r.d, 4);
    memcpy(c->vendor + 8, &r.c, 4);
    c->vendor[12] = '\0';

    if (cpuid(0x80000000u, 0).a < 0x80000004u)
        return;
    for (uint32_t i = 0; i < 3; i++) {
        r = cpuid(0x80000002u + i, 0);
        memcpy(c->brand + 16 * i + 0, &r.a, 4);
        memcpy(c->brand + 16 * i + 4, &r.b, 4);
        memcpy(c->brand + 16 * i + 8, &r.c, 4);
        memcpy(c->brand + 16 * i + 12, &r.d, 4);
    }
    c->brand[48] = '\0';
    /* Brand strings are right-justified on some Intel parts. */
    size_t lead = strspn(c->brand, " ");
    memmove(c->brand, c->brand + lead, sizeof c->brand - lead);
}

static void detect_x86(pi_cpu *c)
{
    read_strings(c);
    uint32_t max_leaf = cpuid(0, 0).a;
    if (max_leaf < 1)
        return;

    cpuid_regs l1 = cpuid(1, 0);
    uint64_t xcr0 = bit(l1.c, 27) ? xgetbv0() : 0; /* OSXSAVE */
    c->os_ymm = (xcr0 & 0x6) == 0x6;               /* XMM | YMM */
    c->os_zmm = c->os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask | ZMM_Hi256 | Hi16_ZMM */
    c->os_amx = (xcr0 & 0x60000) == 0x60000;        /* XTILECFG | XTILEDATA */

    c->avx = c->os_ymm && bit(l1.c, 28);
    c->fma = c->avx && bit(l1.c, 12);
    c->f16c = c->avx && bit(l1.c, 29);
    if (max_leaf < 7)
        return;

    cpuid_regs l7 = cpuid(7, 0);
    c->avx2 = c->avx && bit(l7.b, 5);
    c->avx512f = c->os_zmm && bit(l7.b, 16);
    c->avx512bw = c->avx512f && bit(l7.b, 30);
    c->avx512vl = c->avx512f && bit(l7.b, 31);
    c->avx512_vnni = c->avx512f && bit(l7.c, 11);
    c->amx_bf16 = c->os_amx && bit(l7.d, 22);
    c->amx_tile = c->os_amx && bit(l7.d, 24);
    c->amx_int8 = c->os_amx && bit(l7.d, 25);
    if (l7.a >= 1)
        c->avx_vnni = c->avx2 && bit(cpuid(7, 1).a, 4);
}
#endif

/* Clear everything above the level PI_ISA names.  The OS-state flags stay
 * as detected: they describe the machine, not what we choose to use. */
static void apply_isa_cap(pi_cpu *c)
{
    const char *env = getenv("PI_ISA");
    if (!env || !*env)
        return;
    strncpy(c->isa_env, env, sizeof c->isa_env - 1);
    bool scalar = strcmp(env, "scalar") == 0;
    bool avx2 = strcmp(env, "avx2") == 0;
    bool avx512 = strcmp(env, "avx512") == 0;
    c->isa_env_valid = scalar || avx2 || avx512;
    if (!c->isa_env_valid)
        return;

    c->amx_tile = c->amx_int8 = c->amx_bf16 = false;
    if (avx512)
        return;
    c->avx512f = c->avx512bw = c->avx512vl = c->avx512_vnni = false;
    c->avx_vnni = false;
    if (scalar)
        c->avx = c->avx2 = c->fma = c->f16c = false;
}

static void detect(void)
{
    memset(&g_cpu, 0, sizeof g_cpu);
#if PI_CPU_X86
    detect_x86(&g_cpu);
#endif
    apply_isa_cap(&g_cpu);
}

const pi_cpu *pi_cpu_features(void)
{
    pthread_once(&g_cpu_once, detect);
    return &g_cpu;
}
