// The CUDA backend's dense operations: embedding, norms, GEMMs, elementwise (cuda_backend.h says
// what runs where).
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/model_ops.h"
#include "worker/model/cuda_backend_internal.h"

namespace strata::model::cuda_internal {
namespace {

absl::Status CheckF32(const Tensor& t, absl::string_view what) {
  if (!t.defined() || t.dtype() != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": expected f32, got ", t.defined() ? t.DebugString() : std::string("undefined")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CudaBackend::Embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(out, "embedding out"));
  RETURN_IF_ERROR(CheckF32(out, "embedding out"));
  RETURN_IF_ERROR(CheckAct(table, "embedding table"));
  if (ids.dtype() != DType::kI32 || ids.device() != device() || ids.ndim() != 1 ||
      table.ndim() != 2 || !table.is_contiguous() ||
      out.shape() != Shape{ids.dim(0), table.dim(1)}) {
    return absl::InvalidArgumentError(absl::StrCat("embedding: ids ", ids.DebugString(), ", table ",
                                                   table.DebugString(), ", out ",
                                                   out.DebugString()));
  }
  // Ids are not read back (no sync): an id outside the table gives a zero row; the model checks
  // ids on the host before they get here.
  return CudaStatus(kernels::EmbeddingCuda({.num_ids = ids.dim(0),
                                            .vocab_size = table.dim(0),
                                            .dim = table.dim(1),
                                            .out_stride = out.stride(0),
                                            .table_dtype = table.dtype(),
                                            .table = table.data(),
                                            .ids = ids.data<int32_t>(),
                                            .out = out.data<float>()},
                                           stream_),
                    "embedding");
}

absl::Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(x, "rms_norm x"));
  RETURN_IF_ERROR(CheckAct(out, "rms_norm out"));
  RETURN_IF_ERROR(CheckF32(weight, "rms_norm weight"));
  if (out.shape() != x.shape() || x.ndim() != 2 || weight.numel() != x.dim(1)) {
    return absl::InvalidArgumentError("rms_norm: shapes");
  }
  return CudaStatus(kernels::RmsNormCuda({.rows = x.dim(0),
                                          .dim = x.dim(1),
                                          .x_stride = x.stride(0),
                                          .out_stride = out.stride(0),
                                          .eps = eps,
                                          .x_dtype = x.dtype(),
                                          .out_dtype = out.dtype(),
                                          .x = x.data(),
                                          .weight = weight.data<float>(),
                                          .out = out.data()},
                                         stream_),
                    "rms_norm");
}

absl::Status CudaBackend::AddRmsNorm(Tensor& h, const Tensor& delta, const Tensor& weight,
                                     float eps, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(h, "add_rms_norm h"));
  RETURN_IF_ERROR(CheckF32(h, "add_rms_norm h"));
  RETURN_IF_ERROR(CheckAct(delta, "add_rms_norm delta"));
  RETURN_IF_ERROR(CheckAct(out, "add_rms_norm out"));
  RETURN_IF_ERROR(CheckF32(weight, "add_rms_norm weight"));
  if (h.ndim() != 2 || delta.shape() != h.shape() || out.shape() != h.shape() ||
      weight.numel() != h.dim(1)) {
    return absl::InvalidArgumentError("add_rms_norm: shapes");
  }
  return CudaStatus(kernels::RmsNormCuda({.rows = h.dim(0),
                                          .dim = h.dim(1),
                                          .x_stride = delta.stride(0),
                                          .out_stride = out.stride(0),
                                          .residual_stride = h.stride(0),
                                          .eps = eps,
                                          .x_dtype = delta.dtype(),
                                          .out_dtype = out.dtype(),
                                          .x = delta.data(),
                                          .weight = weight.data<float>(),
                                          .residual = h.data<float>(),
                                          .out = out.data()},
                                         stream_),
                    "add_rms_norm");
}

absl::Status CudaBackend::LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                    float eps, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(x, "layer_norm x"));
  RETURN_IF_ERROR(CheckAct(out, "layer_norm out"));
  RETURN_IF_ERROR(CheckF32(weight, "layer_norm weight"));
  if (bias.defined()) RETURN_IF_ERROR(CheckF32(bias, "layer_norm bias"));
  if (out.shape() != x.shape() || out.dtype() != x.dtype() || x.ndim() != 2) {
    return absl::InvalidArgumentError("layer_norm: out shape or dtype");
  }
  return CudaStatus(kernels::LayerNormCuda({.rows = x.dim(0),
                                            .dim = x.dim(1),
                                            .x_stride = x.stride(0),
                                            .out_stride = out.stride(0),
                                            .eps = eps,
                                            .dtype = x.dtype(),
                                            .x = x.data(),
                                            .weight = weight.data<float>(),
                                            .bias = bias.defined() ? bias.data<float>() : nullptr,
                                            .out = out.data()},
                                           stream_),
                    "layer_norm");
}

