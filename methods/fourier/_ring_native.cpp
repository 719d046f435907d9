// The ring nonlinearity's CPU kernel: every grid of a tile of maps synthesised, activated,
// pooled and analysed in cache, forward and backward (methods/fourier/native.py binds it).
//
// Why native code. Written with tensor operations, every stage of the layer streams a stack
// of grids (about five times the pixels of the input map) through memory, several times in
// forward and again in backward, where the grids also have to be kept. Here a tile of maps
// (16 in float32, 8 in float64: two AVX vectors) goes through all of its grids while they
// stay in the core's cache, and backward synthesises the grids again instead of keeping
// them: only spectra ever reach memory.
//
// Layouts (the Python side's): spectra are (K, K, N), frequency-major, the maps last, so a
// tile's values of one coefficient are contiguous. Inside a tile everything is [.., .., t]
// with the tile's maps t innermost, and every product is the micro-kernel `mk` below: rows
// of a small constant matrix (synthesis or analysis) times vectors over the tile.
//
// Plan (int64, built by native.py): header {E, kin, kout, maxg, pool, mat_len}, then per
// evaluation {g, band, base, j, off_SC, off_SS, off_SCT, off_SST, off_A, off_AT, ka}: grid
// size g, the band it reads, whether it is the base grid (its output is the whole leading
// ka x ka block) or ring j's grid, and the offsets in the matrix buffer of its synthesis
// halves SC, SS (below) and their transposes, and of its analysis A (ka x g/pool) and A^T.
//
// Synthesis by halves. Row u and row g - u of the real synthesis S (g x k) agree on the
// constant and cosine columns and are opposite on the sine columns; row 0 (and g/2 for an
// even g) has no sine part. So S X S^T is computed from SC (rows u = 0 .. g/2, the even
// columns) and SS (rows u = 1 .. (g-1)/2, the sine columns): the four products of the even
// and odd halves on both sides, then one butterfly per point (`combine`). That is half the
// multiply-adds of the plain two products; backward folds the grid the same way (`fold`).
// The tile keeps its spectra with the even (constant, cosine) coefficients first and the
// sine ones after, on both axes (`gather`, `scatter`).
//
// The code is written once (the body below, which this file includes into itself through
// kernel_builds.inc) and compiled twice on x86-64: for AVX2 with FMA and for the baseline,
// chosen at run time by what the CPU supports (kernels.h). It stays one file (about 600
// lines) for that reason: the body is one unit that is compiled twice.

#ifndef KERNEL_BODY_PASS
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

enum { H_E, H_KIN, H_KOUT, H_MAXG, H_POOL, H_MATS, H_LEN };

// one call's operands (native.py's _Args): spectra (K, K, N) with strides (sa, sb), the output
// and its gradient (K', K', N) with strides (za, zb), the norm's affine per evaluation and
// channel (E, C; null: no norm), the per-map gradients at it (E, N), ReLU's mask
struct Args {
  const int64_t* plan;
  const void *mats, *spec;
  int64_t sa, sb;
  const void *gamma, *beta;
  int64_t channels;
  double eps;
  void* z;
  const void* gz;
  int64_t za, zb;
  void *gspec, *ggamma, *gbeta, *mask;
};
enum { P_G, P_BAND, P_BASE, P_J, P_SC, P_SS, P_SCT, P_SST, P_A, P_AT, P_KA, P_LEN };

#include "kernels.h"

#define KERNEL_SOURCE "_ring_native.cpp"
#define KERNEL_FAST fast
#define KERNEL_PORTABLE portable
#include "kernel_builds.inc"

KERNEL_ENTRIES(rn_forward, forward, Args, fast, portable)
KERNEL_ENTRIES(rn_backward, backward, Args, fast, portable)

extern "C" int rn_tile(int f64) { return f64 ? int(fast::Tile<double>::T) : int(fast::Tile<float>::T); }
extern "C" int rn_vectorised() { return kernels_fast_isa() ? 1 : 0; }
#ifdef _OPENMP
extern "C" int rn_openmp() { return 1; }  // the tasks run on OpenMP (kernels.h)
#else
extern "C" int rn_openmp() { return 0; }
#endif

#else  // the body: compiled once per instruction set, in its own namespace

template <class F> struct V;
template <> struct V<float> {
  typedef float v __attribute__((vector_size(32), aligned(4)));
  typedef int i __attribute__((vector_size(32)));
  typedef int lane;
  typedef unsigned short bits;  // one bit per map of a tile
  enum { W = 8 };
  static inline i lanes() { return i{1, 2, 4, 8, 16, 32, 64, 128}; }
#ifdef KERNELS_AVX2
  static inline unsigned sign_bits(i m) { return _mm256_movemask_ps((__m256)m); }
#endif
};
template <> struct V<double> {
  typedef double v __attribute__((vector_size(32), aligned(8)));
  typedef long long i __attribute__((vector_size(32)));
  typedef long long lane;
  typedef unsigned char bits;
  enum { W = 4 };
  static inline i lanes() { return i{1, 2, 4, 8}; }
#ifdef KERNELS_AVX2
  static inline unsigned sign_bits(i m) { return _mm256_movemask_pd((__m256d)m); }
#endif
};

