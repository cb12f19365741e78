#include "worker/dataplane/gloo_collective.h"

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gloo/allreduce.h"
#include "gloo/common/error.h"
#include "gloo/math.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/file_store.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/tcp/device.h"
#include "worker/dataplane/rendezvous_store.h"

namespace strata::dataplane {
namespace {

// Gloo reports failures by exception; this maps them to a Status. A timeout is DEADLINE_EXCEEDED,
// anything else (a closed connection, a refused peer) UNAVAILABLE.
absl::Status FromException(const std::exception& e, absl::string_view what) {
  const std::string message = e.what();
  const bool timed_out =
      message.find("imed out") != std::string::npos || message.find("imeout") != std::string::npos;
  const std::string text = absl::StrCat("gloo ", what, ": ", message);
  return timed_out ? absl::DeadlineExceededError(text) : absl::UnavailableError(text);
}

// gloo's Store over a strata.v1.Rendezvous server. Gloo expects failures as exceptions; a missing
// key past the timeout throws an IoException saying "timed out" (FromException maps it).
class GrpcStore : public gloo::rendezvous::Store {
 public:
  GrpcStore(const std::string& address, std::chrono::milliseconds timeout)
      : client_(address), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    Throw(client_.Set(key, std::string(data.begin(), data.end()), Deadline(timeout_)));
  }
  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::vector<std::string>> v = client_.Get({key}, Deadline(timeout_));
    Throw(v.status());
    return std::vector<char>((*v)[0].begin(), (*v)[0].end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    Throw(client_.Get(keys, Deadline(timeout)).status());
  }

 private:
  static absl::Time Deadline(std::chrono::milliseconds timeout) {
    return absl::Now() + absl::FromChrono(timeout);
  }
  static void Throw(const absl::Status& s) {
    if (s.ok()) return;
    const std::string prefix = absl::IsDeadlineExceeded(s) ? "timed out: " : "";
    throw gloo::IoException(prefix + std::string(s.message()));
  }

  RendezvousClient client_;
  std::chrono::milliseconds timeout_;
};

class GlooCollective : public model::Collective {
 public:
  GlooCollective(std::shared_ptr<gloo::Context> context, std::chrono::milliseconds timeout)
      : context_(std::move(context)), timeout_(timeout) {}

  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }

  absl::Status AllReduceSum(Tensor& x) override {
    if (broken_) return absl::FailedPreconditionError("gloo collective failed earlier");
    if (x.dtype() != DType::kF32 || !x.device().is_cpu() || !x.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("all-reduce needs a contiguous f32 host tensor, got ", x.DebugString()));
    }
    if (x.numel() == 0) return absl::OkStatus();
    try {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(x.data<float>(), static_cast<size_t>(x.numel()));
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    } catch (const std::exception& e) {
      broken_ = true;  // a failed Gloo context cannot be reused
      return FromException(e, "all-reduce");
    }
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<gloo::Context> context_;
  std::chrono::milliseconds timeout_;
  bool broken_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<model::Collective>> CreateGlooCollective(
    const GlooCollectiveOptions& o) {
  if (o.size < 1 || o.rank < 0 || o.rank >= o.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("gloo rank ", o.rank, " of ", o.size, " is not in [0, size)"));
  }
  if (o.store_dir.empty() == o.store_address.empty()) {
    return absl::InvalidArgumentError(
        "gloo needs exactly one rendezvous store: a store address or a directory");
  }
  if (o.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("gloo timeout <= 0");
  const std::chrono::milliseconds timeout(absl::ToInt64Milliseconds(o.timeout));
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = o.host;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    std::unique_ptr<gloo::rendezvous::Store> base;
    if (o.store_address.empty()) {
      base = std::make_unique<gloo::rendezvous::FileStore>(o.store_dir);
    } else {
      base = std::make_unique<GrpcStore>(o.store_address, timeout);
    }
    gloo::rendezvous::PrefixStore store(o.prefix, *base);
    auto context = std::make_shared<gloo::rendezvous::Context>(o.rank, o.size);
    context->setTimeout(timeout);
    context->connectFullMesh(store, device);
    return std::make_unique<GlooCollective>(std::move(context), timeout);
  } catch (const std::exception& e) {
    return FromException(e, absl::StrCat("rendezvous of rank ", o.rank, " of ", o.size, " at ",
                                         o.store_address.empty() ? o.store_dir : o.store_address,
                                         " (", o.prefix, ")"));
  }
}

}  // namespace strata::dataplane
