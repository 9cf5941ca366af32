// The fused message-passing step of a TFN/NequIP convolution, forward and backward.
//
//   out[n] = sum_{e : target(e) = n} TP(x[source(e)], Y[e], w[e])
//
// TP is a set of channelwise ("uvu") paths k = (input block mul x l1, edge harmonic l2, output
// mul x l3) with per-edge, per-channel weights:
//
//   out[n, k, u, c] += w[e, k, u] * sum_{a, b} C_k[a, b, c] x[source(e), k, u, a] Y[e, b]
//
// Public layout is e3nn's mul_ir (channel-major inside each block: index u * d + a). Inside, node
// rows are transposed to channel-last (a * mul + u) so that every inner loop runs over the
// channels with unit stride. Per edge and path the harmonics are first contracted with the sparse
// Clebsch-Gordan coefficients into a small dense matrix M[c][a] = sum_b C[a, b, c] Y[b]; the
// channel loops are then dense (d3 x d1 x mul multiply-adds). The coefficients are kept dense
// per path, (d2, d3 * d1), so that M is a few vectorised multiply-adds rather than a sparse loop.
//
// Nothing of size E x (paths x channels x dims) is ever stored: the forward pass walks the edges
// grouped by target (each thread owns its target rows, no atomics) and accumulates each node's
// row in a thread-local buffer; the backward pass walks them grouped by source, accumulating the
// gradient of each source row locally and writing the per-edge gradients of Y and w directly.
// Both groupings come from an O(E + N) counting sort done in every call.
//
// The channel-last copies: the backward reads each source row only while walking that source's
// edges, so it transposes the row there, once per node. Rows read through the other end of an
// edge (x[source] in the forward, the cotangent g[target] in the backward) are read once per
// edge, so they are transposed once into a fresh array first -- unless no node is the other end
// of two edges (o3.TensorProduct's rows, edge_index = (arange(n), arange(n))), where that copy
// would be a whole extra pass over the largest array: then each row is transposed when its edge
// is reached, into a thread-local buffer.
//
// Metadata (built once per layer in Python, equiscale.nn.points.fused):
//   paths     int64 (P, 8): in_offset, mul, d1, sh_offset, d2, mid_offset, d3, w_offset
//   in_blocks int64 (B, 3): offset, mul, d of every input block (for the layout transposes)
//   cg_index  int64 (P + 1 + 3 * nnz,): P + 1 path starts into the nnz list, then (a, b, c) triples
//   cg_value  float64 (nnz,): the coefficients
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <optional>
#include <cstring>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t MAXD = 15;  // largest irrep dimension the kernel takes (l <= 7)

struct Path {
  int64_t in_offset, mul, d1, sh_offset, d2, mid_offset, d3, w_offset;
};

template <typename scalar_t>
struct Plan {
  std::vector<Path> paths;
  std::vector<int64_t> dense_base;  // per path: where its (d2, d3 * d1) coefficients begin in dense
  std::vector<scalar_t> dense;      // C[a, b, c] at [b][c * d1 + a]
};

template <typename scalar_t>
Plan<scalar_t> make_plan(const at::Tensor& paths, const at::Tensor& cg_index, const at::Tensor& cg_value) {
  TORCH_CHECK(paths.dim() == 2 && paths.size(1) == 8 && paths.scalar_type() == at::kLong, "paths must be int64 (P, 8)");
  TORCH_CHECK(cg_value.scalar_type() == at::kDouble && cg_index.scalar_type() == at::kLong, "cg_index int64, cg_value float64");
  auto p = paths.contiguous();
  auto ci = cg_index.contiguous();
  auto cv = cg_value.contiguous();
  const int64_t num_paths = p.size(0);
  const int64_t nnz = cv.numel();
  TORCH_CHECK(ci.numel() == num_paths + 1 + 3 * nnz, "cg_index has the wrong length");
  Plan<scalar_t> plan;
  const int64_t* pp = p.data_ptr<int64_t>();
  const int64_t* starts = ci.data_ptr<int64_t>();
  const int64_t* triples = starts + num_paths + 1;
  const double* value = cv.data_ptr<double>();
  for (int64_t k = 0; k < num_paths; ++k) {
    const int64_t* r = pp + 8 * k;
    Path path{r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]};
    TORCH_CHECK(path.d1 >= 1 && path.d3 >= 1 && path.d1 <= MAXD && path.d3 <= MAXD, "irreps of l > 7 are not supported by the kernel");
    TORCH_CHECK(path.d2 >= 1, "empty edge irrep");
    plan.paths.push_back(path);
    const int64_t size = path.d1 * path.d3;
    plan.dense_base.push_back(static_cast<int64_t>(plan.dense.size()));
    plan.dense.resize(plan.dense.size() + path.d2 * size, scalar_t(0));
    scalar_t* dense = plan.dense.data() + plan.dense_base.back();
    TORCH_CHECK(starts[k] <= starts[k + 1] && starts[k + 1] <= nnz, "cg_index path starts out of range");
    for (int64_t i = starts[k]; i < starts[k + 1]; ++i) {
      const int64_t a = triples[3 * i], b = triples[3 * i + 1], c = triples[3 * i + 2];
      TORCH_CHECK(a >= 0 && a < path.d1 && b >= 0 && b < path.d2 && c >= 0 && c < path.d3, "cg_index out of range");
      dense[b * size + c * path.d1 + a] += static_cast<scalar_t>(value[i]);
    }
  }
  return plan;
}

