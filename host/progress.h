// Purpose: progress of a study on stderr: a bar with rate and ETA on a terminal, plain periodic lines otherwise.
// Thread-safe: workers add finished units; whichever thread finds the report interval passed prints.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace softflow {

class Progress {
 public:
  // total: units of work (run-segments); enabled: false prints nothing.
  Progress(long long total, bool enabled);
  void add(long long units);
  void finish();

 private:
  void print(long long done, bool final_line);
  long long total_;
  bool enabled_;
  bool terminal_;
  std::atomic<long long> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<double> last_print_seconds_{0};  // since start_; read without the lock, written under it
};

}  // namespace softflow
