/*
 * matvec.cuh: the two halves of matvec.cu's machinery that do not depend on
 * which product is computed, kept apart so each file reads on its own:
 *
 *   runs      each type as the product kernels see it: four consecutive
 *             elements ("a run") decoded from a block in shared memory,
 *             32 bits of codes at a time, and the block's sub-block scales;
 *   staging   segments of weight rows copied into shared memory with
 *             16-byte cp.async copies whatever their alignment, double
 *             buffered, with a per-stage table of decoded scales.
 *
 * matvec.cu's header explains the design; only matvec.cu includes this.
 */
#ifndef PI_KERNELS_MATVEC_CUH
#define PI_KERNELS_MATVEC_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "common.cuh"

#define FULL_MASK 0xffffffffu

/* ---- small device helpers --------------------------------------------- */

/* Segments sit in shared memory at their source address modulo 16, so a
 * block there is only as aligned as in the row: 2 bytes (4 for F32). */
__device__ __forceinline__ uint32_t ld_u16(const uint8_t *p)
{
    return *(const uint16_t *)p;
}

__device__ __forceinline__ uint32_t ld_u32(const uint8_t *p)
{
    return ld_u16(p) | ld_u16(p + 2) << 16;
}

/* The hardware conversion: one instruction, exact for every finite half. */
__device__ __forceinline__ float h2f(uint32_t h)
{
    return __half2float(__ushort_as_half((unsigned short)h));
}

/* Byte c of w as a float, minus bias.  0x4B0000bb is the float 2^23 + bb,
 * and subtracting 2^23 + bias is exact (both are integers below 2^24): one
 * byte permute and one add, where integer-to-float conversion runs on a
 * much narrower unit than the adds and multiplies. */
#define MAGIC 8388608.0f
__device__ __forceinline__ void bytes4(uint32_t w, float bias, float v[4])
{
    v[0] = __int_as_float(__byte_perm(w, 0x4b00u, 0x5440u)) - (MAGIC + bias);
    v[1] = __int_as_float(__byte_perm(w, 0x4b00u, 0x5441u)) - (MAGIC + bias);
    v[2] = __int_as_float(__byte_perm(w, 0x4b00u, 0x5442u)) - (MAGIC + bias);
    v[3] = __int_as_float(__byte_perm(w, 0x4b00u, 0x5443u)) - (MAGIC + bias);
}

/* Bits 0..3 of h to bit 0 of bytes 0..3: the product puts copies of h at
 * bit offsets 0, 7, 14 and 21, which do not overlap, so bit 8c is bit c
 * of copy c. */
__device__ __forceinline__ uint32_t spread4(uint32_t h)
{
    return (h * 0x00204081u) & 0x01010101u;
}

/* Every lane gets the same sum (additions commute, lane for lane). */
__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned dst = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem) : "memory");
}

__device__ __forceinline__ void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most one group (the stage just issued) is in flight. */
__device__ __forceinline__ void cp_async_wait_prev(void)
{
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

/* ---- each type as the product kernels see it -------------------------- */

/* QK, BS: elements and bytes per block.  TE: elements per tile of
 * dot_kernel (about 1 KiB of a row); CW: columns per tile of axpy_kernel.
 * NSUB: scales per block (0 for the float types, whose runs are values);
 * MIN: values are d * q + m rather than d * q.  sub(b, s): (d, m) of
 * scale s of block b.  run(b, r, v): the codes of elements 4r..4r+3 of
 * block b (for the float types, of the four elements from b on), as
 * floats with the type's offset already subtracted; run_sub(r): the scale
 * they use.  All read shared memory. */

struct mv_f32 {
    typedef deq_f32 deq;
    static constexpr int QK = 1, BS = 4, TE = 256, CW = 128, NSUB = 0, MIN = 0;
    __device__ static void run(const uint8_t *b, int, float v[4])
    {
        for (int c = 0; c < 4; c++)
            v[c] = *(const float *)(b + 4 * c);
    }
};

struct mv_f16 {
    typedef deq_f16 deq;
    static constexpr int QK = 1, BS = 2, TE = 512, CW = 256, NSUB = 0, MIN = 0;
    __device__ static void run(const uint8_t *b, int, float v[4])
    {
        for (int c = 0; c < 4; c++)
            v[c] = h2f(ld_u16(b + 2 * c));
    }
};

struct mv_bf16 {
    typedef deq_bf16 deq;
    static constexpr int QK = 1, BS = 2, TE = 512, CW = 256, NSUB = 0, MIN = 0;
    __device__ static void run(const uint8_t *b, int, float v[4])
    {
        for (int c = 0; c < 4; c++)
            v[c] = __uint_as_float(ld_u16(b + 2 * c) << 16);
    }
};

/* Legacy blocks: runs 0-3 are the low nibbles of qs[4r..4r+3], runs 4-7
 * the high nibbles of qs[4(r-4)..]; one scale per block. */
__device__ __forceinline__ uint32_t nibbles(const uint8_t *qs, int r)
{
    return ld_u32(qs + 4 * (r & 3)) >> (r & 4) & 0x0f0f0f0fu;
}

struct mv_q4_0 {
    typedef deq_q4_0 deq;
    static constexpr int QK = PI_QK, BS = sizeof(pi_block_q4_0), TE = 1024, CW = 256;
    static constexpr int NSUB = 1, MIN = 0;
    __device__ static float2 sub(const uint8_t *b, int)
    {
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q4_0, d))), 0.f);
    }
    __device__ static int run_sub(int) { return 0; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        bytes4(nibbles(b + offsetof(pi_block_q4_0, qs), r), 8.f, v);
    }
};

