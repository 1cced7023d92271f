// Every native kernel against plain loops, element by element, on random
// data: the forward pass, the input gradient and the kernel gradient for
// strides 1 to 3, 1 to 13 groups of 3, 4, 8 or 16 channels, K 3 and 7 (and K as a
// run-time value), widths below, at and above a block of columns, and the
// kernel gradient with each width of block. Built by
// tests/test_native.py with each instruction-set level's flags, so the
// vector paths a CPU without AVX-512 takes are checked on any machine.
// Also attention's weights in one pass (the kernel gradient with the softmax
// epilogue), the softmax's gradient, and attention's backward pass fused into
// the aggregation's kernel gradient, for 1 to 7 heads. And augmentation's
// crop, flip and scaling, exactly, at every offset.
// Prints "bad cases: N" and exits non-zero when N > 0.

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "attention_grad_kernels.h"
#include "attention_kernels.h"
#include "augment_kernels.h"
#include "involution_kernels.h"

using invbench::Geometry;

namespace {

Geometry MakeGeometry(int64_t stride, int64_t groups, int64_t group_channels, int64_t kernel_size,
                      int64_t width) {
  Geometry g{};
  g.batch = 2;
  g.height = 9;
  g.width = width;
  g.group_channels = group_channels;
  g.groups = groups;
  g.channels = group_channels * groups;
  g.kernel_size = kernel_size;
  g.stride = stride;
  g.out_height = (g.height + stride - 1) / stride;
  g.out_width = (g.width + stride - 1) / stride;
  g.pad_top = std::max<int64_t>((g.out_height - 1) * stride + kernel_size - g.height, 0) / 2;
  g.pad_left = std::max<int64_t>((g.out_width - 1) * stride + kernel_size - g.width, 0) / 2;
  return g;
}

double MaxDifference(const std::vector<float>& actual, const std::vector<double>& expected) {
  double worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    worst = std::max(worst, std::fabs(actual[i] - expected[i]));
  }
  return worst;
}

