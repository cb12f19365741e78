// NCCL on one GPU (label gpu). NCCL refuses two ranks on one device, so this runs what one GPU
// allows: a world of one rank joined through the nonblocking path, its TP group's in-place
// all-reduce on the backend's stream, argument checks, and a rank whose peer never joins, which
// must fail at the deadline (the communicator aborted) instead of hanging. Transfers between two
// GPUs and TP groups of several ranks run only on a multi-GPU machine (issue 9).
#include "worker/dataplane/nccl.h"

#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "worker/model/backend_factory.h"

namespace strata::dataplane {
namespace {

std::unique_ptr<model::Backend> Cuda0() {
  auto b = model::CreateBackend(Device::Cuda(0));
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? *std::move(b) : nullptr;
}

Tensor RandomHost(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  Tensor t = Tensor::Zeros(DType::kF32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

TEST(NcclTest, UniqueIdsAre128DistinctBytes) {
  ASSERT_TRUE(NcclAvailable());
  auto a = NewNcclUniqueId();
  auto b = NewNcclUniqueId();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << " " << b.status();
  EXPECT_EQ(a->size(), kNcclUniqueIdBytes);
  EXPECT_NE(*a, *b);
}

TEST(NcclTest, WorldOfOneAllReducesDeviceTensorsInPlace) {
  std::unique_ptr<model::Backend> backend = Cuda0();
  ASSERT_TRUE(backend && backend->stream() != nullptr);
  auto id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  NcclWorldOptions o;
  o.unique_id = *id;
  o.device = 0;
  o.stream = backend->stream();
  o.timeout = absl::Seconds(30);
  auto world = CreateNcclWorld(o);
  ASSERT_TRUE(world.ok()) << world.status();
  model::Collective& group = (*world)->group();
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.size(), 1);
  EXPECT_TRUE(group.Accepts(Device::Cuda(0)));
  EXPECT_FALSE(group.Accepts(Device::Cpu()));

  // A sum over one rank is the tensor itself, bit for bit, reduced where it lies.
  const Tensor host = RandomHost(37, 129, 3);
  auto x = backend->Upload(host);
  ASSERT_TRUE(x.ok()) << x.status();
  const void* where = x->data();
  for (int round = 0; round < 3; ++round) ASSERT_TRUE(group.AllReduceSum(*x).ok());
  EXPECT_EQ(x->data(), where);
  auto back = backend->Download(*x);
  ASSERT_TRUE(back.ok()) << back.status();
  for (int64_t i = 0; i < host.numel(); ++i) {
    ASSERT_EQ(back->data<float>()[i], host.data<float>()[i]) << i;
  }

  // What it refuses: a host tensor, an integer tensor, itself as a pipeline peer.
  Tensor on_host = RandomHost(2, 2, 4);
  EXPECT_EQ(group.AllReduceSum(on_host).code(), absl::StatusCode::kInvalidArgument);
  auto ints = backend->NewTensor(DType::kI32, {4});
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(group.AllReduceSum(*ints).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*world)->Send(0, LinkKey{1, 0}, *x).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*world)->Recv(0, LinkKey{1, 0}, *x).code(), absl::StatusCode::kInvalidArgument);
  // Still usable after refused arguments.
  EXPECT_TRUE(group.AllReduceSum(*x).ok());
}

// A figure, not an assertion: one polled all-reduce (enqueue, event, bounded wait) of a decode
// step's hidden state in a world of one, i.e. the fixed cost every TP all-reduce pays on top of
// the transfer.
TEST(NcclTest, PrintsTheCostOfOneWaitedAllReduce) {
  std::unique_ptr<model::Backend> backend = Cuda0();
  ASSERT_TRUE(backend);
  auto id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok());
  NcclWorldOptions o;
  o.unique_id = *id;
  o.stream = backend->stream();
  auto world = CreateNcclWorld(o);
  ASSERT_TRUE(world.ok()) << world.status();
  for (const int64_t tokens : {1, 32}) {
    auto x = backend->Upload(RandomHost(tokens, 6144, 5));
    ASSERT_TRUE(x.ok());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*world)->group().AllReduceSum(*x).ok());
    constexpr int kRounds = 500;
    const absl::Time start = absl::Now();
    for (int i = 0; i < kRounds; ++i) ASSERT_TRUE((*world)->group().AllReduceSum(*x).ok());
    std::printf("nccl all-reduce, world of 1, [%ld, 6144] f32: %.1f us per waited call\n",
                static_cast<long>(tokens),
                absl::ToDoubleMicroseconds(absl::Now() - start) / kRounds);
  }
}

TEST(NcclTest, RefusesBadOptions) {
  std::unique_ptr<model::Backend> backend = Cuda0();
  ASSERT_TRUE(backend);
  NcclWorldOptions o;
  o.unique_id = "short";
  o.stream = backend->stream();
  EXPECT_EQ(CreateNcclWorld(o).status().code(), absl::StatusCode::kInvalidArgument);
  auto id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok());
  o.unique_id = *id;
  o.world_rank = 1;  // of 1
  EXPECT_EQ(CreateNcclWorld(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.world_rank = 0;
  o.stream = nullptr;
  EXPECT_EQ(CreateNcclWorld(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// Rank 0 of a world of two whose rank 1 never comes: DEADLINE_EXCEEDED once the timeout passed,
// the half-made communicator aborted, and the process free to go on (it ends the test).
TEST(NcclTest, APeerThatNeverJoinsIsADeadlineNotAHang) {
  std::unique_ptr<model::Backend> backend = Cuda0();
  ASSERT_TRUE(backend);
  auto id = NewNcclUniqueId();
  ASSERT_TRUE(id.ok());
  NcclWorldOptions o;
  o.unique_id = *id;
  o.world_size = 2;
  o.device = 0;
  o.stream = backend->stream();
  o.timeout = absl::Seconds(3);
  const absl::Time start = absl::Now();
  auto world = CreateNcclWorld(o);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(world.status().code(), absl::StatusCode::kDeadlineExceeded) << world.status();
  std::printf("absent NCCL peer: %s after %s\n", world.status().ToString().c_str(),
              absl::FormatDuration(took).c_str());
  EXPECT_LT(took, absl::Seconds(60));
  // The GPU still works for the next world.
  auto id2 = NewNcclUniqueId();
  ASSERT_TRUE(id2.ok());
  o.unique_id = *id2;
  o.world_size = 1;
  EXPECT_TRUE(CreateNcclWorld(o).ok());
}

}  // namespace
}  // namespace strata::dataplane
