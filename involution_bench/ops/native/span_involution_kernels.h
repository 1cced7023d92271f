// Involution with its kernel generated where it is used: the last step of the
// kernel generator, the span projection (a 1x1 convolution from the hidden
// width R to K*K*G, with a bias), fused into the forward pass and both
// gradients, so that the B*H'*W'*K*K*G kernel, three times the size of the
// feature map at RedNet's shapes, is never written to memory nor read back.
//
// For output position p and kernel row n = tap * G + group:
//   kernel[p, n] = bias[n] + sum_r h[p, r] * w[r, n]
// where h is the generator's hidden features (B, H', W', R) and w the span's
// (R, K*K*G) weights.
//
// - Forward and input gradient: each position's kernel is generated into a
//   buffer that stays in L1 (WithGenerator), then used as ForwardRowsWith
//   and InputGradImagesWith use a kernel in memory.
// - The gradients of h, w and the bias: each image's kernel gradient dk goes
//   to a buffer in cache, not to memory, and is consumed there:
//     dh[p, r] = sum_n dk[p, n] * w[r, n]
//     dw[r, n] = sum_p h[p, r] * dk[p, n],   dbias[n] = sum_p dk[p, n]
//   dw and dbias are summed per image, then over images in a fixed order:
//   the same result on every run and at every thread count.
//
// Each position's share is small (a few hundred multiply-adds), so fixed
// overheads decide: RedNet's span shapes (K*K*G, R) = (49, 4), (98, 8) and
// (196, 16) take forms with both sizes known at compile time, whose sums stay
// in registers (GenerateFixed, SpanParamsFixed), chosen once per task; other
// shapes take general loops. The layer fuses only where it measured faster
// (involution_layer.py).

#ifndef INVBENCH_SPAN_INVOLUTION_KERNELS_H_
#define INVBENCH_SPAN_INVOLUTION_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "involution_kernels.h"

namespace invbench {

// The span's operands, widened to the accumulator type once per op.
template <typename A>
struct Span {
  int64_t hidden = 0;     // R
  int64_t count = 0;      // K*K*G, a position's kernel values
  std::vector<A> weights;     // (R, count), row-major
  std::vector<A> bias;        // (count)
  std::vector<A> transposed;  // (count, R): weights transposed, for the gradient of h
  std::vector<A> padded_weights, padded_bias;  // rows padded to whole vectors
  int64_t padded = 0;  // count rounded up to whole vectors: a generated kernel's buffer

  void Pad() {
    constexpr int64_t L = Vector<A>::kLanes;
    padded = (count + L - 1) / L * L;
    padded_weights.assign(hidden * padded, A(0));
    padded_bias.assign(padded, A(0));
    for (int64_t r = 0; r < hidden; ++r) {
      std::copy(weights.begin() + r * count, weights.begin() + (r + 1) * count,
                padded_weights.begin() + r * padded);
    }
    std::copy(bias.begin(), bias.end(), padded_bias.begin());
  }

