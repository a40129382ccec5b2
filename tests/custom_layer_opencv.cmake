# examples/custom_layer --onnx DIR exports a model holding a layer of the program's own (it describes itself),
# then tests/onnx_graph_check.py runs the file through ONNX's checker and OpenCV's dnn module and compares with
# ember's output. Without python3-opencv / python3-onnx it says skipped, except under CI=true, where it fails.
#   cmake -DEXAMPLE=... -DCHECK=.../onnx_graph_check.py -DDIR=... -P custom_layer_opencv.cmake
include(${CMAKE_CURRENT_LIST_DIR}/script_helpers.cmake)
execute_process(COMMAND /usr/bin/python3 -c "import cv2, onnx" RESULT_VARIABLE have OUTPUT_QUIET ERROR_QUIET)
if(NOT have EQUAL 0)
  skip_unless_ci("/usr/bin/python3 cannot import cv2 and onnx (Debian: python3-opencv, python3-onnx)")
endif()
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR})
foreach(run "${EXAMPLE};--onnx;${DIR}" "/usr/bin/python3;${CHECK};${DIR}")
  execute_process(COMMAND ${run} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "exit status ${status}: ${run}")
  endif()
endforeach()
if(NOT "${out}" MATCHES "custom_layer: OpenCV vs ember")
  message(FATAL_ERROR "onnx_graph_check.py did not check custom_layer.onnx")
endif()
