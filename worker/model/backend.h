// The operation interface the model is written against. One model definition (model.cc,
// attention.cc, moe.cc) runs on every backend: the CPU backend (fp32 reference, kernels/cpu) and
// the CUDA backend (bf16 storage, fp32 accumulation, kernels/cuda).
//
// Conventions for every operation:
// - Tensors live on the backend's device; activations are row-major [tokens, ...] and may be
//   column slices of a wider buffer (row stride = stride(0), unit stride inside a row).
// - Linear weights are in checkpoint layout [out, in]: y = x · Wᵀ.
// - Outputs are preallocated by the caller (NewTensor) unless the signature returns a Tensor.
// - Errors are Status; an operation never aborts on bad shapes or ids.
#ifndef STRATA_WORKER_MODEL_BACKEND_H_
#define STRATA_WORKER_MODEL_BACKEND_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "kernels/cpu/rope.h"
#include "worker/model/kv_cache.h"

namespace strata::model {

// Rotary embedding parameters for one call (see kernels/cpu/rope.h for the frequencies).
struct RopeArgs {
  const Tensor* inv_freq = nullptr;  // [rot_dim / 2] f32, on the backend's device
  float attention_factor = 1.0f;     // multiplies cos and sin (YaRN mscale ratio)
  kernels::RopeStyle style = kernels::RopeStyle::kInterleavedToHalfSplit;
};

// Per-token sampling controls (temperature 0 = greedy).
struct SamplingArgs {
  float temperature = 0.0f;
  int top_k = 0;       // 0 = off
  float top_p = 1.0f;  // 1 = off
  uint64_t seed = 0;
  int64_t step = 0;  // position of the token being sampled; with seed, fixes the draw
};

// Everything the paged DSA operations need to find a token's cache rows.
struct PagedView {
  const Tensor* block_tables = nullptr;  // [num_seqs, max_blocks] i32
  const Tensor* token_seq = nullptr;     // [T] i32: the sequence of each token row
  const Tensor* positions = nullptr;     // [T] i64: the token's position in its sequence
  const Tensor* slot_mapping = nullptr;  // [T] i32: cache slot the token writes (< 0: none)
  // Optional, computed once per step on the host by the model so that a device backend need not
  // read positions back. When row_lens is null a backend derives all three from the tensors above.
  const Tensor* row_lens = nullptr;  // [T] i32: positions + 1 (the causal prefix a token scores)
  const Tensor* seq_lens = nullptr;  // [num_seqs] i32: the longest row_lens of each sequence
  int64_t max_row_len = 0;           // max over row_lens
};

// Streams host bytes into device tensors through a bounded staging area (weight loading):
//   ASSIGN_OR_RETURN(void* chunk, up.Begin(dst, offset, n));  fill n bytes;  up.Commit();
// Chunks may be committed in any order and to any tensors; Finish waits for all of them.
class Uploader {
 public:
  virtual ~Uploader() = default;
  // The largest chunk Begin accepts, in bytes.
  virtual int64_t max_chunk_bytes() const = 0;
  // Host memory for bytes [offset, offset + bytes) of `dst` (contiguous, on the backend's device).
  // Valid until Commit, which must come before the next Begin.
  virtual absl::StatusOr<void*> Begin(const Tensor& dst, int64_t offset, int64_t bytes) = 0;
  virtual absl::Status Commit() = 0;
  // Waits until every committed chunk has reached the device.
  virtual absl::Status Finish() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  // The dtype of the activations the model allocates (norm outputs, projections, attention and
  // MLP intermediates); the residual stream and the logits are always f32. f32 on the CPU
  // reference, bf16 on the CUDA backend (issue 7).
  virtual DType activation_dtype() const { return DType::kF32; }
  // The dtype of the weight matrices (2-D and per-head 3-D projections, experts, embedding,
  // head); norm weights and biases and the MoE router (weight and bias) are always f32.
  virtual DType weight_dtype() const { return DType::kF32; }
  // The cudaStream_t every operation of this backend is ordered on (null on the CPU). Work that
  // others enqueue on the backend's tensors (NCCL collectives and transfers) goes on it too.
  virtual void* stream() const { return nullptr; }
  // The cache layouts a model on this backend uses unless told otherwise (ModelOptions): f32 on
  // the CPU reference; bf16 latent and bf16 indexer caches on CUDA (the tuned kernels' layouts).
  virtual kvcache::LatentCacheDType default_latent_cache() const {
    return kvcache::LatentCacheDType::kF32;
  }
  virtual kvcache::IndexerCacheDType default_indexer_cache() const {
    return kvcache::IndexerCacheDType::kF32;
  }
  // A new uninitialised tensor on the backend's device.
  virtual absl::StatusOr<Tensor> NewTensor(DType dtype, Shape shape) = 0;
  // Copies a host tensor to the device (or returns it as is on the CPU backend). Small tensors
  // (per-step index vectors) may be copied asynchronously: the host tensor may be reused at once.
  virtual absl::StatusOr<Tensor> Upload(const Tensor& host) = 0;
  // Copies a device tensor to a new contiguous host tensor of the same dtype.
  virtual absl::StatusOr<Tensor> Download(const Tensor& device) = 0;
  // A streaming uploader with about `staging_bytes` of staging memory (weight loading).
  virtual absl::StatusOr<std::unique_ptr<Uploader>> NewUploader(int64_t staging_bytes) = 0;

