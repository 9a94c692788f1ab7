// Purpose: an owning device allocation (cudaMalloc / cudaFree) with checked copies, for the CUDA backend's buffers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

#include "cuda_check.h"

namespace softflow {

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t count) { allocate(count); }
  ~DeviceArray() { release(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  void allocate(size_t count) {
    release();
    const size_t bytes = (count > 0 ? count : 1) * sizeof(T);
    const int code = static_cast<int>(cudaMalloc(&ptr_, bytes));
    if (code != cudaSuccess) {
      ptr_ = nullptr;
      cuda_check(code, ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str(), __FILE__, __LINE__);
    }
    count_ = count;  // only once the allocation holds it: a failed one leaves an empty array
  }
  void upload(const T* host, size_t count) {
    SOFTFLOW_CUDA_CHECK(cudaMemcpy(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, size_t count) const {
    SOFTFLOW_CUDA_CHECK(cudaMemcpy(host, ptr_, count * sizeof(T), cudaMemcpyDeviceToHost));
  }
  std::vector<T> to_host() const {
    std::vector<T> host(count_);
    download(host.data(), count_);
    return host;
  }
  void zero() { SOFTFLOW_CUDA_CHECK(cudaMemset(ptr_, 0, (count_ > 0 ? count_ : 1) * sizeof(T))); }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    count_ = 0;
  }
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace softflow
