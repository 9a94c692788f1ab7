// Purpose: parsing, validation and normalization of a study JSON, and expansion of its grid into cells.
#include "study.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "attention_data.h"
#include "softflow/att_svm.h"

namespace softflow {
namespace {

using nlohmann::json;

enum class ParamType { choice, integer, real, boolean, path };

// One scalar study parameter that may also be given as a list (a grid axis).
struct GridParam {
  const char* name;
  ParamType type;
  json default_value;
  std::vector<std::string> choices;  // ParamType::choice (path: a string, or null for none)
  double lo, hi;                     // allowed range (integer / real)
  bool lo_open, hi_open;             // exclusive bounds
};

const double kInf = std::numeric_limits<double>::infinity();

const std::vector<GridParam>& grid_params() {
  static const std::vector<GridParam> params = {
      {"model", ParamType::choice, "value_softmax", {"value_softmax", "tied", "attention"}, 0, 0, false, false},
      {"loss", ParamType::choice, "logistic", {"logistic", "square", "cross_entropy", "regression", "linear",
                                               "exponential"}, 0, 0, false, false},
      {"d", ParamType::integer, 8, {}, 1, 4096, false, false},
      {"n", ParamType::integer, 8, {}, 2, 4096, false, false},
      {"precision", ParamType::choice, "float64", {"float32", "float64"}, 0, 0, false, false},
      {"integrator", ParamType::choice, "dopri5", {"gd", "rk4", "dopri5", "normalized_gd"}, 0, 0, false, false},
      {"step", ParamType::real, 0.1, {}, 0, kInf, true, true},
      {"rtol", ParamType::real, 1e-6, {}, 0, 1, true, true},
      {"atol", ParamType::real, 1e-9, {}, 0, kInf, true, true},
      {"initial_step", ParamType::real, 0.0, {}, 0, kInf, false, true},
      {"max_steps", ParamType::integer, 10000000, {}, 0, 9e18, false, false},
      {"sigma_v", ParamType::real, 0.1, {}, 0, kInf, false, true},
      {"mu_a", ParamType::real, 0.0, {}, -kInf, kInf, true, true},
      {"sigma_a", ParamType::real, 0.0, {}, 0, kInf, false, true},
      {"target", ParamType::choice, "per_run", {"per_run", "shared"}, 0, 0, false, false},
      {"kappa", ParamType::real, 1.0, {}, 1, kInf, false, true},
      {"regression_samples", ParamType::integer, 20, {}, 1, 4096, false, false},
      {"ce_temperature", ParamType::real, 10.0, {}, 0, kInf, true, true},
      {"identity_init", ParamType::boolean, true, {}, 0, 0, false, false},
      {"trainable", ParamType::choice, "p", {"p", "W", "vp"}, 0, 0, false, false},
      {"inputs", ParamType::integer, 4, {}, 1, 1 << 20, false, false},
      {"tokens", ParamType::integer, 4, {}, 2, 4096, false, false},
      {"dataset", ParamType::choice, "gaussian", {"gaussian", "sphere", "single_global", "single_local", "multi_input",
                                                  "joint_tight", "joint_relaxed", "loss_pair", "file"}, 0, 0, false, false},
      {"dataset_file", ParamType::path, nullptr, {}, 0, 0, false, false},
      {"loss_pair_score", ParamType::real, 1.0, {}, -kInf, kInf, true, true},
  };
  return params;
}

// The grid parameter named `name` (one of grid_params()).
const GridParam& grid_param(const std::string& name) {
  for (const auto& param : grid_params())
    if (name == param.name) return param;
  throw std::logic_error("no grid parameter " + name);
}

// cell_count: printed by validate and echoed in results; accepted back when it matches the grid.
const std::vector<std::string> kTopLevelKeys = {"name", "description", "runs", "seed", "checkpoints", "stop",
                                                "histogram_bins", "cell_count"};

[[noreturn]] void fail(const std::string& source, const std::string& path, const std::string& rule) {
  throw InputError(source + ": " + path + ": " + rule);
}

std::string shown(const json& value) {
  std::string text = value.dump();
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

// x for a message: whole numbers up to 9.2e18 in full (4294967294, not 4.29497e+09), others to 6 digits, inf as
// inf.
std::string number(double x) {
  std::ostringstream out;
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) <= 9.2e18)
    out << static_cast<long long>(x);
  else
    out << x;
  return out.str();
}

std::string range_rule(double lo, double hi, bool lo_open, bool hi_open) {
  std::ostringstream rule;
  if (std::isfinite(lo) && std::isfinite(hi))
    rule << "in " << (lo_open ? "(" : "[") << number(lo) << ", " << number(hi) << (hi_open ? ")" : "]");
  else if (std::isfinite(lo))
    rule << (lo_open ? "> " : ">= ") << number(lo);
  else if (std::isfinite(hi))
    rule << (hi_open ? "< " : "<= ") << number(hi);
  else
    rule << "finite";
  return rule.str();
}

// Reads a number as double, rejecting non-numbers and non-finite values.
double read_real(const json& value, const std::string& source, const std::string& path) {
  if (!value.is_number()) fail(source, path, "must be a number (got " + shown(value) + ")");
  const double x = value.get<double>();
  if (!std::isfinite(x)) fail(source, path, "must be finite (got " + shown(value) + ")");
  return x;
}

long long read_integer(const json& value, const std::string& source, const std::string& path) {
  if (value.is_number_integer()) return value.get<long long>();
  if (value.is_number_float()) {
    const double x = value.get<double>();
    if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9e18) return static_cast<long long>(x);
  }
  fail(source, path, "must be an integer (got " + shown(value) + ")");
}

