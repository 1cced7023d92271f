// Local self-attention's weights on raw NHWC buffers, forward and backward,
// free of TensorFlow (involution_ops.cc wraps them as ops):
//
//   z[t, g]       = sum_d q[g*D + d] * (k[neighbour t, g*D + d] + r[t, d]) / sqrt(D)
//   weights[t, g] = softmax over the taps t inside the image of z[., g]
//                   (0 for taps outside it)
//
// with t = u*K + v the taps of a K x K neighbourhood (stride 1, "SAME"
// padding), G heads of D channels, and r the (K*K, D) position embedding the
// heads share. A factored embedding (SoftmaxGeometry::factored) is given as
// (K, D) instead, e[., .]: r[u*K + v, d] = e[u, d] for the first D/2
// channels (a row offset's) and e[v, d] for the rest (a column offset's), as
// local attention's layer builds it. Its forward position term then costs
// K*D multiply-adds a position and head instead of K*K*D; the gradient
// works on every tap's embedding and folds its sums into (K, D) at the end.
//
// The content logits q . k are the involution kernel gradient's sums
// (queries as its upstream); forward, the rest runs as that kernel's
// epilogue on each block of output columns (SoftmaxEpilogue), each
// column in a vector lane, so the logits never reach memory. The gradient,
// for upstream dw (SoftmaxGradRows), one pass per position:
//
//   dz[t, g]  = w[t, g] * (dw[t, g] - sum_t' w[t', g] * dw[t', g]) / sqrt(D)
//   dcontent  = dz  (then the logits' gradients: involution kernels)
//   dq[g*D+d] = sum_t dz[t, g] * r[t, d]
//   dr[t, d]  = sum over positions and heads of dz[t, g] * q[g*D + d]
//
// The gradient works on each position's values transposed to one row of
// taps per head, padded to whole vectors. TensorFlow's kernels (or XLA) took
// several passes over the (B, H, W, K*K, G) logits for all this and a
// transpose for the softmax over a middle axis: 3x the attention's two
// involution kernels together, measured on the EPYC.

#ifndef INVBENCH_ATTENTION_KERNELS_H_
#define INVBENCH_ATTENTION_KERNELS_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "involution_kernels.h"