// The three passes of one geometry against direct loops in double; true when all agree.
bool Check(const Geometry& g) {
  const int64_t k = g.kernel_size, taps = k * k, positions = g.out_height * g.out_width;
  std::vector<float> x(g.batch * g.height * g.width * g.channels);
  std::vector<float> dy(g.batch * positions * g.channels);
  std::vector<float> kernel(g.batch * positions * taps * g.groups);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (auto* values : {&x, &dy, &kernel}) {
    for (float& value : *values) value = normal(rng);
  }
  std::vector<double> y_ref(dy.size()), dx_ref(x.size()), dk_ref(kernel.size());
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t i = 0; i < g.out_height; ++i) {
      for (int64_t j = 0; j < g.out_width; ++j) {
        const int64_t position = (b * g.out_height + i) * g.out_width + j;
        for (int64_t u = 0; u < k; ++u) {
          for (int64_t v = 0; v < k; ++v) {
            const int64_t row = i * g.stride + u - g.pad_top, col = j * g.stride + v - g.pad_left;
            if (row < 0 || row >= g.height || col < 0 || col >= g.width) continue;
            const int64_t pixel = (b * g.height + row) * g.width + col;
            for (int64_t group = 0; group < g.groups; ++group) {
              const int64_t tap = (position * taps + u * k + v) * g.groups + group;
              for (int64_t c = group * g.group_channels; c < (group + 1) * g.group_channels;
                   ++c) {
                y_ref[position * g.channels + c] += double(kernel[tap]) * x[pixel * g.channels + c];
                dx_ref[pixel * g.channels + c] += double(kernel[tap]) * dy[position * g.channels + c];
                dk_ref[tap] += double(dy[position * g.channels + c]) * x[pixel * g.channels + c];
              }
            }
          }
        }
      }
    }
  }
  std::vector<float> y(dy.size()), dx(x.size()), dk(kernel.size()), dk_general(kernel.size());
  std::vector<float> dk4(kernel.size()), dk8(kernel.size());
  invbench::WithGroupChannels(g.group_channels, [&](auto group_channels) {
    constexpr int64_t CG = decltype(group_channels)::value;
    invbench::ForwardRows<float, CG>(g, x.data(), kernel.data(), y.data(), 0,
                                     g.batch * g.out_height);
    invbench::InputGradImages<float, CG>(g, dy.data(), kernel.data(), dx.data(), 0, g.batch);
  });
  invbench::KernelGradScratch<float> scratch;
  invbench::WithKernelSize(k, [&](auto size) {
    invbench::WithColumns(g.out_width, [&](auto columns) {
      for (int64_t b = 0; b < g.batch; ++b) {
        invbench::KernelGradImage<float, decltype(size)::value, decltype(columns)::value>(
            g, dy.data(), x.data(), dk.data(), b, scratch);
      }
    });
  });
  for (int64_t b = 0; b < g.batch; ++b) {  // the run-time kernel size's path
    invbench::KernelGradImage<float, 0>(g, dy.data(), x.data(), dk_general.data(), b, scratch);
  }
  for (int64_t b = 0; b < g.batch; ++b) {  // narrower blocks of columns, whatever the width
    invbench::KernelGradImage<float, 0, 4>(g, dy.data(), x.data(), dk4.data(), b, scratch);
    invbench::KernelGradImage<float, 0, 8>(g, dy.data(), x.data(), dk8.data(), b, scratch);
  }
  const double tolerance = 1e-3;  // float32 sums of at most 49 * 16 terms of size ~1
  const double errors[] = {MaxDifference(y, y_ref),          MaxDifference(dx, dx_ref),
                           MaxDifference(dk, dk_ref),        MaxDifference(dk_general, dk_ref),
                           MaxDifference(dk4, dk_ref),       MaxDifference(dk8, dk_ref)};
  for (double error : errors) {
    if (!(error <= tolerance)) {
      std::printf(
          "stride %lld, %lld groups of %lld, K=%lld, width %lld: errors %g %g %g %g %g %g\n",
          (long long)g.stride, (long long)g.groups, (long long)g.group_channels, (long long)k,
          (long long)g.width, errors[0], errors[1], errors[2], errors[3], errors[4], errors[5]);
      return false;
    }
  }
  return true;
}

// Attention's softmax gradient against double loops over the taps inside the
// image, from the exact weights; heads 0 runs the run-time head count's path.
// A factored (K, D) embedding's every tap, (K*K, D): rows in the first D / 2
// channels, columns in the rest.
std::vector<float> FullEmbedding(const std::vector<float>& factored, int64_t kernel_size,
                                 int64_t depth) {
  std::vector<float> full(kernel_size * kernel_size * depth);
  for (int64_t u = 0; u < kernel_size; ++u) {
    for (int64_t v = 0; v < kernel_size; ++v) {
      for (int64_t d = 0; d < depth; ++d) {
        full[(u * kernel_size + v) * depth + d] = factored[(d < depth / 2 ? u : v) * depth + d];
      }
    }
  }
  return full;
}

