#include "worker/model/cpu_backend.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/cache_write.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/indexer_logits.h"
#include "kernels/cpu/layer_norm.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cpu/sparse_mla.h"

namespace strata::model {
namespace {

// The operations take fp32 activations whose innermost dimension is contiguous.
absl::Status CheckF32Rows(const Tensor& t, absl::string_view what) {
  if (!t.defined() || t.dtype() != DType::kF32 || !t.device().is_cpu() ||
      t.stride(t.ndim() - 1) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": expected an f32 host tensor with contiguous rows, got ",
                     t.defined() ? t.DebugString() : "undefined"));
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const Tensor& t, const Shape& shape, absl::string_view what) {
  if (t.shape() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shape [",
                                                   absl::StrJoin(t.shape(), ", "), "], expected [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  return absl::OkStatus();
}

// The block table of a step as the kernels take it, with each sequence's length = the furthest
// position any of its tokens reaches (its rows are written before they are read).
struct StepTable {
  std::vector<int32_t> seq_lens;
  std::vector<int32_t> row_lens;  // per token: pos + 1 (causal)
  kvcache::BlockTableView view;
};

absl::StatusOr<StepTable> MakeStepTable(const PagedView& pv) {
  StepTable st;
  const Tensor& bt = *pv.block_tables;
  const int64_t t = pv.positions->dim(0);
  st.seq_lens.assign(bt.dim(0), 0);
  st.row_lens.resize(t);
  const int64_t* pos = pv.positions->data<int64_t>();
  const int32_t* seq = pv.token_seq->data<int32_t>();
  for (int64_t i = 0; i < t; ++i) {
    st.row_lens[i] = static_cast<int32_t>(pos[i] + 1);
    st.seq_lens[seq[i]] = std::max(st.seq_lens[seq[i]], st.row_lens[i]);
  }
  st.view.num_seqs = static_cast<int>(bt.dim(0));
  st.view.max_blocks_per_seq = static_cast<int>(bt.dim(1));
  st.view.row_stride = bt.dim(1);
  st.view.table = bt.data<int32_t>();
  st.view.seq_lens = st.seq_lens.data();
  return st;
}

// Host memory needs no staging: a chunk is written in place.
class CpuUploader final : public Uploader {
 public:
  explicit CpuUploader(int64_t max_chunk) : max_chunk_(max_chunk) {}
  int64_t max_chunk_bytes() const override { return max_chunk_; }
  absl::StatusOr<void*> Begin(const Tensor& dst, int64_t offset, int64_t bytes) override {
    if (!dst.device().is_cpu() || !dst.is_contiguous() || offset < 0 || bytes < 0 ||
        bytes > max_chunk_ || offset + bytes > static_cast<int64_t>(dst.nbytes())) {
      return absl::InvalidArgumentError(absl::StrCat("upload of bytes [", offset, ", ",
                                                     offset + bytes, ") into ", dst.DebugString()));
    }
    return static_cast<char*>(dst.data()) + offset;
  }
  absl::Status Commit() override { return absl::OkStatus(); }
  absl::Status Finish() override { return absl::OkStatus(); }

 private:
  int64_t max_chunk_;
};

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::Cpu(); }

  absl::StatusOr<Tensor> NewTensor(DType dtype, Shape shape) override {
    return Tensor::Empty(dtype, std::move(shape));
  }
  absl::StatusOr<Tensor> Upload(const Tensor& host) override { return host; }
  absl::StatusOr<Tensor> Download(const Tensor& t) override {
    if (t.is_contiguous()) return t;
    ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(t.dtype(), t.shape()));
    RETURN_IF_ERROR(CopyCpu(t, out));
    return out;
  }
  absl::StatusOr<std::unique_ptr<Uploader>> NewUploader(int64_t staging_bytes) override {
    return std::make_unique<CpuUploader>(std::max<int64_t>(staging_bytes, 1));
  }

  absl::Status Embedding(const Tensor& ids, const Tensor& table, Tensor& out) override {
    RETURN_IF_ERROR(CheckF32Rows(out, "embedding out"));
    return kernels::EmbeddingCpu({.num_ids = ids.dim(0),
                                  .vocab_size = table.dim(0),
                                  .dim = table.dim(1),
                                  .out_stride = out.stride(0),
                                  .table = table.data<float>(),
                                  .ids = ids.data<int32_t>(),
                                  .out = out.data<float>()});
  }

  absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "rms_norm x"));
    RETURN_IF_ERROR(CheckShape(out, x.shape(), "rms_norm out"));
    return kernels::RmsNormCpu({.rows = x.dim(0),
                                .dim = x.dim(1),
                                .x_stride = x.stride(0),
                                .out_stride = out.stride(0),
                                .eps = eps,
                                .x = x.data<float>(),
                                .weight = weight.data<float>(),
                                .out = out.data<float>()});
  }

  // The residual add, then the norm: the same two kernels the unfused sequence runs.
  absl::Status AddRmsNorm(Tensor& h, const Tensor& delta, const Tensor& weight, float eps,
                          Tensor& out) override {
    RETURN_IF_ERROR(Add(h, delta));
    return RmsNorm(h, weight, eps, out);
  }

  absl::Status LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                         Tensor& out) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "layer_norm x"));
    RETURN_IF_ERROR(CheckShape(out, x.shape(), "layer_norm out"));
    return kernels::LayerNormCpu({.rows = x.dim(0),
                                  .dim = x.dim(1),
                                  .x_stride = x.stride(0),
                                  .out_stride = out.stride(0),
                                  .eps = eps,
                                  .x = x.data<float>(),
                                  .weight = weight.data<float>(),
                                  .bias = bias.defined() ? bias.data<float>() : nullptr,
                                  .out = out.data<float>()});
  }

  absl::Status Linear(const Tensor& x, const Tensor& w, Tensor& y) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "linear x"));
    RETURN_IF_ERROR(CheckF32Rows(y, "linear y"));
    if (!w.is_contiguous() || w.ndim() != 2 || w.dim(1) != x.dim(1) ||
        y.shape() != Shape{x.dim(0), w.dim(0)}) {
      return absl::InvalidArgumentError(absl::StrCat("linear: x ", x.DebugString(), ", w ",
                                                     w.DebugString(), ", y ", y.DebugString()));
    }
    return kernels::LinearCpu({.m = x.dim(0),
                               .n = w.dim(0),
                               .k = w.dim(1),
                               .x_stride = x.stride(0),
                               .y_stride = y.stride(0),
                               .x = x.data<float>(),
                               .weight = w.data<float>(),
                               .y = y.data<float>()});
  }

  absl::Status HeadMatmul(const Tensor& x, const Tensor& w, bool transpose_w, Tensor& y) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "head_matmul x"));
    RETURN_IF_ERROR(CheckF32Rows(y, "head_matmul y"));
    RETURN_IF_ERROR(CheckF32Rows(w, "head_matmul w"));
    const int64_t heads = w.dim(0), in = x.dim(2);
    const int64_t out = transpose_w ? w.dim(1) : w.dim(2);
    if (x.ndim() != 3 || x.dim(1) != heads || (transpose_w ? w.dim(2) : w.dim(1)) != in ||
        y.shape() != Shape{x.dim(0), heads, out}) {
      return absl::InvalidArgumentError(absl::StrCat("head_matmul: x ", x.DebugString(), ", w ",
                                                     w.DebugString(), ", y ", y.DebugString()));
    }
    kernels::GemmStridedBatchedParams p;
    p.batch_count = heads;
    p.stride_a = x.stride(1);
    p.stride_b = w.stride(0);
    p.stride_c = y.stride(1);
    p.gemm = {.m = x.dim(0),
              .n = out,
              .k = in,
              .transpose_b = transpose_w,
              .lda = x.stride(0),
              .ldb = w.stride(1),
              .ldc = y.stride(0),
              .a = x.data<float>(),
              .b = w.data<float>(),
              .c = y.data<float>()};
    return kernels::GemmStridedBatchedCpu(p);
  }

  absl::Status Add(Tensor& x, const Tensor& y) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "add x"));
    RETURN_IF_ERROR(CheckF32Rows(y, "add y"));
    RETURN_IF_ERROR(CheckShape(y, x.shape(), "add y"));
    return kernels::AxpyCpu({.rows = x.dim(0),
                             .dim = x.numel() / x.dim(0),
                             .x_stride = y.stride(0),
                             .y_stride = x.stride(0),
                             .x = y.data<float>(),
                             .y = x.data<float>()});
  }

  absl::Status Copy(const Tensor& src, Tensor& dst) override { return CopyCpu(src, dst); }

  absl::StatusOr<Tensor> GatherRows(const Tensor& x, const std::vector<int32_t>& rows) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "gather_rows x"));
    const int64_t dim = x.dim(1);
    ASSIGN_OR_RETURN(Tensor out,
                     Tensor::Empty(DType::kF32, {static_cast<int64_t>(rows.size()), dim}));
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] < 0 || rows[i] >= x.dim(0)) {
        return absl::InvalidArgumentError(absl::StrCat("gather_rows: row ", rows[i]));
      }
      std::memcpy(out.data<float>() + i * dim, x.data<float>() + rows[i] * x.stride(0),
                  dim * sizeof(float));
    }
    return out;
  }

  absl::Status Rope(Tensor& x, const Tensor& positions, const RopeArgs& rope) override {
    RETURN_IF_ERROR(CheckF32Rows(x, "rope x"));
    if (x.ndim() != 3 || positions.dim(0) != x.dim(0) || rope.inv_freq == nullptr ||
        rope.inv_freq->dim(0) * 2 != x.dim(2)) {
      return absl::InvalidArgumentError(absl::StrCat("rope: x ", x.DebugString()));
    }
    return kernels::ApplyRopeCpu({.num_tokens = x.dim(0),
                                  .num_heads = x.dim(1),
                                  .rot_dim = x.dim(2),
                                  .token_stride = x.stride(0),
                                  .head_stride = x.stride(1),
                                  .style = rope.style,
                                  .attention_factor = rope.attention_factor,
                                  .positions = positions.data<int64_t>(),
                                  .inv_freq = rope.inv_freq->data<float>(),
                                  .x = x.data<float>()});
  }

  absl::Status SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    RETURN_IF_ERROR(CheckShape(up, gate.shape(), "silu_mul up"));
    RETURN_IF_ERROR(CheckShape(out, gate.shape(), "silu_mul out"));
    return kernels::SiluMulCpu({.rows = gate.dim(0),
                                .dim = gate.dim(1),
                                .gate_stride = gate.stride(0),
                                .up_stride = up.stride(0),
                                .out_stride = out.stride(0),
                                .gate = gate.data<float>(),
                                .up = up.data<float>(),
                                .out = out.data<float>()});
  }

  absl::Status WriteLatentCache(const Tensor& rows, const PagedView& view,
                                LayerCache& cache) override {
    RETURN_IF_ERROR(CheckF32Rows(rows, "latent rows"));
    return kernels::WriteLatentCacheCpu({.num_tokens = static_cast<int>(rows.dim(0)),
                                         .rows = rows.data<float>(),
                                         .rows_stride = rows.stride(0),
                                         .slots = view.slot_mapping->data<int32_t>(),
                                         .cache = cache.latent_view()});
  }

  absl::Status WriteIndexerCache(const Tensor& keys, const PagedView& view,
                                 LayerCache& cache) override {
    RETURN_IF_ERROR(CheckF32Rows(keys, "indexer keys"));
    return kernels::WriteIndexerCacheCpu({.num_tokens = static_cast<int>(keys.dim(0)),
                                          .keys = keys.data<float>(),
                                          .keys_stride = keys.stride(0),
                                          .slots = view.slot_mapping->data<int32_t>(),
                                          .cache = cache.indexer_view()});
  }

  absl::StatusOr<Tensor> IndexerTopk(const Tensor& q, const Tensor& w, float weight_scale,
                                     float softmax_scale, int top_k, const PagedView& view,
                                     const LayerCache& cache) override {
    RETURN_IF_ERROR(CheckF32Rows(q, "indexer q"));
    RETURN_IF_ERROR(CheckF32Rows(w, "indexer weights"));
    ASSIGN_OR_RETURN(StepTable st, MakeStepTable(view));
    const int t = static_cast<int>(q.dim(0));
    const int64_t max_cols = *std::max_element(st.row_lens.begin(), st.row_lens.end());
    RETURN_IF_ERROR(kernels::ScaleCpu({.rows = w.dim(0),
                                       .dim = w.dim(1),
                                       .stride = w.stride(0),
                                       .alpha = weight_scale,
                                       .x = const_cast<float*>(w.data<float>())}));
    ASSIGN_OR_RETURN(Tensor logits, Tensor::Empty(DType::kF32, {t, max_cols}));
    RETURN_IF_ERROR(kernels::IndexerPagedLogitsCpu({.num_tokens = t,
                                                    .num_heads = static_cast<int>(q.dim(1)),
                                                    .max_cols = max_cols,
                                                    .softmax_scale = softmax_scale,
                                                    .q = q.data<float>(),
                                                    .q_token_stride = q.stride(0),
                                                    .q_head_stride = q.stride(1),
                                                    .weights = w.data<float>(),
                                                    .weights_token_stride = w.stride(0),
                                                    .row_seq = view.token_seq->data<int32_t>(),
                                                    .row_lens = st.row_lens.data(),
                                                    .block_table = st.view,
                                                    .cache = cache.indexer_view(),
                                                    .logits = logits.data<float>(),
                                                    .logits_stride = max_cols}));
    ASSIGN_OR_RETURN(Tensor pos, Tensor::Empty(DType::kI32, {t, top_k}));
    RETURN_IF_ERROR(kernels::IndexerTopkCpu({.num_tokens = t,
                                             .topk = top_k,
                                             .logits = logits.data<float>(),
                                             .logits_stride = max_cols,
                                             .col_end = st.row_lens.data(),
                                             .topk_pos = pos.data<int32_t>(),
                                             .topk_stride = top_k}));
    ASSIGN_OR_RETURN(Tensor slots, Tensor::Empty(DType::kI32, {t, top_k}));
    RETURN_IF_ERROR(kernels::MapTopkToSlotsCpu({.num_tokens = t,
                                                .topk = top_k,
                                                .topk_pos = pos.data<int32_t>(),
                                                .topk_stride = top_k,
                                                .row_seq = view.token_seq->data<int32_t>(),
                                                .row_lens = st.row_lens.data(),
                                                .block_table = st.view,
                                                .num_blocks = cache.num_blocks,
                                                .slots = slots.data<int32_t>(),
                                                .slots_stride = top_k}));
    return slots;
  }

  absl::Status SparseMla(const Tensor& q_abs, const Tensor& slots, float scale,
                         const LayerCache& cache, Tensor& out) override {
    RETURN_IF_ERROR(CheckF32Rows(q_abs, "sparse_mla q"));
    RETURN_IF_ERROR(CheckF32Rows(out, "sparse_mla out"));
    if (slots.dtype() != DType::kI32 || slots.ndim() != 2 || slots.dim(0) != q_abs.dim(0)) {
      return absl::InvalidArgumentError(absl::StrCat("sparse_mla: slots ", slots.DebugString()));
    }
    return kernels::SparseMlaCpu({.num_tokens = static_cast<int>(q_abs.dim(0)),
                                  .num_heads = static_cast<int>(q_abs.dim(1)),
                                  .topk = static_cast<int>(slots.dim(1)),
                                  .scale = scale,
                                  .q = q_abs.data<float>(),
                                  .q_token_stride = q_abs.stride(0),
                                  .q_head_stride = q_abs.stride(1),
                                  .slots = slots.data<int32_t>(),
                                  .slots_token_stride = slots.stride(0),
                                  .cache = cache.latent_view(),
                                  .out = out.data<float>(),
                                  .out_token_stride = out.stride(0),
                                  .out_head_stride = out.stride(1)});
  }

  absl::Status MoeRoute(const Tensor& router_logits, const Tensor& bias, const RouteArgs& args,
                        Tensor& expert_ids, Tensor& weights) override {
    RETURN_IF_ERROR(CheckF32Rows(router_logits, "moe router logits"));
    return kernels::MoeRoutingCpu({.num_tokens = router_logits.dim(0),
                                   .num_experts = router_logits.dim(1),
                                   .n_group = args.n_group,
                                   .topk_group = args.topk_group,
                                   .top_k = args.top_k,
                                   .logits_stride = router_logits.stride(0),
                                   .norm_topk_prob = args.norm_topk_prob,
                                   .routed_scaling_factor = args.routed_scaling_factor,
                                   .logits = router_logits.data<float>(),
                                   .correction_bias = bias.data<float>(),
                                   .expert_ids = expert_ids.data<int32_t>(),
                                   .weights = weights.data<float>()});
  }

  absl::Status MoeExperts(const Tensor& x, const Tensor& expert_ids, const Tensor& weights,
                          const std::vector<ExpertWeights>& experts, Tensor& y) override;

  absl::Status Sample(const Tensor& logits, const std::vector<SamplingArgs>& args,
                      std::vector<int32_t>& ids, std::vector<float>& logprobs) override {
    RETURN_IF_ERROR(CheckF32Rows(logits, "sample logits"));
    const int64_t rows = logits.dim(0);
    if (static_cast<int64_t>(args.size()) != rows) {
      return absl::InvalidArgumentError("sample: one SamplingArgs per row");
    }
    std::vector<kernels::SamplingOptions> options(rows);
    std::vector<uint64_t> steps(rows);
    for (int64_t r = 0; r < rows; ++r) {
      options[r] = {args[r].temperature, args[r].top_k, args[r].top_p, args[r].seed};
      steps[r] = static_cast<uint64_t>(args[r].step);
    }
    ids.assign(rows, 0);
    logprobs.assign(rows, 0.0f);
    return kernels::SampleCpu({.rows = rows,
                               .vocab_size = logits.dim(1),
                               .logits_stride = logits.stride(0),
                               .logits = logits.data<float>(),
                               .options = options.data(),
                               .steps = steps.data(),
                               .tokens = ids.data(),
                               .logprobs = logprobs.data()});
  }
};