void check_range(double x, double lo, double hi, bool lo_open, bool hi_open, const json& value,
                 const std::string& source, const std::string& path) {
  const bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (!ok) fail(source, path, "must be " + range_rule(lo, hi, lo_open, hi_open) + " (got " + shown(value) + ")");
}

// Validates one scalar value of a grid parameter; returns it normalized.
json validate_scalar(const GridParam& param, const json& value, const std::string& source, const std::string& path) {
  switch (param.type) {
    case ParamType::choice: {
      std::string allowed;
      for (const auto& c : param.choices) allowed += (allowed.empty() ? "" : ", ") + c;
      if (!value.is_string()) fail(source, path, "must be one of " + allowed + " (got " + shown(value) + ")");
      for (const auto& c : param.choices)
        if (value.get<std::string>() == c) return value;
      fail(source, path, "must be one of " + allowed + " (got " + shown(value) + ")");
    }
    case ParamType::integer: {
      const long long x = read_integer(value, source, path);
      check_range(double(x), param.lo, param.hi, param.lo_open, param.hi_open, value, source, path);
      return x;
    }
    case ParamType::real: {
      const double x = read_real(value, source, path);
      check_range(x, param.lo, param.hi, param.lo_open, param.hi_open, value, source, path);
      return x;
    }
    case ParamType::boolean:
      if (!value.is_boolean()) fail(source, path, "must be true or false (got " + shown(value) + ")");
      return value;
    case ParamType::path:
      if (!value.is_null() && !(value.is_string() && !value.get<std::string>().empty()))
        fail(source, path, "must be a file path or null (got " + shown(value) + ")");
      return value;
  }
  return value;
}

template <class Enum>
Enum parse_choice(const std::string& text, const std::vector<std::pair<const char*, Enum>>& table) {
  for (const auto& [name, value] : table)
    if (text == name) return value;
  throw std::logic_error("unvalidated choice " + text);
}

// Everything a cell's parsing needs beyond its parameters: which grid parameters the study gave, the directory
// relative data set paths start from, and the data set files read so far (each read once).
struct CellContext {
  std::set<std::string> given;            // grid parameters the study gave
  std::set<std::string> given_otherwise;  // ... with a value other than the default (in some list entry)
  std::string base_directory;
  std::map<std::string, std::shared_ptr<const AttentionFileData>> files;
};

