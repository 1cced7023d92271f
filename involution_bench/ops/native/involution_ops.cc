// Involution as fused TensorFlow CPU ops: the forward pass and both gradients,
// over the arithmetic of involution_kernels.h (which says how each is laid
// out for the vector units), and the narrow batch norm of batch_norm_kernels.h.
// Work is split over rows of the output for the forward pass and over images
// for both gradients, so no two threads ever write the same value: no
// atomics, and the same result on every run.

#include <cstdint>
#include <vector>

#include "attention_grad_kernels.h"
#include "attention_kernels.h"
#include "augment_kernels.h"
#include "batch_norm_kernels.h"
#include "involution_kernels.h"
#include "span_involution_kernels.h"
#include "subsample_kernels.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

// What sums accumulate in for bfloat16: float, whose 24 significant bits keep
// a long sum that bfloat16's 8 would lose. Each result is rounded once, when
// it is stored.
template <>
struct invbench::Accumulator<tensorflow::bfloat16> {
  using type = float;
};
template <>
struct invbench::IsBfloat16<tensorflow::bfloat16> : std::true_type {};

namespace {

using invbench::Acc;
using invbench::Geometry;
using invbench::ForwardRows;
using invbench::InputGradImages;
using invbench::KernelGradImage;
using invbench::WithGroupChannels;
using invbench::WithColumns;
using invbench::WithKernelSize;

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

// Reads the attributes once per kernel instance.
class InvolutionBase : public OpKernel {
 public:
  explicit InvolutionBase(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("kernel_size", &kernel_size_));
    OP_REQUIRES_OK(context, context->GetAttr("stride", &stride_));
    OP_REQUIRES_OK(context, context->GetAttr("groups", &groups_));
    OP_REQUIRES(context, kernel_size_ > 0 && stride_ > 0 && groups_ > 0,
                InvalidArgument("kernel_size, stride and groups must be positive"));
  }

 protected:
  // Checks the input and kernel shapes and works out the geometry (the kernel
  // gradient has no kernel: nullptr). On a bad shape it sets the context's
  // status, which callers check.
  void Prepare(OpKernelContext* context, const Tensor& input, const Tensor* kernel,
               Geometry* geometry) {
    OP_REQUIRES(context, input.dims() == 4,
                InvalidArgument("input must be (B, H, W, C), got ", input.shape().DebugString()));
    Geometry& g = *geometry;
    g.batch = input.dim_size(0);
    g.height = input.dim_size(1);
    g.width = input.dim_size(2);
    g.channels = input.dim_size(3);
    g.kernel_size = kernel_size_;
    g.stride = stride_;
    g.groups = groups_;
    OP_REQUIRES(context, g.channels % g.groups == 0,
                InvalidArgument("groups=", g.groups, " must divide the channels (", g.channels, ")"));
    g.group_channels = g.channels / g.groups;
    g.out_height = (g.height + g.stride - 1) / g.stride;
    g.out_width = (g.width + g.stride - 1) / g.stride;
    const int64_t pad_height =
        std::max<int64_t>((g.out_height - 1) * g.stride + g.kernel_size - g.height, 0);
    const int64_t pad_width =
        std::max<int64_t>((g.out_width - 1) * g.stride + g.kernel_size - g.width, 0);
    g.pad_top = pad_height / 2;
    g.pad_left = pad_width / 2;
    if (kernel == nullptr) return;
    OP_REQUIRES(context, kernel->shape() == KernelShape(g),
                InvalidArgument("kernel must be ", KernelShape(g).DebugString(), ", got ",
                                kernel->shape().DebugString()));
  }

  static TensorShape KernelShape(const Geometry& g) {
    return TensorShape({g.batch, g.out_height, g.out_width, g.taps(), g.groups});
  }

  // Prepare, and check that the upstream gradient has the output's shape.
  void PrepareGradient(OpKernelContext* context, const Tensor& grad, const Tensor& input,
                       const Tensor* kernel, Geometry* geometry) {
    Prepare(context, input, kernel, geometry);
    if (!context->status().ok()) return;
    const Geometry& g = *geometry;
    OP_REQUIRES(context,
                grad.shape() == TensorShape({g.batch, g.out_height, g.out_width, g.channels}),
                InvalidArgument("gradient shape ", grad.shape().DebugString(),
                                " does not match the output"));
  }

  // Splits [0, rows) into chunks run on TensorFlow's intra-op thread pool.
  template <typename Body>
  void ForEachRows(OpKernelContext* context, int64_t rows, int64_t cost_per_row, Body body) {
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(rows, cost_per_row, body);
  }

  // The kernel gradient of every image (`epilogue` applied to each block),
  // one image per task: its channel-major copies are made once and reused.
  template <typename T, typename Epilogue = invbench::NoEpilogue>
  void KernelGradImages(OpKernelContext* context, const Geometry& g, const T* dy, const T* x,
                        T* out, const Epilogue& epilogue = Epilogue()) {
    const int64_t work = g.out_height * g.out_width * g.taps() * g.channels;
    WithKernelSize(g.kernel_size, [&](auto size) {
      WithColumns(g.out_width, [&](auto columns) {
        ForEachRows(context, g.batch, work, [&](int64_t begin, int64_t end) {
          invbench::KernelGradScratch<T> scratch;
          for (int64_t b = begin; b < end; ++b) {
            KernelGradImage<T, decltype(size)::value, decltype(columns)::value>(
                g, dy, x, out, b, scratch, epilogue);
          }
        });
      });
    });
  }

