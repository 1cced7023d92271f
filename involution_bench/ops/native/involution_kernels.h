// Involution's arithmetic on raw NHWC buffers: the forward pass and both
// gradients, free of TensorFlow so that they can be read, tested and timed on
// their own. involution_ops.cc wraps them as TensorFlow ops.
//
// For output position (i, j) and channel c in group g = c / (C / G):
//   out[b, i, j, c] = sum_{u, v} kernel[b, i, j, u*K + v, g] * x[b, i*s + u - pt, j*s + v - pl, c]
// with TF "SAME" padding (pt, pl).
//
// The forward pass runs over a pixel's contiguous channels: when a group
// fills whole vectors (16 floats with AVX-512), every group of the pixel is
// summed at once, a vector of sums per 16 channels held in registers, each
// term one broadcast weight times one loaded vector (SumWindow). The input
// gradient visits the same windows, output by output, and adds each term to
// its input pixel (ScatterWindow), so that both read the kernel in order.
// The kernel gradient, whose sums run over channels, works on channel-major
// copies and vectorizes over output columns instead, then writes its blocks
// transposed (KernelGradImage). Every sum runs in a fixed order, so results
// are the same from run to run and thread count to thread count.

#ifndef INVBENCH_INVOLUTION_KERNELS_H_
#define INVBENCH_INVOLUTION_KERNELS_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace invbench {

// What sums accumulate in: the type itself, unless specialized (the op file
// makes it float for bfloat16).
template <typename T>
struct Accumulator {
  using type = T;
};
template <typename T>
using Acc = typename Accumulator<T>::type;

struct Geometry {
  int64_t batch, height, width, channels;
  int64_t out_height, out_width;
  int64_t kernel_size, stride, groups, group_channels;
  int64_t pad_top, pad_left;
  int64_t taps() const { return kernel_size * kernel_size; }
};

// Vectors of one register through the compilers' vector extension (GCC,
// Clang): 64 bytes with AVX-512, 32 with AVX, 16 otherwise. The hottest
// loops name the values that share a register rather than leave it to the
// auto-vectorizer, which turned sums over several groups into gathers. (A
// vector wider than the target's registers compiles to slow code: 64-byte
// vectors under AVX2 ran the forward pass at a third of its 32-byte speed.)
#if defined(__AVX512F__)
constexpr int64_t kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int64_t kVectorBytes = 32;
#else
constexpr int64_t kVectorBytes = 16;
#endif

template <typename A, int64_t Bytes = kVectorBytes>
struct Vector {
  static constexpr int64_t kLanes = Bytes / sizeof(A);
  typedef A type __attribute__((vector_size(Bytes)));
};

// Calls body(std::integral_constant<int64_t, V>()) for the one of VALUES that
// equals value, else body with 0: the value known only at run time. The
// kernels' hottest loops are generated for their common sizes this way.
template <int64_t... VALUES, typename Body>
void WithConstant(int64_t value, Body&& body) {
  bool found = false;
  ((!found && value == VALUES ? (found = true, body(std::integral_constant<int64_t, VALUES>()))
                              : void()),
   ...);
  if (!found) body(std::integral_constant<int64_t, 0>());
}

// The widest vector, at most a register and at least 16 bytes, that a group
// of CG channels of A fills a whole number of times (0: none). Within such a
// vector every channel shares one kernel weight, a broadcast: 8-channel
// groups (attention's heads) take 32-byte vectors even where registers are 64.
template <typename A, int64_t CG>
constexpr int64_t GroupVectorBytes() {
  int64_t bytes = kVectorBytes;
  while (bytes >= 16 && (CG * int64_t(sizeof(A))) % bytes != 0) bytes /= 2;
  return CG != 0 && bytes >= 16 ? bytes : 0;
}

// Whether groups of CG channels are summed in whole vectors (SumVectors).
template <typename A, int64_t CG>
constexpr bool kWholeVectors = GroupVectorBytes<A, CG>() != 0;

// Whether T holds bfloat16 bits (the op file says so of tensorflow::bfloat16):
// such values widen to float exactly by a 16-bit shift, which vector code
// can do many at a time.
template <typename T>
struct IsBfloat16 : std::false_type {};

template <typename A, typename T>
constexpr bool kBfloat16Floats = std::is_same_v<A, float> && IsBfloat16<T>::value;

// One value widened to A (bfloat16 by its bits, which compilers inline).
template <typename A, typename T>
inline A Widen(const T& value) {
  if constexpr (kBfloat16Floats<A, T>) {
    uint16_t half;
    std::memcpy(&half, &value, sizeof(half));
    const uint32_t bits = static_cast<uint32_t>(half) << 16;
    A widened;
    std::memcpy(&widened, &bits, sizeof(widened));
    return widened;
  } else {
    return static_cast<A>(value);
  }
}

