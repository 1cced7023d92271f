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

// sums[c] += sum over rows of term(i) for the elements i of channel c, for an
// array of `count` floats (count a multiple of C), term(i) reading element i.
template <typename Term>
inline void ChannelSums(int64_t count, int64_t channels, Term&& term, double* sums) {
  double lanes[kNormLanes] = {};
  const int64_t whole = count / kNormLanes * kNormLanes;
  for (int64_t start = 0; start < whole; start += kNormBlock * kNormLanes) {
    const int64_t stop = std::min(whole, start + kNormBlock * kNormLanes);
    float block[kNormLanes] = {};
    for (int64_t i = start; i < stop; i += kNormLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kNormLanes; ++l) block[l] += term(i + l);
    }
    for (int64_t l = 0; l < kNormLanes; ++l) lanes[l] += block[l];
  }
  for (int64_t l = 0; l < kNormLanes; ++l) sums[l % channels] += lanes[l];
  for (int64_t i = whole; i < count; ++i) sums[i % channels] += term(i);  // whole rows remain
}

// Forward pass in training: the batch's mean and biased variance (two
// passes, the second over x - mean), then y = (x - mean) * gamma / sqrt(var
// + epsilon) + beta.
inline void NormTrainingForward(const float* x, int64_t count, int64_t channels,
                                const float* gamma, const float* beta, float epsilon, float* y,
                                float* mean, float* variance) {
  const double rows = double(count / channels);
  double sums[kNormLanes] = {};
  ChannelSums(count, channels, [&](int64_t i) { return x[i]; }, sums);
  float lane_mean[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) mean[c] = float(sums[c] / rows);
  for (int64_t l = 0; l < kNormLanes; ++l) lane_mean[l] = mean[l % channels];
  double squares[kNormLanes] = {};
  ChannelSums(
      count, channels,
      [&](int64_t i) {
        const float centred = x[i] - lane_mean[i % kNormLanes];
        return centred * centred;
      },
      squares);
  float scale[kNormLanes], shift[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) {
    variance[c] = float(squares[c] / rows);
    const float s = gamma[c] / std::sqrt(variance[c] + epsilon);
    scale[c] = s;
    shift[c] = beta[c] - mean[c] * s;
  }
  float lane_scale[kNormLanes], lane_shift[kNormLanes];
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_scale[l] = scale[l % channels];
    lane_shift[l] = shift[l % channels];
  }
  const int64_t whole = count / kNormLanes * kNormLanes;
  for (int64_t i = 0; i < whole; i += kNormLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kNormLanes; ++l) y[i + l] = x[i + l] * lane_scale[l] + lane_shift[l];
  }
  for (int64_t i = whole; i < count; ++i) {
    y[i] = x[i] * scale[i % channels] + shift[i % channels];
  }
}

// Gradient of the training forward pass, from the batch's mean and biased
// variance: with r = 1 / sqrt(var + epsilon) and xhat = (x - mean) * r,
//   dbeta = sum dy,  dgamma = sum dy * xhat,
//   dx = gamma * r * (dy - dbeta / M - xhat * dgamma / M).
inline void NormTrainingGrad(const float* dy, const float* x, int64_t count, int64_t channels,
                             const float* gamma, const float* mean, const float* variance,
                             float epsilon, float* dx, float* dgamma, float* dbeta) {
  const double rows = double(count / channels);
  float lane_mean[kNormLanes], lane_rstd[kNormLanes], rstd[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) rstd[c] = 1.0f / std::sqrt(variance[c] + epsilon);
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_mean[l] = mean[l % channels];
    lane_rstd[l] = rstd[l % channels];
  }
  double gradient_sums[kNormLanes] = {}, products[kNormLanes] = {};
  ChannelSums(count, channels, [&](int64_t i) { return dy[i]; }, gradient_sums);
  ChannelSums(
      count, channels,
      [&](int64_t i) {
        const int64_t l = i % kNormLanes;
        return dy[i] * ((x[i] - lane_mean[l]) * lane_rstd[l]);
      },
      products);
  float lane_a[kNormLanes], lane_b[kNormLanes], lane_c[kNormLanes];
  float a[kNormLanes], b[kNormLanes], d[kNormLanes];
  for (int64_t c = 0; c < channels; ++c) {
    dbeta[c] = float(gradient_sums[c]);
    dgamma[c] = float(products[c]);
    // dx = a * dy - b - d * (x - mean): a = gamma r, b = a dbeta / M,
    // d = a r dgamma / M.
    a[c] = gamma[c] * rstd[c];
    b[c] = float(a[c] * gradient_sums[c] / rows);
    d[c] = float(a[c] * rstd[c] * products[c] / rows);
  }
  for (int64_t l = 0; l < kNormLanes; ++l) {
    lane_a[l] = a[l % channels];
    lane_b[l] = b[l % channels];
    lane_c[l] = d[l % channels];
  }
  const int64_t whole = count / kNormLanes * kNormLanes;
  for (int64_t i = 0; i < whole; i += kNormLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kNormLanes; ++l) {
      dx[i + l] = lane_a[l] * dy[i + l] - lane_b[l] - lane_c[l] * (x[i + l] - lane_mean[l]);
    }
  }
  for (int64_t i = whole; i < count; ++i) {
    const int64_t c = i % channels;
    dx[i] = a[c] * dy[i] - b[c] - d[c] * (x[i] - mean[c]);
  }
}

}  // namespace invbench

#endif  // INVBENCH_BATCH_NORM_KERNELS_H_
