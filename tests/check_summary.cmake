# Checks an example run's summary.json: the run finished (the file exists, with the experiment's name) and
# learned (final_val_accuracy at least MIN_ACCURACY on the generated data).
#   cmake -DSUMMARY=<out>/summary.json -DEXPERIMENT=asl_cnn -DMIN_ACCURACY=0.6 -P check_summary.cmake
if(NOT EXISTS "${SUMMARY}")
  message(FATAL_ERROR "${SUMMARY} does not exist: the run did not finish")
endif()
file(READ "${SUMMARY}" json)
string(JSON experiment GET "${json}" experiment)
string(JSON accuracy GET "${json}" final_val_accuracy)
if(NOT experiment STREQUAL EXPERIMENT)
  message(FATAL_ERROR "${SUMMARY}: experiment '${experiment}', expected '${EXPERIMENT}'")
endif()
if(accuracy LESS MIN_ACCURACY)
  message(FATAL_ERROR "${EXPERIMENT}: final validation accuracy ${accuracy}, below the floor of ${MIN_ACCURACY}")
endif()
message(STATUS "${EXPERIMENT}: final validation accuracy ${accuracy} (floor ${MIN_ACCURACY})")