  int kernel_size_ = 0;
  int stride_ = 0;
  int groups_ = 0;
};

template <typename T>
class InvolutionOp : public InvolutionBase {
 public:
  using InvolutionBase::InvolutionBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    const Tensor& kernel = context->input(1);
    Geometry g;
    Prepare(context, input, &kernel, &g);
    if (!context->status().ok()) return;
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({g.batch, g.out_height, g.out_width, g.channels}),
                                &output));
    const T* x = input.flat<T>().data();
    const T* k = kernel.flat<T>().data();
    T* y = output->flat<T>().data();
    WithGroupChannels(g.group_channels, [&](auto constant) {
      ForEachRows(context, g.batch * g.out_height, g.out_width * g.taps() * g.channels,
                  [&](int64_t begin, int64_t end) {
                    ForwardRows<T, decltype(constant)::value>(g, x, k, y, begin, end);
                  });
    });
  }
};

// Both gradients share one op class: kInputGrad picks the input gradient
// (inputs: grad, kernel, input; the input only lends its shape to the
// result) or the kernel gradient (inputs: grad, input; the result's shape
// follows from them and the attributes).
template <typename T, bool kInputGrad>
class InvolutionGradOp : public InvolutionBase {
 public:
  using InvolutionBase::InvolutionBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& grad = context->input(0);
    const Tensor& operand = context->input(1);
    const Tensor& input = kInputGrad ? context->input(2) : operand;
    Geometry g;
    PrepareGradient(context, grad, input, kInputGrad ? &operand : nullptr, &g);
    if (!context->status().ok()) return;
    Tensor* result = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, kInputGrad ? input.shape() : KernelShape(g), &result));
    const T* dy = grad.flat<T>().data();
    const T* other = operand.flat<T>().data();
    T* out = result->flat<T>().data();
    if constexpr (kInputGrad) {
      // One image per task: its outputs add to its own pixels only.
      const int64_t work = g.out_height * g.out_width * g.taps() * g.channels;
      WithGroupChannels(g.group_channels, [&](auto constant) {
        ForEachRows(context, g.batch, work, [&](int64_t begin, int64_t end) {
          InputGradImages<T, decltype(constant)::value>(g, dy, other, out, begin, end);
        });
      });
    } else {
      KernelGradImages(context, g, dy, other, out);
    }
  }
};

// A tensor's values widened to the accumulator type (float for bfloat16).
template <typename T>
void WidenTensor(const Tensor& tensor, std::vector<Acc<T>>* out) {
  const T* values = tensor.flat<T>().data();
  out->resize(tensor.NumElements());
  for (size_t n = 0; n < out->size(); ++n) (*out)[n] = invbench::Widen<Acc<T>>(values[n]);
}

// Involution with the span projection fused in (span_involution_kernels.h).
// Inputs, besides those of the plain ops: features h (B, H', W', R), the
// generator's hidden features; weights (R, K*K*G) and bias (K*K*G), the span's.
class SpanInvolutionBase : public InvolutionBase {
 public:
  using InvolutionBase::InvolutionBase;

 protected:
  // Checks h and the span's operands against the geometry and widens the
  // latter into span (bias may be null: the kernel gradient needs none).
  template <typename T>
  void PrepareSpan(OpKernelContext* context, const Geometry& g, const Tensor& features,
                   const Tensor& weights, const Tensor* bias, invbench::Span<Acc<T>>* span) {
    OP_REQUIRES(context, features.dims() == 4,
                InvalidArgument("features must be (B, H', W', R), got ",
                                features.shape().DebugString()));
    span->hidden = features.dim_size(3);
    span->count = g.taps() * g.groups;
    OP_REQUIRES(context,
                features.shape() ==
                    TensorShape({g.batch, g.out_height, g.out_width, span->hidden}),
                InvalidArgument("features ", features.shape().DebugString(),
                                " do not match the output positions"));
    OP_REQUIRES(context, weights.shape() == TensorShape({span->hidden, span->count}),
                InvalidArgument("weights must be (", span->hidden, ", ", span->count, "), got ",
                                weights.shape().DebugString()));
    WidenTensor<T>(weights, &span->weights);
    if (bias == nullptr) return;
    OP_REQUIRES(context, bias->shape() == TensorShape({span->count}),
                InvalidArgument("bias must be (", span->count, "), got ",
                                bias->shape().DebugString()));
    WidenTensor<T>(*bias, &span->bias);
    span->Pad();
  }
};

// Forward (kInputGrad false; inputs input, features, weights, bias) or the
// input gradient (true; inputs grad, features, weights, bias, input).
template <typename T, bool kInputGrad>
class SpanInvolutionOp : public SpanInvolutionBase {
 public:
  using SpanInvolutionBase::SpanInvolutionBase;

