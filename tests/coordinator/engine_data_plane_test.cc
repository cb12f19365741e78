// The data plane the coordinator sets up, against in-process fake workers: which transports the
// cluster file and the workers' handshakes select, the NCCL unique id asked of world rank 0 and
// handed to every LoadShard, and a new rendezvous (new NCCL id, new rendezvous id, every worker
// loaded again) after a worker restarted. Plus the pure helpers in coordinator/data_plane.h.
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/data_plane.h"
#include "coordinator/engine.h"
#include "gtest/gtest.h"
#include "tests/common/test_files.h"
#include "tests/coordinator/fake_worker.h"

namespace strata::coordinator {
namespace {

namespace v1 = strata::v1;
using strata::testing::FakeWorker;

constexpr double kWaitS = 20;

template <typename Pred>
bool WaitFor(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(kWaitS);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

class EngineDataPlaneTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (engine_ != nullptr) engine_->Stop();
    workers_.clear();
  }

  // stages × tp fake workers (stage-major) and an engine over them; `wait_ready` waits for READY.
  void Start(int stages, int tp, bool gpu, DataPlaneChoice choice, bool wait_ready = true) {
    ClusterConfig c;
    c.model_dir = strata::testing::SourcePath("tests/fixtures/oracle/glm");
    c.tensor_parallel_size = tp;
    for (int s = 0; s < stages; ++s) {
      StageConfig stage;
      for (int r = 0; r < tp; ++r) {
        workers_.push_back(std::make_unique<FakeWorker>(
            FakeWorker::Options{.sampler = s == stages - 1 && r == 0, .gpu = gpu}));
        ASSERT_TRUE(workers_.back()->Start());
        stage.workers.push_back(workers_.back()->address());
      }
      c.stages.push_back(stage);
    }
    c.scheduler.max_model_len = 512;
    c.timeouts.connect_s = 2;
    c.data_plane = choice;
    auto engine = Engine::Create(EngineOptions{.cluster = c, .reconnect_interval_s = 0.1});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    engine_->Start();
    if (wait_ready) {
      ASSERT_TRUE(WaitFor([&] { return engine_->Ready(); }));
    }
  }

  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineDataPlaneTest, GpuWorkersGetNcclWithWorldRankZerosUniqueId) {
  Start(2, 2, /*gpu=*/true, DataPlaneChoice{});
  ASSERT_EQ(workers_[0]->nccl_ids().size(), 1u);
  const std::string id = workers_[0]->nccl_ids()[0];
  EXPECT_EQ(id.size(), 128u);
  std::set<std::string> rendezvous;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (i > 0) {
      EXPECT_TRUE(workers_[i]->nccl_ids().empty()) << "only world rank 0 is asked";
    }
    const v1::LoadShardRequest req = workers_[i]->load_request();
    const v1::DataPlaneConfig& dp = req.data_plane();
    EXPECT_EQ(dp.pipeline_transport(), v1::TRANSPORT_NCCL);
    EXPECT_EQ(dp.tp_transport(), v1::TRANSPORT_NCCL);
    EXPECT_EQ(dp.nccl_unique_id(), id);
    EXPECT_EQ(req.stage(), i / 2);
    EXPECT_EQ(req.tp_rank(), i % 2);
    ASSERT_EQ(dp.peers_size(), 4);
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(dp.peers(j).world_rank(), static_cast<uint32_t>(j));
      EXPECT_EQ(dp.peers(j).worker_address(), workers_[j]->address());
    }
    rendezvous.insert(dp.rendezvous_id());
  }
  ASSERT_EQ(rendezvous.size(), 1u);  // one id for the whole bring-up
  EXPECT_FALSE(rendezvous.begin()->empty());
}

