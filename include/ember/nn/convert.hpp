#pragma once
// nn::to<U>(model): a built model (or layer) converted to another scalar type, as PyTorch's model.double() or
// model.float(), but returning a converted copy rather than changing the model in place (each scalar type is
// its own C++ type). Parameters, gradients (and requires_grad), buffers, names and the training mode are kept.
//   nn::Sequential model = ...;                              // float
//   nn::SequentialT<double> precise = nn::to<double>(model);
// The layers of ember convert; a layer of your own throws std::invalid_argument naming it.
#include <memory>
#include <stdexcept>
#include <string>

#include "ember/core/random.hpp"
#include "ember/nn/activation.hpp"
#include "ember/nn/avgpool2d.hpp"
#include "ember/nn/batchnorm1d.hpp"
#include "ember/nn/batchnorm2d.hpp"
#include "ember/nn/conv2d.hpp"
#include "ember/nn/dropout.hpp"
#include "ember/nn/flatten.hpp"
#include "ember/nn/identity.hpp"
#include "ember/nn/linear.hpp"
#include "ember/nn/maxpool2d.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/residual.hpp"
#include "ember/nn/sequential.hpp"

namespace ember::nn {

template <typename U, typename T>
SequentialT<U> to(const SequentialT<T>& model);
template <typename U, typename T>
std::unique_ptr<ModuleT<U>> to(const ModuleT<T>& m);

namespace detail {

// The same layer type and configuration in U, with freshly initialised (then overwritten) tensors.
template <typename U, typename T>
std::unique_ptr<ModuleT<U>> convert_layer(const ModuleT<T>& m) {
  Generator scratch(0);  // initialisation of tensors about to be overwritten: not from the default generator
  if (const auto* s = dynamic_cast<const SequentialT<T>*>(&m)) return std::make_unique<SequentialT<U>>(to<U>(*s));
  if (const auto* l = dynamic_cast<const LinearT<T>*>(&m))
    return std::make_unique<LinearT<U>>(l->in_features(), l->out_features(), l->has_bias(), scratch);
  if (const auto* c = dynamic_cast<const Conv2dT<T>*>(&m))
    return std::make_unique<Conv2dT<U>>(c->options(), scratch);
  if (const auto* b = dynamic_cast<const BatchNorm2dT<T>*>(&m))
    return std::make_unique<BatchNorm2dT<U>>(b->num_features(), b->eps(), b->momentum());
  if (const auto* b = dynamic_cast<const BatchNorm1dT<T>*>(&m))
    return std::make_unique<BatchNorm1dT<U>>(b->num_features(), b->eps(), b->momentum());
  if (const auto* p = dynamic_cast<const MaxPool2dT<T>*>(&m))
    return std::make_unique<MaxPool2dT<U>>(p->kernel_size(), p->stride(), p->padding());
  if (const auto* d = dynamic_cast<const DropoutT<T>*>(&m)) return std::make_unique<DropoutT<U>>(d->p());
  if (dynamic_cast<const ReLUT<T>*>(&m)) return std::make_unique<ReLUT<U>>();
  if (const auto* s = dynamic_cast<const SoftmaxT<T>*>(&m)) return std::make_unique<SoftmaxT<U>>(s->dim());
  if (const auto* r = dynamic_cast<const ResidualT<T>*>(&m))
    return std::make_unique<ResidualT<U>>(to<U>(r->body()), r->shortcut() ? to<U>(*r->shortcut()) : nullptr);
  if (const auto* p = dynamic_cast<const AvgPool2dT<T>*>(&m))
    return std::make_unique<AvgPool2dT<U>>(p->kernel_size(), p->stride(), p->padding());
  if (const auto* p = dynamic_cast<const AdaptiveAvgPool2dT<T>*>(&m))
    return std::make_unique<AdaptiveAvgPool2dT<U>>(p->output_size());
  if (const auto* a = dynamic_cast<const LeakyReLUT<T>*>(&m))
    return std::make_unique<LeakyReLUT<U>>(a->negative_slope());
  if (const auto* a = dynamic_cast<const GELUT<T>*>(&m)) return std::make_unique<GELUT<U>>(a->approximate());
  if (dynamic_cast<const SigmoidT<T>*>(&m)) return std::make_unique<SigmoidT<U>>();
  if (dynamic_cast<const TanhT<T>*>(&m)) return std::make_unique<TanhT<U>>();
  if (dynamic_cast<const IdentityT<T>*>(&m)) return std::make_unique<IdentityT<U>>();
  if (const auto* f = dynamic_cast<const FlattenT<T>*>(&m))
    return std::make_unique<FlattenT<U>>(f->start_dim(), f->end_dim());
  throw std::invalid_argument("nn::to: cannot convert " + m.repr() +
                              " to another scalar type: only ember's layers and Sequential convert");
}

// Parameters (values and gradients) and buffers, matched by name, converted elementwise.
template <typename U, typename T>
void copy_tensors(const ModuleT<T>& from, ModuleT<U>& to) {
  auto src = from.named_parameters();
  auto dst = to.named_parameters();
  for (std::size_t i = 0; i < src.size() && i < dst.size(); ++i) {
    dst[i].second->value = src[i].second->value.template cast<U>();
    dst[i].second->grad = src[i].second->grad.template cast<U>();
    dst[i].second->requires_grad = src[i].second->requires_grad;
  }
  auto sb = from.named_buffers();
  auto db = to.named_buffers();
  for (std::size_t i = 0; i < sb.size() && i < db.size(); ++i) *db[i].second = sb[i].second->template cast<U>();
}

}  // namespace detail

// Any module: the converted copy, as a module of U.
template <typename U, typename T>
std::unique_ptr<ModuleT<U>> to(const ModuleT<T>& m) {
  std::unique_ptr<ModuleT<U>> out = detail::convert_layer<U>(m);
  detail::copy_tensors(m, *out);
  out->train(m.is_training());
  return out;
}

// A Sequential: the converted copy, same display name and child names.
template <typename U, typename T>
SequentialT<U> to(const SequentialT<T>& model) {
  SequentialT<U> out(model.display_name(), {});
  for (std::size_t i = 0; i < model.size(); ++i) out.push_back(model.name_of(i), to<U>(model[i]));
  out.train(model.is_training());
  return out;
}

}  // namespace ember::nn
