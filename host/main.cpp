// Purpose: the `softflow` executable: the command line lives in cli.cpp so tests can drive it in-process.
#include "cli.h"

int main(int argc, char** argv) { return softflow::cli_main(argc, argv); }
