#include "bench/model_bench_weights.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace strata::bench {
namespace {

using model::Backend;
using model::LayerWeights;
using model::MlpWeights;

// Makes tensors on the backend and fills them, each from its own seed.
class Maker {
 public:
  Maker(Backend& backend, BenchDevice& device, uint64_t seed)
      : backend_(backend), device_(device), seed_(seed) {}

  // A weight matrix [rows, fan_in] (or any shape whose last dimension is the fan-in).
  absl::StatusOr<Tensor> Matrix(Shape shape, DType dtype) {
    const float s = 1.0f / std::sqrt(static_cast<float>(shape.back()));
    return Filled(std::move(shape), dtype, -s, s);
  }
  absl::StatusOr<Tensor> Constant(int64_t n, float value) {
    return Filled({n}, DType::kF32, value, value);
  }
  absl::StatusOr<Tensor> Filled(Shape shape, DType dtype, float lo, float hi) {
    ASSIGN_OR_RETURN(Tensor t, backend_.NewTensor(dtype, std::move(shape)));
    RETURN_IF_ERROR(device_.FillUniform(t, ++seed_, lo, hi));
    return t;
  }

 private:
  Backend& backend_;
  BenchDevice& device_;
  uint64_t seed_;
};

absl::StatusOr<MlpWeights> RandomMlp(Maker& mk, int64_t hidden, int64_t inter, DType wt) {
  MlpWeights m;
  ASSIGN_OR_RETURN(m.gate, mk.Matrix({inter, hidden}, wt));
  ASSIGN_OR_RETURN(m.up, mk.Matrix({inter, hidden}, wt));
  ASSIGN_OR_RETURN(m.down, mk.Matrix({hidden, inter}, wt));
  return m;
}

absl::StatusOr<LayerWeights> RandomLayer(const ModelConfig& c, int i, Maker& mk, DType wt) {
  const int64_t h = c.hidden_size, nh = c.num_attention_heads, p = c.qk_nope_head_dim,
                r = c.qk_rope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank, ql = c.q_lora_rank;
  LayerWeights w;
  w.index = i;
  ASSIGN_OR_RETURN(w.input_layernorm, mk.Constant(h, 1.0f));
  ASSIGN_OR_RETURN(w.post_attention_layernorm, mk.Constant(h, 1.0f));
  ASSIGN_OR_RETURN(w.q_a_proj, mk.Matrix({ql, h}, wt));
  ASSIGN_OR_RETURN(w.q_a_layernorm, mk.Constant(ql, 1.0f));
  ASSIGN_OR_RETURN(w.q_b_proj, mk.Matrix({nh * (p + r), ql}, wt));
  ASSIGN_OR_RETURN(w.kv_a_proj, mk.Matrix({l + r, h}, wt));
  ASSIGN_OR_RETURN(w.kv_a_layernorm, mk.Constant(l, 1.0f));
  ASSIGN_OR_RETURN(w.kv_b_proj, mk.Matrix({nh * (p + v), l}, wt));
  RETURN_IF_ERROR(model::SetAbsorptionViews(c, nh, w));
  ASSIGN_OR_RETURN(w.o_proj, mk.Matrix({h, nh * v}, wt));

  w.has_indexer = c.indexer_types[i] == IndexerType::kFull;
  if (w.has_indexer) {
    const int64_t ih = c.index_n_heads, id = c.index_head_dim;
    ASSIGN_OR_RETURN(w.indexer.wq_b, mk.Matrix({ih * id, ql}, wt));
    ASSIGN_OR_RETURN(w.indexer.wk, mk.Matrix({id, h}, wt));
    ASSIGN_OR_RETURN(w.indexer.k_norm, mk.Constant(id, 1.0f));
    ASSIGN_OR_RETURN(w.indexer.k_norm_bias, mk.Constant(id, 0.0f));
    ASSIGN_OR_RETURN(w.indexer.weights_proj, mk.Matrix({ih, h}, wt));
  }

  w.is_moe = c.mlp_layer_types[i] == MlpType::kSparse;
  if (!w.is_moe) {
    ASSIGN_OR_RETURN(w.mlp, RandomMlp(mk, h, c.intermediate_size, wt));
    return w;
  }
  ASSIGN_OR_RETURN(w.router, mk.Matrix({c.n_routed_experts, h}, DType::kF32));
  ASSIGN_OR_RETURN(w.router_bias, mk.Constant(c.n_routed_experts, 0.0f));
  for (int e = 0; e < c.n_routed_experts; ++e) {
    ASSIGN_OR_RETURN(MlpWeights m, RandomMlp(mk, h, c.moe_intermediate_size, wt));
    w.experts.push_back(std::move(m));
  }
  if (c.n_shared_experts > 0) {
    ASSIGN_OR_RETURN(w.shared_expert,
                     RandomMlp(mk, h, int64_t{c.moe_intermediate_size} * c.n_shared_experts, wt));
  }
  return w;
}

// `bytes` of device memory at `data` as a 1-D tensor of `dtype` (borrowed).
Tensor AsValues(void* data, int64_t bytes, DType dtype, Device device) {
  return Tensor::Borrow(data, dtype, {bytes / static_cast<int64_t>(DTypeSize(dtype))}, device);
}

// A byte pattern whose every reading is small and finite: 0x3C3C3C3C is 0.0115 as f32, 0x3C3C
// is 0.0115 as bf16. Used for fp8 scales and the fp8 layout's bf16 k_rope.
constexpr uint8_t kSmallPattern = 0x3C;

absl::Status FillLatent(const model::LayerCache& lc, BenchDevice& d, uint64_t seed) {
  const kvcache::CacheGeometry& g = lc.geometry;
  const Tensor& t = lc.latent;
  const int64_t bytes = static_cast<int64_t>(t.nbytes());
  switch (g.latent_dtype) {
    case kvcache::LatentCacheDType::kF32:
      return d.FillUniform(AsValues(t.data(), bytes, DType::kF32, t.device()), seed, -1, 1);
    case kvcache::LatentCacheDType::kBF16:
      return d.FillUniform(AsValues(t.data(), bytes, DType::kBF16, t.device()), seed, -1, 1);
    case kvcache::LatentCacheDType::kF8: {
      const int64_t row =
          kvcache::LatentRowBytes(g.latent_dtype, g.kv_lora_rank, g.qk_rope_head_dim);
      const int64_t rows = lc.num_blocks * kvcache::kBlockTokens;
      uint8_t* base = static_cast<uint8_t*>(t.data());
      RETURN_IF_ERROR(d.FillF8(base, bytes, seed));
      const int64_t scales = kvcache::LatentF8ScalesOffset(g.kv_lora_rank);
      const int64_t rope = kvcache::LatentF8RopeOffset(g.kv_lora_rank);
      RETURN_IF_ERROR(d.Memset2D(base + scales, row, kSmallPattern, rope - scales, rows));
      return d.Memset2D(base + rope, row, kSmallPattern, row - rope, rows);
    }
  }
  return absl::InvalidArgumentError("latent cache dtype");
}

absl::Status FillIndexer(const model::LayerCache& lc, BenchDevice& d, uint64_t seed) {
  const kvcache::CacheGeometry& g = lc.geometry;
  const Tensor& t = lc.indexer;
  const int64_t bytes = static_cast<int64_t>(t.nbytes());
  switch (g.indexer_dtype) {
    case kvcache::IndexerCacheDType::kF32:
      return d.FillUniform(AsValues(t.data(), bytes, DType::kF32, t.device()), seed, -1, 1);
    case kvcache::IndexerCacheDType::kBF16:
      return d.FillUniform(AsValues(t.data(), bytes, DType::kBF16, t.device()), seed, -1, 1);
    case kvcache::IndexerCacheDType::kF8: {
      const int64_t block = kvcache::IndexerBlockBytes(g.indexer_dtype, g.index_head_dim);
      const int64_t scales = kvcache::IndexerF8ScalesOffset(g.index_head_dim);
      uint8_t* base = static_cast<uint8_t*>(t.data());
      RETURN_IF_ERROR(d.FillF8(base, bytes, seed));
      return d.Memset2D(base + scales, block, kSmallPattern, block - scales, lc.num_blocks);
    }
  }
  return absl::InvalidArgumentError("indexer cache dtype");
}

}  // namespace

absl::StatusOr<std::vector<LayerWeights>> RandomLayers(const ModelConfig& config, Backend& backend,
                                                       BenchDevice& device, uint64_t seed) {
  Maker mk(backend, device, seed);
  std::vector<LayerWeights> layers;
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    auto layer = RandomLayer(config, i, mk, backend.weight_dtype());
    if (!layer.ok()) return Annotate(layer.status(), absl::StrCat("random layer ", i));
    layers.push_back(*std::move(layer));
  }
  RETURN_IF_ERROR(device.Synchronize());
  return layers;
}

absl::Status FillCache(const model::KvCache& cache, BenchDevice& device, uint64_t seed) {
  std::set<const void*> done;  // aliased layers share their bytes: fill each buffer once
  for (int i = 0; i < cache.num_layers(); ++i) {
    const model::LayerCache& lc = cache.layer(i);
    if (done.insert(lc.latent.data()).second) RETURN_IF_ERROR(FillLatent(lc, device, seed + i));
    if (lc.indexer.defined() && done.insert(lc.indexer.data()).second) {
      RETURN_IF_ERROR(FillIndexer(lc, device, seed + 1000 + i));
    }
  }
  return device.Synchronize();
}

}  // namespace strata::bench