struct mv_q4_1 {
    typedef deq_q4_1 deq;
    static constexpr int QK = PI_QK, BS = sizeof(pi_block_q4_1), TE = 1024, CW = 256;
    static constexpr int NSUB = 1, MIN = 1;
    __device__ static float2 sub(const uint8_t *b, int)
    {
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q4_1, d))),
                           h2f(ld_u16(b + offsetof(pi_block_q4_1, m))));
    }
    __device__ static int run_sub(int) { return 0; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        bytes4(nibbles(b + offsetof(pi_block_q4_1, qs), r), 0.f, v);
    }
};

/* Q5: the fifth bits of elements 4r..4r+3 are bits 4r.. of qh. */
__device__ __forceinline__ uint32_t fifth_bits(const uint8_t *qh, int r)
{
    return spread4(ld_u32(qh) >> (4 * r) & 0xfu) << 4;
}

struct mv_q5_0 {
    typedef deq_q5_0 deq;
    static constexpr int QK = PI_QK, BS = sizeof(pi_block_q5_0), TE = 1024, CW = 256;
    static constexpr int NSUB = 1, MIN = 0;
    __device__ static float2 sub(const uint8_t *b, int)
    {
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q5_0, d))), 0.f);
    }
    __device__ static int run_sub(int) { return 0; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        uint32_t q = nibbles(b + offsetof(pi_block_q5_0, qs), r) |
                     fifth_bits(b + offsetof(pi_block_q5_0, qh), r);
        bytes4(q, 16.f, v);
    }
};

struct mv_q5_1 {
    typedef deq_q5_1 deq;
    static constexpr int QK = PI_QK, BS = sizeof(pi_block_q5_1), TE = 1024, CW = 256;
    static constexpr int NSUB = 1, MIN = 1;
    __device__ static float2 sub(const uint8_t *b, int)
    {
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q5_1, d))),
                           h2f(ld_u16(b + offsetof(pi_block_q5_1, m))));
    }
    __device__ static int run_sub(int) { return 0; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        uint32_t q = nibbles(b + offsetof(pi_block_q5_1, qs), r) |
                     fifth_bits(b + offsetof(pi_block_q5_1, qh), r);
        bytes4(q, 0.f, v);
    }
};

/* Q8_0: flipping the sign bit makes each signed byte q the unsigned q + 128. */
struct mv_q8_0 {
    typedef deq_q8_0 deq;
    static constexpr int QK = PI_QK, BS = sizeof(pi_block_q8_0), TE = 1024, CW = 256;
    static constexpr int NSUB = 1, MIN = 0;
    __device__ static float2 sub(const uint8_t *b, int)
    {
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q8_0, d))), 0.f);
    }
    __device__ static int run_sub(int) { return 0; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        bytes4(ld_u32(b + offsetof(pi_block_q8_0, qs) + 4 * r) ^ 0x80808080u, 128.f, v);
    }
};

