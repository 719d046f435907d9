// The spectral mixing's CPU kernel: the per-frequency channel mixing of a real spectrum,
// forward, input gradient and weight gradient (methods/fourier/mix_native.py binds it).
//
// What it computes (methods/fourier/spectral_mix.py derives it). For row pair f >= 1 and
// column pair g of a real spectrum, with cc, cs, sc, ss the (B, C) blocks of the four
// coefficients of frequency (f, g), the stacked values u = cc - ss, v = cs + sc,
// p = cc + ss, q = sc - cs enter two complex products, A = (u - i v) W+ and
// B = (p + i q) W-, and the outputs are cc' = Re A + Re B, cs' = -(Im A + Im B),
// sc' = Im B - Im A, ss' = Re B - Re A. A coefficient that does not exist (the sine column
// of g = 0, the sine row of row 0) reads as 0 and is not written; row 0 has side A only.
// The packed weights carry the derivation's factors (1/2 on the row pairs) and P.
//
// One kernel for forward and the input gradient. The gradient at the inputs is this same map
// with W replaced by its conjugate transpose per frequency: the gradients at the outputs
// stack into U - i V and P + i Q exactly as the inputs do, and the gradients at u, v, p, q
// combine into those at cc, cs, sc, ss exactly as Re A, Im A, Re B, Im B combine into the
// outputs. So `mx_rows` serves both; only the packing of W differs (`transpose`).
//
// The weight gradient, per frequency and side: with the inputs' stack (u, v, p, q) and the
// output gradients' stack (U, V, P, Q), dRe W+ = u^T U + v^T V, dIm W+ = v^T U - u^T V,
// dRe W- = p^T P + q^T Q, dIm W- = p^T Q - q^T P (sums over the batch).
//
// Layouts. Spectra are (K, K, B, C): a frequency's block is (B, C), the channels innermost.
// W is complex (width, nk, C_in, C_out), its rows in the spectrum's row order (0, +1, -1,
// +2, -2, ...). Each task (row 0, or one row pair) packs the weights of one frequency at a
// time into a buffer of its own, (2, C, cop): the real part with P added, the imaginary part,
// times the derivation's factor (1/2 on the row pairs), transposed and conjugated for the
// input gradient, the output channels padded with zeros to `cop`, a multiple of the tile.
// Every product runs over a tile of 16 output channels (8 in float64: two 32-byte vectors)
// for two batch rows (or two input channels, in the weight gradient) at a time, one side at
// a time: 8 accumulators, 4 weight vectors and 4 broadcast scalars, the 16 vector registers.
//
// Written once and compiled twice on x86-64 (AVX2 with FMA, and the baseline), chosen at run
// time, as _ring_native.cpp is.

#ifndef KERNEL_BODY_PASS
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// one call's operands (mix_native.py's _MixArgs)
struct MixArgs {
  const void* x;  // input spectrum: row and column strides, a block (B, ci)
  int64_t xa, xb, ci;
  const void* w;      // W, complex (width, nk, W_in, W_out) as (re, im) pairs
  const void* pw;     // P (W_in, W_out), or null
  int64_t transpose;  // 1: multiply by W's conjugate transpose (the input gradient)
  void* y;            // output spectrum: row and column strides, a block (B, co)
  int64_t ya, yb, co, cop;
  const void* gy;  // weight gradient: the output's gradient (strides ya, yb)
  void* gw;        // weight gradient: dL/dW, complex as W
  void* gpw;       // weight gradient: per row task, dL/dP of the band (kmax + 1, ci, co), added to
  int64_t batch, nk;
  int64_t groups;  // tasks per row: its output-channel tiles cut into this many groups
};

#include "kernels.h"

#define KERNEL_SOURCE "_mix_native.cpp"
#define KERNEL_FAST mix_fast
#define KERNEL_PORTABLE mix_portable
#include "kernel_builds.inc"

KERNEL_ENTRIES(mx_rows, rows, MixArgs, mix_fast, mix_portable)
KERNEL_ENTRIES(mx_weight_grad, weight_grad, MixArgs, mix_fast, mix_portable)
extern "C" int mx_tile(int f64) { return f64 ? int(mix_fast::Lanes<double>::T) : int(mix_fast::Lanes<float>::T); }

