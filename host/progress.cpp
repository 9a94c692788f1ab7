// Purpose: progress reporting on stderr (see progress.h).
#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace softflow {

Progress::Progress(long long total, bool enabled)
    : total_(total > 0 ? total : 1), enabled_(enabled), terminal_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

void Progress::add(long long units) {
  const long long done = done_ += units;
  if (!enabled_) return;
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double interval = terminal_ ? 0.2 : 10.0;
  if (now - last_print_seconds_.load() < interval) return;
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || now - last_print_seconds_.load() < interval) return;
  last_print_seconds_.store(now);
  print(done, false);
}

void Progress::finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  print(done_.load(), true);
}

void Progress::print(long long done, bool final_line) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = double(done) / double(total_);
  const double rate = elapsed > 0 ? double(done) / elapsed : 0;
  const double eta = rate > 0 ? double(total_ - done) / rate : 0;
  if (terminal_) {
    const int width = 30;
    const int filled = int(fraction * width + 0.5);
    std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %.3g run-segments/s  ETA %.0fs   ", filled,
                 "##############################", width - filled, "", 100 * fraction, rate, eta);
    if (final_line) std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "progress: %.1f%% (%lld/%lld run-segments), %.3g/s, elapsed %.0fs, ETA %.0fs\n",
                 100 * fraction, done, total_, rate, elapsed, eta);
  }
  std::fflush(stderr);
}

}  // namespace softflow
