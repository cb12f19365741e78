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
#include "tests/worker/random_model.h"
#include "worker/local_runner.h"
#include "worker/model/cuda_backend.h"

namespace strata {
namespace {

using testing_util::CompareLogits;
using testing_util::kBf16LogitRelTol;
using testing_util::kFp8CacheLogitRelTol;
using testing_util::LogitStats;
using testing_util::TunedConfig;
using testing_util::WriteRandomCheckpoint;

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
