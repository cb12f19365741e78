// The CUDA backend's paged DSA operations, MoE and sampling (cuda_backend.h says what runs where).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cpu/moe_routing.h"
#include "kernels/cpu/sampling.h"
#include "kernels/cuda/cache_write.h"
#include "kernels/cuda/cuda_allocator.h"
#include "kernels/cuda/indexer_logits.h"
#include "kernels/cuda/indexer_topk.h"
#include "kernels/cuda/model_ops.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/sparse_mla.h"
#include "worker/model/cuda_backend_internal.h"

namespace strata::model::cuda_internal {
namespace {

absl::Status CheckSlots(const PagedView& view, int64_t tokens) {
  if (view.slot_mapping == nullptr || view.slot_mapping->dtype() != DType::kI32 ||
      view.slot_mapping->dim(0) != tokens) {
    return absl::InvalidArgumentError("cache write: slot_mapping is not [T] i32");
  }
  return absl::OkStatus();
}

bool OnDevice(const Tensor& t, Device d, DType dtype, const Shape& shape) {
  return t.defined() && t.device() == d && t.dtype() == dtype && t.shape() == shape &&
         t.is_contiguous();
}

// Whether the grouped expert FFN tiles these widths and strides (H and I multiples of 64, row
// strides multiples of 8): MoeExpertsCuda's own size checks, run with no tokens.
bool GroupedExpertsTake(const Tensor& x, const std::vector<Backend::ExpertWeights>& experts,
                        int64_t top_k, const Tensor& y, cudaStream_t stream) {
  if (x.ndim() != 2 || y.ndim() != 2 || experts.empty() || experts[0].gate == nullptr) return false;
  const kernels::MoeExpertsParams sizes{.num_tokens = 0,
                                        .hidden = x.dim(1),
                                        .inter = experts[0].gate->dim(0),
                                        .num_experts = static_cast<int64_t>(experts.size()),
                                        .top_k = top_k,
                                        .x_stride = x.stride(0),
                                        .y_stride = y.stride(0)};
  return kernels::MoeExpertsCuda(sizes, nullptr, 0, stream) == cudaSuccess;
}

// The routed experts over bf16 activations and weights (the bf16 backend's layout): the device's
// grouped expert FFN (kernels/cuda/moe.h). REQUIRES: GroupedExpertsTake. The expert pointer table
// is built once per layer and kept (`tables`); the workspace is a stream-ordered temporary
// (capturable).
absl::Status MoeExpertsBf16(Backend& b, cudaStream_t stream, const Tensor& x,
                            const Tensor& expert_ids, const Tensor& weights,
                            const std::vector<Backend::ExpertWeights>& experts,
                            std::map<const void*, ExpertTable>& tables, Tensor& y) {
  const Device d = b.device();
  const int64_t t = x.dim(0), h = x.dim(1), k = expert_ids.dim(1);
  const int64_t e_count = static_cast<int64_t>(experts.size());
  const int64_t inter = e_count > 0 ? experts[0].gate->dim(0) : 0;
  bool ok = x.ndim() == 2 && x.device() == d && x.stride(1) == 1 &&
            (y.dtype() == DType::kBF16 || y.dtype() == DType::kF32) && y.device() == d &&
            y.shape() == x.shape() && y.stride(1) == 1 &&
            OnDevice(expert_ids, d, DType::kI32, {t, k}) &&
            OnDevice(weights, d, DType::kF32, {t, k}) && e_count > 0;
  std::vector<const void*> ptrs(3 * e_count);
  for (int64_t e = 0; ok && e < e_count; ++e) {
    const Backend::ExpertWeights& w = experts[e];
    ok = OnDevice(*w.gate, d, DType::kBF16, {inter, h}) &&
         OnDevice(*w.up, d, DType::kBF16, {inter, h}) &&
         OnDevice(*w.down, d, DType::kBF16, {h, inter});
    if (ok) {
      ptrs[e] = w.gate->data();
      ptrs[e_count + e] = w.up->data();
      ptrs[2 * e_count + e] = w.down->data();
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "moe (bf16): x ", x.DebugString(), ", y (bf16 or f32) ", y.DebugString(),
        ", expert ids/weights and every expert's gate/up [I, H] and down [H, I] must be bf16 "
        "contiguous on ",
        d.ToString()));
  }
  if (t == 0) return absl::OkStatus();
  ExpertTable& cached = tables[ptrs[0]];
  if (cached.host != ptrs) {  // first call for this layer (or new weights at a reused address)
    // Upload copies from a pinned slot in stream order: the host vector may go at once.
    auto up = b.Upload(Tensor::Borrow(ptrs.data(), DType::kI64, {3 * e_count}));
    if (!up.ok()) {
      tables.erase(ptrs[0]);
      return up.status();
    }
    cached.device = *std::move(up);
    cached.host = ptrs;
  }
  const Tensor& d_ptrs = cached.device;
  const size_t ws_bytes = kernels::MoeExpertsWorkspaceBytes(t, k, e_count, h, inter);
  // f32 elements: NewTensor zero-fills byte tensors (caches), which a workspace does not need.
  ASSIGN_OR_RETURN(Tensor ws, b.NewTensor(DType::kF32, {static_cast<int64_t>(ws_bytes / 4 + 64)}));
  const auto* table = static_cast<const uint16_t* const*>(d_ptrs.data());
  return CudaStatus(
      kernels::MoeExpertsCuda(
          {.num_tokens = t,
           .hidden = h,
           .inter = inter,
           .num_experts = e_count,
           .top_k = k,
           .x_stride = x.stride(0),
           .y_stride = y.stride(0),
           .x = static_cast<const uint16_t*>(x.data()),
           .expert_ids = expert_ids.data<int32_t>(),
           .weights = weights.data<float>(),
           .gate = table,
           .up = table + e_count,
           .down = table + 2 * e_count,
           .y = y.dtype() == DType::kBF16 ? static_cast<uint16_t*>(y.data()) : nullptr,
           .y_f32 = y.dtype() == DType::kF32 ? static_cast<float*>(y.data()) : nullptr},
          ws.data(), ws.nbytes(), stream),
      "moe experts");
}

}  // namespace

