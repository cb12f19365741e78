// The DSA decoder (specs/dsa.md §1) over a Backend: one definition for the CPU reference and the
// CUDA path, for the whole model (strata-run) or one pipeline stage's layer range (a worker).
//
// A step is a flat batch of T token rows from any number of sequences — prefill chunks and decode
// tokens mixed — each with its position, its sequence's block table and whether its logits are
// wanted. The caller owns block allocation (the coordinator, or strata-run's runner); the model
// writes each token's cache rows at slot = block_table[pos / 64] * 64 + pos % 64 before attending,
// so a chunk attends to itself causally.
#ifndef STRATA_WORKER_MODEL_MODEL_H_
#define STRATA_WORKER_MODEL_MODEL_H_

#include <compare>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "worker/model/backend.h"
#include "worker/model/collective.h"
#include "worker/model/kv_cache.h"
#include "worker/model/weights.h"

namespace strata::model {

// One step's input, host side. Sizes are validated by Forward; nothing here is trusted.
struct StepInput {
  std::vector<int32_t> token_ids;     // [T]; used by the first stage
  Tensor hidden;                      // [T, H] on the backend; used by later stages
  std::vector<int64_t> positions;     // [T]
  std::vector<int32_t> token_seq;     // [T]: row of block_tables for each token
  std::vector<int32_t> block_tables;  // [num_seqs, max_blocks] global block ids (-1 = none)
  int num_seqs = 0;
  int max_blocks = 0;
  std::vector<int32_t> logit_rows;  // token rows whose logits the last stage returns
};

struct ModelOptions {
  LoadOptions load;  // load.tp selects this rank's slice under tensor parallelism
  // Required when load.tp.size > 1 (its rank and size must match load.tp); must outlive the model.
  // Every rank of the group runs the same steps in the same order.
  Collective* collective = nullptr;
  // Cache layouts; unset = the backend's default (f32 on the CPU, bf16 on CUDA).
  std::optional<kvcache::LatentCacheDType> latent_cache;
  std::optional<kvcache::IndexerCacheDType> indexer_cache;
  // Decode steps as graphs (issue 7; model_graphs.cc): a step whose rows are one token per
  // sequence, at most kMaxGraphTokens of them, without tensor parallelism, is padded to a
  // bucket and replayed from a graph captured for that bucket. Ignored by backends that cannot
  // capture (the CPU reference); any capture failure falls back to eager steps.
  bool cuda_graphs = true;
};

// How the steps of a model with cuda_graphs ran (Model::graph_stats).
struct GraphStats {
  int64_t eager_steps = 0;      // not eligible (prefill or mixed, too many rows, TP, no graphs)
  int64_t warmup_steps = 0;     // a bucket's first step: eager through the bucket's buffers
  int64_t captures = 0;         // graphs captured
  int64_t replays = 0;          // steps run by replaying a graph
  int64_t failed_captures = 0;  // buckets marked ineligible after a failed capture
};

class Model {
 public:
  // Loads the layers `options.load` selects. `backend` must outlive the model.
  static absl::StatusOr<std::unique_ptr<Model>> Create(const ModelConfig& config,
                                                       const Checkpoint& checkpoint,
                                                       Backend& backend,
                                                       const ModelOptions& options);
  // A model over weights the caller made (a benchmark's random weights on the device; no file
  // I/O). `weights` must hold the layers [options.load.layer_begin, layer_end) of `config` in the
  // backend's dtypes (backend.h), with w_uk / w_uv the views SetAbsorptionViews makes; its
  // embedding and head decide the stage, as after Create.
  static absl::StatusOr<std::unique_ptr<Model>> CreateFromWeights(const ModelConfig& config,
                                                                  const ModelWeights& weights,
                                                                  Backend& backend,
                                                                  const ModelOptions& options);

  ~Model();

  // The cache geometry of each of this model's layers, for KvCache::Create.
  std::vector<kvcache::CacheGeometry> CacheGeometries() const;

