// Batch normalization in training for narrow channels (C dividing 16: the
// involution layer's kernel generator, 4 to 16 channels; attention's
// 8-channel bottlenecks): the statistics, the normalization, and the
// gradient, over a float (M, C) array (M = N*H*W). TensorFlow's fused kernel
// has a fixed cost of about a millisecond there, several times the passes
// over memory (docs/benchmarks.md).
//
// In a vector of kLanes floats, lane l holds channel l % C, so whole vectors
// are summed lane by lane and the lanes of a channel folded at the end. Sums
// run in double over blocks of float partial sums: M is up to a few
// hundred thousand, where a single float sum would lose digits.

#ifndef INVBENCH_BATCH_NORM_KERNELS_H_
#define INVBENCH_BATCH_NORM_KERNELS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace invbench {

constexpr int64_t kNormLanes = 16;
constexpr int64_t kNormBlock = 256;  // vectors summed in float before adding in double

// Whether the narrow kernels take C channels.
inline bool NarrowNormChannels(int64_t channels) {
  return channels > 0 && channels <= kNormLanes && kNormLanes % channels == 0;
}

// The kernels' passes run over chunks of kNormChunk floats (a block of
// vectors), handed to `for_chunks(chunks, cost, body)`, which calls
// body(begin, end) for disjoint ranges of chunk indices that cover them all,
// on any threads (SerialChunks runs them in order). A chunk's sums are kept
// apart and added in chunk order, so the result does not depend on the split.
constexpr int64_t kNormChunk = kNormBlock * kNormLanes;

struct SerialChunks {
  template <typename Body>
  void operator()(int64_t chunks, int64_t cost, Body&& body) const {
    body(int64_t{0}, chunks);
  }
};

// For each of kTerms terms, sums[t][c] += sum over rows of term(t, i, l) for
// the elements i of channel c, l = i % kNormLanes being i's lane, for an array
// of `count` floats (a multiple of C). The whole vectors go in chunks; the
// remainder (count % kNormLanes) last. The lane is passed, not recomputed:
// from i % kNormLanes the compiler could not tell that a vector's lanes are
// 0 to 15, and the per-lane constants' loads cost the gradient 2 to 4 times
// its time (docs/benchmarks.md).
template <int kTerms, typename Term, typename ForChunks>
inline void ChannelSums(int64_t count, int64_t channels, Term&& term, ForChunks&& for_chunks,
                        double (*sums)[kNormLanes]) {
  const int64_t whole = count / kNormLanes * kNormLanes;
  const int64_t chunks = (whole + kNormChunk - 1) / kNormChunk;
  std::vector<float> partial(chunks * kTerms * kNormLanes);  // each chunk's float sums
  for_chunks(chunks, kNormChunk * kTerms, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t start = chunk * kNormChunk, stop = std::min(whole, start + kNormChunk);
      float block[kTerms][kNormLanes] = {};
      for (int64_t i = start; i < stop; i += kNormLanes) {
        for (int t = 0; t < kTerms; ++t) {
#pragma omp simd
          for (int64_t l = 0; l < kNormLanes; ++l) block[t][l] += term(t, i + l, l);
        }
      }
      std::memcpy(&partial[chunk * kTerms * kNormLanes], block, sizeof(block));
    }
  });
  for (int t = 0; t < kTerms; ++t) {
    double lanes[kNormLanes] = {};
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      for (int64_t l = 0; l < kNormLanes; ++l) {
        lanes[l] += partial[(chunk * kTerms + t) * kNormLanes + l];
      }
    }
    for (int64_t l = 0; l < kNormLanes; ++l) sums[t][l % channels] += lanes[l];
    for (int64_t i = whole; i < count; ++i) {  // whole rows
      sums[t][i % channels] += term(t, i, i % kNormLanes);
    }
  }
}

// out[i] = f(i) for every element, whole vectors in chunks, then the remainder.
template <typename Element, typename Scalar, typename ForChunks>
inline void ElementPass(int64_t count, Element&& vector_lane, Scalar&& scalar,
                        ForChunks&& for_chunks) {
  const int64_t whole = count / kNormLanes * kNormLanes;
  const int64_t chunks = (whole + kNormChunk - 1) / kNormChunk;
  for_chunks(chunks, kNormChunk, [&](int64_t begin, int64_t end) {
    const int64_t stop = std::min(whole, end * kNormChunk);
    for (int64_t i = begin * kNormChunk; i < stop; i += kNormLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kNormLanes; ++l) vector_lane(i + l, l);
    }
  });
  for (int64_t i = whole; i < count; ++i) scalar(i);
}

