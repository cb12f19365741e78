// One decoder layer (specs/dsa.md §1): absorbed MLA with the lightning indexer, then the dense MLP
// or the MoE block.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/model/model.h"

namespace strata::model {
namespace {

// q_a_layernorm, kv_a_layernorm and the indexer's k_norm use 1e-6 whatever rms_norm_eps says
// (the reference implementation hardcodes it; specs/dsa.md §1).
constexpr float kLatentNormEps = 1e-6f;

absl::StatusOr<Tensor> Columns(const Tensor& x, int64_t begin, int64_t end) {
  return x.Slice(x.ndim() - 1, begin, end);
}

}  // namespace

// The residual stream h and the sublayer outputs added to it (attention, MLP) are f32; the norm
// outputs and everything inside the sublayers are in the backend's activation dtype.
absl::Status Model::Layer(const LayerWeights& w, Step& step, LayerCache& cache, Tensor& h,
                          Tensor& pending, Tensor& topk_slots) {
  const int64_t t = step.tokens, hidden = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  ASSIGN_OR_RETURN(Tensor a, backend_.NewTensor(backend_.activation_dtype(), {t, hidden}));
  if (pending.defined()) {
    RETURN_IF_ERROR(backend_.AddRmsNorm(h, pending, w.input_layernorm, eps, a));
  } else {
    RETURN_IF_ERROR(backend_.RmsNorm(h, w.input_layernorm, eps, a));
  }
  ASSIGN_OR_RETURN(Tensor attn, backend_.NewTensor(DType::kF32, {t, hidden}));
  RETURN_IF_ERROR(Attention(w, step, cache, a, topk_slots, attn));
  RETURN_IF_ERROR(AllReduce(attn)) << "all-reduce after o_proj";

  Tensor& m = a;  // reuse: post-attention norm output
  RETURN_IF_ERROR(backend_.AddRmsNorm(h, attn, w.post_attention_layernorm, eps, m));
  Tensor& mlp_out = attn;
  RETURN_IF_ERROR(Mlp(w, m, mlp_out));
  RETURN_IF_ERROR(AllReduce(mlp_out)) << "all-reduce after the MLP";
  pending = mlp_out;
  return absl::OkStatus();
}

absl::Status Model::Attention(const LayerWeights& w, Step& step, LayerCache& cache, const Tensor& a,
                              Tensor& topk_slots, Tensor& out) {
  const ModelConfig& c = config_;
  // This rank's heads (all of them without tensor parallelism).
  const int64_t t = step.tokens, nh = c.num_attention_heads / options_.load.tp.size,
                p = c.qk_nope_head_dim, r = c.qk_rope_head_dim, l = c.kv_lora_rank,
                v = c.v_head_dim;
  // Main MLA rope: interleaved pairs for both model families (dsa.md §3).
  const RopeArgs main_rope{&inv_freq_, rope_attention_factor_,
                           kernels::RopeStyle::kInterleavedToHalfSplit};
  const DType act = backend_.activation_dtype();

  // Queries: q_c = RMSNorm(a · q_aᵀ); q = q_c · q_bᵀ → [T, nH, P + R].
  ASSIGN_OR_RETURN(Tensor q_c, backend_.NewTensor(act, {t, c.q_lora_rank}));
  RETURN_IF_ERROR(backend_.Linear(a, w.q_a_proj, q_c));
  RETURN_IF_ERROR(backend_.RmsNorm(q_c, w.q_a_layernorm, kLatentNormEps, q_c));
  ASSIGN_OR_RETURN(Tensor q, backend_.NewTensor(act, {t, nh * (p + r)}));
  RETURN_IF_ERROR(backend_.Linear(q_c, w.q_b_proj, q));
  ASSIGN_OR_RETURN(q, q.View({t, nh, p + r}));
  ASSIGN_OR_RETURN(Tensor q_rope, Columns(q, p, p + r));
  RETURN_IF_ERROR(backend_.Rope(q_rope, *step.view.positions, main_rope));

  // The cache row: [RMSNorm(latent) | RoPE(k_rope)], written before attending so that the tokens
  // of a chunk see each other.
  ASSIGN_OR_RETURN(Tensor kv, backend_.NewTensor(act, {t, l + r}));
  RETURN_IF_ERROR(backend_.Linear(a, w.kv_a_proj, kv));
  ASSIGN_OR_RETURN(Tensor latent, Columns(kv, 0, l));
  RETURN_IF_ERROR(backend_.RmsNorm(latent, w.kv_a_layernorm, kLatentNormEps, latent));
  ASSIGN_OR_RETURN(Tensor k_rope, kv.AsStrided({t, 1, r}, {l + r, r, 1}, l));
  RETURN_IF_ERROR(backend_.Rope(k_rope, *step.view.positions, main_rope));
  RETURN_IF_ERROR(backend_.WriteLatentCache(kv, step.view, cache));

  // Top-k: this layer's own indexer, or the nearest earlier full layer's (IndexShare).
  if (w.has_indexer) {
    const IndexerWeights& ix = w.indexer;
    const int64_t ih = c.index_n_heads, id = c.index_head_dim;
    const RopeArgs index_rope{&inv_freq_, rope_attention_factor_,
                              c.indexer_rope_interleave
                                  ? kernels::RopeStyle::kInterleavedToHalfSplit
                                  : kernels::RopeStyle::kNeox};
    ASSIGN_OR_RETURN(Tensor qi, backend_.NewTensor(act, {t, ih * id}));
    RETURN_IF_ERROR(backend_.Linear(q_c, ix.wq_b, qi));
    ASSIGN_OR_RETURN(qi, qi.View({t, ih, id}));
    ASSIGN_OR_RETURN(Tensor qi_rope, Columns(qi, 0, r));  // rope first in the indexer
    RETURN_IF_ERROR(backend_.Rope(qi_rope, *step.view.positions, index_rope));
    ASSIGN_OR_RETURN(Tensor ki, backend_.NewTensor(act, {t, id}));
    RETURN_IF_ERROR(backend_.Linear(a, ix.wk, ki));
    RETURN_IF_ERROR(backend_.LayerNorm(ki, ix.k_norm, ix.k_norm_bias, kLatentNormEps, ki));
    ASSIGN_OR_RETURN(Tensor ki_rope, ki.AsStrided({t, 1, r}, {id, r, 1}, 0));
    RETURN_IF_ERROR(backend_.Rope(ki_rope, *step.view.positions, index_rope));
    RETURN_IF_ERROR(backend_.WriteIndexerCache(ki, step.view, cache));
    // The head weights stay f32 (the reference computes them in the weights' dtype, then .float()).
    ASSIGN_OR_RETURN(Tensor weights, backend_.NewTensor(DType::kF32, {t, ih}));
    RETURN_IF_ERROR(backend_.Linear(a, ix.weights_proj, weights));
    ASSIGN_OR_RETURN(topk_slots,
                     backend_.IndexerTopk(qi, weights, 1.0f / std::sqrt(static_cast<float>(ih)),
                                          1.0f / std::sqrt(static_cast<float>(id)), c.index_topk,
                                          step.view, cache));
  } else if (!topk_slots.defined()) {
    return absl::FailedPreconditionError(
        "a shared-indexer layer needs the top-k of an earlier full layer in the same stage");
  }

  // Absorbed attention: q_abs = [q_nope · W_UK | q_rope] → o_lat → o = o_lat · W_UVᵀ.
  ASSIGN_OR_RETURN(Tensor q_abs, backend_.NewTensor(act, {t, nh, l + r}));
  ASSIGN_OR_RETURN(Tensor q_nope, Columns(q, 0, p));
  ASSIGN_OR_RETURN(Tensor q_lat, Columns(q_abs, 0, l));
  RETURN_IF_ERROR(backend_.HeadMatmul(q_nope, w.w_uk, /*transpose_w=*/false, q_lat));
  ASSIGN_OR_RETURN(Tensor q_abs_rope, Columns(q_abs, l, l + r));
  RETURN_IF_ERROR(backend_.Copy(q_rope, q_abs_rope));
  ASSIGN_OR_RETURN(Tensor o_lat, backend_.NewTensor(act, {t, nh, l}));
  RETURN_IF_ERROR(backend_.SparseMla(q_abs, topk_slots, attention_scale_, cache, o_lat));
  ASSIGN_OR_RETURN(Tensor o, backend_.NewTensor(act, {t, nh, v}));
  RETURN_IF_ERROR(backend_.HeadMatmul(o_lat, w.w_uv, /*transpose_w=*/true, o));
  ASSIGN_OR_RETURN(o, o.View({t, nh * v}));
  return backend_.Linear(o, w.o_proj, out);
}

absl::Status Model::DenseMlp(const MlpWeights& w, const Tensor& m, Tensor& out) {
  const int64_t t = m.dim(0), inter = w.gate.dim(0);
  const DType act = backend_.activation_dtype();
  ASSIGN_OR_RETURN(Tensor gate, backend_.NewTensor(act, {t, inter}));
  ASSIGN_OR_RETURN(Tensor up, backend_.NewTensor(act, {t, inter}));
  RETURN_IF_ERROR(backend_.Linear(m, w.gate, gate));
  RETURN_IF_ERROR(backend_.Linear(m, w.up, up));
  RETURN_IF_ERROR(backend_.SiluMul(gate, up, gate));
  return backend_.Linear(gate, w.down, out);
}

absl::Status Model::Mlp(const LayerWeights& w, const Tensor& m, Tensor& out) {
  if (!w.is_moe) return DenseMlp(w.mlp, m, out);
  const ModelConfig& c = config_;
  const int64_t t = m.dim(0), k = c.num_experts_per_tok;
  ASSIGN_OR_RETURN(Tensor logits, backend_.NewTensor(DType::kF32, {t, c.n_routed_experts}));
  RETURN_IF_ERROR(backend_.Linear(m, w.router, logits));  // routing is fp32 on every backend
  ASSIGN_OR_RETURN(Tensor expert_ids, backend_.NewTensor(DType::kI32, {t, k}));
  ASSIGN_OR_RETURN(Tensor expert_weights, backend_.NewTensor(DType::kF32, {t, k}));
  const Backend::RouteArgs route{
      .top_k = c.num_experts_per_tok,
      .n_group = c.n_group,
      .topk_group = c.topk_group,
      .norm_topk_prob = c.norm_topk_prob,
      .routed_scaling_factor = static_cast<float>(c.routed_scaling_factor)};
  RETURN_IF_ERROR(backend_.MoeRoute(logits, w.router_bias, route, expert_ids, expert_weights));
  std::vector<Backend::ExpertWeights> experts;
  experts.reserve(w.experts.size());
  for (const MlpWeights& e : w.experts) experts.push_back({&e.gate, &e.up, &e.down});
  RETURN_IF_ERROR(backend_.MoeExperts(m, expert_ids, expert_weights, experts, out));
  if (c.n_shared_experts == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(Tensor shared, backend_.NewTensor(DType::kF32, {t, c.hidden_size}));
  RETURN_IF_ERROR(DenseMlp(w.shared_expert, m, shared));
  return backend_.Add(out, shared);
}

}  // namespace strata::model
