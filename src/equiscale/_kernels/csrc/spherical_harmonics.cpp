// Real spherical harmonics (e3nn 0.6 basis) and their vector-Jacobian product, on CPU.
//
// Conventions as in equiscale/o3/_sh_coefficients.py: x is (N, 3) (any strides), the output is
// (N, (lmax+1)^2) with degree blocks l = 0..lmax and orders m = -l..l inside each block. The
// kernel evaluates the scaled recurrence of `scaled_recurrence` (one fused multiply-add per row):
//
//   R_mm = T_m (a complex rotation per m),  R_(m+1)m = y R_mm,  R_lm = r^2 R_(l-2)m + v_lm y R_(l-1)m
//
// then Y_lm = scale_lm R_lm. Points are processed in blocks of B: the block's rows live in a
// small component-major buffer R[row][point] (L1-resident), every step is a SIMD loop over the
// block, and each output row is written once, transposed from the buffer (in registers, 8 x 8
// AVX or 4 x 4 SSE tiles, in float32). For lmax <= 8 the
// degree loops have compile-time bounds (the compiler unrolls them); above, the same code runs
// with runtime bounds. The backward recomputes the block and runs the adjoint recurrence in
// reverse, so autograd only keeps x. Threads: ChunkPool (parallel.h), no join barrier.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "parallel.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace {

constexpr double kEps = 1e-12;  // torch.nn.functional.normalize's eps (as e3nn)

// Recurrence constants v[l * (lmax + 1) + m] and row scales (double, as the Python twin).
struct Constants {
  std::vector<double> v, scale;
};

double degree_scale(int l, const std::string& normalization) {
  if (normalization == "component") return 1.0;
  if (normalization == "integral") return 1.0 / std::sqrt(4.0 * M_PI);
  if (normalization == "norm") return 1.0 / std::sqrt(2.0 * l + 1.0);
  TORCH_CHECK(false, "normalization must be integral, component or norm, got ", normalization);
}

Constants make_constants(int lmax, const std::string& normalization) {
  const int w = lmax + 1;
  std::vector<double> diagonal(w, 1.0), c(w * w, 0.0);
  for (int m = 1; m <= lmax; ++m) diagonal[m] = diagonal[m - 1] * std::sqrt((2.0 * m - 1) / (2.0 * m));
  Constants k;
  k.v.assign(w * w, 0.0);
  for (int m = 0; m <= lmax; ++m) {
    c[m * w + m] = 1.0 / diagonal[m];
    if (m + 1 <= lmax) c[(m + 1) * w + m] = c[m * w + m] / std::sqrt(2.0 * m + 1);
    for (int l = m + 2; l <= lmax; ++l) {
      const double a = (2.0 * l - 1) / std::sqrt(double((l - m) * (l + m)));
      const double b = std::sqrt(double((l + m - 1) * (l - m - 1)) / double((l - m) * (l + m)));
      c[l * w + m] = -c[(l - 2) * w + m] / b;
      k.v[l * w + m] = a * c[l * w + m] / c[(l - 1) * w + m];
    }
  }
  for (int l = 0; l <= lmax; ++l) {
    const double base = std::sqrt(2.0 * l + 1) * degree_scale(l, normalization);
    for (int m = -l; m <= l; ++m) k.scale.push_back(base * (m ? std::sqrt(2.0) : 1.0) / c[l * w + std::abs(m)]);
  }
  return k;
}

// Points per block: the block's rows (two buffers in the backward) fit in about 16 KB of L1.
template <typename T>
int64_t block_points(int rows) {
  const int64_t b = 16384 / (rows * int64_t(sizeof(T)));
  return std::max<int64_t>(16, std::min<int64_t>(256, b / 16 * 16));
}

// Unit vectors u (or x without normalize) and r^2 = |u|^2 of the block, from x's rows.
template <typename T>
void load_points(const T* x, int64_t s0, int64_t s1, int64_t n, bool normalize, T* X, T* Y, T* Z, T* r2,
                 T* inv) {
  if (s0 == 3 && s1 == 1) {  // contiguous rows: constant strides, which the compiler vectorizes
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      X[p] = x[3 * p];
      Y[p] = x[3 * p + 1];
      Z[p] = x[3 * p + 2];
    }
  } else {
    for (int64_t p = 0; p < n; ++p) {
      X[p] = x[p * s0];
      Y[p] = x[p * s0 + s1];
      Z[p] = x[p * s0 + 2 * s1];
    }
  }
  if (normalize) {
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      const T norm = std::sqrt(X[p] * X[p] + Y[p] * Y[p] + Z[p] * Z[p]);
      const T i = T(1) / (norm > T(kEps) ? norm : T(kEps));  // a ternary vectorizes (max)
      inv[p] = i;
      X[p] *= i;
      Y[p] *= i;
      Z[p] *= i;
    }
  }
