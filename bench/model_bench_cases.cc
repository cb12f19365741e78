#include "bench/model_bench_cases.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace strata::bench {
namespace {

using model::StepInput;

// Runs `steps` in order (one pass = one decode step, or a prompt's chunks): first once with the
// routing probe armed (untimed; counts[step][layer] = distinct experts), then `warmup` passes,
// then `runs` timed passes. Each step starts from the same random hidden states; the time of a
// pass is the sum of its steps' Forward times.
absl::Status Execute(BenchContext& ctx, std::vector<StepInput>& steps, int runs, CaseResult& r,
                     std::vector<std::vector<int>>& counts) {
  model::Backend& b = *ctx.probe;
  BenchDevice& dev = *ctx.device;
  const int64_t h = ctx.config->hidden_size;
  std::vector<Tensor> pristine(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t t = static_cast<int64_t>(steps[i].positions.size());
    ASSIGN_OR_RETURN(pristine[i], b.NewTensor(DType::kF32, {t, h}));
    RETURN_IF_ERROR(dev.FillUniform(pristine[i], ctx.seed + 7919 * (i + 1), -1.0f, 1.0f));
    ASSIGN_OR_RETURN(steps[i].hidden, b.NewTensor(DType::kF32, {t, h}));
  }
  RETURN_IF_ERROR(dev.Synchronize());
  Tensor out;
  auto forward = [&](size_t i) -> absl::Status {
    ASSIGN_OR_RETURN(out, ctx.model->Forward(steps[i], *ctx.cache));
    return absl::OkStatus();
  };

  counts.clear();
  for (size_t i = 0; i < steps.size(); ++i) {
    RETURN_IF_ERROR(b.Copy(pristine[i], steps[i].hidden));
    ctx.probe->ArmRouting(true);
    const absl::Status s = forward(i);
    ctx.probe->ArmRouting(false);
    RETURN_IF_ERROR(s) << "routing probe step";
    counts.push_back(ctx.probe->distinct());
  }

  std::vector<double> ms;
  for (int pass = 0; pass < ctx.warmup + runs; ++pass) {
    double total = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      RETURN_IF_ERROR(b.Copy(pristine[i], steps[i].hidden));  // untimed: TimeMs syncs first
      ASSIGN_OR_RETURN(const double step_ms, dev.TimeMs([&] { return forward(i); }));
      total += step_ms;
    }
    if (pass >= ctx.warmup) ms.push_back(total);
  }
  std::sort(ms.begin(), ms.end());
  r.runs = runs;
  r.median_ms = ms[ms.size() / 2];
  r.min_ms = ms.front();

  ASSIGN_OR_RETURN(Tensor host, b.Download(out));
  const float* p = host.data<float>();
  r.finite = std::all_of(p, p + host.numel(), [](float v) { return std::isfinite(v); });

  if (!ctx.breakdown) return absl::OkStatus();
  const double layers = static_cast<double>(ctx.layers.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    RETURN_IF_ERROR(b.Copy(pristine[i], steps[i].hidden));
    ctx.probe->ArmTiming(
        [&dev](const std::function<absl::Status()>& fn) { return dev.TimeMs(fn); });
    const absl::StatusOr<double> step_ms = dev.TimeMs([&] { return forward(i); });
    ctx.probe->ArmTiming(nullptr);
    RETURN_IF_ERROR(step_ms.status()) << "breakdown step";
    r.breakdown_ms += *step_ms / layers;
    for (const auto& [name, op] : ctx.probe->op_ms()) r.op_ms[name] += op / layers;
  }
  return absl::OkStatus();
}

// Distinct experts layer `l` of step `step` touched: the probe's count when it has one for every
// MoE layer, else the expectation for random routing.
double Experts(const std::vector<std::vector<int>>& counts, size_t step, size_t l, size_t layers,
               double expected) {
  if (step < counts.size() && counts[step].size() == layers) return counts[step][l];
  return expected;
}

CaseResult Skipped(CaseResult r, std::string reason) {
  r.status = "skipped";
  r.reason = std::move(reason);
  return r;
}

}  // namespace

double CaseResult::bandwidth_floor_ms(const DeviceFloors& f) const {
  return f.copy_gbps > 0 ? work.bytes() / (f.copy_gbps * 1e9) * 1e3 : 0;
}
double CaseResult::flop_floor_ms(const DeviceFloors& f) const {
  return f.matrix_tflops > 0 ? work.flops / (f.matrix_tflops * 1e12) * 1e3 : 0;
}
double CaseResult::floor_ms(const DeviceFloors& f) const {
  return std::max(bandwidth_floor_ms(f), flop_floor_ms(f));
}

int64_t DecodeBlocks(int64_t batch, int64_t context) {
  return batch * (context / kvcache::kBlockTokens + 1);
}

int64_t PrefillBlocks(int64_t prompt) {
  return (prompt + kvcache::kBlockTokens - 1) / kvcache::kBlockTokens;
}