absl::Status CudaBackend::WriteLatentCache(const Tensor& rows, const PagedView& view,
                                           LayerCache& cache) {
  RETURN_IF_ERROR(CheckAct(rows, "latent rows"));
  RETURN_IF_ERROR(CheckSlots(view, rows.dim(0)));
  return CudaStatus(kernels::WriteLatentCacheCuda({.num_tokens = static_cast<int>(rows.dim(0)),
                                                   .rows_dtype = rows.dtype(),
                                                   .rows = rows.data(),
                                                   .rows_stride = rows.stride(0),
                                                   .slots = view.slot_mapping->data<int32_t>(),
                                                   .cache = cache.latent_view()},
                                                  stream_),
                    "write latent cache");
}

absl::Status CudaBackend::WriteIndexerCache(const Tensor& keys, const PagedView& view,
                                            LayerCache& cache) {
  RETURN_IF_ERROR(CheckAct(keys, "indexer keys"));
  RETURN_IF_ERROR(CheckSlots(view, keys.dim(0)));
  return CudaStatus(kernels::WriteIndexerCacheCuda({.num_tokens = static_cast<int>(keys.dim(0)),
                                                    .keys_dtype = keys.dtype(),
                                                    .keys = keys.data(),
                                                    .keys_stride = keys.stride(0),
                                                    .slots = view.slot_mapping->data<int32_t>(),
                                                    .cache = cache.indexer_view()},
                                                   stream_),
                    "write indexer cache");
}

