#include "worker/model/weights.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "worker/model/backend.h"
#include "worker/model/weight_stream.h"

namespace strata::model {
namespace {

// This rank's part of dimension `dim` (0: rows, 1: columns) of length `total`, cut in tp.size
// equal parts (total divides: checked by CheckTpSplit); the whole dimension without TP.
TensorPart Part(const TpOptions& tp, int dim, int64_t total) {
  TensorPart p;
  if (tp.size <= 1) return p;
  const int64_t per = total / tp.size;
  if (dim == 0) {
    p.row_begin = tp.rank * per;
    p.row_end = (tp.rank + 1) * per;
  } else {
    p.col_begin = tp.rank * per;
    p.col_end = (tp.rank + 1) * per;
  }
  return p;
}

// Rows [begin, end) of a part's rows, shifted by `offset` (a slice of a fused tensor's 2-D view).
TensorPart Shifted(TensorPart p, int64_t offset, int64_t rows) {
  p.row_begin += offset;
  p.row_end = p.row_end < 0 ? offset + rows : p.row_end + offset;
  return p;
}

// Two passes over the same code: planning (no streamer) checks every name and shape against the
// checkpoint's headers and counts the bytes the load will write, returning undefined tensors;
// loading streams each tensor onto the backend. Matrices take the backend's weight dtype; norm
// weights, biases and the MoE router stay f32.
class Loader {
 public:
  Loader(const Checkpoint& checkpoint, Backend& backend, WeightStreamer* streamer)
      : ckpt_(checkpoint), backend_(backend), streamer_(streamer) {}

  absl::StatusOr<Tensor> Matrix(const std::string& name, const Shape& shape,
                                const TensorPart& part = {}) {
    return Get(name, shape, backend_.weight_dtype(), part);
  }
  absl::StatusOr<Tensor> F32(const std::string& name, const Shape& shape) {
    return Get(name, shape, DType::kF32, {});
  }

  bool Has(const std::string& name) const { return ckpt_.Has(name); }
  int64_t planned_bytes() const { return planned_bytes_; }

 private:
  absl::StatusOr<Tensor> Get(const std::string& name, const Shape& shape, DType dtype,
                             const TensorPart& part) {
    if (streamer_ != nullptr) return streamer_->Load(name, shape, dtype, part);
    ASSIGN_OR_RETURN(const Shape out, CheckTensor(ckpt_, name, shape, part));
    int64_t n = 1;
    for (int64_t d : out) n *= d;
    planned_bytes_ += n * DTypeSize(dtype);
    return absl::StatusOr<Tensor>(absl::in_place);  // an undefined tensor
  }

