# The commands of docs/tutorial.md as a user types them, against an installed copy of ember: ember is installed
# under $HOME/.local of a scratch home (configured with the default prefix, installed with --prefix), then the
# page's ```sh blocks run there with HOME pointing at it: the pkg-config build of the tutorial program, then the
# PyTorch route (ember-to-torch and the page's load_in_torch.py). Without torch the PyTorch part fails under
# CI=true and is reported as skipped otherwise. Run by ctest as `cmake -P`.
# `session`: the export lines of the blocks run before, as in the user's terminal.
function(run_block name expect)
  execute_process(COMMAND awk "/^```/ { f = ($0 == \"```${name}\"); next } f" ${PAGE}
                  OUTPUT_VARIABLE block RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR block STREQUAL "")
    message(FATAL_ERROR "${PAGE}: no ```${name} block")
  endif()
  message(STATUS "running the ```${name} block of the tutorial:\n${block}")
  string(REGEX MATCHALL "(^|\n)export [^\n]*" exports "${block}")
  string(APPEND session "${exports}\n")
  set(session "${session}" PARENT_SCOPE)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env HOME=${home} sh -e -c "${session}${block}" WORKING_DIRECTORY ${work}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "the ```${name} block of the tutorial failed (${rc}) or did not print '${expect}':\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(PAGE ${EMBER_SOURCE_DIR}/docs/tutorial.md)
file(REMOVE_RECURSE ${WORK_DIR})
set(home ${WORK_DIR}/home)
set(work ${home}/tutorial)
file(MAKE_DIRECTORY ${work})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR} -B ${WORK_DIR}/ember -DEMBER_BUILD_TESTS=OFF
                -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc EQUAL 0)
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${WORK_DIR}/ember --prefix ${home}/.local
                  RESULT_VARIABLE rc OUTPUT_QUIET)
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "installing ember under ${home}/.local failed")
endif()

# The page's program (the build extracts it: tests/docs_extract) and its Python file.
configure_file(${TUTORIAL_CPP} ${work}/tutorial.cpp COPYONLY)
execute_process(COMMAND awk "/^```/ { f = ($0 == \"```python file=load_in_torch.py\"); next } f" ${PAGE}
                OUTPUT_FILE ${work}/load_in_torch.py)

run_block("sh tutorial" "predicted class 1 with probability")

execute_process(COMMAND /usr/bin/python3 -c "import torch" RESULT_VARIABLE no_torch OUTPUT_QUIET ERROR_QUIET)
if(NOT no_torch EQUAL 0)
  if("$ENV{CI}" STREQUAL "true")
    message(FATAL_ERROR "/usr/bin/python3 cannot import torch: the tutorial's PyTorch route is untested "
                        "(apt-get install python3-torch)")
  endif()
  message(STATUS "skipped: the tutorial's PyTorch route (/usr/bin/python3 has no torch)")
  return()
endif()
run_block("sh tutorial-torch" "PyTorch predicts class 1")
