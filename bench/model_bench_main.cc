// strata-model-bench: a GLM-5-shaped model (real widths, random weights made on the device, no
// checkpoint) as a middle pipeline stage on one device — hidden states in, hidden states out —
// timed per layer for decode (batch × context) and prefill, each next to its floor measured in
// the same run (docs/performance.md, "GLM-5-shaped model").
//
//   strata-model-bench [--device cuda:0|cpu] [--tiny] [--layers N] [--indexshare]
//                      [--batches 1,8,32,64] [--contexts 4096,32768,131072]
//                      [--prefill 4096,16384] [--prefill-chunk 8192] [--runs 10]
//                      [--latent-cache bf16|fp8|f32] [--indexer-cache fp8|bf16|f32]
//                      [--max-seconds S] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/model_bench_cases.h"
#include "bench/model_bench_device.h"
#include "bench/model_bench_shapes.h"
#include "bench/model_bench_weights.h"
#include "bench/probe_backend.h"
#include "common/cli.h"
#include "common/status.h"
#include "worker/model/backend_factory.h"

ABSL_FLAG(std::string, device, "cuda:0", "cpu or cuda:N");
ABSL_FLAG(bool, tiny, false, "a tiny model of the same structure (CPU runs, CI)");
ABSL_FLAG(int, layers, 0, "layers to build (0 = as many as fit in device memory)");
ABSL_FLAG(bool, indexshare, false, "every other layer shares the previous top-k (GLM-5.2)");
ABSL_FLAG(std::string, batches, "1,8,32,64", "decode batch sizes");
ABSL_FLAG(std::string, contexts, "",
          "decode contexts (default 4096,32768,131072; tiny 128,512,2048)");
ABSL_FLAG(std::string, prefill, "", "prefill prompt lengths (default 4096,16384; tiny 256,1024)");
ABSL_FLAG(int, prefill_chunk, 0, "prompt tokens per prefill step (default 8192; tiny 512)");
ABSL_FLAG(int, runs, 10, "timed runs per decode case (the median is reported)");
ABSL_FLAG(int, prefill_runs, 3, "timed runs per prefill case");
ABSL_FLAG(int, warmup, 1, "untimed runs before the timed ones (after the routing probe)");
ABSL_FLAG(bool, breakdown, true,
          "time every operation in one more untimed pass per case (needs --cuda_graphs=false: "
          "a replayed step runs no operation the probe could time)");
ABSL_FLAG(bool, cuda_graphs, true,
          "replay decode steps from CUDA graphs, as serving does (Model's cuda_graphs option)");
ABSL_FLAG(std::string, latent_cache, "bf16", "latent cache dtype: bf16, fp8, f32 or default");
ABSL_FLAG(std::string, indexer_cache, "fp8", "indexer cache dtype: fp8, bf16, f32 or default");
ABSL_FLAG(double, reserve_gb, -1, "device memory left for workspaces, GB (-1 = estimate)");
ABSL_FLAG(double, max_seconds, 0, "skip the cases left after this many seconds (0 = no limit)");
ABSL_FLAG(std::string, json, "", "write the results here");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random weights, caches, inputs and block tables");

namespace strata::bench {
namespace {

constexpr int kMaxLayers = 78;  // GLM-5's layer count: more than this would not be one model

absl::StatusOr<std::vector<int64_t>> ParseList(const std::string& text, const char* flag) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", part, "' is not > 0"));
    }
    out.push_back(v);
  }
  return out;
}

// "default" is the backend's own choice (Backend::default_latent_cache / default_indexer_cache).
absl::StatusOr<kvcache::LatentCacheDType> ParseLatent(const std::string& s,
                                                      const model::Backend& backend) {
  if (s == "default") return backend.default_latent_cache();
  if (s == "bf16") return kvcache::LatentCacheDType::kBF16;
  if (s == "fp8") return kvcache::LatentCacheDType::kF8;
  if (s == "f32") return kvcache::LatentCacheDType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("--latent-cache ", s, ": bf16, fp8, f32 or default"));
}

