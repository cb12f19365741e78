#include "worker/dataplane/nccl_wait.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"

namespace strata::dataplane {

absl::Duration NcclPollPause(int polls) {
  constexpr int kSpinPolls = 1000;
  if (polls < kSpinPolls) return absl::ZeroDuration();
  const int doublings = std::min((polls - kSpinPolls) / 16, 6);
  return std::min(absl::Microseconds(16) * (1 << doublings), absl::Milliseconds(1));
}

absl::Status WaitOrAbort(absl::string_view what, absl::Time deadline, const NcclWaitHooks& hooks) {
  std::function<void(absl::Duration)> pause = hooks.pause;
  if (!pause) {
    pause = [](absl::Duration d) {
      if (d <= absl::ZeroDuration()) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(absl::ToChronoMicroseconds(d));
      }
    };
  }
  for (int polls = 0;; ++polls) {
    std::string error;
    switch (hooks.poll(&error)) {
      case PollResult::kDone:
        return absl::OkStatus();
      case PollResult::kFailed:
        hooks.abort();
        return absl::UnavailableError(absl::StrCat("nccl ", what, ": ", error));
      case PollResult::kPending:
        break;
    }
    if (hooks.now() >= deadline) {
      hooks.abort();
      return absl::DeadlineExceededError(
          absl::StrCat("nccl ", what, ": not complete within the data-plane timeout (a peer is ",
                       "gone or never joined); communicator aborted"));
    }
    pause(NcclPollPause(polls));
  }
}

}  // namespace strata::dataplane
