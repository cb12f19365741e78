// What strata-worker --device cuda:0 runs: its stage engine (worker/service/stage_engine.h, the
// whole of the worker but gRPC) on the CUDA backend, serving the shipped model as one stage with
// the CUDA defaults' cache layouts — LoadShard, Warmup, a probe step, then steps of prefill and
// decode as a coordinator plans them; its greedy tokens equal LocalRunner's on the same GPU.
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/worker/oracle_fixture.h"
#include "worker/local_runner.h"
#include "worker/service/stage_engine.h"

namespace strata {
namespace {

TEST(CudaWorkerTest, StageEngineServesTheShippedModel) {
  const std::string model_dir = testing_util::SourceDir() + "/models/strata-tiny-glm";
  auto device = ParseDevice("cuda:0");  // as strata-worker parses --device
  ASSERT_TRUE(device.ok());
  worker::StageEngineOptions options;
  options.device = *device;
  options.kv_cache_bytes = int64_t{64} << 20;
  worker::StageEngine engine(options, nullptr);

  v1::LoadShardRequest req;
  req.set_model_dir(model_dir);
  req.mutable_layers()->set_begin(0);
  req.mutable_layers()->set_end(8);
  req.set_num_stages(1);
  req.set_tp_size(1);
  req.set_latent_cache_dtype(v1::CACHE_DTYPE_BF16);
  req.set_indexer_cache_dtype(v1::CACHE_DTYPE_BF16);
  req.set_kv_block_tokens(64);
  auto load = engine.LoadShard(req);
  ASSERT_TRUE(load.ok()) << load.status();
  auto warm = engine.Warmup(v1::WarmupRequest());
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_GT(warm->kv_capacity_blocks(), 0u);
  ASSERT_TRUE(engine.Probe().ok());

  std::vector<int32_t> tokens = {3, 17, 400, 95, 1024, 7, 7, 300, 2000, 65, 5, 812};
  const std::vector<int32_t> prompt = tokens;
  size_t cached = 0;
  std::vector<int32_t> generated;
  for (uint64_t step = 1; generated.size() < 12; ++step) {
    v1::StepPlan plan;
    plan.set_step_id(step);
    v1::SequencePlan* s = plan.add_sequences();
    s->set_seq_id(7);
    s->set_start_position(static_cast<uint32_t>(cached));
    s->set_reset_block_table(step == 1);
    if (step == 1) s->add_block_ids(5);
    for (size_t i = cached; i < tokens.size(); ++i) s->add_token_ids(tokens[i]);
    s->set_sample(true);
    cached = tokens.size();
    const v1::StepResult r = engine.Execute(plan, absl::Now());
    ASSERT_FALSE(r.has_error()) << r.error().message();
    ASSERT_EQ(r.sampled().tokens_size(), 1);
    tokens.push_back(r.sampled().tokens(0).token_id());
    generated.push_back(r.sampled().tokens(0).token_id());
  }

  RunnerOptions o;
  o.model_dir = model_dir;
  o.device = Device::Cuda(0);
  auto runner = LocalRunner::Create(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  GenerateRequest greq;
  greq.prompt = prompt;
  greq.max_new_tokens = 12;
  greq.stop_at_eos = false;
  auto expected = (*runner)->Generate({greq});
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(generated, (*expected)[0].tokens);
}

}  // namespace
}  // namespace strata
