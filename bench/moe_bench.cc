// MoE kernels at GLM-5 width (hidden 6144, moe_intermediate 2048, 256 experts, top-8):
//   moe_experts_decode   the routed experts' FFN at 1–64 tokens (memory-bound: the weights of the
//                        distinct experts the batch touches, read once)
//   moe_experts_prefill  4096 tokens (all 256 experts touched; floor = max(weights once, flops))
//   moe_routing          router top-8 of 256 at 1–64 tokens, GLM-5 (1 group) and DeepSeek-V3.2
//                        (8 groups, keep 4)
// Routing for the FFN cases: 8 distinct uniformly random experts per token (fixed seed).
// Work: bytes = distinct experts × 3 · H · I · 2 + x and y rows (bf16) + ids and weights;
// flops = 2 · T · K · 3 · H · I.
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench.h"
#include "common/cuda_status.h"
#include "common/status.h"
#include "kernels/cuda/moe.h"

namespace strata::bench {
namespace {

constexpr int64_t kHidden = 6144, kInter = 2048, kExperts = 256, kTopK = 8;

template <typename T>
absl::Status Upload(DeviceBuffer& buf, const std::vector<T>& host, cudaStream_t stream) {
  RETURN_IF_ERROR(buf.Allocate(static_cast<int64_t>(host.size() * sizeof(T))));
  return CudaStatus(cudaMemcpyAsync(buf.get(), host.data(), host.size() * sizeof(T),
                                    cudaMemcpyHostToDevice, stream),
                    "upload");
}

class ExpertsCase : public Case {
 public:
  explicit ExpertsCase(int64_t tokens, int tile_rows = 0)
      : tokens_(tokens), tile_rows_(tile_rows) {}

  absl::Status Setup(const Env& env) override {
    // Routing: K distinct random experts per token.
    std::mt19937 rng(static_cast<uint32_t>(tokens_));
    std::vector<int32_t> ids(tokens_ * kTopK), perm(kExperts);
    std::vector<float> w(tokens_ * kTopK);
    std::uniform_real_distribution<float> wd(0.05f, 0.4f);
    std::set<int32_t> used;
    for (int64_t t = 0; t < tokens_; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      for (int64_t k = 0; k < kTopK; ++k) {
        std::swap(perm[k], perm[k + rng() % (kExperts - k)]);
        ids[t * kTopK + k] = perm[k];
        w[t * kTopK + k] = wd(rng);
        used.insert(perm[k]);
      }
    }
    distinct_ = static_cast<int64_t>(used.size());
    // Every expert gets weights (as on a real layer); untouched ones are never read.
    const int64_t matrix = kHidden * kInter;
    RETURN_IF_ERROR(weights_.Allocate(kExperts * 3 * matrix * 2));
    CUDA_RETURN_IF_ERROR(
        FillUniformBF16(weights_.get(), kExperts * 3 * matrix, 31, -0.03f, 0.03f, env.stream));
    std::vector<const uint16_t*> gate(kExperts), up(kExperts), down(kExperts);
    for (int64_t e = 0; e < kExperts; ++e) {
      const uint16_t* base = weights_.as<uint16_t>() + e * 3 * matrix;
      gate[e] = base;
      up[e] = base + matrix;
      down[e] = base + 2 * matrix;
    }
    RETURN_IF_ERROR(Upload(gate_, gate, env.stream));
    RETURN_IF_ERROR(Upload(up_, up, env.stream));
    RETURN_IF_ERROR(Upload(down_, down, env.stream));
    RETURN_IF_ERROR(Upload(ids_, ids, env.stream));
    RETURN_IF_ERROR(Upload(w_, w, env.stream));
    RETURN_IF_ERROR(x_.Allocate(tokens_ * kHidden * 2));
    CUDA_RETURN_IF_ERROR(FillUniformBF16(x_.get(), tokens_ * kHidden, 32, -1, 1, env.stream));
    RETURN_IF_ERROR(y_.Allocate(tokens_ * kHidden * 2));
    ws_bytes_ = kernels::MoeExpertsWorkspaceBytes(tokens_, kTopK, kExperts, kHidden, kInter);
    RETURN_IF_ERROR(ws_.Allocate(static_cast<int64_t>(ws_bytes_)));
    return CudaStatus(cudaStreamSynchronize(env.stream), "experts setup");
  }

  cudaError_t Run(cudaStream_t stream, int /*iteration*/) override {
    return kernels::MoeExpertsCuda({.num_tokens = tokens_,
                                    .hidden = kHidden,
                                    .inter = kInter,
                                    .num_experts = kExperts,
                                    .top_k = kTopK,
                                    .x = x_.as<uint16_t>(),
                                    .expert_ids = ids_.as<int32_t>(),
                                    .weights = w_.as<float>(),
                                    .gate = gate_.as<const uint16_t*>(),
                                    .up = up_.as<const uint16_t*>(),
                                    .down = down_.as<const uint16_t*>(),
                                    .y = y_.as<uint16_t>()},
                                   ws_.get(), ws_bytes_, stream, tile_rows_);
  }