// one tile row of T values as two vectors
template <class F> struct Row {
  typedef typename V<F>::v vec;
  vec lo, hi;
  static inline Row load(const F* p) { return {*(const vec*)p, *(const vec*)(p + V<F>::W)}; }
  static inline Row zero() { return {vec{}, vec{}}; }
  static inline Row fill(F v) { return {vec{} + v, vec{} + v}; }
  inline void store(F* p) const { *(vec*)p = lo; *(vec*)(p + V<F>::W) = hi; }
  inline Row operator+(const Row& o) const { return {lo + o.lo, hi + o.hi}; }
  inline Row operator-(const Row& o) const { return {lo - o.lo, hi - o.hi}; }
  inline Row operator*(const Row& o) const { return {lo * o.lo, hi * o.hi}; }
  inline Row& operator+=(const Row& o) { lo += o.lo; hi += o.hi; return *this; }
  // where `this` > 0: `a`, else 0
  inline Row positive_or_zero(const Row& a) const {
    return {lo > 0 ? a.lo : vec{}, hi > 0 ? a.hi : vec{}};
  }
  // ReLU that passes NaN on, as torch.relu does (a NaN is not <= 0)
  inline Row relu() const { return {lo <= 0 ? vec{} : lo, hi <= 0 ? vec{} : hi}; }
  // bit t set where value t > 0 (the ReLU's mask, kept for backward)
  inline typename V<F>::bits positive_bits() const {
#ifdef KERNELS_AVX2
    return V<F>::sign_bits(lo > 0) | V<F>::sign_bits(hi > 0) << V<F>::W;
#else
    unsigned out = 0;
    for (int t = 0; t < V<F>::W; ++t) out |= (unsigned)(lo[t] > 0) << t | (unsigned)(hi[t] > 0) << (t + V<F>::W);
    return out;
#endif
  }
  // `a` where bit t of `bits` is set, else 0
  static inline Row select(typename V<F>::bits bits, const Row& a) {
    typedef typename V<F>::i vi;
    const vi l = V<F>::lanes(), b = vi{} + (typename V<F>::lane)bits;
    return {(b & l) != 0 ? a.lo : vec{}, (b & (l << (typename V<F>::lane)V<F>::W)) != 0 ? a.hi : vec{}};
  }
};

// out[r][t] (=, +=) sum_q M[r * ldm + q] * in[q * is + t], r < R, t < T (two vectors)
template <class F, int R, bool ACC>
static inline __attribute__((always_inline)) void mk(const F* M, int64_t ldm, const F* in, int64_t is,
                                                     int64_t Q, F* out, int64_t os) {
  typedef typename V<F>::v vec;
  const int W = V<F>::W;
  vec a0[R], a1[R];
  for (int r = 0; r < R; ++r) { a0[r] = vec{}; a1[r] = vec{}; }
  for (int64_t q = 0; q < Q; ++q) {
    const vec x0 = *(const vec*)(in + q * is), x1 = *(const vec*)(in + q * is + W);
    for (int r = 0; r < R; ++r) {
      const F m = M[r * ldm + q];
      a0[r] += m * x0;
      a1[r] += m * x1;
    }
  }
  for (int r = 0; r < R; ++r) {
    vec* o0 = (vec*)(out + r * os);
    vec* o1 = (vec*)(out + r * os + W);
    if (ACC) { *o0 += a0[r]; *o1 += a1[r]; } else { *o0 = a0[r]; *o1 = a1[r]; }
  }
}

// every row r < rows of M: out[r] (=, +=) M[r] . in, four rows at a time (measured a little
// faster than six at these sizes, whose row counts are mostly 7..14)
template <class F, bool ACC>
static void mm(const F* M, int64_t ldm, int64_t rows, const F* in, int64_t is, int64_t Q, F* out, int64_t os) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) mk<F, 4, ACC>(M + r * ldm, ldm, in, is, Q, out + r * os, os);
  switch (rows - r) {
    case 3: mk<F, 3, ACC>(M + r * ldm, ldm, in, is, Q, out + r * os, os); break;
    case 2: mk<F, 2, ACC>(M + r * ldm, ldm, in, is, Q, out + r * os, os); break;
    case 1: mk<F, 1, ACC>(M + r * ldm, ldm, in, is, Q, out + r * os, os); break;
    default: break;
  }
}

