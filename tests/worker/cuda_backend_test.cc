// The whole model on cuda:0 in bf16 (worker/model/cuda_backend.h) against the fp32 CPU backend
// and the transformers fixtures: the oracle checkpoints (generic attention kernels: their shapes
// are too small for the tuned ones) and the shipped model. Tolerances: tests/worker/bf16_compare.h
// and docs/model.md.
#include "worker/model/cuda_backend.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/bf16_compare.h"
#include "tests/worker/oracle_fixture.h"
#include "worker/local_runner.h"

namespace strata {
namespace {

using testing_util::CompareLogits;
using testing_util::kBf16LogitRelTol;
using testing_util::LogitStats;
using testing_util::OracleFixture;

std::unique_ptr<LocalRunner> MakeRunner(const std::string& dir, Device device,
                                        model::ModelOptions model = {}) {
  RunnerOptions options;
  options.model_dir = dir;
  options.device = device;
  options.model = model;
  auto r = LocalRunner::Create(options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

GenerateResult RunOne(LocalRunner& runner, const GenerateRequest& req) {
  auto out = runner.Generate({req});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? std::move((*out)[0]) : GenerateResult{};
}

void Print(const std::string& what, const LogitStats& s) {
  std::printf(
      "%s: max |dlogit| %.4g = %.4g of max |logit| %.4g; top-1 agrees on %d of %d rows, "
      "%d of %d decisive\n",
      what.c_str(), s.max_abs, s.max_abs / s.max_ref, s.max_ref, s.agree, s.rows, s.decisive_agree,
      s.decisive_rows);
}

class CudaModelTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = OracleFixture::Load(GetParam());
    ASSERT_FALSE(fixture_.cases.empty());
    cpu_ = MakeRunner(fixture_.dir, Device::Cpu());
    cuda_ = MakeRunner(fixture_.dir, Device::Cuda(0));
    ASSERT_NE(cpu_, nullptr);
    ASSERT_NE(cuda_, nullptr);
  }
  OracleFixture fixture_;
  std::unique_ptr<LocalRunner> cpu_, cuda_;
};

// Below index_topk every position is attended on both paths and the logits agree within the bf16
// tolerance, against the CPU and against transformers' fp32 run. Past it, bf16 rounding changes
// which keys the indexer keeps on these random-weight models (docs/model.md): those rows are
// reported only.
TEST_P(CudaModelTest, PromptLogitsMatchCpuAndTransformers) {
  const int topk = fixture_.index_topk;
  for (const auto& c : fixture_.cases) {
    for (int chunk : {0, 7}) {  // one pass, and chunks that cross block boundaries
      GenerateRequest req;
      req.prompt = c.prompt;
      req.max_new_tokens = 0;
      req.prefill_chunk = chunk;
      req.want_prompt_logits = true;
      const GenerateResult want = RunOne(*cpu_, req), got = RunOne(*cuda_, req);
      ASSERT_TRUE(got.prompt_logits.defined());
      const int64_t rows = want.prompt_logits.dim(0), dense = std::min<int64_t>(rows, topk);
      const std::string name = GetParam() + "/" + c.name + " chunk " + std::to_string(chunk);
      const LogitStats d = CompareLogits(got.prompt_logits, want.prompt_logits, 0, dense, 0.0);
      const double floor = 2 * kBf16LogitRelTol * d.max_ref;
      const LogitStats dd = CompareLogits(got.prompt_logits, want.prompt_logits, 0, dense, floor);
      Print(name + " cuda vs cpu, positions < index_topk", dd);
      EXPECT_LE(d.max_abs, kBf16LogitRelTol * d.max_ref) << name;
      EXPECT_EQ(dd.decisive_agree, dd.decisive_rows) << name;
      if (rows > dense) {
        const LogitStats s = CompareLogits(got.prompt_logits, want.prompt_logits, dense, rows,
                                           2 * kBf16LogitRelTol * d.max_ref);
        Print(name + " cuda vs cpu, positions >= index_topk (reported only)", s);
      }
      if (chunk == 0) {
        const Tensor hf = fixture_.Logits("logits_", c.name);
        const LogitStats h = CompareLogits(got.prompt_logits, hf, 0, dense, floor);
        Print(name + " cuda vs transformers fp32, positions < index_topk", h);
        EXPECT_LE(h.max_abs, kBf16LogitRelTol * h.max_ref) << name;
      }
    }
  }
  const model::CudaKernelCounts n = model::GetCudaKernelCounts(cuda_->backend());
  EXPECT_GT(n.generic_sparse_mla, 0);
  EXPECT_GT(n.generic_indexer, 0);
  EXPECT_EQ(n.tuned_sparse_mla + n.tuned_indexer, 0);  // L = 32, 8 indexer heads of 32
}

// All cases batched (mixed prefill and decode steps): greedy tokens equal the CPU's, or the first
// divergence is a near-tie (asserted where it is decided below index_topk).
TEST_P(CudaModelTest, GreedyContinuationsMatchCpu) {
  std::vector<GenerateRequest> batch;
  for (const auto& c : fixture_.cases) {
    GenerateRequest req;
    req.prompt = c.prompt;
    req.max_new_tokens = static_cast<int>(c.continuation.size());
    req.stop_at_eos = false;
    batch.push_back(req);
  }
  auto want = cpu_->Generate(batch);
  auto got = cuda_->Generate(batch);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < batch.size(); ++i) {
    testing_util::CheckGreedy(GetParam() + "/" + fixture_.cases[i].name, *cpu_, *cuda_,
                              batch[i].prompt, (*want)[i].tokens, (*got)[i].tokens,
                              fixture_.index_topk);
  }
}

// The fp8 indexer cache (per-token scales) and f32 caches through the generic kernels: below
// index_topk the indexer's choice does not matter, so the logits match as with bf16 caches.
TEST_P(CudaModelTest, OtherCacheLayouts) {
  for (const auto& [latent, indexer] :
       {std::pair{kvcache::LatentCacheDType::kBF16, kvcache::IndexerCacheDType::kF8},
        std::pair{kvcache::LatentCacheDType::kF32, kvcache::IndexerCacheDType::kF32}}) {
    model::ModelOptions mo;
    mo.latent_cache = latent;
    mo.indexer_cache = indexer;
    auto cuda = MakeRunner(fixture_.dir, Device::Cuda(0), mo);
    ASSERT_NE(cuda, nullptr);
    const auto& c = fixture_.cases.back();
    GenerateRequest req;
    req.prompt = c.prompt;
    req.max_new_tokens = 0;
    req.want_prompt_logits = true;
    const GenerateResult want = RunOne(*cpu_, req), got = RunOne(*cuda, req);
    const int64_t dense = std::min<int64_t>(want.prompt_logits.dim(0), fixture_.index_topk);
    const LogitStats d = CompareLogits(got.prompt_logits, want.prompt_logits, 0, dense, 0.0);
    Print(GetParam() + " caches " + std::to_string(static_cast<int>(latent)) + "/" +
              std::to_string(static_cast<int>(indexer)),
          d);
    EXPECT_LE(d.max_abs, kBf16LogitRelTol * d.max_ref);
  }
}

INSTANTIATE_TEST_SUITE_P(Oracle, CudaModelTest, testing::Values("glm", "dsv32"));

class CudaShippedModelTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::string root = testing_util::SourceDir();
    std::ifstream in(root + "/tests/fixtures/shipped_model/continuations.json");
    ASSERT_TRUE(in.good());
    fixture_ = nlohmann::json::parse(in);
    dir_ = root + "/models/strata-tiny-glm";
    cpu_ = MakeRunner(dir_, Device::Cpu());
    cuda_ = MakeRunner(dir_, Device::Cuda(0));
    ASSERT_NE(cpu_, nullptr);
    ASSERT_NE(cuda_, nullptr);
  }
  nlohmann::json fixture_;
  std::string dir_;
  std::unique_ptr<LocalRunner> cpu_, cuda_;
};

