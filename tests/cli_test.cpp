// Purpose: the `softflow` command line end to end, in-process: the built-in default study, validate on every
// example, and each class of bad input (exit code 2, one line on stderr, no output file left behind).
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "cuda_check.h"
#ifdef SOFTFLOW_HOST_EMULATION
#include "host_block_emulation.h"
#endif
#include "simd_kernel.h"
#include "temp_dir_test.h"

namespace softflow {
namespace {

struct CliResult {
  int code;
  std::string out, err;
};

CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "softflow");
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = cli_main(int(argv.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  CliResult result{code, ::testing::internal::GetCapturedStdout(), ::testing::internal::GetCapturedStderr()};
  return result;
}

class CliTest : public testing::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& contents) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }
  // Bad input: exit code 2, one line on stderr containing `expected`, and no results file (nor a temporary).
  void expect_rejected(const std::vector<std::string>& args, const std::string& expected,
                       const std::vector<std::string>& inputs) {
    const CliResult result = run_cli(args);
    EXPECT_EQ(result.code, 2) << result.err;
    EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "one line expected: " << result.err;
    EXPECT_EQ(files(), inputs);
  }
};

TEST_F(CliTest, DefaultStudyEndToEnd) {
  const std::string out = dir_ + "/default.json";
  const CliResult result = run_cli({"run", "--out", out, "--quiet"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_NE(result.out.find("H/logn"), std::string::npos);  // the summary table
  const nlohmann::json results = nlohmann::json::parse(std::ifstream(out));
  EXPECT_EQ(results["schema_version"], 1);
  // auto: the CUDA backend where a device is usable, else the CPU; the science below holds for both.
  EXPECT_EQ(results["provenance"]["backend"], cuda_device_count() > 0 ? "cuda" : "cpu");
  EXPECT_GT(results["provenance"]["trajectory_steps_per_second"].get<double>(), 0);
  EXPECT_EQ(results["study"]["name"], "default");
  EXPECT_EQ(results["study"]["runs"], 4096);
  ASSERT_EQ(results["cells"].size(), 1u);
  const nlohmann::json& last = results["cells"][0]["checkpoints"].back();
  EXPECT_EQ(last["t"], 1e4);
  EXPECT_EQ(last["counts"]["runs"], 4096);
  // science.md: logistic, d = n = 8, sigma_V = 0.1, a(0) = 0: s_max about 0.96 at t = 1e4, winner = argmax u(0).
  EXPECT_NEAR(last["observables"]["s_max"]["quantiles"]["q50"].get<double>(), 0.96, 0.02);
  EXPECT_EQ(last["fractions"]["winner_is_argmax_u0"], 1.0);
  EXPECT_LT(last["observables"]["sum_a_drift"]["max"].get<double>(), 1e-10);
  EXPECT_EQ(files(), std::vector<std::string>{"default.json"});
}

// Every example validates (the verdict on stderr), and validate's standard output, the normalized study, is itself
// a valid study that normalizes to itself.
TEST_F(CliTest, ValidateAcceptsEveryExample) {
  DIR* d = opendir(SOFTFLOW_EXAMPLES_DIR);
  ASSERT_NE(d, nullptr);
  int checked = 0;
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    const CliResult result = run_cli({"validate", std::string(SOFTFLOW_EXAMPLES_DIR) + "/" + name});
    EXPECT_EQ(result.code, 0) << name << ": " << result.err;
    EXPECT_NE(result.err.find(name + ": valid: "), std::string::npos) << result.err;
    // Standard output is the normalized study alone, and it reads back as itself.
    const std::string normalized = result.out;
    const CliResult again = run_cli({"validate", write("normalized.json", normalized)});
    EXPECT_EQ(again.code, 0) << name << ": " << again.err;
    EXPECT_EQ(again.out, normalized) << name;
    ++checked;
  }
  closedir(d);
  EXPECT_GE(checked, 6);
}

TEST_F(CliTest, MalformedJson) {
  const std::string study = write("s.json", "{\"d\": 8,");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "malformed JSON", {"s.json"});
}

TEST_F(CliTest, UnknownKey) {
  const std::string study = write("s.json", R"({"d": 8, "sigmav": 0.1})");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "sigmav: unknown key", {"s.json"});
}

TEST_F(CliTest, OutOfRangeValue) {
  const std::string study = write("s.json", R"({"n": 1})");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "n: must be in [2, 4096] (got 1)", {"s.json"});
}

