// The bounded wait behind every NCCL operation (nccl.cc), kept free of NCCL and CUDA types so that
// it is unit-tested on any machine. NCCL communicators are created nonblocking: initialisation,
// splits and operations return at once, and the caller polls ncclCommGetAsyncError (and an event
// behind the operation on the stream) until it completed, failed, or its deadline passed. On a
// failure or at the deadline the communicator is aborted (ncclCommAbort ends the operation's
// kernels), so that a vanished peer is an error, never a hang.
#ifndef STRATA_WORKER_DATAPLANE_NCCL_WAIT_H_
#define STRATA_WORKER_DATAPLANE_NCCL_WAIT_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace strata::dataplane {

enum class PollResult { kDone, kPending, kFailed };

struct NcclWaitHooks {
  // One look at the operation; on kFailed it says why in *error.
  std::function<PollResult(std::string* error)> poll;
  // Aborts the communicator(s) the operation runs on. Called at most once, only on failure.
  std::function<void()> abort;
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Sleeps between polls (zero: yield).
  std::function<void(absl::Duration)> pause;
};

// The pause before poll number `polls` (0-based): none for the first polls (a small collective
// completes in microseconds), then growing to 1 ms so that a long wait does not burn a core.
absl::Duration NcclPollPause(int polls);

// Polls until done. A failure gives UNAVAILABLE and a passed deadline DEADLINE_EXCEEDED, both
// naming `what`, after abort() ran. The deadline is checked after each pending poll, so an
// operation that completes is never failed for being late to be looked at.
absl::Status WaitOrAbort(absl::string_view what, absl::Time deadline, const NcclWaitHooks& hooks);

}  // namespace strata::dataplane

#endif  // STRATA_WORKER_DATAPLANE_NCCL_WAIT_H_