template <typename A, int64_t Bytes = kVectorBytes, typename T>
inline typename Vector<A, Bytes>::type LoadVector(const T* source) {
  typename Vector<A, Bytes>::type v;
  if constexpr (std::is_same_v<A, T>) {
    std::memcpy(&v, source, sizeof(v));
#ifdef __AVX512F__
  } else if constexpr (kBfloat16Floats<A, T> && Bytes == 64) {
    // One zero-extending load and one shift: converting value by value costs
    // several shuffles per vector on the port the multiply-adds also need.
    const __m512i bits = _mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(source))), 16);
    std::memcpy(&v, &bits, sizeof(v));
#endif
  } else {
    for (int64_t lane = 0; lane < Vector<A, Bytes>::kLanes; ++lane) {
      v[lane] = Widen<A>(source[lane]);
    }
  }
  return v;
}

template <typename A, int64_t Bytes = kVectorBytes, typename T>
inline void StoreVector(T* target, const typename Vector<A, Bytes>::type& v) {
  if constexpr (std::is_same_v<A, T>) {
    std::memcpy(target, &v, sizeof(v));
  } else {
    for (int64_t lane = 0; lane < Vector<A, Bytes>::kLanes; ++lane) {
      target[lane] = static_cast<T>(v[lane]);
    }
  }
}

// The most vectors of sums one block keeps in registers (8 of AVX-512's 32).
// Several independent sums also let the multiply-adds overlap: a single one
// would wait on the adder's latency at every term.
constexpr int64_t kBlockVectors = 8;

// Calls body(first, n) for blocks covering [first, count), n an integral
// constant: blocks of N, then of N/2, ..., 1, at most one of each, so every
// block's loops unroll fully.
template <int64_t N, typename Body>
inline void RemainingBlocks(int64_t first, int64_t count, Body& body) {
  if (first + N <= count) {
    body(first, std::integral_constant<int64_t, N>());
    first += N;
  }
  if constexpr (N > 1) RemainingBlocks<N / 2>(first, count, body);
}

// Calls body(first, n) for blocks of n vectors covering [0, count) vectors:
// whole blocks of kBlockVectors, then the rest in halving powers of two.
template <typename Body>
inline void ForEachVectorBlock(int64_t count, Body&& body) {
  int64_t first = 0;
  for (; first + kBlockVectors <= count; first += kBlockVectors) {
    body(first, std::integral_constant<int64_t, kBlockVectors>());
  }
  RemainingBlocks<kBlockVectors / 2>(first, count, body);
}

// Sums over a window for NV vectors of channels from channel c0, when groups
// fill whole vectors: sums[n] += w[group of vector n] * in[c0 + n * lanes ...]
// for every term that `terms(add)` passes as add(w, in), w pointing at the
// weight of c0's group and in at channel c0. Stored into out (at c0).
template <typename T, int64_t CG, int64_t NV, typename Terms>
inline void SumVectors(T* out, Terms&& terms) {
  using A = Acc<T>;
  constexpr int64_t kBytes = GroupVectorBytes<A, CG>();
  using V = typename Vector<A, kBytes>::type;
  constexpr int64_t L = Vector<A, kBytes>::kLanes;
  V sums[NV] = {};
  terms([&](const auto* w, const auto* in) {
    for (int64_t n = 0; n < NV; ++n) {
      sums[n] += LoadVector<A, kBytes>(in + n * L) * Widen<A>(w[n * L / CG]);
    }
  });
  for (int64_t n = 0; n < NV; ++n) StoreVector<A, kBytes>(out + n * L, sums[n]);
}

// Calls body(std::integral_constant<int64_t, CG>()) with the group's channel
// count as a compile-time constant for the common sizes, so the channel loops
// unroll into whole vector registers and the sums stay in registers; 0 means
// "known only at run time" (a slower, general loop).
template <typename Body>
void WithGroupChannels(int64_t group_channels, Body body) {
  WithConstant<1, 2, 3, 4, 8, 16, 32, 64>(group_channels, body);
}

// The taps of one axis that land inside the image, for output index `index`:
// [first, last) with source = index * stride - pad + tap.
struct TapRange {
  int64_t first, last, source;
};

inline TapRange ForwardTaps(int64_t index, int64_t stride, int64_t pad, int64_t size,
                            int64_t kernel_size) {
  const int64_t source = index * stride - pad;
  return {std::max<int64_t>(0, -source), std::min<int64_t>(kernel_size, size - source), source};
}

