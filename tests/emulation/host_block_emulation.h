// Purpose: CUDA's block model on the host, for the CPU tests of the block-per-run, fused and shared-data kernels
// (tests/block_kernel_emulation_test.cpp, tests/fused_kernel_emulation_test.cpp,
// tests/shared_data_emulation_test.cpp). Every thread of a block is a fiber
// (its own stack, switched in user space: a few instructions on x86-64, ucontext elsewhere) on one OS thread, with
// threadIdx set as it runs; a thread runs until it waits at a barrier (__syncthreads: the block's threads) or a warp
// operation (__shfl_xor_sync with any mask and width, __any_sync, __all_sync: the lanes of its mask, which must
// all meet at the same operation and mask; the last to arrive computes every lane's result) or exits. A scheduler
// picks the next thread at random among the runnable ones (a fixed-seed generator, so a run is reproducible), so the
// stretches between barriers run in ever different orders and a missing barrier shows up as a wrong result; a
// barrier or warp operation that some threads never reach (divergent __syncthreads, a lane of the mask exiting
// during a shuffle) or a deadlock aborts with a message instead of hanging.
// OS threads per block thread (the first prototype) cost ~10 us a thread a barrier here; these fibers ~0.05 us
// (ucontext's, which make system calls, ~50 times that). Not for sanitizer builds (they do not follow the switches).
// launch_kernel runs the blocks of a grid one after another (a kernel's __shared__ variables are function statics
// here, so one block at a time). The dynamic shared memory is one host buffer (block_vectors, kDynamicSharedBytes),
// filled with 0xff bytes (NaN as float and double) at each block's start, as real shared memory starts undefined.
// DeviceMemory lists what counts as device memory, for the cuBLAS stand-in's operand checks (cublas_v2.h).
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__) || defined(SOFTFLOW_EMULATION_UCONTEXT)
#define SOFTFLOW_EMULATION_USE_UCONTEXT 1
#include <ucontext.h>
#endif

// CUDA's index types (the block kernels use .x only).
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The running thread's indices (set by the scheduler at every switch) and the launch's dimensions.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#ifndef SOFTFLOW_EMULATION_USE_UCONTEXT
// softflow_emulation_switch(save, load): saves the callee-saved registers on the current stack and its stack
// pointer in *save, then resumes the stack `load` (pops its registers and returns into it). SysV x86-64; a weak
// symbol, so that more than one translation unit may include this header.
extern "C" void softflow_emulation_switch(void** save, void* load);
asm(R"(
  .text
  .p2align 4
  .weak softflow_emulation_switch
  .type softflow_emulation_switch, @function
softflow_emulation_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size softflow_emulation_switch, .-softflow_emulation_switch
)");
#endif

namespace softflow::emulation {

// Bytes of dynamic shared memory a block may use (an H100's opt-in per-block limit) and the device the cuda_runtime.h
// stand-in reports: `multiprocessors` SMs with one resident block each, so launch_block_kernel's grid is
// min(runs, 4 * multiprocessors) and a test with more runs exercises the kernels' grid-stride loop.
constexpr std::size_t kDynamicSharedBytes = 232448;
inline int multiprocessors = 1;

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 1024;
constexpr std::size_t kStackBytes = std::size_t(256) << 10;  // per thread, below a guard page

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "host block emulation: %s (block %u, thread %u)\n", what, blockIdx.x, threadIdx.x);
  std::abort();
}

// The emulated device's memory: the regions cudaMalloc returned, and host arrays a test declares device memory (its
// states, records and data, standing for what the backend uploads), so that the cuBLAS stand-in can check that
// every operand of a GEMM lies inside one region.
class DeviceMemory {
 public:
  void add(const void* base, std::size_t bytes) { regions_.push_back({static_cast<const char*>(base), bytes}); }
  // Forgets the region at `base`; returns its bytes, or -1 if there is none.
  long long remove(const void* base) {
    for (std::size_t k = 0; k < regions_.size(); ++k)
      if (regions_[k].base == base) {
        const long long bytes = (long long)regions_[k].bytes;
        regions_.erase(regions_.begin() + std::ptrdiff_t(k));
        return bytes;
      }
    return -1;
  }
  // True if [first, first + bytes) lies inside one region.
  bool holds(const void* first, std::size_t bytes) const {
    const char* p = static_cast<const char*>(first);
    for (const Region& r : regions_)
      if (p >= r.base && p + bytes <= r.base + r.bytes) return true;
    return false;
  }

