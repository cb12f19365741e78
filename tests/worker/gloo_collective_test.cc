// The Gloo all-reduce between two ranks in two threads: the sum is right and identical on both,
// whether the ranks meet in a directory or in the gRPC rendezvous store, and a peer that vanishes
// or never arrives is an error within the timeout, not a hang.
#include "worker/dataplane/gloo_collective.h"

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/common/test_files.h"
#include "worker/dataplane/rendezvous_store.h"

namespace strata::dataplane {
namespace {

class GlooCollectiveTest : public ::testing::Test {
 protected:
  GlooCollectiveOptions Options(int rank, absl::Duration timeout = absl::Seconds(20)) const {
    GlooCollectiveOptions o;
    o.rank = rank;
    o.size = 2;
    o.store_dir = scratch_.path();
    o.prefix = "test";
    o.timeout = timeout;
    return o;
  }

  // Both ranks connect, in two threads.
  void ConnectBoth(absl::Duration timeout, std::unique_ptr<model::Collective> out[2]) {
    absl::StatusOr<std::unique_ptr<model::Collective>> c[2];
    std::thread peer([&] { c[1] = CreateGlooCollective(Options(1, timeout)); });
    c[0] = CreateGlooCollective(Options(0, timeout));
    peer.join();
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(c[r].ok()) << "rank " << r << ": " << c[r].status();
      out[r] = *std::move(c[r]);
      EXPECT_EQ(out[r]->rank(), r);
      EXPECT_EQ(out[r]->size(), 2);
    }
  }

  strata::testing::ScratchDir scratch_;
};

Tensor Random(std::mt19937& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> dist;
  Tensor t = Tensor::Zeros(DType::kF32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

TEST_F(GlooCollectiveTest, SumsOverBothRanks) {
  std::unique_ptr<model::Collective> c[2];
  ConnectBoth(absl::Seconds(20), c);
  ASSERT_TRUE(c[0] && c[1]);
  std::mt19937 rng(7);
  // Several shapes, including one large enough for Gloo to segment it.
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {3, 128}, {257, 1031}}) {
    Tensor x[2] = {Random(rng, rows, cols), Random(rng, rows, cols)};
    std::vector<float> want(static_cast<size_t>(x[0].numel()));
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = x[0].data<float>()[i] + x[1].data<float>()[i];
    absl::Status s[2];
    std::thread peer([&] { s[1] = c[1]->AllReduceSum(x[1]); });
    s[0] = c[0]->AllReduceSum(x[0]);
    peer.join();
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(s[r].ok()) << "rank " << r << ": " << s[r];
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(x[r].data<float>()[i], want[i]) << "rank " << r << " element " << i;
      }
    }
  }
}

TEST_F(GlooCollectiveTest, RefusesTensorsItCannotReduce) {
  std::unique_ptr<model::Collective> c[2];
  ConnectBoth(absl::Seconds(20), c);
  ASSERT_TRUE(c[0]);
  Tensor ints = Tensor::Zeros(DType::kI32, {4});
  EXPECT_EQ(c[0]->AllReduceSum(ints).code(), absl::StatusCode::kInvalidArgument);
  Tensor wide = Tensor::Zeros(DType::kF32, {4, 4});
  auto column = wide.Slice(1, 0, 2);
  ASSERT_TRUE(column.ok());
  EXPECT_EQ(c[0]->AllReduceSum(*column).code(), absl::StatusCode::kInvalidArgument);
}

// A peer that is connected but never joins the collective: the caller times out.
TEST_F(GlooCollectiveTest, SilentPeerIsADeadline) {
  std::unique_ptr<model::Collective> c[2];
  ConnectBoth(absl::Seconds(1), c);
  ASSERT_TRUE(c[0]);
  Tensor x = Tensor::Zeros(DType::kF32, {8});
  const absl::Status s = c[0]->AllReduceSum(x);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.code() == absl::StatusCode::kDeadlineExceeded ||
              s.code() == absl::StatusCode::kUnavailable)
      << s;
  // The collective stays failed rather than reusing a broken context.
  EXPECT_FALSE(c[0]->AllReduceSum(x).ok());
}