// a tile's scratch, T maps wide: spectra x, gx (kin^2), z (kout^2); per grid the halves of
// the synthesis (e, o), the four quadrant products (q), the grid (pre), the pooled
// activations or their gradient (y), the analysis' intermediates (w1, w2)
template <class F> struct Tile {
  enum { T = 2 * V<F>::W };
  F *x, *gx, *z, *e, *o, *q, *pre, *y, *w1, *w2;
  void* mem;
  bool alloc(int64_t kin, int64_t kout, int64_t g) {
    const int64_t h = g / 2 + 1, sizes[10] = {kin * kin, kin * kin, kout * kout, h * g, h * g,
                                            4 * h * h, g * g, g * g, g * g, 2 * g};
    F** dst[10] = {&x, &gx, &z, &e, &o, &q, &pre, &y, &w1, &w2};
    int64_t total = 0;
    for (int64_t s : sizes) total += (s * T + 15) / 16 * 16;
    mem = malloc((size_t)total * sizeof(F));  // every vector access is unaligned-safe
    if (!mem) return false;
    F* p = (F*)mem;
    for (int i = 0; i < 10; ++i) { *dst[i] = p; p += (sizes[i] * T + 15) / 16 * 16; }
    return true;
  }
};

// position of real-basis coefficient `a` (0, cos 1, sin 1, cos 2, ...) among kin of them
// ordered even-first: the constant and cosines, then the sines
static inline int64_t even_first(int64_t a, int64_t kin) {
  return a == 0 ? 0 : (a % 2 ? (a + 1) / 2 : (kin + 1) / 2 + a / 2 - 1);
}

// a kin x kin block of a (.., .., N) spectrum with strides (ra, rb) into [kin][kin][T] with
// both axes even-first (`perm`) or as they are; maps i0 .. i0 + nt, the rest of the tile 0
template <class F> static void gather(const F* src, int64_t ra, int64_t rb, int64_t rows, int64_t i0,
                                      int64_t nt, F* dst, bool perm) {
  const int64_t T = Tile<F>::T;
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t pa = perm ? even_first(a, rows) : a, pb = perm ? even_first(b, rows) : b;
      F* d = dst + (pa * rows + pb) * T;
      if (nt == T) {
        Row<F>::load(src + a * ra + b * rb + i0).store(d);
        continue;
      }
      memcpy(d, src + a * ra + b * rb + i0, nt * sizeof(F));
      for (int64_t t = nt; t < T; ++t) d[t] = 0;
    }
}

template <class F> static void scatter(const F* src, int64_t rows, F* dst, int64_t ra, int64_t rb,
                                       int64_t i0, int64_t nt, bool perm) {
  const int64_t T = Tile<F>::T;
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t pa = perm ? even_first(a, rows) : a, pb = perm ? even_first(b, rows) : b;
      if (nt == T)
        Row<F>::load(src + (pa * rows + pb) * T).store(dst + a * ra + b * rb + i0);
      else
        memcpy(dst + a * ra + b * rb + i0, src + (pa * rows + pb) * T, nt * sizeof(F));
    }
}

// the sizes of one evaluation's halves (see the header)
struct Halves {
  int64_t g, nc, ns, he, ho, k;
  Halves(const int64_t* e) : g(e[P_G]), nc(e[P_BAND] + 1), ns(e[P_BAND]), he(e[P_G] / 2 + 1),
                          ho((e[P_G] + 1) / 2 - 1), k(2 * e[P_BAND] + 1) {}
};