#else  // the body: compiled once per instruction set, in its own namespace

template <class F> struct Lanes;
template <> struct Lanes<float> {
  typedef float v __attribute__((vector_size(32), aligned(4)));
  enum { W = 8, T = 16 };
};
template <> struct Lanes<double> {
  typedef double v __attribute__((vector_size(32), aligned(8)));
  enum { W = 4, T = 8 };
};

template <class F> static inline typename Lanes<F>::v load(const F* p) {
  return *(const typename Lanes<F>::v*)p;
}
template <class F> static inline void store(F* p, typename Lanes<F>::v v) {
  *(typename Lanes<F>::v*)p = v;
}

// The stack (u, v, p, q) of frequency (f, g) of spectrum x (f = 0: row 0) into z, element
// (b, part, k) at z[b * sb + part * sp + k], sp >= C: contiguous runs over the channels, so
// that the loops vectorise (a coefficient that does not exist reads as 0).
template <class F>
static void stack(const F* x, int64_t xa, int64_t xb, int64_t B, int64_t C, int64_t f,
                  int64_t g, F* z, int64_t sb, int64_t sp) {
  const bool pair = f > 0;
  const F* rc = x + (pair ? 2 * f - 1 : 0) * xa + (g ? 2 * g - 1 : 0) * xb;
  const F* rs = x + 2 * f * xa + (g ? 2 * g - 1 : 0) * xb;
  for (int64_t b = 0; b < B; ++b) {
    const F *cc = rc + b * C, *cs = cc + xb, *sc = rs + b * C, *ss = sc + xb;
    F *u = z + b * sb, *v = u + sp, *p = v + sp, *q = p + sp;
    if (pair && g) {
      for (int64_t k = 0; k < C; ++k) {
        u[k] = cc[k] - ss[k]; v[k] = cs[k] + sc[k]; p[k] = cc[k] + ss[k]; q[k] = sc[k] - cs[k];
      }
    } else if (pair) {  // column 0: cs = ss = 0
      for (int64_t k = 0; k < C; ++k) { u[k] = p[k] = cc[k]; v[k] = sc[k]; q[k] = sc[k]; }
    } else if (g) {  // row 0: sc = ss = 0
      for (int64_t k = 0; k < C; ++k) { u[k] = p[k] = cc[k]; v[k] = cs[k]; q[k] = -cs[k]; }
    } else {  // row 0, column 0: the constant and cosine row's first coefficient alone
      for (int64_t k = 0; k < C; ++k) { u[k] = p[k] = cc[k]; v[k] = q[k] = 0; }
    }
  }
}

// The derivation's factor of multiplier row `row`: 1 on row 0, 1/2 on the row pairs
template <class F> static inline F factor(int64_t row) { return row ? F(0.5) : F(1); }

// The weights of multiplier row `row`, column g, output channels [t0, t1) into buf (2, ci,
// cop) (see the header)
template <class F>
static void pack(const MixArgs& a, int64_t row, int64_t g, int64_t t0, int64_t t1, F* buf) {
  const int64_t wi = a.transpose ? a.co : a.ci, wo = a.transpose ? a.ci : a.co;
  const F* w = (const F*)a.w + (row * a.nk + g) * wi * wo * 2;
  const F *p = (const F*)a.pw, s = factor<F>(row), si = a.transpose ? -s : s;
  F *re = buf, *im = buf + a.ci * a.cop;
  const int64_t o1 = t1 < a.co ? t1 : a.co;
  for (int64_t k = 0; k < a.ci; ++k) {
    for (int64_t o = t0; o < o1; ++o) {
      const int64_t at = a.transpose ? o * wo + k : k * wo + o;
      re[k * a.cop + o] = s * (w[2 * at] + (p ? p[at] : F(0)));
      im[k * a.cop + o] = si * w[2 * at + 1];
    }
    for (int64_t o = o1 < t0 ? t0 : o1; o < t1; ++o) re[k * a.cop + o] = im[k * a.cop + o] = 0;
  }
}