namespace invbench {

struct SoftmaxGeometry {
  int64_t batch, height, width, kernel_size, heads, depth;
  bool factored = false;  // the embedding is (K, D): rows, then columns (see above)
  int64_t taps() const { return kernel_size * kernel_size; }
  int64_t row_channels() const { return depth / 2; }
  // Values of the embedding (and of its gradient).
  int64_t embedding_size() const { return (factored ? kernel_size : taps()) * depth; }
  int64_t channels() const { return heads * depth; }
  int64_t positions() const { return batch * height * width; }
};

// A logit far below any real one: its exponential is exactly 0.
template <typename A>
constexpr A kMaskedLogit = A(-1e30);

// exp(x) for a vector of floats x <= 0: Cephes' expf (range reduction by
// ln 2 in two parts, a degree-5 polynomial, the exponent put in by bits),
// within 2 ulp of std::exp; 0 below -87.3, where float underflows. Scalar
// std::exp over the B*H*W*K*K*G weights took longer than everything else.
template <int64_t Bytes>
inline typename Vector<float, Bytes>::type ExpNonPositive(typename Vector<float, Bytes>::type x) {
  using V = typename Vector<float, Bytes>::type;
  using I = typename Vector<int32_t, Bytes>::type;
  constexpr float kLowest = -87.33654f;
  const auto underflows = x < kLowest;
  x = underflows ? V{} + kLowest : x;
  // n = round(x / ln 2), by adding and taking away 1.5 * 2^23.
  const V shifted = x * 1.44269504088896341f + 12582912.0f;
  const V n = shifted - 12582912.0f;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const V r2 = r * r;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const I exponent = (__builtin_convertvector(n, I) + 127) << 23;
  V scale;
  std::memcpy(&scale, &exponent, sizeof(scale));
  const V result = p * scale;
  return underflows ? V{} : result;
}

// The taps of a position padded to whole vectors of A: every per-head row
// of the gradient's transposed values holds this many (zero in the padding).
template <typename A>
inline int64_t PaddedTaps(const SoftmaxGeometry& g) {
  return RoundUp(g.taps(), Vector<A>::kLanes);
}

// What every position reads of the embedding: transposed, r_t[d * padded + t]
// = r[t, d], zero in the padding, widened to A.
template <typename A, typename T>
std::vector<A> TransposedEmbedding(const SoftmaxGeometry& g, const T* relative) {
  const int64_t padded = PaddedTaps<A>(g);
  std::vector<A> transposed(g.depth * padded, A(0));
  for (int64_t t = 0; t < g.taps(); ++t) {
    for (int64_t d = 0; d < g.depth; ++d) {
      transposed[d * padded + t] = Widen<A>(relative[t * g.depth + d]);
    }
  }
  return transposed;
}

// Where tap t's gradient of channel d goes in a factored embedding's (K, D).
inline int64_t FactoredIndex(const SoftmaxGeometry& g, int64_t t, int64_t d) {
  const int64_t k = g.kernel_size;
  return (d < g.row_channels() ? t / k : t % k) * g.depth + d;
}

// Tap u*K + v's embedding, (K*K, D), from a factored one, (K, D).
template <typename T>
std::vector<T> FullEmbedding(const SoftmaxGeometry& g, const T* factored) {
  const int64_t depth = g.depth;
  std::vector<T> full(g.taps() * depth);
  for (int64_t t = 0; t < g.taps(); ++t) {
    for (int64_t d = 0; d < depth; ++d) {
      full[t * depth + d] = factored[FactoredIndex(g, t, d)];
    }
  }
  return full;
}

// What the gradient works out once per call, for all its shares: the padded
// row of taps, the transposed embedding and the logits' scale 1/sqrt(D).
template <typename A>
struct SoftmaxPlan {
  template <typename T>
  SoftmaxPlan(const SoftmaxGeometry& g, const T* relative)
      : padded(PaddedTaps<A>(g)),
        vectors(padded / Vector<A>::kLanes),
        embedding(g.factored ? TransposedEmbedding<A>(g, FullEmbedding(g, relative).data())
                             : TransposedEmbedding<A>(g, relative)),
        scale(A(1) / std::sqrt(A(g.depth))) {}

  int64_t padded, vectors;
  std::vector<A> embedding;  // every tap's, transposed (TransposedEmbedding)
  A scale;
};

// rows[h * padded + t] = source[t * heads + h], widened; zero in the padding.
// G is the head count when a compile-time constant (0: g.heads), so that
// these transposes unroll.
template <int64_t G, typename A, typename T>
inline void LoadHeadRows(const SoftmaxGeometry& g, const T* source, A* rows, int64_t padded) {
  const int64_t heads = G ? G : g.heads, taps = g.taps();
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t h = 0; h < heads; ++h) rows[h * padded + t] = Widen<A>(source[t * heads + h]);
  }
  for (int64_t h = 0; h < heads; ++h) {
    std::fill(rows + h * padded + taps, rows + (h + 1) * padded, A(0));
  }
}

template <int64_t G, typename A, typename T>
inline void StoreHeadRows(const SoftmaxGeometry& g, const A* rows, int64_t padded, T* target) {
  const int64_t heads = G ? G : g.heads;
  for (int64_t t = 0; t < g.taps(); ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      target[t * heads + h] = static_cast<T>(rows[h * padded + t]);
    }
  }
}

// Calls body(std::integral_constant<int64_t, G>()) with the head count as a
// compile-time constant for the common counts (0: known at run time).
template <typename Body>
void WithHeads(int64_t heads, Body body) {
  WithConstant<1, 2, 3, 4, 5, 8>(heads, body);
}

template <typename A>
inline A HorizontalSum(const typename Vector<A>::type& v) {
  A sum = 0;
  for (int64_t lane = 0; lane < Vector<A>::kLanes; ++lane) sum += v[lane];
  return sum;
}

