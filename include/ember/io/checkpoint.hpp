#pragma once
// Checkpoints: a module's parameters and buffers (and, optionally, an optimiser's state) in a safetensors
// file (format/safetensors.hpp) whose tensor names are the module's dotted names (fc1.weight,
// batchnorm1.running_mean, ...), parameters then buffers, so a file moves to PyTorch with load_state_dict
// (tools/checkpoint_to_torch.py). Float models are written as F32, double models as F64; buffers named
// num_batches_tracked are written as I64, as PyTorch keeps them. Loading accepts F32, F64 and I64 for any
// tensor and converts when every value survives exactly.
//
// Optimiser state: given an optimiser, save_checkpoint also writes each of its state tensors as
// "optimizer.<key>.<parameter name>" (SGD: "optimizer.momentum_buffer.fc1.weight"), and load_checkpoint with
// an optimiser restores them (a parameter without one in the file gets none: its next step seeds it, as in
// PyTorch). Loading without an optimiser ignores those entries, so a training checkpoint also serves
// inference; loading with one needs that optimiser's state in the file (a model-only file, or another
// optimiser's, is a format_error rather than a silent fresh start). load_state_dict(module, path, strict)
// is PyTorch's: with strict = false, missing and unexpected tensors are reported instead of refused. The optimiser is any type with the members optim/sgd.hpp lists.
//
// Writes are atomic: a temporary file in the target's directory, flushed and fsync'ed, then renamed over the
// target; on failure the temporary is removed, ember::io_error names the path, the old file is untouched.
// Loading checks the whole file (sizes, dtypes, shapes, offsets, coverage, names) before touching the module
// or the optimiser; any problem throws ember::format_error naming the file, the problem and the offset.
#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/safetensors.hpp"
#include "ember/nn/module.hpp"
#include "ember/version.hpp"

namespace ember::io {

using format::read_safetensors;
using format::SafetensorsEntry;
using format::SafetensorsFile;

// The prefix of optimiser entries in a checkpoint.
inline const std::string& optimizer_prefix() {
  static const std::string prefix = "optimizer.";
  return prefix;
}

namespace detail {

inline bool is_num_batches_tracked(const std::string& name) {
  const std::string leaf = "num_batches_tracked";
  return name == leaf ||
         (name.size() > leaf.size() && name.compare(name.size() - leaf.size() - 1, std::string::npos, "." + leaf) == 0);
}

template <typename T, typename P>
std::string parameter_name(const nn::ModuleT<T>& module, const P* p, std::size_t index) {
  for (const auto& [name, q] : module.named_parameters())
    if (q == p) return name;
  throw std::invalid_argument("checkpoint: optimiser parameter " + std::to_string(index) +
                              " is not a parameter of the module");
}

inline std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// The shape of an optimiser's state tensor: Opt::state_shape(i, key) where it exists (Adam's 0-d "step"), else
// the parameter's shape.
template <typename Opt, typename = void>
struct HasStateShape : std::false_type {};
template <typename Opt>
struct HasStateShape<Opt, std::void_t<decltype(std::declval<const Opt&>().state_shape(std::size_t{}, std::string()))>>
    : std::true_type {};
template <typename Opt>
Shape state_shape(const Opt& optimizer, std::size_t i, const std::string& key) {
  if constexpr (HasStateShape<Opt>::value)
    return optimizer.state_shape(i, key);
  else
    return optimizer.params()[i]->value.shape();
}

// Stands for "no optimiser" in the overloads below.
struct NoOptimizer {};
}  // namespace detail

// What load_state_dict reports, as PyTorch's (missing_keys, unexpected_keys), with the file's __metadata__.
struct LoadResult {
  std::vector<std::string> missing_keys;     // the module's tensors the file does not have
  std::vector<std::string> unexpected_keys;  // the file's tensors the module does not have (optimiser entries aside)
  std::map<std::string, std::string> metadata;
};

namespace detail {

template <typename T, typename Opt>
void save(const nn::ModuleT<T>& module, const std::string& path, const std::map<std::string, std::string>& metadata,
          const Opt* optimizer) {
  std::vector<format::SafetensorsTensor<T>> tensors;
  for (const auto& [name, p] : module.named_parameters()) tensors.push_back({name, &p->value, false});
  for (const auto& [name, b] : module.named_buffers()) tensors.push_back({name, b, is_num_batches_tracked(name)});
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"ember_version", ember::version()},
                                             {"model", module.repr()},
                                             {"dtype", sizeof(T) == 4 ? "float32" : "float64"}};
  if constexpr (!std::is_same<Opt, NoOptimizer>::value) {
    if (optimizer) {
      meta["optimizer"] = optimizer->repr();
      const auto& params = optimizer->params();
      for (const auto& s : optimizer->state_tensors())
        tensors.push_back(
            {optimizer_prefix() + s.key + "." + parameter_name(module, params.at(s.param), s.param), s.tensor, false});
    }
  }
  for (const auto& [k, v] : metadata) meta[k] = v;
  format::write_safetensors(path, tensors, meta);
}

