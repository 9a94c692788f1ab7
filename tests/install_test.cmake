# Purpose: `cmake --install` of the build into a fresh prefix (ctest: install.tree): the command line, the figure
# script, the examples and the documentation land where README "Installing" says, and the installed programs run.
# Arguments (-D): BUILD_DIR, PREFIX, SOURCE_DIR.
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} RESULT_VARIABLE code
                OUTPUT_QUIET)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${code})")
endif()
include(GNUInstallDirs)
foreach(path ${CMAKE_INSTALL_BINDIR}/softflow ${CMAKE_INSTALL_BINDIR}/softflow-plot-results
        ${CMAKE_INSTALL_DATADIR}/softflow/examples/logistic.json ${CMAKE_INSTALL_DATADIR}/doc/softflow/README.md
        ${CMAKE_INSTALL_DATADIR}/doc/softflow/results.md)
  if(NOT EXISTS ${PREFIX}/${path})
    message(FATAL_ERROR "not installed: ${path}")
  endif()
endforeach()
execute_process(COMMAND ${PREFIX}/${CMAKE_INSTALL_BINDIR}/softflow validate
                        ${PREFIX}/${CMAKE_INSTALL_DATADIR}/softflow/examples/logistic.json
                RESULT_VARIABLE code OUTPUT_QUIET ERROR_VARIABLE verdict)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "the installed softflow did not validate an installed example (${code}): ${verdict}")
endif()
execute_process(COMMAND ${PREFIX}/${CMAKE_INSTALL_BINDIR}/softflow-plot-results --help RESULT_VARIABLE code
                OUTPUT_VARIABLE help)
if(NOT code EQUAL 0 OR NOT help MATCHES "usage: softflow-plot-results")
  message(FATAL_ERROR "the installed softflow-plot-results --help failed (${code}): ${help}")
endif()
file(REMOVE_RECURSE ${PREFIX})