absl::StatusOr<Tensor> CudaBackend::IndexerTopk(const Tensor& q, const Tensor& w,
                                                float weight_scale, float softmax_scale, int top_k,
                                                const PagedView& view, const LayerCache& cache) {
  RETURN_IF_ERROR(CheckAct(q, "indexer q"));
  RETURN_IF_ERROR(CheckAct(w, "indexer weights"));
  if (q.ndim() != 3 || w.dtype() != DType::kF32 || w.ndim() != 2 || w.dim(0) != q.dim(0) ||
      w.dim(1) != q.dim(1) || q.dim(2) != cache.geometry.index_head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("indexer: q ", q.DebugString(), ", weights ", w.DebugString()));
  }
  if (top_k < 0 || top_k > kernels::kIndexerTopkMaxK) {
    return absl::InvalidArgumentError(absl::StrCat("indexer top-k ", top_k));
  }
  const int t = static_cast<int>(q.dim(0));
  ASSIGN_OR_RETURN(const StepLens lens, Lens(view));
  const Tensor& bt = *view.block_tables;
  const kvcache::BlockTableView table{.num_seqs = static_cast<int>(bt.dim(0)),
                                      .max_blocks_per_seq = static_cast<int>(bt.dim(1)),
                                      .row_stride = bt.dim(1),
                                      .table = bt.data<int32_t>(),
                                      .seq_lens = lens.seq_lens};

  // The weights carry weight_scale (in place, as on the CPU backend: w is a step temporary).
  RETURN_IF_ERROR(CudaStatus(kernels::ScaleCuda({.rows = w.dim(0),
                                                 .dim = w.dim(1),
                                                 .stride = w.stride(0),
                                                 .alpha = weight_scale,
                                                 .x = const_cast<float*>(w.data<float>())},
                                                stream_),
                             "indexer weight scale"));
  // Logits [T, stride] with a 16-byte row pitch for the top-k's vector loads.
  const int64_t max_cols = lens.max_row_len;
  const int64_t stride = std::max<int64_t>(4, (max_cols + 3) / 4 * 4);
  ASSIGN_OR_RETURN(Tensor logits, NewTensor(DType::kF32, {std::max(t, 1), stride}));
  const kvcache::IndexerCacheView cv = cache.indexer_view();
  const bool tuned = q.dtype() == DType::kBF16 && (q.dim(1) == 32 || q.dim(1) == 64) &&
                     q.dim(2) == 128 && cv.dtype != kvcache::IndexerCacheDType::kF32 &&
                     q.stride(0) % 8 == 0 && q.stride(1) % 8 == 0 &&
                     reinterpret_cast<uintptr_t>(q.data()) % 16 == 0;
  if (tuned) {
    ++counts_.tuned_indexer;
    RETURN_IF_ERROR(
        CudaStatus(kernels::IndexerPagedLogitsCuda({.num_tokens = t,
                                                    .num_heads = static_cast<int>(q.dim(1)),
                                                    .max_cols = max_cols,
                                                    .softmax_scale = softmax_scale,
                                                    .q = q.data<uint16_t>(),
                                                    .q_token_stride = q.stride(0),
                                                    .q_head_stride = q.stride(1),
                                                    .weights = w.data<float>(),
                                                    .weights_token_stride = w.stride(0),
                                                    .row_seq = view.token_seq->data<int32_t>(),
                                                    .row_lens = lens.row_lens,
                                                    .block_table = table,
                                                    .cache = cv,
                                                    .logits = logits.data<float>(),
                                                    .logits_stride = stride},
                                                   stream_),
                   "indexer logits"));
  } else {
    ++counts_.generic_indexer;
    RETURN_IF_ERROR(CudaStatus(
        kernels::IndexerPagedLogitsGenericCuda({.num_tokens = t,
                                                .num_heads = static_cast<int>(q.dim(1)),
                                                .max_cols = max_cols,
                                                .softmax_scale = softmax_scale,
                                                .q_token_stride = q.stride(0),
                                                .q_head_stride = q.stride(1),
                                                .weights = w.data<float>(),
                                                .weights_token_stride = w.stride(0),
                                                .row_seq = view.token_seq->data<int32_t>(),
                                                .row_lens = lens.row_lens,
                                                .block_table = table,
                                                .cache = cv,
                                                .logits = logits.data<float>(),
                                                .logits_stride = stride},
                                               q.dtype(), q.data(), stream_),
        "indexer logits (generic)"));
  }
  // Top-k with the fused position → slot epilogue (tuned kernel; a set, in no particular order).
  ASSIGN_OR_RETURN(Tensor topk_pos, NewTensor(DType::kI32, {t, top_k}));
  ASSIGN_OR_RETURN(Tensor slots, NewTensor(DType::kI32, {t, top_k}));
  if (t == 0 || top_k == 0) return slots;
  const kernels::IndexerTopkPlan plan =
      kernels::PlanIndexerTopkCuda(t, top_k, stride, limits_.sm_count);
  ASSIGN_OR_RETURN(void* workspace, Scratch(static_cast<int64_t>(plan.workspace_bytes)));
  RETURN_IF_ERROR(CudaStatus(kernels::IndexerTopkCuda({.num_tokens = t,
                                                       .topk = top_k,
                                                       .logits = logits.data<float>(),
                                                       .logits_stride = stride,
                                                       .col_end = lens.row_lens,
                                                       .topk_pos = topk_pos.data<int32_t>(),
                                                       .topk_stride = top_k,
                                                       .slots = slots.data<int32_t>(),
                                                       .slots_stride = top_k,
                                                       .row_seq = view.token_seq->data<int32_t>(),
                                                       .row_lens = lens.row_lens,
                                                       .block_table = table,
                                                       .num_blocks = cache.num_blocks},
                                                      plan, workspace, stream_),
                             "indexer top-k"));
  // The temporaries above are freed in stream order, after the kernels.
  return slots;
}

