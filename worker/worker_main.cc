// strata-worker: one pipeline stage of a Strata cluster. It serves strata.v1.Worker,
// strata.v1.Rendezvous (its stage's Gloo rendezvous store, used when it is TP rank 0) and
// grpc.health.v1 on --listen, and the pipeline data plane on --data-plane-host:port; the
// coordinator tells it everything else (LoadShard). SIGTERM or Shutdown: finish the step in flight,
// then exit 0.
//   strata-worker --listen 127.0.0.1:0 --device cpu --kv-cache-mb 256
// prints "strata-worker: listening on HOST:PORT, data plane ucx HOST:PORT" once serving.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "worker/dataplane/link.h"
#include "worker/dataplane/rendezvous_store.h"
#include "worker/service/worker_service.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50061", "gRPC address (host:port; port 0 = any)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda:N");
ABSL_FLAG(int64_t, kv_cache_mb, 512, "KV cache budget in MiB (both DSA caches, all layers)");
ABSL_FLAG(std::string, data_plane, "ucx",
          "pipeline transport: ucx, or tcp (a plain-socket fallback)");
ABSL_FLAG(std::string, data_plane_host, "127.0.0.1",
          "IPv4 address the data plane listens on and publishes to the coordinator");
ABSL_FLAG(int, data_plane_port, 0, "data-plane port (0 = any)");
ABSL_FLAG(std::string, tp_store_dir, "",
          "tensor parallelism over Gloo: meet in this directory shared by the TP ranks of a stage "
          "(one host or a shared filesystem) instead of TP rank 0's gRPC rendezvous store");

namespace strata {
namespace {

volatile std::sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }

absl::Status Run() {
  ASSIGN_OR_RETURN(const Device device, ParseDevice(absl::GetFlag(FLAGS_device)));
  if (absl::GetFlag(FLAGS_kv_cache_mb) <= 0) {
    return absl::InvalidArgumentError("--kv-cache-mb must be positive");
  }
  dataplane::LinkOptions link_options;
  ASSIGN_OR_RETURN(link_options.transport,
                   dataplane::ParseLinkTransport(absl::GetFlag(FLAGS_data_plane)));
  link_options.listen_host = absl::GetFlag(FLAGS_data_plane_host);
  link_options.listen_port = absl::GetFlag(FLAGS_data_plane_port);
  ASSIGN_OR_RETURN(std::unique_ptr<dataplane::Link> link, dataplane::CreateLink(link_options));

  worker::StageEngineOptions engine_options;
  engine_options.device = device;
  engine_options.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_mb) << 20;
  engine_options.tp_store_dir = absl::GetFlag(FLAGS_tp_store_dir);
  engine_options.tp_host = link_options.listen_host;
  // The Gloo rendezvous store of this worker's stage when it is TP rank 0 (rendezvous.proto).
  dataplane::RendezvousStore rendezvous_store;
  engine_options.rendezvous_store = &rendezvous_store;
  worker::WorkerServiceOptions service_options;
  service_options.device = device;
  service_options.data_plane_address = link->address();
  service_options.ucx = link_options.transport == dataplane::LinkTransport::kUcx;
  worker::WorkerService service(service_options,
                                std::make_unique<worker::StageEngine>(engine_options, link.get()));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.RegisterService(&rendezvous_store);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", absl::GetFlag(FLAGS_listen)));
  }
  service.SetHealthService(server->GetHealthCheckService());
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("strata-worker: listening on %s:%d, data plane %s %s\n", host.c_str(), port,
              absl::GetFlag(FLAGS_data_plane).c_str(), link->address().c_str());
  std::fflush(stdout);

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!service.WaitForShutdownRequest(absl::Milliseconds(200))) {
    if (g_signal != 0) service.RequestShutdown(/*drain=*/true, absl::StrCat("signal ", g_signal));
  }
  service.FinishSteps();  // the step in flight completes and its result is queued
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  LOG(INFO) << "strata-worker: stopped";
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "strata-worker --listen HOST:PORT [--device cpu] [--kv-cache-mb N] [--data-plane ucx|tcp]");
  std::vector<std::string> args = strata::NormalizeFlagNames(argc, argv);
  std::vector<char*> ptrs = strata::ArgvPointers(args);
  absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  strata::InitLogging(argv[0], /*min_level=*/0);
  if (absl::Status s = strata::Run(); !s.ok()) {
    std::fprintf(stderr, "strata-worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
