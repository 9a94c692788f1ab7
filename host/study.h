// Purpose: the study a user writes (JSON), validated and normalized: every default made explicit, every error
// naming the field path and the rule, the parameter grid expanded into cells.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softflow/integrators.h"
#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

// text with every control character escaped (newline as \n, tab as \t, NUL, escape and the other C0 controls and
// stray non-UTF-8 bytes as \xHH, the C1 controls U+0080..U+009F as \u00HH), so that a message quoting a key, a
// file name or an argument stays one line and cannot drive the terminal. Idempotent (a backslash is kept as it
// is), so a message that quotes another InputError's is not escaped twice.
std::string one_line(const std::string& text);

// Bad input: one line naming what is wrong (control characters escaped by one_line). The CLI prints it and exits
// with code 2.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(one_line(what)) {}
};

enum class Precision { float32, float64 };

// The attention family's data sets (host/attention_data.h): random tokens with random labels, the papers' toy sets,
// or a file.
enum class AttentionDataset {
  gaussian,       // x_it ~ N(0, I_d / d)
  sphere,         // x_it uniform on the unit sphere
  single_global,  // "Max-margin token selection": one input, T = 3, d = 3, the global-convergence example
  single_local,   // ... the local-convergence example
  multi_input,    // ... N = 3, T = 7, d = 3: 0.2 N(0, I) tokens plus shifts; optimal score 1, others 0.5
  joint_tight,    // ... joint (v, p) training: N = 3, T = 2, d = 2, every selected token a support vector of v_mm
  joint_relaxed,  // ... the same with input 2 off v_mm's margin
  loss_pair,      // ... N = 2, T = 2, d = 3, the loss-comparison pair (loss_pair_score C)
  file            // loaded from dataset_file
};

// A data set loaded from a file, in the layout of attention.h for the cell's trainable set.
struct AttentionFileData {
  int inputs = 0, tokens = 0, d = 0;
  std::vector<double> values;      // data_size()
  std::vector<std::string> files;  // the data set file and the .npy files it names (inputs an output must spare)
};

// Every parameter of one cell of the grid.
struct CellParams {
  ModelShape shape;
  Precision precision = Precision::float64;
  Method method = Method::dopri5;
  double step = 0.1;       // gd / rk4 step (= learning rate for gd)
  AdaptiveRule adaptive;   // dopri5
  double sigma_v = 0.1;    // V ~ sigma_v N(0, 1) (tied: U ~ [I] + sigma_v N(0, 1))
  double mu_a = 0;         // a ~ mu_a + sigma_a N(0, 1)
  double sigma_a = 0;
  bool shared_target = false;   // one target / data set for the whole cell instead of one per run
  double kappa = 1;             // regression: condition number of X
  double ce_temperature = 10;   // cross_entropy: p* = softmax(temperature * U[0,1]^d)
  bool identity_init = true;    // tied: U(0) = I + sigma_v N(0, 1) instead of sigma_v N(0, 1)
  AttentionDataset dataset = AttentionDataset::gaussian;  // attention
  double loss_pair_score = 1;   // attention, loss_pair: the score C of input 0's second token
  std::shared_ptr<const AttentionFileData> file_data;     // attention, dataset "file"
  nlohmann::json parameters;    // the cell's scalar parameters, as echoed in the results

  // One loss-data array for every run: a shared target, or an attention data set with nothing random in it.
  bool data_shared() const;
};

struct Study {
  std::string name;
  std::string description;
  long long runs = 4096;
  std::uint64_t seed = 0;
  std::vector<double> checkpoint_times;  // sorted, distinct, >= 0 (before rounding to whole steps)
  StopRule stop;
  int histogram_bins = 20;
  std::vector<std::string> grid_axes;    // parameters given as lists, in grid order
  std::vector<CellParams> cells;         // cartesian product, the first axis varying slowest
  nlohmann::json normalized;             // the study with every default explicit
  std::vector<std::string> input_files;  // the data set files (and their .npy files) the cells read
};

// Overrides from the command line, applied before validation.
struct StudyOverrides {
  long long runs = -1;   // -1 = keep the study's
  long long seed = -1;
};

// The built-in default study: logistic, d = n = 8, 4096 runs, log-spaced checkpoints to t = 1e4.
nlohmann::json default_study_json();

// Parses and validates. `source` names the input in error messages (a file path or "built-in default study");
// relative data set paths start from `base_directory` (the study file's directory; empty: the working directory).
Study parse_study(const nlohmann::json& raw, const std::string& source, const StudyOverrides& overrides = {},
                  const std::string& base_directory = "");
Study load_study_file(const std::string& path, const StudyOverrides& overrides = {});

// The directory part of a file path ("" for a bare file name), and `path` as seen from `directory` (unchanged when
// absolute or when directory is ""): how study and data set files name the files they read.
std::string directory_of(const std::string& file);
std::string resolve_path(const std::string& path, const std::string& directory);

// Throws a one-line InputError unless `path` names a regular file (through links) that can be opened: missing, a
// directory, or a device, FIFO or socket (which could block or never end). kind names the file in the message.
void check_input_file(const std::string& path, const std::string& kind);

// The JSON document in the file at `path` (a study, data set or results file: `kind` names it in the errors), with
// one-line InputErrors for a file check_input_file refuses or that cannot be read, for malformed JSON, for nesting
// deeper than kMaxJsonDepth, and for a key repeated within one object (parsers would silently keep the last; the
// error names its path, e.g. checkpoints.times).
constexpr int kMaxJsonDepth = 256;
nlohmann::json read_json_file(const std::string& path, const std::string& kind);

// The checkpoint times of one cell: fixed-step integrators land on whole steps (t = k * step, duplicates
// dropped); dopri5 lands on the study's times exactly. steps[i] is -1 for dopri5.
struct CellCheckpoints {
  std::vector<double> times;
  std::vector<long long> steps;
};
CellCheckpoints cell_checkpoints(const Study& study, const CellParams& cell);

const char* to_string(Precision p);
const char* to_string(Method m);
const char* to_string(LossKind l);
const char* to_string(ModelKind m);

}  // namespace softflow
