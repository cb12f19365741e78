// Sparse MLA decode and prefill at GLM-5 and DeepSeek-V3.2 shapes (L = 512, R = 64, top-k 2048).
//
// Decode: every token is its own sequence with a context of `ctx` tokens; its 2048 slots are
// distinct and random within its own region of the pool, so a batch gathers T · 2048 distinct
// rows (the floor counts each once, plus q and out). Runs rotate among slot sets whose regions are
// disjoint, so consecutive runs do not find each other's rows in L2.
// Prefill: T tokens of one sequence, each with 2048 random distinct slots among the sequence's
// `ctx` tokens; the floor counts each distinct row once (the rows are shared between tokens, which
// is where L2 reuse comes from) and is matrix-bound.
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/sparse_mla.h"
#include "kvcache/layout.h"

namespace strata::bench {
namespace {

using kernels::SparseMlaPlan;
using kvcache::LatentCacheDType;

constexpr int kL = 512, kR = 64, kD = kL + kR, kTopk = 2048;
constexpr int64_t kMaxPoolBytes = int64_t{24} << 30;

struct Shape {
  std::string model;  // "glm5_tp1", ...
  int heads = 0;
  int tokens = 0;
  int ctx = 0;
  bool prefill = false;
  LatentCacheDType dtype = LatentCacheDType::kBF16;
  int heads_per_cta = 0, stages = 0, splits = 0;  // plan overrides for sweeps (0: the plan's)
};

// K distinct values in [0, n), K <= n.
void SampleDistinct(std::mt19937_64& rng, int n, int k, int64_t base, int32_t* out,
                    std::vector<char>* seen) {
  seen->assign(n, 0);
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (int i = 0; i < k;) {
    const int v = pick(rng);
    if ((*seen)[v]) continue;
    (*seen)[v] = 1;
    out[i++] = static_cast<int32_t>(base + v);
  }
}

class SparseMlaCase : public Case {
 public:
  explicit SparseMlaCase(Shape s) : s_(std::move(s)) {}

  absl::Status Setup(const Env& env) override {
    const int T = s_.tokens, nH = s_.heads;
    row_bytes_ = kvcache::LatentRowBytes(s_.dtype, kL, kR);
    ASSIGN_OR_RETURN(const kernels::CudaDeviceLimits limits,
                     kernels::QueryCudaDeviceLimits(env.device));
    ASSIGN_OR_RETURN(plan_, kernels::PlanSparseMla({.max_tokens = T,
                                                    .num_heads = nH,
                                                    .topk = kTopk,
                                                    .cache_dtype = s_.dtype,
                                                    .device = limits,
                                                    .num_splits = s_.splits,
                                                    .heads_per_cta = s_.heads_per_cta,
                                                    .stages = s_.stages}));
    // Pool: decode gives every (set, token) its own ctx-token region; prefill shares one.
    const int64_t gathered = int64_t{T} * kTopk * row_bytes_;
    sets_ = s_.prefill ? 1 : RotationSets(env, gathered, 64);
    int64_t regions = s_.prefill ? 1 : int64_t{sets_} * T;
    while (regions * s_.ctx * row_bytes_ > kMaxPoolBytes && sets_ > 1) regions = --sets_ * T;
    const int64_t pool_tokens = regions * s_.ctx;
    num_blocks_ = (pool_tokens + 63) / 64;
    RETURN_IF_ERROR(pool_.Allocate(num_blocks_ * 64 * row_bytes_));
    if (s_.dtype == LatentCacheDType::kBF16) {
      CUDA_RETURN_IF_ERROR(
          FillUniformBF16(pool_.get(), pool_.bytes() / 2, 11, -1.0f, 1.0f, env.stream));
    } else {
      // Random finite fp8 bytes, then every row's four fp32 scales set to bytes 0x3b (≈ 0.0029).
      CUDA_RETURN_IF_ERROR(FillRandomF8E4M3(pool_.get(), pool_.bytes(), 12, env.stream));
      CUDA_RETURN_IF_ERROR(
          cudaMemset2DAsync(pool_.as<uint8_t>() + kvcache::LatentF8ScalesOffset(kL), row_bytes_,
                            0x3b, 16, num_blocks_ * 64, env.stream));
    }
    // Slots.
    std::mt19937_64 rng(1234);
    std::vector<int32_t> slots(static_cast<size_t>(sets_) * T * kTopk);
    std::vector<char> seen;
    std::vector<char> touched(s_.prefill ? s_.ctx : 0, 0);
    for (int r = 0; r < sets_; ++r) {
      for (int t = 0; t < T; ++t) {
        const int64_t region = s_.prefill ? 0 : int64_t{r} * T + t;
        int32_t* row = &slots[(int64_t{r} * T + t) * kTopk];
        SampleDistinct(rng, s_.ctx, kTopk, region * s_.ctx, row, &seen);
        if (s_.prefill) {
          for (int i = 0; i < kTopk; ++i) touched[row[i]] = 1;
        }
      }
    }
    distinct_rows_ =
        s_.prefill ? std::count(touched.begin(), touched.end(), 1) : int64_t{T} * kTopk;
    RETURN_IF_ERROR(slots_.Allocate(static_cast<int64_t>(slots.size()) * 4));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(slots_.get(), slots.data(), slots.size() * 4,
                                         cudaMemcpyHostToDevice, env.stream));
    RETURN_IF_ERROR(q_.Allocate(int64_t{T} * nH * kD * 2));
    CUDA_RETURN_IF_ERROR(
        FillUniformBF16(q_.get(), int64_t{T} * nH * kD, 13, -1.0f, 1.0f, env.stream));
    RETURN_IF_ERROR(out_.Allocate(int64_t{T} * nH * kL * 2));
    RETURN_IF_ERROR(lse_.Allocate(int64_t{T} * nH * 4));
    RETURN_IF_ERROR(workspace_.Allocate(plan_.workspace_bytes));
    return CudaStatus(cudaStreamSynchronize(env.stream), "sparse_mla bench setup");
  }

