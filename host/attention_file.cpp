// Purpose: reading an attention data set from a JSON file (see attention_data.h and README "Attention family"):
// {"X": N x T x d, "Y": N, "W": d x d, "v": d, "z": N x d}, each a nested list of numbers or the name of a .npy
// file holding the array. Every problem is one InputError naming the file, the key and what is wrong.
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention_data.h"
#include "npy_array.h"

namespace softflow {
namespace {

using nlohmann::json;

struct ArrayReader {
  const std::string& path;
  std::vector<std::string>& files_read;  // each .npy file read is added

  [[noreturn]] void fail(const std::string& key, const std::string& rule) const {
    throw InputError(path + ": " + key + ": " + rule);
  }

  // A nested list's shape, read along its first elements; every element is checked against it when flattened.
  std::vector<int> shape_of(const json& value) const {
    std::vector<int> shape;
    for (const json* at = &value; at->is_array(); at = &(*at)[0]) {
      shape.push_back(int(at->size()));
      if (at->empty()) break;
    }
    return shape;
  }

  void flatten(const std::string& key, const json& value, const std::vector<int>& shape, size_t depth,
               std::vector<double>& out) const {
    if (depth == shape.size()) {
      if (!value.is_number()) fail(key, "must hold only numbers (found " + value.dump().substr(0, 30) + ")");
      const double x = value.get<double>();
      if (!std::isfinite(x)) fail(key, "must hold only finite numbers");
      out.push_back(x);
      return;
    }
    if (!value.is_array() || int(value.size()) != shape[depth]) fail(key, "is not a rectangular array");
    for (const json& item : value) flatten(key, item, shape, depth + 1, out);
  }

  // The array under `key` with `rank` dimensions, from a nested list or from the .npy file a string names
  // (relative paths start at the data set file's directory); its shape in dims.
  std::vector<double> read(const json& root, const std::string& key, size_t rank, std::vector<int>& dims) const {
    const json& value = root[key];
    std::vector<double> out;
    if (value.is_string()) {
      NpyArray array;
      try {
        const std::string npy_path = resolve_path(value.get<std::string>(), directory_of(path));
        files_read.push_back(npy_path);
        array = read_npy(npy_path);
      } catch (const InputError& e) {
        fail(key, e.what());
      }
      dims.clear();
      for (size_t extent : array.shape) {
        if (extent > size_t(std::numeric_limits<int>::max())) fail(key, "has an extent beyond 2^31");
        dims.push_back(int(extent));
      }
      out = std::move(array.values);
      for (double x : out)
        if (!std::isfinite(x)) fail(key, "must hold only finite numbers");
    } else if (value.is_array()) {
      dims = shape_of(value);
    } else {
      fail(key, "must be a nested list of numbers or the name of a .npy file");
    }
    if (dims.size() != rank) fail(key, "must have " + std::to_string(rank) + " dimensions (got " +
                                           std::to_string(dims.size()) + ")");
    for (int extent : dims)
      if (extent == 0) fail(key, "must not be empty");
    if (value.is_array()) flatten(key, value, dims, 0, out);
    return out;
  }

  void expect_dims(const std::string& key, const std::vector<int>& dims, const std::vector<int>& expected,
                   const std::string& meaning) const {
    if (dims != expected) fail(key, "must be " + meaning);
  }
};

}  // namespace

AttentionFileData load_attention_dataset(const std::string& path, AttentionTrainable trainable) {
  const json root = read_json_file(path, "data set");
  std::vector<std::string> files_read = {path};
  const ArrayReader reader{path, files_read};
  if (!root.is_object()) reader.fail("(top level)", "a data set must be a JSON object with X and Y");
  const bool train_w = trainable == AttentionTrainable::w, train_v = trainable == AttentionTrainable::vp;
  for (const auto& item : root.items()) {
    const std::string& key = item.key();
    const bool known = key == "X" || key == "Y" || key == "W" || key == "v" || key == "z";
    if (!known) reader.fail(key, "unknown key (allowed: X, Y, W, v, z)");
    if (key == "W" && train_w) reader.fail(key, "W is trained (trainable W): leave it out");
    if (key == "v" && train_v) reader.fail(key, "v is trained (trainable vp): leave it out");
    if (key == "z" && !train_w) reader.fail(key, "the query tokens z belong to trainable W only");
  }
  for (const char* key : {"X", "Y"})
    if (!root.contains(key)) reader.fail(key, "missing");
  if (!train_v && !root.contains("v")) reader.fail("v", "missing (the fixed value vector, d entries)");
  if (train_w && !root.contains("z")) reader.fail("z", "missing (the query tokens, N x d)");

  std::vector<int> dims;
  const std::vector<double> x = reader.read(root, "X", 3, dims);
  AttentionFileData out;
  out.inputs = dims[0];
  out.tokens = dims[1];
  out.d = dims[2];
  const int n_inputs = out.inputs, d = out.d;
  const std::vector<double> y = reader.read(root, "Y", 1, dims);
  reader.expect_dims("Y", dims, {n_inputs}, "one label per input (" + std::to_string(n_inputs) + ")");
  for (double label : y)
    if (label != 1.0 && label != -1.0) reader.fail("Y", "labels must be +1 or -1");
  out.values = x;
  out.values.insert(out.values.end(), y.begin(), y.end());
  if (!train_w) {  // W (d x d), the identity when left out
    std::vector<double> w(size_t(d) * d, 0.0);
    for (int i = 0; i < d; ++i) w[size_t(i) * d + i] = 1.0;
    if (root.contains("W")) {
      w = reader.read(root, "W", 2, dims);
      reader.expect_dims("W", dims, {d, d}, "d x d (" + std::to_string(d) + " x " + std::to_string(d) + ")");
    }
    out.values.insert(out.values.end(), w.begin(), w.end());
  } else {
    const std::vector<double> z = reader.read(root, "z", 2, dims);
    reader.expect_dims("z", dims, {n_inputs, d}, "N x d (" + std::to_string(n_inputs) + " x " + std::to_string(d) + ")");
    out.values.insert(out.values.end(), z.begin(), z.end());
  }
  if (!train_v) {
    const std::vector<double> v = reader.read(root, "v", 1, dims);
    reader.expect_dims("v", dims, {d}, "d entries (" + std::to_string(d) + ")");
    out.values.insert(out.values.end(), v.begin(), v.end());
  }
  out.files = files_read;
  return out;
}

}  // namespace softflow