TEST_F(CliTest, NumberBeyondDoubleRange) {
  const std::string study = write("s.json", R"({"checkpoints": {"schedule": "list", "times": [1e400]}})");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "malformed JSON", {"s.json"});
}

TEST_F(CliTest, DuplicateKey) {
  const std::string study = write("s.json", R"({"runs": 2, "stop": {"loss_below": 1, "loss_below": 2}})");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "loss_below: duplicate key", {"s.json"});
}

TEST_F(CliTest, DirectoryAsStudy) {
  expect_rejected({"run", dir_, "--out", dir_ + "/r.json"}, "is a directory, not a study file", {});
}

TEST_F(CliTest, OutputThatIsNotARegularFileIsLeftAlone) {
  const std::string fifo = dir_ + "/pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  const CliResult result = run_cli({"run", "--runs", "8", "--out", fifo});
  EXPECT_EQ(result.code, 2);
  EXPECT_NE(result.err.find("not a regular file"), std::string::npos) << result.err;
  struct stat info;
  ASSERT_EQ(stat(fifo.c_str(), &info), 0);
  EXPECT_TRUE(S_ISFIFO(info.st_mode));
}

TEST_F(CliTest, OutputThroughASymlinkReplacesItsTarget) {
  const std::string target = write("target.json", "old");
  ASSERT_EQ(symlink(target.c_str(), (dir_ + "/link.json").c_str()), 0);
  ASSERT_EQ(run_cli({"run", "--runs", "8", "--quiet", "--out", dir_ + "/link.json"}).code, 0);
  struct stat info;
  ASSERT_EQ(lstat((dir_ + "/link.json").c_str(), &info), 0);
  EXPECT_TRUE(S_ISLNK(info.st_mode));
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(target))["schema_version"], 1);
}

TEST_F(CliTest, InvalidUtf8InTheCommandLineIsNoError) {
  const CliResult result = run_cli({"run", "--runs", "8", "--quiet", "--out", dir_ + "/\xff.json"});
  EXPECT_EQ(result.code, 0) << result.err;
}

TEST_F(CliTest, MissingStudyFile) {
  expect_rejected({"run", dir_ + "/absent.json", "--out", dir_ + "/r.json"}, "cannot open study file", {});
}

TEST_F(CliTest, UnwritableOutput) {
  expect_rejected({"run", "--runs", "8", "--out", dir_ + "/no/such/dir/r.json"}, "cannot write output", {});
  expect_rejected({"run", "--runs", "8", "--out", dir_}, "is a directory", {});
}

TEST_F(CliTest, BadOptions) {
  expect_rejected({"run", "--runs", "0", "--out", dir_ + "/r.json"}, "--runs", {});
  expect_rejected({"run", "--backend", "tpu", "--out", dir_ + "/r.json"}, "--backend", {});
  expect_rejected({"run", "--cpu-kernel", "vector", "--out", dir_ + "/r.json"}, "--cpu-kernel", {});
  expect_rejected({"run", "--cuda-kernels", "experimental", "--out", dir_ + "/r.json"}, "--cuda-kernels", {});
  expect_rejected({"frobnicate"}, "unknown subcommand 'frobnicate'", {});
  expect_rejected({"run", "--seed", "9223372036854775807"}, "--seed: Value 9223372036854775807 not in range", {});
}

// Paths given as "" are errors, not the defaults (STUDY "" would have run the built-in study).
TEST_F(CliTest, EmptyPaths) {
  expect_rejected({"run", "", "--out", dir_ + "/r.json"}, "STUDY: the path is empty", {});
  expect_rejected({"run", "--runs", "8", "--out", ""}, "--out: the path is empty", {});
  expect_rejected({"validate", ""}, "STUDY: the path is empty", {});
}

// Inputs that are not regular files are refused before reading: /dev/zero never ends, a FIFO would block.
TEST_F(CliTest, InputThatIsNotARegularFile) {
  expect_rejected({"run", "/dev/zero", "--out", dir_ + "/r.json"}, "/dev/zero: not a regular file", {});
  ASSERT_EQ(mkfifo((dir_ + "/pipe.json").c_str(), 0644), 0);
  expect_rejected({"validate", dir_ + "/pipe.json"}, "pipe.json: not a regular file", {"pipe.json"});
  const std::string study = write("att.json", R"({"model": "attention", "dataset": "file", "trainable": "p",
      "dataset_file": "/dev/zero", "runs": 4})");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "/dev/zero: not a regular file",
                  {"att.json", "pipe.json"});
}