// Calls visit(b, rows, cols, position) for each output position of the
// output rows [begin, end) (a row is one (b, i)), with the window's taps
// that fall inside the input. A template, so the visit inlines.
template <typename Visit>
inline void ForEachOutput(const Geometry& g, int64_t begin, int64_t end, Visit&& visit) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / g.out_height, i = row % g.out_height;
    const TapRange rows = ForwardTaps(i, g.stride, g.pad_top, g.height, g.kernel_size);
    for (int64_t j = 0; j < g.out_width; ++j) {
      const TapRange cols = ForwardTaps(j, g.stride, g.pad_left, g.width, g.kernel_size);
      visit(b, rows, cols, row * g.out_width + j);
    }
  }
}

// The sums of one window for every group, stored into out (a pixel's
// channels): out[c] = sum over the window's terms of w[group of c] * in[c],
// for every term that `terms(add)` passes as add(w, in), w pointing at the
// term's weights of all groups and in at its pixel's channels.
template <typename T, int64_t CG, typename Terms>
inline void SumWindow(const Geometry& g, Acc<T>* general, T* out, Terms&& terms) {
  using A = Acc<T>;
  if constexpr (kWholeVectors<A, CG>) {
    constexpr int64_t L = Vector<A, GroupVectorBytes<A, CG>()>::kLanes;
    ForEachVectorBlock(g.channels / L, [&](int64_t first, auto n) {
      const int64_t c0 = first * L;
      SumVectors<T, CG, decltype(n)::value>(out + c0, [&](auto&& add) {
        terms([&](const auto* w, const auto* in) { add(w + c0 / CG, in + c0); });
      });
    });
  } else {
    const int64_t cg = CG ? CG : g.group_channels;
    for (int64_t group = 0; group < g.groups; ++group) {
      A fixed[CG ? CG : 1] = {};  // in registers when the group size is a constant
      A* sum = CG ? fixed : general;
      if constexpr (CG == 0) std::fill(general, general + cg, A(0));
      terms([&](const auto* w, const auto* pixel) {
        const A weight = Widen<A>(w[group]);
        const auto* in = pixel + group * cg;
        for (int64_t c = 0; c < (CG ? CG : cg); ++c) sum[c] += weight * Widen<A>(in[c]);
      });
      for (int64_t c = 0; c < (CG ? CG : cg); ++c) out[group * cg + c] = static_cast<T>(sum[c]);
    }
  }
}

// values[0, count) widened into target (resized to count).
template <typename A, typename T>
void WidenInto(const T* values, int64_t count, std::vector<A>& target) {
  constexpr int64_t L = Vector<A>::kLanes;
  target.resize(count);
  const int64_t whole = count / L * L;
  for (int64_t i = 0; i < whole; i += L) {
    const typename Vector<A>::type v = LoadVector<A>(values + i);
    std::memcpy(target.data() + i, &v, sizeof(v));
  }
  for (int64_t i = whole; i < count; ++i) target[i] = Widen<A>(values[i]);
}

// Forward pass over output rows [begin, end), each position's K*K*G weights
// from weights_at(position): a pointer to them, in T or in Acc<T>, valid
// until the next call (the fused span op generates them into a buffer).
template <typename T, int64_t CG, typename WeightsAt>
void ForwardRowsWith(const Geometry& g, const T* x, WeightsAt&& weights_at, T* y, int64_t begin,
                     int64_t end) {
  using A = Acc<T>;
  std::vector<A> general(CG ? 0 : g.group_channels);  // a run-time group size's sums
  ForEachOutput(g, begin, end, [&](int64_t b, const TapRange& rows, const TapRange& cols,
                                   int64_t position) {
    const auto* weights = weights_at(position);
    T* out = y + position * g.channels;
    // The window's taps, each as add(weights of its groups, its input pixel).
    auto window = [&](auto&& add) {
      for (int64_t u = rows.first; u < rows.last; ++u) {
        const T* in_row =
            x + ((b * g.height + rows.source + u) * g.width + cols.source) * g.channels;
        const auto* tap_row = weights + u * g.kernel_size * g.groups;
        for (int64_t v = cols.first; v < cols.last; ++v) {
          add(tap_row + v * g.groups, in_row + v * g.channels);
        }
      }
    };
    SumWindow<T, CG>(g, general.data(), out, window);
  });
}

// Forward pass over output rows [begin, end) with the kernel k in memory.
template <typename T, int64_t CG>
void ForwardRows(const Geometry& g, const T* x, const T* k, T* y, int64_t begin, int64_t end) {
  using A = Acc<T>;
  std::vector<A> widened;  // bfloat16: a window's weights widened once, not at each use
  ForwardRowsWith<T, CG>(
      g, x,
      [&](int64_t position) {
        const T* stored = k + position * g.taps() * g.groups;
        if constexpr (std::is_same_v<A, T>) {
          return stored;
        } else {
          WidenInto(stored, g.taps() * g.groups, widened);
          return static_cast<const A*>(widened.data());
        }
      },
      y, begin, end);
}

