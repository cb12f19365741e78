// What strata-worker --device cuda:0 runs: its stage engine (worker/service/stage_engine.h, the
// whole worker but gRPC) on the CUDA backend, serving the shipped model as one stage with the
// CUDA defaults' cache layouts — LoadShard, Warmup, a probe step, then steps of prefill and
// decode as a coordinator plans them; its greedy tokens equal LocalRunner's on the same GPU.
// cuda_worker_process_test.cc drives the real process.
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/worker/cuda_worker_common.h"
#include "worker/service/stage_engine.h"

namespace strata {
namespace {

using testing_util::kWorkerNewTokens;
using testing_util::LocalRunnerTokens;
using testing_util::Plan;
using testing_util::ShippedPrompt;
using testing_util::ShippedShard;

TEST(CudaWorkerTest, StageEngineServesTheShippedModel) {
  auto device = ParseDevice("cuda:0");  // as strata-worker parses --device
  ASSERT_TRUE(device.ok());
  worker::StageEngineOptions options;
  options.device = *device;
  options.kv_cache_bytes = int64_t{64} << 20;
  worker::StageEngine engine(options, nullptr);
  auto load = engine.LoadShard(ShippedShard());
  ASSERT_TRUE(load.ok()) << load.status();
  auto warm = engine.Warmup(v1::WarmupRequest());
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_GT(warm->kv_capacity_blocks(), 0u);
  ASSERT_TRUE(engine.Probe().ok());

  std::vector<int32_t> tokens = ShippedPrompt(), generated;
  for (uint64_t step = 1; generated.size() < kWorkerNewTokens; ++step) {
    const size_t cached = step == 1 ? 0 : tokens.size() - 1;
    const v1::StepResult r = engine.Execute(Plan(step, cached, tokens), absl::Now());
    ASSERT_FALSE(r.has_error()) << r.error().message();
    ASSERT_EQ(r.sampled().tokens_size(), 1);
    tokens.push_back(r.sampled().tokens(0).token_id());
    generated.push_back(r.sampled().tokens(0).token_id());
  }
  EXPECT_EQ(generated, LocalRunnerTokens());
}

}  // namespace
}  // namespace strata
