// Shared-weight fully connected ("uvw") tensor product, on CPU.
//
// out[n, w, k] = sum_paths sum_u W_p[u, w] S_p[n, k, u],   S_p[n, k, u] = sum_(i, j) C_p[i, j, k] x[n, u, i] y[n, j]
//
// (e3nn's `mul_ir` layouts at the boundary: x[n, x0 + u d1 + i], y[n, y0 + j], out[n, o0 + w dk + k];
// C_p already holds the path normalisation.) The Clebsch-Gordan tensors are sparse, so S is built
// from their non-zeros only, accumulated in registers per (path, k) run; the channel mixing is one
// dense GEMM per output block over all its paths, S_g[(n, k), (p, u)] @ W_g[(p, u), w]. Edges are
// processed in tiles of T so that S, the transposed x and the GEMM result stay in cache; threads
// take chunks of tiles on demand (parallel_tiles); the GEMMs call the BLAS that torch links
// (sgemm_/dgemm_, one BLAS thread per chunk).
//
// Plan tensors (int64, built once per module by equiscale/_kernels/tensor_product.py):
//   xblocks (B, 3): x0, m1, d1        every block of x used by a path
//   groups  (G, 4): o0, mo, dk, ncols  one per output block reached (ncols = sum of its paths' m1)
//   paths   (P, 6): xblock, y0, group, col0, w_off, w_stride   (W_p[u, w] = w[w_off + u w_stride + w];
//                   a path with mul_in2 > 1 is planned as one path per copy v of y's irrep)
//   runs    (R, 4): path, k, nz_begin, nz_end    non-zeros grouped by (path, k)
//   nz      (Z, 2): i, j   with coefficients coef (Z,) float64
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "parallel.h"

#include <algorithm>
#include <mutex>
#include <vector>

extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

// MKL (the BLAS of torch's x86 builds) can limit the calling thread to one BLAS thread. This is
// its C interface (the lower-case exported names are the Fortran one, which takes a pointer).
// Weak: with another BLAS the symbol is absent and the OpenMP scheme runs instead.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace {

// Runs f(begin, end) over [0, n) on the barrier-free pool with single-threaded BLAS calls inside
// each chunk (MKL would otherwise open a thread team per GEMM from our workers); without MKL,
// on OpenMP threads, where BLAS runs single-threaded inside the parallel region.
template <typename F>
void parallel_tiles(int64_t n, int64_t grain, const F& f) {
  if (MKL_Set_Num_Threads_Local == nullptr) {
    equiscale::parallel_chunks(n, grain, f);
    return;
  }
  equiscale::ChunkPool::instance().run(n, grain, [&](int64_t b, int64_t e) {
    const int previous = MKL_Set_Num_Threads_Local(1);
    f(b, e);
    MKL_Set_Num_Threads_Local(previous);
  });
}

// Column-major C (m x n) = alpha op(A) op(B) + beta C (BLAS convention).
inline void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
                 float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                 int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

constexpr int64_t kTile = 32;  // edges per tile

struct XBlock { int64_t x0, m1, d1, t_off; };      // t_off: offset in the tile's transposed x (per edge)
struct Group { int64_t o0, mo, dk, ncols, s_off, r_off, w_off; };  // s_off/r_off: per-edge offsets; w_off: in Wst
struct Path { int64_t xb, y0, g, col0, w_off, w_stride; };
struct Run { int64_t p, k, b, e; };

// dst[c * D + r] = src[r * ld + c] for r < D, c < n (D rows of length n interleaved). With D a
// compile-time constant (the dimensions 1, 3, 5, 7 of irreps up to l = 3) the compiler vectorizes.
template <typename T, int D>
void interleave_fixed(const T* src, int64_t ld, int64_t n, T* dst) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c)
    for (int r = 0; r < D; ++r) dst[c * D + r] = src[r * ld + c];
}

