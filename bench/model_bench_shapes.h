// strata-model-bench: the benchmark model's shape (GLM-5 widths, or a tiny one for CI) and the
// least work one layer does per step — the bytes it must move and the flops it must issue — from
// which the floors are computed (specs/dsa.md §8).
#ifndef STRATA_BENCH_MODEL_BENCH_SHAPES_H_
#define STRATA_BENCH_MODEL_BENCH_SHAPES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/model_config.h"
#include "kvcache/layout.h"

namespace strata::bench {

struct BenchModelOptions {
  int layers = 1;
  bool tiny = false;        // a few-MB model with the same structure, for the CPU and CI
  bool indexshare = false;  // every other layer shares the top-k of the one before (GLM-5.2)
};

// GLM-5 (specs/dsa.md §0: hidden 6144, 64 heads, q_lora 2048, kv_lora 512, P/R/V 192/64/256, 256
// experts top-8 + 1 shared of 2048, indexer 32×128, top-k 2048, groups 1/1, scaling 2.5) with
// `layers` MoE layers (no dense first layers: the bench runs a middle pipeline stage), parsed
// through ParseModelConfig so the config is validated like a real one.
absl::StatusOr<ModelConfig> BenchModelConfig(const BenchModelOptions& options);

// The least work of one layer in one step. Bytes are device-memory traffic (reads + writes, each
// byte once), the unit the copy bandwidth is measured in; flops count a multiply-add as 2.
struct LayerWork {
  double weight_bytes = 0;  // weights read: attention, indexer, router, touched experts, shared
  double cache_bytes = 0;   // KV and indexer-key bytes read
  double write_bytes = 0;   // cache rows written, hidden states in and out
  double flops = 0;
  double bytes() const { return weight_bytes + cache_bytes + write_bytes; }
  LayerWork& operator+=(const LayerWork& o);
};

// What a layer is made of, in the dtypes the backend stores.
struct LayerShape {
  bool has_indexer = true;
  DType weight_dtype = DType::kBF16;  // Backend::weight_dtype(); norms and router are f32
  kvcache::CacheGeometry cache;
};

// Bytes of one MoE layer's weights (all 256 experts): what it costs on the device.
double LayerWeightBytes(const ModelConfig& c, const LayerShape& shape);

// One decode step of `batch` sequences, each with `context` tokens cached, one new token each at
// position `context`; `distinct_experts` routed experts touched by the step (counted or expected).
LayerWork DecodeLayerWork(const ModelConfig& c, const LayerShape& shape, int64_t batch,
                          int64_t context, double distinct_experts);

// One prefill chunk of one sequence: tokens [begin, begin + tokens) attend causally to
// everything before them. The cache is read once (each byte once); indexer work is O(N²).
LayerWork PrefillLayerWork(const ModelConfig& c, const LayerShape& shape, int64_t begin,
                           int64_t tokens, double distinct_experts);

// Distinct experts a step of `tokens` tokens touches when each picks top_k of n uniformly:
// n · (1 − (1 − k/n)^tokens).
double ExpectedDistinctExperts(const ModelConfig& c, int64_t tokens);

}  // namespace strata::bench

#endif  // STRATA_BENCH_MODEL_BENCH_SHAPES_H_