// Nesting past kMaxJsonDepth is one error line (printing such a value once overflowed the stack).
TEST_F(CliTest, DeeplyNestedJson) {
  const std::string study = write("s.json", "{\"d\": " + std::string(70000, '[') + std::string(70000, ']') + "}");
  expect_rejected({"run", study, "--out", dir_ + "/r.json"}, "nests objects and arrays deeper than 256 levels",
                  {"s.json"});
}

// A duplicate key is named by its path; control characters in a key are escaped, so the message stays one line.
TEST_F(CliTest, MessagesNameThePathAndStayOneLine) {
  const std::string nested = write("n.json", R"({"checkpoints": {"times": [1], "times": [2]}})");
  expect_rejected({"validate", nested}, "n.json: checkpoints.times: duplicate key", {"n.json"});
  const std::string in_list = write("l.json", R"({"sigma_v": [0.1], "x": [{"c": 1, "c": 2}]})");
  expect_rejected({"validate", in_list}, "l.json: x[0].c: duplicate key", {"l.json", "n.json"});
  const std::string control = write("c.json", "{\"a\\nb\\u001b[31m\\u0000x\": 1}");
  expect_rejected({"validate", control}, "c.json: a\\nb\\x1b[31m\\x00x: unknown key", {"c.json", "l.json", "n.json"});
}

// --out never replaces an input: the study file (also through a link) or a data set file it reads.
TEST_F(CliTest, OutputOverwritingAnInputIsRefused) {
  const std::string study = write("s.json", R"({"runs": 8})");
  expect_rejected({"run", study, "--out", study}, "--out " + study + ": is the study file itself", {"s.json"});
  ASSERT_EQ(symlink(study.c_str(), (dir_ + "/link.json").c_str()), 0);
  expect_rejected({"run", study, "--out", dir_ + "/link.json"}, "is the study file itself", {"link.json", "s.json"});
  const std::string data = write("data.json", R"({"X": [[[1, 0], [0, 1]]], "Y": [1], "v": [1, 0]})");
  const std::string attention = write("att.json", R"({"model": "attention", "dataset": "file", "trainable": "p",
      "dataset_file": "data.json", "runs": 4})");
  const std::vector<std::string> inputs = files();
  expect_rejected({"run", attention, "--out", data}, "--out " + data + ": is the data file itself", inputs);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(data))["Y"][0], 1);
}

// An attention study's run prints its basin map; `basin-map` prints it again from the results (any checkpoint)
// and rejects what is not an attention study's results in one line.
TEST_F(CliTest, BasinMapOfAnAttentionStudy) {
  const std::string study = write("att.json", R"({"model": "attention", "dataset": "single_local", "runs": 50,
      "sigma_v": [0.1, 1], "integrator": "normalized_gd", "step": 0.1,
      "checkpoints": {"schedule": "list", "times": [1, 10]}})");
  const std::string out = dir_ + "/att.results.json", table = dir_ + "/map.md";
  const CliResult ran = run_cli({"run", study, "--backend", "cpu", "--out", out, "-q"});
  ASSERT_EQ(ran.code, 0) << ran.err;
  const std::string header = "| cell | sigma_v | t | runs | global | local | neither | not converged |\n";
  EXPECT_NE(ran.out.find("basin map (last checkpoint):\n" + header), std::string::npos) << ran.out;
  const CliResult first = run_cli({"basin-map", out, "--checkpoint", "0", "--markdown", table});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.out.rfind(header, 0), 0u) << first.out;
  EXPECT_NE(first.out.find("| 1 | 1.0 | 1 | 50 | "), std::string::npos) << first.out;  // cell 1: sigma_v 1, t = 1
  std::stringstream written;
  written << std::ifstream(table).rdbuf();
  EXPECT_EQ(written.str(), first.out);

  const std::string plain = dir_ + "/plain.results.json";
  ASSERT_EQ(run_cli({"run", "--runs", "8", "--out", plain, "-q"}).code, 0);
  const CliResult rejected = run_cli({"basin-map", plain});
  EXPECT_EQ(rejected.code, 2);
  EXPECT_EQ(rejected.err, "error: " + plain + ": the results have no direction classes: a basin map needs an "
                          "attention study\n");
  EXPECT_EQ(run_cli({"basin-map", out, "--checkpoint", "7"}).err,
            "error: " + out + ": cell 0 has 2 checkpoints: no checkpoint 7\n");
  EXPECT_EQ(run_cli({"basin-map", dir_ + "/none.json"}).err,
            "error: " + dir_ + "/none.json: cannot open results file (No such file or directory)\n");
  // The table must not replace the results it was read from.
  const CliResult overwrite = run_cli({"basin-map", out, "--markdown", out});
  EXPECT_EQ(overwrite.err, "error: --markdown " + out + ": is the results file itself; choose another path\n");
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(out))["schema_version"], 1);
  EXPECT_EQ(run_cli({"basin-map", study}).err.rfind("error: " + study + ": not a softflow results file", 0), 0u);
}