// Edges grouped by key (target or source): order[offsets[n] .. offsets[n + 1]) are node n's edges.
void group_edges(const int64_t* key, int64_t num_edges, int64_t num_nodes, std::vector<int64_t>& offsets, std::vector<int64_t>& order) {
  offsets.assign(num_nodes + 1, 0);
  for (int64_t e = 0; e < num_edges; ++e) {
    const int64_t n = key[e];
    TORCH_CHECK(n >= 0 && n < num_nodes, "edge_index holds node ", n, ", outside 0..", num_nodes - 1);
    ++offsets[n + 1];
  }
  for (int64_t n = 0; n < num_nodes; ++n) offsets[n + 1] += offsets[n];
  order.resize(num_edges);
  std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
  for (int64_t e = 0; e < num_edges; ++e) order[next[key[e]]++] = e;
}

// mul_ir (u * d + a) -> channel-last (a * mul + u) for every block of a row, and back.
template <typename scalar_t>
void to_channel_last(const scalar_t* src, scalar_t* dst, const std::vector<Path>& blocks) {
  for (const Path& blk : blocks)
    for (int64_t u = 0; u < blk.mul; ++u)
      for (int64_t a = 0; a < blk.d1; ++a) dst[blk.in_offset + a * blk.mul + u] = src[blk.in_offset + u * blk.d1 + a];
}

template <typename scalar_t>
void from_channel_last(const scalar_t* src, scalar_t* dst, const std::vector<Path>& blocks) {
  for (const Path& blk : blocks)
    for (int64_t u = 0; u < blk.mul; ++u)
      for (int64_t a = 0; a < blk.d1; ++a) dst[blk.in_offset + u * blk.d1 + a] = src[blk.in_offset + a * blk.mul + u];
}

std::vector<Path> input_blocks(const at::Tensor& in_blocks) {
  TORCH_CHECK(in_blocks.dim() == 2 && in_blocks.size(1) == 3 && in_blocks.scalar_type() == at::kLong, "in_blocks must be int64 (B, 3)");
  auto t = in_blocks.contiguous();
  const int64_t* p = t.data_ptr<int64_t>();
  std::vector<Path> out;
  for (int64_t i = 0; i < t.size(0); ++i) out.push_back(Path{p[3 * i], p[3 * i + 1], p[3 * i + 2], 0, 0, 0, 0, 0});
  return out;
}

std::vector<Path> output_blocks(const std::vector<Path>& paths) {  // mid blocks as (offset, mul, d)
  std::vector<Path> out;
  for (const Path& p : paths) out.push_back(Path{p.mid_offset, p.mul, p.d3, 0, 0, 0, 0, 0});
  return out;
}

// All of a row's node data transposed to channel-last, in parallel over rows.
template <typename scalar_t>
at::Tensor transposed(const at::Tensor& rows, const std::vector<Path>& blocks) {
  auto out = at::empty_like(rows);
  const int64_t n = rows.size(0), dim = rows.size(1);
  const scalar_t* src = rows.data_ptr<scalar_t>();
  scalar_t* dst = out.data_ptr<scalar_t>();
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) to_channel_last(src + i * dim, dst + i * dim, blocks);
  });
  return out;
}

// True when no node is the key (source or target) of two edges: each row read through the key is
// then read once, and transposing it inside the edge loop costs no more than a copy beforehand.
bool each_once(const int64_t* key, int64_t num_edges, int64_t num_nodes) {
  if (num_edges > num_nodes) return false;
  std::vector<uint8_t> seen(num_nodes, 0);
  for (int64_t e = 0; e < num_edges; ++e) {
    const int64_t n = key[e];
    TORCH_CHECK(n >= 0 && n < num_nodes, "edge_index holds node ", n, ", outside 0..", num_nodes - 1);
    if (seen[n]) return false;
    seen[n] = 1;
  }
  return true;
}

struct Inputs {
  at::Tensor x, y, w, source, target;
  int64_t num_nodes, num_edges;
};