  void Compute(OpKernelContext* context) override {
    constexpr int first = 1;  // features, weights and bias: inputs 1 to 3 of both
    const Tensor& input = context->input(kInputGrad ? 4 : 0);
    Geometry g;
    if constexpr (kInputGrad) {
      PrepareGradient(context, context->input(0), input, nullptr, &g);
    } else {
      Prepare(context, input, nullptr, &g);
    }
    if (!context->status().ok()) return;
    invbench::Span<Acc<T>> span;
    const Tensor& bias = context->input(first + 2);
    PrepareSpan<T>(context, g, context->input(first), context->input(first + 1), &bias, &span);
    if (!context->status().ok()) return;
    Tensor* result = nullptr;
    const TensorShape shape =
        kInputGrad ? input.shape()
                   : TensorShape({g.batch, g.out_height, g.out_width, g.channels});
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &result));
    const T* h = context->input(first).flat<T>().data();
    const T* source = context->input(0).flat<T>().data();  // x, or the upstream gradient
    T* out = result->flat<T>().data();
    const int64_t work = g.out_width * g.taps() * (g.channels + span.hidden * g.groups);
    WithGroupChannels(g.group_channels, [&](auto constant) {
      constexpr int64_t CG = decltype(constant)::value;
      if constexpr (kInputGrad) {
        ForEachRows(context, g.batch, g.out_height * work, [&](int64_t begin, int64_t end) {
          invbench::SpanInputGradImages<T, CG>(g, span, source, h, out, begin, end);
        });
      } else {
        ForEachRows(context, g.batch * g.out_height, work, [&](int64_t begin, int64_t end) {
          invbench::SpanForwardRows<T, CG>(g, span, source, h, out, begin, end);
        });
      }
    });
  }
};

// The gradients of features, weights and bias (inputs grad, input, features,
// weights), one image per task, its dw and dbias summed over images in order.
template <typename T>
class SpanInvolutionParamsGradOp : public SpanInvolutionBase {
 public:
  using SpanInvolutionBase::SpanInvolutionBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& grad = context->input(0);
    const Tensor& input = context->input(1);
    const Tensor& features = context->input(2);
    Geometry g;
    PrepareGradient(context, grad, input, nullptr, &g);
    if (!context->status().ok()) return;
    invbench::Span<Acc<T>> span;
    PrepareSpan<T>(context, g, features, context->input(3), nullptr, &span);
    if (!context->status().ok()) return;
    span.Transpose();
    Tensor *dh = nullptr, *dw = nullptr, *dbias = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, features.shape(), &dh));
    OP_REQUIRES_OK(context, context->allocate_output(1, context->input(3).shape(), &dw));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({span.count}), &dbias));
    const int64_t weight_size = span.hidden * span.count;
    std::vector<Acc<T>> image_dw(g.batch * weight_size), image_dbias(g.batch * span.count);
    const T* dy = grad.flat<T>().data();
    const T* x = input.flat<T>().data();
    const T* h = features.flat<T>().data();
    T* dh_out = dh->flat<T>().data();
    const int64_t work = g.out_height * g.out_width * g.taps() *
                         (g.channels + 2 * span.hidden * g.groups);
    invbench::WithKernelSize(g.kernel_size, [&](auto size) {
      WithColumns(g.out_width, [&](auto columns) {
        ForEachRows(context, g.batch, work, [&](int64_t begin, int64_t end) {
          invbench::SpanGradScratch<T> scratch;
          for (int64_t b = begin; b < end; ++b) {
            invbench::SpanKernelGradImage<T, decltype(size)::value, decltype(columns)::value>(
                g, span, dy, x, h, dh_out, image_dw.data() + b * weight_size,
                image_dbias.data() + b * span.count, b, scratch);
          }
        });
      });
    });
    invbench::SumImages(image_dw, g.batch, weight_size, dw->flat<T>().data());
    invbench::SumImages(image_dbias, g.batch, span.count, dbias->flat<T>().data());
  }
};

// Batch normalization in training for channels dividing 16 (batch_norm_kernels.h):
// x (..., C) float, gamma and beta (C); outputs y, the batch mean and the
// biased variance. The gradient op takes dy, x, gamma, mean and variance.
class NarrowNormBase : public OpKernel {
 public:
  explicit NarrowNormBase(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("epsilon", &epsilon_));
  }

 protected:
  // The channel count, once x and the per-channel operands are checked.
  int64_t Channels(OpKernelContext* context, const Tensor& x, std::initializer_list<int> vectors) {
    if (x.dims() < 1) {
      context->SetStatus(InvalidArgument("x must have a channel axis"));
      return 0;
    }
    const int64_t channels = x.dim_size(x.dims() - 1);
    if (!invbench::NarrowNormChannels(channels)) {
      context->SetStatus(InvalidArgument("channels must divide 16, got ", channels));
      return 0;
    }
    for (int index : vectors) {
      if (context->input(index).shape() != TensorShape({channels})) {
        context->SetStatus(InvalidArgument("per-channel operand ", index, " must be (",
                                           channels, "), got ",
                                           context->input(index).shape().DebugString()));
        return 0;
      }
    }
    return channels;
  }

  // The kernels' chunks on TensorFlow's intra-op pool.
  static auto PoolChunks(OpKernelContext* context) {
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
    return [workers](int64_t chunks, int64_t cost, auto&& body) {
      workers->ParallelFor(chunks, cost, body);
    };
  }

  float epsilon_ = 0;
};

