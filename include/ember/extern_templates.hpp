#pragma once
// Compiled mode (docs/compile-times.md): the lists of what ember::compiled instantiates for float and double
// (src/compiled/ holds the one explicit instantiation of each). With EMBER_COMPILED defined, as ember::compiled
// defines it for its users, each class is declared `extern template` after its definition in its own header,
// and fit's instantiations here, after the umbrella header (which includes this file last), so a program
// compiles only its own code. Without EMBER_COMPILED nothing here is declared; header-only use is unchanged.
#include "ember/ember.hpp"

// X(class) for every class (X is variadic: a class name may hold commas) compiled for scalar type T.
#define EMBER_COMPILED_CLASSES(X, T)                                                                          \
  X(ember::TensorT<T>)                                                                                        \
  X(ember::nn::ModuleT<T>)                                                                                    \
  X(ember::nn::SequentialT<T>)                                                                                \
  X(ember::nn::ResidualT<T>)                                                                                  \
  X(ember::nn::GraphModuleT<T>)                                                                               \
  X(ember::nn::LinearT<T>)                                                                                    \
  X(ember::nn::Conv2dT<T>)                                                                                    \
  X(ember::nn::BatchNorm1dT<T>)                                                                               \
  X(ember::nn::BatchNorm2dT<T>)                                                                               \
  X(ember::nn::MaxPool2dT<T>)                                                                                 \
  X(ember::nn::AvgPool2dT<T>)                                                                                 \
  X(ember::nn::AdaptiveAvgPool2dT<T>)                                                                         \
  X(ember::nn::DropoutT<T>)                                                                                   \
  X(ember::nn::IdentityT<T>)                                                                                  \
  X(ember::nn::FlattenT<T>)                                                                                   \
  X(ember::nn::ReLUT<T>)                                                                                      \
  X(ember::nn::LeakyReLUT<T>)                                                                                 \
  X(ember::nn::GELUT<T>)                                                                                      \
  X(ember::nn::SigmoidT<T>)                                                                                   \
  X(ember::nn::TanhT<T>)                                                                                      \
  X(ember::nn::SoftmaxT<T>)                                                                                   \
  X(ember::loss::CrossEntropyLossT<T>)                                                                        \
  X(ember::loss::NLLLossT<T>)                                                                                 \
  X(ember::loss::BCEWithLogitsLossT<T>)                                                                       \
  X(ember::loss::MSELossT<T>)                                                                                 \
  X(ember::optim::SGDT<T>)                                                                                    \
  X(ember::optim::detail::BasicAdam<T, ember::optim::AdamOptions, false>) /* AdamT */                         \
  X(ember::optim::detail::BasicAdam<T, ember::optim::AdamWOptions, true>) /* AdamWT */                        \
  X(ember::optim::RMSpropT<T>)

// X(class) for the classes that do not depend on the scalar type.
#define EMBER_COMPILED_OTHER_CLASSES(X) X(ember::data::DataLoaderT<std::int64_t>)

// X(optimiser) for each optimiser the float training loop is compiled with: fit(Sequential, CrossEntropyLoss,
// optimiser, DataLoader, DataLoader), the report's and the tutorial's combination.
#define EMBER_COMPILED_FIT_OPTIMIZERS(X) \
  X(ember::optim::SGDT<float>)           \
  X(ember::optim::AdamT<float>)          \
  X(ember::optim::AdamWT<float>)         \
  X(ember::optim::RMSpropT<float>)

#define EMBER_COMPILED_FIT(EXTERN, O)                                                                          \
  EXTERN template ember::train::History ember::train::fit<ember::nn::SequentialT<float>,                       \
                                                          ember::loss::CrossEntropyLossT<float>, O,            \
                                                          ember::data::DataLoader, ember::data::DataLoader>(   \
      ember::nn::SequentialT<float>&, ember::loss::CrossEntropyLossT<float>&, O&, ember::data::DataLoader&,    \
      ember::data::DataLoader&, const ember::train::FitOptions&);

// The classes' extern declarations stand in their own headers (EMBER_EXTERN_TEMPLATE, core/compiled.hpp), so a
// program that includes single headers takes them from the library too; fit's need the types it is
// instantiated with, all of which the umbrella has.
#if defined(EMBER_COMPILED)
#define EMBER_EXTERN_FIT(O) EMBER_COMPILED_FIT(extern, O)
EMBER_COMPILED_FIT_OPTIMIZERS(EMBER_EXTERN_FIT)
#undef EMBER_EXTERN_FIT
#endif
