// strata-model-bench: random weights made on the device (no checkpoint) and random cache contents.
#ifndef STRATA_BENCH_MODEL_BENCH_WEIGHTS_H_
#define STRATA_BENCH_MODEL_BENCH_WEIGHTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/model_bench_device.h"
#include "common/model_config.h"
#include "worker/model/backend.h"
#include "worker/model/kv_cache.h"
#include "worker/model/weights.h"

namespace strata::bench {

// Every layer of `config` with random weights in the backend's dtypes (backend.h): matrices
// uniform in ±1/sqrt(fan_in) in weight_dtype(), norm weights 1, biases 0, the router f32 in
// ±1/sqrt(H) with a zero correction bias. Activations stay O(1) through any number of layers
// (every block reads a normalised input). No embedding and no head: a middle pipeline stage.
absl::StatusOr<std::vector<model::LayerWeights>> RandomLayers(const ModelConfig& config,
                                                              model::Backend& backend,
                                                              BenchDevice& device, uint64_t seed);

// Random contents for every block of the cache's (aliased or not) layers, valid for their
// dtypes: uniform ±1 for f32/bf16 values, random finite fp8 with small fixed scales (and bf16
// k_rope) for the fp8 layouts, so scores stay finite and the indexer's top-k sees no ties.
absl::Status FillCache(const model::KvCache& cache, BenchDevice& device, uint64_t seed);

}  // namespace strata::bench

#endif  // STRATA_BENCH_MODEL_BENCH_WEIGHTS_H_