class NarrowNormOp : public NarrowNormBase {
 public:
  using NarrowNormBase::NarrowNormBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const int64_t channels = Channels(context, x, {1, 2});
    if (!context->status().ok()) return;
    Tensor *y = nullptr, *mean = nullptr, *variance = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({channels}), &mean));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({channels}), &variance));
    OP_REQUIRES(context, x.NumElements() >= channels,
                InvalidArgument("batch normalization needs at least one row"));
    invbench::NormTrainingForward(x.flat<float>().data(), x.NumElements(), channels,
                                  context->input(1).flat<float>().data(),
                                  context->input(2).flat<float>().data(), epsilon_,
                                  y->flat<float>().data(), mean->flat<float>().data(),
                                  variance->flat<float>().data(), PoolChunks(context));
  }
};

class NarrowNormGradOp : public NarrowNormBase {
 public:
  using NarrowNormBase::NarrowNormBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    const int64_t channels = Channels(context, x, {2, 3, 4});
    if (!context->status().ok()) return;
    OP_REQUIRES(context, dy.shape() == x.shape(),
                InvalidArgument("gradient shape ", dy.shape().DebugString(),
                                " does not match x ", x.shape().DebugString()));
    Tensor *dx = nullptr, *dgamma = nullptr, *dbeta = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({channels}), &dgamma));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({channels}), &dbeta));
    OP_REQUIRES(context, x.NumElements() >= channels,
                InvalidArgument("batch normalization needs at least one row"));
    invbench::NormTrainingGrad(dy.flat<float>().data(), x.flat<float>().data(), x.NumElements(),
                               channels, context->input(2).flat<float>().data(),
                               context->input(3).flat<float>().data(),
                               context->input(4).flat<float>().data(), epsilon_,
                               dx->flat<float>().data(), dgamma->flat<float>().data(),
                               dbeta->flat<float>().data(), PoolChunks(context));
  }
};

// Whether an embedding of `rows` rows is factored, (K, D), rather than (K*K, D).
// At K = 1 the two are the same.
inline bool FactoredEmbedding(int64_t rows, int64_t kernel_size) {
  return kernel_size > 1 && rows == kernel_size;
}

// What both fused attention ops check and work out: stride 1, an odd
// kernel_size, and the softmax's geometry with the embedding relative (K*K,
// D), or (K, D) factored, for heads = groups of D channels.
class AttentionBase : public InvolutionBase {
 public:
  using InvolutionBase::InvolutionBase;

 protected:
  void PrepareSoftmax(OpKernelContext* context, const Geometry& g, const Tensor& relative,
                      invbench::SoftmaxGeometry* softmax) {
    OP_REQUIRES(context, stride_ == 1 && kernel_size_ % 2 == 1,
                InvalidArgument("local attention takes stride 1 and an odd kernel_size"));
    *softmax = {g.batch, g.height, g.width, g.kernel_size, g.groups, g.group_channels};
    softmax->factored =
        relative.dims() == 2 && FactoredEmbedding(relative.dim_size(0), g.kernel_size);
    OP_REQUIRES(context,
                relative.shape() == TensorShape({softmax->embedding_size() / g.group_channels,
                                                 g.group_channels}),
                InvalidArgument("relative must be (K*K, D) or (K, D), got ",
                                relative.shape().DebugString()));
  }
};

// Local attention's weights in one pass (inputs queries, keys (B, H, W, C)
// and relative (K*K, D), or (K, D) factored; attributes kernel_size, stride 1,
// groups = heads):
// the logits kernel (the involution kernel gradient, queries as its
// upstream) with the softmax as the epilogue of each block.
template <typename T>
class AttentionWeightsOp : public AttentionBase {
 public:
  using AttentionBase::AttentionBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& queries = context->input(0);
    const Tensor& keys = context->input(1);
    const Tensor& relative = context->input(2);
    Geometry g;
    PrepareGradient(context, queries, keys, nullptr, &g);
    if (!context->status().ok()) return;
    invbench::SoftmaxGeometry softmax;
    PrepareSoftmax(context, g, relative, &softmax);
    if (!context->status().ok()) return;
    Tensor* result = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, KernelShape(g), &result));
    using A = Acc<T>;
    std::vector<A> embedding;
    WidenTensor<T>(relative, &embedding);
    const invbench::SoftmaxEpilogue<A> epilogue{softmax, embedding.data(),
                                                A(1) / std::sqrt(A(g.group_channels))};
    const T* q = queries.flat<T>().data();
    const T* k = keys.flat<T>().data();
    T* out = result->flat<T>().data();
    KernelGradImages(context, g, q, k, out, epilogue);
  }
};

// Local attention's backward pass from its output to its softmax's logits in
// one op (attention_grad_kernels.h). Inputs: grad (B, H, W, C), the output's
// upstream gradient; values (B, H, W, C); weights (B, H, W, K*K, G), the
// forward pass's; queries (B, H, W, C); relative (K*K, D), or (K, D)
// factored. Outputs the content logits' gradient (the weights' shape), the
// position term's part of the queries' gradient and relative's gradient.
template <typename T>
class AttentionGradOp : public AttentionBase {
 public:
  using AttentionBase::AttentionBase;