 private:
  struct Region {
    const char* base;
    std::size_t bytes;
  };
  std::vector<Region> regions_;
};

inline DeviceMemory& device_memory() {
  static DeviceMemory memory;
  return memory;
}

// The emulated device's memory size (cudaMemGetInfo: free = this less what cudaMalloc holds; a test may lower it
// to make the backend split a cell into waves) and what cudaMalloc holds.
inline std::size_t device_total_bytes = std::size_t(1) << 30;
inline std::size_t device_allocated_bytes = 0;
// cudaMalloc calls that have succeeded so far; and a fault a test may inject: when it is K >= 0, cudaMalloc fails
// (out of memory) once K more allocations have succeeded, then it is -1 again (no fault).
inline long long allocations_made = 0;
inline long long allocations_until_failure = -1;

// The block being run: its threads (fibers), who waits where, and the warps' shuffle slots.
class Scheduler {
 public:
  // The one scheduler (the blocks run one at a time).
  static Scheduler& scheduler();

  // Runs body() on `threads` fibers, threadIdx.x = 0 .. threads - 1, until every one has returned.
  template <class Body>
  void run_block(int threads, const Body& body) {
    threads_ = threads;
    body_ = &body;
    call_body_ = [](const void* b) { (*static_cast<const Body*>(b))(); };
    block_waiting_.clear();
    for (auto& waiting : warp_waiting_) waiting.clear();
    exited_ = 0;
    std::fill(exited_lanes_, exited_lanes_ + kMaxThreads / kWarpSize, 0u);
    ready_.clear();
    for (int t = 0; t < threads; ++t) {
      start_fiber(t);
      ready_.push_back(t);
    }
    while (!ready_.empty()) {
      const std::size_t k = pick(ready_.size());
      current_ = ready_[k];
      ready_[k] = ready_.back();
      ready_.pop_back();
      threadIdx.x = unsigned(current_);
      resume(current_);
      release_completed_barriers();
    }
    if (exited_ != threads) fail("deadlock: threads wait at barriers that cannot complete (divergent barriers)");
  }

  // __syncthreads: waits until every thread of the block is here.
  void sync_block() {
    if (exited_ > 0) fail("divergent __syncthreads: a barrier that a thread that exited never reaches");
    block_waiting_.push_back(current_);
    suspend();
  }

  // __shfl_xor_sync(mask, value, lane_mask, width): posts `value`, waits until every lane of `mask` has posted
  // (the lanes of one warp, this one among them), returns the value of lane ^ lane_mask (its own where that lane
  // lies outside its width-segment, as CUDA).
  template <class T>
  T shfl_xor(unsigned mask, T value, int lane_mask, int width) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of a word or two");
    if (width <= 0 || width > kWarpSize || (width & (width - 1)) != 0) fail("__shfl_xor_sync: width not a power of two");
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    const std::uint64_t result = warp_exchange(WarpOp::shuffle_xor, mask, bits, lane_mask, width);
    T out;
    std::memcpy(&out, &result, sizeof(T));
    return out;
  }

  // __any_sync / __all_sync: waits for the lanes of `mask`, returns whether any / all of their predicates hold.
  bool vote(bool all, unsigned mask, bool predicate) {
    return warp_exchange(all ? WarpOp::all : WarpOp::any, mask, predicate ? 1 : 0, 0, kWarpSize) != 0;
  }

 private:
  struct Fiber {
    unsigned char* stack = nullptr;  // kStackBytes, above a guard page
#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
    ucontext_t context;
#else
    void* sp = nullptr;
#endif
  };

  static void fiber_main() {
    Scheduler& self = scheduler();
    self.call_body_(self.body_);
    self.on_exit();
    self.suspend();
    fail("an exited thread was resumed");
  }