// pre[u][v] = S X S^T of one grid, X the leading (2 band + 1)^2 block of the tile's
// even-first spectrum; by halves: e = SC X_even, o = SS X_sine (rows: the grid's half,
// columns: the block's even then sine coefficients), then the four quadrant products
template <class F> static void synthesise(const int64_t* e, const F* mats, Tile<F>& b, int64_t kin,
                                          const F* sc = nullptr, const F* sh = nullptr,
                                          typename V<F>::bits* mask = nullptr) {
  const int64_t T = Tile<F>::T, nci = (kin + 1) / 2;
  const Halves h(e);
  const F *SC = mats + e[P_SC], *SS = mats + e[P_SS];
  for (int64_t c = 0; c < h.k; ++c) {
    const int64_t col = c < h.nc ? c : nci + c - h.nc;
    mm<F, false>(SC, h.nc, h.he, b.x + col * T, kin * T, h.nc, b.e + c * T, h.k * T);
    mm<F, false>(SS, h.ns, h.ho, b.x + (nci * kin + col) * T, kin * T, h.ns, b.o + c * T,
                 h.k * T);
  }
  F *ee = b.q, *eo = ee + h.he * h.he * T, *oe = eo + h.he * h.ho * T, *oo = oe + h.ho * h.he * T;
  for (int64_t u = 0; u < h.he; ++u) {
    mm<F, false>(SC, h.nc, h.he, b.e + u * h.k * T, T, h.nc, ee + u * h.he * T, T);
    mm<F, false>(SS, h.ns, h.ho, b.e + (u * h.k + h.nc) * T, T, h.ns, eo + u * h.ho * T, T);
  }
  for (int64_t u = 0; u < h.ho; ++u) {
    mm<F, false>(SC, h.nc, h.he, b.o + u * h.k * T, T, h.nc, oe + u * h.he * T, T);
    mm<F, false>(SS, h.ns, h.ho, b.o + (u * h.k + h.nc) * T, T, h.ns, oo + u * h.ho * T, T);
  }
  // the butterfly: rows u and g - u, columns v and g - v, from the four quadrants (row 0,
  // column 0 and, for an even g, row and column g / 2 have no odd part)
  typedef Row<F> R;
  for (int64_t u = 0; u < h.he; ++u)
    for (int64_t v = 0; v < h.he; ++v) {
      const bool uo = u >= 1 && u <= h.ho, vo = v >= 1 && v <= h.ho;
      const R e_ = R::load(ee + (u * h.he + v) * T);
      const R xo = vo ? R::load(eo + (u * h.ho + v - 1) * T) : R::zero();
      const R ox = uo ? R::load(oe + ((u - 1) * h.he + v) * T) : R::zero();
      const R oo_ = uo && vo ? R::load(oo + ((u - 1) * h.ho + v - 1) * T) : R::zero();
      const R s_ = e_ + ox, d = e_ - ox, s2 = xo + oo_, d2 = xo - oo_;
      const int64_t at[4] = {u * h.g + v, u * h.g + h.g - v, (h.g - u) * h.g + v,
                             (h.g - u) * h.g + h.g - v};
      const R val[4] = {s_ + s2, s_ - s2, d + d2, d - d2};
      const bool has[4] = {true, vo, uo, uo && vo};
      for (int q = 0; q < 4; ++q) {
        if (!has[q]) continue;
        if (!sc) {  // the grid itself
          val[q].store(b.pre + at[q] * T);
          continue;
        }
        const R pre = R::load(sc) * val[q] + R::load(sh);  // fused: the activation (pool 1)
        pre.relu().store(b.y + at[q] * T);
        if (mask) mask[at[q]] = pre.positive_bits();
      }
    }
}

/* the transpose of synthesise: with G = S^T w1 S (w1 the gradient at the g x g grid before
   the affine), gx (even-first) += scale G, and the affine's gradients <G, X> and
   G[0][0] (the synthesis of X is the grid before the affine; the constant is 1 on it) */