TEST_F(CliTest, CpuKernelChoiceIsRecordedPerCell) {
  // A gd cell and a dopri5 cell: --cpu-kernel scalar runs both on the scalar kernel; simd takes the SIMD kernel
  // only where it handles the cell (gd), wherever this build has it.
  const std::string study = dir_ + "/two.json", out = dir_ + "/two.results.json";
  std::ofstream(study) << R"({"runs": 40, "integrator": ["gd", "dopri5"], "step": 0.1,
                             "checkpoints": {"schedule": "list", "times": [0, 5]}})";
  for (const std::string kernel : {"scalar", "simd"}) {
    const CliResult result = run_cli({"run", study, "--backend", "cpu", "--cpu-kernel", kernel, "--out", out, "-q"});
    ASSERT_EQ(result.code, 0) << result.err;
    const nlohmann::json kernels = nlohmann::json::parse(std::ifstream(out))["provenance"]["cpu_kernels"];
    ASSERT_EQ(kernels.size(), 2u);
    const bool simd = kernel == "simd" && simd_target() != "none";
    EXPECT_EQ(kernels[0].get<std::string>().rfind(simd ? "simd (" : "scalar", 0), 0u) << kernels;
    EXPECT_EQ(kernels[1], "scalar");
  }
}

TEST_F(CliTest, CudaBackendWithoutCudaIsAnError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present, so --backend cuda is no error here";
  expect_rejected({"run", "--runs", "8", "--backend", "cuda", "--out", dir_ + "/r.json"}, "cuda", {});
}

TEST_F(CliTest, CandidateCudaKernelsRunTheDefaultStudyLikeTheCpu) {
  // --cuda-kernels candidate end to end where a GPU is: the default study (dopri5, d = n = 8) then runs on the
  // fused dopri5 kernel, the provenance says so, and its last checkpoint agrees with the CPU's: the same counts, the
  // same winners, the median s_max within 10 rtol (1e-5, as bench/compare_backends.py allows float64 dopri5).
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const std::string cuda_out = dir_ + "/cuda.json", cpu_out = dir_ + "/cpu.json";
  const CliResult cuda = run_cli({"run", "--runs", "2000", "--backend", "cuda", "--cuda-kernels", "candidate",
                                  "--out", cuda_out, "-q"});
  ASSERT_EQ(cuda.code, 0) << cuda.err;
  ASSERT_EQ(run_cli({"run", "--runs", "2000", "--backend", "cpu", "--out", cpu_out, "-q"}).code, 0);
  const nlohmann::json on_gpu = nlohmann::json::parse(std::ifstream(cuda_out));
  const nlohmann::json on_cpu = nlohmann::json::parse(std::ifstream(cpu_out));
  EXPECT_EQ(on_gpu["provenance"]["cuda_kernel_set"], "candidate");
  EXPECT_EQ(on_gpu["provenance"]["cuda_kernels"][0], "fused dopri5");
  const nlohmann::json &gpu_last = on_gpu["cells"][0]["checkpoints"].back(),
                       &cpu_last = on_cpu["cells"][0]["checkpoints"].back();
  EXPECT_EQ(gpu_last["counts"], cpu_last["counts"]);
  EXPECT_EQ(gpu_last["winner_counts"], cpu_last["winner_counts"]);
  EXPECT_NEAR(gpu_last["observables"]["s_max"]["quantiles"]["q50"].get<double>(),
              cpu_last["observables"]["s_max"]["quantiles"]["q50"].get<double>(), 1e-5);
}