Inputs check_inputs(const at::Tensor& x, const at::Tensor& edge_attr, const at::Tensor& weight, const at::Tensor& edge_index, int64_t num_nodes) {
  TORCH_CHECK(x.dim() == 2 && edge_attr.dim() == 2 && weight.dim() == 2, "x, edge_attr and weight must be 2-D");
  TORCH_CHECK(edge_index.dim() == 2 && edge_index.size(0) == 2 && edge_index.scalar_type() == at::kLong, "edge_index must be int64 (2, E)");
  TORCH_CHECK(x.scalar_type() == edge_attr.scalar_type() && x.scalar_type() == weight.scalar_type(), "x, edge_attr and weight must share a dtype");
  TORCH_CHECK(x.size(0) == num_nodes, "x must have num_nodes rows");
  const int64_t num_edges = edge_index.size(1);
  TORCH_CHECK(edge_attr.size(0) == num_edges && weight.size(0) == num_edges, "edge_attr and weight need one row per edge");
  auto index = edge_index.contiguous();
  return Inputs{x.contiguous(), edge_attr.contiguous(), weight.contiguous(), index[0], index[1], num_nodes, num_edges};
}

// Channels are processed in chunks of V (32 bytes) as GCC vector-extension values, which compile
// to whatever vector width the function is built for (one AVX2 register, two SSE2 ones); the
// channels left over (mul not a multiple of V) take a scalar loop. The per-path functions are
// templates on the block sizes d1, d3 (1, 3, 5: l <= 2 fully unrolled; 0: any size up to MAXD).

template <typename scalar_t>
constexpr int64_t chunk() { return 32 / sizeof(scalar_t); }

template <typename scalar_t>
struct Vec {
  typedef scalar_t type __attribute__((vector_size(32)));
};