template <class F> static void synthesise_t(const int64_t* e, const F* mats, Tile<F>& b, int64_t kin,
                                            const F* sc, F* gsc, F* gsh,
                                            const typename V<F>::bits* mask) {
  const int64_t T = Tile<F>::T, nci = (kin + 1) / 2;
  const Halves h(e);
  const F *SCT = mats + e[P_SCT], *SST = mats + e[P_SST];
  F *ee = b.q, *eo = ee + h.he * h.he * T, *oe = eo + h.he * h.ho * T, *oo = oe + h.ho * h.he * T;
  typedef Row<F> R;
  for (int64_t u = 0; u < h.he; ++u)  // fold the grid into its four quadrants
    for (int64_t v = 0; v < h.he; ++v) {
      const bool uo = u >= 1 && u <= h.ho, vo = v >= 1 && v <= h.ho;
      // the gradient at the grid: w1, or (pool 1 with forward's mask) ReLU's mask times gy
      auto at = [&](int64_t i) {
        return mask ? R::select(mask[i], R::load(b.y + i * T)) : R::load(b.w1 + i * T);
      };
      const R a = at(u * h.g + v);
      const R bb = vo ? at(u * h.g + h.g - v) : R::zero();
      const R c = uo ? at((h.g - u) * h.g + v) : R::zero();
      const R d = uo && vo ? at((h.g - u) * h.g + h.g - v) : R::zero();
      const R s_ = a + c, d_ = a - c, s2 = bb + d, d2 = bb - d;
      (s_ + s2).store(ee + (u * h.he + v) * T);
      if (vo) (s_ - s2).store(eo + (u * h.ho + v - 1) * T);
      if (uo) (d_ + d2).store(oe + ((u - 1) * h.he + v) * T);
      if (uo && vo) (d_ - d2).store(oo + ((u - 1) * h.ho + v - 1) * T);
    }
  for (int64_t u = 0; u < h.he; ++u) {  // e[u][c] = sum_v S[v][c] (quadrant)[u][v]
    mm<F, false>(SCT, h.he, h.nc, ee + u * h.he * T, T, h.he, b.e + u * h.k * T, T);
    mm<F, false>(SST, h.ho, h.ns, eo + u * h.ho * T, T, h.ho, b.e + (u * h.k + h.nc) * T, T);
  }
  for (int64_t u = 0; u < h.ho; ++u) {
    mm<F, false>(SCT, h.he, h.nc, oe + u * h.he * T, T, h.he, b.o + u * h.k * T, T);
    mm<F, false>(SST, h.ho, h.ns, oo + u * h.ho * T, T, h.ho, b.o + (u * h.k + h.nc) * T, T);
  }
  F* gg = b.w1;  // G[a][c], both axes even-first within the block: the fold has read w1
  for (int64_t c = 0; c < h.k; ++c) {  // G[a][c] = sum_u S[u][a] e_or_o[u][c]
    mm<F, false>(SCT, h.he, h.nc, b.e + c * T, h.k * T, h.he, gg + c * T, h.k * T);
    mm<F, false>(SST, h.ho, h.ns, b.o + c * T, h.k * T, h.ho, gg + (h.nc * h.k + c) * T,
                 h.k * T);
  }
  const R a = R::load(sc);
  R dot = R::zero();
  for (int64_t r = 0; r < h.k; ++r)  // the block's even, then sine columns: two runs
    for (int64_t run = 0; run < 2; ++run) {
      const int64_t row = (r < h.nc ? r : nci + r - h.nc) * kin + (run ? nci : 0);
      const int64_t len = run ? h.ns : h.nc, first = run ? h.nc : 0;
      const F* pg = gg + (r * h.k + first) * T;
      F *px = b.x + row * T, *pgx = b.gx + row * T;
      for (int64_t c = 0; c < len; ++c) {
        const R gv = R::load(pg + c * T);
        dot += gv * R::load(px + c * T);
        (R::load(pgx + c * T) + a * gv).store(pgx + c * T);
      }
    }
  dot.store(gsc);
  R::load(gg).store(gsh);
}

/* y = pool(relu(scale * pre + shift)), (g / p)^2 values per map, for a pool p > 1 (with
   p = 1 the activation happens inside synthesise's butterfly) */
template <class F> static void activate(const F* sc, const F* sh, int64_t g, int64_t p,
                                        Tile<F>& b) {
  const int64_t T = Tile<F>::T, mo = g / p;
  for (int64_t uo = 0; uo < mo; ++uo)
    for (int64_t vo = 0; vo < mo; ++vo) {
      F* out = b.y + (uo * mo + vo) * T;
      for (int64_t t = 0; t < T; ++t) out[t] = 0;  /* relu: the window's max is >= 0 */
      for (int64_t du = 0; du < p; ++du)
        for (int64_t dv = 0; dv < p; ++dv) {
          const F* in = b.pre + ((uo * p + du) * g + vo * p + dv) * T;
          for (int64_t t = 0; t < T; ++t) {
            F v = sc[t] * in[t] + sh[t];
            out[t] = (v > out[t] || v != v) ? v : out[t];  /* NaN wins, as in amax */
          }
        }
    }
}

/* the rings this grid contributes, from the pooled activations b.y, into the tile's z */
template <class F> static void analyse(const int64_t* e, const F* mats, Tile<F>& b, int64_t kout,
                                       int64_t p) {
  const int64_t T = Tile<F>::T, mo = e[P_G] / p, ka = e[P_KA];
  const F* A = mats + e[P_A];
  if (e[P_BASE]) {
    for (int64_t v = 0; v < mo; ++v) /* w1[a][v] = sum_u A[a][u] y[u][v] */
      mm<F, false>(A, mo, ka, b.y + v * T, mo * T, mo, b.w1 + v * T, mo * T);
    for (int64_t a = 0; a < ka; ++a) /* z[a][c] = sum_v A[c][v] w1[a][v] */
      mm<F, false>(A, mo, ka, b.w1 + a * mo * T, T, mo, b.z + a * kout * T, T);
    return;
  }
  const int64_t lo = ka - 2; /* rows / columns 2j - 1, 2j */
  for (int64_t v = 0; v < mo; ++v) /* w1[s][v] = sum_u A[lo + s][u] y[u][v] */
    mm<F, false>(A + lo * mo, mo, 2, b.y + v * T, mo * T, mo, b.w1 + v * T, mo * T);
  for (int64_t s = 0; s < 2; ++s) /* z[lo + s][c] = sum_v A[c][v] w1[s][v], c <= 2j */
    mm<F, false>(A, mo, ka, b.w1 + s * mo * T, T, mo, b.z + (lo + s) * kout * T, T);
  for (int64_t u = 0; u < mo; ++u) /* w2[u][s] = sum_v A[lo + s][v] y[u][v] */
    mm<F, false>(A + lo * mo, mo, 2, b.y + u * mo * T, T, mo, b.w2 + u * 2 * T, T);
  for (int64_t s = 0; s < 2; ++s) /* z[a][lo + s] = sum_u A[a][u] w2[u][s], a < 2j - 1 */
    mm<F, false>(A, mo, lo, b.w2 + s * T, 2 * T, mo, b.z + (lo + s) * T, kout * T);
}