// The recorded prompts, 48 greedy tokens each, batched: equal to the CPU path for at least 32
// tokens, or the first divergence is a near-tie. Also reported against transformers.
TEST_F(CudaShippedModelTest, GreedyContinuationsMatchCpu) {
  ASSERT_EQ(fixture_.at("prompts").size(), 5u);
  std::vector<GenerateRequest> batch;
  for (const auto& p : fixture_.at("prompts")) {
    GenerateRequest req;
    req.prompt = p.at("prompt_ids").get<std::vector<int32_t>>();
    req.max_new_tokens = fixture_.at("new_tokens").get<int>();
    req.stop_at_eos = false;
    batch.push_back(req);
  }
  auto want = cpu_->Generate(batch);
  auto got = cuda_->Generate(batch);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& p = fixture_.at("prompts")[i];
    const std::string name = "shipped/" + p.at("name").get<std::string>();
    // The near-tie check applies to a divergence within the first 32 tokens (issue 7's bar);
    // later ones are reported (past index_topk the decode steps' top-k may differ from the
    // re-computed prefix at a near-tie of indexer scores, docs/model.md).
    const int64_t first_32 = static_cast<int64_t>(batch[i].prompt.size()) + 31;
    const size_t same =
        testing_util::CheckGreedy(name, *cpu_, *cuda_, batch[i].prompt, (*want)[i].tokens,
                                  (*got)[i].tokens, /*assert_below=*/first_32);
    if (same < (*want)[i].tokens.size()) {
      std::printf("%s: diverges at token %zu (%s)\n", name.c_str(), same,
                  same < 32 ? "a near-tie, checked above" : "after the 32 tokens required");
    }
    const auto hf = p.at("continuation_ids").get<std::vector<int32_t>>();
    size_t hf_same = 0;
    while (hf_same < hf.size() && hf_same < (*got)[i].tokens.size() &&
           (*got)[i].tokens[hf_same] == hf[hf_same]) {
      ++hf_same;
    }
    std::printf("%s: %zu of %zu tokens equal transformers\n", name.c_str(), hf_same, hf.size());
  }
}