// The attention family's part of a cell: losses, trainable set, data set, and the sizes a toy set or file fixes
// (a size the study gave must agree with them). n holds the tokens T.
void make_attention_cell(const json& p, const std::string& source, const std::string& cell_path, CellContext& context,
                         CellParams& cell) {
  ModelShape& shape = cell.shape;
  if (context.given.count("n"))
    fail(source, "n", "does not apply to the attention model (its softmax has `tokens` entries)");
  if (shape.loss != LossKind::logistic && shape.loss != LossKind::linear && shape.loss != LossKind::exponential)
    fail(source, cell_path + ".loss",
         "the attention model's losses are logistic, linear, exponential (got " + shown(p["loss"]) + ")");
  shape.trainable = parse_choice<AttentionTrainable>(p["trainable"], {{"p", AttentionTrainable::p},
                                                                      {"W", AttentionTrainable::w},
                                                                      {"vp", AttentionTrainable::vp}});
  cell.dataset = parse_choice<AttentionDataset>(
      p["dataset"], {{"gaussian", AttentionDataset::gaussian}, {"sphere", AttentionDataset::sphere},
                     {"single_global", AttentionDataset::single_global}, {"single_local", AttentionDataset::single_local},
                     {"multi_input", AttentionDataset::multi_input}, {"joint_tight", AttentionDataset::joint_tight},
                     {"joint_relaxed", AttentionDataset::joint_relaxed}, {"loss_pair", AttentionDataset::loss_pair},
                     {"file", AttentionDataset::file}});
  cell.loss_pair_score = p["loss_pair_score"];
  const std::string rule = dataset_trainable_rule(cell.dataset, shape.trainable);
  if (!rule.empty()) fail(source, cell_path + ".trainable", rule + " (got " + shown(p["trainable"]) + ")");
  AttentionDims dims{p["inputs"].get<int>(), p["tokens"].get<int>(), p["d"].get<int>()};
  bool fixed_dims = toy_dataset_dims(cell.dataset, dims);
  std::string file_path;  // a data set file's, once read
  if (cell.dataset == AttentionDataset::file) {
    if (p["dataset_file"].is_null()) fail(source, cell_path + ".dataset_file", "dataset \"file\" needs a dataset_file");
    const std::string path = resolve_path(p["dataset_file"].get<std::string>(), context.base_directory);
    const std::string key = path + "#" + std::to_string(int(shape.trainable));
    auto found = context.files.find(key);
    if (found == context.files.end())
      found = context.files.emplace(key, std::make_shared<const AttentionFileData>(
                                             load_attention_dataset(path, shape.trainable))).first;
    cell.file_data = found->second;
    dims = {cell.file_data->inputs, cell.file_data->tokens, cell.file_data->d};
    fixed_dims = true;
    file_path = path;
  } else if (!p["dataset_file"].is_null()) {
    fail(source, cell_path + ".dataset_file", "is read only with dataset \"file\" (got dataset " + shown(p["dataset"]) + ")");
  }
  const std::pair<const char*, int> sizes[3] = {{"inputs", dims.inputs}, {"tokens", dims.tokens}, {"d", dims.d}};
  for (const auto& [key, value] : sizes) {
    // A file's sizes meet the ranges a study's own would (d^2 and the state sizes are ints).
    const GridParam& range = grid_param(key);
    if (!file_path.empty() && (value < range.lo || value > range.hi))
      fail(source, cell_path + ".dataset_file",
           "the data set " + file_path + " has " + key + " = " + std::to_string(value) + "; must be " +
               range_rule(range.lo, range.hi, range.lo_open, range.hi_open));
    if (fixed_dims && context.given.count(key) && p[key].get<int>() != value)
      fail(source, cell_path + "." + key, "the data set " + shown(p["dataset"]) + " has " + key + " = " +
                                              std::to_string(value) + " (got " + shown(p[key]) + ")");
    cell.parameters[key] = value;
  }
  shape.inputs = dims.inputs;
  shape.n = dims.tokens;
  shape.d = dims.d;
  shape.m = 0;
  cell.parameters["n"] = dims.tokens;
  if (double(shape.inputs) * shape.n * shape.d > double(1 << 26))
    fail(source, cell_path + ".inputs", "inputs * tokens * d must be at most 2^26");
  if (svm_workspace_size(shape) > kMaxSvmWorkspace) {
    char rule[200];
    std::snprintf(rule, sizeof rule,
                  "the att-SVM of a run with inputs * (tokens - 1) = %d constraints in %d dimensions needs %.1f GiB "
                  "of workspace; at most 16 GiB",
                  svm_constraint_count(shape), svm_dimension(shape), double(svm_workspace_size(shape)) / 134217728.0);
    fail(source, cell_path + ".inputs", rule);
  }
}