template <int64_t G>
bool CheckSoftmax(int64_t heads, int64_t depth, int64_t kernel_size, int64_t width,
                  bool factored = false) {
  invbench::SoftmaxGeometry g{2, 6, width, kernel_size, heads, depth};
  g.factored = factored;
  const int64_t taps = g.taps(), pad = kernel_size / 2;
  std::vector<float> content(g.positions() * taps * heads), upstream(content.size());
  std::vector<float> queries(g.positions() * g.channels()), given(g.embedding_size());
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  for (auto* values : {&content, &upstream, &queries, &given}) {
    for (float& value : *values) value = 2 * normal(rng);
  }
  const std::vector<float> relative = factored ? FullEmbedding(given, kernel_size, depth) : given;
  std::vector<double> w_ref(content.size()), dc_ref(content.size());
  std::vector<double> dq_ref(queries.size()), dr_ref(relative.size());
  const double scale = 1 / std::sqrt(double(depth));
  for (int64_t p = 0; p < g.positions(); ++p) {
    const int64_t i = p / width % g.height, j = p % width;
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> z(taps, -INFINITY);
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t row = i + t / kernel_size - pad, col = j + t % kernel_size - pad;
        if (row < 0 || row >= g.height || col < 0 || col >= width) continue;
        double logit = content[(p * taps + t) * heads + h];
        for (int64_t d = 0; d < depth; ++d) {
          logit += double(queries[p * g.channels() + h * depth + d]) * relative[t * depth + d];
        }
        z[t] = logit * scale;
      }
      const double top = *std::max_element(z.begin(), z.end());
      double total = 0, dot = 0;
      for (double& value : z) total += value = std::exp(value - top);
      for (int64_t t = 0; t < taps; ++t) {
        w_ref[(p * taps + t) * heads + h] = z[t] / total;
        dot += z[t] / total * upstream[(p * taps + t) * heads + h];
      }
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t at = (p * taps + t) * heads + h;
        const double dz = w_ref[at] * (upstream[at] - dot) * scale;
        dc_ref[at] = dz;
        for (int64_t d = 0; d < depth; ++d) {
          dq_ref[p * g.channels() + h * depth + d] += dz * relative[t * depth + d];
          dr_ref[t * depth + d] += dz * queries[p * g.channels() + h * depth + d];
        }
      }
    }
  }
  std::vector<float> w(w_ref.begin(), w_ref.end()), dc(content.size()), dq(queries.size());
  const int64_t rows = g.batch * g.height;
  const invbench::SoftmaxPlan<float> plan(g, given.data());
  std::vector<float> dr_transposed(depth * invbench::PaddedTaps<float>(g));
  invbench::SoftmaxGradRows<float, G>(g, plan, w.data(), upstream.data(), queries.data(),
                                      dc.data(), dq.data(), dr_transposed.data(), 0, rows);
  std::vector<float> dr(relative.size());  // every tap's: the op folds a factored one after
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t d = 0; d < depth; ++d) {
      dr[t * depth + d] = dr_transposed[d * invbench::PaddedTaps<float>(g) + t];
    }
  }
  // The gradients sum up to 49 terms of ~10; float32 keeps about 1e-6 of them.
  const double errors[] = {MaxDifference(dc, dc_ref), MaxDifference(dq, dq_ref),
                           MaxDifference(dr, dr_ref) / 100};
  for (double error : errors) {
    if (!(error <= 1e-4)) {
      std::printf(
          "softmax gradient: %lld heads of %lld, K=%lld, width %lld%s: errors %g %g %g\n",
          (long long)heads, (long long)depth, (long long)kernel_size, (long long)width,
          factored ? ", factored" : "", errors[0], errors[1], errors[2]);
      return false;
    }
  }
  return true;
}

