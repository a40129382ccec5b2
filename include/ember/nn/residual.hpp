#pragma once
// Residual(body) and Residual(body, shortcut): output = body(x) + shortcut(x), the shortcut the identity
// unless a module is given (a 1x1 strided Conv2d and a BatchNorm2d when the body changes the shape), so
// ResNet-style blocks can be built:
//   nn::Residual block(nn::Sequential{nn::Conv2d(16, 16, 3, 1, 1), nn::BatchNorm2d(16), nn::ReLU(),
//                                     nn::Conv2d(16, 16, 3, 1, 1), nn::BatchNorm2d(16)});
// It names and prints its children as a PyTorch module with attributes `body` and `shortcut` (the latter
// only when given, as an attribute set to None is not a child): parameters body.0.weight, shortcut.weight;
// printout "Residual(\n  (body): Sequential(...)\n  (shortcut): Conv2d(...)\n)".
// Children are held by value, as in Sequential: an lvalue is copied in, an rvalue moved.
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/add.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/sequential.hpp"

namespace ember::nn {

template <typename T>
class ResidualT : public ModuleT<T> {
 public:
  // (Not a Residual itself: that is a copy or a move.)
  template <typename B, typename = std::enable_if_t<detail::is_module_v<B> &&
                                                    !std::is_same_v<std::decay_t<B>, ResidualT>>>
  explicit ResidualT(B&& body) : body_(detail::own_child<T>(std::forward<B>(body))) {}
  template <typename B, typename S,
            typename = std::enable_if_t<detail::is_module_v<B> && detail::is_module_v<S>>>
  ResidualT(B&& body, S&& shortcut)
      : body_(detail::own_child<T>(std::forward<B>(body))),
        shortcut_(detail::own_child<T>(std::forward<S>(shortcut))) {}
  // Children already built (as nn::to<U> makes them); a null shortcut is the identity.
  ResidualT(std::unique_ptr<ModuleT<T>> body, std::unique_ptr<ModuleT<T>> shortcut)
      : body_(std::move(body)), shortcut_(std::move(shortcut)) {
    if (!body_) throw std::invalid_argument("Residual: null body");
  }

  ResidualT(const ResidualT& other)
      : ModuleT<T>(other),
        body_(other.body_ ? other.body_->clone() : nullptr),
        shortcut_(other.shortcut_ ? other.shortcut_->clone() : nullptr) {}
  ResidualT& operator=(const ResidualT& other) {
    if (this != &other) *this = ResidualT(other);
    return *this;
  }
  ResidualT(ResidualT&&) noexcept = default;
  ResidualT& operator=(ResidualT&&) noexcept = default;
  ~ResidualT() override = default;

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<ResidualT>(*this); }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    require_body();
    body_->forward_into(x, out);
    if (shortcut_) {
      shortcut_->forward_into(x, short_out_);
      add_into(out, short_out_);
    } else {
      add_into(out, x);
    }
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    require_body();
    body_->backward_into(grad_out, grad_in);
    this->notify_gradients_ready("body", *body_);
    if (shortcut_) {
      shortcut_->backward_into(grad_out, grad_in ? &short_grad_ : nullptr);
      this->notify_gradients_ready("shortcut", *shortcut_);
      if (grad_in) add_into(*grad_in, short_grad_);
    } else if (grad_in) {
      add_into(*grad_in, grad_out);
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    require_body();
    body_->predict_into(x, out);
    if (shortcut_) {
      TensorT<T> s;
      shortcut_->predict_into(x, s);
      add_into(out, s);
    } else {
      add_into(out, x);
    }
  }

  // Body and shortcut (the identity without one) from the same value, then Add.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    require_body();
    const std::string body = t.child("body", *body_, x);
    const std::string shortcut = shortcut_ ? t.child("shortcut", *shortcut_, x) : x;
    return t.node("Add", {body, shortcut});
  }

  bool batch_independent() const override {
    return body_ && body_->batch_independent() && (!shortcut_ || shortcut_->batch_independent());
  }
  // As a container: the listeners run after the body's backward ("body") and the shortcut's ("shortcut").
  bool reports_gradients_ready() const override { return true; }

  std::string type_name() const override { return "Residual"; }
  std::string repr() const override {
    std::string s = "Residual(\n  (body): " + indent(body_ ? body_->repr() : "<moved-from>") + "\n";
    if (shortcut_) s += "  (shortcut): " + indent(shortcut_->repr()) + "\n";
    return s + ")";
  }

  void collect_children(typename ModuleT<T>::NamedModules& out) override {
    if (body_) out.emplace_back("body", body_.get());
    if (shortcut_) out.emplace_back("shortcut", shortcut_.get());
  }

  ModuleT<T>& body() {
    require_body();
    return *body_;
  }
  const ModuleT<T>& body() const {
    require_body();
    return *body_;
  }
  // Null when the shortcut is the identity.
  ModuleT<T>* shortcut() { return shortcut_.get(); }
  const ModuleT<T>* shortcut() const { return shortcut_.get(); }
  bool has_shortcut() const { return shortcut_ != nullptr; }

 private:
  void require_body() const {
    if (!body_)
      throw std::logic_error("Residual: the module has no body: it was moved from (into a Sequential or another "
                             "module); use the copy there, or pass the module as an lvalue to copy it");
  }
  static std::string indent(const std::string& r) {
    std::string out;
    for (char ch : r) {
      out += ch;
      if (ch == '\n') out += "  ";
    }
    return out;
  }
  // sum += other, after checking that the two branches agree (broadcasting is not PyTorch's concern here:
  // a Residual whose branches differ in shape is a model error).
  void add_into(TensorT<T>& sum, const TensorT<T>& other) const {
    if (sum.shape() != other.shape())
      throw shape_error("Residual: the body gives " + to_string(sum.shape()) + " but the " +
                        (shortcut_ ? "shortcut gives " : "identity shortcut gives (the input) ") +
                        to_string(other.shape()) + "; give a shortcut that maps the input to the body's shape");
    kernels::add_forward(sum.data(), sum.data(), other.data(), sum.numel());
  }

  std::unique_ptr<ModuleT<T>> body_, shortcut_;
  TensorT<T> short_out_, short_grad_;
};

using Residual = ResidualT<float>;
EMBER_EXTERN_TEMPLATE(class ResidualT<float>)
EMBER_EXTERN_TEMPLATE(class ResidualT<double>)

}  // namespace ember::nn