absl::Status CudaBackend::Linear(const Tensor& x, const Tensor& w, Tensor& y) {
  RETURN_IF_ERROR(CheckAct(x, "linear x"));
  RETURN_IF_ERROR(CheckAct(y, "linear y"));
  RETURN_IF_ERROR(CheckAct(w, "linear w"));
  if (!w.is_contiguous() || w.ndim() != 2 || x.ndim() != 2 || w.dim(1) != x.dim(1) ||
      y.shape() != Shape{x.dim(0), w.dim(0)}) {
    return absl::InvalidArgumentError(absl::StrCat("linear: x ", x.DebugString(), ", w ",
                                                   w.DebugString(), ", y ", y.DebugString()));
  }
  if (w.dtype() == DType::kF32 && y.dtype() != DType::kF32) {
    return absl::UnimplementedError("linear: an f32 weight writes f32 outputs only");
  }
  if (x.dim(0) == 0 || w.dim(0) == 0) return absl::OkStatus();
  // Decode-sized calls with a bf16 weight: the memory-bound GEMV (x read as is, bf16 or f32),
  // when it takes the shapes (K a multiple of 8, 16-byte aligned rows); else cuBLASLt. The GEMV
  // takes up to 8 rows, but on the H100 it beats cuBLASLt only at 1–2 (87–99% of copy bandwidth
  // at M = 1 on GLM-5's projections, against cuBLAS's 65–90%; at M = 8 it reads x once per row
  // block and falls to 36–88%, cuBLAS 33–89%: docs/performance.md).
  constexpr int64_t kGemvMaxDecodeRows = 2;
  static_assert(kGemvMaxDecodeRows <= kernels::kGemvMaxRows);
  if (w.dtype() == DType::kBF16 && x.dim(0) <= kGemvMaxDecodeRows) {
    const kernels::GemvParams gp{.m = x.dim(0),
                                 .n = w.dim(0),
                                 .k = w.dim(1),
                                 .w_stride = w.stride(0),
                                 .x_stride = x.stride(0),
                                 .y_stride = y.stride(0),
                                 .x_dtype = x.dtype(),
                                 .y_dtype = y.dtype(),
                                 .w = w.data(),
                                 .x = x.data(),
                                 .y = y.data()};
    if (kernels::GemvSupported(gp)) {
      ++counts_.gemv_linear;
      return CudaStatus(kernels::GemvCuda(gp, stream_), "linear gemv");
    }
  }
  ++counts_.gemm_linear;
  // x in the weight's dtype (the router: bf16 activations upcast for an fp32 GEMM).
  ASSIGN_OR_RETURN(const Tensor xa, Converted(x, w.dtype()));
  // Row-major y = x·Wᵀ is column-major yᵀ[N, T] = W[N, K]·xᵀ[K, T]: A = W stored [K, N].
  return gemm_->Run({.ab_dtype = w.dtype(),
                     .d_dtype = y.dtype(),
                     .trans_a = true,
                     .trans_b = false,
                     .m = w.dim(0),
                     .n = x.dim(0),
                     .k = w.dim(1),
                     .lda = w.stride(0),
                     .ldb = xa.stride(0),
                     .ldd = y.stride(0),
                     .a = w.data(),
                     .b = xa.data(),
                     .d = y.data()},
                    stream_);
}

absl::Status CudaBackend::HeadMatmul(const Tensor& x, const Tensor& w, bool transpose_w,
                                     Tensor& y) {
  RETURN_IF_ERROR(CheckAct(x, "head_matmul x"));
  RETURN_IF_ERROR(CheckAct(y, "head_matmul y"));
  RETURN_IF_ERROR(CheckAct(w, "head_matmul w"));
  if (x.ndim() != 3 || w.ndim() != 3 || x.dtype() != w.dtype()) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_matmul: x ", x.DebugString(), ", w ", w.DebugString()));
  }
  const int64_t heads = w.dim(0), in = x.dim(2);
  const int64_t out = transpose_w ? w.dim(1) : w.dim(2);
  if (x.dim(1) != heads || (transpose_w ? w.dim(2) : w.dim(1)) != in ||
      y.shape() != Shape{x.dim(0), heads, out}) {
    return absl::InvalidArgumentError(absl::StrCat("head_matmul: x ", x.DebugString(), ", w ",
                                                   w.DebugString(), ", y ", y.DebugString()));
  }
  if (x.dim(0) == 0 || heads == 0) return absl::OkStatus();
  // Per head, column-major yᵀ[out, T] = Bᵀ·xᵀ with B = W[h] ([in, out]) or W[h]ᵀ (W[h] [out, in]).
  return gemm_->Run({.ab_dtype = w.dtype(),
                     .d_dtype = y.dtype(),
                     .trans_a = transpose_w,
                     .trans_b = false,
                     .m = out,
                     .n = x.dim(0),
                     .k = in,
                     .lda = w.stride(1),
                     .ldb = x.stride(0),
                     .ldd = y.stride(0),
                     .batch = heads,
                     .stride_a = w.stride(0),
                     .stride_b = x.stride(1),
                     .stride_d = y.stride(1),
                     .a = w.data(),
                     .b = x.data(),
                     .d = y.data()},
                    stream_);
}

