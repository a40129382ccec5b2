#pragma once
// ember's umbrella header: everything in one include. Each header below also compiles on its own, so a
// program can include only what it uses (image I/O, checkpoints and the training loop are the heavy parts).
#include "ember/version.hpp"
#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/batchnorm.hpp"
#include "ember/kernels/gemm.hpp"
#include "ember/kernels/im2col.hpp"
#include "ember/kernels/pool.hpp"
#include "ember/kernels/softmax.hpp"
#include "ember/nn/nn.hpp"
