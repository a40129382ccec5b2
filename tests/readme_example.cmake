# Fails unless README.md contains examples/quickstart.cpp verbatim (the README's example is compiled as that file).
file(READ ${SOURCE_DIR}/README.md readme)
file(READ ${SOURCE_DIR}/examples/quickstart.cpp example)
string(FIND "${readme}" "${example}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md's example differs from examples/quickstart.cpp: update one from the other")
endif()