// The 204-token prompt (past index_topk 64: the indexer really selects; 8 experts, top-2), in
// chunks of 50. An expert or key chosen differently on a near-tie moves a few rows by more than the
// bf16 tolerance; the rest stay within it and every decisive top-1 agrees.
TEST_F(CudaShippedModelTest, LongPromptLogits) {
  const std::string name = fixture_.at("prompt_logits").at("prompt");
  std::vector<int32_t> ids;
  for (const auto& p : fixture_.at("prompts")) {
    if (p.at("name") == name) ids = p.at("prompt_ids").get<std::vector<int32_t>>();
  }
  ASSERT_FALSE(ids.empty());
  GenerateRequest req;
  req.prompt = ids;
  req.max_new_tokens = 0;
  req.want_prompt_logits = true;
  req.prefill_chunk = 50;
  const GenerateResult want = RunOne(*cpu_, req), got = RunOne(*cuda_, req);
  const int64_t rows = want.prompt_logits.dim(0);
  const LogitStats d0 = CompareLogits(got.prompt_logits, want.prompt_logits, 0, rows, 0.0);
  const LogitStats d = CompareLogits(got.prompt_logits, want.prompt_logits, 0, rows,
                                     2 * kBf16LogitRelTol * d0.max_ref);
  Print("shipped long prompt cuda vs cpu", d);
  const int within = d.RowsWithin(kBf16LogitRelTol);
  std::printf("shipped long prompt: %d of %d rows within the bf16 tolerance; worst %s\n", within,
              d.rows, d.Worst(4, 0).c_str());
  EXPECT_GE(within, 0.9 * d.rows);
  EXPECT_EQ(d.decisive_agree, d.decisive_rows);
  auto hf = ReadNpy(testing_util::SourceDir() + "/tests/fixtures/shipped_model/" +
                    fixture_.at("prompt_logits").at("file").get<std::string>());
  ASSERT_TRUE(hf.ok()) << hf.status();
  const LogitStats h =
      CompareLogits(got.prompt_logits, *hf, 0, hf->dim(0), 2 * kBf16LogitRelTol * d0.max_ref);
  Print("shipped long prompt cuda vs transformers", h);
  EXPECT_GE(h.RowsWithin(kBf16LogitRelTol), 0.9 * h.rows);
  EXPECT_EQ(h.decisive_agree, h.decisive_rows);
}

TEST(CudaBackendFactoryTest, MissingDeviceIsAnError) {
  RunnerOptions options;
  options.model_dir = testing_util::SourceDir() + "/tests/fixtures/oracle/glm";
  options.device = Device::Cuda(63);
  EXPECT_FALSE(LocalRunner::Create(options).ok());
}

}  // namespace
}  // namespace strata