#pragma omp simd
  for (int64_t p = 0; p < n; ++p) r2[p] = X[p] * X[p] + Y[p] * Y[p] + Z[p] * Z[p];
}

// Fill R[row * B + p] for the block's n points (L >= 0: compile-time lmax; else lmax_rt).
template <typename T, int L>
void rows(T* R, int64_t B, int64_t n, const T* X, const T* Y, const T* Z, const T* r2, const T* v,
          int lmax_rt) {
  const int lmax = L >= 0 ? L : lmax_rt;
  const int w = lmax + 1;
  auto row = [&](int l, int m) { return R + (l * l + l + m) * B; };
  T* r0 = row(0, 0);
#pragma omp simd
  for (int64_t p = 0; p < n; ++p) r0[p] = T(1);
  if (lmax == 0) return;
  T *s1 = row(1, -1), *c1 = row(1, 1);
#pragma omp simd
  for (int64_t p = 0; p < n; ++p) {
    s1[p] = X[p];
    c1[p] = Z[p];
  }
  for (int m = 2; m <= lmax; ++m) {  // (S_m, C_m) = (S, C)_(m-1) * (z + i x)
    const T *sp = row(m - 1, 1 - m), *cp = row(m - 1, m - 1);
    T *s = row(m, -m), *c = row(m, m);
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      s[p] = sp[p] * Z[p] + cp[p] * X[p];
      c[p] = cp[p] * Z[p] - sp[p] * X[p];
    }
  }
  for (int m = 0; m < lmax; ++m) {
    for (int sign = (m ? -1 : 1); sign <= 1; sign += 2) {
      const int sm = sign * m;
      const T* a = row(m, sm);
      T* b = row(m + 1, sm);
#pragma omp simd
      for (int64_t p = 0; p < n; ++p) b[p] = Y[p] * a[p];
      for (int l = m + 2; l <= lmax; ++l) {
        const T c = v[l * w + m];
        const T *r_2 = row(l - 2, sm), *r_1 = row(l - 1, sm);
        T* r = row(l, sm);
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) r[p] = r2[p] * r_2[p] + c * Y[p] * r_1[p];
      }
    }
  }
}

// Adjoint of `rows`: G (dL/dR, consumed) -> gX, gY, gZ (dL/du) and gr2 (dL/dr^2), overwritten.
template <typename T, int L>
void adjoint(T* G, const T* R, int64_t B, int64_t n, const T* X, const T* Y, const T* Z, const T* r2,
             const T* v, int lmax_rt, T* gX, T* gY, T* gZ, T* gr2) {
  const int lmax = L >= 0 ? L : lmax_rt;
  const int w = lmax + 1;
  auto off = [&](int l, int m) { return (l * l + l + m) * B; };
  for (int64_t p = 0; p < n; ++p) gX[p] = gY[p] = gZ[p] = gr2[p] = T(0);
  for (int m = 0; m < lmax; ++m) {  // tesseral chains, l descending
    for (int sign = (m ? -1 : 1); sign <= 1; sign += 2) {
      const int sm = sign * m;
      for (int l = lmax; l >= m + 2; --l) {
        const T c = v[l * w + m];
        const T *g = G + off(l, sm), *r_1 = R + off(l - 1, sm), *r_2 = R + off(l - 2, sm);
        T *g_1 = G + off(l - 1, sm), *g_2 = G + off(l - 2, sm);
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) {
          g_1[p] += c * Y[p] * g[p];
          g_2[p] += r2[p] * g[p];
          gY[p] += c * g[p] * r_1[p];
          gr2[p] += g[p] * r_2[p];
        }
      }
      const T* g = G + off(m + 1, sm);
      const T* r = R + off(m, sm);
      T* g0 = G + off(m, sm);
#pragma omp simd
      for (int64_t p = 0; p < n; ++p) {
        g0[p] += Y[p] * g[p];
        gY[p] += g[p] * r[p];
      }
    }
  }
  for (int m = lmax; m >= 2; --m) {  // sectoral chain: (S_m, C_m) = (S z + C x, C z - S x)_(m-1)
    const T *gs = G + off(m, -m), *gc = G + off(m, m), *sp = R + off(m - 1, 1 - m), *cp = R + off(m - 1, m - 1);
    T *gsp = G + off(m - 1, 1 - m), *gcp = G + off(m - 1, m - 1);
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      gsp[p] += gs[p] * Z[p] - gc[p] * X[p];
      gcp[p] += gs[p] * X[p] + gc[p] * Z[p];
      gZ[p] += gs[p] * sp[p] + gc[p] * cp[p];
      gX[p] += gs[p] * cp[p] - gc[p] * sp[p];
    }
  }
  if (lmax >= 1) {
    const T *gs = G + off(1, -1), *gc = G + off(1, 1);
#pragma omp simd
    for (int64_t p = 0; p < n; ++p) {
      gX[p] += gs[p];
      gZ[p] += gc[p];
    }
  }
}