// The weights in one pass (the kernel gradient with the softmax epilogue),
// with each width of block, against double loops: logits q . (k + r),
// scaled, masked and normalized over the taps inside the image.
bool CheckAttentionWeights(int64_t heads, int64_t depth, int64_t kernel_size, int64_t width,
                           bool factored = false) {
  const Geometry g = MakeGeometry(1, heads, depth, kernel_size, width);
  invbench::SoftmaxGeometry s{g.batch, g.height, g.width, kernel_size, heads, depth};
  s.factored = factored;
  const int64_t taps = g.taps(), pad = kernel_size / 2;
  std::vector<float> q(g.batch * g.height * g.width * g.channels), k(q.size());
  std::vector<float> given(s.embedding_size());
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (auto* values : {&q, &k, &given}) {
    for (float& value : *values) value = normal(rng);
  }
  const std::vector<float> relative = factored ? FullEmbedding(given, kernel_size, depth) : given;
  std::vector<double> expected(g.batch * g.height * g.width * taps * heads, 0.0);
  for (int64_t p = 0; p < g.batch * g.height * g.width; ++p) {
    const int64_t b = p / (g.height * width), i = p / width % g.height, j = p % width;
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> z(taps, -INFINITY);
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t row = i + t / kernel_size - pad, col = j + t % kernel_size - pad;
        if (row < 0 || row >= g.height || col < 0 || col >= width) continue;
        const int64_t pixel = (b * g.height + row) * width + col;
        double logit = 0;
        for (int64_t d = 0; d < depth; ++d) {
          const int64_t c = h * depth + d;
          logit += double(q[p * g.channels + c]) *
                   (double(k[pixel * g.channels + c]) + relative[t * depth + d]);
        }
        z[t] = logit / std::sqrt(double(depth));
      }
      const double top = *std::max_element(z.begin(), z.end());
      double total = 0;
      for (double& value : z) total += value = std::exp(value - top);
      for (int64_t t = 0; t < taps; ++t) expected[(p * taps + t) * heads + h] = z[t] / total;
    }
  }
  const invbench::SoftmaxEpilogue<float> epilogue{s, given.data(),
                                                  1.0f / std::sqrt(float(depth))};
  invbench::KernelGradScratch<float> scratch;
  bool good = true;
  auto check = [&](auto columns) {
    std::vector<float> weights(expected.size());
    for (int64_t b = 0; b < g.batch; ++b) {
      invbench::KernelGradImage<float, 0, decltype(columns)::value>(g, q.data(), k.data(),
                                                                    weights.data(), b, scratch,
                                                                    epilogue);
    }
    const double error = MaxDifference(weights, expected);
    if (!(error <= 1e-5)) {
      std::printf("weights: %lld heads of %lld, K=%lld, width %lld, %lld columns%s: error %g\n",
                  (long long)heads, (long long)depth, (long long)kernel_size, (long long)width,
                  (long long)decltype(columns)::value, factored ? ", factored" : "", error);
      good = false;
    }
  };
  check(std::integral_constant<int64_t, 4>());
  check(std::integral_constant<int64_t, 8>());
  check(std::integral_constant<int64_t, invbench::kColumns>());
  return good;
}

