// The weights of the layers one model instance runs, loaded from a checkpoint onto a backend.
// Names follow specs/dsa.md §6. The MTP layer (index num_hidden_layers) is never loaded.
// Shapes below are the whole model's; under tensor parallelism (LoadOptions::tp) nH and I are
// this rank's share (nH / tp.size, I / tp.size).
#ifndef STRATA_WORKER_MODEL_WEIGHTS_H_
#define STRATA_WORKER_MODEL_WEIGHTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "common/safetensors.h"
#include "common/tensor.h"
#include "worker/model/weight_stream.h"

namespace strata::model {

struct MlpWeights {
  Tensor gate;  // [I, H]
  Tensor up;    // [I, H]
  Tensor down;  // [H, I]
};

struct IndexerWeights {
  Tensor wq_b;          // [iH * iD, q_lora]
  Tensor wk;            // [iD, H]
  Tensor k_norm;        // [iD]
  Tensor k_norm_bias;   // [iD]
  Tensor weights_proj;  // [iH, H]
};

struct LayerWeights {
  int index = 0;                    // layer number in the whole model
  Tensor input_layernorm;           // [H]
  Tensor post_attention_layernorm;  // [H]
  Tensor q_a_proj;                  // [q_lora, H]
  Tensor q_a_layernorm;             // [q_lora]
  Tensor q_b_proj;                  // [nH * (P + R), q_lora]
  Tensor kv_a_proj;                 // [L + R, H]
  Tensor kv_a_layernorm;            // [L]
  Tensor w_uk;                      // [nH, P, L] view of kv_b_proj
  Tensor w_uv;                      // [nH, V, L] view of kv_b_proj
  Tensor kv_b_proj;                 // [nH * (P + V), L]; w_uk and w_uv share its storage
  Tensor o_proj;                    // [H, nH * V]
  bool has_indexer = false;
  IndexerWeights indexer;
  bool is_moe = false;
  MlpWeights mlp;                   // dense layers
  Tensor router;                    // [E, H] (MoE)
  Tensor router_bias;               // [E] e_score_correction_bias (MoE)
  std::vector<MlpWeights> experts;  // [E] (MoE)
  MlpWeights shared_expert;         // (MoE, when n_shared_experts > 0)
};

struct ModelWeights {
  Tensor embed_tokens;               // [V, H]; defined on the first stage
  Tensor norm;                       // [H]; defined on the last stage
  Tensor lm_head;                    // [V, H]; defined on the last stage
  std::vector<LayerWeights> layers;  // layers [layer_begin, layer_end)
};

// This rank's part of a tensor-parallel group (docs/model.md, "Tensor parallelism"): attention
// heads and MLP/expert intermediate columns are split in `size` equal contiguous parts; the rest
// is replicated. size 1 = the whole model.
struct TpOptions {
  int rank = 0;
  int size = 1;
};

struct LoadOptions {
  TpOptions tp;
  int layer_begin = 0;
  int layer_end = -1;  // -1: num_hidden_layers
  bool load_embedding = true;
  bool load_head = true;
  int64_t staging_bytes = int64_t{64} << 20;  // host staging memory for the upload
};

// Loads what `options` selects, converted to the backend's weight_dtype() for matrices (2-D and
// per-head projections, experts, embedding, head) and to f32 for norm weights, biases and the MoE
// router; FP8 block-scaled tensors are dequantised. Every name and shape is checked against the
// checkpoint's headers first: a missing tensor or one of the wrong shape is an error naming it,
// before anything is read. The data then streams from the mapped checkpoint through a bounded
// staging buffer (weight_stream.h), with progress in the log for large loads. Under tensor
// parallelism the sliced tensors are contiguous copies of this rank's part, read directly; head
// and intermediate counts that do not divide by tp.size are INVALID_ARGUMENT. A stage holding
// both tied ends loads the table once.
absl::StatusOr<ModelWeights> LoadWeights(const ModelConfig& config, const Checkpoint& checkpoint,
                                         Backend& backend, const LoadOptions& options);

// Sets w.w_uk and w.w_uv to the per-head views of w.kv_b_proj ([local_heads * (P + V), L]).
absl::Status SetAbsorptionViews(const ModelConfig& config, int64_t local_heads, LayerWeights& w);

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_WEIGHTS_H_