// A peer that goes away (its context and sockets closed): an error, not a hang.
TEST_F(GlooCollectiveTest, VanishedPeerIsAnError) {
  std::unique_ptr<model::Collective> c[2];
  ConnectBoth(absl::Seconds(2), c);
  ASSERT_TRUE(c[0] && c[1]);
  c[1].reset();
  Tensor x = Tensor::Zeros(DType::kF32, {1024});
  const absl::Status s = c[0]->AllReduceSum(x);
  EXPECT_FALSE(s.ok());
  std::printf("vanished peer: %s\n", s.ToString().c_str());
}

// A peer that never arrives at the rendezvous.
TEST_F(GlooCollectiveTest, AbsentPeerFailsTheRendezvous) {
  auto c = CreateGlooCollective(Options(0, absl::Seconds(1)));
  ASSERT_FALSE(c.ok());
  std::printf("absent peer: %s\n", c.status().ToString().c_str());
}

// The ranks meet in a strata.v1.Rendezvous store over gRPC (TP rank 0's worker serves it) instead
// of a shared directory.
TEST_F(GlooCollectiveTest, RanksMeetInTheGrpcRendezvousStore) {
  RendezvousStore store;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&store);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr && port != 0);
  auto options = [&](int rank) {
    GlooCollectiveOptions o = Options(rank);
    o.store_dir.clear();
    o.store_address = "127.0.0.1:" + std::to_string(port);
    o.prefix = "rdv-stage0";
    return o;
  };
  absl::StatusOr<std::unique_ptr<model::Collective>> c[2];
  std::thread peer([&] { c[1] = CreateGlooCollective(options(1)); });
  c[0] = CreateGlooCollective(options(0));
  peer.join();
  ASSERT_TRUE(c[0].ok()) << c[0].status();
  ASSERT_TRUE(c[1].ok()) << c[1].status();
  Tensor x[2] = {Tensor::Zeros(DType::kF32, {3}), Tensor::Zeros(DType::kF32, {3})};
  for (int i = 0; i < 3; ++i) {
    x[0].data<float>()[i] = static_cast<float>(i);
    x[1].data<float>()[i] = 10.0f * static_cast<float>(i);
  }
  absl::Status s1;
  std::thread t([&] { s1 = (*c[1])->AllReduceSum(x[1]); });
  const absl::Status s0 = (*c[0])->AllReduceSum(x[0]);
  t.join();
  ASSERT_TRUE(s0.ok() && s1.ok()) << s0 << " " << s1;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(x[0].data<float>()[i], 11.0f * static_cast<float>(i));
    EXPECT_EQ(x[1].data<float>()[i], 11.0f * static_cast<float>(i));
  }
  // Both ranks' addresses are in the store under "<prefix>/", the form rank 0 keeps when a new
  // incarnation of its group begins (StageEngine drops every other key).
  EXPECT_GE(store.size(), 2u);
  const size_t keys = store.size();
  store.DropAllExcept("rdv-stage0/");
  EXPECT_EQ(store.size(), keys);
  // A lone rank of a new incarnation times out instead of reading the old keys.
  GlooCollectiveOptions lone = options(0);
  lone.prefix = "rdv2-stage0";
  lone.timeout = absl::Seconds(1);
  auto alone = CreateGlooCollective(lone);
  EXPECT_EQ(alone.status().code(), absl::StatusCode::kDeadlineExceeded) << alone.status();
  server->Shutdown(std::chrono::system_clock::now());
}

TEST_F(GlooCollectiveTest, RefusesBadOptions) {
  GlooCollectiveOptions o = Options(2);
  EXPECT_EQ(CreateGlooCollective(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(0);
  o.store_dir.clear();  // no store at all
  EXPECT_EQ(CreateGlooCollective(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(0);
  o.store_address = "127.0.0.1:1";  // two stores
  EXPECT_EQ(CreateGlooCollective(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::dataplane
