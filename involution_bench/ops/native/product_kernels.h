// Products of an (M, K) array by a small (K, N) matrix, the 1x1 convolutions
// of narrow layers (ops/conv2d.py: involution's reduce projection, 16 to 64
// channels into 4 to 16), and their gradient in one pass:
//   forward  z = x w + bias,
//   backward dx = dz w^T,  dw = x^T dz,  dbias = sum over rows of dz.
// oneDNN's matrix product has a fixed cost of about 100 microseconds per
// call whatever the size, several times these arrays' passes over memory at
// such widths (docs/benchmarks.md), and the bias and its gradient were two
// more passes.
//
// Every output row is a sum of K rows of w scaled by x's values, vectorized
// along N. Rows go in blocks of kProductRows, so the block's sums are that
// many independent chains for the multiply-add units. dw and dbias are summed
// in float over fixed chunks of rows, then chunk by chunk in order in double,
// so a result does not depend on the thread count.

#ifndef INVBENCH_PRODUCT_KERNELS_H_
#define INVBENCH_PRODUCT_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "involution_kernels.h"  // Vector

namespace invbench {

constexpr int64_t kProductRows = 8;     // rows whose sums run side by side
constexpr int64_t kProductChunk = 512;  // rows per partial sum of dw and dbias
constexpr int64_t kProductMaxWidth = 64;

// out[r] = bias + sum over k of x[r, k] * w[k] (rows of N), for rows [begin, end).
// N is known at compile time (0: only at run time, as `width`); bias may be null.
template <typename T, int64_t N>
void ProductRows(const T* x, int64_t depth, const T* w, const T* bias, int64_t width, T* out,
                 int64_t begin, int64_t end) {
  constexpr bool kFixed = N > 0;
  const int64_t n_count = kFixed ? N : width;
  T sums[kProductRows][kFixed ? N : kProductMaxWidth];
  for (int64_t first = begin; first < end; first += kProductRows) {
    const int64_t rows = std::min(kProductRows, end - first);
    for (int64_t i = 0; i < kProductRows; ++i) {
      for (int64_t n = 0; n < n_count; ++n) sums[i][n] = bias != nullptr ? bias[n] : T(0);
    }
    if (rows == kProductRows) {
      const T* block = x + first * depth;
      for (int64_t k = 0; k < depth; ++k) {
        const T* row = w + k * n_count;
        for (int64_t i = 0; i < kProductRows; ++i) {
          const T value = block[i * depth + k];
#pragma omp simd
          for (int64_t n = 0; n < n_count; ++n) sums[i][n] += value * row[n];
        }
      }
    } else {
      for (int64_t i = 0; i < rows; ++i) {
        const T* source = x + (first + i) * depth;
        for (int64_t k = 0; k < depth; ++k) {
          const T value = source[k];
          const T* row = w + k * n_count;
#pragma omp simd
          for (int64_t n = 0; n < n_count; ++n) sums[i][n] += value * row[n];
        }
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(out + (first + i) * n_count, sums[i], n_count * sizeof(T));
    }
  }
}

// Calls body(std::integral_constant<int64_t, N>) for the widths that have a
// compile-time form, else body with N = 0.
template <typename Body>
void WithProductWidth(int64_t width, Body&& body) {
  WithConstant<4, 8, 16, 32, 64>(width, body);
}

template <typename T>
void ProductRowsAnyWidth(const T* x, int64_t depth, const T* w, const T* bias, int64_t width,
                         T* out, int64_t begin, int64_t end) {
  WithProductWidth(width, [&](auto n) {
    ProductRows<T, decltype(n)::value>(x, depth, w, bias, width, out, begin, end);
  });
}

// One chunk's sums of dw (depth x width) and dbias (width), from rows
// [begin, end) of x (depth wide) and dz (width wide), into partial. N as in
// ProductRows: a run-time trip count of a few lanes cost several times the
// arithmetic.
template <typename T, int64_t N>
void ProductWeightSums(const T* x, const T* dz, int64_t depth, int64_t width, int64_t begin,
                       int64_t end, T* partial) {
  const int64_t n_count = N > 0 ? N : width;
  T* dw = partial;
  T* dbias = partial + depth * n_count;
  std::fill(partial, partial + (depth + 1) * n_count, T(0));
  for (int64_t r = begin; r < end; ++r) {
    const T* gradient = dz + r * n_count;
    const T* source = x + r * depth;
#pragma omp simd
    for (int64_t n = 0; n < n_count; ++n) dbias[n] += gradient[n];
    for (int64_t k = 0; k < depth; ++k) {
      const T value = source[k];
      T* sums = dw + k * n_count;
#pragma omp simd
      for (int64_t n = 0; n < n_count; ++n) sums[n] += value * gradient[n];
    }
  }
}

// ProductWeightSums for N up to 16 and depth a whole number of vectors: for
// each tile of a vector's lanes of k, dw's N columns are N vector sums held in
// registers, x's tile times each of dz's values broadcast. Summing into rows
// of dw in L1 instead stored every sum back once per row: five times slower.
template <typename T, int64_t N>
void ProductWeightSumsTiled(const T* x, const T* dz, int64_t depth, int64_t begin, int64_t end,
                            T* partial) {
  using V = typename Vector<T>::type;
  constexpr int64_t L = Vector<T>::kLanes;
  T* dw = partial;
  T* dbias = partial + depth * N;
  T bias[N] = {};
  for (int64_t r = begin; r < end; ++r) {
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) bias[n] += dz[r * N + n];
  }
  std::memcpy(dbias, bias, sizeof(bias));
  for (int64_t k0 = 0; k0 < depth; k0 += L) {
    V sums[N] = {};
    for (int64_t r = begin; r < end; ++r) {
      V values;
      std::memcpy(&values, x + r * depth + k0, sizeof(V));
      const T* gradient = dz + r * N;
      for (int64_t n = 0; n < N; ++n) sums[n] += values * gradient[n];
    }
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t l = 0; l < L; ++l) dw[(k0 + l) * N + n] = sums[n][l];
    }
  }
}

template <typename T>
void ProductWeightSumsAnyWidth(const T* x, const T* dz, int64_t depth, int64_t width,
                               int64_t begin, int64_t end, T* partial) {
  WithProductWidth(width, [&](auto n) {
    constexpr int64_t N = decltype(n)::value;
    if constexpr (N > 0 && N <= 16) {
      if (depth % Vector<T>::kLanes == 0) {
        return ProductWeightSumsTiled<T, N>(x, dz, depth, begin, end, partial);
      }
    }
    ProductWeightSums<T, N>(x, dz, depth, width, begin, end, partial);
  });
}

// out[m] = the sum over chunks c, in order, of partial[c * size + m], in double.
template <typename T>
void SumChunks(const std::vector<T>& partial, int64_t chunks, int64_t size, T* out) {
  std::vector<double> sums(size, 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    const T* chunk = partial.data() + c * size;
    for (int64_t m = 0; m < size; ++m) sums[m] += double(chunk[m]);
  }
  for (int64_t m = 0; m < size; ++m) out[m] = T(sums[m]);
}

// w^T: (width x depth) from (depth x width).
template <typename T>
std::vector<T> Transposed(const T* w, int64_t depth, int64_t width) {
  std::vector<T> out(depth * width);
  for (int64_t k = 0; k < depth; ++k) {
    for (int64_t n = 0; n < width; ++n) out[n * depth + k] = w[k * width + n];
  }
  return out;
}

}  // namespace invbench

#endif  // INVBENCH_PRODUCT_KERNELS_H_