// One side's products for batch rows z0, z1 (their stacks, (4, C)) on the output-channel tile
// whose weights start at w (real part; imaginary part at w + part): side A (u, v):
// Re = u Wr + v Wi, Im = u Wi - v Wr; side B (p, q): Re = p Wr - q Wi, Im = p Wi + q Wr.
// res[row][0: Re, 1: Im][lane].
template <class F, bool SIDE_B>
static inline void side_tile(const F* z0, const F* z1, int64_t C, const F* w, int64_t part,
                             int64_t cop, F res[2][2][Lanes<F>::T]) {
  typedef typename Lanes<F>::v vec;
  const int W = Lanes<F>::W, off = SIDE_B ? 2 : 0;
  vec r00{}, r01{}, i00{}, i01{}, r10{}, r11{}, i10{}, i11{};
  const F *x0 = z0 + off * C, *y0 = x0 + C, *x1 = z1 + off * C, *y1 = x1 + C;
  for (int64_t k = 0; k < C; ++k) {
    const F a0 = x0[k], a1 = x1[k];
    const F c0 = SIDE_B ? -y0[k] : y0[k], c1 = SIDE_B ? -y1[k] : y1[k];
    const F* wk = w + k * cop;
    const vec wr0 = load(wk), wr1 = load(wk + W), wi0 = load(wk + part), wi1 = load(wk + part + W);
    r00 += a0 * wr0; r01 += a0 * wr1; r00 += c0 * wi0; r01 += c0 * wi1;
    i00 += a0 * wi0; i01 += a0 * wi1; i00 -= c0 * wr0; i01 -= c0 * wr1;
    r10 += a1 * wr0; r11 += a1 * wr1; r10 += c1 * wi0; r11 += c1 * wi1;
    i10 += a1 * wi0; i11 += a1 * wi1; i10 -= c1 * wr0; i11 -= c1 * wr1;
  }
  typedef typename Lanes<F>::v* vp;
  *(vp)res[0][0] = r00; *(vp)(res[0][0] + W) = r01; *(vp)res[0][1] = i00; *(vp)(res[0][1] + W) = i01;
  *(vp)res[1][0] = r10; *(vp)(res[1][0] + W) = r11; *(vp)res[1][1] = i10; *(vp)(res[1][1] + W) = i11;
}

// The output blocks of frequency (f, g): cc', cs', sc', ss' (null where none exists)
template <class F> static void out_blocks(F* y, const MixArgs& a, int64_t f, int64_t g, F* o[4]) {
  const bool pair = f > 0;
  o[0] = y + (pair ? 2 * f - 1 : 0) * a.ya + (g ? 2 * g - 1 : 0) * a.yb;
  o[1] = g ? o[0] + a.yb : nullptr;
  o[2] = pair ? y + 2 * f * a.ya + (g ? 2 * g - 1 : 0) * a.yb : nullptr;
  o[3] = pair && g ? o[2] + a.yb : nullptr;
}

// One frequency's outputs on the tile at t: sides A and B of batch rows b, b + 1 (b + 1 only
// where it exists), combined as cc' = Re A + Re B, cs' = -(Im A + Im B), sc' = Im B - Im A,
// ss' = Re B - Re A.
template <class F>
static void rows_tile(const MixArgs& a, const F* z, const F* wA, const F* wB, bool pair,
                      int64_t t, int64_t b, F* const o[4]) {
  const int64_t C = a.ci, T = Lanes<F>::T, part = C * a.cop;
  const int64_t b1 = b + 1 < a.batch ? b + 1 : b, n = a.co - t < T ? a.co - t : T;
  F ra[2][2][Lanes<F>::T], rb[2][2][Lanes<F>::T] = {};
  side_tile<F, false>(z + 4 * b * C, z + 4 * b1 * C, C, wA + t, part, a.cop, ra);
  if (pair) side_tile<F, true>(z + 4 * b * C, z + 4 * b1 * C, C, wB + t, part, a.cop, rb);
  typedef typename Lanes<F>::v vec;
  for (int r = 0; r < (b1 > b ? 2 : 1); ++r) {
    const int64_t at = (b + r) * a.co + t;
    if (n == T) {  // a whole tile: vectors
      for (int h = 0; h < T; h += Lanes<F>::W) {
        const vec rea = load(ra[r][0] + h), ima = load(ra[r][1] + h);
        const vec reb = load(rb[r][0] + h), imb = load(rb[r][1] + h);
        store(o[0] + at + h, rea + reb);
        if (o[1]) store(o[1] + at + h, -(ima + imb));
        if (o[2]) store(o[2] + at + h, imb - ima);
        if (o[3]) store(o[3] + at + h, reb - rea);
      }
      continue;
    }
    for (int64_t l = 0; l < n; ++l) {
      o[0][at + l] = ra[r][0][l] + rb[r][0][l];
      if (o[1]) o[1][at + l] = -(ra[r][1][l] + rb[r][1][l]);
      if (o[2]) o[2][at + l] = rb[r][1][l] - ra[r][1][l];
      if (o[3]) o[3][at + l] = rb[r][0][l] - ra[r][0][l];
    }
  }
}