// Adds one output position's terms to the input gradient of its window:
// sums[pixel, c] += w[tap, group of c] * upstream[c] for each tap inside the
// image (rows, cols as in the forward pass), where `weights` are the
// position's K*K*G kernel values and `upstream` its gradient (C values).
// With groups filling whole vectors, NV vectors of the upstream gradient
// stay in registers while the window's taps are visited.
template <typename T, int64_t CG, typename W>
inline void ScatterWindow(const Geometry& g, const W* weights, const T* upstream, Acc<T>* sums,
                          const TapRange& rows, const TapRange& cols) {
  using A = Acc<T>;
  if constexpr (kWholeVectors<A, CG>) {
    constexpr int64_t kBytes = GroupVectorBytes<A, CG>();
    using V = typename Vector<A, kBytes>::type;
    constexpr int64_t L = Vector<A, kBytes>::kLanes;
    ForEachVectorBlock(g.channels / L, [&](int64_t first, auto n) {
      constexpr int64_t NV = decltype(n)::value;
      const int64_t c0 = first * L;
      V gradient[NV];
      for (int64_t q = 0; q < NV; ++q) gradient[q] = LoadVector<A, kBytes>(upstream + c0 + q * L);
      for (int64_t u = rows.first; u < rows.last; ++u) {
        A* row = sums + ((rows.source + u) * g.width + cols.source) * g.channels + c0;
        const W* tap_row = weights + u * g.kernel_size * g.groups + c0 / CG;
        for (int64_t v = cols.first; v < cols.last; ++v) {
          A* target = row + v * g.channels;
          const W* w = tap_row + v * g.groups;
          for (int64_t q = 0; q < NV; ++q) {
            V sum;
            std::memcpy(&sum, target + q * L, sizeof(sum));
            sum += gradient[q] * Widen<A>(w[q * L / CG]);
            std::memcpy(target + q * L, &sum, sizeof(sum));
          }
        }
      }
    });
  } else {
    const int64_t cg = CG ? CG : g.group_channels;
    for (int64_t u = rows.first; u < rows.last; ++u) {
      for (int64_t v = cols.first; v < cols.last; ++v) {
        A* target = sums + ((rows.source + u) * g.width + cols.source + v) * g.channels;
        const W* w = weights + (u * g.kernel_size + v) * g.groups;
        for (int64_t group = 0; group < g.groups; ++group) {
          const A weight = Widen<A>(w[group]);
          for (int64_t c = group * cg; c < (group + 1) * cg; ++c) {
            target[c] += weight * Widen<A>(upstream[c]);
          }
        }
      }
    }
  }
}

// ScatterWindow for two neighbouring outputs of one row at once, when
// groups fill whole vectors: their windows overlap in all but `stride`
// columns, and each overlapped pixel is loaded and stored once for both
// terms instead of once for each. The first output's term is added first,
// as ScatterWindow would, so the sums are the same to the bit.
template <typename T, int64_t CG, typename W>
inline void ScatterPair(const Geometry& g, const W* weights0, const T* upstream0,
                        const W* weights1, const T* upstream1, Acc<T>* sums,
                        const TapRange& rows, const TapRange& cols0, const TapRange& cols1) {
  using A = Acc<T>;
  constexpr int64_t kBytes = GroupVectorBytes<A, CG>();
  using V = typename Vector<A, kBytes>::type;
  constexpr int64_t L = Vector<A, kBytes>::kLanes;
  const int64_t s = g.stride;
  // Columns v from the first output's window start (the second's v - s): the
  // first's alone, both, then the second's alone.
  const int64_t shared = cols1.first + s;
  const int64_t alone_end = std::min(cols0.last, shared);
  const int64_t second_from = std::max(cols0.last, shared);
  const int64_t last = cols1.last + s;
  ForEachVectorBlock(g.channels / L, [&](int64_t block, auto n) {
    constexpr int64_t NV = decltype(n)::value;
    const int64_t c0 = block * L;
    V gradient0[NV], gradient1[NV];
    for (int64_t q = 0; q < NV; ++q) {
      gradient0[q] = LoadVector<A, kBytes>(upstream0 + c0 + q * L);
      gradient1[q] = LoadVector<A, kBytes>(upstream1 + c0 + q * L);
    }
    // target += term of output 0 at tap column v (if first) and of output 1
    // at tap column v - s (if second).
    auto add = [&](A* target, const W* w0, const W* w1, bool first, bool second) {
      for (int64_t q = 0; q < NV; ++q) {
        V sum;
        std::memcpy(&sum, target + q * L, sizeof(sum));
        if (first) sum += gradient0[q] * Widen<A>(w0[q * L / CG]);
        if (second) sum += gradient1[q] * Widen<A>(w1[q * L / CG]);
        std::memcpy(target + q * L, &sum, sizeof(sum));
      }
    };
    for (int64_t u = rows.first; u < rows.last; ++u) {
      A* row = sums + ((rows.source + u) * g.width + cols0.source) * g.channels + c0;
      const W* taps0 = weights0 + u * g.kernel_size * g.groups + c0 / CG;
      const W* taps1 = weights1 + (u * g.kernel_size - s) * g.groups + c0 / CG;  // at v - s
      for (int64_t v = cols0.first; v < alone_end; ++v) {
        add(row + v * g.channels, taps0 + v * g.groups, taps1, true, false);
      }
      for (int64_t v = shared; v < cols0.last; ++v) {
        add(row + v * g.channels, taps0 + v * g.groups, taps1 + v * g.groups, true, true);
      }
      for (int64_t v = second_from; v < last; ++v) {
        add(row + v * g.channels, taps0, taps1 + v * g.groups, false, true);
      }
    }
  });
}

