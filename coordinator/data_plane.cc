#include "coordinator/data_plane.h"

#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace strata::coordinator {

namespace v1 = strata::v1;

absl::StatusOr<Transports> ChooseTransports(const DataPlaneChoice& choice,
                                            const std::vector<std::string>& addresses,
                                            const std::vector<v1::HandshakeResponse>& hello) {
  const v1::HandshakeResponse* without = nullptr;
  size_t without_index = 0;
  for (size_t i = 0; i < hello.size(); ++i) {
    if (!(hello[i].device().kind() == "cuda" && hello[i].capabilities().nccl())) {
      without = &hello[i];
      without_index = i;
      break;
    }
  }
  // NCCL by default only where it adds something and can work: several workers, all of them with
  // NCCL, each on its own physical GPU (NCCL refuses two ranks on one device, as when several
  // workers share a GPU for a test).
  absl::flat_hash_set<std::string> gpus;
  for (const v1::HandshakeResponse& h : hello) gpus.insert(h.device().uuid());
  const bool distinct_gpus = !gpus.contains("") && gpus.size() == hello.size();
  const bool auto_nccl = without == nullptr && hello.size() > 1 && distinct_gpus;
  auto resolve = [&](TransportChoice c, v1::Transport host,
                     absl::string_view what) -> absl::StatusOr<v1::Transport> {
    switch (c) {
      case TransportChoice::kHost:
        return host;
      case TransportChoice::kAuto:
        return auto_nccl ? v1::TRANSPORT_NCCL : host;
      case TransportChoice::kNccl:
        if (without != nullptr) {
          return absl::FailedPreconditionError(
              absl::StrCat("data_plane.", what, " is nccl, but worker ", addresses[without_index],
                           " (", without->device().kind(), ") does not report NCCL"));
        }
        return v1::TRANSPORT_NCCL;
    }
    return host;
  };
  Transports t;
  auto pipeline = resolve(choice.pipeline, v1::TRANSPORT_UCX, "pipeline");
  if (!pipeline.ok()) return pipeline.status();
  auto tp = resolve(choice.tensor_parallel, v1::TRANSPORT_GLOO, "tensor_parallel");
  if (!tp.ok()) return tp.status();
  t.pipeline = *pipeline;
  t.tensor_parallel = *tp;
  return t;
}

v1::DataPlaneConfig MakeDataPlaneConfig(const DataPlaneInputs& in) {
  v1::DataPlaneConfig dp;
  dp.set_pipeline_transport(in.transports.pipeline);
  dp.set_tp_transport(in.transports.tensor_parallel);
  dp.set_nccl_unique_id(in.nccl_unique_id);
  dp.set_operation_timeout_ms(static_cast<uint32_t>(in.operation_timeout_s * 1e3));
  dp.set_rendezvous_id(in.rendezvous_id);
  const int tp = in.tensor_parallel_size;
  for (size_t j = 0; j < in.addresses.size(); ++j) {
    v1::DataPlanePeer* peer = dp.add_peers();
    peer->set_stage(static_cast<uint32_t>(j / tp));
    peer->set_tp_rank(static_cast<uint32_t>(j % tp));
    peer->set_world_rank(static_cast<uint32_t>(j));
    if (j < in.hello.size()) peer->set_data_plane_address(in.hello[j].data_plane_address());
    peer->set_worker_address(in.addresses[j]);
  }
  return dp;
}

std::string NewRendezvousId(absl::string_view coordinator_id, uint64_t generation) {
  std::random_device device;
  const uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  return absl::StrCat(coordinator_id, "-", generation, "-", absl::Hex(bits, absl::kZeroPad16));
}

}  // namespace strata::coordinator