  void Compute(OpKernelContext* context) override {
    const Tensor& grad = context->input(0);
    const Tensor& values = context->input(1);
    const Tensor& weights = context->input(2);
    const Tensor& queries = context->input(3);
    const Tensor& relative = context->input(4);
    Geometry g;
    PrepareGradient(context, grad, values, &weights, &g);
    if (!context->status().ok()) return;
    OP_REQUIRES(context, queries.shape() == values.shape(),
                InvalidArgument("queries ", queries.shape().DebugString(),
                                " do not match the values ", values.shape().DebugString()));
    invbench::SoftmaxGeometry softmax;
    PrepareSoftmax(context, g, relative, &softmax);
    if (!context->status().ok()) return;
    Tensor *content_grad = nullptr, *query_grad = nullptr, *relative_grad = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, weights.shape(), &content_grad));
    OP_REQUIRES_OK(context, context->allocate_output(1, queries.shape(), &query_grad));
    OP_REQUIRES_OK(context, context->allocate_output(2, relative.shape(), &relative_grad));
    using A = Acc<T>;
    std::vector<A> embedding;
    WidenTensor<T>(relative, &embedding);
    const int64_t size = softmax.embedding_size();
    std::vector<A> per_image(g.batch * size, A(0));
    const invbench::SoftmaxGradEpilogue<A, T> epilogue{
        softmax,
        weights.flat<T>().data(),
        queries.flat<T>().data(),
        embedding.data(),
        A(1) / std::sqrt(A(g.group_channels)),
        query_grad->flat<T>().data(),
        per_image.data()};
    KernelGradImages(context, g, grad.flat<T>().data(), values.flat<T>().data(),
                     content_grad->flat<T>().data(), epilogue);
    // The images' shares summed in order: the same result on every run.
    T* dr = relative_grad->flat<T>().data();
    for (int64_t n = 0; n < size; ++n) {
      A sum = 0;
      for (int64_t b = 0; b < g.batch; ++b) sum += per_image[b * size + n];
      dr[n] = static_cast<T>(sum);
    }
  }
};

// Local attention's softmax (attention_kernels.h): inputs content (B, H, W,
// K*K, G), queries (B, H, W, G*D) and relative (K*K, D), or (K, D) factored.
class SoftmaxBase : public OpKernel {
 public:
  explicit SoftmaxBase(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("kernel_size", &kernel_size_));
    OP_REQUIRES(context, kernel_size_ > 0 && kernel_size_ % 2 == 1,
                InvalidArgument("kernel_size must be positive and odd"));
  }

 protected:
  void Prepare(OpKernelContext* context, const Tensor& logits, const Tensor& queries,
               const Tensor& relative, invbench::SoftmaxGeometry* geometry) {
    OP_REQUIRES(context, queries.dims() == 4,
                InvalidArgument("queries must be (B, H, W, C), got ",
                                queries.shape().DebugString()));
    OP_REQUIRES(context, logits.dims() == 5,
                InvalidArgument("logits must be (B, H, W, K*K, G), got ",
                                logits.shape().DebugString()));
    invbench::SoftmaxGeometry& g = *geometry;
    g.batch = queries.dim_size(0);
    g.height = queries.dim_size(1);
    g.width = queries.dim_size(2);
    g.kernel_size = kernel_size_;
    g.heads = logits.dim_size(4);
    OP_REQUIRES(context, g.heads > 0 && queries.dim_size(3) % g.heads == 0,
                InvalidArgument("the heads (", g.heads, ") must divide the query channels (",
                                queries.dim_size(3), ")"));
    g.depth = queries.dim_size(3) / g.heads;
    OP_REQUIRES(context,
                logits.shape() == TensorShape({g.batch, g.height, g.width, g.taps(), g.heads}),
                InvalidArgument("logits ", logits.shape().DebugString(),
                                " do not match the queries ", queries.shape().DebugString()));
    g.factored = relative.dims() == 2 && FactoredEmbedding(relative.dim_size(0), g.kernel_size);
    OP_REQUIRES(context, relative.shape() == TensorShape({g.embedding_size() / g.depth, g.depth}),
                InvalidArgument("relative must be (K*K, D) = (", g.taps(), ", ", g.depth,
                                ") or (K, D) = (", g.kernel_size, ", ", g.depth, "), got ",
                                relative.shape().DebugString()));
  }

  int64_t RowCost(const invbench::SoftmaxGeometry& g) const {
    return g.width * g.taps() * g.heads * (g.depth + 8);
  }

  int kernel_size_ = 0;
};

template <typename T>
class NeighbourhoodSoftmaxGradOp : public SoftmaxBase {
 public:
  using SoftmaxBase::SoftmaxBase;