// Input gradient of images [begin, end). Each output position adds its
// terms to the pixels of its window (ScatterWindow), so that the kernel and
// the upstream gradient are read once, in order, as in the forward pass. A
// gather from the covering outputs instead reads each pixel's K*K weights
// from K*K positions, every one in another cache line: the kernel comes cold
// from memory in a training step, and that gather took 2-3 times the forward
// pass. An image's sums stay in cache (RedNet's largest: 16 KiB), and no two
// threads write one image. weights_at(position, slot) gives a position's
// K*K*G weights (in T or Acc<T>), valid until the next call for the same
// slot, 0 or 1: a pair of outputs takes one of each.
template <typename T, int64_t CG, typename WeightsAt>
void InputGradImagesWith(const Geometry& g, const T* dy, WeightsAt&& weights_at, T* dx,
                         int64_t begin, int64_t end) {
  using A = Acc<T>;
  const int64_t pixels = g.height * g.width * g.channels;
  std::vector<A> widened(std::is_same_v<A, T> ? 0 : pixels);  // bfloat16: sums in float
  for (int64_t b = begin; b < end; ++b) {
    T* image_dx = dx + b * pixels;
    A* sums = [&] {
      if constexpr (std::is_same_v<A, T>) {
        return image_dx;
      } else {
        return widened.data();
      }
    }();
    std::fill(sums, sums + pixels, A(0));
    for (int64_t i = 0; i < g.out_height; ++i) {
      const TapRange rows = ForwardTaps(i, g.stride, g.pad_top, g.height, g.kernel_size);
      const int64_t row_start = (b * g.out_height + i) * g.out_width;
      const auto weights = [&](int64_t j, int slot) { return weights_at(row_start + j, slot); };
      const auto upstream = [&](int64_t j) { return dy + (row_start + j) * g.channels; };
      const auto cols = [&](int64_t j) {
        return ForwardTaps(j, g.stride, g.pad_left, g.width, g.kernel_size);
      };
      int64_t j = 0;
      if constexpr (kWholeVectors<A, CG>) {
        for (; j + 1 < g.out_width; j += 2) {
          ScatterPair<T, CG>(g, weights(j, 0), upstream(j), weights(j + 1, 1), upstream(j + 1),
                             sums, rows, cols(j), cols(j + 1));
        }
      }
      for (; j < g.out_width; ++j) {
        ScatterWindow<T, CG>(g, weights(j, 0), upstream(j), sums, rows, cols(j));
      }
    }
    if constexpr (!std::is_same_v<A, T>) {
      for (int64_t i = 0; i < pixels; ++i) image_dx[i] = static_cast<T>(sums[i]);
    }
  }
}

// Input gradient of images [begin, end) with the kernel k in memory.
template <typename T, int64_t CG>
void InputGradImages(const Geometry& g, const T* dy, const T* k, T* dx, int64_t begin,
                     int64_t end) {
  const int64_t count = g.taps() * g.groups;
  InputGradImagesWith<T, CG>(
      g, dy, [&](int64_t position, int) { return k + position * count; }, dx, begin, end);
}

// Kernel gradient of one image, vectorized over output columns, into dk,
// which holds the images from first_image on (the fused span op passes one
// image's buffer).
//
// dk[b, i, j, u*K + v, group] = sum_c dy[b, i, j, c] * x[b, i*s + u - pt, j*s + v - pl, c]
// over the group's channels c. Summed per tap as a dot product over c, every
// value would end in a horizontal sum across the vector. Instead the image's
// input and upstream gradient are first copied channel-major (zero-padded,
// and split into `stride` column phases so that every tap reads a contiguous
// run of columns), and each (i, u) then accumulates a block of COLS output
// columns for all K taps v at once, in registers: one vector multiply-add per
// channel and tap, no horizontal sums. The sum over c runs in a fixed order,
// so results are the same on every run, whatever COLS.
//
// The widest block is one vector register of floats: 16 with AVX-512 (the
// tuned build prefers 512-bit vectors there), else 8, so the accumulators
// stay in registers. Narrower images take narrower blocks (WithColumns):
// RedNet's 8x8 and 4x4 outputs would otherwise fill half or a quarter of
// each 16-column block with padding.
#ifdef __AVX512F__
constexpr int64_t kColumns = 16;
#else
constexpr int64_t kColumns = 8;
#endif

