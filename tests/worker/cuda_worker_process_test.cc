// strata-worker --device cuda:0 as a process over gRPC (Handshake, LoadShard, Warmup, a probe,
// a Step stream of prefill then decode, Shutdown): greedy tokens equal LocalRunner's on the same
// GPU. The binary is $STRATA_WORKER when set (a bundle run elsewhere), else the one built with
// this test; skipped when neither exists.
#include <cstdlib>
#include <filesystem>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "strata/v1/worker.grpc.pb.h"
#include "tests/worker/cuda_worker_common.h"
#include "tests/worker/worker_process.h"

namespace strata {
namespace {

using testing_util::kWorkerNewTokens;
using testing_util::LocalRunnerTokens;
using testing_util::Plan;
using testing_util::ShippedPrompt;
using testing_util::ShippedShard;

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
  const grpc::Status load = stub->LoadShard(Ctx().get(), ShippedShard(), &lr);
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
  std::vector<int32_t> tokens = ShippedPrompt(), generated;
  for (uint64_t step = 1; generated.size() < kWorkerNewTokens; ++step) {
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