// Attention's backward pass fused into the aggregation's kernel gradient
// (SoftmaxGradEpilogue), with each width of block, against double loops:
// dw[t, h] = dout . v[neighbour t] over the head's channels, then the
// softmax's and the position term's gradients as in CheckSoftmax.
bool CheckAttentionGrad(int64_t heads, int64_t depth, int64_t kernel_size, int64_t width,
                        bool factored) {
  const Geometry g = MakeGeometry(1, heads, depth, kernel_size, width);
  invbench::SoftmaxGeometry s{g.batch, g.height, g.width, kernel_size, heads, depth};
  s.factored = factored;
  const int64_t taps = g.taps(), pad = kernel_size / 2, positions = g.batch * g.height * width;
  std::vector<float> dout(positions * g.channels), v(dout.size()), q(dout.size());
  std::vector<float> w(positions * taps * heads), given(s.embedding_size());
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  for (auto* values : {&dout, &v, &q, &given}) {
    for (float& value : *values) value = normal(rng);
  }
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  auto inside = [&](int64_t p, int64_t t) {
    const int64_t i = p / width % g.height, j = p % width;
    const int64_t row = i + t / kernel_size - pad, col = j + t % kernel_size - pad;
    return row >= 0 && row < g.height && col >= 0 && col < width;
  };
  for (int64_t p = 0; p < positions; ++p) {  // weights as a softmax leaves them: 0 outside
    for (int64_t n = 0; n < taps * heads; ++n) {
      w[p * taps * heads + n] = inside(p, n / heads) ? uniform(rng) : 0.0f;
    }
  }
  const std::vector<float> relative = factored ? FullEmbedding(given, kernel_size, depth) : given;
  std::vector<double> dc_ref(w.size()), dq_ref(q.size()), dr_ref(given.size());
  const double scale = 1 / std::sqrt(double(depth));
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> dw(taps, 0.0);
      double dot = 0;
      for (int64_t t = 0; t < taps; ++t) {
        if (!inside(p, t)) continue;
        const int64_t pixel = p + (t / kernel_size - pad) * width + t % kernel_size - pad;
        for (int64_t d = 0; d < depth; ++d) {
          const int64_t c = h * depth + d;
          dw[t] += double(dout[p * g.channels + c]) * v[pixel * g.channels + c];
        }
        dot += w[(p * taps + t) * heads + h] * dw[t];
      }
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t at = (p * taps + t) * heads + h;
        const double dz = w[at] * (dw[t] - dot) * scale;
        dc_ref[at] = dz;
        for (int64_t d = 0; d < depth; ++d) {
          const int64_t n = factored ? invbench::FactoredIndex(s, t, d) : t * depth + d;
          dq_ref[p * g.channels + h * depth + d] += dz * relative[t * depth + d];
          dr_ref[n] += dz * q[p * g.channels + h * depth + d];
        }
      }
    }
  }
  invbench::KernelGradScratch<float> scratch;
  bool good = true;
  auto check = [&](auto columns) {
    std::vector<float> dc(w.size()), dq(q.size()), per_image(g.batch * given.size());
    const invbench::SoftmaxGradEpilogue<float, float> epilogue{
        s, w.data(), q.data(), given.data(), float(scale), dq.data(), per_image.data()};
    for (int64_t b = 0; b < g.batch; ++b) {
      invbench::KernelGradImage<float, 0, decltype(columns)::value>(g, dout.data(), v.data(),
                                                                    dc.data(), b, scratch,
                                                                    epilogue);
    }
    std::vector<float> dr(given.size(), 0.0f);
    for (int64_t b = 0; b < g.batch; ++b) {
      for (size_t n = 0; n < dr.size(); ++n) dr[n] += per_image[b * dr.size() + n];
    }
    // dw sums D products of ~1; the embedding's gradient, positions * taps terms.
    const double errors[] = {MaxDifference(dc, dc_ref), MaxDifference(dq, dq_ref),
                             MaxDifference(dr, dr_ref) / 100};
    for (double error : errors) {
      if (!(error <= 1e-4)) {
        std::printf(
            "attention gradient: %lld heads of %lld, K=%lld, width %lld, %lld columns%s: "
            "errors %g %g %g\n",
            (long long)heads, (long long)depth, (long long)kernel_size, (long long)width,
            (long long)decltype(columns)::value, factored ? ", factored" : "", errors[0],
            errors[1], errors[2]);
        good = false;
        return;
      }
    }
  };
  check(std::integral_constant<int64_t, 4>());
  check(std::integral_constant<int64_t, 8>());
  check(std::integral_constant<int64_t, invbench::kColumns>());
  return good;
}

