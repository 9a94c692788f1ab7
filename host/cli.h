// Purpose: the `softflow` command line (CLI11): run, validate, bench, --version. Returns the process exit code:
// 0 success, 2 bad input (study, options, files, memory, no CUDA device for --backend cuda), 3 a CUDA error,
// 1 unexpected internal error.
#pragma once

namespace softflow {

int cli_main(int argc, char** argv);

}  // namespace softflow