  // Inputs: weights, their upstream gradient, queries, relative. Outputs the
  // gradients of the content logits, the queries and relative.
  void Compute(OpKernelContext* context) override {
    const Tensor& weights = context->input(0);
    const Tensor& upstream = context->input(1);
    const Tensor& queries = context->input(2);
    const Tensor& relative = context->input(3);
    invbench::SoftmaxGeometry g;
    Prepare(context, weights, queries, relative, &g);
    if (!context->status().ok()) return;
    OP_REQUIRES(context, upstream.shape() == weights.shape(),
                InvalidArgument("gradient shape ", upstream.shape().DebugString(),
                                " does not match the weights"));
    Tensor *content_grad = nullptr, *query_grad = nullptr, *relative_grad = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, weights.shape(), &content_grad));
    OP_REQUIRES_OK(context, context->allocate_output(1, queries.shape(), &query_grad));
    OP_REQUIRES_OK(context, context->allocate_output(2, relative.shape(), &relative_grad));
    using A = Acc<T>;
    const int64_t rows = g.batch * g.height, share_rows = invbench::RowsPerShare(g);
    const int64_t shares = (rows + share_rows - 1) / share_rows;
    const invbench::SoftmaxPlan<A> plan(g, relative.flat<T>().data());
    const int64_t share_size = g.depth * plan.padded;
    std::vector<A> partial(shares * share_size, A(0));
    const T* w = weights.flat<T>().data();
    const T* dw = upstream.flat<T>().data();
    const T* q = queries.flat<T>().data();
    T* dc = content_grad->flat<T>().data();
    T* dq = query_grad->flat<T>().data();
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
    invbench::WithHeads(g.heads, [&](auto heads) {
      workers->ParallelFor(shares, share_rows * RowCost(g), [&](int64_t first, int64_t last) {
        for (int64_t share = first; share < last; ++share) {
          const int64_t begin = share * share_rows, end = std::min(rows, begin + share_rows);
          invbench::SoftmaxGradRows<T, decltype(heads)::value>(
              g, plan, w, dw, q, dc, dq, partial.data() + share * share_size, begin, end);
        }
      });
    });
    // Every tap's gradient, summed over the shares in order; a factored
    // embedding's (K, D) then sums the taps that share each of its values.
    std::vector<A> full(g.taps() * g.depth);
    for (int64_t t = 0; t < g.taps(); ++t) {
      for (int64_t d = 0; d < g.depth; ++d) {
        A sum = 0;
        for (int64_t share = 0; share < shares; ++share) {
          sum += partial[share * share_size + d * plan.padded + t];
        }
        full[t * g.depth + d] = sum;
      }
    }
    T* dr = relative_grad->flat<T>().data();
    if (!g.factored) {
      for (size_t n = 0; n < full.size(); ++n) dr[n] = static_cast<T>(full[n]);
      return;
    }
    std::vector<A> folded(g.embedding_size(), A(0));
    for (int64_t t = 0; t < g.taps(); ++t) {
      for (int64_t d = 0; d < g.depth; ++d) {
        folded[invbench::FactoredIndex(g, t, d)] += full[t * g.depth + d];
      }
    }
    for (size_t n = 0; n < folded.size(); ++n) dr[n] = static_cast<T>(folded[n]);
  }
};