template <typename T>
void interleave(const T* src, int64_t ld, int64_t rows, int64_t n, T* dst) {
  switch (rows) {
    case 1: return interleave_fixed<T, 1>(src, ld, n, dst);
    case 3: return interleave_fixed<T, 3>(src, ld, n, dst);
    case 5: return interleave_fixed<T, 5>(src, ld, n, dst);
    case 7: return interleave_fixed<T, 7>(src, ld, n, dst);
  }
  for (int64_t c = 0; c < n; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[c * rows + r] = src[r * ld + c];
}

// dst[r * ld + c] = src[c * D + r]: the inverse of `interleave`.
template <typename T, int D>
void deinterleave_fixed(const T* src, int64_t n, T* dst, int64_t ld) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c)
    for (int r = 0; r < D; ++r) dst[r * ld + c] = src[c * D + r];
}

template <typename T>
void deinterleave(const T* src, int64_t rows, int64_t n, T* dst, int64_t ld) {
  switch (rows) {
    case 1: return deinterleave_fixed<T, 1>(src, n, dst, ld);
    case 3: return deinterleave_fixed<T, 3>(src, n, dst, ld);
    case 5: return deinterleave_fixed<T, 5>(src, n, dst, ld);
    case 7: return deinterleave_fixed<T, 7>(src, n, dst, ld);
  }
  for (int64_t c = 0; c < n; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[r * ld + c] = src[c * rows + r];
}

template <typename T>
struct Plan {
  std::vector<XBlock> xb;
  std::vector<Group> g;
  std::vector<Path> p;
  std::vector<Run> r;
  std::vector<int64_t> zi, zj;
  std::vector<T> zc;
  int64_t xt_width = 0, s_width = 0, r_width = 0, w_width = 0;
};

template <typename T>
Plan<T> read_plan(const at::Tensor& xblocks, const at::Tensor& groups, const at::Tensor& paths, const at::Tensor& runs,
                  const at::Tensor& nz, const at::Tensor& coef) {
  for (const at::Tensor* t : {&xblocks, &groups, &paths, &runs, &nz})
    TORCH_CHECK(t->scalar_type() == at::kLong && t->dim() == 2 && t->is_contiguous(), "plan tensors: int64, 2-D");
  Plan<T> plan;
  const int64_t* a = xblocks.data_ptr<int64_t>();
  for (int64_t b = 0; b < xblocks.size(0); ++b, a += 3) {
    plan.xb.push_back({a[0], a[1], a[2], plan.xt_width});
    plan.xt_width += a[1] * a[2];
  }
  a = groups.data_ptr<int64_t>();
  for (int64_t g = 0; g < groups.size(0); ++g, a += 4) {
    plan.g.push_back({a[0], a[1], a[2], a[3], plan.s_width, plan.r_width, plan.w_width});
    plan.s_width += a[2] * a[3];
    plan.r_width += a[2] * a[1];
    plan.w_width += a[3] * a[1];
  }
  a = paths.data_ptr<int64_t>();
  for (int64_t p = 0; p < paths.size(0); ++p, a += 6) plan.p.push_back({a[0], a[1], a[2], a[3], a[4], a[5]});
  a = runs.data_ptr<int64_t>();
  for (int64_t r = 0; r < runs.size(0); ++r, a += 4) plan.r.push_back({a[0], a[1], a[2], a[3]});
  a = nz.data_ptr<int64_t>();
  const at::Tensor c = coef.to(at::kDouble).contiguous();
  const double* cp = c.data_ptr<double>();
  for (int64_t z = 0; z < nz.size(0); ++z, a += 2) {
    plan.zi.push_back(a[0]);
    plan.zj.push_back(a[1]);
    plan.zc.push_back(T(cp[z]));
  }
  return plan;
}

// Xt[e][t_off + i m1 + u] = x[e][x0 + u d1 + i] for the tile's edges (channels contiguous).
template <typename T>
void transpose_x(const Plan<T>& plan, const T* x, int64_t dim1, int64_t ne, T* Xt) {
  for (int64_t e = 0; e < ne; ++e) {
    const T* xe = x + e * dim1;
    T* te = Xt + e * plan.xt_width;
    for (const XBlock& b : plan.xb) deinterleave(xe + b.x0, b.d1, b.m1, te + b.t_off, b.m1);
  }
}

// 32 bytes of T (GCC/Clang vector extension: the compiler keeps these in SIMD registers).
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(32)));
};

