#pragma once
// TensorT<T>: a dense, contiguous, row-major n-d array with value semantics (copy copies, move moves).
// Images are NCHW. Storage is 64-byte aligned so Eigen's and the compiler's vector loads never straddle a
// cache line. Shape checks throw shape_error in every build type; operator[] is unchecked, at() is checked.
#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"

namespace ember {

// std::allocator with a fixed over-alignment (C++17 aligned operator new). Blocks of 4 MiB and more are aligned
// to 2 MiB and marked for transparent huge pages: first-touching a fresh 188 MB data set page by page costs
// most of a second on a VM, with huge pages a few milliseconds.
template <typename T, std::size_t Align = 64>
struct AlignedAllocator {
  static constexpr std::size_t kHugeThreshold = std::size_t(4) << 20;
  static constexpr std::size_t kHugeAlign = std::size_t(2) << 20;
  static std::size_t alignment_for(std::size_t bytes) { return bytes >= kHugeThreshold ? kHugeAlign : Align; }

  using value_type = T;
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    void* p = ::operator new(bytes, std::align_val_t(alignment_for(bytes)));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugeThreshold) ::madvise(p, bytes & ~(kHugeAlign - 1), MADV_HUGEPAGE);  // a hint; failure is fine
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete(p, std::align_val_t(alignment_for(n * sizeof(T))));
  }
  template <typename U>
  bool operator==(const AlignedAllocator<U, Align>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U, Align>&) const noexcept { return false; }
};