// Task `task`: row f (0: row 0, else row pair f) and its output channels [t0, t1), whole
// tiles: group `task % groups` of the row's tiles (several tasks per row where the threads
// outnumber the rows)
struct Task {
  int64_t f, t0, t1;
  Task(const MixArgs& a, int64_t task, int64_t T) : f(task / a.groups) {
    const int64_t tiles = a.cop / T, gi = task % a.groups;
    t0 = tiles * gi / a.groups * T;
    t1 = tiles * (gi + 1) / a.groups * T;
  }
};

// Tasks lo .. hi - 1 of the mixing (Task): y's blocks from x's.
template <class F> int rows(const MixArgs& a, int64_t lo, int64_t hi) {
  const int64_t B = a.batch, C = a.ci, part = C * a.cop;
  F* z = (F*)malloc(sizeof(F) * (B * C * 4 + 4 * part));
  if (!z) return 1;
  F *wA = z + B * C * 4, *wB = wA + 2 * part;
  for (int64_t task = lo; task < hi; ++task) {
    const Task k(a, task, Lanes<F>::T);
    const bool pair = k.f > 0;
    for (int64_t g = 0; g < a.nk && k.t1 > k.t0; ++g) {
      stack((const F*)a.x, a.xa, a.xb, B, C, k.f, g, z, 4 * C, C);
      pack(a, pair ? 2 * k.f - 1 : 0, g, k.t0, k.t1, wA);  // this task's channels only
      if (pair) pack(a, 2 * k.f, g, k.t0, k.t1, wB);
      F* o[4];
      out_blocks((F*)a.y, a, k.f, g, o);
      for (int64_t t = k.t0; t < k.t1; t += Lanes<F>::T)
        for (int64_t b = 0; b < B; b += 2) rows_tile(a, z, wA, wB, pair, t, b, o);
    }
  }
  free(z);
  return 0;
}