#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
  static void fiber_entry() { fiber_main(); }
#endif

  enum class WarpOp { shuffle_xor, any, all };

  // One lane's part in a warp operation: it posts `bits` and waits until every lane of `mask` is waiting with the
  // same operation and mask; the last to arrive computes every participant's result (before any of them runs on,
  // so no lane can post again before its partners have read), and all become runnable.
  std::uint64_t warp_exchange(WarpOp op, unsigned mask, std::uint64_t bits, int lane_mask, int width) {
    const int warp = current_ / kWarpSize, lane = current_ % kWarpSize;
    if ((mask >> lane & 1u) == 0) fail("warp operation by a lane outside its own mask");
    if (exited_lanes_[warp] & mask) fail("divergent warp operation: a lane of its mask has exited");
    Posted& mine = posted_[current_];
    mine = Posted{op, mask, bits, lane_mask, width, 0};
    warp_waiting_[warp].push_back(current_);
    complete_warp_operation(warp, mask);
    suspend();
    return posted_[current_].result;
  }

  // If every lane of `mask` waits at a warp operation, checks that they agree on it, computes their results and
  // makes them runnable.
  void complete_warp_operation(int warp, unsigned mask) {
    std::vector<int>& waiting = warp_waiting_[warp];
    unsigned arrived = 0;
    for (int t : waiting)
      if (mask >> (t % kWarpSize) & 1u) arrived |= 1u << (t % kWarpSize);
    if (arrived != mask) return;
    const Posted& first = posted_[warp * kWarpSize + lowest_lane(mask)];
    std::uint64_t any = 0, all = 1;
    for (int lane = 0; lane < kWarpSize; ++lane) {
      if ((mask >> lane & 1u) == 0) continue;
      const Posted& p = posted_[warp * kWarpSize + lane];
      if (p.mask != mask || p.op != first.op) fail("lanes of one mask meet at different warp operations or masks");
      any |= p.bits != 0;
      all &= p.bits != 0;
    }
    for (int lane = 0; lane < kWarpSize; ++lane) {
      if ((mask >> lane & 1u) == 0) continue;
      Posted& p = posted_[warp * kWarpSize + lane];
      if (p.op == WarpOp::any) {
        p.result = any;
      } else if (p.op == WarpOp::all) {
        p.result = all;
      } else {
        int source = lane ^ p.lane_mask;
        if (source / p.width != lane / p.width) source = lane;
        if (source >= kWarpSize || (mask >> source & 1u) == 0) fail("__shfl_xor_sync from a lane outside the mask");
        p.result = posted_[warp * kWarpSize + source].bits;
      }
    }
    std::vector<int> still_waiting;
    for (int t : waiting) (mask >> (t % kWarpSize) & 1u ? ready_ : still_waiting).push_back(t);
    waiting.swap(still_waiting);
  }

  static int lowest_lane(unsigned mask) {
    int lane = 0;
    while ((mask >> lane & 1u) == 0) ++lane;
    return lane;
  }

  void on_exit() {
    ++exited_;
    const int warp = current_ / kWarpSize, lane = current_ % kWarpSize;
    exited_lanes_[warp] |= 1u << lane;
    if (!block_waiting_.empty()) fail("divergent __syncthreads: a thread exited while others wait at a barrier");
    for (int t : warp_waiting_[warp])
      if (posted_[t].mask >> lane & 1u) fail("divergent warp operation: a lane of its mask exited while others wait");
  }

  // A completed __syncthreads: its threads become runnable.
  void release_completed_barriers() {
    if (int(block_waiting_.size()) == threads_) {
      ready_.insert(ready_.end(), block_waiting_.begin(), block_waiting_.end());
      block_waiting_.clear();
    }
  }

  // A pseudo-random index below `count` (at most kMaxThreads): splitmix64, then a multiply-shift of its high 32 bits.
  // Cheap, as it runs at every switch.
  std::size_t pick(std::size_t count) {
    std::uint64_t z = (random_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return std::size_t(((z >> 32) * count) >> 32);
  }

  void start_fiber(int t) {
    Fiber& fiber = fibers_[t];
    if (fiber.stack == nullptr) {
      const long page = 4096;
      void* memory = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (memory == MAP_FAILED) fail("cannot map a thread's stack");
      mprotect(memory, page, PROT_NONE);  // a stack overflow faults instead of corrupting the next stack
      fiber.stack = static_cast<unsigned char*>(memory) + page;
    }
#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = fiber.stack;
    fiber.context.uc_stack.ss_size = kStackBytes;
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, &fiber_entry, 0);
#else
    // The first switch pops six zero registers and returns into fiber_main with the stack as after a call (rsp =
    // 8 mod 16; a zero return address above it, never used).
    auto top =
        reinterpret_cast<void**>(reinterpret_cast<std::uintptr_t>(fiber.stack + kStackBytes) & ~std::uintptr_t(15));
    top[-1] = nullptr;
    top[-2] = reinterpret_cast<void*>(&fiber_main);
    for (int k = 3; k <= 8; ++k) top[-k] = nullptr;
    fiber.sp = top - 8;
#endif
  }

  void resume(int t) {
#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
    swapcontext(&scheduler_context_, &fibers_[t].context);
#else
    softflow_emulation_switch(&scheduler_sp_, fibers_[t].sp);
#endif
  }

  void suspend() {
#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
    swapcontext(&fibers_[current_].context, &scheduler_context_);
#else
    softflow_emulation_switch(&fibers_[current_].sp, scheduler_sp_);
#endif
  }

  int threads_ = 0, current_ = 0, exited_ = 0;
  const void* body_ = nullptr;
  void (*call_body_)(const void*) = nullptr;
  std::vector<int> ready_, block_waiting_, warp_waiting_[kMaxThreads / kWarpSize];
  unsigned exited_lanes_[kMaxThreads / kWarpSize] = {};  // per warp, a bit per lane
  struct Posted {
    WarpOp op;
    unsigned mask;
    std::uint64_t bits;  // the value or predicate posted
    int lane_mask, width;
    std::uint64_t result;
  } posted_[kMaxThreads] = {};
  Fiber fibers_[kMaxThreads];
  std::uint64_t random_ = 20251123;  // splitmix64's state