CellParams make_cell(const json& p, const std::string& source, const std::string& cell_path, CellContext& context) {
  CellParams cell;
  cell.parameters = p;
  cell.shape.model = parse_choice<ModelKind>(p["model"], {{"value_softmax", ModelKind::value_softmax},
                                                          {"tied", ModelKind::tied},
                                                          {"attention", ModelKind::attention}});
  cell.shape.loss = parse_choice<LossKind>(p["loss"], {{"logistic", LossKind::logistic},
                                                       {"square", LossKind::square},
                                                       {"cross_entropy", LossKind::cross_entropy},
                                                       {"regression", LossKind::regression},
                                                       {"linear", LossKind::linear},
                                                       {"exponential", LossKind::exponential}});
  cell.shape.d = p["d"].get<int>();
  cell.shape.n = p["n"].get<int>();
  cell.shape.m = cell.shape.loss == LossKind::regression ? p["regression_samples"].get<int>() : 0;
  cell.precision = p["precision"] == "float32" ? Precision::float32 : Precision::float64;
  cell.method = parse_choice<Method>(p["integrator"], {{"gd", Method::gd}, {"rk4", Method::rk4},
                                                       {"dopri5", Method::dopri5},
                                                       {"normalized_gd", Method::normalized_gd}});
  cell.step = p["step"];
  cell.adaptive.rtol = p["rtol"];
  cell.adaptive.atol = p["atol"];
  cell.adaptive.initial_step = p["initial_step"];
  cell.adaptive.max_steps = p["max_steps"];
  cell.sigma_v = p["sigma_v"];
  cell.mu_a = p["mu_a"];
  cell.sigma_a = p["sigma_a"];
  cell.shared_target = p["target"] == "shared";
  cell.kappa = p["kappa"];
  cell.ce_temperature = p["ce_temperature"];
  cell.identity_init = p["identity_init"];
  if (cell.shape.model == ModelKind::attention) {
    make_attention_cell(p, source, cell_path, context, cell);
    return cell;
  }
  if (cell.shape.loss == LossKind::linear || cell.shape.loss == LossKind::exponential)
    fail(source, cell_path + ".loss", "the linear and exponential losses belong to the attention model (got " +
                                          shown(p["loss"]) + " with model " + shown(p["model"]) + ")");
  if (cell.shape.model == ModelKind::tied) {
    if (cell.shape.loss != LossKind::logistic)
      fail(source, cell_path + ".loss", "the tied model supports only the logistic loss (got " + shown(p["loss"]) + ")");
    // The tied model is square: its size D is n, and d follows it (echoed as such in the cell's parameters).
    cell.shape.d = cell.shape.n;
    cell.parameters["d"] = cell.shape.n;
  }
  if (cell.shape.loss == LossKind::cross_entropy && cell.shape.d < 2)
    fail(source, cell_path + ".d", "cross_entropy needs d >= 2 classes (got " + std::to_string(cell.shape.d) + ")");
  if (double(cell.shape.matrix_size()) > double(1 << 24))
    fail(source, cell_path + ".d", "d * n must be at most 2^24 (got d = " + std::to_string(cell.shape.d) +
                                       ", n = " + std::to_string(cell.shape.n) + ")");
  return cell;
}

void check_keys(const json& object, const std::vector<std::string>& allowed, const std::string& source,
                const std::string& prefix) {
  for (const auto& item : object.items()) {
    bool known = false;
    for (const auto& key : allowed) known = known || item.key() == key;
    if (!known) {
      std::string list;
      for (const auto& key : allowed) list += (list.empty() ? "" : ", ") + key;
      fail(source, prefix + item.key(), "unknown key (allowed: " + list + ")");
    }
  }
}

json require_object(const json& value, const std::string& source, const std::string& path) {
  if (!value.is_object()) fail(source, path, "must be an object (got " + shown(value) + ")");
  return value;
}