CaseResult RunDecodeCase(BenchContext& ctx, int64_t batch, int64_t context) {
  CaseResult r;
  r.kind = "decode";
  r.batch = batch;
  r.context = context;
  const ModelConfig& c = *ctx.config;
  const int64_t blocks = DecodeBlocks(batch, context), pool = ctx.cache->num_blocks();
  if (context + 1 > c.max_position_embeddings) {
    return Skipped(r, absl::StrCat("position ", context, " is past max_position_embeddings"));
  }
  if (blocks > pool) {
    const double gb = static_cast<double>(blocks) *
                      kvcache::LayerBytesPerBlock(ctx.cache->layer(0).geometry) / 1e9;
    return Skipped(
        r, absl::StrFormat("needs %d cache blocks (%.1f GB), the pool holds %d", blocks, gb, pool));
  }
  StepInput in;
  in.num_seqs = static_cast<int>(batch);
  in.max_blocks = static_cast<int>(context / kvcache::kBlockTokens + 1);
  // Row s of the table is sequence s's blocks: a slice of a random permutation of the pool, so
  // every sequence's blocks are distinct and scattered.
  in.block_tables.assign(ctx.block_order.begin(), ctx.block_order.begin() + blocks);
  in.positions.assign(batch, context);
  in.token_seq.resize(batch);
  std::iota(in.token_seq.begin(), in.token_seq.end(), 0);
  std::vector<StepInput> steps = {std::move(in)};
  std::vector<std::vector<int>> counts;
  if (absl::Status s = Execute(ctx, steps, ctx.decode_runs, r, counts); !s.ok()) {
    r.status = "error";
    r.reason = s.ToString();
    return r;
  }
  const size_t n = ctx.layers.size();
  r.experts_expected = ExpectedDistinctExperts(c, batch);
  for (size_t l = 0; l < n; ++l) {
    const double experts = Experts(counts, 0, l, n, r.experts_expected);
    r.experts_counted += experts / n;
    LayerWork w = DecodeLayerWork(c, ctx.layers[l], batch, context, experts);
    w.weight_bytes /= n, w.cache_bytes /= n, w.write_bytes /= n, w.flops /= n;
    r.work += w;
  }
  return r;
}

CaseResult RunPrefillCase(BenchContext& ctx, int64_t prompt, int64_t chunk) {
  CaseResult r;
  r.kind = "prefill";
  r.batch = 1;
  r.prompt = prompt;
  r.chunk = std::min(chunk, prompt);
  const ModelConfig& c = *ctx.config;
  const int64_t blocks = PrefillBlocks(prompt), pool = ctx.cache->num_blocks();
  if (prompt > c.max_position_embeddings) {
    return Skipped(r, absl::StrCat("prompt ", prompt, " is past max_position_embeddings"));
  }
  if (blocks > pool) {
    return Skipped(r, absl::StrCat("needs ", blocks, " cache blocks, the pool holds ", pool));
  }
  std::vector<StepInput> steps;
  for (int64_t begin = 0; begin < prompt; begin += r.chunk) {
    const int64_t t = std::min(r.chunk, prompt - begin);
    StepInput in;
    in.num_seqs = 1;
    in.max_blocks = static_cast<int>(blocks);
    in.block_tables.assign(ctx.block_order.begin(), ctx.block_order.begin() + blocks);
    in.positions.resize(t);
    std::iota(in.positions.begin(), in.positions.end(), begin);
    in.token_seq.assign(t, 0);
    steps.push_back(std::move(in));
  }
  std::vector<std::vector<int>> counts;
  if (absl::Status s = Execute(ctx, steps, ctx.prefill_runs, r, counts); !s.ok()) {
    r.status = "error";
    r.reason = s.ToString();
    return r;
  }
  const size_t n = ctx.layers.size();
  for (size_t i = 0; i < steps.size(); ++i) {
    const int64_t begin = steps[i].positions.front();
    const int64_t t = static_cast<int64_t>(steps[i].positions.size());
    const double expected = ExpectedDistinctExperts(c, t);
    r.experts_expected += expected / steps.size();
    for (size_t l = 0; l < n; ++l) {
      const double experts = Experts(counts, i, l, n, expected);
      r.experts_counted += experts / (n * steps.size());
      LayerWork w = PrefillLayerWork(c, ctx.layers[l], begin, t, experts);
      w.weight_bytes /= n, w.cache_bytes /= n, w.write_bytes /= n, w.flops /= n;
      r.work += w;
    }
  }
  return r;
}

nlohmann::json CaseJson(const CaseResult& r, const DeviceFloors& f, int layers) {
  nlohmann::json j = {{"kind", r.kind}, {"batch", r.batch}, {"status", r.status}};
  if (r.kind == "decode") {
    j["context"] = r.context;
  } else {
    j["prompt"] = r.prompt;
    j["chunk"] = r.chunk;
  }
  if (r.status != "ok") {
    j["reason"] = r.reason;
    return j;
  }
  const double per_layer = r.per_layer_ms(layers), floor = r.floor_ms(f);
  j.update({{"runs", r.runs},
            {"median_ms", r.median_ms},
            {"min_ms", r.min_ms},
            {"per_layer_ms", per_layer},
            {"experts_counted", r.experts_counted},
            {"experts_expected", r.experts_expected},
            {"per_layer_bytes",
             {{"weights", r.work.weight_bytes},
              {"cache", r.work.cache_bytes},
              {"writes", r.work.write_bytes},
              {"total", r.work.bytes()}}},
            {"per_layer_flops", r.work.flops},
            {"bandwidth_floor_ms", r.bandwidth_floor_ms(f)},
            {"flop_floor_ms", r.flop_floor_ms(f)},
            {"floor_ms", floor},
            {"floor_fraction", per_layer > 0 ? floor / per_layer : 0.0},
            {"finite_output", r.finite}});
  if (!r.op_ms.empty()) {
    j["breakdown_per_layer_ms"] = r.op_ms;
    j["breakdown_pass_per_layer_ms"] = r.breakdown_ms;
  }
  if (r.kind == "prefill") {
    j["tokens_per_s_per_layer"] = per_layer > 0 ? r.prompt / (per_layer * 1e-3) : 0.0;
    j["floor_tokens_per_s_per_layer"] = floor > 0 ? r.prompt / (floor * 1e-3) : 0.0;
  }
  return j;
}

}  // namespace strata::bench
