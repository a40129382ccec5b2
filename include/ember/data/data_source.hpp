#pragma once
// What a DataLoader needs of a data set, and how it sees one: the target type (a data set's `target_type`, or
// std::int64_t class labels), and DataSource, the loader's type-erased view (size, samples, targets,
// num_classes), so that one loader class serves every data set type with the same targets.
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ember/core/tensor.hpp"

namespace ember {
namespace data {

// The target type of a data set: its `target_type`, or std::int64_t (class labels).
template <typename D, typename = void>
struct dataset_target {
  using type = std::int64_t;
};
template <typename D>
struct dataset_target<D, std::void_t<typename D::target_type>> {
  using type = typename D::target_type;
};
template <typename D>
using dataset_target_t = typename dataset_target<D>::type;

namespace detail {
template <typename D, typename = void>
struct has_validate : std::false_type {};
template <typename D>
struct has_validate<D, std::void_t<decltype(std::declval<const D&>().validate())>> : std::true_type {};
template <typename D, typename = void>
struct has_num_classes : std::false_type {};
template <typename D>
struct has_num_classes<D, std::void_t<decltype(std::int64_t{std::declval<const D&>().num_classes})>> : std::true_type {};
}  // namespace detail

// What a loader sees of a data set: its size, samples and targets, and num_classes (0 when it has none).
template <typename Target>
class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual std::int64_t size() const = 0;
  virtual void load(std::int64_t i, Tensor& image) const = 0;
  virtual Target target(std::int64_t i) const = 0;
  std::int64_t num_classes = 0;
};

namespace detail {
template <typename D, typename Target>
class DataSourceOf final : public DataSource<Target> {
 public:
  explicit DataSourceOf(const D& d) : d_(d) {
    if constexpr (has_num_classes<D>::value) this->num_classes = d.num_classes;
  }
  std::int64_t size() const override { return d_.size(); }
  void load(std::int64_t i, Tensor& image) const override { d_.load(i, image); }
  Target target(std::int64_t i) const override { return d_.target(i); }

 private:
  const D& d_;
};
}  // namespace detail

}  // namespace data
}  // namespace ember