  cudaError_t Run(cudaStream_t stream, int iteration) override {
    const int T = s_.tokens, nH = s_.heads;
    const kernels::SparseMlaCudaParams p{
        .num_tokens = T,
        .num_heads = nH,
        .topk = kTopk,
        .scale = 0.0625f,
        .q = q_.get(),
        .q_token_stride = int64_t{nH} * kD,
        .q_head_stride = kD,
        .slots = slots_.as<int32_t>() + int64_t{iteration % sets_} * T * kTopk,
        .slots_token_stride = kTopk,
        .cache = {.num_blocks = num_blocks_,
                  .kv_lora_rank = kL,
                  .rope_dim = kR,
                  .dtype = s_.dtype,
                  .block_stride = 64 * row_bytes_,
                  .data = pool_.get()},
        .out = out_.get(),
        .out_token_stride = int64_t{nH} * kL,
        .out_head_stride = kL,
        .lse = lse_.as<float>(),
        .lse_token_stride = nH};
    return kernels::SparseMlaCuda(p, plan_, workspace_.get(), stream);
  }

  Work GetWork() const override {
    const double T = s_.tokens, nH = s_.heads;
    return {.bytes = distinct_rows_ * static_cast<double>(row_bytes_) + T * nH * (kD + kL) * 2 +
                     T * nH * 4,
            .flops = 2.0 * T * nH * kTopk * (kD + kL)};
  }

 private:
  Shape s_;
  SparseMlaPlan plan_;
  int64_t row_bytes_ = 0, num_blocks_ = 0, distinct_rows_ = 0;
  int sets_ = 1;
  DeviceBuffer pool_, slots_, q_, out_, lse_, workspace_;
};

std::string CtxName(int ctx) { return absl::StrCat(ctx / 1024, "K"); }

void Add(Registry* registry, const Shape& s, const std::string& suffix = "") {
  const std::string name =
      absl::StrCat(s.model, " h", s.heads, s.prefill ? " T" : " b", s.tokens, " ctx",
                   CtxName(s.ctx), s.dtype == LatentCacheDType::kF8 ? " fp8" : "", suffix);
  registry->Add({.kernel = s.prefill ? "sparse_mla_prefill" : "sparse_mla_decode",
                 .name = name,
                 .shape = {{"heads", s.heads},
                           {"tokens", s.tokens},
                           {"ctx", s.ctx},
                           {"topk", kTopk},
                           {"fp8", s.dtype == LatentCacheDType::kF8},
                           {"heads_per_cta", s.heads_per_cta},
                           {"stages", s.stages},
                           {"splits", s.splits}},
                 .make = [s] { return std::make_unique<SparseMlaCase>(s); }});
}

STRATA_BENCH_CASES(RegisterSparseMlaCases) {
  const struct {
    const char* model;
    int heads;
  } kModels[] = {{"glm5_tp8", 8}, {"dsv32_tp8", 16}, {"glm5_tp1", 64}, {"dsv32_tp1", 128}};
  for (const auto& m : kModels) {
    for (const int ctx : {4096, 131072}) {
      for (const int batch : {1, 8, 32, 64, 128}) {
        Add(registry, {.model = m.model, .heads = m.heads, .tokens = batch, .ctx = ctx});
      }
    }
    Add(registry, {.model = m.model,
                   .heads = m.heads,
                   .tokens = 64,
                   .ctx = 131072,
                   .dtype = LatentCacheDType::kF8});
  }
  for (const auto& m : kModels) {
    for (const int ctx : {16384, 131072}) {
      Add(registry,
          {.model = m.model, .heads = m.heads, .tokens = 4096, .ctx = ctx, .prefill = true});
    }
  }
  // Sweeps of the plan's choices, to check them against the alternatives on the device.
  for (const int stages : {2, 3, 4}) {
    Add(registry, {.model = "glm5_tp8", .heads = 8, .tokens = 128, .ctx = 131072, .stages = stages},
        absl::StrCat(" st", stages));
  }
  // The split count at small and middle batches (decode is latency-bound there).
  for (const auto& [batch, splits] : std::initializer_list<std::pair<int, int>>{{1, 16},
                                                                                {1, 32},
                                                                                {8, 16},
                                                                                {8, 64},
                                                                                {32, 4},
                                                                                {32, 16},
                                                                                {32, 32},
                                                                                {64, 8},
                                                                                {64, 16},
                                                                                {128, 4}}) {
    Add(registry,
        {.model = "glm5_tp8", .heads = 8, .tokens = batch, .ctx = 131072, .splits = splits},
        absl::StrCat(" s", splits));
  }
  for (const int stages : {2, 3}) {
    const std::string suffix = absl::StrCat(" st", stages);
    Add(registry,
        {.model = "glm5_tp1", .heads = 64, .tokens = 128, .ctx = 131072, .stages = stages}, suffix);
    Add(registry,
        {.model = "glm5_tp1",
         .heads = 64,
         .tokens = 4096,
         .ctx = 16384,
         .prefill = true,
         .stages = stages},
        suffix);
  }
}

}  // namespace
}  // namespace strata::bench
