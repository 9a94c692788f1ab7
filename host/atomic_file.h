// Purpose: an output file that appears whole or not at all. Opened at the start of a study (so an unwritable path
// fails before any work), written to a temporary file (.softflow-PID-K.tmp, K numbering the process's files) in the
// target's directory, renamed over it on commit. The temporary file is removed if the program fails, is destroyed
// before commit, or is interrupted (SIGINT, SIGTERM, SIGHUP; a signal the process ignores, as under nohup, stays
// ignored); SIGXFSZ is ignored, so a file-size limit is a write error. Only SIGKILL can leave the temporary behind.
#pragma once

#include <string>

namespace softflow {

// Whether two paths name one file: for existing files the same device and inode (links included), else the same
// absolute path once the existing part of each is resolved. An output must never overwrite the command's input.
bool same_file(const std::string& a, const std::string& b);

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // throws InputError if the path is empty or cannot be written
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void commit(const std::string& contents);  // throws InputError if writing or renaming fails
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temporary_;
  int fd_ = -1;
  int slot_ = -1;  // this file's entry in the interrupt handler's list
  bool committed_ = false;
};

}  // namespace softflow
