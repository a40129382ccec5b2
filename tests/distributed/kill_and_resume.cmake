# 1. Two ranks train 4 epochs, rank 0 writing DIR/last.safetensors after each; rank 1 kills itself (SIGKILL) at
#    epoch 3: mpirun must end the job with a non-zero status.
# 2. The checkpoint is intact and says epoch 2; one process resumes from it, finishes, and ends with the
#    parameters of an uninterrupted run.
file(REMOVE_RECURSE ${DIR})
execute_process(COMMAND ${MPIRUN} ${PROGRAM} kill ${DIR} --kill RESULT_VARIABLE status OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("killed run: status ${status}\n${out}${err}")
if(status EQUAL 0)
  message(FATAL_ERROR "the job with a killed rank exited 0")
endif()
if(NOT EXISTS ${DIR}/last.safetensors)
  message(FATAL_ERROR "no checkpoint ${DIR}/last.safetensors after the killed run")
endif()
execute_process(COMMAND ${MPIEXEC} ${NP_FLAG} 1 --bind-to none ${PROGRAM} resume ${DIR} RESULT_VARIABLE status
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("resumed run: status ${status}\n${out}${err}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the resumed run failed")
endif()
if(NOT out MATCHES "resuming after epoch 2")
  message(FATAL_ERROR "the resumed run did not start after epoch 2")
endif()
