// Training augmentation of a batch of uint8 images in one pass: a crop after
// zero padding and a horizontal flip, each image its own, written straight as
// float32 scaled to [0, 1]. It computes what data.pipelines.augment_batch and
// the scale after it compute in TensorFlow (a pad, two gathers, a cast and a
// division), bit for bit: the same source pixel or zero, and the same IEEE
// division by 255. TensorFlow's gathers copy CIFAR's 3-byte pixels one at a
// time, which made augmentation most of the pipeline's work, and the
// pipeline's threads take cores from the training step on a 2-core machine.

#ifndef INVBENCH_AUGMENT_KERNELS_H_
#define INVBENCH_AUGMENT_KERNELS_H_

#include <cstdint>

namespace invbench {

// out[b, i, j, c] = x[b, i + row_offset[b] - pad, col(j) - pad, c] / 255, zero
// where that lies outside the image; col(j) = col_offset[b] + j, or
// col_offset[b] + (width - 1 - j) where flip[b]. Offsets index the padded
// image, as augment_batch draws them (0 to 2 * pad).
inline void CropFlipScale(const uint8_t* x, int64_t images, int64_t height, int64_t width,
                          int64_t channels, const int32_t* row_offsets,
                          const int32_t* col_offsets, const bool* flips, int64_t pad,
                          float* out) {
  const int64_t row_size = width * channels;
  for (int64_t b = 0; b < images; ++b) {
    const uint8_t* image = x + b * height * row_size;
    for (int64_t i = 0; i < height; ++i) {
      float* target = out + (b * height + i) * row_size;
      const int64_t source_row = i + row_offsets[b] - pad;
      if (source_row < 0 || source_row >= height) {
        for (int64_t k = 0; k < row_size; ++k) target[k] = 0.0f;
        continue;
      }
      const uint8_t* row = image + source_row * row_size;
      for (int64_t j = 0; j < width; ++j) {
        const int64_t tap = flips[b] ? width - 1 - j : j;
        const int64_t source_col = col_offsets[b] + tap - pad;
        float* pixel = target + j * channels;
        if (source_col < 0 || source_col >= width) {
          for (int64_t c = 0; c < channels; ++c) pixel[c] = 0.0f;
          continue;
        }
        const uint8_t* source = row + source_col * channels;
        for (int64_t c = 0; c < channels; ++c) pixel[c] = float(source[c]) / 255.0f;
      }
    }
  }
}

}  // namespace invbench

#endif  // INVBENCH_AUGMENT_KERNELS_H_
