#include "worker/model/model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu/rope.h"

namespace strata::model {

namespace {

kernels::RopeFreqOptions RopeOptions(const ModelConfig& c) {
  kernels::RopeFreqOptions o;
  o.type = c.rope.type == RopeType::kYarn ? kernels::RopeType::kYarn : kernels::RopeType::kDefault;
  o.rot_dim = c.qk_rope_head_dim;  // the reference's head_dim for RoPE is qk_rope_head_dim
  o.theta = c.rope.theta;
  o.factor = c.rope.factor;
  o.original_max_position_embeddings = c.rope.original_max_position_embeddings;
  o.beta_fast = c.rope.beta_fast;
  o.beta_slow = c.rope.beta_slow;
  o.truncate = c.rope.truncate;
  // The config resolves the cos/sin multiplier the way the reference does (absent vs present
  // mscale fields); pass it rather than derive it twice.
  o.attention_factor = c.rope.attention_factor;
  return o;
}

}  // namespace

// (The constructor is in model_graphs.cc, beside the graph state it owns.)
absl::StatusOr<std::unique_ptr<Model>> Model::NewUnloaded(const ModelConfig& config,
                                                          Backend& backend,
                                                          const ModelOptions& options) {
  const TpOptions& tp = options.load.tp;
  if (tp.size > 1 && (options.collective == nullptr || options.collective->size() != tp.size ||
                      options.collective->rank() != tp.rank)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallelism rank ", tp.rank, " of ", tp.size,
                     " needs a collective of the same rank and size"));
  }
  std::unique_ptr<Model> m(new Model(config, backend, options));
  const kernels::RopeFreqOptions rope_options = RopeOptions(config);
  ASSIGN_OR_RETURN(kernels::RopeFrequencies rope, kernels::RopeInvFreq(rope_options));
  Tensor host = Tensor::Zeros(DType::kF32, {static_cast<int64_t>(rope.inv_freq.size())});
  std::copy(rope.inv_freq.begin(), rope.inv_freq.end(), host.data<float>());
  ASSIGN_OR_RETURN(m->inv_freq_, backend.Upload(host));
  m->rope_attention_factor_ = rope.attention_factor;
  // qk_head_dim^-1/2, times mscale(factor, mscale_all_dim)² under YaRN (specs/dsa.md §4).
  m->attention_scale_ = static_cast<float>(config.SoftmaxScale());
  return m;
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(const ModelConfig& config,
                                                     const Checkpoint& checkpoint, Backend& backend,
                                                     const ModelOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Model> m, NewUnloaded(config, backend, options));
  ASSIGN_OR_RETURN(m->weights_, LoadWeights(config, checkpoint, backend, options.load));
  return m;
}