/* The K-quants' layouts are those of deq_*::at() in common.cuh, read four
 * codes at a time: run r covers elements 4r..4r+3 of one 16- or 32-element
 * sub-block, whose codes are four consecutive bytes at one shift. */

/* Q2_K and Q3_K 2-bit codes of run r (sub-block s = r/4): byte
 * 32*(s/8) + 16*(s%2) + 4*(r%4), shift 2*(s/2 % 4). */
__device__ __forceinline__ uint32_t crumbs(const uint8_t *qs, int r)
{
    int s = r >> 2;
    return ld_u32(qs + 32 * (s >> 3) + 16 * (s & 1) + 4 * (r & 3)) >> (2 * (s >> 1 & 3)) &
           0x03030303u;
}

struct mv_q2_K {
    typedef deq_q2_K deq;
    static constexpr int QK = PI_QK_K, BS = sizeof(pi_block_q2_K), TE = 1024, CW = 256;
    static constexpr int NSUB = 16, MIN = 1;
    __device__ static float2 sub(const uint8_t *b, int s)
    {
        int sc = b[offsetof(pi_block_q2_K, scales) + s];
        float d = h2f(ld_u16(b + offsetof(pi_block_q2_K, d)));
        float dmin = h2f(ld_u16(b + offsetof(pi_block_q2_K, dmin)));
        return make_float2(d * (float)(sc & 0xf), -(dmin * (float)(sc >> 4)));
    }
    __device__ static int run_sub(int r) { return r >> 2; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        bytes4(crumbs(b + offsetof(pi_block_q2_K, qs), r), 0.f, v);
    }
};

/* Q3_K: the third bit of run r is bit s/2 of hmask[16*(s%2) + 4*(r%4)..];
 * code | bit << 2 is the value plus 4. */
struct mv_q3_K {
    typedef deq_q3_K deq;
    static constexpr int QK = PI_QK_K, BS = sizeof(pi_block_q3_K), TE = 1024, CW = 256;
    static constexpr int NSUB = 16, MIN = 0;
    __device__ static float2 sub(const uint8_t *b, int s)
    {
        const uint8_t *p = b + offsetof(pi_block_q3_K, scales);
        int lo = s < 8 ? p[s] & 0xf : p[s - 8] >> 4;
        int hi = p[8 + s % 4] >> (2 * (s / 4)) & 3;
        float d = h2f(ld_u16(b + offsetof(pi_block_q3_K, d)));
        return make_float2(d * (float)((lo | hi << 4) - 32), 0.f);
    }
    __device__ static int run_sub(int r) { return r >> 2; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        int s = r >> 2;
        uint32_t h = ld_u32(b + offsetof(pi_block_q3_K, hmask) + 16 * (s & 1) + 4 * (r & 3));
        uint32_t q = crumbs(b + offsetof(pi_block_q3_K, qs), r) |
                     (h >> (s >> 1) & 0x01010101u) << 2;
        bytes4(q, 4.f, v);
    }
};

/* Q4_K and Q5_K nibbles of run r (sub-block s = r/8): qs[32*(s/2) +
 * 4*(r%8)..], low nibbles for even s; Q5_K's fifth bits are bit s of
 * qh[4*(r%8)..]. */
__device__ __forceinline__ uint32_t k_nibbles(const uint8_t *qs, int r)
{
    int s = r >> 3;
    return ld_u32(qs + 32 * (s >> 1) + 4 * (r & 7)) >> (4 * (s & 1)) & 0x0f0f0f0fu;
}

/* (d * sc, -dmin * m) of Q4_K/Q5_K sub-block s (the block starts d, dmin, scales). */
__device__ __forceinline__ float2 k_scale_min(const uint8_t *b, int s)
{
    int sc, mn;
    scale_min_k4(b + 4, s, &sc, &mn);
    return make_float2(h2f(ld_u16(b)) * (float)sc, -(h2f(ld_u16(b + 2)) * (float)mn));
}

