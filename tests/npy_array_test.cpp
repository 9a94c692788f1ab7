// Purpose: .npy arrays as data set input: read_npy's shapes, dtypes and row-major order (C and Fortran files,
// written by xtensor's own writer), its one-line errors (missing, not .npy, unsupported dtype, truncated, extra
// bytes), and attention data set files whose entries name .npy files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xnpy.hpp>

#include "attention_data.h"
#include "npy_array.h"
#include "study.h"
#include "test_support.h"

namespace softflow {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh temporary directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/softflow-npy-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_error(const std::string& path) {
  return testing::error_of_call([&] { read_npy(path); });
}

TEST(NpyArray, ReadsEachDtypeInRowMajorOrderFromCAndFortranFiles) {
  const TempDir dir;
  const xt::xarray<double> c_order = {{1.5, -2, 3}, {4, 5, 6.25}};
  xt::dump_npy(dir.file("c.npy"), c_order);
  xt::xarray<float, xt::layout_type::column_major> fortran = {{1, 2, 3}, {4, 5, 6}};
  xt::dump_npy(dir.file("f.npy"), fortran);
  const xt::xarray<std::int32_t> labels = {1, -1, 1};
  xt::dump_npy(dir.file("i4.npy"), labels);
  xt::xarray<std::int64_t> wide = xt::zeros<std::int64_t>({2, 1});
  wide(0, 0) = 7;
  wide(1, 0) = -8;
  xt::dump_npy(dir.file("i8.npy"), wide);

  const NpyArray a = read_npy(dir.file("c.npy"));
  EXPECT_EQ(a.shape, (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(a.values, (std::vector<double>{1.5, -2, 3, 4, 5, 6.25}));
  const NpyArray f = read_npy(dir.file("f.npy"));
  EXPECT_EQ(f.shape, (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(f.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));  // row-major although the file is column-major
  EXPECT_EQ(read_npy(dir.file("i4.npy")).values, (std::vector<double>{1, -1, 1}));
  const NpyArray w = read_npy(dir.file("i8.npy"));
  EXPECT_EQ(w.shape, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(w.values, (std::vector<double>{7, -8}));
}

TEST(NpyArray, RejectsMissingMalformedUnsupportedAndTruncatedFilesInOneLine) {
  const TempDir dir;
  EXPECT_EQ(read_error(dir.file("none.npy")),
            dir.file("none.npy") + ": cannot open .npy file (No such file or directory)");

  std::ofstream(dir.file("text.npy")) << "X = [1, 2, 3]\n";
  EXPECT_EQ(read_error(dir.file("text.npy")).rfind(dir.file("text.npy") + ": not a valid .npy array (", 0), 0u);

  const xt::xarray<std::uint8_t> bytes = {1, 2, 3};
  xt::dump_npy(dir.file("u1.npy"), bytes);
  EXPECT_EQ(read_error(dir.file("u1.npy")),
            dir.file("u1.npy") + ": .npy dtype '|u1' not supported (use float64, float32, int64 or int32)");

  const xt::xarray<double> values = {1, 2, 3, 4};
  const std::string full = xt::dump_npy(values);
  std::ofstream(dir.file("short.npy"), std::ios::binary) << full.substr(0, full.size() - 3);
  EXPECT_EQ(read_error(dir.file("short.npy")),
            dir.file("short.npy") + ": truncated .npy file (fewer data bytes than its header's shape needs)");
  std::ofstream(dir.file("long.npy"), std::ios::binary) << full << "extra";
  EXPECT_EQ(read_error(dir.file("long.npy")),
            dir.file("long.npy") + ": .npy file holds more bytes than its header's shape needs");

  // Shapes the parser would read as huge unsigned sizes: a negative extent, and extents whose product wraps.
  const auto with_shape = [&](const std::string& name, const std::string& shape) {
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    header += std::string((64 - (10 + header.size() + 1) % 64) % 64, ' ') + "\n";
    std::ofstream file(dir.file(name), std::ios::binary);
    file << "\x93NUMPY" << char(1) << char(0) << char(header.size() & 255) << char(header.size() >> 8) << header;
    return dir.file(name);
  };
  const std::string negative = with_shape("negative.npy", "(2, -2, 3)");
  EXPECT_EQ(read_error(negative), negative + ": .npy header's shape (2, -2, 3) has a negative extent");
  const std::string wraps = with_shape("wraps.npy", "(4611686018427387904, 4611686018427387904, 4)");
  EXPECT_EQ(read_error(wraps), wraps + ": .npy header's shape (4611686018427387904, 4611686018427387904, 4) is "
                                       "larger than any array can be");
  // A header that claims 48 GiB over a file with no data is truncated, not short of memory (nor 48 GiB allocated).
  const std::string huge = with_shape("huge.npy", "(1073741824, 3, 2)");
  EXPECT_EQ(read_error(huge), huge + ": truncated .npy file (fewer data bytes than its header's shape needs)");
}

TEST(NpyArray, DataSetFileEntriesMayNameNpyFilesRelativeToIt) {
  const TempDir dir;
  const xt::xarray<double> x = {{{1, 0}, {0, 1}, {0.5, 0.5}}, {{0, 1}, {1, 1}, {2, 0}}};
  xt::dump_npy(dir.file("X.npy"), x);
  xt::dump_npy(dir.file("Y.npy"), xt::xarray<std::int64_t>{std::int64_t(1), std::int64_t(-1)});
  std::ofstream(dir.file("data.json")) << json{{"X", "X.npy"}, {"Y", "Y.npy"}, {"v", {0.5, -1}}}.dump();
  const AttentionFileData data = load_attention_dataset(dir.file("data.json"), AttentionTrainable::p);
  EXPECT_EQ(data.inputs, 2);
  EXPECT_EQ(data.tokens, 3);
  EXPECT_EQ(data.d, 2);
  const std::vector<double> expected = {1, 0, 0, 1, 0.5, 0.5, 0, 1, 1, 1, 2, 0, /*Y*/ 1, -1,
                                        /*W = I*/ 1, 0, 0, 1, /*v*/ 0.5, -1};
  EXPECT_EQ(data.values, expected);

  auto error_of = [&](const json& content) {
    std::ofstream(dir.file("bad.json")) << content.dump();
    return testing::error_of_call([&] { load_attention_dataset(dir.file("bad.json"), AttentionTrainable::p); });
  };
  const std::string bad = dir.file("bad.json") + ": ";
  EXPECT_EQ(error_of({{"X", "Y.npy"}, {"Y", "Y.npy"}, {"v", {0.5, -1}}}), bad + "X: must have 3 dimensions (got 1)");
  EXPECT_EQ(error_of({{"X", "X.npy"}, {"Y", "gone.npy"}, {"v", {0.5, -1}}}),
            bad + "Y: " + dir.file("gone.npy") + ": cannot open .npy file (No such file or directory)");
  xt::dump_npy(dir.file("nan.npy"), xt::xarray<double>{0.5, std::numeric_limits<double>::quiet_NaN()});
  EXPECT_EQ(error_of({{"X", "X.npy"}, {"Y", "Y.npy"}, {"v", "nan.npy"}}), bad + "v: must hold only finite numbers");
  EXPECT_EQ(error_of({{"X", "X.npy"}, {"Y", "Y.npy"}, {"v", 3}}),
            bad + "v: must be a nested list of numbers or the name of a .npy file");
}

}  // namespace
}  // namespace softflow