TEST_F(EngineDataPlaneTest, HostChoiceKeepsGpuWorkersOnTheHostLinksAndGloo) {
  Start(2, 2, /*gpu=*/true,
        DataPlaneChoice{.pipeline = TransportChoice::kHost,
                        .tensor_parallel = TransportChoice::kHost});
  for (const auto& w : workers_) {
    EXPECT_TRUE(w->nccl_ids().empty());
    const v1::DataPlaneConfig dp = w->load_request().data_plane();
    EXPECT_EQ(dp.pipeline_transport(), v1::TRANSPORT_UCX);
    EXPECT_EQ(dp.tp_transport(), v1::TRANSPORT_GLOO);
    EXPECT_TRUE(dp.nccl_unique_id().empty());
    // Gloo ranks meet in TP rank 0's store: its gRPC address is every peer's worker_address.
    EXPECT_EQ(dp.peers(2).worker_address(), workers_[2]->address());
  }
}

TEST_F(EngineDataPlaneTest, ExplicitNcclWithACpuWorkerNeverGetsReady) {
  Start(1, 1, /*gpu=*/false, DataPlaneChoice{.pipeline = TransportChoice::kNccl},
        /*wait_ready=*/false);
  ASSERT_TRUE(WaitFor([&] {
    const v1::HealthResponse health = engine_->Health();
    for (const v1::HealthCheck& c : health.checks()) {
      if (c.detail().find("does not report NCCL") != std::string::npos) return true;
    }
    return false;
  }));
  EXPECT_FALSE(engine_->Ready());
  EXPECT_TRUE(workers_[0]->load_requests().empty());
}

TEST_F(EngineDataPlaneTest, OneGpuWorkerUsesNcclOnlyWhenAskedTo) {
  Start(1, 1, /*gpu=*/true, DataPlaneChoice{});
  EXPECT_TRUE(workers_[0]->nccl_ids().empty());
  EXPECT_EQ(workers_[0]->load_request().data_plane().pipeline_transport(), v1::TRANSPORT_UCX);
  engine_->Stop();
  engine_.reset();
  workers_.clear();
  Start(1, 1, /*gpu=*/true,
        DataPlaneChoice{.pipeline = TransportChoice::kNccl,
                        .tensor_parallel = TransportChoice::kNccl});
  ASSERT_EQ(workers_[0]->nccl_ids().size(), 1u);
  EXPECT_EQ(workers_[0]->load_request().data_plane().nccl_unique_id(), workers_[0]->nccl_ids()[0]);
}

// A TP rank restarts: world rank 0 makes a new NCCL id, and every worker, the survivors included,
// gets LoadShard with it and with a new rendezvous id (the whole world meets again).
TEST_F(EngineDataPlaneTest, ARestartedRankMakesEveryWorkerMeetAgain) {
  Start(1, 2, /*gpu=*/true, DataPlaneChoice{});
  const std::string first_id = workers_[0]->nccl_ids().at(0);
  const std::string first_rendezvous = workers_[0]->load_request().data_plane().rendezvous_id();
  const int port = workers_[1]->port();
  workers_[1]->Stop();
  ASSERT_TRUE(WaitFor([&] { return !engine_->Ready(); }));
  workers_[1] = std::make_unique<FakeWorker>(FakeWorker::Options{.sampler = false, .gpu = true});
  ASSERT_TRUE(workers_[1]->Start(port));
  ASSERT_TRUE(WaitFor([&] { return engine_->Ready(); }));

  const std::vector<std::string> ids = workers_[0]->nccl_ids();
  ASSERT_GE(ids.size(), 2u);
  EXPECT_NE(ids.back(), first_id);
  // The survivor was asked to load again (it keeps its shard) and the newcomer loaded, both under
  // the newest ids.
  const std::vector<v1::LoadShardRequest> survivor = workers_[0]->load_requests();
  ASSERT_GE(survivor.size(), 2u);
  const v1::DataPlaneConfig& renewed = survivor.back().data_plane();
  EXPECT_EQ(renewed.nccl_unique_id(), ids.back());
  EXPECT_NE(renewed.rendezvous_id(), first_rendezvous);
  const v1::DataPlaneConfig newcomer = workers_[1]->load_request().data_plane();
  EXPECT_EQ(newcomer.nccl_unique_id(), ids.back());
  EXPECT_EQ(newcomer.rendezvous_id(), renewed.rendezvous_id());
}