// o[p * D + d] = R[d * B + p] * scale[d] for the block's nb points (the transposing write).
template <typename T>
void write_rows(const T* R, int64_t B, int64_t nb, int D, const T* scale, T* o) {
  for (int64_t p = 0; p < nb; ++p)
    for (int d = 0; d < D; ++d) o[p * D + d] = R[d * B + p] * scale[d];
}

// G[d * B + p] = g[p * g0 + d * g1] * scale[d] (the transposing read of dL/dY).
template <typename T>
void read_rows(const T* g, int64_t g0, int64_t g1, int64_t B, int64_t nb, int D, const T* scale, T* G) {
  for (int64_t p = 0; p < nb; ++p)
    for (int d = 0; d < D; ++d) G[d * B + p] = g[p * g0 + d * g1] * scale[d];
}

#if defined(__AVX__)
// float32 with AVX: 8 x 8 tiles transposed in registers (8x fewer memory operations).
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

template <>
void write_rows<float>(const float* R, int64_t B, int64_t nb, int D, const float* scale, float* o) {
  int64_t p = 0;
  for (; p + 8 <= nb; p += 8) {
    int d = 0;
    for (; d + 8 <= D; d += 8) {
      __m256 r[8];
      for (int q = 0; q < 8; ++q) r[q] = _mm256_mul_ps(_mm256_loadu_ps(R + (d + q) * B + p), _mm256_set1_ps(scale[d + q]));
      transpose8(r);
      for (int q = 0; q < 8; ++q) _mm256_storeu_ps(o + (p + q) * D + d, r[q]);
    }
    for (; d < D; ++d)
      for (int q = 0; q < 8; ++q) o[(p + q) * D + d] = R[d * B + p + q] * scale[d];
  }
  for (; p < nb; ++p)
    for (int d = 0; d < D; ++d) o[p * D + d] = R[d * B + p] * scale[d];
}

template <>
void read_rows<float>(const float* g, int64_t g0, int64_t g1, int64_t B, int64_t nb, int D, const float* scale,
                      float* G) {
  int64_t p = 0;
  if (g1 == 1) {
    for (; p + 8 <= nb; p += 8) {
      int d = 0;
      for (; d + 8 <= D; d += 8) {
        __m256 r[8];
        for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(g + (p + q) * g0 + d);
        transpose8(r);
        for (int q = 0; q < 8; ++q) _mm256_storeu_ps(G + (d + q) * B + p, _mm256_mul_ps(r[q], _mm256_set1_ps(scale[d + q])));
      }
      for (; d < D; ++d)
        for (int q = 0; q < 8; ++q) G[d * B + p + q] = g[(p + q) * g0 + d] * scale[d];
    }
  }
  for (; p < nb; ++p)
    for (int d = 0; d < D; ++d) G[d * B + p] = g[p * g0 + d * g1] * scale[d];
}
#elif defined(__SSE2__)
// float32: 4 x 4 tiles transposed in registers (SSE is in every x86-64), 4x fewer memory ops.
template <>
void write_rows<float>(const float* R, int64_t B, int64_t nb, int D, const float* scale, float* o) {
  int64_t p = 0;
  for (; p + 4 <= nb; p += 4) {
    int d = 0;
    for (; d + 4 <= D; d += 4) {
      __m128 r0 = _mm_mul_ps(_mm_loadu_ps(R + d * B + p), _mm_set1_ps(scale[d]));
      __m128 r1 = _mm_mul_ps(_mm_loadu_ps(R + (d + 1) * B + p), _mm_set1_ps(scale[d + 1]));
      __m128 r2 = _mm_mul_ps(_mm_loadu_ps(R + (d + 2) * B + p), _mm_set1_ps(scale[d + 2]));
      __m128 r3 = _mm_mul_ps(_mm_loadu_ps(R + (d + 3) * B + p), _mm_set1_ps(scale[d + 3]));
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(o + p * D + d, r0);
      _mm_storeu_ps(o + (p + 1) * D + d, r1);
      _mm_storeu_ps(o + (p + 2) * D + d, r2);
      _mm_storeu_ps(o + (p + 3) * D + d, r3);
    }
    for (; d < D; ++d)
      for (int q = 0; q < 4; ++q) o[(p + q) * D + d] = R[d * B + p + q] * scale[d];
  }
  for (; p < nb; ++p)
    for (int d = 0; d < D; ++d) o[p * D + d] = R[d * B + p] * scale[d];
}