// s[u] = sum over the run's non-zeros of c y[y0 + j] xt[i m1 + u] for u < 4 L (L = 32 bytes):
// the accumulators stay in four registers and s is written once.
template <typename T>
inline void run_32_bytes_x4(const Plan<T>& plan, const Run& run, const T* ye, int64_t y0, const T* xt, int64_t m1,
                            T* s) {
  using V = typename Vec<T>::type;
  constexpr int L = sizeof(V) / sizeof(T);
  V a0 = {}, a1 = {}, a2 = {}, a3 = {};
  for (int64_t z = run.b; z < run.e; ++z) {
    const T c = plan.zc[z] * ye[y0 + plan.zj[z]];
    const T* xi = xt + plan.zi[z] * m1;
    V x0, x1, x2, x3;
    __builtin_memcpy(&x0, xi, sizeof(V));
    __builtin_memcpy(&x1, xi + L, sizeof(V));
    __builtin_memcpy(&x2, xi + 2 * L, sizeof(V));
    __builtin_memcpy(&x3, xi + 3 * L, sizeof(V));
    a0 += c * x0;
    a1 += c * x1;
    a2 += c * x2;
    a3 += c * x3;
  }
  __builtin_memcpy(s, &a0, sizeof(V));
  __builtin_memcpy(s + L, &a1, sizeof(V));
  __builtin_memcpy(s + 2 * L, &a2, sizeof(V));
  __builtin_memcpy(s + 3 * L, &a3, sizeof(V));
}

// S_g[(e, k), col0 + u] = sum over the run's non-zeros of c y[e, y0 + j] Xt[e, i, u] (each slot written once).
template <typename T>
void build_s(const Plan<T>& plan, const T* y, int64_t dim2, const T* Xt, int64_t ne, T* S) {
  constexpr int64_t kChunk = 4 * int64_t(sizeof(typename Vec<T>::type) / sizeof(T));
  for (int64_t e = 0; e < ne; ++e) {
    const T* ye = y + e * dim2;
    const T* te = Xt + e * plan.xt_width;
    for (const Run& run : plan.r) {
      const Path& p = plan.p[run.p];
      const XBlock& b = plan.xb[p.xb];
      const Group& g = plan.g[p.g];
      T* s = S + g.s_off * ne + (e * g.dk + run.k) * g.ncols + p.col0;
      const int64_t m1 = b.m1;
      int64_t u0 = 0;  // chunks of kChunk channels (32 in float32) accumulate in registers
      for (; u0 + kChunk <= m1; u0 += kChunk) run_32_bytes_x4(plan, run, ye, p.y0, te + b.t_off + u0, m1, s + u0);
      if (u0 == m1) continue;
#pragma omp simd
      for (int64_t u = u0; u < m1; ++u) s[u] = T(0);
      for (int64_t z = run.b; z < run.e; ++z) {
        const T c = plan.zc[z] * ye[p.y0 + plan.zj[z]];
        const T* xi = te + b.t_off + plan.zi[z] * m1;
#pragma omp simd
        for (int64_t u = u0; u < m1; ++u) s[u] += c * xi[u];
      }
    }
  }
}

template <typename T>
void stack_weights(const Plan<T>& plan, const T* w, std::vector<T>& Wst) {
  Wst.assign(plan.w_width, T(0));
  for (const Path& p : plan.p) {
    const Group& g = plan.g[p.g];
    for (int64_t u = 0; u < plan.xb[p.xb].m1; ++u) {
      const T* src = w + p.w_off + u * p.w_stride;
      std::copy(src, src + g.mo, Wst.begin() + g.w_off + (p.col0 + u) * g.mo);
    }
  }
}