/* the ReLU masks forward keeps for backward (pool 1 only): per tile of maps, per evaluation
   g^2 entries of T bits; mask_points is the entries per tile */
static inline int64_t mask_points(const int64_t* plan) {
  int64_t pts = 0;
  for (int64_t r = 0; r < plan[H_E]; ++r) pts += plan[H_LEN + r * P_LEN + P_G] * plan[H_LEN + r * P_LEN + P_G];
  return pts;
}

template <class F> static inline typename V<F>::bits* tile_mask(void* buf, int64_t i0, int64_t pts) {
  return buf ? (typename V<F>::bits*)buf + i0 / Tile<F>::T * pts : nullptr;
}

/* The instance norm of one evaluation as an affine map per map of the tile: its moments from
   the tile's spectrum (Parseval: over a grid that resolves it the constant has mean square
   1, each cosine and sine 1/2), then scale = gamma rsqrt(var + eps), shift = beta - mean
   scale; without a norm, the identity. `inv` keeps rsqrt(var + eps), `keep` whether the
   variance was not clamped (sq - mean^2 >= 0), for backward. */
template <class F> struct Norm {
  F sc[Tile<F>::T], sh[Tile<F>::T], inv[Tile<F>::T], mean[Tile<F>::T], keep[Tile<F>::T];
  void compute(const Args& a, const int64_t* e, int64_t r, const Tile<F>& b, int64_t kin, int64_t i0,
               int64_t nt) {
    const int64_t T = Tile<F>::T, nci = (kin + 1) / 2;
    const Halves h(e);
    if (!a.gamma) {
      for (int64_t t = 0; t < T; ++t) { sc[t] = 1; sh[t] = 0; }
      return;
    }
    typedef Row<F> R;
    R acc = R::zero();
    for (int64_t i = 0; i < h.k; ++i) {
      const F* row = b.x + (i < h.nc ? i : nci + i - h.nc) * kin * T;
      R part = R::zero();
      for (int64_t j = 1; j < h.k; ++j) {
        const R x = R::load(row + (j < h.nc ? j : nci + j - h.nc) * T);
        part += x * x;
      }
      const R x0 = R::load(row);
      const R w = R::fill(i ? F(0.5) : F(1));
      acc += w * (x0 * x0 + R::fill(F(0.5)) * part);
    }
    F sq[Tile<F>::T];
    acc.store(sq);
    const F *gamma = (const F*)a.gamma + r * a.channels, *beta = (const F*)a.beta + r * a.channels;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t c = (i0 + t) % a.channels;
      mean[t] = b.x[t];
      const F var = sq[t] - mean[t] * mean[t];
      keep[t] = var >= 0;
      inv[t] = F(1) / __builtin_sqrt((var > 0 ? var : F(0)) + F(a.eps));
      sc[t] = t < nt ? gamma[c] * inv[t] : 0;
      sh[t] = t < nt ? beta[c] - mean[t] * sc[t] : 0;
    }
  }
};

/* what forward and backward share: the plan's header, the matrices and a tile's scratch
   (freed with the call) */
template <class F> struct Call {
  const int64_t* plan;
  int64_t E, kin, kout, p, pts;
  const F* mats;
  Tile<F> b;
  bool ok;
  explicit Call(const Args& a)
      : plan(a.plan), E(a.plan[H_E]), kin(a.plan[H_KIN]), kout(a.plan[H_KOUT]),
        p(a.plan[H_POOL]), pts(mask_points(a.plan)), mats((const F*)a.mats) {
    ok = b.alloc(kin, kout, plan[H_MAXG]);
  }
  ~Call() { if (ok) free(b.mem); }
  const int64_t* evaluation(int64_t r) const { return plan + H_LEN + r * P_LEN; }
};