template <>
void read_rows<float>(const float* g, int64_t g0, int64_t g1, int64_t B, int64_t nb, int D, const float* scale,
                      float* G) {
  int64_t p = 0;
  if (g1 == 1) {
    for (; p + 4 <= nb; p += 4) {
      int d = 0;
      for (; d + 4 <= D; d += 4) {
        __m128 r0 = _mm_loadu_ps(g + p * g0 + d), r1 = _mm_loadu_ps(g + (p + 1) * g0 + d);
        __m128 r2 = _mm_loadu_ps(g + (p + 2) * g0 + d), r3 = _mm_loadu_ps(g + (p + 3) * g0 + d);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(G + d * B + p, _mm_mul_ps(r0, _mm_set1_ps(scale[d])));
        _mm_storeu_ps(G + (d + 1) * B + p, _mm_mul_ps(r1, _mm_set1_ps(scale[d + 1])));
        _mm_storeu_ps(G + (d + 2) * B + p, _mm_mul_ps(r2, _mm_set1_ps(scale[d + 2])));
        _mm_storeu_ps(G + (d + 3) * B + p, _mm_mul_ps(r3, _mm_set1_ps(scale[d + 3])));
      }
      for (; d < D; ++d)
        for (int q = 0; q < 4; ++q) G[d * B + p + q] = g[(p + q) * g0 + d] * scale[d];
    }
  }
  for (; p < nb; ++p)
    for (int d = 0; d < D; ++d) G[d * B + p] = g[p * g0 + d * g1] * scale[d];
}
#endif

template <typename T, int L>
void forward_range(const T* x, int64_t s0, int64_t s1, T* out, int64_t n, int lmax_rt, bool normalize,
                   const T* v, const T* scale, int64_t begin, int64_t end, int64_t B) {
  const int lmax = L >= 0 ? L : lmax_rt;
  const int D = (lmax + 1) * (lmax + 1);
  std::vector<T> buffer(D * B + 5 * B);
  T *R = buffer.data(), *X = R + D * B, *Y = X + B, *Z = Y + B, *r2 = Z + B, *inv = r2 + B;
  for (int64_t block = begin; block < end; ++block) {
    const int64_t p0 = block * B, nb = std::min(B, n - p0);
    load_points(x + p0 * s0, s0, s1, nb, normalize, X, Y, Z, r2, inv);
    rows<T, L>(R, B, nb, X, Y, Z, r2, v, lmax);
    write_rows<T>(R, B, nb, D, scale, out + p0 * D);
  }
}

template <typename T, int L>
void backward_range(const T* x, int64_t s0, int64_t s1, const T* grad, int64_t g0, int64_t g1, T* gx, int64_t n,
                    int lmax_rt, bool normalize, const T* v, const T* scale, int64_t begin, int64_t end, int64_t B) {
  const int lmax = L >= 0 ? L : lmax_rt;
  const int D = (lmax + 1) * (lmax + 1);
  std::vector<T> buffer(2 * D * B + 9 * B);
  T *R = buffer.data(), *G = R + D * B, *X = G + D * B, *Y = X + B, *Z = Y + B, *r2 = Z + B, *inv = r2 + B;
  T *gX = inv + B, *gY = gX + B, *gZ = gY + B, *gr2 = gZ + B;
  for (int64_t block = begin; block < end; ++block) {
    const int64_t p0 = block * B, nb = std::min(B, n - p0);
    load_points(x + p0 * s0, s0, s1, nb, normalize, X, Y, Z, r2, inv);
    rows<T, L>(R, B, nb, X, Y, Z, r2, v, lmax);
    read_rows<T>(grad + p0 * g0, g0, g1, B, nb, D, scale, G);
    adjoint<T, L>(G, R, B, nb, X, Y, Z, r2, v, lmax, gX, gY, gZ, gr2);
    T* o = gx + p0 * 3;
    for (int64_t p = 0; p < nb; ++p) {
      // r^2 = |u|^2: d r^2 / du = 2 u; then u = x * inv (inv = 1 / max(|x|, eps)): project out
      // the radial part where |x| > eps (there u is a unit vector; inside the ball u = x / eps).
      T a = gX[p] + 2 * X[p] * gr2[p], b = gY[p] + 2 * Y[p] * gr2[p], c = gZ[p] + 2 * Z[p] * gr2[p];
      if (normalize) {
        const T i = inv[p];
        if (i < T(1.0 / kEps)) {
          const T radial = X[p] * a + Y[p] * b + Z[p] * c;
          a -= radial * X[p];
          b -= radial * Y[p];
          c -= radial * Z[p];
        }
        a *= i;
        b *= i;
        c *= i;
      }
      o[3 * p] = a;
      o[3 * p + 1] = b;
      o[3 * p + 2] = c;
    }
  }
}