template <typename T>
void forward_tiles(const Plan<T>& plan, const T* x, const T* y, const T* Wst, T* out, int64_t n, int64_t dim1,
                   int64_t dim2, int64_t dim_out, const std::vector<int64_t>& zero_cols, int64_t begin, int64_t end) {
  std::vector<T> buf(kTile * (plan.xt_width + plan.s_width + plan.r_width));
  T *Xt = buf.data(), *S = Xt + kTile * plan.xt_width, *R = S + kTile * plan.s_width;
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t e0 = tile * kTile, ne = std::min(kTile, n - e0);
    transpose_x(plan, x + e0 * dim1, dim1, ne, Xt);
    build_s(plan, y + e0 * dim2, dim2, Xt, ne, S);
    for (const Group& g : plan.g) {  // R_g[(e, k), w] = S_g[(e, k), :] @ Wst_g
      T* r = R + g.r_off * ne;
      gemm('N', 'N', int(g.mo), int(ne * g.dk), int(g.ncols), T(1), Wst + g.w_off, int(g.mo), S + g.s_off * ne,
           int(g.ncols), T(0), r, int(g.mo));
      for (int64_t e = 0; e < ne; ++e) {
        T* o = out + (e0 + e) * dim_out + g.o0;
        interleave(r + e * g.dk * g.mo, g.mo, g.dk, g.mo, o);
      }
    }
    for (int64_t e = 0; e < ne; ++e)
      for (int64_t c : zero_cols) out[(e0 + e) * dim_out + c] = T(0);
  }
}

std::vector<int64_t> uncovered(int64_t dim, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  std::vector<char> hit(dim, 0);
  for (auto [a, len] : ranges) std::fill(hit.begin() + a, hit.begin() + a + len, 1);
  std::vector<int64_t> cols;
  for (int64_t c = 0; c < dim; ++c)
    if (!hit[c]) cols.push_back(c);
  return cols;
}

void check_inputs(const at::Tensor& x, const at::Tensor& y, const at::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && w.dim() == 1, "x (N, dim1), y (N, dim2), w (numel,)");
  TORCH_CHECK(x.size(0) == y.size(0), "x and y must have the same number of rows");
  TORCH_CHECK(x.scalar_type() == y.scalar_type() && x.scalar_type() == w.scalar_type(), "one dtype for x, y, w");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "float32 or float64");
}

at::Tensor tp_forward(const at::Tensor& x_in, const at::Tensor& y_in, const at::Tensor& w_in, const at::Tensor& xblocks,
                      const at::Tensor& groups, const at::Tensor& paths, const at::Tensor& runs, const at::Tensor& nz,
                      const at::Tensor& coef, int64_t dim_out) {
  check_inputs(x_in, y_in, w_in);
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous(), w = w_in.contiguous();
  const int64_t n = x.size(0), dim1 = x.size(1), dim2 = y.size(1);
  at::Tensor out = at::empty({n, dim_out}, x.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "tensor_product_uvw", [&] {
    using T = scalar_t;
    const Plan<T> plan = read_plan<T>(xblocks, groups, paths, runs, nz, coef);
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (const Group& g : plan.g) ranges.push_back({g.o0, g.mo * g.dk});
    const std::vector<int64_t> zero_cols = uncovered(dim_out, ranges);
    std::vector<T> Wst;
    stack_weights(plan, w.data_ptr<T>(), Wst);
    const int64_t tiles = (n + kTile - 1) / kTile;
    parallel_tiles(tiles, 2, [&](int64_t b, int64_t e) {
      forward_tiles(plan, x.data_ptr<T>(), y.data_ptr<T>(), Wst.data(), out.data_ptr<T>(), n, dim1, dim2, dim_out,
                    zero_cols, b, e);
    });
  });
  return out;
}

