// Purpose: the study a user writes (JSON), validated and normalized: every default made explicit, every error
// naming the field path and the rule, the parameter grid expanded into cells.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softflow/integrators.h"
#include "softflow/model.h"
#include "softflow/run_record.h"

namespace softflow {

// Bad input: one line naming what is wrong. The CLI prints it and exits with code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Precision { float32, float64 };

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
  nlohmann::json parameters;    // the cell's scalar parameters, as echoed in the results
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
};

// Overrides from the command line, applied before validation.
struct StudyOverrides {
  long long runs = -1;   // -1 = keep the study's
  long long seed = -1;
};

// The built-in default study: logistic, d = n = 8, 4096 runs, log-spaced checkpoints to t = 1e4.
nlohmann::json default_study_json();

// Parses and validates. `source` names the input in error messages (a file path or "built-in default study").
Study parse_study(const nlohmann::json& raw, const std::string& source, const StudyOverrides& overrides = {});
Study load_study_file(const std::string& path, const StudyOverrides& overrides = {});

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
