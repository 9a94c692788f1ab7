// Purpose: reading one NumPy .npy array into doubles for the data set files (README "Attention family"). The
// format is parsed by xtensor (Debian's libxtensor-dev, header-only); this file adds what its reader leaves to the
// caller: a one-line error naming the file, the accepted dtypes, and a check that the file holds every byte its
// header promises.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace softflow {

// An array's shape and its entries in row-major (C) order, whatever the file's own order.
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> values;
};

// Reads `path`: little-endian float64, float32, int64 or int32 (C or Fortran order). Throws InputError
// ("<path>: ...") for a missing or unreadable file, a malformed header, another dtype, or a truncated file.
NpyArray read_npy(const std::string& path);

}  // namespace softflow
