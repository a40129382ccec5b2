# Runs a program and checks both its exit status and its output (ctest's PASS_REGULAR_EXPRESSION alone would
# ignore the status).
#   cmake "-DCOMMAND=prog;arg;..." -DREGEX=<regex> [-DEXPECT_FAILURE=ON] -P run_and_match.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(EXPECT_FAILURE)
  if(status EQUAL 0)
    message(FATAL_ERROR "expected a non-zero exit status, got 0")
  endif()
elseif(NOT status EQUAL 0)
  message(FATAL_ERROR "exit status ${status}")
endif()
if(NOT "${out}${err}" MATCHES "${REGEX}")
  message(FATAL_ERROR "the output does not match: ${REGEX}")
endif()