tensorflow::Status SameAsInput(InferenceContext* context, int index) {
  context->set_output(0, context->input(index));
  return tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("InvbenchInvolution")
    .Input("input: T")
    .Input("kernel: T")
    .Output("output: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      tensorflow::shape_inference::ShapeHandle input, kernel;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 4, &input));
      TF_RETURN_IF_ERROR(context->WithRank(context->input(1), 5, &kernel));
      context->set_output(0, context->MakeShape({context->Dim(kernel, 0), context->Dim(kernel, 1),
                                                 context->Dim(kernel, 2), context->Dim(input, 3)}));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchInvolutionInputGrad")
    .Input("grad: T")
    .Input("kernel: T")
    .Input("input: T")
    .Output("input_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) { return SameAsInput(context, 2); });

REGISTER_OP("InvbenchInvolutionKernelGrad")
    .Input("grad: T")
    .Input("input: T")
    .Output("kernel_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      // (B, H', W', K*K, G): the upstream gradient's first three, then the attributes.
      tensorflow::shape_inference::ShapeHandle grad;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 4, &grad));
      int kernel_size = 0, groups = 0;
      TF_RETURN_IF_ERROR(context->GetAttr("kernel_size", &kernel_size));
      TF_RETURN_IF_ERROR(context->GetAttr("groups", &groups));
      context->set_output(0, context->MakeShape({context->Dim(grad, 0), context->Dim(grad, 1),
                                                 context->Dim(grad, 2),
                                                 context->MakeDim(kernel_size * kernel_size),
                                                 context->MakeDim(groups)}));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchSpanInvolution")
    .Input("input: T")
    .Input("features: T")
    .Input("weights: T")
    .Input("bias: T")
    .Output("output: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      tensorflow::shape_inference::ShapeHandle input, features;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 4, &input));
      TF_RETURN_IF_ERROR(context->WithRank(context->input(1), 4, &features));
      context->set_output(0, context->MakeShape({context->Dim(features, 0),
                                                 context->Dim(features, 1),
                                                 context->Dim(features, 2),
                                                 context->Dim(input, 3)}));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchSpanInvolutionInputGrad")
    .Input("grad: T")
    .Input("features: T")
    .Input("weights: T")
    .Input("bias: T")
    .Input("input: T")
    .Output("input_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) { return SameAsInput(context, 4); });

REGISTER_OP("InvbenchSpanInvolutionParamsGrad")
    .Input("grad: T")
    .Input("input: T")
    .Input("features: T")
    .Input("weights: T")
    .Output("features_grad: T")
    .Output("weights_grad: T")
    .Output("bias_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(2));
      context->set_output(1, context->input(3));
      tensorflow::shape_inference::ShapeHandle weights;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(3), 2, &weights));
      context->set_output(2, context->Vector(context->Dim(weights, 1)));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchAttentionWeights")
    .Input("queries: T")
    .Input("keys: T")
    .Input("relative: T")
    .Output("weights: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      tensorflow::shape_inference::ShapeHandle queries;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 4, &queries));
      int kernel_size = 0, groups = 0;
      TF_RETURN_IF_ERROR(context->GetAttr("kernel_size", &kernel_size));
      TF_RETURN_IF_ERROR(context->GetAttr("groups", &groups));
      context->set_output(0, context->MakeShape({context->Dim(queries, 0),
                                                 context->Dim(queries, 1),
                                                 context->Dim(queries, 2),
                                                 context->MakeDim(kernel_size * kernel_size),
                                                 context->MakeDim(groups)}));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchNeighbourhoodSoftmaxGrad")
    .Input("weights: T")
    .Input("grad: T")
    .Input("queries: T")
    .Input("relative: T")
    .Output("logits_grad: T")
    .Output("queries_grad: T")
    .Output("relative_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(0));
      context->set_output(1, context->input(2));
      context->set_output(2, context->input(3));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchAttentionGrad")
    .Input("grad: T")
    .Input("values: T")
    .Input("weights: T")
    .Input("queries: T")
    .Input("relative: T")
    .Output("logits_grad: T")
    .Output("queries_grad: T")
    .Output("relative_grad: T")
    .Attr("T: {float, double, bfloat16}")
    .Attr("kernel_size: int")
    .Attr("stride: int")
    .Attr("groups: int")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(2));
      context->set_output(1, context->input(3));
      context->set_output(2, context->input(4));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchNarrowBatchNorm")
    .Input("x: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("variance: float")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(0));
      context->set_output(1, context->input(1));
      context->set_output(2, context->input(1));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchNarrowBatchNormGrad")
    .Input("grad: float")
    .Input("x: float")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("variance: float")
    .Output("x_grad: float")
    .Output("gamma_grad: float")
    .Output("beta_grad: float")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(1));
      context->set_output(1, context->input(2));
      context->set_output(2, context->input(2));
      return tensorflow::OkStatus();
    });

// Every stride-th row and column (subsample_kernels.h): the forward pass
// (kGrad false; input x (B, H, W, C)) or its gradient (true; inputs grad and
// x, which only lends its shape). Attributes row_stride and col_stride.
template <typename T, bool kGrad>
class SubsampleOp : public OpKernel {
 public:
  explicit SubsampleOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("row_stride", &row_stride_));
    OP_REQUIRES_OK(context, context->GetAttr("col_stride", &col_stride_));
    OP_REQUIRES(context, row_stride_ > 0 && col_stride_ > 0,
                InvalidArgument("strides must be positive"));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(kGrad ? 1 : 0);
    OP_REQUIRES(context, input.dims() == 4,
                InvalidArgument("input must be (B, H, W, C), got ", input.shape().DebugString()));
    const invbench::SubsampleGeometry g{input.dim_size(0), input.dim_size(1), input.dim_size(2),
                                        input.dim_size(3), row_stride_,        col_stride_};
    const TensorShape reduced({g.batch, g.out_height(), g.out_width(), g.channels});
    if constexpr (kGrad) {
      OP_REQUIRES(context, context->input(0).shape() == reduced,
                  InvalidArgument("gradient shape ", context->input(0).shape().DebugString(),
                                  " does not match the output ", reduced.DebugString()));
    }
    Tensor* result = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, kGrad ? input.shape() : reduced, &result));
    const T* source = context->input(0).flat<T>().data();
    T* out = result->flat<T>().data();
    const int64_t rows = kGrad ? g.batch * g.height : g.batch * g.out_height();
    const int64_t row_cost = (kGrad ? g.width : g.out_width()) * g.channels;
    auto* workers = context->device()->tensorflow_cpu_worker_threads()->workers;
    workers->ParallelFor(rows, row_cost, [&](int64_t begin, int64_t end) {
      if constexpr (kGrad) {
        invbench::SubsampleGradRows(g, source, out, begin, end);
      } else {
        invbench::SubsampleRows(g, source, out, begin, end);
      }
    });
  }

 private:
  int64_t row_stride_ = 1, col_stride_ = 1;
};