// Calls body(std::integral_constant<int64_t, COLS>()) with the narrowest
// block of columns, 4, 8 or kColumns, that covers `out_width` columns (the
// widest for wider images, which take several blocks per row).
template <typename Body>
void WithColumns(int64_t out_width, Body body) {
  if (out_width <= 4) return body(std::integral_constant<int64_t, 4>());
  if (out_width <= 8 || kColumns == 8) return body(std::integral_constant<int64_t, 8>());
  return body(std::integral_constant<int64_t, kColumns>());
}

inline int64_t RoundUp(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

// The register that holds a row of COLS float columns, where the target has
// one (void elsewhere): rows of a block are transposed in such registers.
template <int64_t COLS>
struct ColumnRegister {
  using type = void;
};

#if defined(__SSE__)
// Transposes 4 vectors of 4 floats in registers (rows[q][l] -> rows[l][q]).
inline void TransposeColumns(__m128* rows) {
  _MM_TRANSPOSE4_PS(rows[0], rows[1], rows[2], rows[3]);
}

template <>
struct ColumnRegister<4> {
  using type = __m128;
};
#endif

#if defined(__AVX__)
// Transposes 8 vectors of 8 floats in registers (rows[q][l] -> rows[l][q]).
inline void TransposeColumns(__m256* rows) {
  __m256 t[8], u[8];
  for (int q = 0; q < 8; q += 2) {
    t[q] = _mm256_unpacklo_ps(rows[q], rows[q + 1]);
    t[q + 1] = _mm256_unpackhi_ps(rows[q], rows[q + 1]);
  }
  for (int q = 0; q < 8; q += 4) {
    u[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int r = 0; r < 4; ++r) {
    rows[r] = _mm256_permute2f128_ps(u[r], u[r + 4], 0x20);
    rows[r + 4] = _mm256_permute2f128_ps(u[r], u[r + 4], 0x31);
  }
}

template <>
struct ColumnRegister<8> {
  using type = __m256;
};
#endif

#if defined(__AVX512F__)
// Transposes 16 vectors of 16 floats in registers (rows[q][l] -> rows[l][q]):
// 64 shuffles for 256 values, where moving them one by one takes 256 stores.
inline void TransposeColumns(__m512* rows) {
  __m512 t[16];
  for (int q = 0; q < 16; q += 2) {
    t[q] = _mm512_unpacklo_ps(rows[q], rows[q + 1]);
    t[q + 1] = _mm512_unpackhi_ps(rows[q], rows[q + 1]);
  }
  for (int q = 0; q < 16; q += 4) {
    const __m512d a = _mm512_castps_pd(t[q]), b = _mm512_castps_pd(t[q + 1]);
    const __m512d c = _mm512_castps_pd(t[q + 2]), d = _mm512_castps_pd(t[q + 3]);
    rows[q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    rows[q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    rows[q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    rows[q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int q = 0; q < 16; q += 8) {
    for (int r = 0; r < 4; ++r) {
      t[q + r] = _mm512_shuffle_f32x4(rows[q + r], rows[q + r + 4], 0x88);
      t[q + r + 4] = _mm512_shuffle_f32x4(rows[q + r], rows[q + r + 4], 0xdd);
    }
  }
  for (int r = 0; r < 8; ++r) {
    rows[r] = _mm512_shuffle_f32x4(t[r], t[r + 8], 0x88);
    rows[r + 8] = _mm512_shuffle_f32x4(t[r], t[r + 8], 0xdd);
  }
}

template <>
struct ColumnRegister<16> {
  using type = __m512;
};
#endif

// out[c * out_stride + q] = in[q * pixel_stride + c] for c < channels and
// q < count: `count` pixels' channels, turned channel-major (widened to A).
// A whole tile of COLS float pixels goes COLS channels at a time through a
// transpose in registers; one value at a time, this copy took most of the
// kernel gradient at 8x8 and 4x4 outputs, where each tap has few columns.
template <int64_t COLS, typename A, typename T>
inline void CopyChannelMajor(const T* in, int64_t pixel_stride, int64_t channels, int64_t count,
                             A* out, int64_t out_stride) {
  using Register = typename ColumnRegister<COLS>::type;
  int64_t c0 = 0;
  if constexpr (std::is_same_v<A, float> && std::is_same_v<T, float> &&
                !std::is_void_v<Register>) {
    if (count == COLS) {
      for (; c0 + COLS <= channels; c0 += COLS) {
        Register rows[COLS];
        for (int64_t q = 0; q < COLS; ++q) {
          std::memcpy(&rows[q], in + q * pixel_stride + c0, sizeof(Register));
        }
        TransposeColumns(rows);
        for (int64_t l = 0; l < COLS; ++l) {
          std::memcpy(out + (c0 + l) * out_stride, &rows[l], sizeof(Register));
        }
      }
    }
  }
  for (int64_t c = c0; c < channels; ++c) {
    for (int64_t q = 0; q < count; ++q) out[c * out_stride + q] = Widen<A>(in[q * pixel_stride + c]);
  }
}

// out[jj * count + r] = block[r * COLS + jj] for r < count and jj < width:
// a block of COLS columns, one row per (tap, group), turned into the kernel
// layout, where each column's count values are contiguous.
template <int64_t COLS, typename A, typename T>
inline void StoreTransposed(const A* block, int64_t count, int64_t width, T* out) {
  using Register = typename ColumnRegister<COLS>::type;
  int64_t r0 = 0;
  if constexpr (std::is_same_v<A, float> && !std::is_void_v<Register>) {
    // COLS rows at a time, transposed in registers of COLS floats.
    for (; r0 + COLS <= count; r0 += COLS) {
      Register rows[COLS];
      std::memcpy(rows, block + r0 * COLS, sizeof(rows));
      TransposeColumns(rows);
      for (int64_t jj = 0; jj < width; ++jj) {
        float column[COLS];
        std::memcpy(column, &rows[jj], sizeof(column));
        T* target = out + jj * count + r0;
        if constexpr (std::is_same_v<T, float>) {
          std::memcpy(target, column, sizeof(column));
        } else {
          for (int64_t q = 0; q < COLS; ++q) target[q] = static_cast<T>(column[q]);
        }
      }
    }
  }
  for (; r0 < count; ++r0) {
    for (int64_t jj = 0; jj < width; ++jj) {
      out[jj * count + r0] = static_cast<T>(block[r0 * COLS + jj]);
    }
  }
}

// What one thread's kernel gradients reuse from image to image.
template <typename T>
struct KernelGradScratch {
  std::vector<Acc<T>> planes, upstream, block;
  std::vector<T> staging;  // a block of the result, in its own type
  // The geometry whose padding planes and upstream hold as zeros: every image
  // of it writes the same places, so the zeros are written once, not per image.
  std::array<int64_t, 10> zeroed_for = {};
};

// The channel-major copies hold Acc<T> (float for bfloat16): converted once
// while copied, so the inner loop is the float one.
// What KernelGradImage does to each finished block before storing it: by
// default nothing. Local attention's weights run their softmax here
// (attention_kernels.h), on the block's rows of taps, across its columns.
struct NoEpilogue {
  template <int64_t COLS, typename A>
  void operator()(A*, const A*, int64_t, int64_t, int64_t, int64_t) const {}
};

// kStaged: through a staging copy, for a result in memory; a result that
// stays in cache (SpanKernelGradImage's) is stored directly.
template <typename T, int64_t K, int64_t COLS = kColumns, typename Epilogue = NoEpilogue,
          bool kStaged = true>
void KernelGradImage(const Geometry& g, const T* dy, const T* x, T* dk, int64_t b,
                     KernelGradScratch<T>& scratch, const Epilogue& epilogue = Epilogue(),
                     int64_t first_image = 0) {
  using A = Acc<T>;
  std::vector<A>& planes = scratch.planes;
  std::vector<A>& upstream = scratch.upstream;
  const int64_t channels = g.channels, cg = g.group_channels, s = g.stride;
  const int64_t k = K ? K : g.kernel_size;
  const int64_t oh = g.out_height, ow = g.out_width;
  const int64_t padded_ow = RoundUp(ow, COLS);      // whole blocks: no tail loop
  const int64_t rows = (oh - 1) * s + k;            // padded input rows every tap reads
  const int64_t columns = padded_ow + (k - 1) / s;  // columns per phase
  // planes[((y * s + phase) * channels + c) * columns + q] = x[b, y - pt, q * s + phase - pl, c],
  // copied in tiles of COLS positions, so every channel's row is written a
  // whole cache line at a time rather than one value per line. A row's
  // channels lie next to each other: far apart, at strides of 4 KiB, they
  // would compete for the same few L1 cache sets.
  const int64_t phase_stride = channels * columns;
  const std::array<int64_t, 10> layout = {rows,       s,        phase_stride, channels, g.pad_top,
                                          g.pad_left, g.height, g.width,      oh,       padded_ow};
  if (scratch.zeroed_for != layout) {
    planes.assign(rows * s * phase_stride, A(0));
    upstream.assign(channels * oh * padded_ow, A(0));
    scratch.zeroed_for = layout;
  }
  for (int64_t y = 0; y < rows; ++y) {
    const int64_t source_y = y - g.pad_top;
    if (source_y < 0 || source_y >= g.height) continue;
    const T* image_row = x + (b * g.height + source_y) * g.width * channels;
    for (int64_t phase = 0; phase < s; ++phase) {
      // The columns q whose source q * s + phase - pl lies inside the image.
      const int64_t first = std::max<int64_t>(0, (g.pad_left - phase + s - 1) / s);
      const int64_t last = std::min<int64_t>(columns, (g.width + g.pad_left - phase + s - 1) / s);
      A* plane_row = planes.data() + (y * s + phase) * phase_stride;
      for (int64_t q0 = first; q0 < last; q0 += COLS) {
        const int64_t count = std::min(COLS, last - q0);
        const T* in = image_row + (q0 * s + phase - g.pad_left) * channels;
        CopyChannelMajor<COLS>(in, s * channels, channels, count, plane_row + q0, columns);
      }
    }
  }
  // upstream[(i * channels + c) * padded_ow + j] = dy[b, i, j, c], in the same tiles.
  for (int64_t i = 0; i < oh; ++i) {
    const T* gradient_row = dy + (b * oh + i) * ow * channels;
    for (int64_t j0 = 0; j0 < ow; j0 += COLS) {
      const int64_t count = std::min(COLS, ow - j0);
      CopyChannelMajor<COLS>(gradient_row + j0 * channels, channels, channels, count,
                             upstream.data() + i * channels * padded_ow + j0, padded_ow);
    }
  }
  constexpr int64_t kTaps = K ? K : 1;
  const int64_t taps = K ? K : 1;  // general K: one tap per pass
  // The sums of a block of COLS output columns, one row of them per
  // (tap, group), written out transposed once the block is whole.
  const int64_t count = g.taps() * g.groups;
  scratch.block.resize(count * COLS);
  scratch.staging.resize(count * COLS);
  A* block = scratch.block.data();
  T* staging = scratch.staging.data();
  for (int64_t i = 0; i < oh; ++i) {
    for (int64_t j0 = 0; j0 < ow; j0 += COLS) {
      for (int64_t group = 0; group < g.groups; ++group) {
        for (int64_t u = 0; u < k; ++u) {
          for (int64_t v0 = 0; v0 < k; v0 += taps) {
            // Where tap v0 + t starts in a plane row: its column phase, then its shift.
            int64_t offsets[kTaps];
            for (int64_t t = 0; t < taps; ++t) {
              offsets[t] = ((v0 + t) % s) * phase_stride + (v0 + t) / s;
            }
            A sums[kTaps][COLS] = {};
            for (int64_t c = group * cg; c < (group + 1) * cg; ++c) {
              const A* d = upstream.data() + (i * channels + c) * padded_ow + j0;
              const A* row = planes.data() + (i * s + u) * s * phase_stride + c * columns + j0;
              for (int64_t t = 0; t < taps; ++t) {
                const A* in = row + offsets[t];
                // Across columns, not across channels: the compiler would
                // otherwise vectorize the channel loop with strided gathers.
#pragma omp simd
                for (int64_t jj = 0; jj < COLS; ++jj) sums[t][jj] += d[jj] * in[jj];
              }
            }
            for (int64_t t = 0; t < taps; ++t) {
              std::memcpy(block + ((u * k + v0 + t) * g.groups + group) * COLS, sums[t],
                          sizeof(sums[t]));
            }
          }
        }
      }
      // Through a staging copy in cache: the transposed vectors land 4 * count
      // bytes apart, mostly across cache-line boundaries, which in the output
      // would cost two line fills per store; the copy out is one sequential run.
      const int64_t width = std::min(COLS, ow - j0);
      // The block's upstream values, channel c at c * padded_ow, and its place.
      epilogue.template operator()<COLS>(block, upstream.data() + i * channels * padded_ow,
                                         padded_ow, b, i, j0);
      T* target = dk + (((b - first_image) * oh + i) * ow + j0) * count;
      if constexpr (kStaged) {
        StoreTransposed<COLS>(block, count, width, staging);
        std::memcpy(target, staging, width * count * sizeof(T));
      } else {
        StoreTransposed<COLS>(block, count, width, target);
      }
    }
  }
}

// Calls body(std::integral_constant<int64_t, K>()) with the kernel size as a
// compile-time constant for the common sizes (0: general, slower).
template <typename Body>
void WithKernelSize(int64_t kernel_size, Body body) {
  WithConstant<3, 5, 7>(kernel_size, body);
}

}  // namespace invbench

#endif  // INVBENCH_INVOLUTION_KERNELS_H_