template <typename scalar_t>
inline __attribute__((always_inline)) typename Vec<scalar_t>::type load(const scalar_t* p) {
  typename Vec<scalar_t>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename scalar_t>
inline __attribute__((always_inline)) void store(scalar_t* p, const typename Vec<scalar_t>::type& v) {
  std::memcpy(p, &v, sizeof(v));
}

// One edge, one path: acc[c][u] += w[u] * sum_a M[c][a] x[a][u].
// M[c * d1 + a] = sum_b C[a, b, c] Y[b], from the dense coefficients [b][c * d1 + a].
template <typename scalar_t, int64_t D1, int64_t D3>
inline __attribute__((always_inline)) void couple_dense(const scalar_t* __restrict cg, const scalar_t* __restrict y, int64_t d2,
                                                        scalar_t* __restrict m, int64_t rd1, int64_t rd3) {
  const int64_t size = (D1 ? D1 : rd1) * (D3 ? D3 : rd3);
  for (int64_t s = 0; s < size; ++s) m[s] = cg[s] * y[0];
  for (int64_t b = 1; b < d2; ++b)
    for (int64_t s = 0; s < size; ++s) m[s] += cg[b * size + s] * y[b];
}

template <typename scalar_t, int64_t D1, int64_t D3>
inline __attribute__((always_inline)) void path_forward(const scalar_t* __restrict cg, const scalar_t* __restrict y, int64_t d2,
                                                        const scalar_t* __restrict x, const scalar_t* __restrict w,
                                                        scalar_t* __restrict acc, int64_t mul, int64_t rd1, int64_t rd3) {
  constexpr int64_t V = chunk<scalar_t>();
  constexpr int64_t N1 = D1 ? D1 : MAXD, N3 = D3 ? D3 : MAXD;
  using vec = typename Vec<scalar_t>::type;
  const int64_t d1 = D1 ? D1 : rd1, d3 = D3 ? D3 : rd3;
  scalar_t m[N1 * N3];
  couple_dense<scalar_t, D1, D3>(cg, y, d2, m, rd1, rd3);
  int64_t u0 = 0;
  for (; u0 + V <= mul; u0 += V) {
    const vec wv = load(w + u0);
    for (int64_t c = 0; c < d3; ++c) {
      vec t = m[c * d1] * load(x + u0);
      for (int64_t a = 1; a < d1; ++a) t += m[c * d1 + a] * load(x + a * mul + u0);
      store(acc + c * mul + u0, load(acc + c * mul + u0) + wv * t);
    }
  }
  for (int64_t u = u0; u < mul; ++u)
    for (int64_t c = 0; c < d3; ++c) {
      scalar_t t = 0;
      for (int64_t a = 0; a < d1; ++a) t += m[c * d1 + a] * x[a * mul + u];
      acc[c * mul + u] += w[u] * t;
    }
}

// One edge, one path, the three gradients (each where asked):
//   accx[a][u] += sum_c M[c][a] w[u] g[c][u]            (x, summed over the source's edges)
//   gw[u]      += sum_c g[c][u] sum_a M[c][a] x[a][u]    (w)
//   prod[c][a]  = sum_u x[a][u] w[u] g[c][u]             (Y, contracted with C by the caller)
template <typename scalar_t, int64_t D1, int64_t D3>
inline __attribute__((always_inline)) void path_backward(const scalar_t* __restrict cg, const scalar_t* __restrict y, int64_t d2,
                                                         scalar_t* __restrict gy, const scalar_t* __restrict x,
                                                         const scalar_t* __restrict g, const scalar_t* __restrict w,
                                                         scalar_t* __restrict accx, scalar_t* __restrict gw,
                                                         int64_t mul, int64_t rd1, int64_t rd3, bool need_x, bool need_y, bool need_w) {
  constexpr int64_t V = chunk<scalar_t>();
  constexpr int64_t N1 = D1 ? D1 : MAXD, N3 = D3 ? D3 : MAXD;
  using vec = typename Vec<scalar_t>::type;
  const int64_t d1 = D1 ? D1 : rd1, d3 = D3 ? D3 : rd3;
  scalar_t m[N1 * N3], prod[N1 * N3];
  if (need_x || need_w) couple_dense<scalar_t, D1, D3>(cg, y, d2, m, rd1, rd3);
  vec pv[N1 * N3];
  if (need_y)
    for (int64_t i = 0; i < d1 * d3; ++i) pv[i] = vec{};
  int64_t u0 = 0;
  for (; u0 + V <= mul; u0 += V) {
    const vec wv = load(w + u0);
    vec wg[N3];
    for (int64_t c = 0; c < d3; ++c) wg[c] = wv * load(g + c * mul + u0);
    if (need_x)
      for (int64_t a = 0; a < d1; ++a) {
        vec t = m[a] * wg[0];
        for (int64_t c = 1; c < d3; ++c) t += m[c * d1 + a] * wg[c];
        store(accx + a * mul + u0, load(accx + a * mul + u0) + t);
      }
    if (need_w) {
      vec s = vec{};
      for (int64_t c = 0; c < d3; ++c) {
        vec t = m[c * d1] * load(x + u0);
        for (int64_t a = 1; a < d1; ++a) t += m[c * d1 + a] * load(x + a * mul + u0);
        s += load(g + c * mul + u0) * t;
      }
      store(gw + u0, load(gw + u0) + s);
    }
    if (need_y)
      for (int64_t c = 0; c < d3; ++c)
        for (int64_t a = 0; a < d1; ++a) pv[c * d1 + a] += load(x + a * mul + u0) * wg[c];
  }
  if (need_y)
    for (int64_t i = 0; i < d1 * d3; ++i) {
      scalar_t s = 0;
      for (int64_t j = 0; j < V; ++j) s += pv[i][j];
      prod[i] = s;
    }
  for (int64_t u = u0; u < mul; ++u) {  // channels left over, one at a time
    scalar_t wg[N3];
    for (int64_t c = 0; c < d3; ++c) wg[c] = w[u] * g[c * mul + u];
    if (need_x)
      for (int64_t a = 0; a < d1; ++a) {
        scalar_t t = 0;
        for (int64_t c = 0; c < d3; ++c) t += m[c * d1 + a] * wg[c];
        accx[a * mul + u] += t;
      }
    if (need_w) {
      scalar_t s = 0;
      for (int64_t c = 0; c < d3; ++c) {
        scalar_t t = 0;
        for (int64_t a = 0; a < d1; ++a) t += m[c * d1 + a] * x[a * mul + u];
        s += g[c * mul + u] * t;
      }
      gw[u] += s;
    }
    if (need_y)
      for (int64_t c = 0; c < d3; ++c)
        for (int64_t a = 0; a < d1; ++a) prod[c * d1 + a] += x[a * mul + u] * wg[c];
  }
  if (need_y)  // gY[b] += sum_{a,c} C[a,b,c] prod[c][a]
    for (int64_t b = 0; b < d2; ++b) {
      scalar_t sum = 0;
      for (int64_t s = 0; s < d1 * d3; ++s) sum += cg[b * d1 * d3 + s] * prod[s];
      gy[b] += sum;
    }
}

// CALL(D1, D3) with the sizes as compile-time constants where they are 1, 3 or 5.
#define EQUISCALE_SIZES(d1, d3, CALL)      \
  switch ((d1) * 16 + (d3)) {               \
    case 1 * 16 + 1: CALL(1, 1); break;     \
    case 1 * 16 + 3: CALL(1, 3); break;     \
    case 1 * 16 + 5: CALL(1, 5); break;     \
    case 3 * 16 + 1: CALL(3, 1); break;     \
    case 3 * 16 + 3: CALL(3, 3); break;     \
    case 3 * 16 + 5: CALL(3, 5); break;     \
    case 5 * 16 + 1: CALL(5, 1); break;     \
    case 5 * 16 + 3: CALL(5, 3); break;     \
    case 5 * 16 + 5: CALL(5, 5); break;     \
    default: CALL(0, 0);                    \
  }

// One (x, Y, w) triple of a pass: the forward pass sums the messages of every term, the backward
// pass the gradients each term asks for (the double backward uses three terms, see the op).
template <typename scalar_t>
struct Term {
  const scalar_t* X;  // node features: mul_ir in the backward and where x_rows, else a channel-last copy
  const scalar_t* Y;
  const scalar_t* W;
  bool need_x, need_y, need_w;
};

template <typename scalar_t>
struct Args {
  const Plan<scalar_t>* plan;
  const std::vector<Path>* blocks;  // input blocks, for the final transpose of the gradient of x
  const std::vector<Path>* mids;    // output blocks, for the final transpose of the forward output
  const int64_t* offsets;
  const int64_t* order;
  const int64_t* other;             // the other end of each edge: source (forward) or target (backward)
  Term<scalar_t> terms[3];
  int num_terms;
  const scalar_t* G;                // output cotangent (backward): channel-last, or mul_ir if g_rows
  bool x_rows;                      // forward: X given in mul_ir, transposed per edge inside the loop
  bool g_rows;                      // G given in mul_ir, transposed per edge inside the loop
  scalar_t* out;                    // forward output or gradient of x
  scalar_t* GY;
  scalar_t* GW;
  int64_t dim_in, dim_sh, dim_w, dim_out;
};

template <typename scalar_t>
inline __attribute__((always_inline)) void forward_rows(const Args<scalar_t>& A, int64_t begin, int64_t end) {
  const Plan<scalar_t>& plan = *A.plan;
  std::vector<scalar_t> acc(A.dim_out);
  std::vector<scalar_t> xrow(A.x_rows ? A.dim_in : 0);
  for (int64_t n = begin; n < end; ++n) {
    std::fill(acc.begin(), acc.end(), scalar_t(0));
    for (int64_t j = A.offsets[n]; j < A.offsets[n + 1]; ++j) {
      const int64_t e = A.order[j];
      for (int t = 0; t < A.num_terms; ++t) {
        const Term<scalar_t>& T = A.terms[t];
        const scalar_t* x = T.X + A.other[e] * A.dim_in;
        if (A.x_rows) {
          to_channel_last(x, xrow.data(), *A.blocks);
          x = xrow.data();
        }
        const scalar_t* y = T.Y + e * A.dim_sh;
        const scalar_t* w = T.W + e * A.dim_w;
        for (size_t k = 0; k < plan.paths.size(); ++k) {
          const Path& p = plan.paths[k];
          const scalar_t* cg = plan.dense.data() + plan.dense_base[k];
#define EQUISCALE_FORWARD(D1, D3)                                                                                     \
  path_forward<scalar_t, D1, D3>(cg, y + p.sh_offset, p.d2, x + p.in_offset, w + p.w_offset, acc.data() + p.mid_offset, \
                                 p.mul, p.d1, p.d3)
          EQUISCALE_SIZES(p.d1, p.d3, EQUISCALE_FORWARD)
#undef EQUISCALE_FORWARD
        }
      }
    }
    from_channel_last(acc.data(), A.out + n * A.dim_out, *A.mids);
  }
}

template <typename scalar_t>
inline __attribute__((always_inline)) void backward_rows(const Args<scalar_t>& A, int64_t begin, int64_t end) {
  const Plan<scalar_t>& plan = *A.plan;
  bool any_x = false;
  for (int t = 0; t < A.num_terms; ++t) any_x = any_x || A.terms[t].need_x;
  std::vector<scalar_t> acc(A.dim_in);
  std::vector<scalar_t> xrows(A.num_terms * A.dim_in);  // this source's row of every term's X, channel-last
  std::vector<scalar_t> grow(A.g_rows ? A.dim_out : 0);
  for (int64_t n = begin; n < end; ++n) {
    if (A.offsets[n] == A.offsets[n + 1]) {  // no edges: a zero gradient
      if (any_x) std::fill(A.out + n * A.dim_in, A.out + (n + 1) * A.dim_in, scalar_t(0));
      continue;
    }
    if (any_x) std::fill(acc.begin(), acc.end(), scalar_t(0));
    for (int t = 0; t < A.num_terms; ++t) to_channel_last(A.terms[t].X + n * A.dim_in, xrows.data() + t * A.dim_in, *A.blocks);
    for (int64_t j = A.offsets[n]; j < A.offsets[n + 1]; ++j) {
      const int64_t e = A.order[j];
      const scalar_t* g = A.G + A.other[e] * A.dim_out;
      if (A.g_rows) {
        to_channel_last(g, grow.data(), *A.mids);
        g = grow.data();
      }
      for (int t = 0; t < A.num_terms; ++t) {
        const Term<scalar_t>& T = A.terms[t];
        const bool need_x = T.need_x, need_y = T.need_y, need_w = T.need_w;
        const scalar_t* x = xrows.data() + t * A.dim_in;
        const scalar_t* y = T.Y + e * A.dim_sh;
        const scalar_t* w = T.W + e * A.dim_w;
        for (size_t k = 0; k < plan.paths.size(); ++k) {
          const Path& p = plan.paths[k];
          const scalar_t* cg = plan.dense.data() + plan.dense_base[k];
          scalar_t* gw = need_w ? A.GW + e * A.dim_w + p.w_offset : nullptr;
          scalar_t* gy = need_y ? A.GY + e * A.dim_sh + p.sh_offset : nullptr;
#define EQUISCALE_BACKWARD(D1, D3)                                                                                     \
  path_backward<scalar_t, D1, D3>(cg, y + p.sh_offset, p.d2, gy, x + p.in_offset, g + p.mid_offset, w + p.w_offset,  \
                                  acc.data() + p.in_offset, gw, p.mul, p.d1, p.d3, need_x, need_y, need_w)
          EQUISCALE_SIZES(p.d1, p.d3, EQUISCALE_BACKWARD)
#undef EQUISCALE_BACKWARD
        }
      }
    }
    if (any_x) from_channel_last(acc.data(), A.out + n * A.dim_in, *A.blocks);
  }
}

// The row loops compiled twice: for AVX2 + FMA (chosen at run time when the CPU has them) and
// for the portable baseline the library is built with.
template <typename scalar_t>
using Rows = void (*)(const Args<scalar_t>&, int64_t, int64_t);

template <typename scalar_t>
__attribute__((target("avx2,fma"))) void forward_avx2(const Args<scalar_t>& A, int64_t begin, int64_t end) { forward_rows(A, begin, end); }
template <typename scalar_t>
void forward_base(const Args<scalar_t>& A, int64_t begin, int64_t end) { forward_rows(A, begin, end); }
template <typename scalar_t>
__attribute__((target("avx2,fma"))) void backward_avx2(const Args<scalar_t>& A, int64_t begin, int64_t end) { backward_rows(A, begin, end); }
template <typename scalar_t>
void backward_base(const Args<scalar_t>& A, int64_t begin, int64_t end) { backward_rows(A, begin, end); }

bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

// Grain: about four chunks of rows per thread, at least 8 rows each.
int64_t grain(int64_t rows) { return std::max<int64_t>(8, rows / (4 * std::max<int64_t>(1, at::get_num_threads()))); }

// Forward pass: sum over the terms (x_t, Y_t, w_t) of the messages, edges grouped by target.
template <typename scalar_t>
void forward_pass(const Inputs& in, const Plan<scalar_t>& plan, const std::vector<Path>& blocks,
                  const std::vector<std::array<at::Tensor, 3>>& terms, at::Tensor& out) {
  std::vector<int64_t> offsets, order;
  group_edges(in.target.data_ptr<int64_t>(), in.num_edges, in.num_nodes, offsets, order);
  const std::vector<Path> mids = output_blocks(plan.paths);
  std::vector<at::Tensor> keep;  // channel-last copies of the node features
  Args<scalar_t> A{};
  A.plan = &plan, A.blocks = &blocks, A.mids = &mids, A.offsets = offsets.data(), A.order = order.data();
  A.other = in.source.data_ptr<int64_t>(), A.out = out.data_ptr<scalar_t>();
  A.dim_in = in.x.size(1), A.dim_sh = in.y.size(1), A.dim_w = in.w.size(1), A.dim_out = out.size(1);
  A.x_rows = each_once(in.source.data_ptr<int64_t>(), in.num_edges, in.num_nodes);
  for (const auto& term : terms) {
    if (!A.x_rows) keep.push_back(transposed<scalar_t>(term[0], blocks));
    const scalar_t* X = A.x_rows ? term[0].data_ptr<scalar_t>() : keep.back().data_ptr<scalar_t>();
    A.terms[A.num_terms++] = Term<scalar_t>{X, term[1].data_ptr<scalar_t>(),
                                            term[2].data_ptr<scalar_t>(), false, false, false};
  }
  Rows<scalar_t> rows = has_avx2() ? forward_avx2<scalar_t> : forward_base<scalar_t>;
  at::parallel_for(0, in.num_nodes, grain(in.num_nodes), [&](int64_t begin, int64_t end) { rows(A, begin, end); });
}

// Backward pass: the gradients each term (x_t, Y_t, w_t, needs) asks for, summed, edges grouped by source.
template <typename scalar_t>
void backward_pass(const Inputs& in, const at::Tensor& grad_out, const Plan<scalar_t>& plan, const std::vector<Path>& blocks,
                   const std::vector<std::array<at::Tensor, 3>>& terms, const std::vector<std::array<bool, 3>>& needs,
                   at::Tensor& gx, at::Tensor& gy, at::Tensor& gw) {
  std::vector<int64_t> offsets, order;
  group_edges(in.source.data_ptr<int64_t>(), in.num_edges, in.num_nodes, offsets, order);
  const std::vector<Path> mids = output_blocks(plan.paths);
  Args<scalar_t> A{};
  A.g_rows = each_once(in.target.data_ptr<int64_t>(), in.num_edges, in.num_nodes);
  at::Tensor gt = A.g_rows ? grad_out : transposed<scalar_t>(grad_out, mids);
  A.plan = &plan, A.blocks = &blocks, A.mids = &mids, A.offsets = offsets.data(), A.order = order.data();
  A.other = in.target.data_ptr<int64_t>(), A.G = gt.data_ptr<scalar_t>();
  A.out = gx.numel() ? gx.data_ptr<scalar_t>() : nullptr;
  A.GY = gy.numel() ? gy.data_ptr<scalar_t>() : nullptr;
  A.GW = gw.numel() ? gw.data_ptr<scalar_t>() : nullptr;
  A.dim_in = in.x.size(1), A.dim_sh = in.y.size(1), A.dim_w = in.w.size(1), A.dim_out = grad_out.size(1);
  for (size_t t = 0; t < terms.size(); ++t) {
    if (!(needs[t][0] || needs[t][1] || needs[t][2])) continue;
    A.terms[A.num_terms++] = Term<scalar_t>{terms[t][0].data_ptr<scalar_t>(), terms[t][1].data_ptr<scalar_t>(),
                                            terms[t][2].data_ptr<scalar_t>(), needs[t][0], needs[t][1], needs[t][2]};
  }
  if (A.num_terms == 0) return;
  Rows<scalar_t> rows = has_avx2() ? backward_avx2<scalar_t> : backward_base<scalar_t>;
  at::parallel_for(0, in.num_nodes, grain(in.num_nodes), [&](int64_t begin, int64_t end) { rows(A, begin, end); });
}

at::Tensor uvu_scatter_cpu(const at::Tensor& x, const at::Tensor& edge_attr, const at::Tensor& weight, const at::Tensor& edge_index,
                           int64_t num_nodes, int64_t dim_out, const at::Tensor& paths, const at::Tensor& in_blocks,
                           const at::Tensor& cg_index, const at::Tensor& cg_value) {
  Inputs in = check_inputs(x, edge_attr, weight, edge_index, num_nodes);
  auto out = at::empty({num_nodes, dim_out}, in.x.options());
  const std::vector<Path> blocks = input_blocks(in_blocks);
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "uvu_scatter", [&] {
    Plan<scalar_t> plan = make_plan<scalar_t>(paths, cg_index, cg_value);
    forward_pass<scalar_t>(in, plan, blocks, {{in.x, in.y, in.w}}, out);
  });
  return out;
}

