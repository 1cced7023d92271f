// Local self-attention's backward pass through its softmax, fused into the
// aggregation's kernel gradient (involution_ops.cc: InvbenchAttentionGrad).
//
// The aggregation out = sum_t w[t, g] * v[neighbour t] is the involution
// forward pass with the weights as its kernel, so the weights' upstream
// gradient dw is the involution kernel gradient of (dout, v). KernelGradImage
// finishes it one block of COLS output columns at a time, each column in a
// vector lane, rows (t * heads + h); SoftmaxGradEpilogue turns such a block
// into the content logits' gradient before it is stored:
//
//   dz[t, h]   = w[t, h] * (dw[t, h] - sum_t' w[t', h] * dw[t', h]) / sqrt(D)
//   dq[h*D+d]  = sum_t dz[t, h] * r[t, d]          (the position term's part)
//   dr[t, d]  += sum over positions and heads of dz[t, h] * q[h*D + d]
//
// (attention_kernels.h derives them.) With a factored embedding, r[u*K + v,
// d] = e[u, d] in the row half of the channels and e[v, d] in the column
// half, both sums go through the K row sums and K column sums of dz: K*D
// multiply-adds a head instead of K*K*D.
//
// So dw never reaches memory, and the softmax's gradient runs across
// columns, in whole vectors; as its own op (SoftmaxGradRows) it went a
// position at a time, with the taps in the lanes, over dw read back from
// memory.

#ifndef INVBENCH_ATTENTION_GRAD_KERNELS_H_
#define INVBENCH_ATTENTION_GRAD_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention_kernels.h"
#include "involution_kernels.h"

namespace invbench {

template <typename A, typename T>
struct SoftmaxGradEpilogue {
  const SoftmaxGeometry& g;
  const T* weights;   // (B, H, W, K*K, G), the forward pass's
  const T* queries;   // (B, H, W, G*D)
  const A* relative;  // (K, D) factored, else (K*K, D); widened
  A scale;            // 1 / sqrt(D)
  T* query_grad;      // (B, H, W, G*D): the position term's part of dq
  // Per image b, its share of the embedding's gradient at b * embedding_size():
  // summed in image order afterwards, so every run gives the same result.
  A* image_relative_grad;

  // What one thread reuses from block to block: the block's weights and
  // queries channel-major, dq, the row and column sums, and the image's
  // embedding gradient across columns (embedding_size() rows of COLS).
  struct Scratch {
    std::vector<A> weights, queries, query_grad, sums, relative_grad;
  };

  template <int64_t COLS>
  void operator()(A* block, const A*, int64_t, int64_t b, int64_t i, int64_t j0) const {
    const int64_t k = g.kernel_size, taps = g.taps(), heads = g.heads;
    const int64_t depth = g.depth, channels = g.channels(), rows = taps * heads;
    const int64_t width = std::min(COLS, g.width - j0);
    const int64_t size = g.embedding_size();
    thread_local Scratch scratch;
    Scratch& s = scratch;
    if (i == 0 && j0 == 0) s.relative_grad.assign(size * COLS, A(0));  // a new image
    const int64_t position = (b * g.height + i) * g.width + j0;
    // Lanes past the image's last column must be zero, so they add nothing; a
    // whole block's copies overwrite every lane.
    s.weights.resize(rows * COLS);
    s.queries.resize(channels * COLS);
    if (width < COLS) {
      std::fill(s.weights.begin(), s.weights.end(), A(0));
      std::fill(s.queries.begin(), s.queries.end(), A(0));
    }
    CopyChannelMajor<COLS>(weights + position * rows, rows, rows, width, s.weights.data(), COLS);
    CopyChannelMajor<COLS>(queries + position * channels, channels, channels, width,
                           s.queries.data(), COLS);
    s.query_grad.assign(channels * COLS, A(0));
    s.sums.resize(2 * k * COLS);
    A* grad = s.relative_grad.data();
    for (int64_t h = 0; h < heads; ++h) {
      A dot[COLS] = {};
      for (int64_t t = 0; t < taps; ++t) {
        const A* w = s.weights.data() + (t * heads + h) * COLS;
        const A* dw = block + (t * heads + h) * COLS;
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) dot[jj] += w[jj] * dw[jj];
      }
      for (int64_t t = 0; t < taps; ++t) {
        const A* w = s.weights.data() + (t * heads + h) * COLS;
        A* dz = block + (t * heads + h) * COLS;
        // Outside taps and padded lanes have w = 0, so dz = 0 there.
#pragma omp simd
        for (int64_t jj = 0; jj < COLS; ++jj) dz[jj] = w[jj] * (dz[jj] - dot[jj]) * scale;
      }
      const A* q = s.queries.data() + h * depth * COLS;
      A* dq = s.query_grad.data() + h * depth * COLS;
      if (g.factored) {
        // sums[u * COLS + jj]: row u's taps; sums[(k + v) * COLS + jj]: column v's.
        A* row_sums = s.sums.data();
        A* column_sums = row_sums + k * COLS;
        std::fill(s.sums.begin(), s.sums.end(), A(0));
        for (int64_t u = 0; u < k; ++u) {
          for (int64_t v = 0; v < k; ++v) {
            const A* dz = block + ((u * k + v) * heads + h) * COLS;
#pragma omp simd
            for (int64_t jj = 0; jj < COLS; ++jj) {
              row_sums[u * COLS + jj] += dz[jj];
              column_sums[v * COLS + jj] += dz[jj];
            }
          }
        }
        for (int64_t d = 0; d < depth; ++d) {
          const A* sums = d < g.row_channels() ? row_sums : column_sums;
          for (int64_t n = 0; n < k; ++n) {
            const A e = relative[n * depth + d];
            const A* sum = sums + n * COLS;
            A* acc = grad + (n * depth + d) * COLS;
#pragma omp simd
            for (int64_t jj = 0; jj < COLS; ++jj) {
              dq[d * COLS + jj] += sum[jj] * e;
              acc[jj] += sum[jj] * q[d * COLS + jj];
            }
          }
        }
      } else {
        for (int64_t t = 0; t < taps; ++t) {
          const A* dz = block + (t * heads + h) * COLS;
          for (int64_t d = 0; d < depth; ++d) {
            const A e = relative[t * depth + d];
            A* acc = grad + (t * depth + d) * COLS;
#pragma omp simd
            for (int64_t jj = 0; jj < COLS; ++jj) {
              dq[d * COLS + jj] += dz[jj] * e;
              acc[jj] += dz[jj] * q[d * COLS + jj];
            }
          }
        }
      }
    }
    StoreTransposed<COLS>(s.query_grad.data(), channels, width, query_grad + position * channels);
    if (i == g.height - 1 && j0 + COLS >= g.width) {  // the image's last block
      A* image = image_relative_grad + b * size;
      for (int64_t n = 0; n < size; ++n) {
        A total = 0;
        for (int64_t jj = 0; jj < COLS; ++jj) total += grad[n * COLS + jj];
        image[n] = total;
      }
    }
  }
};

}  // namespace invbench

#endif  // INVBENCH_ATTENTION_GRAD_KERNELS_H_
