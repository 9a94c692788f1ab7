// Purpose: the `softflow` command line (see cli.h).
#include "cli.h"

#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "atomic_file.h"
#include "basin_map.h"
#include "bench.h"
#include "cuda_check.h"
#include "engine.h"
#include "shards.h"
#include "study.h"
#include "summary.h"
#include "version.h"

namespace softflow {
namespace {

constexpr int kExitBadInput = 2;
constexpr int kExitInternal = 1;
constexpr int kExitCuda = 3;

// STUDY's name with .results.json in the current directory (a shard's: .shard-K-of-N.results.json, so that the
// shards of an array job do not overwrite each other).
std::string default_output_path(const std::string& study_path, const Shard& shard) {
  std::string stem = study_path.empty() ? "default" : study_path.substr(study_path.find_last_of('/') + 1);
  const size_t dot = stem.rfind(".json");
  if (dot != std::string::npos && dot + 5 == stem.size()) stem = stem.substr(0, dot);
  if (shard.count > 1) stem += ".shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count);
  return stem + ".results.json";
}

// CLI11 check: a path option or argument given as "" is an error, not the default.
const CLI::Validator kNonEmptyPath(
    [](const std::string& value) { return value.empty() ? std::string("the path is empty") : std::string(); }, "PATH");

// Throws InputError when `output` would overwrite `input` (the same file, or both paths the same new file).
void refuse_overwrite(const std::string& output, const std::string& output_flag, const std::string& input,
                      const std::string& input_name) {
  if (!input.empty() && same_file(output, input))
    throw InputError(output_flag + " " + output + ": is the " + input_name + " itself; choose another path");
}

// The error for argv[1] when it looks like a subcommand but is none of app's (CLI11 would only say that one is
// required); "" otherwise.
std::string unknown_subcommand(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return "";
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == argv[1]) return "";
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return "unknown subcommand '" + std::string(argv[1]) + "' (" + names + "; see softflow --help)";
}

// 0 once everything printed reached standard output; else (a full disk, a closed pipe) a one-line error and 1.
int stdout_written() {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return 0;
  std::fprintf(stderr, "error: cannot write to standard output\n");
  return kExitInternal;
}

std::string joined(int argc, char** argv) {
  std::string text;
  for (int i = 0; i < argc; ++i) text += (i ? " " : "") + std::string(argv[i]);
  return text;
}


}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"softflow: Monte Carlo studies of gradient-flow training of small softmax models"};
  app.set_version_flag("--version", std::string("softflow ") + kSoftflowVersion + " (" + kSoftflowGitCommit + ")");
  app.require_subcommand(1);

  std::string study_path, out_path, backend = "auto";
  long long runs = -1, seed = -1;
  int threads = 0;
  bool quiet = false;
  CLI::App* run = app.add_subcommand("run", "run a study (the built-in default study when STUDY is omitted)");
  run->add_option("STUDY", study_path, "study JSON file")->check(kNonEmptyPath);
  run->add_option("--out,-o", out_path, "results JSON (default: STUDY's name with .results.json, in the current "
                                        "directory; default.results.json for the built-in study)")
      ->check(kNonEmptyPath);
  run->add_option("--runs", runs, "override the study's runs per cell")->check(CLI::Range(1LL, 4294967294LL));
  run->add_option("--seed", seed, "override the study's seed")->check(CLI::Range(0LL, 9200000000000000000LL));
  run->add_option("--backend", backend, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  run->add_option("--threads", threads, "CPU threads (default: all)")->check(CLI::Range(1, 4096));
  std::string cpu_kernel = "simd";
  const auto cpu_kernel_help = "CPU backend kernel: simd (one run per vector lane, where it handles the cell: "
                               "value-softmax gd and rk4) or scalar (the reference, one run at a time)";
  run->add_option("--cpu-kernel", cpu_kernel, cpu_kernel_help)->check(CLI::IsMember({"simd", "scalar"}));
  std::string cuda_kernels = "validated";
  run->add_option("--cuda-kernels", cuda_kernels,
                  "CUDA backend kernels: validated (checked on a GPU against the CPU; default) or candidate (adds "
                  "the kernels not yet run on a GPU, for validating them)")
      ->check(CLI::IsMember({"validated", "candidate"}));
  run->add_flag("--quiet,-q", quiet, "no progress on stderr");
  std::string shard_text;
  run->add_option("--shard", shard_text, "K/N: run only the cells whose index is K modulo N (one job of N; join "
                                         "their results with softflow merge)");

  std::vector<std::string> merge_paths;
  std::string merge_out;
  CLI::App* merge = app.add_subcommand(
      "merge", "join the results files of a study's shards (softflow run --shard K/N) into the whole study's");
  merge->add_option("PARTS", merge_paths, "the shards' results JSON files")->required()->check(kNonEmptyPath);
  merge->add_option("--out,-o", merge_out, "the merged results JSON")->required()->check(kNonEmptyPath);

  std::string validate_path;
  CLI::App* validate = app.add_subcommand("validate", "check a study and print it normalized (every default explicit)");
  validate->add_option("STUDY", validate_path, "study JSON file")->required()->check(kNonEmptyPath);

  BenchOptions bench_options;
  std::string bench_backend = "all", bench_out = "bench.results.json", bench_markdown_path;
  bool bench_quick = false;
  CLI::App* bench = app.add_subcommand(
      "bench", "throughput sweep of value-softmax gd / rk4 over sizes, runs and precisions on each backend, against "
               "the hardware's peak (JSON and a markdown table)");
  bench->add_option("--backend", bench_backend, "all (every available backend), cpu or cuda")
      ->check(CLI::IsMember({"all", "cpu", "cuda"}));
  bench->add_option("--sizes", bench_options.sizes, "d = n values (default 4 8 16 32 64 128 256)")
      ->check(CLI::Range(2, 4096));
  bench->add_option("--runs", bench_options.runs, "runs per point (default 4096 65536 1048576; capped by memory)")
      ->check(CLI::Range(1LL, 4294967294LL));
  bench->add_option("--precisions", bench_options.precisions, "float32 and/or float64")
      ->check(CLI::IsMember({"float32", "float64"}));
  bench->add_option("--integrators", bench_options.integrators, "gd and/or rk4")->check(CLI::IsMember({"gd", "rk4"}));
  bench->add_option("--seconds", bench_options.seconds, "compute time aimed at per repeat (default 0.2)")
      ->check(CLI::Range(1e-3, 3600.0));
  bench->add_option("--repeats", bench_options.repeats, "timed repeats after the warm-up (default 5)")
      ->check(CLI::Range(1, 1000));
  bench->add_option("--threads", bench_options.threads, "CPU threads (default: all)")->check(CLI::Range(1, 4096));
  bench->add_option("--cpu-kernel", cpu_kernel, cpu_kernel_help)->check(CLI::IsMember({"simd", "scalar"}));
  bench->add_flag("--quick", bench_quick, "a small sweep: d = n in 8 16 32, 4096 runs, 3 repeats of 0.1 s");
  bench->add_option("--out,-o", bench_out, "results JSON (default bench.results.json)")->check(kNonEmptyPath);
  bench->add_option("--markdown", bench_markdown_path, "also write the markdown table to this file")
      ->check(kNonEmptyPath);
  bench->add_flag("--quiet,-q", quiet, "no progress on stderr");

  std::string basin_path, basin_markdown_path;
  int basin_checkpoint = -1;
  CLI::App* basin = app.add_subcommand(
      "basin-map", "an attention study's basin map: per cell, the share of runs in each converged-direction class "
                   "(global, local, neither, not converged) at one checkpoint, from its results JSON");
  basin->add_option("RESULTS", basin_path, "results JSON of an attention study")->required()->check(kNonEmptyPath);
  basin->add_option("--checkpoint", basin_checkpoint, "checkpoint index in each cell, negative from the end "
                                                      "(default -1: the last)");
  basin->add_option("--markdown", basin_markdown_path, "also write the table to this file")->check(kNonEmptyPath);

  if (const std::string unknown = unknown_subcommand(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "error: %s\n", one_line(unknown).c_str());
    return kExitBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see softflow --help)\n", one_line(e.what()).c_str());
    return kExitBadInput;
  }

  try {
    if (validate->parsed()) {
      const Study study = load_study_file(validate_path);
      // The verdict on stderr, the normalized study alone on stdout: `softflow validate s.json > n.json` writes a
      // study file.
      std::fprintf(stderr, "%s: valid: %zu cells x %lld runs, %zu checkpoint times\n", validate_path.c_str(),
                   study.cells.size(), study.runs, study.checkpoint_times.size());
      std::printf("%s\n", study.normalized.dump(2).c_str());
      return stdout_written();
    }
    if (basin->parsed()) {
      const nlohmann::json results = read_json_file(basin_path, "results");
      std::string table;
      try {
        table = basin_map_table(results, basin_checkpoint);
      } catch (const InputError& e) {
        throw InputError(basin_path + ": " + e.what());
      }
      if (!basin_markdown_path.empty()) {
        refuse_overwrite(basin_markdown_path, "--markdown", basin_path, "results file");
        AtomicFile(basin_markdown_path).commit(table);
      }
      std::printf("%s", table.c_str());
      return stdout_written();
    }
    if (merge->parsed()) {
      for (const std::string& part : merge_paths) refuse_overwrite(merge_out, "--out", part, "input " + part);
      std::vector<nlohmann::json> parts;
      for (const std::string& part : merge_paths) parts.push_back(read_json_file(part, "results"));
      AtomicFile output(merge_out);
      const nlohmann::json results = merge_results(parts, merge_paths, joined(argc, argv));
      const std::string table = summary_table(results);
      output.commit(results.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
      std::printf("%s", table.c_str());
      std::printf("results: %s (%zu cells from %zu files)\n", merge_out.c_str(), results["cells"].size(),
                  merge_paths.size());
      return stdout_written();
    }
    if (bench->parsed()) {
      if (bench_quick) {
        if (bench->count("--sizes") == 0) bench_options.sizes = {8, 16, 32};
        if (bench->count("--runs") == 0) bench_options.runs = {4096};
        if (bench->count("--repeats") == 0) bench_options.repeats = 3;
        if (bench->count("--seconds") == 0) bench_options.seconds = 0.1;
      }
      if (bench_backend != "all") bench_options.backends = {bench_backend};
      if (bench_backend == "cuda") resolve_backend(BackendChoice::cuda, false);  // no device: exit 2 now
      bench_options.progress = !quiet;
      bench_options.cpu_kernel = cpu_kernel == "scalar" ? CpuKernel::scalar : CpuKernel::simd;
      if (!bench_markdown_path.empty()) refuse_overwrite(bench_markdown_path, "--markdown", bench_out, "--out file");
      AtomicFile output(bench_out);
      std::unique_ptr<AtomicFile> markdown_file;
      if (!bench_markdown_path.empty()) markdown_file = std::make_unique<AtomicFile>(bench_markdown_path);
      const nlohmann::json results = run_bench(bench_options);
      const std::string table = bench_markdown(results);
      output.commit(results.dump(1) + "\n");
      if (markdown_file) markdown_file->commit(table);
      std::printf("%sresults: %s\n", table.c_str(), bench_out.c_str());
      return stdout_written();
    }
    const StudyOverrides overrides{runs, seed};
    const Study study = study_path.empty() ? parse_study(default_study_json(), "built-in default study", overrides)
                                           : load_study_file(study_path, overrides);
    EngineOptions options;
    if (run->count("--shard") > 0) options.shard = parse_shard(shard_text);
    if (out_path.empty()) out_path = default_output_path(study_path, options.shard);
    options.backend = backend == "cuda" ? BackendChoice::cuda
                                        : (backend == "cpu" ? BackendChoice::cpu : BackendChoice::automatic);
    options.threads = threads;
    options.cpu_kernel = cpu_kernel == "scalar" ? CpuKernel::scalar : CpuKernel::simd;
    options.cuda_kernels = parse_cuda_kernel_set(cuda_kernels);
    options.progress = !quiet;
    options.command_line = joined(argc, argv);
    refuse_overwrite(out_path, "--out", study_path, "study file");
    for (const std::string& input : study.input_files) refuse_overwrite(out_path, "--out", input, "data file");
    AtomicFile output(out_path);
    const nlohmann::json results = run_study(study, options);
    // Invalid UTF-8 (a file name in the command line, say) is replaced, not an error after the whole run.
    output.commit(results.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    std::printf("%s", summary_table(results).c_str());
    if (has_direction_classes(results))
      std::printf("\nbasin map (last checkpoint):\n%s", basin_map_table(results, -1).c_str());
    std::printf("results: %s (%.2f s, %.3g trajectory-steps/s)\n", out_path.c_str(),
                results["provenance"]["wall_seconds"].get<double>(),
                results["provenance"]["trajectory_steps_per_second"].get<double>());
    return stdout_written();
  } catch (const InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitBadInput;
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitCuda;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory; lower runs\n");
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kExitInternal;
  }
}

}  // namespace softflow