REGISTER_OP("InvbenchSubsample")
    .Input("input: T")
    .Output("output: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("row_stride: int")
    .Attr("col_stride: int")
    .SetShapeFn([](InferenceContext* context) {
      tensorflow::shape_inference::ShapeHandle input;
      TF_RETURN_IF_ERROR(context->WithRank(context->input(0), 4, &input));
      int row_stride = 1, col_stride = 1;
      TF_RETURN_IF_ERROR(context->GetAttr("row_stride", &row_stride));
      TF_RETURN_IF_ERROR(context->GetAttr("col_stride", &col_stride));
      // ceil(size / stride), unknown where the size is.
      const auto reduced = [&](int axis, int stride) {
        const auto dim = context->Dim(input, axis);
        if (!context->ValueKnown(dim)) return context->UnknownDim();
        return context->MakeDim((context->Value(dim) + stride - 1) / stride);
      };
      context->set_output(0, context->MakeShape({context->Dim(input, 0), reduced(1, row_stride),
                                                 reduced(2, col_stride),
                                                 context->Dim(input, 3)}));
      return tensorflow::OkStatus();
    });

REGISTER_OP("InvbenchSubsampleGrad")
    .Input("grad: T")
    .Input("input: T")
    .Output("input_grad: T")
    .Attr("T: {float, double, bfloat16, half}")
    .Attr("row_stride: int")
    .Attr("col_stride: int")
    .SetShapeFn([](InferenceContext* context) { return SameAsInput(context, 1); });

// An op and its gradient, NAME and NAME "Grad", as OP<T, false> and OP<T, true>.
#define REGISTER_WITH_GRADIENT(NAME, OP, T)                                                  \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(DEVICE_CPU).TypeConstraint<T>("T"), OP<T, false>); \
  REGISTER_KERNEL_BUILDER(Name(NAME "Grad").Device(DEVICE_CPU).TypeConstraint<T>("T"),        \
                          OP<T, true>);

REGISTER_WITH_GRADIENT("InvbenchSubsample", SubsampleOp, float);
REGISTER_WITH_GRADIENT("InvbenchSubsample", SubsampleOp, double);
REGISTER_WITH_GRADIENT("InvbenchSubsample", SubsampleOp, tensorflow::bfloat16);
REGISTER_WITH_GRADIENT("InvbenchSubsample", SubsampleOp, Eigen::half);

// Training augmentation (augment_kernels.h): images (B, H, W, C) uint8,
// offsets (B, 2) int32 into the image padded by `padding` (rows, columns),
// flip (B) bool; out float32 in [0, 1].
class CropFlipScaleOp : public OpKernel {
 public:
  explicit CropFlipScaleOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("padding", &padding_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& offsets = context->input(1);
    const Tensor& flip = context->input(2);
    OP_REQUIRES(context, images.dims() == 4,
                InvalidArgument("images must be (B, H, W, C), got ",
                                images.shape().DebugString()));
    const int64_t count = images.dim_size(0);
    OP_REQUIRES(context, offsets.shape() == TensorShape({count, 2}),
                InvalidArgument("offsets must be (", count, ", 2), got ",
                                offsets.shape().DebugString()));
    OP_REQUIRES(context, flip.shape() == TensorShape({count}),
                InvalidArgument("flip must be (", count, "), got ", flip.shape().DebugString()));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, images.shape(), &out));
    const auto pairs = offsets.matrix<int32_t>();
    std::vector<int32_t> rows(count), cols(count);
    for (int64_t b = 0; b < count; ++b) {
      OP_REQUIRES(context,
                  pairs(b, 0) >= 0 && pairs(b, 0) <= 2 * padding_ && pairs(b, 1) >= 0 &&
                      pairs(b, 1) <= 2 * padding_,
                  InvalidArgument("offsets must lie in [0, ", 2 * padding_, "]"));
      rows[b] = pairs(b, 0);
      cols[b] = pairs(b, 1);
    }
    invbench::CropFlipScale(images.flat<uint8_t>().data(), count, images.dim_size(1),
                            images.dim_size(2), images.dim_size(3), rows.data(), cols.data(),
                            flip.flat<bool>().data(), padding_, out->flat<float>().data());
  }

 private:
  int64_t padding_ = 0;
};

REGISTER_OP("InvbenchCropFlipScale")
    .Input("images: uint8")
    .Input("offsets: int32")
    .Input("flip: bool")
    .Output("out: float")
    .Attr("padding: int >= 0")
    .SetShapeFn([](InferenceContext* context) {
      context->set_output(0, context->input(0));
      return tensorflow::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("InvbenchCropFlipScale").Device(DEVICE_CPU), CropFlipScaleOp);
REGISTER_KERNEL_BUILDER(Name("InvbenchNarrowBatchNorm").Device(DEVICE_CPU), NarrowNormOp);
REGISTER_KERNEL_BUILDER(Name("InvbenchNarrowBatchNormGrad").Device(DEVICE_CPU), NarrowNormGradOp);

#define REGISTER_KERNELS(T)                                                                    \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchInvolution").Device(DEVICE_CPU).TypeConstraint<T>("T"), InvolutionOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchInvolutionInputGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),          \
      InvolutionGradOp<T, true>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchInvolutionKernelGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),         \
      InvolutionGradOp<T, false>);                                                             \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchSpanInvolution").Device(DEVICE_CPU).TypeConstraint<T>("T"),               \
      SpanInvolutionOp<T, false>);                                                             \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchSpanInvolutionInputGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),      \
      SpanInvolutionOp<T, true>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchSpanInvolutionParamsGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
      SpanInvolutionParamsGradOp<T>);                                                          \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchAttentionWeights").Device(DEVICE_CPU).TypeConstraint<T>("T"),             \
      AttentionWeightsOp<T>);                                                                  \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchNeighbourhoodSoftmaxGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
      NeighbourhoodSoftmaxGradOp<T>);                                                          \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("InvbenchAttentionGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),                \
      AttentionGradOp<T>);

REGISTER_KERNELS(float);
REGISTER_KERNELS(double);
REGISTER_KERNELS(tensorflow::bfloat16);
