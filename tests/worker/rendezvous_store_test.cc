// The gRPC rendezvous store a TP group meets in: set and get across clients, waiting for keys that
// come later, deadlines for keys that never come, an unreachable server retried until it answers,
// the limits that keep a peer from filling it, and dropping an earlier incarnation's keys.
#include "worker/dataplane/rendezvous_store.h"

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace strata::dataplane {
namespace {

class Server {
 public:
  explicit Server(int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&store_);
    server_ = builder.BuildAndStart();
  }
  ~Server() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }
  bool ok() const { return server_ != nullptr && port_ != 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  RendezvousStore& store() { return store_; }

 private:
  RendezvousStore store_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

absl::Time In(absl::Duration d) { return absl::Now() + d; }

TEST(RendezvousStoreTest, ValuesSetByOneClientReachAnother) {
  Server server;
  ASSERT_TRUE(server.ok());
  RendezvousClient a(server.address()), b(server.address());
  ASSERT_TRUE(a.Set("g/0", std::string("addr\0zero", 9), In(absl::Seconds(5))).ok());
  ASSERT_TRUE(b.Set("g/1", "addr-one", In(absl::Seconds(5))).ok());
  auto got = b.Get({"g/0", "g/1"}, In(absl::Seconds(5)));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], std::string("addr\0zero", 9));  // bytes, not C strings
  EXPECT_EQ((*got)[1], "addr-one");
  EXPECT_EQ(server.store().size(), 2u);
}

TEST(RendezvousStoreTest, GetWaitsForAKeySetLater) {
  Server server;
  ASSERT_TRUE(server.ok());
  RendezvousClient reader(server.address());
  std::thread writer([&] {
    RendezvousClient w(server.address());
    // The reader is already waiting (or about to): its Get must see this without polling fast.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(w.Set("late", "v", In(absl::Seconds(5))).ok());
  });
  auto got = reader.Get({"late"}, In(absl::Seconds(10)));
  writer.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0], "v");
}

TEST(RendezvousStoreTest, AKeyThatNeverComesIsADeadlineNamingIt) {
  Server server;
  ASSERT_TRUE(server.ok());
  RendezvousClient c(server.address());
  ASSERT_TRUE(c.Set("here", "v", In(absl::Seconds(5))).ok());
  const absl::Time start = absl::Now();
  auto got = c.Get({"here", "missing"}, In(absl::Milliseconds(1500)));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("missing"), absl::string_view::npos) << got.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));  // the deadline, plus one server wait
}

TEST(RendezvousStoreTest, AnUnreachableServerIsRetriedUntilItAnswers) {
  int port = 0;
  {
    Server probe;  // a port that was free a moment ago
    ASSERT_TRUE(probe.ok());
    port = probe.port();
  }
  RendezvousClient c("127.0.0.1:" + std::to_string(port));
  std::unique_ptr<Server> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    late = std::make_unique<Server>(port);
  });
  const absl::Status s = c.Set("k", "v", In(absl::Seconds(20)));
  starter.join();
  ASSERT_TRUE(late && late->ok());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(late->store().size(), 1u);
}

TEST(RendezvousStoreTest, NoServerAtAllIsADeadline) {
  int port = 0;
  {
    Server probe;
    ASSERT_TRUE(probe.ok());
    port = probe.port();
  }
  RendezvousClient c("127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(c.Set("k", "v", In(absl::Milliseconds(500))).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(c.Get({"k"}, In(absl::Milliseconds(500))).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(RendezvousStoreTest, RefusesEmptyKeysLargeValuesAndAFullStore) {
  Server server;
  ASSERT_TRUE(server.ok());
  RendezvousClient c(server.address());
  EXPECT_EQ(c.Set("", "v", In(absl::Seconds(5))).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      c.Set("big", std::string(RendezvousStore::kMaxValueBytes + 1, 'x'), In(absl::Seconds(5)))
          .code(),
      absl::StatusCode::kResourceExhausted);
  for (size_t i = 0; i < RendezvousStore::kMaxKeys; ++i) {
    ASSERT_TRUE(c.Set(absl::StrCat("k", i), "", In(absl::Seconds(5))).ok()) << i;
  }
  EXPECT_EQ(c.Set("one-more", "v", In(absl::Seconds(5))).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(c.Set("k7", "replaced", In(absl::Seconds(5))).ok());  // replacing still works
}

TEST(RendezvousStoreTest, DropAllExceptKeepsOnlyTheNewIncarnation) {
  Server server;
  ASSERT_TRUE(server.ok());
  RendezvousClient c(server.address());
  for (const char* k : {"old-stage0/0", "old-stage0/1", "new-stage0/1"}) {
    ASSERT_TRUE(c.Set(k, "v", In(absl::Seconds(5))).ok());
  }
  server.store().DropAllExcept("new-stage0/");
  EXPECT_EQ(server.store().size(), 1u);
  EXPECT_TRUE(c.Get({"new-stage0/1"}, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.Get({"old-stage0/0"}, In(absl::Milliseconds(200))).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace strata::dataplane
