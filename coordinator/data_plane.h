// The data plane the coordinator sets up between its workers (docs/protocol.md, "LoadShard"):
// which transports carry the activations, and the DataPlaneConfig every LoadShard carries.
#ifndef STRATA_COORDINATOR_DATA_PLANE_H_
#define STRATA_COORDINATOR_DATA_PLANE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/cluster_config.h"
#include "strata/v1/worker.pb.h"

namespace strata::coordinator {

struct Transports {
  strata::v1::Transport pipeline = strata::v1::TRANSPORT_UCX;
  strata::v1::Transport tensor_parallel = strata::v1::TRANSPORT_GLOO;
  // Whether world rank 0 must create an NCCL unique id.
  bool nccl() const {
    return pipeline == strata::v1::TRANSPORT_NCCL || tensor_parallel == strata::v1::TRANSPORT_NCCL;
  }
};

// From the cluster file's choice and the workers' handshakes (`hello[i]` from `addresses[i]`,
// stage-major). FAILED_PRECONDITION naming the worker when the file asks for NCCL and a worker does
// not report it (a CPU worker, or a build without NCCL).
absl::StatusOr<Transports> ChooseTransports(
    const DataPlaneChoice& choice, const std::vector<std::string>& addresses,
    const std::vector<strata::v1::HandshakeResponse>& hello);

struct DataPlaneInputs {
  Transports transports;
  int tensor_parallel_size = 1;
  std::vector<std::string> addresses;                // gRPC host:port, stage-major
  std::vector<strata::v1::HandshakeResponse> hello;  // one per address
  std::string nccl_unique_id;                        // from world rank 0; empty without NCCL
  std::string rendezvous_id;
  double operation_timeout_s = 30;
};

// The DataPlaneConfig of every LoadShard of one bring-up: the transports, every worker as a peer
// (stage, TP rank, world rank = its index, data-plane and gRPC addresses), the NCCL id, the
// rendezvous id and the timeout.
strata::v1::DataPlaneConfig MakeDataPlaneConfig(const DataPlaneInputs& inputs);

// An id no other bring-up of any coordinator uses: the coordinator id, `generation` and 64 random
// bits.
std::string NewRendezvousId(absl::string_view coordinator_id, uint64_t generation);

}  // namespace strata::coordinator

#endif  // STRATA_COORDINATOR_DATA_PLANE_H_