#ifdef SOFTFLOW_EMULATION_USE_UCONTEXT
  ucontext_t scheduler_context_;
#else
  void* scheduler_sp_ = nullptr;
#endif
};

inline Scheduler& Scheduler::scheduler() {
  static Scheduler* instance = new Scheduler;  // never destroyed: its stacks live as long as the process
  return *instance;
}

inline void sync_block() { Scheduler::scheduler().sync_block(); }

template <class T>
T shfl_xor(unsigned mask, T value, int lane_mask, int width) {
  return Scheduler::scheduler().shfl_xor(mask, value, lane_mask, width);
}

inline bool vote(bool all, unsigned mask, bool predicate) { return Scheduler::scheduler().vote(all, mask, predicate); }

}  // namespace softflow::emulation

namespace softflow {
// The block kernels' dynamic shared memory (block_run.cuh declares it extern under SOFTFLOW_HOST_EMULATION).
alignas(16) inline unsigned char block_vectors[emulation::kDynamicSharedBytes];
}  // namespace softflow

namespace softflow::emulation {

// kernel<<<grid, threads, bytes>>>(args...): the blocks one after another, each block's threads as fibers.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), unsigned grid, int threads, std::size_t bytes, const Args&... args) {
  if (threads < kWarpSize || threads > kMaxThreads || threads % kWarpSize != 0)
    fail("block size not a multiple of the warp size in [32, 1024]");
  if (bytes > kDynamicSharedBytes) fail("dynamic shared memory over the limit");
  gridDim = dim3(grid);
  blockDim = dim3(unsigned(threads));
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx.x = b;
    std::memset(block_vectors, 0xff, bytes);
    Scheduler::scheduler().run_block(threads, [&] { kernel(args...); });
  }
}

}  // namespace softflow::emulation