std::vector<double> parse_checkpoints(const json& spec, const std::string& source, json& normalized) {
  require_object(spec, source, "checkpoints");
  const std::string schedule = spec.contains("schedule") && spec["schedule"].is_string()
                                   ? spec["schedule"].get<std::string>() : std::string();
  std::vector<double> times;
  if (schedule == "list") {
    check_keys(spec, {"schedule", "times"}, source, "checkpoints.");
    if (!spec.contains("times") || !spec["times"].is_array() || spec["times"].empty())
      fail(source, "checkpoints.times", "must be a non-empty list of times");
    for (size_t i = 0; i < spec["times"].size(); ++i) {
      const std::string path = "checkpoints.times[" + std::to_string(i) + "]";
      const double t = read_real(spec["times"][i], source, path);
      check_range(t, 0, kInf, false, true, spec["times"][i], source, path);
      if (!times.empty() && t <= times.back()) fail(source, path, "times must be strictly increasing");
      times.push_back(t);
    }
    normalized = {{"schedule", "list"}, {"times", times}};
    return times;
  }
  if (schedule != "log" && schedule != "linear")
    fail(source, "checkpoints.schedule", "must be one of log, linear, list (got " +
                                             (spec.contains("schedule") ? shown(spec["schedule"]) : "nothing") + ")");
  const bool log_spaced = schedule == "log";
  check_keys(spec, {"schedule", "start", "stop", "count", "include_zero"}, source, "checkpoints.");
  auto get = [&](const char* key, const json& fallback) { return spec.contains(key) ? spec[key] : fallback; };
  const json start_value = get("start", log_spaced ? 1.0 : 0.0);
  const double start = read_real(start_value, source, "checkpoints.start");
  check_range(start, 0, kInf, log_spaced, true, start_value, source, "checkpoints.start");
  const json stop_value = get("stop", 1e4);
  const double stop = read_real(stop_value, source, "checkpoints.stop");
  check_range(stop, start, kInf, true, true, stop_value, source, "checkpoints.stop");
  const json count_value = get("count", log_spaced ? 17 : 11);
  const long long count = read_integer(count_value, source, "checkpoints.count");
  check_range(double(count), 2, 100000, false, false, count_value, source, "checkpoints.count");
  const json zero_value = get("include_zero", log_spaced);
  if (!zero_value.is_boolean()) fail(source, "checkpoints.include_zero", "must be true or false (got " + shown(zero_value) + ")");
  if (zero_value.get<bool>() && start > 0) times.push_back(0.0);
  for (long long i = 0; i < count; ++i) {
    const double f = double(i) / double(count - 1);
    // Log spacing in base 10, so that whole decades come out exact (pow(10, 4.0) == 1e4).
    times.push_back(log_spaced ? std::pow(10.0, std::log10(start) + f * (std::log10(stop) - std::log10(start)))
                               : start + (stop - start) * f);
  }
  times.back() = stop;
  for (size_t i = 1; i < times.size(); ++i)
    if (!(times[i] > times[i - 1]))
      fail(source, "checkpoints", "start and stop are too close for " + std::to_string(count) +
                                      " distinct times");
  normalized = {{"schedule", schedule}, {"start", start}, {"stop", stop}, {"count", count},
                {"include_zero", zero_value.get<bool>()}};
  return times;
}

StopRule parse_stop(const json& spec, const std::string& source, json& normalized) {
  require_object(spec, source, "stop");
  check_keys(spec, {"polarized_eps", "loss_below", "grad_norm_below"}, source, "stop.");
  StopRule rule;
  normalized = json::object();
  auto read_bound = [&](const char* key, double hi, double& out) {
    const std::string path = std::string("stop.") + key;
    if (!spec.contains(key) || spec[key].is_null()) {
      normalized[key] = nullptr;
      return;
    }
    out = read_real(spec[key], source, path);
    check_range(out, 0, hi, true, true, spec[key], source, path);
    normalized[key] = out;
  };
  read_bound("polarized_eps", 1.0, rule.polarized_eps);
  read_bound("loss_below", kInf, rule.loss_below);
  read_bound("grad_norm_below", kInf, rule.grad_norm_below);
  return rule;
}

}  // namespace