template <class F> static int forward(const Args& a, int64_t m0, int64_t m1) {
  Call<F> cl(a);
  if (!cl.ok) return 1;
  const int64_t T = Tile<F>::T;
  Tile<F>& b = cl.b;
  Norm<F> nm;
  for (int64_t i0 = m0; i0 < m1; i0 += T) {
    const int64_t nt = m1 - i0 < T ? m1 - i0 : T;
    typename V<F>::bits* mask = tile_mask<F>(a.mask, i0, cl.pts);
    gather((const F*)a.spec, a.sa, a.sb, cl.kin, i0, nt, b.x, true);
    for (int64_t r = 0; r < cl.E; ++r) {
      const int64_t* e = cl.evaluation(r);
      nm.compute(a, e, r, b, cl.kin, i0, nt);
      if (cl.p == 1) {  // the activation inside the synthesis' butterfly
        synthesise(e, cl.mats, b, cl.kin, nm.sc, nm.sh, mask);
      } else {
        synthesise(e, cl.mats, b, cl.kin);
        activate(nm.sc, nm.sh, e[P_G], cl.p, b);
      }
      analyse(e, cl.mats, b, cl.kout, cl.p);
      if (mask) mask += e[P_G] * e[P_G];
    }
    scatter(b.z, cl.kout, (F*)a.z, a.za, a.zb, i0, nt, false);
  }
  return 0;
}

/* the gradient at the pooled activations (the transpose of analyse), into b.y (mo x mo),
   from the tile's output gradient b.z; w1 and w2 are its scratch */
template <class F> static void analyse_t(const int64_t* e, const F* mats, Tile<F>& b, int64_t kout,
                                         int64_t p) {
  const int64_t T = Tile<F>::T, mo = e[P_G] / p, ka = e[P_KA];
  const F* AT = mats + e[P_AT]; /* (mo, ka) */
  if (e[P_BASE]) {
    for (int64_t a = 0; a < ka; ++a) /* w1[a][v] = sum_c A[c][v] gz[a][c] */
      mm<F, false>(AT, ka, mo, b.z + a * kout * T, T, ka, b.w1 + a * mo * T, T);
    for (int64_t v = 0; v < mo; ++v) /* gy[u][v] = sum_a A[a][u] w1[a][v] */
      mm<F, false>(AT, ka, mo, b.w1 + v * T, mo * T, ka, b.y + v * T, mo * T);
    return;
  }
  const int64_t lo = ka - 2;
  for (int64_t s = 0; s < 2; ++s) /* w1[s][v] = sum_{c <= 2j} A[c][v] gz[lo + s][c] */
    mm<F, false>(AT, ka, mo, b.z + (lo + s) * kout * T, T, ka, b.w1 + s * mo * T, T);
  for (int64_t v = 0; v < mo; ++v) /* gy[u][v] = sum_s A[lo + s][u] w1[s][v] */
    mm<F, false>(AT + lo, ka, mo, b.w1 + v * T, mo * T, 2, b.y + v * T, mo * T);
  for (int64_t s = 0; s < 2; ++s) /* w2[u][s] = sum_{a < 2j - 1} A[a][u] gz[a][lo + s] */
    mm<F, false>(AT, ka, mo, b.z + (lo + s) * T, kout * T, lo, b.w2 + s * T, 2 * T);
  for (int64_t u = 0; u < mo; ++u) /* gy[u][v] += sum_s A[lo + s][v] w2[u][s] */
    mm<F, true>(AT + lo, ka, mo, b.w2 + u * 2 * T, T, 2, b.y + u * mo * T, T);
}

/* from gy (b.y, pooled) to the gradient at the pre-activations (into b.w1, g x g), ReLU's
   mask taken from the grid b.pre synthesised again (where forward kept no mask) */
template <class F> static void activate_t(const F* sc, const F* sh, int64_t g, int64_t p,
                                          Tile<F>& b) {
  const int64_t T = Tile<F>::T, mo = g / p;
  typedef Row<F> R;
  if (p == 1) {
    const R a = R::load(sc), c = R::load(sh);
    for (int64_t i = 0; i < g * g; ++i)
      (a * R::load(b.pre + i * T) + c).positive_or_zero(R::load(b.y + i * T)).store(b.w1 + i * T);
    return;
  }
  for (int64_t uo = 0; uo < mo; ++uo)
    for (int64_t vo = 0; vo < mo; ++vo) {
      const F* gy = b.y + (uo * mo + vo) * T;
      F top[Tile<F>::T], ties[Tile<F>::T];
      for (int64_t t = 0; t < T; ++t) { top[t] = 0; ties[t] = 0; }
      for (int64_t d = 0; d < p * p; ++d) { /* the window's max activation, how many reach it */
        const F* in = b.pre + ((uo * p + d / p) * g + vo * p + d % p) * T;
        for (int64_t t = 0; t < T; ++t) {
          F v = sc[t] * in[t] + sh[t];
          v = v > 0 ? v : 0;
          if (v > top[t]) { top[t] = v; ties[t] = 1; } else if (v == top[t]) ties[t] += 1;
        }
      }
      for (int64_t d = 0; d < p * p; ++d) {
        const int64_t at = ((uo * p + d / p) * g + vo * p + d % p) * T;
        for (int64_t t = 0; t < T; ++t) {
          const F v = sc[t] * b.pre[at + t] + sh[t];
          b.w1[at + t] = (v > 0 && v == top[t]) ? gy[t] / ties[t] : 0;
        }
      }
    }
}