at::Tensor checked_grad(const at::Tensor& g, int64_t num_nodes, const at::Tensor& x) {
  auto out = g.contiguous();
  TORCH_CHECK(out.dim() == 2 && out.size(0) == num_nodes && out.scalar_type() == x.scalar_type(),
              "grad_out must be (num_nodes, dim_out) of x's dtype");
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> uvu_scatter_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& edge_attr, const at::Tensor& weight, const at::Tensor& edge_index,
    int64_t num_nodes, const at::Tensor& paths, const at::Tensor& in_blocks, const at::Tensor& cg_index, const at::Tensor& cg_value,
    bool need_x, bool need_attr, bool need_weight) {
  Inputs in = check_inputs(x, edge_attr, weight, edge_index, num_nodes);
  auto g = checked_grad(grad_out, num_nodes, in.x);
  auto empty = at::empty({0}, in.x.options());
  at::Tensor gx = need_x ? at::empty_like(in.x) : empty;
  at::Tensor gy = need_attr ? at::zeros_like(in.y) : empty;
  at::Tensor gw = need_weight ? at::zeros_like(in.w) : empty;
  if (!(need_x || need_attr || need_weight)) return {gx, gy, gw};
  const std::vector<Path> blocks = input_blocks(in_blocks);
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "uvu_scatter_backward", [&] {
    Plan<scalar_t> plan = make_plan<scalar_t>(paths, cg_index, cg_value);
    backward_pass<scalar_t>(in, g, plan, blocks, {{in.x, in.y, in.w}}, {{need_x, need_attr, need_weight}}, gx, gy, gw);
  });
  return {gx, gy, gw};
}