absl::Status CudaBackend::SparseMla(const Tensor& q_abs, const Tensor& slots, float scale,
                                    const LayerCache& cache, Tensor& out) {
  RETURN_IF_ERROR(CheckAct(q_abs, "sparse_mla q"));
  RETURN_IF_ERROR(CheckAct(out, "sparse_mla out"));
  if (slots.dtype() != DType::kI32 || slots.ndim() != 2 || slots.dim(0) != q_abs.dim(0) ||
      q_abs.ndim() != 3 || out.ndim() != 3 || out.dtype() != q_abs.dtype()) {
    return absl::InvalidArgumentError(absl::StrCat("sparse_mla: q ", q_abs.DebugString(),
                                                   ", slots ", slots.DebugString(), ", out ",
                                                   out.DebugString()));
  }
  const kvcache::LatentCacheView cv = cache.latent_view();
  const int t = static_cast<int>(q_abs.dim(0)), nh = static_cast<int>(q_abs.dim(1)),
            k = static_cast<int>(slots.dim(1));
  const bool tuned_shape = q_abs.dtype() == DType::kBF16 && cv.kv_lora_rank == 512 &&
                           cv.rope_dim == 64 && cv.dtype != kvcache::LatentCacheDType::kF32 &&
                           q_abs.stride(0) % 8 == 0 && q_abs.stride(1) % 8 == 0 &&
                           out.stride(0) % 2 == 0 && out.stride(1) % 2 == 0 &&
                           reinterpret_cast<uintptr_t>(q_abs.data()) % 16 == 0;
  if (tuned_shape && t > 0) {
    auto plan = kernels::PlanSparseMla(
        {.max_tokens = t, .num_heads = nh, .topk = k, .cache_dtype = cv.dtype, .device = limits_});
    if (plan.ok()) {
      ++counts_.tuned_sparse_mla;
      ASSIGN_OR_RETURN(void* workspace, Scratch(plan->workspace_bytes));
      return CudaStatus(kernels::SparseMlaCuda({.num_tokens = t,
                                                .num_heads = nh,
                                                .topk = k,
                                                .scale = scale,
                                                .q = q_abs.data(),
                                                .q_token_stride = q_abs.stride(0),
                                                .q_head_stride = q_abs.stride(1),
                                                .slots = slots.data<int32_t>(),
                                                .slots_token_stride = slots.stride(0),
                                                .cache = cv,
                                                .out = out.data(),
                                                .out_token_stride = out.stride(0),
                                                .out_head_stride = out.stride(1)},
                                               *plan, workspace, stream_),
                        "sparse_mla");
    }
  }
  ++counts_.generic_sparse_mla;
  return CudaStatus(kernels::SparseMlaGenericCuda({.num_tokens = t,
                                                   .num_heads = nh,
                                                   .topk = k,
                                                   .scale = scale,
                                                   .q_token_stride = q_abs.stride(0),
                                                   .q_head_stride = q_abs.stride(1),
                                                   .slots = slots.data<int32_t>(),
                                                   .slots_token_stride = slots.stride(0),
                                                   .cache = cv,
                                                   .out_token_stride = out.stride(0),
                                                   .out_head_stride = out.stride(1)},
                                                  q_abs.dtype(), q_abs.data(), out.data(), stream_),
                    "sparse_mla (generic)");
}