// Backward pass over rows [begin, end): writes dcontent and dqueries for
// those positions and adds their share of the embedding's gradient into
// embedding_grad (transposed as TransposedEmbedding, in A).
template <typename T, int64_t G>
void SoftmaxGradRows(const SoftmaxGeometry& g, const SoftmaxPlan<Acc<T>>& plan,
                     const T* weights, const T* upstream, const T* queries, T* content_grad,
                     T* query_grad, Acc<T>* embedding_grad, int64_t begin, int64_t end) {
  using A = Acc<T>;
  using V = typename Vector<A>::type;
  constexpr int64_t L = Vector<A>::kLanes;
  const int64_t heads = G ? G : g.heads, depth = g.depth;
  const int64_t padded = plan.padded, vectors = plan.vectors;
  const std::vector<A>& embedding = plan.embedding;
  const A scale = plan.scale;
  std::vector<A> w(g.heads * padded), dz(g.heads * padded);
  for (int64_t row = begin; row < end; ++row) {
    for (int64_t j = 0; j < g.width; ++j) {
      const int64_t position = row * g.width + j;
      const int64_t offset = position * g.taps() * g.heads;
      LoadHeadRows<G>(g, weights + offset, w.data(), padded);
      LoadHeadRows<G>(g, upstream + offset, dz.data(), padded);
      const T* q = queries + position * g.channels();
      T* dq = query_grad + position * g.channels();
      for (int64_t h = 0; h < heads; ++h) {
        const A* wh = w.data() + h * padded;
        A* zh = dz.data() + h * padded;
        V dot{};
        for (int64_t n = 0; n < vectors; ++n) {
          V a, b;
          std::memcpy(&a, wh + n * L, sizeof(a));
          std::memcpy(&b, zh + n * L, sizeof(b));
          dot += a * b;
        }
        const A mean = HorizontalSum<A>(dot);
        for (int64_t n = 0; n < vectors; ++n) {
          V a, b;
          std::memcpy(&a, wh + n * L, sizeof(a));
          std::memcpy(&b, zh + n * L, sizeof(b));
          b = a * (b - mean) * scale;  // the padding and outside taps: w = 0, so 0
          std::memcpy(zh + n * L, &b, sizeof(b));
        }
        for (int64_t d = 0; d < depth; ++d) {
          const A qd = Widen<A>(q[h * depth + d]);
          A* grad_row = embedding_grad + d * padded;
          const A* embedding_row = embedding.data() + d * padded;
          V sum{};
          for (int64_t n = 0; n < vectors; ++n) {
            V dzn, r, acc;
            std::memcpy(&dzn, zh + n * L, sizeof(dzn));
            std::memcpy(&r, embedding_row + n * L, sizeof(r));
            std::memcpy(&acc, grad_row + n * L, sizeof(acc));
            sum += dzn * r;
            acc += dzn * qd;
            std::memcpy(grad_row + n * L, &acc, sizeof(acc));
          }
          dq[h * depth + d] = static_cast<T>(HorizontalSum<A>(sum));
        }
      }
      StoreHeadRows<G>(g, dz.data(), padded, content_grad + offset);
    }
  }
}

// exp over COLS values in place (x <= 0, as ExpNonPositive), in one vector
// register of COLS floats; float64 by std::exp.
template <int64_t COLS, typename A>
inline void ExpColumns(A* values) {
  if constexpr (std::is_same_v<A, float>) {
    constexpr int64_t kBytes = COLS * int64_t(sizeof(float));
    typename Vector<float, kBytes>::type v;
    std::memcpy(&v, values, sizeof(v));
    v = ExpNonPositive<kBytes>(v);
    std::memcpy(values, &v, sizeof(v));
  } else {
    for (int64_t jj = 0; jj < COLS; ++jj) values[jj] = std::exp(values[jj]);
  }
}