json default_study_json() {
  return {{"name", "default"},
          {"description", "logistic loss, d = n = 8, sigma_v = 0.1, a(0) = 0: polarization toward argmax u(0)"},
          {"model", "value_softmax"},
          {"loss", "logistic"},
          {"d", 8},
          {"n", 8},
          {"runs", 4096},
          {"integrator", "dopri5"},
          {"checkpoints", {{"schedule", "log"}, {"start", 1.0}, {"stop", 1e4}, {"count", 17}}}};
}

Study parse_study(const json& raw_in, const std::string& source, const StudyOverrides& overrides,
                  const std::string& base_directory) {
  json raw = raw_in;
  if (!raw.is_object()) fail(source, "(top level)", "a study must be a JSON object (got " + shown(raw) + ")");
  if (overrides.runs >= 0) raw["runs"] = overrides.runs;
  if (overrides.seed >= 0) raw["seed"] = overrides.seed;
  std::vector<std::string> allowed = kTopLevelKeys;
  for (const auto& p : grid_params()) allowed.push_back(p.name);
  check_keys(raw, allowed, source, "");

  Study study;
  json& out = study.normalized;
  out = json::object();
  auto text_field = [&](const char* key, const std::string& fallback) {
    if (!raw.contains(key)) return fallback;
    if (!raw[key].is_string()) fail(source, key, "must be a string (got " + shown(raw[key]) + ")");
    return raw[key].get<std::string>();
  };
  study.name = text_field("name", "study");
  study.description = text_field("description", "");
  out["name"] = study.name;
  out["description"] = study.description;

  const json runs_value = raw.value("runs", json(4096));
  study.runs = read_integer(runs_value, source, "runs");
  check_range(double(study.runs), 1, 4294967294.0, false, false, runs_value, source, "runs");
  out["runs"] = study.runs;
  const json seed_value = raw.value("seed", json(0));
  const long long seed = read_integer(seed_value, source, "seed");
  check_range(double(seed), 0, 9.2e18, false, false, seed_value, source, "seed");
  study.seed = std::uint64_t(seed);
  out["seed"] = seed;
  const json bins_value = raw.value("histogram_bins", json(20));
  study.histogram_bins = int(read_integer(bins_value, source, "histogram_bins"));
  check_range(double(study.histogram_bins), 1, 1000, false, false, bins_value, source, "histogram_bins");
  out["histogram_bins"] = study.histogram_bins;

  json checkpoints_normalized, stop_normalized;
  study.checkpoint_times = parse_checkpoints(
      raw.contains("checkpoints") ? raw["checkpoints"] : default_study_json()["checkpoints"], source,
      checkpoints_normalized);
  out["checkpoints"] = checkpoints_normalized;
  study.stop = parse_stop(raw.value("stop", json::object()), source, stop_normalized);
  out["stop"] = stop_normalized;

  // Grid parameters: each value validated; lists become axes of the cartesian product.
  std::vector<std::pair<std::string, std::vector<json>>> axes;
  for (const auto& param : grid_params()) {
    std::vector<json> values;
    if (!raw.contains(param.name)) {
      values.push_back(param.default_value);
      out[param.name] = param.default_value;
    } else if (raw[param.name].is_array()) {
      const json& list = raw[param.name];
      if (list.empty()) fail(source, param.name, "a grid list must not be empty");
      for (size_t i = 0; i < list.size(); ++i)
        values.push_back(validate_scalar(param, list[i], source, std::string(param.name) + "[" + std::to_string(i) + "]"));
      out[param.name] = values;
      study.grid_axes.push_back(param.name);
    } else {
      values.push_back(validate_scalar(param, raw[param.name], source, param.name));
      out[param.name] = values[0];
    }
    axes.emplace_back(param.name, values);
  }
  CellContext context;
  context.base_directory = base_directory;
  for (const auto& param : grid_params()) {
    if (!raw.contains(param.name)) continue;
    context.given.insert(param.name);
    const json& value = raw[param.name];
    const bool other = value.is_array() ? std::any_of(value.begin(), value.end(),
                                                      [&](const json& v) { return v != param.default_value; })
                                        : value != param.default_value;
    if (other) context.given_otherwise.insert(param.name);
  }
  size_t cell_count = 1;
  for (const auto& axis : axes) {
    cell_count *= axis.second.size();
    if (cell_count > 100000) fail(source, "(grid)", "the grid has more than 100000 cells");
  }
  for (size_t index = 0; index < cell_count; ++index) {
    json params = json::object();
    size_t rest = index;
    for (size_t a = axes.size(); a-- > 0;) {
      const auto& values = axes[a].second;
      params[axes[a].first] = values[rest % values.size()];
      rest /= values.size();
    }
    study.cells.push_back(make_cell(params, source, "cells[" + std::to_string(index) + "]", context));
  }
  // The attention family's keys in a study without an attention cell would be silently ignored (at their defaults
  // they change nothing, and the normalized study carries them so).
  const auto attention_cells = std::count_if(study.cells.begin(), study.cells.end(), [](const CellParams& cell) {
    return cell.shape.model == ModelKind::attention;
  });
  const bool any_attention = attention_cells > 0, all_attention = attention_cells == std::ptrdiff_t(study.cells.size());
  for (const char* key : {"trainable", "inputs", "tokens", "dataset", "dataset_file", "loss_pair_score"})
    if (!any_attention && context.given_otherwise.count(key))
      fail(source, key, "applies to the attention model only (this study has no attention cell)");
  // In an all-attention study the normalized study leaves out the defaults that apply to no cell, so that it reads
  // back as itself: n (the tokens are `tokens`), and d, inputs, tokens where every cell's data set fixes them.
  const bool all_sizes_fixed = std::all_of(study.cells.begin(), study.cells.end(), [](const CellParams& cell) {
    return cell.dataset != AttentionDataset::gaussian && cell.dataset != AttentionDataset::sphere;
  });
  if (all_attention && !context.given.count("n")) out.erase("n");
  for (const char* key : {"d", "inputs", "tokens"})
    if (all_attention && all_sizes_fixed && !context.given.count(key)) out.erase(key);
  // Fixed-step integrators count whole steps: keep the count well inside exact 64-bit and double range.
  for (size_t index = 0; index < study.cells.size(); ++index) {
    const CellParams& cell = study.cells[index];
    const double steps = study.checkpoint_times.back() / cell.step;
    if (cell.method != Method::dopri5 && steps > 1e15)
      fail(source, "cells[" + std::to_string(index) + "].step",
           "too small for the last checkpoint time (" + number(steps) + " steps; at most 1e15)");
  }
  if (raw.contains("cell_count") && raw["cell_count"] != json(cell_count))
    fail(source, "cell_count", "is the grid's number of cells, " + std::to_string(cell_count) +
                                   " here (got " + shown(raw["cell_count"]) + "); leave it out");
  out["cell_count"] = cell_count;
  for (const auto& [key, data] : context.files)
    study.input_files.insert(study.input_files.end(), data->files.begin(), data->files.end());
  return study;
}