// A tensor's storage allocator: AlignedAllocator, except that vector::resize leaves new elements uninitialised
// (TensorT::resize promises unspecified contents). A backward pass's gradient buffers alternate between two
// layers' sizes, and value-initialising each regrowth zero-filled megabytes about to be overwritten (4 % of a
// CNN training step). The constructors still fill explicitly.
template <typename T>
struct TensorAllocator : AlignedAllocator<T> {
  template <typename U>
  struct rebind {
    using other = TensorAllocator<U>;
  };
  TensorAllocator() noexcept = default;
  template <typename U>
  TensorAllocator(const TensorAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

template <typename T>
class TensorT {
  static_assert(std::is_arithmetic<T>::value, "TensorT holds arithmetic types");

 public:
  using value_type = T;
  using Storage = std::vector<T, TensorAllocator<T>>;
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatrixMap = Eigen::Map<Matrix, Eigen::Aligned64>;
  using ConstMatrixMap = Eigen::Map<const Matrix, Eigen::Aligned64>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  using VectorMap = Eigen::Map<Vector, Eigen::Aligned64>;
  using ConstVectorMap = Eigen::Map<const Vector, Eigen::Aligned64>;

  // An empty tensor of shape [0], as torch.empty(0).
  TensorT() : shape_{0} {}
  // Zero-filled.
  explicit TensorT(Shape shape) : shape_(std::move(shape)), data_(checked_count(shape_), T(0)) {}
  TensorT(Shape shape, T value) : shape_(std::move(shape)), data_(checked_count(shape_), value) {}

  static TensorT zeros(Shape shape) { return TensorT(std::move(shape)); }
  static TensorT ones(Shape shape) { return TensorT(std::move(shape), T(1)); }
  static TensorT full(Shape shape, T value) { return TensorT(std::move(shape), value); }
  // Throws std::invalid_argument when values.size() does not match the shape.
  static TensorT from(Shape shape, const std::vector<T>& values) {
    const std::int64_t n = checked_count(shape);
    if (static_cast<std::int64_t>(values.size()) != n)
      throw shape_error("Tensor::from: shape " + to_string(shape) + " needs " + std::to_string(n) +
                        " values, got " + std::to_string(values.size()));
    TensorT t;
    t.shape_ = std::move(shape);
    t.data_.assign(values.begin(), values.end());
    return t;
  }

  const Shape& shape() const noexcept { return shape_; }
  std::int64_t dim() const noexcept { return static_cast<std::int64_t>(shape_.size()); }
  // Extent of dimension i; negative i counts from the end, as in PyTorch.
  std::int64_t size(std::int64_t i) const { return shape_[static_cast<std::size_t>(wrap_dim(i))]; }
  std::int64_t numel() const noexcept { return static_cast<std::int64_t>(data_.size()); }
  bool empty() const noexcept { return data_.empty(); }

  T* data() noexcept { return data_.data(); }
  const T* data() const noexcept { return data_.data(); }
  T* begin() noexcept { return data_.data(); }
  T* end() noexcept { return data_.data() + data_.size(); }
  const T* begin() const noexcept { return data_.data(); }
  const T* end() const noexcept { return data_.data() + data_.size(); }

  T& operator[](std::int64_t i) noexcept { return data_[static_cast<std::size_t>(i)]; }
  const T& operator[](std::int64_t i) const noexcept { return data_[static_cast<std::size_t>(i)]; }

  // Bounds-checked element access by multi-index.
  T& at(std::initializer_list<std::int64_t> index) { return data_[offset_of(index)]; }
  const T& at(std::initializer_list<std::int64_t> index) const { return data_[offset_of(index)]; }

  // A copy with another shape of the same element count; one extent may be -1 (inferred).
  TensorT reshape(Shape shape) const& {
    TensorT t(*this);
    t.reshape_(std::move(shape));
    return t;
  }
  TensorT reshape(Shape shape) && {
    reshape_(std::move(shape));
    return std::move(*this);
  }
  // In place: only the shape changes.
  TensorT& reshape_(Shape shape) {
    shape_ = infer_shape(std::move(shape), numel());
    return *this;
  }

  // Gives the tensor a new shape, reusing the storage's capacity (no allocation when it shrinks or stays).
  // Contents are unspecified afterwards: for output buffers that are about to be overwritten.
  void resize(const Shape& shape) {
    const std::int64_t n = checked_count(shape);
    if (shape_ != shape) shape_ = shape;
    data_.resize(static_cast<std::size_t>(n));
  }
  // resize, then copy other's contents.
  void assign(const TensorT& other) {
    resize(other.shape_);
    std::copy(other.begin(), other.end(), begin());
  }

  TensorT& fill(T value) {
    std::fill(data_.begin(), data_.end(), value);
    return *this;
  }
  TensorT& zero() { return fill(T(0)); }

  // Row-major matrix view of a 2-D reading: rows = size(0), cols = numel / size(0).
  MatrixMap matrix() {
    auto [r, c] = rows_cols();
    return MatrixMap(data(), r, c);
  }
  ConstMatrixMap matrix() const {
    auto [r, c] = rows_cols();
    return ConstMatrixMap(data(), r, c);
  }
  MatrixMap matrix(std::int64_t rows, std::int64_t cols) {
    check_view(rows, cols);
    return MatrixMap(data(), rows, cols);
  }
  ConstMatrixMap matrix(std::int64_t rows, std::int64_t cols) const {
    check_view(rows, cols);
    return ConstMatrixMap(data(), rows, cols);
  }
  VectorMap vector() { return VectorMap(data(), numel()); }
  ConstVectorMap vector() const { return ConstVectorMap(data(), numel()); }

  // Elementwise conversion, e.g. Tensor -> TensorT<double> for gradient checks.
  template <typename U>
  TensorT<U> cast() const {
    TensorT<U> out(shape_);
    std::transform(begin(), end(), out.begin(), [](T v) { return static_cast<U>(v); });
    return out;
  }

  bool operator==(const TensorT& o) const { return shape_ == o.shape_ && data_ == o.data_; }
  bool operator!=(const TensorT& o) const { return !(*this == o); }

 private:
  static std::int64_t checked_count(const Shape& shape) {
    const std::int64_t n = shape_numel(shape);
    if (static_cast<std::uint64_t>(n) > std::vector<T>().max_size())
      throw shape_error("shape " + to_string(shape) + " is too large to allocate");
    return n;
  }

  std::int64_t wrap_dim(std::int64_t i) const {
    const std::int64_t d = dim();
    if (i < -d || i >= d)
      throw std::out_of_range("Tensor::size: dimension " + std::to_string(i) + " out of range for a " +
                              std::to_string(d) + "-d tensor of shape " + to_string(shape_));
    return i < 0 ? i + d : i;
  }

  std::size_t offset_of(std::initializer_list<std::int64_t> index) const {
    if (static_cast<std::int64_t>(index.size()) != dim())
      throw std::out_of_range("Tensor::at: " + std::to_string(index.size()) + " indices for a tensor of shape " +
                              to_string(shape_));
    std::int64_t off = 0;
    std::size_t d = 0;
    for (std::int64_t i : index) {
      if (i < 0 || i >= shape_[d])
        throw std::out_of_range("Tensor::at: index " + std::to_string(i) + " out of range for dimension " +
                                std::to_string(d) + " of shape " + to_string(shape_));
      off = off * shape_[d] + i;
      ++d;
    }
    return static_cast<std::size_t>(off);
  }

  static Shape infer_shape(Shape shape, std::int64_t n) {
    std::int64_t known = 1;
    int infer_at = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == -1) {
        if (infer_at >= 0) throw shape_error("reshape: only one dimension can be -1, got " + to_string(shape));
        infer_at = static_cast<int>(i);
      } else if (shape[i] < 0) {
        throw shape_error("reshape: invalid extent in " + to_string(shape));
      } else {
        known *= shape[i];
      }
    }
    if (infer_at >= 0) {
      if (known == 0 || n % known != 0)
        throw shape_error("reshape: shape " + to_string(shape) + " is invalid for " + std::to_string(n) +
                          " elements");
      shape[static_cast<std::size_t>(infer_at)] = n / known;
    }
    if (shape_numel(shape) != n)
      throw shape_error("reshape: shape " + to_string(shape) + " is invalid for " + std::to_string(n) +
                        " elements");
    return shape;
  }

