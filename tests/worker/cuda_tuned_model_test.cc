// A small model with the attention shapes of the real ones — kv_lora_rank 512, qk_rope_head_dim
// 64, an indexer of 32 heads × 128 — built here with random weights, so that the CUDA backend
// runs its tuned sparse MLA and indexer kernels; held against the fp32 CPU backend. The MLPs are
// dense and the prompts stay within index_topk, so both paths make the same discrete choices
// (attended positions, no expert routing) and the logits must agree within the bf16 tolerance
// everywhere. (With random MoE routers a near-tie between experts flips one token's expert and
// moves its logits by more; the oracle fixtures and the shipped model cover MoE.)
#include <cmath>
#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/test_files.h"
#include "tests/worker/bf16_compare.h"
#include "tests/worker/oracle_fixture.h"
#include "worker/local_runner.h"
#include "worker/model/cuda_backend.h"

namespace strata {
namespace {

using testing_util::CompareLogits;
using testing_util::kBf16LogitRelTol;
using testing_util::kFp8CacheLogitRelTol;
using testing_util::LogitStats;

// The glm oracle config with real attention widths (2 dense layers, full + shared indexer).
nlohmann::json TunedConfig() {
  std::ifstream in(testing_util::SourceDir() + "/tests/fixtures/oracle/glm/config.json");
  nlohmann::json c = nlohmann::json::parse(in);
  c["num_hidden_layers"] = 2;
  c["indexer_types"] = {"full", "shared"};
  c["mlp_layer_types"] = {"dense", "dense"};
  c["first_k_dense_replace"] = 2;
  c["layer_types"] = {"deepseek_sparse_attention", "deepseek_sparse_attention"};
  c["kv_lora_rank"] = 512;
  c["qk_rope_head_dim"] = 64;
  c["head_dim"] = 64;
  c["qk_nope_head_dim"] = 64;
  c["qk_head_dim"] = 128;
  c["v_head_dim"] = 64;
  c["num_attention_heads"] = 16;
  c["num_key_value_heads"] = 16;
  c["index_n_heads"] = 32;
  c["index_head_dim"] = 128;
  c["index_topk"] = 96;
  c["n_routed_experts"] = 4;
  c["n_group"] = 1;
  return c;
}

// Random weights with unit-variance activations: matrices N(0, 1/fan_in), norm weights near 1.
void WriteRandomCheckpoint(const ModelConfig& c, const std::string& dir) {
  std::mt19937 rng(2024);
  std::vector<std::pair<std::string, Tensor>> tensors;
  auto add = [&](const std::string& name, Shape shape, float stddev, float mean = 0.0f) {
    Tensor t = Tensor::Zeros(DType::kF32, shape);
    std::normal_distribution<float> n(mean, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
    tensors.emplace_back(name, t);
  };
  auto matrix = [&](const std::string& name, int64_t out, int64_t in) {
    add(name, {out, in}, 1.0f / std::sqrt(static_cast<float>(in)));
  };
  auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 0.1f, 1.0f); };
  const int64_t h = c.hidden_size, nh = c.num_attention_heads, p = c.qk_nope_head_dim,
                r = c.qk_rope_head_dim, v = c.v_head_dim, l = c.kv_lora_rank, ql = c.q_lora_rank,
                ih = c.index_n_heads, id = c.index_head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, h}, 1.0f);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string pre = "model.layers." + std::to_string(i) + ".", at = pre + "self_attn.";
    norm(pre + "input_layernorm.weight", h);
    norm(pre + "post_attention_layernorm.weight", h);
    matrix(at + "q_a_proj.weight", ql, h);
    norm(at + "q_a_layernorm.weight", ql);
    matrix(at + "q_b_proj.weight", nh * (p + r), ql);
    matrix(at + "kv_a_proj_with_mqa.weight", l + r, h);
    norm(at + "kv_a_layernorm.weight", l);
    matrix(at + "kv_b_proj.weight", nh * (p + v), l);
    matrix(at + "o_proj.weight", h, nh * v);
    if (c.indexer_types[i] == IndexerType::kFull) {
      matrix(at + "indexer.wq_b.weight", ih * id, ql);
      matrix(at + "indexer.wk.weight", id, h);
      norm(at + "indexer.k_norm.weight", id);
      add(at + "indexer.k_norm.bias", {id}, 0.1f);
      matrix(at + "indexer.weights_proj.weight", ih, h);
    }
    const std::string mlp = pre + "mlp.";
    auto ffn = [&](const std::string& prefix, int64_t inter) {
      matrix(prefix + "gate_proj.weight", inter, h);
      matrix(prefix + "up_proj.weight", inter, h);
      matrix(prefix + "down_proj.weight", h, inter);
    };
    if (c.mlp_layer_types[i] == MlpType::kDense) {
      ffn(mlp, c.intermediate_size);
      continue;
    }
    matrix(mlp + "gate.weight", c.n_routed_experts, h);
    add(mlp + "gate.e_score_correction_bias", {c.n_routed_experts}, 0.1f);
    for (int e = 0; e < c.n_routed_experts; ++e) {
      ffn(mlp + "experts." + std::to_string(e) + ".", c.moe_intermediate_size);
    }
    ffn(mlp + "shared_experts.", int64_t{c.moe_intermediate_size} * c.n_shared_experts);
  }
  norm("model.norm.weight", h);
  matrix("lm_head.weight", c.vocab_size, h);
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
}

class CudaTunedModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    const nlohmann::json j = TunedConfig();
    testing::WriteAll(dir_->File("config.json"), j.dump(2));
    auto c = ParseModelConfig(j.dump());
    ASSERT_TRUE(c.ok()) << c.status();
    WriteRandomCheckpoint(*c, dir_->path());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  std::unique_ptr<LocalRunner> Make(Device device, model::ModelOptions mo = {}) {
    RunnerOptions o;
    o.model_dir = dir_->path();
    o.device = device;
    o.model = mo;
    auto r = LocalRunner::Create(o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : nullptr;
  }

  static std::vector<int32_t> Prompt(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> ids(n);
    for (int32_t& t : ids) t = static_cast<int32_t>(rng() % 500) + 2;
    return ids;
  }

  static testing::ScratchDir* dir_;
};
testing::ScratchDir* CudaTunedModelTest::dir_ = nullptr;

TEST_F(CudaTunedModelTest, TunedKernelsMatchCpu) {
  auto cpu = Make(Device::Cpu());
  ASSERT_NE(cpu, nullptr);
  for (const auto& [latent, indexer] :
       {std::pair{kvcache::LatentCacheDType::kBF16, kvcache::IndexerCacheDType::kBF16},
        std::pair{kvcache::LatentCacheDType::kF8, kvcache::IndexerCacheDType::kF8}}) {
    model::ModelOptions mo;
    mo.latent_cache = latent;
    mo.indexer_cache = indexer;
    auto cuda = Make(Device::Cuda(0), mo);
    ASSERT_NE(cuda, nullptr);
    const bool fp8 = latent == kvcache::LatentCacheDType::kF8;
    const std::string caches = fp8 ? "fp8" : "bf16";
    const double tol = fp8 ? kFp8CacheLogitRelTol : kBf16LogitRelTol;
    // Prompt logits in one pass and in chunks of 7 (prefill steps of several tokens, decode-sized
    // steps in between), prompts of up to 90 tokens (< index_topk 96).
    for (int n : {5, 70, 90}) {
      for (int chunk : {0, 7}) {
        GenerateRequest req;
        req.prompt = Prompt(n, static_cast<uint32_t>(n));
        req.max_new_tokens = 0;
        req.prefill_chunk = chunk;
        req.want_prompt_logits = true;
        auto want = cpu->Generate({req});
        auto got = cuda->Generate({req});
        ASSERT_TRUE(want.ok()) << want.status();
        ASSERT_TRUE(got.ok()) << got.status();
        const Tensor& w = (*want)[0].prompt_logits;
        const LogitStats d0 = CompareLogits((*got)[0].prompt_logits, w, 0, n, 0.0);
        const LogitStats d = CompareLogits((*got)[0].prompt_logits, w, 0, n, 2 * tol * d0.max_ref);
        std::printf(
            "tuned %s caches, %d tokens chunk %d: max |dlogit| %.4g = %.4g of max |logit| "
            "%.4g; top-1 %d of %d (%d of %d decisive); worst %s\n",
            caches.c_str(), n, chunk, d.max_abs, d.max_abs / d.max_ref, d.max_ref, d.agree, d.rows,
            d.decisive_agree, d.decisive_rows, d.Worst(3, 0).c_str());
        EXPECT_LE(d.max_abs, tol * d.max_ref) << caches << " " << n << " " << chunk;
        EXPECT_EQ(d.decisive_agree, d.decisive_rows) << caches << " " << n << " " << chunk;
      }
    }
    // Batched greedy decoding of two prompts (decode steps of two rows).
    std::vector<GenerateRequest> batch(2);
    for (int i = 0; i < 2; ++i) {
      batch[i].prompt = Prompt(30 + 20 * i, 77 + i);
      batch[i].max_new_tokens = 16;
      batch[i].stop_at_eos = false;
    }
    auto want = cpu->Generate(batch);
    auto got = cuda->Generate(batch);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    for (int i = 0; i < 2; ++i) {
      testing_util::CheckGreedy("tuned " + caches + " greedy " + std::to_string(i), *cpu, *cuda,
                                batch[i].prompt, (*want)[i].tokens, (*got)[i].tokens);
    }
    const model::CudaKernelCounts k = model::GetCudaKernelCounts(cuda->backend());
    std::printf(
        "tuned %s caches: sparse MLA tuned %lld generic %lld, indexer tuned %lld generic "
        "%lld\n",
        caches.c_str(), static_cast<long long>(k.tuned_sparse_mla),
        static_cast<long long>(k.generic_sparse_mla), static_cast<long long>(k.tuned_indexer),
        static_cast<long long>(k.generic_indexer));
    EXPECT_GT(k.tuned_sparse_mla, 0);
    EXPECT_GT(k.tuned_indexer, 0);
    EXPECT_EQ(k.generic_sparse_mla + k.generic_indexer, 0);
  }
}

}  // namespace
}  // namespace strata