std::string one_line(const std::string& text) {
  static const char kHex[] = "0123456789abcdef";
  const auto hex = [](unsigned char byte) { return std::string{kHex[byte >> 4], kHex[byte & 15]}; };
  std::string out;
  out.reserve(text.size());
  int continuation = 0;  // continuation bytes still expected in a UTF-8 sequence
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x80 && byte < 0xc0 && continuation > 0) {  // inside a character: copied with it
      --continuation;
      out += char(byte);
    } else if (byte == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0 &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80) {  // U+0080..U+009F: the C1 controls
      out += "\\u00" + hex(static_cast<unsigned char>(text[++i]));
      continuation = 0;
    } else if (byte >= 0xc0) {  // a lead byte: 1 to 3 continuation bytes follow
      continuation = byte >= 0xf0 ? 3 : (byte >= 0xe0 ? 2 : 1);
      out += char(byte);
    } else {
      continuation = 0;
      if (byte == '\n') out += "\\n";
      else if (byte == '\t') out += "\\t";
      else if (byte < 0x20 || byte == 0x7f || byte >= 0x80) out += "\\x" + hex(byte);  // >= 0x80: a stray byte
      else out += char(byte);
    }
  }
  return out;
}

void check_input_file(const std::string& path, const std::string& kind) {
  struct stat info;
  if (path.empty()) throw InputError("the " + kind + " file's path is empty");
  if (stat(path.c_str(), &info) != 0)
    throw InputError(path + ": cannot open " + kind + " file (" + std::strerror(errno) + ")");
  if (S_ISDIR(info.st_mode)) throw InputError(path + ": is a directory, not a " + kind + " file");
  if (!S_ISREG(info.st_mode))
    throw InputError(path + ": not a regular file (a device, FIFO or socket), so not a " + kind + " file");
}