// Groups the (token, k) pairs by expert, runs each expert once on its gathered rows and adds
// weight · output back into y.
absl::Status CpuBackend::MoeExperts(const Tensor& x, const Tensor& expert_ids,
                                    const Tensor& weights,
                                    const std::vector<ExpertWeights>& experts, Tensor& y) {
  RETURN_IF_ERROR(CheckF32Rows(x, "moe x"));
  RETURN_IF_ERROR(CheckShape(y, x.shape(), "moe y"));
  const int64_t t = x.dim(0), h = x.dim(1), k = expert_ids.dim(1);
  const int64_t e_count = static_cast<int64_t>(experts.size());
  std::vector<std::vector<int32_t>> rows(e_count);
  std::vector<std::vector<float>> row_weight(e_count);
  const int32_t* ids = expert_ids.data<int32_t>();
  const float* w = weights.data<float>();
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[i * k + j];
      if (e < 0 || e >= e_count) return absl::InternalError("moe: expert id out of range");
      rows[e].push_back(static_cast<int32_t>(i));
      row_weight[e].push_back(w[i * k + j]);
    }
  }
  for (int64_t i = 0; i < t; ++i) std::memset(y.data<float>() + i * y.stride(0), 0, h * 4);
  for (int64_t e = 0; e < e_count; ++e) {
    if (rows[e].empty()) continue;
    const int64_t n = static_cast<int64_t>(rows[e].size());
    const int64_t inter = experts[e].gate->dim(0);
    ASSIGN_OR_RETURN(Tensor xe, GatherRows(x, rows[e]));
    ASSIGN_OR_RETURN(Tensor gate, Tensor::Empty(DType::kF32, {n, inter}));
    ASSIGN_OR_RETURN(Tensor up, Tensor::Empty(DType::kF32, {n, inter}));
    ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(DType::kF32, {n, h}));
    RETURN_IF_ERROR(Linear(xe, *experts[e].gate, gate));
    RETURN_IF_ERROR(Linear(xe, *experts[e].up, up));
    RETURN_IF_ERROR(SiluMul(gate, up, gate));
    RETURN_IF_ERROR(Linear(gate, *experts[e].down, out));
    RETURN_IF_ERROR(kernels::AxpyCpu({.rows = n,
                                      .dim = h,
                                      .y_rows_total = t,
                                      .x_stride = h,
                                      .y_stride = y.stride(0),
                                      .row_alpha = row_weight[e].data(),
                                      .y_rows = rows[e].data(),
                                      .x = out.data<float>(),
                                      .y = y.data<float>()}));
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Backend> NewCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace strata::model
