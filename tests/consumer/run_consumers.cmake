# Builds and runs the outside projects, each on tests/consumer/consumer.cpp: one through find_package(ember)
# against an install tree, one through add_subdirectory(ember), and one plain compiler command with the flags of
# the installed pkg-config file. First it checks that `cmake --install` put every file of the package in place.
# Run by ctest as `cmake -P`; any failing step fails the test.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
# Configured with the default prefix (/usr/local) and installed elsewhere, as `cmake --install build --prefix DIR`
# does: nothing installed may point back at the configured prefix.
run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR} -B ${WORK_DIR}/ember
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF -DEMBER_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/ember --prefix ${prefix})

# The installed package: headers, the CMake package files and the pkg-config file.
file(GLOB_RECURSE source_headers RELATIVE ${EMBER_SOURCE_DIR}/include ${EMBER_SOURCE_DIR}/include/ember/*.hpp)
set(expected share/cmake/ember/emberConfig.cmake share/cmake/ember/emberConfigVersion.cmake
    share/cmake/ember/emberTargets.cmake share/pkgconfig/ember.pc share/ember/checkpoint_to_torch.py
    bin/ember-to-torch)
foreach(h ${source_headers})
  list(APPEND expected include/${h})
endforeach()
foreach(f ${expected})
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "cmake --install did not install ${f} (prefix ${prefix})")
  endif()
endforeach()
list(LENGTH source_headers header_count)
message(STATUS "installed ${header_count} headers, the CMake package, ember.pc and ember-to-torch")

# The version rule: before 1.0 a minor version breaks the API, so only the same major.minor (and a patch at
# least the one asked for) is accepted: a project written for 0.1 must not get 0.2.
file(STRINGS ${EMBER_SOURCE_DIR}/CMakeLists.txt project_line REGEX "^project\\(ember VERSION")
string(REGEX MATCH "VERSION ([0-9]+)\\.([0-9]+)\\.([0-9]+)" _ "${project_line}")
set(major ${CMAKE_MATCH_1})
set(minor ${CMAKE_MATCH_2})
# The converter's usage line names the installed command (needs torch, which the script imports first).
execute_process(COMMAND /usr/bin/python3 -c "import torch" RESULT_VARIABLE no_torch OUTPUT_QUIET ERROR_QUIET)
if(no_torch EQUAL 0)
  execute_process(COMMAND ${prefix}/bin/ember-to-torch --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT help MATCHES "^usage: ember-to-torch ")
    message(FATAL_ERROR "ember-to-torch --help (${rc}) does not start with 'usage: ember-to-torch':\n${help}")
  endif()
endif()

cmake_policy(SET CMP0012 NEW)  # the version file tests if(TRUE)
function(accepts request result)
  string(REPLACE "." ";" parts ${request})
  list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
  set(PACKAGE_FIND_VERSION ${request})
  set(PACKAGE_FIND_VERSION_PATCH 0)
  set(PACKAGE_FIND_VERSION_COUNT 2)
  include(${prefix}/share/cmake/ember/emberConfigVersion.cmake)
  set(${result} "${PACKAGE_VERSION_COMPATIBLE}" PARENT_SCOPE)
endfunction()
math(EXPR older "${minor} - 1")
math(EXPR newer "${minor} + 1")
accepts(${major}.${minor} same)
accepts(${major}.${newer} newer_ok)
set(older_ok FALSE)
if(older GREATER_EQUAL 0)
  accepts(${major}.${older} older_ok)
endif()
if(NOT same OR newer_ok OR (major EQUAL 0 AND older_ok))
  message(FATAL_ERROR "emberConfigVersion.cmake: ${major}.${minor} accepted ${same}, ${major}.${newer} ${newer_ok}, "
                      "${major}.${older} ${older_ok}; expected only ${major}.${minor} (0.x minors break the API)")
endif()

foreach(route find_package add_subdirectory)
  run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer/${route} -B ${WORK_DIR}/${route}
      -DCMAKE_PREFIX_PATH=${prefix} -DEMBER_SOURCE_DIR=${EMBER_SOURCE_DIR} -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/${route} -j 2)
  run(${WORK_DIR}/${route}/consumer)
endforeach()

# ember::dist, installed when ember's configure found MPI: find_package(ember COMPONENTS dist) finds MPI too.
if(EXISTS ${prefix}/share/cmake/ember/emberDistTargets.cmake)
  run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer/find_package_dist -B ${WORK_DIR}/find_package_dist
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/find_package_dist -j 2)
  run(${WORK_DIR}/find_package_dist/consumer)
elseif("$ENV{CI}" STREQUAL "true")
  message(FATAL_ERROR "the install has no ember::dist (MPI not found), so its consumer cannot be checked (CI=true)")
endif()

# Compiled mode: ember configured with EMBER_COMPILED installs ember::compiled beside the headers; a consumer
# linking it must build, link against the installed library alone and run.
set(compiled_prefix ${WORK_DIR}/prefix-compiled)
run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR} -B ${WORK_DIR}/ember-compiled -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DEMBER_COMPILED=ON -DEMBER_BUILD_TESTS=OFF -DEMBER_BUILD_EXAMPLES=OFF
    -DEMBER_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/ember-compiled -j 2)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/ember-compiled --prefix ${compiled_prefix})
file(GLOB compiled_archive ${compiled_prefix}/lib*/libember_compiled.a)
if(NOT compiled_archive)
  message(FATAL_ERROR "cmake --install with EMBER_COMPILED did not install libember_compiled.a (prefix ${compiled_prefix})")
