# Helpers of the cmake -P test scripts (deploy_opencv.cmake, custom_layer_opencv.cmake).

# A check that cannot run here says "skipped: <why>" (ctest's SKIP_REGULAR_EXPRESSION) and ends the script,
# except under CI=true, where it fails: a skipped check there would have checked nothing.
macro(skip_unless_ci why)
  if("$ENV{CI}" STREQUAL "true")
    message(FATAL_ERROR "CI=true but ${why}")
  endif()
  message("skipped: ${why}")
  return()
endmacro()
