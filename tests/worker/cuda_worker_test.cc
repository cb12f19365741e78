// strata-worker --device cuda:0 serving the shipped model as one stage with the CUDA defaults'
// cache layouts — LoadShard, Warmup, a probe step, then steps of prefill and decode as a
// coordinator plans them — whose greedy tokens equal LocalRunner's on the same GPU: once through
// its stage engine in this process (worker/service/stage_engine.h, the whole worker but gRPC),
// once as the real process over gRPC ($STRATA_WORKER when set, e.g. a bundle run elsewhere, else
// the binary built with this test; skipped when neither exists).
#include <cstdlib>
#include <filesystem>

#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "strata/v1/worker.grpc.pb.h"
#include "tests/worker/oracle_fixture.h"
#include "tests/worker/worker_process.h"
#include "worker/local_runner.h"
#include "worker/service/stage_engine.h"

namespace strata {
namespace {

constexpr int kNewTokens = 12;

std::string ModelDir() { return testing_util::SourceDir() + "/models/strata-tiny-glm"; }

const std::vector<int32_t>& Prompt() {
  static const std::vector<int32_t> p = {3, 17, 400, 95, 1024, 7, 7, 300, 2000, 65, 5, 812};
  return p;
}

v1::LoadShardRequest Shard() {
  v1::LoadShardRequest req;
  req.set_model_dir(ModelDir());
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
v1::StepPlan Plan(uint64_t step, size_t cached, const std::vector<int32_t>& tokens) {
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

std::vector<int32_t> LocalRunnerTokens() {
  RunnerOptions o;
  o.model_dir = ModelDir();
  o.device = Device::Cuda(0);
  auto runner = LocalRunner::Create(o);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return {};
  GenerateRequest req;
  req.prompt = Prompt();
  req.max_new_tokens = kNewTokens;
  req.stop_at_eos = false;
  auto out = (*runner)->Generate({req});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0].tokens : std::vector<int32_t>{};
}

TEST(CudaWorkerTest, StageEngineServesTheShippedModel) {
  auto device = ParseDevice("cuda:0");  // as strata-worker parses --device
  ASSERT_TRUE(device.ok());
  worker::StageEngineOptions options;
  options.device = *device;
  options.kv_cache_bytes = int64_t{64} << 20;
  worker::StageEngine engine(options, nullptr);
  auto load = engine.LoadShard(Shard());
  ASSERT_TRUE(load.ok()) << load.status();
  auto warm = engine.Warmup(v1::WarmupRequest());
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_GT(warm->kv_capacity_blocks(), 0u);
  ASSERT_TRUE(engine.Probe().ok());

  std::vector<int32_t> tokens = Prompt(), generated;
  for (uint64_t step = 1; generated.size() < kNewTokens; ++step) {
    const size_t cached = step == 1 ? 0 : tokens.size() - 1;
    const v1::StepResult r = engine.Execute(Plan(step, cached, tokens), absl::Now());
    ASSERT_FALSE(r.has_error()) << r.error().message();
    ASSERT_EQ(r.sampled().tokens_size(), 1);
    tokens.push_back(r.sampled().tokens(0).token_id());
    generated.push_back(r.sampled().tokens(0).token_id());
  }
  EXPECT_EQ(generated, LocalRunnerTokens());
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return ctx;
}

TEST(CudaWorkerTest, ProcessServesTheShippedModel) {
  const char* env = std::getenv("STRATA_WORKER");
  const std::string binary = env != nullptr ? env : STRATA_WORKER_PATH;
  if (!std::filesystem::exists(binary)) GTEST_SKIP() << "no strata-worker at " << binary;
  auto proc = testing_util::WorkerProcess::Start(
      binary, {"--device", "cuda:0", "--kv-cache-mb", "64", "--data-plane", "tcp"});
  ASSERT_TRUE(proc.ok()) << proc.status();
  auto stub = v1::Worker::NewStub(
      grpc::CreateChannel((*proc)->address(), grpc::InsecureChannelCredentials()));
  v1::HandshakeRequest hs;
  hs.mutable_protocol_version()->set_major(1);
  v1::HandshakeResponse hr;
  ASSERT_TRUE(stub->Handshake(Ctx().get(), hs, &hr).ok());
  EXPECT_EQ(hr.device().kind(), "cuda");
  v1::LoadShardResponse lr;
  const grpc::Status load = stub->LoadShard(Ctx().get(), Shard(), &lr);
  ASSERT_TRUE(load.ok()) << load.error_message();
  v1::WarmupResponse wr;
  const grpc::Status warm = stub->Warmup(Ctx().get(), v1::WarmupRequest(), &wr);
  ASSERT_TRUE(warm.ok()) << warm.error_message();
  v1::WorkerHealthRequest probe;
  probe.set_run_probe_step(true);
  v1::WorkerHealthResponse health;
  ASSERT_TRUE(stub->Health(Ctx().get(), probe, &health).ok());
  EXPECT_EQ(health.state(), v1::SERVING_STATE_READY);

  auto ctx = Ctx();
  auto stream = stub->Step(ctx.get());
  std::vector<int32_t> tokens = Prompt(), generated;
  for (uint64_t step = 1; generated.size() < kNewTokens; ++step) {
    const size_t cached = step == 1 ? 0 : tokens.size() - 1;
    ASSERT_TRUE(stream->Write(Plan(step, cached, tokens)));
    v1::StepResult r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_FALSE(r.has_error()) << r.error().message();
    ASSERT_EQ(r.sampled().tokens_size(), 1);
    tokens.push_back(r.sampled().tokens(0).token_id());
    generated.push_back(r.sampled().tokens(0).token_id());
  }
  EXPECT_EQ(generated, LocalRunnerTokens());
  v1::ShutdownRequest sr;
  sr.set_drain(true);
  sr.set_reason("test");
  v1::ShutdownResponse sresp;
  ASSERT_TRUE(stub->Shutdown(Ctx().get(), sr, &sresp).ok());
  v1::StepResult r;
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_EQ((*proc)->WaitExit(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace strata