struct mv_q4_K {
    typedef deq_q4_K deq;
    static constexpr int QK = PI_QK_K, BS = sizeof(pi_block_q4_K), TE = 1024, CW = 256;
    static constexpr int NSUB = 8, MIN = 1;
    static_assert(offsetof(pi_block_q4_K, dmin) == 2 && offsetof(pi_block_q4_K, scales) == 4,
                  "Q4_K header");
    __device__ static float2 sub(const uint8_t *b, int s) { return k_scale_min(b, s); }
    __device__ static int run_sub(int r) { return r >> 3; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        bytes4(k_nibbles(b + offsetof(pi_block_q4_K, qs), r), 0.f, v);
    }
};

struct mv_q5_K {
    typedef deq_q5_K deq;
    static constexpr int QK = PI_QK_K, BS = sizeof(pi_block_q5_K), TE = 1024, CW = 256;
    static constexpr int NSUB = 8, MIN = 1;
    static_assert(offsetof(pi_block_q5_K, dmin) == 2 && offsetof(pi_block_q5_K, scales) == 4,
                  "Q5_K header");
    __device__ static float2 sub(const uint8_t *b, int s) { return k_scale_min(b, s); }
    __device__ static int run_sub(int r) { return r >> 3; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        uint32_t h = ld_u32(b + offsetof(pi_block_q5_K, qh) + 4 * (r & 7)) >> (r >> 3);
        bytes4(k_nibbles(b + offsetof(pi_block_q5_K, qs), r) | (h & 0x01010101u) << 4, 0.f, v);
    }
};

/* Q6_K run r is elements 128*h + 32*k + 4*(r%8).. with h = r/32, k = r/8 %
 * 4: low nibbles in ql[64*h + 32*(k%2) + 4*(r%8)..] (high nibbles for
 * k >= 2), high two bits at 2k in qh[32*h + 4*(r%8)..], bias 32; one signed
 * scale per 16 elements. */
struct mv_q6_K {
    typedef deq_q6_K deq;
    static constexpr int QK = PI_QK_K, BS = sizeof(pi_block_q6_K), TE = 1024, CW = 256;
    static constexpr int NSUB = 16, MIN = 0;
    __device__ static float2 sub(const uint8_t *b, int s)
    {
        int sc = ((const int8_t *)(b + offsetof(pi_block_q6_K, scales)))[s];
        return make_float2(h2f(ld_u16(b + offsetof(pi_block_q6_K, d))) * (float)sc, 0.f);
    }
    __device__ static int run_sub(int r) { return r >> 2; }
    __device__ static void run(const uint8_t *b, int r, float v[4])
    {
        int h = r >> 5, k = r >> 3 & 3, l = 4 * (r & 7);
        uint32_t lo = ld_u32(b + offsetof(pi_block_q6_K, ql) + 64 * h + 32 * (k & 1) + l) >>
                      (4 * (k >> 1)) & 0x0f0f0f0fu;
        uint32_t hi = ld_u32(b + offsetof(pi_block_q6_K, qh) + 32 * h + l) >> (2 * k) & 0x03030303u;
        bytes4(lo | hi << 4, 32.f, v);
    }
};

/* ---- staging segments through shared memory --------------------------- */

/* One warp's shared memory: two stages of NSEG segments of up to SEGE
 * elements, where each segment sits at off (its source address mod 16),
 * and the scale table of the stage being computed. */
template <class T, int NSEG, int SEGE>
struct stage_mem {
    static constexpr int SEGB = SEGE / T::QK * T::BS;
    static constexpr int STRIDE = (SEGB + 15 + 15) / 16 * 16;
    static constexpr int NSC = T::NSUB > 0 ? SEGE / T::QK * T::NSUB : 1;
    static_assert(NSEG % 2 == 0, "edge slots pair up segments");
    __align__(16) uint8_t buf[2][NSEG][STRIDE];
    float2 scl[NSEG][NSC];
    uint8_t off[2][NSEG];
};

/* The head and tail 2-byte words of a stage's segments, loaded while the
 * previous stage is computed and stored after it: slot 16s + e is word e of
 * segment s's head (e < 8) or word e - 8 of its tail; lane l has slots
 * l + 32j.  at: byte offset from the stage's buffer, or -1. */
template <int NSEG>
struct edge_words {
    uint16_t v[NSEG / 2];
    int at[NSEG / 2];
};

/* Where segment data starts being 16-byte aligned, and where that stops. */
__device__ __forceinline__ void split_segment(const uint8_t *src, int n, int *head, int *body_end)
{
    *head = min((16 - (int)((uintptr_t)src & 15)) & 15, n);
    *body_end = *head + ((n - *head) & ~15);
}