// Forward pass in training: the batch's mean and biased variance (two
// passes, the second over x - mean), then y = (x - mean) * gamma / sqrt(var
// + epsilon) + beta.
template <typename ForChunks = SerialChunks>
inline void NormTrainingForward(const float* x, int64_t count, int64_t channels,
                                const float* gamma, const float* beta, float epsilon, float* y,
                                float* mean, float* variance, ForChunks&& for_chunks = {}) {
  const double rows = double(count / channels);
  double sums[1][kNormLanes] = {};
  ChannelSums<1>(
      count, channels, [&](int, int64_t i, int64_t) { return x[i]; }, for_chunks, sums);
  float lane_mean[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) mean[c] = float(sums[0][c] / rows);
  for (int64_t l = 0; l < kNormLanes; ++l) lane_mean[l] = mean[l % channels];
  double squares[1][kNormLanes] = {};
  ChannelSums<1>(
      count, channels,
      [&](int, int64_t i, int64_t l) {
        const float centred = x[i] - lane_mean[l];
        return centred * centred;
      },
      for_chunks, squares);
  float scale[kNormLanes], shift[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) {
    variance[c] = float(squares[0][c] / rows);
    const float s = gamma[c] / std::sqrt(variance[c] + epsilon);
    scale[c] = s;
    shift[c] = beta[c] - mean[c] * s;
  }
  float lane_scale[kNormLanes], lane_shift[kNormLanes];
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_scale[l] = scale[l % channels];
    lane_shift[l] = shift[l % channels];
  }
  ElementPass(
      count, [&](int64_t i, int64_t l) { y[i] = x[i] * lane_scale[l] + lane_shift[l]; },
      [&](int64_t i) { y[i] = x[i] * scale[i % channels] + shift[i % channels]; }, for_chunks);
}

// Gradient of the training forward pass, from the batch's mean and biased
// variance: with r = 1 / sqrt(var + epsilon) and xhat = (x - mean) * r,
//   dbeta = sum dy,  dgamma = sum dy * xhat,
//   dx = gamma * r * (dy - dbeta / M - xhat * dgamma / M).
// Both sums come from one pass over dy and x.
template <typename ForChunks = SerialChunks>
inline void NormTrainingGrad(const float* dy, const float* x, int64_t count, int64_t channels,
                             const float* gamma, const float* mean, const float* variance,
                             float epsilon, float* dx, float* dgamma, float* dbeta,
                             ForChunks&& for_chunks = {}) {
  const double rows = double(count / channels);
  float lane_mean[kNormLanes], lane_rstd[kNormLanes], rstd[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) rstd[c] = 1.0f / std::sqrt(variance[c] + epsilon);
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_mean[l] = mean[l % channels];
    lane_rstd[l] = rstd[l % channels];
  }
  double sums[2][kNormLanes] = {};  // dy, then dy * xhat
  ChannelSums<2>(
      count, channels,
      [&](int term, int64_t i, int64_t l) {
        return term == 0 ? dy[i] : dy[i] * ((x[i] - lane_mean[l]) * lane_rstd[l]);
      },
      for_chunks, sums);
  float lane_a[kNormLanes], lane_b[kNormLanes], lane_c[kNormLanes];
  float a[kNormLanes], b[kNormLanes], d[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) {
    dbeta[c] = float(sums[0][c]);
    dgamma[c] = float(sums[1][c]);
    // dx = a * dy - b - d * (x - mean): a = gamma r, b = a dbeta / M,
    // d = a r dgamma / M.
    a[c] = gamma[c] * rstd[c];
    b[c] = float(a[c] * sums[0][c] / rows);
    d[c] = float(a[c] * rstd[c] * sums[1][c] / rows);
  }
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_a[l] = a[l % channels];
    lane_b[l] = b[l % channels];
    lane_c[l] = d[l % channels];
  }
  ElementPass(
      count,
      [&](int64_t i, int64_t l) {
        dx[i] = lane_a[l] * dy[i] - lane_b[l] - lane_c[l] * (x[i] - lane_mean[l]);
      },
      [&](int64_t i) {
        const int64_t c = i % channels;
        dx[i] = a[c] * dy[i] - b[c] - d[c] * (x[i] - mean[c]);
      },
      for_chunks);
}

}  // namespace invbench

#endif  // INVBENCH_BATCH_NORM_KERNELS_H_
