/*
 * Deterministic random numbers for the unit tests: splitmix64 over a state
 * the test owns, so that each test seeds its own sequence.
 */
#ifndef PI_TEST_RNG_H
#define PI_TEST_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1), never 0 (safe under log). */
static inline double rng_uniform01(uint64_t *state)
{
    return ((double)(rng_next(state) >> 11) + 0.5) / 9007199254740992.0;
}

#endif