absl::StatusOr<std::unique_ptr<Model>> Model::CreateFromWeights(const ModelConfig& config,
                                                                const ModelWeights& weights,
                                                                Backend& backend,
                                                                const ModelOptions& options) {
  const int end = options.load.layer_end < 0 ? config.num_hidden_layers : options.load.layer_end;
  if (options.load.layer_begin < 0 || end > config.num_hidden_layers ||
      config.indexer_types.size() != static_cast<size_t>(config.num_hidden_layers) ||
      config.mlp_layer_types.size() != static_cast<size_t>(config.num_hidden_layers)) {
    return absl::InvalidArgumentError("layer range or per-layer types outside the config");
  }
  if (static_cast<int>(weights.layers.size()) != end - options.load.layer_begin) {
    return absl::InvalidArgumentError(absl::StrCat("weights hold ", weights.layers.size(),
                                                   " layers, the options select [",
                                                   options.load.layer_begin, ", ", end, ")"));
  }
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const LayerWeights& w = weights.layers[i];
    if (w.index != options.load.layer_begin + static_cast<int>(i) ||
        w.has_indexer != (config.indexer_types[w.index] == IndexerType::kFull) ||
        w.is_moe != (config.mlp_layer_types[w.index] == MlpType::kSparse)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights of layer ", i, " do not match the config's layer ", w.index));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Model> m, NewUnloaded(config, backend, options));
  m->weights_ = weights;  // Tensors are shared handles: this copies no weight bytes
  return m;
}

std::vector<kvcache::CacheGeometry> Model::CacheGeometries() const {
  std::vector<kvcache::CacheGeometry> out;
  for (const LayerWeights& w : weights_.layers) {
    kvcache::CacheGeometry g;
    g.kv_lora_rank = config_.kv_lora_rank;
    g.qk_rope_head_dim = config_.qk_rope_head_dim;
    g.index_head_dim = config_.index_head_dim;
    g.latent_dtype = options_.latent_cache.value_or(backend_.default_latent_cache());
    g.indexer_dtype = options_.indexer_cache.value_or(backend_.default_indexer_cache());
    g.has_indexer = w.has_indexer;
    out.push_back(g);
  }
  return out;
}

namespace {

// Checks the step's shapes and ids against the model and the cache, and computes each token's
// cache slot. Everything here may come from a peer, so nothing is assumed.
absl::StatusOr<std::vector<int32_t>> SlotMapping(const StepInput& in, int64_t num_blocks,
                                                 int64_t max_positions) {
  const size_t t = in.positions.size();
  if (in.token_seq.size() != t) {
    return absl::InvalidArgumentError("step: token_seq and positions differ in length");
  }
  if (in.num_seqs <= 0 || in.max_blocks <= 0 ||
      in.block_tables.size() != static_cast<size_t>(in.num_seqs) * in.max_blocks) {
    return absl::InvalidArgumentError("step: block_tables is not [num_seqs, max_blocks]");
  }
  std::vector<int32_t> slots(t);
  for (size_t i = 0; i < t; ++i) {
    const int64_t pos = in.positions[i];
    const int32_t seq = in.token_seq[i];
    if (seq < 0 || seq >= in.num_seqs) {
      return absl::InvalidArgumentError(absl::StrCat("step: token ", i, " has sequence ", seq));
    }
    if (pos < 0 || pos >= max_positions || pos / kvcache::kBlockTokens >= in.max_blocks) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: token ", i, " has position ", pos, " outside its block table"));
    }
    const int32_t block =
        in.block_tables[static_cast<size_t>(seq) * in.max_blocks + pos / kvcache::kBlockTokens];
    if (block < 0 || block >= num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat("step: token ", i, " maps to block ", block,
                                                     " of a cache with ", num_blocks));
    }
    slots[i] = block * kvcache::kBlockTokens + static_cast<int32_t>(pos % kvcache::kBlockTokens);
  }
  return slots;
}

template <typename T>
absl::StatusOr<Tensor> UploadVector(Backend& backend, const std::vector<T>& v, DType dtype,
                                    Shape shape) {
  Tensor host = Tensor::Borrow(const_cast<T*>(v.data()), dtype, std::move(shape));
  return backend.Upload(host);
}

}  // namespace

absl::Status Model::AllReduce(Tensor& x) {
  if (options_.load.tp.size <= 1) return absl::OkStatus();
  if (options_.collective->Accepts(x.device()) && x.is_contiguous()) {
    return options_.collective->AllReduceSum(x);
  }
  // A host collective (Gloo) on a GPU worker: the partial sums go through the host.
  ASSIGN_OR_RETURN(Tensor host, backend_.Download(x));
  RETURN_IF_ERROR(options_.collective->AllReduceSum(host));
  ASSIGN_OR_RETURN(Tensor summed, backend_.Upload(host));
  return backend_.Copy(summed, x);
}