template <typename T>
void backward_tiles(const Plan<T>& plan, const T* x, const T* y, const T* Wst, const T* grad, T* gx, T* gy, T* gWst,
                    std::mutex& lock, int64_t n, int64_t dim1, int64_t dim2, int64_t dim_out, bool need_x, bool need_y,
                    bool need_w, const std::vector<int64_t>& zero_x, int64_t begin, int64_t end) {
  std::vector<T> buf(kTile * (2 * plan.xt_width + 2 * plan.s_width + plan.r_width));
  T *Xt = buf.data(), *gXt = Xt + kTile * plan.xt_width, *S = gXt + kTile * plan.xt_width;
  T *gS = S + kTile * plan.s_width, *G = gS + kTile * plan.s_width;
  std::vector<T> gW_local(need_w ? plan.w_width : 0, T(0));
  int64_t max_m1 = 0;
  for (const XBlock& b : plan.xb) max_m1 = std::max(max_m1, b.m1);
  std::vector<T> V(dim2 * max_m1);  // V[j][u]: the terms of gy[j] before the sum over channels
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t e0 = tile * kTile, ne = std::min(kTile, n - e0);
    const T* xt = x + e0 * dim1;
    const T* yt = y + e0 * dim2;
    transpose_x(plan, xt, dim1, ne, Xt);
    if (need_w) build_s(plan, yt, dim2, Xt, ne, S);
    for (const Group& g : plan.g) {
      T* gg = G + g.r_off * ne;  // G_g[(e, k), w] = grad[e, o0 + w dk + k]
      for (int64_t e = 0; e < ne; ++e) {
        deinterleave(grad + (e0 + e) * dim_out + g.o0, g.dk, g.mo, gg + e * g.dk * g.mo, g.mo);
      }
      const int rows = int(ne * g.dk);
      if (need_w)  // gW_g += S_g^T @ G_g
        gemm('N', 'T', int(g.mo), int(g.ncols), rows, T(1), gg, int(g.mo), S + g.s_off * ne, int(g.ncols), T(1),
             gW_local.data() + g.w_off, int(g.mo));
      if (need_x || need_y)  // gS_g = G_g @ Wst_g^T
        gemm('T', 'N', int(g.ncols), rows, int(g.mo), T(1), Wst + g.w_off, int(g.mo), gg, int(g.mo), T(0),
             gS + g.s_off * ne, int(g.ncols));
    }
    if (!(need_x || need_y)) continue;
    std::fill(gXt, gXt + ne * plan.xt_width, T(0));
    for (int64_t e = 0; e < ne; ++e) {
      const T* ye = yt + e * dim2;
      const T* te = Xt + e * plan.xt_width;
      T* gte = gXt + e * plan.xt_width;
      if (need_y) std::fill(V.begin(), V.end(), T(0));
      for (const Run& run : plan.r) {
        const Path& p = plan.p[run.p];
        const XBlock& b = plan.xb[p.xb];
        const Group& g = plan.g[p.g];
        const T* s = gS + g.s_off * ne + (e * g.dk + run.k) * g.ncols + p.col0;
        const int64_t m1 = b.m1;
        for (int64_t z = run.b; z < run.e; ++z) {
          const int64_t i = plan.zi[z], j = plan.zj[z];
          const T c = plan.zc[z];
          const T* xi = te + b.t_off + i * m1;
          T* gxi = gte + b.t_off + i * m1;
          const T cy = c * ye[p.y0 + j];
          T* v = V.data() + (p.y0 + j) * max_m1;
#pragma omp simd
          for (int64_t u = 0; u < m1; ++u) {
            gxi[u] += cy * s[u];
            v[u] += c * xi[u] * s[u];
          }
        }
      }
      if (need_y) {
        T* gye = gy + (e0 + e) * dim2;
        for (int64_t j = 0; j < dim2; ++j) {
          const T* v = V.data() + j * max_m1;
          T sum = T(0);
#pragma omp simd reduction(+ : sum)
          for (int64_t u = 0; u < max_m1; ++u) sum += v[u];
          gye[j] = sum;
        }
      }
    }
    if (need_x) {
      for (int64_t e = 0; e < ne; ++e) {
        T* ge = gx + (e0 + e) * dim1;
        const T* gte = gXt + e * plan.xt_width;
        for (int64_t c : zero_x) ge[c] = T(0);
        for (const XBlock& b : plan.xb) interleave(gte + b.t_off, b.m1, b.d1, b.m1, ge + b.x0);
      }
    }
  }
  if (need_w) {
    std::lock_guard<std::mutex> guard(lock);
    for (int64_t c = 0; c < plan.w_width; ++c) gWst[c] += gW_local[c];
  }
}