TEST_F(CliTest, ACudaErrorExitsWithThreeNamingTheCallAndLeavesNoFile) {
  // The CUDA issue's rule for any CUDA error: one line on stderr naming the call, exit code 3; and, as for bad input,
  // no results file nor temporary left, and here also every byte of device memory given back. Only the host
  // emulation can make a call fail on purpose: its cudaMalloc fails once a given number of allocations have
  // succeeded. A clean run counts a study's allocations; the fault then hits the first, the last and three between.
#ifndef SOFTFLOW_HOST_EMULATION
  GTEST_SKIP() << "needs the host emulation of CUDA, whose cudaMalloc a test can make fail";
#else
  const std::string study = write("s.json", R"({"integrator": "gd", "runs": 300, "d": [8, 12], "n": 8,
      "checkpoints": {"schedule": "list", "times": [0, 1, 5]}})");
  const std::string out = dir_ + "/s.results.json";
  const long long before = emulation::allocations_made;
  ASSERT_EQ(run_cli({"run", study, "--backend", "cuda", "--out", out, "-q"}).code, 0);
  const long long allocations = emulation::allocations_made - before;
  ASSERT_GE(allocations, 5);
  std::remove(out.c_str());
  for (long long succeeding : {0LL, allocations / 4, allocations / 2, 3 * allocations / 4, allocations - 1}) {
    const std::string where = "cudaMalloc failing after " + std::to_string(succeeding) + " of " +
                              std::to_string(allocations) + " allocations";
    const std::size_t held = emulation::device_allocated_bytes;
    emulation::allocations_until_failure = succeeding;
    const CliResult result = run_cli({"run", study, "--backend", "cuda", "--out", out, "-q"});
    emulation::allocations_until_failure = -1;
    EXPECT_EQ(result.code, 3) << where << ": " << result.err;
    EXPECT_EQ(result.err.rfind("error: emulated CUDA error in cudaMalloc of ", 0), 0u) << where << ": " << result.err;
    EXPECT_NE(result.err.find(" bytes at kernels/device_array.cuh:"), std::string::npos) << where << ": " << result.err;
    EXPECT_NE(result.err.find(": out of memory"), std::string::npos) << where << ": " << result.err;
    EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << where << ", one line expected: " << result.err;
    EXPECT_EQ(files(), std::vector<std::string>{"s.json"}) << where;
    EXPECT_EQ(emulation::device_allocated_bytes, held) << where;
  }
#endif
}

TEST_F(CliTest, ShardsRunAsSeparateJobsAndMergeIntoTheWholeStudy) {
  // An array job of two shards in one folder: each writes its own default file (no overwriting), and `merge` joins
  // them into the whole study's results, the same as one run (provenance aside); bad shards and merges exit 2.
  const std::string study = write("s.json", R"({"integrator": "gd", "runs": 200, "sigma_v": [0.1, 0.3, 1.0],
      "checkpoints": {"schedule": "list", "times": [0, 2]}})");
  const std::string here = dir_;
  struct WorkingDirectory {  // the test's folder for the default output names; the previous one restored after
    std::string previous;
    explicit WorkingDirectory(const std::string& path) {
      char buffer[4096];
      previous = getcwd(buffer, sizeof buffer) ? buffer : "/";
      EXPECT_EQ(chdir(path.c_str()), 0);
    }
    ~WorkingDirectory() { EXPECT_EQ(chdir(previous.c_str()), 0); }
  } in_test_folder(here);
  ASSERT_EQ(run_cli({"run", study, "--shard", "0/2", "-q", "--backend", "cpu"}).code, 0);
  ASSERT_EQ(run_cli({"run", study, "--shard", "1/2", "-q", "--backend", "cpu"}).code, 0);
  ASSERT_EQ(run_cli({"run", study, "-q", "--backend", "cpu", "-o", "whole.json"}).code, 0);
  EXPECT_EQ(files(), (std::vector<std::string>{"s.json", "s.shard-0-of-2.results.json", "s.shard-1-of-2.results.json",
                                                "whole.json"}));
  const CliResult merged = run_cli({"merge", "s.shard-1-of-2.results.json", "s.shard-0-of-2.results.json", "-o",
                                    "merged.json"});
  ASSERT_EQ(merged.code, 0) << merged.err;
  EXPECT_NE(merged.out.find("results: merged.json (3 cells from 2 files)"), std::string::npos) << merged.out;
  const nlohmann::json whole = nlohmann::json::parse(std::ifstream(here + "/whole.json"));
  nlohmann::json joined = nlohmann::json::parse(std::ifstream(here + "/merged.json"));
  EXPECT_EQ(joined["cells"], whole["cells"]);
  EXPECT_EQ(joined["study"], whole["study"]);
  EXPECT_EQ(joined["provenance"]["merged_from"].size(), 2u);
  const std::vector<std::string> inputs = {"merged.json", "s.json", "s.shard-0-of-2.results.json",
                                           "s.shard-1-of-2.results.json", "whole.json"};
  expect_rejected({"run", study, "--shard", "3/3", "-q", "-o", "x.json"}, "--shard 3/3: expected K/N with 0 <= K < N",
                  inputs);
  expect_rejected({"run", study, "--shard", "", "-q", "-o", "x.json"}, "--shard : expected K/N", inputs);
  expect_rejected({"run", study, "--shard", "3/4", "-q", "-o", "x.json"},
                  "--shard 3/4: the study has 3 cells, so this shard would run none", inputs);
  expect_rejected({"merge", "s.shard-0-of-2.results.json", "-o", "x.json"},
                  "1 of the study's 3 cells are in none of the files (cells 1)", inputs);
  expect_rejected({"merge", "s.shard-0-of-2.results.json", "s.shard-0-of-2.results.json", "s.shard-1-of-2.results.json",
                   "-o", "x.json"},
                  "s.shard-0-of-2.results.json: given twice", inputs);
  expect_rejected({"merge", "s.shard-0-of-2.results.json", "s.shard-1-of-2.results.json", "-o",
                   "s.shard-1-of-2.results.json"},
                  "--out s.shard-1-of-2.results.json: is the input s.shard-1-of-2.results.json itself", inputs);
  expect_rejected({"merge", "s.shard-0-of-2.results.json", "s.json", "-o", "x.json"},
                  "s.json: not a softflow results file", inputs);
  expect_rejected({"merge", "s.shard-0-of-2.results.json", "-o"}, "--out", inputs);
}

