// Shared by the CUDA worker tests: the shipped model as one stage, the step plans a coordinator
// would send, and LocalRunner's tokens to compare with.
#ifndef STRATA_TESTS_WORKER_CUDA_WORKER_COMMON_H_
#define STRATA_TESTS_WORKER_CUDA_WORKER_COMMON_H_

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "strata/v1/worker.pb.h"
#include "tests/worker/oracle_fixture.h"
#include "worker/local_runner.h"

namespace strata::testing_util {

inline constexpr int kWorkerNewTokens = 12;

inline std::string ShippedDir() { return testing_util::SourceDir() + "/models/strata-tiny-glm"; }

inline const std::vector<int32_t>& ShippedPrompt() {
  static const std::vector<int32_t> p = {3, 17, 400, 95, 1024, 7, 7, 300, 2000, 65, 5, 812};
  return p;
}

inline v1::LoadShardRequest ShippedShard() {
  v1::LoadShardRequest req;
  req.set_model_dir(ShippedDir());
  req.mutable_layers()->set_begin(0);
  req.mutable_layers()->set_end(8);
  req.set_num_stages(1);
  req.set_tp_size(1);
  req.set_latent_cache_dtype(v1::CACHE_DTYPE_BF16);
  req.set_indexer_cache_dtype(v1::CACHE_DTYPE_BF16);
  req.set_kv_block_tokens(64);
  return req;
}

// Step `step` of one sequence whose first `cached` tokens are in the cache.
inline v1::StepPlan Plan(uint64_t step, size_t cached, const std::vector<int32_t>& tokens) {
  v1::StepPlan plan;
  plan.set_step_id(step);
  v1::SequencePlan* s = plan.add_sequences();
  s->set_seq_id(7);
  s->set_start_position(static_cast<uint32_t>(cached));
  s->set_reset_block_table(step == 1);
  if (step == 1) s->add_block_ids(5);
  for (size_t i = cached; i < tokens.size(); ++i) s->add_token_ids(tokens[i]);
  s->set_sample(true);
  return plan;
}

inline std::vector<int32_t> LocalRunnerTokens() {
  RunnerOptions o;
  o.model_dir = ShippedDir();
  o.device = Device::Cuda(0);
  auto runner = LocalRunner::Create(o);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return {};
  GenerateRequest req;
  req.prompt = ShippedPrompt();
  req.max_new_tokens = kWorkerNewTokens;
  req.stop_at_eos = false;
  auto out = (*runner)->Generate({req});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0].tokens : std::vector<int32_t>{};
}

}  // namespace strata::testing_util

#endif  // STRATA_TESTS_WORKER_CUDA_WORKER_COMMON_H_