absl::Status CudaBackend::MoeRoute(const Tensor& router_logits, const Tensor& bias,
                                   const RouteArgs& args, Tensor& expert_ids, Tensor& weights) {
  const int64_t t = router_logits.dim(0), e = router_logits.dim(1);
  kernels::MoeRoutingParams p{.num_tokens = t,
                              .num_experts = e,
                              .n_group = args.n_group,
                              .topk_group = args.topk_group,
                              .top_k = args.top_k,
                              .logits_stride = router_logits.stride(0),
                              .norm_topk_prob = args.norm_topk_prob,
                              .routed_scaling_factor = args.routed_scaling_factor};
  // The CPU twin's size checks (no tokens: nothing is read or written).
  kernels::MoeRoutingParams sizes = p;
  sizes.num_tokens = 0;
  RETURN_IF_ERROR(kernels::MoeRoutingCpu(sizes));
  const Device d = device();
  if (router_logits.ndim() == 2 && router_logits.dtype() == DType::kF32 &&
      router_logits.device() == d && router_logits.stride(1) == 1 &&
      OnDevice(bias, d, DType::kF32, {e}) &&
      OnDevice(expert_ids, d, DType::kI32, {t, args.top_k}) &&
      OnDevice(weights, d, DType::kF32, {t, args.top_k}) && e <= kernels::kMoeRoutingMaxExperts &&
      args.top_k <= kernels::kMoeRoutingMaxTopK &&
      (args.topk_group >= args.n_group || args.n_group <= kernels::kMoeRoutingMaxGroups)) {
    // On the device: the same experts and weights as the CPU twin, bit for bit.
    p.logits = router_logits.data<float>();
    p.correction_bias = bias.data<float>();
    p.expert_ids = expert_ids.data<int32_t>();
    p.weights = weights.data<float>();
    return CudaStatus(kernels::MoeRoutingCuda(p, stream_), "moe routing");
  }
  // Shapes the device router does not take: route on the host.
  ASSIGN_OR_RETURN(Tensor logits, Download(router_logits));
  ASSIGN_OR_RETURN(Tensor host_bias, Download(bias));
  ASSIGN_OR_RETURN(Tensor ids, Tensor::Empty(DType::kI32, expert_ids.shape()));
  ASSIGN_OR_RETURN(Tensor w, Tensor::Empty(DType::kF32, weights.shape()));
  p.logits_stride = logits.dim(1);
  p.logits = logits.data<float>();
  p.correction_bias = host_bias.data<float>();
  p.expert_ids = ids.data<int32_t>();
  p.weights = w.data<float>();
  RETURN_IF_ERROR(kernels::MoeRoutingCpu(p));
  RETURN_IF_ERROR(Copy(ids, expert_ids));
  return Copy(w, weights);
}

