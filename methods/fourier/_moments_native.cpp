// The band moments of real spectra on the CPU: each map's mean and the mean squares of its
// bands, and their transpose (methods/fourier/moments_native.py binds it).
//
// What it computes (methods/fourier/moments.py derives it): for spectra (K, K, N) and band
// weights w (S, k), k <= K, the mean of map i is spec[0][0][i] and the mean square of its
// band s is sum_{a, c < k} spec[a][c][i]^2 w[s][a] w[s][c]. The weight products
// ww[s][a][c] = w[s][a] w[s][c] come precomputed; those that are 0 (a coefficient outside
// band s) are skipped.
//
// Why native code. With tensor operations the energies spec^2 are a full-size temporary,
// cut into chunks that each take a handful of operations, forward and backward; each of them
// is a fork and join of PyTorch's thread team, and beside a busy neighbour process every
// join waits for whichever thread the scheduler has just preempted (measured: the network's
// head took a third of a training step beside a busy neighbour). Here a call is one set of
// tasks (kernels.h), each a slice of maps, 64 maps at a time with their sums in L1.
//
// Written once and compiled twice on x86-64 (AVX2 with FMA, and the baseline), chosen at run
// time, as _ring_native.cpp is; the loops over the maps vectorise.

#ifndef KERNEL_BODY_PASS
#include <stdint.h>
#include <stdlib.h>

// one call's operands (moments_native.py's _MomentArgs)
struct MomentArgs {
  const void* spec;  // (K, K, N), contiguous
  int64_t K, N, k, S;
  const void* ww;    // (S, k, k): w[s][a] w[s][c]
  void *mean, *ms;   // forward: (N,), (S, N)
  const void *gmean, *gms;  // backward: the gradients at mean and ms (null: 0)
  void* gspec;       // backward: (K, K, N); its leading k x k block is written
};

#include "kernels.h"

#define KERNEL_SOURCE "_moments_native.cpp"
#define KERNEL_FAST mo_fast
#define KERNEL_PORTABLE mo_portable
#include "kernel_builds.inc"

KERNEL_ENTRIES(mo_forward, forward, MomentArgs, mo_fast, mo_portable)
KERNEL_ENTRIES(mo_backward, backward, MomentArgs, mo_fast, mo_portable)

#else  // the body: compiled once per instruction set, in its own namespace

enum { BLOCK = 64 };  // maps at a time: the S sums of a block stay in L1

// maps i0 .. i1 - 1: mean and the band mean squares
template <class F> int forward(const MomentArgs& a, int64_t i0, int64_t i1) {
  const F *spec = (const F*)a.spec, *ww = (const F*)a.ww;
  F* acc = (F*)malloc(sizeof(F) * a.S * BLOCK);  // acc[s][j]
  if (!acc) return 1;
  for (int64_t b0 = i0; b0 < i1; b0 += BLOCK) {
    const int64_t n = i1 - b0 < BLOCK ? i1 - b0 : BLOCK;
    for (int64_t j = 0; j < a.S * BLOCK; ++j) acc[j] = 0;
    for (int64_t r = 0; r < a.k; ++r)
      for (int64_t c = 0; c < a.k; ++c) {
        const F* x = spec + (r * a.K + c) * a.N + b0;
        F e[BLOCK];
        for (int64_t j = 0; j < n; ++j) e[j] = x[j] * x[j];
        for (int64_t s = 0; s < a.S; ++s) {
          const F w = ww[(s * a.k + r) * a.k + c];
          if (w == 0) continue;
          F* to = acc + s * BLOCK;
          for (int64_t j = 0; j < n; ++j) to[j] += w * e[j];
        }
      }
    for (int64_t s = 0; s < a.S; ++s)
      for (int64_t j = 0; j < n; ++j) ((F*)a.ms)[s * a.N + b0 + j] = acc[s * BLOCK + j];
    for (int64_t j = 0; j < n; ++j) ((F*)a.mean)[b0 + j] = spec[b0 + j];
  }
  free(acc);
  return 0;
}

// the transpose: gspec[r][c][i] = 2 spec[r][c][i] sum_s gms[s][i] ww[s][r][c], plus gmean[i]
// at r = c = 0
template <class F> int backward(const MomentArgs& a, int64_t i0, int64_t i1) {
  const F *spec = (const F*)a.spec, *ww = (const F*)a.ww, *gms = (const F*)a.gms;
  for (int64_t b0 = i0; b0 < i1; b0 += BLOCK) {
    const int64_t n = i1 - b0 < BLOCK ? i1 - b0 : BLOCK;
    for (int64_t r = 0; r < a.k; ++r)
      for (int64_t c = 0; c < a.k; ++c) {
        F t[BLOCK] = {};
        for (int64_t s = 0; gms && s < a.S; ++s) {
          const F w = ww[(s * a.k + r) * a.k + c];
          if (w == 0) continue;
          const F* g = gms + s * a.N + b0;
          for (int64_t j = 0; j < n; ++j) t[j] += w * g[j];
        }
        const int64_t at = (r * a.K + c) * a.N + b0;
        F* out = (F*)a.gspec + at;
        for (int64_t j = 0; j < n; ++j) out[j] = 2 * spec[at + j] * t[j];
        if (r == 0 && c == 0 && a.gmean)
          for (int64_t j = 0; j < n; ++j) out[j] += ((const F*)a.gmean)[b0 + j];
      }
  }
  return 0;
}

#endif  // KERNEL_BODY_PASS
