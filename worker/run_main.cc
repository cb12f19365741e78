// strata-run: the whole model in one process, no network — for debugging, tests, oracle
// comparisons and the demo.
//   --prompt-ids 1,2,3: prints the generated ids as one JSON line; --logits-out writes the
//     prompt's logits as float32 [prompt_len, vocab] (.npy).
//   --device cuda[:N] runs on a GPU in bf16 (worker/model/cuda_backend.h); --latent-cache and
//     --indexer-cache pick the cache layouts (f32, bf16, fp8).
//   --text "...": encodes with the model's tokenizer.json and streams the generated text to stdout
//     as it forms; a summary (tokens, time, tokens/s) goes to stderr.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/npy.h"
#include "common/status.h"
#include "worker/local_runner.h"
#include "worker/text_stream.h"

ABSL_FLAG(std::string, model, "", "model directory (config.json + safetensors)");
ABSL_FLAG(std::string, prompt_ids, "", "comma-separated prompt token ids");
ABSL_FLAG(std::string, text, "", "prompt text (instead of --prompt-ids); streams text back");
ABSL_FLAG(std::string, format, "completion",
          "with --text: raw, completion (the family's start tokens + text) or chat");
ABSL_FLAG(std::string, tokenizer, "", "tokenizer.json (default: <model>/tokenizer.json)");
ABSL_FLAG(int, max_new_tokens, 16, "tokens to generate");
ABSL_FLAG(int, prefill_chunk, 0, "prompt tokens per step (0 = whole prompt)");
ABSL_FLAG(std::string, logits_out, "", "write the prompt's logits here (.npy, f32)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda:N");
ABSL_FLAG(std::string, latent_cache, "",
          "latent cache layout: f32, bf16 or fp8 (default: f32 on the CPU, bf16 on CUDA)");
ABSL_FLAG(std::string, indexer_cache, "",
          "indexer cache layout: f32, bf16 or fp8 (default: f32 on the CPU, bf16 on CUDA)");
ABSL_FLAG(bool, ignore_eos, false, "keep generating after an end-of-sequence token");
ABSL_FLAG(double, temperature, 0.0, "0 = greedy");
ABSL_FLAG(int, top_k, 0, "0 = off");
ABSL_FLAG(double, top_p, 1.0, "1 = off");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");

namespace strata {
namespace {

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: '", piece, "' is not an id"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--prompt-ids is empty");
  return ids;
}

// "" leaves the backend's default; f32, bf16 or fp8 pick a layout.
template <typename E>
absl::Status ParseCacheDType(const std::string& flag, const std::string& name,
                             std::optional<E>& out) {
  if (name.empty()) return absl::OkStatus();
  if (name == "f32") {
    out = E::kF32;
  } else if (name == "bf16") {
    out = E::kBF16;
  } else if (name == "fp8") {
    out = E::kF8;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected f32, bf16 or fp8, got '", name, "'"));
  }
  return absl::OkStatus();
}

absl::Status RunText(LocalRunner& runner, const std::string& model_dir, GenerateRequest req) {
  const std::string path = absl::GetFlag(FLAGS_tokenizer).empty() ? model_dir + "/tokenizer.json"
                                                                  : absl::GetFlag(FLAGS_tokenizer);
  ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::FromFile(path));
  ASSIGN_OR_RETURN(const PromptFormat format, ParsePromptFormat(absl::GetFlag(FLAGS_format)));
  ASSIGN_OR_RETURN(req.prompt,
                   EncodePrompt(*tokenizer, runner.config(), absl::GetFlag(FLAGS_text), format));
  TextStream stream(*tokenizer);
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::vector<GenerateResult> results,
                   runner.Generate({req}, [&stream](size_t, int32_t id) {
                     const std::string chunk = stream.Add(id);
                     std::fwrite(chunk.data(), 1, chunk.size(), stdout);
                     std::fflush(stdout);
                   }));
  const std::string rest = stream.Finish();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const size_t n = results[0].tokens.size();
  std::fprintf(stderr, "[%zu prompt tokens, %zu generated in %.2f s: %.1f tokens/s, %s]\n",
               req.prompt.size(), n, seconds, n / std::max(seconds, 1e-9),
               results[0].finish_reason == FinishReason::kStop ? "stop" : "length");
  return absl::OkStatus();
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_model).empty()) return absl::InvalidArgumentError("--model is required");
  const bool text = !absl::GetFlag(FLAGS_text).empty();
  if (text == !absl::GetFlag(FLAGS_prompt_ids).empty()) {
    return absl::InvalidArgumentError("give exactly one of --text and --prompt-ids");
  }
  RunnerOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model);
  ASSIGN_OR_RETURN(options.device, ParseDevice(absl::GetFlag(FLAGS_device)));
  RETURN_IF_ERROR(ParseCacheDType("latent-cache", absl::GetFlag(FLAGS_latent_cache),
                                  options.model.latent_cache));
  RETURN_IF_ERROR(ParseCacheDType("indexer-cache", absl::GetFlag(FLAGS_indexer_cache),
                                  options.model.indexer_cache));
  GenerateRequest req;
  req.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  req.prefill_chunk = absl::GetFlag(FLAGS_prefill_chunk);
  req.stop_at_eos = !absl::GetFlag(FLAGS_ignore_eos);
  req.want_prompt_logits = !absl::GetFlag(FLAGS_logits_out).empty();
  req.sampling.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  req.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  req.sampling.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  req.sampling.seed = absl::GetFlag(FLAGS_seed);
  if (!text) {
    ASSIGN_OR_RETURN(req.prompt, ParseIds(absl::GetFlag(FLAGS_prompt_ids)));
  }

  ASSIGN_OR_RETURN(auto runner, LocalRunner::Create(options));
  if (text) return RunText(*runner, options.model_dir, std::move(req));
  ASSIGN_OR_RETURN(std::vector<GenerateResult> results, runner->Generate({req}));
  const GenerateResult& r = results[0];
  if (req.want_prompt_logits) {
    RETURN_IF_ERROR(WriteNpy(absl::GetFlag(FLAGS_logits_out), r.prompt_logits));
  }
  std::printf("{\"prompt_tokens\":%zu,\"ids\":[%s],\"finish_reason\":\"%s\"}\n", req.prompt.size(),
              absl::StrJoin(r.tokens, ",").c_str(),
              r.finish_reason == FinishReason::kStop ? "stop" : "length");
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "strata-run --model DIR (--prompt-ids 1,2,3 | --text T [--format completion|chat|raw]) "
      "[--max-new-tokens N] [--logits-out FILE] [--prefill-chunk K] [--device cpu|cuda:N] "
      "[--latent-cache f32|bf16|fp8] [--indexer-cache f32|bf16|fp8]");
  std::vector<std::string> args = strata::NormalizeFlagNames(argc, argv);
  std::vector<char*> ptrs = strata::ArgvPointers(args);
  absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  // INFO shows weight-loading progress (only loads of 256 MiB and more log it).
  strata::InitLogging(argv[0], /*min_level=*/0);
  if (absl::Status s = strata::Run(); !s.ok()) {
    std::fprintf(stderr, "strata-run: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
