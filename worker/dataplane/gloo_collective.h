// model::Collective over Gloo (TCP transport): the all-reduce between the tensor-parallel ranks of
// one pipeline stage, on host tensors. Ranks meet through a store under a prefix naming the group:
// either the strata.v1.Rendezvous store that TP rank 0's worker serves over gRPC
// (rendezvous_store.h; works across hosts and pods) or a gloo::rendezvous::FileStore directory
// every rank can read and write (one host, or a shared filesystem). The prefix must be fresh for
// each incarnation of a group: a FileStore's keys outlive the processes.
#ifndef STRATA_WORKER_DATAPLANE_GLOO_COLLECTIVE_H_
#define STRATA_WORKER_DATAPLANE_GLOO_COLLECTIVE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/model/collective.h"

namespace strata::dataplane {

struct GlooCollectiveOptions {
  int rank = 0;
  int size = 1;
  // Exactly one of: host:port of a strata.v1.Rendezvous server, or a FileStore directory shared
  // by the ranks (must exist).
  std::string store_address;
  std::string store_dir;
  std::string prefix = "tp";       // separates groups sharing a store
  std::string host = "127.0.0.1";  // address this rank's Gloo TCP device binds and publishes
  // Bounds the rendezvous and every collective: a peer that never arrives or vanishes is an error
  // after at most this long.
  absl::Duration timeout = absl::Seconds(30);
};

// Connects the full mesh of `size` ranks; blocks until every rank has called it or the timeout.
absl::StatusOr<std::unique_ptr<model::Collective>> CreateGlooCollective(
    const GlooCollectiveOptions& options);

}  // namespace strata::dataplane

#endif  // STRATA_WORKER_DATAPLANE_GLOO_COLLECTIVE_H_
