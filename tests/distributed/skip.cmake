# A check that cannot run here: a failure in CI (CI=true), a visible skip elsewhere.
if("$ENV{CI}" STREQUAL "true")
  message(FATAL_ERROR "${WHAT} is missing, so the distributed tests cannot run (CI=true): install libopenmpi-dev "
                      "and openmpi-bin (scripts/setup.sh --interop)")
endif()
message("skipped: ${WHAT} is missing (install libopenmpi-dev and openmpi-bin)")
