/* xoshiro256** 1.0 and splitmix64, after the public-domain reference code by David Blackman and
 * Sebastiano Vigna (prng.di.unimi.it). */
#include "rng.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

uint64_t rng_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#define RNG_PI 3.14159265358979323846

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
    // splitmix64 never yields four zero words in a row, but keep the invariant explicit
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

rng_t rng_split(uint64_t seed, uint64_t stream) {
    // mix the stream id through splitmix64 before combining, so (seed, stream) and
    // (seed + 1, stream - 1) etc. give unrelated seeds, then seed the generator from the mix
    uint64_t x = stream;
    uint64_t h = rng_splitmix64(&x);
    uint64_t y = seed ^ rotl(h, 17);
    uint64_t mixed = rng_splitmix64(&y) ^ h;
    rng_t r;
    rng_seed(&r, mixed);
    return r;
}

uint64_t rng_u64(rng_t *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_double(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

float rng_float(rng_t *r) { return (float)(rng_u64(r) >> 40) * 0x1.0p-24f; }

double rng_uniform(rng_t *r, double lo, double hi) { return lo + (hi - lo) * rng_double(r); }

uint64_t rng_below(rng_t *r, uint64_t n) {
    if (n == 0) return 0;
    // reject the lowest (2^64 mod n) values so that x % n is exactly uniform
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x >= threshold) return x % n;
    }
}

double rng_normal(rng_t *r) {
    // Box–Muller; u1 in (0, 1] so log(u1) is finite
    double u1 = 1.0 - rng_double(r);
    double u2 = rng_double(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * RNG_PI * u2);
}

void rng_shuffle(rng_t *r, void *base, size_t n, size_t size) {
    unsigned char *a = base;
    unsigned char tmp[256];
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        if (j == i - 1) continue;
        unsigned char *x = a + (i - 1) * size, *y = a + j * size;
        // swap in chunks so any element size works without allocation
        for (size_t off = 0; off < size; off += sizeof tmp) {
            size_t c = size - off < sizeof tmp ? size - off : sizeof tmp;
            memcpy(tmp, x + off, c);
            memcpy(x + off, y + off, c);
            memcpy(y + off, tmp, c);
        }
    }
}

void rng_shuffle_int(rng_t *r, int *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void rng_to_text(const rng_t *r, char *buf, size_t bufsize) {
    snprintf(buf, bufsize, "xoshiro256ss:%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64,
             r->s[0], r->s[1], r->s[2], r->s[3]);
}

static int parse_hex16(const char *p, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int rng_from_text(rng_t *r, const char *text) {
    static const char prefix[] = "xoshiro256ss";
    size_t np = sizeof prefix - 1;
    if (!text || strncmp(text, prefix, np) != 0) return -1;
    const char *p = text + np;
    rng_t tmp;
    for (int i = 0; i < 4; i++) {
        if (*p != ':') return -1;
        p++;
        if (parse_hex16(p, &tmp.s[i]) != 0) return -1;
        p += 16;
    }
    if (*p != 0) return -1;
    if (!(tmp.s[0] | tmp.s[1] | tmp.s[2] | tmp.s[3])) return -1; // the all-zero state is a fixed point
    *r = tmp;
    return 0;
}