// The optimiser type a printout names ("AdamW" of "AdamW(lr=0.001, ...)").
inline std::string optimizer_type(const std::string& repr) { return repr.substr(0, repr.find('(')); }

// A checkpoint loaded with an optimiser must hold that optimiser's state: a model-only file would start it
// fresh without a word (a resume that is not one), another optimiser's state would be a list of unknown names.
template <typename Opt>
void check_optimizer_state(const std::string& path, const SafetensorsFile& file, const Opt& optimizer) {
  const auto it = file.metadata.find("optimizer");
  bool has_state = it != file.metadata.end();
  for (const auto& e : file.tensors) has_state = has_state || e.name.rfind(optimizer_prefix(), 0) == 0;
  if (!has_state)
    format::detail::bad(path, "holds no optimiser state (it was saved without an optimiser: a model-only or best "
                              "checkpoint); load with load_checkpoint(model, path) and start the optimiser fresh");
  const std::string mine = optimizer_type(optimizer.repr());
  if (it != file.metadata.end() && optimizer_type(it->second) != mine)
    format::detail::bad(path, "this checkpoint holds " + optimizer_type(it->second) + "'s state, the optimiser "
                              "given is " + mine + "; load with load_checkpoint(model, path) and start the " +
                              mine + " fresh, or build the optimiser the run used");
}

template <typename T, typename Opt>
LoadResult load(nn::ModuleT<T>& module, const std::string& path, Opt* optimizer, bool strict = true) {
  using format::detail::bad;
  SafetensorsFile file = read_safetensors(path);
  if constexpr (!std::is_same<Opt, NoOptimizer>::value)
    if (optimizer) check_optimizer_state(path, file, *optimizer);

  // Where each model tensor goes; the optimiser's state gets its own list.
  std::vector<std::pair<std::string, TensorT<T>*>> targets;
  for (auto& [name, p] : module.named_parameters()) targets.emplace_back(name, &p->value);
  for (auto& [name, b] : module.named_buffers()) targets.emplace_back(name, b);
  struct Slot {
    std::size_t param;
    std::string key;
  };
  std::map<std::string, Slot> state_slot;  // file name -> (optimiser parameter index, state key)
  if constexpr (!std::is_same<Opt, NoOptimizer>::value) {
    if (optimizer) {
      const auto& params = optimizer->params();
      for (std::size_t i = 0; i < params.size(); ++i) {
        const std::string pname = parameter_name(module, params[i], i);
        for (const std::string& key : optimizer->state_keys())
          state_slot[optimizer_prefix() + key + "." + pname] = Slot{i, key};
      }
    }
  }

  std::map<std::string, const SafetensorsEntry*> by_name;
  for (const auto& e : file.tensors) by_name[e.name] = &e;

  LoadResult result;
  std::vector<std::string>& missing = result.missing_keys;
  std::vector<std::string>& extra = result.unexpected_keys;
  std::map<std::string, bool> known;
  for (const auto& [name, t] : targets) {
    known[name] = true;
    if (!by_name.count(name)) missing.push_back(name);
  }
  for (const auto& e : file.tensors) {
    if (known.count(e.name) || state_slot.count(e.name)) continue;
    if (!optimizer && e.name.rfind(optimizer_prefix(), 0) == 0) continue;
    extra.push_back(e.name);
  }
  if (strict && !missing.empty()) bad(path, "missing tensors for the model: " + join(missing));
  if (strict && !extra.empty()) bad(path, "tensors the model does not have: " + join(extra));

  auto stage = [&](const SafetensorsEntry& e, const Shape& expected) {
    if (e.shape != expected)
      bad(path, "tensor '" + e.name + "' has shape " + to_string(e.shape) + ", the model expects " +
                    to_string(expected));
    if (e.dtype != "F32" && e.dtype != "F64" && e.dtype != "I64")
      bad(path, "tensor '" + e.name + "' has dtype " + e.dtype + "; ember loads F32, F64 and I64");
    TensorT<T> t(e.shape);
    format::detail::decode(path, e, file.data.data() + e.begin, file.data_start + e.begin, t.data(), t.numel());
    return t;
  };
  std::vector<TensorT<T>> staged;  // empty for a tensor the file does not have (strict = false)
  staged.reserve(targets.size());
  for (const auto& [name, t] : targets)
    staged.push_back(by_name.count(name) ? stage(*by_name[name], t->shape()) : TensorT<T>());
  std::vector<std::pair<Slot, TensorT<T>>> staged_state;
  if constexpr (!std::is_same<Opt, NoOptimizer>::value) {
    for (const auto& [name, slot] : state_slot) {
      const auto it = by_name.find(name);
      if (it != by_name.end())
        staged_state.emplace_back(slot, stage(*it->second, state_shape(*optimizer, slot.param, slot.key)));
    }
  }

  // Everything is checked: from here on nothing can fail.
  for (std::size_t k = 0; k < targets.size(); ++k)
    if (by_name.count(targets[k].first)) std::copy(staged[k].begin(), staged[k].end(), targets[k].second->begin());
  if constexpr (!std::is_same<Opt, NoOptimizer>::value) {
    if (optimizer) {
      optimizer->reset_state();
      for (auto& [slot, t] : staged_state) optimizer->set_state_tensor(slot.param, slot.key, std::move(t));
    }
  }
  result.metadata = std::move(file.metadata);
  return result;
}

}  // namespace detail