// Every row and column offset in [0, 2 * pad], with and without the flip,
// against an index-by-index loop: the same pixel, or zero, divided by 255
// (the division in double, rounded once to float, is the float division).
bool CheckCropFlipScale(int64_t height, int64_t width, int64_t channels, int64_t pad) {
  const int64_t span = 2 * pad + 1, images = span * span * 2;
  std::mt19937 random(7);
  std::vector<uint8_t> x(images * height * width * channels);
  for (auto& value : x) value = static_cast<uint8_t>(random() % 256);
  std::vector<int32_t> rows(images), cols(images);
  std::unique_ptr<bool[]> flips(new bool[images]);  // std::vector<bool> has no data()
  for (int64_t b = 0; b < images; ++b) {
    rows[b] = static_cast<int32_t>(b / 2 / span);
    cols[b] = static_cast<int32_t>(b / 2 % span);
    flips[b] = b % 2 == 1;
  }
  std::vector<float> out(x.size(), -1.0f);
  invbench::CropFlipScale(x.data(), images, height, width, channels, rows.data(), cols.data(),
                          flips.get(), pad, out.data());
  int64_t wrong = 0;
  for (int64_t b = 0; b < images; ++b) {
    for (int64_t i = 0; i < height; ++i) {
      for (int64_t j = 0; j < width; ++j) {
        const int64_t r = i + rows[b] - pad;
        const int64_t c = (flips[b] ? width - 1 - j : j) + cols[b] - pad;
        for (int64_t k = 0; k < channels; ++k) {
          const bool inside = r >= 0 && r < height && c >= 0 && c < width;
          const double pixel = inside ? x[((b * height + r) * width + c) * channels + k] : 0;
          const float expected = static_cast<float>(pixel / 255.0);
          wrong += out[((b * height + i) * width + j) * channels + k] != expected;
        }
      }
    }
  }
  if (wrong) {
    std::printf("crop, flip and scale %lldx%lldx%lld pad %lld: %lld wrong\n",
                static_cast<long long>(height), static_cast<long long>(width),
                static_cast<long long>(channels), static_cast<long long>(pad),
                static_cast<long long>(wrong));
  }
  return wrong == 0;
}

}  // namespace

int main() {
  int bad = 0;
  for (int64_t stride : {1, 2, 3}) {
    for (int64_t groups : {1, 2, 4, 13}) {
      for (int64_t group_channels : {3, 4, 8, 16}) {
        for (int64_t kernel_size : {3, 7}) {
          for (int64_t width : {5, 16, 19, 33}) {
            bad += !Check(MakeGeometry(stride, groups, group_channels, kernel_size, width));
          }
        }
      }
    }
  }
  for (int64_t kernel_size : {3, 7}) {
    for (int64_t width : {5, 16}) {
      bad += !CheckSoftmax<1>(1, 8, kernel_size, width);
      bad += !CheckSoftmax<3>(3, 8, kernel_size, width);
      bad += !CheckSoftmax<5>(5, 3, kernel_size, width);
      bad += !CheckSoftmax<0>(7, 2, kernel_size, width);
      bad += !CheckAttentionWeights(1, 8, kernel_size, width);
      bad += !CheckAttentionWeights(3, 4, kernel_size, width);
      bad += !CheckAttentionWeights(2, 3, kernel_size, width + 14);
      // Factored embeddings, (K, D), as local attention's layer gives them.
      bad += !CheckSoftmax<1>(1, 8, kernel_size, width, true);
      bad += !CheckSoftmax<3>(3, 8, kernel_size, width, true);
      bad += !CheckSoftmax<5>(5, 3, kernel_size, width, true);
      bad += !CheckSoftmax<0>(7, 2, kernel_size, width, true);
      bad += !CheckAttentionWeights(1, 8, kernel_size, width, true);
      bad += !CheckAttentionWeights(3, 4, kernel_size, width, true);
      bad += !CheckAttentionWeights(2, 3, kernel_size, width + 14, true);
      for (bool factored : {false, true}) {
        bad += !CheckAttentionGrad(1, 8, kernel_size, width, factored);
        bad += !CheckAttentionGrad(3, 4, kernel_size, width, factored);
        bad += !CheckAttentionGrad(2, 3, kernel_size, width + 14, factored);
        bad += !CheckAttentionGrad(6, 2, kernel_size, width + 3, factored);
      }
    }
  }
  bad += !CheckCropFlipScale(32, 32, 3, 4);
  bad += !CheckCropFlipScale(6, 5, 1, 4);
  bad += !CheckCropFlipScale(7, 9, 4, 2);
  bad += !CheckCropFlipScale(3, 3, 3, 0);
  std::printf("bad cases: %d\n", bad);
  return bad != 0;
}
