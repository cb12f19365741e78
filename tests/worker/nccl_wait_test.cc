// The bounded wait behind every NCCL operation, with a fake operation and a fake clock: completion
// is OK without an abort, a reported failure aborts at once, and an operation that never completes
// aborts at its deadline — never later, and never a hang.
#include "worker/dataplane/nccl_wait.h"

#include <string>

#include "gtest/gtest.h"

namespace strata::dataplane {
namespace {

struct FakeOperation {
  int polls = 0;
  int done_after = -1;  // kDone on this poll (-1: never)
  int fail_after = -1;  // kFailed on this poll (-1: never)
  int aborts = 0;
  absl::Time now = absl::UnixEpoch();
  absl::Duration slept;

  NcclWaitHooks Hooks() {
    NcclWaitHooks h;
    h.poll = [this](std::string* error) {
      const int n = polls++;
      if (n == fail_after) {
        *error = "remote process exited";
        return PollResult::kFailed;
      }
      return n == done_after ? PollResult::kDone : PollResult::kPending;
    };
    h.abort = [this] { ++aborts; };
    h.now = [this] { return now; };
    h.pause = [this](absl::Duration d) {
      // Every poll costs a microsecond of fake time, plus the pause.
      now += absl::Microseconds(1) + d;
      slept += d;
    };
    return h;
  }
};

TEST(NcclWaitTest, CompletionIsOkWithoutAbort) {
  FakeOperation op;
  op.done_after = 5000;
  const absl::Status s = WaitOrAbort("all-reduce", op.now + absl::Seconds(30), op.Hooks());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(op.polls, 5001);
  EXPECT_EQ(op.aborts, 0);
}

TEST(NcclWaitTest, AFailureAbortsAtOnceAndNamesTheOperation) {
  FakeOperation op;
  op.fail_after = 3;
  const absl::Status s =
      WaitOrAbort("send to world rank 2", op.now + absl::Seconds(30), op.Hooks());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("send to world rank 2"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("remote process exited"), absl::string_view::npos) << s;
  EXPECT_EQ(op.polls, 4);
  EXPECT_EQ(op.aborts, 1);
}

TEST(NcclWaitTest, AnOperationThatNeverCompletesAbortsAtItsDeadline) {
  FakeOperation op;
  const absl::Time deadline = op.now + absl::Seconds(2);
  const absl::Status s = WaitOrAbort("join of world rank 1 of 2", deadline, op.Hooks());
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(op.aborts, 1);
  EXPECT_GE(op.now, deadline);
  // Stopped within one (capped) pause of the deadline.
  EXPECT_LE(op.now, deadline + absl::Milliseconds(1) + absl::Microseconds(1));
  // A long wait sleeps rather than spins: most of the 2 s went to pauses.
  EXPECT_GT(op.slept, absl::Seconds(1));
}

TEST(NcclWaitTest, CompletionAtTheLastPollBeforeTheDeadlineIsNotAFailure) {
  FakeOperation op;
  op.done_after = 0;
  // The deadline has passed already, but the first look finds the operation done.
  const absl::Status s = WaitOrAbort("recv", op.now - absl::Seconds(1), op.Hooks());
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(op.aborts, 0);
}

TEST(NcclWaitTest, PausesStartAtZeroAndStayBounded) {
  EXPECT_EQ(NcclPollPause(0), absl::ZeroDuration());
  absl::Duration previous = absl::ZeroDuration();
  for (int polls = 0; polls < 100000; polls += 7) {
    const absl::Duration d = NcclPollPause(polls);
    EXPECT_GE(d, previous) << polls;
    EXPECT_LE(d, absl::Milliseconds(1)) << polls;
    previous = d;
  }
  EXPECT_EQ(previous, absl::Milliseconds(1));
}

}  // namespace
}  // namespace strata::dataplane