TEST_F(CliTest, BenchWritesJsonAndMarkdown) {
  const std::string out = dir_ + "/bench.json", table = dir_ + "/bench.md";
  // 0.05 s a point, as bench_test: with 5 ms the steps' time can be lost in timing noise on a busy machine and the
  // point skipped.
  const CliResult result = run_cli({"bench", "--backend", "cpu", "--sizes", "4", "--runs", "64", "--precisions",
                                    "float64", "--integrators", "gd", "--seconds", "0.05", "--repeats", "1",
                                    "--out", out, "--markdown", table, "--quiet"});
  ASSERT_EQ(result.code, 0) << result.err;
  const nlohmann::json bench = nlohmann::json::parse(std::ifstream(out));
  ASSERT_EQ(bench["points"].size(), 1u);
  EXPECT_GT(bench["points"][0]["useful_gflops_per_second"].get<double>(), 0);
  std::ifstream markdown_file(table);
  const std::string markdown((std::istreambuf_iterator<char>(markdown_file)), std::istreambuf_iterator<char>());
  const std::string row = "| cpu | " + bench["points"][0]["kernel"].get<std::string>() + " | 4 | 64 | float64 | gd |";
  EXPECT_NE(markdown.find(row), std::string::npos) << markdown;
  EXPECT_NE(result.out.find(row), std::string::npos);
  EXPECT_EQ(files().size(), 2u);  // no temporaries left
}

TEST_F(CliTest, BenchRejectsBadOptions) {
  expect_rejected({"bench", "--sizes", "1", "--out", dir_ + "/b.json"}, "--sizes", {});
  expect_rejected({"bench", "--integrators", "dopri5", "--out", dir_ + "/b.json"}, "--integrators", {});
  expect_rejected({"bench", "--out", dir_ + "/b.json", "--markdown", dir_ + "/b.json"},
                  "--markdown " + dir_ + "/b.json: is the --out file itself", {});
  expect_rejected({"bench", "--out", ""}, "--out: the path is empty", {});
  expect_rejected({"bench", "--markdown", ""}, "--markdown: the path is empty", {});
  if (cuda_device_count() == 0)
    expect_rejected({"bench", "--backend", "cuda", "--out", dir_ + "/b.json"}, "cuda", {});
}

TEST_F(CliTest, VersionAndHelp) {
  const CliResult version = run_cli({"--version"});
  EXPECT_EQ(version.code, 0);
  EXPECT_NE(version.out.find("softflow 0."), std::string::npos);
  const CliResult help = run_cli({"run", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--backend"), std::string::npos);
}

}  // namespace
}  // namespace softflow