endif()
run(${CMAKE_COMMAND} -S ${EMBER_SOURCE_DIR}/tests/consumer/find_package_compiled -B ${WORK_DIR}/find_package_compiled
    -DCMAKE_PREFIX_PATH=${compiled_prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/find_package_compiled -j 2)
run(${WORK_DIR}/find_package_compiled/consumer)
# The consumer's object must hold no layer of its own: they come from the library (extern templates work).
file(GLOB_RECURSE consumer_object ${WORK_DIR}/find_package_compiled/*consumer.cpp.o)
find_program(NM_EXECUTABLE nm REQUIRED)
execute_process(COMMAND ${NM_EXECUTABLE} -C --defined-only ${consumer_object} OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR symbols MATCHES "ember::nn::LinearT<float>::forward_into|ember::train::fit<")
  message(FATAL_ERROR "the compiled-mode consumer (${consumer_object}) compiled ember's layers or loop itself")
endif()
message(STATUS "compiled mode: the consumer links ember::compiled and instantiates no layer of its own")

# pkg-config: the command line a Makefile user writes, against the installed .pc only.
find_program(PKG_CONFIG_EXECUTABLE pkg-config REQUIRED)
set(pc_env ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${prefix}/share/pkgconfig)
run(${pc_env} ${PKG_CONFIG_EXECUTABLE} --exists --print-errors ember)
run(${pc_env} ${PKG_CONFIG_EXECUTABLE} --validate ember)
file(MAKE_DIRECTORY ${WORK_DIR}/pkg-config)
run(${pc_env} sh -c "${CXX_COMPILER} -O2 $(${PKG_CONFIG_EXECUTABLE} --cflags ember) \
${EMBER_SOURCE_DIR}/tests/consumer/consumer.cpp -o ${WORK_DIR}/pkg-config/consumer $(${PKG_CONFIG_EXECUTABLE} --libs ember)")
run(${WORK_DIR}/pkg-config/consumer)

# The install tree moved elsewhere: pkg-config still finds its headers (ember.pc's prefix is ${pcfiledir}).
set(moved ${WORK_DIR}/moved/prefix)
file(MAKE_DIRECTORY ${WORK_DIR}/moved)
file(RENAME ${prefix} ${moved})
execute_process(COMMAND ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${moved}/share/pkgconfig
                ${PKG_CONFIG_EXECUTABLE} --variable=includedir ember OUTPUT_VARIABLE moved_include
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT EXISTS ${moved_include}/ember/ember.hpp)
  message(FATAL_ERROR "ember.pc is not relocatable: includedir '${moved_include}' after moving ${prefix} to ${moved}")
endif()
file(RENAME ${moved} ${prefix})
message(STATUS "ember.pc relocates: includedir ${moved_include} after a move")