nlohmann::json read_json_file(const std::string& path, const std::string& kind) {
  check_input_file(path, kind);
  std::ifstream in(path);
  if (!in) throw InputError(path + ": cannot open " + kind + " file (unreadable)");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path + ": cannot read " + kind + " file");
  // The open objects and arrays: an object's keys so far and its current key; an array's current index.
  struct Level {
    bool object;
    std::vector<std::string> keys;
    long long index = -1;
  };
  std::vector<Level> levels;
  const auto where = [&levels](const std::string& key) {
    std::string at;
    for (size_t i = 0; i + 1 < levels.size(); ++i)
      at += levels[i].object ? (at.empty() ? "" : ".") + levels[i].keys.back()
                             : "[" + std::to_string(levels[i].index) + "]";
    return at + (at.empty() ? "" : ".") + key;
  };
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
    if ((opens || event == json::parse_event_t::value) && !levels.empty() && !levels.back().object)
      ++levels.back().index;  // an element of the enclosing array begins
    if (opens) {
      if (levels.size() >= size_t(kMaxJsonDepth))
        throw InputError(path + ": " + kind + " file nests objects and arrays deeper than " +
                         std::to_string(kMaxJsonDepth) + " levels");
      levels.push_back({event == json::parse_event_t::object_start, {}});
    }
    if (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end) levels.pop_back();
    if (event == json::parse_event_t::key) {
      const std::string key = parsed.get<std::string>();
      for (const auto& seen : levels.back().keys)
        if (seen == key) throw InputError(path + ": " + where(key) + ": duplicate key");
      levels.back().keys.push_back(key);
    }
    return true;
  };
  try {
    return json::parse(text.str(), check);
  } catch (const json::exception& e) {  // syntax errors, numbers out of range, invalid UTF-8
    throw InputError(path + ": malformed JSON: " + e.what());
  }
}

Study load_study_file(const std::string& path, const StudyOverrides& overrides) {
  return parse_study(read_json_file(path, "study"), path, overrides, directory_of(path));
}

CellCheckpoints cell_checkpoints(const Study& study, const CellParams& cell) {
  CellCheckpoints out;
  for (double t : study.checkpoint_times) {
    if (cell.method == Method::dopri5) {
      out.times.push_back(t);
      out.steps.push_back(-1);
      continue;
    }
    const long long k = std::llround(t / cell.step);
    if (!out.steps.empty() && k == out.steps.back()) continue;
    out.steps.push_back(k);
    out.times.push_back(double(k) * cell.step);
  }
  return out;
}

std::string directory_of(const std::string& file) {
  const size_t slash = file.find_last_of('/');
  return slash == std::string::npos ? std::string() : file.substr(0, slash);
}

std::string resolve_path(const std::string& path, const std::string& directory) {
  if (path.empty() || path[0] == '/' || directory.empty()) return path;
  return directory + "/" + path;
}

const char* to_string(Precision p) { return p == Precision::float32 ? "float32" : "float64"; }
const char* to_string(Method m) {
  switch (m) {
    case Method::gd: return "gd";
    case Method::rk4: return "rk4";
    case Method::dopri5: return "dopri5";
    case Method::normalized_gd: return "normalized_gd";
  }
  return "?";
}
const char* to_string(LossKind l) {
  switch (l) {
    case LossKind::logistic: return "logistic";
    case LossKind::square: return "square";
    case LossKind::cross_entropy: return "cross_entropy";
    case LossKind::regression: return "regression";
    case LossKind::linear: return "linear";
    case LossKind::exponential: return "exponential";
  }
  return "?";
}
const char* to_string(ModelKind m) {
  switch (m) {
    case ModelKind::value_softmax: return "value_softmax";
    case ModelKind::tied: return "tied";
    case ModelKind::attention: return "attention";
  }
  return "?";
}

}  // namespace softflow