  // Runs this model's layers on one step. Returns the logits [logit_rows, vocab] (f32) when this
  // model holds the head, else the hidden states [T, H] (f32, the residual stream) for the next
  // stage. Activations in between are in the backend's activation_dtype().
  // REQUIRES: cache was created from CacheGeometries().
  absl::StatusOr<Tensor> Forward(const StepInput& input, KvCache& cache);

  const ModelConfig& config() const { return config_; }
  bool is_first_stage() const { return weights_.embed_tokens.defined(); }
  bool is_last_stage() const { return weights_.lm_head.defined(); }

  // The largest step (rows) a graph is captured for.
  static constexpr int64_t kMaxGraphTokens = 128;
  const GraphStats& graph_stats() const { return graph_stats_; }

 private:
  // Device copies of the step's index tensors, shared by every layer.
  struct Step {
    int64_t tokens = 0;
    Tensor positions;     // [T] i64
    Tensor token_seq;     // [T] i32
    Tensor block_tables;  // [num_seqs, max_blocks] i32
    Tensor slot_mapping;  // [T] i32
    Tensor row_lens;      // [T] i32
    Tensor seq_lens;      // [num_seqs] i32
    PagedView view;
  };
  Model(const ModelConfig& config, Backend& backend, ModelOptions options);
  // Checks the options against the config and sets up what every constructor path shares (RoPE
  // frequencies, attention scale).
  static absl::StatusOr<std::unique_ptr<Model>> NewUnloaded(const ModelConfig& config,
                                                            Backend& backend,
                                                            const ModelOptions& options);

  // The step's layers on h [T, H] (in place); returns with every MLP output added.
  absl::Status RunLayers(Step& step, KvCache& cache, Tensor& h);
  // The final norm and the head over the rows of h [T, H] listed in logit_rows.
  absl::StatusOr<Tensor> Head(const Tensor& h, const std::vector<int32_t>& logit_rows);

  // Graph steps (model_graphs.cc). Returns nullopt when the step is not eligible (the caller
  // runs it eagerly); `slots` are the validated cache slots of the step's rows.
  struct GraphBucket;
  struct GraphKey {
    int64_t tokens = 0, num_seqs = 0, max_blocks = 0, max_row_len = 0;
    auto operator<=>(const GraphKey&) const = default;
  };
  absl::StatusOr<std::optional<Tensor>> ForwardGraph(const StepInput& in,
                                                     const std::vector<int32_t>& slots,
                                                     KvCache& cache);
  // The bucket's layers (and the embedding on the first stage) on its fixed buffers.
  absl::Status RunBucket(GraphBucket& b, KvCache& cache);

  // `pending` is the previous layer's MLP output not yet added to h (undefined before the first
  // layer); on return it holds this layer's, for the next layer's fused add + norm.
  absl::Status Layer(const LayerWeights& w, Step& step, LayerCache& cache, Tensor& h,
                     Tensor& pending, Tensor& topk_slots);
  absl::Status Attention(const LayerWeights& w, Step& step, LayerCache& cache, const Tensor& a,
                         Tensor& topk_slots, Tensor& out);
  absl::Status Mlp(const LayerWeights& w, const Tensor& m, Tensor& out);
  absl::Status DenseMlp(const MlpWeights& w, const Tensor& m, Tensor& out);
  // Sums a partial [T, H] output over the tensor-parallel group (no-op without TP).
  absl::Status AllReduce(Tensor& x);

  ModelConfig config_;
  Backend& backend_;
  ModelOptions options_;
  ModelWeights weights_;
  Tensor inv_freq_;  // [R / 2] f32 on the backend
  float rope_attention_factor_ = 1.0f;
  float attention_scale_ = 1.0f;

  std::map<GraphKey, std::unique_ptr<GraphBucket>> graphs_;
  const void* graph_cache_ = nullptr;  // the KV cache the graphs were captured on
  bool graph_failure_logged_ = false;
  GraphStats graph_stats_;
};

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_MODEL_H_
