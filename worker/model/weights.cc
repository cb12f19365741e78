#include "worker/model/weights.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "worker/model/backend.h"

namespace strata::model {
namespace {

// The part [begin, end) of dimension `dim` that this tensor-parallel rank holds; dim -1 = all.
struct Cut {
  int dim = -1;
  int64_t begin = 0;
  int64_t end = 0;
};

// Dimension `dim` of length `total` cut in tp.size equal parts (total divides: checked by
// CheckTpSplit).
Cut Part(const TpOptions& tp, int dim, int64_t total) {
  if (tp.size <= 1) return {};
  const int64_t per = total / tp.size;
  return {dim, tp.rank * per, (tp.rank + 1) * per};
}

// Reads `name` as f32, checks its shape and moves it (or this rank's cut of it) to the backend.
class Loader {
 public:
  Loader(const Checkpoint& checkpoint, Backend& backend) : ckpt_(checkpoint), backend_(backend) {}

  absl::StatusOr<Tensor> Get(const std::string& name, const Shape& shape, const Cut& cut = {}) {
    ASSIGN_OR_RETURN(Tensor host, GetHost(name, shape));
    return Put(host, cut);
  }

  // The f32 host copy of `name`, shape checked.
  absl::StatusOr<Tensor> GetHost(const std::string& name, const Shape& shape) {
    if (!ckpt_.Has(name)) return absl::NotFoundError(absl::StrCat("missing tensor ", name));
    ASSIGN_OR_RETURN(Tensor host, ckpt_.GetF32(name));
    if (host.shape() != shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " has shape [", absl::StrJoin(host.shape(), ", "),
                       "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
    return host;
  }

  // Uploads `host` (a cut of it as a contiguous copy when cut.dim >= 0).
  absl::StatusOr<Tensor> Put(const Tensor& host, const Cut& cut) {
    if (cut.dim < 0) return backend_.Upload(host);
    ASSIGN_OR_RETURN(Tensor part, host.Slice(cut.dim, cut.begin, cut.end));
    Tensor copy = Tensor::Zeros(DType::kF32, part.shape());
    RETURN_IF_ERROR(CopyCpu(part, copy));
    return backend_.Upload(copy);
  }

  bool Has(const std::string& name) const { return ckpt_.Has(name); }

 private:
  const Checkpoint& ckpt_;
  Backend& backend_;
};

// Under TP: gate and up rows, down columns of this rank's intermediate slice.
absl::StatusOr<MlpWeights> LoadMlp(Loader& ld, const std::string& prefix, int64_t hidden,
                                   int64_t inter, const TpOptions& tp) {
  MlpWeights m;
  ASSIGN_OR_RETURN(m.gate,
                   ld.Get(prefix + "gate_proj.weight", {inter, hidden}, Part(tp, 0, inter)));
  ASSIGN_OR_RETURN(m.up, ld.Get(prefix + "up_proj.weight", {inter, hidden}, Part(tp, 0, inter)));
  ASSIGN_OR_RETURN(m.down,
                   ld.Get(prefix + "down_proj.weight", {hidden, inter}, Part(tp, 1, inter)));
  return m;
}

// Experts may be stored one tensor per expert (`mlp.experts.{e}.gate_proj.weight`, what
// save_pretrained writes and the official checkpoints hold) or fused
// (`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj` [E, H, I]).
absl::StatusOr<std::vector<MlpWeights>> LoadExperts(Loader& ld, const std::string& prefix,
                                                    const ModelConfig& c, const TpOptions& tp) {
  const int64_t e_count = c.n_routed_experts, h = c.hidden_size, inter = c.moe_intermediate_size;
  std::vector<MlpWeights> experts;
  if (ld.Has(prefix + "gate_up_proj") && tp.size > 1) {
    // Fused and sliced: cut each expert's part on the host, then upload contiguous copies.
    ASSIGN_OR_RETURN(Tensor gate_up, ld.GetHost(prefix + "gate_up_proj", {e_count, 2 * inter, h}));
    ASSIGN_OR_RETURN(Tensor down, ld.GetHost(prefix + "down_proj", {e_count, h, inter}));
    for (int64_t e = 0; e < e_count; ++e) {
      MlpWeights m;
      ASSIGN_OR_RETURN(Tensor gu, gate_up.Select(0, e));
      ASSIGN_OR_RETURN(Tensor gate, gu.Slice(0, 0, inter));
      ASSIGN_OR_RETURN(Tensor up, gu.Slice(0, inter, 2 * inter));
      ASSIGN_OR_RETURN(Tensor d, down.Select(0, e));
      ASSIGN_OR_RETURN(m.gate, ld.Put(gate, Part(tp, 0, inter)));
      ASSIGN_OR_RETURN(m.up, ld.Put(up, Part(tp, 0, inter)));
      ASSIGN_OR_RETURN(m.down, ld.Put(d, Part(tp, 1, inter)));
      experts.push_back(std::move(m));
    }
    return experts;
  }
  if (ld.Has(prefix + "gate_up_proj")) {
    ASSIGN_OR_RETURN(Tensor gate_up, ld.Get(prefix + "gate_up_proj", {e_count, 2 * inter, h}));
    ASSIGN_OR_RETURN(Tensor down, ld.Get(prefix + "down_proj", {e_count, h, inter}));
    for (int64_t e = 0; e < e_count; ++e) {
      MlpWeights m;
      ASSIGN_OR_RETURN(Tensor gu, gate_up.Select(0, e));
      ASSIGN_OR_RETURN(m.gate, gu.Slice(0, 0, inter));
      ASSIGN_OR_RETURN(m.up, gu.Slice(0, inter, 2 * inter));
      ASSIGN_OR_RETURN(m.down, down.Select(0, e));
      experts.push_back(std::move(m));
    }
    return experts;
  }
  for (int64_t e = 0; e < e_count; ++e) {
    ASSIGN_OR_RETURN(MlpWeights m, LoadMlp(ld, absl::StrCat(prefix, e, "."), h, inter, tp));
    experts.push_back(std::move(m));
  }
  return experts;
}

absl::StatusOr<LayerWeights> LoadLayer(Loader& ld, const ModelConfig& c, int i,
                                       const TpOptions& tp) {
  const int64_t h = c.hidden_size, nh = c.num_attention_heads, p = c.qk_nope_head_dim,
                r = c.qk_rope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank, ql = c.q_lora_rank;
  const int64_t local_nh = nh / tp.size;  // heads are contiguous row (column) groups
  const std::string pre = absl::StrCat("model.layers.", i, ".");
  const std::string at = pre + "self_attn.";
  LayerWeights w;
  w.index = i;
  ASSIGN_OR_RETURN(w.input_layernorm, ld.Get(pre + "input_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.post_attention_layernorm,
                   ld.Get(pre + "post_attention_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.q_a_proj, ld.Get(at + "q_a_proj.weight", {ql, h}));
  ASSIGN_OR_RETURN(w.q_a_layernorm, ld.Get(at + "q_a_layernorm.weight", {ql}));
  ASSIGN_OR_RETURN(w.q_b_proj,
                   ld.Get(at + "q_b_proj.weight", {nh * (p + r), ql}, Part(tp, 0, nh * (p + r))));
  ASSIGN_OR_RETURN(w.kv_a_proj, ld.Get(at + "kv_a_proj_with_mqa.weight", {l + r, h}));
  ASSIGN_OR_RETURN(w.kv_a_layernorm, ld.Get(at + "kv_a_layernorm.weight", {l}));
  ASSIGN_OR_RETURN(w.kv_b_proj,
                   ld.Get(at + "kv_b_proj.weight", {nh * (p + v), l}, Part(tp, 0, nh * (p + v))));
  RETURN_IF_ERROR(SetAbsorptionViews(c, local_nh, w));
  ASSIGN_OR_RETURN(w.o_proj, ld.Get(at + "o_proj.weight", {h, nh * v}, Part(tp, 1, nh * v)));

  w.has_indexer = c.indexer_types[i] == IndexerType::kFull;
  if (w.has_indexer) {
    const std::string ix = at + "indexer.";
    const int64_t ih = c.index_n_heads, id = c.index_head_dim;
    ASSIGN_OR_RETURN(w.indexer.wq_b, ld.Get(ix + "wq_b.weight", {ih * id, ql}));
    ASSIGN_OR_RETURN(w.indexer.wk, ld.Get(ix + "wk.weight", {id, h}));
    ASSIGN_OR_RETURN(w.indexer.k_norm, ld.Get(ix + "k_norm.weight", {id}));
    ASSIGN_OR_RETURN(w.indexer.k_norm_bias, ld.Get(ix + "k_norm.bias", {id}));
    ASSIGN_OR_RETURN(w.indexer.weights_proj, ld.Get(ix + "weights_proj.weight", {ih, h}));
  }

  w.is_moe = c.mlp_layer_types[i] == MlpType::kSparse;
  const std::string mlp = pre + "mlp.";
  if (!w.is_moe) {
    ASSIGN_OR_RETURN(w.mlp, LoadMlp(ld, mlp, h, c.intermediate_size, tp));
    return w;
  }
  ASSIGN_OR_RETURN(w.router, ld.Get(mlp + "gate.weight", {c.n_routed_experts, h}));
  ASSIGN_OR_RETURN(w.router_bias,
                   ld.Get(mlp + "gate.e_score_correction_bias", {c.n_routed_experts}));
  ASSIGN_OR_RETURN(w.experts, LoadExperts(ld, mlp + "experts.", c, tp));
  if (c.n_shared_experts > 0) {
    ASSIGN_OR_RETURN(w.shared_expert,
                     LoadMlp(ld, mlp + "shared_experts.", h,
                             int64_t{c.moe_intermediate_size} * c.n_shared_experts, tp));
  }
  return w;
}

// Every dimension tensor parallelism cuts must divide by tp.size.
absl::Status CheckTpSplit(const ModelConfig& c, const TpOptions& tp) {
  if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel rank ", tp.rank, " of ", tp.size, " is not in [0, size)"));
  }
  const std::pair<const char*, int64_t> dims[] = {
      {"num_attention_heads", c.num_attention_heads},
      {"intermediate_size", c.intermediate_size},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"moe_intermediate_size * n_shared_experts",
       int64_t{c.moe_intermediate_size} * c.n_shared_experts}};
  for (const auto& [name, value] : dims) {
    if (value % tp.size != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor parallelism over ", tp.size,
                                                     " ranks needs ", name, " (", value,
                                                     ") to divide by ", tp.size));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SetAbsorptionViews(const ModelConfig& c, int64_t local_heads, LayerWeights& w) {
  const int64_t p = c.qk_nope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank;
  // Per head, kv_b_proj holds P rows of W_UK then V rows of W_UV (dsa.md §4): strided views.
  ASSIGN_OR_RETURN(w.w_uk, w.kv_b_proj.AsStrided({local_heads, p, l}, {(p + v) * l, l, 1}, 0));
  ASSIGN_OR_RETURN(w.w_uv, w.kv_b_proj.AsStrided({local_heads, v, l}, {(p + v) * l, l, 1}, p * l));
  return absl::OkStatus();
}

absl::StatusOr<ModelWeights> LoadWeights(const ModelConfig& config, const Checkpoint& checkpoint,
                                         Backend& backend, const LoadOptions& options) {
  const int end = options.layer_end < 0 ? config.num_hidden_layers : options.layer_end;
  if (options.layer_begin < 0 || options.layer_begin > end || end > config.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer range [", options.layer_begin, ", ", end,
                                                   ") outside the model's ",
                                                   config.num_hidden_layers, " layers"));
  }
  RETURN_IF_ERROR(CheckTpSplit(config, options.tp));
  Loader ld(checkpoint, backend);
  ModelWeights w;
  const int64_t vocab = config.vocab_size, h = config.hidden_size;
  if (options.load_embedding) {
    ASSIGN_OR_RETURN(w.embed_tokens, ld.Get("model.embed_tokens.weight", {vocab, h}));
  }
  for (int i = options.layer_begin; i < end; ++i) {
    auto layer = LoadLayer(ld, config, i, options.tp);
    if (!layer.ok()) return Annotate(layer.status(), absl::StrCat("layer ", i));
    w.layers.push_back(*std::move(layer));
  }
  if (options.load_head) {
    ASSIGN_OR_RETURN(w.norm, ld.Get("model.norm.weight", {h}));
    // Tied embeddings (tie_word_embeddings, or a checkpoint without lm_head) reuse the table.
    const bool tied = config.tie_word_embeddings || !ld.Has("lm_head.weight");
    ASSIGN_OR_RETURN(w.lm_head,
                     ld.Get(tied ? "model.embed_tokens.weight" : "lm_head.weight", {vocab, h}));
  }
  return w;
}

}  // namespace strata::model
