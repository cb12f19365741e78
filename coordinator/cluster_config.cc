#include "coordinator/cluster_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstddef>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace strata::coordinator {
namespace {

std::string Where(const std::string& path, const YAML::Node& node) {
  if (!node.IsDefined()) return path;  // Mark() of a missing node throws
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return path;
  return absl::StrCat(path, " (line ", mark.line + 1, ")");
}

absl::Status Invalid(const std::string& path, const YAML::Node& node, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(Where(path, node), ": ", why));
}

std::string Join(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : absl::StrCat(parent, ".", key);
}

// `node` must be a map whose keys are all in `allowed`.
absl::Status CheckMap(const YAML::Node& node, const std::string& path,
                      std::initializer_list<const char*> allowed) {
  if (!node.IsMap()) return Invalid(path.empty() ? "config" : path, node, "expected a mapping");
  const std::set<std::string> known(allowed.begin(), allowed.end());
  for (const auto& entry : node) {
    std::string key;
    try {
      key = entry.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return Invalid(path.empty() ? "config" : path, entry.first, "keys must be strings");
    }
    if (!known.contains(key)) {
      return Invalid(
          Join(path, key), entry.first,
          absl::StrCat("unknown key (expected one of: ", absl::StrJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
const char* TypeName() {
  if constexpr (std::is_same_v<T, bool>) return "a boolean";
  if constexpr (std::is_same_v<T, int>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  return "a string";
}

// Reads `parent[key]` into `out` when present; leaves the default otherwise.
template <typename T>
absl::Status Read(const YAML::Node& parent, const char* key, const std::string& parent_path,
                  T* out) {
  const std::string path = Join(parent_path, key);
  const YAML::Node node = parent[key];
  if (!node.IsDefined()) return absl::OkStatus();
  if (!node.IsScalar()) return Invalid(path, node, absl::StrCat("expected ", TypeName<T>()));
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception&) {
    return Invalid(path, node,
                   absl::StrCat("expected ", TypeName<T>(), ", got '", node.Scalar(), "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadPositive(const YAML::Node& parent, const char* key, const std::string& path,
                          int* out) {
  RETURN_IF_ERROR(Read(parent, key, path, out));
  if (*out < 1) {
    return Invalid(Join(path, key), parent[key], absl::StrCat("must be >= 1, got ", *out));
  }
  return absl::OkStatus();
}

absl::Status ReadSeconds(const YAML::Node& parent, const char* key, double* out) {
  RETURN_IF_ERROR(Read(parent, key, "timeouts", out));
  if (!std::isfinite(*out) || *out <= 0) {
    return Invalid(Join("timeouts", key), parent[key],
                   absl::StrCat("must be a positive number of seconds, got ", *out));
  }
  return absl::OkStatus();
}

absl::Status ReadAddresses(const YAML::Node& node, const std::string& path,
                           std::vector<std::string>* out) {
  if (!node.IsDefined()) return Invalid(path, node, "missing: a list of worker host:port");
  if (!node.IsSequence()) return Invalid(path, node, "expected a list of host:port");
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    if (!node[i].IsScalar()) return Invalid(item_path, node[i], "expected host:port");
    const std::string address = node[i].Scalar();
    if (absl::Status s = CheckAddress(address); !s.ok()) {
      return Invalid(item_path, node[i], s.message());
    }
    out->push_back(address);
  }
  return absl::OkStatus();
}

absl::StatusOr<LayerRange> ReadLayerRange(const YAML::Node& node, const std::string& path) {
  if (!node.IsSequence() || node.size() != 2) {
    return Invalid(path, node, "expected [begin, end): two layer indices");
  }
  LayerRange r;
  try {
    r.begin = node[0].as<int>();
    r.end = node[1].as<int>();
  } catch (const YAML::Exception&) {
    return Invalid(path, node, "layer indices must be integers");
  }
  if (r.begin < 0 || r.end <= r.begin) {
    return Invalid(path, node,
                   absl::StrCat("need 0 <= begin < end, got [", r.begin, ", ", r.end, ")"));
  }
  return r;
}

absl::Status ReadPipeline(const YAML::Node& root, ClusterConfig& config) {
  const YAML::Node p = root["pipeline"];
  if (!p.IsDefined()) return Invalid("pipeline", root, "missing");
  RETURN_IF_ERROR(CheckMap(p, "pipeline", {"num_stages", "workers", "stages"}));
  const int tp = config.tensor_parallel_size;
  if (p["stages"].IsDefined()) {
    if (p["num_stages"].IsDefined() || p["workers"].IsDefined()) {
      return Invalid("pipeline", p, "give either stages, or num_stages with workers; not both");
    }
    const YAML::Node stages = p["stages"];
    if (!stages.IsSequence() || stages.size() == 0) {
      return Invalid("pipeline.stages", stages, "expected a non-empty list of stages");
    }
    for (size_t s = 0; s < stages.size(); ++s) {
      const std::string path = absl::StrCat("pipeline.stages[", s, "]");
      RETURN_IF_ERROR(CheckMap(stages[s], path, {"workers", "layers"}));
      StageConfig stage;
      RETURN_IF_ERROR(ReadAddresses(stages[s]["workers"], path + ".workers", &stage.workers));
      if (static_cast<int>(stage.workers.size()) != tp) {
        return Invalid(
            path + ".workers", stages[s]["workers"],
            absl::StrCat("has ", stage.workers.size(), " workers; tensor_parallel_size is ", tp));
      }
      if (stages[s]["layers"].IsDefined()) {
        ASSIGN_OR_RETURN(stage.layers, ReadLayerRange(stages[s]["layers"], path + ".layers"));
      }
      if (s > 0 && stage.layers.has_value() != config.stages[0].layers.has_value()) {
        return Invalid(path, stages[s], "give layers for every stage or for none");
      }
      config.stages.push_back(std::move(stage));
    }
    return absl::OkStatus();
  }
  int num_stages = 0;
  if (!p["num_stages"].IsDefined()) {
    return Invalid("pipeline", p, "needs stages, or num_stages with workers");
  }
  RETURN_IF_ERROR(ReadPositive(p, "num_stages", "pipeline", &num_stages));
  std::vector<std::string> workers;
  RETURN_IF_ERROR(ReadAddresses(p["workers"], "pipeline.workers", &workers));
  if (static_cast<int>(workers.size()) != num_stages * tp) {
    return Invalid("pipeline.workers", p["workers"],
                   absl::StrCat("has ", workers.size(), " workers; num_stages × ",
                                "tensor_parallel_size = ", num_stages * tp));
  }
  for (int s = 0; s < num_stages; ++s) {
    StageConfig stage;
    const auto first = workers.begin() + static_cast<ptrdiff_t>(s) * tp;
    stage.workers.assign(first, first + tp);
    config.stages.push_back(std::move(stage));
  }
  return absl::OkStatus();
}

template <typename E>
absl::Status ReadDType(const YAML::Node& parent, const char* key, E* out) {
  std::string name;
  RETURN_IF_ERROR(Read(parent, key, "kv_cache", &name));
  if (name.empty()) return absl::OkStatus();
  if (name == "f32") {
    *out = E::kF32;
  } else if (name == "bf16") {
    *out = E::kBF16;
  } else if (name == "fp8") {
    *out = E::kF8;
  } else {
    return Invalid(Join("kv_cache", key), parent[key],
                   absl::StrCat("expected f32, bf16 or fp8, got '", name, "'"));
  }
  return absl::OkStatus();
}

// data_plane.<key>: "auto", "nccl" or `host_name` ("host" for the pipeline, "gloo" for TP).
absl::Status ReadTransport(const YAML::Node& parent, const char* key, const char* host_name,
                           TransportChoice* out) {
  std::string name = "auto";
  RETURN_IF_ERROR(Read(parent, key, "data_plane", &name));
  if (name == "auto") {
    *out = TransportChoice::kAuto;
  } else if (name == "nccl") {
    *out = TransportChoice::kNccl;
  } else if (name == host_name) {
    *out = TransportChoice::kHost;
  } else {
    return Invalid(Join("data_plane", key), parent[key],
                   absl::StrCat("expected auto, nccl or ", host_name, ", got '", name, "'"));
  }
  return absl::OkStatus();
}

absl::Status ReadSections(const YAML::Node& root, ClusterConfig& c) {
  RETURN_IF_ERROR(CheckMap(root, "",
                           {"model_dir", "tensor_parallel_size", "pipeline", "kv_cache",
                            "scheduler", "listen", "timeouts", "data_plane"}));
  RETURN_IF_ERROR(Read(root, "model_dir", "", &c.model_dir));
  if (c.model_dir.empty()) return Invalid("model_dir", root, "missing: the checkpoint directory");
  RETURN_IF_ERROR(ReadPositive(root, "tensor_parallel_size", "", &c.tensor_parallel_size));
  RETURN_IF_ERROR(ReadPipeline(root, c));

  std::set<std::string> seen;
  for (int s = 0; s < c.num_stages(); ++s) {
    for (const std::string& w : c.stages[s].workers) {
      if (!seen.insert(w).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("pipeline: worker ", w, " appears twice (stage ", s, ")"));
      }
    }
  }

  if (const YAML::Node kv = root["kv_cache"]; kv.IsDefined()) {
    RETURN_IF_ERROR(CheckMap(
        kv, "kv_cache", {"block_size", "latent_dtype", "indexer_dtype", "enable_prefix_caching"}));
    RETURN_IF_ERROR(Read(kv, "block_size", "kv_cache", &c.kv_cache.block_size));
    if (c.kv_cache.block_size != kvcache::kBlockTokens) {
      return Invalid("kv_cache.block_size", kv["block_size"],
                     absl::StrCat("must be ", kvcache::kBlockTokens, " (the indexer's block), got ",
                                  c.kv_cache.block_size));
    }
    RETURN_IF_ERROR(ReadDType(kv, "latent_dtype", &c.kv_cache.latent_dtype));
    RETURN_IF_ERROR(ReadDType(kv, "indexer_dtype", &c.kv_cache.indexer_dtype));
    RETURN_IF_ERROR(
        Read(kv, "enable_prefix_caching", "kv_cache", &c.kv_cache.enable_prefix_caching));
  }

  if (const YAML::Node sch = root["scheduler"]; sch.IsDefined()) {
    RETURN_IF_ERROR(
        CheckMap(sch, "scheduler",
                 {"max_num_seqs", "max_num_batched_tokens", "max_prefill_chunk", "max_model_len"}));
    RETURN_IF_ERROR(ReadPositive(sch, "max_num_seqs", "scheduler", &c.scheduler.max_num_seqs));
    RETURN_IF_ERROR(ReadPositive(sch, "max_num_batched_tokens", "scheduler",
                                 &c.scheduler.max_num_batched_tokens));
    RETURN_IF_ERROR(
        ReadPositive(sch, "max_prefill_chunk", "scheduler", &c.scheduler.max_prefill_chunk));
    if (sch["max_model_len"].IsDefined()) {
      RETURN_IF_ERROR(ReadPositive(sch, "max_model_len", "scheduler", &c.scheduler.max_model_len));
    }
  }

  if (const YAML::Node listen = root["listen"]; listen.IsDefined()) {
    RETURN_IF_ERROR(CheckMap(listen, "listen", {"client"}));
    RETURN_IF_ERROR(Read(listen, "client", "listen", &c.listen.client));
    if (absl::Status s = CheckAddress(c.listen.client); !s.ok()) {
      return Invalid("listen.client", listen["client"], s.message());
    }
  }

  if (const YAML::Node t = root["timeouts"]; t.IsDefined()) {
    RETURN_IF_ERROR(CheckMap(
        t, "timeouts",
        {"connect_s", "load_s", "warmup_s", "step_s", "data_plane_s", "health_interval_s"}));
    RETURN_IF_ERROR(ReadSeconds(t, "connect_s", &c.timeouts.connect_s));
    RETURN_IF_ERROR(ReadSeconds(t, "load_s", &c.timeouts.load_s));
    RETURN_IF_ERROR(ReadSeconds(t, "warmup_s", &c.timeouts.warmup_s));
    RETURN_IF_ERROR(ReadSeconds(t, "step_s", &c.timeouts.step_s));
    RETURN_IF_ERROR(ReadSeconds(t, "data_plane_s", &c.timeouts.data_plane_s));
    RETURN_IF_ERROR(ReadSeconds(t, "health_interval_s", &c.timeouts.health_interval_s));
  }

  if (const YAML::Node dp = root["data_plane"]; dp.IsDefined()) {
    RETURN_IF_ERROR(CheckMap(dp, "data_plane", {"pipeline", "tensor_parallel"}));
    RETURN_IF_ERROR(ReadTransport(dp, "pipeline", "host", &c.data_plane.pipeline));
    RETURN_IF_ERROR(ReadTransport(dp, "tensor_parallel", "gloo", &c.data_plane.tensor_parallel));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckAddress(absl::string_view address) {
  absl::string_view host;
  absl::string_view port;
  if (!address.empty() && address.front() == '[') {  // [ipv6]:port
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not [ipv6]:port"));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not host:port"));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", address, "': write IPv6 hosts as [addr]:port"));
    }
  }
  int port_number = 0;
  if (host.empty() || !absl::SimpleAtoi(port, &port_number) || port_number < 1 ||
      port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not host:port with a port in 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterConfig> ParseClusterConfig(absl::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster config is not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  }
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError("cluster config is empty");
  }
  ClusterConfig config;
  try {
    RETURN_IF_ERROR(ReadSections(root, config));
  } catch (const YAML::Exception& e) {  // anything the readers above did not anticipate
    return absl::InvalidArgumentError(
        absl::StrCat("cluster config: line ", e.mark.line + 1, ": ", e.msg));
  }
  return config;
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read cluster config ", path));
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text.str());
  if (!config.ok()) return Annotate(config.status(), path);
  return config;
}

}  // namespace strata::coordinator
