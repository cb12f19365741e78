#include "worker/dataplane/rendezvous_store.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace strata::dataplane {
namespace {

// How long a client sleeps before asking an unreachable server again.
constexpr absl::Duration kRetryPause = absl::Milliseconds(100);
// gRPC's own allowance on top of the server-side wait of one Get.
constexpr absl::Duration kRpcSlack = absl::Seconds(5);

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Whether a failed call may be tried again before the deadline: the server is not up yet (a
// restarting worker) or the single call's own deadline passed.
bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

grpc::Status RendezvousStore::Set(grpc::ServerContext*, const v1::RendezvousSetRequest* req,
                                  v1::RendezvousSetResponse*) {
  if (req->key().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "empty key"};
  if (req->value().size() > kMaxValueBytes) {
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("value of ", req->value().size(), " bytes over ", kMaxValueBytes)};
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (values_.size() >= kMaxKeys && values_.count(req->key()) == 0) {
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, absl::StrCat("store full (", kMaxKeys, " keys)")};
  }
  values_[req->key()] = req->value();
  cv_.notify_all();
  return grpc::Status::OK;
}

grpc::Status RendezvousStore::Get(grpc::ServerContext* ctx, const v1::RendezvousGetRequest* req,
                                  v1::RendezvousGetResponse* resp) {
  if (req->keys().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "no keys"};
  const absl::Duration wait = std::min(absl::Milliseconds(req->wait_ms()), kMaxWait);
  auto present = [&] {
    return std::all_of(req->keys().begin(), req->keys().end(),
                       [&](const std::string& k) { return values_.count(k) != 0; });
  };
  std::unique_lock<std::mutex> lock(mu_);
  const bool ready = cv_.wait_for(lock, absl::ToChronoMilliseconds(wait), present) &&
                     (ctx == nullptr || !ctx->IsCancelled());
  resp->set_ready(ready);
  if (ready) {
    for (const std::string& k : req->keys()) resp->add_values(values_.at(k));
  }
  return grpc::Status::OK;
}

void RendezvousStore::DropAllExcept(absl::string_view prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = values_.begin(); it != values_.end();) {
    it = absl::StartsWith(it->first, prefix) ? std::next(it) : values_.erase(it);
  }
}

size_t RendezvousStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

RendezvousClient::RendezvousClient(const std::string& address) : address_(address) {
  // A restarting rank 0 comes back within seconds: reconnect attempts stay at most 1 s apart
  // (gRPC's default backoff grows to minutes).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::Rendezvous::NewStub(channel_);
}

absl::Status RendezvousClient::Set(const std::string& key, const std::string& value,
                                   absl::Time deadline) {
  v1::RendezvousSetRequest req;
  req.set_key(key);
  req.set_value(value);
  grpc::Status last;
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(ToChrono(std::min(deadline, absl::Now() + kRpcSlack)));
    v1::RendezvousSetResponse resp;
    last = stub_->Set(&ctx, req, &resp);
    if (last.ok()) return absl::OkStatus();
    if (!Retryable(last)) {
      return absl::Status(
          FromGrpc(last).code(),
          absl::StrCat("rendezvous store ", address_, ": set ", key, ": ", last.error_message()));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRetryPause));
  }
  return absl::DeadlineExceededError(absl::StrCat("rendezvous store ", address_, ": set ", key,
                                                  " timed out (", last.error_message(), ")"));
}

absl::StatusOr<std::vector<std::string>> RendezvousClient::Get(const std::vector<std::string>& keys,
                                                               absl::Time deadline) {
  v1::RendezvousGetRequest req;
  for (const std::string& k : keys) req.add_keys(k);
  grpc::Status last;
  for (absl::Time now = absl::Now(); now < deadline; now = absl::Now()) {
    const absl::Duration wait = std::min(deadline - now, RendezvousStore::kMaxWait);
    req.set_wait_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(wait)));
    grpc::ClientContext ctx;
    ctx.set_deadline(ToChrono(now + wait + kRpcSlack));
    v1::RendezvousGetResponse resp;
    last = stub_->Get(&ctx, req, &resp);
    if (last.ok()) {
      if (resp.ready() && resp.values_size() == static_cast<int>(keys.size())) {
        return std::vector<std::string>(resp.values().begin(), resp.values().end());
      }
      continue;  // the server waited; ask again
    }
    if (!Retryable(last)) {
      return absl::Status(FromGrpc(last).code(), absl::StrCat("rendezvous store ", address_,
                                                              ": get: ", last.error_message()));
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(kRetryPause));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "rendezvous store ", address_, ": timed out waiting for ", absl::StrJoin(keys, ", "),
      last.ok() ? "" : absl::StrCat(" (", last.error_message(), ")")));
}

}  // namespace strata::dataplane