std::vector<at::Tensor> tp_backward(const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& y_in,
                                    const at::Tensor& w_in, const at::Tensor& xblocks, const at::Tensor& groups,
                                    const at::Tensor& paths, const at::Tensor& runs, const at::Tensor& nz,
                                    const at::Tensor& coef, bool need_x, bool need_y, bool need_w) {
  check_inputs(x_in, y_in, w_in);
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous(), w = w_in.contiguous(), grad = grad_in.contiguous();
  const int64_t n = x.size(0), dim1 = x.size(1), dim2 = y.size(1), dim_out = grad.size(1);
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == n, "grad must have shape (N, dim_out)");
  at::Tensor gx = need_x ? at::empty_like(x) : at::zeros({0}, x.options());
  at::Tensor gy = need_y ? at::empty_like(y) : at::zeros({0}, y.options());
  at::Tensor gw = need_w ? at::zeros_like(w) : at::zeros({0}, w.options());
  if (n == 0) return {gx, gy, gw};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "tensor_product_uvw_backward", [&] {
    using T = scalar_t;
    const Plan<T> plan = read_plan<T>(xblocks, groups, paths, runs, nz, coef);
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (const XBlock& b : plan.xb) ranges.push_back({b.x0, b.m1 * b.d1});
    const std::vector<int64_t> zero_x = uncovered(dim1, ranges);
    std::vector<T> Wst, gWst(plan.w_width, T(0));
    stack_weights(plan, w.data_ptr<T>(), Wst);
    std::mutex lock;
    const int64_t tiles = (n + kTile - 1) / kTile;
    parallel_tiles(tiles, 2, [&](int64_t b, int64_t e) {
      backward_tiles(plan, x.data_ptr<T>(), y.data_ptr<T>(), Wst.data(), grad.data_ptr<T>(),
                     need_x ? gx.data_ptr<T>() : nullptr, need_y ? gy.data_ptr<T>() : nullptr, gWst.data(), lock, n,
                     dim1, dim2, dim_out, need_x, need_y, need_w, zero_x, b, e);
    });
    if (need_w) {
      T* gwp = gw.data_ptr<T>();
      for (const Path& p : plan.p) {
        const Group& g = plan.g[p.g];
        for (int64_t u = 0; u < plan.xb[p.xb].m1; ++u) {
          const T* src = gWst.data() + g.w_off + (p.col0 + u) * g.mo;
          T* dst = gwp + p.w_off + u * p.w_stride;
          for (int64_t c = 0; c < g.mo; ++c) dst[c] += src[c];
        }
      }
    }
  });
  return {gx, gy, gw};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(equiscale, m) {
  m.def("tensor_product_uvw(Tensor x, Tensor y, Tensor w, Tensor xblocks, Tensor groups, Tensor paths, Tensor runs, "
        "Tensor nz, Tensor coef, int dim_out) -> Tensor");
  m.def("tensor_product_uvw_backward(Tensor grad, Tensor x, Tensor y, Tensor w, Tensor xblocks, Tensor groups, "
        "Tensor paths, Tensor runs, Tensor nz, Tensor coef, bool need_x, bool need_y, bool need_w) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(equiscale, CPU, m) {
  m.impl("tensor_product_uvw", &tp_forward);
  m.impl("tensor_product_uvw_backward", &tp_backward);
}
