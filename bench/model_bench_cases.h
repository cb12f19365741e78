// strata-model-bench: one decode or prefill case — its step inputs, the untimed routing probe,
// the timed runs of Model::Forward over all the model's layers, and its floors.
#ifndef STRATA_BENCH_MODEL_BENCH_CASES_H_
#define STRATA_BENCH_MODEL_BENCH_CASES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/model_bench_device.h"
#include "bench/model_bench_shapes.h"
#include "bench/probe_backend.h"
#include "nlohmann/json.hpp"
#include "worker/model/kv_cache.h"
#include "worker/model/model.h"

namespace strata::bench {

// Everything the cases share. Non-owning.
struct BenchContext {
  const ModelConfig* config = nullptr;
  model::Model* model = nullptr;
  model::KvCache* cache = nullptr;
  ProbeBackend* probe = nullptr;  // the backend the model runs on
  BenchDevice* device = nullptr;
  DeviceFloors floors;
  std::vector<LayerShape> layers;    // one per model layer
  std::vector<int32_t> block_order;  // a random permutation of the cache's blocks
  int warmup = 1;
  int decode_runs = 10;
  int prefill_runs = 3;
  bool breakdown = true;  // one more untimed pass with every operation timed
  uint64_t seed = 1;
};

struct CaseResult {
  std::string kind;  // "decode" or "prefill"
  int64_t batch = 0;
  int64_t context = 0;        // decode: tokens cached per sequence before the step
  int64_t prompt = 0;         // prefill: prompt tokens
  int64_t chunk = 0;          // prefill: tokens per step
  std::string status = "ok";  // "ok", "skipped", "error"
  std::string reason;         // why skipped / the error
  int runs = 0;
  double median_ms = 0;  // all layers (one decode step, or the whole prompt)
  double min_ms = 0;
  double experts_counted = 0;   // distinct routed experts per layer per step, mean (probe)
  double experts_expected = 0;  // the same for uniform random routing
  LayerWork work;               // per layer (mean over the layers), the whole step / prompt
  bool finite = false;          // the last run's output hidden states are all finite
  // The breakdown pass (per layer, ms): each operation name's total, and the pass's whole time
  // (larger than median_ms / layers by the synchronisation around every operation).
  std::map<std::string, double> op_ms;
  double breakdown_ms = 0;

  double per_layer_ms(int layers) const { return median_ms / layers; }
  double bandwidth_floor_ms(const DeviceFloors& f) const;
  double flop_floor_ms(const DeviceFloors& f) const;
  double floor_ms(const DeviceFloors& f) const;
};

// Blocks a case needs in the cache pool.
int64_t DecodeBlocks(int64_t batch, int64_t context);
int64_t PrefillBlocks(int64_t prompt);

CaseResult RunDecodeCase(BenchContext& ctx, int64_t batch, int64_t context);
CaseResult RunPrefillCase(BenchContext& ctx, int64_t prompt, int64_t chunk);

nlohmann::json CaseJson(const CaseResult& r, const DeviceFloors& f, int layers);

}  // namespace strata::bench

#endif  // STRATA_BENCH_MODEL_BENCH_CASES_H_
