#pragma once
// The usual split of a model's parameters for weight decay: matrices and convolution kernels decay, biases
// and normalisation weights (every parameter of one dimension or none) do not, as in the standard AdamW recipe
// (e.g. timm's param_groups_weight_decay). Names can send more parameters to the no-decay group.
//
//   auto groups = optim::weight_decay_groups(model.named_parameters(), optim::AdamWOptions{1e-3});
//   optim::AdamW opt(groups);   // group 0: decay (weight_decay 1e-2), group 1: no decay (weight_decay 0)
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/parameter.hpp"
#include "ember/optim/common.hpp"

namespace ember::optim {

// Group 0: the parameters with two or more dimensions whose name does not end with one of `no_decay`, with
// `options`; group 1: the others, with `options` but weight_decay 0. Both groups are returned even if one is
// empty, so group indices do not depend on the model. `named` is what Module::named_parameters() returns.
template <typename T, typename Options>
std::vector<ParamGroupT<T, Options>> weight_decay_groups(
    const std::vector<std::pair<std::string, ParameterT<T>*>>& named, const Options& options,
    const std::vector<std::string>& no_decay = {}) {
  std::vector<ParamGroupT<T, Options>> groups(2);
  groups[0].options = options;
  groups[1].options = options;
  groups[1].options.weight_decay = 0.0;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& [name, p] : named) {
    bool decay = p->value.dim() >= 2;
    for (const auto& suffix : no_decay)
      if (ends_with(name, suffix)) decay = false;
    groups[decay ? 0 : 1].params.push_back(p);
  }
  return groups;
}

}  // namespace ember::optim
