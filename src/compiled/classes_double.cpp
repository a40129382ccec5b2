// ember::compiled: the double instantiation of every class in EMBER_COMPILED_CLASSES (include/ember/extern_templates.hpp).
#include <ember/extern_templates.hpp>

#define EMBER_INSTANTIATE_CLASS(...) template class __VA_ARGS__;
EMBER_COMPILED_CLASSES(EMBER_INSTANTIATE_CLASS, double)
