# Builds and runs the outside projects: one through find_package(ember) against an install tree, one through
# add_subdirectory(ember). Run by ctest as `cmake -P`; any failing step fails the test.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR} -B ${WORK_DIR}/ember -DCMAKE_INSTALL_PREFIX=${prefix}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/ember)

foreach(route find_package add_subdirectory)
  run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer/${route} -B ${WORK_DIR}/${route}
      -DCMAKE_PREFIX_PATH=${prefix} -DEMBER_SOURCE_DIR=${EMBER_SOURCE_DIR} -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/${route} -j 2)
  run(${WORK_DIR}/${route}/consumer)
endforeach()
