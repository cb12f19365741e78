// strata.v1.Rendezvous (proto/strata/v1/rendezvous.proto): the key-value store where the ranks of
// a tensor-parallel group meet. TP rank 0's worker serves it on its gRPC server; every rank reads
// and writes it through RendezvousClient (the Gloo rendezvous uses it through a gloo Store adapter,
// gloo_collective.cc). Nothing here blocks a gRPC thread for long: a Get waits at most one second,
// and clients poll until their own deadline.
#ifndef STRATA_WORKER_DATAPLANE_RENDEZVOUS_STORE_H_
#define STRATA_WORKER_DATAPLANE_RENDEZVOUS_STORE_H_

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "strata/v1/rendezvous.grpc.pb.h"

namespace strata::dataplane {

// The server side, in memory. Thread-safe.
class RendezvousStore final : public v1::Rendezvous::Service {
 public:
  static constexpr size_t kMaxKeys = 4096;
  static constexpr size_t kMaxValueBytes = 64 << 10;
  static constexpr absl::Duration kMaxWait = absl::Seconds(1);

  grpc::Status Set(grpc::ServerContext*, const v1::RendezvousSetRequest*,
                   v1::RendezvousSetResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::RendezvousGetRequest*,
                   v1::RendezvousGetResponse*) override;

  // Drops every key that does not start with `prefix`: a new incarnation of the group begins and
  // the old one's keys are never read again. Keys already set under `prefix` stay.
  void DropAllExcept(absl::string_view prefix);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> values_;
};

// A client of one store. Every call retries an unreachable server (it may be restarting) until
// its deadline. Thread-compatible.
class RendezvousClient {
 public:
  explicit RendezvousClient(const std::string& address);

  absl::Status Set(const std::string& key, const std::string& value, absl::Time deadline);
  // The values of `keys` once all are set; DEADLINE_EXCEEDED naming the missing ones otherwise.
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Time deadline);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Rendezvous::Stub> stub_;
};

}  // namespace strata::dataplane

#endif  // STRATA_WORKER_DATAPLANE_RENDEZVOUS_STORE_H_
