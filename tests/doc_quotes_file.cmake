# Fails unless the page DOC contains the file FILE verbatim (the page shows a program the test suite compiles).
#   cmake -DDOC=docs/api.md -DFILE=examples/deploy_opencv.cpp -P doc_quotes_file.cmake
file(READ ${DOC} page)
file(READ ${FILE} program)
string(FIND "${page}" "${program}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${DOC} no longer quotes ${FILE} as it is: update one from the other")
endif()
