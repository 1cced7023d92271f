// Every stride-th row and column of an NHWC tensor, and the gradient of that:
// the input of a strided 1x1 convolution (a residual network's shortcut),
// which is then a matrix product (ops/conv2d.py). TensorFlow's general
// strided slice and its gradient took longer than the convolution they would
// replace (docs/benchmarks.md); these are one copy of whole pixels each way.

#ifndef INVBENCH_SUBSAMPLE_KERNELS_H_
#define INVBENCH_SUBSAMPLE_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace invbench {

struct SubsampleGeometry {
  int64_t batch, height, width, channels;
  int64_t row_stride, col_stride;
  int64_t out_height() const { return (height + row_stride - 1) / row_stride; }
  int64_t out_width() const { return (width + col_stride - 1) / col_stride; }
};

// y[b, i, j] = x[b, i * row_stride, j * col_stride] (whole pixels of C values)
// for the output rows [begin, end), a row being one (b, i).
template <typename T>
void SubsampleRows(const SubsampleGeometry& g, const T* x, T* y, int64_t begin, int64_t end) {
  const int64_t oh = g.out_height(), ow = g.out_width(), c = g.channels;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / oh, i = row % oh;
    const T* source = x + (b * g.height + i * g.row_stride) * g.width * c;
    T* target = y + row * ow * c;
    for (int64_t j = 0; j < ow; ++j) {
      std::memcpy(target + j * c, source + j * g.col_stride * c, c * sizeof(T));
    }
  }
}

// The gradient: dx[b, r, q] = dy[b, r / row_stride, q / col_stride] where both
// divide exactly, else zero, for the input rows [begin, end), a row being one (b, r).
template <typename T>
void SubsampleGradRows(const SubsampleGeometry& g, const T* dy, T* dx, int64_t begin,
                       int64_t end) {
  const int64_t oh = g.out_height(), ow = g.out_width(), c = g.channels;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / g.height, r = row % g.height;
    T* target = dx + row * g.width * c;
    if (r % g.row_stride != 0) {
      std::fill(target, target + g.width * c, T(0));
      continue;
    }
    const T* source = dy + (b * oh + r / g.row_stride) * ow * c;
    for (int64_t q = 0; q < g.width; ++q) {
      if (q % g.col_stride == 0) {
        std::memcpy(target + q * c, source + q / g.col_stride * c, c * sizeof(T));
      } else {
        std::fill(target + q * c, target + (q + 1) * c, T(0));
      }
    }
  }
}

}  // namespace invbench

#endif  // INVBENCH_SUBSAMPLE_KERNELS_H_