// Calls f.template operator()<L>() with L = lmax for lmax <= 8, else L = -1 (runtime bounds).
template <typename F>
void dispatch_lmax(int lmax, F&& f) {
  switch (lmax) {
    case 0: return f.template operator()<0>();
    case 1: return f.template operator()<1>();
    case 2: return f.template operator()<2>();
    case 3: return f.template operator()<3>();
    case 4: return f.template operator()<4>();
    case 5: return f.template operator()<5>();
    case 6: return f.template operator()<6>();
    case 7: return f.template operator()<7>();
    case 8: return f.template operator()<8>();
    default: return f.template operator()<-1>();
  }
}

void check_x(const at::Tensor& x, int64_t lmax) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == 3, "x must have shape (N, 3), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "x must be float32 or float64");
  TORCH_CHECK(lmax >= 0, "lmax must be >= 0");
}

at::Tensor sh_forward(const at::Tensor& x, int64_t lmax, bool normalize, c10::string_view normalization) {
  check_x(x, lmax);
  const int64_t n = x.size(0), D = (lmax + 1) * (lmax + 1);
  at::Tensor out = at::empty({n, D}, x.options());
  if (n == 0) return out;
  const Constants k = make_constants(int(lmax), std::string(normalization));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "spherical_harmonics", [&] {
    using T = scalar_t;
    const std::vector<T> v(k.v.begin(), k.v.end()), scale(k.scale.begin(), k.scale.end());
    const int64_t B = block_points<T>(int(D)), blocks = (n + B - 1) / B;
    const T* xp = x.data_ptr<T>();
    T* op = out.data_ptr<T>();
    dispatch_lmax(int(lmax), [&]<int L>() {
      equiscale::ChunkPool::instance().run(blocks, std::max<int64_t>(1, 2048 / B), [&](int64_t b, int64_t e) {
        forward_range<T, L>(xp, x.stride(0), x.stride(1), op, n, int(lmax), normalize, v.data(), scale.data(), b, e, B);
      });
    });
  });
  return out;
}

at::Tensor sh_backward(const at::Tensor& grad, const at::Tensor& x, int64_t lmax, bool normalize,
                       c10::string_view normalization) {
  check_x(x, lmax);
  const int64_t n = x.size(0), D = (lmax + 1) * (lmax + 1);
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == n && grad.size(1) == D, "grad must have shape (N, ", D, ")");
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "grad and x must have the same dtype");
  at::Tensor gx = at::empty({n, 3}, x.options());
  if (n == 0) return gx;
  const Constants k = make_constants(int(lmax), std::string(normalization));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "spherical_harmonics_backward", [&] {
    using T = scalar_t;
    const std::vector<T> v(k.v.begin(), k.v.end()), scale(k.scale.begin(), k.scale.end());
    const int64_t B = block_points<T>(int(2 * D)), blocks = (n + B - 1) / B;
    const T* xp = x.data_ptr<T>();
    const T* gp = grad.data_ptr<T>();
    T* op = gx.data_ptr<T>();
    dispatch_lmax(int(lmax), [&]<int L>() {
      equiscale::ChunkPool::instance().run(blocks, std::max<int64_t>(1, 1024 / B), [&](int64_t b, int64_t e) {
        backward_range<T, L>(xp, x.stride(0), x.stride(1), gp, grad.stride(0), grad.stride(1), op, n, int(lmax),
                             normalize, v.data(), scale.data(), b, e, B);
      });
    });
  });
  return gx;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(equiscale, m) {
  m.def("spherical_harmonics(Tensor x, int lmax, bool normalize, str normalization) -> Tensor");
  m.def("spherical_harmonics_backward(Tensor grad, Tensor x, int lmax, bool normalize, str normalization) -> Tensor");
}

TORCH_LIBRARY_IMPL(equiscale, CPU, m) {
  m.impl("spherical_harmonics", &sh_forward);
  m.impl("spherical_harmonics_backward", &sh_backward);
}
