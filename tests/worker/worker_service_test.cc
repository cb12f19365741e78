// One strata-worker process through its control plane: the handshake's version check, the
// refusals of LoadShard, Warmup's block count, grpc.health.v1 liveness vs readiness, a whole-model
// single-stage worker against LocalRunner, and a graceful Shutdown.
#include <future>
#include <random>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "strata/v1/worker.grpc.pb.h"
#include "tests/worker/oracle_fixture.h"
#include "tests/worker/worker_process.h"
#include "worker/local_runner.h"

namespace strata {
namespace {

using testing_util::WorkerProcess;

std::string ModelDir() { return testing_util::SourceDir() + "/tests/fixtures/oracle/glm"; }

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

// grpc.health.v1.Health/Check by hand (Debian ships no generated health stubs): the request is
// field 1 = service name, the answer field 1 = status (1 SERVING, 2 NOT_SERVING).
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string req;
  req.push_back(0x0a);
  req.push_back(static_cast<char>(service.size()));
  req += service;
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::GenericStub stub(channel);
  auto ctx = Ctx();
  std::promise<grpc::Status> done;
  stub.UnaryCall(ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&done](grpc::Status s) { done.set_value(s); });
  if (!done.get_future().get().ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // UNKNOWN is the default, encoded as nothing
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : -1;
}

v1::LoadShardRequest Shard(uint32_t begin, uint32_t end) {
  v1::LoadShardRequest req;
  req.set_model_dir(ModelDir());
  req.mutable_layers()->set_begin(begin);
  req.mutable_layers()->set_end(end);
  req.set_num_stages(1);
  req.set_tp_size(1);
  req.set_latent_cache_dtype(v1::CACHE_DTYPE_F32);
  req.set_indexer_cache_dtype(v1::CACHE_DTYPE_F32);
  req.set_kv_block_tokens(64);
  return req;
}

TEST(WorkerServiceTest, ControlPlaneAndSingleStageGeneration) {
  auto proc = WorkerProcess::Start(STRATA_WORKER_PATH, {"--kv-cache-mb", "1"});
  ASSERT_TRUE(proc.ok()) << proc.status();
  auto channel = grpc::CreateChannel((*proc)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Worker::NewStub(channel);

  v1::HandshakeRequest hs;
  hs.mutable_protocol_version()->set_major(2);
  v1::HandshakeResponse hr;
  EXPECT_EQ(stub->Handshake(Ctx().get(), hs, &hr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  hs.mutable_protocol_version()->set_major(1);
  ASSERT_TRUE(stub->Handshake(Ctx().get(), hs, &hr).ok());
  EXPECT_TRUE(hr.capabilities().ucx());
  EXPECT_TRUE(hr.capabilities().gloo());
  EXPECT_FALSE(hr.capabilities().nccl());  // a CPU worker
  EXPECT_FALSE(hr.data_plane_address().empty());
  hs.set_create_nccl_unique_id(true);  // only GPU workers create NCCL ids
  EXPECT_EQ(stub->Handshake(Ctx().get(), hs, &hr).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  hs.set_create_nccl_unique_id(false);

  EXPECT_EQ(HealthStatus(channel, ""), 1);                  // live
  EXPECT_EQ(HealthStatus(channel, "strata.v1.Worker"), 2);  // not ready before Warmup
  v1::WorkerHealthResponse health;
  ASSERT_TRUE(stub->Health(Ctx().get(), v1::WorkerHealthRequest(), &health).ok());
  EXPECT_EQ(health.state(), v1::SERVING_STATE_STARTING);

  // Refusals, each naming why.
  v1::LoadShardResponse lr;
  v1::LoadShardRequest bad = Shard(0, 4);
  bad.set_tp_size(2);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),  // no TP transport named
            grpc::StatusCode::UNIMPLEMENTED);
  bad.mutable_data_plane()->set_tp_transport(v1::TRANSPORT_NCCL);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),  // NCCL needs a GPU worker
            grpc::StatusCode::FAILED_PRECONDITION);
  bad.mutable_data_plane()->set_tp_transport(v1::TRANSPORT_GLOO);
  // Neither TP rank 0's worker_address (its rendezvous store) nor --tp-store-dir.
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), Shard(1, 3), &lr).error_code(),  // layer 1 is shared
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), Shard(0, 9), &lr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad = Shard(0, 4);
  bad.set_kv_block_tokens(16);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad = Shard(0, 4);
  bad.set_latent_cache_dtype(v1::CACHE_DTYPE_UNSPECIFIED);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::WarmupResponse wr;
  EXPECT_EQ(stub->Warmup(Ctx().get(), v1::WarmupRequest(), &wr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  ASSERT_TRUE(stub->LoadShard(Ctx().get(), Shard(0, 4), &lr).ok());
  const uint64_t weight_bytes = lr.weight_bytes();
  // The same shard again (the coordinator's answer to a restarted peer) is accepted and keeps
  // what is loaded; another shard, or other cache dtypes, are refused.
  ASSERT_TRUE(stub->LoadShard(Ctx().get(), Shard(0, 4), &lr).ok());
  EXPECT_EQ(lr.weight_bytes(), weight_bytes);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), Shard(0, 2), &lr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  bad = Shard(0, 4);
  bad.set_latent_cache_dtype(v1::CACHE_DTYPE_BF16);
  EXPECT_EQ(stub->LoadShard(Ctx().get(), bad, &lr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(stub->Warmup(Ctx().get(), v1::WarmupRequest(), &wr).ok());
  // f32 caches, per block of 64 tokens: latent (kv_lora_rank 32 + rope 16) × 4 bytes on all 4
  // layers, indexer keys (index_head_dim 32) × 4 bytes on the 2 full-indexer layers.
  const uint64_t per_block = 4 * 64 * (32 + 16) * 4 + 2 * 64 * 32 * 4;
  EXPECT_EQ(wr.kv_bytes_per_block(), per_block);
  EXPECT_EQ(wr.kv_capacity_blocks(), (uint64_t{1} << 20) / per_block);
  EXPECT_EQ(HealthStatus(channel, "strata.v1.Worker"), 1);
  v1::WorkerHealthRequest probe;
  probe.set_run_probe_step(true);
  ASSERT_TRUE(stub->Health(Ctx().get(), probe, &health).ok());
  EXPECT_EQ(health.state(), v1::SERVING_STATE_READY);

  // The whole model on one worker: greedy tokens as LocalRunner's.
  std::mt19937 rng(5);
  std::vector<int32_t> tokens(20);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 500) + 2;
  const std::vector<int32_t> prompt = tokens;
  auto ctx = Ctx();
  auto stream = stub->Step(ctx.get());
  size_t cached = 0;
  std::vector<int32_t> generated;
  for (uint64_t step = 1; generated.size() < 6; ++step) {
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
    ASSERT_TRUE(stream->Write(plan));
    v1::StepResult r;
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_FALSE(r.has_error()) << r.error().message();
    ASSERT_EQ(r.sampled().tokens_size(), 1);
    EXPECT_FALSE(r.sampled().tokens(0).has_logprob());  // not asked for
    tokens.push_back(r.sampled().tokens(0).token_id());
    generated.push_back(r.sampled().tokens(0).token_id());
  }
  RunnerOptions o;
  o.model_dir = ModelDir();
  auto runner = LocalRunner::Create(o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  GenerateRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 6;
  req.stop_at_eos = false;
  auto expected = (*runner)->Generate({req});
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(generated, (*expected)[0].tokens);

  // Shutdown with drain: the Step stream ends and the process exits 0.
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