// The double backward: cotangents (Gx, GY, Gw) of the three gradients -> gradients to (g, x, Y, w).
// With F(x, Y, w, g) = <g, uvu_scatter(x, Y, w)> multilinear, gx = dF/dx etc., so
//   dg = uvu_scatter(Gx, Y, w) + uvu_scatter(x, GY, w) + uvu_scatter(x, Y, Gw)   (one pass by target)
//   dx = grad_x(GY, w, g) + grad_x(Y, Gw, g)
//   dY = grad_Y(Gx, w, g) + grad_Y(x, Gw, g)
//   dw = grad_w(Gx, Y, g) + grad_w(x, GY, g)                                      (one pass by source)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> uvu_scatter_double_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& edge_attr, const at::Tensor& weight,
    const std::optional<at::Tensor>& grad_x, const std::optional<at::Tensor>& grad_attr, const std::optional<at::Tensor>& grad_weight,
    const at::Tensor& edge_index, int64_t num_nodes, const at::Tensor& paths, const at::Tensor& in_blocks, const at::Tensor& cg_index,
    const at::Tensor& cg_value, bool need_grad_out, bool need_x, bool need_attr, bool need_weight) {
  Inputs in = check_inputs(x, edge_attr, weight, edge_index, num_nodes);
  auto g = checked_grad(grad_out, num_nodes, in.x);
  auto like = [&](const std::optional<at::Tensor>& t, const at::Tensor& ref) -> at::Tensor {
    if (!t.has_value() || !t->defined()) return at::Tensor();
    TORCH_CHECK(t->sizes() == ref.sizes() && t->scalar_type() == ref.scalar_type(), "a cotangent has the wrong shape or dtype");
    return t->contiguous();
  };
  const at::Tensor Gx = like(grad_x, in.x), Gy = like(grad_attr, in.y), Gw = like(grad_weight, in.w);
  auto empty = at::empty({0}, in.x.options());
  at::Tensor dg = need_grad_out ? at::zeros({num_nodes, g.size(1)}, in.x.options()) : empty;
  at::Tensor dx = need_x ? at::zeros_like(in.x) : empty;
  at::Tensor dy = need_attr ? at::zeros_like(in.y) : empty;
  at::Tensor dw = need_weight ? at::zeros_like(in.w) : empty;
  const std::vector<Path> blocks = input_blocks(in_blocks);
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "uvu_scatter_double_backward", [&] {
    Plan<scalar_t> plan = make_plan<scalar_t>(paths, cg_index, cg_value);
    if (need_grad_out) {
      std::vector<std::array<at::Tensor, 3>> terms;
      if (Gx.defined()) terms.push_back({Gx, in.y, in.w});
      if (Gy.defined()) terms.push_back({in.x, Gy, in.w});
      if (Gw.defined()) terms.push_back({in.x, in.y, Gw});
      if (!terms.empty()) forward_pass<scalar_t>(in, plan, blocks, terms, dg);
    }
    std::vector<std::array<at::Tensor, 3>> terms;
    std::vector<std::array<bool, 3>> needs;
    if (Gx.defined()) terms.push_back({Gx, in.y, in.w}), needs.push_back({false, need_attr, need_weight});
    if (Gy.defined()) terms.push_back({in.x, Gy, in.w}), needs.push_back({need_x, false, need_weight});
    if (Gw.defined()) terms.push_back({in.x, in.y, Gw}), needs.push_back({need_x, need_attr, false});
    if (!terms.empty()) backward_pass<scalar_t>(in, g, plan, blocks, terms, needs, dx, dy, dw);
  });
  return {dg, dx, dy, dw};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(equiscale, m) {
  m.def("uvu_scatter(Tensor x, Tensor edge_attr, Tensor weight, Tensor edge_index, SymInt num_nodes, int dim_out, "
        "Tensor paths, Tensor in_blocks, Tensor cg_index, Tensor cg_value) -> Tensor");
  m.def("uvu_scatter_backward(Tensor grad_out, Tensor x, Tensor edge_attr, Tensor weight, Tensor edge_index, SymInt num_nodes, "
        "Tensor paths, Tensor in_blocks, Tensor cg_index, Tensor cg_value, bool need_x, bool need_attr, bool need_weight) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("uvu_scatter_double_backward(Tensor grad_out, Tensor x, Tensor edge_attr, Tensor weight, Tensor? grad_x, "
        "Tensor? grad_attr, Tensor? grad_weight, Tensor edge_index, SymInt num_nodes, Tensor paths, Tensor in_blocks, "
        "Tensor cg_index, Tensor cg_value, bool need_grad_out, bool need_x, bool need_attr, bool need_weight) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(equiscale, CPU, m) {
  m.impl("uvu_scatter", &uvu_scatter_cpu);
  m.impl("uvu_scatter_backward", &uvu_scatter_backward_cpu);
  m.impl("uvu_scatter_double_backward", &uvu_scatter_double_backward_cpu);
}
