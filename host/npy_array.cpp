// Purpose: read_npy (npy_array.h) on xtensor's .npy parser.
#include "npy_array.h"

#include <cstdint>
#include <fstream>
#include <new>
#include <stdexcept>
#include <utility>

#include <xtensor/xnpy.hpp>

#include "study.h"

namespace softflow {
namespace {

// The entries of a parsed file as doubles, in row-major order (xtensor's iterators walk the logical row-major
// order whatever the strides). Its typestring must be T's.
template <class T>
std::vector<double> row_major_values(xt::detail::npy_file&& file) {
  const auto array = std::move(file).cast<T>(true);
  std::vector<double> out;
  out.reserve(array.size());
  for (const T& x : array) out.push_back(static_cast<double>(x));
  return out;
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  check_input_file(path, ".npy");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open .npy file (unreadable)");
  try {
    // xt::load_npy<T> wants the dtype up front; its parser (a detail of xtensor 0.24) reads the header first, so
    // the dtype can be chosen from it.
    xt::detail::npy_file file = xt::detail::load_npy_file(in);
    if (!in) throw InputError(path + ": truncated .npy file (fewer data bytes than its header's shape needs)");
    if (in.peek() != std::char_traits<char>::eof())
      throw InputError(path + ": .npy file holds more bytes than its header's shape needs");
    NpyArray out;
    out.shape = file.m_shape;
    const std::string dtype = file.m_typestring;
    if (dtype == "<f8")
      out.values = row_major_values<double>(std::move(file));
    else if (dtype == "<f4")
      out.values = row_major_values<float>(std::move(file));
    else if (dtype == "<i8")
      out.values = row_major_values<std::int64_t>(std::move(file));
    else if (dtype == "<i4")
      out.values = row_major_values<std::int32_t>(std::move(file));
    else
      throw InputError(path + ": .npy dtype '" + dtype + "' not supported (use float64, float32, int64 or int32)");
    return out;
  } catch (const InputError&) {
    throw;
  } catch (const std::bad_alloc&) {  // also a negative extent, read as a huge unsigned one
    throw InputError(path + ": .npy header's shape asks for more memory than this machine has (or has a negative "
                     "extent)");
  } catch (const std::length_error&) {
    throw InputError(path + ": .npy header's shape is larger than any array can be");
  } catch (const std::exception& e) {
    throw InputError(path + ": not a valid .npy array (" + e.what() + ")");
  }
}

}  // namespace softflow