absl::StatusOr<kvcache::IndexerCacheDType> ParseIndexer(const std::string& s,
                                                        const model::Backend& backend) {
  if (s == "default") return backend.default_indexer_cache();
  if (s == "fp8") return kvcache::IndexerCacheDType::kF8;
  if (s == "bf16") return kvcache::IndexerCacheDType::kBF16;
  if (s == "f32") return kvcache::IndexerCacheDType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("--indexer-cache ", s, ": fp8, bf16, f32 or default"));
}

const char* Name(kvcache::LatentCacheDType d) {
  switch (d) {
    case kvcache::LatentCacheDType::kF32:
      return "f32";
    case kvcache::LatentCacheDType::kBF16:
      return "bf16";
    case kvcache::LatentCacheDType::kF8:
      return "fp8";
  }
  return "?";
}

const char* Name(kvcache::IndexerCacheDType d) {
  switch (d) {
    case kvcache::IndexerCacheDType::kF32:
      return "f32";
    case kvcache::IndexerCacheDType::kBF16:
      return "bf16";
    case kvcache::IndexerCacheDType::kF8:
      return "fp8";
  }
  return "?";
}

// Device memory a step's temporaries may take at once: f32 activations of `tokens` rows (the
// current backends allocate per operation), the top-k slots, and the indexer logits over
// `max_cols` keys, with headroom for the allocator and cuBLAS.
double WorkspaceBytes(const ModelConfig& c, int64_t tokens, int64_t max_cols) {
  const double h = c.hidden_size, nh = c.num_attention_heads;
  const double per_token =
      4.0 *
          (6 * h + c.q_lora_rank + nh * c.qk_head_dim() + c.kv_lora_rank + c.qk_rope_head_dim +
           c.index_n_heads * c.index_head_dim + c.index_head_dim + c.index_n_heads +
           nh * (2 * c.kv_lora_rank + c.qk_rope_head_dim) + nh * c.v_head_dim + c.n_routed_experts +
           2 * c.num_experts_per_tok + 2 * c.moe_intermediate_size + 2 * c.index_topk) +
      4.0 * max_cols;
  return 1.25 * per_token * tokens + (1 << 30);
}

struct Plan {
  std::vector<int64_t> batches, contexts, prompts;
  int64_t chunk = 0;
  kvcache::CacheGeometry geometry;
};

void PrintRow(const CaseResult& r, const DeviceFloors& f, int layers) {
  const std::string name = r.kind == "decode"
                               ? absl::StrFormat("decode b=%d ctx=%d", r.batch, r.context)
                               : absl::StrFormat("prefill %d (chunk %d)", r.prompt, r.chunk);
  if (r.status != "ok") {
    std::printf("%-28s %s: %s\n", name.c_str(), r.status.c_str(), r.reason.c_str());
    std::fflush(stdout);
    return;
  }
  const double per_layer = r.per_layer_ms(layers), floor = r.floor_ms(f);
  std::string extra;
  if (r.kind == "prefill") {
    extra = absl::StrFormat("  %.0f tok/s/layer (floor %.0f)", r.prompt / (per_layer * 1e-3),
                            r.prompt / (floor * 1e-3));
  }
  std::printf("%-28s %9.3f %9.3f %9.3f %9.3f %6.1f%% %8.3f %7.1f %s%s\n", name.c_str(), per_layer,
              r.bandwidth_floor_ms(f), r.flop_floor_ms(f), floor, 100.0 * floor / per_layer,
              r.work.bytes() / 1e9, r.experts_counted, r.finite ? "" : " NON-FINITE",
              extra.c_str());
  if (!r.op_ms.empty()) {  // the breakdown pass, largest operations first
    std::vector<std::pair<double, std::string>> ops;
    for (const auto& [op, ms] : r.op_ms) ops.push_back({ms, op});
    std::sort(ops.rbegin(), ops.rend());
    std::string line;
    for (size_t i = 0; i < ops.size() && i < 6; ++i) {
      absl::StrAppendFormat(&line, "%s%s %.3f", i ? ", " : "", ops[i].second, ops[i].first);
    }
    std::printf("    ops (ms/layer, synced, pass %.3f): %s\n", r.breakdown_ms, line.c_str());
  }
  std::fflush(stdout);
}

