// Purpose: the stand-in for <cuda_runtime.h> that the CPU emulation tests (tests/*_emulation_test.cpp, built with
// -DSOFTFLOW_HOST_EMULATION and tests/emulation first on their include path) give the block-per-run, fused and
// shared-data kernels: the CUDA qualifiers as plain C++ (__shared__ variables
// become function statics, shared by a block's threads; __constant__ and __device__ vanish), __syncthreads,
// __shfl_xor_sync (any mask and width), the votes __any_sync / __all_sync and __syncwarp on the host block model
// (host_block_emulation.h), CUDA's host-and-device maths (fmaxf, exp, ...) as <cmath>'s, the few runtime calls
// launch_block_kernel and run_vectors_fit make, answered for an emulated device (emulation::multiprocessors SMs, one
// resident block each, kDynamicSharedBytes of shared memory), device memory (cudaMalloc, cudaMemcpy, ...) as host
// memory, and what the backend's host code asks besides (memory info, device properties, events, atomicAdd), so that
// the whole backend (kernels/cuda_backend.cu) runs on the emulated device.
// Nothing else of CUDA is provided: a kernel that needs more fails to compile here, which is the point.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "host_block_emulation.h"

#ifndef SOFTFLOW_HOST_EMULATION
#error "tests/emulation/cuda_runtime.h is for the host emulation build (-DSOFTFLOW_HOST_EMULATION) only"
#endif

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

inline void __syncthreads() { softflow::emulation::sync_block(); }

template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return softflow::emulation::shfl_xor(mask, value, lane_mask, width);
}
inline int __any_sync(unsigned mask, int predicate) { return softflow::emulation::vote(false, mask, predicate != 0); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { softflow::emulation::vote(false, mask, false); }
inline int __all_sync(unsigned mask, int predicate) { return softflow::emulation::vote(true, mask, predicate != 0); }

enum cudaError_t : int { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost,
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice
};
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize };
enum cudaDeviceAttr : int {
  cudaDevAttrMultiProcessorCount,
  cudaDevAttrMaxSharedMemoryPerBlockOptin,
  cudaDevAttrClockRate
};

// CUDA's own strings for the codes the stand-ins return.
inline const char* cudaGetErrorString(cudaError_t code) {
  switch (code) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
  }
  return "unrecognized error code";
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int) {
  switch (attribute) {
    case cudaDevAttrMultiProcessorCount: *value = softflow::emulation::multiprocessors; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(softflow::emulation::kDynamicSharedBytes); break;
    case cudaDevAttrClockRate: *value = 1980000; break;  // kHz, an H100's
  }
  return cudaSuccess;
}
template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, cudaFuncAttribute, int) {
  return cudaSuccess;
}
template <class Kernel>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel, int, std::size_t) {
  *blocks = 1;
  return cudaSuccess;
}

// Device memory is host memory: cudaMalloc's bytes start as 0xff (NaN as float and double), as real device memory
// starts undefined, so a kernel that reads what nobody wrote shows NaN.
// Every allocation is also registered as device memory (host_block_emulation.h), so that the cuBLAS stand-in can
// check that a GEMM's operands lie inside one allocation.
template <class T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
  namespace emulation = softflow::emulation;
  if (emulation::allocations_until_failure >= 0 && emulation::allocations_until_failure-- == 0)
    return cudaErrorMemoryAllocation;  // a test's injected fault (host_block_emulation.h)
  if (emulation::device_allocated_bytes + bytes > emulation::device_total_bytes) return cudaErrorMemoryAllocation;
  void* memory = std::malloc(bytes > 0 ? bytes : 1);
  if (!memory) return cudaErrorMemoryAllocation;
  std::memset(memory, 0xff, bytes);
  emulation::device_memory().add(memory, bytes);
  emulation::device_allocated_bytes += bytes;
  ++emulation::allocations_made;
  *pointer = static_cast<T*>(memory);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* pointer) {
  if (!pointer) return cudaSuccess;
  const long long bytes = softflow::emulation::device_memory().remove(pointer);
  if (bytes < 0) return cudaErrorInvalidValue;
  softflow::emulation::device_allocated_bytes -= std::size_t(bytes);
  std::free(pointer);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* to, const void* from, std::size_t bytes, cudaMemcpyKind) {
  if (bytes > 0 && (!to || !from)) return cudaErrorInvalidValue;
  std::memmove(to, from, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* to, int value, std::size_t bytes) {
  if (bytes > 0 && !to) return cudaErrorInvalidValue;
  std::memset(to, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  *total_bytes = softflow::emulation::device_total_bytes;
  *free_bytes = *total_bytes - softflow::emulation::device_allocated_bytes;
  return cudaSuccess;
}

// The device: emulation::multiprocessors SMs, named so that results show it was emulated.
struct cudaDeviceProp {
  char name[256] = "host emulation of a CUDA device";
  int multiProcessorCount = 1;
  int major = 9, minor = 0;
  std::size_t totalGlobalMem = 0;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int) {
  *properties = cudaDeviceProp{};
  properties->multiProcessorCount = softflow::emulation::multiprocessors;
  properties->totalGlobalMem = softflow::emulation::device_total_bytes;
  return cudaSuccess;
}
// Kernels run to completion inside their launch: there is nothing to wait for.
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// Events hold the host time they were recorded at.
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
};
using cudaEvent_t = CUevent_st*;
inline cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t event, int stream = 0) {
  (void)stream;
  event->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t stop) {
  *milliseconds = std::chrono::duration<float, std::milli>(stop->at - start->at).count();
  return cudaSuccess;
}

// Atomics: the block's threads run one at a time between barriers here, so a plain update is atomic.
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address = old + value;
  return old;
}
// CUDA's device min for 64-bit integers.
inline long long min(long long a, long long b) { return a < b ? a : b; }
