/* A small reproducible random generator: xoshiro256** (Blackman & Vigna) seeded by splitmix64.
 * The whole state is four uint64 words, so it is saved in a checkpoint as text (rng_to_text)
 * and restored exactly (rng_from_text): a resumed run continues the same stream.
 * Streams: rng_split(seed, stream) derives an independent generator per rank / data worker. */
#ifndef RECLF_RNG_H
#define RECLF_RNG_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

#define RNG_TEXT_BUF 96

void rng_seed(rng_t *r, uint64_t seed);
/* one step of splitmix64: advances *x and returns a well-mixed word (seeding and hashing) */
uint64_t rng_splitmix64(uint64_t *x);
/* An independent stream for (seed, stream): e.g. stream = rank, or rank * 1000 + worker. */
rng_t rng_split(uint64_t seed, uint64_t stream);

uint64_t rng_u64(rng_t *r);
/* uniform in [0, 1): 53 random bits for double, 24 for float */
double rng_double(rng_t *r);
float rng_float(rng_t *r);
/* uniform in [lo, hi) */
double rng_uniform(rng_t *r, double lo, double hi);
/* uniform integer in [0, n), without modulo bias (rejection); n == 0 gives 0 */
uint64_t rng_below(rng_t *r, uint64_t n);
/* standard normal by Box–Muller (one value per call: no cached second value, so the state
 * is exactly the four words) */
double rng_normal(rng_t *r);
/* Fisher–Yates shuffle of n elements of `size` bytes each */
void rng_shuffle(rng_t *r, void *base, size_t n, size_t size);
/* shuffle of an int array (common case, no memcpy) */
void rng_shuffle_int(rng_t *r, int *a, size_t n);

/* State as text: "xoshiro256ss:" followed by the four words as 16 hex digits, separated by ':'.
 * buf must hold RNG_TEXT_BUF bytes. rng_from_text returns 0 or -1 when the text is malformed. */
void rng_to_text(const rng_t *r, char *buf, size_t bufsize);
int rng_from_text(rng_t *r, const char *text);

#endif
