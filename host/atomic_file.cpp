// Purpose: all-or-nothing output files (see atomic_file.h).
#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "study.h"

namespace softflow {
namespace {

// The temporary file an interrupt must remove (one output file at a time).
char g_pending_temporary[4096] = {0};

extern "C" void remove_pending_and_reraise(int signal_number) {
  if (g_pending_temporary[0] != '\0') unlink(g_pending_temporary);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

std::string reason() { return std::strerror(errno); }

}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
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
  temporary_ = directory + ".softflow-" + std::to_string(getpid()) + ".tmp";
  fd_ = open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw InputError(path + ": cannot write output: " + reason());
  if (temporary_.size() < sizeof g_pending_temporary) {
    std::strcpy(g_pending_temporary, temporary_.c_str());
    std::signal(SIGINT, remove_pending_and_reraise);
    std::signal(SIGTERM, remove_pending_and_reraise);
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) close(fd_);
  if (!committed_) unlink(temporary_.c_str());
  g_pending_temporary[0] = '\0';
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
  g_pending_temporary[0] = '\0';
}

}  // namespace softflow
