// Purpose: read_npy (npy_array.h) on xtensor's .npy parser.
#include "npy_array.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <istream>
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

// Reads the header's shape tuple (without consuming `in`) and throws a one-line InputError for a negative extent or
// a product past 2^62 entries, which xtensor's parser would read as huge unsigned sizes, and for a shape that needs
// more data bytes than the file holds (the parser would first allocate them all: a truncated file whose header
// claims 16 GiB read as "more memory than this machine has"). Anything else malformed is left to the parser.
void check_header_shape(std::istream& in, const std::string& path) {
  in.seekg(0, std::ios::end);
  const std::streamoff file_bytes = in.tellg();
  in.seekg(0);
  char prefix[12] = {};
  in.read(prefix, sizeof prefix);
  const std::streamsize got = in.gcount();
  in.clear();
  in.seekg(0);
  if (got < 10 || std::string(prefix, 6) != "\x93NUMPY") return;
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(prefix);
  const bool long_length = bytes[6] >= 2;
  const size_t length = long_length ? size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 |
                                          size_t(bytes[11]) << 24
                                    : size_t(bytes[8]) | size_t(bytes[9]) << 8;
  if (length > (1u << 20)) return;  // the parser reports it
  std::string header(length, '\0');
  in.seekg(long_length ? 12 : 10);
  in.read(&header[0], std::streamsize(length));
  header.resize(size_t(in.gcount()));
  in.clear();
  in.seekg(0);
  const size_t key = header.find("'shape'");
  const size_t open = header.find('(', key == std::string::npos ? header.size() : key);
  const size_t close = header.find(')', open == std::string::npos ? header.size() : open);
  if (close == std::string::npos) return;
  const std::string tuple = header.substr(open, close - open + 1);
  long double entries = 1;
  for (size_t at = open + 1; at < close;) {
    const size_t comma = std::min(header.find(',', at), close);
    const std::string token = header.substr(at, comma - at);
    at = comma + 1;
    if (token.find_first_not_of(" ") == std::string::npos) continue;
    if (token.find('-') != std::string::npos)
      throw InputError(path + ": .npy header's shape " + tuple + " has a negative extent");
    entries *= std::strtold(token.c_str(), nullptr);
  }
  if (entries > 4611686018427387904.0L)  // 2^62
    throw InputError(path + ": .npy header's shape " + tuple + " is larger than any array can be");
  // The item size is the digits that end the descr string ('<f8': 8 bytes); a header without one is the parser's.
  const size_t descr = header.find("'descr'");
  const size_t descr_open = header.find('\'', descr == std::string::npos ? header.size() : descr + 7);
  const size_t descr_close = header.find('\'', descr_open == std::string::npos ? header.size() : descr_open + 1);
  if (descr_close == std::string::npos) return;
  const std::string dtype = header.substr(descr_open + 1, descr_close - descr_open - 1);
  const size_t digits = dtype.find_last_not_of("0123456789") + 1;
  if (digits >= dtype.size() || dtype.size() - digits > 3) return;
  const long double data_bytes = (long double)(file_bytes) - (long_length ? 12 : 10) - (long double)(length);
  if (entries * std::stoi(dtype.substr(digits)) > data_bytes)
    throw InputError(path + ": truncated .npy file (fewer data bytes than its header's shape needs)");
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  check_input_file(path, ".npy");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open .npy file (unreadable)");
  try {
    // xt::load_npy<T> wants the dtype up front; its parser (a detail of xtensor 0.24) reads the header first, so
    // the dtype can be chosen from it.
    check_header_shape(in, path);
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
  } catch (const std::bad_alloc&) {
    throw InputError(path + ": .npy header's shape asks for more memory than this machine has");
  } catch (const std::length_error&) {
    throw InputError(path + ": .npy header's shape is larger than any array can be");
  } catch (const std::exception& e) {
    throw InputError(path + ": not a valid .npy array (" + e.what() + ")");
  }
}

}  // namespace softflow