// The forward softmax fused into the logits kernel, as its epilogue
// (KernelGradImage): on a finished block of COLS output columns j0, ... of
// row i, whose rows of taps hold the content logits, block[(t * heads + h)
// * COLS + jj], it adds the position term (the queries are the kernel's
// upstream, channel-major), scales, masks and takes the softmax over t,
// each column in its own lane: no transposes and no pass over memory of
// its own. (The block is stored as the weights after it.)
template <typename A>
struct SoftmaxEpilogue {
  const SoftmaxGeometry& g;
  const A* relative;  // (K*K, D), or (K, D) factored; widened
  A scale;

  // position[jj] += sum over channels [first, last) of q[c] * e[c], across columns.
  template <int64_t COLS>
  static void AddPositionTerm(A* position, const A* queries, int64_t stride, const A* e,
                              int64_t first, int64_t last) {
    for (int64_t d = first; d < last; ++d) {
      const A r = e[d];
      const A* q = queries + d * stride;
#pragma omp simd
      for (int64_t jj = 0; jj < COLS; ++jj) position[jj] += q[jj] * r;
    }
  }

  template <int64_t COLS>
  void operator()(A* block, const A* queries, int64_t stride, int64_t, int64_t i,
                  int64_t j0) const {
    const int64_t k = g.kernel_size, pad = k / 2, taps = g.taps(), heads = g.heads;
    const int64_t depth = g.depth, row_channels = g.row_channels();
    // A factored embedding's column terms, K rows of COLS, worked out once a head.
    thread_local std::vector<A> column_terms;
    if (g.factored) column_terms.resize(k * COLS);
    for (int64_t h = 0; h < heads; ++h) {
      const A* head_queries = queries + h * depth * stride + j0;
      if (g.factored) {
        std::fill(column_terms.begin(), column_terms.end(), A(0));
        for (int64_t v = 0; v < k; ++v) {
          AddPositionTerm<COLS>(column_terms.data() + v * COLS, head_queries, stride,
                                relative + v * depth, row_channels, depth);
        }
      }
      A top[COLS];
      std::fill(top, top + COLS, kMaskedLogit<A>);
      A row_term[COLS];
      for (int64_t t = 0; t < taps; ++t) {
        A* row = block + (t * heads + h) * COLS;
        const int64_t source_row = i + t / k - pad, shift = t % k - pad;
        const bool row_inside = source_row >= 0 && source_row < g.height;
        A position[COLS] = {};
        if (g.factored) {
          if (t % k == 0) {  // a new row of taps
            std::fill(row_term, row_term + COLS, A(0));
            AddPositionTerm<COLS>(row_term, head_queries, stride, relative + (t / k) * depth, 0,
                                  row_channels);
          }
          const A* column_term = column_terms.data() + (t % k) * COLS;
#pragma omp simd
          for (int64_t jj = 0; jj < COLS; ++jj) position[jj] = row_term[jj] + column_term[jj];
        } else {
          AddPositionTerm<COLS>(position, head_queries, stride, relative + t * depth, 0, depth);
        }
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) {
          const int64_t column = j0 + jj + shift;
          const bool inside = row_inside && column >= 0 && column < g.width;
          const A logit = inside ? (row[jj] + position[jj]) * scale : kMaskedLogit<A>;
          row[jj] = logit;
          top[jj] = std::max(top[jj], logit);
        }
      }
      A total[COLS] = {};
      for (int64_t t = 0; t < taps; ++t) {
        A* row = block + (t * heads + h) * COLS;
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) row[jj] -= top[jj];
        ExpColumns<COLS>(row);
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) total[jj] += row[jj];
      }
      A inverse[COLS];
      for (int64_t jj = 0; jj < COLS; ++jj) inverse[jj] = A(1) / total[jj];
      for (int64_t t = 0; t < taps; ++t) {
        A* row = block + (t * heads + h) * COLS;
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) row[jj] *= inverse[jj];
      }
    }
  }
};

// Rows per share of the embedding's gradient: shares are fixed by the
// shape, not by the threads, and summed in order, so every run gives the
// same result.
inline int64_t RowsPerShare(const SoftmaxGeometry& g) {
  const int64_t rows = g.batch * g.height;
  return std::max<int64_t>(1, (rows + 63) / 64);
}

}  // namespace invbench

#endif  // INVBENCH_ATTENTION_KERNELS_H_
