// strata-model-bench as CI runs it: the whole harness on the CPU backend with the tiny model. The
// JSON must hold every case with finite times and floors (no timing assertions).
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace strata {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
  nlohmann::json json;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Outcome RunBench(const std::string& name, const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("strata_model_bench_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path json = dir / "bench.json", out = dir / "out", err = dir / "err";
  const std::string cmd =
      absl::StrCat(STRATA_MODEL_BENCH_PATH, " --device cpu --tiny ", args, " --json ",
                   json.string(), " >", out.string(), " 2>", err.string());
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = Slurp(out);
  o.err = Slurp(err);
  if (fs::exists(json)) o.json = nlohmann::json::parse(Slurp(json));
  return o;
}

bool PositiveFinite(const nlohmann::json& v) {
  return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0;
}

void ExpectRanCase(const nlohmann::json& c) {
  SCOPED_TRACE(c.dump());
  EXPECT_EQ(c.at("status"), "ok");
  for (const char* key :
       {"median_ms", "min_ms", "per_layer_ms", "bandwidth_floor_ms", "flop_floor_ms", "floor_ms",
        "floor_fraction", "per_layer_flops", "experts_counted", "experts_expected"}) {
    EXPECT_TRUE(PositiveFinite(c.at(key))) << key;
  }
  EXPECT_TRUE(PositiveFinite(c.at("per_layer_bytes").at("total")));
  EXPECT_TRUE(PositiveFinite(c.at("per_layer_bytes").at("weights")));
  EXPECT_TRUE(PositiveFinite(c.at("per_layer_bytes").at("cache")));
  EXPECT_EQ(c.at("finite_output"), true);
  // The breakdown pass timed the model's operations.
  EXPECT_TRUE(PositiveFinite(c.at("breakdown_pass_per_layer_ms")));
  for (const char* op : {"Linear", "SparseMla", "MoeExperts", "MoeRoute"}) {
    EXPECT_TRUE(PositiveFinite(c.at("breakdown_per_layer_ms").at(op))) << op;
  }
  EXPECT_GE(c.at("median_ms").get<double>(), c.at("min_ms").get<double>());
}

TEST(ModelBenchCliTest, RunsEveryDecodeAndPrefillCaseOnTheCpu) {
  const Outcome o = RunBench("default", "--layers 2");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const nlohmann::json& j = o.json;
  EXPECT_EQ(j.at("model").at("layers"), 2);
  EXPECT_EQ(j.at("model").at("cache_aliased_across_layers"), true);
  EXPECT_TRUE(PositiveFinite(j.at("floors").at("copy_gbps")));
  EXPECT_TRUE(PositiveFinite(j.at("floors").at("matrix_tflops")));
  int decode = 0, prefill = 0;
  std::set<std::pair<int64_t, int64_t>> shapes;
  for (const nlohmann::json& c : j.at("cases")) {
    ExpectRanCase(c);
    if (c.at("kind") == "decode") {
      ++decode;
      shapes.insert({c.at("batch").get<int64_t>(), c.at("context").get<int64_t>()});
      EXPECT_EQ(c.at("runs"), 10);
    } else {
      ++prefill;
      EXPECT_TRUE(PositiveFinite(c.at("tokens_per_s_per_layer")));
      EXPECT_TRUE(PositiveFinite(c.at("floor_tokens_per_s_per_layer")));
    }
  }
  EXPECT_EQ(decode, 12);  // batches 1, 8, 32, 64 × the three tiny contexts
  EXPECT_EQ(shapes.size(), 12u);
  EXPECT_EQ(prefill, 2);
  // Batch 1 touches exactly top-k experts in each layer.
  EXPECT_EQ(j.at("cases").at(0).at("batch"), 1);
  EXPECT_EQ(j.at("cases").at(0).at("experts_counted"), 4.0);
}

TEST(ModelBenchCliTest, IndexShareAndOtherCacheDtypes) {
  const Outcome o = RunBench("indexshare",
                             "--layers 3 --indexshare --latent-cache fp8 --indexer-cache bf16 "
                             "--batches 1,8 --contexts 100 --prefill 300 --prefill-chunk 128 "
                             "--runs 2 --prefill-runs 1");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.json.at("model").at("indexshare"), true);
  EXPECT_EQ(o.json.at("model").at("latent_cache"), "fp8");
  ASSERT_EQ(o.json.at("cases").size(), 3u);
  for (const nlohmann::json& c : o.json.at("cases")) ExpectRanCase(c);
  EXPECT_EQ(o.json.at("cases").at(2).at("chunk"), 128);
}

TEST(ModelBenchCliTest, BadArgumentsAreOneLineErrors) {
  for (const char* args : {"--latent-cache fp16", "--batches 1,x", "--contexts 0"}) {
    const Outcome o = RunBench("bad", args);
    EXPECT_EQ(o.exit_code, 1) << args;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_TRUE(o.json.is_null()) << args;
  }
}

}  // namespace
}  // namespace strata