TEST(DataPlaneTest, ChooseTransports) {
  v1::HandshakeResponse gpu, cpu;
  gpu.mutable_device()->set_kind("cuda");
  gpu.mutable_capabilities()->set_nccl(true);
  cpu.mutable_device()->set_kind("cpu");
  v1::HandshakeResponse gpu2 = gpu;
  gpu.mutable_device()->set_uuid("GPU-1");
  gpu2.mutable_device()->set_uuid("GPU-2");
  const std::vector<std::string> two = {"a:1", "b:1"};
  auto t = ChooseTransports(DataPlaneChoice{}, two, {gpu, gpu2});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pipeline, v1::TRANSPORT_NCCL);
  EXPECT_EQ(t->tensor_parallel, v1::TRANSPORT_NCCL);
  EXPECT_TRUE(t->nccl());
  // Two workers on one physical GPU (NCCL would refuse them): auto stays on the host; asking for
  // NCCL explicitly is still honoured (the bring-up then reports NCCL's error).
  t = ChooseTransports(DataPlaneChoice{}, two, {gpu, gpu});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pipeline, v1::TRANSPORT_UCX);
  EXPECT_EQ(t->tensor_parallel, v1::TRANSPORT_GLOO);
  t = ChooseTransports(DataPlaneChoice{}, two, {gpu, cpu});  // mixed: host memory
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pipeline, v1::TRANSPORT_UCX);
  EXPECT_EQ(t->tensor_parallel, v1::TRANSPORT_GLOO);
  EXPECT_FALSE(t->nccl());
  t = ChooseTransports(DataPlaneChoice{.tensor_parallel = TransportChoice::kHost}, two,
                       {gpu, gpu2});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pipeline, v1::TRANSPORT_NCCL);
  EXPECT_EQ(t->tensor_parallel, v1::TRANSPORT_GLOO);
  t = ChooseTransports(DataPlaneChoice{.pipeline = TransportChoice::kNccl}, two, {gpu, cpu});
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(t.status().message().find("b:1"), absl::string_view::npos) << t.status();
}

TEST(DataPlaneTest, ConfigNamesEveryWorker) {
  DataPlaneInputs in;
  in.tensor_parallel_size = 2;
  in.addresses = {"w0:1", "w1:1", "w2:1", "w3:1"};
  in.hello.resize(4);
  for (int i = 0; i < 4; ++i) in.hello[i].set_data_plane_address("d" + std::to_string(i) + ":2");
  in.rendezvous_id = "r";
  in.nccl_unique_id = std::string(128, 'x');
  in.operation_timeout_s = 2.5;
  const v1::DataPlaneConfig dp = MakeDataPlaneConfig(in);
  ASSERT_EQ(dp.peers_size(), 4);
  EXPECT_EQ(dp.peers(3).stage(), 1u);
  EXPECT_EQ(dp.peers(3).tp_rank(), 1u);
  EXPECT_EQ(dp.peers(3).world_rank(), 3u);
  EXPECT_EQ(dp.peers(3).data_plane_address(), "d3:2");
  EXPECT_EQ(dp.peers(3).worker_address(), "w3:1");
  EXPECT_EQ(dp.operation_timeout_ms(), 2500u);
  EXPECT_EQ(dp.rendezvous_id(), "r");
  EXPECT_EQ(dp.nccl_unique_id(), in.nccl_unique_id);
  EXPECT_NE(NewRendezvousId("c", 1), NewRendezvousId("c", 1));
}

}  // namespace
}  // namespace strata::coordinator