// Writes the module's parameters and buffers (and, given an optimiser over the module's parameters, its
// state) to `path` atomically. __metadata__ gets "format": "pt", "ember_version", "model" (the module's
// printout), "dtype" and, with an optimiser, "optimizer" (its printout); `metadata` is added last and wins on
// equal keys. io_error naming the path when the file cannot be written.
template <typename T>
void save_checkpoint(const nn::ModuleT<T>& module, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {}) {
  detail::save(module, path, metadata, static_cast<const detail::NoOptimizer*>(nullptr));
}
template <typename T, typename Opt>
void save_checkpoint(const nn::ModuleT<T>& module, const std::string& path,
                     const std::map<std::string, std::string>& metadata, const Opt* optimizer) {
  detail::save(module, path, metadata, optimizer);
}

// Loads a checkpoint written by save_checkpoint (or any safetensors file with the module's names) into the
// module, and, given an optimiser over the module's parameters, its state. Returns __metadata__. Every module
// tensor must be present with exactly its shape; other tensors are an error, except optimiser entries when no
// optimiser is given. On any error (format_error naming the file) nothing is changed.
// A file without optimiser state, or with another optimiser's (its "optimizer" metadata names another type),
// is a format_error when an optimiser is given: start the optimiser fresh by loading the model alone.
template <typename T>
std::map<std::string, std::string> load_checkpoint(nn::ModuleT<T>& module, const std::string& path) {
  return detail::load(module, path, static_cast<detail::NoOptimizer*>(nullptr)).metadata;
}
template <typename T, typename Opt>
std::map<std::string, std::string> load_checkpoint(nn::ModuleT<T>& module, const std::string& path, Opt* optimizer) {
  return detail::load(module, path, optimizer).metadata;
}

// As PyTorch's module.load_state_dict(torch-safetensors file, strict): strict is load_checkpoint(module, path);
// strict = false loads the tensors both have and reports the others in missing_keys and unexpected_keys
// instead of failing (fine-tuning: a backbone's file into a model with a new head of another name). A tensor
// whose shape differs is a format_error either way, as in PyTorch; nothing changes unless the load succeeds.
template <typename T>
LoadResult load_state_dict(nn::ModuleT<T>& module, const std::string& path, bool strict = true) {
  return detail::load(module, path, static_cast<detail::NoOptimizer*>(nullptr), strict);
}

}  // namespace ember::io