  std::pair<std::int64_t, std::int64_t> rows_cols() const {
    if (shape_.empty()) return {1, 1};
    const std::int64_t r = shape_[0];
    return {r, r == 0 ? 0 : numel() / r};
  }
  void check_view(std::int64_t rows, std::int64_t cols) const {
    if (rows < 0 || cols < 0 || rows * cols != numel())
      throw shape_error("matrix view " + std::to_string(rows) + "x" + std::to_string(cols) +
                        " does not match a tensor of shape " + to_string(shape_));
  }

  Shape shape_;
  Storage data_;
};

using Tensor = TensorT<float>;
EMBER_EXTERN_TEMPLATE(class TensorT<float>)
EMBER_EXTERN_TEMPLATE(class TensorT<double>)

// Short summary for messages and debugging: "Tensor[2, 3]".
template <typename T>
std::ostream& operator<<(std::ostream& os, const TensorT<T>& t) {
  os << "Tensor" << to_string(t.shape()) << " {";
  const std::int64_t shown = std::min<std::int64_t>(t.numel(), 8);
  for (std::int64_t i = 0; i < shown; ++i) os << (i ? ", " : "") << t[i];
  if (t.numel() > shown) os << ", ...";
  return os << '}';
}

// Throws shape_error naming `who` unless t has exactly `expected` (entries of -1 match any extent).
template <typename T>
void expect_shape(const TensorT<T>& t, const Shape& expected, const std::string& who) {
  bool ok = t.dim() == static_cast<std::int64_t>(expected.size());
  for (std::size_t i = 0; ok && i < expected.size(); ++i)
    ok = expected[i] == -1 || expected[i] == t.shape()[i];
  if (!ok) {
    std::string e = "[";
    for (std::size_t i = 0; i < expected.size(); ++i)
      e += (i ? ", " : "") + (expected[i] == -1 ? std::string(i == 0 ? "N" : "*") : std::to_string(expected[i]));
    throw shape_error(who + ": expected input " + e + "], got " + to_string(t.shape()));
  }
}

}  // namespace ember