// One side's weight gradient of one frequency on the output-channel tile at t, input
// channels k, k + 1: zx holds the inputs' stack (b, 4, C), zg the output gradients'
// (b, 4, cop); side 0 (A) reads parts 0, 1, side 1 (B) parts 2, 3. Writes buf[k][t..] (real
// part) and buf[part + k][t..] (imaginary part).
template <class F>
static void grad_tile(const F* zx, const F* zg, int64_t B, int64_t C, int64_t cop, int side,
                      int64_t k, int64_t t, F* buf, int64_t part) {
  typedef typename Lanes<F>::v vec;
  const int W = Lanes<F>::W;
  const int64_t k1 = k + 1 < C ? k + 1 : k;  // an odd C: the last channel twice, stored once
  const int s = 2 * side;
  vec r00{}, r01{}, i00{}, i01{}, r10{}, r11{}, i10{}, i11{};
  for (int64_t b = 0; b < B; ++b) {
    const F* g = zg + b * 4 * cop + s * cop + t;
    const vec g0 = load(g), g1 = load(g + W), h0 = load(g + cop), h1 = load(g + cop + W);
    const F *x = zx + b * 4 * C + s * C, *y = x + C;
    const F a0 = x[k], c0 = y[k], a1 = x[k1], c1 = y[k1];
    // real: a G + c H; imaginary (side B's form): a H - c G
    r00 += a0 * g0; r01 += a0 * g1; r00 += c0 * h0; r01 += c0 * h1;
    i00 += a0 * h0; i01 += a0 * h1; i00 -= c0 * g0; i01 -= c0 * g1;
    r10 += a1 * g0; r11 += a1 * g1; r10 += c1 * h0; r11 += c1 * h1;
    i10 += a1 * h0; i11 += a1 * h1; i10 -= c1 * g0; i11 -= c1 * g1;
  }
  if (side == 0) {  // side A: the imaginary part is c G - a H
    i00 = -i00; i01 = -i01; i10 = -i10; i11 = -i11;
  }
  typedef typename Lanes<F>::v* vp;
  F* o = buf + k * cop + t;
  *(vp)o = r00; *(vp)(o + W) = r01; *(vp)(o + part) = i00; *(vp)(o + part + W) = i01;
  if (k1 != k) {
    o += cop;
    *(vp)o = r10; *(vp)(o + W) = r11; *(vp)(o + part) = i10; *(vp)(o + part + W) = i11;
  }
}

// buf (2, ci, cop) of multiplier row `row`, column g, output channels [o0, o1), times its
// factor, into dL/dW (complex, as W) and added to this row's dL/dP (ci, co)
template <class F>
static void unpack_grad(const MixArgs& a, int64_t row, int64_t g, const F* buf, F* gp,
                        int64_t o0, int64_t o1) {
  const int64_t part = a.ci * a.cop;
  F* gw = (F*)a.gw + (row * a.nk + g) * a.ci * a.co * 2;
  const F s = factor<F>(row);
  for (int64_t k = 0; k < a.ci; ++k) {
    for (int64_t o = o0; o < o1; ++o) {
      const F re = s * buf[k * a.cop + o];
      if (gw) {
        gw[2 * (k * a.co + o)] = re;
        gw[2 * (k * a.co + o) + 1] = s * buf[part + k * a.cop + o];
      }
      if (gp) gp[k * a.co + o] += re;
    }
  }
}

// The weight gradient of tasks lo .. hi - 1 (Task) from the input x and the output gradient
// gy: dL/dW's rows and columns (written) and, per row f, dL/dP at gpw[f] (added; the tasks of
// one row add to disjoint columns).
template <class F> int weight_grad(const MixArgs& a, int64_t lo, int64_t hi) {
  const int64_t B = a.batch, C = a.ci, T = Lanes<F>::T, part = C * a.cop;
  F* zx = (F*)malloc(sizeof(F) * (B * C * 4 + 2 * part));
  F* zg = (F*)calloc(B * 4 * a.cop, sizeof(F));  // the padding channels stay 0
  if (!zx || !zg) {
    free(zx);
    free(zg);
    return 1;
  }
  F* buf = zx + B * C * 4;
  for (int64_t task = lo; task < hi; ++task) {
    const Task tk(a, task, T);
    const bool pair = tk.f > 0;
    F* gp = a.gpw ? (F*)a.gpw + tk.f * C * a.co : nullptr;
    for (int64_t g = 0; g < a.nk && tk.t1 > tk.t0; ++g) {
      stack((const F*)a.x, a.xa, a.xb, B, C, tk.f, g, zx, 4 * C, C);
      stack((const F*)a.gy, a.ya, a.yb, B, a.co, tk.f, g, zg, 4 * a.cop, a.cop);
      for (int side = 0; side < (pair ? 2 : 1); ++side) {
        for (int64_t t = tk.t0; t < tk.t1; t += T)
          for (int64_t k = 0; k < C; k += 2) grad_tile(zx, zg, B, C, a.cop, side, k, t, buf, part);
        unpack_grad(a, pair ? 2 * tk.f - 1 + side : 0, g, buf, gp, tk.t0,
                    tk.t1 < a.co ? tk.t1 : a.co);
      }
    }
  }
  free(zx);
  free(zg);
  return 0;
}

#endif  // KERNEL_BODY_PASS
