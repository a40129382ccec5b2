#pragma once
// Every layer and the container.
#include "ember/nn/activation.hpp"
#include "ember/nn/batchnorm2d.hpp"
#include "ember/nn/clip_grad.hpp"
#include "ember/nn/convert.hpp"
#include "ember/nn/conv2d.hpp"
#include "ember/nn/dropout.hpp"
#include "ember/nn/flatten.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/linear.hpp"
#include "ember/nn/maxpool2d.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/sequential.hpp"