absl::StatusOr<Tensor> Model::Forward(const StepInput& in, KvCache& cache) {
  if (cache.num_layers() != static_cast<int>(weights_.layers.size())) {
    return absl::InvalidArgumentError("KV cache does not match the model's layers");
  }
  const int64_t t = static_cast<int64_t>(in.positions.size());
  if (t == 0) return absl::InvalidArgumentError("step has no tokens");
  ASSIGN_OR_RETURN(std::vector<int32_t> slots,
                   SlotMapping(in, cache.num_blocks(), config_.max_position_embeddings));
  if (options_.cuda_graphs) {
    ASSIGN_OR_RETURN(std::optional<Tensor> graphed, ForwardGraph(in, slots, cache));
    if (graphed.has_value()) return *std::move(graphed);
    ++graph_stats_.eager_steps;
  }
  Step step;
  step.tokens = t;
  ASSIGN_OR_RETURN(step.positions, UploadVector(backend_, in.positions, DType::kI64, {t}));
  ASSIGN_OR_RETURN(step.token_seq, UploadVector(backend_, in.token_seq, DType::kI32, {t}));
  ASSIGN_OR_RETURN(step.block_tables, UploadVector(backend_, in.block_tables, DType::kI32,
                                                   {in.num_seqs, in.max_blocks}));
  ASSIGN_OR_RETURN(step.slot_mapping, UploadVector(backend_, slots, DType::kI32, {t}));
  // Each token scores its causal prefix; a sequence's length is its furthest token's.
  std::vector<int32_t> row_lens(t), seq_lens(in.num_seqs, 0);
  int64_t max_row_len = 0;
  for (int64_t i = 0; i < t; ++i) {
    row_lens[i] = static_cast<int32_t>(in.positions[i] + 1);
    seq_lens[in.token_seq[i]] = std::max(seq_lens[in.token_seq[i]], row_lens[i]);
    max_row_len = std::max<int64_t>(max_row_len, row_lens[i]);
  }
  ASSIGN_OR_RETURN(step.row_lens, UploadVector(backend_, row_lens, DType::kI32, {t}));
  ASSIGN_OR_RETURN(step.seq_lens, UploadVector(backend_, seq_lens, DType::kI32, {in.num_seqs}));
  step.view = {.block_tables = &step.block_tables,
               .token_seq = &step.token_seq,
               .positions = &step.positions,
               .slot_mapping = &step.slot_mapping,
               .row_lens = &step.row_lens,
               .seq_lens = &step.seq_lens,
               .max_row_len = max_row_len};

  Tensor h;
  if (is_first_stage()) {
    if (static_cast<int64_t>(in.token_ids.size()) != t) {
      return absl::InvalidArgumentError("step: token_ids and positions differ in length");
    }
    for (size_t i = 0; i < in.token_ids.size(); ++i) {
      if (in.token_ids[i] < 0 || in.token_ids[i] >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("step: token ", i, " has id ",
                                                       in.token_ids[i], " outside [0, ",
                                                       config_.vocab_size, ")"));
      }
    }
    ASSIGN_OR_RETURN(Tensor ids, UploadVector(backend_, in.token_ids, DType::kI32, {t}));
    ASSIGN_OR_RETURN(h, backend_.NewTensor(DType::kF32, {t, config_.hidden_size}));
    RETURN_IF_ERROR(backend_.Embedding(ids, weights_.embed_tokens, h));
  } else {
    if (!in.hidden.defined() || in.hidden.shape() != Shape{t, config_.hidden_size}) {
      return absl::InvalidArgumentError("step: hidden states are not [T, hidden_size]");
    }
    h = in.hidden;
  }

  RETURN_IF_ERROR(RunLayers(step, cache, h));
  if (!is_last_stage()) return h;
  return Head(h, in.logit_rows);
}

absl::Status Model::RunLayers(Step& step, KvCache& cache, Tensor& h) {
  Tensor topk_slots;  // carried from a full-indexer layer to the shared layers after it
  Tensor pending;     // the last layer's MLP output, added to h by the next layer's norm
  for (size_t i = 0; i < weights_.layers.size(); ++i) {
    RETURN_IF_ERROR(
        Layer(weights_.layers[i], step, cache.layer(static_cast<int>(i)), h, pending, topk_slots))
        << "layer " << weights_.layers[i].index;
  }
  if (pending.defined()) RETURN_IF_ERROR(backend_.Add(h, pending));
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Model::Head(const Tensor& h, const std::vector<int32_t>& logit_rows) {
  for (int32_t r : logit_rows) {
    if (r < 0 || r >= h.dim(0)) return absl::InvalidArgumentError("step: logit row out of range");
  }
  ASSIGN_OR_RETURN(Tensor rows, backend_.GatherRows(h, logit_rows));
  ASSIGN_OR_RETURN(Tensor normed,
                   backend_.NewTensor(backend_.activation_dtype(), {rows.dim(0), rows.dim(1)}));
  RETURN_IF_ERROR(backend_.RmsNorm(rows, weights_.norm, config_.rms_norm_eps, normed));
  ASSIGN_OR_RETURN(Tensor logits,
                   backend_.NewTensor(DType::kF32, {rows.dim(0), config_.vocab_size}));
  RETURN_IF_ERROR(backend_.Linear(normed, weights_.lm_head, logits));
  return logits;
}

}  // namespace strata::model
