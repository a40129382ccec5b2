#pragma once
// The window checks MaxPool2d and AvgPool2d share, with PyTorch's messages.
#include <stdexcept>
#include <string>

#include "ember/core/shape.hpp"

namespace ember::nn::detail {

inline void check_pool_window(const std::string& layer, Size2 kernel, Size2 stride, Size2 padding) {
  if (kernel.h <= 0 || kernel.w <= 0 || stride.h <= 0 || stride.w <= 0 || padding.h < 0 || padding.w < 0)
    throw std::invalid_argument(layer + ": kernel_size and stride must be positive and padding non-negative");
  if (2 * padding.h > kernel.h || 2 * padding.w > kernel.w)
    throw std::invalid_argument(layer + ": pad should be at most half of kernel size, got padding=" + padding.str() +
                                " and kernel_size=" + kernel.str());
}

}  // namespace ember::nn::detail
