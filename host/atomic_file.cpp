// Purpose: all-or-nothing output files (see atomic_file.h).
#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "study.h"

namespace softflow {
namespace {

// The temporary files an interrupt must remove: one slot per open output file (a command writes at most a few).
constexpr int kPendingSlots = 4;
char g_pending_temporary[kPendingSlots][4096] = {};

extern "C" void remove_pending_and_reraise(int signal_number) {
  for (auto& pending : g_pending_temporary)
    if (pending[0] != '\0') unlink(pending);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

// Routes signal_number to remove_pending_and_reraise, unless it is ignored (nohup ignores SIGHUP, a shell's
// background job SIGINT): an ignored signal stays ignored.
void remove_pending_on(int signal_number) {
  struct sigaction current;
  if (sigaction(signal_number, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) return;
  std::signal(signal_number, remove_pending_and_reraise);
}

int g_next_file = 0;  // numbers the temporaries of one process (output files are opened on the main thread)

std::string reason() { return std::strerror(errno); }

}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  struct stat info_a, info_b;
  if (stat(a.c_str(), &info_a) == 0 && stat(b.c_str(), &info_b) == 0)
    return info_a.st_dev == info_b.st_dev && info_a.st_ino == info_b.st_ino;
  const auto resolved = [](const std::string& path, std::filesystem::path& out) {
    std::error_code absolute_error, canonical_error;
    const auto absolute = std::filesystem::absolute(path, absolute_error);
    if (absolute_error) return false;
    out = std::filesystem::weakly_canonical(absolute, canonical_error);
    return !canonical_error;
  };
  std::filesystem::path path_a, path_b;
  return resolved(a, path_a) && resolved(b, path_b) && path_a == path_b;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  if (path.empty()) throw InputError("cannot write output: the path is empty");
  struct stat info;
  if (stat(path.c_str(), &info) == 0) {  // an existing target (through symlinks) must be a regular file
    if (S_ISDIR(info.st_mode)) throw InputError(path + ": cannot write output: is a directory");
    if (!S_ISREG(info.st_mode)) throw InputError(path + ": cannot write output: not a regular file");
    // Replace the file a symlink points to, not the link.
    if (char* resolved = realpath(path.c_str(), nullptr)) {
      path_ = resolved;
      std::free(resolved);
    }
  }
  // A short hidden name in the target's directory (rename needs the same file system; a suffix could push a long
  // name past NAME_MAX).
  const size_t slash = path_.find_last_of('/');
  const std::string directory = slash == std::string::npos ? std::string() : path_.substr(0, slash + 1);
  const int number = g_next_file++;
  temporary_ = directory + ".softflow-" + std::to_string(getpid()) + "-" + std::to_string(number) + ".tmp";
  fd_ = open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(path + ": cannot write output: " + reason());
  for (int slot = 0; slot < kPendingSlots; ++slot)
    if (g_pending_temporary[slot][0] == '\0' && temporary_.size() < sizeof g_pending_temporary[slot]) {
      std::strcpy(g_pending_temporary[slot], temporary_.c_str());
      slot_ = slot;
      remove_pending_on(SIGINT);
      remove_pending_on(SIGTERM);
      remove_pending_on(SIGHUP);
      std::signal(SIGXFSZ, SIG_IGN);  // past a file-size limit write() fails with EFBIG: an error, cleaned up
      break;
    }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temporary_.c_str());
  if (slot_ >= 0) g_pending_temporary[slot_][0] = '\0';
}

void AtomicFile::commit(const std::string& contents) {
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd_, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw InputError(path_ + ": cannot write output: " + reason());
    }
    written += size_t(n);
  }
  if (fsync(fd_) != 0 || close(fd_) != 0) {
    fd_ = -1;
    throw InputError(path_ + ": cannot write output: " + reason());
  }
  fd_ = -1;
  if (rename(temporary_.c_str(), path_.c_str()) != 0) throw InputError(path_ + ": cannot write output: " + reason());
  committed_ = true;
  if (slot_ >= 0) g_pending_temporary[slot_][0] = '\0';
  slot_ = -1;
}

}  // namespace softflow