// bf16 activations and experts of widths the grouped kernel tiles (H, I multiples of 64): the
// device's grouped expert FFN (MoeExpertsBf16 above), no host round trip. Otherwise (f32, or the
// tiny test models' widths): groups the (token, k) pairs by expert on the host, then per expert:
// gather its rows, three GEMMs and SiLU·mul, and add weight · output back into y (a token meets
// an expert once, so the scatter has distinct rows).
absl::Status CudaBackend::MoeExperts(const Tensor& x, const Tensor& expert_ids,
                                     const Tensor& weights,
                                     const std::vector<ExpertWeights>& experts, Tensor& y) {
  // Widths the grouped kernel does not tile (the tiny test models) take the per-expert path below.
  if (x.defined() && x.dtype() == DType::kBF16 && !experts.empty() && experts[0].gate != nullptr &&
      experts[0].gate->dtype() == DType::kBF16 && y.defined() && expert_ids.ndim() == 2 &&
      GroupedExpertsTake(x, experts, expert_ids.dim(1), y, stream_)) {
    return MoeExpertsBf16(*this, stream_, x, expert_ids, weights, experts, expert_tables_, y);
  }
  RETURN_IF_ERROR(CheckAct(x, "moe x"));
  RETURN_IF_ERROR(CheckAct(y, "moe y"));
  if (y.shape() != x.shape() || y.dtype() != DType::kF32) {
    return absl::InvalidArgumentError("moe: y must be f32 of x's shape");
  }
  const int64_t t = x.dim(0), h = x.dim(1), k = expert_ids.dim(1);
  const int64_t e_count = static_cast<int64_t>(experts.size());
  ASSIGN_OR_RETURN(Tensor ids, Download(expert_ids));
  ASSIGN_OR_RETURN(Tensor w, Download(weights));
  std::vector<std::vector<int32_t>> rows(e_count);
  std::vector<std::vector<float>> row_weight(e_count);
  int64_t max_rows = 0;
  for (int64_t i = 0; i < t; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids.data<int32_t>()[i * k + j];
      if (e < 0 || e >= e_count) return absl::InternalError("moe: expert id out of range");
      rows[e].push_back(static_cast<int32_t>(i));
      row_weight[e].push_back(w.data<float>()[i * k + j]);
      max_rows = std::max<int64_t>(max_rows, static_cast<int64_t>(rows[e].size()));
    }
  }
  CUDA_RETURN_IF_ERROR(
      cudaMemset2DAsync(y.data(), y.stride(0) * sizeof(float), 0, h * sizeof(float), t, stream_));
  if (max_rows == 0) return absl::OkStatus();
  int64_t inter = 0;
  for (const ExpertWeights& e : experts) inter = std::max(inter, e.gate->dim(0));
  ASSIGN_OR_RETURN(Tensor xe_all, NewTensor(x.dtype(), {max_rows, h}));
  ASSIGN_OR_RETURN(Tensor gate_all, NewTensor(x.dtype(), {max_rows, inter}));
  ASSIGN_OR_RETURN(Tensor up_all, NewTensor(x.dtype(), {max_rows, inter}));
  ASSIGN_OR_RETURN(Tensor out_all, NewTensor(DType::kF32, {max_rows, h}));
  ASSIGN_OR_RETURN(Tensor index_all, NewTensor(DType::kI32, {t * k}));
  ASSIGN_OR_RETURN(Tensor alpha_all, NewTensor(DType::kF32, {t * k}));
  // All experts' row lists and weights in one upload each.
  std::vector<int32_t> flat_rows;
  std::vector<float> flat_alpha;
  std::vector<int64_t> offset(e_count + 1, 0);
  for (int64_t e = 0; e < e_count; ++e) {
    flat_rows.insert(flat_rows.end(), rows[e].begin(), rows[e].end());
    flat_alpha.insert(flat_alpha.end(), row_weight[e].begin(), row_weight[e].end());
    offset[e + 1] = static_cast<int64_t>(flat_rows.size());
  }
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(index_all.data(), flat_rows.data(), flat_rows.size() * 4,
                                       cudaMemcpyHostToDevice, stream_));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(alpha_all.data(), flat_alpha.data(), flat_alpha.size() * 4,
                                       cudaMemcpyHostToDevice, stream_));
  for (int64_t e = 0; e < e_count; ++e) {
    const int64_t n = offset[e + 1] - offset[e];
    if (n == 0) continue;
    const int64_t ie = experts[e].gate->dim(0);
    const int32_t* index = index_all.data<int32_t>() + offset[e];
    RETURN_IF_ERROR(CudaStatus(kernels::GatherRowsCuda({.num_rows = n,
                                                        .dim = h,
                                                        .x_rows = t,
                                                        .x_stride = x.stride(0),
                                                        .out_stride = h,
                                                        .rows = index,
                                                        .x = x.data(),
                                                        .out = xe_all.data(),
                                                        .dtype = x.dtype()},
                                                       stream_),
                               "moe gather"));
    ASSIGN_OR_RETURN(Tensor xe, xe_all.Slice(0, 0, n));
    ASSIGN_OR_RETURN(Tensor gate, gate_all.Slice(0, 0, n));
    ASSIGN_OR_RETURN(gate, gate.Slice(1, 0, ie));
    ASSIGN_OR_RETURN(Tensor up, up_all.Slice(0, 0, n));
    ASSIGN_OR_RETURN(up, up.Slice(1, 0, ie));
    ASSIGN_OR_RETURN(Tensor out, out_all.Slice(0, 0, n));
    RETURN_IF_ERROR(Linear(xe, *experts[e].gate, gate));
    RETURN_IF_ERROR(Linear(xe, *experts[e].up, up));
    RETURN_IF_ERROR(SiluMul(gate, up, gate));
    RETURN_IF_ERROR(Linear(gate, *experts[e].down, out));
    RETURN_IF_ERROR(CudaStatus(kernels::AxpyCuda({.rows = n,
                                                  .dim = h,
                                                  .y_rows_total = t,
                                                  .x_stride = h,
                                                  .y_stride = y.stride(0),
                                                  .row_alpha = alpha_all.data<float>() + offset[e],
                                                  .y_rows = index,
                                                  .x = out.data<float>(),
                                                  .y = y.data<float>()},
                                                 stream_),
                               "moe scatter"));
  }
  // The host row lists must outlive their (pageable, hence staged) copies: wait for the stream.
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