  const Checkpoint& ckpt_;
  Backend& backend_;
  WeightStreamer* streamer_;
  int64_t planned_bytes_ = 0;
};

// Under TP: gate and up rows, down columns of this rank's intermediate slice.
absl::StatusOr<MlpWeights> LoadMlp(Loader& ld, const std::string& prefix, int64_t hidden,
                                   int64_t inter, const TpOptions& tp) {
  MlpWeights m;
  ASSIGN_OR_RETURN(m.gate,
                   ld.Matrix(prefix + "gate_proj.weight", {inter, hidden}, Part(tp, 0, inter)));
  ASSIGN_OR_RETURN(m.up, ld.Matrix(prefix + "up_proj.weight", {inter, hidden}, Part(tp, 0, inter)));
  ASSIGN_OR_RETURN(m.down,
                   ld.Matrix(prefix + "down_proj.weight", {hidden, inter}, Part(tp, 1, inter)));
  return m;
}

// Experts may be stored one tensor per expert (`mlp.experts.{e}.gate_proj.weight`, what
// save_pretrained writes and the official checkpoints hold) or fused
// (`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj` [E, H, I]); fused experts are
// read expert by expert as row ranges of the tensors' 2-D views.
absl::StatusOr<std::vector<MlpWeights>> LoadExperts(Loader& ld, const std::string& prefix,
                                                    const ModelConfig& c, const TpOptions& tp) {
  const int64_t e_count = c.n_routed_experts, h = c.hidden_size, inter = c.moe_intermediate_size;
  std::vector<MlpWeights> experts;
  if (ld.Has(prefix + "gate_up_proj")) {
    const Shape gate_up = {e_count, 2 * inter, h}, down = {e_count, h, inter};
    const TensorPart rows = Part(tp, 0, inter), cols = Part(tp, 1, inter);
    for (int64_t e = 0; e < e_count; ++e) {
      MlpWeights m;
      ASSIGN_OR_RETURN(
          m.gate, ld.Matrix(prefix + "gate_up_proj", gate_up, Shifted(rows, e * 2 * inter, inter)));
      ASSIGN_OR_RETURN(m.up, ld.Matrix(prefix + "gate_up_proj", gate_up,
                                       Shifted(rows, e * 2 * inter + inter, inter)));
      ASSIGN_OR_RETURN(m.down, ld.Matrix(prefix + "down_proj", down, Shifted(cols, e * h, h)));
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
  ASSIGN_OR_RETURN(w.input_layernorm, ld.F32(pre + "input_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.post_attention_layernorm,
                   ld.F32(pre + "post_attention_layernorm.weight", {h}));
  ASSIGN_OR_RETURN(w.q_a_proj, ld.Matrix(at + "q_a_proj.weight", {ql, h}));
  ASSIGN_OR_RETURN(w.q_a_layernorm, ld.F32(at + "q_a_layernorm.weight", {ql}));
  ASSIGN_OR_RETURN(
      w.q_b_proj, ld.Matrix(at + "q_b_proj.weight", {nh * (p + r), ql}, Part(tp, 0, nh * (p + r))));
  ASSIGN_OR_RETURN(w.kv_a_proj, ld.Matrix(at + "kv_a_proj_with_mqa.weight", {l + r, h}));
  ASSIGN_OR_RETURN(w.kv_a_layernorm, ld.F32(at + "kv_a_layernorm.weight", {l}));
  ASSIGN_OR_RETURN(w.kv_b_proj, ld.Matrix(at + "kv_b_proj.weight", {nh * (p + v), l},
                                          Part(tp, 0, nh * (p + v))));
  // The W_UK / W_UV views of kv_b_proj (undefined while planning).
  if (w.kv_b_proj.defined()) {
    RETURN_IF_ERROR(SetAbsorptionViews(c, local_nh, w));
  }
  ASSIGN_OR_RETURN(w.o_proj, ld.Matrix(at + "o_proj.weight", {h, nh * v}, Part(tp, 1, nh * v)));

  w.has_indexer = c.indexer_types[i] == IndexerType::kFull;
  if (w.has_indexer) {
    const std::string ix = at + "indexer.";
    const int64_t ih = c.index_n_heads, id = c.index_head_dim;
    ASSIGN_OR_RETURN(w.indexer.wq_b, ld.Matrix(ix + "wq_b.weight", {ih * id, ql}));
    ASSIGN_OR_RETURN(w.indexer.wk, ld.Matrix(ix + "wk.weight", {id, h}));
    ASSIGN_OR_RETURN(w.indexer.k_norm, ld.F32(ix + "k_norm.weight", {id}));
    ASSIGN_OR_RETURN(w.indexer.k_norm_bias, ld.F32(ix + "k_norm.bias", {id}));
    ASSIGN_OR_RETURN(w.indexer.weights_proj, ld.Matrix(ix + "weights_proj.weight", {ih, h}));
  }

  w.is_moe = c.mlp_layer_types[i] == MlpType::kSparse;
  const std::string mlp = pre + "mlp.";
  if (!w.is_moe) {
    ASSIGN_OR_RETURN(w.mlp, LoadMlp(ld, mlp, h, c.intermediate_size, tp));
    return w;
  }
  ASSIGN_OR_RETURN(w.router, ld.F32(mlp + "gate.weight", {c.n_routed_experts, h}));
  ASSIGN_OR_RETURN(w.router_bias,
                   ld.F32(mlp + "gate.e_score_correction_bias", {c.n_routed_experts}));
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

// Everything `options` selects, through `ld` (planning or loading).
absl::StatusOr<ModelWeights> LoadAll(Loader& ld, const ModelConfig& config,
                                     const LoadOptions& options, int end) {
  ModelWeights w;
  const int64_t vocab = config.vocab_size, h = config.hidden_size;
  if (options.load_embedding) {
    ASSIGN_OR_RETURN(w.embed_tokens, ld.Matrix("model.embed_tokens.weight", {vocab, h}));
  }
  for (int i = options.layer_begin; i < end; ++i) {
    auto layer = LoadLayer(ld, config, i, options.tp);
    if (!layer.ok()) return Annotate(layer.status(), absl::StrCat("layer ", i));
    w.layers.push_back(*std::move(layer));
  }
  if (options.load_head) {
    ASSIGN_OR_RETURN(w.norm, ld.F32("model.norm.weight", {h}));
    // Tied embeddings (tie_word_embeddings, or a checkpoint without lm_head) reuse the table,
    // loaded once when this stage holds both.
    const bool tied = config.tie_word_embeddings || !ld.Has("lm_head.weight");
    if (tied && options.load_embedding) {
      w.lm_head = w.embed_tokens;
    } else {
      ASSIGN_OR_RETURN(
          w.lm_head, ld.Matrix(tied ? "model.embed_tokens.weight" : "lm_head.weight", {vocab, h}));
    }
  }
  return w;
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
  // Every name and shape is checked before anything is read or allocated.
  Loader plan(checkpoint, backend, nullptr);
  RETURN_IF_ERROR(LoadAll(plan, config, options, end).status());
  LoadStreamOptions stream_options;
  stream_options.staging_bytes = options.staging_bytes;
  stream_options.expected_bytes = plan.planned_bytes();
  ASSIGN_OR_RETURN(std::unique_ptr<WeightStreamer> streamer,
                   WeightStreamer::Create(checkpoint, backend, stream_options));
  Loader ld(checkpoint, backend, streamer.get());
  ASSIGN_OR_RETURN(ModelWeights w, LoadAll(ld, config, options, end));
  RETURN_IF_ERROR(streamer->Finish());
  return w;
}

}  // namespace strata::model
