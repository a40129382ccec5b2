# OpenCV's dnn module for the programs that use it (examples/deploy_opencv, benchmarks/compare's peers): sets
# EMBER_OPENCV_INCLUDE_DIRS and EMBER_OPENCV_LIBS when found. Debian's libopencv-dnn-dev (far smaller than
# libopencv-dev) ships no CMake package, so the header and libraries are looked for directly when
# find_package(OpenCV) finds none.
find_package(OpenCV QUIET COMPONENTS core dnn)
if(OpenCV_FOUND)
  set(EMBER_OPENCV_INCLUDE_DIRS ${OpenCV_INCLUDE_DIRS})
  set(EMBER_OPENCV_LIBS ${OpenCV_LIBS})
else()
  find_path(EMBER_OPENCV_INCLUDE_DIR opencv2/dnn.hpp PATH_SUFFIXES opencv4)
  find_library(EMBER_OPENCV_DNN_LIB opencv_dnn)
  find_library(EMBER_OPENCV_CORE_LIB opencv_core)
  if(EMBER_OPENCV_INCLUDE_DIR AND EMBER_OPENCV_DNN_LIB AND EMBER_OPENCV_CORE_LIB)
    set(EMBER_OPENCV_INCLUDE_DIRS ${EMBER_OPENCV_INCLUDE_DIR})
    set(EMBER_OPENCV_LIBS ${EMBER_OPENCV_DNN_LIB} ${EMBER_OPENCV_CORE_LIB})
  endif()
endif()
