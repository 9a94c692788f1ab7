// Purpose: AtomicFile under signals and limits, each in a forked child so that a signal that kills it cannot take
// the test runner along: SIGHUP removes the temporary file (and kills, as the default would); under nohup (SIGHUP
// ignored) the run survives and commits; past a file-size limit the write is an InputError and nothing is left.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "atomic_file.h"
#include "study.h"
#include "temp_dir_test.h"

namespace softflow {
namespace {

class AtomicFileTest : public testing::TempDirTest {
 protected:
  // Runs body() in a child process (exit code 0 unless body exits otherwise); returns its wait status.
  template <class Body>
  int in_child(const Body& body) {
    const pid_t pid = fork();
    if (pid == 0) {
      body();
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  }
};

TEST_F(AtomicFileTest, HangupRemovesTheTemporaryFile) {
  const std::string out = dir_ + "/r.json";
  const int status = in_child([&] {
    std::signal(SIGHUP, SIG_DFL);
    AtomicFile file(out);
    std::raise(SIGHUP);
    _exit(3);  // not reached
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGHUP);
  EXPECT_TRUE(files().empty());
}

TEST_F(AtomicFileTest, NohupKeepsTheRunAlive) {
  const std::string out = dir_ + "/r.json";
  const int status = in_child([&] {
    std::signal(SIGHUP, SIG_IGN);  // as nohup leaves it
    AtomicFile file(out);
    std::raise(SIGHUP);
    file.commit("whole\n");
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(files(), std::vector<std::string>{"r.json"});
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  EXPECT_EQ(text.str(), "whole\n");
}

TEST_F(AtomicFileTest, FileSizeLimitIsAnErrorThatLeavesNothing) {
  const std::string out = dir_ + "/r.json";
  const int status = in_child([&] {
    std::signal(SIGXFSZ, SIG_DFL);  // the default would kill the process mid-write
    const rlimit limit{4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(4);
    try {
      AtomicFile file(out);
      file.commit(std::string(100000, 'x'));
    } catch (const InputError&) {
      _exit(2);
    }
    _exit(5);
  });
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_TRUE(files().empty());
}

}  // namespace
}  // namespace softflow