absl::Status CudaBackend::Add(Tensor& x, const Tensor& y) {
  RETURN_IF_ERROR(CheckAct(x, "add x"));
  RETURN_IF_ERROR(CheckF32(x, "add x"));
  RETURN_IF_ERROR(CheckAct(y, "add y"));
  if (y.shape() != x.shape()) return absl::InvalidArgumentError("add: shapes differ");
  if (x.numel() == 0) return absl::OkStatus();
  return CudaStatus(kernels::AxpyCuda({.rows = x.dim(0),
                                       .dim = x.numel() / x.dim(0),
                                       .x_stride = y.stride(0),
                                       .y_stride = x.stride(0),
                                       .y = x.data<float>()},
                                      y.dtype(), y.data(), stream_),
                    "add");
}

absl::StatusOr<Tensor> CudaBackend::GatherRows(const Tensor& x, const std::vector<int32_t>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  for (int32_t r : rows) {
    if (r < 0 || r >= x.dim(0)) return absl::InvalidArgumentError(absl::StrCat("gather_rows: ", r));
  }
  if (x.device().is_cpu()) {  // the runner gathers downloaded logits
    if (x.dtype() != DType::kF32 || x.stride(1) != 1) {
      return absl::InvalidArgumentError("gather_rows: f32 rows expected");
    }
    ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(DType::kF32, {n, x.dim(1)}));
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(out.data<float>() + i * x.dim(1), x.data<float>() + rows[i] * x.stride(0),
                  x.dim(1) * sizeof(float));
    }
    return out;
  }
  RETURN_IF_ERROR(CheckAct(x, "gather_rows x"));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(x.dtype(), {n, x.dim(1)}));
  if (n == 0) return out;
  ASSIGN_OR_RETURN(Tensor index, UploadVector(rows, DType::kI32));
  RETURN_IF_ERROR(CudaStatus(kernels::GatherRowsCuda({.num_rows = n,
                                                      .dim = x.dim(1),
                                                      .x_rows = x.dim(0),
                                                      .x_stride = x.stride(0),
                                                      .out_stride = x.dim(1),
                                                      .rows = index.data<int32_t>(),
                                                      .x = x.data(),
                                                      .out = out.data(),
                                                      .dtype = x.dtype()},
                                                     stream_),
                             "gather_rows"));
  return out;  // `index` is freed in stream order, after the gather
}

absl::Status CudaBackend::Rope(Tensor& x, const Tensor& positions, const RopeArgs& rope) {
  RETURN_IF_ERROR(CheckAct(x, "rope x"));
  if (x.ndim() != 3 || positions.dim(0) != x.dim(0) || rope.inv_freq == nullptr ||
      rope.inv_freq->dim(0) * 2 != x.dim(2)) {
    return absl::InvalidArgumentError(absl::StrCat("rope: x ", x.DebugString()));
  }
  return CudaStatus(kernels::ApplyRopeCuda({.num_tokens = x.dim(0),
                                            .num_heads = x.dim(1),
                                            .rot_dim = x.dim(2),
                                            .token_stride = x.stride(0),
                                            .head_stride = x.stride(1),
                                            .style = rope.style,
                                            .attention_factor = rope.attention_factor,
                                            .positions = positions.data<int64_t>(),
                                            .inv_freq = rope.inv_freq->data<float>()},
                                           x.dtype(), x.data(), stream_),
                    "rope");
}

absl::Status CudaBackend::SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(gate, "silu_mul gate"));
  if (up.shape() != gate.shape() || out.shape() != gate.shape() || up.dtype() != gate.dtype() ||
      out.dtype() != gate.dtype()) {
    return absl::InvalidArgumentError("silu_mul: shapes or dtypes differ");
  }
  return CudaStatus(kernels::SiluMulCuda({.rows = gate.dim(0),
                                          .dim = gate.dim(1),
                                          .gate_stride = gate.stride(0),
                                          .up_stride = up.stride(0),
                                          .out_stride = out.stride(0),
                                          .dtype = gate.dtype(),
                                          .gate = gate.data(),
                                          .up = up.data(),
                                          .out = out.data()},
                                         stream_),
                    "silu_mul");
}

}  // namespace strata::model::cuda_internal