  void Transpose() {
    transposed.resize(hidden * count);
    for (int64_t r = 0; r < hidden; ++r) {
      for (int64_t n = 0; n < count; ++n) transposed[n * hidden + r] = weights[r * count + n];
    }
  }
};

// out[n] = bias[n] + sum_r h[r] * w[r, n]: one position's kernel, from its
// R hidden features (out holds span.padded values). With COUNT and HIDDEN
// compile-time constants, the sums stay in registers.
template <int64_t COUNT, int64_t HIDDEN, typename A, typename T>
inline void GenerateFixed(const Span<A>& span, const T* h, A* out) {
  constexpr int64_t L = Vector<A>::kLanes;
  constexpr int64_t NV = (COUNT + L - 1) / L;
  using V = typename Vector<A>::type;
  V sums[NV];
  const A* bias = span.padded_bias.data();
  const A* w = span.padded_weights.data();
  for (int64_t q = 0; q < NV; ++q) std::memcpy(&sums[q], bias + q * L, sizeof(V));
  for (int64_t r = 0; r < HIDDEN; ++r) {
    const A value = Widen<A>(h[r]);
    for (int64_t q = 0; q < NV; ++q) {
      V row;
      std::memcpy(&row, w + (r * NV + q) * L, sizeof(V));
      sums[q] += row * value;
    }
  }
  std::memcpy(out, sums, sizeof(sums));
}

// The same for any shape, in loops over run-time sizes.
template <typename A, typename T>
inline void GenerateGeneral(const Span<A>& span, const T* h, A* out) {
  const int64_t count = span.count;
  std::memcpy(out, span.bias.data(), count * sizeof(A));
  for (int64_t r = 0; r < span.hidden; ++r) {
    const A value = Widen<A>(h[r]);
    const A* row = span.weights.data() + r * count;
#pragma omp simd
    for (int64_t n = 0; n < count; ++n) out[n] += value * row[n];
  }
}

// Calls body(COUNT, HIDDEN constants) for the span shapes that have a fixed
// form (RedNet's: K = 7 with 1, 2 or 4 groups and a quarter of the channels
// hidden); returns false where none matches.
template <typename Body>
bool WithSpanShape(int64_t count, int64_t hidden, Body&& body) {
  using std::integral_constant;
  if (count == 49 && hidden == 4) {
    body(integral_constant<int64_t, 49>(), integral_constant<int64_t, 4>());
  } else if (count == 98 && hidden == 8) {
    body(integral_constant<int64_t, 98>(), integral_constant<int64_t, 8>());
  } else if (count == 196 && hidden == 16) {
    body(integral_constant<int64_t, 196>(), integral_constant<int64_t, 16>());
  } else {
    return false;
  }
  return true;
}

// Calls body(generate) with generate(h, out) the kernel generator for this
// span's shape, chosen once for a whole task rather than at every position.
template <typename A, typename Body>
void WithGenerator(const Span<A>& span, Body&& body) {
  const bool fixed = WithSpanShape(span.count, span.hidden, [&](auto count, auto hidden) {
    body([&](const auto* h, A* out) {
      GenerateFixed<decltype(count)::value, decltype(hidden)::value>(span, h, out);
    });
  });
  if (!fixed) body([&](const auto* h, A* out) { GenerateGeneral(span, h, out); });
}

// Forward pass over output rows [begin, end), each kernel generated in place.
template <typename T, int64_t CG>
void SpanForwardRows(const Geometry& g, const Span<Acc<T>>& span, const T* x, const T* h, T* y,
                     int64_t begin, int64_t end) {
  std::vector<Acc<T>> kernel(span.padded);
  WithGenerator(span, [&](auto&& generate) {
    ForwardRowsWith<T, CG>(
        g, x,
        [&](int64_t position) {
          generate(h + position * span.hidden, kernel.data());
          return static_cast<const Acc<T>*>(kernel.data());
        },
        y, begin, end);
  });
}

// Input gradient of images [begin, end), each kernel generated in place.
template <typename T, int64_t CG>
void SpanInputGradImages(const Geometry& g, const Span<Acc<T>>& span, const T* dy, const T* h,
                         T* dx, int64_t begin, int64_t end) {
  std::vector<Acc<T>> kernels(2 * span.padded);  // a buffer for each of a pair's outputs
  WithGenerator(span, [&](auto&& generate) {
    InputGradImagesWith<T, CG>(
        g, dy,
        [&](int64_t position, int slot) {
          Acc<T>* kernel = kernels.data() + slot * span.padded;
          generate(h + position * span.hidden, kernel);
          return static_cast<const Acc<T>*>(kernel);
        },
        dx, begin, end);
  });
}

// What one thread reuses from image to image of the span's gradients.
template <typename T>
struct SpanGradScratch {
  KernelGradScratch<T> kernel;
  std::vector<T> dk;         // one image's kernel gradient, (H'*W', count)
  std::vector<Acc<T>> row;  // one position's, widened (bfloat16)
};

// SpanKernelGradImage's sums for compile-time COUNT (K*K*G) and HIDDEN (R),
// in float or double, from one image's kernel gradient dk (positions x COUNT,
// with 16 vectors' slack after the last row), in two passes that keep their
// sums in registers:
// - dh[p] as one vector of HIDDEN sums, sum over n of dk[p, n] times w's
//   column n, for kDhPositions positions side by side: one position's sums are
//   a chain of COUNT dependent multiply-adds, which alone waits on each one's
//   latency;
// - dw's rows and the bias's sums, a few vectors of n at a time over every
//   position: held in L1, each sum was a load and a store per position.
// Each sum runs in the same order as a position-by-position loop would. The
// two passes took the op to 0.84-0.92 of the one-pass form at RedNet's
// layers (docs/benchmarks.md).
template <int64_t COUNT, int64_t HIDDEN, typename A>
void SpanParamsFixed(const Span<A>& span, const A* dk, const A* h, int64_t positions, A* dh,
                     A* image_dw, A* image_dbias) {
  constexpr int64_t L = Vector<A>::kLanes;
  constexpr int64_t NV = (COUNT + L - 1) / L;
  using V = typename Vector<A>::type;
  using H = typename Vector<A, HIDDEN * int64_t(sizeof(A))>::type;
  const A* transposed = span.transposed.data();  // (COUNT, HIDDEN)
  constexpr int64_t kDhPositions = 8;
  int64_t p0 = 0;
  for (; p0 + kDhPositions <= positions; p0 += kDhPositions) {
    H gradients[kDhPositions] = {};
    for (int64_t n = 0; n < COUNT; ++n) {
      H column;
      std::memcpy(&column, transposed + n * HIDDEN, sizeof(H));
      for (int64_t q = 0; q < kDhPositions; ++q) {
        gradients[q] += column * dk[(p0 + q) * COUNT + n];
      }
    }
    std::memcpy(dh + p0 * HIDDEN, gradients, sizeof(gradients));
  }
  for (; p0 < positions; ++p0) {
    H gradient = {};
    for (int64_t n = 0; n < COUNT; ++n) {
      H column;
      std::memcpy(&column, transposed + n * HIDDEN, sizeof(H));
      gradient += column * dk[p0 * COUNT + n];
    }
    std::memcpy(dh + p0 * HIDDEN, &gradient, sizeof(H));
  }
  // dw and the bias, kChunk vectors of n at a time: HIDDEN * kChunk sums.
  constexpr int64_t kChunk = std::max<int64_t>(1, std::min<int64_t>(NV, 16 / HIDDEN));
  for (int64_t q0 = 0; q0 < NV; q0 += kChunk) {
    V weight_sums[HIDDEN][kChunk] = {};
    V bias_sums[kChunk] = {};
    for (int64_t p = 0; p < positions; ++p) {
      V d[kChunk];
      // Lanes past COUNT read the next row (or the slack): their sums are dropped.
      std::memcpy(d, dk + p * COUNT + q0 * L, sizeof(d));
      for (int64_t q = 0; q < kChunk; ++q) bias_sums[q] += d[q];
      for (int64_t r = 0; r < HIDDEN; ++r) {
        const A value = h[p * HIDDEN + r];
        for (int64_t q = 0; q < kChunk; ++q) weight_sums[r][q] += d[q] * value;
      }
    }
    const int64_t first = q0 * L, stored = std::min(COUNT, (q0 + kChunk) * L) - first;
    if (stored <= 0) continue;
    for (int64_t r = 0; r < HIDDEN; ++r) {
      A row[kChunk * L];
      std::memcpy(row, weight_sums[r], sizeof(row));
      std::memcpy(image_dw + r * COUNT + first, row, stored * sizeof(A));
    }
    A bias[kChunk * L];
    std::memcpy(bias, bias_sums, sizeof(bias));
    std::memcpy(image_dbias + first, bias, stored * sizeof(A));
  }
}

// The gradients of h (stored into dh), w and the bias (image b's sums, into
// image_dw (R * count) and image_dbias (count)) for image b: its kernel
// gradient into a buffer that stays in cache (RedNet's largest: 50 KiB),
// then, position by position,
//   dbias += dk[p],  dw[r] += h[p, r] * dk[p],  dh[p] = transposed_w^T dk[p]
// each vectorized along a contiguous row.
template <typename T, int64_t K, int64_t COLS>
void SpanKernelGradImage(const Geometry& g, const Span<Acc<T>>& span, const T* dy, const T* x,
                         const T* h, T* dh, Acc<T>* image_dw, Acc<T>* image_dbias, int64_t b,
                         SpanGradScratch<T>& scratch) {
  using A = Acc<T>;
  const int64_t hidden = span.hidden, count = span.count;
  const int64_t positions = g.out_height * g.out_width;
  // Slack after the last row: SpanParamsFixed reads whole vectors past it.
  scratch.dk.resize(positions * count + 16 * Vector<A>::kLanes);
  KernelGradImage<T, K, COLS, NoEpilogue, false>(g, dy, x, scratch.dk.data(), b, scratch.kernel,
                                                 NoEpilogue(), b);
  const T* image_h = h + b * positions * hidden;
  T* image_dh = dh + b * positions * hidden;
  if constexpr (std::is_same_v<A, T>) {
    const bool fixed = WithSpanShape(count, hidden, [&](auto c, auto r) {
      SpanParamsFixed<decltype(c)::value, decltype(r)::value>(
          span, scratch.dk.data(), image_h, positions, image_dh, image_dw, image_dbias);
    });
    if (fixed) return;
  }
  std::fill(image_dw, image_dw + hidden * count, A(0));
  std::fill(image_dbias, image_dbias + count, A(0));
  scratch.row.resize(count);
  std::vector<A> sums(hidden);
  for (int64_t p = 0; p < positions; ++p) {
    const T* stored = scratch.dk.data() + p * count;
    const A* d = [&] {
      if constexpr (std::is_same_v<A, T>) {
        return stored;
      } else {
        for (int64_t n = 0; n < count; ++n) scratch.row[n] = Widen<A>(stored[n]);
        return static_cast<const A*>(scratch.row.data());
      }
    }();
#pragma omp simd
    for (int64_t n = 0; n < count; ++n) image_dbias[n] += d[n];
    for (int64_t r = 0; r < hidden; ++r) {
      const A value = Widen<A>(image_h[p * hidden + r]);
      A* dw = image_dw + r * count;
#pragma omp simd
      for (int64_t n = 0; n < count; ++n) dw[n] += value * d[n];
    }
    for (int64_t r = 0; r < hidden; ++r) {
      const A* w = span.weights.data() + r * count;
      A sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t n = 0; n < count; ++n) sum += d[n] * w[n];
      sums[r] = sum;
    }
    for (int64_t r = 0; r < hidden; ++r) image_dh[p * hidden + r] = static_cast<T>(sums[r]);
  }
}

// out[m] = sum over images b, in order, of partial[b * size + m].
template <typename A, typename T>
void SumImages(const std::vector<A>& partial, int64_t images, int64_t size, T* out) {
  std::vector<A> sums(size, A(0));
  for (int64_t b = 0; b < images; ++b) {
    const A* image = partial.data() + b * size;
    for (int64_t m = 0; m < size; ++m) sums[m] += image[m];
  }
  for (int64_t m = 0; m < size; ++m) out[m] = static_cast<T>(sums[m]);
}

}  // namespace invbench

#endif  // INVBENCH_SPAN_INVOLUTION_KERNELS_H_