/* the norm's transpose for one evaluation: from the gradients at scale and shift (gsc, gsh)
   to those at gamma and beta (per map, `ggamma`, `gbeta`: the caller sums over the batch)
   and at the spectrum (its mean square and mean), into the tile's gx */
template <class F> static void norm_t(const Args& a, const int64_t* e, int64_t r, Tile<F>& b,
                                      int64_t kin, const Norm<F>& nm, const F* gsc, const F* gsh,
                                      int64_t i0, int64_t nt) {
  const int64_t T = Tile<F>::T, nci = (kin + 1) / 2, n = a.sb;
  const Halves h(e);
  const F* gamma = (const F*)a.gamma + r * a.channels;
  F gvar[Tile<F>::T];
  for (int64_t t = 0; t < T; ++t) {
    const F g_scale = gsc[t] - gsh[t] * nm.mean[t];  // shift = beta - mean scale
    const F gam = t < nt ? gamma[(i0 + t) % a.channels] : 0;
    if (t < nt) {
      ((F*)a.ggamma)[r * n + i0 + t] = g_scale * nm.inv[t];
      ((F*)a.gbeta)[r * n + i0 + t] = gsh[t];
    }
    gvar[t] = nm.keep[t] ? g_scale * gam * F(-0.5) * nm.inv[t] * nm.inv[t] * nm.inv[t] : 0;
    b.gx[t] += -gsh[t] * nm.sc[t] - 2 * nm.mean[t] * gvar[t];  // the mean: X[0][0]
  }
  typedef Row<F> R;
  const R gv = R::load(gvar);
  for (int64_t i = 0; i < h.k; ++i) {  // the mean square: 2 X w_a w_b
    const int64_t row = (i < h.nc ? i : nci + i - h.nc) * kin * T;
    const R wi = gv * R::fill(i ? F(1) : F(2));  // 2 w_a w_b, w_b = 1/2 but for b = 0
    for (int64_t j = 0; j < h.k; ++j) {
      const int64_t at = row + (j < h.nc ? j : nci + j - h.nc) * T;
      const R w = j ? wi * R::fill(F(0.5)) : wi;
      (R::load(b.gx + at) + w * R::load(b.x + at)).store(b.gx + at);
    }
  }
}

template <class F> static int backward(const Args& a, int64_t m0, int64_t m1) {
  Call<F> cl(a);
  if (!cl.ok) return 1;
  const int64_t T = Tile<F>::T;
  Tile<F>& b = cl.b;
  Norm<F> nm;
  F gsc[Tile<F>::T], gsh[Tile<F>::T];
  for (int64_t i0 = m0; i0 < m1; i0 += T) {
    const int64_t nt = m1 - i0 < T ? m1 - i0 : T;
    const typename V<F>::bits* mask = tile_mask<F>(a.mask, i0, cl.pts);
    gather((const F*)a.spec, a.sa, a.sb, cl.kin, i0, nt, b.x, true);
    gather((const F*)a.gz, a.za, a.zb, cl.kout, i0, nt, b.z, false);
    memset(b.gx, 0, cl.kin * cl.kin * T * sizeof(F));
    for (int64_t r = 0; r < cl.E; ++r) {
      const int64_t* e = cl.evaluation(r);
      const int64_t g = e[P_G];
      // the norm's moments again from the tile's spectrum (about k^2 per map and grid,
      // under 1 % of the tile's work): cheaper than keeping them
      nm.compute(a, e, r, b, cl.kin, i0, nt);
      if (!mask) synthesise(e, cl.mats, b, cl.kin);  // the grid again: no mask was kept
      analyse_t(e, cl.mats, b, cl.kout, cl.p);
      if (!mask) activate_t(nm.sc, nm.sh, g, cl.p, b);  // else inside synthesise_t's fold
      synthesise_t(e, cl.mats, b, cl.kin, nm.sc, gsc, gsh, mask);
      if (a.gamma) norm_t(a, e, r, b, cl.kin, nm, gsc, gsh, i0, nt);
      if (mask) mask += g * g;
    }
    scatter(b.gx, cl.kin, (F*)a.gspec, a.sa, a.sb, i0, nt, true);
  }
  return 0;
}

#endif  // KERNEL_BODY_PASS
