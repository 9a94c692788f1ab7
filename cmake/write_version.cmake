# Purpose: writes the generated version header (host/version.h.in) with the current git commit, at every build, so
# the results' provenance names the commit the binary was built from. configure_file rewrites only on change.
# Inputs: SOURCE_DIR, INPUT, OUTPUT, PROJECT_VERSION.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE SOFTFLOW_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE SOFTFLOW_GIT_DIRTY OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT SOFTFLOW_GIT_COMMIT AND DEFINED ENV{SOFTFLOW_GIT_COMMIT})
  set(SOFTFLOW_GIT_COMMIT "$ENV{SOFTFLOW_GIT_COMMIT}")  # a copy without .git (the GPU machine) names it
elseif(NOT SOFTFLOW_GIT_COMMIT)
  set(SOFTFLOW_GIT_COMMIT "unknown")
elseif(SOFTFLOW_GIT_DIRTY)
  set(SOFTFLOW_GIT_COMMIT "${SOFTFLOW_GIT_COMMIT}-dirty")
endif()
configure_file(${INPUT} ${OUTPUT} @ONLY)