/* Starts copying segment s (n[s] bytes from src[s], 2-byte aligned, n[s]
 * even) into stage buffer bsel: the aligned body by cp.async, and this
 * lane's head and tail words into e. */
template <class M, int NSEG>
__device__ __forceinline__ void stage_issue(M &sm, int bsel, const uint8_t *const src[NSEG],
                                            const int n[NSEG], edge_words<NSEG> &e, int lane)
{
#pragma unroll
    for (int s = 0; s < NSEG; s++) {
        int off = (int)((uintptr_t)src[s] & 15), head, body_end;
        split_segment(src[s], n[s], &head, &body_end);
        uint8_t *dst = sm.buf[bsel][s] + off;
        for (int o = head + 16 * lane; o < body_end; o += 16 * 32)
            cp_async16(dst + o, src[s] + o);
        if (lane == 0)
            sm.off[bsel][s] = (uint8_t)off;
    }
#pragma unroll
    for (int j = 0; j < NSEG / 2; j++) {
        int s = 2 * j + (lane >> 4);
        const uint8_t *p = lane < 16 ? src[2 * j] : src[2 * j + 1];
        int nn = lane < 16 ? n[2 * j] : n[2 * j + 1], head, body_end;
        split_segment(p, nn, &head, &body_end);
        int word = lane & 7, o = lane & 8 ? body_end + 2 * word : 2 * word;
        bool ok = lane & 8 ? o < nn : o < head;
        e.at[j] = ok ? s * M::STRIDE + (int)((uintptr_t)p & 15) + o : -1;
        e.v[j] = ok ? __ldg((const unsigned short *)(p + o)) : 0;
    }
}

template <class M, int NSEG>
__device__ __forceinline__ void stage_store_edges(M &sm, int bsel, const edge_words<NSEG> &e)
{
#pragma unroll
    for (int j = 0; j < NSEG / 2; j++)
        if (e.at[j] >= 0)
            *(uint16_t *)(&sm.buf[bsel][0][0] + e.at[j]) = e.v[j];
}

/* The scales of the first nb blocks of the first nseg segments of stage
 * bsel, into the table: entry j of segment s is scale j % NSUB of block
 * j / NSUB.  Stage data must be complete (waited for and __syncwarp'd). */
template <class T, class M, int NSEG>
__device__ __forceinline__ void stage_scales(M &sm, int bsel, int nb, int nseg, int lane)
{
    if constexpr (T::NSUB > 0) {
#pragma unroll
        for (int i0 = 0; i0 < NSEG * M::NSC; i0 += 32) {
            int i = i0 + lane, s = i / M::NSC, j = i % M::NSC;
            if (i < NSEG * M::NSC && s < nseg && j < nb * T::NSUB)
                sm.scl[s][j] = T::sub(sm.buf[bsel][s] + sm.off[bsel][s] + j / T::NSUB * T::BS,
                                      j % T::NSUB);
        }
    }
}

/* Codes of run rho of a segment (which starts at a block) and their (d, m);
 * the float types give values and (1, 0). */
template <class T>
__device__ __forceinline__ float2 run_codes(const uint8_t *seg, const float2 *scl, int rho,
                                            float v[4])
{
    if constexpr (T::NSUB == 0) {
        T::run(seg + rho * (4 / T::QK) * T::BS, 0, v);
        return make_float2(1.f, 0.f);
    } else {
        constexpr int rpb = T::QK / 4; /* runs per block */
        int bi = rho / rpb, r = rho % rpb;
        T::run(seg + bi * T::BS, r, v);
        return scl[bi * T::NSUB + T::run_sub(r)];
    }
}

/* Values of run rho: d * q + m as one fused operation. */
template <class T>
__device__ __forceinline__ void run_values(const uint8_t *seg, const float2 *scl, int rho,
                                           float w[4])
{
    float2 dm = run_codes<T>(seg, scl, rho, w);
    if constexpr (T::NSUB > 0) {
#pragma unroll
        for (int c = 0; c < 4; c++)
            w[c] = T::MIN ? __fmaf_rn(dm.x, w[c], dm.y) : __fmul_rn(dm.x, w[c]);
    }
}

#endif