  // out[t] = table[ids[t]]. ids [T] i32; table [V, H] (weight dtype); out [T, H] f32. An id outside
  // [0, V) is INVALID_ARGUMENT on the CPU; the CUDA backend writes a zero row instead (it does not
  // read ids back; the model validates them on the host first).
  virtual absl::Status Embedding(const Tensor& ids, const Tensor& table, Tensor& out) = 0;
  // out = RMSNorm(x) · weight. x, out [T, D] (out may alias x when the dtypes agree); weight f32.
  virtual absl::Status RmsNorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // The residual add fused with the norm after it: h += delta; out = RMSNorm(h) · weight.
  // h [T, D] f32 (the residual stream); delta [T, D] f32 or the activation dtype; out [T, D] in
  // the activation dtype.
  virtual absl::Status AddRmsNorm(Tensor& h, const Tensor& delta, const Tensor& weight, float eps,
                                  Tensor& out) = 0;
  // out = LayerNorm(x) · weight + bias.
  virtual absl::Status LayerNorm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 float eps, Tensor& out) = 0;
  // y = x · Wᵀ. x [T, K], w [N, K], y [T, N]. y may be f32 where x and w are bf16 (fp32
  // accumulation either way); an f32 w with a bf16 x computes in fp32 (the MoE router).
  virtual absl::Status Linear(const Tensor& x, const Tensor& w, Tensor& y) = 0;
  // Per head h: y[:, h, :] = x[:, h, :] · W[h] (W [nH, in, out]) or · W[h]ᵀ (W [nH, out, in]) when
  // transpose_w. x [T, nH, in] (rows may be strided), y [T, nH, out].
  virtual absl::Status HeadMatmul(const Tensor& x, const Tensor& w, bool transpose_w,
                                  Tensor& y) = 0;
  // x += y, elementwise, same shape; x f32, y f32 or the activation dtype.
  virtual absl::Status Add(Tensor& x, const Tensor& y) = 0;
  // dst = src, same dtype and shape, any strides.
  virtual absl::Status Copy(const Tensor& src, Tensor& dst) = 0;
  // The rows of x [T, H] listed in `rows` (host indices into [0, T)), as a new [R, H] tensor.
  virtual absl::StatusOr<Tensor> GatherRows(const Tensor& x, const std::vector<int32_t>& rows) = 0;
  // In place on x [T, heads, rot_dim] (a slice: token and head strides from the tensor) at the
  // tokens' positions [T] i64.
  virtual absl::Status Rope(Tensor& x, const Tensor& positions, const RopeArgs& rope) = 0;
  // out = silu(gate) · up. gate, up, out [T, I].
  virtual absl::Status SiluMul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;

  // Writes rows [T, L + R] (latent ‖ k_rope) into the latent cache at slot_mapping.
  virtual absl::Status WriteLatentCache(const Tensor& rows, const PagedView& view,
                                        LayerCache& cache) = 0;
  // Writes indexer keys [T, D] into the indexer cache at slot_mapping.
  virtual absl::Status WriteIndexerCache(const Tensor& keys, const PagedView& view,
                                         LayerCache& cache) = 0;
  // The top-k cache slots each token attends to (dsa.md §2): scores
  // Σ_h (w[t,h]·weight_scale)·relu(q[t,h]·k[j]·softmax_scale) over the token's causal prefix
  // [0, pos(t)] read through the block table; keeps the top_k largest and maps their positions
  // to cache slots. q [T, iH, iD] (roped), w [T, iH]. Returns slots [T, top_k] i32, -1 padded
  // (a prefix shorter than top_k selects every position). w is f32 and is scaled in place.
  virtual absl::StatusOr<Tensor> IndexerTopk(const Tensor& q, const Tensor& w, float weight_scale,
                                             float softmax_scale, int top_k, const PagedView& view,
                                             const LayerCache& cache) = 0;
  // Sparse MLA over the latent cache (dsa.md §4). q_abs [T, nH, L + R]; slots [T, K] i32 (-1 =
  // none); out o_lat [T, nH, L]. Rows without a slot give zeros.
  virtual absl::Status SparseMla(const Tensor& q_abs, const Tensor& slots, float scale,
                                 const LayerCache& cache, Tensor& out) = 0;

  // Routed experts of one MoE layer: y = Σ_k weight[t,k] · down_e(silu(gate_e x) · up_e x) for
  // e = expert_ids[t,k]. x [T, H] (activation dtype), expert_ids [T, K] i32, weights [T, K] f32,
  // y [T, H] f32 (written).
  struct ExpertWeights {
    const Tensor* gate = nullptr;  // [I, H]
    const Tensor* up = nullptr;    // [I, H]
    const Tensor* down = nullptr;  // [H, I]
  };
  virtual absl::Status MoeExperts(const Tensor& x, const Tensor& expert_ids, const Tensor& weights,
                                  const std::vector<ExpertWeights>& experts, Tensor& y) = 0;
  // No-aux sigmoid routing (dsa.md §5). router_logits [T, E] f32; bias [E] f32.
  struct RouteArgs {
    int top_k = 8;
    int n_group = 1;
    int topk_group = 1;
    bool norm_topk_prob = true;
    float routed_scaling_factor = 1.0f;
  };
  virtual absl::Status MoeRoute(const Tensor& router_logits, const Tensor& bias,
                                const RouteArgs& args, Tensor& expert_ids, Tensor& weights) = 0;

  // One token per row of logits [R, V]; returns the sampled ids [R] and their log-probabilities.
  virtual absl::Status Sample(const Tensor& logits, const std::vector<SamplingArgs>& args,
                              std::vector<int32_t>& ids, std::vector<float>& logprobs) = 0;
};

}  // namespace strata::model

#endif  // STRATA_WORKER_MODEL_BACKEND_H_