absl::Status Run() {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const bool tiny = absl::GetFlag(FLAGS_tiny);
  Plan plan;
  ASSIGN_OR_RETURN(plan.batches, ParseList(absl::GetFlag(FLAGS_batches), "batches"));
  std::string contexts = absl::GetFlag(FLAGS_contexts), prompts = absl::GetFlag(FLAGS_prefill);
  if (contexts.empty()) contexts = tiny ? "128,512,2048" : "4096,32768,131072";
  if (prompts.empty()) prompts = tiny ? "256,1024" : "4096,16384";
  ASSIGN_OR_RETURN(plan.contexts, ParseList(contexts, "contexts"));
  if (prompts != "none") {
    ASSIGN_OR_RETURN(plan.prompts, ParseList(prompts, "prefill"));
  }
  plan.chunk = absl::GetFlag(FLAGS_prefill_chunk);
  if (plan.chunk <= 0) plan.chunk = tiny ? 512 : 8192;
  const uint64_t seed = absl::GetFlag(FLAGS_seed);

  // The device, its backend, and the floors (measured before the model takes the memory).
  ASSIGN_OR_RETURN(const Device device, ParseDevice(absl::GetFlag(FLAGS_device)));
  ASSIGN_OR_RETURN(std::unique_ptr<model::Backend> backend, model::CreateBackend(device));
  std::unique_ptr<BenchDevice> dev;
  if (device.is_cpu()) {
    dev = NewCpuBenchDevice(*backend);
  } else {
    ASSIGN_OR_RETURN(dev, NewCudaBenchDevice(*backend));
  }
  ASSIGN_OR_RETURN(plan.geometry.latent_dtype,
                   ParseLatent(absl::GetFlag(FLAGS_latent_cache), *backend));
  ASSIGN_OR_RETURN(plan.geometry.indexer_dtype,
                   ParseIndexer(absl::GetFlag(FLAGS_indexer_cache), *backend));
  ASSIGN_OR_RETURN(const DeviceFloors floors, dev->MeasureFloors());
  std::printf("device %s, backend %s: weights %s, activations %s\n", dev->Describe().c_str(),
              device.ToString().c_str(), std::string(DTypeName(backend->weight_dtype())).c_str(),
              std::string(DTypeName(backend->activation_dtype())).c_str());
  std::printf("floors: copy %.0f GB/s (read + write), matrix %.1f TFLOP/s (%s)\n", floors.copy_gbps,
              floors.matrix_tflops, floors.matrix_source.c_str());

  // How many layers: the largest case's cache and the workspaces first, then the weights.
  BenchModelOptions mo{.layers = 2, .tiny = tiny, .indexshare = absl::GetFlag(FLAGS_indexshare)};
  ASSIGN_OR_RETURN(ModelConfig probe_config, BenchModelConfig(mo));
  plan.geometry.kv_lora_rank = probe_config.kv_lora_rank;
  plan.geometry.qk_rope_head_dim = probe_config.qk_rope_head_dim;
  plan.geometry.index_head_dim = probe_config.index_head_dim;
  LayerShape full{
      .has_indexer = true, .weight_dtype = backend->weight_dtype(), .cache = plan.geometry};
  LayerShape shared = full;
  shared.has_indexer = !mo.indexshare;
  const double layer_bytes =
      (LayerWeightBytes(probe_config, full) + LayerWeightBytes(probe_config, shared)) / 2;
  const double block_bytes = static_cast<double>(kvcache::LayerBytesPerBlock(plan.geometry));
  int64_t want_blocks = 1;
  double workspace = 0;  // the largest step's temporaries
  for (int64_t b : plan.batches) {
    for (int64_t ctx : plan.contexts) {
      want_blocks = std::max(want_blocks, DecodeBlocks(b, ctx));
      workspace = std::max(workspace, WorkspaceBytes(probe_config, b, ctx + 1));
    }
  }
  for (int64_t p : plan.prompts) {
    want_blocks = std::max(want_blocks, PrefillBlocks(p));
    workspace = std::max(workspace, WorkspaceBytes(probe_config, std::min(p, plan.chunk), p));
  }
  double reserve = absl::GetFlag(FLAGS_reserve_gb) * 1e9;
  if (reserve < 0) reserve = workspace;
  int layers = absl::GetFlag(FLAGS_layers);
  const double free_before = static_cast<double>(dev->FreeBytes());
  if (layers <= 0) {
    const double room = free_before - reserve - want_blocks * block_bytes;
    layers = std::clamp(static_cast<int>(room / layer_bytes), 1, kMaxLayers);
    if (room < layer_bytes) {
      std::printf(
          "note: even one layer leaves too little room for the largest case's cache; "
          "the cases that do not fit are skipped\n");
    }
  }
  mo.layers = layers;
  ASSIGN_OR_RETURN(ModelConfig config, BenchModelConfig(mo));
  std::printf(
      "model: %s-shaped, %d MoE layer(s)%s, %.2f GB of weights per layer; %.1f GB free "
      "before the weights, %.1f GB kept for workspaces\n",
      tiny ? "tiny GLM-5" : "GLM-5", layers, mo.indexshare ? " (IndexShare)" : "",
      layer_bytes / 1e9, free_before / 1e9, reserve / 1e9);

  // The model on the probe backend (it forwards everything; counts experts when armed).
  ProbeBackend probe(*backend);
  model::ModelWeights weights;  // a middle stage: no embedding, no head
  ASSIGN_OR_RETURN(weights.layers, RandomLayers(config, probe, *dev, seed));
  model::ModelOptions options;
  options.load.load_embedding = false;
  options.load.load_head = false;
  options.latent_cache = plan.geometry.latent_dtype;
  options.indexer_cache = plan.geometry.indexer_dtype;
  options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  ASSIGN_OR_RETURN(std::unique_ptr<model::Model> model,
                   model::Model::CreateFromWeights(config, weights, probe, options));

  // One layer's cache that every layer aliases, as large as the largest case wants or fits.
  const double free_after = static_cast<double>(dev->FreeBytes());
  const int64_t fit_blocks = static_cast<int64_t>((free_after - reserve) / block_bytes);
  const int64_t pool = std::max<int64_t>(1, std::min(want_blocks, fit_blocks));
  ASSIGN_OR_RETURN(model::KvCache cache,
                   model::KvCache::CreateAliased(probe, model->CacheGeometries(), pool));
  RETURN_IF_ERROR(FillCache(cache, *dev, seed + 17));
  std::printf(
      "cache: %lld blocks of 64 tokens (%.1f GB; latent %s, indexer %s), one set that "
      "every layer aliases: the same traffic per layer as separate caches, in one "
      "layer's memory\n\n",
      static_cast<long long>(pool), pool * block_bytes / 1e9, Name(plan.geometry.latent_dtype),
      Name(plan.geometry.indexer_dtype));

  BenchContext ctx;
  ctx.config = &config;
  ctx.model = model.get();
  ctx.cache = &cache;
  ctx.probe = &probe;
  ctx.device = dev.get();
  ctx.floors = floors;
  for (int i = 0; i < layers; ++i) {
    LayerShape s = full;
    s.has_indexer = config.indexer_types[i] == IndexerType::kFull;
    ctx.layers.push_back(s);
  }
  ctx.block_order.resize(pool);
  std::iota(ctx.block_order.begin(), ctx.block_order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(ctx.block_order.begin(), ctx.block_order.end(), rng);
  ctx.warmup = std::max(0, absl::GetFlag(FLAGS_warmup));
  ctx.decode_runs = std::max(1, absl::GetFlag(FLAGS_runs));
  ctx.prefill_runs = std::max(1, absl::GetFlag(FLAGS_prefill_runs));
  ctx.breakdown = absl::GetFlag(FLAGS_breakdown);
  if (ctx.breakdown && options.cuda_graphs && !device.is_cpu()) {
    std::printf(
        "note: --breakdown needs --cuda_graphs=false (replayed steps run no timed op); "
        "no breakdown this run\n");
    ctx.breakdown = false;
  }
  ctx.seed = seed;

  std::printf("per layer: %-17s %9s %9s %9s %9s %7s %8s %7s\n", "", "ms", "bw_floor", "flop_flr",
              "floor", "%floor", "GB", "experts");
  const double max_seconds = absl::GetFlag(FLAGS_max_seconds);
  auto out_of_time = [&] {
    return max_seconds > 0 &&
           std::chrono::duration<double>(Clock::now() - start).count() > max_seconds;
  };
  std::vector<CaseResult> results;
  auto record = [&](CaseResult r) {
    PrintRow(r, floors, layers);
    results.push_back(std::move(r));
  };
  for (int64_t ctx_len : plan.contexts) {
    for (int64_t b : plan.batches) {
      CaseResult r;
      if (out_of_time()) {
        r.kind = "decode", r.batch = b, r.context = ctx_len, r.status = "skipped";
        r.reason = absl::StrCat("--max-seconds ", max_seconds, " reached");
        record(std::move(r));
        continue;
      }
      record(RunDecodeCase(ctx, b, ctx_len));
    }
  }
  for (int64_t p : plan.prompts) {
    CaseResult r;
    if (out_of_time()) {
      r.kind = "prefill", r.batch = 1, r.prompt = p, r.chunk = std::min(p, plan.chunk);
      r.status = "skipped";
      r.reason = absl::StrCat("--max-seconds ", max_seconds, " reached");
      record(std::move(r));
      continue;
    }
    record(RunPrefillCase(ctx, p, plan.chunk));
  }

  const model::GraphStats& g = model->graph_stats();
  std::printf(
      "\ncuda graphs %s: %lld steps replayed, %lld captures (%lld failed), %lld bucket "
      "warm-ups, %lld eager steps\n",
      options.cuda_graphs ? "on" : "off", static_cast<long long>(g.replays),
      static_cast<long long>(g.captures), static_cast<long long>(g.failed_captures),
      static_cast<long long>(g.warmup_steps), static_cast<long long>(g.eager_steps));
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (json_path.empty()) return absl::OkStatus();
  nlohmann::json out;
  out["cuda_graphs"] = {{"enabled", options.cuda_graphs}, {"replays", g.replays},
                        {"captures", g.captures},         {"failed_captures", g.failed_captures},
                        {"warmup_steps", g.warmup_steps}, {"eager_steps", g.eager_steps}};
  out["device"] = dev->Describe();
  out["backend"] = {{"device", device.ToString()},
                    {"weight_dtype", std::string(DTypeName(backend->weight_dtype()))},
                    {"activation_dtype", std::string(DTypeName(backend->activation_dtype()))}};
  out["floors"] = floors.detail;
  out["floors"]["copy_gbps"] = floors.copy_gbps;
  out["floors"]["matrix_tflops"] = floors.matrix_tflops;
  out["floors"]["matrix_source"] = floors.matrix_source;
  out["model"] = {{"shape", tiny ? "tiny" : "glm5"},
                  {"layers", layers},
                  {"indexshare", mo.indexshare},
                  {"layer_weight_bytes", layer_bytes},
                  {"latent_cache", Name(plan.geometry.latent_dtype)},
                  {"indexer_cache", Name(plan.geometry.indexer_dtype)},
                  {"cache_blocks", pool},
                  {"cache_bytes", pool * block_bytes},
                  {"cache_aliased_across_layers", true}};
  out["kernel_counts"] = dev->KernelCounts();
  out["cases"] = nlohmann::json::array();
  for (const CaseResult& r : results) out["cases"].push_back(CaseJson(r, floors, layers));
  std::ofstream f(json_path);
  f << out.dump(2) << "\n";
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", json_path));
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "strata-model-bench [--device cuda:0|cpu] [--tiny] [--layers N] [--indexshare] "
      "[--batches L] [--contexts L] [--prefill L|none] [--prefill-chunk N] [--json FILE]");
  std::vector<std::string> args = strata::NormalizeFlagNames(argc, argv);
  std::vector<char*> ptrs = strata::ArgvPointers(args);
  absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  if (absl::Status s = strata::bench::Run(); !s.ok()) {
    std::fprintf(stderr, "strata-model-bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
