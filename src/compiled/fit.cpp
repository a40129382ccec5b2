// ember::compiled: the float training loop for each optimiser in EMBER_COMPILED_FIT_OPTIMIZERS.
#include <ember/extern_templates.hpp>

#define EMBER_INSTANTIATE_FIT(O) EMBER_COMPILED_FIT(, O)
EMBER_COMPILED_FIT_OPTIMIZERS(EMBER_INSTANTIATE_FIT)