  Work GetWork() const override {
    const double t = static_cast<double>(tokens_);
    return {.bytes = distinct_ * 3.0 * kHidden * kInter * 2 + 2.0 * t * kHidden * 2 + t * kTopK * 8,
            .flops = 2.0 * t * kTopK * 3 * kHidden * kInter};
  }

 private:
  int64_t tokens_;
  int tile_rows_;
  int64_t distinct_ = 0;
  size_t ws_bytes_ = 0;
  DeviceBuffer weights_, gate_, up_, down_, ids_, w_, x_, y_, ws_;
};

class RoutingCase : public Case {
 public:
  RoutingCase(int64_t tokens, int64_t n_group, int64_t topk_group)
      : tokens_(tokens), n_group_(n_group), topk_group_(topk_group) {}

  absl::Status Setup(const Env& env) override {
    sets_ = RotationSets(env, tokens_ * kExperts * 4, 64);
    RETURN_IF_ERROR(logits_.Allocate(sets_ * tokens_ * kExperts * 4));
    CUDA_RETURN_IF_ERROR(
        FillUniformF32(logits_.as<float>(), sets_ * tokens_ * kExperts, 41, -4, 4, env.stream));
    RETURN_IF_ERROR(bias_.Allocate(kExperts * 4));
    CUDA_RETURN_IF_ERROR(FillUniformF32(bias_.as<float>(), kExperts, 42, -0.1f, 0.1f, env.stream));
    RETURN_IF_ERROR(ids_.Allocate(tokens_ * kTopK * 4));
    RETURN_IF_ERROR(w_.Allocate(tokens_ * kTopK * 4));
    return CudaStatus(cudaStreamSynchronize(env.stream), "routing setup");
  }

  cudaError_t Run(cudaStream_t stream, int iteration) override {
    return kernels::MoeRoutingCuda(
        {.num_tokens = tokens_,
         .num_experts = kExperts,
         .n_group = n_group_,
         .topk_group = topk_group_,
         .top_k = kTopK,
         .norm_topk_prob = true,
         .routed_scaling_factor = 2.5f,
         .logits = logits_.as<float>() + (iteration % sets_) * tokens_ * kExperts,
         .correction_bias = bias_.as<float>(),
         .expert_ids = ids_.as<int32_t>(),
         .weights = w_.as<float>()},
        stream);
  }

  Work GetWork() const override {
    return {.bytes = tokens_ * kExperts * 4.0 + kExperts * 4.0 + tokens_ * kTopK * 8.0, .flops = 0};
  }

 private:
  int64_t tokens_, n_group_, topk_group_;
  int sets_ = 1;
  DeviceBuffer logits_, bias_, ids_, w_;
};

STRATA_BENCH_CASES(RegisterMoeCases) {
  for (const int64_t t : {1, 8, 32, 64}) {
    registry->Add({.kernel = "moe_experts_decode",
                   .name = absl::StrCat("glm5 T", t, " top8/256"),
                   .shape = {{"tokens", t}, {"hidden", kHidden}, {"inter", kInter}},
                   .make = [t] { return std::make_unique<ExpertsCase>(t); }});
  }
  // The automatic tile and each prefill tile forced (the choice's evidence).
  for (const int tile : {0, 64, 128}) {
    registry->Add(
        {.kernel = "moe_experts_prefill",
         .name = tile == 0 ? std::string("glm5 T4096 top8/256")
                           : absl::StrCat("glm5 T4096 top8/256 tile", tile),
         .shape = {{"tokens", 4096}, {"hidden", kHidden}, {"inter", kInter}, {"tile_rows", tile}},
         .make = [tile] { return std::make_unique<ExpertsCase>(4096, tile); }});
  }
  for (const int64_t t : {1, 8, 32, 64}) {
    for (const auto& [model, groups, keep] :
         {std::tuple<const char*, int64_t, int64_t>{"glm5", 1, 1}, {"dsv32", 8, 4}}) {
      registry->Add({.kernel = "moe_routing",
                     .name = absl::StrCat(model, " T", t, " top8/256 groups ", groups, "/", keep),
                     .shape = {{"tokens", t}, {"n_group", groups}, {"topk_group", keep}},
                     .make = [t, groups = groups, keep = keep] {
                       return std::make_unique<RoutingCase>(t, groups, keep);
                     }});
    }
  }
}

}  // namespace
}  // namespace strata::bench