absl::Status CudaBackend::Sample(const Tensor& logits, const std::vector<SamplingArgs>& args,
                                 std::vector<int32_t>& ids, std::vector<float>& logprobs) {
  const int64_t rows = logits.dim(0);
  if (static_cast<int64_t>(args.size()) != rows || logits.dtype() != DType::kF32 ||
      logits.ndim() != 2 || logits.stride(1) != 1) {
    return absl::InvalidArgumentError("sample: f32 [rows, vocab] logits, one SamplingArgs a row");
  }
  ids.assign(rows, 0);
  logprobs.assign(rows, 0.0f);
  if (rows == 0) return absl::OkStatus();
  std::vector<kernels::SamplingOptions> options(rows);
  std::vector<uint64_t> steps(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const SamplingArgs& a = args[r];
    // The CPU twin's option checks (the device sampler trusts its options).
    if (!(a.temperature >= 0.0f) || std::isinf(a.temperature) || a.top_k < 0 ||
        !(a.top_p > 0.0f && a.top_p <= 1.0f)) {
      return absl::InvalidArgumentError(absl::StrCat("sample: row ", r, " has bad options"));
    }
    options[r] = {a.temperature, a.top_k, a.top_p, a.seed};
    steps[r] = static_cast<uint64_t>(a.step);
  }
  kernels::SampleParams p{.rows = rows,
                          .vocab_size = logits.dim(1),
                          .logits_stride = logits.stride(0),
                          .logits = logits.data<float>(),
                          .options = options.data(),
                          .steps = steps.data(),
                          .tokens = ids.data(),
                          .logprobs = logprobs.data()};
  if (logits.device() != device()) return kernels::SampleCpu(p);  // logits already on the host
  // On the device (SampleCuda draws what SampleCpu draws); the per-row options go up, R ids and
  // logprobs come down.
  ASSIGN_OR_RETURN(Tensor d_options,
                   Upload(Tensor::Borrow(options.data(), DType::kU8,
                                         {rows * static_cast<int64_t>(sizeof(options[0]))})));
  ASSIGN_OR_RETURN(Tensor d_steps, UploadVector(steps, DType::kI64));
  ASSIGN_OR_RETURN(Tensor d_ids, NewTensor(DType::kI32, {rows}));
  ASSIGN_OR_RETURN(Tensor d_lp, NewTensor(DType::kF32, {rows}));
  p.options = static_cast<const kernels::SamplingOptions*>(d_options.data());
  p.steps = static_cast<const uint64_t*>(d_steps.data());
  p.tokens = d_ids.data<int32_t>();
  p.logprobs = d_lp.data<float>();
  RETURN_IF_ERROR(CudaStatus(kernels::SampleCuda(p, stream_), "sample"));
  ASSIGN_OR_RETURN(Tensor h_ids, Download(d_ids));
  ASSIGN_OR_RETURN(Tensor h_lp, Download(d_lp));
  std::memcpy(ids.data(), h_ids.data(), rows * sizeof(int32_t));
  std::memcpy(logprobs.data(), h_lp.data(), rows * sizeof(float));
  return absl::OkStatus();
}

}  // namespace strata::model::cuda_internal
